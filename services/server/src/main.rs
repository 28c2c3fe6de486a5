//! `incasso`: the Comune di Milano's creditor-side PagoPA service.
//!
//! `incasso serve` runs the service (gRPC on 127.0.0.1:50051, an SQLite file in the working
//! directory, migrations applied on start); `incasso migrate` only applies migrations.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use incasso_server::config::{FileConfig, Overrides, Settings};
use incasso_server::{Application, telemetry};
use incasso_store::ledger::Checkpoint;

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
    telemetry::init();
    let cli = Cli::parse();
    let file = match &cli.config {
        Some(path) => FileConfig::load(path)?,
        None => FileConfig::default(),
    };
    let mut overrides = Overrides {
        database_url: cli.database_url.clone(),
        encryption_key_hex: std::env::var("INCASSO_ENCRYPTION_KEY_HEX").ok(),
        fiscal_code_pepper_hex: std::env::var("INCASSO_FISCAL_CODE_PEPPER_HEX").ok(),
        aca_url: std::env::var("INCASSO_ACA_URL").ok(),
        aca_subscription_key: std::env::var("INCASSO_ACA_SUBSCRIPTION_KEY").ok(),
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
                        println!(
                            "BROKEN at entry {}: {} ({} entries checked before it)",
                            report.first_broken_sequence.unwrap_or(0),
                            report.reason,
                            report.entries_checked
                        );
                        std::process::exit(1);
                    }
                }
            }
        }
        Command::Serve {
            grpc_listen,
            soap_listen,
        } => {
            overrides.grpc_listen = grpc_listen;
            overrides.soap_listen = soap_listen;
            let settings = Settings::resolve(file, overrides)?;
            let app = Application::build(settings).await?;
            app.run_until(shutdown_signal()).await?;
        }
    }
    Ok(())
}

/// Resolves on SIGTERM (Kubernetes) or Ctrl-C.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("Ctrl-C received"),
        () = terminate => tracing::info!("SIGTERM received"),
    }
}
