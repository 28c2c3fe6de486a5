//! The FdR REST poller's state per creditor: the lease that lets one replica poll a creditor
//! at a time, the watermark of publication instants read so far, and which flow revisions
//! fetched over REST are already held. The lease is taken by one conditional upsert (insert
//! the row, or take it over when it is free, expired or already ours), which PostgreSQL
//! serialises on the row and SQLite on its single writer, so two replicas never both hold
//! it. Every write of the watermark names the holder and requires a live lease, so a poller
//! that stalled past its lease and was taken over changes nothing.

use std::collections::BTreeSet;

use incasso_reconciliation::DocumentKind;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Statement,
};
use time::OffsetDateTime;
use uuid::Uuid;

use super::lease::{self, LeaseTable};
use crate::entity::recon_fdr_poll;
use crate::ledger::micros;
use crate::outbox::placeholders;
use crate::{AppError, Store};

impl Store {
    /// Takes (or renews) the lease on polling `creditor` for `lease_ms` as `holder`; false
    /// when another holder's lease is still running.
    pub async fn take_fdr_lease(
        &self,
        creditor: &str,
        holder: Uuid,
        lease_ms: u64,
    ) -> Result<bool, AppError> {
        lease::take(
            self.db(),
            LeaseTable::FdrPoll,
            creditor,
            holder,
            lease_ms,
            self.now(),
        )
        .await
    }

    /// Gives the lease up, if `holder` still has it.
    pub async fn release_fdr_lease(&self, creditor: &str, holder: Uuid) -> Result<(), AppError> {
        lease::release(self.db(), LeaseTable::FdrPoll, creditor, holder).await
    }

    /// The publication instant up to which `creditor`'s flows have all been read, if any.
    pub async fn fdr_watermark(&self, creditor: &str) -> Result<Option<OffsetDateTime>, AppError> {
        Ok(recon_fdr_poll::Entity::find_by_id(creditor.to_owned())
            .one(self.db())
            .await?
            .and_then(|row| row.published_watermark))
    }

    /// Records a poll of `creditor` by `holder`, moving the watermark to `watermark` when
    /// given; false (and nothing written) when the lease is no longer `holder`'s.
    pub async fn record_fdr_poll(
        &self,
        creditor: &str,
        holder: Uuid,
        watermark: Option<OffsetDateTime>,
    ) -> Result<bool, AppError> {
        let now = self.now();
        let mut changes = recon_fdr_poll::ActiveModel {
            polled_at: Set(Some(now)),
            ..Default::default()
        };
        if let Some(watermark) = watermark {
            changes.published_watermark = Set(Some(watermark));
        }
        let result = recon_fdr_poll::Entity::update_many()
            .set(changes)
            .filter(recon_fdr_poll::Column::CreditorFiscalCode.eq(creditor))
            .filter(recon_fdr_poll::Column::LeaseHolder.eq(holder))
            .filter(recon_fdr_poll::Column::LeaseUntilMicros.gt(micros(now)))
            .exec(self.db())
            .await?;
        Ok(result.rows_affected == 1)
    }

    /// The revisions of flow `flow_id` of `psp_id` that `creditor` holds from the REST API.
    pub async fn fdr_revisions_held(
        &self,
        creditor: &str,
        flow_id: &str,
        psp_id: &str,
    ) -> Result<BTreeSet<u32>, AppError> {
        let backend = self.db().get_database_backend();
        let sql = placeholders(
            backend,
            "SELECT f.revision AS revision FROM recon_flow f \
             JOIN recon_document d ON d.id = f.document_id \
             WHERE f.creditor_fiscal_code = ? AND f.flow_id = ? AND f.psp_id = ? AND d.kind = ?",
        );
        let rows = self
            .db()
            .query_all_raw(Statement::from_sql_and_values(
                backend,
                sql,
                [
                    creditor.into(),
                    flow_id.into(),
                    psp_id.into(),
                    DocumentKind::FdrRest.to_string().into(),
                ],
            ))
            .await?;
        let mut held = BTreeSet::new();
        for row in rows {
            let revision: i32 = row.try_get("", "revision")?;
            held.insert(u32::try_from(revision).unwrap_or_default());
        }
        Ok(held)
    }
}
