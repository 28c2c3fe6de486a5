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

use crate::convert;
use crate::pb;
use crate::pb::notice_service_server::NoticeService;
use crate::status::{to_item_error, to_status};

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
        let query = convert::list_query(request.get_ref()).map_err(to_status)?;
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
        let request = request.into_inner();
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
        let inbound = request.into_inner();
        // Bounded: when the caller reads slowly, incasso stops reading its stream, so memory
        // stays flat whatever the stream's length.
        let (tx, rx) = mpsc::channel(BULK_BATCH_SIZE * 2);
        let store = self.store.clone();
        tokio::spawn(run_bulk(store, inbound, tx));
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

async fn run_bulk(
    store: Store,
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
        let inputs: Vec<_> = requests.iter().map(convert::create_input).collect();
        let results = store.create_debt_positions(&inputs).await;
        let today = store.today();
        for (request, result) in requests.iter().zip(results) {
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
                            to_item_error(error),
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
