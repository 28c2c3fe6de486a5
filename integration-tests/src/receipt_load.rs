//! Receipts under load, as the Node delivers them: many workers, each posting one receipt at
//! a time over a fresh connection, every answer recorded. Used by the reliability tests
//! (a server killed or cut off from its database mid-load) to know which receipts were
//! acknowledged and which must be delivered again.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::task::JoinSet;

use crate::node_simulator::{self as node, Caller, ReceiptSpec, element_text};

/// The Node's longest timeout for a paForNode call.
pub const NODE_TIMEOUT: Duration = Duration::from_secs(15);

/// One receipt to deliver.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// paSendRTV2 (true) or paSendRT.
    pub v2: bool,
    /// The receipt.
    pub spec: ReceiptSpec,
}

/// What the Node made of one delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// HTTP 200, outcome OK: the receipt is the creditor's responsibility now.
    Ok,
    /// HTTP 200, outcome KO with this faultCode: the Node delivers it again.
    Ko(String),
    /// Anything else over HTTP (another status, a SOAP Fault, no outcome): the body.
    Unexpected(u16, String),
    /// No answer: refused, reset or timed out.
    NoAnswer(String),
}

impl Answer {
    /// Whether the receipt was acknowledged.
    pub fn is_ok(&self) -> bool {
        *self == Self::Ok
    }

    /// OK, or the one KO that means "retry later": what a server may answer while its
    /// database is unreachable.
    pub fn is_ok_or_system_error(&self) -> bool {
        match self {
            Self::Ok => true,
            Self::Ko(code) => code == "PAA_SYSTEM_ERROR",
            _ => false,
        }
    }
}

/// Delivers one receipt over a fresh connection, waiting at most [`NODE_TIMEOUT`].
pub async fn deliver(addr: SocketAddr, delivery: &Delivery) -> Answer {
    let body = node::send_rt(&Caller::default(), delivery.v2, &delivery.spec);
    let action = if delivery.v2 {
        "paSendRTV2"
    } else {
        "paSendRT"
    };
    let reply = tokio::time::timeout(
        NODE_TIMEOUT,
        node::post(
            addr,
            Some(action),
            "text/xml; charset=utf-8",
            body.as_bytes(),
        ),
    )
    .await;
    match reply {
        Err(_) => Answer::NoAnswer("timed out".to_owned()),
        Ok(Err(error)) => Answer::NoAnswer(format!("{error:#}")),
        Ok(Ok(reply)) if reply.status != 200 => Answer::Unexpected(reply.status, reply.body),
        Ok(Ok(reply)) => match element_text(&reply.body, "outcome") {
            Some("OK") => Answer::Ok,
            Some("KO") => Answer::Ko(
                element_text(&reply.body, "faultCode")
                    .unwrap_or_default()
                    .to_owned(),
            ),
            _ => Answer::Unexpected(reply.status, reply.body),
        },
    }
}

/// Progress of a running [`Load`], readable while it runs.
#[derive(Debug, Default)]
pub struct Progress {
    /// Deliveries answered (any answer, or none).
    pub answered: AtomicUsize,
    /// Deliveries answered OK.
    pub acknowledged: AtomicUsize,
}

/// `workers` concurrent senders working through a list of deliveries, each once.
pub struct Load {
    /// Live counters.
    pub progress: Arc<Progress>,
    tasks: JoinSet<Vec<(usize, Answer)>>,
    len: usize,
}

impl Load {
    /// Starts delivering `deliveries` to `addr` with `workers` concurrent senders.
    pub fn start(addr: SocketAddr, deliveries: Arc<Vec<Delivery>>, workers: usize) -> Self {
        let progress = Arc::new(Progress::default());
        let next = Arc::new(AtomicUsize::new(0));
        let mut tasks = JoinSet::new();
        for _ in 0..workers.max(1) {
            let deliveries = Arc::clone(&deliveries);
            let progress = Arc::clone(&progress);
            let next = Arc::clone(&next);
            tasks.spawn(async move {
                let mut answers = Vec::new();
                loop {
                    let index = next.fetch_add(1, Ordering::SeqCst);
                    let Some(delivery) = deliveries.get(index) else {
                        return answers;
                    };
                    let answer = deliver(addr, delivery).await;
                    if answer.is_ok() {
                        progress.acknowledged.fetch_add(1, Ordering::SeqCst);
                    }
                    progress.answered.fetch_add(1, Ordering::SeqCst);
                    answers.push((index, answer));
                }
            });
        }
        Self {
            progress,
            tasks,
            len: deliveries.len(),
        }
    }

    /// Waits until every delivery has been tried; the answers, in delivery order.
    pub async fn finish(mut self) -> anyhow::Result<Vec<Answer>> {
        let mut answers: Vec<Option<Answer>> = vec![None; self.len];
        while let Some(done) = self.tasks.join_next().await {
            for (index, answer) in done? {
                answers[index] = Some(answer);
            }
        }
        answers
            .into_iter()
            .enumerate()
            .map(|(i, a)| a.ok_or_else(|| anyhow::anyhow!("delivery {i} was never tried")))
            .collect()
    }
}

/// Waits (at most `limit`) until `counter` reaches `target`; whether it did.
pub async fn wait_for(counter: &AtomicUsize, target: usize, limit: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    while counter.load(Ordering::SeqCst) < target {
        if tokio::time::Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    true
}
