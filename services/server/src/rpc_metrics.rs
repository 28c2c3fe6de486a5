//! A tower layer around every gRPC route that counts each call and times it, by method and
//! status code ([`incasso_telemetry::Metrics::rpc`]). The status is in the response headers
//! when the call failed before answering (a trailers-only response) and in the trailers
//! otherwise, so the call is recorded when whichever carries it goes by; a call whose body is
//! dropped before its trailers (the client went away) counts as `CANCELLED`.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use tonic::{Code, Status};

/// Wraps services in [`RpcMetrics`].
#[derive(Debug, Clone, Copy, Default)]
pub struct RpcMetricsLayer;

impl<S> tower_layer::Layer<S> for RpcMetricsLayer {
    type Service = RpcMetrics<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RpcMetrics { inner }
    }
}

/// A service whose calls are counted and timed; see the module documentation.
#[derive(Debug, Clone)]
pub struct RpcMetrics<S> {
    inner: S,
}

/// The name of a status code as gRPC spells it (`NOT_FOUND`).
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// One call not yet recorded.
#[derive(Debug)]
struct Pending {
    method: String,
    started: Instant,
}

impl Pending {
    fn record(self, code: Code) {
        incasso_telemetry::metrics().rpc(&self.method, code_name(code), self.started.elapsed());
    }
}

fn status_in(headers: &HeaderMap) -> Option<Code> {
    headers
        .get(Status::GRPC_STATUS)
        .map(|code| Code::from_bytes(code.as_bytes()))
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, RequestBody, B> tower_service::Service<http::Request<RequestBody>> for RpcMetrics<S>
where
    S: tower_service::Service<http::Request<RequestBody>, Response = http::Response<B>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    B: Send + 'static,
{
    type Response = http::Response<RpcMetricsBody<B>>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<RequestBody>) -> Self::Future {
        // The path is the method (`/package.Service/Method`), chosen by the route table, not
        // by the caller's data; an unknown one is answered UNIMPLEMENTED and counted as such.
        let pending = Pending {
            method: request.uri().path().to_owned(),
            started: Instant::now(),
        };
        let call = self.inner.call(request);
        Box::pin(async move {
            let response = call.await?;
            let pending = match status_in(response.headers()) {
                Some(code) => {
                    pending.record(code);
                    None
                }
                None => Some(pending),
            };
            Ok(response.map(|inner| RpcMetricsBody { inner, pending }))
        })
    }
}

/// A response body that records its call when the trailers go by.
#[derive(Debug)]
pub struct RpcMetricsBody<B> {
    inner: B,
    pending: Option<Pending>,
}

impl<B> Drop for RpcMetricsBody<B> {
    fn drop(&mut self) {
        if let Some(pending) = self.pending.take() {
            pending.record(Code::Cancelled);
        }
    }
}

impl<B> Body for RpcMetricsBody<B>
where
    B: Body + Unpin,
{
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(trailers) = frame.trailers_ref()
            && let Some(pending) = this.pending.take()
        {
            pending.record(status_in(trailers).unwrap_or(Code::Unknown));
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
