//! `incasso recon recover` as an operator runs it against the biz-events API (a fake that
//! validates like the real one), configured by `INCASSO_BIZ_EVENTS_URL` and
//! `INCASSO_BIZ_EVENTS_SUBSCRIPTION_KEY`: a flow imported with `recon import` reports three
//! payments without receipt; the run prints the receipt it recovered, the one PagoPA does not
//! have and the code-9 line it never asks for; `recon labels` shows the recovered key
//! relabelled; a second run asks for nothing; no URL is refused. On SQLite and PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Output};

use incasso_domain::notice_number::Iuv;
use incasso_domain::reconciliation::{
    FlowId, FlowLine, OutcomeCode, ReportingFlow, TransferIndex, TransferKey,
};
use incasso_integration_tests::fake_biz_events::{FakeBizEvents, FakeReceipt, SUBSCRIPTION_KEY};
use incasso_integration_tests::node_simulator::MILANO_BANK;
use incasso_reconciliation::testing::fdr_xml;
use incasso_store::testing::{Engine, TestDatabase};
use time::macros::{date, datetime};

const MILANO: &str = "01199250158";
const RECOVERED_IUV: &str = "12999999999999934";
const UNKNOWN_IUV: &str = "12999999999999942";
const NO_RPT_IUV: &str = "12999999999999950";

fn line(iuv: &str, iur: &str, cents: i64, outcome: OutcomeCode) -> FlowLine {
    FlowLine {
        key: TransferKey::new(
            Iuv::parse(iuv).unwrap(),
            iur,
            TransferIndex::new(1).unwrap(),
        )
        .unwrap(),
        amount_cents: cents,
        outcome,
        paid_on: date!(2026 - 11 - 23),
    }
}

fn incasso(database_url: &str, biz_url: Option<&str>, args: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_incasso"));
    command
        .env_remove("INCASSO_CONFIG")
        .env_remove("INCASSO_DATABASE_URL")
        .env("INCASSO_BIZ_EVENTS_SUBSCRIPTION_KEY", SUBSCRIPTION_KEY)
        .arg("--database-url")
        .arg(database_url);
    match biz_url {
        Some(url) => command.env("INCASSO_BIZ_EVENTS_URL", url),
        None => command.env_remove("INCASSO_BIZ_EVENTS_URL"),
    };
    command.args(args).output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

async fn recover(engine: Engine) {
    let database = TestDatabase::create(engine).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let lines = vec![
        line(RECOVERED_IUV, "IUR-1", 5_000, OutcomeCode::Executed),
        line(UNKNOWN_IUV, "IUR-2", 2_000, OutcomeCode::Executed),
        line(NO_RPT_IUV, "IUR-3", 1_000, OutcomeCode::NoRpt),
    ];
    let flow = ReportingFlow {
        flow_id: FlowId::parse("2026-11-24BCITITMM-S000000301").unwrap(),
        revision: 0,
        created_at: datetime!(2026-11-24 06:00 UTC),
        psp_id: "BCITITMM".to_owned(),
        trn: "TRN-301".to_owned(),
        regulation_date: date!(2026 - 11 - 24),
        total_cents: lines.iter().map(|l| l.amount_cents).sum(),
        lines,
    };
    let path = dir.path().join("flow.xml");
    std::fs::write(&path, fdr_xml(&flow, MILANO)).unwrap();
    let fake = FakeBizEvents::start().await.unwrap();
    fake.hold(FakeReceipt::paid(
        MILANO,
        &format!("3{RECOVERED_IUV}"),
        "IUR-1",
        "BCITITMM",
        5_000,
        MILANO_BANK,
    ));
    let base = fake.base_url();
    // The child process blocks; the fake answers on the runtime's other threads.
    let run = |biz_url: Option<String>, args: Vec<String>| {
        let url = database.url.clone();
        tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            incasso(&url, biz_url.as_deref(), &args)
        })
    };
    let args = |a: &[&str]| a.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();

    let imported = run(None, args(&["recon", "import", path.to_str().unwrap()]))
        .await
        .unwrap();
    assert!(imported.status.success(), "{}", text(&imported.stderr));

    let first = run(Some(base.clone()), args(&["recon", "recover"]))
        .await
        .unwrap();
    let (out, err) = (text(&first.stdout), text(&first.stderr));
    assert!(first.status.success(), "{out}{err}");
    assert!(
        out.contains(&format!(
            "recovered\t{MILANO}\t{RECOVERED_IUV}\tIUR-1\treceipt of notice 3{RECOVERED_IUV} booked from biz-events (unknown_notice)"
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "not-found\t{MILANO}\t{UNKNOWN_IUV}\tIUR-2\tnot found at PagoPA (404)"
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!("no-rpt\t{MILANO}\t{NO_RPT_IUV}\tIUR-3\t")),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "{MILANO}: 3 missing receipts, 1 recovered, 1 not found, 0 failed, 0 waiting, 1 paid without RPT, 0 left for the next pass; 1 label changes"
        )),
        "{out}"
    );
    assert_eq!(fake.calls().len(), 2);

    let labels = run(None, args(&["recon", "labels", "--creditor", MILANO]))
        .await
        .unwrap();
    let out = text(&labels.stdout);
    assert!(
        out.contains(&format!("transfer\t{RECOVERED_IUV}/IUR-1/1\tRT_IUF")),
        "{out}"
    );
    assert!(
        out.contains(&format!("transfer\t{UNKNOWN_IUV}/IUR-2/1\tIUV_NO_RT")),
        "{out}"
    );

    let again = run(
        Some(base.clone()),
        args(&["recon", "recover", "--creditor", MILANO]),
    )
    .await
    .unwrap();
    let out = text(&again.stdout);
    assert!(again.status.success(), "{out}{}", text(&again.stderr));
    assert!(
        out.contains(&format!(
            "waiting\t{MILANO}\t{UNKNOWN_IUV}\tIUR-2\tnot found at PagoPA (404)"
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "{MILANO}: 2 missing receipts, 0 recovered, 0 not found, 0 failed, 1 waiting, 1 paid without RPT, 0 left for the next pass; 0 label changes"
        )),
        "{out}"
    );
    assert_eq!(fake.calls().len(), 2, "nothing asked again");

    let unconfigured = run(None, args(&["recon", "recover"])).await.unwrap();
    assert!(!unconfigured.status.success());
    assert!(
        text(&unconfigured.stderr).contains("INCASSO_BIZ_EVENTS_URL"),
        "{}",
        text(&unconfigured.stderr)
    );
    let stranger = run(
        Some(base.clone()),
        args(&["recon", "recover", "--creditor", "80016350821"]),
    )
    .await
    .unwrap();
    assert!(!stranger.status.success());
    assert!(
        text(&stranger.stderr).contains("--creditor"),
        "{}",
        text(&stranger.stderr)
    );
    drop(dir);
    database.drop_database().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recover_on_sqlite() {
    recover(Engine::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recover_on_postgres() {
    recover(Engine::Postgres).await;
}
