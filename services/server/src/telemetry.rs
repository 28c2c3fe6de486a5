//! Logs, on stderr: human-readable by default, JSON with `INCASSO_LOG_FORMAT=json`; the level from
//! `INCASSO_LOG` (or `RUST_LOG`), default `info`. Personal data never reaches a log line: the
//! domain's types that carry it print nothing of it.

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber; call once, at start-up.
pub fn init() {
    let filter = std::env::var("INCASSO_LOG")
        .ok()
        .and_then(|spec| EnvFilter::try_new(spec).ok())
        .or_else(|| EnvFilter::try_from_default_env().ok())
        .unwrap_or_else(|| EnvFilter::new("info,sqlx=warn,h2=warn,tower=warn,hyper=warn"));
    let json = std::env::var("INCASSO_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    // stderr, so that commands printing results (ledger checkpoint) keep stdout clean.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}
