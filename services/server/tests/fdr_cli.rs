//! `incasso recon fdr-sync` as an operator runs it against the FdR API (a fake that validates
//! like the real one), configured by `INCASSO_FDR_URL` and `INCASSO_FDR_SUBSCRIPTION_KEY`:
//! what each revision added, the labels read back with `recon labels`, a second run fetching
//! nothing, a flow about to leave the API's window warned about, a wrong key named, and no
//! URL refused. On SQLite and on PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Output};

use incasso_integration_tests::fake_fdr::{FakeFdr, FakeFlow, FakePayment, SUBSCRIPTION_KEY};
use incasso_store::testing::{Engine, TestDatabase};
use time::OffsetDateTime;

const MILANO: &str = "01199250158";
const FLOW: &str = "2026-12-02ABI03069-0001";

fn ago(hours: i64) -> OffsetDateTime {
    let now = OffsetDateTime::now_utc();
    (now - time::Duration::hours(hours))
        .replace_nanosecond(0)
        .unwrap()
}

fn incasso(database_url: &str, fdr_url: Option<&str>, key: &str, args: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_incasso"));
    command
        .env_remove("INCASSO_CONFIG")
        .env_remove("INCASSO_DATABASE_URL")
        .env("INCASSO_FDR_SUBSCRIPTION_KEY", key)
        .arg("--database-url")
        .arg(database_url);
    match fdr_url {
        Some(url) => command.env("INCASSO_FDR_URL", url),
        None => command.env_remove("INCASSO_FDR_URL"),
    };
    command.args(args).output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

async fn fdr_sync(engine: Engine) {
    let database = TestDatabase::create(engine).await.unwrap();
    let url = database.url.clone();
    let fake = FakeFdr::start().await.unwrap();
    let mut flow = FakeFlow::new(
        MILANO,
        FLOW,
        "ABI03069",
        1,
        ago(20),
        vec![
            FakePayment::executed("1200000000000001", "IUR-1", 15_000, ago(40)),
            FakePayment::executed("1200000000000002", "IUR-2", 2_550, ago(40)),
        ],
    );
    flow.payments[1].pay_status = "NO_RPT";
    fake.publish(flow);
    // A flow 26 days old that the API serves with a count its pages do not hold: refused,
    // and warned about.
    let mut old = FakeFlow::new(
        MILANO,
        "2026-11-07ABI03069-0002",
        "ABI03069",
        1,
        ago(26 * 24),
        vec![FakePayment::executed(
            "1200000000000003",
            "IUR-3",
            100,
            ago(27 * 24),
        )],
    );
    old.declared_count = Some(2);
    fake.publish(old);
    let base = fake.base_url();

    // The child process blocks; the fake answers on the runtime's other threads.
    let run = |fdr_url: Option<String>, key: &'static str, args: &'static [&'static str]| {
        let url = url.clone();
        tokio::task::spawn_blocking(move || incasso(&url, fdr_url.as_deref(), key, args))
    };
    let first = run(Some(base.clone()), SUBSCRIPTION_KEY, &["recon", "fdr-sync"])
        .await
        .unwrap();
    let (out, err) = (text(&first.stdout), text(&first.stderr));
    // The refused flow fails the run, and is warned about: it is near the window's end.
    assert_eq!(first.status.code(), Some(1), "{out}{err}");
    assert!(
        err.contains(&format!(
            "WARNING {MILANO}: flow 2026-11-07ABI03069-0002 revision 1 of PSP ABI03069 was published 26 days ago and is not imported yet"
        )),
        "{err}"
    );
    assert!(err.contains("totPayments"), "{err}");
    assert!(
        out.contains(&format!(
            "fdr-rest:{MILANO}/{FLOW}/revisions/1/psps/ABI03069: FdR REST for {MILANO}: 1 flow revisions (2 lines) added"
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "{MILANO}: 2 flows listed, 1 revisions imported, 0 flows already held, 1 failed"
        )),
        "{out}"
    );

    let labels = run(None, "", &["recon", "labels", "--creditor", MILANO])
        .await
        .unwrap();
    let out = text(&labels.stdout);
    assert!(labels.status.success(), "{}", text(&labels.stderr));
    assert!(
        out.contains("transfer\t1200000000000002/IUR-2/1\tIUV_NO_RT"),
        "{out}"
    );
    assert!(
        out.contains("transfer\t1200000000000001/IUR-1/1\tIUV_NO_RT"),
        "{out}"
    );

    let again = run(Some(base.clone()), SUBSCRIPTION_KEY, &["recon", "fdr-sync"])
        .await
        .unwrap();
    // The refused flow holds the watermark, so it is listed (and refused) again; the
    // imported one is not fetched again.
    let out = text(&again.stdout);
    assert_eq!(again.status.code(), Some(1), "{out}{}", text(&again.stderr));
    assert!(
        out.contains(&format!(
            "{MILANO}: 2 flows listed, 0 revisions imported, 1 flows already held, 1 failed"
        )),
        "{out}"
    );

    let wrong = run(Some(base.clone()), "not-the-key", &["recon", "fdr-sync"])
        .await
        .unwrap();
    let err = text(&wrong.stderr);
    assert_eq!(wrong.status.code(), Some(1), "{err}");
    assert!(err.contains("refused the subscription key (401)"), "{err}");
    assert!(err.contains("INCASSO_FDR_SUBSCRIPTION_KEY"), "{err}");

    let unconfigured = run(None, SUBSCRIPTION_KEY, &["recon", "fdr-sync"])
        .await
        .unwrap();
    assert!(!unconfigured.status.success());
    assert!(
        text(&unconfigured.stderr).contains("no FdR URL is configured"),
        "{}",
        text(&unconfigured.stderr)
    );
    database.drop_database().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fdr_sync_on_sqlite() {
    fdr_sync(Engine::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fdr_sync_on_postgres() {
    fdr_sync(Engine::Postgres).await;
}
