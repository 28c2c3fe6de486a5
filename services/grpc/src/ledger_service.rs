//! `incasso.v1.LedgerService`: read-only access to the books for auditors and the finance
//! office. There is deliberately no write method.

use std::pin::Pin;

use futures::Stream;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use incasso_store::Store;

use crate::convert::{self, EntryFilterFields};
use crate::pb;
use crate::pb::ledger_service_server::LedgerService;
use crate::status::to_status;

/// Entries per export chunk: the most an export holds in memory.
const EXPORT_CHUNK: u64 = 1000;

/// The LedgerService implementation.
#[derive(Debug, Clone)]
pub struct LedgerApi {
    store: Store,
}

impl LedgerApi {
    /// A service over `store`.
    pub fn new(store: Store) -> Self {
        Self { store }
    }
}

type ExportStream = Pin<Box<dyn Stream<Item = Result<pb::LedgerEntry, Status>> + Send>>;

#[tonic::async_trait]
impl LedgerService for LedgerApi {
    #[tracing::instrument(name = "ListEntries", skip_all)]
    async fn list_entries(
        &self,
        request: Request<pb::ListEntriesRequest>,
    ) -> Result<Response<pb::ListEntriesResponse>, Status> {
        let r = request.get_ref();
        let filter = convert::entry_filter(
            r.from.as_ref(),
            r.to.as_ref(),
            EntryFilterFields {
                account: &r.account,
                creditor_fiscal_code: &r.creditor_fiscal_code,
                kind: r.kind,
                event_type: &r.event_type,
                notice_number: &r.notice_number,
                iuv: &r.iuv,
                debt_position_id: &r.debt_position_id,
                receipt_id: &r.receipt_id,
                reporting_flow_id: &r.reporting_flow_id,
                treasury_credit_id: &r.treasury_credit_id,
            },
        )
        .map_err(to_status)?;
        let page = self
            .store
            .list_ledger_entries(&filter, r.page_size, &r.page_token)
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::ListEntriesResponse {
            entries: page.entries.iter().map(convert::ledger_entry).collect(),
            next_page_token: page.next_page_token,
        }))
    }

    #[tracing::instrument(name = "GetEntry", skip_all)]
    async fn get_entry(
        &self,
        request: Request<pb::GetEntryRequest>,
    ) -> Result<Response<pb::GetEntryResponse>, Status> {
        let r = request.get_ref();
        let sequence = (r.sequence != 0).then_some(r.sequence);
        let (entry, document) = self
            .store
            .get_ledger_entry(sequence, &r.id)
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::GetEntryResponse {
            entry: Some(convert::ledger_entry(&entry)),
            source_document: document
                .as_ref()
                .map(|d| convert::source_document(d, entry.entry.source_document_sha256)),
        }))
    }

    #[tracing::instrument(name = "GetBalances", skip_all)]
    async fn get_balances(
        &self,
        request: Request<pb::GetBalancesRequest>,
    ) -> Result<Response<pb::GetBalancesResponse>, Status> {
        let r = request.get_ref();
        let as_of = convert::instant("as_of", r.as_of.as_ref()).map_err(to_status)?;
        let (as_of_sequence, balances) = self
            .store
            .ledger_balances(as_of, &r.creditor_fiscal_code, &r.account_type)
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::GetBalancesResponse {
            as_of_sequence,
            balances: balances
                .into_iter()
                .map(|b| pb::AccountBalance {
                    account: b.account,
                    balance_cents: b.balance_cents,
                })
                .collect(),
        }))
    }

    #[tracing::instrument(name = "GetTrialBalance", skip_all)]
    async fn get_trial_balance(
        &self,
        request: Request<pb::GetTrialBalanceRequest>,
    ) -> Result<Response<pb::GetTrialBalanceResponse>, Status> {
        let r = request.get_ref();
        let rows = self
            .store
            .trial_balance(&r.from, &r.to, &r.creditor_fiscal_code)
            .await
            .map_err(to_status)?;
        let total_debit_cents = rows.iter().map(|r| r.debit_cents).sum();
        let total_credit_cents = rows.iter().map(|r| r.credit_cents).sum();
        Ok(Response::new(pb::GetTrialBalanceResponse {
            accounts: rows
                .into_iter()
                .map(|r| pb::TrialBalanceAccount {
                    account: r.account,
                    debit_cents: r.debit_cents,
                    credit_cents: r.credit_cents,
                })
                .collect(),
            total_debit_cents,
            total_credit_cents,
        }))
    }

    #[tracing::instrument(name = "VerifyLedger", skip_all)]
    async fn verify_ledger(
        &self,
        request: Request<pb::VerifyLedgerRequest>,
    ) -> Result<Response<pb::VerifyLedgerResponse>, Status> {
        let r = request.get_ref();
        let checkpoints = convert::checkpoints(&r.checkpoints).map_err(to_status)?;
        let from = (r.from_sequence != 0).then_some(r.from_sequence);
        let to = (r.to_sequence != 0).then_some(r.to_sequence);
        let report = self
            .store
            .verify_ledger(from, to, &checkpoints, !r.chain_only)
            .await
            .map_err(to_status)?;
        if !report.ok {
            tracing::error!(
                first_broken_sequence = report.first_broken_sequence,
                reason = %report.reason,
                "ledger verification failed"
            );
        }
        Ok(Response::new(pb::VerifyLedgerResponse {
            ok: report.ok,
            entries_checked: report.entries_checked,
            first_broken_sequence: report.first_broken_sequence.unwrap_or(0),
            reason: report.reason,
            last: Some(pb::Checkpoint {
                sequence: report.last_sequence,
                hash: incasso_domain::ledger::chain::hex_lower(&report.last_hash),
            }),
        }))
    }

    #[tracing::instrument(name = "GetCheckpoint", skip_all)]
    async fn get_checkpoint(
        &self,
        _request: Request<pb::GetCheckpointRequest>,
    ) -> Result<Response<pb::Checkpoint>, Status> {
        let head = self.store.ledger_head().await.map_err(to_status)?;
        Ok(Response::new(convert::checkpoint(&head)))
    }

    type ExportEntriesStream = ExportStream;

    #[tracing::instrument(name = "ExportEntries", skip_all)]
    async fn export_entries(
        &self,
        request: Request<pb::ExportEntriesRequest>,
    ) -> Result<Response<Self::ExportEntriesStream>, Status> {
        let filter = request.into_inner().filter.unwrap_or_default();
        let input = convert::entry_filter(
            filter.from.as_ref(),
            filter.to.as_ref(),
            EntryFilterFields {
                account: &filter.account,
                creditor_fiscal_code: &filter.creditor_fiscal_code,
                kind: filter.kind,
                event_type: &filter.event_type,
                notice_number: &filter.notice_number,
                iuv: &filter.iuv,
                debt_position_id: &filter.debt_position_id,
                receipt_id: &filter.receipt_id,
                reporting_flow_id: &filter.reporting_flow_id,
                treasury_credit_id: &filter.treasury_credit_id,
            },
        )
        .map_err(to_status)?;
        let mut export = self.store.parse_export_filter(&input).map_err(to_status)?;
        // One chunk in flight: the channel holds at most a chunk, the query reads one more.
        let (tx, rx) = mpsc::channel(EXPORT_CHUNK as usize);
        let store = self.store.clone();
        tokio::spawn(async move {
            let mut after = 0;
            let mut exported = 0u64;
            loop {
                let chunk = match store.export_chunk(&mut export, after, EXPORT_CHUNK).await {
                    Ok(chunk) => chunk,
                    Err(error) => {
                        let _ = tx.send(Err(to_status(error))).await;
                        return;
                    }
                };
                let Some(last) = chunk.last() else { break };
                after = last.entry.sequence;
                for entry in &chunk {
                    if tx.send(Ok(convert::ledger_entry(entry))).await.is_err() {
                        tracing::warn!(exported, "export reader went away");
                        return;
                    }
                    exported += 1;
                }
            }
            tracing::info!(exported, "ledger export finished");
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}
