//! Benchmark of the Fascicolo push on PostgreSQL (issue: the citizen's side).
//!
//! The real `incasso` binary runs with `INCASSO_FASCICOLO_URL` pointing at the in-process fake
//! Fascicolo. Phases:
//! 1. TARI positions issued in bulk (four notices each, one citizen each) while the fake is
//!    down, so their `notice_issued` events wait in the outbox;
//! 2. the fake comes back: the relay delivers every event; events/s from the first accepted
//!    event to the last (target >= 5,000/s), and the server's RSS while it does (flat);
//! 3. receipts (paSendRTV2) paced at 200/s: end-to-end lag from the receipt's OK (its commit)
//!    to the fake acknowledging its `payment_received`, p50/p99 (target p99 < 1 s);
//! 4. baseline, in the same run: a plain client sends the very batches the relay sent in
//!    phase 2, one call at a time, to a fresh fake; events/s and the ratio.
//!
//! ```text
//! cargo build --release -p incasso-server -p incasso-integration-tests
//! INCASSO_TEST_PG_URL=postgres://postgres@%2Fvar%2Frun%2Fpostgresql/postgres \
//!   target/release/bench-fascicolo [positions] [receipts]    # default 200000 20000
//! ```

// Rates and percentiles, never money.
#![allow(clippy::float_arithmetic)]

use std::time::{Duration, Instant};

use anyhow::{bail, ensure};
use tonic::Code;

use incasso_grpc::pb;
use incasso_grpc::pb::notice_service_client::NoticeServiceClient;
use incasso_integration_tests::bench::{Server, percentile, rss_kib};
use incasso_integration_tests::fake_fascicolo::{FakeFascicolo, citizen_code};
use incasso_integration_tests::node_simulator::{self as node, Caller, ReceiptSpec, post};
use incasso_integration_tests::requests;
use incasso_relay::fascicolo::pb as fpb;
use incasso_store::testing::{Engine, TestDatabase};

fn mib(kib: Option<u64>) -> f64 {
    kib.map_or(f64::NAN, |k| k as f64 / 1024.0)
}

fn tari_for(i: usize) -> anyhow::Result<pb::CreateDebtPositionRequest> {
    let mut request = requests::tari(&format!("bench-fasc-{i}"));
    if let Some(debtor) = request.debtor.as_mut() {
        debtor.fiscal_code = citizen_code(u32::try_from(i)?);
    }
    Ok(request)
}

/// Issues `positions` TARI bills in one bulk stream; the rata unica of each, for paying.
async fn issue(
    client: &mut NoticeServiceClient<tonic::transport::Channel>,
    positions: usize,
) -> anyhow::Result<Vec<pb::Installment>> {
    let requests: Vec<pb::CreateDebtPositionRequest> = (0..positions)
        .map(tari_for)
        .collect::<anyhow::Result<_>>()?;
    let mut responses = client
        .bulk_create_debt_positions(futures::stream::iter(requests))
        .await?
        .into_inner();
    let mut single = Vec::with_capacity(positions);
    while let Some(item) = responses.message().await? {
        match item.result {
            Some(pb::bulk_create_debt_positions_response::Result::DebtPosition(p)) => {
                single.push(p.payment_options[0].installments[0].clone());
            }
            other => bail!("item {} failed: {other:?}", item.index),
        }
    }
    ensure!(
        single.len() == positions,
        "{} positions issued",
        single.len()
    );
    Ok(single)
}

/// Pays `notices` at `per_second`; the instant each receipt was answered OK, by receiptId.
async fn pay_paced(
    soap: std::net::SocketAddr,
    notices: &[pb::Installment],
    per_second: u64,
) -> anyhow::Result<Vec<(String, Instant)>> {
    let interval = Duration::from_micros(1_000_000 / per_second);
    let mut ticker = tokio::time::interval(interval);
    let mut tasks = tokio::task::JoinSet::new();
    for (i, notice) in notices.iter().enumerate() {
        ticker.tick().await;
        let receipt_id = format!("bench-fasc-rt-{i}");
        let spec = ReceiptSpec::paying(notice, &receipt_id, "BCITITMM", "2026-11-20T10:15:00");
        let request = node::send_rt(&Caller::default(), true, &spec);
        tasks.spawn(async move {
            let reply = post(
                soap,
                Some("paSendRTV2"),
                "text/xml; charset=utf-8",
                request.as_bytes(),
            )
            .await?;
            let answered = Instant::now();
            ensure!(
                node::element_text(&reply.body, "outcome") == Some("OK"),
                "receipt refused: {}",
                reply.body
            );
            Ok((receipt_id, answered))
        });
    }
    let mut answered = Vec::with_capacity(notices.len());
    while let Some(done) = tasks.join_next().await {
        answered.push(done??);
    }
    Ok(answered)
}

/// Sends `batches` one call at a time to a fresh fake; how long it took.
async fn baseline(batches: Vec<Vec<fpb::CitizenEvent>>) -> anyhow::Result<(usize, Duration)> {
    let fake = FakeFascicolo::start().await?;
    fake.state().behaviour.counts_only = true;
    let mut client =
        fpb::payment_history_service_client::PaymentHistoryServiceClient::connect(fake.url())
            .await?;
    let events: usize = batches.iter().map(Vec::len).sum();
    let started = Instant::now();
    for events in batches {
        let answer = client
            .push_events(fpb::PushEventsRequest { events })
            .await?
            .into_inner();
        ensure!(answer.resend_from.is_empty(), "the baseline met a gap");
    }
    let elapsed = started.elapsed();
    ensure!(
        fake.accepted_count() == events,
        "baseline: {} of {events} accepted",
        fake.accepted_count()
    );
    Ok((events, elapsed))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let positions: usize = args
        .next()
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(200_000);
    let receipts: usize = args
        .next()
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(20_000);
    ensure!(receipts <= positions, "at most one receipt per position");
    let events = positions * 4;
    println!(
        "bench-fascicolo: {positions} TARI positions ({events} notice_issued events, one citizen \
         each), {receipts} receipts at 200/s, PostgreSQL"
    );

    let fake = FakeFascicolo::start().await?;
    {
        let mut state = fake.state();
        state.behaviour.down = Some(Code::Unavailable);
        state.behaviour.counts_only = true;
    }
    let config = std::env::temp_dir().join(format!("bench-fascicolo-{}.toml", std::process::id()));
    // Short backoff: phase 2 starts when the fake is back, not when a 30 s backoff ends.
    std::fs::write(&config, "[fascicolo]\nretry_max_seconds = 1\n")?;
    let database = TestDatabase::create(Engine::Postgres).await?;
    let url = fake.url();
    let config_path = config.display().to_string();
    let (server, channel) = Server::start_with(
        &database.url,
        &[
            ("INCASSO_FASCICOLO_URL", url.as_str()),
            ("INCASSO_CONFIG", config_path.as_str()),
        ],
    )
    .await?;
    let pid = server.pid();
    let mut client = NoticeServiceClient::new(channel).max_decoding_message_size(64 * 1024 * 1024);

    let started = Instant::now();
    let notices = issue(&mut client, positions).await?;
    println!(
        "phase 1: {positions} positions issued in bulk in {:.1} s; server RSS {:.1} MiB",
        started.elapsed().as_secs_f64(),
        mib(rss_kib(pid))
    );

    {
        let mut state = fake.state();
        state.behaviour.keep_batches = true;
        state.behaviour.down = None;
    }
    let mut rss = Vec::new();
    let mut next_tenth = 1;
    let deadline = Instant::now() + Duration::from_secs(3600);
    loop {
        let accepted = fake.accepted_count();
        while next_tenth <= 10 && accepted * 10 >= events * next_tenth {
            rss.push(mib(rss_kib(pid)));
            next_tenth += 1;
        }
        if accepted >= events {
            break;
        }
        ensure!(
            Instant::now() < deadline,
            "{accepted} of {events} delivered"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (first, last, calls, batches) = {
        let mut state = fake.state();
        state.behaviour.keep_batches = false;
        (
            state.first_accept,
            state.last_accept,
            state.calls.iter().filter(|c| c.status.is_none()).count(),
            std::mem::take(&mut state.batches),
        )
    };
    let delivery = match (first, last) {
        (Some(first), Some(last)) => last - first,
        _ => bail!("nothing delivered"),
    };
    let service_rate = events as f64 / delivery.as_secs_f64();
    println!(
        "phase 2: {events} events delivered in {:.1} s = {service_rate:.0} events/s \
         ({calls} calls, {:.0} events a call): target >= 5000 {}",
        delivery.as_secs_f64(),
        events as f64 / calls.max(1) as f64,
        if service_rate >= 5000.0 {
            "met"
        } else {
            "MISSED"
        }
    );
    println!(
        "  server RSS every 10% of the delivery: {:?} MiB",
        rss.iter().map(|m| format!("{m:.0}")).collect::<Vec<_>>()
    );

    let answered = pay_paced(server.soap_addr(), &notices[..receipts], 200).await?;
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut lags = loop {
        let lags: Option<Vec<Duration>> = {
            let state = fake.state();
            answered
                .iter()
                .map(|(id, at)| {
                    state
                        .receipt_acks
                        .get(id)
                        .map(|ack| ack.saturating_duration_since(*at))
                })
                .collect()
        };
        if let Some(lags) = lags {
            break lags;
        }
        ensure!(Instant::now() < deadline, "payments not acknowledged");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let p50 = percentile(&mut lags, 50);
    let p99 = percentile(&mut lags, 99);
    println!(
        "phase 3: {receipts} receipts at 200/s, lag from the receipt's OK to the Fascicolo's \
         acknowledgement: p50 {:.1} ms, p99 {:.1} ms: target p99 < 1 s {}; server RSS {:.1} MiB",
        p50.as_secs_f64() * 1000.0,
        p99.as_secs_f64() * 1000.0,
        if p99 < Duration::from_secs(1) {
            "met"
        } else {
            "MISSED"
        },
        mib(rss_kib(pid))
    );
    drop(server);
    database.drop_database().await?;
    let _ = std::fs::remove_file(&config);

    let (sent, elapsed) = baseline(batches).await?;
    let baseline_rate = sent as f64 / elapsed.as_secs_f64();
    println!(
        "baseline: the same {sent} events in the same {calls} batches, one call at a time, \
         straight to a fresh fake: {:.1} s = {baseline_rate:.0} events/s",
        elapsed.as_secs_f64()
    );
    println!("ratio relay/baseline: {:.2}", service_rate / baseline_rate);
    Ok(())
}
