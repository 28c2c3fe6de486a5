//! W3C Trace Context (`traceparent`, `tracestate`) in and out. A caller's context, read from
//! gRPC metadata or HTTP headers, becomes the parent of incasso's span for the call; the
//! current span's context is written into every outbound request, so a trace crosses incasso
//! into ACA, App IO, the Fascicolo and the FdR API. Without a tracing pipeline (no OTLP
//! endpoint) spans carry no context: nothing is read into them and nothing is written out.

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing_opentelemetry::OpenTelemetrySpanExt;

struct HeaderExtractor<'a>(&'a http::HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

struct HeaderInjector<'a>(&'a mut http::HeaderMap);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(key.as_bytes()),
            http::HeaderValue::from_str(&value),
        ) {
            self.0.insert(name, value);
        }
    }
}

/// Makes the context in `headers` (if any) the parent of `span`. Call before the span is
/// entered for the first time.
pub fn set_parent_from_headers(span: &tracing::Span, headers: &http::HeaderMap) {
    if headers.contains_key("traceparent") {
        let context = TraceContextPropagator::new().extract(&HeaderExtractor(headers));
        // Fails only when the span is already started or disabled: then it keeps its parent.
        let _ = span.set_parent(context);
    }
}

/// Writes the current span's context into `headers`, for an outbound HTTP request.
pub fn inject_into_headers(headers: &mut http::HeaderMap) {
    let context = tracing::Span::current().context();
    TraceContextPropagator::new().inject_context(&context, &mut HeaderInjector(headers));
}

/// The current span's context as headers, for HTTP clients that take them one by one.
pub fn current_headers() -> http::HeaderMap {
    let mut headers = http::HeaderMap::new();
    inject_into_headers(&mut headers);
    headers
}

/// Writes the current span's context into a gRPC request's metadata.
pub fn inject_into_metadata(metadata: &mut tonic::metadata::MetadataMap) {
    let headers = current_headers();
    for (name, value) in &headers {
        if let (Ok(key), Ok(value)) = (
            tonic::metadata::MetadataKey::from_bytes(name.as_str().as_bytes()),
            tonic::metadata::MetadataValue::try_from(value.as_bytes()),
        ) {
            metadata.insert(key, value);
        }
    }
}
