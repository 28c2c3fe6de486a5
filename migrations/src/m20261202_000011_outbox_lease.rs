//! Leases and per-aggregate order for the outbox. A claim now stamps its events with a lease
//! token, and every later change a relay makes to an event (renewing the lease, marking it
//! delivered or failed) names that token, so a relay whose lease ran out and was taken over
//! changes nothing. `order_micros` is where an event stands in its aggregate's queue: a relay
//! only claims the first pending event of each aggregate, so two replicas never publish one
//! debt position at the same time or out of order. It is its own column, not `created_at`,
//! because an event scheduled for a future day (a fine's next amount band) must queue behind
//! what happens before that day, and a replayed dead letter behind what happened meanwhile.
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum OutboxEvent {
    Table,
    Topic,
    AggregateId,
    State,
    LeaseToken,
    OrderMicros,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        use OutboxEvent as O;
        // One column per ALTER TABLE: SQLite accepts no more.
        manager
            .alter_table(
                Table::alter()
                    .table(O::Table)
                    .add_column(uuid_null(O::LeaseToken))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(O::Table)
                    // Microseconds since the epoch, like next_attempt_at.
                    .add_column(big_integer(O::OrderMicros).default(0))
                    .to_owned(),
            )
            .await?;
        // Events queued before this migration: their due time is the best order there is
        // (their creation time for those never retried), and the same on both engines.
        manager
            .get_connection()
            .execute_unprepared("UPDATE outbox_event SET order_micros = next_attempt_at")
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_outbox_aggregate_queue")
                    .table(O::Table)
                    .col(O::Topic)
                    .col(O::AggregateId)
                    .col(O::State)
                    .col(O::OrderMicros)
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        use OutboxEvent as O;
        manager
            .drop_index(
                Index::drop()
                    .name("ix_outbox_aggregate_queue")
                    .table(O::Table)
                    .to_owned(),
            )
            .await?;
        for column in [O::OrderMicros, O::LeaseToken] {
            manager
                .alter_table(
                    Table::alter()
                        .table(O::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
