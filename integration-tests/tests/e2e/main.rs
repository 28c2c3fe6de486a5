//! End-to-end tests: the real server on port 0, a real socket, tonic clients; every test on
//! SQLite and on PostgreSQL.

// Test bodies are async fns called from #[test]s; unwraps there are assertions.
#![allow(clippy::unwrap_used)]

mod aca;
mod admin;
mod app_io;
mod bulk;
mod citizen_payments;
mod fascicolo;
mod fdr;
mod inbox;
mod ledger;
mod node;
mod node_conformance;
mod node_messages;
mod notices;
mod outbound_tls;
mod receipt_service;
mod receipts;
mod recon_catch_up;
mod recon_day;
mod recon_evidence;
mod recon_report;
mod recon_reversals;
mod reconciliation_books;
mod reconciliation_service;
mod recovery;
mod service;
mod tls;

/// Declares one test per engine for an `async fn(Engine) -> anyhow::Result<()>` body.
#[macro_export]
macro_rules! on_both_engines {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn sqlite() -> anyhow::Result<()> {
                    super::$name(incasso_integration_tests::Engine::Sqlite).await
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn postgres() -> anyhow::Result<()> {
                    super::$name(incasso_integration_tests::Engine::Postgres).await
                }
            }
        )*
    };
}
