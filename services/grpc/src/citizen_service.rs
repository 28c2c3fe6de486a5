//! `incasso.v1.CitizenPaymentsService`: what the Fascicolo del Cittadino asks about one
//! citizen (their notices with today's amount, the receipt of a payment). Read only. Every
//! handler first asks [`authorize`], the seam where the later access-control issue decides
//! who may read a citizen's payments (the Fascicolo, on behalf of that citizen).

use tonic::{Request, Response, Status};

use incasso_store::Store;

use crate::convert;
use crate::pb;
use crate::pb::citizen_payments_service_server::CitizenPaymentsService;
use crate::status::to_status;

/// What a call does, as access control will see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Reading one citizen's notices and receipts.
    ReadCitizenPayments,
}

/// Decides whether the caller of `request` may do what `scope` names. Today every caller
/// that reached the gRPC port may; the access-control issue decides here, from the peer
/// certificate or metadata, and answers `PERMISSION_DENIED` without touching the store.
pub fn authorize<T>(request: &Request<T>, scope: Scope) -> Result<(), Status> {
    let _ = (request, scope);
    Ok(())
}

/// The CitizenPaymentsService implementation.
#[derive(Debug, Clone)]
pub struct CitizenPaymentsApi {
    store: Store,
}

impl CitizenPaymentsApi {
    /// A service over `store`.
    pub fn new(store: Store) -> Self {
        Self { store }
    }
}

#[tonic::async_trait]
impl CitizenPaymentsService for CitizenPaymentsApi {
    #[tracing::instrument(name = "ListCitizenNotices", skip_all)]
    async fn list_citizen_notices(
        &self,
        request: Request<pb::ListCitizenNoticesRequest>,
    ) -> Result<Response<pb::ListCitizenNoticesResponse>, Status> {
        authorize(&request, Scope::ReadCitizenPayments)?;
        let query = convert::citizen_notice_query(request.get_ref()).map_err(to_status)?;
        let page = self
            .store
            .list_citizen_notices(&query)
            .await
            .map_err(to_status)?;
        let registry = self.store.registry();
        Ok(Response::new(pb::ListCitizenNoticesResponse {
            notices: page
                .notices
                .iter()
                .map(|notice| convert::citizen_notice(notice, registry))
                .collect(),
            next_page_token: page.next_page_token,
        }))
    }

    #[tracing::instrument(name = "GetCitizenReceipt", skip_all)]
    async fn get_citizen_receipt(
        &self,
        request: Request<pb::GetCitizenReceiptRequest>,
    ) -> Result<Response<pb::GetCitizenReceiptResponse>, Status> {
        authorize(&request, Scope::ReadCitizenPayments)?;
        let r = request.get_ref();
        let lookup = convert::citizen_receipt_lookup(r).map_err(to_status)?;
        let receipt = self
            .store
            .get_citizen_receipt(&r.fiscal_code, &lookup)
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::GetCitizenReceiptResponse {
            receipt: Some(convert::citizen_receipt(&receipt)),
        }))
    }
}
