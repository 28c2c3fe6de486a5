//! `incasso.v1.ReconciliationService`: the finance office's view of reconciliation (transfers
//! with their labels and scope, reporting flows with their treasury state, treasury credits,
//! a key's label history, a date range's summary) and the import of evidence documents from
//! its tools, the same import as `incasso recon import`. Reads first label the receipts
//! booked since the last import, so they include every receipt committed before them (an
//! import of the creditor that is running labels them itself). Every handler first asks
//! [`authorize`], the one place where the later access-control issue decides who may read
//! reconciliation and who may import.

use tonic::{Request, Response, Status, Streaming};

use incasso_domain::reconciliation::Subject;
use incasso_domain::validation::ValidationErrors;
use incasso_store::reconciliation::TreasuryAccounts;
use incasso_store::{AppError, Store};

use crate::convert::reconciliation as convert;
use crate::pb;
use crate::pb::reconciliation_service_server::ReconciliationService;
use crate::status::to_status;

/// The largest document ImportDocument takes, all chunks together: it is held in memory
/// while it is read. Larger documents go through `incasso recon import`, which streams files.
pub const MAX_DOCUMENT_BYTES: usize = 64 * 1024 * 1024;

/// How long a read waits for a running import or catch-up of the creditor before it answers
/// from the labels stored: a catch-up takes milliseconds, a day's statement minutes.
const CATCH_UP_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// What a call does, as access control will see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Reading labels, flows, credits, history and summaries.
    ReadReconciliation,
    /// Importing an evidence document: it writes evidence and labels.
    ImportDocument,
}

/// Decides whether the caller of `request` may do what `scope` names. Today every caller
/// that reached the gRPC port may; the access-control issue decides here and answers
/// `PERMISSION_DENIED` without touching the store.
pub fn authorize<T>(request: &Request<T>, scope: Scope) -> Result<(), Status> {
    let _ = (request, scope);
    Ok(())
}

/// The ReconciliationService implementation.
#[derive(Debug, Clone)]
pub struct ReconciliationApi {
    store: Store,
    accounts: TreasuryAccounts,
}

impl ReconciliationApi {
    /// A service over `store`; `accounts` tell which creditor a treasury document belongs to.
    pub fn new(store: Store, accounts: TreasuryAccounts) -> Self {
        Self { store, accounts }
    }

    /// Labels the keys of receipts booked since the last import (of `creditor`, or of every
    /// creditor when the request names none) before a read answers, so the read includes
    /// every receipt committed before it. A failure is logged and the read answers from the
    /// labels stored: the receipts stay queued for the next try. A running import is waited
    /// for [`CATCH_UP_WAIT`] at most.
    async fn catch_up(&self, creditor: &str) {
        let creditor = Some(creditor.trim()).filter(|c| !c.is_empty());
        if let Err(error) = self
            .store
            .catch_up_reconciliation(creditor, Some(CATCH_UP_WAIT))
            .await
        {
            tracing::error!(
                %error,
                "labelling receipts booked since the last import failed: \
                 answering from the labels stored"
            );
        }
    }
}

fn too_large() -> AppError {
    AppError::Invalid(ValidationErrors::single(
        "content",
        format!(
            "the document is larger than {} MiB: import it with `incasso recon import`",
            MAX_DOCUMENT_BYTES / (1024 * 1024)
        ),
    ))
}

#[tonic::async_trait]
impl ReconciliationService for ReconciliationApi {
    #[tracing::instrument(name = "ListTransfers", skip_all)]
    async fn list_transfers(
        &self,
        request: Request<pb::ListTransfersRequest>,
    ) -> Result<Response<pb::ListTransfersResponse>, Status> {
        authorize(&request, Scope::ReadReconciliation)?;
        let r = request.get_ref();
        let filter = convert::transfer_filter(r).map_err(to_status)?;
        self.catch_up(&r.creditor_fiscal_code).await;
        let page = self
            .store
            .list_reconciliation_transfers(&filter, r.page_size, &r.page_token)
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::ListTransfersResponse {
            transfers: page.transfers.iter().map(convert::transfer).collect(),
            next_page_token: page.next_page_token,
        }))
    }

    #[tracing::instrument(name = "GetTransferHistory", skip_all)]
    async fn get_transfer_history(
        &self,
        request: Request<pb::GetTransferHistoryRequest>,
    ) -> Result<Response<pb::GetTransferHistoryResponse>, Status> {
        authorize(&request, Scope::ReadReconciliation)?;
        self.catch_up(&request.get_ref().creditor_fiscal_code).await;
        let (creditor, key) = convert::transfer_key(request.get_ref())
            .parse()
            .map_err(to_status)?;
        let posting = self
            .store
            .reported_posting(&creditor, &key)
            .await
            .map_err(to_status)?;
        let changes = self
            .store
            .reconciliation_history(&creditor, &Subject::Transfer(key))
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::GetTransferHistoryResponse {
            changes: changes.iter().map(convert::label_change).collect(),
            reported_posting: posting.as_ref().map(convert::reported_posting),
        }))
    }

    #[tracing::instrument(name = "ListReportingFlows", skip_all)]
    async fn list_reporting_flows(
        &self,
        request: Request<pb::ListReportingFlowsRequest>,
    ) -> Result<Response<pb::ListReportingFlowsResponse>, Status> {
        authorize(&request, Scope::ReadReconciliation)?;
        let r = request.get_ref();
        let filter = convert::flow_filter(r).map_err(to_status)?;
        self.catch_up(&r.creditor_fiscal_code).await;
        let page = self
            .store
            .list_reporting_flows(&filter, r.page_size, &r.page_token)
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::ListReportingFlowsResponse {
            flows: page.flows.iter().map(convert::reporting_flow).collect(),
            next_page_token: page.next_page_token,
        }))
    }

    #[tracing::instrument(name = "ListTreasuryCredits", skip_all)]
    async fn list_treasury_credits(
        &self,
        request: Request<pb::ListTreasuryCreditsRequest>,
    ) -> Result<Response<pb::ListTreasuryCreditsResponse>, Status> {
        authorize(&request, Scope::ReadReconciliation)?;
        let r = request.get_ref();
        let filter = convert::credit_filter(r).map_err(to_status)?;
        self.catch_up(&r.creditor_fiscal_code).await;
        let page = self
            .store
            .list_treasury_credits(&filter, r.page_size, &r.page_token)
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::ListTreasuryCreditsResponse {
            credits: page.credits.iter().map(convert::treasury_credit).collect(),
            next_page_token: page.next_page_token,
        }))
    }

    #[tracing::instrument(name = "ListTreasuryReversals", skip_all)]
    async fn list_treasury_reversals(
        &self,
        request: Request<pb::ListTreasuryReversalsRequest>,
    ) -> Result<Response<pb::ListTreasuryReversalsResponse>, Status> {
        authorize(&request, Scope::ReadReconciliation)?;
        let r = request.get_ref();
        let page = self
            .store
            .list_treasury_reversals(&convert::reversal_filter(r), r.page_size, &r.page_token)
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::ListTreasuryReversalsResponse {
            reversals: page
                .reversals
                .iter()
                .map(convert::treasury_reversal)
                .collect(),
            next_page_token: page.next_page_token,
        }))
    }

    #[tracing::instrument(name = "GetSummary", skip_all)]
    async fn get_summary(
        &self,
        request: Request<pb::GetSummaryRequest>,
    ) -> Result<Response<pb::GetSummaryResponse>, Status> {
        authorize(&request, Scope::ReadReconciliation)?;
        let r = request.get_ref();
        self.catch_up(&r.creditor_fiscal_code).await;
        let summary = self
            .store
            .reconciliation_summary(&r.creditor_fiscal_code, &r.from, &r.to)
            .await
            .map_err(to_status)?;
        Ok(Response::new(convert::summary(&summary)))
    }

    #[tracing::instrument(name = "ImportDocument", skip_all)]
    async fn import_document(
        &self,
        request: Request<Streaming<pb::ImportDocumentRequest>>,
    ) -> Result<Response<pb::ImportDocumentResponse>, Status> {
        authorize(&request, Scope::ImportDocument)?;
        let mut chunks = request.into_inner();
        let mut name = None;
        let mut content = Vec::new();
        while let Some(chunk) = chunks.message().await? {
            if name.is_none() {
                let given = chunk.file_name.trim();
                name = Some(if given.is_empty() {
                    "document".to_owned()
                } else {
                    given.to_owned()
                });
            }
            if content.len() + chunk.content.len() > MAX_DOCUMENT_BYTES {
                return Err(to_status(too_large()));
            }
            content.extend_from_slice(&chunk.content);
        }
        let Some(name) = name.filter(|_| !content.is_empty()) else {
            return Err(to_status(AppError::invalid(
                "content",
                "required: the document",
            )));
        };
        let outcome = self
            .store
            .import_reconciliation_bytes(&name, content, &self.accounts)
            .await
            .map_err(|e| to_status(convert::import_error(e)))?;
        tracing::info!(
            format = %outcome.kind,
            creditor = %outcome.creditor,
            already_imported = outcome.already_imported,
            label_changes = outcome.label_changes,
            "reconciliation document imported"
        );
        Ok(Response::new(convert::import_outcome(&outcome)))
    }
}
