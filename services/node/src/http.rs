//! The HTTP face of paForNode: one POST route, the body limit enforced while reading, the
//! content type checked, and every answer a SOAP envelope: never an HTML or empty error page,
//! not even for another path (404) or another method (405).

use std::sync::Arc;

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;

use crate::service::{NodeService, Reply};

/// The path the Node posts to.
pub const PATH: &str = "/paForNode";

/// The header the Comune's API gateway passes the Node's subscription key in.
pub const SUBSCRIPTION_KEY_HEADER: &str = "ocp-apim-subscription-key";

#[derive(Clone)]
struct Endpoint {
    service: Arc<NodeService>,
    body_limit_bytes: usize,
    /// Empty: no key asked.
    subscription_keys: Arc<[String]>,
}

fn soap(reply: Reply) -> Response {
    let mut response = (
        StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        reply.body,
    )
        .into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/xml; charset=utf-8"),
    );
    response
}

async fn handle(State(endpoint): State<Endpoint>, headers: HeaderMap, body: Body) -> Response {
    if !endpoint.subscription_keys.is_empty() {
        let key = headers
            .get(SUBSCRIPTION_KEY_HEADER)
            .and_then(|v| v.to_str().ok());
        if !key.is_some_and(|key| endpoint.subscription_keys.iter().any(|k| k == key)) {
            tracing::warn!("paForNode call refused: missing or unknown subscription key");
            return soap(endpoint.service.not_a_request(
                401,
                "missing or unknown subscription key (Ocp-Apim-Subscription-Key)",
            ));
        }
    }
    let action = headers
        .get("soapaction")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    let soap_content =
        content_type.starts_with("text/xml") || content_type.starts_with("application/soap+xml");
    // to_bytes stops reading as soon as the limit is passed: an oversize body never sits in
    // memory whole.
    let bytes = match to_bytes(body, endpoint.body_limit_bytes).await {
        Ok(bytes) => bytes,
        Err(_) => {
            return soap(endpoint.service.refuse(
                &headers,
                action.as_deref(),
                None,
                &format!("the message exceeds {} bytes", endpoint.body_limit_bytes),
            ));
        }
    };
    if !soap_content {
        // Still read within the limit, so the refusal can use the operation and the creditor
        // the body names.
        return soap(endpoint.service.refuse(
            &headers,
            action.as_deref(),
            Some(&bytes),
            "the content type must be text/xml (SOAP 1.1)",
        ));
    }
    soap(
        endpoint
            .service
            .handle_traced(&headers, &bytes, action.as_deref())
            .await,
    )
}

async fn wrong_method(State(endpoint): State<Endpoint>, method: Method) -> Response {
    let mut response = soap(endpoint.service.not_a_request(
        405,
        &format!("method {method} not allowed: the paForNode service takes SOAP messages by POST"),
    ));
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static("POST"));
    response
}

async fn not_found(State(endpoint): State<Endpoint>) -> Response {
    soap(endpoint.service.not_a_request(
        404,
        "no such endpoint: the paForNode service is at /paForNode",
    ))
}

/// The router serving paForNode.
pub fn router(service: NodeService, body_limit_bytes: usize) -> Router {
    router_with_keys(service, body_limit_bytes, Vec::new())
}

/// The router serving paForNode only to calls carrying one of `subscription_keys` in
/// `Ocp-Apim-Subscription-Key` (any call when empty); others get a 401 SOAP fault.
pub fn router_with_keys(
    service: NodeService,
    body_limit_bytes: usize,
    subscription_keys: Vec<String>,
) -> Router {
    let endpoint = Endpoint {
        service: Arc::new(service),
        body_limit_bytes,
        subscription_keys: subscription_keys.into(),
    };
    Router::new()
        .route(PATH, post(handle).fallback(wrong_method))
        .fallback(not_found)
        .with_state(endpoint)
}
