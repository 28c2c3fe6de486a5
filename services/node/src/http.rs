//! The HTTP face of paForNode: one POST route, the body limit enforced while reading, the
//! content type checked, and every answer a SOAP envelope (never an HTML error page).

use std::sync::Arc;

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;

use crate::message::Operation;
use crate::response::{self, Fault, FaultCode};
use crate::service::NodeService;

/// The path the Node posts to.
pub const PATH: &str = "/paForNode";

#[derive(Clone)]
struct Endpoint {
    service: Arc<NodeService>,
    body_limit_bytes: usize,
}

fn soap(status: u16, body: String) -> Response {
    let mut response =
        (StatusCode::from_u16(status).unwrap_or(StatusCode::OK), body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/xml; charset=utf-8"),
    );
    response
}

fn refuse(operation: Option<Operation>, description: &str) -> Response {
    match operation {
        Some(operation) => soap(
            200,
            response::ko(
                operation,
                &Fault {
                    code: FaultCode::SintassiExtraXsd,
                    description: description.to_owned(),
                    id: String::new(),
                },
            ),
        ),
        None => soap(500, response::soap_fault(description)),
    }
}

async fn handle(State(endpoint): State<Endpoint>, headers: HeaderMap, body: Body) -> Response {
    let action = headers
        .get("soapaction")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let hinted = action.as_deref().and_then(Operation::from_soap_action);
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    if !(content_type.starts_with("text/xml") || content_type.starts_with("application/soap+xml")) {
        return refuse(hinted, "the content type must be text/xml (SOAP 1.1)");
    }
    // to_bytes stops reading as soon as the limit is passed: an oversize body never sits in
    // memory whole.
    let bytes = match to_bytes(body, endpoint.body_limit_bytes).await {
        Ok(bytes) => bytes,
        Err(_) => {
            return refuse(
                hinted,
                &format!("the message exceeds {} bytes", endpoint.body_limit_bytes),
            );
        }
    };
    let reply = endpoint.service.handle(&bytes, action.as_deref()).await;
    soap(reply.status, reply.body)
}

async fn not_found() -> Response {
    soap(
        404,
        response::soap_fault("no such endpoint: the paForNode service is at /paForNode"),
    )
}

/// The router serving paForNode.
pub fn router(service: NodeService, body_limit_bytes: usize) -> Router {
    let endpoint = Endpoint {
        service: Arc::new(service),
        body_limit_bytes,
    };
    Router::new()
        .route(PATH, post(handle))
        .fallback(not_found)
        .with_state(endpoint)
}
