//! App IO messages on the store's side: which (creditor, kind) send them and how many days
//! ahead reminders go ([`IoScheduling`]); the outbox events of topic [`IO_MESSAGE`], one per
//! message the domain's `io_message::schedule` calls for, queued in the transaction that
//! issues or changes the position and due at the message's instant; and the record of what
//! became of each (sent with IO's id, not on IO, sender not allowed, not sent and why), for
//! operators. Events name the notice and the purpose only: the message is composed from the
//! position as it stands when it comes due, and no personal data waits in the outbox.

use std::collections::{HashMap, HashSet};

use sea_orm::{ColumnTrait, EntityTrait, Order, QueryFilter, QueryOrder, QuerySelect, Set};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use incasso_domain::debt_position::{DebtKind, DebtPosition};
use incasso_domain::io_message::{self, IoPurpose, SendWhen};

use crate::entity::{io_message as io_row, outbox_event};
use crate::error::AppError;
use crate::{Store, outbox};

/// Topic of the App IO message events.
pub const IO_MESSAGE: &str = "io.message";

/// Which services send App IO messages: per (creditor, kind), the days before a due date a
/// reminder goes out. A (creditor, kind) not listed sends nothing and queues nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IoScheduling {
    services: HashMap<(String, DebtKind), u16>,
}

impl IoScheduling {
    /// Messages on for `creditor`'s positions of `kind`, reminders `reminder_days` ahead (0:
    /// none).
    pub fn enable(&mut self, creditor: &str, kind: DebtKind, reminder_days: u16) {
        self.services
            .insert((creditor.to_owned(), kind), reminder_days);
    }

    /// The reminder days of (`creditor`, `kind`), or `None` when its messages are off.
    pub fn reminder_days(&self, creditor: &str, kind: DebtKind) -> Option<u16> {
        self.services.get(&(creditor.to_owned(), kind)).copied()
    }

    /// True when no service sends messages.
    pub fn is_empty(&self) -> bool {
        self.services.is_empty()
    }
}

/// What an `io.message` event asks: send the message `purpose` about `notice_number` planned
/// for `when`, if the position still calls for it then.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IoMessageEvent {
    /// The position.
    pub debt_position_id: Uuid,
    /// The notice (18 digits).
    pub notice_number: String,
    /// Why.
    pub purpose: IoPurpose,
    /// When it was planned for, as the position's dates said when it was queued.
    pub when: SendWhen,
}

impl crate::outbox::TopicEvent for IoMessageEvent {
    const TOPIC: &'static str = IO_MESSAGE;
}

/// What became of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IoOutcome {
    /// Accepted by IO.
    Sent {
        /// IO's message id.
        io_message_id: String,
    },
    /// The citizen is not on IO (profile 404).
    NotOnIo,
    /// The citizen does not let this service write to them (`sender_allowed=false`).
    SenderNotAllowed,
    /// Not sent: why (paid, cancelled, rescheduled, messages off...).
    NotSent(String),
}

impl IoOutcome {
    fn name(&self) -> &'static str {
        match self {
            Self::Sent { .. } => "sent",
            Self::NotOnIo => "not_on_io",
            Self::SenderNotAllowed => "sender_not_allowed",
            Self::NotSent(_) => "not_sent",
        }
    }
}

/// One recorded outcome, for an operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IoMessageRecord {
    /// The outbox event it answers.
    pub event_id: Uuid,
    /// The position.
    pub debt_position_id: Uuid,
    /// The notice.
    pub notice_number: String,
    /// notice, reminder, reduced_amount_ending.
    pub purpose: String,
    /// sent, not_on_io, sender_not_allowed, not_sent.
    pub outcome: String,
    /// Why it was not sent, or why the citizen could not be reached.
    pub reason: Option<String>,
    /// IO's message id, once sent.
    pub io_message_id: Option<String>,
    /// When it was recorded.
    pub recorded_at: OffsetDateTime,
}

/// The filters of [`Store::list_io_messages`]; empty for any.
#[derive(Debug, Clone, Default)]
pub struct IoMessageFilter {
    /// Only this notice.
    pub notice_number: Option<String>,
    /// Only this position.
    pub debt_position_id: Option<Uuid>,
    /// Only this outcome (sent, not_on_io, sender_not_allowed, not_sent).
    pub outcome: Option<String>,
}

/// The outbox rows of the messages `positions` call for, due at their instants (at once for
/// those due already). With `fresh` the positions were just created; otherwise a message
/// already queued with the same plan (pending, sent or dead) is not queued again, so a change
/// requeues only what moved.
pub(crate) async fn queue(
    db: &sea_orm::DatabaseTransaction,
    scheduling: &IoScheduling,
    positions: &[&DebtPosition],
    now: OffsetDateTime,
    fresh: bool,
) -> Result<(), AppError> {
    if scheduling.is_empty() {
        return Ok(());
    }
    let mut rows = Vec::new();
    for position in positions {
        let Some(reminder_days) =
            scheduling.reminder_days(position.creditor.as_str(), position.kind())
        else {
            continue;
        };
        let aggregate = position.id.to_string();
        let queued: HashSet<String> = if fresh {
            HashSet::new()
        } else {
            outbox_event::Entity::find()
                .select_only()
                .column(outbox_event::Column::Payload)
                .filter(outbox_event::Column::Topic.eq(IO_MESSAGE))
                .filter(outbox_event::Column::AggregateId.eq(aggregate.as_str()))
                .into_tuple::<String>()
                .all(db)
                .await?
                .into_iter()
                .collect()
        };
        for message in io_message::schedule(position, reminder_days, now) {
            let event = IoMessageEvent {
                debt_position_id: position.id,
                notice_number: message.notice_number.as_str().to_owned(),
                purpose: message.purpose,
                when: message.when,
            };
            let payload = serde_json::to_string(&event)
                .map_err(|e| AppError::Internal(format!("an IO event does not serialise: {e}")))?;
            if queued.contains(&payload) {
                continue;
            }
            let due = match message.when {
                SendWhen::AtIssue => now,
                SendWhen::At(at) => at.max(now),
            };
            let mut row = outbox::model(IO_MESSAGE, &aggregate, payload, now);
            let due_micros = crate::ledger::micros(due);
            row.next_attempt_at = Set(due_micros);
            row.order_micros = Set(due_micros);
            rows.push(row);
        }
    }
    crate::batch::insert_chunked(db, rows, 12).await
}

impl Store {
    /// The same store, queueing App IO messages for the services `scheduling` lists.
    pub fn with_io_scheduling(mut self, scheduling: IoScheduling) -> Self {
        self.io_scheduling = std::sync::Arc::new(scheduling);
        self
    }

    /// Which services send App IO messages.
    pub fn io_scheduling(&self) -> &IoScheduling {
        &self.io_scheduling
    }

    /// The outcome recorded for an `io.message` event, if any: a message sent before a crash
    /// kept the event from being marked delivered is not sent again.
    pub async fn io_outcome_of(&self, event_id: Uuid) -> Result<Option<IoMessageRecord>, AppError> {
        Ok(io_row::Entity::find()
            .filter(io_row::Column::EventId.eq(event_id))
            .filter(io_row::Column::Outcome.eq("sent"))
            .one(self.db())
            .await?
            .map(record))
    }

    /// Records what became of the message of event `event_id`.
    pub async fn record_io_outcome(
        &self,
        event_id: Uuid,
        event: &IoMessageEvent,
        outcome: &IoOutcome,
    ) -> Result<(), AppError> {
        let (reason, io_message_id) = match outcome {
            IoOutcome::Sent { io_message_id } => (None, Some(io_message_id.clone())),
            IoOutcome::NotOnIo => (Some("the citizen is not on App IO".to_owned()), None),
            IoOutcome::SenderNotAllowed => (
                Some("the citizen does not allow this service to write to them".to_owned()),
                None,
            ),
            IoOutcome::NotSent(reason) => (Some(reason.chars().take(500).collect()), None),
        };
        io_row::Entity::insert(io_row::ActiveModel {
            id: Set(Uuid::now_v7()),
            event_id: Set(event_id),
            debt_position_id: Set(event.debt_position_id),
            notice_number: Set(event.notice_number.chars().take(18).collect()),
            purpose: Set(event.purpose.as_str().to_owned()),
            outcome: Set(outcome.name().to_owned()),
            reason: Set(reason),
            io_message_id: Set(io_message_id.map(|id| id.chars().take(64).collect())),
            recorded_at: Set(self.now()),
        })
        .exec_without_returning(self.db())
        .await?;
        Ok(())
    }

    /// The recorded outcomes matching `filter`, oldest first.
    pub async fn list_io_messages(
        &self,
        filter: &IoMessageFilter,
    ) -> Result<Vec<IoMessageRecord>, AppError> {
        let mut query = io_row::Entity::find().order_by(io_row::Column::Id, Order::Asc);
        if let Some(notice) = &filter.notice_number {
            query = query.filter(io_row::Column::NoticeNumber.eq(notice.as_str()));
        }
        if let Some(position) = filter.debt_position_id {
            query = query.filter(io_row::Column::DebtPositionId.eq(position));
        }
        if let Some(outcome) = &filter.outcome {
            query = query.filter(io_row::Column::Outcome.eq(outcome.as_str()));
        }
        Ok(query
            .all(self.db())
            .await?
            .into_iter()
            .map(record)
            .collect())
    }
}

fn record(row: io_row::Model) -> IoMessageRecord {
    IoMessageRecord {
        event_id: row.event_id,
        debt_position_id: row.debt_position_id,
        notice_number: row.notice_number,
        purpose: row.purpose,
        outcome: row.outcome,
        reason: row.reason,
        io_message_id: row.io_message_id,
        recorded_at: row.recorded_at,
    }
}
