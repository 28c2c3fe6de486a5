//! Missing receipts recovered from PagoPA's biz-events API, against a fake that validates
//! like the real one: a reporting flow reports payments whose receipts never came (labelled
//! IUV_NO_RT); a recovery pass books the receipts PagoPA holds through the receipt path
//! (once, marked recovered, with their ledger entries, a legacy notice included), relabels
//! their keys with a history naming the receipt, leaves a receipt PagoPA does not have
//! IUV_NO_RT with the reason shown, never asks for a code-9 line, and a second pass changes
//! nothing. Then `incasso serve` recovering on its own, and a wrong subscription key named.

use std::time::Duration;

use incasso_domain::reconciliation::{FlowLine, OutcomeCode, TransferKey};
use incasso_grpc::pb;
use incasso_integration_tests::fake_biz_events::{
    FakeBizEvents, FakeReceipt, FakeTransfer, SUBSCRIPTION_KEY,
};
use incasso_integration_tests::node_simulator::{self as node, MILANO_BANK, ReceiptSpec};
use incasso_integration_tests::requests::{self, MILANO};
use incasso_integration_tests::{Engine, TestApp};
use incasso_recovery::{CreditorPass, NotAsked, Recoverer, Recovery, RecoveryConfig};
use time::macros::{date, datetime};

use crate::on_both_engines;
use crate::recon_evidence::{flow_at, line, transfer_key};

on_both_engines!(
    missing_receipts_are_recovered_booked_once_and_relabelled,
    serve_recovers_when_a_url_is_configured,
    a_wrong_subscription_key_is_named_and_nothing_recorded,
    a_pass_keeps_to_its_calls_and_a_429_ends_it,
);

const FLOW: &str = "2026-11-24BCITITMM-S000000201";
const PSP: &str = "BCITITMM";
/// A notice incasso did not issue, paid and reported, its receipt lost.
const LEGACY_IUV: &str = "12999999999999934";
/// A payment PagoPA has no receipt of.
const UNKNOWN_IUV: &str = "12999999999999942";
/// A line paid without RPT (code 9).
const NO_RPT_IUV: &str = "12999999999999950";

fn config(fake: &FakeBizEvents, key: &str) -> RecoveryConfig {
    let mut config = RecoveryConfig::new(&fake.base_url(), Some(key.to_owned()));
    config.client.attempts = 2;
    config.client.retry_base = Duration::from_millis(10);
    config.client.retry_max = Duration::from_millis(50);
    config.client.request_timeout = Duration::from_secs(5);
    config.interval = Duration::from_millis(200);
    config
}

fn key(iuv: &str, receipt_id: &str) -> TransferKey {
    transfer_key(iuv, receipt_id, 1)
}

/// The flow reporting the school fee, the legacy notice, the unknown payment and the code-9
/// line; no treasury evidence, so a reported receipt is RT_IUF.
fn flow_document(fee_iuv: &str, fee_cents: i64) -> String {
    let day = date!(2026 - 11 - 23);
    let mut no_rpt: FlowLine = line(key(NO_RPT_IUV, "iur-norpt"), 1_000, day);
    no_rpt.outcome = OutcomeCode::NoRpt;
    flow_at(
        FLOW,
        PSP,
        date!(2026 - 11 - 24),
        vec![
            line(key(fee_iuv, "iur-fee"), fee_cents, day),
            line(key(LEGACY_IUV, "iur-legacy"), 5_000, day),
            line(key(UNKNOWN_IUV, "iur-unknown"), 2_000, day),
            no_rpt,
        ],
        datetime!(2026-11-24 06:00 UTC),
    )
}

async fn import(app: &TestApp, name: &str, document: &str) -> anyhow::Result<()> {
    let mut client = app.reconciliation().await?;
    client
        .import_document(tokio_stream::iter(vec![pb::ImportDocumentRequest {
            file_name: name.to_owned(),
            content: document.as_bytes().to_vec(),
        }]))
        .await?;
    Ok(())
}

async fn transfer(app: &TestApp, iuv: &str) -> anyhow::Result<pb::ReconciliationTransfer> {
    let mut client = app.reconciliation().await?;
    let mut found = client
        .list_transfers(pb::ListTransfersRequest {
            creditor_fiscal_code: MILANO.to_owned(),
            iuv: iuv.to_owned(),
            ..Default::default()
        })
        .await?
        .into_inner()
        .transfers;
    assert_eq!(found.len(), 1, "{found:#?}");
    Ok(found.remove(0))
}

fn recovery_of(transfer: &pb::ReconciliationTransfer) -> Option<pb::suggestion::ReceiptRecovery> {
    transfer.suggestions.iter().find_map(|s| match &s.kind {
        Some(pb::suggestion::Kind::ReceiptRecovery(r)) => Some(r.clone()),
        _ => None,
    })
}

async fn receipts_of(app: &TestApp, iuv: &str) -> anyhow::Result<Vec<pb::Receipt>> {
    let mut client = app.receipts().await?;
    Ok(client
        .list_receipts(pb::ListReceiptsRequest {
            iuv: iuv.to_owned(),
            ..Default::default()
        })
        .await?
        .into_inner()
        .receipts)
}

async fn entries_of(app: &TestApp, iuv: &str) -> anyhow::Result<Vec<pb::LedgerEntry>> {
    let mut ledger = app.ledger().await?;
    Ok(ledger
        .list_entries(pb::ListEntriesRequest {
            iuv: iuv.to_owned(),
            creditor_fiscal_code: MILANO.to_owned(),
            ..Default::default()
        })
        .await?
        .into_inner()
        .entries)
}

fn label(value: i32) -> pb::ReconciliationLabel {
    pb::ReconciliationLabel::try_from(value).unwrap_or(pb::ReconciliationLabel::Unspecified)
}

fn milan(report: &incasso_recovery::RecoveryReport) -> &CreditorPass {
    &report
        .creditors
        .iter()
        .find(|(c, _)| c == MILANO)
        .expect("Milan recovered")
        .1
}

/// Each missing receipt of Milan's pass, by IUV, with what became of it.
fn outcomes(pass: &CreditorPass) -> Vec<(String, String)> {
    let CreditorPass::Done(summary) = pass else {
        panic!("the pass did not complete: {pass:?}");
    };
    summary
        .receipts
        .iter()
        .map(|(missing, recovery)| {
            let what = match recovery {
                Recovery::Recovered { .. } => "recovered",
                Recovery::AlreadyHeld => "held",
                Recovery::NotFound(_) => "not_found",
                Recovery::Failed(_) => "failed",
                Recovery::NotAsked(NotAsked::PaidWithoutRpt) => "no_rpt",
                Recovery::NotAsked(NotAsked::NotDue(_)) => "waiting",
                Recovery::NotAsked(NotAsked::NoCallsLeft) => "no_calls_left",
            };
            (missing.iuv.clone(), what.to_owned())
        })
        .collect()
}

/// A school fee whose receipt never came: Milan issues it, the flow reports it.
async fn lost_school_fee(app: &TestApp) -> anyhow::Result<pb::Installment> {
    let mut notices = app.notices().await?;
    let position = notices
        .create_debt_position(requests::school_fee("recovery-fee"))
        .await?
        .into_inner();
    Ok(position.payment_options[0].installments[0].clone())
}

fn fee_receipt(fee: &pb::Installment) -> FakeReceipt {
    let mut receipt = FakeReceipt::paid(
        MILANO,
        &fee.notice_number,
        "iur-fee",
        PSP,
        fee.amount_cents,
        MILANO_BANK,
    );
    receipt.iuv = fee.iuv.clone();
    receipt.transfers = fee
        .transfers
        .iter()
        .enumerate()
        .map(|(i, t)| FakeTransfer {
            id_transfer: u8::try_from(i + 1).unwrap(),
            beneficiary: t.beneficiary_fiscal_code.clone(),
            iban: MILANO_BANK.to_owned(),
            amount_cents: t.amount_cents,
            remittance_information: "Retta nido novembre 2026".to_owned(),
            transfer_category: "9/0101100IM/".to_owned(),
        })
        .collect();
    receipt
}

async fn missing_receipts_are_recovered_booked_once_and_relabelled(
    engine: Engine,
) -> anyhow::Result<()> {
    let app = TestApp::spawn(engine).await?;
    let fake = FakeBizEvents::start().await?;
    let fee = lost_school_fee(&app).await?;
    import(&app, "flow.xml", &flow_document(&fee.iuv, fee.amount_cents)).await?;
    for iuv in [fee.iuv.as_str(), LEGACY_IUV, UNKNOWN_IUV, NO_RPT_IUV] {
        let t = transfer(&app, iuv).await?;
        assert_eq!(label(t.label), pb::ReconciliationLabel::IuvNoRt, "{iuv}");
        assert_eq!(recovery_of(&t), None, "never asked yet: {iuv}");
    }

    // PagoPA holds the school fee's receipt and the legacy notice's; not the third, and a
    // code-9 line has none (the fake would answer 404 if asked).
    fake.hold(fee_receipt(&fee));
    fake.hold(FakeReceipt::paid(
        MILANO,
        &format!("3{LEGACY_IUV}"),
        "iur-legacy",
        PSP,
        5_000,
        MILANO_BANK,
    ));

    let recoverer = Recoverer::new(app.store.clone(), config(&fake, SUBSCRIPTION_KEY))?;
    let report = recoverer.recover_once(None).await;
    let mut expected = vec![
        (fee.iuv.clone(), "recovered".to_owned()),
        (LEGACY_IUV.to_owned(), "recovered".to_owned()),
        (UNKNOWN_IUV.to_owned(), "not_found".to_owned()),
        (NO_RPT_IUV.to_owned(), "no_rpt".to_owned()),
    ];
    expected.sort();
    assert_eq!(outcomes(milan(&report)), expected);
    // One call per receipt asked, each with the creditor, the IUR and the IUV; never for
    // the code-9 line.
    let mut asked: Vec<(String, String, String, u16)> = fake
        .calls()
        .into_iter()
        .map(|c| (c.asked.0, c.asked.1, c.asked.2, c.status))
        .collect();
    asked.sort();
    let mut wanted = vec![
        (
            MILANO.to_owned(),
            "iur-fee".to_owned(),
            fee.iuv.clone(),
            200,
        ),
        (
            MILANO.to_owned(),
            "iur-legacy".to_owned(),
            LEGACY_IUV.to_owned(),
            200,
        ),
        (
            MILANO.to_owned(),
            "iur-unknown".to_owned(),
            UNKNOWN_IUV.to_owned(),
            404,
        ),
    ];
    wanted.sort();
    assert_eq!(asked, wanted);

    // The receipts are booked like the Node's, marked recovered: the school fee settles its
    // notice (receipt_paid), the legacy notice goes to suspense like any unknown notice.
    let fee_receipts = receipts_of(&app, &fee.iuv).await?;
    assert_eq!(fee_receipts.len(), 1, "{fee_receipts:#?}");
    let booked = &fee_receipts[0];
    assert!(booked.recovered);
    assert_eq!(booked.primitive, "bizEvents");
    assert_eq!(booked.psp_id, PSP);
    assert_eq!(booked.payment_amount_cents, fee.amount_cents);
    assert_eq!(
        booked.classification,
        pb::ReceiptClassification::Settled as i32
    );
    let legacy = receipts_of(&app, LEGACY_IUV).await?;
    assert_eq!(legacy.len(), 1);
    assert!(legacy[0].recovered);
    assert_eq!(
        legacy[0].classification,
        pb::ReceiptClassification::UnknownNotice as i32
    );
    assert!(receipts_of(&app, UNKNOWN_IUV).await?.is_empty());
    let fee_entries = entries_of(&app, &fee.iuv).await?;
    let paid: Vec<&pb::LedgerEntry> = fee_entries
        .iter()
        .filter(|e| e.event_type == "receipt_paid")
        .collect();
    assert_eq!(paid.len(), 1, "{fee_entries:#?}");
    assert_eq!(paid[0].receipt_id, "iur-fee");
    let mut notices = app.notices().await?;
    let position = notices
        .get_debt_position(pb::GetDebtPositionRequest {
            lookup: Some(pb::get_debt_position_request::Lookup::Id(
                booked.debt_position_id.clone(),
            )),
            creditor_fiscal_code: String::new(),
        })
        .await?
        .into_inner();
    assert_eq!(position.state, pb::DebtPositionState::Paid as i32);

    // Relabelled: reported and recovered, the flow not due yet (no treasury evidence).
    for iuv in [fee.iuv.as_str(), LEGACY_IUV] {
        let t = transfer(&app, iuv).await?;
        assert_eq!(label(t.label), pb::ReconciliationLabel::RtIuf, "{iuv}");
        assert_eq!(recovery_of(&t), None, "no longer missing: {iuv}");
    }
    let mut client = app.reconciliation().await?;
    let history = client
        .get_transfer_history(pb::GetTransferHistoryRequest {
            creditor_fiscal_code: MILANO.to_owned(),
            iuv: fee.iuv.clone(),
            receipt_id: "iur-fee".to_owned(),
            id_transfer: 1,
        })
        .await?
        .into_inner()
        .changes;
    let moves: Vec<(pb::ReconciliationLabel, pb::ReconciliationLabel)> = history
        .iter()
        .map(|c| (label(c.previous_label), label(c.label)))
        .collect();
    assert_eq!(
        moves,
        [
            (
                pb::ReconciliationLabel::Unspecified,
                pb::ReconciliationLabel::IuvNoRt
            ),
            (
                pb::ReconciliationLabel::IuvNoRt,
                pb::ReconciliationLabel::RtIuf
            ),
        ]
    );
    let recovered_change = &history[1];
    assert!(
        recovered_change.document.is_none(),
        "a catch-up from receipts"
    );
    assert!(
        recovered_change.evidence.iter().any(|e| matches!(
            &e.kind,
            Some(pb::evidence::Kind::Receipt(r)) if r.iuv == fee.iuv && r.receipt_id == "iur-fee"
        )),
        "{recovered_change:#?}"
    );

    // The receipt PagoPA does not have stays IUV_NO_RT, the reason next to it; the code-9
    // line too, never asked.
    let unknown = transfer(&app, UNKNOWN_IUV).await?;
    assert_eq!(label(unknown.label), pb::ReconciliationLabel::IuvNoRt);
    let why = recovery_of(&unknown).expect("the recovery shown next to the label");
    assert_eq!(why.state, pb::ReceiptRecoveryState::NotFound as i32);
    assert_eq!(why.receipt_id, "iur-unknown");
    assert_eq!(why.attempts, 1);
    assert!(
        why.detail.contains("not found at PagoPA (404)")
            && why.detail.contains("Unable to find the receipt"),
        "{why:?}"
    );
    let next = why.next_attempt_at.expect("asked again later");
    let last = why.last_attempt_at.expect("when it was asked");
    assert!(next.seconds - last.seconds >= 6 * 3600 - 1, "{why:?}");
    let no_rpt = transfer(&app, NO_RPT_IUV).await?;
    assert_eq!(label(no_rpt.label), pb::ReconciliationLabel::IuvNoRt);
    assert_eq!(recovery_of(&no_rpt), None);

    // A second pass changes nothing: nothing is due, nothing is asked, nothing is booked.
    let entries_before = app.query_i64("SELECT COUNT(*) FROM ledger_entry").await?;
    let changes_before = app
        .query_i64("SELECT COUNT(*) FROM recon_label_change")
        .await?;
    let report = recoverer.recover_once(None).await;
    expected = vec![
        (UNKNOWN_IUV.to_owned(), "waiting".to_owned()),
        (NO_RPT_IUV.to_owned(), "no_rpt".to_owned()),
    ];
    expected.sort();
    assert_eq!(outcomes(milan(&report)), expected);
    assert_eq!(fake.calls().len(), 3);
    assert_eq!(app.query_i64("SELECT COUNT(*) FROM receipt").await?, 2);
    assert_eq!(
        app.query_i64("SELECT COUNT(*) FROM ledger_entry").await?,
        entries_before
    );
    assert_eq!(
        app.query_i64("SELECT COUNT(*) FROM recon_label_change")
            .await?,
        changes_before
    );

    // The Node's copy arriving late is the same payment: acknowledged, nothing booked twice,
    // no conflict for an operator.
    node::deliver_receipt(
        app.soap_addr,
        &ReceiptSpec::paying(&fee, "iur-fee", PSP, "2026-11-23T10:00:00"),
    )
    .await?;
    let fee_receipts = receipts_of(&app, &fee.iuv).await?;
    assert_eq!(fee_receipts.len(), 1);
    assert!(fee_receipts[0].recovered);
    assert_eq!(
        app.query_i64("SELECT COUNT(*) FROM receipt_conflict")
            .await?,
        0
    );
    assert_eq!(
        app.query_i64("SELECT COUNT(*) FROM ledger_entry").await?,
        entries_before
    );
    app.stop().await
}

async fn serve_recovers_when_a_url_is_configured(engine: Engine) -> anyhow::Result<()> {
    let fake = FakeBizEvents::start().await?;
    let recovery = config(&fake, SUBSCRIPTION_KEY);
    let app = TestApp::spawn_with(engine, |settings| {
        settings.biz_events = Some(recovery);
    })
    .await?;
    let fee = lost_school_fee(&app).await?;
    fake.hold(fee_receipt(&fee));
    import(&app, "flow.xml", &flow_document(&fee.iuv, fee.amount_cents)).await?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let t = transfer(&app, &fee.iuv).await?;
        if label(t.label) == pb::ReconciliationLabel::RtIuf {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not recovered: {t:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let receipts = receipts_of(&app, &fee.iuv).await?;
    assert_eq!(receipts.len(), 1);
    assert!(receipts[0].recovered);
    app.stop().await
}

async fn a_wrong_subscription_key_is_named_and_nothing_recorded(
    engine: Engine,
) -> anyhow::Result<()> {
    let app = TestApp::spawn(engine).await?;
    let fake = FakeBizEvents::start().await?;
    let fee = lost_school_fee(&app).await?;
    fake.hold(fee_receipt(&fee));
    import(&app, "flow.xml", &flow_document(&fee.iuv, fee.amount_cents)).await?;
    let recoverer = Recoverer::new(app.store.clone(), config(&fake, "not-the-key"))?;
    let report = recoverer.recover_once(Some(MILANO)).await;
    let CreditorPass::Failed { reason, .. } = milan(&report) else {
        panic!("the pass should fail: {report:?}");
    };
    assert!(
        reason.contains("refused the subscription key (401)")
            && reason.contains("INCASSO_BIZ_EVENTS_SUBSCRIPTION_KEY"),
        "{reason}"
    );
    assert!(report.has_failures());
    assert_eq!(fake.calls().len(), 1);
    // Nothing recorded against the receipt: the right key asks for it at once.
    assert_eq!(
        app.query_i64("SELECT COUNT(*) FROM recon_receipt_recovery")
            .await?,
        0
    );
    let t = transfer(&app, &fee.iuv).await?;
    assert_eq!(label(t.label), pb::ReconciliationLabel::IuvNoRt);
    let recoverer = Recoverer::new(app.store.clone(), config(&fake, SUBSCRIPTION_KEY))?;
    let report = recoverer.recover_once(Some(MILANO)).await;
    assert!(outcomes(milan(&report)).contains(&(fee.iuv.clone(), "recovered".to_owned())));
    app.stop().await
}

async fn a_pass_keeps_to_its_calls_and_a_429_ends_it(engine: Engine) -> anyhow::Result<()> {
    let app = TestApp::spawn(engine).await?;
    let fake = FakeBizEvents::start().await?;
    let fee = lost_school_fee(&app).await?;
    fake.hold(fee_receipt(&fee));
    import(&app, "flow.xml", &flow_document(&fee.iuv, fee.amount_cents)).await?;
    let recorded = || app.query_i64("SELECT COUNT(*) FROM recon_receipt_recovery");

    // One call allowed: one receipt asked, the others left for the next pass.
    let mut one_call = config(&fake, SUBSCRIPTION_KEY);
    one_call.calls_per_pass = 1;
    let report = Recoverer::new(app.store.clone(), one_call)?
        .recover_once(None)
        .await;
    let outcomes = outcomes(milan(&report));
    assert_eq!(fake.calls().len(), 1);
    let asked: Vec<&(String, String)> = outcomes
        .iter()
        .filter(|(_, what)| what != "no_calls_left" && what != "no_rpt")
        .collect();
    assert_eq!(asked.len(), 1, "{outcomes:?}");
    assert_eq!(
        outcomes
            .iter()
            .filter(|(_, w)| w == "no_calls_left")
            .count(),
        2,
        "{outcomes:?}"
    );
    assert_eq!(recorded().await?, 1);

    // A 429: the hour's calls are spent; the pass stops at once and records nothing.
    fake.with(|s| s.behaviour.script.push_back(429));
    let recoverer = Recoverer::new(app.store.clone(), config(&fake, SUBSCRIPTION_KEY))?;
    let report = recoverer.recover_once(None).await;
    let CreditorPass::Failed { reason, summary } = milan(&report) else {
        panic!("a 429 ends the pass: {report:?}");
    };
    assert!(
        reason.contains("rate limiting the subscription (429)"),
        "{reason}"
    );
    assert_eq!(fake.calls().len(), 2, "not retried");
    assert!(
        summary
            .receipts
            .iter()
            .all(|(_, r)| !matches!(r, Recovery::Recovered { .. })),
        "{summary:?}"
    );
    assert_eq!(recorded().await?, 1);

    // The API down (500 after the retry): recorded as failed, asked again only later.
    fake.with(|s| {
        s.behaviour.script.extend([500, 500, 500, 500]);
    });
    let report = recoverer.recover_once(None).await;
    let CreditorPass::Done(summary) = milan(&report) else {
        panic!("a failed receipt does not stop the pass: {report:?}");
    };
    let failed: Vec<&incasso_store::reconciliation::ReceiptRecovery> = summary
        .receipts
        .iter()
        .filter_map(|(_, r)| match r {
            Recovery::Failed(r) => Some(r),
            _ => None,
        })
        .collect();
    assert_eq!(failed.len(), 2, "{summary:?}");
    assert!(
        failed[0]
            .detail
            .as_deref()
            .is_some_and(|d| d.contains("unavailable") && d.contains("500")),
        "{failed:?}"
    );
    assert!(failed.iter().all(|r| r.next_attempt_at.is_some()));
    app.stop().await
}
