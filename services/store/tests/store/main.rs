//! Storage tests: every test runs on SQLite and on PostgreSQL, each on a fresh database.

// Test bodies are async fns called from #[test]s; unwraps there are assertions.
#![allow(clippy::unwrap_used)]

mod composed;
mod duplicate_credits;
mod fixtures;
mod history;
mod ledger;
mod outbox;
mod plain;
mod positions;
mod read_ahead;
mod reconciliation;
mod restated;
mod sessions;

/// Declares one test per engine for an `async fn(Engine)` body.
#[macro_export]
macro_rules! on_both_engines {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn sqlite() {
                    super::$name(incasso_store::testing::Engine::Sqlite).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn postgres() {
                    super::$name(incasso_store::testing::Engine::Postgres).await;
                }
            }
        )*
    };
}
