//! The books follow reconciliation: receipts delivered over SOAP by the Node simulator, a
//! reporting flow and a camt.053 statement uploaded through ImportDocument, and an auditor
//! following the money through LedgerService: the `reported` entry of a flow (one per
//! revision, naming every notice it reports), the `cashed` entries of a treasury
//! credit, divergent amounts in suspense with their cause, nothing posted twice when the same
//! documents come again, a new flow revision posting only its change, an `/RFB/` credit
//! cashing the one receipt it pays directly, and a ledger that still verifies.

use tonic::Code;

use incasso_domain::reconciliation::TransferKey;
use incasso_grpc::pb;
use incasso_grpc::pb::ledger_service_client::LedgerServiceClient;
use incasso_grpc::pb::reconciliation_service_client::ReconciliationServiceClient;
use incasso_integration_tests::node_simulator::{self as node, MILANO_BANK, ReceiptSpec};
use incasso_integration_tests::requests::{self, MILANO};
use incasso_integration_tests::{Engine, TestApp};
use incasso_reconciliation::CamtVersion;
use incasso_reconciliation::testing::{CamtEntry, CamtMessage, camt};
use time::macros::{date, datetime};
use tonic::transport::Channel;

use crate::on_both_engines;
use crate::recon_evidence::{flow_at, line, transfer_key};

on_both_engines!(an_auditor_follows_each_euro_from_receipt_to_flow_to_bank);
on_both_engines!(an_rfb_credit_cashes_the_receipt_it_pays_until_a_flow_reports_it);
on_both_engines!(a_flow_declaring_more_than_its_lines_is_kept_as_declared_and_warned_of);

/// The flow that reports the TARI, the school fee (50 cents short), a legacy notice and a
/// payment whose receipt was lost.
const FLOW: &str = "2026-11-24BCITITMM-S000000101";
/// Another PSP's flow, credited 1.00 short.
const SHORT_FLOW: &str = "2026-11-24UNCRITMM-S000000102";
/// The IUV of a notice incasso did not issue.
const LEGACY_IUV: &str = "12999999999999934";
/// The IUV of a payment reported by the PSP whose receipt never arrived.
const LOST_IUV: &str = "12999999999999942";
/// The IUV of the short flow's only line (no receipt either).
const SHORT_IUV: &str = "12999999999999950";

fn key(iuv: &str, receipt_id: &str) -> TransferKey {
    transfer_key(iuv, receipt_id, 1)
}

fn flow_document(
    id: &str,
    psp: &str,
    lines: &[(TransferKey, i64)],
    created_at: time::OffsetDateTime,
) -> String {
    let lines = lines
        .iter()
        .map(|(key, amount_cents)| line(key.clone(), *amount_cents, date!(2026 - 11 - 23)))
        .collect();
    flow_at(id, psp, date!(2026 - 11 - 24), lines, created_at)
}

async fn import(
    client: &mut ReconciliationServiceClient<Channel>,
    name: &str,
    document: &str,
) -> anyhow::Result<pb::ImportDocumentResponse> {
    let request = pb::ImportDocumentRequest {
        file_name: name.to_owned(),
        content: document.as_bytes().to_vec(),
    };
    Ok(client
        .import_document(tokio_stream::iter(vec![request]))
        .await?
        .into_inner())
}

async fn entries(
    ledger: &mut LedgerServiceClient<Channel>,
    request: pb::ListEntriesRequest,
) -> anyhow::Result<Vec<pb::LedgerEntry>> {
    let mut out = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = ledger
            .list_entries(pb::ListEntriesRequest {
                page_token: page_token.clone(),
                ..request.clone()
            })
            .await?
            .into_inner();
        out.extend(page.entries);
        if page.next_page_token.is_empty() {
            return Ok(out);
        }
        page_token = page.next_page_token;
    }
}

/// Every entry naming treasury credit `credit_id`.
async fn entries_of_credit(
    ledger: &mut LedgerServiceClient<Channel>,
    credit_id: &str,
) -> anyhow::Result<Vec<pb::LedgerEntry>> {
    entries(
        ledger,
        pb::ListEntriesRequest {
            treasury_credit_id: credit_id.to_owned(),
            ..Default::default()
        },
    )
    .await
}

/// What the `reported` postings of `iuv`'s first transfer paid by `receipt_id` have posted, as
/// GetTransferHistory shows it: the flow and revision, and the amounts sorted by account.
async fn reported_posting(
    client: &mut ReconciliationServiceClient<Channel>,
    iuv: &str,
    receipt_id: &str,
) -> anyhow::Result<Option<(String, i32, Vec<(String, i64)>)>> {
    let history = client
        .get_transfer_history(pb::GetTransferHistoryRequest {
            creditor_fiscal_code: MILANO.to_owned(),
            iuv: iuv.to_owned(),
            receipt_id: receipt_id.to_owned(),
            id_transfer: 1,
        })
        .await?
        .into_inner();
    Ok(history.reported_posting.map(|p| {
        let mut amounts: Vec<(String, i64)> = p
            .amounts
            .into_iter()
            .map(|a| (a.account, a.amount_cents))
            .collect();
        amounts.sort();
        (p.flow_id, p.flow_revision, amounts)
    }))
}

fn lines(entry: &pb::LedgerEntry) -> Vec<(&str, i64)> {
    let mut lines: Vec<_> = entry
        .lines
        .iter()
        .map(|l| (l.account.as_str(), l.amount_cents))
        .collect();
    lines.sort();
    lines
}

/// A school fee of 465.00 issued as `external_id`, paid by BCITITMM's receipt `receipt_id` on
/// 23 November and delivered over SOAP.
async fn paid_school_fee(
    app: &TestApp,
    external_id: &str,
    receipt_id: &str,
) -> anyhow::Result<pb::Installment> {
    let position = app
        .notices()
        .await?
        .create_debt_position(requests::school_fee(external_id))
        .await?
        .into_inner();
    let fee = position.payment_options[0].installments[0].clone();
    node::deliver_receipt(
        app.soap_addr,
        &ReceiptSpec::paying(&fee, receipt_id, "BCITITMM", "2026-11-23T10:00:00"),
    )
    .await?;
    Ok(fee)
}

/// Milan's balance of `account`.
pub(crate) async fn balance(
    ledger: &mut LedgerServiceClient<Channel>,
    account: &str,
) -> anyhow::Result<i64> {
    let balances = ledger
        .get_balances(pb::GetBalancesRequest {
            creditor_fiscal_code: MILANO.to_owned(),
            ..Default::default()
        })
        .await?
        .into_inner()
        .balances;
    Ok(balances
        .iter()
        .filter(|b| b.account == account)
        .map(|b| b.balance_cents)
        .sum())
}

async fn an_auditor_follows_each_euro_from_receipt_to_flow_to_bank(
    engine: Engine,
) -> anyhow::Result<()> {
    let app = TestApp::spawn(engine).await?;
    let mut notices = app.notices().await?;
    let mut ledger = app.ledger().await?;
    let mut client = app.reconciliation().await?;
    let clearing = format!("psp_clearing:{MILANO}:BCITITMM");
    let in_transit = format!("in_transit:{MILANO}");
    let treasury = format!("treasury:{MILANO}");
    let suspense = format!("suspense:{MILANO}");

    // The day's receipts: the TARI (Milan's 285.00 and 15.00 of TEFA for the Città
    // Metropolitana), a school fee of 465.00 and a legacy notice of 50.00.
    let tari = notices
        .create_debt_position(requests::tari("books-tari"))
        .await?
        .into_inner();
    let fee = notices
        .create_debt_position(requests::school_fee("books-fee"))
        .await?
        .into_inner();
    let tari = tari.payment_options[0].installments[0].clone();
    let fee = fee.payment_options[0].installments[0].clone();
    for (installment, receipt_id) in [(&tari, "rt-tari"), (&fee, "rt-fee")] {
        node::deliver_receipt(
            app.soap_addr,
            &ReceiptSpec::paying(installment, receipt_id, "BCITITMM", "2026-11-23T10:00:00"),
        )
        .await?;
    }
    let mut legacy = ReceiptSpec::paying(&fee, "rt-legacy", "BCITITMM", "2026-11-23T12:00:00");
    legacy.notice_number = format!("3{LEGACY_IUV}");
    legacy.iuv = LEGACY_IUV.to_owned();
    legacy.amount = node::st_amount(5_000);
    legacy.transfers = vec![(
        MILANO.to_owned(),
        node::st_amount(5_000),
        MILANO_BANK.to_owned(),
    )];
    node::deliver_receipt(app.soap_addr, &legacy).await?;
    assert_eq!(
        balance(&mut ledger, &clearing).await?,
        28_500 + 46_500 + 5_000
    );

    // The flow: one reported entry for its revision, naming the flow and every notice it
    // reports; its lines are its transfers' postings summed.
    let first_revision = vec![
        (key(&tari.iuv, "rt-tari"), 28_500),
        (key(&fee.iuv, "rt-fee"), 46_000),
        (key(LEGACY_IUV, "rt-legacy"), 5_000),
        (key(LOST_IUV, "rt-lost"), 2_000),
    ];
    let flow = flow_document(
        FLOW,
        "BCITITMM",
        &first_revision,
        datetime!(2026-11-24 06:00 UTC),
    );
    let imported = import(&mut client, "flow.xml", &flow).await?;
    assert_eq!(imported.ledger_entries_posted, 1, "{imported:?}");
    let by_flow = pb::ListEntriesRequest {
        reporting_flow_id: FLOW.to_owned(),
        page_size: 3,
        ..Default::default()
    };
    let reported = entries(&mut ledger, by_flow.clone()).await?;
    assert_eq!(reported.len(), 1, "{reported:#?}");
    let flow_reported = &reported[0];
    assert_eq!(flow_reported.event_type, "reported");
    assert_eq!(flow_reported.reporting_flow_id, FLOW);
    assert_eq!(flow_reported.reporting_flow_revision, 1);
    let named: Vec<(&str, &str)> = flow_reported
        .notices
        .iter()
        .map(|n| (n.iuv.as_str(), n.notice_number.as_str()))
        .collect();
    assert_eq!(named.len(), 4, "{named:?}");
    for (iuv, notice_number) in [
        (tari.iuv.as_str(), tari.notice_number.clone()),
        (fee.iuv.as_str(), fee.notice_number.clone()),
        (LEGACY_IUV, format!("3{LEGACY_IUV}")),
    ] {
        assert!(named.contains(&(iuv, notice_number.as_str())), "{named:?}");
    }
    // No receipt arrived for the lost payment: its notice number is unknown.
    assert!(named.contains(&(LOST_IUV, "")), "{named:?}");
    // In transit what the lines say (815.00); out of clearing what the three receipts
    // booked (800.00); in suspense the fee's 5.00 short and the lost payment's 20.00 with
    // no receipt to clear.
    assert_eq!(
        lines(flow_reported),
        [
            (in_transit.as_str(), 81_500),
            (clearing.as_str(), -80_000),
            (suspense.as_str(), 500 - 2_000),
        ]
    );
    // The entry says which transfers went to suspense, and why.
    for why in [
        format!("{}/1/rt-fee suspense 500 cents", fee.iuv),
        "46500".to_owned(),
        "-500".to_owned(),
        format!("{LOST_IUV}/1/rt-lost suspense -2000 cents"),
        "IUV_NO_RT".to_owned(),
    ] {
        assert!(
            flow_reported.description.contains(&why),
            "{why}: {}",
            flow_reported.description
        );
    }
    // Each key's own part of that entry is its posting, which GetTransferHistory shows: the
    // fee's line, 5.00 short of its receipt.
    let own = |rows: &[(&str, i64)]| -> Vec<(String, i64)> {
        rows.iter().map(|(a, c)| ((*a).to_owned(), *c)).collect()
    };
    assert_eq!(
        reported_posting(&mut client, &fee.iuv, "rt-fee").await?,
        Some((
            FLOW.to_owned(),
            1,
            own(&[
                (in_transit.as_str(), 46_000),
                (clearing.as_str(), -46_500),
                (suspense.as_str(), 500),
            ])
        ))
    );
    assert_eq!(
        reported_posting(&mut client, LOST_IUV, "rt-lost").await?,
        Some((
            FLOW.to_owned(),
            1,
            own(&[(in_transit.as_str(), 2_000), (suspense.as_str(), -2_000)])
        ))
    );
    // An auditor following the fee's euro by its IUV finds its receipt's booking and the
    // flow's entry.
    let by_fee = entries(
        &mut ledger,
        pb::ListEntriesRequest {
            iuv: fee.iuv.clone(),
            ..Default::default()
        },
    )
    .await?;
    assert!(
        by_fee
            .iter()
            .any(|e| e.event_type == "reported" && e.reporting_flow_id == FLOW),
        "{by_fee:#?}"
    );
    assert!(
        by_fee.iter().any(|e| e.receipt_id == "rt-fee"),
        "{by_fee:#?}"
    );
    assert_eq!(balance(&mut ledger, &clearing).await?, 0);

    // The same flow again, as a file or under another name: nothing new.
    let again = import(&mut client, "flow.xml", &flow).await?;
    assert!(again.already_imported);
    assert_eq!(again.ledger_entries_posted, 0);
    let head_before = ledger
        .get_checkpoint(pb::GetCheckpointRequest {})
        .await?
        .into_inner()
        .sequence;

    // The treasury: Milan's statement credits the flow exactly and the other PSP's flow
    // 1.00 short.
    let short = flow_document(
        SHORT_FLOW,
        "UNCRITMM",
        &[(key(SHORT_IUV, "rt-short"), 1_000)],
        datetime!(2026-11-24 06:00 UTC),
    );
    assert_eq!(
        import(&mut client, "short.xml", &short)
            .await?
            .ledger_entries_posted,
        1
    );
    let day = date!(2026 - 11 - 25);
    let statement = camt(
        CamtMessage::Statement,
        CamtVersion::V08,
        MILANO_BANK,
        day,
        day,
        &[
            CamtEntry::credit(
                "ASR-0101",
                81_500,
                day,
                &format!("/PUR/LGPE-RIVERSAMENTO/URI/{FLOW}"),
            ),
            CamtEntry::credit(
                "ASR-0102",
                900,
                day,
                &format!("/PUR/LGPE-RIVERSAMENTO/URI/{SHORT_FLOW}"),
            ),
            CamtEntry::credit("ASR-0103", 12_345, day, "RIMBORSO SPESE CONDOMINIALI"),
        ],
    );
    let credited = import(&mut client, "statement.xml", &statement).await?;
    assert_eq!(credited.ledger_entries_posted, 2, "{credited:?}");
    let cashed = entries_of_credit(&mut ledger, "ASR-0101").await?;
    assert_eq!(cashed.len(), 1, "{cashed:#?}");
    assert_eq!(cashed[0].event_type, "cashed");
    assert_eq!(cashed[0].treasury_line_id, "ASR-0101");
    assert_eq!(cashed[0].reporting_flow_id, FLOW);
    assert_eq!(cashed[0].reporting_flow_revision, 1);
    assert_eq!(
        lines(&cashed[0]),
        [(in_transit.as_str(), -81_500), (treasury.as_str(), 81_500)]
    );
    let mut named: Vec<_> = cashed[0].notices.iter().map(|n| n.iuv.as_str()).collect();
    named.sort_unstable();
    let mut expected = vec![tari.iuv.as_str(), fee.iuv.as_str(), LEGACY_IUV, LOST_IUV];
    expected.sort_unstable();
    assert_eq!(named, expected);
    // The short credit: in the treasury what came, the 1.00 missing in suspense, with why.
    let short_cashed = entries_of_credit(&mut ledger, "ASR-0102").await?;
    assert_eq!(short_cashed.len(), 1);
    assert_eq!(
        lines(&short_cashed[0]),
        [
            (in_transit.as_str(), -1_000),
            (suspense.as_str(), 100),
            (treasury.as_str(), 900),
        ]
    );
    assert!(
        short_cashed[0].description.contains("IUF_TES_DIV_IMP"),
        "{}",
        short_cashed[0].description
    );
    // A credit that is not pagoPA's is no posting of incasso's.
    assert!(entries_of_credit(&mut ledger, "ASR-0103").await?.is_empty());
    // The flow's entries now include its cash, and nothing else.
    let followed = entries(&mut ledger, by_flow.clone()).await?;
    assert_eq!(followed.len(), 2);
    assert_eq!(
        followed
            .iter()
            .filter(|e| e.event_type == "cashed")
            .map(|e| e.treasury_line_id.as_str())
            .collect::<Vec<_>>(),
        ["ASR-0101"]
    );
    assert_eq!(balance(&mut ledger, &in_transit).await?, 0);
    assert_eq!(balance(&mut ledger, &treasury).await?, 82_400);

    // Every document again: nothing posted twice.
    let head = ledger
        .get_checkpoint(pb::GetCheckpointRequest {})
        .await?
        .into_inner()
        .sequence;
    assert_eq!(head, head_before + 3);
    for (name, document) in [
        ("flow.xml", &flow),
        ("short.xml", &short),
        ("statement.xml", &statement),
    ] {
        assert_eq!(
            import(&mut client, name, document)
                .await?
                .ledger_entries_posted,
            0
        );
    }
    assert_eq!(
        ledger
            .get_checkpoint(pb::GetCheckpointRequest {})
            .await?
            .into_inner()
            .sequence,
        head
    );

    // The PSP's second revision corrects the fee's line to 465.00: only the change is
    // posted, naming revision 2; the flow is now 5.00 more than its credit, and that
    // difference moves to suspense with the credit.
    let mut second_revision = first_revision.clone();
    second_revision[1].1 = 46_500;
    let revised = flow_document(
        FLOW,
        "BCITITMM",
        &second_revision,
        datetime!(2026-11-25 06:00 UTC),
    );
    let imported = import(&mut client, "flow-r2.xml", &revised).await?;
    assert_eq!(imported.ledger_entries_posted, 2, "{imported:?}");
    let followed = entries(&mut ledger, by_flow).await?;
    let changes: Vec<_> = followed
        .iter()
        .filter(|e| e.reporting_flow_revision == 2)
        .collect();
    assert_eq!(changes.len(), 2, "{followed:#?}");
    let fee_change = changes
        .iter()
        .find(|e| e.event_type == "reported")
        .expect("the fee's adjustment");
    assert_eq!(fee_change.notices[0].iuv, fee.iuv);
    assert_eq!(
        lines(fee_change),
        [(in_transit.as_str(), 500), (suspense.as_str(), -500)]
    );
    let credit_change = changes
        .iter()
        .find(|e| e.event_type == "cashed")
        .expect("the credit's adjustment");
    assert_eq!(credit_change.treasury_line_id, "ASR-0101");
    assert_eq!(
        lines(credit_change),
        [(in_transit.as_str(), -500), (suspense.as_str(), 500)]
    );
    assert_eq!(balance(&mut ledger, &in_transit).await?, 0);
    assert_eq!(balance(&mut ledger, &clearing).await?, 0);
    // The fee's own posting now follows revision 2: its line equals its receipt.
    assert_eq!(
        reported_posting(&mut client, &fee.iuv, "rt-fee").await?,
        Some((
            FLOW.to_owned(),
            2,
            vec![(in_transit.clone(), 46_500), (clearing.clone(), -46_500),]
        ))
    );
    // A key no flow reports has no posting.
    assert_eq!(
        reported_posting(&mut client, &tari.iuv, "rt-other").await?,
        None
    );

    // A filter that names no flow or credit is refused, naming the field.
    for (request, field) in [
        (
            pb::ListEntriesRequest {
                reporting_flow_id: "not a flow!".to_owned(),
                ..Default::default()
            },
            "reporting_flow_id",
        ),
        (
            pb::ListEntriesRequest {
                treasury_credit_id: "x".repeat(61),
                ..Default::default()
            },
            "treasury_credit_id",
        ),
    ] {
        let status = ledger.list_entries(request).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(status.message().contains(field), "{}", status.message());
    }

    // The export follows the same filter; the whole ledger still verifies.
    let mut export = ledger
        .export_entries(pb::ExportEntriesRequest {
            filter: Some(pb::EntryFilter {
                treasury_credit_id: "ASR-0101".to_owned(),
                ..Default::default()
            }),
        })
        .await?
        .into_inner();
    let mut exported = Vec::new();
    while let Some(entry) = export.message().await? {
        exported.push(entry.treasury_line_id);
    }
    assert_eq!(exported, ["ASR-0101", "ASR-0101"]);
    let verified = ledger
        .verify_ledger(pb::VerifyLedgerRequest::default())
        .await?
        .into_inner();
    assert!(verified.ok, "{verified:?}");
    let head = ledger
        .get_checkpoint(pb::GetCheckpointRequest {})
        .await?
        .into_inner();
    assert_eq!(verified.entries_checked, head.sequence);
    app.stop().await
}

async fn an_rfb_credit_cashes_the_receipt_it_pays_until_a_flow_reports_it(
    engine: Engine,
) -> anyhow::Result<()> {
    let app = TestApp::spawn(engine).await?;
    let mut ledger = app.ledger().await?;
    let mut client = app.reconciliation().await?;
    let clearing = format!("psp_clearing:{MILANO}:BCITITMM");
    let in_transit = format!("in_transit:{MILANO}");
    let treasury = format!("treasury:{MILANO}");

    let fee = paid_school_fee(&app, "books-rfb", "rt-direct").await?;
    assert_eq!(balance(&mut ledger, &clearing).await?, 46_500);

    // The PSP pays this one receipt by a bank transfer of its own, with no flow: the credit
    // cashes it straight from clearing, and one a cent off is left to the finance office.
    let day = date!(2026 - 11 - 25);
    let statement = camt(
        CamtMessage::Statement,
        CamtVersion::V08,
        MILANO_BANK,
        day,
        day,
        &[
            CamtEntry::credit(
                "ASR-0201",
                46_500,
                day,
                &format!("/RFB/{}/465.00/TXT/RETTA MENSA", fee.iuv),
            ),
            CamtEntry::credit("ASR-0202", 46_501, day, &format!("/RFB/{}/465.01", fee.iuv)),
        ],
    );
    let credited = import(&mut client, "statement.xml", &statement).await?;
    assert_eq!(credited.ledger_entries_posted, 1, "{credited:?}");
    let by_credit = pb::ListEntriesRequest {
        treasury_credit_id: "ASR-0201".to_owned(),
        ..Default::default()
    };
    let cashed = entries(&mut ledger, by_credit.clone()).await?;
    assert_eq!(cashed.len(), 1, "{cashed:#?}");
    assert_eq!(cashed[0].event_type, "cashed");
    assert_eq!(cashed[0].receipt_id, "rt-direct");
    assert_eq!(cashed[0].reporting_flow_id, "");
    assert_eq!(cashed[0].notices.len(), 1);
    assert_eq!(cashed[0].notices[0].notice_number, fee.notice_number);
    assert_eq!(cashed[0].notices[0].iuv, fee.iuv);
    assert_eq!(
        lines(&cashed[0]),
        [(clearing.as_str(), -46_500), (treasury.as_str(), 46_500)]
    );
    assert!(entries_of_credit(&mut ledger, "ASR-0202").await?.is_empty());
    assert_eq!(balance(&mut ledger, &clearing).await?, 0);
    assert_eq!(balance(&mut ledger, &treasury).await?, 46_500);
    let again = import(&mut client, "statement.xml", &statement).await?;
    assert_eq!(again.ledger_entries_posted, 0);

    // A flow reports the same payment after all: the money is the flow's to carry, and the
    // direct cashing is reversed, naming the credit and the receipt again.
    let flow = flow_document(
        FLOW,
        "BCITITMM",
        &[(key(&fee.iuv, "rt-direct"), 46_500)],
        datetime!(2026-11-26 06:00 UTC),
    );
    let reported = import(&mut client, "flow.xml", &flow).await?;
    assert_eq!(reported.ledger_entries_posted, 2, "{reported:?}");
    let followed = entries(&mut ledger, by_credit).await?;
    assert_eq!(followed.len(), 2, "{followed:#?}");
    assert_eq!(followed[1].receipt_id, "rt-direct");
    assert!(
        followed[1].description.contains("reversed"),
        "{}",
        followed[1].description
    );
    assert_eq!(
        lines(&followed[1]),
        [(clearing.as_str(), 46_500), (treasury.as_str(), -46_500)]
    );
    assert_eq!(balance(&mut ledger, &clearing).await?, 0);
    assert_eq!(balance(&mut ledger, &treasury).await?, 0);
    assert_eq!(balance(&mut ledger, &in_transit).await?, 46_500);
    let verified = ledger
        .verify_ledger(pb::VerifyLedgerRequest::default())
        .await?
        .into_inner();
    assert!(verified.ok, "{verified:?}");
    app.stop().await
}

/// A PSP's flow whose declared total (`importoTotalePagamenti`) is 1.00 more than its one
/// line: imported as declared, with a warning in the import's answer. The credit of the
/// declared total cashes it (the contract compares credits with the flows' totals), the key
/// is reconciled, and the 1.00 the lines do not account for waits in suspense.
async fn a_flow_declaring_more_than_its_lines_is_kept_as_declared_and_warned_of(
    engine: Engine,
) -> anyhow::Result<()> {
    const DECLARING: &str = "2026-11-24BCITITMM-S000000301";
    let app = TestApp::spawn(engine).await?;
    let mut ledger = app.ledger().await?;
    let mut client = app.reconciliation().await?;
    let fee = paid_school_fee(&app, "declared-fee", "rt-declared").await?;

    let flow = flow_document(
        DECLARING,
        "BCITITMM",
        &[(key(&fee.iuv, "rt-declared"), 46_500)],
        datetime!(2026-11-24 06:00 UTC),
    );
    let declared = flow.replace(
        "<importoTotalePagamenti>465.00</importoTotalePagamenti>",
        "<importoTotalePagamenti>466.00</importoTotalePagamenti>",
    );
    assert_ne!(declared, flow, "the total is written as 465.00");
    let imported = import(&mut client, "declared.xml", &declared).await?;
    assert_eq!(imported.flows_added, 1, "{imported:?}");
    assert_eq!(imported.warnings.len(), 1, "{imported:?}");
    let warning = &imported.warnings[0];
    assert!(
        warning.contains(DECLARING) && warning.contains("46600") && warning.contains("+100 cents"),
        "{warning}"
    );
    let day = date!(2026 - 11 - 25);
    let statement = camt(
        CamtMessage::Statement,
        CamtVersion::V08,
        MILANO_BANK,
        day,
        day,
        &[CamtEntry::credit(
            "ASR-0301",
            46_600,
            day,
            &format!("/PUR/LGPE-RIVERSAMENTO/URI/{DECLARING}"),
        )],
    );
    let credited = import(&mut client, "statement.xml", &statement).await?;
    assert!(credited.warnings.is_empty(), "{credited:?}");

    let flows = client
        .list_reporting_flows(pb::ListReportingFlowsRequest::default())
        .await?
        .into_inner()
        .flows;
    assert_eq!(flows.len(), 1);
    assert_eq!(flows[0].total_cents, 46_600);
    assert_eq!(flows[0].line_count, 1);
    assert_eq!(flows[0].lines_total_cents, 46_500);
    assert_eq!(flows[0].treasury_state, pb::TreasuryState::Cashed as i32);
    let transfers = client
        .list_transfers(pb::ListTransfersRequest {
            iuv: fee.iuv.clone(),
            ..Default::default()
        })
        .await?
        .into_inner()
        .transfers;
    let milan: Vec<_> = transfers
        .iter()
        .filter(|t| t.creditor_fiscal_code == MILANO)
        .collect();
    assert_eq!(milan.len(), 1, "{transfers:#?}");
    assert_eq!(milan[0].label, pb::ReconciliationLabel::RtIufTes as i32);

    // The books: the line's 465.00 reported, the 466.00 cashed, the 1.00 no line accounts
    // for in suspense, and nothing left in transit.
    assert_eq!(
        balance(&mut ledger, &format!("in_transit:{MILANO}")).await?,
        0
    );
    assert_eq!(
        balance(&mut ledger, &format!("treasury:{MILANO}")).await?,
        46_600
    );
    assert_eq!(
        balance(&mut ledger, &format!("suspense:{MILANO}")).await?,
        -100
    );
    let cashed = entries_of_credit(&mut ledger, "ASR-0301").await?;
    assert_eq!(cashed.len(), 1, "{cashed:#?}");
    assert!(
        cashed[0]
            .description
            .contains("do not add up to their totals"),
        "{}",
        cashed[0].description
    );
    let verified = ledger
        .verify_ledger(pb::VerifyLedgerRequest::default())
        .await?
        .into_inner();
    assert!(verified.ok, "{verified:?}");
    app.stop().await
}
