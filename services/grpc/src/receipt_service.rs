//! `incasso.v1.ReceiptService`: the receipts the Node delivered, for the finance office (the
//! refund worklist, listed or exported whole) and for operators (conflicts, parked receipts
//! and their retry). Read only except for the retry, which books a parked receipt exactly as
//! a delivery would. Every handler first asks [`authorize`], the one place where the access
//! control of a later issue will decide who may read receipts and who may retry them.

use std::pin::Pin;

use futures::Stream;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use incasso_store::receipts::query::ConflictFilterInput;
use incasso_store::{AppError, Store};

use crate::convert;
use crate::pb;
use crate::pb::receipt_service_server::ReceiptService;
use crate::status::to_status;

/// Receipts per export chunk: the most an export holds in memory.
const EXPORT_CHUNK: u64 = 500;

/// What a call does, as access control will see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Reading receipts, conflicts and parked receipts.
    ReadReceipts,
    /// Booking parked receipts now: it writes to the ledger.
    RetryParkedReceipts,
}

/// Decides whether the caller of `request` may do what `scope` names. Today every caller
/// that reached the gRPC port may (the port is reachable from the municipal backends only,
/// over mTLS); the later access-control issue decides here, from the request's peer
/// certificate or metadata, and answers `PERMISSION_DENIED` without touching the store.
pub fn authorize<T>(request: &Request<T>, scope: Scope) -> Result<(), Status> {
    let _ = (request, scope);
    Ok(())
}

/// The ReceiptService implementation.
#[derive(Debug, Clone)]
pub struct ReceiptApi {
    store: Store,
}

impl ReceiptApi {
    /// A service over `store`.
    pub fn new(store: Store) -> Self {
        Self { store }
    }
}

type ExportStream = Pin<Box<dyn Stream<Item = Result<pb::Receipt, Status>> + Send>>;

#[tonic::async_trait]
impl ReceiptService for ReceiptApi {
    #[tracing::instrument(name = "ListReceipts", skip_all)]
    async fn list_receipts(
        &self,
        request: Request<pb::ListReceiptsRequest>,
    ) -> Result<Response<pb::ListReceiptsResponse>, Status> {
        authorize(&request, Scope::ReadReceipts)?;
        let r = request.get_ref();
        let filter = convert::receipt_filter(r.into()).map_err(to_status)?;
        let page = self
            .store
            .list_receipts(&filter, r.page_size, &r.page_token)
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::ListReceiptsResponse {
            receipts: page.receipts.iter().map(convert::receipt).collect(),
            next_page_token: page.next_page_token,
        }))
    }

    type ExportReceiptsStream = ExportStream;

    #[tracing::instrument(name = "ExportReceipts", skip_all)]
    async fn export_receipts(
        &self,
        request: Request<pb::ExportReceiptsRequest>,
    ) -> Result<Response<Self::ExportReceiptsStream>, Status> {
        authorize(&request, Scope::ReadReceipts)?;
        let filter = request.into_inner().filter.unwrap_or_default();
        let filter = convert::receipt_filter((&filter).into())
            .and_then(|input| self.store.parse_receipt_filter(&input))
            .map_err(|e| to_status(convert::nested("filter", e)))?;
        // One chunk in flight: the channel holds at most a chunk, the query reads one more.
        let (tx, rx) = mpsc::channel(EXPORT_CHUNK as usize);
        let store = self.store.clone();
        tokio::spawn(async move {
            let mut after = None;
            let mut exported = 0u64;
            loop {
                let chunk = match store.receipts_after(&filter, after, EXPORT_CHUNK).await {
                    Ok(chunk) => chunk,
                    Err(error) => {
                        let _ = tx.send(Err(to_status(error))).await;
                        return;
                    }
                };
                let Some(last) = chunk.last() else { break };
                after = Some(last.id);
                for receipt in &chunk {
                    if tx.send(Ok(convert::receipt(receipt))).await.is_err() {
                        tracing::warn!(exported, "export reader went away");
                        return;
                    }
                    exported += 1;
                }
            }
            tracing::info!(exported, "receipt export finished");
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    #[tracing::instrument(name = "GetReceipt", skip_all)]
    async fn get_receipt(
        &self,
        request: Request<pb::GetReceiptRequest>,
    ) -> Result<Response<pb::GetReceiptResponse>, Status> {
        authorize(&request, Scope::ReadReceipts)?;
        let lookup = convert::receipt_lookup(request.get_ref()).map_err(to_status)?;
        let detail = self.store.get_receipt(&lookup).await.map_err(to_status)?;
        Ok(Response::new(convert::receipt_detail(&detail)))
    }

    #[tracing::instrument(name = "ListReceiptConflicts", skip_all)]
    async fn list_receipt_conflicts(
        &self,
        request: Request<pb::ListReceiptConflictsRequest>,
    ) -> Result<Response<pb::ListReceiptConflictsResponse>, Status> {
        authorize(&request, Scope::ReadReceipts)?;
        let r = request.get_ref();
        let page = self
            .store
            .list_receipt_conflicts(
                &ConflictFilterInput {
                    creditor_fiscal_code: r.creditor_fiscal_code.clone(),
                    iuv: r.iuv.clone(),
                    receipt_id: r.receipt_id.clone(),
                },
                r.page_size,
                &r.page_token,
            )
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::ListReceiptConflictsResponse {
            conflicts: page
                .conflicts
                .iter()
                .map(convert::receipt_conflict)
                .collect(),
            next_page_token: page.next_page_token,
        }))
    }

    #[tracing::instrument(name = "ListParkedReceipts", skip_all)]
    async fn list_parked_receipts(
        &self,
        request: Request<pb::ListParkedReceiptsRequest>,
    ) -> Result<Response<pb::ListParkedReceiptsResponse>, Status> {
        authorize(&request, Scope::ReadReceipts)?;
        let request = request.get_ref();
        let page = self
            .store
            .list_parked_receipts_page(
                request.include_booked,
                request.page_size,
                &request.page_token,
            )
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::ListParkedReceiptsResponse {
            parked_receipts: page
                .parked_receipts
                .iter()
                .map(convert::parked_receipt)
                .collect(),
            next_page_token: page.next_page_token,
        }))
    }

    #[tracing::instrument(name = "RetryParkedReceipts", skip_all)]
    async fn retry_parked_receipts(
        &self,
        request: Request<pb::RetryParkedReceiptsRequest>,
    ) -> Result<Response<pb::RetryParkedReceiptsResponse>, Status> {
        authorize(&request, Scope::RetryParkedReceipts)?;
        let ids = convert::retry_ids(request.get_ref()).map_err(to_status)?;
        if let Some(ids) = &ids {
            // Refused before anything is retried, so that a typo in one id does not leave
            // the caller without the outcomes of the others.
            let unknown = self
                .store
                .unknown_parked_receipts(ids)
                .await
                .map_err(to_status)?;
            if !unknown.is_empty() {
                let names: Vec<String> = unknown.iter().map(ToString::to_string).collect();
                return Err(to_status(AppError::NotFound {
                    what: format!("parked receipt {}", names.join(", ")),
                }));
            }
        }
        let outcomes = self
            .store
            .retry_parked_receipts(ids.as_deref())
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::RetryParkedReceiptsResponse {
            outcomes: outcomes
                .iter()
                .map(|(id, outcome)| convert::retry_outcome(*id, outcome))
                .collect(),
        }))
    }
}
