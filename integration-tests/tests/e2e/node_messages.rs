//! The paForNode message layer as the Node meets it over HTTP: attributes checked the way
//! the XSD checks them, the request-level `standin` of SANP 3.6.0, receipts carrying elements
//! of a later SANP version, and paDemandPaymentNotice; every answer validated with xmllint.

use std::time::{Duration, Instant};

use sea_orm::{ConnectionTrait, Statement};

use incasso_domain::notice_number::{IuvBase, NoticeNumber, SegregationCode};
use incasso_integration_tests::node_simulator::{
    self as node, Caller, ReceiptSpec, element_text, post, validate,
};
use incasso_integration_tests::requests::MILANO;
use incasso_integration_tests::{Engine, TestApp};

use crate::on_both_engines;

on_both_engines!(
    attributes_are_checked_as_the_xsd_does,
    a_request_level_standin_makes_a_stand_in_receipt,
    a_demand_gets_a_ko_valid_against_the_xsd,
    a_receipt_is_read_to_its_types_and_never_refused_for_check_digits,
);

const XML: &str = "text/xml; charset=utf-8";
const MILANO_BANK: &str = "IT02N0306909400000012345678";

/// A notice number of Milan that incasso never issued (base far above any test's).
fn stranger_notice(base: u64) -> NoticeNumber {
    NoticeNumber::issue(
        SegregationCode::new(12).unwrap(),
        IuvBase::new(9_000_000_000_000 + base).unwrap(),
    )
}

fn receipt_for(notice: &NoticeNumber, receipt_id: &str) -> ReceiptSpec {
    ReceiptSpec {
        receipt_id: receipt_id.to_owned(),
        notice_number: notice.as_str().to_owned(),
        fiscal_code: MILANO.to_owned(),
        iuv: notice.iuv().as_str().to_owned(),
        amount: "12.34".to_owned(),
        psp: "BCITITMM".to_owned(),
        transfers: vec![(
            MILANO.to_owned(),
            "12.34".to_owned(),
            MILANO_BANK.to_owned(),
        )],
        stand_in: false,
        payment_date_time: "2026-11-20T10:15:00".to_owned(),
    }
}

/// Posts `body` and returns the answer, after checking it is HTTP 200 and valid against the
/// official XSD.
async fn answer(app: &TestApp, action: &str, body: &str) -> anyhow::Result<String> {
    let reply = post(app.soap_addr, Some(action), XML, body.as_bytes()).await?;
    assert_eq!(reply.status, 200, "{}", reply.body);
    validate(&reply.body)?;
    Ok(reply.body)
}

fn fault_code(body: &str) -> Option<&str> {
    element_text(body, "faultCode")
}

/// The fault's description, unescaped.
fn description(body: &str) -> String {
    element_text(body, "description")
        .unwrap_or_default()
        .replace("&apos;", "'")
        .replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

async fn stand_in_of(app: &TestApp, receipt_id: &str) -> anyhow::Result<Option<bool>> {
    let db = app.database().await?;
    let row = db
        .query_one_raw(Statement::from_string(
            db.get_database_backend(),
            format!("SELECT stand_in FROM receipt WHERE receipt_id = '{receipt_id}'"),
        ))
        .await?;
    let stand_in = match row {
        Some(row) => Some(row.try_get_by_index(0)?),
        None => None,
    };
    db.close().await?;
    Ok(stand_in)
}

async fn attributes_are_checked_as_the_xsd_does(engine: Engine) -> anyhow::Result<()> {
    let app = TestApp::spawn(engine).await?;
    let good = node::verify(&Caller::default(), MILANO, stranger_notice(1).as_str());
    // The baseline reaches the business rules: the notice is unknown.
    let body = answer(&app, "paVerifyPaymentNotice", &good).await?;
    assert_eq!(fault_code(&body), Some("PAA_PAGAMENTO_SCONOSCIUTO"));

    // A 900 kB attribute: an attribute the XSD does not declare, named with its element.
    let huge = good.replace("<idPA>", &format!("<idPA a=\"{}\">", "x".repeat(900_000)));
    let started = Instant::now();
    let body = answer(&app, "paVerifyPaymentNotice", &huge).await?;
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(fault_code(&body), Some("PAA_SINTASSI_XSD"));
    let text = description(&body);
    assert!(
        text.contains("paVerifyPaymentNoticeReq.idPA") && text.contains("'a'"),
        "{text}"
    );
    assert_eq!(element_text(&body, "id"), Some(MILANO));

    // 60,000 attributes: refused by the reader's bound, quickly.
    let many: String = (0..60_000).map(|i| format!(" a{i}=\"1\"")).collect();
    let crowded = good.replace("<idPA>", &format!("<idPA{many}>"));
    assert!(crowded.len() < 1024 * 1024, "within the body limit");
    let started = Instant::now();
    let body = answer(&app, "paVerifyPaymentNotice", &crowded).await?;
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(fault_code(&body), Some("PAA_SINTASSI_EXTRAXSD"));

    // Not well-formed start tags.
    for broken in [
        "<idPA a=1 & <<>",
        "<idPA a=\"1\"b=\"2\">",
        "<idPA a=\"1\" a=\"2\">",
        "<idPA p:a=\"1\">",
        "<idPA a=\"&nbsp;\">",
    ] {
        let body = answer(
            &app,
            "paVerifyPaymentNotice",
            &good.replace("<idPA>", broken),
        )
        .await?;
        assert_eq!(fault_code(&body), Some("PAA_SINTASSI_EXTRAXSD"), "{broken}");
    }

    // Attributes the XSD refuses, anywhere in the payload or on the envelope.
    for (from, to, field) in [
        (
            "<qrCode>",
            "<qrCode id=\"1\">",
            "paVerifyPaymentNoticeReq.qrCode",
        ),
        (
            "<paf:paVerifyPaymentNoticeReq>",
            "<paf:paVerifyPaymentNoticeReq paf:version=\"2\">",
            "paVerifyPaymentNoticeReq",
        ),
        (
            "<soapenv:Envelope ",
            "<soapenv:Envelope version=\"1.1\" ",
            "Envelope",
        ),
    ] {
        let request = good.replacen(from, to, 1);
        assert!(validate(&request).is_err(), "xmllint refuses it too: {to}");
        let body = answer(&app, "paVerifyPaymentNotice", &request).await?;
        assert_eq!(fault_code(&body), Some("PAA_SINTASSI_XSD"), "{to}");
        let text = description(&body);
        assert!(text.starts_with(&format!("{field}: attribute")), "{text}");
    }

    // What real senders write, and the XSD accepts: namespace declarations anywhere,
    // attributes of other namespaces on the envelope and its header, anything on the Body and
    // in header entries, schema-location hints.
    let decorated = good
        .replace(
            "<soapenv:Envelope ",
            "<soapenv:Envelope xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" \
             xmlns:xs=\"http://www.w3.org/2001/XMLSchema\" xmlns:o=\"urn:o\" o:trace=\"1\" ",
        )
        .replace(
            "<soapenv:Header/>",
            "<soapenv:Header o:h=\"1\"><o:id soapenv:mustUnderstand=\"0\" x=\"y\">1</o:id></soapenv:Header>",
        )
        .replace("<soapenv:Body>", "<soapenv:Body id=\"b\">")
        .replace(
            "<qrCode>",
            "<qrCode xmlns:q=\"urn:q\" xsi:schemaLocation=\"http://pagopa-api.pagopa.gov.it/pa/paForNode.xsd paForNode.xsd\">",
        );
    validate(&decorated)?;
    let body = answer(&app, "paVerifyPaymentNotice", &decorated).await?;
    assert_eq!(fault_code(&body), Some("PAA_PAGAMENTO_SCONOSCIUTO"));
    app.stop().await
}

async fn a_request_level_standin_makes_a_stand_in_receipt(engine: Engine) -> anyhow::Result<()> {
    let app = TestApp::spawn(engine).await?;
    let caller = Caller::default();
    let mut base = 100;
    for v2 in [false, true] {
        let action = if v2 { "paSendRTV2" } else { "paSendRT" };
        for (request_level, receipt_level, expected) in [
            (Some("true"), false, true),
            (Some("false"), true, true),
            (Some("false"), false, false),
            (None, true, true),
            (None, false, false),
        ] {
            base += 1;
            let receipt_id = format!("token-standin-{base}");
            let mut spec = receipt_for(&stranger_notice(base), &receipt_id);
            spec.stand_in = receipt_level;
            let mut request = node::send_rt(&caller, v2, &spec);
            if let Some(value) = request_level {
                request = request.replace(
                    "</receipt>",
                    &format!("</receipt><standin>{value}</standin>"),
                );
            } else {
                validate(&request)?;
            }
            let body = answer(&app, action, &request).await?;
            assert_eq!(element_text(&body, "outcome"), Some("OK"), "{body}");
            assert_eq!(
                stand_in_of(&app, &receipt_id).await?,
                Some(expected),
                "{action} standin={request_level:?} standIn={receipt_level}"
            );
        }
    }
    // Still a boolean.
    let spec = receipt_for(&stranger_notice(200), "token-standin-bad");
    let request = node::send_rt(&caller, true, &spec)
        .replace("</receipt>", "</receipt><standin>si</standin>");
    let body = answer(&app, "paSendRTV2", &request).await?;
    assert_eq!(fault_code(&body), Some("PAA_SINTASSI_XSD"));
    assert!(description(&body).starts_with("paSendRTV2Request.standin"));
    assert_eq!(stand_in_of(&app, "token-standin-bad").await?, None);
    app.stop().await
}

async fn a_demand_gets_a_ko_valid_against_the_xsd(engine: Engine) -> anyhow::Result<()> {
    let app = TestApp::spawn(engine).await?;
    let demand = |id_pa: &str, servizio: &str, dati: &str| {
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\
             <soapenv:Envelope xmlns:soapenv=\"{}\" xmlns:paf=\"{}\"><soapenv:Header/><soapenv:Body>\
             <paf:paDemandPaymentNoticeRequest><idPA>{id_pa}</idPA><idBrokerPA>01199250158</idBrokerPA>\
             <idStation>01199250158_01</idStation><idServizio>{servizio}</idServizio>\
             <idSoggettoServizio>00001</idSoggettoServizio>\
             <datiSpecificiServizioRequest>{dati}</datiSpecificiServizioRequest>\
             </paf:paDemandPaymentNoticeRequest></soapenv:Body></soapenv:Envelope>",
            node::SOAP_ENVELOPE,
            node::PA_FOR_NODE
        )
    };
    // base64 of <servizio/>, then the same wrapped, then empty: all valid base64Binary.
    for dati in ["PHNlcnZpemlvLz4=", "PHNlcnZp\n emlvLz4=", ""] {
        let request = demand(MILANO, "00042", dati);
        validate(&request)?;
        let body = answer(&app, "paDemandPaymentNotice", &request).await?;
        assert!(body.contains("paDemandPaymentNoticeResponse>"), "{body}");
        assert_eq!(element_text(&body, "outcome"), Some("KO"));
        assert_eq!(fault_code(&body), Some("PAA_SEMANTICA"), "{dati:?}");
        assert_eq!(element_text(&body, "id"), Some(MILANO));
    }
    for (request, code) in [
        (demand(MILANO, "00042", "not base64!"), "PAA_SINTASSI_XSD"),
        (demand(MILANO, "42", "PHNlcnZpemlvLz4="), "PAA_SINTASSI_XSD"),
        (
            demand("00000000000", "00042", "PHNlcnZpemlvLz4="),
            "PAA_ID_DOMINIO_ERRATO",
        ),
    ] {
        let body = answer(&app, "paDemandPaymentNotice", &request).await?;
        assert!(body.contains("paDemandPaymentNoticeResponse>"), "{body}");
        assert_eq!(fault_code(&body), Some(code), "{body}");
    }
    app.stop().await
}

async fn stored_date_time(app: &TestApp, receipt_id: &str) -> anyhow::Result<Option<String>> {
    let db = app.database().await?;
    let row = db
        .query_one_raw(Statement::from_string(
            db.get_database_backend(),
            format!("SELECT payment_date_time FROM receipt WHERE receipt_id = '{receipt_id}'"),
        ))
        .await?
        .ok_or_else(|| anyhow::anyhow!("receipt {receipt_id} not stored"))?;
    let text = row.try_get_by_index(0)?;
    db.close().await?;
    Ok(text)
}

async fn a_receipt_is_read_to_its_types_and_never_refused_for_check_digits(
    engine: Engine,
) -> anyhow::Result<()> {
    let app = TestApp::spawn(engine).await?;
    let caller = Caller::default();
    // A notice number whose check digits are wrong: still a receipt, booked.
    let good = stranger_notice(400);
    let mut wrong = good.as_str().to_owned();
    let last = if wrong.ends_with('0') { "1" } else { "0" };
    wrong.replace_range(17..18, last);
    assert!(NoticeNumber::parse(&wrong).is_err());
    let mut spec = receipt_for(&good, "token-typed-check");
    spec.notice_number = wrong.clone();
    let request = node::send_rt(&caller, true, &spec);
    validate(&request)?;
    let body = answer(&app, "paSendRTV2", &request).await?;
    assert_eq!(element_text(&body, "outcome"), Some("OK"), "{body}");
    assert_eq!(stand_in_of(&app, "token-typed-check").await?, Some(false));
    // paymentDateTime with a zone or fractional seconds is kept as sent.
    for (v2, receipt_id, sent) in [
        (false, "token-typed-z", "2026-11-20T23:30:00Z"),
        (true, "token-typed-offset", "2026-03-29T02:30:00.250+01:00"),
    ] {
        let mut spec = receipt_for(&stranger_notice(if v2 { 401 } else { 402 }), receipt_id);
        spec.payment_date_time = sent.to_owned();
        let request = node::send_rt(&caller, v2, &spec);
        validate(&request)?;
        let action = if v2 { "paSendRTV2" } else { "paSendRT" };
        let body = answer(&app, action, &request).await?;
        assert_eq!(element_text(&body, "outcome"), Some("OK"), "{body}");
        assert_eq!(
            stored_date_time(&app, receipt_id).await?.as_deref(),
            Some(sent)
        );
    }
    // One the XSD refuses is refused, naming the field.
    let mut spec = receipt_for(&stranger_notice(403), "token-typed-bad-time");
    spec.payment_date_time = "2026-11-20 10:15:00".to_owned();
    let request = node::send_rt(&caller, true, &spec);
    assert!(validate(&request).is_err(), "xmllint refuses it too");
    let body = answer(&app, "paSendRTV2", &request).await?;
    assert_eq!(fault_code(&body), Some("PAA_SINTASSI_XSD"));
    assert!(description(&body).starts_with("paSendRTV2Request.receipt.paymentDateTime"));
    assert_eq!(stand_in_of(&app, "token-typed-bad-time").await?, None);
    app.stop().await
}

/// A writer for the JSON log lines the server writes while the test runs.
#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A receipt carrying elements of a later SANP version is booked, each unknown element
/// logged at warn by name with the primitive, never its content; verify stays strict. The
/// subscriber is the test thread's default and the runtime has that one thread, so the log
/// holds what the server wrote while answering, and nothing of other tests.
fn unknown_receipt_elements_are_logged_by_name_and_booked(engine: Engine) -> anyhow::Result<()> {
    use tracing_subscriber::layer::SubscriberExt;
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_subscriber::filter::LevelFilter::INFO)
        .with(
            tracing_subscriber::fmt::layer()
                .json()
                .with_writer(move || writer.clone()),
        );
    let _default = tracing::subscriber::set_default(subscriber);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    // Personal data a later version might carry inside an element incasso does not know.
    const SECRET: &str = "BNCLRA85M41F205C";
    runtime.block_on(async {
        let app = TestApp::spawn(engine).await?;
        let caller = Caller::default();
        for (v2, base) in [(false, 300), (true, 301)] {
            let action = if v2 { "paSendRTV2" } else { "paSendRT" };
            let receipt_id = format!("token-future-{base}");
            let spec = receipt_for(&stranger_notice(base), &receipt_id);
            let request = node::send_rt(&caller, v2, &spec)
                .replace(
                    "</receipt>",
                    &format!("</receipt><futureFlag>{SECRET}</futureFlag>"),
                )
                .replace(
                    "<idPSP>",
                    &format!("<payerContact><phone>{SECRET}</phone></payerContact><idPSP>"),
                )
                .replace(
                    "<IBAN>",
                    &format!("<beneficiaryBic>{SECRET}</beneficiaryBic><IBAN>"),
                )
                .replace(
                    "<fullName>Mario Rossi</fullName>",
                    &format!("<fullName>Mario Rossi</fullName><pec>{SECRET}</pec>"),
                );
            assert!(validate(&request).is_err(), "not valid against today's XSD");
            let body = answer(&app, action, &request).await?;
            assert_eq!(element_text(&body, "outcome"), Some("OK"), "{body}");
            assert_eq!(stand_in_of(&app, &receipt_id).await?, Some(false), "booked");
            // A known field with a wrong value is still refused.
            let wrong = request
                .replace(&receipt_id, &format!("{receipt_id}-wrong"))
                .replace("<fee>1.00</fee>", "<fee>1.0</fee>");
            let body = answer(&app, action, &wrong).await?;
            assert_eq!(fault_code(&body), Some("PAA_SINTASSI_XSD"));
            assert_eq!(
                stand_in_of(&app, &format!("{receipt_id}-wrong")).await?,
                None
            );
        }
        // Verify stays strict.
        let verify = node::verify(&caller, MILANO, stranger_notice(302).as_str())
            .replace("</qrCode>", "</qrCode><futureFlag>1</futureFlag>");
        let body = answer(&app, "paVerifyPaymentNotice", &verify).await?;
        assert_eq!(fault_code(&body), Some("PAA_SINTASSI_XSD"));
        app.stop().await
    })?;
    drop(runtime);
    let log = String::from_utf8(captured.0.lock().unwrap().clone())?;
    let warnings: Vec<&str> = log
        .lines()
        .filter(|line| line.contains("receipt element unknown to this version skipped"))
        .collect();
    for primitive in ["paSendRT", "paSendRTV2"] {
        let request = if primitive == "paSendRT" {
            "paSendRTReq"
        } else {
            "paSendRTV2Request"
        };
        for element in [
            format!("{request}.futureFlag"),
            format!("{request}.receipt.payerContact"),
            format!("{request}.receipt.transferList.transfer[0].beneficiaryBic"),
            format!("{request}.receipt.debtor.pec"),
        ] {
            let line = warnings
                .iter()
                .find(|line| line.contains(&format!("\"element\":\"{element}\"")))
                .unwrap_or_else(|| panic!("no warning for {element}: {warnings:#?}"));
            assert!(line.contains("\"level\":\"WARN\""), "{line}");
            assert!(
                line.contains(&format!("\"primitive\":\"{primitive}\"")),
                "{line}"
            );
        }
    }
    assert!(
        !log.contains(SECRET),
        "the content of an unknown element is never logged"
    );
    Ok(())
}

#[test]
fn unknown_receipt_elements_are_logged_by_name_and_booked_sqlite() -> anyhow::Result<()> {
    unknown_receipt_elements_are_logged_by_name_and_booked(Engine::Sqlite)
}

#[test]
fn unknown_receipt_elements_are_logged_by_name_and_booked_postgres() -> anyhow::Result<()> {
    unknown_receipt_elements_are_logged_by_name_and_booked(Engine::Postgres)
}
