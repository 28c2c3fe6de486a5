//! The ledger: entries written with the business change, append-only, hash-chained,
//! verifiable, queryable.

use std::collections::BTreeMap;

use incasso_domain::debt_position::update::{CancelInput, InstallmentUpdateInput, UpdateInput};
use incasso_domain::ledger::chain::ChainedEntry;
use incasso_store::AppError;
use incasso_store::ledger::{Checkpoint, EntryFilterInput};
use incasso_store::testing::{Engine, disable_ledger_triggers};

use crate::fixtures::{self, Harness, execute};
use crate::on_both_engines;

on_both_engines!(
    issue_change_and_cancel_post_balanced_entries_with_the_change,
    ledger_rows_cannot_be_updated_or_deleted,
    verify_catches_an_altered_line_a_removed_entry_and_a_rewritten_chain,
    verify_finds_the_same_first_break_whatever_the_chunks_and_threads,
    a_verification_given_up_half_way_leaves_the_connections_sound,
    concurrent_appends_from_two_replicas_keep_one_chain,
    balances_and_trial_balance_tie_out,
    entries_page_by_filter_and_refuse_bad_filters,
);

fn lines(entry: &ChainedEntry) -> Vec<(String, i64)> {
    entry
        .draft
        .lines
        .iter()
        .map(|l| (l.account.code(), l.amount_cents))
        .collect()
}

/// Verifies the whole chain; `deep` also reads the projection.
async fn verify_all(harness: &Harness, deep: bool) -> incasso_store::ledger::VerifyReport {
    harness
        .store
        .verify_ledger(None, None, &[], deep)
        .await
        .unwrap()
}

async fn all_entries(harness: &Harness) -> Vec<ChainedEntry> {
    harness
        .store
        .list_ledger_entries(&EntryFilterInput::default(), 1000, "")
        .await
        .unwrap()
        .entries
        .into_iter()
        .map(|s| s.entry)
        .collect()
}

async fn issue_change_and_cancel_post_balanced_entries_with_the_change(engine: Engine) {
    let harness = Harness::new(engine).await;
    let position = harness
        .store
        .create_debt_position(&fixtures::tari("led-1"))
        .await
        .unwrap()
        .position;
    // A replay and a refused request post nothing.
    harness
        .store
        .create_debt_position(&fixtures::tari("led-1"))
        .await
        .unwrap();
    let mut bad = fixtures::tari("led-bad");
    bad.description.clear();
    assert!(harness.store.create_debt_position(&bad).await.is_err());

    let entries = all_entries(&harness).await;
    assert_eq!(entries.len(), 1);
    let issued = &entries[0];
    assert_eq!(issued.sequence, 1);
    assert_eq!(issued.draft.event_type.as_str(), "notice_issued");
    assert_eq!(
        lines(issued),
        [
            ("receivable:01199250158:tari".to_owned(), 30000),
            ("revenue:01199250158:tari".to_owned(), -28500),
            (
                "due_to_beneficiary:01199250158:08911820960".to_owned(),
                -1500
            ),
        ]
    );
    assert_eq!(
        issued.draft.cause.notices.len(),
        4,
        "every notice of the position"
    );
    let (stored, document) = harness.store.get_ledger_entry(Some(1), "").await.unwrap();
    let document = document.expect("the request is the source document");
    let content = String::from_utf8(document.content.unwrap()).unwrap();
    assert!(content.contains("\"request_id\":\"led-1\""), "{content}");
    assert_eq!(stored.entry.source_document_sha256, Some(document.sha256));

    // Changing the single payment changes what the position assesses.
    let rata_unica = position.payment_options[0].installments[0].clone();
    let update = UpdateInput {
        request_id: "led-1-up".to_owned(),
        id: position.id.to_string(),
        installments: vec![InstallmentUpdateInput {
            notice_number: rata_unica.notice_number.to_string(),
            amount_cents: Some(31000),
            transfers: vec![
                incasso_domain::debt_position::input::TransferInput {
                    beneficiary_fiscal_code: fixtures::MILANO.to_owned(),
                    amount_cents: 29450,
                    ..Default::default()
                },
                incasso_domain::debt_position::input::TransferInput {
                    beneficiary_fiscal_code: fixtures::CITTA_METROPOLITANA.to_owned(),
                    amount_cents: 1550,
                    ..Default::default()
                },
            ],
            ..Default::default()
        }],
        ..Default::default()
    };
    harness.store.update_debt_position(&update).await.unwrap();
    // Moving a due date moves no money and posts nothing.
    let third = position.payment_options[1].installments[2].clone();
    let dates = UpdateInput {
        request_id: "led-1-date".to_owned(),
        id: position.id.to_string(),
        installments: vec![InstallmentUpdateInput {
            notice_number: third.notice_number.to_string(),
            due_date: Some("2026-12-16".to_owned()),
            ..Default::default()
        }],
        ..Default::default()
    };
    harness.store.update_debt_position(&dates).await.unwrap();
    let cancel = CancelInput {
        request_id: "led-1-cancel".to_owned(),
        id: position.id.to_string(),
        reason: "annullamento in autotutela".to_owned(),
    };
    harness.store.cancel_debt_position(&cancel).await.unwrap();

    let entries = all_entries(&harness).await;
    let kinds: Vec<_> = entries
        .iter()
        .map(|e| e.draft.event_type.as_str())
        .collect();
    assert_eq!(
        kinds,
        ["notice_issued", "notice_changed", "notice_cancelled"]
    );
    assert_eq!(
        lines(&entries[1]),
        [
            ("receivable:01199250158:tari".to_owned(), 1000),
            ("revenue:01199250158:tari".to_owned(), -950),
            ("due_to_beneficiary:01199250158:08911820960".to_owned(), -50),
        ]
    );
    assert_eq!(
        lines(&entries[2]),
        [
            ("receivable:01199250158:tari".to_owned(), -31000),
            ("revenue:01199250158:tari".to_owned(), 29450),
            (
                "due_to_beneficiary:01199250158:08911820960".to_owned(),
                1550
            ),
        ]
    );
    for entry in &entries {
        assert_eq!(
            entry
                .draft
                .lines
                .iter()
                .map(|l| l.amount_cents)
                .sum::<i64>(),
            0
        );
    }
    // Follow one notice of the plan from issue to cancellation.
    let by_notice = harness
        .store
        .list_ledger_entries(
            &EntryFilterInput {
                notice_number: third.notice_number.to_string(),
                ..Default::default()
            },
            100,
            "",
        )
        .await
        .unwrap();
    assert_eq!(by_notice.entries.len(), 3);
    harness.finish().await;
}

async fn ledger_rows_cannot_be_updated_or_deleted(engine: Engine) {
    let harness = Harness::new(engine).await;
    harness
        .store
        .create_debt_position(&fixtures::fine("led-2"))
        .await
        .unwrap();
    for sql in [
        "UPDATE ledger_line SET amount_cents = amount_cents + 1",
        "DELETE FROM ledger_line",
        "UPDATE ledger_entry SET description = 'x'",
        "DELETE FROM ledger_entry_notice",
        "DELETE FROM source_document",
    ] {
        let error = execute(&harness, sql).await.unwrap_err().to_string();
        assert!(error.contains("append-only"), "{sql}: {error}");
    }
    assert!(verify_all(&harness, true).await.ok);
    harness.finish().await;
}

fn literal(harness: &Harness, bytes: &[u8]) -> String {
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    match harness.store.db().get_database_backend() {
        sea_orm::DbBackend::Postgres => format!("'\\x{hex}'::bytea"),
        _ => format!("X'{hex}'"),
    }
}

async fn verify_catches_an_altered_line_a_removed_entry_and_a_rewritten_chain(engine: Engine) {
    let harness = Harness::new(engine).await;
    for n in 0..4 {
        harness
            .store
            .create_debt_position(&fixtures::tari(&format!("led-3-{n}")))
            .await
            .unwrap();
    }
    let report = verify_all(&harness, true).await;
    assert!(report.ok, "{report:?}");
    assert_eq!(report.entries_checked, 4);
    let checkpoint = Checkpoint {
        sequence: report.last_sequence,
        hash: report.last_hash,
    };
    assert_eq!(harness.store.ledger_head().await.unwrap(), checkpoint);
    disable_ledger_triggers(harness.store.db()).await.unwrap();

    // 1. Shift a cent between two lines of entry 2 in the table balances are summed from: it
    //    still balances, but it no longer says what was recorded.
    execute(&harness, "UPDATE ledger_line SET amount_cents = amount_cents + 1 WHERE entry_sequence = 2 AND line_index = 0").await.unwrap();
    execute(&harness, "UPDATE ledger_line SET amount_cents = amount_cents - 1 WHERE entry_sequence = 2 AND line_index = 1").await.unwrap();
    let report = verify_all(&harness, true).await;
    assert!(!report.ok);
    assert_eq!(report.first_broken_sequence, Some(2));
    assert!(report.reason.contains("lines"), "{}", report.reason);
    assert_eq!(report.entries_checked, 1);
    assert!(
        verify_all(&harness, false).await.ok,
        "the chain alone is intact: only the deep check reads the projection"
    );
    execute(&harness, "UPDATE ledger_line SET amount_cents = amount_cents - 1 WHERE entry_sequence = 2 AND line_index = 0").await.unwrap();
    execute(&harness, "UPDATE ledger_line SET amount_cents = amount_cents + 1 WHERE entry_sequence = 2 AND line_index = 1").await.unwrap();
    assert!(verify_all(&harness, true).await.ok);

    // 1b. Columns that filters and sums use, altered without touching amounts: a line moved
    //     to another account type, an entry moved in time. Each is caught, then undone.
    for (alter, undo, reason) in [
        (
            "UPDATE ledger_line SET account_type = 'suspense' WHERE entry_sequence = 2 AND line_index = 0",
            "UPDATE ledger_line SET account_type = 'receivable' WHERE entry_sequence = 2 AND line_index = 0",
            "lines",
        ),
        (
            "UPDATE ledger_entry SET recorded_micros = recorded_micros - 86400000000 WHERE sequence = 2",
            "UPDATE ledger_entry SET recorded_micros = recorded_micros + 86400000000 WHERE sequence = 2",
            "time",
        ),
        // The entry pointed at another entry's request: the document behind the movement
        // would no longer be the one it recorded.
        (
            "UPDATE ledger_entry SET source_document_id = (SELECT source_document_id FROM ledger_entry WHERE sequence = 3) WHERE sequence = 2",
            "UPDATE ledger_entry SET source_document_id = (SELECT id FROM source_document WHERE sha256 = ledger_entry.source_document_sha256) WHERE sequence = 2",
            "not the one it recorded",
        ),
        // Its document no longer opens with the deployment's key.
        (
            "UPDATE source_document SET key_id = 'another-key' WHERE id = (SELECT source_document_id FROM ledger_entry WHERE sequence = 2)",
            "UPDATE source_document SET key_id = (SELECT key_id FROM source_document WHERE id = (SELECT source_document_id FROM ledger_entry WHERE sequence = 3)) WHERE id = (SELECT source_document_id FROM ledger_entry WHERE sequence = 2)",
            "cannot be opened",
        ),
    ] {
        execute(&harness, alter).await.unwrap();
        let report = verify_all(&harness, true).await;
        assert!(!report.ok, "{alter}");
        assert_eq!(report.first_broken_sequence, Some(2), "{alter}");
        assert!(report.reason.contains(reason), "{alter}: {}", report.reason);
        assert!(
            verify_all(&harness, false).await.ok,
            "{alter}: the chain alone is intact"
        );
        execute(&harness, undo).await.unwrap();
    }
    assert!(verify_all(&harness, true).await.ok);
    // A range past the end of the ledger is a bad request, not a "missing entry".
    let error = harness
        .store
        .verify_ledger(None, Some(99), &[], true)
        .await
        .unwrap_err();
    assert!(matches!(&error, AppError::Invalid(e) if e.violations()[0].field == "to_sequence"));

    // 2. Alter the recorded entry 2 itself, lines and all, consistently.
    let entries = all_entries(&harness).await;
    let mut altered = entries[1].clone();
    altered.draft.lines[0].amount_cents += 100;
    altered.draft.lines[1].amount_cents -= 100;
    let body = incasso_domain::ledger::chain::canonical_encoding(
        altered.sequence,
        altered.id,
        altered.recorded_at,
        altered.source_document_sha256.as_ref(),
        &altered.draft,
    );
    execute(
        &harness,
        &format!(
            "UPDATE ledger_entry SET body = {} WHERE sequence = 2",
            literal(&harness, &body)
        ),
    )
    .await
    .unwrap();
    for (index, line) in altered.draft.lines.iter().enumerate() {
        execute(
            &harness,
            &format!(
                "UPDATE ledger_line SET amount_cents = {} WHERE entry_sequence = 2 AND line_index = {index}",
                line.amount_cents
            ),
        )
        .await
        .unwrap();
    }
    let report = verify_all(&harness, true).await;
    assert_eq!(report.first_broken_sequence, Some(2));
    assert!(report.reason.contains("altered"), "{}", report.reason);
    // A range after the damage still verifies on its own.
    assert!(
        harness
            .store
            .verify_ledger(Some(3), None, &[], true)
            .await
            .unwrap()
            .ok
    );

    // 3. The attacker now rewrites every hash from entry 2 on, consistently.
    let mut previous = entries[0].hash;
    for entry in all_entries(&harness).await.into_iter().skip(1) {
        let hash = entry.recompute(&previous);
        execute(
            &harness,
            &format!(
                "UPDATE ledger_entry SET previous_hash = {}, hash = {} WHERE sequence = {}",
                literal(&harness, &previous),
                literal(&harness, &hash),
                entry.sequence
            ),
        )
        .await
        .unwrap();
        execute(
            &harness,
            &format!(
                "UPDATE ledger_head SET last_hash = {} WHERE id = 1",
                literal(&harness, &hash)
            ),
        )
        .await
        .unwrap();
        previous = hash;
    }
    let report = verify_all(&harness, true).await;
    assert!(
        report.ok,
        "a consistent rewrite passes the chain check alone: {report:?}"
    );
    let report = harness
        .store
        .verify_ledger(None, None, &[checkpoint], true)
        .await
        .unwrap();
    assert!(!report.ok);
    assert_eq!(report.first_broken_sequence, Some(checkpoint.sequence));
    assert!(report.reason.contains("checkpoint"), "{}", report.reason);

    // 4. Removing the last entries is caught by the checkpoint too.
    execute(&harness, "DELETE FROM ledger_line WHERE entry_sequence = 4")
        .await
        .unwrap();
    execute(
        &harness,
        "DELETE FROM ledger_entry_notice WHERE entry_sequence = 4",
    )
    .await
    .unwrap();
    execute(&harness, "DELETE FROM ledger_entry WHERE sequence = 4")
        .await
        .unwrap();
    let report = harness
        .store
        .verify_ledger(None, None, &[checkpoint], true)
        .await
        .unwrap();
    assert!(!report.ok, "{report:?}");
    harness.finish().await;
}

/// Verification reads in chunks and hashes each chunk in several threads, each starting from
/// a stored hash: whatever the chunk and thread sizes, it must find exactly what one
/// sequential pass finds.
async fn verify_finds_the_same_first_break_whatever_the_chunks_and_threads(engine: Engine) {
    let harness = Harness::new(engine).await;
    for n in 0..13 {
        harness
            .store
            .create_debt_position(&fixtures::school_fee(&format!("led-5-{n}")))
            .await
            .unwrap();
    }
    let entries = all_entries(&harness).await;
    let total = entries.len() as i64;
    assert_eq!(total, 13);
    let head = harness.store.ledger_head().await.unwrap();
    // (chunk, threads, least entries per thread)
    let shapes = [
        (1, 1, 1),
        (2, 2, 1),
        (3, 3, 1),
        (5, 2, 1),
        (4, 8, 1),
        (100, 3, 1),
        (100, 2, 512),
    ];
    let verify = |chunk: i64, parts: usize, min_part: usize, deep: bool| {
        let store = harness.store.clone();
        async move {
            store
                .verify_ledger_in_chunks(None, None, &[], deep, chunk, parts, min_part)
                .await
                .unwrap()
        }
    };
    for (chunk, parts, min_part) in shapes {
        for deep in [false, true] {
            let report = verify(chunk, parts, min_part, deep).await;
            assert!(report.ok, "{chunk}/{parts}/{deep}: {report:?}");
            assert_eq!(report.entries_checked, total);
            assert_eq!(
                (report.last_sequence, report.last_hash),
                (head.sequence, head.hash)
            );
        }
    }
    disable_ledger_triggers(harness.store.db()).await.unwrap();
    // A stored hash replaced by another entry's, at the first, a middle and the last entry.
    for broken in [1i64, 6, 7, 13] {
        let index = usize::try_from(broken - 1).unwrap();
        let other = entries[(index + 1) % entries.len()].hash;
        let set_hash = |hash: [u8; 32]| {
            format!(
                "UPDATE ledger_entry SET hash = {} WHERE sequence = {broken}",
                literal(&harness, &hash)
            )
        };
        execute(&harness, &set_hash(other)).await.unwrap();
        for (chunk, parts, min_part) in shapes {
            for deep in [false, true] {
                let report = verify(chunk, parts, min_part, deep).await;
                let shape = format!("entry {broken}, chunk {chunk}, {parts} threads, deep {deep}");
                assert!(!report.ok, "{shape}");
                assert_eq!(report.first_broken_sequence, Some(broken), "{shape}");
                assert!(
                    report.reason.contains("altered"),
                    "{shape}: {}",
                    report.reason
                );
                assert_eq!(report.entries_checked, broken - 1, "{shape}");
                let before = if broken == 1 {
                    incasso_domain::ledger::chain::GENESIS_HASH
                } else {
                    entries[index - 1].hash
                };
                assert_eq!(
                    (report.last_sequence, report.last_hash),
                    (broken - 1, before),
                    "{shape}"
                );
            }
        }
        execute(&harness, &set_hash(entries[index].hash))
            .await
            .unwrap();
    }
    // An entry removed from the middle: the gap is found at its place.
    for table in [
        "ledger_line WHERE entry_sequence",
        "ledger_entry_notice WHERE entry_sequence",
        "ledger_entry WHERE sequence",
    ] {
        execute(&harness, &format!("DELETE FROM {table} = 9"))
            .await
            .unwrap();
    }
    for (chunk, parts, min_part) in shapes {
        for deep in [false, true] {
            let report = verify(chunk, parts, min_part, deep).await;
            assert_eq!(
                report.first_broken_sequence,
                Some(9),
                "chunk {chunk}, {parts} threads"
            );
            assert!(
                report.reason.contains("entry 9 is missing"),
                "{}",
                report.reason
            );
            assert_eq!(report.entries_checked, 8);
        }
    }
    harness.finish().await;
}

async fn concurrent_appends_from_two_replicas_keep_one_chain(engine: Engine) {
    let harness = Harness::new(engine).await;
    let replica = harness.replica().await;
    let tasks: Vec<_> = (0..16)
        .map(|n| {
            let store = if n % 2 == 0 {
                harness.store.clone()
            } else {
                replica.clone()
            };
            tokio::spawn(async move {
                for k in 0..3 {
                    store
                        .create_debt_position(&fixtures::school_fee(&format!("led-4-{n}-{k}")))
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let report = verify_all(&harness, true).await;
    assert!(report.ok, "{report:?}");
    assert_eq!(report.entries_checked, 48);
    let sequences: Vec<i64> = all_entries(&harness)
        .await
        .iter()
        .map(|e| e.sequence)
        .collect();
    assert_eq!(sequences, (1..=48).collect::<Vec<_>>());
    replica.db().clone().close().await.unwrap();
    harness.finish().await;
}

async fn balances_and_trial_balance_tie_out(engine: Engine) {
    let harness = Harness::new(engine).await;
    harness
        .store
        .create_debt_position(&fixtures::tari("led-5"))
        .await
        .unwrap();
    harness
        .store
        .create_debt_position(&fixtures::fine("led-6"))
        .await
        .unwrap();
    let fee = harness
        .store
        .create_debt_position(&fixtures::school_fee("led-7"))
        .await
        .unwrap()
        .position;
    harness
        .store
        .cancel_debt_position(&CancelInput {
            request_id: "led-7-cancel".to_owned(),
            id: fee.id.to_string(),
            reason: "ritiro".to_owned(),
        })
        .await
        .unwrap();
    let (as_of, balances) = harness.store.ledger_balances(None, "", "").await.unwrap();
    assert_eq!(as_of, 4);
    let balances: BTreeMap<_, _> = balances
        .into_iter()
        .map(|b| (b.account, b.balance_cents))
        .collect();
    assert_eq!(balances["receivable:01199250158:tari"], 30000);
    assert_eq!(
        balances["receivable:01199250158:traffic_fine"], 4200,
        "reduced amount plus costs"
    );
    assert_eq!(
        balances["receivable:01199250158:school_fee"], 0,
        "issued then cancelled"
    );
    assert_eq!(balances.values().sum::<i64>(), 0);
    let receivables = harness
        .store
        .ledger_balances(None, "01199250158", "receivable")
        .await
        .unwrap()
        .1;
    assert_eq!(receivables.len(), 3);
    let before = harness
        .store
        .ledger_balances(Some(time::macros::datetime!(2026-01-01 0:00 UTC)), "", "")
        .await
        .unwrap();
    assert_eq!(before, (0, vec![]));

    // The harness clock is 2026-11-24.
    let trial = harness
        .store
        .trial_balance("2026-01-01", "2026-12-31", "")
        .await
        .unwrap();
    let debits: i64 = trial.iter().map(|r| r.debit_cents).sum();
    let credits: i64 = trial.iter().map(|r| r.credit_cents).sum();
    assert_eq!(debits, credits);
    let school = trial
        .iter()
        .find(|r| r.account == "receivable:01199250158:school_fee")
        .unwrap();
    assert_eq!((school.debit_cents, school.credit_cents), (46500, 46500));
    assert!(
        harness
            .store
            .trial_balance("2025-01-01", "2025-12-31", "")
            .await
            .unwrap()
            .is_empty()
    );
    let error = harness
        .store
        .trial_balance("2026-13-01", "2026-12-31", "")
        .await
        .unwrap_err();
    assert!(
        matches!(&error, AppError::Invalid(e) if e.violations()[0].field == "from"),
        "{error:?}"
    );
    harness.finish().await;
}

async fn entries_page_by_filter_and_refuse_bad_filters(engine: Engine) {
    let harness = Harness::new(engine).await;
    for n in 0..7 {
        harness
            .store
            .create_debt_position(&fixtures::tari(&format!("led-8-{n}")))
            .await
            .unwrap();
    }
    harness
        .store
        .create_debt_position(&fixtures::fine("led-8-f"))
        .await
        .unwrap();
    let by_account = EntryFilterInput {
        account: "receivable:01199250158:tari".to_owned(),
        ..Default::default()
    };
    let mut token = String::new();
    let mut seen = Vec::new();
    loop {
        let page = harness
            .store
            .list_ledger_entries(&by_account, 3, &token)
            .await
            .unwrap();
        seen.extend(page.entries.iter().map(|e| e.entry.sequence));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(seen, (1..=7).collect::<Vec<_>>());
    let fines = EntryFilterInput {
        kind: Some(incasso_domain::debt_position::DebtKind::TrafficFine),
        event_type: "notice_issued".to_owned(),
        ..Default::default()
    };
    let page = harness
        .store
        .list_ledger_entries(&fines, 10, "")
        .await
        .unwrap();
    assert_eq!(page.entries.len(), 1);
    assert_eq!(page.entries[0].entry.sequence, 8);

    let first = harness
        .store
        .list_ledger_entries(&by_account, 3, "")
        .await
        .unwrap();
    let error = harness
        .store
        .list_ledger_entries(&fines, 3, &first.next_page_token)
        .await
        .unwrap_err();
    assert!(matches!(&error, AppError::Invalid(e) if e.violations()[0].field == "page_token"));
    for (filter, field) in [
        (
            EntryFilterInput {
                account: "cash:01199250158".to_owned(),
                ..Default::default()
            },
            "account",
        ),
        (
            // Well formed, but no books of this creditor exist here.
            EntryFilterInput {
                account: "receivable:00000000000:tari".to_owned(),
                ..Default::default()
            },
            "account",
        ),
        (
            EntryFilterInput {
                creditor_fiscal_code: "80012000826".to_owned(),
                ..Default::default()
            },
            "creditor_fiscal_code",
        ),
        (
            EntryFilterInput {
                event_type: "payment".to_owned(),
                ..Default::default()
            },
            "event_type",
        ),
        (
            EntryFilterInput {
                notice_number: "12345".to_owned(),
                ..Default::default()
            },
            "notice_number",
        ),
        (
            EntryFilterInput {
                debt_position_id: "x".to_owned(),
                ..Default::default()
            },
            "debt_position_id",
        ),
    ] {
        let error = harness
            .store
            .list_ledger_entries(&filter, 10, "")
            .await
            .unwrap_err();
        assert!(
            matches!(&error, AppError::Invalid(e) if e.violations()[0].field == field),
            "{field}: {error:?}"
        );
    }
    // An export reads everything in chunks.
    let mut export = harness
        .store
        .parse_export_filter(&EntryFilterInput::default())
        .unwrap();
    let mut after = 0;
    let mut exported = 0;
    loop {
        let chunk = harness
            .store
            .export_chunk(&mut export, after, 3)
            .await
            .unwrap();
        let Some(last) = chunk.last() else { break };
        after = last.entry.sequence;
        exported += chunk.len();
    }
    assert_eq!(exported, 8);
    harness.finish().await;
}

/// A caller who stops waiting (a cancelled gRPC call, a timeout) drops the verification at
/// whatever point it had reached. Had that dropped a COPY half read, the connection would go
/// back to the pool with the rest of the stream pending and answer the next query wrongly.
async fn a_verification_given_up_half_way_leaves_the_connections_sound(engine: Engine) {
    let harness = Harness::new(engine).await;
    for n in 0..20 {
        harness
            .store
            .create_debt_position(&fixtures::school_fee(&format!("led-6-{n}")))
            .await
            .unwrap();
    }
    let head = harness.store.ledger_head().await.unwrap();
    // A grid fine enough that several give up while a chunk is streaming.
    for delay_micros in (0u64..8000).step_by(250) {
        let given_up = tokio::time::timeout(
            std::time::Duration::from_micros(delay_micros),
            harness
                .store
                .verify_ledger_in_chunks(None, None, &[], false, 1, 1, 1),
        )
        .await;
        if let Ok(report) = given_up {
            assert!(report.unwrap().ok);
        }
        for _ in 0..2 {
            let report = harness
                .store
                .verify_ledger_in_chunks(None, None, &[], false, 3, 2, 1)
                .await
                .unwrap();
            assert!(
                report.ok,
                "after giving up at {delay_micros} µs: {report:?}"
            );
            assert_eq!(report.entries_checked, head.sequence);
            assert_eq!(all_entries(&harness).await.len() as i64, head.sequence);
        }
    }
    harness.finish().await;
}
