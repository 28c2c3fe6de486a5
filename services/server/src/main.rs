//! `incasso`: the Comune di Milano's creditor-side PagoPA service.
//!
//! `incasso serve` runs the service (gRPC on 127.0.0.1:50051, an SQLite file in the working
//! directory, migrations applied on start); `incasso migrate` only applies migrations. The
//! operators' commands (`outbox`, `ledger`, `receipts`, `recon`) work offline against the database.

mod recon;

/// mimalloc rather than glibc's malloc: under load the receipt path's many small, short-lived
/// allocations spent about a fifth of the server's CPU in glibc's allocator.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};
use uuid::Uuid;

use incasso_server::config::{FileConfig, Overrides, Settings};
use incasso_server::{Application, telemetry};
use incasso_store::Store;
use incasso_store::ledger::Checkpoint;
use incasso_store::receipts::park::RetryOutcome;
use incasso_store::receipts::query::{ReceiptFilterInput, StoredReceipt};
use incasso_store::receipts::{Classification, ReceiptFlag};

#[derive(Debug, Parser)]
#[command(
    name = "incasso",
    version,
    about = "PagoPA payment notices, ledger and reconciliation for the Comune di Milano"
)]
struct Cli {
    /// TOML configuration file (creditors, keys, addresses).
    #[arg(long, global = true, env = "INCASSO_CONFIG")]
    config: Option<PathBuf>,
    /// Database URL: postgres://user@host/db or sqlite://file.db?mode=rwc
    /// [default: sqlite://incasso.db?mode=rwc]
    #[arg(long, global = true, env = "INCASSO_DATABASE_URL")]
    database_url: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Runs the service until SIGTERM or Ctrl-C.
    Serve {
        /// gRPC listen address [default: 127.0.0.1:50051].
        #[arg(long, env = "INCASSO_GRPC_LISTEN")]
        grpc_listen: Option<String>,
        /// paForNode SOAP listen address (path /paForNode) [default: 127.0.0.1:8080].
        #[arg(long, env = "INCASSO_SOAP_LISTEN")]
        soap_listen: Option<String>,
        /// Admin listen address: /livez, /readyz, /metrics [default: 127.0.0.1:9090].
        #[arg(long, env = "INCASSO_ADMIN_LISTEN")]
        admin_listen: Option<String>,
        /// Serve gRPC and SOAP in plaintext on an address other than loopback (without
        /// [tls]); only behind a network that encrypts and authenticates for incasso.
        #[arg(long, env = "INCASSO_INSECURE")]
        insecure: bool,
    },
    /// Writes a development CA, a server certificate for localhost and 127.0.0.1, one client
    /// certificate per role and an incasso.toml using them. For a developer's machine only.
    DevCerts {
        /// The folder to write into (created if missing).
        #[arg(long, default_value = "dev-certs")]
        out: PathBuf,
    },
    /// Applies pending database migrations and exits.
    Migrate,
    /// The outbox of events for PagoPA's Stand-In archive and the Fascicolo.
    Outbox {
        #[command(subcommand)]
        command: OutboxCommand,
    },
    /// The ledger's tamper evidence, for auditors.
    Ledger {
        #[command(subcommand)]
        command: LedgerCommand,
    },
    /// Receipts the PagoPA Node delivered: the refund worklist and parked receipts.
    Receipts {
        #[command(subcommand)]
        command: ReceiptsCommand,
    },
    /// App IO messages: what was sent, and what was not and why.
    Io {
        #[command(subcommand)]
        command: IoCommand,
    },
    /// The Fascicolo del Cittadino push (needs INCASSO_FASCICOLO_URL or [fascicolo] url).
    Fascicolo {
        #[command(subcommand)]
        command: FascicoloCommand,
    },
    /// Reconciliation: import reporting flows and treasury files, read the labels, write the
    /// finance office's reports.
    Recon {
        #[command(subcommand)]
        command: recon::ReconCommand,
    },
}

#[derive(Debug, Subcommand)]
enum IoCommand {
    /// Lists what became of each message that came due, oldest first: sent (with IO's id),
    /// not_on_io, sender_not_allowed, or not_sent with the reason. Undeliverable messages
    /// (IO refused them) are dead letters of topic io.message: `outbox dead --topic io.message`.
    Messages {
        /// Only this notice (18 digits).
        #[arg(long)]
        notice: Option<String>,
        /// Only this debt position (UUID).
        #[arg(long)]
        position: Option<String>,
        /// Only this outcome.
        #[arg(long, value_parser = ["sent", "not_on_io", "sender_not_allowed", "not_sent"])]
        outcome: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum FascicoloCommand {
    /// Queues a citizen's whole current picture again (every notice, cancellation, payment
    /// and refund), for the Fascicolo's first load or after an incident. The relay of a
    /// running incasso delivers it.
    Resync {
        /// The citizen's fiscal code.
        #[arg(long, required_unless_present = "all", conflicts_with = "all")]
        citizen: Option<String>,
        /// Every citizen, a page at a time; each page is committed on its own and printed
        /// with the token to resume after it.
        #[arg(long)]
        all: bool,
        /// With `--all`: resume after this token (as printed by an interrupted run).
        #[arg(long, requires = "all")]
        after: Option<String>,
        /// With `--all`: citizens per page [default: 200].
        #[arg(long, requires = "all")]
        page: Option<u64>,
    },
}

#[derive(Debug, Subcommand)]
enum ReceiptsCommand {
    /// Lists stored receipts matching every filter, in the order they were stored. The refund
    /// worklist: `--classification double_payment --classification closed_notice`.
    List {
        /// settled, settled_late, double_payment, closed_notice, unknown_notice, not_paid or
        /// parked (repeatable: any of them).
        #[arg(long = "classification", value_parser = parse_classification)]
        classifications: Vec<Classification>,
        /// stand_in, late, amount_differs or other_creditor_notice.
        #[arg(long, value_parser = parse_flag)]
        flag: Option<ReceiptFlag>,
        /// The notice number (18 digits).
        #[arg(long, default_value = "")]
        notice_number: String,
        /// The IUV.
        #[arg(long, default_value = "")]
        iuv: String,
        /// PagoPA's receiptId.
        #[arg(long, default_value = "")]
        receipt_id: String,
        /// The notice's creditor.
        #[arg(long, default_value = "")]
        creditor_fiscal_code: String,
        /// Paid on or after this Europe/Rome day (YYYY-MM-DD).
        #[arg(long, default_value = "")]
        paid_from: String,
        /// Paid on or before this Europe/Rome day (YYYY-MM-DD).
        #[arg(long, default_value = "")]
        paid_to: String,
        /// `table` (tab-separated) or `csv` (RFC 4180, for the finance office).
        #[arg(long, value_enum, default_value_t = ListFormat::Table)]
        format: ListFormat,
    },
    /// Lists parked receipts: stored and acknowledged, their booking failing and retried.
    Parked {
        /// Also those booked since they parked.
        #[arg(long)]
        all: bool,
    },
    /// Books parked receipts now: the ids given, or with `--all` every one still parked.
    /// Prints each outcome; exits 1 if any is still parked.
    Retry {
        /// Receipt row ids, as `receipts parked` prints them.
        #[arg(required_unless_present = "all", conflicts_with = "all", value_parser = parse_receipt_row_id)]
        ids: Vec<Uuid>,
        /// Every receipt still parked.
        #[arg(long)]
        all: bool,
    },
}

/// How `receipts list` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ListFormat {
    /// Tab-separated, with a header line.
    Table,
    /// RFC 4180 CSV, with a header line.
    Csv,
}

fn parse_classification(text: &str) -> Result<Classification, String> {
    Classification::parse(text).ok_or_else(|| {
        let names: Vec<_> = Classification::ALL.iter().map(|c| c.as_str()).collect();
        format!("not a classification (one of {})", names.join(", "))
    })
}

fn parse_flag(text: &str) -> Result<ReceiptFlag, String> {
    ReceiptFlag::parse(text).ok_or_else(|| {
        let names: Vec<_> = ReceiptFlag::ALL.iter().map(|f| f.as_str()).collect();
        format!("not a receipt flag (one of {})", names.join(", "))
    })
}

fn parse_receipt_row_id(text: &str) -> Result<Uuid, String> {
    Uuid::try_parse(text.trim()).map_err(|_| "not a receipt id (a UUID)".to_owned())
}

#[derive(Debug, Subcommand)]
enum OutboxCommand {
    /// Lists the events that could not be delivered (dead letters).
    Dead {
        /// Only this topic, e.g. aca.position.
        #[arg(long, default_value = "")]
        topic: String,
    },
    /// Puts a dead letter back in the queue, or with `--all` every one (of `--topic`).
    Replay {
        /// The event id, as `outbox dead` prints it.
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        id: Option<String>,
        /// Every dead letter, e.g. once a wrong subscription key is put right.
        #[arg(long)]
        all: bool,
        /// With `--all`, only this topic, e.g. aca.position.
        #[arg(long, default_value = "", requires = "all")]
        topic: String,
    },
}

#[derive(Debug, Subcommand)]
enum LedgerCommand {
    /// Recomputes the hash chain; exits 1 and names the first broken entry if it does not match.
    Verify {
        /// First sequence to verify [default: 1].
        #[arg(long)]
        from: Option<i64>,
        /// Last sequence to verify [default: the last entry].
        #[arg(long)]
        to: Option<i64>,
        /// A checkpoint kept outside incasso, SEQUENCE:SHA256HEX (repeatable).
        #[arg(long = "checkpoint")]
        checkpoints: Vec<String>,
        /// Check only the chain, not that the queryable tables agree with it (faster).
        #[arg(long)]
        chain_only: bool,
    },
    /// Prints the current end of the chain as SEQUENCE:SHA256HEX, to keep outside incasso.
    Checkpoint,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let otel = telemetry::init()?;
    let result = run().await;
    if let Some(otel) = otel {
        // Blocks while the last spans and metrics are sent, on the runtime's other threads.
        let _ = tokio::task::spawn_blocking(move || otel.shutdown()).await;
    }
    result
}

async fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let file = match &cli.config {
        Some(path) => FileConfig::load(path)?,
        None => FileConfig::default(),
    };
    let mut overrides = Overrides {
        database_url: cli.database_url.clone(),
        encryption_key_hex: std::env::var("INCASSO_ENCRYPTION_KEY_HEX").ok(),
        fiscal_code_pepper_hex: std::env::var("INCASSO_FISCAL_CODE_PEPPER_HEX").ok(),
        node_subscription_keys: std::env::var("INCASSO_NODE_SUBSCRIPTION_KEYS").ok(),
        aca_url: std::env::var("INCASSO_ACA_URL").ok(),
        io_url: std::env::var("INCASSO_IO_URL").ok(),
        aca_subscription_key: std::env::var("INCASSO_ACA_SUBSCRIPTION_KEY").ok(),
        fascicolo_url: std::env::var("INCASSO_FASCICOLO_URL").ok(),
        fdr_url: std::env::var("INCASSO_FDR_URL").ok(),
        fdr_subscription_key: std::env::var("INCASSO_FDR_SUBSCRIPTION_KEY").ok(),
        biz_events_url: std::env::var("INCASSO_BIZ_EVENTS_URL").ok(),
        biz_events_subscription_key: std::env::var("INCASSO_BIZ_EVENTS_SUBSCRIPTION_KEY").ok(),
        shutdown_grace_seconds: match std::env::var("INCASSO_SHUTDOWN_GRACE_SECONDS") {
            Ok(value) => Some(value.parse().map_err(|_| {
                anyhow::anyhow!(
                    "INCASSO_SHUTDOWN_GRACE_SECONDS: '{value}' is not a number of seconds"
                )
            })?),
            Err(_) => None,
        },
        ..Overrides::default()
    };
    match cli.command {
        Command::Migrate => {
            let settings = Settings::resolve(file, overrides)?;
            incasso_server::migrate(&settings).await?;
            tracing::info!("migrations applied");
        }
        Command::Outbox { command } => {
            let settings = Settings::resolve(file, overrides)?;
            let store = incasso_server::open_store(settings).await?;
            match command {
                OutboxCommand::Dead { topic } => {
                    for event in store.outbox_dead(&topic).await? {
                        println!(
                            "{}\t{}\t{}\tattempts={}\t{}",
                            event.id,
                            event.topic,
                            event.aggregate_id,
                            event.attempts,
                            event.last_error.unwrap_or_default()
                        );
                    }
                }
                OutboxCommand::Replay { id: Some(id), .. } => {
                    store.outbox_replay(&id).await?;
                    println!("{id} queued again");
                }
                OutboxCommand::Replay {
                    id: None, topic, ..
                } => {
                    let replayed = store.outbox_replay_dead(&topic).await?;
                    println!("{replayed} dead letters queued again");
                }
            }
        }
        Command::Io {
            command:
                IoCommand::Messages {
                    notice,
                    position,
                    outcome,
                },
        } => {
            let settings = Settings::resolve(file, overrides)?;
            let store = incasso_server::open_store(settings).await?;
            let debt_position_id = position
                .map(|p| {
                    uuid::Uuid::parse_str(p.trim()).map_err(|_| {
                        anyhow::anyhow!("--position: '{p}' is not a position id (UUID)")
                    })
                })
                .transpose()?;
            let filter = incasso_store::io_messages::IoMessageFilter {
                notice_number: notice.map(|n| n.replace(' ', "")),
                debt_position_id,
                outcome,
            };
            println!(
                "recorded_at\tnotice_number\tpurpose\toutcome\tio_message_id\treason\tdebt_position_id"
            );
            for record in store.list_io_messages(&filter).await? {
                println!(
                    "{}\t{}\t{}\t{}\t{}\t{}\t{}",
                    record
                        .recorded_at
                        .format(&time::format_description::well_known::Rfc3339)
                        .unwrap_or_default(),
                    record.notice_number,
                    record.purpose,
                    record.outcome,
                    record.io_message_id.unwrap_or_default(),
                    record.reason.unwrap_or_default(),
                    record.debt_position_id,
                );
            }
        }
        Command::Ledger { command } => {
            let settings = Settings::resolve(file, overrides)?;
            let store = incasso_server::open_store(settings).await?;
            match command {
                LedgerCommand::Checkpoint => {
                    println!("{}", store.ledger_head().await?.to_text());
                }
                LedgerCommand::Verify {
                    from,
                    to,
                    checkpoints,
                    chain_only,
                } => {
                    let checkpoints = checkpoints
                        .iter()
                        .map(|c| Checkpoint::parse(c))
                        .collect::<Result<Vec<_>, _>>()
                        .map_err(|e| anyhow::anyhow!("--checkpoint: {e}"))?;
                    let report = store
                        .verify_ledger(from, to, &checkpoints, !chain_only)
                        .await?;
                    let last = Checkpoint {
                        sequence: report.last_sequence,
                        hash: report.last_hash,
                    };
                    if report.ok {
                        println!(
                            "ok: {} entries checked; checkpoint {}",
                            report.entries_checked,
                            last.to_text()
                        );
                    } else {
                        match report.first_broken_sequence {
                            Some(sequence) => println!(
                                "BROKEN at entry {sequence}: {} ({} entries checked before it)",
                                report.reason, report.entries_checked
                            ),
                            // Every entry checked out; a projection over them did not.
                            None => println!(
                                "BROKEN: {} ({} entries checked)",
                                report.reason, report.entries_checked
                            ),
                        }
                        std::process::exit(1);
                    }
                }
            }
        }
        Command::Receipts { command } => {
            let settings = Settings::resolve(file, overrides)?;
            let store = incasso_server::open_store(settings).await?;
            receipts(&store, command).await?;
        }
        Command::Fascicolo {
            command:
                FascicoloCommand::Resync {
                    citizen,
                    all,
                    after,
                    page,
                },
        } => {
            // clap's `requires` does not hold against an argument that conflicts with the
            // one required, so the pairing is checked here.
            anyhow::ensure!(
                all || (after.is_none() && page.is_none()),
                "--after and --page go with --all"
            );
            let settings = Settings::resolve(file, overrides)?;
            anyhow::ensure!(
                settings.fascicolo.is_some(),
                "no Fascicolo URL is configured (INCASSO_FASCICOLO_URL or [fascicolo] url): \
                 nothing would deliver the events"
            );
            let store = incasso_server::open_store(settings).await?;
            if all {
                let mut after = after;
                let (mut citizens, mut events) = (0, 0);
                loop {
                    let done = store
                        .resync_citizens_page(after.as_deref(), page.unwrap_or(200).max(1))
                        .await
                        .map_err(cli_error)?;
                    let Some(last) = done.last else { break };
                    citizens += done.citizens;
                    events += done.events;
                    println!(
                        "{citizens} citizens, {events} events queued; resume with --after {last}"
                    );
                    after = Some(last);
                }
                println!("done: {citizens} citizens, {events} events queued");
            } else if let Some(citizen) = citizen {
                let events = store.resync_citizen(&citizen).await.map_err(cli_error)?;
                println!("{events} events queued");
            }
        }
        Command::Recon { command } => {
            let settings = Settings::resolve(file, overrides)?;
            let accounts = settings.treasury_accounts.clone();
            let fdr = settings.fdr.clone();
            let biz_events = settings.biz_events.clone();
            let store = incasso_server::open_store(settings).await?;
            recon::run(&store, &accounts, fdr, biz_events, command).await?;
        }
        Command::DevCerts { out } => {
            let config = incasso_server::dev_certs::generate(&out)?;
            println!("{}", incasso_server::dev_certs::sample_config());
            println!(
                "# written to {}; run: incasso --config {} serve",
                out.display(),
                config.display()
            );
        }
        Command::Serve {
            grpc_listen,
            soap_listen,
            admin_listen,
            insecure,
        } => {
            overrides.insecure = insecure;
            overrides.grpc_listen = grpc_listen;
            overrides.soap_listen = soap_listen;
            overrides.admin_listen = admin_listen;
            let settings = Settings::resolve(file, overrides)?;
            let shutdown = shutdown_signal();
            let app = Application::build(settings).await?;
            app.run_until(shutdown).await?;
        }
    }
    Ok(())
}

/// Receipts read per query by `receipts list`: the most it holds in memory.
const LIST_CHUNK: u64 = 500;

const LIST_HEADER: [&str; 17] = [
    "id",
    "creditor_fiscal_code",
    "iuv",
    "receipt_id",
    "notice_number",
    "receiving_creditor",
    "classification",
    "flags",
    "payment_amount_cents",
    "fee_cents",
    "payment_date_time",
    "psp_id",
    "channel_id",
    "stand_in",
    "debt_position_id",
    "installment_id",
    "received_at",
];

fn list_row(r: &StoredReceipt) -> [String; 17] {
    let flags: Vec<&str> = r.flags.iter().map(|f| f.as_str()).collect();
    [
        r.id.to_string(),
        r.creditor_fiscal_code.clone(),
        r.iuv.clone(),
        r.receipt_id.clone(),
        r.notice_number.clone(),
        r.receiving_creditor.clone(),
        r.classification.as_str().to_owned(),
        flags.join(","),
        r.payment_amount_cents.to_string(),
        r.fee_cents.map(|c| c.to_string()).unwrap_or_default(),
        r.payment_date_time.clone().unwrap_or_default(),
        r.psp_id.clone(),
        r.channel_id.clone(),
        r.stand_in.to_string(),
        r.debt_position_id
            .map(|id| id.to_string())
            .unwrap_or_default(),
        r.installment_id
            .map(|id| id.to_string())
            .unwrap_or_default(),
        rfc3339(r.received_at),
    ]
}

fn rfc3339(instant: time::OffsetDateTime) -> String {
    instant
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// One CSV field (RFC 4180): quoted when it holds a separator, a quote or a line break.
fn csv_field(value: &str) -> String {
    if value.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value.to_owned()
    }
}

/// One field of a tab-separated table: control characters (a tab in a reason) become spaces.
fn table_field(value: &str) -> String {
    value
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

fn print_row<S: AsRef<str>>(format: ListFormat, fields: &[S]) {
    let fields: Vec<String> = fields
        .iter()
        .map(|f| match format {
            ListFormat::Table => table_field(f.as_ref()),
            ListFormat::Csv => csv_field(f.as_ref()),
        })
        .collect();
    match format {
        ListFormat::Table => println!("{}", fields.join("\t")),
        ListFormat::Csv => println!("{}", fields.join(",")),
    }
}

/// An invalid filter, named as the command line spells it (`--paid-from`).
fn cli_error(error: incasso_store::AppError) -> anyhow::Error {
    match error {
        incasso_store::AppError::Invalid(errors) => {
            let fields: Vec<String> = errors
                .violations()
                .iter()
                .map(|v| format!("--{}: {}", v.field.replace('_', "-"), v.description))
                .collect();
            anyhow::anyhow!("invalid arguments: {}", fields.join("; "))
        }
        other => other.into(),
    }
}

/// `incasso receipts ...`.
async fn receipts(store: &Store, command: ReceiptsCommand) -> anyhow::Result<()> {
    match command {
        ReceiptsCommand::List {
            classifications,
            flag,
            notice_number,
            iuv,
            receipt_id,
            creditor_fiscal_code,
            paid_from,
            paid_to,
            format,
        } => {
            let filter = store
                .parse_receipt_filter(&ReceiptFilterInput {
                    classifications,
                    flag,
                    notice_number,
                    iuv,
                    receipt_id,
                    creditor_fiscal_code,
                    paid_from,
                    paid_to,
                })
                .map_err(cli_error)?;
            print_row(format, &LIST_HEADER);
            let mut after = None;
            loop {
                let chunk = store.receipts_after(&filter, after, LIST_CHUNK).await?;
                let Some(last) = chunk.last() else { break };
                after = Some(last.id);
                for receipt in &chunk {
                    print_row(format, &list_row(receipt));
                }
            }
        }
        ReceiptsCommand::Parked { all } => {
            print_row(
                ListFormat::Table,
                &[
                    "id",
                    "creditor_fiscal_code",
                    "iuv",
                    "receipt_id",
                    "notice_number",
                    "payment_amount_cents",
                    "reason",
                    "attempts",
                    "parked_at",
                    "next_attempt_at",
                    "booked_at",
                ],
            );
            for p in store.list_parked_receipts(all).await? {
                print_row(
                    ListFormat::Table,
                    &[
                        p.id.to_string(),
                        p.creditor_fiscal_code,
                        p.iuv,
                        p.receipt_id,
                        p.notice_number,
                        p.payment_amount_cents.to_string(),
                        p.reason,
                        p.attempts.to_string(),
                        rfc3339(p.parked_at),
                        p.next_attempt_at.map(rfc3339).unwrap_or_default(),
                        p.booked_at.map(rfc3339).unwrap_or_default(),
                    ],
                );
            }
        }
        ReceiptsCommand::Retry { ids, all } => {
            let ids = (!all).then_some(ids);
            if let Some(ids) = &ids {
                // Refused before anything is retried: a typo must not hide the others' outcomes.
                let unknown = store.unknown_parked_receipts(ids).await?;
                if !unknown.is_empty() {
                    let names: Vec<String> = unknown.iter().map(ToString::to_string).collect();
                    anyhow::bail!("no parked receipt with id {}", names.join(", "));
                }
            }
            let mut still_parked = 0;
            for (id, outcome) in store.retry_parked_receipts(ids.as_deref()).await? {
                match outcome {
                    RetryOutcome::Booked(c) => println!("{id}\tbooked\t{}", c.as_str()),
                    RetryOutcome::StillParked(reason) => {
                        still_parked += 1;
                        println!("{id}\tstill parked\t{}", table_field(&reason));
                    }
                    RetryOutcome::NotParked => println!("{id}\tnot parked"),
                }
            }
            if still_parked > 0 {
                eprintln!("{still_parked} receipts still parked");
                std::process::exit(1);
            }
        }
    }
    Ok(())
}

/// Resolves on SIGTERM (Kubernetes) or Ctrl-C.
///
/// The handlers are installed when this is called, not when the future is first polled:
/// `serve` calls it before any listener is bound, so a SIGTERM that arrives as soon as the
/// replica answers `/livez` starts a drain instead of killing the process with the default
/// action.
fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let terminate = signal(SignalKind::terminate())
            .inspect_err(|error| tracing::error!(%error, "cannot listen for SIGTERM"))
            .ok();
        let interrupt = signal(SignalKind::interrupt())
            .inspect_err(|error| tracing::error!(%error, "cannot listen for Ctrl-C"))
            .ok();
        async move {
            let terminate = async {
                match terminate {
                    Some(mut signal) => signal.recv().await,
                    None => std::future::pending().await,
                }
            };
            let interrupt = async {
                match interrupt {
                    Some(mut signal) => signal.recv().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = interrupt => tracing::info!("Ctrl-C received"),
                _ = terminate => tracing::info!("SIGTERM received"),
            }
        }
    }
    #[cfg(not(unix))]
    async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
        tracing::info!("Ctrl-C received");
    }
}
