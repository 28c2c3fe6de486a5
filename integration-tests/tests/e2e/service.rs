//! What operators and platforms expect of the server itself: health, reflection, shutdown,
//! message size limits.

use tonic::Code;

use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_reflection::pb::v1::ServerReflectionRequest;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

use incasso_grpc::pb;
use incasso_integration_tests::requests;
use incasso_integration_tests::{Engine, TestApp};
use incasso_server::GRPC_MAX_REQUEST_BYTES;

use crate::on_both_engines;

on_both_engines!(
    health_and_reflection_answer,
    an_oversize_request_is_resource_exhausted_on_every_service,
);

async fn health_and_reflection_answer(engine: Engine) -> anyhow::Result<()> {
    let app = TestApp::spawn(engine).await?;
    let channel = app.channel().await?;
    let mut health = HealthClient::new(channel.clone());
    for service in ["", "incasso.v1.NoticeService"] {
        let status = health
            .check(HealthCheckRequest {
                service: service.to_owned(),
            })
            .await?
            .into_inner()
            .status;
        assert_eq!(status, ServingStatus::Serving as i32, "{service:?}");
    }
    let mut reflection = ServerReflectionClient::new(channel);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = reflection
        .server_reflection_info(tokio_stream::iter([request]))
        .await?
        .into_inner();
    let response = responses.message().await?.expect("a reflection response");
    let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
        panic!("unexpected reflection response");
    };
    let names: Vec<_> = list.service.iter().map(|s| s.name.as_str()).collect();
    assert!(names.contains(&"incasso.v1.NoticeService"), "{names:?}");
    assert!(names.contains(&"grpc.health.v1.Health"), "{names:?}");
    app.stop().await
}

/// gRPC's status table: a message larger than the receiver accepts is RESOURCE_EXHAUSTED
/// (tonic says OUT_OF_RANGE). Unary calls of both services and a message inside a stream,
/// after answers were already sent; the message names the limit; the connection and the
/// service go on working.
async fn an_oversize_request_is_resource_exhausted_on_every_service(
    engine: Engine,
) -> anyhow::Result<()> {
    let app = TestApp::spawn(engine).await?;
    let limit = GRPC_MAX_REQUEST_BYTES.to_string();
    let oversize = "x".repeat(GRPC_MAX_REQUEST_BYTES);
    let expect_exhausted = |status: &tonic::Status| {
        assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
        assert!(
            status
                .message()
                .contains(&format!("the limit is {limit} bytes")),
            "{status:?}"
        );
    };
    let mut notices = app.notices().await?;
    let mut huge = requests::school_fee("size-huge");
    huge.description = oversize.clone();
    let status = notices.create_debt_position(huge).await.unwrap_err();
    expect_exhausted(&status);

    let mut ledger = app.ledger().await?;
    let status = ledger
        .list_entries(pb::ListEntriesRequest {
            notice_number: oversize.clone(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    expect_exhausted(&status);

    // In a stream the refusal comes after the answers to the messages before it.
    let mut huge = requests::school_fee("size-bulk-huge");
    huge.description = oversize;
    let mut responses = notices
        .bulk_create_debt_positions(tokio_stream::iter([
            requests::school_fee("size-bulk-ok"),
            huge,
        ]))
        .await?
        .into_inner();
    let first = responses.message().await?.expect("the first item's answer");
    assert_eq!(first.request_id, "size-bulk-ok");
    assert!(
        matches!(
            first.result,
            Some(pb::bulk_create_debt_positions_response::Result::DebtPosition(_))
        ),
        "{first:?}"
    );
    expect_exhausted(&responses.message().await.unwrap_err());

    // An ordinary request on the same client is served as usual.
    let created = notices
        .create_debt_position(requests::school_fee("size-ok"))
        .await?
        .into_inner();
    assert_eq!(created.payment_options[0].installments.len(), 1);
    app.stop().await
}
