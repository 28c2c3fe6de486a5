//! The LedgerService as an auditor uses it, and tampering caught end to end.

use sea_orm::ConnectionTrait;
use tonic::Code;

use incasso_grpc::pb;
use incasso_integration_tests::requests;
use incasso_integration_tests::{Engine, TestApp};
use incasso_store::testing::disable_ledger_triggers;

use crate::on_both_engines;

on_both_engines!(
    an_auditor_follows_a_notice_and_the_books_tie_out,
    tampering_in_the_database_is_caught_by_verify,
);

async fn an_auditor_follows_a_notice_and_the_books_tie_out(engine: Engine) -> anyhow::Result<()> {
    let app = TestApp::spawn(engine).await?;
    let mut notices = app.notices().await?;
    let mut ledger = app.ledger().await?;
    let tari = notices
        .create_debt_position(requests::tari("aud-tari"))
        .await?
        .into_inner();
    let fee = notices
        .create_debt_position(requests::school_fee("aud-fee"))
        .await?
        .into_inner();
    notices
        .cancel_debt_position(pb::CancelDebtPositionRequest {
            request_id: "aud-fee-cancel".to_owned(),
            id: fee.id.clone(),
            reason: "ritiro".to_owned(),
        })
        .await?;
    let nav = tari.payment_options[1].installments[1]
        .notice_number
        .clone();
    let page = ledger
        .list_entries(pb::ListEntriesRequest {
            notice_number: nav.clone(),
            page_size: 100,
            ..Default::default()
        })
        .await?
        .into_inner();
    assert_eq!(page.entries.len(), 1);
    let issued = &page.entries[0];
    assert_eq!(issued.event_type, "notice_issued");
    assert_eq!(issued.lines.iter().map(|l| l.amount_cents).sum::<i64>(), 0);
    assert!(issued.notices.iter().any(|n| n.notice_number == nav));
    assert_eq!(issued.hash.len(), 64);
    assert!(page.next_page_token.is_empty());

    let entry = ledger
        .get_entry(pb::GetEntryRequest {
            sequence: issued.sequence,
            id: String::new(),
        })
        .await?
        .into_inner();
    let document = entry.source_document.expect("the request behind the entry");
    assert!(document.intact);
    assert_eq!(document.media_type, "application/json");
    assert!(String::from_utf8(document.content)?.contains("aud-tari"));

    let year = time::OffsetDateTime::now_utc().year();
    let trial = ledger
        .get_trial_balance(pb::GetTrialBalanceRequest {
            from: format!("{year}-01-01"),
            to: format!("{year}-12-31"),
            creditor_fiscal_code: String::new(),
        })
        .await?
        .into_inner();
    let debits: i64 = trial.accounts.iter().map(|a| a.debit_cents).sum();
    let credits: i64 = trial.accounts.iter().map(|a| a.credit_cents).sum();
    assert_eq!(debits, credits);
    assert_eq!(
        (trial.total_debit_cents, trial.total_credit_cents),
        (debits, credits)
    );
    assert_eq!(
        debits,
        30000 + 46500 + 46500,
        "TARI issued, fee issued and cancelled"
    );

    let balances = ledger
        .get_balances(pb::GetBalancesRequest::default())
        .await?
        .into_inner();
    assert_eq!(balances.as_of_sequence, 3);
    assert_eq!(
        balances
            .balances
            .iter()
            .map(|b| b.balance_cents)
            .sum::<i64>(),
        0
    );

    let verify = ledger
        .verify_ledger(pb::VerifyLedgerRequest::default())
        .await?
        .into_inner();
    assert!(verify.ok);
    assert_eq!(verify.entries_checked, 3);
    let checkpoint = ledger
        .get_checkpoint(pb::GetCheckpointRequest {})
        .await?
        .into_inner();
    assert_eq!(verify.last, Some(checkpoint.clone()));

    let mut export = ledger
        .export_entries(pb::ExportEntriesRequest::default())
        .await?
        .into_inner();
    let mut exported = Vec::new();
    while let Some(entry) = export.message().await? {
        exported.push(entry.sequence);
    }
    assert_eq!(exported, [1, 2, 3]);

    for (request, field) in [
        (
            pb::ListEntriesRequest {
                account: "cash:01199250158".to_owned(),
                ..Default::default()
            },
            "account",
        ),
        (
            pb::ListEntriesRequest {
                page_token: "42.0123456789abcdef".to_owned(),
                ..Default::default()
            },
            "page_token",
        ),
        (
            pb::ListEntriesRequest {
                kind: 99,
                ..Default::default()
            },
            "kind",
        ),
    ] {
        let status = ledger.list_entries(request).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(status.message().contains(field), "{}", status.message());
    }
    app.stop().await
}

async fn tampering_in_the_database_is_caught_by_verify(engine: Engine) -> anyhow::Result<()> {
    let app = TestApp::spawn(engine).await?;
    let mut notices = app.notices().await?;
    let mut ledger = app.ledger().await?;
    for n in 0..3 {
        notices
            .create_debt_position(requests::fine(&format!("tamper-{n}")))
            .await?;
    }
    assert!(
        ledger
            .verify_ledger(pb::VerifyLedgerRequest::default())
            .await?
            .into_inner()
            .ok
    );
    let db = app.database().await?;
    // With the triggers on, the database itself refuses.
    assert!(
        db.execute_unprepared("UPDATE ledger_line SET amount_cents = 1")
            .await
            .is_err()
    );
    disable_ledger_triggers(&db).await?;
    db.execute_unprepared(
        "UPDATE ledger_entry SET description = 'nothing to see' WHERE sequence = 2",
    )
    .await?;
    // The source document behind entry 2 swapped for entry 3's, which is itself intact: the
    // document no longer hashes to what entry 2 recorded.
    db.execute_unprepared(
        "UPDATE ledger_entry SET source_document_id = \
         (SELECT source_document_id FROM ledger_entry WHERE sequence = 3) WHERE sequence = 2",
    )
    .await?;
    db.close().await?;
    let entry = ledger
        .get_entry(pb::GetEntryRequest {
            sequence: 2,
            id: String::new(),
        })
        .await?
        .into_inner();
    assert!(!entry.source_document.expect("a document").intact);
    let report = ledger
        .verify_ledger(pb::VerifyLedgerRequest::default())
        .await?
        .into_inner();
    assert!(!report.ok);
    assert_eq!(report.first_broken_sequence, 2);
    assert!(!report.reason.is_empty());
    app.stop().await
}
