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
        let request = incasso_grpc::pb::CreateDebtPositionRequest {
            request_id: format!("cli-{n}"),
            creditor_fiscal_code: "01199250158".to_owned(),
            kind: incasso_grpc::pb::DebtKind::SchoolFee as i32,
            debtor: Some(incasso_grpc::pb::Debtor {
                r#type: incasso_grpc::pb::EntityType::F as i32,
                fiscal_code: "RSSMRA80A01F205X".to_owned(),
                full_name: "Mario Rossi".to_owned(),
                email: String::new(),
            }),
            description: "Retta nido".to_owned(),
            details: Some(
                incasso_grpc::pb::create_debt_position_request::Details::SchoolFee(
                    incasso_grpc::pb::SchoolFeeDetails {
                        pupil_ref: "ALU1".to_owned(),
                        service: incasso_grpc::pb::SchoolService::Nido as i32,
                        school_year: "2026/2027".to_owned(),
                        month: String::new(),
                    },
                ),
            ),
            payment_options: vec![incasso_grpc::pb::PaymentOption {
                label: String::new(),
                installments: vec![incasso_grpc::pb::Installment {
                    amount_cents: 46500,
                    due_date: "2026-12-15".to_owned(),
                    ..Default::default()
                }],
            }],
        };
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
