//! ReconciliationService as the finance office uses it. The evidence comes in the real ways:
//! receipts delivered over SOAP by the Node simulator (a TARI with the Città Metropolitana's
//! TEFA, a school fee, a notice incasso never issued), reporting flows and a camt.053
//! statement uploaded through ImportDocument. Then transfers are listed with their labels and
//! scopes, by each filter and page by page; flows with their treasury states; credits with
//! their references; a key's history after a later import moved its label; a summary; and a
//! malformed document is refused with nothing stored.

use tonic::Code;
use tonic_types::StatusExt;

use incasso_grpc::pb;
use incasso_grpc::pb::ReconciliationLabel as L;
use incasso_grpc::pb::reconciliation_service_client::ReconciliationServiceClient;
use incasso_integration_tests::node_simulator::{self as node, MILANO_BANK, ReceiptSpec};
use incasso_integration_tests::requests::{self, CITTA_METROPOLITANA, MILANO};
use incasso_integration_tests::{Engine, TestApp};
use incasso_reconciliation::CamtVersion;
use incasso_reconciliation::testing::{CamtEntry, CamtMessage, camt, cbi_statement};
use time::macros::{date, datetime};
use tonic::transport::Channel;

use crate::on_both_engines;
use crate::recon_evidence::{flow, flow_at, line, transfer_key as key};

on_both_engines!(
    the_finance_office_follows_receipts_flows_and_credits,
    bad_requests_are_refused_naming_the_field,
    a_document_larger_than_one_message_is_imported_in_chunks,
    a_movement_notified_then_booked_under_another_reference_is_shown_twinned,
    a_file_of_two_accounts_credits_each_on_its_own,
    the_service_reports_its_health_and_is_reflected,
);

/// The flow that reports the TARI, the legacy notice and a payment whose receipt was lost.
const FLOW: &str = "2026-11-24BCITITMM-S000000001";
/// An older flow of another PSP, due and never credited.
const OLD_FLOW: &str = "2026-11-20UNCRITMM-S000000009";
/// The IUV of a notice incasso did not issue (a legacy system's).
const LEGACY_IUV: &str = "12999999999999934";
/// The IUV of a payment reported by the PSP whose receipt never arrived.
const LOST_IUV: &str = "12999999999999942";
/// The IUV of the old flow's only line.
const OLD_IUV: &str = "12999999999999950";

pub(crate) type Client = ReconciliationServiceClient<Channel>;

/// Uploads `document` in chunks of `chunk` bytes.
pub(crate) async fn import(
    client: &mut Client,
    name: &str,
    document: &str,
    chunk: usize,
) -> Result<pb::ImportDocumentResponse, tonic::Status> {
    let chunks: Vec<pb::ImportDocumentRequest> = document
        .as_bytes()
        .chunks(chunk)
        .enumerate()
        .map(|(i, content)| pb::ImportDocumentRequest {
            file_name: if i == 0 {
                name.to_owned()
            } else {
                String::new()
            },
            content: content.to_vec(),
        })
        .collect();
    client
        .import_document(tokio_stream::iter(chunks))
        .await
        .map(tonic::Response::into_inner)
}

async fn transfers(
    client: &mut Client,
    request: pb::ListTransfersRequest,
) -> anyhow::Result<Vec<pb::ReconciliationTransfer>> {
    Ok(client.list_transfers(request).await?.into_inner().transfers)
}

fn keys(items: &[pb::ReconciliationTransfer]) -> Vec<(String, String, i32)> {
    items
        .iter()
        .map(|t| (t.iuv.clone(), t.receipt_id.clone(), t.id_transfer))
        .collect()
}

fn find<'a>(
    items: &'a [pb::ReconciliationTransfer],
    iuv: &str,
    id_transfer: i32,
) -> &'a pb::ReconciliationTransfer {
    items
        .iter()
        .find(|t| t.iuv == iuv && t.id_transfer == id_transfer)
        .unwrap_or_else(|| panic!("no transfer {iuv}/{id_transfer} in {items:#?}"))
}

fn label_names(values: &[i32]) -> Vec<&'static str> {
    values
        .iter()
        .map(|v| L::try_from(*v).unwrap().as_str_name())
        .collect()
}

fn label_of(value: i32) -> L {
    L::try_from(value).unwrap()
}

/// The receipts of the day: the TARI's single payment (Milan's 285.00 and the Città
/// Metropolitana's 15.00 of TEFA), a school fee (465.00) and a legacy notice (50.00), all
/// paid on 23 November.
struct Paid {
    tari_iuv: String,
    fee_iuv: String,
}

async fn pay(app: &TestApp) -> anyhow::Result<Paid> {
    let mut notices = app.notices().await?;
    let tari = notices
        .create_debt_position(requests::tari("rc-tari"))
        .await?
        .into_inner();
    let fee = notices
        .create_debt_position(requests::school_fee("rc-fee"))
        .await?
        .into_inner();
    let tari_single = tari.payment_options[0].installments[0].clone();
    let fee_notice = fee.payment_options[0].installments[0].clone();
    node::deliver_receipt(
        app.soap_addr,
        &ReceiptSpec::paying(&tari_single, "rt-tari", "BCITITMM", "2026-11-23T10:00:00"),
    )
    .await?;
    node::deliver_receipt(
        app.soap_addr,
        &ReceiptSpec::paying(&fee_notice, "rt-fee", "BCITITMM", "2026-11-23T11:00:00"),
    )
    .await?;
    let mut legacy =
        ReceiptSpec::paying(&fee_notice, "rt-legacy", "BCITITMM", "2026-11-23T12:00:00");
    legacy.notice_number = format!("3{LEGACY_IUV}");
    legacy.iuv = LEGACY_IUV.to_owned();
    legacy.amount = node::st_amount(5_000);
    legacy.transfers = vec![(
        MILANO.to_owned(),
        node::st_amount(5_000),
        MILANO_BANK.to_owned(),
    )];
    node::deliver_receipt(app.soap_addr, &legacy).await?;
    Ok(Paid {
        tari_iuv: tari_single.iuv,
        fee_iuv: fee_notice.iuv,
    })
}

fn main_flow(paid: &Paid) -> String {
    flow(
        FLOW,
        "BCITITMM",
        date!(2026 - 11 - 24),
        vec![
            line(
                key(&paid.tari_iuv, "rt-tari", 1),
                28_500,
                date!(2026 - 11 - 23),
            ),
            line(
                key(LEGACY_IUV, "rt-legacy", 1),
                5_000,
                date!(2026 - 11 - 23),
            ),
            line(key(LOST_IUV, "rt-lost", 1), 2_000, date!(2026 - 11 - 23)),
        ],
    )
}

fn old_flow() -> String {
    flow(
        OLD_FLOW,
        "UNCRITMM",
        date!(2026 - 11 - 20),
        vec![line(
            key(OLD_IUV, "rt-old", 1),
            1_000,
            date!(2026 - 11 - 19),
        )],
    )
}

/// Milan's statement of 25 November: the main flow's transfer, a /RFB/ credit of the school
/// fee, and a credit that is not pagoPA's.
fn statement(paid: &Paid) -> String {
    let day = date!(2026 - 11 - 25);
    camt(
        CamtMessage::Statement,
        CamtVersion::V08,
        MILANO_BANK,
        day,
        day,
        &[
            CamtEntry::credit(
                "ASR-0001",
                35_500,
                day,
                &format!("/PUR/LGPE-RIVERSAMENTO/URI/{FLOW}"),
            ),
            CamtEntry::credit(
                "ASR-0002",
                46_500,
                day,
                &format!("/RFB/{}/465.00/TXT/RETTA NIDO", paid.fee_iuv),
            ),
            CamtEntry::credit("ASR-0003", 12_345, day, "RIMBORSO SPESE CONDOMINIALI"),
        ],
    )
}

async fn the_finance_office_follows_receipts_flows_and_credits(
    engine: Engine,
) -> anyhow::Result<()> {
    let app = TestApp::spawn(engine).await?;
    let paid = pay(&app).await?;
    let mut client = app.reconciliation().await?;

    // Before any import: every transfer is listed; Milan's (its treasury account is
    // configured) are paid and reported by no flow yet, RT_NO_IUF; the TEFA is the Città
    // Metropolitana's, unlabelled.
    let before = transfers(&mut client, pb::ListTransfersRequest::default()).await?;
    assert_eq!(before.len(), 4, "{before:#?}");
    let tefa = find(&before, &paid.tari_iuv, 2);
    assert_eq!(tefa.creditor_fiscal_code, CITTA_METROPOLITANA);
    assert_eq!(tefa.scope, pb::ReconciliationScope::OtherBeneficiary as i32);
    assert_eq!(label_of(tefa.label), L::Unspecified);
    for t in before.iter().filter(|t| t.creditor_fiscal_code == MILANO) {
        assert_eq!(label_of(t.label), L::RtNoIuf, "{t:#?}");
        assert_eq!(t.scope, pb::ReconciliationScope::Creditor as i32, "{t:#?}");
    }
    assert_eq!(
        before
            .iter()
            .filter(|t| t.creditor_fiscal_code == MILANO)
            .count(),
        3,
        "{before:#?}"
    );

    // The flow arrives: reported transfers are RT_IUF (regulated, not due for lack of
    // treasury evidence), the fee is RT_NO_IUF, the lost receipt's line IUV_NO_RT.
    let imported = import(&mut client, "flow-bcititmm.xml", &main_flow(&paid), 1 << 20).await?;
    assert_eq!(imported.format, "FlussoRiversamento");
    assert_eq!(imported.creditor_fiscal_code, MILANO);
    assert_eq!((imported.flows_added, imported.lines_added), (1, 3));
    assert!(!imported.already_imported);
    assert!(imported.label_changes >= 4, "{imported:?}");
    let again = import(&mut client, "flow-bcititmm.xml", &main_flow(&paid), 1 << 20).await?;
    assert!(again.already_imported);
    assert_eq!((again.flows_added, again.label_changes), (0, 0));
    let listed = transfers(&mut client, pb::ListTransfersRequest::default()).await?;
    let tari = find(&listed, &paid.tari_iuv, 1);
    assert_eq!(label_of(tari.label), L::RtIuf);
    assert_eq!(tari.flow_id, FLOW);
    assert_eq!(tari.flow_revision, 1);
    assert_eq!(tari.treasury_state, pb::TreasuryState::Pending as i32);
    assert_eq!(label_of(find(&listed, &paid.fee_iuv, 1).label), L::RtNoIuf);
    assert_eq!(label_of(find(&listed, LEGACY_IUV, 1).label), L::RtIuf);
    let lost = find(&listed, LOST_IUV, 1);
    assert_eq!(label_of(lost.label), L::IuvNoRt);
    assert_eq!(lost.amount_cents, 2_000);
    assert_eq!(lost.reported_cents, Some(2_000));

    // The older flow and the treasury statement; the statement goes up in small chunks.
    import(&mut client, "flow-uncritmm.xml", &old_flow(), 1 << 20).await?;
    let credited = import(&mut client, "statement-1125.xml", &statement(&paid), 700).await?;
    assert_eq!(credited.format, "camt.053.001.08");
    assert_eq!(credited.credits_added, 3);

    // Transfers: every one of both scopes, with labels decided by the evidence only (the
    // legacy notice's transfer is reconciled like any other).
    let all = transfers(&mut client, pb::ListTransfersRequest::default()).await?;
    assert_eq!(all.len(), 6, "{all:#?}");
    let tari = find(&all, &paid.tari_iuv, 1);
    assert_eq!(tari.creditor_fiscal_code, MILANO);
    assert_eq!(tari.receipt_id, "rt-tari");
    assert_eq!(tari.amount_cents, 28_500);
    assert_eq!(label_of(tari.label), L::RtIufTes);
    assert_eq!(tari.scope, pb::ReconciliationScope::Creditor as i32);
    assert_eq!(tari.treasury_state, pb::TreasuryState::Cashed as i32);
    assert_eq!(tari.treasury_credit_ids, ["ASR-0001"]);
    assert_eq!(tari.paid_on, "2026-11-23");
    let tefa = find(&all, &paid.tari_iuv, 2);
    assert_eq!(
        (
            tefa.creditor_fiscal_code.as_str(),
            tefa.amount_cents,
            label_of(tefa.label),
            tefa.scope
        ),
        (
            CITTA_METROPOLITANA,
            1_500,
            L::Unspecified,
            pb::ReconciliationScope::OtherBeneficiary as i32
        )
    );
    assert!(tefa.labels.is_empty() && tefa.flow_id.is_empty());
    let fee = find(&all, &paid.fee_iuv, 1);
    assert_eq!(label_of(fee.label), L::RtTes);
    assert_eq!(fee.treasury_credit_ids, ["ASR-0002"]);
    assert_eq!(label_of(find(&all, LEGACY_IUV, 1).label), L::RtIufTes);
    assert_eq!(label_of(find(&all, LOST_IUV, 1).label), L::IuvNoRt);
    let old = find(&all, OLD_IUV, 1);
    assert_eq!(label_of(old.label), L::IuvNoRt);
    assert_eq!(
        label_names(&old.labels),
        [
            "RECONCILIATION_LABEL_IUV_NO_RT",
            "RECONCILIATION_LABEL_IUF_NO_TES"
        ]
    );
    assert_eq!(old.treasury_state, pb::TreasuryState::NoTes as i32);

    // Paging: two at a time gives the same transfers in the same order, each once.
    let mut paged = Vec::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let page = client
            .list_transfers(pb::ListTransfersRequest {
                page_size: 2,
                page_token: token.clone(),
                ..Default::default()
            })
            .await?
            .into_inner();
        pages += 1;
        assert!(page.transfers.len() <= 2);
        paged.extend(page.transfers);
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(pages, 3);
    assert_eq!(keys(&paged), keys(&all));

    // Filters.
    let by_label = transfers(
        &mut client,
        pb::ListTransfersRequest {
            label: L::RtIufTes as i32,
            ..Default::default()
        },
    )
    .await?;
    let mut iuvs: Vec<&str> = by_label.iter().map(|t| t.iuv.as_str()).collect();
    iuvs.sort_unstable();
    let mut expected = vec![paid.tari_iuv.as_str(), LEGACY_IUV];
    expected.sort_unstable();
    assert_eq!(iuvs, expected);
    let other = transfers(
        &mut client,
        pb::ListTransfersRequest {
            scope: pb::ReconciliationScope::OtherBeneficiary as i32,
            ..Default::default()
        },
    )
    .await?;
    assert_eq!(
        keys(&other),
        [(paid.tari_iuv.clone(), "rt-tari".to_owned(), 2)]
    );
    let own = transfers(
        &mut client,
        pb::ListTransfersRequest {
            scope: pb::ReconciliationScope::Creditor as i32,
            ..Default::default()
        },
    )
    .await?;
    assert_eq!(own.len(), 5);
    assert!(own.iter().all(|t| t.creditor_fiscal_code == MILANO));
    let by_flow = transfers(
        &mut client,
        pb::ListTransfersRequest {
            flow_id: FLOW.to_owned(),
            ..Default::default()
        },
    )
    .await?;
    assert_eq!(by_flow.len(), 3);
    assert!(by_flow.iter().all(|t| t.flow_id == FLOW));
    let by_iuv = transfers(
        &mut client,
        pb::ListTransfersRequest {
            iuv: paid.tari_iuv.clone(),
            ..Default::default()
        },
    )
    .await?;
    assert_eq!(by_iuv.len(), 2);
    let by_receipt = transfers(
        &mut client,
        pb::ListTransfersRequest {
            receipt_id: "rt-legacy".to_owned(),
            ..Default::default()
        },
    )
    .await?;
    assert_eq!(
        keys(&by_receipt),
        [(LEGACY_IUV.to_owned(), "rt-legacy".to_owned(), 1)]
    );
    let by_day = transfers(
        &mut client,
        pb::ListTransfersRequest {
            paid_from: "2026-11-19".to_owned(),
            paid_to: "2026-11-22".to_owned(),
            ..Default::default()
        },
    )
    .await?;
    assert_eq!(
        keys(&by_day),
        [(OLD_IUV.to_owned(), "rt-old".to_owned(), 1)]
    );
    let milan_cashed = transfers(
        &mut client,
        pb::ListTransfersRequest {
            creditor_fiscal_code: MILANO.to_owned(),
            label: L::IuvNoRt as i32,
            flow_id: FLOW.to_owned(),
            paid_from: "2026-11-23".to_owned(),
            paid_to: "2026-11-23".to_owned(),
            ..Default::default()
        },
    )
    .await?;
    assert_eq!(
        keys(&milan_cashed),
        [(LOST_IUV.to_owned(), "rt-lost".to_owned(), 1)]
    );

    // Flows and their treasury states.
    let flows = client
        .list_reporting_flows(pb::ListReportingFlowsRequest::default())
        .await?
        .into_inner()
        .flows;
    let ids: Vec<&str> = flows.iter().map(|f| f.flow_id.as_str()).collect();
    assert_eq!(ids, [OLD_FLOW, FLOW]);
    let main = &flows[1];
    assert_eq!(
        (
            main.revision,
            main.psp_id.as_str(),
            main.regulation_date.as_str(),
            main.trn.as_str(),
            main.total_cents,
            main.line_count,
            main.treasury_state,
        ),
        (
            1,
            "BCITITMM",
            "2026-11-24",
            "TRN-BCITITMM",
            35_500,
            3,
            pb::TreasuryState::Cashed as i32
        )
    );
    assert_eq!(main.treasury_credit_ids, ["ASR-0001"]);
    assert_eq!(flows[0].treasury_state, pb::TreasuryState::NoTes as i32);
    assert!(flows[0].treasury_credit_ids.is_empty());
    let not_cashed = client
        .list_reporting_flows(pb::ListReportingFlowsRequest {
            treasury_state: pb::TreasuryState::NoTes as i32,
            ..Default::default()
        })
        .await?
        .into_inner()
        .flows;
    assert_eq!(not_cashed.len(), 1);
    assert_eq!(not_cashed[0].flow_id, OLD_FLOW);
    let first_page = client
        .list_reporting_flows(pb::ListReportingFlowsRequest {
            page_size: 1,
            ..Default::default()
        })
        .await?
        .into_inner();
    assert_eq!(first_page.flows[0].flow_id, OLD_FLOW);
    let second_page = client
        .list_reporting_flows(pb::ListReportingFlowsRequest {
            page_size: 1,
            page_token: first_page.next_page_token,
            ..Default::default()
        })
        .await?
        .into_inner();
    assert_eq!(second_page.flows[0].flow_id, FLOW);
    assert!(second_page.next_page_token.is_empty());

    // Credits with their references and labels.
    let credits = client
        .list_treasury_credits(pb::ListTreasuryCreditsRequest::default())
        .await?
        .into_inner()
        .credits;
    let ids: Vec<&str> = credits.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, ["ASR-0001", "ASR-0002", "ASR-0003"]);
    assert_eq!(credits[0].amount_cents, 35_500);
    assert_eq!(credits[0].booking_date, "2026-11-25");
    assert_eq!(credits[0].value_date, "2026-11-25");
    assert_eq!(credits[0].referenced_flow_ids, [FLOW]);
    assert_eq!(credits[0].attributed_flow_ids, [FLOW]);
    assert_eq!(label_of(credits[0].label), L::RtIufTes);
    assert_eq!(credits[1].referenced_iuvs, [paid.fee_iuv.as_str()]);
    assert_eq!(label_of(credits[1].label), L::RtTes);
    assert!(credits[2].referenced_flow_ids.is_empty() && credits[2].referenced_iuvs.is_empty());
    assert_eq!(label_of(credits[2].label), L::TesNoMatch);
    assert_eq!(credits[2].causale, "RIMBORSO SPESE CONDOMINIALI");

    // The TARI's history: labelled from its receipt, then by the flow, then by the credit.
    let history = client
        .get_transfer_history(pb::GetTransferHistoryRequest {
            creditor_fiscal_code: MILANO.to_owned(),
            iuv: paid.tari_iuv.clone(),
            receipt_id: "rt-tari".to_owned(),
            id_transfer: 1,
        })
        .await?
        .into_inner()
        .changes;
    let moves: Vec<(L, L)> = history
        .iter()
        .map(|c| (label_of(c.previous_label), label_of(c.label)))
        .collect();
    assert_eq!(
        moves,
        [
            (L::Unspecified, L::RtNoIuf),
            (L::RtNoIuf, L::RtIuf),
            (L::RtIuf, L::RtIufTes)
        ]
    );
    assert!(history[0].document.is_none(), "caught up from the receipt");
    assert!(history[0].evidence.iter().any(|e| matches!(
        &e.kind,
        Some(pb::evidence::Kind::Receipt(r)) if r.receipt_id == "rt-tari" && r.id_transfer == 1
    )));
    let by_flow = history[1].document.as_ref().unwrap();
    assert_eq!(
        (by_flow.file_name.as_str(), by_flow.format.as_str()),
        ("flow-bcititmm.xml", "FlussoRiversamento")
    );
    assert!(history[1].evidence.iter().any(|e| matches!(
        &e.kind,
        Some(pb::evidence::Kind::Flow(f)) if f.flow_id == FLOW && f.revision == 1
    )));
    assert_eq!(
        history[2].document.as_ref().unwrap().file_name,
        "statement-1125.xml"
    );
    assert!(history[2].evidence.iter().any(|e| matches!(
        &e.kind,
        Some(pb::evidence::Kind::CreditId(id)) if id == "ASR-0001"
    )));
    assert_eq!(history[2].treasury_state, pb::TreasuryState::Cashed as i32);
    // Another beneficiary's transfer has no history of Milan's.
    let tefa_history = client
        .get_transfer_history(pb::GetTransferHistoryRequest {
            creditor_fiscal_code: CITTA_METROPOLITANA.to_owned(),
            iuv: paid.tari_iuv.clone(),
            receipt_id: "rt-tari".to_owned(),
            id_transfer: 2,
        })
        .await?
        .into_inner();
    assert!(tefa_history.changes.is_empty());

    // The summary of 23 to 25 November: the four own transfers paid on the 23rd, the three
    // credits of the 25th; the old flow's line (paid on the 19th) is outside.
    let summary = client
        .get_summary(pb::GetSummaryRequest {
            from: "2026-11-23".to_owned(),
            to: "2026-11-25".to_owned(),
            creditor_fiscal_code: MILANO.to_owned(),
        })
        .await?
        .into_inner();
    let totals = |list: &[pb::LabelTotal]| -> Vec<(L, i64, i64)> {
        list.iter()
            .map(|t| (label_of(t.label), t.count, t.amount_cents))
            .collect()
    };
    assert_eq!(
        totals(&summary.transfer_labels),
        [
            (L::IuvNoRt, 1, 2_000),
            (L::RtIufTes, 2, 33_500),
            (L::RtTes, 1, 46_500)
        ]
    );
    assert_eq!(
        totals(&summary.credit_labels),
        [
            (L::RtIufTes, 1, 35_500),
            (L::RtTes, 1, 46_500),
            (L::TesNoMatch, 1, 12_345)
        ]
    );
    assert_eq!(summary.paid_cents, 28_500 + 46_500 + 5_000);
    assert_eq!(summary.reported_cents, 28_500 + 5_000 + 2_000);
    assert_eq!(summary.cashed_cents, 35_500 + 46_500);

    // A malformed flow is refused naming file, line and element; nothing of it is stored.
    let documents = app.query_i64("SELECT COUNT(*) FROM recon_document").await?;
    let broken = old_flow()
        .replace(OLD_FLOW, "2026-11-21UNCRITMM-S000000010")
        .replace(
            "<singoloImportoPagato>10.00</singoloImportoPagato>",
            "<singoloImportoPagato>10,00</singoloImportoPagato>",
        );
    let refused = import(&mut client, "flow-broken.xml", &broken, 1 << 20)
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
    let violations = refused.get_details_bad_request().unwrap().field_violations;
    assert_eq!(violations.len(), 1, "{violations:?}");
    assert_eq!(violations[0].field, "content");
    let description = &violations[0].description;
    assert!(
        description.contains("flow-broken.xml")
            && description.contains("line")
            && description.contains("singoloImportoPagato"),
        "{description}"
    );
    assert_eq!(
        app.query_i64("SELECT COUNT(*) FROM recon_document").await?,
        documents
    );
    let flows_after = client
        .list_reporting_flows(pb::ListReportingFlowsRequest::default())
        .await?
        .into_inner()
        .flows;
    assert_eq!(flows_after.len(), 2);

    // A new revision of the old flow (a later dataOraFlusso, a line added) replaces it:
    // the flow is listed once, in its new revision, and so are its transfers.
    let revised = flow_at(
        OLD_FLOW,
        "UNCRITMM",
        date!(2026 - 11 - 20),
        vec![
            line(key(OLD_IUV, "rt-old", 1), 1_000, date!(2026 - 11 - 19)),
            line(key(LOST_IUV, "rt-old-2", 1), 500, date!(2026 - 11 - 19)),
        ],
        datetime!(2026-11-26 08:30 +01:00),
    );
    let imported = import(&mut client, "flow-uncritmm-2.xml", &revised, 1 << 20).await?;
    assert_eq!(imported.flows_added, 1);
    let old_flows = client
        .list_reporting_flows(pb::ListReportingFlowsRequest {
            flow_id: OLD_FLOW.to_owned(),
            ..Default::default()
        })
        .await?
        .into_inner()
        .flows;
    assert_eq!(old_flows.len(), 1, "{old_flows:#?}");
    assert_eq!(
        (
            old_flows[0].revision,
            old_flows[0].line_count,
            old_flows[0].total_cents
        ),
        (2, 2, 1_500)
    );
    let reported = transfers(
        &mut client,
        pb::ListTransfersRequest {
            flow_id: OLD_FLOW.to_owned(),
            ..Default::default()
        },
    )
    .await?;
    assert_eq!(
        keys(&reported),
        [
            (LOST_IUV.to_owned(), "rt-old-2".to_owned(), 1),
            (OLD_IUV.to_owned(), "rt-old".to_owned(), 1)
        ]
    );
    assert!(reported.iter().all(|t| t.flow_revision == 2));

    app.stop().await
}

pub(crate) fn violation_fields(status: &tonic::Status) -> Vec<String> {
    status
        .get_details_bad_request()
        .map(|b| b.field_violations.into_iter().map(|v| v.field).collect())
        .unwrap_or_default()
}

async fn bad_requests_are_refused_naming_the_field(engine: Engine) -> anyhow::Result<()> {
    let app = TestApp::spawn(engine).await?;
    let mut client = app.reconciliation().await?;

    let status = client
        .list_transfers(pb::ListTransfersRequest {
            paid_from: "2026-13-01".to_owned(),
            label: 99,
            iuv: "not an IUV!".to_owned(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(violation_fields(&status), ["label"]);
    assert!(status.message().contains("label"), "{}", status.message());
    let status = client
        .list_transfers(pb::ListTransfersRequest {
            paid_from: "2026-13-01".to_owned(),
            iuv: "not an IUV!".to_owned(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    let mut fields = violation_fields(&status);
    fields.sort();
    assert_eq!(fields, ["iuv", "paid_from"]);
    assert!(
        status.message().contains("paidFrom"),
        "{}",
        status.message()
    );

    // A page token is bound to its filters.
    for i in 0..3 {
        let mut request = requests::school_fee(&format!("bad-{i}"));
        request.debtor.as_mut().unwrap().full_name = format!("Debtor {i}");
        let position = app
            .notices()
            .await?
            .create_debt_position(request)
            .await?
            .into_inner();
        let notice = position.payment_options[0].installments[0].clone();
        node::deliver_receipt(
            app.soap_addr,
            &ReceiptSpec::paying(
                &notice,
                &format!("rt-{i}"),
                "BCITITMM",
                "2026-11-23T10:00:00",
            ),
        )
        .await?;
    }
    // A receipt whose receiptId is longer than an FdR's IUR can be is listed all the same.
    let long_id = format!("{}-long-payment-token", "x".repeat(30));
    let mut request = requests::school_fee("bad-long");
    request.debtor.as_mut().unwrap().full_name = "Debtor long".to_owned();
    let position = app
        .notices()
        .await?
        .create_debt_position(request)
        .await?
        .into_inner();
    let notice = position.payment_options[0].installments[0].clone();
    node::deliver_receipt(
        app.soap_addr,
        &ReceiptSpec::paying(&notice, &long_id, "BCITITMM", "2026-11-23T10:00:00"),
    )
    .await?;
    let long = transfers(
        &mut client,
        pb::ListTransfersRequest {
            receipt_id: long_id.clone(),
            ..Default::default()
        },
    )
    .await?;
    assert_eq!(keys(&long), [(notice.iuv.clone(), long_id, 1)]);
    assert_eq!(long[0].scope, pb::ReconciliationScope::Creditor as i32);

    let page = client
        .list_transfers(pb::ListTransfersRequest {
            page_size: 1,
            ..Default::default()
        })
        .await?
        .into_inner();
    assert_eq!(page.transfers.len(), 1);
    assert!(!page.next_page_token.is_empty());
    let status = client
        .list_transfers(pb::ListTransfersRequest {
            page_size: 1,
            page_token: page.next_page_token.clone(),
            scope: pb::ReconciliationScope::Creditor as i32,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(violation_fields(&status), ["page_token"]);
    let status = client
        .list_reporting_flows(pb::ListReportingFlowsRequest {
            page_token: "garbage".to_owned(),
            regulation_from: "2026-11-30".to_owned(),
            regulation_to: "2026-11-01".to_owned(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    let mut fields = violation_fields(&status);
    fields.sort();
    assert_eq!(fields, ["page_token", "regulation_to"]);
    let status = client
        .list_treasury_credits(pb::ListTreasuryCreditsRequest {
            page_size: 5000,
            creditor_fiscal_code: "0119925015".to_owned(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    let mut fields = violation_fields(&status);
    fields.sort();
    assert_eq!(fields, ["creditor_fiscal_code", "page_size"]);
    let status = client
        .get_transfer_history(pb::GetTransferHistoryRequest {
            creditor_fiscal_code: MILANO.to_owned(),
            iuv: LEGACY_IUV.to_owned(),
            receipt_id: String::new(),
            id_transfer: 7,
        })
        .await
        .unwrap_err();
    assert_eq!(violation_fields(&status), ["id_transfer"]);
    let status = client
        .get_summary(pb::GetSummaryRequest::default())
        .await
        .unwrap_err();
    let mut fields = violation_fields(&status);
    fields.sort();
    assert_eq!(fields, ["from", "to"]);
    // A statement of an account no creditor has: refused, nothing stored.
    let day = date!(2026 - 11 - 25);
    let foreign = camt(
        CamtMessage::Statement,
        CamtVersion::V04,
        "IT60X0542811101000000123456",
        day,
        day,
        &[CamtEntry::credit("ASR-9", 100, day, "X")],
    );
    let status = import(&mut client, "foreign.xml", &foreign, 1 << 20)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(violation_fields(&status), ["content"]);
    assert!(
        status.message().contains("treasury account"),
        "{}",
        status.message()
    );
    let empty = import(&mut client, "empty.xml", "", 1).await.unwrap_err();
    assert_eq!(violation_fields(&empty), ["content"]);
    assert_eq!(
        app.query_i64("SELECT COUNT(*) FROM recon_document").await?,
        0
    );
    assert_eq!(app.query_i64("SELECT COUNT(*) FROM recon_credit").await?, 0);

    // Paging still works past the refusals: four fees, one per page.
    let mut seen = vec![keys(&page.transfers)[0].clone()];
    let mut token = page.next_page_token;
    while !token.is_empty() {
        let next = client
            .list_transfers(pb::ListTransfersRequest {
                page_size: 1,
                page_token: token,
                ..Default::default()
            })
            .await?
            .into_inner();
        seen.extend(keys(&next.transfers));
        token = next.next_page_token;
    }
    assert_eq!(seen.len(), 4);
    app.stop().await
}

/// A statement of 5 MiB (a long comment stands in for a busy day's entries) is over the
/// 4 MiB request-message limit as one message, and imports as 1 MiB chunks.
async fn a_document_larger_than_one_message_is_imported_in_chunks(
    engine: Engine,
) -> anyhow::Result<()> {
    let app = TestApp::spawn(engine).await?;
    let mut client = app.reconciliation().await?;
    let day = date!(2026 - 11 - 25);
    let statement = camt(
        CamtMessage::Statement,
        CamtVersion::V08,
        MILANO_BANK,
        day,
        day,
        &[CamtEntry::credit("ASR-BIG", 10_000, day, "BONIFICO")],
    );
    let padding = format!("<!-- {} -->\n", "x".repeat(5 * 1024 * 1024));
    let (declaration, rest) = statement.split_at(statement.find('\n').unwrap() + 1);
    let big = format!("{declaration}{padding}{rest}");

    let whole = import(&mut client, "big.xml", &big, big.len())
        .await
        .unwrap_err();
    assert_eq!(whole.code(), Code::ResourceExhausted, "{whole:?}");
    assert_eq!(app.query_i64("SELECT COUNT(*) FROM recon_credit").await?, 0);

    let imported = import(&mut client, "big.xml", &big, 1024 * 1024).await?;
    assert_eq!(imported.credits_added, 1);
    let credits = client
        .list_treasury_credits(pb::ListTreasuryCreditsRequest::default())
        .await?
        .into_inner()
        .credits;
    assert_eq!(credits.len(), 1);
    assert_eq!(
        (credits[0].id.as_str(), label_of(credits[0].label)),
        ("ASR-BIG", L::TesNoMatch)
    );
    app.stop().await
}

/// A CBI statement file holding the day's statements of two of Milan's accounts: each credit
/// is listed on the account of its own statement.
async fn a_file_of_two_accounts_credits_each_on_its_own(engine: Engine) -> anyhow::Result<()> {
    const SECOND: &str = "IT02A0306909606100000063119";
    let app = TestApp::spawn_with(engine, |settings| {
        settings.treasury_accounts.add_iban(MILANO, SECOND).unwrap();
    })
    .await?;
    let mut client = app.reconciliation().await?;
    let day = date!(2026 - 11 - 25);
    let first = [CamtEntry::credit("ASR-A1", 1_000, day, "BONIFICO A")];
    let second = [CamtEntry::credit("ASR-B1", 2_000, day, "BONIFICO B")];
    let file = cbi_statement(day, &[(MILANO_BANK, &first[..]), (SECOND, &second[..])]);
    let imported = import(&mut client, "cbi-1125.xml", &file, 1 << 20).await?;
    assert_eq!(imported.credits_added, 2);
    let mut credits: Vec<(String, String)> = client
        .list_treasury_credits(pb::ListTreasuryCreditsRequest::default())
        .await?
        .into_inner()
        .credits
        .into_iter()
        .map(|c| (c.id, c.account))
        .collect();
    credits.sort();
    assert_eq!(
        credits,
        [
            ("ASR-A1".to_owned(), MILANO_BANK.to_owned()),
            ("ASR-B1".to_owned(), SECOND.to_owned()),
        ]
    );
    app.stop().await
}

/// The bank notifies a credit during the day (camt.054) and books it in the evening's
/// statement (camt.053) under another reference: the statement's import warns that the two
/// are probably one movement, and each credit names the other through ListTreasuryCredits.
async fn a_movement_notified_then_booked_under_another_reference_is_shown_twinned(
    engine: Engine,
) -> anyhow::Result<()> {
    let app = TestApp::spawn(engine).await?;
    let mut client = app.reconciliation().await?;
    let day = date!(2026 - 11 - 25);
    let entry = |id: &str| CamtEntry {
        end_to_end_id: Some("E2E-RIVERSAMENTO-77".to_owned()),
        ..CamtEntry::credit(
            id,
            35_500,
            day,
            &format!("/PUR/LGPE-RIVERSAMENTO/URI/{FLOW}"),
        )
    };
    let document = |message, id: &str| {
        camt(
            message,
            CamtVersion::V08,
            MILANO_BANK,
            day,
            day,
            &[entry(id)],
        )
    };
    let notification = document(CamtMessage::Notification, "NTF-0001");
    let notified = import(&mut client, "notification-1125.xml", &notification, 1 << 20).await?;
    assert_eq!(notified.credits_added, 1);
    assert!(notified.warnings.is_empty(), "{:?}", notified.warnings);
    let statement = document(CamtMessage::Statement, "ASR-0001");
    let booked = import(&mut client, "statement-1125.xml", &statement, 1 << 20).await?;
    assert_eq!(booked.credits_added, 1);
    assert_eq!(booked.warnings.len(), 1, "{:?}", booked.warnings);
    assert!(
        booked.warnings[0].contains(
            "treasury credit ASR-0001 of 35500 cents, value date 2026-11-25, is probably the same \
             movement as credit NTF-0001 of notification-1125.xml (same EndToEndId \
             E2E-RIVERSAMENTO-77, amount and value date)"
        ),
        "{}",
        booked.warnings[0]
    );

    let credits = client
        .list_treasury_credits(pb::ListTreasuryCreditsRequest::default())
        .await?
        .into_inner()
        .credits;
    let twin = |id: &str| -> Vec<(String, i32, String)> {
        credits
            .iter()
            .find(|c| c.id == id)
            .unwrap()
            .possible_duplicates
            .iter()
            .map(|d| (d.credit_id.clone(), d.reason, d.file_name.clone()))
            .collect()
    };
    let reason = pb::DuplicateReason::EndToEndId as i32;
    assert_eq!(
        twin("ASR-0001"),
        vec![(
            "NTF-0001".to_owned(),
            reason,
            "notification-1125.xml".to_owned()
        )]
    );
    assert_eq!(
        twin("NTF-0001"),
        vec![(
            "ASR-0001".to_owned(),
            reason,
            "statement-1125.xml".to_owned()
        )]
    );
    // The day's summary counts both credits, and says that they are probably one.
    let summary = client
        .get_summary(pb::GetSummaryRequest {
            from: "2026-11-25".to_owned(),
            to: "2026-11-25".to_owned(),
            creditor_fiscal_code: MILANO.to_owned(),
        })
        .await?
        .into_inner();
    let credited: i64 = summary.credit_labels.iter().map(|t| t.amount_cents).sum();
    assert_eq!(credited, 71_000);
    let twinned = summary.possibly_duplicated_credits.unwrap();
    assert_eq!((twinned.count, twinned.amount_cents), (2, 71_000));
    assert_eq!(summary.reversals.unwrap().count, 0);
    app.stop().await
}

async fn the_service_reports_its_health_and_is_reflected(engine: Engine) -> anyhow::Result<()> {
    let app = TestApp::spawn(engine).await?;
    let (serving, services) = app
        .health_and_reflection("incasso.v1.ReconciliationService")
        .await?;
    assert!(serving);
    assert!(
        services.contains(&"incasso.v1.ReconciliationService".to_owned()),
        "{services:?}"
    );
    app.stop().await
}
