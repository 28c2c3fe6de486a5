//! Logs, on stderr: human-readable by default, JSON with `INCASSO_LOG_FORMAT=json`; the level from
//! `INCASSO_LOG` (or `RUST_LOG`), default `info`. Personal data never reaches a log line: the
//! domain's types that carry it print nothing of it.
//!
//! With `OTEL_EXPORTER_OTLP_ENDPOINT` set, spans and metrics also go over OTLP
//! ([`crate::otel`]); without it nothing leaves the process.

use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::otel::Otel;

/// Installs the global subscriber and, when configured, the OTLP pipelines; call once, at
/// start-up, before anything records. Shut the answer down before the process exits, so the
/// last spans and metrics are sent.
pub fn init() -> anyhow::Result<Option<Otel>> {
    let filter = std::env::var("INCASSO_LOG")
        .ok()
        .and_then(|spec| EnvFilter::try_new(spec).ok())
        .or_else(|| EnvFilter::try_from_default_env().ok())
        .unwrap_or_else(|| EnvFilter::new("info,sqlx=warn,h2=warn,tower=warn,hyper=warn"));
    let json = std::env::var("INCASSO_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    let otel = Otel::from_env()?;
    let otel_layer = otel.as_ref().map(Otel::layer);
    // stderr, so that commands printing results (ledger checkpoint) keep stdout clean.
    let fmt = tracing_subscriber::fmt::layer()
        .with_target(false)
        .with_writer(std::io::stderr);
    let registry = tracing_subscriber::registry().with(filter).with(otel_layer);
    if json {
        registry.with(fmt.json()).init();
    } else {
        registry.with(fmt).init();
    }
    Ok(otel)
}
