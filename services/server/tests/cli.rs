//! The `incasso` binary as an operator runs it: defaults, environment variables, migrations,
//! configuration errors and graceful shutdown on SIGTERM.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

fn incasso() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_incasso"));
    command
        .env_remove("INCASSO_DATABASE_URL")
        .env_remove("INCASSO_GRPC_LISTEN")
        .env_remove("INCASSO_CONFIG");
    command
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn wait_serving(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(channel) =
            tonic::transport::Channel::from_shared(format!("http://127.0.0.1:{port}"))
                .unwrap()
                .connect()
                .await
        {
            let status = HealthClient::new(channel)
                .check(HealthCheckRequest {
                    service: String::new(),
                })
                .await;
            if status.is_ok() {
                return;
            }
        }
        assert!(Instant::now() < deadline, "incasso did not start serving");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn serve_with_no_configuration_uses_sqlite_in_the_working_directory_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut child = incasso()
        .current_dir(dir.path())
        .env("INCASSO_GRPC_LISTEN", format!("127.0.0.1:{port}"))
        .env("INCASSO_ADMIN_LISTEN", "127.0.0.1:0")
        .arg("serve")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_serving(port).await;
    assert!(
        dir.path().join("incasso.db").exists(),
        "the default SQLite file"
    );
    let killed = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "incasso did not stop on SIGTERM");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "graceful shutdown exits 0, got {status}");
}

#[test]
fn migrate_applies_migrations_to_the_given_database() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("migrated.db");
    let output = incasso()
        .arg("migrate")
        .arg("--database-url")
        .arg(format!("sqlite://{}?mode=rwc", db.display()))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(db.exists());
    // Applying again finds nothing to do and still succeeds.
    let again = incasso()
        .arg("migrate")
        .env(
            "INCASSO_DATABASE_URL",
            format!("sqlite://{}?mode=rwc", db.display()),
        )
        .output()
        .unwrap();
    assert!(again.status.success());
}

#[test]
fn a_bad_configuration_is_refused_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("incasso.toml");
    std::fs::write(
        &config,
        r#"
[[creditors]]
fiscal_code = "01199250158"
name = "Comune di Milano"
segregation_code = "12"
bank_ibans = ["IT60X0542811101000000123457"]
"#,
    )
    .unwrap();
    let output = incasso()
        .current_dir(dir.path())
        .arg("migrate")
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("creditors[0].bank_ibans"), "{stderr}");
    assert!(
        !dir.path().join("incasso.db").exists(),
        "nothing created on a bad configuration"
    );
}

#[test]
fn an_otlp_protocol_incasso_does_not_speak_is_refused_naming_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    let output = incasso()
        .current_dir(dir.path())
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4317")
        .env("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")
        .arg("migrate")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("OTEL_EXPORTER_OTLP_PROTOCOL"), "{stderr}");
    assert!(stderr.contains("http/json"), "{stderr}");
    assert!(
        !dir.path().join("incasso.db").exists(),
        "nothing created on a bad configuration"
    );
}

fn verify(database_url: &str, extra: &[&str]) -> std::process::Output {
    incasso()
        .env("INCASSO_DATABASE_URL", database_url)
        .args(["ledger", "verify"])
        .args(extra)
        .output()
        .unwrap()
}

#[tokio::test]
async fn ledger_verify_and_checkpoint_for_auditors() {
    use sea_orm::ConnectionTrait;
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("books.db").display()
    );
    let port = free_port();
    let mut child = incasso()
        .env("INCASSO_DATABASE_URL", &url)
        .env("INCASSO_GRPC_LISTEN", format!("127.0.0.1:{port}"))
        .env("INCASSO_SHUTDOWN_GRACE_SECONDS", "1")
        .env("INCASSO_ADMIN_LISTEN", "127.0.0.1:0")
        .arg("serve")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_serving(port).await;
    let channel = tonic::transport::Channel::from_shared(format!("http://127.0.0.1:{port}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut notices = incasso_grpc::pb::notice_service_client::NoticeServiceClient::new(channel);
    for n in 0..2 {
        let request = incasso_integration_tests::requests::school_fee(&format!("cli-{n}"));
        notices.create_debt_position(request).await.unwrap();
    }
    // The client keeps its connection open: the server still stops, after its grace period.
    Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    let stopping = Instant::now();
    assert!(child.wait().unwrap().success());
    assert!(stopping.elapsed() < Duration::from_secs(15));
    drop(notices);

    let checkpoint = incasso()
        .env("INCASSO_DATABASE_URL", &url)
        .args(["ledger", "checkpoint"])
        .output()
        .unwrap();
    assert!(checkpoint.status.success());
    let checkpoint = String::from_utf8(checkpoint.stdout)
        .unwrap()
        .trim()
        .to_owned();
    assert!(checkpoint.starts_with("2:"), "{checkpoint}");
    let ok = verify(&url, &["--checkpoint", &checkpoint]);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stdout)
    );
    assert!(String::from_utf8_lossy(&ok.stdout).contains("2 entries checked"));

    let db = incasso_store::db::connect(&url, 1).await.unwrap();
    incasso_store::testing::disable_ledger_triggers(&db)
        .await
        .unwrap();
    db.execute_unprepared(
        "UPDATE ledger_line SET amount_cents = -amount_cents WHERE entry_sequence = 1",
    )
    .await
    .unwrap();
    db.close().await.unwrap();
    let broken = verify(&url, &[]);
    assert_eq!(broken.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&broken.stdout);
    assert!(stdout.contains("BROKEN at entry 1"), "{stdout}");
    let bad = verify(&url, &["--checkpoint", "two:abc"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--checkpoint"));
}

#[test]
fn outbox_replay_takes_one_id_or_all() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("outbox.db").display()
    );
    let outbox = |args: &[&str]| {
        incasso()
            .env("INCASSO_DATABASE_URL", &url)
            .arg("outbox")
            .args(args)
            .output()
            .unwrap()
    };
    let all = outbox(&["replay", "--all", "--topic", "aca.position"]);
    assert!(
        all.status.success(),
        "{}",
        String::from_utf8_lossy(&all.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&all.stdout).trim(),
        "0 dead letters queued again"
    );
    let neither = outbox(&["replay"]);
    assert!(!neither.status.success(), "an id or --all is required");
    let both = outbox(&["replay", "6f1c1d9e-4a57-4c1e-9d2e-1f0a5b8c7d21", "--all"]);
    assert!(!both.status.success(), "an id and --all exclude each other");
    let topic_alone = outbox(&[
        "replay",
        "6f1c1d9e-4a57-4c1e-9d2e-1f0a5b8c7d21",
        "--topic",
        "x",
    ]);
    assert!(!topic_alone.status.success(), "--topic needs --all");
    let malformed = outbox(&["replay", "not-an-id"]);
    assert!(!malformed.status.success());
    assert!(
        String::from_utf8_lossy(&malformed.stderr).contains("id"),
        "{}",
        String::from_utf8_lossy(&malformed.stderr)
    );
    let unknown = outbox(&["replay", "6f1c1d9e-4a57-4c1e-9d2e-1f0a5b8c7d21"]);
    assert!(!unknown.status.success(), "no such dead letter");
}

fn receipts_cli(database_url: &str, args: &[&str]) -> std::process::Output {
    incasso()
        .env("INCASSO_DATABASE_URL", database_url)
        .arg("receipts")
        .args(args)
        .output()
        .unwrap()
}

fn stdout(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn receipts_commands_check_their_arguments() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("receipts.db").display()
    );
    let unknown = "0190e4d2-7b1c-7000-8000-000000000000";
    let neither = receipts_cli(&url, &["retry"]);
    assert!(!neither.status.success(), "an id or --all is required");
    let both = receipts_cli(&url, &["retry", unknown, "--all"]);
    assert!(!both.status.success(), "ids and --all exclude each other");
    let malformed = receipts_cli(&url, &["retry", "not-an-id"]);
    assert!(!malformed.status.success());
    assert!(
        stderr(&malformed).contains("not a receipt id"),
        "{}",
        stderr(&malformed)
    );
    let missing = receipts_cli(&url, &["retry", unknown]);
    assert!(!missing.status.success(), "no such parked receipt");
    assert!(stderr(&missing).contains(unknown), "{}", stderr(&missing));
    let none = receipts_cli(&url, &["retry", "--all"]);
    assert!(none.status.success(), "{}", stderr(&none));
    assert_eq!(stdout(&none), "", "nothing parked, nothing tried");
    let parked = receipts_cli(&url, &["parked"]);
    assert!(parked.status.success(), "{}", stderr(&parked));
    assert_eq!(stdout(&parked).lines().count(), 1, "the header only");
    let bad_class = receipts_cli(&url, &["list", "--classification", "refund"]);
    assert!(!bad_class.status.success());
    assert!(
        stderr(&bad_class).contains("--classification"),
        "{}",
        stderr(&bad_class)
    );
    let bad_day = receipts_cli(&url, &["list", "--paid-from", "2026-13-01"]);
    assert!(!bad_day.status.success());
    assert!(
        stderr(&bad_day).contains("--paid-from"),
        "{}",
        stderr(&bad_day)
    );
    let bad_format = receipts_cli(&url, &["list", "--format", "xlsx"]);
    assert!(!bad_format.status.success());
}

/// A receipt parked by a real booking failure (its installment's stored state broken), seen
/// and retried by an operator from the command line until it books.
#[tokio::test]
async fn receipts_parked_and_retry_for_operators() {
    use incasso_domain::notice_number::NoticeNumber;
    use incasso_store::receipts::{
        NodeOutcome, ReceiptFacts, ReceiptInput, ReceiptOutcome, ReceiptPrimitive,
        ReceiptTransferInput,
    };
    use sea_orm::ConnectionTrait;

    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("parked.db").display()
    );
    let port = free_port();
    let mut child = incasso()
        .env("INCASSO_DATABASE_URL", &url)
        .env("INCASSO_GRPC_LISTEN", format!("127.0.0.1:{port}"))
        .env("INCASSO_SOAP_LISTEN", format!("127.0.0.1:{}", free_port()))
        .env("INCASSO_SHUTDOWN_GRACE_SECONDS", "1")
        .env("INCASSO_ADMIN_LISTEN", "127.0.0.1:0")
        .arg("serve")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_serving(port).await;
    let channel = tonic::transport::Channel::from_shared(format!("http://127.0.0.1:{port}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut notices = incasso_grpc::pb::notice_service_client::NoticeServiceClient::new(channel);
    let position = notices
        .create_debt_position(incasso_integration_tests::requests::school_fee(
            "cli-parked",
        ))
        .await
        .unwrap()
        .into_inner();
    Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(child.wait().unwrap().success());
    drop(notices);
    let installment = &position.payment_options[0].installments[0];
    let nav = installment.notice_number.clone();

    let settings = incasso_server::Settings::resolve(
        incasso_server::config::FileConfig::default(),
        incasso_server::config::Overrides {
            database_url: Some(url.clone()),
            ..Default::default()
        },
    )
    .unwrap();
    let store = incasso_server::open_store(settings).await.unwrap();
    store
        .db()
        .execute_unprepared(&format!(
            "UPDATE installment SET state = 'bogus' WHERE notice_number = '{nav}'"
        ))
        .await
        .unwrap();
    let facts = ReceiptFacts {
        receiving_creditor: "01199250158".to_owned(),
        primitive: ReceiptPrimitive::SendRtV2,
        creditor_fiscal_code: "01199250158".to_owned(),
        notice_number: nav.clone(),
        notice: Some(NoticeNumber::parse(&nav).unwrap()),
        iuv: installment.iuv.clone(),
        receipt_id: "token-cli".to_owned(),
        outcome: NodeOutcome::Ok,
        psp_id: "BCITITMM".to_owned(),
        channel_id: "BCITITMM_01".to_owned(),
        payment_amount_cents: 46500,
        fee_cents: Some(100),
        payment_date_time: Some("2026-11-20T10:15:00".to_owned()),
        paid_at: None,
        stand_in: false,
        transfers: vec![ReceiptTransferInput {
            id_transfer: 1,
            beneficiary: "01199250158".to_owned(),
            iban: Some("IT02N0306909400000012345678".to_owned()),
            amount_cents: 46500,
            remittance_information: "/RFB/retta".to_owned(),
            transfer_category: "9/0101101IM/".to_owned(),
        }],
    };
    let outcome = store
        .record_receipt(ReceiptInput {
            facts,
            canonical: b"token-cli".to_vec(),
            raw: b"<paSendRTV2Request/>".to_vec(),
        })
        .await
        .unwrap();
    assert_eq!(outcome, ReceiptOutcome::Parked);

    let parked = receipts_cli(&url, &["parked"]);
    assert!(parked.status.success(), "{}", stderr(&parked));
    let lines: Vec<String> = stdout(&parked).lines().map(str::to_owned).collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines[0].starts_with("id\tcreditor_fiscal_code\tiuv\treceipt_id\tnotice_number"));
    let row: Vec<&str> = lines[1].split('\t').collect();
    let id = row[0].to_owned();
    assert_eq!(
        &row[1..6],
        [
            "01199250158",
            installment.iuv.as_str(),
            "token-cli",
            nav.as_str(),
            "46500"
        ]
    );
    assert!(!row[6].is_empty(), "the reason");
    assert_eq!(row[7], "0", "no retry yet");

    let still = receipts_cli(&url, &["retry", &id]);
    assert_eq!(still.status.code(), Some(1), "still parked: exit 1");
    assert!(
        stdout(&still).starts_with(&format!("{id}\tstill parked\t")),
        "{}",
        stdout(&still)
    );

    store
        .db()
        .execute_unprepared(&format!(
            "UPDATE installment SET state = 'unpaid' WHERE notice_number = '{nav}'"
        ))
        .await
        .unwrap();
    let booked = receipts_cli(&url, &["retry", "--all"]);
    assert!(booked.status.success(), "{}", stderr(&booked));
    assert_eq!(stdout(&booked), format!("{id}\tbooked\tsettled\n"));
    let again = receipts_cli(&url, &["retry", &id]);
    assert!(again.status.success());
    assert_eq!(stdout(&again), format!("{id}\tnot parked\n"));
    assert_eq!(stdout(&receipts_cli(&url, &["parked"])).lines().count(), 1);
    assert_eq!(
        stdout(&receipts_cli(&url, &["parked", "--all"]))
            .lines()
            .count(),
        2,
        "--all shows it booked"
    );
    let csv = receipts_cli(
        &url,
        &["list", "--classification", "settled", "--format", "csv"],
    );
    assert!(csv.status.success(), "{}", stderr(&csv));
    let csv = stdout(&csv);
    let rows: Vec<&str> = csv.lines().collect();
    assert_eq!(rows.len(), 2, "{csv}");
    assert!(rows[0].starts_with("id,creditor_fiscal_code,iuv,receipt_id,notice_number,"));
    assert!(
        rows[1].starts_with(&format!(
            "{id},01199250158,{},token-cli,{nav},",
            installment.iuv
        )),
        "{csv}"
    );
    assert!(
        rows[1].contains(",settled,,46500,100,2026-11-20T10:15:00,"),
        "{csv}"
    );
    let refunds = receipts_cli(
        &url,
        &[
            "list",
            "--classification",
            "double_payment",
            "--classification",
            "closed_notice",
            "--format",
            "csv",
        ],
    );
    assert_eq!(stdout(&refunds).lines().count(), 1, "no refund due");
}

#[tokio::test]
async fn io_messages_shows_operators_what_became_of_each_message() {
    use incasso_domain::io_message::{IoPurpose, SendWhen};
    use incasso_store::io_messages::{IoMessageEvent, IoOutcome};

    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("io.db").display());
    let settings = incasso_server::Settings::resolve(
        incasso_server::config::FileConfig::default(),
        incasso_server::config::Overrides {
            database_url: Some(url.clone()),
            ..Default::default()
        },
    )
    .unwrap();
    let store = incasso_server::open_store(settings).await.unwrap();
    let position = uuid::Uuid::now_v7();
    let event = |notice: &str, purpose| IoMessageEvent {
        debt_position_id: position,
        notice_number: notice.to_owned(),
        purpose,
        when: SendWhen::AtIssue,
    };
    let sent = "312000000000000152";
    let off_io = "312000000000000249";
    for (notice, purpose, outcome) in [
        (
            sent,
            IoPurpose::Notice,
            IoOutcome::Sent {
                io_message_id: "01JIOMESSAGE0000000000001".to_owned(),
            },
        ),
        (off_io, IoPurpose::Notice, IoOutcome::NotOnIo),
        (
            sent,
            IoPurpose::Reminder,
            IoOutcome::NotSent("the notice is paid".to_owned()),
        ),
    ] {
        store
            .record_io_outcome(uuid::Uuid::now_v7(), &event(notice, purpose), &outcome)
            .await
            .unwrap();
    }
    store.db().clone().close().await.unwrap();
    let io = |args: &[&str]| {
        incasso()
            .env("INCASSO_DATABASE_URL", &url)
            .args(["io", "messages"])
            .args(args)
            .output()
            .unwrap()
    };
    let all = io(&[]);
    assert!(all.status.success(), "{}", stderr(&all));
    let lines: Vec<String> = stdout(&all).lines().skip(1).map(str::to_owned).collect();
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert!(lines[0].contains(&format!(
        "{sent}\tnotice\tsent\t01JIOMESSAGE0000000000001\t"
    )));
    assert!(lines[1].contains(&format!(
        "{off_io}\tnotice\tnot_on_io\t\tthe citizen is not on App IO"
    )));
    assert!(lines[2].contains(&format!("{sent}\treminder\tnot_sent\t\tthe notice is paid")));
    let off = io(&["--outcome", "not_on_io"]);
    assert_eq!(stdout(&off).lines().skip(1).count(), 1, "{}", stdout(&off));
    let printed = io(&["--notice", "3120 0000 0000 0001 52"]);
    assert_eq!(
        stdout(&printed).lines().skip(1).count(),
        2,
        "{}",
        stdout(&printed)
    );
    let by_position = io(&["--position", &position.to_string()]);
    assert_eq!(stdout(&by_position).lines().skip(1).count(), 3);
    let bad = io(&["--position", "not-a-position"]);
    assert!(!bad.status.success());
    assert!(stderr(&bad).contains("--position"), "{}", stderr(&bad));
    let bad = io(&["--outcome", "delivered"]);
    assert!(!bad.status.success());
}

#[test]
fn fascicolo_resync_needs_a_url_and_checks_its_arguments() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("fascicolo.db").display()
    );
    let resync = |fascicolo: Option<&str>, args: &[&str]| {
        let mut command = incasso();
        command
            .env("INCASSO_DATABASE_URL", &url)
            .env_remove("INCASSO_FASCICOLO_URL");
        if let Some(fascicolo) = fascicolo {
            command.env("INCASSO_FASCICOLO_URL", fascicolo);
        }
        command
            .arg("fascicolo")
            .arg("resync")
            .args(args)
            .output()
            .unwrap()
    };
    let no_url = resync(None, &["--all"]);
    assert!(!no_url.status.success());
    assert!(
        stderr(&no_url).contains("INCASSO_FASCICOLO_URL"),
        "{}",
        stderr(&no_url)
    );

    // Resync only queues: nothing needs to listen at the URL.
    let fascicolo = Some("http://127.0.0.1:9");
    let all = resync(fascicolo, &["--all", "--page", "10"]);
    assert!(all.status.success(), "{}", stderr(&all));
    assert_eq!(stdout(&all).trim(), "done: 0 citizens, 0 events queued");
    let one = resync(fascicolo, &["--citizen", "RSSMRA80A01F205X"]);
    assert!(one.status.success(), "{}", stderr(&one));
    assert_eq!(stdout(&one).trim(), "0 events queued");
    let bad = resync(fascicolo, &["--citizen", "RSSMRA80A01F205Y"]);
    assert!(!bad.status.success());
    assert!(stderr(&bad).contains("--citizen"), "{}", stderr(&bad));
    assert!(
        !stderr(&bad).contains("RSSMRA80A01F205Y"),
        "{}",
        stderr(&bad)
    );
    let neither = resync(fascicolo, &[]);
    assert!(!neither.status.success(), "--citizen or --all is required");
    let after_alone = resync(
        fascicolo,
        &["--citizen", "RSSMRA80A01F205X", "--after", "00"],
    );
    assert!(!after_alone.status.success(), "--after needs --all");
    let bad_token = resync(fascicolo, &["--all", "--after", "not-hex"]);
    assert!(!bad_token.status.success());
    assert!(
        stderr(&bad_token).contains("--after"),
        "{}",
        stderr(&bad_token)
    );
}
