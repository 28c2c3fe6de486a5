//! Receipts that arrive after the last document: the receipt path only queues their IUVs,
//! and the finance office must still never read a label (or a balance) that a receipt has
//! outdated. Every ReconciliationService read labels the queued receipts before it answers,
//! and the server's background catch-up labels them (and posts what the books now ask) on
//! its own, without any read or import.

use std::time::Duration;

use incasso_grpc::pb;
use incasso_grpc::pb::ReconciliationLabel as L;
use incasso_integration_tests::node_simulator::{self as node, MILANO_BANK, ReceiptSpec};
use incasso_integration_tests::requests::{self, CITTA_METROPOLITANA, MILANO};
use incasso_integration_tests::{Engine, TestApp};
use incasso_reconciliation::CamtVersion;
use incasso_reconciliation::testing::{CamtEntry, CamtMessage, camt};
use time::macros::date;

use crate::on_both_engines;
use crate::recon_evidence::{flow, line, transfer_key as key};
use crate::reconciliation_books::balance;
use crate::reconciliation_service::{Client, import};

on_both_engines!(
    receipts_after_the_last_document_are_labelled_before_any_read_answers,
    the_background_catch_up_labels_receipts_and_posts_their_books_unasked,
    a_configured_creditors_receipts_read_rt_no_iuf_before_any_document,
);

const FLOW: &str = "2026-11-24BCITITMM-S000000077";

/// The creditor's transfer keys of `iuv`, as ListTransfers gives them.
async fn keys_of(
    client: &mut Client,
    iuv: &str,
) -> anyhow::Result<Vec<pb::ReconciliationTransfer>> {
    Ok(client
        .list_transfers(pb::ListTransfersRequest {
            creditor_fiscal_code: MILANO.to_owned(),
            iuv: iuv.to_owned(),
            scope: pb::ReconciliationScope::Creditor as i32,
            ..Default::default()
        })
        .await?
        .into_inner()
        .transfers)
}

/// The label changes of the TARI's key.
async fn tari_history(
    client: &mut Client,
    tari: &pb::Installment,
) -> anyhow::Result<Vec<pb::LabelChange>> {
    Ok(client
        .get_transfer_history(pb::GetTransferHistoryRequest {
            creditor_fiscal_code: MILANO.to_owned(),
            iuv: tari.iuv.clone(),
            receipt_id: "rt-late-tari".to_owned(),
            id_transfer: 1,
        })
        .await?
        .into_inner()
        .changes)
}

fn label_of(transfer: &pb::ReconciliationTransfer) -> L {
    L::try_from(transfer.label).unwrap_or(L::Unspecified)
}

/// The TARI (Milan's 285.00, and 15.00 of TEFA to the Città Metropolitana) and a school fee
/// (465.00): created, not paid yet.
async fn notices(app: &TestApp) -> anyhow::Result<(pb::Installment, pb::Installment)> {
    let mut notices = app.notices().await?;
    let tari = notices
        .create_debt_position(requests::tari("late-tari"))
        .await?
        .into_inner();
    let fee = notices
        .create_debt_position(requests::school_fee("late-fee"))
        .await?
        .into_inner();
    Ok((
        tari.payment_options[0].installments[0].clone(),
        fee.payment_options[0].installments[0].clone(),
    ))
}

/// The Node delivers the receipts of the TARI (`rt-late-tari`) and of the fee (`rt-late-fee`),
/// both paid on the 23rd.
async fn pay_tari_and_fee(
    app: &TestApp,
    tari: &pb::Installment,
    fee: &pb::Installment,
) -> anyhow::Result<()> {
    node::deliver_receipt(
        app.soap_addr,
        &ReceiptSpec::paying(tari, "rt-late-tari", "BCITITMM", "2026-11-23T10:00:00"),
    )
    .await?;
    node::deliver_receipt(
        app.soap_addr,
        &ReceiptSpec::paying(fee, "rt-late-fee", "BCITITMM", "2026-11-23T11:00:00"),
    )
    .await?;
    Ok(())
}

/// The TARI's flow, regulated on the 24th.
fn tari_flow(tari: &pb::Installment) -> String {
    flow(
        FLOW,
        "BCITITMM",
        date!(2026 - 11 - 24),
        vec![line(
            key(&tari.iuv, "rt-late-tari", 1),
            28_500,
            date!(2026 - 11 - 23),
        )],
    )
}

/// The statement of the 25th: the flow's transfer and an `/RFB/` credit of the fee.
fn statement(fee: &pb::Installment) -> String {
    let day = date!(2026 - 11 - 25);
    camt(
        CamtMessage::Statement,
        CamtVersion::V08,
        MILANO_BANK,
        day,
        day,
        &[
            CamtEntry::credit(
                "ASR-LATE-1",
                28_500,
                day,
                &format!("/PUR/LGPE-RIVERSAMENTO/URI/{FLOW}"),
            ),
            CamtEntry::credit(
                "ASR-LATE-2",
                46_500,
                day,
                &format!("/RFB/{}/465.00/TXT/RETTA NIDO", fee.iuv),
            ),
        ],
    )
}

async fn receipts_after_the_last_document_are_labelled_before_any_read_answers(
    engine: Engine,
) -> anyhow::Result<()> {
    let app = TestApp::spawn(engine).await?;
    let mut client = app.reconciliation().await?;
    let mut ledger = app.ledger().await?;
    let (tari, fee) = notices(&app).await?;
    import(&mut client, "flow.xml", &tari_flow(&tari), 64 * 1024).await?;
    import(&mut client, "statement.xml", &statement(&fee), 64 * 1024).await?;

    // The day's evidence, and no receipt yet: the PSP reported a payment incasso has no
    // receipt of, and the fee's credit names an IUV nobody paid.
    let before = keys_of(&mut client, &tari.iuv).await?;
    assert_eq!(before.len(), 1, "{before:#?}");
    assert_eq!(label_of(&before[0]), L::IuvNoRt);
    let suspense = format!("suspense:{MILANO}");
    assert_eq!(balance(&mut ledger, &suspense).await?, -28_500);

    // The receipts come after the last document; nothing is imported or refreshed again.
    // First a receipt of another system's notice whose IUV is not letters and digits (the
    // XSD allows any text): it is booked, and must not stop reconciliation.
    let mut odd = ReceiptSpec::paying(&fee, "rt-odd", "BCITITMM", "2026-11-23T09:00:00");
    odd.notice_number = "312999999999999967".to_owned();
    odd.iuv = "ODD-IUV/1".to_owned();
    odd.amount = node::st_amount(1_000);
    odd.transfers = vec![(
        MILANO.to_owned(),
        node::st_amount(1_000),
        MILANO_BANK.to_owned(),
    )];
    node::deliver_receipt(app.soap_addr, &odd).await?;
    pay_tari_and_fee(&app, &tari, &fee).await?;

    // The very next read answers with the receipts counted.
    let after = keys_of(&mut client, &tari.iuv).await?;
    assert_eq!(after.len(), 1, "{after:#?}");
    assert_eq!(label_of(&after[0]), L::RtIufTes, "{after:#?}");
    assert_eq!(after[0].receipt_id, "rt-late-tari");
    let fee_keys = keys_of(&mut client, &fee.iuv).await?;
    assert_eq!(fee_keys.len(), 1, "{fee_keys:#?}");
    assert_eq!(label_of(&fee_keys[0]), L::RtTes, "{fee_keys:#?}");
    let credits = client
        .list_treasury_credits(pb::ListTreasuryCreditsRequest {
            creditor_fiscal_code: MILANO.to_owned(),
            ..Default::default()
        })
        .await?
        .into_inner()
        .credits;
    let fee_credit = credits
        .iter()
        .find(|c| c.id == "ASR-LATE-2")
        .expect("the fee's credit is listed");
    assert_eq!(
        L::try_from(fee_credit.label).unwrap_or(L::Unspecified),
        L::RtTes,
        "{fee_credit:#?}"
    );

    // The key's history: labelled by the flow, its flow cashed by the statement, then
    // labelled by its receipt, which no document brought.
    let history = tari_history(&mut client, &tari).await?;
    let moves: Vec<(L, L, bool)> = history
        .iter()
        .map(|c| {
            (
                L::try_from(c.previous_label).unwrap_or(L::Unspecified),
                L::try_from(c.label).unwrap_or(L::Unspecified),
                c.document.is_some(),
            )
        })
        .collect();
    assert_eq!(
        moves,
        [
            (L::Unspecified, L::IuvNoRt, true),
            (L::IuvNoRt, L::IuvNoRt, true),
            (L::IuvNoRt, L::RtIufTes, false),
        ],
        "{history:#?}"
    );

    // The books followed: the reported payment is no longer in suspense but cleared
    // against the PSP, and the fee's credit cashed its receipt directly. What is left is
    // the odd receipt's booking, as for any notice incasso did not issue (the PSP owes it,
    // against suspense).
    assert_eq!(balance(&mut ledger, &suspense).await?, -1_000);
    assert_eq!(
        balance(&mut ledger, &format!("psp_clearing:{MILANO}:BCITITMM")).await?,
        1_000
    );
    assert_eq!(
        balance(&mut ledger, &format!("treasury:{MILANO}")).await?,
        28_500 + 46_500
    );

    // A summary of the day counts them too, and reading again changes nothing.
    let summary = client
        .get_summary(pb::GetSummaryRequest {
            creditor_fiscal_code: MILANO.to_owned(),
            from: "2026-11-23".to_owned(),
            to: "2026-11-23".to_owned(),
        })
        .await?
        .into_inner();
    let count = |label: L| {
        summary
            .transfer_labels
            .iter()
            .filter(|t| t.label == label as i32)
            .map(|t| t.count)
            .sum::<i64>()
    };
    assert_eq!(count(L::RtIufTes), 1, "{summary:#?}");
    assert_eq!(count(L::RtTes), 1, "{summary:#?}");
    assert_eq!(count(L::IuvNoRt), 0, "{summary:#?}");
    let again = tari_history(&mut client, &tari).await?;
    assert_eq!(again.len(), 3, "{again:#?}");
    app.stop().await?;
    Ok(())
}

async fn the_background_catch_up_labels_receipts_and_posts_their_books_unasked(
    engine: Engine,
) -> anyhow::Result<()> {
    let app = TestApp::spawn_with(engine, |settings| {
        settings.recon_catch_up_interval = Duration::from_secs(1);
    })
    .await?;
    let mut client = app.reconciliation().await?;
    let mut ledger = app.ledger().await?;
    let (tari, _fee) = notices(&app).await?;
    import(&mut client, "flow.xml", &tari_flow(&tari), 64 * 1024).await?;
    let suspense = format!("suspense:{MILANO}");
    assert_eq!(balance(&mut ledger, &suspense).await?, -28_500);

    node::deliver_receipt(
        app.soap_addr,
        &ReceiptSpec::paying(&tari, "rt-late-tari", "BCITITMM", "2026-11-23T10:00:00"),
    )
    .await?;
    // Only the ledger is read (it does not catch reconciliation up): the `reported` posting
    // moves from suspense to the PSP's clearing account once the background task ran.
    let mut waited = Duration::ZERO;
    while balance(&mut ledger, &suspense).await? != 0 {
        assert!(
            waited < Duration::from_secs(30),
            "the background catch-up did not post the late receipt's books in 30 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        waited += Duration::from_millis(200);
    }
    assert_eq!(
        balance(&mut ledger, &format!("psp_clearing:{MILANO}:BCITITMM")).await?,
        0
    );
    let keys = keys_of(&mut client, &tari.iuv).await?;
    assert_eq!(label_of(&keys[0]), L::RtIuf, "{keys:#?}");
    app.stop().await?;
    Ok(())
}

/// The contract's day as the finance office follows it (§6: a key moves from `RT_NO_IUF` to
/// `RT_IUF` to `RT_IUF_TES`). Milan has a treasury account configured, so its reconciliation
/// runs from its first receipt: before any flow or statement is imported, its paid keys read
/// `RT_NO_IUF`, and the history starts there. The Città Metropolitana has none and has never
/// been reconciled: the TEFA it is paid inside Milan's TARI stays another beneficiary's.
async fn a_configured_creditors_receipts_read_rt_no_iuf_before_any_document(
    engine: Engine,
) -> anyhow::Result<()> {
    let app = TestApp::spawn(engine).await?;
    let mut client = app.reconciliation().await?;
    let (tari, fee) = notices(&app).await?;
    pay_tari_and_fee(&app, &tari, &fee).await?;

    // No document and no refresh: the read labels the receipts booked.
    let listed = client
        .list_transfers(pb::ListTransfersRequest {
            creditor_fiscal_code: MILANO.to_owned(),
            ..Default::default()
        })
        .await?
        .into_inner()
        .transfers;
    let of = |iuv: &str, creditor: &str| {
        listed
            .iter()
            .filter(|t| t.iuv == iuv && t.creditor_fiscal_code == creditor)
            .collect::<Vec<_>>()
    };
    let milan_tari = of(&tari.iuv, MILANO);
    assert_eq!(milan_tari.len(), 1, "{listed:#?}");
    assert_eq!(label_of(milan_tari[0]), L::RtNoIuf, "{listed:#?}");
    assert_eq!(milan_tari[0].amount_cents, 28_500);
    assert_eq!(
        milan_tari[0].scope,
        pb::ReconciliationScope::Creditor as i32,
        "{listed:#?}"
    );
    assert_eq!(listed.len(), 2, "only Milan's own keys: {listed:#?}");
    let tefa = tefa_of(&mut client).await?;
    assert_eq!(tefa.len(), 1, "{tefa:#?}");
    assert_eq!(tefa[0].iuv, tari.iuv);
    assert_eq!(tefa[0].amount_cents, 1_500);
    assert_eq!(label_of(&tefa[0]), L::Unspecified, "{tefa:#?}");
    assert_eq!(
        tefa[0].scope,
        pb::ReconciliationScope::OtherBeneficiary as i32,
        "{tefa:#?}"
    );
    let milan_fee = of(&fee.iuv, MILANO);
    assert_eq!(milan_fee.len(), 1, "{listed:#?}");
    assert_eq!(label_of(milan_fee[0]), L::RtNoIuf, "{listed:#?}");

    // Then the flow, then the statement: each step is one change of the key's history.
    import(&mut client, "flow.xml", &tari_flow(&tari), 64 * 1024).await?;
    let keys = keys_of(&mut client, &tari.iuv).await?;
    assert_eq!(label_of(&keys[0]), L::RtIuf, "{keys:#?}");
    import(&mut client, "statement.xml", &statement(&fee), 64 * 1024).await?;
    let keys = keys_of(&mut client, &tari.iuv).await?;
    assert_eq!(label_of(&keys[0]), L::RtIufTes, "{keys:#?}");
    let fee_keys = keys_of(&mut client, &fee.iuv).await?;
    assert_eq!(label_of(&fee_keys[0]), L::RtTes, "{fee_keys:#?}");
    let history = tari_history(&mut client, &tari).await?;
    let moves: Vec<(L, L, Option<String>)> = history
        .iter()
        .map(|c| {
            (
                L::try_from(c.previous_label).unwrap_or(L::Unspecified),
                L::try_from(c.label).unwrap_or(L::Unspecified),
                c.document.as_ref().map(|d| d.file_name.clone()),
            )
        })
        .collect();
    assert_eq!(
        moves,
        [
            (L::Unspecified, L::RtNoIuf, None),
            (L::RtNoIuf, L::RtIuf, Some("flow.xml".to_owned())),
            (L::RtIuf, L::RtIufTes, Some("statement.xml".to_owned())),
        ],
        "{history:#?}"
    );

    // The TEFA is still nobody's anomaly.
    let tefa = tefa_of(&mut client).await?;
    assert_eq!(tefa.len(), 1, "{tefa:#?}");
    assert_eq!(label_of(&tefa[0]), L::Unspecified, "{tefa:#?}");
    app.stop().await?;
    Ok(())
}

/// The Città Metropolitana's keys, as ListTransfers gives them.
async fn tefa_of(client: &mut Client) -> anyhow::Result<Vec<pb::ReconciliationTransfer>> {
    Ok(client
        .list_transfers(pb::ListTransfersRequest {
            creditor_fiscal_code: CITTA_METROPOLITANA.to_owned(),
            ..Default::default()
        })
        .await?
        .into_inner()
        .transfers)
}

/// A read does not hang behind an import of the creditor that is running (a day's statement
/// takes minutes): it waits a moment, then answers from the labels stored, and the import
/// labels the queued receipts itself. Here another transaction holds the creditor's lock, as
/// an import does; PostgreSQL only (on SQLite the single writer waits its busy timeout).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_read_does_not_wait_for_a_running_import() -> anyhow::Result<()> {
    use sea_orm::{ConnectionTrait, DbBackend, Statement, TransactionTrait};

    let app = TestApp::spawn(Engine::Postgres).await?;
    let mut client = app.reconciliation().await?;
    let (tari, _fee) = notices(&app).await?;
    import(&mut client, "flow.xml", &tari_flow(&tari), 64 * 1024).await?;
    node::deliver_receipt(
        app.soap_addr,
        &ReceiptSpec::paying(&tari, "rt-late-tari", "BCITITMM", "2026-11-23T10:00:00"),
    )
    .await?;

    let import_running = sea_orm::Database::connect(&app.database_url).await?;
    let held = import_running.begin().await?;
    held.execute_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "SELECT fiscal_code FROM creditor WHERE fiscal_code = $1 FOR UPDATE",
        [MILANO.into()],
    ))
    .await?;
    let started = std::time::Instant::now();
    let keys = tokio::time::timeout(Duration::from_secs(30), keys_of(&mut client, &tari.iuv))
        .await
        .map_err(|_| anyhow::anyhow!("the read waited for the import"))??;
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "the read did not wait at all"
    );
    assert_eq!(label_of(&keys[0]), L::IuvNoRt, "{keys:#?}");

    // The import ends; the next read labels the receipt.
    held.rollback().await?;
    let keys = keys_of(&mut client, &tari.iuv).await?;
    assert_eq!(label_of(&keys[0]), L::RtIuf, "{keys:#?}");
    import_running.close().await?;
    app.stop().await?;
    Ok(())
}
