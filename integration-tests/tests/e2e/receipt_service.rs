//! ReceiptService as the finance office and operators use it: receipts of every
//! classification delivered over SOAP, then listed by each filter, paged, exported (the
//! refund worklist), read one by one with their transfers and ledger entries; conflicts; and
//! a receipt parked by a real booking failure, retried until it books exactly once.

use std::collections::HashMap;

use tokio_stream::StreamExt;
use tonic::Code;
use tonic_types::StatusExt;

use incasso_grpc::pb;
use incasso_integration_tests::node_simulator::{
    self as node, Caller, ReceiptSpec, element_text, post,
};
use incasso_integration_tests::node_simulator::{CM_BANK, MILANO_BANK};
use incasso_integration_tests::requests::{self, CITTA_METROPOLITANA, MILANO};
use incasso_integration_tests::{Engine, TestApp};

use crate::on_both_engines;

on_both_engines!(
    receipts_are_listed_by_each_filter_paged_and_exported,
    a_receipt_shows_its_transfers_and_the_entries_it_booked,
    bad_filters_are_refused_naming_the_field,
    a_parked_receipt_is_listed_retried_and_booked_exactly_once,
    parked_receipts_are_paged_in_arrival_order,
    the_service_reports_its_health_and_is_reflected,
);

const XML: &str = "text/xml; charset=utf-8";
const UNKNOWN_NOTICE: &str = "312999999999999934";

fn receipt_for(
    installment: &pb::Installment,
    receipt_id: &str,
    psp: &str,
    paid: &str,
) -> ReceiptSpec {
    ReceiptSpec::paying(installment, receipt_id, psp, paid)
}

async fn send(app: &TestApp, v2: bool, spec: &ReceiptSpec) -> anyhow::Result<()> {
    let request = node::send_rt(&Caller::default(), v2, spec);
    let action = if v2 { "paSendRTV2" } else { "paSendRT" };
    let reply = post(app.soap_addr, Some(action), XML, request.as_bytes()).await?;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(
        element_text(&reply.body, "outcome"),
        Some("OK"),
        "{}",
        reply.body
    );
    Ok(())
}

/// What the tests deliver: five receipts of four classifications and one conflict.
struct Delivered {
    fee: pb::DebtPosition,
    fee_notice: pb::Installment,
    rate: pb::Installment,
}

/// Delivers, in this order: token-0001 settles a school fee (20 Nov, Rome); token-0002 pays
/// it again (00:30 on 21 Nov in Rome, still 20 Nov in UTC); token-0003 pays a cancelled
/// notice in Stand-In (V1); token-0004 pays a notice nobody issued; token-0005 settles a
/// TARI rate with a transfer to the Città Metropolitana; then token-0001 again with another
/// PSP, a conflict.
async fn deliver(app: &TestApp) -> anyhow::Result<Delivered> {
    let mut notices = app.notices().await?;
    let fee = notices
        .create_debt_position(requests::school_fee("rs-fee"))
        .await?
        .into_inner();
    let other = notices
        .create_debt_position(requests::school_fee("rs-other"))
        .await?
        .into_inner();
    let tari = notices
        .create_debt_position(requests::tari("rs-tari"))
        .await?
        .into_inner();
    notices
        .cancel_debt_position(pb::CancelDebtPositionRequest {
            request_id: "rs-other-cancel".to_owned(),
            id: other.id.clone(),
            reason: "ritiro".to_owned(),
        })
        .await?;
    let fee_notice = fee.payment_options[0].installments[0].clone();
    let cancelled = other.payment_options[0].installments[0].clone();
    let rate = tari.payment_options[1].installments[0].clone();
    let first = receipt_for(&fee_notice, "token-0001", "BCITITMM", "2026-11-20T10:15:00");
    send(app, true, &first).await?;
    send(
        app,
        true,
        &receipt_for(
            &fee_notice,
            "token-0002",
            "POSOIT22XXX",
            "2026-11-21T00:30:00",
        ),
    )
    .await?;
    let mut closed = receipt_for(&cancelled, "token-0003", "BCITITMM", "2026-11-22T09:00:00");
    closed.stand_in = true;
    send(app, false, &closed).await?;
    let mut stranger = receipt_for(&fee_notice, "token-0004", "BCITITMM", "2026-11-22T18:00:00");
    stranger.notice_number = UNKNOWN_NOTICE.to_owned();
    stranger.iuv = UNKNOWN_NOTICE[1..].to_owned();
    send(app, true, &stranger).await?;
    send(
        app,
        true,
        &receipt_for(&rate, "token-0005", "BCITITMM", "2026-11-23T12:00:00"),
    )
    .await?;
    let mut changed = first.clone();
    changed.psp = "UNCRITMM".to_owned();
    send(app, true, &changed).await?;
    Ok(Delivered {
        fee,
        fee_notice,
        rate,
    })
}

fn receipt_ids(receipts: &[pb::Receipt]) -> Vec<String> {
    receipts
        .iter()
        .map(|r| {
            r.key
                .as_ref()
                .map(|k| k.receipt_id.clone())
                .unwrap_or_default()
        })
        .collect()
}

async fn list(app: &TestApp, request: pb::ListReceiptsRequest) -> anyhow::Result<Vec<String>> {
    let page = app
        .receipts()
        .await?
        .list_receipts(request)
        .await?
        .into_inner();
    assert!(page.next_page_token.is_empty(), "one page");
    Ok(receipt_ids(&page.receipts))
}

fn classes(values: &[pb::ReceiptClassification]) -> Vec<i32> {
    values.iter().map(|c| *c as i32).collect()
}

async fn receipts_are_listed_by_each_filter_paged_and_exported(
    engine: Engine,
) -> anyhow::Result<()> {
    let app = TestApp::spawn(engine).await?;
    let delivered = deliver(&app).await?;
    let all = app
        .receipts()
        .await?
        .list_receipts(pb::ListReceiptsRequest::default())
        .await?
        .into_inner()
        .receipts;
    assert_eq!(
        receipt_ids(&all),
        [
            "token-0001",
            "token-0002",
            "token-0003",
            "token-0004",
            "token-0005"
        ],
        "every receipt once, in the order stored; the conflict is not a receipt"
    );

    // The facts of one item, as delivered.
    let double = &all[1];
    assert_eq!(
        double.key,
        Some(pb::ReceiptKey {
            creditor_fiscal_code: MILANO.to_owned(),
            iuv: delivered.fee_notice.iuv.clone(),
            receipt_id: "token-0002".to_owned(),
        })
    );
    assert_eq!(double.notice_number, delivered.fee_notice.notice_number);
    assert_eq!(double.receiving_creditor, MILANO);
    assert_eq!(double.primitive, "paSendRTV2");
    assert_eq!(double.psp_id, "POSOIT22XXX");
    assert_eq!(double.channel_id, "POSOIT22XXX_01");
    assert_eq!(double.payment_amount_cents, 46500);
    assert_eq!(double.fee_cents, Some(100));
    assert_eq!(double.payment_date_time, "2026-11-21T00:30:00");
    assert_eq!(
        double.classification,
        pb::ReceiptClassification::DoublePayment as i32
    );
    assert!(double.flags.is_empty());
    assert!(!double.stand_in);
    assert_eq!(double.debt_position_id, delivered.fee.id);
    assert!(!double.installment_id.is_empty());
    // 00:30 in Rome (UTC+1 in November) is 23:30 UTC the day before.
    assert_eq!(
        double.paid_at.as_ref().map(|t| t.seconds),
        Some(1_795_217_400)
    );
    assert!(double.received_at.is_some());
    let closed = &all[2];
    assert_eq!(closed.primitive, "paSendRT");
    assert_eq!(
        closed.classification,
        pb::ReceiptClassification::ClosedNotice as i32
    );
    assert_eq!(closed.flags, [pb::ReceiptFlag::StandIn as i32]);
    assert!(closed.stand_in);
    let stranger = &all[3];
    assert_eq!(
        stranger.classification,
        pb::ReceiptClassification::UnknownNotice as i32
    );
    assert!(stranger.debt_position_id.is_empty());

    // The refund worklist: exactly the double payment and the closed notice.
    let refunds = classes(&[
        pb::ReceiptClassification::DoublePayment,
        pb::ReceiptClassification::ClosedNotice,
    ]);
    assert_eq!(
        list(
            &app,
            pb::ListReceiptsRequest {
                classifications: refunds.clone(),
                ..Default::default()
            }
        )
        .await?,
        ["token-0002", "token-0003"]
    );
    let mut export = app
        .receipts()
        .await?
        .export_receipts(pb::ExportReceiptsRequest {
            filter: Some(pb::ReceiptFilter {
                classifications: refunds,
                ..Default::default()
            }),
        })
        .await?
        .into_inner();
    let mut exported = Vec::new();
    while let Some(receipt) = export.next().await {
        exported.push(receipt?);
    }
    assert_eq!(exported, all[1..3], "the export is the listing, whole");

    let cases: Vec<(pb::ListReceiptsRequest, Vec<&str>)> = vec![
        (
            pb::ListReceiptsRequest {
                classifications: classes(&[pb::ReceiptClassification::Settled]),
                ..Default::default()
            },
            vec!["token-0001", "token-0005"],
        ),
        (
            pb::ListReceiptsRequest {
                classifications: classes(&[pb::ReceiptClassification::UnknownNotice]),
                ..Default::default()
            },
            vec!["token-0004"],
        ),
        (
            pb::ListReceiptsRequest {
                classifications: classes(&[pb::ReceiptClassification::Parked]),
                ..Default::default()
            },
            vec![],
        ),
        (
            pb::ListReceiptsRequest {
                flag: pb::ReceiptFlag::StandIn as i32,
                ..Default::default()
            },
            vec!["token-0003"],
        ),
        (
            pb::ListReceiptsRequest {
                flag: pb::ReceiptFlag::Late as i32,
                ..Default::default()
            },
            vec![],
        ),
        (
            pb::ListReceiptsRequest {
                notice_number: delivered.fee_notice.notice_number.clone(),
                ..Default::default()
            },
            vec!["token-0001", "token-0002"],
        ),
        (
            pb::ListReceiptsRequest {
                iuv: delivered.rate.iuv.clone(),
                ..Default::default()
            },
            vec!["token-0005"],
        ),
        (
            pb::ListReceiptsRequest {
                receipt_id: "token-0004".to_owned(),
                ..Default::default()
            },
            vec!["token-0004"],
        ),
        (
            pb::ListReceiptsRequest {
                creditor_fiscal_code: MILANO.to_owned(),
                notice_number: UNKNOWN_NOTICE.to_owned(),
                ..Default::default()
            },
            vec!["token-0004"],
        ),
        (
            pb::ListReceiptsRequest {
                creditor_fiscal_code: CITTA_METROPOLITANA.to_owned(),
                ..Default::default()
            },
            vec![],
        ),
        // Rome calendar days: 00:30 on 21 November in Rome is on the 21st, not the 20th.
        (
            pb::ListReceiptsRequest {
                paid_from: "2026-11-20".to_owned(),
                paid_to: "2026-11-20".to_owned(),
                ..Default::default()
            },
            vec!["token-0001"],
        ),
        (
            pb::ListReceiptsRequest {
                paid_from: "2026-11-21".to_owned(),
                paid_to: "2026-11-22".to_owned(),
                ..Default::default()
            },
            vec!["token-0002", "token-0003", "token-0004"],
        ),
        (
            pb::ListReceiptsRequest {
                paid_from: "2026-11-22".to_owned(),
                ..Default::default()
            },
            vec!["token-0003", "token-0004", "token-0005"],
        ),
        (
            pb::ListReceiptsRequest {
                paid_to: "2026-11-19".to_owned(),
                ..Default::default()
            },
            vec![],
        ),
        (
            pb::ListReceiptsRequest {
                classifications: classes(&[pb::ReceiptClassification::Settled]),
                paid_from: "2026-11-21".to_owned(),
                ..Default::default()
            },
            vec!["token-0005"],
        ),
    ];
    for (request, expected) in cases {
        let described = format!("{request:?}");
        assert_eq!(list(&app, request).await?, expected, "{described}");
    }

    // Paging: two by two, each token continuing where the last page ended.
    let mut client = app.receipts().await?;
    let mut seen = Vec::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let page = client
            .list_receipts(pb::ListReceiptsRequest {
                page_size: 2,
                page_token: token.clone(),
                ..Default::default()
            })
            .await?
            .into_inner();
        pages += 1;
        seen.extend(receipt_ids(&page.receipts));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, receipt_ids(&all));
    // A token belongs to its filters.
    let first = client
        .list_receipts(pb::ListReceiptsRequest {
            page_size: 1,
            ..Default::default()
        })
        .await?
        .into_inner();
    let status = client
        .list_receipts(pb::ListReceiptsRequest {
            page_size: 1,
            page_token: first.next_page_token.clone(),
            flag: pb::ReceiptFlag::StandIn as i32,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().contains("pageToken"),
        "{}",
        status.message()
    );
    app.stop().await
}

async fn a_receipt_shows_its_transfers_and_the_entries_it_booked(
    engine: Engine,
) -> anyhow::Result<()> {
    let app = TestApp::spawn(engine).await?;
    let delivered = deliver(&app).await?;
    let mut client = app.receipts().await?;
    let by_key = client
        .get_receipt(pb::GetReceiptRequest {
            lookup: Some(pb::get_receipt_request::Lookup::Key(pb::ReceiptKey {
                creditor_fiscal_code: MILANO.to_owned(),
                iuv: delivered.rate.iuv.clone(),
                receipt_id: "token-0005".to_owned(),
            })),
        })
        .await?
        .into_inner();
    let receipt = by_key.receipt.clone().unwrap();
    assert_eq!(receipt.payment_amount_cents, 10000);
    assert_eq!(
        receipt.classification,
        pb::ReceiptClassification::Settled as i32
    );
    let by_id = client
        .get_receipt(pb::GetReceiptRequest {
            lookup: Some(pb::get_receipt_request::Lookup::Id(receipt.id.clone())),
        })
        .await?
        .into_inner();
    assert_eq!(by_id, by_key, "by row id or by key, the same receipt");
    let transfers: Vec<(i32, &str, &str, i64, String, &str)> = by_key
        .transfers
        .iter()
        .map(|t| {
            (
                t.id_transfer,
                t.beneficiary_fiscal_code.as_str(),
                t.iban.as_str(),
                t.amount_cents,
                t.remittance_information.clone(),
                t.transfer_category.as_str(),
            )
        })
        .collect();
    let iuv = &delivered.rate.iuv;
    assert_eq!(
        transfers,
        [
            (
                1,
                MILANO,
                MILANO_BANK,
                9500,
                format!("/RFB/{iuv}/95.00"),
                "9/0101101IM/"
            ),
            (
                2,
                CITTA_METROPOLITANA,
                CM_BANK,
                500,
                format!("/RFB/{iuv}/5.00"),
                "9/0101101IM/"
            ),
        ]
    );
    assert_eq!(
        by_key.transfers.iter().map(|t| t.amount_cents).sum::<i64>(),
        receipt.payment_amount_cents
    );
    // The entries it booked: the payment, balanced, and the receivable settled by the
    // amount paid.
    assert_eq!(by_key.ledger_entries.len(), 1);
    let entry = &by_key.ledger_entries[0];
    assert_eq!(entry.event_type, "receipt_paid");
    assert_eq!(entry.receipt_id, "token-0005");
    assert!(entry.sequence > 0);
    let lines: HashMap<&str, i64> = entry
        .lines
        .iter()
        .map(|l| (l.account.as_str(), l.amount_cents))
        .collect();
    assert_eq!(lines.values().sum::<i64>(), 0, "debits equal credits");
    assert_eq!(lines["receivable:01199250158:tari"], -10000);
    assert_eq!(lines["psp_clearing:01199250158:BCITITMM"], 9500);
    assert_eq!(lines["due_to_beneficiary:01199250158:08911820960"], 500);
    assert!(by_key.parked.is_none());
    // The same entries the ledger holds for this receiptId.
    let books = app
        .ledger()
        .await?
        .list_entries(pb::ListEntriesRequest {
            receipt_id: "token-0005".to_owned(),
            ..Default::default()
        })
        .await?
        .into_inner()
        .entries;
    assert_eq!(books, by_key.ledger_entries);

    // A double payment is owed back: its money went to refunds payable.
    let double = client
        .get_receipt(pb::GetReceiptRequest {
            lookup: Some(pb::get_receipt_request::Lookup::Key(pb::ReceiptKey {
                creditor_fiscal_code: MILANO.to_owned(),
                iuv: delivered.fee_notice.iuv.clone(),
                receipt_id: "token-0002".to_owned(),
            })),
        })
        .await?
        .into_inner();
    assert_eq!(double.ledger_entries.len(), 1);
    let entry = &double.ledger_entries[0];
    assert_eq!(entry.event_type, "double_payment");
    assert_eq!(entry.lines.iter().map(|l| l.amount_cents).sum::<i64>(), 0);
    assert!(
        entry
            .lines
            .iter()
            .any(|l| l.account == "refunds_payable:01199250158" && l.amount_cents == -46500),
        "{:?}",
        entry.lines
    );

    // The conflict: the first receipt's key, pointing at the receipt stored under it.
    let first_id = client
        .list_receipts(pb::ListReceiptsRequest {
            receipt_id: "token-0001".to_owned(),
            ..Default::default()
        })
        .await?
        .into_inner()
        .receipts[0]
        .id
        .clone();
    let conflicts = client
        .list_receipt_conflicts(pb::ListReceiptConflictsRequest::default())
        .await?
        .into_inner();
    assert_eq!(conflicts.conflicts.len(), 1);
    assert!(conflicts.next_page_token.is_empty());
    let conflict = &conflicts.conflicts[0];
    assert_eq!(
        conflict.key,
        Some(pb::ReceiptKey {
            creditor_fiscal_code: MILANO.to_owned(),
            iuv: delivered.fee_notice.iuv.clone(),
            receipt_id: "token-0001".to_owned(),
        })
    );
    assert_eq!(conflict.receipt_row_id, first_id);
    assert_eq!(conflict.content_sha256.len(), 64);
    assert!(conflict.received_at.is_some());
    for (request, expected) in [
        (
            pb::ListReceiptConflictsRequest {
                receipt_id: "token-0001".to_owned(),
                iuv: delivered.fee_notice.iuv.clone(),
                creditor_fiscal_code: MILANO.to_owned(),
                ..Default::default()
            },
            1,
        ),
        (
            pb::ListReceiptConflictsRequest {
                receipt_id: "token-0002".to_owned(),
                ..Default::default()
            },
            0,
        ),
    ] {
        let found = client.list_receipt_conflicts(request).await?.into_inner();
        assert_eq!(found.conflicts.len(), expected);
    }

    let missing = client
        .get_receipt(pb::GetReceiptRequest {
            lookup: Some(pb::get_receipt_request::Lookup::Id(
                "0190e4d2-7b1c-7000-8000-000000000000".to_owned(),
            )),
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    app.stop().await
}

/// The fields a refused call names, in proto form, and its message.
fn violations(status: &tonic::Status) -> Vec<String> {
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    status
        .get_error_details()
        .bad_request()
        .map(|b| b.field_violations.iter().map(|v| v.field.clone()).collect())
        .unwrap_or_default()
}

async fn bad_filters_are_refused_naming_the_field(engine: Engine) -> anyhow::Result<()> {
    let app = TestApp::spawn(engine).await?;
    let mut client = app.receipts().await?;
    let cases: Vec<(pb::ListReceiptsRequest, &str, &str)> = vec![
        (
            pb::ListReceiptsRequest {
                classifications: vec![pb::ReceiptClassification::Settled as i32, 99],
                ..Default::default()
            },
            "classifications[1]",
            "classifications[1]",
        ),
        (
            pb::ListReceiptsRequest {
                classifications: vec![0],
                ..Default::default()
            },
            "classifications[0]",
            "classifications[0]",
        ),
        (
            pb::ListReceiptsRequest {
                flag: 42,
                ..Default::default()
            },
            "flag",
            "flag",
        ),
        (
            pb::ListReceiptsRequest {
                paid_from: "2026-13-01".to_owned(),
                ..Default::default()
            },
            "paid_from",
            "paidFrom",
        ),
        (
            pb::ListReceiptsRequest {
                paid_from: "2026-11-21".to_owned(),
                paid_to: "2026-11-20".to_owned(),
                ..Default::default()
            },
            "paid_to",
            "paidTo",
        ),
        (
            pb::ListReceiptsRequest {
                notice_number: "12345".to_owned(),
                ..Default::default()
            },
            "notice_number",
            "noticeNumber",
        ),
        (
            pb::ListReceiptsRequest {
                iuv: "not/an/iuv".to_owned(),
                ..Default::default()
            },
            "iuv",
            "iuv",
        ),
        (
            pb::ListReceiptsRequest {
                receipt_id: "x".repeat(257),
                ..Default::default()
            },
            "receipt_id",
            "receiptId",
        ),
        (
            pb::ListReceiptsRequest {
                creditor_fiscal_code: "0119925015".to_owned(),
                ..Default::default()
            },
            "creditor_fiscal_code",
            "creditorFiscalCode",
        ),
        (
            pb::ListReceiptsRequest {
                page_size: 1001,
                ..Default::default()
            },
            "page_size",
            "pageSize",
        ),
        (
            pb::ListReceiptsRequest {
                page_token: "not-a-token".to_owned(),
                ..Default::default()
            },
            "page_token",
            "pageToken",
        ),
    ];
    for (request, field, json) in cases {
        let status = client.list_receipts(request).await.unwrap_err();
        assert_eq!(violations(&status), [field]);
        assert!(status.message().contains(json), "{}", status.message());
    }
    // The export names the fields inside its filter.
    let status = client
        .export_receipts(pb::ExportReceiptsRequest {
            filter: Some(pb::ReceiptFilter {
                paid_to: "yesterday".to_owned(),
                flag: 9,
                ..Default::default()
            }),
        })
        .await
        .unwrap_err();
    assert_eq!(violations(&status), ["filter.flag"]);
    let status = client
        .export_receipts(pb::ExportReceiptsRequest {
            filter: Some(pb::ReceiptFilter {
                paid_to: "yesterday".to_owned(),
                ..Default::default()
            }),
        })
        .await
        .unwrap_err();
    assert_eq!(violations(&status), ["filter.paid_to"]);
    assert!(
        status.message().contains("filter.paidTo"),
        "{}",
        status.message()
    );
    // GetReceipt: a row id that is no UUID, an incomplete key, nothing at all.
    let lookups: Vec<(Option<pb::get_receipt_request::Lookup>, Vec<&str>)> = vec![
        (
            Some(pb::get_receipt_request::Lookup::Id("nope".to_owned())),
            vec!["id"],
        ),
        (
            Some(pb::get_receipt_request::Lookup::Key(pb::ReceiptKey {
                creditor_fiscal_code: MILANO.to_owned(),
                iuv: String::new(),
                receipt_id: "token".to_owned(),
            })),
            vec!["key.iuv"],
        ),
        (None, vec!["id"]),
    ];
    for (lookup, fields) in lookups {
        let status = client
            .get_receipt(pb::GetReceiptRequest { lookup })
            .await
            .unwrap_err();
        assert_eq!(violations(&status), fields);
    }
    let status = client
        .list_receipt_conflicts(pb::ListReceiptConflictsRequest {
            iuv: "??".to_owned(),
            page_token: "garbage".to_owned(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(violations(&status), ["iuv", "page_token"]);
    // RetryParkedReceipts: exactly one of ids and all, ids are UUIDs.
    for (request, field) in [
        (pb::RetryParkedReceiptsRequest::default(), "ids"),
        (
            pb::RetryParkedReceiptsRequest {
                ids: vec!["0190e4d2-7b1c-7000-8000-000000000000".to_owned()],
                all: true,
            },
            "all",
        ),
        (
            pb::RetryParkedReceiptsRequest {
                ids: vec![
                    "0190e4d2-7b1c-7000-8000-000000000000".to_owned(),
                    "seven".to_owned(),
                ],
                all: false,
            },
            "ids[1]",
        ),
    ] {
        let status = client.retry_parked_receipts(request).await.unwrap_err();
        assert_eq!(violations(&status), [field]);
    }
    app.stop().await
}

async fn execute(app: &TestApp, sql: &str) -> anyhow::Result<u64> {
    app.execute_sql(sql).await
}

async fn a_parked_receipt_is_listed_retried_and_booked_exactly_once(
    engine: Engine,
) -> anyhow::Result<()> {
    // The background retry waits an hour: here only the operator retries.
    let app = TestApp::spawn_with(engine, |settings| {
        settings.parked_retry_interval = std::time::Duration::from_secs(3600);
    })
    .await?;
    let mut notices = app.notices().await?;
    let fee = notices
        .create_debt_position(requests::school_fee("rs-parked"))
        .await?
        .into_inner();
    let notice = fee.payment_options[0].installments[0].clone();
    // Stored data that breaks an invariant: the position cannot be loaded, so the booking fails.
    let broken = execute(
        &app,
        &format!(
            "UPDATE installment SET state = 'bogus' WHERE notice_number = '{}'",
            notice.notice_number
        ),
    )
    .await?;
    assert_eq!(broken, 1);
    send(
        &app,
        true,
        &receipt_for(&notice, "token-parked", "BCITITMM", "2026-11-20T10:15:00"),
    )
    .await?;
    let mut client = app.receipts().await?;
    let parked = client
        .list_parked_receipts(pb::ListParkedReceiptsRequest::default())
        .await?
        .into_inner()
        .parked_receipts;
    assert_eq!(parked.len(), 1);
    let p = &parked[0];
    assert_eq!(
        p.key.as_ref().map(|k| k.receipt_id.as_str()),
        Some("token-parked")
    );
    assert_eq!(p.notice_number, notice.notice_number);
    assert_eq!(p.payment_amount_cents, 46500);
    assert!(!p.reason.is_empty());
    assert_eq!(p.attempts, 0);
    assert!(p.parked_at.is_some() && p.next_attempt_at.is_some());
    assert!(p.booked_at.is_none());
    let listed = client
        .list_receipts(pb::ListReceiptsRequest {
            classifications: classes(&[pb::ReceiptClassification::Parked]),
            ..Default::default()
        })
        .await?
        .into_inner()
        .receipts;
    assert_eq!(receipt_ids(&listed), ["token-parked"]);
    assert_eq!(listed[0].id, p.id);
    let detail = client
        .get_receipt(pb::GetReceiptRequest {
            lookup: Some(pb::get_receipt_request::Lookup::Id(p.id.clone())),
        })
        .await?
        .into_inner();
    assert!(detail.ledger_entries.is_empty(), "nothing booked yet");
    assert_eq!(detail.transfers.len(), 1, "its transfers are stored");
    assert_eq!(
        detail.parked.as_ref().map(|d| d.id.as_str()),
        Some(p.id.as_str())
    );

    // Retried while the data is still broken: still parked, with the reason.
    let retry = |ids: Vec<String>, all: bool| pb::RetryParkedReceiptsRequest { ids, all };
    let outcomes = client
        .retry_parked_receipts(retry(vec![p.id.clone()], false))
        .await?
        .into_inner()
        .outcomes;
    assert_eq!(outcomes.len(), 1);
    assert_eq!(outcomes[0].id, p.id);
    assert_eq!(outcomes[0].result, pb::RetryResult::StillParked as i32);
    assert!(!outcomes[0].reason.is_empty());
    // An id that names no parked receipt is refused before anything is retried.
    let status = client
        .retry_parked_receipts(retry(
            vec![
                p.id.clone(),
                "0190e4d2-7b1c-7000-8000-000000000000".to_owned(),
            ],
            false,
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    let after = client
        .list_parked_receipts(pb::ListParkedReceiptsRequest::default())
        .await?
        .into_inner()
        .parked_receipts;
    assert_eq!(after[0].attempts, 1, "one retry, not two");

    // The operator repairs the row; the retry books the receipt.
    execute(
        &app,
        &format!(
            "UPDATE installment SET state = 'unpaid' WHERE notice_number = '{}'",
            notice.notice_number
        ),
    )
    .await?;
    let outcomes = client
        .retry_parked_receipts(retry(vec![], true))
        .await?
        .into_inner()
        .outcomes;
    assert_eq!(outcomes.len(), 1);
    assert_eq!(outcomes[0].result, pb::RetryResult::Booked as i32);
    assert_eq!(
        outcomes[0].classification,
        pb::ReceiptClassification::Settled as i32
    );
    let again = client
        .retry_parked_receipts(retry(vec![p.id.clone()], false))
        .await?
        .into_inner()
        .outcomes;
    assert_eq!(again[0].result, pb::RetryResult::NotParked as i32);

    // Booked once: one entry in the books, shown on the receipt, the notice paid.
    let books = app
        .ledger()
        .await?
        .list_entries(pb::ListEntriesRequest {
            receipt_id: "token-parked".to_owned(),
            ..Default::default()
        })
        .await?
        .into_inner()
        .entries;
    assert_eq!(books.len(), 1);
    assert_eq!(books[0].event_type, "receipt_paid");
    let detail = client
        .get_receipt(pb::GetReceiptRequest {
            lookup: Some(pb::get_receipt_request::Lookup::Id(p.id.clone())),
        })
        .await?
        .into_inner();
    assert_eq!(
        detail.receipt.as_ref().map(|r| r.classification),
        Some(pb::ReceiptClassification::Settled as i32)
    );
    assert_eq!(detail.ledger_entries, books);
    let parked_state = detail.parked.unwrap();
    assert!(parked_state.booked_at.is_some());
    assert!(parked_state.next_attempt_at.is_none());
    assert_eq!(parked_state.attempts, 2);
    assert!(
        client
            .list_parked_receipts(pb::ListParkedReceiptsRequest::default())
            .await?
            .into_inner()
            .parked_receipts
            .is_empty()
    );
    let history = client
        .list_parked_receipts(pb::ListParkedReceiptsRequest {
            include_booked: true,
            ..Default::default()
        })
        .await?
        .into_inner()
        .parked_receipts;
    assert_eq!(history.len(), 1);
    let position = notices
        .get_debt_position(pb::GetDebtPositionRequest {
            lookup: Some(pb::get_debt_position_request::Lookup::Id(fee.id.clone())),
            creditor_fiscal_code: String::new(),
        })
        .await?
        .into_inner();
    assert_eq!(position.state, pb::DebtPositionState::Paid as i32);
    assert!(
        app.ledger()
            .await?
            .verify_ledger(pb::VerifyLedgerRequest::default())
            .await?
            .into_inner()
            .ok
    );
    app.stop().await
}

async fn parked_receipts_are_paged_in_arrival_order(engine: Engine) -> anyhow::Result<()> {
    let app = TestApp::spawn_with(engine, |settings| {
        settings.parked_retry_interval = std::time::Duration::from_secs(3600);
    })
    .await?;
    let mut notices = app.notices().await?;
    let mut sent = Vec::new();
    for n in 0..3 {
        let fee = notices
            .create_debt_position(requests::school_fee(&format!("rs-paged-{n}")))
            .await?
            .into_inner();
        let notice = fee.payment_options[0].installments[0].clone();
        let broken = execute(
            &app,
            &format!(
                "UPDATE installment SET state = 'bogus' WHERE notice_number = '{}'",
                notice.notice_number
            ),
        )
        .await?;
        assert_eq!(broken, 1);
        let receipt_id = format!("token-paged-{n}");
        send(
            &app,
            true,
            &receipt_for(&notice, &receipt_id, "BCITITMM", "2026-11-20T10:15:00"),
        )
        .await?;
        sent.push(receipt_id);
    }
    let mut client = app.receipts().await?;
    let page = |token: &str| pb::ListParkedReceiptsRequest {
        page_size: 2,
        page_token: token.to_owned(),
        ..Default::default()
    };
    let first = client.list_parked_receipts(page("")).await?.into_inner();
    assert_eq!(first.parked_receipts.len(), 2);
    assert!(!first.next_page_token.is_empty());
    let second = client
        .list_parked_receipts(page(&first.next_page_token))
        .await?
        .into_inner();
    assert!(second.next_page_token.is_empty());
    let listed: Vec<String> = first
        .parked_receipts
        .iter()
        .chain(&second.parked_receipts)
        .filter_map(|p| p.key.as_ref().map(|k| k.receipt_id.clone()))
        .collect();
    assert_eq!(listed, sent);
    // A token of the list without booked receipts does not page the one with them.
    let status = client
        .list_parked_receipts(pb::ListParkedReceiptsRequest {
            include_booked: true,
            page_size: 2,
            page_token: first.next_page_token.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(violations(&status), ["page_token"]);
    let status = client
        .list_parked_receipts(pb::ListParkedReceiptsRequest {
            page_size: 5000,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(violations(&status), ["page_size"]);
    app.stop().await
}

async fn the_service_reports_its_health_and_is_reflected(engine: Engine) -> anyhow::Result<()> {
    let app = TestApp::spawn(engine).await?;
    let (serving, names) = app
        .health_and_reflection("incasso.v1.ReceiptService")
        .await?;
    assert!(serving);
    assert!(
        names.iter().any(|n| n == "incasso.v1.ReceiptService"),
        "{names:?}"
    );
    app.stop().await
}
