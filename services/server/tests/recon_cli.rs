//! `incasso recon` as the finance office runs it: files and folders of every format, the
//! configuration's treasury accounts, what each file added, a refused file named with its
//! reason, the same files again changing nothing, the labels read back, and the report written
//! as a workbook and as CSV files (bad dates refused naming the option). On SQLite and on
//! PostgreSQL, with the database given by `--database-url` and by `INCASSO_DATABASE_URL`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;

use calamine::{Data, Reader, Xlsx, open_workbook};
use incasso_domain::notice_number::Iuv;
use incasso_domain::reconciliation::{
    FlowId, FlowLine, OutcomeCode, ReportingFlow, TransferIndex, TransferKey,
};
use incasso_reconciliation::CamtVersion;
use incasso_reconciliation::testing::{
    CamtEntry, CamtMessage, OpiMovement, OpiSchema, camt, cbi_statement, fdr_xml, opi,
};
use incasso_store::testing::{Engine, TestDatabase};
use time::macros::{date, datetime};

const MILANO: &str = "01199250158";
const TREASURY: &str = "IT60X0542811101000000123456";
const OTHER: &str = "IT02N0306909400000012345678";
const IUF: &str = "2026-11-23ABI03069-0001";

fn config(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("incasso.toml");
    std::fs::write(
        &path,
        format!(
            r#"
[[creditors]]
fiscal_code = "{MILANO}"
name = "Comune di Milano"
segregation_code = "12"
bank_ibans = ["{OTHER}"]
treasury_ibans = ["{TREASURY}"]
opi_entity_code = "C0MI01"
"#
        ),
    )
    .unwrap();
    path
}

/// The causale of the giornale's one credit, with an accent ISO-8859-1 writes as one byte.
const GIORNALE_CAUSALE: &str = "CANONE LOCAZIONE CITTÀ STUDI";

/// Writes the reporting flow `IUF` (one line of 95.00 paid without a receipt) into `folder`.
fn write_flow(folder: &Path) {
    let line = FlowLine {
        key: TransferKey::new(
            Iuv::parse("99000000000000011").unwrap(),
            "IUR-1",
            TransferIndex::new(1).unwrap(),
        )
        .unwrap(),
        amount_cents: 9_500,
        outcome: OutcomeCode::NoRpt,
        paid_on: date!(2026 - 11 - 23),
    };
    let flow = ReportingFlow {
        flow_id: FlowId::parse(IUF).unwrap(),
        revision: 0,
        created_at: datetime!(2026-11-24 06:00 UTC),
        psp_id: "ABI03069".into(),
        trn: "TRN-1".into(),
        regulation_date: date!(2026 - 11 - 24),
        total_cents: 9_500,
        lines: vec![line],
    };
    std::fs::write(folder.join("a-flow.xml"), fdr_xml(&flow, MILANO)).unwrap();
}

fn evidence(dir: &Path) -> std::path::PathBuf {
    let folder = dir.join("evidence");
    std::fs::create_dir_all(folder.join("bank")).unwrap();
    write_flow(&folder);
    let statement = |iban: &str| {
        camt(
            CamtMessage::Statement,
            CamtVersion::V02,
            iban,
            date!(2026 - 11 - 24),
            date!(2026 - 11 - 24),
            &[CamtEntry::credit(
                "ASR-1",
                9_500,
                date!(2026 - 11 - 24),
                &format!("/PUR/LGPE-RIVERSAMENTO/URI/{IUF}"),
            )],
        )
    };
    std::fs::write(folder.join("bank/b-statement.xml"), statement(TREASURY)).unwrap();
    std::fs::write(folder.join("bank/c-other-account.xml"), statement(OTHER)).unwrap();
    // The treasury's giornale comes in ISO-8859-1, as some still write it.
    let giornale = opi(
        OpiSchema::V1_7_1,
        "C0MI01",
        date!(2026 - 11 - 24),
        &[OpiMovement::credit(
            "CRI-9",
            100,
            date!(2026 - 11 - 24),
            GIORNALE_CAUSALE,
        )],
    )
    .replacen("encoding=\"UTF-8\"", "encoding=\"ISO-8859-1\"", 1);
    let latin_1: Vec<u8> = giornale
        .chars()
        .map(|c| u8::try_from(u32::from(c)).unwrap())
        .collect();
    std::fs::write(folder.join("d-giornale.xml"), latin_1).unwrap();
    folder
}

fn incasso(database_url: &str, by_env: bool, args: &[&str]) -> std::process::Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_incasso"));
    command.env_remove("INCASSO_CONFIG");
    if by_env {
        command.env("INCASSO_DATABASE_URL", database_url);
    } else {
        command
            .env_remove("INCASSO_DATABASE_URL")
            .arg("--database-url")
            .arg(database_url);
    }
    command.args(args).output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

async fn import_and_read_labels(engine: Engine, by_env: bool) {
    let dir = tempfile::tempdir().unwrap();
    let database = TestDatabase::create(engine).await.unwrap();
    let config = config(dir.path());
    let folder = evidence(dir.path());
    let config = config.to_str().unwrap();
    let folder = folder.to_str().unwrap();
    let url = database.url.clone();

    let migrate = incasso(&url, by_env, &["--config", config, "migrate"]);
    assert!(migrate.status.success(), "{}", text(&migrate.stderr));

    let first = incasso(
        &url,
        by_env,
        &["--config", config, "recon", "import", folder],
    );
    let (out, err) = (text(&first.stdout), text(&first.stderr));
    assert_eq!(
        first.status.code(),
        Some(1),
        "one file is refused: {out}\n{err}"
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(
        lines[0].contains(
            "a-flow.xml: FlussoRiversamento for 01199250158: 1 flow revisions (1 lines) added"
        ),
        "{out}"
    );
    // The flow's one line has no receipt: its amount goes to suspense, one entry.
    assert!(lines[0].ends_with("; 1 ledger entries posted"), "{out}");
    assert!(lines[1].contains("b-statement.xml: camt.053.001.02 for 01199250158: 1 credits added, 0 already held, 0 other movements"), "{out}");
    assert!(
        lines[2].contains(
            "d-giornale.xml: OPI giornale di cassa 1.6.1/1.7.1/1.8 for 01199250158: 1 credits added"
        ),
        "{out}"
    );
    assert!(err.contains("c-other-account.xml: refused"), "{err}");
    assert!(
        err.contains(OTHER) && err.contains("treasury_ibans"),
        "{err}"
    );

    let again = incasso(
        &url,
        by_env,
        &["--config", config, "recon", "import", folder],
    );
    let out = text(&again.stdout);
    assert_eq!(
        out.lines()
            .filter(|l| l.ends_with("already imported, nothing changed"))
            .count(),
        3,
        "{out}"
    );

    let labels = incasso(
        &url,
        by_env,
        &[
            "--config",
            config,
            "recon",
            "labels",
            "--creditor",
            MILANO,
            "--label",
            "IUV_NO_RT",
        ],
    );
    let out = text(&labels.stdout);
    assert!(labels.status.success(), "{}", text(&labels.stderr));
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(
        out.starts_with("transfer\t99000000000000011/IUR-1/1\tIUV_NO_RT\tIUV_NO_RT\tCASHED"),
        "{out}"
    );
    let all = incasso(
        &url,
        by_env,
        &["--config", config, "recon", "labels", "--creditor", MILANO],
    );
    let out = text(&all.stdout);
    assert!(out.contains("credit\tASR-1\tRT_IUF_TES"), "{out}");
    assert!(out.contains("credit\tCRI-9\tTES_NO_MATCH"), "{out}");
    assert!(out.contains(&format!("flow\t{IUF}\t-\t\tCASHED")), "{out}");

    let refresh = incasso(
        &url,
        by_env,
        &["--config", config, "recon", "refresh", "--creditor", MILANO],
    );
    assert_eq!(
        text(&refresh.stdout),
        "01199250158: 0 label changes\n",
        "no receipt arrived since: {}",
        text(&refresh.stderr)
    );
    // Without `plain_keys_composed` no flow left keys to write back.
    let write_back = incasso(
        &url,
        by_env,
        &[
            "--config",
            config,
            "recon",
            "write-plain-keys",
            "--creditor",
            MILANO,
            "--older-than-days",
            "0",
        ],
    );
    assert_eq!(
        text(&write_back.stdout),
        "01199250158: 0 plain keys written back from 0 flow revisions\n",
        "{}",
        text(&write_back.stderr)
    );
    let history = incasso(
        &url,
        by_env,
        &[
            "--config",
            config,
            "recon",
            "history",
            "--creditor",
            MILANO,
            "--credit",
            "ASR-1",
        ],
    );
    let out = text(&history.stdout);
    assert!(history.status.success(), "{}", text(&history.stderr));
    let changes: Vec<Vec<&str>> = out.lines().map(|l| l.split('\t').collect()).collect();
    assert_eq!(changes.len(), 1, "{out}");
    assert_eq!(
        &changes[0][1..5],
        ["-", "RT_IUF_TES", "RT_IUF_TES", "CASHED"],
        "{out}"
    );
    assert!(
        changes[0][5].ends_with("b-statement.xml (camt.053.001.02)"),
        "{out}"
    );
    // The key: reported without a receipt while the flow was not due, then its flow cashed.
    let key_history = incasso(
        &url,
        by_env,
        &[
            "--config",
            config,
            "recon",
            "history",
            "--creditor",
            MILANO,
            "--transfer",
            "99000000000000011/IUR-1/1",
        ],
    );
    let out = text(&key_history.stdout);
    let mut rows: Vec<Vec<&str>> = out.lines().map(|l| l.split('\t').collect()).collect();
    // Last, the key's own part of its flow's `reported` entry: the line with no receipt is
    // in transit against suspense.
    assert_eq!(
        rows.pop().unwrap_or_default(),
        [
            "posted",
            &format!("flow {IUF} revision 1"),
            "in_transit:01199250158=9500, suspense:01199250158=-9500"
        ],
        "{out}"
    );
    let states: Vec<(&str, &str)> = rows.iter().map(|r| (r[2], r[4])).collect();
    assert_eq!(
        states,
        [("IUV_NO_RT", "PENDING"), ("IUV_NO_RT", "CASHED")],
        "{out}"
    );
    assert!(
        rows[0][5].ends_with("a-flow.xml (FlussoRiversamento)"),
        "{out}"
    );
    assert_eq!(
        rows[1][6], "credit ASR-1, treasury evidence through 2026-11-24",
        "{out}"
    );
    assert_eq!(rows[0][6], format!("flow {IUF} revision 1"), "{out}");
    let bad_key = incasso(
        &url,
        by_env,
        &[
            "--config",
            config,
            "recon",
            "history",
            "--creditor",
            MILANO,
            "--transfer",
            "X",
        ],
    );
    assert!(!bad_key.status.success());
    assert!(
        text(&bad_key.stderr).contains("--transfer: 'X'"),
        "{}",
        text(&bad_key.stderr)
    );

    let bad = incasso(
        &url,
        by_env,
        &[
            "--config",
            config,
            "recon",
            "labels",
            "--creditor",
            MILANO,
            "--label",
            "NOPE",
        ],
    );
    assert!(!bad.status.success());
    assert!(text(&bad.stderr).contains("--label: 'NOPE'"));
    report(&url, by_env, config, dir.path());
    database.drop_database().await.unwrap();
}

/// `recon report` over the evidence imported above: the line paid on the 23rd without a
/// receipt, the flow regulated and both credits booked on the 24th.
fn report(url: &str, by_env: bool, config: &str, dir: &Path) {
    let out = dir.join("report.xlsx");
    let args = |format: &str, out: &Path| {
        [
            "--config",
            config,
            "recon",
            "report",
            "--creditor",
            MILANO,
            "--from",
            "2026-11-23",
            "--to",
            "2026-11-24",
            "--format",
            format,
            "--out",
        ]
        .into_iter()
        .map(str::to_owned)
        .chain([out.to_str().unwrap().to_owned()])
        .collect::<Vec<String>>()
    };
    let argv = args("xlsx", &out);
    let written = incasso(
        url,
        by_env,
        &argv.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    let stdout = text(&written.stdout);
    assert!(written.status.success(), "{}", text(&written.stderr));
    assert!(
        stdout.starts_with(&format!("{}: written", out.display())),
        "{stdout}"
    );
    assert!(stdout.contains("Tesoreria: 2 rows"), "{stdout}");
    let mut book: Xlsx<_> = open_workbook(&out).unwrap();
    let summary = book.worksheet_range("Riepilogo").unwrap();
    let row = summary
        .rows()
        .find(|r| r[0] == Data::String("IUV_NO_RT".into()))
        .unwrap();
    assert_eq!((&row[2], &row[3]), (&Data::Float(1.0), &Data::Float(95.0)));
    let credits = book.worksheet_range("Tesoreria").unwrap();
    let amounts: Vec<(String, Data)> = credits
        .rows()
        .skip(1)
        .map(|r| (r[1].to_string(), r[4].clone()))
        .collect();
    assert_eq!(
        amounts,
        [
            ("ASR-1".to_owned(), Data::Float(95.0)),
            ("CRI-9".to_owned(), Data::Float(1.0))
        ]
    );
    let causali: Vec<String> = credits.rows().skip(1).map(|r| r[5].to_string()).collect();
    assert_eq!(causali[1], GIORNALE_CAUSALE, "read in ISO-8859-1");

    let folder = dir.join("csv");
    let argv = args("csv", &folder);
    let written = incasso(
        url,
        by_env,
        &argv.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    assert!(written.status.success(), "{}", text(&written.stderr));
    let stdout = text(&written.stdout);
    assert_eq!(stdout.lines().count(), 6, "{stdout}");
    assert!(
        stdout.contains(&format!(
            "{}: 2 rows",
            folder.join("tesoreria.csv").display()
        )),
        "{stdout}"
    );
    let flows = std::fs::read_to_string(folder.join("flussi.csv")).unwrap();
    let line = flows.lines().nth(1).unwrap();
    assert!(
        line.starts_with(&format!(
            "{MILANO};{IUF};1;ABI03069;2026-11-24;TRN-1;95,00;1;CASHED;ASR-1"
        )),
        "{flows}"
    );

    let mut refused = args("xlsx", &dir.join("never.xlsx"));
    refused[7] = "2026-11-31".to_owned();
    let bad = incasso(
        url,
        by_env,
        &refused.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    assert!(!bad.status.success());
    assert!(
        text(&bad.stderr).contains("--from: '2026-11-31' is not a date"),
        "{}",
        text(&bad.stderr)
    );
    let mut reversed = args("xlsx", &dir.join("never.xlsx"));
    reversed[9] = "2026-11-01".to_owned();
    let bad = incasso(
        url,
        by_env,
        &reversed.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    assert!(!bad.status.success());
    assert!(
        text(&bad.stderr).contains("--to: 2026-11-01 is before --from"),
        "{}",
        text(&bad.stderr)
    );
    assert!(!dir.join("never.xlsx").exists(), "nothing written");
}

#[tokio::test]
async fn recon_import_on_sqlite_by_flag() {
    import_and_read_labels(Engine::Sqlite, false).await;
}

#[tokio::test]
async fn recon_import_on_postgres_by_environment() {
    import_and_read_labels(Engine::Postgres, true).await;
}

/// A CBI statement from the treasury bank is imported like a camt one: its credit is
/// identified by the bank's reference CBI writes on the transaction, and it cashes the flow.
async fn a_cbi_statement_cashes_its_flow(engine: Engine) {
    let dir = tempfile::tempdir().unwrap();
    let database = TestDatabase::create(engine).await.unwrap();
    let config = config(dir.path());
    let config = config.to_str().unwrap();
    let folder = dir.path().join("evidence");
    std::fs::create_dir_all(&folder).unwrap();
    write_flow(&folder);
    let mut credit = CamtEntry::credit(
        "002300059736330",
        9_500,
        date!(2026 - 11 - 24),
        &format!("/PUR/LGPE-RIVERSAMENTO/URI/{IUF}"),
    );
    credit.trn = Some("0306927563392306481710017100IT".into());
    let mut fee = CamtEntry::credit("002300059736331", 150, date!(2026 - 11 - 24), "SPESE");
    fee.credit = false;
    std::fs::write(
        folder.join("b-cbi.xml"),
        cbi_statement(date!(2026 - 11 - 24), &[(TREASURY, &[credit, fee][..])]),
    )
    .unwrap();
    let url = database.url.clone();
    let folder = folder.to_str().unwrap();
    let migrate = incasso(&url, false, &["--config", config, "migrate"]);
    assert!(migrate.status.success(), "{}", text(&migrate.stderr));

    let import = incasso(
        &url,
        false,
        &["--config", config, "recon", "import", folder],
    );
    let out = text(&import.stdout);
    assert!(import.status.success(), "{out}\n{}", text(&import.stderr));
    assert!(
        out.contains(
            "b-cbi.xml: CBI statement (camt.053.001.02) for 01199250158: 1 credits added, 0 already held, 1 other movements"
        ),
        "{out}"
    );
    let labels = incasso(
        &url,
        false,
        &["--config", config, "recon", "labels", "--creditor", MILANO],
    );
    let out = text(&labels.stdout);
    assert!(out.contains("credit\t002300059736330\tRT_IUF_TES"), "{out}");
    assert!(out.contains(&format!("flow\t{IUF}\t-\t\tCASHED")), "{out}");
    let again = incasso(
        &url,
        false,
        &["--config", config, "recon", "import", folder],
    );
    assert_eq!(
        text(&again.stdout)
            .lines()
            .filter(|l| l.ends_with("already imported, nothing changed"))
            .count(),
        2,
        "{}",
        text(&again.stdout)
    );
    database.drop_database().await.unwrap();
}

#[tokio::test]
async fn a_cbi_statement_is_imported_on_sqlite() {
    a_cbi_statement_cashes_its_flow(Engine::Sqlite).await;
}

#[tokio::test]
async fn a_cbi_statement_is_imported_on_postgres() {
    a_cbi_statement_cashes_its_flow(Engine::Postgres).await;
}

/// A flow whose declared total is not what its lines add up to is imported as declared, a
/// giornale's reversal (STORNATO) is not applied, and the finance office reads why it should
/// look at each on stderr, while the run succeeds.
async fn a_flow_not_adding_up_and_a_reversal_are_warned_of(engine: Engine) {
    let dir = tempfile::tempdir().unwrap();
    let database = TestDatabase::create(engine).await.unwrap();
    let config = config(dir.path());
    let config = config.to_str().unwrap();
    let folder = dir.path().join("evidence");
    std::fs::create_dir_all(&folder).unwrap();
    write_flow(&folder);
    let flow = folder.join("a-flow.xml");
    let written = std::fs::read_to_string(&flow).unwrap();
    let declaring = written.replace(
        "<importoTotalePagamenti>95.00</importoTotalePagamenti>",
        "<importoTotalePagamenti>94.99</importoTotalePagamenti>",
    );
    assert_ne!(declaring, written, "the total is written as 95.00");
    std::fs::write(&flow, declaring).unwrap();
    let mut reversed = OpiMovement::credit("CRI-8", 100, date!(2026 - 11 - 25), "STORNO");
    reversed.operation = "STORNATO";
    let giornale = folder.join("b-giornale.xml");
    std::fs::write(
        &giornale,
        opi(
            OpiSchema::V1_8,
            "C0MI01",
            date!(2026 - 11 - 25),
            &[
                OpiMovement::credit("CRI-7", 100, date!(2026 - 11 - 24), "CANONE"),
                reversed,
            ],
        ),
    )
    .unwrap();
    let url = database.url.clone();
    let migrate = incasso(&url, false, &["--config", config, "migrate"]);
    assert!(migrate.status.success(), "{}", text(&migrate.stderr));

    let import = incasso(
        &url,
        false,
        &[
            "--config",
            config,
            "recon",
            "import",
            folder.to_str().unwrap(),
        ],
    );
    let (out, err) = (text(&import.stdout), text(&import.stderr));
    assert!(import.status.success(), "{out}\n{err}");
    assert!(out.contains("1 flow revisions (1 lines) added"), "{out}");
    let warning = format!(
        "WARNING {}: flow {IUF} revision 1 declares a total of 9499 cents, its 1 lines add up \
         to 9500 cents (-1 cents)",
        flow.display()
    );
    assert!(err.contains(&warning), "{err}");
    let reversal = format!(
        "WARNING {}: reversal CRI-8 of 100 cents booked on 2026-11-25: not applied",
        giornale.display()
    );
    assert!(err.contains(&reversal), "{err}");
    assert!(
        out.contains("b-giornale.xml: OPI giornale di cassa 1.6.1/1.7.1/1.8 for 01199250158: 1 credits added, 0 already held, 1 other movements"),
        "{out}"
    );
    // The day's report lists the reversal, and counts it in the Riepilogo.
    let report = dir.path().join("report");
    let written = incasso(
        &url,
        false,
        &[
            "--config",
            config,
            "recon",
            "report",
            "--from",
            "2026-11-25",
            "--to",
            "2026-11-25",
            "--format",
            "csv",
            "--out",
            report.to_str().unwrap(),
        ],
    );
    assert!(written.status.success(), "{}", text(&written.stderr));
    let storni = std::fs::read_to_string(report.join("storni.csv")).unwrap();
    let rows: Vec<&str> = storni.lines().collect();
    assert_eq!(
        rows,
        [
            "Ente;Riferimento storno;Bolletta stornata;Data contabile;Importo;Conto;File",
            &format!(
                "01199250158;CRI-8;;2026-11-25;1,00;OPI:C0MI01;{}",
                giornale.display()
            ),
        ]
    );
    let riepilogo = std::fs::read_to_string(report.join("riepilogo.csv")).unwrap();
    assert!(
        riepilogo
            .lines()
            .any(|l| l.starts_with("STORNI;") && l.ends_with(";1;1,00")),
        "{riepilogo}"
    );
    // Imported again: nothing new, nothing to warn of again.
    let again = incasso(
        &url,
        false,
        &[
            "--config",
            config,
            "recon",
            "import",
            folder.to_str().unwrap(),
        ],
    );
    assert!(again.status.success());
    assert!(
        !text(&again.stderr).contains("WARNING"),
        "{}",
        text(&again.stderr)
    );
    database.drop_database().await.unwrap();
}

#[tokio::test]
async fn a_flow_not_adding_up_and_a_reversal_are_warned_of_on_sqlite() {
    a_flow_not_adding_up_and_a_reversal_are_warned_of(Engine::Sqlite).await;
}

#[tokio::test]
async fn a_flow_not_adding_up_and_a_reversal_are_warned_of_on_postgres() {
    a_flow_not_adding_up_and_a_reversal_are_warned_of(Engine::Postgres).await;
}
