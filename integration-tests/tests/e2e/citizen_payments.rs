//! CitizenPaymentsService as the Fascicolo del Cittadino uses it: one citizen's notices
//! (pending, paid, all, by kind, paged) with today's amount of a fine and the receipt of a
//! payment delivered over SOAP; a receipt by receiptId or by notice number, never another
//! citizen's; an invalid fiscal code refused naming the field without repeating it.

use std::collections::{BTreeSet, HashMap};

use time::{Duration, OffsetDateTime};
use tonic::Code;
use tonic_types::StatusExt;

use incasso_grpc::pb;
use incasso_integration_tests::node_simulator::{self as node, ReceiptSpec};
use incasso_integration_tests::requests;
use incasso_integration_tests::{Engine, TestApp};

use crate::on_both_engines;

on_both_engines!(
    a_citizen_sees_their_notices_with_todays_amount_and_their_receipts,
    a_receipt_is_found_by_receipt_id_or_notice_only_for_its_citizen,
    an_invalid_fiscal_code_is_refused_naming_the_field_without_echoing_it,
    the_service_reports_its_health_and_is_reflected,
);

const MARIO: &str = "RSSMRA80A01F205X";
const LAURA: &str = "BNCLRA85M41F205C";

fn for_citizen(
    mut request: pb::CreateDebtPositionRequest,
    fiscal_code: &str,
) -> pb::CreateDebtPositionRequest {
    if let Some(debtor) = request.debtor.as_mut() {
        debtor.fiscal_code = fiscal_code.to_owned();
    }
    request
}

/// A fine for `fiscal_code` notified `days_ago` days before today (Europe/Rome).
fn fine_notified(
    request_id: &str,
    fiscal_code: &str,
    days_ago: i64,
) -> pb::CreateDebtPositionRequest {
    let today = incasso_domain::rome_time::rome_date(OffsetDateTime::now_utc());
    let mut request = for_citizen(requests::fine(request_id), fiscal_code);
    if let Some(pb::create_debt_position_request::Details::TrafficFine(fine)) =
        request.details.as_mut()
    {
        fine.notification_date = (today - Duration::days(days_ago)).to_string();
        fine.violation_date = (today - Duration::days(days_ago + 3)).to_string();
    }
    request
}

async fn pay(app: &TestApp, installment: &pb::Installment, receipt_id: &str) -> anyhow::Result<()> {
    let spec = ReceiptSpec::paying(installment, receipt_id, "BCITITMM", "2026-11-20T10:15:00");
    node::deliver_receipt(app.soap_addr, &spec).await
}

async fn list_all(
    app: &TestApp,
    fiscal_code: &str,
    filter: pb::CitizenNoticeFilter,
    kind: pb::DebtKind,
    page_size: i32,
) -> anyhow::Result<Vec<pb::CitizenNotice>> {
    let mut client = app.citizen_payments().await?;
    let mut notices = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = client
            .list_citizen_notices(pb::ListCitizenNoticesRequest {
                fiscal_code: fiscal_code.to_owned(),
                filter: filter as i32,
                kind: kind as i32,
                page_size,
                page_token,
            })
            .await?
            .into_inner();
        assert!(page.notices.len() <= usize::try_from(page_size.max(1)).unwrap_or(1000));
        notices.extend(page.notices);
        if page.next_page_token.is_empty() {
            return Ok(notices);
        }
        page_token = page.next_page_token;
    }
}

fn numbers(notices: &[pb::CitizenNotice]) -> BTreeSet<String> {
    notices.iter().map(|n| n.notice_number.clone()).collect()
}

fn notice_numbers(position: &pb::DebtPosition) -> Vec<String> {
    position
        .payment_options
        .iter()
        .flat_map(|o| o.installments.iter().map(|i| i.notice_number.clone()))
        .collect()
}

struct Issued {
    tari: pb::DebtPosition,
    fee: pb::DebtPosition,
    fine: pb::DebtPosition,
    cancelled: pb::DebtPosition,
    expired: pb::DebtPosition,
    lauras: pb::DebtPosition,
}

/// Mario: a TARI (rata unica and three rates, the first rate paid), a school fee, a fine
/// notified 20 days ago, a cancelled school fee and one past its expiry date. Laura: a TARI
/// of her own.
async fn issue(app: &TestApp) -> anyhow::Result<Issued> {
    let mut notices = app.notices().await?;
    let tari = notices
        .create_debt_position(requests::tari("cit-tari"))
        .await?
        .into_inner();
    let fee = notices
        .create_debt_position(requests::school_fee("cit-fee"))
        .await?
        .into_inner();
    let fine = notices
        .create_debt_position(fine_notified("cit-fine", MARIO, 20))
        .await?
        .into_inner();
    let cancelled = notices
        .create_debt_position(requests::school_fee("cit-cancelled"))
        .await?
        .into_inner();
    let cancelled = notices
        .cancel_debt_position(pb::CancelDebtPositionRequest {
            request_id: "cit-cancel".to_owned(),
            id: cancelled.id,
            reason: "iscrizione ritirata".to_owned(),
        })
        .await?
        .into_inner();
    let mut expired = requests::school_fee("cit-expired");
    expired.payment_options[0].installments[0].due_date = "2026-10-15".to_owned();
    expired.payment_options[0].installments[0].expiry_date = "2026-10-31".to_owned();
    let expired = notices.create_debt_position(expired).await?.into_inner();
    let lauras = notices
        .create_debt_position(for_citizen(requests::tari("cit-laura"), LAURA))
        .await?
        .into_inner();
    pay(
        app,
        &tari.payment_options[1].installments[0],
        "cit-receipt-0001",
    )
    .await?;
    Ok(Issued {
        tari,
        fee,
        fine,
        cancelled,
        expired,
        lauras,
    })
}

async fn a_citizen_sees_their_notices_with_todays_amount_and_their_receipts(
    engine: Engine,
) -> anyhow::Result<()> {
    let app = TestApp::spawn(engine).await?;
    let issued = issue(&app).await?;
    let rata_unica = &issued.tari.payment_options[0].installments[0];
    let rates = &issued.tari.payment_options[1].installments;
    let fee = &issued.fee.payment_options[0].installments[0];
    let fine = &issued.fine.payment_options[0].installments[0];

    // Everything of Mario's, nothing of Laura's, paged two at a time without repeats.
    let all = list_all(
        &app,
        MARIO,
        pb::CitizenNoticeFilter::All,
        pb::DebtKind::Unspecified,
        2,
    )
    .await?;
    let mut expected: BTreeSet<String> = BTreeSet::new();
    for position in [
        &issued.tari,
        &issued.fee,
        &issued.fine,
        &issued.cancelled,
        &issued.expired,
    ] {
        expected.extend(notice_numbers(position));
    }
    assert_eq!(all.len(), 8, "no notice twice");
    assert_eq!(numbers(&all), expected);
    for number in notice_numbers(&issued.lauras) {
        assert!(
            !numbers(&all).contains(&number),
            "Laura's notice listed for Mario"
        );
    }
    let by_number: HashMap<&str, &pb::CitizenNotice> =
        all.iter().map(|n| (n.notice_number.as_str(), n)).collect();
    let state = |number: &str| by_number[number].state;
    assert_eq!(
        state(&rates[0].notice_number),
        pb::InstallmentState::Paid as i32
    );
    assert_eq!(
        state(&rata_unica.notice_number),
        pb::InstallmentState::Unpayable as i32
    );
    let cancelled_number = &issued.cancelled.payment_options[0].installments[0].notice_number;
    assert_eq!(
        state(cancelled_number),
        pb::InstallmentState::Cancelled as i32
    );
    assert_eq!(
        by_number[cancelled_number.as_str()].amount_payable_today_cents,
        0
    );
    let expired_number = &issued.expired.payment_options[0].installments[0].notice_number;
    assert_eq!(state(expired_number), pb::InstallmentState::Expired as i32);
    assert_eq!(
        by_number[expired_number.as_str()].amount_payable_today_cents,
        0
    );
    assert_eq!(by_number[expired_number.as_str()].expiry_date, "2026-10-31");

    // A rate shows where it stands in its plan.
    let second = by_number[rates[1].notice_number.as_str()];
    assert_eq!(second.payment_option_label, "Tre rate");
    assert_eq!((second.installment_index, second.installment_count), (2, 3));
    assert_eq!(second.amount_cents, 10000);
    assert_eq!(second.amount_payable_today_cents, 10000);
    assert_eq!(second.due_date, "2026-09-30");
    assert_eq!(second.creditor_name, "Comune di Milano");
    assert_eq!(second.kind, pb::DebtKind::Tari as i32);
    assert_eq!(
        second.qr_code,
        format!("PAGOPA|002|{}|01199250158|10000", rates[1].notice_number)
    );
    assert!(second.receipt.is_none());

    // Pending: what can be paid today.
    let pending = list_all(
        &app,
        MARIO,
        pb::CitizenNoticeFilter::Pending,
        pb::DebtKind::Unspecified,
        50,
    )
    .await?;
    assert_eq!(
        numbers(&pending),
        BTreeSet::from([
            rates[1].notice_number.clone(),
            rates[2].notice_number.clone(),
            fee.notice_number.clone(),
            fine.notice_number.clone(),
        ])
    );

    // The fine notified 20 days ago is in its full band: 42.00 + 12.60 costs today, while
    // the notice printed the reduced 29.40 + 12.60.
    let fines = list_all(
        &app,
        MARIO,
        pb::CitizenNoticeFilter::All,
        pb::DebtKind::TrafficFine,
        50,
    )
    .await?;
    assert_eq!(fines.len(), 1);
    assert_eq!(fines[0].amount_cents, 4200);
    assert_eq!(fines[0].amount_payable_today_cents, 5460);
    assert_eq!(fines[0].fine_band, pb::FineBand::Full as i32);
    assert_eq!(
        fines[0].qr_code,
        format!("PAGOPA|002|{}|01199250158|5460", fine.notice_number)
    );

    // Paid: the rate with the receipt that paid it.
    let paid = list_all(
        &app,
        MARIO,
        pb::CitizenNoticeFilter::Paid,
        pb::DebtKind::Unspecified,
        50,
    )
    .await?;
    assert_eq!(
        numbers(&paid),
        BTreeSet::from([rates[0].notice_number.clone()])
    );
    let receipt = paid[0]
        .receipt
        .as_ref()
        .expect("a paid notice has its receipt");
    assert_eq!(receipt.receipt_id, "cit-receipt-0001");
    assert_eq!(receipt.amount_cents, 10000);
    assert_eq!(receipt.psp_id, "BCITITMM");
    assert_eq!(receipt.notice_number, rates[0].notice_number);
    assert_eq!(
        receipt.paid_at.as_ref().map(|t| t.seconds),
        Some(time::macros::datetime!(2026-11-20 10:15:00 +01:00).unix_timestamp())
    );
    assert_eq!(paid[0].amount_payable_today_cents, 0);

    // A page token belongs to its query.
    let mut client = app.citizen_payments().await?;
    let first = client
        .list_citizen_notices(pb::ListCitizenNoticesRequest {
            fiscal_code: MARIO.to_owned(),
            page_size: 1,
            ..Default::default()
        })
        .await?
        .into_inner();
    assert!(!first.next_page_token.is_empty());
    for (fiscal_code, filter) in [
        (MARIO, pb::CitizenNoticeFilter::Pending),
        (LAURA, pb::CitizenNoticeFilter::All),
    ] {
        let status = client
            .list_citizen_notices(pb::ListCitizenNoticesRequest {
                fiscal_code: fiscal_code.to_owned(),
                filter: filter as i32,
                page_size: 1,
                page_token: first.next_page_token.clone(),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(violations(&status), ["page_token"]);
    }
    app.stop().await
}

async fn a_receipt_is_found_by_receipt_id_or_notice_only_for_its_citizen(
    engine: Engine,
) -> anyhow::Result<()> {
    let app = TestApp::spawn(engine).await?;
    let issued = issue(&app).await?;
    let paid = &issued.tari.payment_options[1].installments[0];
    let mut client = app.citizen_payments().await?;
    let get = |fiscal_code: &str, lookup: pb::get_citizen_receipt_request::Lookup| {
        pb::GetCitizenReceiptRequest {
            fiscal_code: fiscal_code.to_owned(),
            lookup: Some(lookup),
        }
    };
    use pb::get_citizen_receipt_request::Lookup;
    for lookup in [
        Lookup::ReceiptId("cit-receipt-0001".to_owned()),
        Lookup::NoticeNumber(paid.notice_number.clone()),
        Lookup::NoticeNumber(paid.printed_notice_number.clone()),
    ] {
        let receipt = client
            .get_citizen_receipt(get(MARIO, lookup))
            .await?
            .into_inner()
            .receipt
            .expect("a receipt");
        assert_eq!(receipt.receipt_id, "cit-receipt-0001");
        assert_eq!(receipt.notice_number, paid.notice_number);
        assert_eq!(receipt.iuv, paid.iuv);
        assert_eq!(receipt.creditor_fiscal_code, requests::MILANO);
        assert_eq!(receipt.amount_cents, 10000);
    }
    // Laura cannot read Mario's receipt; an unpaid notice has none.
    for request in [
        get(LAURA, Lookup::ReceiptId("cit-receipt-0001".to_owned())),
        get(LAURA, Lookup::NoticeNumber(paid.notice_number.clone())),
        get(
            MARIO,
            Lookup::NoticeNumber(
                issued.fee.payment_options[0].installments[0]
                    .notice_number
                    .clone(),
            ),
        ),
        get(MARIO, Lookup::ReceiptId("cit-receipt-9999".to_owned())),
    ] {
        let status = client.get_citizen_receipt(request).await.unwrap_err();
        assert_eq!(status.code(), Code::NotFound, "{status:?}");
        assert!(!status.message().contains(LAURA) && !status.message().contains(MARIO));
    }
    app.stop().await
}

fn violations(status: &tonic::Status) -> Vec<String> {
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    status
        .get_error_details()
        .bad_request()
        .map(|b| b.field_violations.iter().map(|v| v.field.clone()).collect())
        .unwrap_or_default()
}

async fn an_invalid_fiscal_code_is_refused_naming_the_field_without_echoing_it(
    engine: Engine,
) -> anyhow::Result<()> {
    let app = TestApp::spawn(engine).await?;
    let mut client = app.citizen_payments().await?;
    // A wrong check character, a wrong length, and nothing at all.
    for code in ["RSSMRA80A01F205Y", "RSSMRA80A01F205", ""] {
        let status = client
            .list_citizen_notices(pb::ListCitizenNoticesRequest {
                fiscal_code: code.to_owned(),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(violations(&status), ["fiscal_code"]);
        assert!(
            status.message().contains("fiscalCode"),
            "{}",
            status.message()
        );
        let details = format!("{:?}", status.get_error_details());
        if !code.is_empty() {
            assert!(!status.message().contains(code), "{}", status.message());
            assert!(!details.contains(code), "{details}");
        }
        let status = client
            .get_citizen_receipt(pb::GetCitizenReceiptRequest {
                fiscal_code: code.to_owned(),
                lookup: Some(pb::get_citizen_receipt_request::Lookup::ReceiptId(
                    "cit-receipt-0001".to_owned(),
                )),
            })
            .await
            .unwrap_err();
        assert_eq!(violations(&status), ["fiscal_code"]);
        if !code.is_empty() {
            assert!(!status.message().contains(code), "{}", status.message());
        }
    }
    // The other fields are named too.
    let cases: Vec<(pb::ListCitizenNoticesRequest, &str)> = vec![
        (
            pb::ListCitizenNoticesRequest {
                fiscal_code: MARIO.to_owned(),
                filter: 9,
                ..Default::default()
            },
            "filter",
        ),
        (
            pb::ListCitizenNoticesRequest {
                fiscal_code: MARIO.to_owned(),
                kind: 9,
                ..Default::default()
            },
            "kind",
        ),
        (
            pb::ListCitizenNoticesRequest {
                fiscal_code: MARIO.to_owned(),
                page_size: 1001,
                ..Default::default()
            },
            "page_size",
        ),
        (
            pb::ListCitizenNoticesRequest {
                fiscal_code: MARIO.to_owned(),
                page_token: "not-a-token".to_owned(),
                ..Default::default()
            },
            "page_token",
        ),
    ];
    for (request, field) in cases {
        let status = client.list_citizen_notices(request).await.unwrap_err();
        assert_eq!(violations(&status), [field]);
    }
    let status = client
        .get_citizen_receipt(pb::GetCitizenReceiptRequest {
            fiscal_code: MARIO.to_owned(),
            lookup: Some(pb::get_citizen_receipt_request::Lookup::NoticeNumber(
                "12345".to_owned(),
            )),
        })
        .await
        .unwrap_err();
    assert_eq!(violations(&status), ["notice_number"]);
    let status = client
        .get_citizen_receipt(pb::GetCitizenReceiptRequest {
            fiscal_code: MARIO.to_owned(),
            lookup: None,
        })
        .await
        .unwrap_err();
    assert_eq!(violations(&status), ["receipt_id"]);
    app.stop().await
}

async fn the_service_reports_its_health_and_is_reflected(engine: Engine) -> anyhow::Result<()> {
    let app = TestApp::spawn(engine).await?;
    let (serving, names) = app
        .health_and_reflection("incasso.v1.CitizenPaymentsService")
        .await?;
    assert!(serving);
    assert!(
        names
            .iter()
            .any(|n| n == "incasso.v1.CitizenPaymentsService"),
        "{names:?}"
    );
    app.stop().await
}
