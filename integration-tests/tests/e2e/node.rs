//! The paForNode endpoint as the PagoPA Node meets it: verify and activation over real HTTP,
//! every answer (OK and each fault) validated against the official XSD with xmllint.

use sea_orm::ConnectionTrait;

use incasso_grpc::pb;
use incasso_integration_tests::node_simulator::{
    self as node, Caller, element_text, element_texts, post, validate,
};
use incasso_integration_tests::requests::{self, CITTA_METROPOLITANA, MILANO};
use incasso_integration_tests::{Engine, TestApp};
use incasso_node::message::{Operation, Request, parse_request};
use incasso_node::service::StationConfig;
use incasso_node::xml::Limits;

use crate::on_both_engines;

on_both_engines!(
    verify_and_activation_answer_with_valid_messages,
    every_refusal_is_a_valid_ko_naming_the_reason,
    hostile_requests_get_a_proper_fault,
    the_official_request_samples_parse_and_are_answered,
    soap_action_method_and_path_rules,
    the_fault_id_is_the_creditor_whenever_it_can_be_read,
    awkward_texts_and_an_erased_debtor_still_give_valid_answers,
    a_beneficiary_no_longer_configured_gets_no_empty_company_name,
    a_broken_invariant_is_a_semantic_error_not_a_retry,
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
    // The envelope schema lets an unknown Body child through unchecked: a response in
    // another namespace must still be caught.
    assert!(
        validate(&amount.replace("1.0<", "1.00<").replace(
            "http://pagopa-api.pagopa.gov.it/pa/paForNode.xsd",
            "http://pagopa-api.pagopa.gov.it/node/nodeForPsp.xsd"
        ))
        .is_err()
    );
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

/// The text an XML element stands for, for comparing an answer with what was stored.
fn unescape(text: &str) -> String {
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

/// OK answers stay valid whatever the texts: longer than the XSD allows, with characters that
/// need escaping right at the cut, a multi-byte character at the cut, characters XML 1.0
/// forbids, empty optional texts, a beneficiary without a name.
#[test]
fn ok_answers_with_long_and_awkward_texts_are_valid() {
    use incasso_node::response::{
        PaymentOptionView, PaymentView, TransferView, VerifyView, get_payment_ok, verify_ok,
    };
    // 138 ASCII characters, then a two-byte 'è' and '&' as the 139th and 140th: a cut by bytes,
    // or after escaping, would break the character or the entity.
    let long = format!("{}è&<\"'ü{}", "a".repeat(138), "€".repeat(200));
    let expected_140 = format!("{}è&", "a".repeat(138));
    let controls = "Tassa\u{1} rifiuti\u{FFFF} & co.";
    let verify = verify_ok(&VerifyView {
        option: PaymentOptionView {
            amount_cents: 1,
            due_date: "2026-12-31".to_owned(),
            detail_description: String::new(),
            all_ccp: false,
        },
        payment_description: long.clone(),
        fiscal_code_pa: MILANO.to_owned(),
        company_name: controls.to_owned(),
    });
    validate(&verify).unwrap();
    assert_eq!(
        element_text(&verify, "paymentDescription").map(unescape),
        Some(expected_140.clone())
    );
    assert_eq!(
        element_text(&verify, "companyName")
            .map(unescape)
            .as_deref(),
        Some("Tassa rifiuti & co.")
    );
    assert!(
        !verify.contains("detailDescription"),
        "an empty optional text is left out: {verify}"
    );
    for operation in [Operation::GetPayment, Operation::GetPaymentV2] {
        let transfer = |id: usize, name: Option<&str>| TransferView {
            id_transfer: id,
            amount_cents: 50,
            fiscal_code_pa: CITTA_METROPOLITANA.to_owned(),
            company_name: name.map(str::to_owned),
            iban: "IT66Q0503401633000000098765".to_owned(),
            remittance_information: long.clone(),
            transfer_category: format!("9/0101101IM/{}", "<&>".repeat(60)),
            metadata: vec![("IBANAPPOGGIO".to_owned(), long.clone())],
        };
        let body = get_payment_ok(
            operation,
            &PaymentView {
                creditor_reference_id: "12000000001234587".to_owned(),
                payment_amount_cents: 100,
                due_date: "2026-12-31".to_owned(),
                description: long.clone(),
                company_name: long.clone(),
                debtor_type: "F".to_owned(),
                debtor_code: "RSSMRA80A01F205X".to_owned(),
                debtor_name: format!("{}ò & \"Figli\"", "M".repeat(67)),
                debtor_email: None,
                transfers: vec![transfer(1, Some(&long)), transfer(2, None)],
            },
        );
        validate(&body).unwrap_or_else(|e| panic!("{operation:?}: {e}"));
        assert_eq!(
            element_text(&body, "fullName").map(unescape),
            Some(format!("{}ò &", "M".repeat(67))),
            "cut at 70 characters"
        );
        assert!(!body.contains("<companyName></companyName>") && !body.contains("<companyName/>"));
        let names = element_texts(&body, "companyName").len();
        assert_eq!(
            names,
            if operation == Operation::GetPaymentV2 {
                2
            } else {
                1
            }
        );
    }
}

/// A directory listing of the official request samples, which must be there.
fn request_samples() -> Vec<(String, String)> {
    let dir = node::spec_dir().join("samples");
    let mut samples: Vec<(String, String)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("the PagoPA samples are missing at {}: {e}", dir.display()))
        .filter_map(|entry| {
            let name = entry.ok()?.file_name().into_string().ok()?;
            name.contains(".request.").then_some(name)
        })
        .map(|name| {
            let text = std::fs::read_to_string(dir.join(&name)).unwrap();
            (name, text)
        })
        .collect();
    samples.sort();
    samples
}

fn cents(amount: &str) -> i64 {
    let (euros, cents) = amount.split_once('.').unwrap();
    euros.parse::<i64>().unwrap() * 100 + cents.parse::<i64>().unwrap()
}

/// The official samples under ../shared/pagopa-spec/samples, as PagoPA's own mock creditor
/// and the SANP publish them: each parses into its operation with the sample's identifiers
/// and amounts, and each is answered over HTTP with a message valid against the XSD.
async fn the_official_request_samples_parse_and_are_answered(engine: Engine) -> anyhow::Result<()> {
    // The samples come from creditor, broker and station 77777777777 (whose check digit is
    // not even valid, so it cannot be a configured creditor): incasso is set up as that
    // station, serving that idPA.
    let app = TestApp::spawn_with(engine, |settings| {
        settings.station = StationConfig {
            broker_id: "77777777777".to_owned(),
            station_ids: vec!["77777777777_01".to_owned()],
            creditor_ids: vec!["77777777777".to_owned()],
            ..StationConfig::default()
        };
    })
    .await?;
    let samples = request_samples();
    let operations: Vec<&str> = samples
        .iter()
        .map(|(name, _)| name.split('.').next().unwrap_or_default())
        .collect();
    assert_eq!(
        operations,
        [
            "paGetPayment",
            "paSendRT",
            "paSendRTV2",
            "paVerifyPaymentNotice"
        ],
        "the samples this test knows; a new one needs its expectations here"
    );
    let mut receipts = 0;
    for (name, xml) in &samples {
        let action = name.split('.').next().unwrap_or_default();
        let operation = Operation::ALL
            .into_iter()
            .find(|op| op.name() == action)
            .unwrap();
        let text = |field: &str| element_text(xml, field).unwrap().trim().to_owned();
        // PagoPA's mock puts the verify request's wrapper in the nodeForPsp namespace. The
        // paForNode WSDL and XSD say otherwise and the envelope schema only lets it through
        // because it does not know the element: incasso refuses it as the XSD would, naming
        // the namespace, and parses it once the namespace is the right one.
        let wrong_namespace = "http://pagopa-api.pagopa.gov.it/node/nodeForPsp.xsd";
        let xml = if xml.contains(wrong_namespace) {
            match parse_request(xml.as_bytes(), Limits::default()) {
                Err(incasso_node::message::SyntaxError::Invalid { field, message }) => {
                    assert_eq!(field, operation.request_element());
                    assert!(message.contains(node::PA_FOR_NODE), "{message}");
                }
                other => panic!("{name}: {other:?}"),
            }
            let reply = post(app.soap_addr, Some(action), XML, xml.as_bytes()).await?;
            assert_eq!(reply.status, 200);
            validate(&reply.body)?;
            assert_eq!(fault_code(&reply.body), Some("PAA_SINTASSI_XSD"), "{name}");
            assert_eq!(element_text(&reply.body, "id"), Some("77777777777"));
            xml.replace(wrong_namespace, node::PA_FOR_NODE)
        } else {
            xml.clone()
        };
        let request = parse_request(xml.as_bytes(), Limits::default())
            .unwrap_or_else(|e| panic!("{name}: {e:?}"));
        assert_eq!(request.operation(), operation, "{name}");
        assert_eq!(request.header().id_pa, text("idPA"), "{name}");
        assert_eq!(request.header().id_broker_pa, text("idBrokerPA"), "{name}");
        assert_eq!(request.header().id_station, text("idStation"), "{name}");
        let expected = match &request {
            Request::Verify(verify) => {
                assert_eq!(verify.qr_code.fiscal_code, text("fiscalCode"));
                assert_eq!(verify.qr_code.notice_number, text("noticeNumber"));
                "PAA_ID_DOMINIO_ERRATO"
            }
            Request::GetPayment(get, _) => {
                assert_eq!(get.qr_code.notice_number, text("noticeNumber"));
                assert_eq!(get.amount_cents, Some(cents(&text("amount"))));
                assert_eq!(get.amount_cents, Some(12000));
                "PAA_ID_DOMINIO_ERRATO"
            }
            Request::SendRt(send, _) => {
                let receipt = &send.receipt;
                assert_eq!(receipt.receipt_id, text("receiptId"));
                assert_eq!(receipt.notice_number, text("noticeNumber"));
                assert_eq!(receipt.creditor_reference_id, text("creditorReferenceId"));
                assert_eq!(receipt.payment_amount_cents, cents(&text("paymentAmount")));
                assert_eq!(receipt.fee_cents, Some(cents(&text("fee"))));
                assert_eq!(receipt.id_psp, text("idPSP"));
                assert_eq!(
                    receipt.payment_date_time.as_deref(),
                    Some(text("paymentDateTime").as_str())
                );
                assert_eq!(receipt.debtor.full_name, text("fullName"));
                assert!(receipt.payer.is_some());
                let ids = element_texts(&xml, "idTransfer");
                let amounts = element_texts(&xml, "transferAmount");
                let ibans = element_texts(&xml, "IBAN");
                assert_eq!(receipt.transfers.len(), ids.len());
                for (i, t) in receipt.transfers.iter().enumerate() {
                    assert_eq!(t.id_transfer.to_string(), ids[i].trim());
                    assert_eq!(t.amount_cents, cents(amounts[i].trim()));
                    assert_eq!(t.iban.as_deref(), Some(ibans[i].trim()));
                }
                let total: i64 = receipt.transfers.iter().map(|t| t.amount_cents).sum();
                assert_eq!(total, receipt.payment_amount_cents, "{name}");
                receipts += 1;
                "OK"
            }
            Request::Demand(_) => "PAA_SEMANTICA",
        };
        // Over HTTP, as the Node sends it.
        let reply = post(app.soap_addr, Some(action), XML, xml.as_bytes()).await?;
        assert_eq!(reply.status, 200, "{name}: {}", reply.body);
        validate(&reply.body).map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
        assert!(reply.body.contains(operation.response_element()), "{name}");
        if expected == "OK" {
            assert_eq!(element_text(&reply.body, "outcome"), Some("OK"), "{name}");
        } else {
            assert_eq!(
                fault_code(&reply.body),
                Some(expected),
                "{name}: {}",
                reply.body
            );
            assert_eq!(element_text(&reply.body, "id"), Some("77777777777"));
        }
    }
    assert_eq!(receipts, 2);
    // Both receipts are kept, as notices incasso did not issue, with their transfers.
    let db = app.database().await?;
    let rows = db
        .query_all_raw(sea_orm::Statement::from_string(
            db.get_database_backend(),
            "SELECT r.receipt_id, r.classification, t.id_transfer, t.beneficiary_fiscal_code, \
             t.iban, t.amount_cents FROM receipt r JOIN receipt_transfer t \
             ON t.receipt_row_id = r.id ORDER BY r.receipt_id, t.transfer_index",
        ))
        .await?;
    let rows: Vec<(String, String, i16, String, Option<String>, i64)> = rows
        .iter()
        .map(|r| {
            (
                r.try_get_by_index(0).unwrap(),
                r.try_get_by_index(1).unwrap(),
                r.try_get_by_index(2).unwrap(),
                r.try_get_by_index(3).unwrap(),
                r.try_get_by_index(4).unwrap(),
                r.try_get_by_index(5).unwrap(),
            )
        })
        .collect();
    let unknown = |id: &str, n, cf: &str, iban: &str, cents| {
        (
            id.to_owned(),
            "unknown_notice".to_owned(),
            n,
            cf.to_owned(),
            Some(iban.to_owned()),
            cents,
        )
    };
    assert_eq!(
        rows,
        [
            unknown(
                "c110729d258c4ab1b765fe902aae41d6",
                1,
                "77777777777",
                "IT0000000000000000000000000",
                2000
            ),
            unknown(
                "c110729d258c4ab1b765fe902aae41d6",
                2,
                "77777777778",
                "IT0000000000000000000000001",
                1000
            ),
            unknown(
                "f43cf6263ddb47248222b039f6d1f1f5",
                1,
                "77777777777",
                "IT45R0760103200000000001016",
                1000
            ),
        ]
    );
    db.close().await?;
    app.stop().await
}

async fn soap_action_method_and_path_rules(engine: Engine) -> anyhow::Result<()> {
    let app = TestApp::spawn(engine).await?;
    let mut notices = app.notices().await?;
    let fee = notices
        .create_debt_position(requests::school_fee("node-action"))
        .await?
        .into_inner();
    let notice = all_notices(&fee)[0].notice_number.clone();
    let verify = node::verify(&Caller::default(), MILANO, &notice);
    validate(&verify)?;
    // Without a SOAPAction, or with an empty one, the body says what is asked.
    for action in [None, Some("")] {
        let reply = post(app.soap_addr, action, XML, verify.as_bytes()).await?;
        assert_eq!(reply.status, 200, "{}", reply.body);
        validate(&reply.body)?;
        assert_eq!(
            element_text(&reply.body, "outcome"),
            Some("OK"),
            "{}",
            reply.body
        );
        assert_eq!(element_text(&reply.body, "amount"), Some("465.00"));
    }
    // A SOAPAction that names another operation, or none at all, is refused naming both.
    for action in ["paGetPaymentV2", "verifyPaymentNotice"] {
        let reply = post(app.soap_addr, Some(action), XML, verify.as_bytes()).await?;
        assert_eq!(reply.status, 200);
        validate(&reply.body)?;
        assert!(
            reply.body.contains("paVerifyPaymentNoticeRes"),
            "{}",
            reply.body
        );
        assert_eq!(fault_code(&reply.body), Some("PAA_SINTASSI_EXTRAXSD"));
        assert_eq!(element_text(&reply.body, "id"), Some(MILANO));
        let description = unescape(element_text(&reply.body, "description").unwrap_or_default());
        assert!(
            description.contains(&format!("'{action}'"))
                && description.contains("paVerifyPaymentNoticeReq")
                && description.contains("paVerifyPaymentNotice"),
            "{description}"
        );
    }
    // Another HTTP method: a SOAP Fault, valid against the SOAP envelope schema, never the
    // empty 405 of a bare router.
    for method in ["GET", "PUT", "DELETE"] {
        let reply = node::request(app.soap_addr, method, "/paForNode", &[], b"").await?;
        assert_eq!(reply.status, 405, "{method}");
        assert_eq!(reply.header("allow"), Some("POST"));
        assert!(reply.content_type.starts_with("text/xml"));
        validate(&reply.body)?;
        assert!(reply.body.contains("<faultcode>soapenv:Client</faultcode>"));
        assert!(reply.body.contains(method), "{}", reply.body);
    }
    // Another path, and a body nobody can read without a SOAPAction: SOAP Faults too.
    let reply = node::post_to(app.soap_addr, "/other", None, XML, verify.as_bytes()).await?;
    assert_eq!(reply.status, 404);
    validate(&reply.body)?;
    assert!(reply.body.contains("soapenv:Fault"));
    for garbage in [&b"<garbage"[..], b"", b"<a>not soap</a>"] {
        let reply = post(app.soap_addr, None, XML, garbage).await?;
        assert_eq!(reply.status, 500, "{}", reply.body);
        validate(&reply.body)?;
        assert!(reply.body.contains("<faultcode>soapenv:Client</faultcode>"));
    }
    app.stop().await
}

/// With a broker that is not the creditor, the fault id shows which one the answer names:
/// the creditor whenever the request let incasso read idPA, the broker only otherwise.
async fn the_fault_id_is_the_creditor_whenever_it_can_be_read(
    engine: Engine,
) -> anyhow::Result<()> {
    const BROKER: &str = "15376371009";
    let app = TestApp::spawn_with(engine, |settings| {
        settings.station.broker_id = BROKER.to_owned();
        settings.station.station_ids = vec![format!("{BROKER}_01")];
        settings.soap_body_limit_bytes = 64 * 1024;
    })
    .await?;
    let caller = Caller {
        id_broker_pa: BROKER.to_owned(),
        id_station: format!("{BROKER}_01"),
        ..Caller::default()
    };
    let good = node::verify(&caller, MILANO, "312000000001234587");
    let other_creditor = Caller {
        id_pa: "80012345678".to_owned(),
        ..caller.clone()
    };
    let wrong_broker = Caller {
        id_broker_pa: MILANO.to_owned(),
        ..caller.clone()
    };
    let long_id_pa = good.replace(
        "<idPA>01199250158</idPA>",
        &format!("<idPA>{}</idPA>", "1".repeat(36)),
    );
    let cases: Vec<(String, Vec<u8>, &str, &str)> = vec![
        (
            "business refusal".into(),
            good.clone().into_bytes(),
            XML,
            MILANO,
        ),
        (
            "missing field".into(),
            good.replace(&format!("<idStation>{BROKER}_01</idStation>"), "")
                .into_bytes(),
            XML,
            MILANO,
        ),
        (
            "wrong content type".into(),
            good.clone().into_bytes(),
            "application/json",
            MILANO,
        ),
        (
            "another creditor".into(),
            node::verify(&other_creditor, MILANO, "312000000001234587").into_bytes(),
            XML,
            "80012345678",
        ),
        (
            "wrong broker".into(),
            node::verify(&wrong_broker, MILANO, "312000000001234587").into_bytes(),
            XML,
            MILANO,
        ),
        (
            "idPA too long to be one".into(),
            long_id_pa.into_bytes(),
            XML,
            BROKER,
        ),
        ("not XML".into(), b"<garbage".to_vec(), XML, BROKER),
        (
            "over the size limit".into(),
            good.replace("<qrCode>", &" ".repeat(70 * 1024))
                .into_bytes(),
            XML,
            BROKER,
        ),
    ];
    for (case, body, content_type, id) in cases {
        let reply = post(
            app.soap_addr,
            Some("paVerifyPaymentNotice"),
            content_type,
            &body,
        )
        .await?;
        assert_eq!(reply.status, 200, "{case}: {}", reply.body);
        validate(&reply.body)?;
        assert_eq!(element_text(&reply.body, "outcome"), Some("KO"), "{case}");
        assert_eq!(
            element_text(&reply.body, "id"),
            Some(id),
            "{case}: {}",
            reply.body
        );
    }
    app.stop().await
}

async fn awkward_texts_and_an_erased_debtor_still_give_valid_answers(
    engine: Engine,
) -> anyhow::Result<()> {
    let app = TestApp::spawn(engine).await?;
    let mut notices = app.notices().await?;
    // The longest texts the domain accepts, full of characters that need escaping and
    // multi-byte ones at the end.
    let padded = |prefix: &str, last: char, length: usize| {
        format!(
            "{prefix}{}{last}",
            "x".repeat(length - 1 - prefix.chars().count())
        )
    };
    let description = padded("Retta <nido> & \"mensa\" 'A' ", 'è', 140);
    assert_eq!(description.chars().count(), 140);
    let name = padded("D'Amico & <Figli> ", 'ò', 70);
    assert_eq!(name.chars().count(), 70);
    let mut request = requests::school_fee("node-awkward");
    request.description = description.clone();
    request.debtor.as_mut().unwrap().full_name = name.clone();
    request.payment_options[0].label = format!("Novembre <{}>", "z".repeat(128));
    let fee = notices.create_debt_position(request).await?.into_inner();
    let notice = all_notices(&fee)[0].notice_number.clone();
    let caller = Caller::default();
    let body = call(
        &app,
        "paVerifyPaymentNotice",
        &node::verify(&caller, MILANO, &notice),
    )
    .await?;
    assert_eq!(
        element_text(&body, "paymentDescription").map(unescape),
        Some(description.clone())
    );
    for (action, v2) in [("paGetPayment", false), ("paGetPaymentV2", true)] {
        let body = call(
            &app,
            action,
            &node::get_payment(&caller, v2, MILANO, &notice, "465.00", None),
        )
        .await?;
        assert_eq!(
            element_text(&body, "fullName").map(unescape),
            Some(name.clone())
        );
        assert_eq!(
            element_text(&body, "description").map(unescape),
            Some(description.clone())
        );
    }
    // The debtor's personal data erased (its key retired): the activation names the debtor
    // as PagoPA does for an unknown one, and still validates.
    let db = app.database().await?;
    db.execute_unprepared("UPDATE personal_data SET key_id = 'erased'")
        .await?;
    db.close().await?;
    for (action, v2) in [("paGetPayment", false), ("paGetPaymentV2", true)] {
        let body = call(
            &app,
            action,
            &node::get_payment(&caller, v2, MILANO, &notice, "465.00", None),
        )
        .await?;
        assert_eq!(element_text(&body, "outcome"), Some("OK"));
        assert_eq!(element_text(&body, "entityUniqueIdentifierType"), Some("F"));
        assert_eq!(
            element_text(&body, "entityUniqueIdentifierValue"),
            Some("ANONIMO")
        );
        assert_eq!(element_text(&body, "fullName"), Some("ANONIMO"));
        assert!(!body.contains("RSSMRA80A01F205X") && !body.contains("D&apos;Amico"));
    }
    app.stop().await
}

/// A creditor removed from the configuration after its TEFA transfers were issued: the V2
/// transfer leaves the optional companyName out rather than sending it empty.
async fn a_beneficiary_no_longer_configured_gets_no_empty_company_name(
    engine: Engine,
) -> anyhow::Result<()> {
    let app = TestApp::spawn(engine).await?;
    let tari = app
        .notices()
        .await?
        .create_debt_position(requests::tari("node-orphan"))
        .await?
        .into_inner();
    let notice = all_notices(&tari)[0].notice_number.clone();
    let milan_only = incasso_server::config::Settings::resolve(
        incasso_server::config::FileConfig {
            creditors: Some(vec![
                incasso_server::config::sample_creditors()
                    .into_iter()
                    .next()
                    .unwrap(),
            ]),
            ..Default::default()
        },
        incasso_server::config::Overrides::default(),
    )?;
    assert!(milan_only.registry.get(CITTA_METROPOLITANA).is_none());
    let store = incasso_store::Store::open(
        incasso_store::db::connect(&app.database_url, 4).await?,
        milan_only.registry.clone(),
        milan_only.keys.clone(),
        &milan_only.iuv_floors,
    )
    .await?;
    let service =
        incasso_node::service::NodeService::new(store, milan_only.station, Limits::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(async move {
        axum::serve(listener, incasso_node::http::router(service, 1024 * 1024)).await
    });
    let caller = Caller::default();
    let request = node::get_payment(&caller, true, MILANO, &notice, "300.00", None);
    let reply = post(addr, Some("paGetPaymentV2"), XML, request.as_bytes()).await?;
    validate(&reply.body)?;
    assert_eq!(
        element_text(&reply.body, "outcome"),
        Some("OK"),
        "{}",
        reply.body
    );
    let transfers = element_texts(&reply.body, "transfer");
    assert_eq!(transfers.len(), 2);
    assert!(transfers[0].contains("<companyName>Comune di Milano</companyName>"));
    assert!(
        !transfers[1].contains("companyName"),
        "no name to give: {}",
        transfers[1]
    );
    assert!(!reply.body.contains("<companyName></companyName>"));
    server.abort();
    app.stop().await
}

/// Stored data that breaks an invariant (transfers that no longer add up to the notice) is no
/// reason for the Node to retry: PAA_SEMANTICA, with nothing of the data in the answer.
async fn a_broken_invariant_is_a_semantic_error_not_a_retry(engine: Engine) -> anyhow::Result<()> {
    let app = TestApp::spawn(engine).await?;
    let fee = app
        .notices()
        .await?
        .create_debt_position(requests::school_fee("node-broken"))
        .await?
        .into_inner();
    let notice = all_notices(&fee)[0].notice_number.clone();
    let db = app.database().await?;
    db.execute_unprepared("UPDATE transfer SET amount_cents = amount_cents + 1")
        .await?;
    db.close().await?;
    let body = call(
        &app,
        "paGetPaymentV2",
        &node::get_payment(&Caller::default(), true, MILANO, &notice, "465.00", None),
    )
    .await?;
    assert_eq!(fault_code(&body), Some("PAA_SEMANTICA"), "{body}");
    let description = element_text(&body, "description").unwrap_or_default();
    assert!(
        description.contains("internal check failed") && !description.contains("46501"),
        "{description}"
    );
    assert_eq!(element_text(&body, "id"), Some(MILANO));
    app.stop().await
}
