//! The paForNode endpoint as the PagoPA Node meets it: verify and activation over real HTTP,
//! every answer (OK and each fault) validated against the official XSD with xmllint.

use incasso_grpc::pb;
use incasso_integration_tests::node_simulator::{
    self as node, Caller, element_text, post, validate,
};
use incasso_integration_tests::requests::{self, CITTA_METROPOLITANA, MILANO};
use incasso_integration_tests::{Engine, TestApp};

use crate::on_both_engines;

on_both_engines!(
    verify_and_activation_answer_with_valid_messages,
    every_refusal_is_a_valid_ko_naming_the_reason,
    hostile_requests_get_a_proper_fault,
);

const XML: &str = "text/xml; charset=utf-8";

/// Every fault code incasso can answer, in the response of every operation, with texts at
/// and beyond their limits, is valid against the official XSD.
#[test]
fn every_fault_of_every_operation_is_valid() {
    use incasso_node::message::Operation;
    use incasso_node::response::{Fault, FaultCode, ko, send_rt_ok};
    for operation in Operation::ALL {
        for code in FaultCode::ALL {
            let fault = Fault {
                code,
                description: "ä<&>\"'".repeat(400),
                id: "01199250158".to_owned(),
            };
            validate(&ko(operation, &fault))
                .unwrap_or_else(|e| panic!("{operation:?} {code:?}: {e}"));
        }
    }
    validate(&send_rt_ok(Operation::SendRt)).unwrap();
    validate(&send_rt_ok(Operation::SendRtV2)).unwrap();
}

/// The validator itself must be able to fail: a qualified child and a one-decimal amount are
/// refused by the official XSD.
#[test]
fn the_xsd_check_rejects_what_the_node_rejects() {
    let ok = node::verify(&Caller::default(), MILANO, "312000000001234587");
    assert!(validate(&ok).is_ok());
    assert!(
        validate(&ok.replace(
            "<idPA>01199250158</idPA>",
            "<paf:idPA>01199250158</paf:idPA>"
        ))
        .is_err()
    );
    let amount = "<?xml version=\"1.0\"?><soapenv:Envelope xmlns:soapenv=\"http://schemas.xmlsoap.org/soap/envelope/\" \
        xmlns:paf=\"http://pagopa-api.pagopa.gov.it/pa/paForNode.xsd\"><soapenv:Body><paf:paVerifyPaymentNoticeRes>\
        <outcome>OK</outcome><paymentList><paymentOptionDescription><amount>1.0</amount><options>EQ</options>\
        <allCCP>false</allCCP></paymentOptionDescription></paymentList></paf:paVerifyPaymentNoticeRes>\
        </soapenv:Body></soapenv:Envelope>";
    assert!(validate(amount).is_err());
    assert!(validate(&amount.replace("1.0<", "1.00<")).is_ok());
}

/// Posts a request the simulator built (validating it first) and validates the answer.
async fn call(app: &TestApp, action: &str, request: &str) -> anyhow::Result<String> {
    validate(request)?;
    let reply = post(app.soap_addr, Some(action), XML, request.as_bytes()).await?;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(
        reply.content_type.starts_with("text/xml"),
        "{}",
        reply.content_type
    );
    validate(&reply.body)?;
    Ok(reply.body)
}

fn fault_code(body: &str) -> Option<&str> {
    element_text(body, "faultCode")
}

fn all_notices(position: &pb::DebtPosition) -> Vec<&pb::Installment> {
    position
        .payment_options
        .iter()
        .flat_map(|o| o.installments.iter())
        .collect()
}

async fn verify_and_activation_answer_with_valid_messages(engine: Engine) -> anyhow::Result<()> {
    let app = TestApp::spawn(engine).await?;
    let mut notices = app.notices().await?;
    let tari = notices
        .create_debt_position(requests::tari("node-tari"))
        .await?
        .into_inner();
    let fine = notices
        .create_debt_position(requests::fine("node-fine"))
        .await?
        .into_inner();
    let caller = Caller::default();
    let rata_unica = all_notices(&tari)[0];

    let body = call(
        &app,
        "paVerifyPaymentNotice",
        &node::verify(&caller, MILANO, &rata_unica.notice_number),
    )
    .await?;
    assert_eq!(element_text(&body, "outcome"), Some("OK"));
    assert_eq!(element_text(&body, "amount"), Some("300.00"));
    assert_eq!(element_text(&body, "options"), Some("EQ"));
    assert_eq!(element_text(&body, "dueDate"), Some("2026-07-31"));
    assert_eq!(
        element_text(&body, "allCCP"),
        Some("true"),
        "both beneficiaries have Poste accounts"
    );
    assert_eq!(element_text(&body, "fiscalCodePA"), Some(MILANO));
    assert_eq!(element_text(&body, "companyName"), Some("Comune di Milano"));
    assert_eq!(
        element_text(&body, "paymentDescription"),
        Some("TARI 2026 utenza domestica")
    );

    // The fine costs what it costs today: the same figure GetPayableAmount gives.
    let fine_notice = &all_notices(&fine)[0].notice_number;
    let today = notices
        .get_payable_amount(pb::GetPayableAmountRequest {
            notice_number: fine_notice.clone(),
            ..Default::default()
        })
        .await?
        .into_inner();
    let body = call(
        &app,
        "paVerifyPaymentNotice",
        &node::verify(&caller, MILANO, fine_notice),
    )
    .await?;
    let expected = format!(
        "{}.{:02}",
        today.amount_cents / 100,
        today.amount_cents % 100
    );
    assert_eq!(element_text(&body, "amount"), Some(expected.as_str()));

    let body = call(
        &app,
        "paGetPayment",
        &node::get_payment(
            &caller,
            false,
            MILANO,
            &rata_unica.notice_number,
            "300.00",
            None,
        ),
    )
    .await?;
    assert_eq!(
        element_text(&body, "creditorReferenceId"),
        Some(rata_unica.iuv.as_str())
    );
    assert_eq!(element_text(&body, "paymentAmount"), Some("300.00"));
    assert_eq!(body.matches("<transfer>").count(), 2);
    assert!(body.contains(&format!(
        "<fiscalCodePA>{CITTA_METROPOLITANA}</fiscalCodePA>"
    )));
    assert!(body.contains("<transferAmount>285.00</transferAmount>"));
    assert!(body.contains("<transferAmount>15.00</transferAmount>"));
    assert!(
        body.contains(
            "<entityUniqueIdentifierValue>RSSMRA80A01F205X</entityUniqueIdentifierValue>"
        )
    );
    assert!(!body.contains("<metadata>"));

    let body = call(
        &app,
        "paGetPaymentV2",
        &node::get_payment(
            &caller,
            true,
            MILANO,
            &rata_unica.notice_number,
            "300.00",
            Some("PAGOPA"),
        ),
    )
    .await?;
    assert!(body.contains("paGetPaymentV2Response"));
    assert_eq!(body.matches("<key>IBANAPPOGGIO</key>").count(), 2);
    assert!(body.contains("<companyName>Città Metropolitana di Milano</companyName>"));

    let body = call(
        &app,
        "paGetPayment",
        &node::get_payment(
            &caller,
            false,
            MILANO,
            &rata_unica.notice_number,
            "300.00",
            Some("POSTAL"),
        ),
    )
    .await?;
    let first_iban = element_text(&body, "IBAN").unwrap_or_default();
    assert_eq!(
        &first_iban[5..10],
        "07601",
        "transfer 1 credits a Poste account: {first_iban}"
    );

    // Verify and activation change nothing.
    let after = notices
        .get_debt_position(pb::GetDebtPositionRequest {
            lookup: Some(pb::get_debt_position_request::Lookup::Id(tari.id.clone())),
            creditor_fiscal_code: String::new(),
        })
        .await?
        .into_inner();
    assert_eq!(after, tari);
    app.stop().await
}

async fn every_refusal_is_a_valid_ko_naming_the_reason(engine: Engine) -> anyhow::Result<()> {
    let app = TestApp::spawn(engine).await?;
    let mut notices = app.notices().await?;
    let fee = notices
        .create_debt_position(requests::school_fee("node-fee"))
        .await?
        .into_inner();
    let mut expired = requests::school_fee("node-expired");
    expired.payment_options[0].installments[0].due_date = "2026-01-10".to_owned();
    expired.payment_options[0].installments[0].expiry_date = "2026-01-31".to_owned();
    let expired = notices.create_debt_position(expired).await?.into_inner();
    notices
        .cancel_debt_position(pb::CancelDebtPositionRequest {
            request_id: "node-fee-cancel".to_owned(),
            id: fee.id.clone(),
            reason: "ritiro".to_owned(),
        })
        .await?;
    let cancelled = &all_notices(&fee)[0].notice_number;
    let expired = &all_notices(&expired)[0].notice_number;
    let caller = Caller::default();
    let unknown = "312999999999999999";
    let unknown = {
        let body: u64 = unknown[..16].parse()?;
        format!("{}{:02}", &unknown[..16], body % 93)
    };
    let wrong = |f: &dyn Fn(&mut Caller)| {
        let mut c = Caller::default();
        f(&mut c);
        c
    };
    let cases = [
        (
            node::verify(&caller, MILANO, &unknown),
            "PAA_PAGAMENTO_SCONOSCIUTO",
        ),
        (
            node::verify(&caller, MILANO, cancelled),
            "PAA_PAGAMENTO_ANNULLATO",
        ),
        (
            node::verify(&caller, MILANO, expired),
            "PAA_PAGAMENTO_SCADUTO",
        ),
        (
            node::get_payment(&caller, true, MILANO, cancelled, "465.00", None),
            "PAA_PAGAMENTO_ANNULLATO",
        ),
        (
            node::verify(
                &wrong(&|c| c.id_pa = "80012345678".into()),
                MILANO,
                cancelled,
            ),
            "PAA_ID_DOMINIO_ERRATO",
        ),
        (
            node::verify(
                &wrong(&|c| c.id_broker_pa = "00000000001".into()),
                MILANO,
                cancelled,
            ),
            "PAA_ID_INTERMEDIARIO_ERRATO",
        ),
        (
            node::verify(
                &wrong(&|c| c.id_station = "01199250158_99".into()),
                MILANO,
                cancelled,
            ),
            "PAA_STAZIONE_INT_ERRATA",
        ),
        (
            node::verify(&caller, CITTA_METROPOLITANA, cancelled),
            "PAA_ID_DOMINIO_ERRATO",
        ),
    ];
    for (request, expected) in cases {
        let action = if request.contains("paGetPaymentV2Request") {
            "paGetPaymentV2"
        } else {
            "paVerifyPaymentNotice"
        };
        let body = call(&app, action, &request).await?;
        assert_eq!(element_text(&body, "outcome"), Some("KO"));
        assert_eq!(fault_code(&body), Some(expected), "{body}");
        assert!(element_text(&body, "id").is_some_and(|id| !id.is_empty()));
    }
    // paDemandPaymentNotice: no spontaneous-payment service is published.
    let demand = format!(
        "<?xml version=\"1.0\"?><soapenv:Envelope xmlns:soapenv=\"http://schemas.xmlsoap.org/soap/envelope/\" \
         xmlns:paf=\"{}\"><soapenv:Body><paf:paDemandPaymentNoticeRequest><idPA>{MILANO}</idPA>\
         <idBrokerPA>{MILANO}</idBrokerPA><idStation>{MILANO}_01</idStation><idServizio>00001</idServizio>\
         <idSoggettoServizio>00001</idSoggettoServizio><datiSpecificiServizioRequest>PHg+PC94Pg==\
         </datiSpecificiServizioRequest></paf:paDemandPaymentNoticeRequest></soapenv:Body></soapenv:Envelope>",
        node::PA_FOR_NODE
    );
    let body = call(&app, "paDemandPaymentNotice", &demand).await?;
    assert_eq!(fault_code(&body), Some("PAA_SEMANTICA"));
    app.stop().await
}

async fn hostile_requests_get_a_proper_fault(engine: Engine) -> anyhow::Result<()> {
    let app = TestApp::spawn(engine).await?;
    let caller = Caller::default();
    let good = node::verify(&caller, MILANO, "312000000001234587");
    let missing = good.replace("<idStation>01199250158_01</idStation>", "");
    let repeated = good.replace(
        "<idPA>01199250158</idPA>",
        "<idPA>01199250158</idPA><idPA>01199250158</idPA>",
    );
    let qualified = good.replace(
        "<idPA>01199250158</idPA>",
        "<paf:idPA>01199250158</paf:idPA>",
    );
    let oversize = good.replace(
        "<idStation>01199250158_01</idStation>",
        &format!("<idStation>{}</idStation>", "x".repeat(36)),
    );
    let wrong_namespace = good.replace(
        node::PA_FOR_NODE,
        "http://pagopa-api.pagopa.gov.it/node/nodeForPsp.xsd",
    );
    let bad_notice = good.replace("312000000001234587", "31200000000123458X");
    let unknown_field = good.replace("</qrCode>", "</qrCode><extra>1</extra>");
    let billion_laughs = format!(
        "<?xml version=\"1.0\"?><!DOCTYPE lolz [<!ENTITY lol \"lol\"><!ENTITY lol2 \"&lol;&lol;&lol;\">]>{}",
        good.trim_start_matches("<?xml version=\"1.0\" encoding=\"UTF-8\"?>")
            .replace("01199250158_01", "&lol2;")
    );
    let xxe = format!(
        "<?xml version=\"1.0\"?><!DOCTYPE x [<!ENTITY e SYSTEM \"file:///etc/passwd\">]>{}",
        good.trim_start_matches("<?xml version=\"1.0\" encoding=\"UTF-8\"?>")
            .replace("01199250158_01", "&e;")
    );
    let mut not_utf8 = good.clone().into_bytes();
    let at = good.find("01199250158_01").unwrap_or(0);
    not_utf8[at] = 0xff;
    let cases: Vec<(Vec<u8>, &str, &str)> = vec![
        (missing.into_bytes(), XML, "PAA_SINTASSI_XSD"),
        (repeated.into_bytes(), XML, "PAA_SINTASSI_XSD"),
        (qualified.into_bytes(), XML, "PAA_SINTASSI_XSD"),
        (oversize.into_bytes(), XML, "PAA_SINTASSI_XSD"),
        (wrong_namespace.into_bytes(), XML, "PAA_SINTASSI_XSD"),
        (bad_notice.into_bytes(), XML, "PAA_SINTASSI_XSD"),
        (unknown_field.into_bytes(), XML, "PAA_SINTASSI_XSD"),
        (billion_laughs.into_bytes(), XML, "PAA_SINTASSI_EXTRAXSD"),
        (xxe.into_bytes(), XML, "PAA_SINTASSI_EXTRAXSD"),
        (not_utf8, XML, "PAA_SINTASSI_EXTRAXSD"),
        (b"this is not xml".to_vec(), XML, "PAA_SINTASSI_EXTRAXSD"),
        (
            good.clone().into_bytes(),
            "application/json",
            "PAA_SINTASSI_EXTRAXSD",
        ),
        (
            good.replace(
                "<qrCode>",
                &format!("<qrCode>{}", "<!-- padding -->".repeat(80_000)),
            )
            .into_bytes(),
            XML,
            "PAA_SINTASSI_EXTRAXSD",
        ),
    ];
    for (request, content_type, expected) in cases {
        let reply = post(
            app.soap_addr,
            Some("paVerifyPaymentNotice"),
            content_type,
            &request,
        )
        .await?;
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert!(reply.content_type.starts_with("text/xml"));
        validate(&reply.body)?;
        assert!(reply.body.contains("paVerifyPaymentNoticeRes"));
        assert_eq!(fault_code(&reply.body), Some(expected), "{}", reply.body);
    }
    // Without a SOAPAction and without a recognisable body, the answer is a SOAP Fault.
    let reply = post(app.soap_addr, None, XML, b"<garbage").await?;
    assert_eq!(reply.status, 500);
    assert!(
        reply.body.contains("<faultcode>soapenv:Client</faultcode>"),
        "{}",
        reply.body
    );
    let reply = node::post_to(app.soap_addr, "/other", None, XML, good.as_bytes()).await?;
    assert_eq!(reply.status, 404);
    assert!(reply.body.contains("soapenv:Fault"));
    // The service is still up.
    let body = call(&app, "paVerifyPaymentNotice", &good).await?;
    assert_eq!(fault_code(&body), Some("PAA_PAGAMENTO_SCONOSCIUTO"));
    app.stop().await
}

/// When the database is gone, the Node hears the one transient fault that makes it retry.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_lost_database_is_a_system_error_the_node_retries() -> anyhow::Result<()> {
    let app = TestApp::spawn(Engine::Postgres).await?;
    let mut notices = app.notices().await?;
    let fee = notices
        .create_debt_position(requests::school_fee("node-gone"))
        .await?
        .into_inner();
    let notice = all_notices(&fee)[0].notice_number.clone();
    let name = app
        .database_url
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_owned();
    let admin = sea_orm::Database::connect(incasso_store::testing::postgres_admin_url()).await?;
    use sea_orm::ConnectionTrait;
    admin
        .execute_unprepared(&format!("DROP DATABASE \"{name}\" WITH (FORCE)"))
        .await?;
    admin.close().await?;
    let body = call(
        &app,
        "paVerifyPaymentNotice",
        &node::verify(&Caller::default(), MILANO, &notice),
    )
    .await?;
    assert_eq!(fault_code(&body), Some("PAA_SYSTEM_ERROR"), "{body}");
    Ok(())
}
