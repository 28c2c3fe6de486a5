//! The transactional outbox: events written in the same transaction as the change they
//! announce, delivered later by a relay with retries. Payloads name what changed, not its
//! content: the relay reads the current state when it delivers, so no personal data waits in
//! clear in this table and a late delivery never sends a stale amount.
//!
//! Each topic has one payload type ([`TopicEvent`]); the relay (crate `incasso-relay`) claims
//! events under leases, one aggregate at a time, and records each outcome under the lease.

use std::collections::HashSet;

use sea_orm::{ConnectionTrait, EntityTrait, Set};
use serde::Serialize;
use serde::de::DeserializeOwned;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::entity::outbox_event;
use crate::error::AppError;

/// Topic of the events that keep PagoPA's Archivio Centralizzato Avvisi (Stand-In) current.
pub const ACA_POSITION: &str = "aca.position";
/// Topic of the events that keep the Fascicolo del Cittadino current: one aggregate per
/// citizen (the keyed hash of the fiscal code, hex), ordered by the citizen's sequence.
pub const FASCICOLO_CITIZEN: &str = "fascicolo.citizen";

/// Topics whose events stand in their aggregate's queue at a number of their own (a
/// per-aggregate sequence the receiver checks) rather than at the time they were queued: a
/// replayed dead letter keeps its place there.
const SEQUENCED_TOPICS: [&str; 1] = [FASCICOLO_CITIZEN];

/// The payload type of one topic: what is stored, serialised, in `outbox_event.payload`, and
/// what the relay's publisher for that topic reads back.
pub trait TopicEvent: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// The topic its events are queued under.
    const TOPIC: &'static str;
}

impl TopicEvent for PositionChanged {
    const TOPIC: &'static str = ACA_POSITION;
}

/// What an ACA event asks the relay to publish.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct PositionChanged {
    /// The position.
    pub debt_position_id: Uuid,
    /// created, changed, paid, cancelled, or [`AMOUNT_BAND`].
    pub change: String,
}

/// The change of a traffic fine's republication when its amount band changes: nothing about
/// the position changed but the day.
pub const AMOUNT_BAND: &str = "amount_band";

/// The row of a new event, for batch inserts.
pub(crate) fn model(
    topic: &str,
    aggregate_id: &str,
    payload: String,
    now: OffsetDateTime,
) -> outbox_event::ActiveModel {
    let now_micros = crate::ledger::micros(now);
    outbox_event::ActiveModel {
        id: Set(Uuid::now_v7()),
        topic: Set(topic.to_owned()),
        aggregate_id: Set(aggregate_id.to_owned()),
        payload: Set(payload),
        state: Set("pending".to_owned()),
        attempts: Set(0),
        next_attempt_at: Set(now_micros),
        last_error: Set(None),
        created_at: Set(now),
        delivered_at: Set(None),
        lease_token: Set(None),
        order_micros: Set(now_micros),
    }
}

/// The row of a new event of type `E`.
pub(crate) fn typed<E: TopicEvent>(
    event: &E,
    aggregate_id: &str,
    now: OffsetDateTime,
) -> outbox_event::ActiveModel {
    #[allow(clippy::expect_used)]
    let payload = serde_json::to_string(event).expect("an outbox payload serialises");
    model(E::TOPIC, aggregate_id, payload, now)
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
    /// Where it stands in its aggregate's queue (`order_micros`: an instant, or the
    /// aggregate's sequence number on a sequenced topic).
    pub order: i64,
    /// The claim's token: renewing the lease and recording the outcome name it, so a relay
    /// whose lease ran out and was claimed by another changes nothing.
    pub lease_token: Uuid,
}

/// An event to queue when a delivery completes, due at a later instant: a traffic fine's
/// republication when its amount band changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FollowUp {
    /// When it comes due.
    pub due: OffsetDateTime,
    /// Its JSON payload.
    pub payload: String,
}

/// What [`Store::outbox_rewind`](crate::Store::outbox_rewind) did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rewind {
    /// The aggregate's events from the asked place on were queued again (this many of them,
    /// besides the claimed one, which was released without counting an attempt).
    Requeued(u64),
    /// No event of the aggregate stands at the asked place: nothing can be resent.
    Missing,
    /// The event at the asked place is a dead letter: an operator must replay it first.
    Dead,
    /// The claim no longer holds the event; nothing changed.
    LeaseLost,
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

/// A claim slower than this on PostgreSQL has the outbox's statistics refreshed.
const SLOW_CLAIM: std::time::Duration = std::time::Duration::from_millis(500);

/// The fewest seconds between two such refreshes by one store.
const ANALYZE_EVERY_SECONDS: u64 = 60;

impl crate::Store {
    /// Tells this process's relays that a commit queued outbox events: a relay waiting for
    /// its next poll claims at once. Relays of other replicas still find them by polling.
    pub fn outbox_queued(&self) {
        self.outbox_queued.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// A receiver that changes whenever [`Store::outbox_queued`] is called, for a relay to
    /// wait on beside its poll interval.
    pub fn outbox_queued_signal(&self) -> tokio::sync::watch::Receiver<u64> {
        self.outbox_queued.subscribe()
    }

    /// Refreshes the planner's statistics of `outbox_event` in the background, at most once
    /// a minute. The claim's anti-join is fast only when the planner knows the table is big
    /// and uses the per-aggregate index; right after a bulk load, with no statistics (and
    /// autovacuum off or not yet round), it scans the whole topic for each candidate: 23 s
    /// for one claim of 500 among 40,000 events, 46 ms once analyzed.
    fn analyze_outbox_soon(&self) {
        use std::sync::atomic::Ordering;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let last = self.outbox_analyzed_at.load(Ordering::Relaxed);
        if now.saturating_sub(last) < ANALYZE_EVERY_SECONDS
            || self
                .outbox_analyzed_at
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        let db = self.db().clone();
        tokio::spawn(async move {
            match db.execute_unprepared("ANALYZE outbox_event").await {
                Ok(_) => tracing::info!("outbox claims were slow: table statistics refreshed"),
                Err(error) => {
                    tracing::warn!(%error, "refreshing the outbox's statistics failed");
                }
            }
        });
    }
}

/// The delay before retry number `attempt` (1-based): exponential from `base_ms`, capped at
/// `max_ms`, then scaled by `jitter` in [0.5, 1.5) expressed as per mille (500..1500), so
/// replicas retrying after the same outage do not hammer the remote service in step.
pub fn retry_delay_ms(attempt: i32, base_ms: u64, max_ms: u64, jitter_per_mille: u64) -> u64 {
    let exponent = u32::try_from(attempt.saturating_sub(1).clamp(0, 30)).unwrap_or(30);
    let delay = base_ms.saturating_mul(1u64 << exponent).min(max_ms);
    delay.saturating_mul(jitter_per_mille.clamp(500, 1500)) / 1000
}

/// Microseconds `ms` milliseconds after `micros`, saturating.
fn micros_after(micros: i64, ms: u64) -> i64 {
    micros.saturating_add(
        i64::try_from(ms)
            .unwrap_or(i64::MAX / 1000)
            .saturating_mul(1000),
    )
}

/// `sql` with its `?` placeholders numbered (`$1`, `$2`, ...) on PostgreSQL.
pub(crate) fn placeholders(backend: sea_orm::DbBackend, sql: &str) -> String {
    if backend != sea_orm::DbBackend::Postgres {
        return sql.to_owned();
    }
    let mut numbered = String::with_capacity(sql.len() + 16);
    let mut n = 0;
    for c in sql.chars() {
        if c == '?' {
            n += 1;
            numbered.push_str(&format!("${n}"));
        } else {
            numbered.push(c);
        }
    }
    numbered
}

impl crate::Store {
    /// Claims up to `limit` due events of `topic` for `lease_ms` under a new lease token:
    /// until the lease runs out no other relay (on this or another replica) claims them, and
    /// [`Store::outbox_renew`](crate::Store::outbox_renew) extends it.
    ///
    /// Only the first pending event of each aggregate (by its place in the aggregate's queue)
    /// is claimable: while it waits, is leased or backs off, the aggregate's later events
    /// wait too, so one aggregate is never delivered by two relays at once nor out of order.
    /// An aggregate with an event under a live lease has nothing claimable at all, even when
    /// a replayed or rewound event now stands before the leased one.
    /// Because exactly one event per aggregate is ever a candidate, two concurrent claims can
    /// only collide on the same row, which PostgreSQL settles with `FOR UPDATE SKIP LOCKED`
    /// (the loser skips it, or rechecks it after the winner's commit and finds it leased);
    /// SQLite has a single writer.
    pub async fn claim_outbox(
        &self,
        topic: &str,
        limit: u64,
        lease_ms: u64,
    ) -> Result<Vec<ClaimedEvent>, AppError> {
        use sea_orm::{DbBackend, Statement};
        let now_micros = crate::ledger::micros(self.now());
        let lease_until = micros_after(now_micros, lease_ms);
        let lease_token = Uuid::new_v4();
        let backend = self.db().get_database_backend();
        // The aggregate's "head" is its leased event if it has one, else its first pending
        // event; a due event is claimable when it is its aggregate's head. One scalar
        // subquery per candidate, probing the aggregate's queue index, whatever the planner
        // knows of the table (a NOT EXISTS anti-join became a scan of the whole queue per
        // candidate on a table without statistics, just after a bulk load). On PostgreSQL
        // the claimed ids are gathered first and updated by primary key: `id IN (subquery)`
        // made the update hash-join against the whole table, delivered events included.
        let (skip_locked, open, close) = match backend {
            DbBackend::Postgres => (" FOR UPDATE SKIP LOCKED", "id = ANY(ARRAY(", "))"),
            _ => ("", "id IN (", ")"),
        };
        let statement = placeholders(
            backend,
            &format!(
                "UPDATE outbox_event SET next_attempt_at = ?, attempts = attempts + 1, \
                 lease_token = ? \
                 WHERE {open}SELECT e.id FROM outbox_event e \
                 WHERE e.topic = ? AND e.state = 'pending' AND e.next_attempt_at <= ? \
                 AND e.id = (SELECT o.id FROM outbox_event o \
                 WHERE o.topic = e.topic AND o.aggregate_id = e.aggregate_id \
                 AND o.state = 'pending' \
                 ORDER BY CASE WHEN o.lease_token IS NOT NULL AND o.next_attempt_at > ? \
                 THEN 0 ELSE 1 END, o.order_micros, o.id LIMIT 1) \
                 ORDER BY e.next_attempt_at LIMIT ?{skip_locked}{close} \
                 RETURNING id, topic, aggregate_id, payload, attempts, order_micros"
            ),
        );
        let started = std::time::Instant::now();
        let rows = self
            .db()
            .query_all_raw(Statement::from_sql_and_values(
                backend,
                statement,
                [
                    lease_until.into(),
                    lease_token.into(),
                    topic.into(),
                    now_micros.into(),
                    now_micros.into(),
                    i64::try_from(limit).unwrap_or(100).into(),
                ],
            ))
            .await?;
        if backend == DbBackend::Postgres && started.elapsed() >= SLOW_CLAIM {
            self.analyze_outbox_soon();
        }
        let mut events = Vec::with_capacity(rows.len());
        for row in rows {
            events.push(ClaimedEvent {
                id: row.try_get("", "id")?,
                topic: row.try_get("", "topic")?,
                aggregate_id: row.try_get("", "aggregate_id")?,
                payload: row.try_get("", "payload")?,
                attempts: row.try_get("", "attempts")?,
                order: row.try_get("", "order_micros")?,
                lease_token,
            });
        }
        Ok(events)
    }

    /// Extends the lease on a claimed event to `lease_ms` from now; false when the claim no
    /// longer holds it (another relay claimed it after the lease ran out, or it completed),
    /// and then the caller must not deliver it.
    pub async fn outbox_renew(
        &self,
        event: &ClaimedEvent,
        lease_ms: u64,
    ) -> Result<bool, AppError> {
        use sea_orm::sea_query::Expr;
        use sea_orm::{ColumnTrait, QueryFilter};
        let until = micros_after(crate::ledger::micros(self.now()), lease_ms);
        let result = outbox_event::Entity::update_many()
            .col_expr(outbox_event::Column::NextAttemptAt, Expr::value(until))
            .filter(outbox_event::Column::Id.eq(event.id))
            .filter(outbox_event::Column::LeaseToken.eq(event.lease_token))
            .filter(outbox_event::Column::State.eq("pending"))
            .exec(self.db())
            .await?;
        Ok(result.rows_affected == 1)
    }

    /// Marks a claimed event delivered and, in the same transaction, queues `follow_up` for
    /// its aggregate unless another pending event of the aggregate comes due by then (its
    /// own delivery will decide what follows). False, and nothing changed, when the claim no
    /// longer holds the event.
    pub async fn outbox_delivered(
        &self,
        event: &ClaimedEvent,
        follow_up: Option<FollowUp>,
    ) -> Result<bool, AppError> {
        use sea_orm::sea_query::Expr;
        use sea_orm::{ColumnTrait, PaginatorTrait, QueryFilter, TransactionTrait};
        let now = self.now();
        let txn = self.db().begin().await?;
        let result = outbox_event::Entity::update_many()
            .col_expr(outbox_event::Column::State, Expr::value("delivered"))
            .col_expr(outbox_event::Column::DeliveredAt, Expr::value(Some(now)))
            .col_expr(outbox_event::Column::LastError, Expr::value(None::<String>))
            .col_expr(outbox_event::Column::LeaseToken, Expr::value(None::<Uuid>))
            .filter(outbox_event::Column::Id.eq(event.id))
            .filter(outbox_event::Column::LeaseToken.eq(event.lease_token))
            .filter(outbox_event::Column::State.eq("pending"))
            .exec(&txn)
            .await?;
        if result.rows_affected != 1 {
            txn.rollback().await?;
            return Ok(false);
        }
        if let Some(follow_up) = follow_up {
            let due = crate::ledger::micros(follow_up.due);
            let sooner = outbox_event::Entity::find()
                .filter(outbox_event::Column::Topic.eq(event.topic.as_str()))
                .filter(outbox_event::Column::AggregateId.eq(event.aggregate_id.as_str()))
                .filter(outbox_event::Column::State.eq("pending"))
                .filter(outbox_event::Column::NextAttemptAt.lte(due))
                .count(&txn)
                .await?;
            if sooner == 0 {
                let mut row = model(&event.topic, &event.aggregate_id, follow_up.payload, now);
                row.next_attempt_at = Set(due);
                // It queues at its due instant: what happens to the aggregate before then is
                // delivered first.
                row.order_micros = Set(due);
                outbox_event::Entity::insert(row)
                    .exec_without_returning(&txn)
                    .await?;
            }
        }
        txn.commit().await?;
        Ok(true)
    }

    /// Records a failed attempt on a claimed event: retried after `retry_in_ms`, or dead when
    /// `None`. False, and nothing changed, when the claim no longer holds the event.
    pub async fn outbox_failed(
        &self,
        event: &ClaimedEvent,
        error: &str,
        retry_in_ms: Option<u64>,
    ) -> Result<bool, AppError> {
        use sea_orm::sea_query::Expr;
        use sea_orm::{ColumnTrait, QueryFilter};
        let error: String = error.chars().take(2000).collect();
        let mut update = outbox_event::Entity::update_many()
            .col_expr(outbox_event::Column::LastError, Expr::value(Some(error)))
            .col_expr(outbox_event::Column::LeaseToken, Expr::value(None::<Uuid>));
        update = match retry_in_ms {
            Some(ms) => update.col_expr(
                outbox_event::Column::NextAttemptAt,
                Expr::value(micros_after(crate::ledger::micros(self.now()), ms)),
            ),
            None => update.col_expr(outbox_event::Column::State, Expr::value("dead")),
        };
        let result = update
            .filter(outbox_event::Column::Id.eq(event.id))
            .filter(outbox_event::Column::LeaseToken.eq(event.lease_token))
            .filter(outbox_event::Column::State.eq("pending"))
            .exec(self.db())
            .await?;
        if result.rows_affected == 1
            && let Some(ms) = retry_in_ms
        {
            // The aggregate's later events cannot go before this one: they wait as long as
            // it does. Left due, every claim would read and reject them one by one until
            // its retry: after an outage of the receiver, hundreds of thousands per claim.
            let retry_at = micros_after(crate::ledger::micros(self.now()), ms);
            outbox_event::Entity::update_many()
                .col_expr(outbox_event::Column::NextAttemptAt, Expr::value(retry_at))
                .filter(outbox_event::Column::Topic.eq(event.topic.as_str()))
                .filter(outbox_event::Column::AggregateId.eq(event.aggregate_id.as_str()))
                .filter(outbox_event::Column::State.eq("pending"))
                .filter(outbox_event::Column::Id.ne(event.id))
                .filter(outbox_event::Column::LeaseToken.is_null())
                .filter(outbox_event::Column::NextAttemptAt.lt(retry_at))
                .exec(self.db())
                .await?;
        }
        Ok(result.rows_affected == 1)
    }

    /// Extends the lease on every event of `events` (all of one claim) to `lease_ms` from
    /// now, in one statement; returns the ids the claim still holds. An event missing from
    /// the answer was taken over by another relay and must not be delivered.
    pub async fn outbox_renew_many(
        &self,
        events: &[ClaimedEvent],
        lease_ms: u64,
    ) -> Result<HashSet<Uuid>, AppError> {
        use sea_orm::Statement;
        let Some(first) = events.first() else {
            return Ok(HashSet::new());
        };
        let until = micros_after(crate::ledger::micros(self.now()), lease_ms);
        let backend = self.db().get_database_backend();
        let mut values: Vec<sea_orm::Value> = vec![until.into(), first.lease_token.into()];
        let mut held = HashSet::with_capacity(events.len());
        for chunk in events.chunks(5000) {
            values.truncate(2);
            values.extend(chunk.iter().map(|e| e.id.into()));
            let list = vec!["?"; chunk.len()].join(",");
            let sql = placeholders(
                backend,
                &format!(
                    "UPDATE outbox_event SET next_attempt_at = ? \
                     WHERE lease_token = ? AND state = 'pending' AND id IN ({list}) RETURNING id"
                ),
            );
            for row in self
                .db()
                .query_all_raw(Statement::from_sql_and_values(backend, sql, values.clone()))
                .await?
            {
                held.insert(row.try_get::<Uuid>("", "id")?);
            }
        }
        Ok(held)
    }

    /// Marks every event of `events` (all of one claim) delivered in one statement, those
    /// the claim still holds; returns how many it marked.
    pub async fn outbox_delivered_many(&self, events: &[ClaimedEvent]) -> Result<u64, AppError> {
        use sea_orm::sea_query::Expr;
        use sea_orm::{ColumnTrait, QueryFilter};
        let Some(first) = events.first() else {
            return Ok(0);
        };
        let now = self.now();
        let mut marked = 0;
        for chunk in events.chunks(5000) {
            let result = outbox_event::Entity::update_many()
                .col_expr(outbox_event::Column::State, Expr::value("delivered"))
                .col_expr(outbox_event::Column::DeliveredAt, Expr::value(Some(now)))
                .col_expr(outbox_event::Column::LastError, Expr::value(None::<String>))
                .col_expr(outbox_event::Column::LeaseToken, Expr::value(None::<Uuid>))
                .filter(outbox_event::Column::Id.is_in(chunk.iter().map(|e| e.id)))
                .filter(outbox_event::Column::LeaseToken.eq(first.lease_token))
                .filter(outbox_event::Column::State.eq("pending"))
                .exec(self.db())
                .await?;
            marked += result.rows_affected;
        }
        Ok(marked)
    }

    /// The receiver of a sequenced topic lacks the aggregate's events from `from_order` on:
    /// queues again, due now, the delivered events of the aggregate standing from there up to
    /// the claimed `event`, and releases `event` without counting its attempt, so the
    /// aggregate is delivered again in order from `from_order`. Nothing changes when the claim
    /// no longer holds `event`, when no event stands at `from_order`, or when it is a dead
    /// letter (resending around it would only meet the same gap again).
    pub async fn outbox_rewind(
        &self,
        event: &ClaimedEvent,
        from_order: i64,
    ) -> Result<Rewind, AppError> {
        use sea_orm::sea_query::{Expr, ExprTrait};
        use sea_orm::{ColumnTrait, QueryFilter, QuerySelect, TransactionTrait};
        let now_micros = crate::ledger::micros(self.now());
        let txn = self.db().begin().await?;
        let at_from: Option<String> = outbox_event::Entity::find()
            .select_only()
            .column(outbox_event::Column::State)
            .filter(outbox_event::Column::Topic.eq(event.topic.as_str()))
            .filter(outbox_event::Column::AggregateId.eq(event.aggregate_id.as_str()))
            .filter(outbox_event::Column::OrderMicros.eq(from_order))
            .into_tuple()
            .one(&txn)
            .await?;
        let verdict = match at_from.as_deref() {
            None => Some(Rewind::Missing),
            Some("dead") => Some(Rewind::Dead),
            Some(_) => None,
        };
        if let Some(verdict) = verdict {
            txn.rollback().await?;
            return Ok(verdict);
        }
        let released = outbox_event::Entity::update_many()
            .col_expr(outbox_event::Column::NextAttemptAt, Expr::value(now_micros))
            .col_expr(outbox_event::Column::LeaseToken, Expr::value(None::<Uuid>))
            .col_expr(
                outbox_event::Column::Attempts,
                Expr::col(outbox_event::Column::Attempts).sub(1),
            )
            .filter(outbox_event::Column::Id.eq(event.id))
            .filter(outbox_event::Column::LeaseToken.eq(event.lease_token))
            .filter(outbox_event::Column::State.eq("pending"))
            .exec(&txn)
            .await?;
        if released.rows_affected != 1 {
            txn.rollback().await?;
            return Ok(Rewind::LeaseLost);
        }
        let requeued = outbox_event::Entity::update_many()
            .col_expr(outbox_event::Column::State, Expr::value("pending"))
            .col_expr(outbox_event::Column::Attempts, Expr::value(0))
            .col_expr(outbox_event::Column::NextAttemptAt, Expr::value(now_micros))
            .col_expr(
                outbox_event::Column::DeliveredAt,
                Expr::value(None::<OffsetDateTime>),
            )
            .col_expr(outbox_event::Column::LeaseToken, Expr::value(None::<Uuid>))
            .filter(outbox_event::Column::Topic.eq(event.topic.as_str()))
            .filter(outbox_event::Column::AggregateId.eq(event.aggregate_id.as_str()))
            .filter(outbox_event::Column::State.eq("delivered"))
            .filter(outbox_event::Column::OrderMicros.gte(from_order))
            .filter(outbox_event::Column::OrderMicros.lt(event.order))
            .exec(&txn)
            .await?;
        txn.commit().await?;
        Ok(Rewind::Requeued(requeued.rows_affected))
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

    /// The update that puts dead letters back in the queue, due now, attempts reset, unleased
    /// and ordered after what their aggregates have pending (on a sequenced topic, at their
    /// own sequence number, which the receiver expects in order); the caller narrows it.
    fn requeue_dead(&self) -> sea_orm::UpdateMany<outbox_event::Entity> {
        use sea_orm::sea_query::Expr;
        use sea_orm::{ColumnTrait, QueryFilter};
        let now_micros = crate::ledger::micros(self.now());
        outbox_event::Entity::update_many()
            .col_expr(outbox_event::Column::State, Expr::value("pending"))
            .col_expr(outbox_event::Column::Attempts, Expr::value(0))
            .col_expr(outbox_event::Column::NextAttemptAt, Expr::value(now_micros))
            .col_expr(
                outbox_event::Column::OrderMicros,
                Expr::case(
                    outbox_event::Column::Topic.is_in(SEQUENCED_TOPICS),
                    Expr::col(outbox_event::Column::OrderMicros),
                )
                .finally(now_micros)
                .into(),
            )
            .col_expr(outbox_event::Column::LeaseToken, Expr::value(None::<Uuid>))
            .filter(outbox_event::Column::State.eq("dead"))
    }

    /// Puts a dead-letter event back in the queue, due now, its attempts reset. It queues
    /// behind what its aggregate has pending: it asks for the current state to be published,
    /// like any newer event, and must not jump ahead of one a relay may be delivering.
    pub async fn outbox_replay(&self, id: &str) -> Result<(), AppError> {
        use sea_orm::{ColumnTrait, QueryFilter};
        let id = Uuid::parse_str(id.trim())
            .map_err(|_| AppError::invalid("id", "not an event id (UUID)"))?;
        let result = self
            .requeue_dead()
            .filter(outbox_event::Column::Id.eq(id))
            .exec(self.db())
            .await?;
        if result.rows_affected == 0 {
            return Err(AppError::NotFound {
                what: format!("dead-letter event {id}"),
            });
        }
        Ok(())
    }

    /// Puts every dead letter of `topic` (every topic when empty) back in the queue, as
    /// [`Store::outbox_replay`] does one, and says how many. After a set-up fault that
    /// refused every call (a wrong subscription key) the operator replays them all at once.
    /// Replayed events of one aggregate share one order: each publishes the aggregate's state
    /// when it is delivered, so which goes first does not change what the archive ends with.
    pub async fn outbox_replay_dead(&self, topic: &str) -> Result<u64, AppError> {
        use sea_orm::{ColumnTrait, QueryFilter};
        let mut update = self.requeue_dead();
        if !topic.is_empty() {
            update = update.filter(outbox_event::Column::Topic.eq(topic));
        }
        let result = update.exec(self.db()).await?;
        tracing::info!(
            topic,
            replayed = result.rows_affected,
            "dead letters queued again"
        );
        Ok(result.rows_affected)
    }
}

/// One topic's backlog, as the metrics report it: what waits, for how long, and what gave up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicBacklog {
    /// The topic.
    pub topic: String,
    /// Events waiting for delivery: due, backing off, leased, or scheduled for later.
    pub pending: u64,
    /// How long the longest-waiting pending event has waited, seconds; 0 when none waits.
    pub oldest_pending_age_seconds: u64,
    /// Dead letters: events no relay delivers until an operator replays them.
    pub dead: u64,
}

/// The topics every backlog report lists, with zeros when nothing is queued, so a
/// dashboard shows a flat line rather than no line.
pub const KNOWN_TOPICS: [&str; 3] = [
    ACA_POSITION,
    FASCICOLO_CITIZEN,
    crate::io_messages::IO_MESSAGE,
];

impl crate::Store {
    /// The backlog of every known topic and of any other found in the table, by topic name.
    ///
    /// An event waits since it was queued, except a follow-up scheduled for later (a fine's
    /// republication), which waits from its due instant: its `order_micros` on the topics
    /// ordered by instants. On a sequenced topic `order_micros` is a sequence number, and the
    /// creation time is used; those topics schedule nothing for later.
    pub async fn outbox_backlog(&self) -> Result<Vec<TopicBacklog>, AppError> {
        use sea_orm::{ColumnTrait, QueryFilter, QueryOrder, QuerySelect};
        let counts: Vec<(String, String, i64, Option<i64>)> = outbox_event::Entity::find()
            .select_only()
            .column(outbox_event::Column::Topic)
            .column(outbox_event::Column::State)
            .column_as(outbox_event::Column::Id.count(), "events")
            .column_as(outbox_event::Column::OrderMicros.min(), "first_order")
            .filter(outbox_event::Column::State.is_in(["pending", "dead"]))
            .group_by(outbox_event::Column::Topic)
            .group_by(outbox_event::Column::State)
            .into_tuple()
            .all(self.db())
            .await?;
        let now = self.now();
        let now_micros = crate::ledger::micros(now);
        let mut backlog: std::collections::BTreeMap<String, TopicBacklog> = KNOWN_TOPICS
            .iter()
            .map(|topic| {
                let empty = TopicBacklog {
                    topic: (*topic).to_owned(),
                    pending: 0,
                    oldest_pending_age_seconds: 0,
                    dead: 0,
                };
                ((*topic).to_owned(), empty)
            })
            .collect();
        for (topic, state, events, first_order) in counts {
            let entry = backlog
                .entry(topic.clone())
                .or_insert_with(|| TopicBacklog {
                    topic: topic.clone(),
                    pending: 0,
                    oldest_pending_age_seconds: 0,
                    dead: 0,
                });
            let events = u64::try_from(events).unwrap_or(0);
            if state == "dead" {
                entry.dead = events;
                continue;
            }
            entry.pending = events;
            let waiting_since_micros = if SEQUENCED_TOPICS.contains(&topic.as_str()) {
                outbox_event::Entity::find()
                    .filter(outbox_event::Column::Topic.eq(topic.as_str()))
                    .filter(outbox_event::Column::State.eq("pending"))
                    .order_by_asc(outbox_event::Column::CreatedAt)
                    .one(self.db())
                    .await?
                    .map(|e| crate::ledger::micros(e.created_at))
            } else {
                first_order
            };
            entry.oldest_pending_age_seconds = waiting_since_micros
                .map(|since| {
                    u64::try_from(now_micros.saturating_sub(since) / 1_000_000).unwrap_or(0)
                })
                .unwrap_or(0);
        }
        Ok(backlog.into_values().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_gets_numbered_placeholders() {
        assert_eq!(
            placeholders(sea_orm::DbBackend::Postgres, "a = ? AND b = ?"),
            "a = $1 AND b = $2"
        );
        assert_eq!(
            placeholders(sea_orm::DbBackend::Sqlite, "a = ? AND b = ?"),
            "a = ? AND b = ?"
        );
    }

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
