//! `incasso.v1.NoticeService`: thin handlers that convert, call the store, convert back.

use std::pin::Pin;
use std::time::Duration;

use futures::Stream;
use tokio::sync::mpsc;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use incasso_store::Store;
use incasso_store::positions::Outcome;

use crate::access::{self, Access, Caller};
use crate::convert;
use crate::pb;
use crate::pb::notice_service_server::NoticeService;
use crate::status::{status_item_error, to_item_error, to_status};

/// Items of a bulk stream written in one transaction.
const BULK_BATCH_SIZE: usize = 500;
/// How long a bulk batch waits for more items before it is written anyway.
const BULK_BATCH_WAIT: Duration = Duration::from_millis(20);
/// Response metadata set when a create was a replay of an earlier request.
pub const REPLAYED_HEADER: &str = "incasso-replayed";

/// The NoticeService implementation.
#[derive(Debug, Clone)]
pub struct NoticeApi {
    store: Store,
}

impl NoticeApi {
    /// A service over `store`.
    pub fn new(store: Store) -> Self {
        Self { store }
    }

    fn respond(&self, outcome: Outcome) -> Response<pb::DebtPosition> {
        let mut response = Response::new(convert::debt_position(
            &outcome.position,
            self.store.today(),
        ));
        if outcome.replayed {
            response.metadata_mut().insert(
                REPLAYED_HEADER,
                tonic::metadata::MetadataValue::from_static("true"),
            );
        }
        response
    }

    /// Checks the caller's scope against the stored position `id` before a command on it.
    /// A position that cannot be read is left to the command, which reports it as usual.
    async fn check_stored(&self, caller: &Caller, id: &str, need: Access) -> Result<(), Status> {
        if caller.position_scope().is_none() {
            return Ok(());
        }
        match self.store.get_debt_position(id).await {
            Ok(position) => check_position(caller, &position, need),
            Err(_) => Ok(()),
        }
    }
}

/// The caller's scope against a position read from the store.
fn check_position(
    caller: &Caller,
    position: &incasso_domain::debt_position::DebtPosition,
    need: Access,
) -> Result<(), Status> {
    caller.check_position(
        position.creditor.as_str(),
        Some(position.details.kind()),
        need,
    )
}

/// The caller's scope against a position about to be created.
fn check_new(caller: &Caller, request: &pb::CreateDebtPositionRequest) -> Result<(), Status> {
    caller.check_position(
        &request.creditor_fiscal_code,
        convert::debt_kind(request.kind),
        Access::Write,
    )
}

type BulkStream =
    Pin<Box<dyn Stream<Item = Result<pb::BulkCreateDebtPositionsResponse, Status>> + Send>>;

#[tonic::async_trait]
impl NoticeService for NoticeApi {
    #[tracing::instrument(name = "CreateDebtPosition", skip_all)]
    async fn create_debt_position(
        &self,
        request: Request<pb::CreateDebtPositionRequest>,
    ) -> Result<Response<pb::DebtPosition>, Status> {
        let caller = access::caller(&request)?;
        check_new(&caller, request.get_ref())?;
        let input = convert::create_input(request.get_ref());
        let outcome = self
            .store
            .create_debt_position(&input)
            .await
            .map_err(to_status)?;
        Ok(self.respond(outcome))
    }

    #[tracing::instrument(name = "GetDebtPosition", skip_all)]
    async fn get_debt_position(
        &self,
        request: Request<pb::GetDebtPositionRequest>,
    ) -> Result<Response<pb::DebtPosition>, Status> {
        use pb::get_debt_position_request::Lookup;
        let caller = access::caller(&request)?;
        let request = request.into_inner();
        let position = match request.lookup {
            Some(Lookup::Id(id)) => self.store.get_debt_position(&id).await,
            Some(Lookup::NoticeNumber(notice)) => self
                .store
                .find_by_notice_number(&notice, &request.creditor_fiscal_code)
                .await
                .map(|(position, _)| position),
            None => Err(incasso_store::AppError::invalid(
                "id",
                "required: id or notice_number",
            )),
        }
        .map_err(to_status)?;
        check_position(&caller, &position, Access::Read)?;
        Ok(Response::new(convert::debt_position(
            &position,
            self.store.today(),
        )))
    }

    #[tracing::instrument(name = "ListDebtPositions", skip_all)]
    async fn list_debt_positions(
        &self,
        request: Request<pb::ListDebtPositionsRequest>,
    ) -> Result<Response<pb::ListDebtPositionsResponse>, Status> {
        let caller = access::caller(&request)?;
        let mut query = convert::list_query(request.get_ref()).map_err(to_status)?;
        query.scope = caller
            .position_scope()
            .map(|(creditors, kinds)| incasso_store::positions::ListScope { creditors, kinds });
        let page = self
            .store
            .list_debt_positions(&query)
            .await
            .map_err(to_status)?;
        let today = self.store.today();
        Ok(Response::new(pb::ListDebtPositionsResponse {
            debt_positions: page
                .positions
                .iter()
                .map(|p| convert::debt_position(p, today))
                .collect(),
            next_page_token: page.next_page_token,
        }))
    }

    #[tracing::instrument(name = "UpdateDebtPosition", skip_all)]
    async fn update_debt_position(
        &self,
        request: Request<pb::UpdateDebtPositionRequest>,
    ) -> Result<Response<pb::DebtPosition>, Status> {
        let caller = access::caller(&request)?;
        self.check_stored(&caller, &request.get_ref().id, Access::Write)
            .await?;
        let input = convert::update_input(request.get_ref());
        let outcome = self
            .store
            .update_debt_position(&input)
            .await
            .map_err(to_status)?;
        Ok(self.respond(outcome))
    }

    #[tracing::instrument(name = "CancelDebtPosition", skip_all)]
    async fn cancel_debt_position(
        &self,
        request: Request<pb::CancelDebtPositionRequest>,
    ) -> Result<Response<pb::DebtPosition>, Status> {
        let caller = access::caller(&request)?;
        self.check_stored(&caller, &request.get_ref().id, Access::Write)
            .await?;
        let input = convert::cancel_input(request.get_ref());
        let outcome = self
            .store
            .cancel_debt_position(&input)
            .await
            .map_err(to_status)?;
        Ok(self.respond(outcome))
    }

    #[tracing::instrument(name = "GetPayableAmount", skip_all)]
    async fn get_payable_amount(
        &self,
        request: Request<pb::GetPayableAmountRequest>,
    ) -> Result<Response<pb::GetPayableAmountResponse>, Status> {
        let caller = access::caller(&request)?;
        let request = request.into_inner();
        if caller.position_scope().is_some() {
            // The notice's position decides; an unknown notice is left to the query.
            if let Ok((position, _)) = self
                .store
                .find_by_notice_number(&request.notice_number, &request.creditor_fiscal_code)
                .await
            {
                check_position(&caller, &position, Access::Read)?;
            }
        }
        let amount = self
            .store
            .payable_amount(
                &request.notice_number,
                &request.creditor_fiscal_code,
                &request.date,
            )
            .await
            .map_err(to_status)?;
        Ok(Response::new(convert::payable_amount(&amount)))
    }

    type BulkCreateDebtPositionsStream = BulkStream;

    #[tracing::instrument(name = "BulkCreateDebtPositions", skip_all)]
    async fn bulk_create_debt_positions(
        &self,
        request: Request<Streaming<pb::CreateDebtPositionRequest>>,
    ) -> Result<Response<Self::BulkCreateDebtPositionsStream>, Status> {
        let caller = access::caller(&request)?;
        let inbound = request.into_inner();
        // Bounded: when the caller reads slowly, incasso stops reading its stream, so memory
        // stays flat whatever the stream's length.
        let (tx, rx) = mpsc::channel(BULK_BATCH_SIZE * 2);
        let store = self.store.clone();
        tokio::spawn(run_bulk(store, caller, inbound, tx));
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

async fn run_bulk(
    store: Store,
    caller: Caller,
    inbound: Streaming<pb::CreateDebtPositionRequest>,
    tx: mpsc::Sender<Result<pb::BulkCreateDebtPositionsResponse, Status>>,
) {
    let chunks = inbound.chunks_timeout(BULK_BATCH_SIZE, BULK_BATCH_WAIT);
    tokio::pin!(chunks);
    let mut index: i64 = 0;
    let mut created = 0u64;
    let mut failed = 0u64;
    while let Some(chunk) = chunks.next().await {
        let mut requests = Vec::with_capacity(chunk.len());
        let mut stream_error = None;
        for item in chunk {
            match item {
                Ok(request) => requests.push(request),
                Err(status) => {
                    stream_error = Some(status);
                    break;
                }
            }
        }
        // Items out of the caller's scope are refused one by one; the others are written.
        let checks: Vec<Result<(), Status>> =
            requests.iter().map(|r| check_new(&caller, r)).collect();
        let inputs: Vec<_> = requests
            .iter()
            .zip(&checks)
            .filter(|(_, check)| check.is_ok())
            .map(|(request, _)| convert::create_input(request))
            .collect();
        let mut results = store.create_debt_positions(&inputs).await.into_iter();
        let today = store.today();
        for (request, check) in requests.iter().zip(checks) {
            let result = match check {
                Ok(()) => match results.next() {
                    Some(result) => result.map_err(to_item_error),
                    None => Err(to_item_error(incasso_store::AppError::Internal(
                        "a bulk batch returned fewer results than items".into(),
                    ))),
                },
                Err(denied) => Err(status_item_error(&denied)),
            };
            let response = match result {
                Ok(outcome) => {
                    created += 1;
                    pb::BulkCreateDebtPositionsResponse {
                        index,
                        request_id: request.request_id.clone(),
                        result: Some(
                            pb::bulk_create_debt_positions_response::Result::DebtPosition(
                                convert::debt_position(&outcome.position, today),
                            ),
                        ),
                        replayed: outcome.replayed,
                    }
                }
                Err(error) => {
                    failed += 1;
                    pb::BulkCreateDebtPositionsResponse {
                        index,
                        request_id: request.request_id.clone(),
                        result: Some(pb::bulk_create_debt_positions_response::Result::Error(
                            error,
                        )),
                        replayed: false,
                    }
                }
            };
            index += 1;
            if tx.send(Ok(response)).await.is_err() {
                tracing::warn!(items = index, "bulk caller went away; stopping");
                return;
            }
        }
        if let Some(status) = stream_error {
            tracing::warn!(items = index, code = ?status.code(), "bulk request stream failed");
            let _ = tx.send(Err(status)).await;
            return;
        }
    }
    tracing::info!(items = index, created, failed, "bulk create finished");
}
