//! `incasso recon`: importing reconciliation evidence (reporting flows, camt statements, OPI
//! giornali) from files and folders or, for reporting flows, from the FdR REST API
//! (`fdr-sync`), reading the labels and their history, and writing the finance office's
//! reports (`report`, built by [`incasso_server::report`]).

use std::path::{Path, PathBuf};

use clap::{Subcommand, ValueEnum};
use incasso_domain::notice_number::Iuv;
use incasso_domain::reconciliation::{
    Assessment, CreditId, EvidenceRef, FlowId, Label, Subject, TransferIndex, TransferKey,
};
use incasso_fdr::{CreditorPoll, FdrConfig, FdrPoller};
use incasso_recovery::{CreditorPass, NotAsked, Recoverer, Recovery, RecoveryConfig};
use incasso_server::report::csv::{CsvReport, CsvStyle};
use incasso_server::report::xlsx::XlsxReport;
use incasso_server::report::{ReportCounts, ReportRange, write_report};
use incasso_store::Store;
use incasso_store::reconciliation::{ImportOutcome, TreasuryAccounts};

#[derive(Debug, Subcommand)]
pub(crate) enum ReconCommand {
    /// Imports FlussoRiversamento, camt.053/054 and OPI giornale di cassa files (folders are
    /// read whole, in name order); prints what each file added. Exits 1 if any was refused.
    Import {
        /// Files or folders.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Prints the current label of every subject of a creditor (tab-separated: kind, key,
    /// label, every condition, treasury state, suggestions), after labelling the receipts
    /// booked since the last import.
    Labels {
        /// The creditor's fiscal code.
        #[arg(long)]
        creditor: String,
        /// Only this label (e.g. RT_NO_IUF); repeatable.
        #[arg(long)]
        label: Vec<String>,
    },
    /// Polls the FdR REST API once, now, for every creditor (as `incasso serve` does every
    /// `[fdr] poll_interval_seconds`): imports every flow revision published and not yet
    /// held, prints what each added and warns about flows near the end of the API's 30-day
    /// window. Needs INCASSO_FDR_URL or [fdr] url. Exits 1 if anything failed.
    FdrSync,
    /// Recovers missing receipts from PagoPA's biz-events API once, now (as `incasso serve`
    /// does every `[biz_events] interval_seconds`): for each IUV_NO_RT key (an FdR line whose
    /// receipt never came) that is due, asks for the receipt by IUR and IUV, books it like the
    /// Node's (marked recovered) and relabels the key. Prints one line per missing receipt
    /// (recovered, not-found, failed, waiting, no-rpt, no-calls-left, held) and a summary per
    /// creditor. Needs INCASSO_BIZ_EVENTS_URL or [biz_events] url. Exits 1 if a creditor's
    /// pass was cut short (the key refused, rate limited, the database failing).
    Recover {
        /// Only this creditor; every creditor when omitted.
        #[arg(long)]
        creditor: Option<String>,
        /// The most receipts asked for now (default `[biz_events] calls_per_pass`, 10).
        #[arg(long)]
        limit: Option<u32>,
    },
    /// Relabels a creditor's transfer keys for the receipts booked since the last import.
    Refresh {
        /// The creditor's fiscal code.
        #[arg(long)]
        creditor: String,
    },
    /// Writes back the plain keys that flow revisions imported more than `--older-than-days`
    /// days ago left unwritten (`[reconciliation] plain_keys_composed`), as their imports would
    /// have written them: no answer changes, and the filters by `RT_NO_IUF` or a flow-composed
    /// label then walk only the recent flows' keys. Run it daily while the setting is on.
    WritePlainKeys {
        /// The creditor's fiscal code.
        #[arg(long)]
        creditor: String,
        /// Only revisions imported longer ago than this many days (0: every one).
        #[arg(long, default_value_t = 7)]
        older_than_days: u16,
    },
    /// Prints one subject's label changes, oldest first (tab-separated: when, previous
    /// label, label, conditions, treasury state, document, evidence), after labelling the
    /// receipts booked since the last import.
    History {
        /// The creditor's fiscal code.
        #[arg(long)]
        creditor: String,
        /// A transfer key, IUV/RECEIPT_ID/ID_TRANSFER.
        #[arg(long, required_unless_present_any = ["credit", "flow"], conflicts_with_all = ["credit", "flow"])]
        transfer: Option<String>,
        /// A treasury credit's id.
        #[arg(long, conflicts_with = "flow")]
        credit: Option<String>,
        /// A reporting flow's id (IUF).
        #[arg(long)]
        flow: Option<String>,
    },
    /// Writes the finance office's report of a range of days: the summary per label
    /// (Riepilogo), every transfer key not RT_IUF_TES (Anomalie), the flows regulated
    /// (Flussi), the credits booked (Tesoreria), the refund worklist (Doppi pagamenti) and
    /// the reversals of credits booked (Storni).
    /// Transfers are selected by payment day (the FdR line's when there is no receipt).
    Report {
        /// Only this creditor's evidence; every creditor's when omitted.
        #[arg(long)]
        creditor: Option<String>,
        /// First day, YYYY-MM-DD (Europe/Rome).
        #[arg(long)]
        from: String,
        /// Last day, YYYY-MM-DD (Europe/Rome), included.
        #[arg(long)]
        to: String,
        /// xlsx: one workbook; csv: one file per table.
        #[arg(long, value_enum)]
        format: ReportFormat,
        /// The workbook's file (xlsx) or the folder of the CSV files (csv, created if
        /// missing). Files already there are replaced only when the report is complete.
        #[arg(long)]
        out: PathBuf,
        /// CSV only: excel-it (`;` and decimal comma, what Excel in Italian opens as is) or
        /// plain (`,` and decimal point).
        #[arg(long, value_enum, default_value = "excel-it")]
        csv_style: CsvStyleArg,
    },
}

/// The file format of `recon report`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ReportFormat {
    /// An XLSX workbook.
    Xlsx,
    /// CSV files.
    Csv,
}

/// The separators of `recon report --format csv`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum CsvStyleArg {
    /// `;` between fields, decimal comma.
    ExcelIt,
    /// `,` between fields, decimal point.
    Plain,
}

fn print_counts(counts: &ReportCounts) {
    for (table, rows) in &counts.rows {
        println!("  {}: {rows} rows", table.sheet_name());
    }
}

async fn report(
    store: &Store,
    range: ReportRange,
    format: ReportFormat,
    out: &Path,
    csv_style: CsvStyleArg,
) -> anyhow::Result<()> {
    match format {
        ReportFormat::Xlsx => {
            let mut workbook = XlsxReport::create(out)?;
            let counts = write_report(store, &range, &mut workbook).await?;
            let path = workbook.finish()?;
            println!("{}: written", path.display());
            print_counts(&counts);
        }
        ReportFormat::Csv => {
            let style = match csv_style {
                CsvStyleArg::ExcelIt => CsvStyle::ExcelIt,
                CsvStyleArg::Plain => CsvStyle::Plain,
            };
            let mut files = CsvReport::create(out, style)?;
            let counts = write_report(store, &range, &mut files).await?;
            for (path, (_, rows)) in files.finish()?.iter().zip(&counts.rows) {
                println!("{}: {rows} rows", path.display());
            }
        }
    }
    Ok(())
}

fn subject(
    transfer: Option<String>,
    credit: Option<String>,
    flow: Option<String>,
) -> anyhow::Result<Subject> {
    if let Some(text) = transfer {
        let bad = || anyhow::anyhow!("--transfer: '{text}' is not IUV/RECEIPT_ID/ID_TRANSFER");
        let (iuv, rest) = text.split_once('/').ok_or_else(bad)?;
        let (receipt_id, index) = rest.rsplit_once('/').ok_or_else(bad)?;
        let iuv = Iuv::parse(iuv).map_err(|e| anyhow::anyhow!("--transfer: {e}"))?;
        let index: i64 = index.parse().map_err(|_| bad())?;
        let index = TransferIndex::new(index).map_err(|e| anyhow::anyhow!("--transfer: {e}"))?;
        let key = TransferKey::new(iuv, receipt_id, index)
            .map_err(|e| anyhow::anyhow!("--transfer: {e}"))?;
        return Ok(Subject::Transfer(key));
    }
    if let Some(id) = credit {
        return Ok(Subject::Credit(
            CreditId::parse(&id).map_err(|e| anyhow::anyhow!("--credit: {e}"))?,
        ));
    }
    let id = flow.ok_or_else(|| anyhow::anyhow!("give --transfer, --credit or --flow"))?;
    Ok(Subject::Flow(
        FlowId::parse(&id).map_err(|e| anyhow::anyhow!("--flow: {e}"))?,
    ))
}

fn files(paths: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for path in paths {
        collect(path, &mut out)?;
    }
    Ok(out)
}

fn collect(path: &Path, out: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    let metadata =
        std::fs::metadata(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    if metadata.is_dir() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        entries.sort();
        for entry in entries {
            collect(&entry, out)?;
        }
    } else {
        out.push(path.to_owned());
    }
    Ok(())
}

/// What an import did on stdout, and what to look at on stderr.
fn print_outcome(outcome: &ImportOutcome) {
    println!("{}", describe(outcome));
    for warning in &outcome.warnings {
        eprintln!("WARNING {}: {warning}", outcome.file);
    }
}

fn describe(outcome: &ImportOutcome) -> String {
    if outcome.already_imported {
        return format!(
            "{}: {} for {}: already imported, nothing changed",
            outcome.file, outcome.kind, outcome.creditor
        );
    }
    let mut parts = Vec::new();
    if outcome.flows_added > 0 || outcome.flows_already_held > 0 {
        parts.push(format!(
            "{} flow revisions ({} lines) added, {} already held",
            outcome.flows_added, outcome.lines_added, outcome.flows_already_held
        ));
    }
    if outcome.kind != "FlussoRiversamento" && outcome.kind != "FdR REST" {
        parts.push(format!(
            "{} credits added, {} already held, {} other movements",
            outcome.credits_added, outcome.credits_already_held, outcome.other_movements
        ));
    }
    parts.push(format!("{} label changes", outcome.label_changes));
    parts.push(format!(
        "{} ledger entries posted",
        outcome.ledger_entries_posted
    ));
    format!(
        "{}: {} for {}: {}",
        outcome.file,
        outcome.kind,
        outcome.creditor,
        parts.join("; ")
    )
}

fn evidence_text(evidence: &EvidenceRef) -> String {
    match evidence {
        EvidenceRef::Receipt(key) => format!("receipt {key}"),
        EvidenceRef::Flow(id, revision) => format!("flow {id} revision {revision}"),
        EvidenceRef::Credit(id) => format!("credit {id}"),
        EvidenceRef::TreasuryCoverage(day) => format!("treasury evidence through {day}"),
    }
}

fn subject_text(subject: &Subject) -> (&'static str, String) {
    match subject {
        Subject::Transfer(key) => ("transfer", key.to_string()),
        Subject::Credit(id) => ("credit", id.to_string()),
        Subject::Flow(id) => ("flow", id.to_string()),
    }
}

fn assessment_text(a: &Assessment) -> String {
    let labels: Vec<&str> = a.labels.iter().map(|l| l.code()).collect();
    format!(
        "{}\t{}\t{}\t{}",
        a.label.map(Label::code).unwrap_or("-"),
        labels.join(","),
        a.treasury_state.map(|s| s.code()).unwrap_or("-"),
        serde_json::to_string(&a.suggestions).unwrap_or_default()
    )
}

fn print_poll(creditor: &str, poll: &CreditorPoll) {
    let summary = match poll {
        CreditorPoll::LeaseHeld => {
            println!("{creditor}: not polled: another replica is polling it (lease held)");
            return;
        }
        CreditorPoll::Polled(summary) | CreditorPoll::Failed { summary, .. } => summary,
    };
    for outcome in &summary.imported {
        print_outcome(outcome);
    }
    for skipped in &summary.unavailable_revisions {
        println!(
            "{creditor}: flow {} revision {} of PSP {}: no longer served by the API, skipped",
            skipped.fdr, skipped.revision, skipped.psp_id
        );
    }
    for failed in &summary.failed {
        eprintln!(
            "{creditor}: flow {} revision {} of PSP {}: not imported: {}",
            failed.revision.fdr, failed.revision.revision, failed.revision.psp_id, failed.reason
        );
    }
    for stale in &summary.stale {
        eprintln!(
            "WARNING {creditor}: flow {} revision {} of PSP {} was published {} days ago and is \
             not imported yet; the FdR API keeps flows 30 days",
            stale.flow.fdr, stale.flow.revision, stale.flow.psp_id, stale.age_days
        );
    }
    if let CreditorPoll::Failed { reason, .. } = poll {
        eprintln!("{creditor}: FdR poll failed: {reason}");
    }
    println!(
        "{creditor}: {} flows listed, {} revisions imported, {} flows already held, {} failed; watermark {}",
        summary.listed,
        summary.imported.len(),
        summary.already_held,
        summary.failed.len(),
        summary
            .watermark
            .and_then(|w| w
                .format(&time::format_description::well_known::Rfc3339)
                .ok())
            .unwrap_or_else(|| "none".to_owned())
    );
}

fn rfc3339(instant: time::OffsetDateTime) -> String {
    instant
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// Prints one creditor's recovery pass: a line per missing receipt, then the summary.
fn print_recovery(creditor: &str, pass: &CreditorPass) {
    let summary = match pass {
        CreditorPass::LeaseHeld => {
            println!(
                "{creditor}: another replica is recovering this creditor's receipts; not recovered now"
            );
            return;
        }
        CreditorPass::Done(summary) => summary,
        CreditorPass::Failed { reason, summary } => {
            eprintln!("{creditor}: receipt recovery cut short: {reason}");
            summary
        }
    };
    let mut counts = [0usize; 6];
    for (receipt, recovery) in &summary.receipts {
        let key = format!("{creditor}\t{}\t{}", receipt.iuv, receipt.receipt_id);
        let detail = |r: &incasso_store::reconciliation::ReceiptRecovery| {
            r.detail.clone().unwrap_or_default()
        };
        let next = |r: &incasso_store::reconciliation::ReceiptRecovery| {
            r.next_attempt_at.map(rfc3339).unwrap_or_default()
        };
        match recovery {
            Recovery::Recovered { recovery, .. } => {
                counts[0] += 1;
                println!("recovered\t{key}\t{}", detail(recovery));
            }
            Recovery::AlreadyHeld => {
                println!("held\t{key}\ta receipt of this key is stored already; relabelled");
            }
            Recovery::NotFound(r) => {
                counts[1] += 1;
                println!(
                    "not-found\t{key}\t{} (attempt {}; next after {})",
                    detail(r),
                    r.attempts,
                    next(r)
                );
            }
            Recovery::Failed(r) => {
                counts[2] += 1;
                println!(
                    "failed\t{key}\t{} (attempt {}; next after {})",
                    detail(r),
                    r.attempts,
                    next(r)
                );
            }
            Recovery::NotAsked(NotAsked::NotDue(at)) => {
                counts[3] += 1;
                let last = receipt
                    .last_attempt
                    .as_ref()
                    .and_then(|a| a.detail.clone())
                    .unwrap_or_default();
                println!("waiting\t{key}\t{last} (next after {})", rfc3339(*at));
            }
            Recovery::NotAsked(NotAsked::PaidWithoutRpt) => {
                counts[4] += 1;
                println!(
                    "no-rpt\t{key}\tpaid without RPT (code 9): PagoPA holds no receipt; stays IUV_NO_RT"
                );
            }
            Recovery::NotAsked(NotAsked::NoCallsLeft) => {
                counts[5] += 1;
                println!("no-calls-left\t{key}\tasked at the next pass");
            }
        }
    }
    println!(
        "{creditor}: {} missing receipts, {} recovered, {} not found, {} failed, {} waiting, {} paid without RPT, {} left for the next pass; {} label changes",
        summary.receipts.len(),
        counts[0],
        counts[1],
        counts[2],
        counts[3],
        counts[4],
        counts[5],
        summary.label_changes
    );
}

pub(crate) async fn run(
    store: &Store,
    accounts: &TreasuryAccounts,
    fdr: Option<FdrConfig>,
    biz_events: Option<RecoveryConfig>,
    command: ReconCommand,
) -> anyhow::Result<()> {
    match command {
        ReconCommand::Recover { creditor, limit } => {
            let mut config = biz_events.ok_or_else(|| {
                anyhow::anyhow!(
                    "no biz-events URL is configured (INCASSO_BIZ_EVENTS_URL or [biz_events] url): nothing to recover from"
                )
            })?;
            if let Some(creditor) = &creditor
                && !store
                    .registry()
                    .iter()
                    .any(|c| c.fiscal_code().as_str() == creditor)
            {
                anyhow::bail!("--creditor: {creditor} is not a configured creditor");
            }
            if let Some(limit) = limit {
                if limit == 0 {
                    anyhow::bail!("--limit: expected at least 1");
                }
                config.calls_per_pass = limit;
            }
            let recoverer = Recoverer::new(store.clone(), config)?;
            let report = recoverer.recover_once(creditor.as_deref()).await;
            for (creditor, pass) in &report.creditors {
                print_recovery(creditor, pass);
            }
            if report.has_failures() {
                std::process::exit(1);
            }
        }
        ReconCommand::Report {
            creditor,
            from,
            to,
            format,
            out,
            csv_style,
        } => {
            let range = ReportRange::parse(creditor.as_deref(), &from, &to)?;
            store
                .catch_up_reconciliation(range.creditor_fiscal_code.as_deref(), None)
                .await?;
            report(store, range, format, &out, csv_style).await?;
        }
        ReconCommand::FdrSync => {
            let config = fdr.ok_or_else(|| {
                anyhow::anyhow!(
                    "no FdR URL is configured (INCASSO_FDR_URL or [fdr] url): nothing to poll"
                )
            })?;
            let poller = FdrPoller::new(store.clone(), config)?;
            let report = poller.poll_once().await;
            for (creditor, poll) in &report.creditors {
                print_poll(creditor, poll);
            }
            if report.has_failures() {
                std::process::exit(1);
            }
        }
        ReconCommand::Import { paths } => {
            let mut refused = 0usize;
            for file in files(&paths)? {
                match store.import_reconciliation_file(&file, accounts).await {
                    Ok(outcome) => print_outcome(&outcome),
                    Err(error) => {
                        refused += 1;
                        eprintln!("{}: refused: {error}", file.display());
                    }
                }
            }
            if refused > 0 {
                eprintln!("{refused} files refused; nothing of them was stored");
                std::process::exit(1);
            }
        }
        ReconCommand::Labels { creditor, label } => {
            let wanted = label
                .iter()
                .map(|code| {
                    Label::parse(code).ok_or_else(|| {
                        anyhow::anyhow!("--label: '{code}' is not a reconciliation label")
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            store.catch_up_reconciliation(Some(&creditor), None).await?;
            for (subject, assessment) in store.reconciliation_assessments(&creditor).await? {
                if !wanted.is_empty() && !assessment.label.is_some_and(|l| wanted.contains(&l)) {
                    continue;
                }
                let (kind, key) = subject_text(&subject);
                println!("{kind}\t{key}\t{}", assessment_text(&assessment));
            }
        }
        ReconCommand::Refresh { creditor } => {
            let changes = store.refresh_reconciliation(&creditor).await?;
            println!("{creditor}: {changes} label changes");
        }
        ReconCommand::WritePlainKeys {
            creditor,
            older_than_days,
        } => {
            let before = store.now() - time::Duration::days(i64::from(older_than_days));
            let written = store.write_back_plain_keys(&creditor, before).await?;
            println!(
                "{creditor}: {} plain keys written back from {} flow revisions",
                written.keys, written.revisions
            );
        }
        ReconCommand::History {
            creditor,
            transfer,
            credit,
            flow,
        } => {
            let subject = subject(transfer, credit, flow)?;
            store.catch_up_reconciliation(Some(&creditor), None).await?;
            let code = |l: Option<Label>| l.map(Label::code).unwrap_or("-");
            for change in store.reconciliation_history(&creditor, &subject).await? {
                let labels: Vec<&str> = change.labels.iter().map(|l| l.code()).collect();
                let document = change
                    .causes
                    .document
                    .as_ref()
                    .map(|(_, file, kind)| format!("{file} ({kind})"))
                    .unwrap_or_else(|| "receipts".to_owned());
                let changed_at = change
                    .changed_at
                    .format(&time::format_description::well_known::Rfc3339)
                    .unwrap_or_default();
                println!(
                    "{changed_at}\t{}\t{}\t{}\t{}\t{document}\t{}",
                    code(change.previous_label),
                    code(change.label),
                    labels.join(","),
                    change.treasury_state.as_deref().unwrap_or("-"),
                    change
                        .causes
                        .evidence
                        .iter()
                        .map(evidence_text)
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
            // A transfer key's own part of its flow's `reported` entry.
            if let Subject::Transfer(key) = &subject
                && let Some(posting) = store.reported_posting(&creditor, key).await?
            {
                let amounts: Vec<String> = posting
                    .amounts
                    .iter()
                    .map(|(account, cents)| format!("{account}={cents}"))
                    .collect();
                println!(
                    "posted\tflow {} revision {}\t{}",
                    posting.flow_id.as_deref().unwrap_or("-"),
                    posting.flow_revision.unwrap_or_default(),
                    amounts.join(", ")
                );
            }
        }
    }
    Ok(())
}
