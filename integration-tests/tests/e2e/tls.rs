//! TLS and access control, as clients see them: the server runs with certificates made by
//! rcgen, each role connects with its own client certificate over a real tonic channel,
//! the PagoPA Node reaches SOAP over TLS, and certificates rotate under live connections.

use std::net::SocketAddr;

use tonic::transport::Channel;
use tonic::{Code, Response, Status};

use incasso_grpc::pb;
use incasso_grpc::pb::citizen_payments_service_client::CitizenPaymentsServiceClient;
use incasso_grpc::pb::ledger_service_client::LedgerServiceClient;
use incasso_grpc::pb::notice_service_client::NoticeServiceClient;
use incasso_grpc::pb::receipt_service_client::ReceiptServiceClient;
use incasso_grpc::pb::reconciliation_service_client::ReconciliationServiceClient;
use incasso_integration_tests::certs::{Pem, TestPki, der_of, handshake, tls_channel};
use incasso_integration_tests::node_simulator::{self, Caller};
use incasso_integration_tests::requests::{self, MILANO};
use incasso_integration_tests::{Engine, TestApp};
use incasso_server::config::FileConfig;

use crate::on_both_engines;

on_both_engines!(
    each_role_reaches_only_its_scope,
    soap_serves_tls_and_asks_the_node_for_a_certificate_or_key_when_configured,
    certificates_rotate_without_dropping_connections,
    plaintext_on_a_public_address_needs_insecure,
    dev_certs_serve_tls_with_a_certificate_per_role,
);

/// The identities of the test, with their `[[clients]]` entries.
const CLIENTS: &str = r#"
[[clients]]
identity = "tributi.comune.milano.it"
role = "backend"
creditors = ["01199250158"]
kinds = ["tari"]
access = "write"

[[clients]]
identity = "polizia-locale.comune.milano.it"
role = "backend"
creditors = ["01199250158"]
kinds = ["traffic_fine"]
access = "write"

[[clients]]
identity = "tributi-lettura.comune.milano.it"
role = "backend"
creditors = ["01199250158"]
kinds = ["tari"]
access = "read"

[[clients]]
identity = "fascicolo.comune.milano.it"
role = "fascicolo"

[[clients]]
identity = "revisori.comune.milano.it"
role = "auditor"

[[clients]]
identity = "ragioneria.comune.milano.it"
role = "finance"

[[clients]]
identity = "operations.comune.milano.it"
role = "operator"
"#;

/// A test CA with the server's files written next to a configuration file that names them
/// by relative paths, as an operator writes it.
struct Setup {
    pki: TestPki,
    server: Pem,
}

impl Setup {
    fn new() -> anyhow::Result<Self> {
        let pki = TestPki::new("incasso test CA")?;
        let server = pki.server()?;
        pki.write_pair("server", &server)?;
        pki.write("clients-ca.pem", &pki.ca_pem())?;
        Ok(Self { pki, server })
    }

    /// Loads `tls` and `rest` from a configuration file in the certificates' folder.
    fn config(&self, tls: &str, rest: &str) -> anyhow::Result<FileConfig> {
        let text = format!("[tls]\ncert = \"server.pem\"\nkey = \"server.key\"\n{tls}\n{rest}");
        let path = self.pki.write("incasso.toml", &text)?;
        Ok(FileConfig::load(&path)?)
    }

    async fn channel(&self, app: &TestApp, identity: Option<&str>) -> anyhow::Result<Channel> {
        let client = identity.map(|i| self.pki.client(i)).transpose()?;
        tls_channel(app.grpc_addr, &self.pki.ca_pem(), client.as_ref()).await
    }
}

/// The status code of a call, `Code::Ok` when it succeeded.
fn code<T>(result: Result<Response<T>, Status>) -> Code {
    match result {
        Ok(_) => Code::Ok,
        Err(status) => status.code(),
    }
}

async fn each_role_reaches_only_its_scope(engine: Engine) -> anyhow::Result<()> {
    let setup = Setup::new()?;
    let file = setup.config("client_ca = \"clients-ca.pem\"", CLIENTS)?;
    let app = TestApp::spawn_configured(engine, file, |_| {}).await?;

    let mut tributi = NoticeServiceClient::new(
        setup
            .channel(&app, Some("tributi.comune.milano.it"))
            .await?,
    );
    let mut polizia = NoticeServiceClient::new(
        setup
            .channel(&app, Some("polizia-locale.comune.milano.it"))
            .await?,
    );
    let tari = tributi
        .create_debt_position(requests::tari("tari-1"))
        .await?
        .into_inner();
    let fine = polizia
        .create_debt_position(requests::fine("fine-1"))
        .await?
        .into_inner();

    // A backend of TARI cannot reach a fine, whichever way it asks; the fine is untouched.
    let by_id = pb::GetDebtPositionRequest {
        lookup: Some(pb::get_debt_position_request::Lookup::Id(fine.id.clone())),
        creditor_fiscal_code: String::new(),
    };
    let denied = tributi.get_debt_position(by_id.clone()).await.unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied, "{denied:?}");
    let fine_notice = fine.payment_options[0].installments[0]
        .notice_number
        .clone();
    let by_notice = pb::GetDebtPositionRequest {
        lookup: Some(pb::get_debt_position_request::Lookup::NoticeNumber(
            fine_notice.clone(),
        )),
        creditor_fiscal_code: MILANO.to_owned(),
    };
    assert_eq!(
        code(tributi.get_debt_position(by_notice).await),
        Code::PermissionDenied
    );
    assert_eq!(
        code(
            tributi
                .get_payable_amount(pb::GetPayableAmountRequest {
                    notice_number: fine_notice.clone(),
                    date: String::new(),
                    creditor_fiscal_code: MILANO.to_owned(),
                })
                .await
        ),
        Code::PermissionDenied
    );
    assert_eq!(
        code(
            tributi
                .cancel_debt_position(pb::CancelDebtPositionRequest {
                    request_id: "cancel-fine".to_owned(),
                    id: fine.id.clone(),
                    reason: "not mine".to_owned(),
                })
                .await
        ),
        Code::PermissionDenied
    );
    assert_eq!(
        code(
            tributi
                .create_debt_position(requests::fine("fine-by-tributi"))
                .await
        ),
        Code::PermissionDenied
    );
    let still = polizia.get_debt_position(by_id).await?.into_inner();
    assert_eq!(still.state, pb::DebtPositionState::Valid as i32);
    // A position that does not exist is still NOT_FOUND.
    let missing = pb::GetDebtPositionRequest {
        lookup: Some(pb::get_debt_position_request::Lookup::Id(
            uuid::Uuid::now_v7().to_string(),
        )),
        creditor_fiscal_code: String::new(),
    };
    assert_eq!(
        code(tributi.get_debt_position(missing).await),
        Code::NotFound
    );
    assert_eq!(
        code(
            polizia
                .get_payable_amount(pb::GetPayableAmountRequest {
                    notice_number: fine_notice,
                    date: String::new(),
                    creditor_fiscal_code: MILANO.to_owned(),
                })
                .await
        ),
        Code::Ok
    );

    // Lists show only the caller's kinds, and never fail because other kinds exist.
    let listed = |response: pb::ListDebtPositionsResponse| -> Vec<String> {
        response.debt_positions.into_iter().map(|p| p.id).collect()
    };
    let everything = tributi
        .list_debt_positions(pb::ListDebtPositionsRequest::default())
        .await?
        .into_inner();
    assert_eq!(listed(everything), vec![tari.id.clone()]);
    let fines = tributi
        .list_debt_positions(pb::ListDebtPositionsRequest {
            kind: pb::DebtKind::TrafficFine as i32,
            ..Default::default()
        })
        .await?
        .into_inner();
    assert!(fines.debt_positions.is_empty());
    let polizia_sees = polizia
        .list_debt_positions(pb::ListDebtPositionsRequest {
            creditor_fiscal_code: MILANO.to_owned(),
            ..Default::default()
        })
        .await?
        .into_inner();
    assert_eq!(listed(polizia_sees), vec![fine.id.clone()]);

    // A bulk load keeps the items in scope and refuses the others one by one.
    let mut results = tributi
        .bulk_create_debt_positions(tokio_stream::iter([
            requests::tari("bulk-tari"),
            requests::fine("bulk-fine"),
        ]))
        .await?
        .into_inner();
    let first = results.message().await?.expect("the first item's result");
    assert!(matches!(
        first.result,
        Some(pb::bulk_create_debt_positions_response::Result::DebtPosition(_))
    ));
    let second = results.message().await?.expect("the second item's result");
    let Some(pb::bulk_create_debt_positions_response::Result::Error(error)) = second.result else {
        panic!("the fine of a TARI backend was created: {second:?}");
    };
    assert_eq!(error.code, Code::PermissionDenied as i32);

    // Read-only access reads and never writes.
    let mut reader = NoticeServiceClient::new(
        setup
            .channel(&app, Some("tributi-lettura.comune.milano.it"))
            .await?,
    );
    let read = reader
        .list_debt_positions(pb::ListDebtPositionsRequest::default())
        .await?
        .into_inner();
    assert_eq!(read.debt_positions.len(), 2, "the two TARI positions");
    assert_eq!(
        code(reader.create_debt_position(requests::tari("tari-ro")).await),
        Code::PermissionDenied
    );
    assert_eq!(
        code(
            reader
                .cancel_debt_position(pb::CancelDebtPositionRequest {
                    request_id: "cancel-ro".to_owned(),
                    id: tari.id.clone(),
                    reason: "read only".to_owned(),
                })
                .await
        ),
        Code::PermissionDenied
    );

    // The auditor reads the ledger and reconciliation, and writes nothing.
    let audit = setup
        .channel(&app, Some("revisori.comune.milano.it"))
        .await?;
    let entries = LedgerServiceClient::new(audit.clone())
        .list_entries(pb::ListEntriesRequest::default())
        .await;
    assert_eq!(code(entries), Code::Ok);
    let summary = pb::GetSummaryRequest {
        from: "2026-01-01".to_owned(),
        to: "2026-12-31".to_owned(),
        creditor_fiscal_code: String::new(),
    };
    assert_eq!(
        code(
            ReconciliationServiceClient::new(audit.clone())
                .get_summary(summary.clone())
                .await
        ),
        Code::Ok
    );
    let import = ReconciliationServiceClient::new(audit.clone())
        .import_document(tokio_stream::iter([pb::ImportDocumentRequest {
            file_name: "flow.xml".to_owned(),
            content: b"<x/>".to_vec(),
        }]))
        .await;
    assert_eq!(code(import), Code::PermissionDenied);
    assert_eq!(
        code(
            NoticeServiceClient::new(audit.clone())
                .create_debt_position(requests::tari("tari-audit"))
                .await
        ),
        Code::PermissionDenied
    );
    assert_eq!(
        code(
            ReceiptServiceClient::new(audit)
                .retry_parked_receipts(pb::RetryParkedReceiptsRequest {
                    ids: Vec::new(),
                    all: true,
                })
                .await
        ),
        Code::PermissionDenied
    );

    // The Fascicolo sees citizens and nothing else.
    let fascicolo = setup
        .channel(&app, Some("fascicolo.comune.milano.it"))
        .await?;
    let debtor = tari.debtor.as_ref().expect("the TARI debtor");
    let notices = CitizenPaymentsServiceClient::new(fascicolo.clone())
        .list_citizen_notices(pb::ListCitizenNoticesRequest {
            fiscal_code: debtor.fiscal_code.clone(),
            ..Default::default()
        })
        .await?
        .into_inner();
    assert!(!notices.notices.is_empty());
    assert_eq!(
        code(
            NoticeServiceClient::new(fascicolo.clone())
                .list_debt_positions(pb::ListDebtPositionsRequest::default())
                .await
        ),
        Code::PermissionDenied
    );
    assert_eq!(
        code(
            LedgerServiceClient::new(fascicolo)
                .list_entries(pb::ListEntriesRequest::default())
                .await
        ),
        Code::PermissionDenied
    );

    // Finance: reconciliation and receipts, not the operators' parked receipts.
    let finance = setup
        .channel(&app, Some("ragioneria.comune.milano.it"))
        .await?;
    assert_eq!(
        code(
            ReceiptServiceClient::new(finance.clone())
                .list_receipts(pb::ListReceiptsRequest::default())
                .await
        ),
        Code::Ok
    );
    assert_eq!(
        code(
            ReconciliationServiceClient::new(finance.clone())
                .get_summary(summary)
                .await
        ),
        Code::Ok
    );
    assert_eq!(
        code(
            ReceiptServiceClient::new(finance.clone())
                .retry_parked_receipts(pb::RetryParkedReceiptsRequest {
                    ids: Vec::new(),
                    all: true,
                })
                .await
        ),
        Code::PermissionDenied
    );
    assert_eq!(
        code(
            NoticeServiceClient::new(finance)
                .get_debt_position(pb::GetDebtPositionRequest {
                    lookup: Some(pb::get_debt_position_request::Lookup::Id(tari.id.clone())),
                    creditor_fiscal_code: String::new(),
                })
                .await
        ),
        Code::PermissionDenied
    );

    // The operator: parked receipts only.
    let operator = setup
        .channel(&app, Some("operations.comune.milano.it"))
        .await?;
    assert_eq!(
        code(
            ReceiptServiceClient::new(operator.clone())
                .list_parked_receipts(pb::ListParkedReceiptsRequest::default())
                .await
        ),
        Code::Ok
    );
    assert_eq!(
        code(
            ReceiptServiceClient::new(operator)
                .list_receipts(pb::ListReceiptsRequest::default())
                .await
        ),
        Code::PermissionDenied
    );

    // No certificate: UNAUTHENTICATED. A certificate of the CA naming no configured
    // client: PERMISSION_DENIED. A certificate of another CA: no connection at all.
    let anonymous = setup.channel(&app, None).await?;
    assert_eq!(
        code(
            NoticeServiceClient::new(anonymous)
                .list_debt_positions(pb::ListDebtPositionsRequest::default())
                .await
        ),
        Code::Unauthenticated
    );
    let stranger = setup.channel(&app, Some("stranger.example.org")).await?;
    assert_eq!(
        code(
            NoticeServiceClient::new(stranger)
                .list_debt_positions(pb::ListDebtPositionsRequest::default())
                .await
        ),
        Code::PermissionDenied
    );
    let other_ca = TestPki::new("another CA")?;
    let forged = other_ca.client("tributi.comune.milano.it")?;
    let refused = match tls_channel(app.grpc_addr, &setup.pki.ca_pem(), Some(&forged)).await {
        Err(_) => true,
        Ok(channel) => NoticeServiceClient::new(channel)
            .list_debt_positions(pb::ListDebtPositionsRequest::default())
            .await
            .is_err(),
    };
    assert!(refused, "a certificate of another CA was accepted");
    // Plaintext to the TLS listener gets no answer.
    let plaintext = Channel::from_shared(format!("http://{}", app.grpc_addr))?
        .connect()
        .await;
    if let Ok(channel) = plaintext {
        assert!(
            NoticeServiceClient::new(channel)
                .list_debt_positions(pb::ListDebtPositionsRequest::default())
                .await
                .is_err()
        );
    }
    app.stop().await
}

/// Asserts the server refused the call (a failed handshake or a closed connection), rather
/// than answering it or leaving it waiting.
fn refused(result: Result<(u16, String), reqwest::Error>, client: &str) {
    match result {
        Ok((status, body)) => panic!("a call with {client} was answered {status}: {body}"),
        Err(error) => assert!(
            !error.is_timeout(),
            "a call with {client} was left waiting: {error:?}"
        ),
    }
}

/// POSTs a paVerifyPaymentNotice to `https://localhost/paForNode` over TLS.
async fn verify_over_tls(
    addr: SocketAddr,
    ca_pem: &str,
    client: Option<&Pem>,
) -> Result<(u16, String), reqwest::Error> {
    verify_with_key(addr, ca_pem, client, None).await
}

/// [`verify_over_tls`], with the gateway's subscription key header when given.
async fn verify_with_key(
    addr: SocketAddr,
    ca_pem: &str,
    client: Option<&Pem>,
    subscription_key: Option<&str>,
) -> Result<(u16, String), reqwest::Error> {
    // Longer than the server's handshake timeout: a refused client must be refused, not
    // left waiting.
    let mut builder = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(60))
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(ca_pem.as_bytes())?)
        .resolve("localhost", addr);
    if let Some(client) = client {
        let pem = format!("{}\n{}", client.cert, client.key);
        builder = builder.identity(reqwest::Identity::from_pem(pem.as_bytes())?);
    }
    let mut request = builder
        .build()?
        .post(format!("https://localhost:{}/paForNode", addr.port()));
    if let Some(key) = subscription_key {
        request = request.header("Ocp-Apim-Subscription-Key", key);
    }
    let response = request
        .header("Content-Type", "text/xml; charset=utf-8")
        .header("SOAPAction", "\"paVerifyPaymentNotice\"")
        .body(node_simulator::verify(
            &Caller::default(),
            MILANO,
            "312000000000000000",
        ))
        .send()
        .await?;
    let status = response.status().as_u16();
    Ok((status, response.text().await?))
}

async fn soap_serves_tls_and_asks_the_node_for_a_certificate_or_key_when_configured(
    engine: Engine,
) -> anyhow::Result<()> {
    let setup = Setup::new()?;
    let ca = setup.pki.ca_pem();
    // Without soap_client_ca: TLS, no client certificate asked.
    let app = TestApp::spawn_configured(engine, setup.config("", "")?, |_| {}).await?;
    let (status, body) = verify_over_tls(app.soap_addr, &ca, None).await?;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("paVerifyPaymentNoticeRes"), "{body}");
    // Plaintext HTTP to the TLS listener is not answered.
    let plain = node_simulator::post(
        app.soap_addr,
        Some("paVerifyPaymentNotice"),
        "text/xml",
        node_simulator::verify(&Caller::default(), MILANO, "312000000000000000").as_bytes(),
    )
    .await;
    match plain {
        Ok(reply) => panic!("plaintext SOAP was answered: {reply:?}"),
        Err(error) => assert!(
            error
                .downcast_ref::<tokio::time::error::Elapsed>()
                .is_none(),
            "plaintext SOAP was left waiting: {error:#}"
        ),
    }
    app.stop().await?;

    // With soap_client_ca: the Node's certificate is required.
    setup.pki.write("node-ca.pem", &ca)?;
    let app = TestApp::spawn_configured(
        engine,
        setup.config("soap_client_ca = \"node-ca.pem\"", "")?,
        |_| {},
    )
    .await?;
    refused(
        verify_over_tls(app.soap_addr, &ca, None).await,
        "no certificate",
    );
    let node = setup.pki.client("nodo.pagopa.it")?;
    let (status, body) = verify_over_tls(app.soap_addr, &ca, Some(&node)).await?;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("paVerifyPaymentNoticeRes"), "{body}");
    let stranger = TestPki::new("another CA")?.client("nodo.pagopa.it")?;
    refused(
        verify_over_tls(app.soap_addr, &ca, Some(&stranger)).await,
        "another CA's certificate",
    );
    app.stop().await?;

    // An allow-list of the gateway's subscription keys: a call without one of them is a
    // 401 SOAP fault.
    let app = TestApp::spawn_configured(engine, setup.config("", "")?, |settings| {
        settings.soap_subscription_keys =
            vec!["gateway-key-1".to_owned(), "gateway-key-2".to_owned()];
    })
    .await?;
    for key in [None, Some("gateway-key-3")] {
        let (status, body) = verify_with_key(app.soap_addr, &ca, None, key).await?;
        assert_eq!(status, 401, "{key:?}: {body}");
        assert!(
            body.contains("Fault") && body.contains("subscription key"),
            "{body}"
        );
    }
    let (status, body) = verify_with_key(app.soap_addr, &ca, None, Some("gateway-key-2")).await?;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("paVerifyPaymentNoticeRes"), "{body}");
    app.stop().await
}

/// Handshakes until the server presents `expected` (it reloads in the background);
/// `false` if it never does within `attempts`.
async fn presents(addr: SocketAddr, ca: &str, expected: &[u8], attempts: u32) -> bool {
    for _ in 0..attempts {
        if let Ok((_, presented)) = handshake(addr, ca, b"h2").await
            && presented == expected
        {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    false
}

async fn certificates_rotate_without_dropping_connections(engine: Engine) -> anyhow::Result<()> {
    let setup = Setup::new()?;
    let ca = setup.pki.ca_pem();
    // Checked once an hour: only SIGHUP explains a reload in this app.
    let on_signal = TestApp::spawn_configured(
        engine,
        setup.config(
            "client_ca = \"clients-ca.pem\"\nreload_interval_seconds = 3600",
            CLIENTS,
        )?,
        |_| {},
    )
    .await?;
    let (_, first) = handshake(on_signal.grpc_addr, &ca, b"h2").await?;
    assert_eq!(first, der_of(&setup.server.cert)?);
    let live = setup
        .channel(&on_signal, Some("tributi.comune.milano.it"))
        .await?;
    let mut live = NoticeServiceClient::new(live);
    live.create_debt_position(requests::tari("before-rotation"))
        .await?;

    let rotated = setup.pki.server()?;
    setup.pki.write_pair("server", &rotated)?;
    let status = std::process::Command::new("kill")
        .args(["-HUP", &std::process::id().to_string()])
        .status()?;
    assert!(status.success());
    assert!(
        presents(on_signal.grpc_addr, &ca, &der_of(&rotated.cert)?, 100).await,
        "SIGHUP did not bring in the new certificate"
    );
    // The connection opened before the rotation still works.
    live.create_debt_position(requests::tari("after-rotation"))
        .await?;
    on_signal.stop().await?;

    // Checked every second, no signal: the changed files alone bring the new certificate.
    let on_change = TestApp::spawn_configured(
        engine,
        setup.config(
            "client_ca = \"clients-ca.pem\"\nreload_interval_seconds = 1",
            CLIENTS,
        )?,
        |_| {},
    )
    .await?;
    let mut live = NoticeServiceClient::new(
        setup
            .channel(&on_change, Some("tributi.comune.milano.it"))
            .await?,
    );
    live.create_debt_position(requests::tari("before-change"))
        .await?;
    let next = setup.pki.server()?;
    setup.pki.write_pair("server", &next)?;
    assert!(
        presents(on_change.grpc_addr, &ca, &der_of(&next.cert)?, 100).await,
        "the changed files were not picked up"
    );
    live.create_debt_position(requests::tari("after-change"))
        .await?;
    on_change.stop().await
}

async fn plaintext_on_a_public_address_needs_insecure(engine: Engine) -> anyhow::Result<()> {
    let public = |settings: &mut incasso_server::Settings| {
        settings.grpc_listen = "0.0.0.0:0".parse().expect("an address");
    };
    let refused = TestApp::spawn_with(engine, public).await;
    let error = refused.err().expect("plaintext on 0.0.0.0 was served");
    let message = format!("{error:#}");
    assert!(
        message.contains("--insecure") && message.contains("0.0.0.0"),
        "{message}"
    );
    let app = TestApp::spawn_with(engine, |settings| {
        public(settings);
        settings.insecure = true;
    })
    .await?;
    let port = app.grpc_addr.port();
    let channel = Channel::from_shared(format!("http://127.0.0.1:{port}"))?
        .connect()
        .await?;
    NoticeServiceClient::new(channel)
        .create_debt_position(requests::tari("insecure"))
        .await?;
    app.stop().await
}

async fn dev_certs_serve_tls_with_a_certificate_per_role(engine: Engine) -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("incasso-dev-certs-{}", uuid::Uuid::new_v4()));
    let config = incasso_server::dev_certs::generate(&dir)?;
    let app = TestApp::spawn_configured(engine, FileConfig::load(&config)?, |_| {}).await?;
    let read = |name: &str| std::fs::read_to_string(dir.join(name));
    let ca = read("ca.pem")?;
    let role = |name: &str| -> anyhow::Result<Pem> {
        Ok(Pem {
            cert: read(&format!("{name}.pem"))?,
            key: read(&format!("{name}.key"))?,
        })
    };
    let tributi = role("tributi")?;
    let mut notices =
        NoticeServiceClient::new(tls_channel(app.grpc_addr, &ca, Some(&tributi)).await?);
    notices
        .create_debt_position(requests::tari("dev-certs"))
        .await?;
    assert_eq!(
        code(
            notices
                .create_debt_position(requests::fine("dev-certs-fine"))
                .await
        ),
        Code::PermissionDenied
    );
    let auditor = role("auditor")?;
    let audit = tls_channel(app.grpc_addr, &ca, Some(&auditor)).await?;
    assert_eq!(
        code(
            LedgerServiceClient::new(audit.clone())
                .list_entries(pb::ListEntriesRequest::default())
                .await
        ),
        Code::Ok
    );
    assert_eq!(
        code(
            NoticeServiceClient::new(audit)
                .list_debt_positions(pb::ListDebtPositionsRequest::default())
                .await
        ),
        Code::PermissionDenied
    );
    // The Node's certificate opens the SOAP side, which asks for one.
    let node = role("node")?;
    refused(
        verify_over_tls(app.soap_addr, &ca, None).await,
        "no certificate",
    );
    let (status, body) = verify_over_tls(app.soap_addr, &ca, Some(&node)).await?;
    assert_eq!(status, 200, "{body}");
    app.stop().await?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
