//! A tower layer around every gRPC service that answers RESOURCE_EXHAUSTED, not tonic's
//! OUT_OF_RANGE, for a request message over the decoding limit (see
//! [`status::message_too_large`]).
//!
//! tonic's codec reads the message length before any incasso code runs, so no handler can map
//! the refusal: it can only be rewritten on its way out. A unary call carries it in the
//! response headers (trailers-only response); a streaming call, where the refusal can come
//! after answers were sent, in the trailers. Both are rewritten here, for every service the
//! server routes, so adding a service cannot forget it.

use std::pin::Pin;
use std::task::{Context, Poll};

use futures::TryFutureExt;
use futures::future::MapOk;
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use tonic::Status;

use crate::status;

/// Wraps services in [`MessageSize`].
#[derive(Debug, Clone, Copy, Default)]
pub struct MessageSizeLayer;

impl<S> tower_layer::Layer<S> for MessageSizeLayer {
    type Service = MessageSize<S>;

    fn layer(&self, inner: S) -> Self::Service {
        MessageSize { inner }
    }
}

/// A service whose over-size refusals are RESOURCE_EXHAUSTED; see the module documentation.
#[derive(Debug, Clone)]
pub struct MessageSize<S> {
    inner: S,
}

type Rewrite<B> = fn(http::Response<B>) -> http::Response<MessageSizeBody<B>>;

impl<S, Request, B> tower_service::Service<Request> for MessageSize<S>
where
    S: tower_service::Service<Request, Response = http::Response<B>>,
{
    type Response = http::Response<MessageSizeBody<B>>;
    type Error = S::Error;
    type Future = MapOk<S::Future, Rewrite<B>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        self.inner
            .call(request)
            .map_ok(rewrite_response as Rewrite<B>)
    }
}

fn rewrite_response<B>(response: http::Response<B>) -> http::Response<MessageSizeBody<B>> {
    let (mut parts, body) = response.into_parts();
    rewrite(&mut parts.headers);
    http::Response::from_parts(parts, MessageSizeBody { inner: body })
}

/// Rewrites a status carried in `headers` (response headers or trailers) when it is tonic's
/// over-size refusal.
fn rewrite(headers: &mut HeaderMap) {
    // Nearly every response is OK: only OUT_OF_RANGE is worth decoding.
    if headers
        .get(Status::GRPC_STATUS)
        .is_none_or(|code| code.as_bytes() != b"11")
    {
        return;
    }
    let Some(replacement) = Status::from_header_map(headers)
        .as_ref()
        .and_then(status::message_too_large)
    else {
        return;
    };
    headers.remove(Status::GRPC_STATUS_DETAILS);
    if let Err(error) = replacement.add_header(headers) {
        // The replacement's text is ours and ASCII: this cannot happen, and if it did the
        // original OUT_OF_RANGE would still reach the caller.
        tracing::error!(%error, "cannot write the RESOURCE_EXHAUSTED status");
    }
}

/// A response body whose trailers get the same rewrite as the headers.
#[derive(Debug)]
pub struct MessageSizeBody<B> {
    inner: B,
}

impl<B> Body for MessageSizeBody<B>
where
    B: Body + Unpin,
{
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.get_mut().inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = polled {
            let frame = match frame.into_trailers() {
                Ok(mut trailers) => {
                    rewrite(&mut trailers);
                    Frame::trailers(trailers)
                }
                Err(frame) => frame,
            };
            return Poll::Ready(Some(Ok(frame)));
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

#[cfg(test)]
mod tests {
    use super::*;

    fn headers_of(status: &Status) -> HeaderMap {
        let mut headers = HeaderMap::new();
        status.add_header(&mut headers).unwrap();
        headers
    }

    #[test]
    fn the_size_refusal_is_rewritten_and_nothing_else() {
        let mut refused = headers_of(&Status::out_of_range(
            "Error, decoded message length too large: found 70 bytes, the limit is: 64 bytes",
        ));
        rewrite(&mut refused);
        let status = Status::from_header_map(&refused).unwrap();
        assert_eq!(status.code(), tonic::Code::ResourceExhausted);
        assert_eq!(
            status.message(),
            "request message too large: 70 bytes, the limit is 64 bytes"
        );
        for other in [
            Status::out_of_range("a page past the end"),
            Status::invalid_argument("Error, decoded message length too large: found 1"),
            Status::ok(""),
        ] {
            let mut headers = headers_of(&other);
            let before = headers.clone();
            rewrite(&mut headers);
            assert_eq!(headers, before);
        }
    }
}
