//! Missing receipts recovered from PagoPA's biz-events API: which receipts are missing, what
//! each attempt to recover one found, and the lease that lets one replica recover a
//! creditor's receipts at a time.
//!
//! A receipt is *missing* when a transfer key of the creditor is labelled `IUV_NO_RT` (an FdR
//! line reports it, no receipt has it): one per (IUV, IUR), whatever the number of transfers.
//! The line's outcome code comes with it, so the caller can leave code-9 lines (paid without
//! RPT: PagoPA holds no receipt, and the contract keeps them `IUV_NO_RT`) alone. The receipt
//! itself, once found, is booked through the receipt path like the Node's
//! ([`Store::record_receipt`]), and the labels caught up with
//! [`Store::refresh_reconciliation`]; this module only keeps the attempts
//! (`recon_receipt_recovery`): the last outcome, how many attempts, and when the receipt may be
//! asked for again, so a receipt PagoPA does not have is not asked for in a hot loop.

use std::collections::BTreeMap;

use incasso_domain::reconciliation::OutcomeCode;
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, Statement,
};
use time::OffsetDateTime;
use uuid::Uuid;

use super::evidence::outcome_from_code;
use super::lease::{self, LeaseTable};
use crate::entity::recon_receipt_recovery;
use crate::ledger::micros;
use crate::outbox::placeholders;
use crate::{AppError, Store};

/// What the last attempt to recover a receipt found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RecoveryState {
    /// PagoPA gave the receipt and it is stored (booked, or parked to be booked).
    Recovered,
    /// PagoPA has no such receipt (404): asked again later.
    NotFound,
    /// The API could not answer (unavailable, refused the key, an answer that is not a
    /// receipt of this payment) or the receipt could not be stored: asked again later.
    Failed,
}

impl RecoveryState {
    /// As stored: `recovered`, `not_found`, `failed`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Recovered => "recovered",
            Self::NotFound => "not_found",
            Self::Failed => "failed",
        }
    }

    /// The state stored as `text`.
    pub fn parse(text: &str) -> Option<Self> {
        [Self::Recovered, Self::NotFound, Self::Failed]
            .into_iter()
            .find(|s| s.as_str() == text)
    }
}

/// The recovery of one receipt (creditor, IUV, IUR), as last attempted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiptRecovery {
    /// The creditor (the FdR's receiving organization).
    pub creditor_fiscal_code: String,
    /// IUV.
    pub iuv: String,
    /// IUR: the receiptId asked for.
    pub receipt_id: String,
    /// What the last attempt found.
    pub state: RecoveryState,
    /// Attempts so far.
    pub attempts: u32,
    /// When it was first asked for.
    pub first_attempt_at: OffsetDateTime,
    /// When it was last asked for.
    pub last_attempt_at: OffsetDateTime,
    /// When it may be asked for again; `None` once recovered.
    pub next_attempt_at: Option<OffsetDateTime>,
    /// Why it is not recovered (the API's words), or what was recovered.
    pub detail: Option<String>,
}

/// A receipt missing for an `IUV_NO_RT` key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingReceipt {
    /// The creditor.
    pub creditor_fiscal_code: String,
    /// IUV.
    pub iuv: String,
    /// IUR (the FdR line's `identificativoUnivocoRiscossione`).
    pub receipt_id: String,
    /// The idTransfers of the creditor's `IUV_NO_RT` keys of this receipt.
    pub id_transfers: Vec<i16>,
    /// The outcome codes of the lines reporting it in the latest flow revision.
    pub outcomes: Vec<OutcomeCode>,
    /// The last attempt, if any.
    pub last_attempt: Option<ReceiptRecovery>,
    /// A receipt of this key is stored already (delivered since the last relabelling): only
    /// the label is behind, nothing needs asking.
    pub held: bool,
}

impl MissingReceipt {
    /// True when every line says paid without RPT (code 9): PagoPA holds no receipt of it.
    pub fn paid_without_rpt(&self) -> bool {
        !self.outcomes.is_empty() && self.outcomes.iter().all(|o| *o == OutcomeCode::NoRpt)
    }

    /// True when it may be asked for at `now` (never asked, or its pause is over).
    pub fn due(&self, now: OffsetDateTime) -> bool {
        self.last_attempt
            .as_ref()
            .is_none_or(|a| a.next_attempt_at.is_some_and(|at| at <= now))
    }
}

fn corrupt(what: impl std::fmt::Display) -> AppError {
    AppError::Internal(format!("stored receipt recovery is invalid: {what}"))
}

fn from_micros(micros: i64) -> Option<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1000).ok()
}

impl TryFrom<recon_receipt_recovery::Model> for ReceiptRecovery {
    type Error = AppError;

    fn try_from(row: recon_receipt_recovery::Model) -> Result<Self, AppError> {
        let state = RecoveryState::parse(&row.state).ok_or_else(|| corrupt(&row.state))?;
        Ok(Self {
            creditor_fiscal_code: row.creditor_fiscal_code,
            iuv: row.iuv,
            receipt_id: row.receipt_id,
            state,
            attempts: u32::try_from(row.attempts).unwrap_or_default(),
            first_attempt_at: row.first_attempt_at,
            last_attempt_at: row.last_attempt_at,
            next_attempt_at: (state != RecoveryState::Recovered)
                .then(|| from_micros(row.next_attempt_micros))
                .flatten(),
            detail: row.detail,
        })
    }
}

impl Store {
    /// The receipts missing for `creditor`'s `IUV_NO_RT` keys, in (IUV, IUR) order, each with
    /// its lines' outcome codes and its last recovery attempt.
    pub async fn missing_receipts(&self, creditor: &str) -> Result<Vec<MissingReceipt>, AppError> {
        let db = self.db();
        let backend = db.get_database_backend();
        let sql = placeholders(
            backend,
            "SELECT iuv, receipt_id, id_transfer FROM recon_label \
             WHERE creditor_fiscal_code = ? AND subject_kind = 'transfer' AND label = 'IUV_NO_RT' \
             ORDER BY iuv, receipt_id, id_transfer",
        );
        let rows = db
            .query_all_raw(Statement::from_sql_and_values(
                backend,
                sql,
                [creditor.into()],
            ))
            .await?;
        let mut keys: BTreeMap<(String, String), Vec<i16>> = BTreeMap::new();
        for row in rows {
            let iuv: Option<String> = row.try_get("", "iuv")?;
            let receipt_id: Option<String> = row.try_get("", "receipt_id")?;
            let id_transfer: Option<i16> = row.try_get("", "id_transfer")?;
            if let (Some(iuv), Some(receipt_id), Some(id_transfer)) = (iuv, receipt_id, id_transfer)
            {
                keys.entry((iuv, receipt_id)).or_default().push(id_transfer);
            }
        }
        let mut attempts: BTreeMap<(String, String), ReceiptRecovery> = self
            .receipt_recoveries(Some(creditor))
            .await?
            .into_iter()
            .map(|r| ((r.iuv.clone(), r.receipt_id.clone()), r))
            .collect();
        let lines_sql = placeholders(
            backend,
            "SELECT fl.outcome, f.created_at, f.revision FROM recon_flow_line fl \
             JOIN recon_flow f ON f.id = fl.flow_row_id \
             WHERE f.creditor_fiscal_code = ? AND fl.iuv = ? AND fl.receipt_id = ? \
             ORDER BY f.created_at DESC, f.revision DESC",
        );
        let held_sql = placeholders(
            backend,
            "SELECT COUNT(*) AS n FROM receipt_transfer \
             WHERE beneficiary_fiscal_code = ? AND iuv = ? AND receipt_id = ?",
        );
        let mut missing = Vec::with_capacity(keys.len());
        for ((iuv, receipt_id), id_transfers) in keys {
            let held = db
                .query_one_raw(Statement::from_sql_and_values(
                    backend,
                    held_sql.clone(),
                    [
                        creditor.into(),
                        iuv.clone().into(),
                        receipt_id.clone().into(),
                    ],
                ))
                .await?
                .map(|row| row.try_get::<i64>("", "n"))
                .transpose()?
                .unwrap_or_default()
                > 0;
            let rows = db
                .query_all_raw(Statement::from_sql_and_values(
                    backend,
                    lines_sql.clone(),
                    [
                        creditor.into(),
                        iuv.clone().into(),
                        receipt_id.clone().into(),
                    ],
                ))
                .await?;
            // The lines of the latest revision reporting the receipt.
            let mut outcomes = Vec::new();
            let mut latest: Option<(OffsetDateTime, i32)> = None;
            for row in rows {
                let at: OffsetDateTime = row.try_get("", "created_at")?;
                let revision: i32 = row.try_get("", "revision")?;
                if latest.is_some_and(|l| l != (at, revision)) {
                    break;
                }
                latest = Some((at, revision));
                outcomes.push(outcome_from_code(row.try_get("", "outcome")?)?);
            }
            let last_attempt = attempts.remove(&(iuv.clone(), receipt_id.clone()));
            missing.push(MissingReceipt {
                creditor_fiscal_code: creditor.to_owned(),
                iuv,
                receipt_id,
                id_transfers,
                outcomes,
                last_attempt,
                held,
            });
        }
        Ok(missing)
    }

    /// Records an attempt to recover (`creditor`, `iuv`, `receipt_id`): what it found, why
    /// (`detail`), and when it may be asked for again (`next_attempt_at`, ignored once
    /// recovered). Returns the recovery as now stored.
    pub async fn record_receipt_recovery(
        &self,
        creditor: &str,
        iuv: &str,
        receipt_id: &str,
        state: RecoveryState,
        detail: Option<String>,
        next_attempt_at: Option<OffsetDateTime>,
    ) -> Result<ReceiptRecovery, AppError> {
        let now = self.now();
        let next = match (state, next_attempt_at) {
            (RecoveryState::Recovered, _) | (_, None) => 0,
            (_, Some(at)) => micros(at),
        };
        recon_receipt_recovery::Entity::insert(recon_receipt_recovery::ActiveModel {
            creditor_fiscal_code: Set(creditor.to_owned()),
            iuv: Set(iuv.to_owned()),
            receipt_id: Set(receipt_id.to_owned()),
            state: Set(state.as_str().to_owned()),
            attempts: Set(1),
            first_attempt_at: Set(now),
            last_attempt_at: Set(now),
            next_attempt_micros: Set(next),
            detail: Set(detail),
        })
        .on_conflict(
            OnConflict::columns([
                recon_receipt_recovery::Column::CreditorFiscalCode,
                recon_receipt_recovery::Column::Iuv,
                recon_receipt_recovery::Column::ReceiptId,
            ])
            .update_columns([
                recon_receipt_recovery::Column::State,
                recon_receipt_recovery::Column::LastAttemptAt,
                recon_receipt_recovery::Column::NextAttemptMicros,
                recon_receipt_recovery::Column::Detail,
            ])
            .value(
                recon_receipt_recovery::Column::Attempts,
                Expr::col((
                    recon_receipt_recovery::Entity,
                    recon_receipt_recovery::Column::Attempts,
                ))
                .add(1),
            )
            .to_owned(),
        )
        .exec_without_returning(self.db())
        .await?;
        self.receipt_recovery(creditor, iuv, receipt_id)
            .await?
            .ok_or_else(|| corrupt("the recovery just written is not there"))
    }

    /// The recovery of one receipt, if it was ever asked for.
    pub async fn receipt_recovery(
        &self,
        creditor: &str,
        iuv: &str,
        receipt_id: &str,
    ) -> Result<Option<ReceiptRecovery>, AppError> {
        recon_receipt_recovery::Entity::find_by_id((
            creditor.to_owned(),
            iuv.to_owned(),
            receipt_id.to_owned(),
        ))
        .one(self.db())
        .await?
        .map(ReceiptRecovery::try_from)
        .transpose()
    }

    /// Every recovery attempted, of `creditor` or of all, in (creditor, IUV, IUR) order.
    pub async fn receipt_recoveries(
        &self,
        creditor: Option<&str>,
    ) -> Result<Vec<ReceiptRecovery>, AppError> {
        let mut query = recon_receipt_recovery::Entity::find();
        if let Some(creditor) = creditor {
            query = query.filter(recon_receipt_recovery::Column::CreditorFiscalCode.eq(creditor));
        }
        query
            .order_by_asc(recon_receipt_recovery::Column::CreditorFiscalCode)
            .order_by_asc(recon_receipt_recovery::Column::Iuv)
            .order_by_asc(recon_receipt_recovery::Column::ReceiptId)
            .all(self.db())
            .await?
            .into_iter()
            .map(ReceiptRecovery::try_from)
            .collect()
    }

    /// Takes (or renews) the lease on recovering `creditor`'s receipts for `lease_ms` as
    /// `holder`; false when another holder's lease is still running.
    pub async fn take_recovery_lease(
        &self,
        creditor: &str,
        holder: Uuid,
        lease_ms: u64,
    ) -> Result<bool, AppError> {
        lease::take(
            self.db(),
            LeaseTable::Recovery,
            creditor,
            holder,
            lease_ms,
            self.now(),
        )
        .await
    }

    /// Gives the recovery lease up, if `holder` still has it.
    pub async fn release_recovery_lease(
        &self,
        creditor: &str,
        holder: Uuid,
    ) -> Result<(), AppError> {
        lease::release(self.db(), LeaseTable::Recovery, creditor, holder).await
    }
}
