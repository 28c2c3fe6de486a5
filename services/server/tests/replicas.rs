//! Three replicas, one database, as the Helm chart runs them: three `incasso` processes on one
//! PostgreSQL database, each with its own listeners and its own outbox relay, driven the way
//! production drives them: a round-robin client that sends the same bulk request to two
//! replicas, the Node delivering the same receipt to two of them at once, and one replica
//! killed with SIGKILL in the middle. At the end every position exists once, every receipt is
//! booked once, every citizen event reached the (fake) Fascicolo once and in order, and the
//! ledger's chain verifies.
//!
//! PostgreSQL only, by nature: several processes sharing one SQLite file is not a supported
//! deployment (the chart runs replicas on PostgreSQL only). Needs PostgreSQL at
//! `INCASSO_TEST_PG_URL` (default 127.0.0.1:5432).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use incasso_grpc::pb;
use incasso_grpc::pb::bulk_create_debt_positions_response::Result as ItemResult;
use incasso_integration_tests::fake_fascicolo::{FakeFascicolo, citizen_code};
use incasso_integration_tests::process::ServerProcess;
use incasso_integration_tests::receipt_load::{Answer, Delivery, Load, deliver, wait_for};
use incasso_store::testing::{Engine, TestDatabase};

use common::{assert_booked_exactly_once, binary, delivery_paying, query, school_fee_due_soon};

/// Positions, one notice and one receipt each.
const NOTICES: usize = 240;
/// The citizens they belong to (several positions each, so each citizen's events queue up).
const CITIZENS: usize = 24;
/// Concurrent senders per replica.
const WORKERS: usize = 12;

/// The request of position `i`: its debtor is citizen `i % CITIZENS`.
fn request(i: usize) -> pb::CreateDebtPositionRequest {
    let mut fee = school_fee_due_soon(&format!("replica-fee-{i}"));
    let debtor = fee
        .debtor
        .as_mut()
        .expect("the sample school fee has a debtor");
    debtor.fiscal_code = citizen_code(u32::try_from(i % CITIZENS).unwrap());
    fee
}

/// The request ids replica `r` of 3 is sent: two thirds of them, starting at its own third,
/// so every request id goes to exactly two replicas, at the same time.
fn share_of(r: usize) -> Vec<usize> {
    (0..NOTICES)
        .filter(|i| {
            let third = i * 3 / NOTICES;
            third == r || third == (r + 1) % 3
        })
        .collect()
}

/// Sends `indices` to `server` in one bulk stream; (index, position id, installment) of each
/// created or replayed item.
async fn bulk(
    server: &ServerProcess,
    indices: Vec<usize>,
) -> anyhow::Result<Vec<(usize, String, pb::Installment)>> {
    let items: Vec<pb::CreateDebtPositionRequest> = indices.iter().map(|&i| request(i)).collect();
    let mut responses = server
        .notices()
        .await?
        .bulk_create_debt_positions(tokio_stream::iter(items))
        .await?
        .into_inner();
    let mut created = Vec::with_capacity(indices.len());
    while let Some(item) = responses.message().await? {
        let index = indices[usize::try_from(item.index)?];
        let Some(ItemResult::DebtPosition(position)) = item.result else {
            anyhow::bail!("request {index} not created: {:?}", item.result);
        };
        let installment = position.payment_options[0].installments[0].clone();
        created.push((index, position.id, installment));
    }
    anyhow::ensure!(
        created.len() == indices.len(),
        "{} of {} answered",
        created.len(),
        indices.len()
    );
    Ok(created)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_replicas_on_one_database_issue_book_and_publish_everything_once()
-> anyhow::Result<()> {
    let started = Instant::now();
    let database = TestDatabase::create(Engine::Postgres).await?;
    let fascicolo = FakeFascicolo::start().await?;
    let env = [("INCASSO_FASCICOLO_URL", fascicolo.url())];
    // The first replica migrates the new database; the other two start on it at once, as
    // pods do after the chart's migration Job.
    let first = ServerProcess::start_with_env(binary(), &database.url, &env).await?;
    let (second, third) = tokio::join!(
        ServerProcess::start_with_env(binary(), &database.url, &env),
        ServerProcess::start_with_env(binary(), &database.url, &env),
    );
    let mut replicas = vec![first, second?, third?];

    // Bulk creation, every request id sent to two replicas concurrently: each id names one
    // position, whichever replica answered.
    let answers = tokio::try_join!(
        bulk(&replicas[0], share_of(0)),
        bulk(&replicas[1], share_of(1)),
        bulk(&replicas[2], share_of(2)),
    )?;
    let answers = [answers.0, answers.1, answers.2];
    let mut positions: BTreeMap<usize, (String, pb::Installment)> = BTreeMap::new();
    let mut answered = vec![0_usize; NOTICES];
    for (index, id, installment) in answers.into_iter().flatten() {
        answered[index] += 1;
        match positions.get(&index) {
            Some((first_id, first_installment)) => {
                assert_eq!(
                    (first_id, &first_installment.notice_number),
                    (&id, &installment.notice_number),
                    "request {index} answered with two different positions"
                );
            }
            None => {
                positions.insert(index, (id, installment));
            }
        }
    }
    assert!(
        answered.iter().all(|&n| n == 2),
        "each request id went to two replicas"
    );
    assert_eq!(positions.len(), NOTICES);
    let stored = query(&database.url, "SELECT count(*)::text FROM debt_position").await?;
    assert_eq!(stored[0][0], NOTICES.to_string(), "positions stored");

    // Receipts: each notice's receipt goes to two replicas at once (the Node retrying on
    // another pod while the first still works on it); one replica is killed mid-load.
    let deliveries: Vec<Delivery> = positions
        .values()
        .enumerate()
        .map(|(i, (_, installment))| {
            delivery_paying(installment, format!("replica-{i:05}"), i % 3 != 0)
        })
        .collect();
    let sent_to: Vec<Vec<usize>> = (0..3).map(share_of).collect();
    let loads: Vec<Load> = replicas
        .iter()
        .zip(&sent_to)
        .map(|(replica, indices)| {
            let batch = Arc::new(indices.iter().map(|&i| deliveries[i].clone()).collect());
            Load::start(replica.soap_addr, batch, WORKERS)
        })
        .collect();
    let victim = 2;
    assert!(
        wait_for(
            &loads[victim].progress.acknowledged,
            sent_to[victim].len() / 3,
            Duration::from_secs(60)
        )
        .await,
        "the load did not get going on replica {victim}\n{}",
        replicas[victim].log_tail(30)
    );
    replicas[victim].kill9()?;
    let mut acknowledged = vec![false; NOTICES];
    let (mut victim_acknowledged, mut victim_unanswered) = (0, 0);
    for (r, load) in loads.into_iter().enumerate() {
        let answers = load.finish().await?;
        for (&i, answer) in sent_to[r].iter().zip(&answers) {
            if r == victim {
                match answer {
                    Answer::Ok => victim_acknowledged += 1,
                    _ => victim_unanswered += 1,
                }
                assert!(
                    matches!(answer, Answer::Ok | Answer::NoAnswer(_)),
                    "receipt {i} answered {answer:?} by the replica killed"
                );
            } else {
                assert!(
                    answer.is_ok_or_system_error(),
                    "receipt {i} answered {answer:?} by replica {r}\n{}",
                    replicas[r].log_tail(20)
                );
            }
            acknowledged[i] |= answer.is_ok();
        }
    }
    assert!(
        victim_unanswered > 0,
        "the kill landed after replica {victim} had answered everything"
    );
    // The Node delivers again, to a live replica, what no replica acknowledged.
    let unacknowledged: Vec<usize> = (0..NOTICES).filter(|&i| !acknowledged[i]).collect();
    for &i in &unacknowledged {
        let answer = deliver(replicas[0].soap_addr, &deliveries[i]).await;
        assert_eq!(answer, Answer::Ok, "receipt {i} delivered again");
    }
    assert_booked_exactly_once(&replicas[0], &database.url, &deliveries).await?;

    // The relays of the two survivors (and of the victim, until it died) deliver every
    // citizen event once, in each citizen's order; the victim's leases lapse and are taken
    // over.
    let queued: usize = query(
        &database.url,
        "SELECT coalesce(sum(last_sequence), 0)::text FROM citizen_sequence",
    )
    .await?[0][0]
        .parse()?;
    assert_eq!(
        queued,
        2 * NOTICES,
        "one notice_issued and one payment_received each"
    );
    let deadline = Instant::now() + Duration::from_secs(120);
    while fascicolo.accepted_count() < queued && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    {
        let state = fascicolo.state();
        assert!(state.violations.is_empty(), "{:?}", state.violations);
        assert_eq!(
            state.accepted_total, queued,
            "events accepted by the Fascicolo"
        );
        assert_eq!(
            state.max_in_flight_per_citizen, 1,
            "a citizen had two calls in flight"
        );
        let mut kinds: HashMap<(&str, &str), usize> = HashMap::new();
        for accepted in &state.accepted {
            *kinds
                .entry((accepted.citizen.as_str(), accepted.kind))
                .or_default() += 1;
        }
        for c in 0..CITIZENS {
            let citizen = citizen_code(u32::try_from(c).unwrap());
            let owned = (0..NOTICES).filter(|i| i % CITIZENS == c).count();
            let sequences: Vec<u64> = state
                .accepted
                .iter()
                .filter(|a| a.citizen == citizen)
                .map(|a| a.sequence)
                .collect();
            let expected: Vec<u64> = (1..=u64::try_from(2 * owned).unwrap()).collect();
            assert_eq!(sequences, expected, "citizen {c}'s events, in order");
            for kind in ["notice_issued", "payment_received"] {
                assert_eq!(
                    kinds.get(&(citizen.as_str(), kind)),
                    Some(&owned),
                    "citizen {c}'s {kind} events"
                );
            }
        }
    }
    // The relays record each delivery after the Fascicolo's answer: wait for the last ones.
    let undelivered = |url: String| async move {
        query(
            &url,
            "SELECT count(*)::text FROM outbox_event \
             WHERE topic = 'fascicolo.citizen' AND state <> 'delivered'",
        )
        .await
        .map(|rows| rows[0][0].clone())
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while undelivered(database.url.clone()).await? != "0" && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        undelivered(database.url.clone()).await?,
        "0",
        "citizen events left undelivered"
    );
    eprintln!(
        "3 replicas: {NOTICES} positions, replica {victim} killed after {victim_acknowledged} \
         acknowledgements with {victim_unanswered} receipts unanswered, {} receipts delivered \
         again, {queued} citizen events delivered, in {:?}",
        unacknowledged.len(),
        started.elapsed()
    );
    for (r, replica) in replicas.into_iter().enumerate() {
        if r != victim {
            replica.stop().await?;
        }
    }
    database.drop_database().await?;
    Ok(())
}
