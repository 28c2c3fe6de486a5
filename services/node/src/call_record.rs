//! What one paForNode call turned out to be (its primitive and outcome), gathered while it is
//! answered, for the request metrics ([`incasso_telemetry::Metrics::node_call`]). The span
//! learns the same facts field by field; a span's fields cannot be read back, so they are
//! noted here too, in a task-local record that lives exactly as long as the call.

use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use crate::service::Reply;

#[derive(Debug, Default)]
struct Facts {
    primitive: Option<&'static str>,
    outcome: Option<&'static str>,
}

tokio::task_local! {
    static CALL: Arc<Mutex<Facts>>;
}

/// Notes the call's primitive (its name as the Node spells it).
pub(crate) fn primitive(name: &'static str) {
    let _ = CALL.try_with(|facts| {
        facts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .primitive = Some(name);
    });
}

/// Notes the call's outcome: `OK`, `KO` or `SOAP Fault`.
pub(crate) fn outcome(name: &'static str) {
    let _ = CALL.try_with(|facts| {
        facts.lock().unwrap_or_else(PoisonError::into_inner).outcome = Some(name);
    });
}

fn report(facts: &Mutex<Facts>, started: Instant) {
    let facts = facts.lock().unwrap_or_else(PoisonError::into_inner);
    incasso_telemetry::metrics().node_call(
        facts.primitive.unwrap_or("unknown"),
        facts.outcome.unwrap_or("unknown"),
        started.elapsed(),
    );
}

/// Answers a call with `answer` and records it.
pub(crate) async fn measure(answer: impl Future<Output = Reply>) -> Reply {
    let started = Instant::now();
    let facts = Arc::new(Mutex::new(Facts::default()));
    let reply = CALL.scope(Arc::clone(&facts), answer).await;
    report(&facts, started);
    reply
}

/// [`measure`] for an answer given without waiting.
pub(crate) fn measure_now(answer: impl FnOnce() -> Reply) -> Reply {
    let started = Instant::now();
    let facts = Arc::new(Mutex::new(Facts::default()));
    let reply = CALL.sync_scope(Arc::clone(&facts), answer);
    report(&facts, started);
    reply
}
