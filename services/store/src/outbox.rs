//! The transactional outbox: events written in the same transaction as the change they
//! announce, delivered later by a relay with retries. Payloads name what changed, not its
//! content: the relay reads the current state when it delivers, so no personal data waits in
//! clear in this table and a late delivery never sends a stale amount.

use sea_orm::{ConnectionTrait, EntityTrait, Set};
use serde::Serialize;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::entity::outbox_event;
use crate::error::AppError;

/// Topic of the events that keep PagoPA's Archivio Centralizzato Avvisi (Stand-In) current.
pub const ACA_POSITION: &str = "aca.position";
/// Topic of the events that keep the Fascicolo del Cittadino current.
pub const FASCICOLO_PAYMENT: &str = "fascicolo.payment";

/// What an ACA event asks the relay to publish.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct PositionChanged {
    /// The position.
    pub debt_position_id: Uuid,
    /// created, changed, paid, cancelled.
    pub change: String,
}

/// Queues an event in the caller's transaction.
pub(crate) async fn enqueue(
    db: &impl ConnectionTrait,
    topic: &str,
    aggregate_id: &str,
    payload: &impl Serialize,
    now: OffsetDateTime,
) -> Result<(), AppError> {
    let payload = serde_json::to_string(payload).map_err(|e| AppError::Internal(e.to_string()))?;
    outbox_event::Entity::insert(model(topic, aggregate_id, payload, now))
        .exec_without_returning(db)
        .await?;
    Ok(())
}

/// The row of a new event, for batch inserts.
pub(crate) fn model(
    topic: &str,
    aggregate_id: &str,
    payload: String,
    now: OffsetDateTime,
) -> outbox_event::ActiveModel {
    outbox_event::ActiveModel {
        id: Set(Uuid::now_v7()),
        topic: Set(topic.to_owned()),
        aggregate_id: Set(aggregate_id.to_owned()),
        payload: Set(payload),
        state: Set("pending".to_owned()),
        attempts: Set(0),
        next_attempt_at: Set(crate::ledger::micros(now)),
        last_error: Set(None),
        created_at: Set(now),
        delivered_at: Set(None),
    }
}

/// The ACA event of a position change.
pub(crate) fn position_changed(
    id: Uuid,
    change: &str,
    now: OffsetDateTime,
) -> outbox_event::ActiveModel {
    let payload = PositionChanged {
        debt_position_id: id,
        change: change.to_owned(),
    };
    #[allow(clippy::expect_used)]
    let payload = serde_json::to_string(&payload).expect("a position event serialises");
    model(ACA_POSITION, &id.to_string(), payload, now)
}

/// An event claimed for delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedEvent {
    /// Its id.
    pub id: Uuid,
    /// Topic.
    pub topic: String,
    /// What it is about.
    pub aggregate_id: String,
    /// JSON payload.
    pub payload: String,
    /// Attempts so far, this one included.
    pub attempts: i32,
}

/// An event in the dead-letter state, for an operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadEvent {
    /// Its id.
    pub id: Uuid,
    /// Topic.
    pub topic: String,
    /// What it is about.
    pub aggregate_id: String,
    /// Attempts made.
    pub attempts: i32,
    /// The last error.
    pub last_error: Option<String>,
    /// When it was queued.
    pub created_at: OffsetDateTime,
}

/// The delay before retry number `attempt` (1-based): exponential from `base_ms`, capped at
/// `max_ms`, then scaled by `jitter` in [0.5, 1.5) expressed as per mille (500..1500), so
/// replicas retrying after the same outage do not hammer the remote service in step.
pub fn retry_delay_ms(attempt: i32, base_ms: u64, max_ms: u64, jitter_per_mille: u64) -> u64 {
    let exponent = u32::try_from(attempt.saturating_sub(1).clamp(0, 30)).unwrap_or(30);
    let delay = base_ms.saturating_mul(1u64 << exponent).min(max_ms);
    delay.saturating_mul(jitter_per_mille.clamp(500, 1500)) / 1000
}

impl crate::Store {
    /// Claims up to `limit` due events of `topic` for `lease_ms`: until then no other relay
    /// (on this or another replica) claims them. On PostgreSQL the claim skips rows another
    /// transaction holds (`FOR UPDATE SKIP LOCKED`); SQLite has a single writer.
    pub async fn claim_outbox(
        &self,
        topic: &str,
        limit: u64,
        lease_ms: u64,
    ) -> Result<Vec<ClaimedEvent>, AppError> {
        use sea_orm::{DbBackend, Statement};
        let now = self.now();
        let now_micros = crate::ledger::micros(now);
        let lease_until = now_micros.saturating_add(
            i64::try_from(lease_ms)
                .unwrap_or(i64::MAX / 1000)
                .saturating_mul(1000),
        );
        let backend = self.db().get_database_backend();
        let (sql, skip) = match backend {
            DbBackend::Postgres => ("$1", " FOR UPDATE SKIP LOCKED"),
            _ => ("?", ""),
        };
        let placeholder = |n: usize| {
            if sql == "$1" {
                format!("${n}")
            } else {
                "?".to_owned()
            }
        };
        let statement = format!(
            "UPDATE outbox_event SET next_attempt_at = {p1}, attempts = attempts + 1 \
             WHERE id IN (SELECT id FROM outbox_event WHERE topic = {p2} AND state = 'pending' \
             AND next_attempt_at <= {p3} ORDER BY next_attempt_at LIMIT {p4}{skip}) \
             RETURNING id, topic, aggregate_id, payload, attempts",
            p1 = placeholder(1),
            p2 = placeholder(2),
            p3 = placeholder(3),
            p4 = placeholder(4),
        );
        let rows = self
            .db()
            .query_all_raw(Statement::from_sql_and_values(
                backend,
                statement,
                [
                    lease_until.into(),
                    topic.into(),
                    now_micros.into(),
                    i64::try_from(limit).unwrap_or(100).into(),
                ],
            ))
            .await?;
        let mut events = Vec::with_capacity(rows.len());
        for row in rows {
            events.push(ClaimedEvent {
                id: row.try_get("", "id")?,
                topic: row.try_get("", "topic")?,
                aggregate_id: row.try_get("", "aggregate_id")?,
                payload: row.try_get("", "payload")?,
                attempts: row.try_get("", "attempts")?,
            });
        }
        Ok(events)
    }

    /// Marks an event delivered.
    pub async fn outbox_delivered(&self, id: Uuid) -> Result<(), AppError> {
        use sea_orm::sea_query::Expr;
        use sea_orm::{ColumnTrait, QueryFilter};
        outbox_event::Entity::update_many()
            .col_expr(outbox_event::Column::State, Expr::value("delivered"))
            .col_expr(
                outbox_event::Column::DeliveredAt,
                Expr::value(Some(self.now())),
            )
            .col_expr(outbox_event::Column::LastError, Expr::value(None::<String>))
            .filter(outbox_event::Column::Id.eq(id))
            .exec(self.db())
            .await?;
        Ok(())
    }

    /// Records a failed attempt: retried after `retry_in_ms`, or dead when `None`.
    pub async fn outbox_failed(
        &self,
        id: Uuid,
        error: &str,
        retry_in_ms: Option<u64>,
    ) -> Result<(), AppError> {
        use sea_orm::sea_query::Expr;
        use sea_orm::{ColumnTrait, QueryFilter};
        let error: String = error.chars().take(2000).collect();
        let mut update = outbox_event::Entity::update_many()
            .col_expr(outbox_event::Column::LastError, Expr::value(Some(error)));
        update = match retry_in_ms {
            Some(ms) => update.col_expr(
                outbox_event::Column::NextAttemptAt,
                Expr::value(
                    crate::ledger::micros(self.now()).saturating_add(
                        i64::try_from(ms)
                            .unwrap_or(i64::MAX / 1000)
                            .saturating_mul(1000),
                    ),
                ),
            ),
            None => update.col_expr(outbox_event::Column::State, Expr::value("dead")),
        };
        update
            .filter(outbox_event::Column::Id.eq(id))
            .exec(self.db())
            .await?;
        Ok(())
    }

    /// The dead-letter events of a topic (every topic when empty), oldest first.
    pub async fn outbox_dead(&self, topic: &str) -> Result<Vec<DeadEvent>, AppError> {
        use sea_orm::{ColumnTrait, QueryFilter, QueryOrder};
        let mut query = outbox_event::Entity::find().filter(outbox_event::Column::State.eq("dead"));
        if !topic.is_empty() {
            query = query.filter(outbox_event::Column::Topic.eq(topic));
        }
        Ok(query
            .order_by_asc(outbox_event::Column::CreatedAt)
            .all(self.db())
            .await?
            .into_iter()
            .map(|e| DeadEvent {
                id: e.id,
                topic: e.topic,
                aggregate_id: e.aggregate_id,
                attempts: e.attempts,
                last_error: e.last_error,
                created_at: e.created_at,
            })
            .collect())
    }

    /// Puts a dead-letter event back in the queue, due now, its attempts reset.
    pub async fn outbox_replay(&self, id: &str) -> Result<(), AppError> {
        use sea_orm::sea_query::Expr;
        use sea_orm::{ColumnTrait, QueryFilter};
        let id = Uuid::parse_str(id.trim())
            .map_err(|_| AppError::invalid("id", "not an event id (UUID)"))?;
        let result = outbox_event::Entity::update_many()
            .col_expr(outbox_event::Column::State, Expr::value("pending"))
            .col_expr(outbox_event::Column::Attempts, Expr::value(0))
            .col_expr(
                outbox_event::Column::NextAttemptAt,
                Expr::value(crate::ledger::micros(self.now())),
            )
            .filter(outbox_event::Column::Id.eq(id))
            .filter(outbox_event::Column::State.eq("dead"))
            .exec(self.db())
            .await?;
        if result.rows_affected == 0 {
            return Err(AppError::NotFound {
                what: format!("dead-letter event {id}"),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_exponentially_with_bounded_jitter() {
        assert_eq!(retry_delay_ms(1, 1000, 3_600_000, 1000), 1000);
        assert_eq!(retry_delay_ms(2, 1000, 3_600_000, 1000), 2000);
        assert_eq!(retry_delay_ms(5, 1000, 3_600_000, 1000), 16_000);
        assert_eq!(retry_delay_ms(40, 1000, 3_600_000, 1000), 3_600_000);
        assert_eq!(retry_delay_ms(3, 1000, 3_600_000, 500), 2000);
        assert_eq!(retry_delay_ms(3, 1000, 3_600_000, 1499), 5996);
        assert_eq!(
            retry_delay_ms(3, 1000, 3_600_000, 9999),
            6000,
            "jitter is clamped"
        );
    }
}
