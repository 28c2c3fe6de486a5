//! Creating, reading, listing, changing and cancelling debt positions.

use std::collections::HashSet;

use sea_orm::{ConnectionTrait, Statement};
use time::macros::date;

use incasso_domain::debt_position::input::TransferInput;
use incasso_domain::debt_position::update::{CancelInput, InstallmentUpdateInput, UpdateInput};
use incasso_domain::debt_position::{
    DebtKind, EffectiveInstallmentState, EffectivePositionState, InstallmentState, KindDetails,
    PositionState,
};
use incasso_domain::notice_number::NoticeNumber;
use incasso_domain::traffic_fine::FineBand;
use incasso_store::AppError;
use incasso_store::positions::ListQuery;
use incasso_store::testing::Engine;

use crate::fixtures::{self, CITTA_METROPOLITANA, Harness, MILANO, count};
use crate::on_both_engines;

on_both_engines!(
    tari_gets_one_notice_per_installment,
    identical_requests_replay_and_different_content_conflicts,
    invalid_requests_store_nothing,
    sixteen_concurrent_identical_requests_create_once,
    concurrent_creations_on_two_replicas_never_share_a_notice_number,
    bulk_batches_isolate_bad_items_and_never_duplicate,
    updates_keep_notice_numbers_and_are_refused_when_closed,
    cancellation_closes_every_notice_and_numbers_are_never_reissued,
    lists_filter_and_page_with_tokens_bound_to_their_query,
    fine_amount_depends_on_the_day_of_payment,
    personal_data_is_not_stored_in_clear,
);

async fn tari_gets_one_notice_per_installment(engine: Engine) {
    let harness = Harness::new(engine).await;
    let outcome = harness
        .store
        .create_debt_position(&fixtures::tari("tari-1"))
        .await
        .unwrap();
    assert!(!outcome.replayed);
    let position = outcome.position;
    assert_eq!(position.kind(), DebtKind::Tari);
    assert_eq!(position.state, PositionState::Valid);
    assert_eq!(position.payment_options.len(), 2);
    assert_eq!(position.payment_options[0].label, "Rata unica");
    assert_eq!(position.payment_options[1].installments.len(), 3);
    let amounts: Vec<i64> = position.installments().map(|i| i.amount.get()).collect();
    assert_eq!(amounts, [30000, 10000, 10000, 10000]);
    let mut navs = HashSet::new();
    for installment in position.installments() {
        let nav = installment.notice_number.as_str();
        assert_eq!(nav.len(), 18);
        assert!(
            nav.starts_with("312"),
            "aux digit 3, segregation code 12: {nav}"
        );
        // The check digits are the number before them modulo 93.
        let body: u64 = nav[..16].parse().unwrap();
        assert_eq!(nav[16..].parse::<u64>().unwrap(), body % 93);
        assert_eq!(installment.iuv.as_str(), &nav[1..]);
        assert_eq!(
            installment
                .notice_number
                .qr_code_payload(&position.creditor, installment.amount),
            format!("PAGOPA|002|{nav}|01199250158|{}", installment.amount.get())
        );
        let sum: i64 = installment.transfers.iter().map(|t| t.amount.get()).sum();
        assert_eq!(sum, installment.amount.get());
        assert_eq!(installment.transfers[0].beneficiary.as_str(), MILANO);
        assert_eq!(
            installment.transfers[0].iban.as_str(),
            fixtures::MILANO_BANK_IBAN
        );
        assert_eq!(installment.transfers[0].taxonomy.as_str(), "9/0101101IM/");
        assert_eq!(
            installment.transfers[1].beneficiary.as_str(),
            CITTA_METROPOLITANA
        );
        assert_eq!(
            installment.transfers[1].iban.as_str(),
            fixtures::CM_BANK_IBAN
        );
        assert_eq!(installment.transfers[1].taxonomy.as_str(), "9/0201102IM/");
        assert!(navs.insert(nav.to_owned()));
    }
    let rata_unica = &position.payment_options[0].installments[0];
    assert_eq!(
        rata_unica.transfers[1].remittance_information,
        "TEFA 2026 rata unica"
    );
    assert_eq!(rata_unica.due_date, date!(2026 - 07 - 31));
    // Left out, the causale is the position's description.
    let first_rate = &position.payment_options[1].installments[0];
    assert_eq!(
        first_rate.transfers[0].remittance_information,
        "TARI 2026 utenza domestica"
    );

    let read = harness
        .store
        .get_debt_position(&position.id.to_string())
        .await
        .unwrap();
    assert_eq!(read, position);
    let (by_nav, _) = harness
        .store
        .find_by_notice_number(first_rate.notice_number.as_str(), "")
        .await
        .unwrap();
    assert_eq!(by_nav.id, position.id);
    let debtor = read.debtor.unwrap();
    assert_eq!(debtor.fiscal_code.as_str(), "RSSMRA80A01F205X");
    assert_eq!(debtor.full_name, "Mario Rossi");
    harness.finish().await;
}

async fn identical_requests_replay_and_different_content_conflicts(engine: Engine) {
    let harness = Harness::new(engine).await;
    let first = harness
        .store
        .create_debt_position(&fixtures::tari("tari-2"))
        .await
        .unwrap();
    let again = harness
        .store
        .create_debt_position(&fixtures::tari("tari-2"))
        .await
        .unwrap();
    assert!(again.replayed);
    assert_eq!(again.position, first.position);

    let mut changed = fixtures::tari("tari-2");
    changed.description = "TARI 2026 altro".to_owned();
    let error = harness
        .store
        .create_debt_position(&changed)
        .await
        .unwrap_err();
    assert!(
        matches!(&error, AppError::IdempotencyConflict { request_id } if request_id == "tari-2"),
        "{error:?}"
    );
    // The same id used for a different kind of command is a conflict too.
    let cancel = CancelInput {
        request_id: "tari-2".to_owned(),
        id: first.position.id.to_string(),
        reason: "errore".to_owned(),
    };
    let error = harness
        .store
        .cancel_debt_position(&cancel)
        .await
        .unwrap_err();
    assert!(
        matches!(error, AppError::IdempotencyConflict { .. }),
        "{error:?}"
    );
    assert_eq!(count(&harness, "debt_position").await, 1);
    assert_eq!(count(&harness, "installment").await, 4);
    harness.finish().await;
}

async fn invalid_requests_store_nothing(engine: Engine) {
    let harness = Harness::new(engine).await;
    let field_of = |error: AppError| match error {
        AppError::Invalid(errors) => errors
            .violations()
            .iter()
            .map(|v| v.field.clone())
            .collect::<Vec<_>>(),
        other => panic!("expected invalid, got {other:?}"),
    };
    let mut bad_cf = fixtures::tari("bad-1");
    bad_cf.debtor.as_mut().unwrap().fiscal_code = "RSSMRA80A01F205Y".to_owned();
    let mut bad_sum = fixtures::tari("bad-2");
    bad_sum.payment_options[0].installments[0].transfers[1].amount_cents = 1499;
    let mut six = fixtures::tari("bad-3");
    let one = TransferInput {
        beneficiary_fiscal_code: MILANO.to_owned(),
        amount_cents: 5000,
        ..Default::default()
    };
    six.payment_options[0].installments[0].transfers = vec![one; 6];
    let mut zero = fixtures::school_fee("bad-4");
    zero.payment_options[0].installments[0].amount_cents = 0;
    let mut negative = fixtures::school_fee("bad-5");
    negative.payment_options[0].installments[0].amount_cents = -100;
    let mut long_remittance = fixtures::tari("bad-6");
    long_remittance.payment_options[0].installments[0].transfers[0].remittance_information =
        "x".repeat(141);
    let mut unknown_creditor = fixtures::tari("bad-7");
    unknown_creditor.creditor_fiscal_code = "00000000000".to_owned();
    let mut bad_date = fixtures::tari("bad-8");
    bad_date.payment_options[1].installments[2].due_date = "2026-11-31".to_owned();

    let cases = [
        (bad_cf, "debtor.fiscal_code"),
        (bad_sum, "payment_options[0].installments[0].transfers"),
        (six, "payment_options[0].installments[0].transfers"),
        (zero, "payment_options[0].installments[0].amount_cents"),
        (negative, "payment_options[0].installments[0].amount_cents"),
        (
            long_remittance,
            "payment_options[0].installments[0].transfers[0].remittance_information",
        ),
        (unknown_creditor, "creditor_fiscal_code"),
        (bad_date, "payment_options[1].installments[2].due_date"),
    ];
    for (input, field) in cases {
        let error = harness
            .store
            .create_debt_position(&input)
            .await
            .unwrap_err();
        let fields = field_of(error);
        assert!(
            fields.iter().any(|f| f == field),
            "{} should name {field}: {fields:?}",
            input.request_id
        );
    }
    for table in [
        "debt_position",
        "installment",
        "transfer",
        "personal_data",
        "command",
    ] {
        assert_eq!(count(&harness, table).await, 0, "{table}");
    }
    harness.finish().await;
}

async fn sixteen_concurrent_identical_requests_create_once(engine: Engine) {
    let harness = Harness::new(engine).await;
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let store = harness.store.clone();
            tokio::spawn(async move { store.create_debt_position(&fixtures::tari("race-1")).await })
        })
        .collect();
    let mut created = 0;
    let mut replayed = 0;
    let mut ids = HashSet::new();
    for task in tasks {
        let outcome = task.await.unwrap().unwrap();
        if outcome.replayed {
            replayed += 1;
        } else {
            created += 1;
        }
        ids.insert(outcome.position.id);
    }
    assert_eq!((created, replayed), (1, 15));
    assert_eq!(ids.len(), 1);
    assert_eq!(count(&harness, "debt_position").await, 1);
    assert_eq!(count(&harness, "installment").await, 4);
    harness.finish().await;
}

async fn concurrent_creations_on_two_replicas_never_share_a_notice_number(engine: Engine) {
    let harness = Harness::new(engine).await;
    let replica = harness.replica().await;
    let tasks: Vec<_> = (0..24)
        .map(|n| {
            let store = if n % 2 == 0 {
                harness.store.clone()
            } else {
                replica.clone()
            };
            tokio::spawn(async move {
                let mut navs = Vec::new();
                for k in 0..3 {
                    let outcome = store
                        .create_debt_position(&fixtures::tari(&format!("replica-{n}-{k}")))
                        .await
                        .unwrap();
                    navs.extend(
                        outcome
                            .position
                            .installments()
                            .map(|i| i.notice_number.to_string()),
                    );
                }
                navs
            })
        })
        .collect();
    let mut all = HashSet::new();
    for task in tasks {
        for nav in task.await.unwrap() {
            assert!(all.insert(nav.clone()), "notice number {nav} issued twice");
        }
    }
    assert_eq!(all.len(), 24 * 3 * 4);
    assert_eq!(count(&harness, "installment").await, 24 * 3 * 4);
    replica.db().clone().close().await.unwrap();
    harness.finish().await;
}

async fn bulk_batches_isolate_bad_items_and_never_duplicate(engine: Engine) {
    let harness = Harness::new(engine).await;
    let mut bad = fixtures::tari("bulk-bad");
    bad.debtor.as_mut().unwrap().fiscal_code = "RSSMRA80A01F205Y".to_owned();
    let batch = vec![
        fixtures::tari("bulk-1"),
        bad,
        fixtures::fine("bulk-2"),
        fixtures::tari("bulk-1"),
        fixtures::school_fee("bulk-3"),
    ];
    let results = harness.store.create_debt_positions(&batch).await;
    assert_eq!(results.len(), 5);
    assert!(!results[0].as_ref().unwrap().replayed);
    assert!(matches!(results[1], Err(AppError::Invalid(_))));
    assert_eq!(
        results[2].as_ref().unwrap().position.kind(),
        DebtKind::TrafficFine
    );
    let duplicate = results[3].as_ref().unwrap();
    assert!(duplicate.replayed);
    assert_eq!(
        duplicate.position.id,
        results[0].as_ref().unwrap().position.id
    );
    assert_eq!(
        results[4].as_ref().unwrap().position.installments().count(),
        1
    );
    assert_eq!(count(&harness, "debt_position").await, 3);

    // The whole stream again: every good item replays, nothing is created twice.
    let again = harness.store.create_debt_positions(&batch).await;
    for (first, second) in results.iter().zip(&again) {
        match (first, second) {
            (Ok(first), Ok(second)) => {
                assert!(second.replayed);
                assert_eq!(first.position, second.position);
            }
            (Err(_), Err(_)) => {}
            other => panic!("results differ: {other:?}"),
        }
    }
    assert_eq!(count(&harness, "debt_position").await, 3);
    assert_eq!(count(&harness, "installment").await, 6);
    harness.finish().await;
}

async fn updates_keep_notice_numbers_and_are_refused_when_closed(engine: Engine) {
    let harness = Harness::new(engine).await;
    let position = harness
        .store
        .create_debt_position(&fixtures::tari("upd-1"))
        .await
        .unwrap()
        .position;
    let saldo = position.payment_options[1].installments[2].clone();
    let update = UpdateInput {
        request_id: "upd-1-change".to_owned(),
        id: position.id.to_string(),
        installments: vec![InstallmentUpdateInput {
            notice_number: saldo.notice_number.to_string(),
            amount_cents: Some(12000),
            due_date: Some("2026-12-16".to_owned()),
            expiry_date: None,
            transfers: vec![
                TransferInput {
                    beneficiary_fiscal_code: MILANO.to_owned(),
                    amount_cents: 11400,
                    ..Default::default()
                },
                TransferInput {
                    beneficiary_fiscal_code: CITTA_METROPOLITANA.to_owned(),
                    amount_cents: 600,
                    ..Default::default()
                },
            ],
        }],
        description: None,
        traffic_fine: None,
    };
    let updated = harness.store.update_debt_position(&update).await.unwrap();
    assert!(!updated.replayed);
    let changed = updated.position.installment(&saldo.notice_number).unwrap();
    assert_eq!(changed.notice_number, saldo.notice_number);
    assert_eq!(changed.amount.get(), 12000);
    assert_eq!(changed.due_date, date!(2026 - 12 - 16));
    assert_eq!(changed.transfers[1].amount.get(), 600);
    assert_eq!(updated.position.version, position.version + 1);
    // The other notices are untouched.
    assert_eq!(
        updated.position.payment_options[0].installments[0],
        position.payment_options[0].installments[0]
    );

    let replay = harness.store.update_debt_position(&update).await.unwrap();
    assert!(replay.replayed);
    assert_eq!(replay.position.version, updated.position.version);

    // Changing the amount of a two-transfer installment without new transfers is refused.
    let mut no_transfers = update.clone();
    no_transfers.request_id = "upd-1-bad".to_owned();
    no_transfers.installments[0].transfers.clear();
    no_transfers.installments[0].amount_cents = Some(13000);
    let error = harness
        .store
        .update_debt_position(&no_transfers)
        .await
        .unwrap_err();
    assert!(matches!(error, AppError::Invalid(_)), "{error:?}");

    let cancel = CancelInput {
        request_id: "upd-1-cancel".to_owned(),
        id: position.id.to_string(),
        reason: "annullamento in autotutela".to_owned(),
    };
    harness.store.cancel_debt_position(&cancel).await.unwrap();
    let mut after_cancel = update.clone();
    after_cancel.request_id = "upd-1-late".to_owned();
    let error = harness
        .store
        .update_debt_position(&after_cancel)
        .await
        .unwrap_err();
    assert!(matches!(error, AppError::Refused(_)), "{error:?}");
    harness.finish().await;
}

async fn cancellation_closes_every_notice_and_numbers_are_never_reissued(engine: Engine) {
    let harness = Harness::new(engine).await;
    let position = harness
        .store
        .create_debt_position(&fixtures::tari("can-1"))
        .await
        .unwrap()
        .position;
    let cancel = CancelInput {
        request_id: "can-1-cancel".to_owned(),
        id: position.id.to_string(),
        reason: "annullamento in autotutela".to_owned(),
    };
    let cancelled = harness
        .store
        .cancel_debt_position(&cancel)
        .await
        .unwrap()
        .position;
    assert_eq!(cancelled.state, PositionState::Cancelled);
    assert_eq!(
        cancelled.cancellation_reason.as_deref(),
        Some("annullamento in autotutela")
    );
    assert!(
        cancelled
            .installments()
            .all(|i| i.state == InstallmentState::Cancelled)
    );
    assert!(
        harness
            .store
            .cancel_debt_position(&cancel)
            .await
            .unwrap()
            .replayed
    );
    let mut second = cancel.clone();
    second.request_id = "can-1-again".to_owned();
    assert!(matches!(
        harness
            .store
            .cancel_debt_position(&second)
            .await
            .unwrap_err(),
        AppError::Refused(_)
    ));
    let payable = harness
        .store
        .payable_amount(
            position.payment_options[0].installments[0]
                .notice_number
                .as_str(),
            "",
            "",
        )
        .await
        .unwrap();
    assert!(!payable.payable);
    assert_eq!(payable.state, EffectiveInstallmentState::Cancelled);

    let old: HashSet<NoticeNumber> = position
        .installments()
        .map(|i| i.notice_number.clone())
        .collect();
    let fresh = harness
        .store
        .create_debt_position(&fixtures::tari("can-2"))
        .await
        .unwrap()
        .position;
    for installment in fresh.installments() {
        assert!(!old.contains(&installment.notice_number));
    }
    harness.finish().await;
}

async fn lists_filter_and_page_with_tokens_bound_to_their_query(engine: Engine) {
    let harness = Harness::new(engine).await;
    for n in 0..5 {
        harness
            .store
            .create_debt_position(&fixtures::tari(&format!("list-t{n}")))
            .await
            .unwrap();
    }
    harness
        .store
        .create_debt_position(&fixtures::fine("list-f"))
        .await
        .unwrap();
    let fee = harness
        .store
        .create_debt_position(&fixtures::school_fee("list-s"))
        .await
        .unwrap();
    let cancel = CancelInput {
        request_id: "list-s-cancel".to_owned(),
        id: fee.position.id.to_string(),
        reason: "ritiro".to_owned(),
    };
    harness.store.cancel_debt_position(&cancel).await.unwrap();

    let rossi = ListQuery {
        debtor_fiscal_code: "rssmra80a01f205x".to_owned(),
        page_size: 2,
        ..Default::default()
    };
    let mut seen = Vec::new();
    let mut query = rossi.clone();
    loop {
        let page = harness.store.list_debt_positions(&query).await.unwrap();
        assert!(page.positions.len() <= 2);
        seen.extend(page.positions.iter().map(|p| p.id));
        if page.next_page_token.is_empty() {
            break;
        }
        query.page_token = page.next_page_token;
    }
    assert_eq!(
        seen.len(),
        6,
        "five TARI and the school fee belong to Mario Rossi"
    );
    let mut sorted = seen.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(seen, sorted, "newest first");

    let fines = ListQuery {
        kind: Some(DebtKind::TrafficFine),
        ..Default::default()
    };
    let page = harness.store.list_debt_positions(&fines).await.unwrap();
    assert_eq!(page.positions.len(), 1);
    assert!(matches!(
        page.positions[0].details,
        KindDetails::TrafficFine(_)
    ));

    let cancelled = ListQuery {
        state: Some(EffectivePositionState::Cancelled),
        ..Default::default()
    };
    let page = harness.store.list_debt_positions(&cancelled).await.unwrap();
    assert_eq!(page.positions.len(), 1);
    assert_eq!(page.positions[0].id, fee.position.id);
    let valid = ListQuery {
        state: Some(EffectivePositionState::Valid),
        ..Default::default()
    };
    assert_eq!(
        harness
            .store
            .list_debt_positions(&valid)
            .await
            .unwrap()
            .positions
            .len(),
        6
    );

    let first = harness.store.list_debt_positions(&rossi).await.unwrap();
    let foreign = ListQuery {
        page_token: first.next_page_token,
        ..fines.clone()
    };
    let error = harness
        .store
        .list_debt_positions(&foreign)
        .await
        .unwrap_err();
    assert!(
        matches!(&error, AppError::Invalid(e) if e.violations()[0].field == "page_token"),
        "{error:?}"
    );
    let garbage = ListQuery {
        page_token: "not-a-token".to_owned(),
        ..Default::default()
    };
    assert!(matches!(
        harness.store.list_debt_positions(&garbage).await,
        Err(AppError::Invalid(_))
    ));
    let bad_debtor = ListQuery {
        debtor_fiscal_code: "RSSMRA80A01F205Y".to_owned(),
        ..Default::default()
    };
    assert!(matches!(
        harness.store.list_debt_positions(&bad_debtor).await,
        Err(AppError::Invalid(_))
    ));
    harness.finish().await;
}

async fn fine_amount_depends_on_the_day_of_payment(engine: Engine) {
    let harness = Harness::new(engine).await;
    let position = harness
        .store
        .create_debt_position(&fixtures::fine("cds-1"))
        .await
        .unwrap()
        .position;
    let notice = position.payment_options[0].installments[0]
        .notice_number
        .to_string();
    for (day, cents, band) in [
        ("2026-11-12", 4200, FineBand::Reduced),
        ("2026-12-01", 5460, FineBand::Full),
        ("2027-02-01", 9660, FineBand::Increased),
    ] {
        let amount = harness
            .store
            .payable_amount(&notice, MILANO, day)
            .await
            .unwrap();
        assert_eq!(amount.amount.get(), cents, "{day}");
        assert_eq!(amount.fine_band, Some(band), "{day}");
        assert!(amount.payable);
    }
    let error = harness
        .store
        .payable_amount(&notice, "", "2026-02-30")
        .await
        .unwrap_err();
    assert!(
        matches!(&error, AppError::Invalid(e) if e.violations()[0].field == "date"),
        "{error:?}"
    );
    let unknown = NoticeNumber::issue(
        incasso_domain::notice_number::SegregationCode::new(12).unwrap(),
        incasso_domain::notice_number::IuvBase::new(9_999_999_999_999).unwrap(),
    );
    assert!(matches!(
        harness.store.payable_amount(unknown.as_str(), "", "").await,
        Err(AppError::NotFound { .. })
    ));
    harness.finish().await;
}

async fn personal_data_is_not_stored_in_clear(engine: Engine) {
    let harness = Harness::new(engine).await;
    harness
        .store
        .create_debt_position(&fixtures::fine("pii-1"))
        .await
        .unwrap();
    let db = harness.store.db();
    let backend = db.get_database_backend();
    // Dump every text and binary column of every table and look for the personal data.
    let tables = [
        "debt_position",
        "personal_data",
        "installment",
        "transfer",
        "command",
        "payment_option",
    ];
    for table in tables {
        let rows = db
            .query_all_raw(Statement::from_string(
                backend,
                format!("SELECT * FROM {table}"),
            ))
            .await
            .unwrap();
        for row in rows {
            for column in row.column_names() {
                let text = row
                    .try_get::<Option<String>>("", &column)
                    .ok()
                    .flatten()
                    .unwrap_or_default();
                let bytes = row
                    .try_get::<Option<Vec<u8>>>("", &column)
                    .ok()
                    .flatten()
                    .unwrap_or_default();
                for secret in ["BNCLRA85M41F205C", "Laura Bianchi", "AB123CD"] {
                    assert!(!text.contains(secret), "{table}.{column} holds {secret}");
                    assert!(
                        !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                        "{table}.{column} holds {secret}"
                    );
                }
            }
        }
    }
    harness.finish().await;
}
