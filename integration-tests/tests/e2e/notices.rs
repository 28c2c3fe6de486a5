//! The NoticeService, one call at a time, as a municipal back end uses it.

use std::collections::HashSet;

use tonic::Code;
use tonic_types::StatusExt;

use incasso_grpc::pb;
use incasso_integration_tests::requests::{self, CITTA_METROPOLITANA, MILANO};
use incasso_integration_tests::{Engine, TestApp};

use crate::on_both_engines;

on_both_engines!(
    create_returns_a_notice_for_every_installment,
    a_retried_create_returns_the_same_position,
    bad_requests_name_the_field_and_store_nothing,
    read_list_update_cancel,
    payable_amount_of_a_fine_follows_the_calendar,
);

fn all_installments(position: &pb::DebtPosition) -> Vec<&pb::Installment> {
    position
        .payment_options
        .iter()
        .flat_map(|o| o.installments.iter())
        .collect()
}

async fn create_returns_a_notice_for_every_installment(engine: Engine) -> anyhow::Result<()> {
    let app = TestApp::spawn(engine).await?;
    let mut client = app.notices().await?;
    let position = client
        .create_debt_position(requests::tari("tari-2026-UT000123"))
        .await?
        .into_inner();
    assert!(uuid::Uuid::parse_str(&position.id).is_ok());
    assert_eq!(position.state, pb::DebtPositionState::Valid as i32);
    assert_eq!(position.payment_options[0].label, "Rata unica");
    assert_eq!(position.payment_options[1].label, "Tre rate");
    let installments = all_installments(&position);
    assert_eq!(installments.len(), 4);
    let mut navs = HashSet::new();
    for (installment, (amount, due)) in installments.iter().zip([
        (30000, "2026-07-31"),
        (10000, "2026-07-31"),
        (10000, "2026-09-30"),
        (10000, "2026-11-30"),
    ]) {
        assert_eq!(installment.amount_cents, amount);
        assert_eq!(installment.due_date, due);
        let nav = &installment.notice_number;
        assert_eq!(nav.len(), 18);
        assert!(nav.starts_with('3'));
        let body: u64 = nav[..16].parse()?;
        assert_eq!(
            nav[16..].parse::<u64>()?,
            body % 93,
            "mod-93 check digits of {nav}"
        );
        assert_eq!(installment.iuv, nav[1..]);
        assert_eq!(
            installment.qr_code,
            format!("PAGOPA|002|{nav}|{MILANO}|{amount}")
        );
        let printed: String = installment.printed_notice_number.split(' ').collect();
        assert_eq!(&printed, nav);
        assert_eq!(installment.transfers.len(), 2);
        assert_eq!(
            installment.transfers[1].beneficiary_fiscal_code,
            CITTA_METROPOLITANA
        );
        assert!(
            !installment.transfers[0].iban.is_empty(),
            "registered IBAN filled in"
        );
        assert!(navs.insert(nav.clone()));
    }
    let fee = client
        .create_debt_position(requests::school_fee("rette-2026-11-ALU7781"))
        .await?
        .into_inner();
    let only = all_installments(&fee)[0];
    assert_eq!(only.amount_cents, 46500);
    assert_eq!(only.transfers.len(), 1, "the whole amount to the creditor");
    assert_eq!(only.transfers[0].beneficiary_fiscal_code, MILANO);
    assert_eq!(only.transfers[0].amount_cents, 46500);
    assert_eq!(only.transfers[0].taxonomy_code, "9/0107106SP/");
    assert!(!navs.contains(&only.notice_number));
    app.stop().await
}

async fn a_retried_create_returns_the_same_position(engine: Engine) -> anyhow::Result<()> {
    let app = TestApp::spawn(engine).await?;
    let mut client = app.notices().await?;
    let first = client
        .create_debt_position(requests::fine("cds-V123456-2026"))
        .await?;
    assert!(first.metadata().get("incasso-replayed").is_none());
    let again = client
        .create_debt_position(requests::fine("cds-V123456-2026"))
        .await?;
    assert_eq!(
        again
            .metadata()
            .get("incasso-replayed")
            .map(|v| v.to_str().unwrap()),
        Some("true")
    );
    assert_eq!(again.get_ref(), first.get_ref());
    let mut changed = requests::fine("cds-V123456-2026");
    changed.description = "Verbale V999999/2026".to_owned();
    let status = client.create_debt_position(changed).await.unwrap_err();
    assert_eq!(status.code(), Code::AlreadyExists);
    assert!(
        status.message().contains("cds-V123456-2026"),
        "{}",
        status.message()
    );
    app.stop().await
}

async fn bad_requests_name_the_field_and_store_nothing(engine: Engine) -> anyhow::Result<()> {
    let app = TestApp::spawn(engine).await?;
    let mut client = app.notices().await?;
    let mut wrong_check = requests::tari("bad-cf");
    wrong_check.debtor.as_mut().unwrap().fiscal_code = "RSSMRA80A01F205Y".to_owned();
    let mut wrong_sum = requests::tari("bad-sum");
    wrong_sum.payment_options[1].installments[0].transfers[0].amount_cents = 9000;
    let mut six = requests::tari("bad-six");
    let share = six.payment_options[0].installments[0].transfers[0].clone();
    six.payment_options[0].installments[0].amount_cents = 6 * 5000;
    six.payment_options[0].installments[0].transfers = vec![
        pb::Transfer {
            amount_cents: 5000,
            ..share
        };
        6
    ];
    let mut zero = requests::school_fee("bad-zero");
    zero.payment_options[0].installments[0].amount_cents = 0;
    let mut negative = requests::school_fee("bad-negative");
    negative.payment_options[0].installments[0].amount_cents = -1;
    let mut long = requests::tari("bad-long");
    long.payment_options[0].installments[0].transfers[0].remittance_information = "a".repeat(141);
    let mut unknown = requests::tari("bad-creditor");
    unknown.creditor_fiscal_code = "80012345678".to_owned();
    let mut not_a_date = requests::tari("bad-date");
    not_a_date.payment_options[0].installments[0].due_date = "31/07/2026".to_owned();

    let cases = [
        (wrong_check, "debtor.fiscal_code"),
        (wrong_sum, "payment_options[1].installments[0].transfers"),
        (six, "payment_options[0].installments[0].transfers"),
        (zero, "payment_options[0].installments[0].amount_cents"),
        (negative, "payment_options[0].installments[0].amount_cents"),
        (
            long,
            "payment_options[0].installments[0].transfers[0].remittance_information",
        ),
        (unknown, "creditor_fiscal_code"),
        (not_a_date, "payment_options[0].installments[0].due_date"),
    ];
    for (request, field) in cases {
        let request_id = request.request_id.clone();
        let status = client.create_debt_position(request).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{request_id}");
        let details = status.get_error_details();
        let bad_request = details.bad_request().expect("a google.rpc.BadRequest");
        let fields: Vec<_> = bad_request
            .field_violations
            .iter()
            .map(|v| v.field.as_str())
            .collect();
        assert!(fields.contains(&field), "{request_id}: {fields:?}");
        assert!(status.message().contains(field), "{}", status.message());
    }
    let page = client
        .list_debt_positions(pb::ListDebtPositionsRequest::default())
        .await?
        .into_inner();
    assert!(page.debt_positions.is_empty(), "nothing stored");
    app.stop().await
}

async fn read_list_update_cancel(engine: Engine) -> anyhow::Result<()> {
    let app = TestApp::spawn(engine).await?;
    let mut client = app.notices().await?;
    let tari = client
        .create_debt_position(requests::tari("tari-flow"))
        .await?
        .into_inner();
    let fee = client
        .create_debt_position(requests::school_fee("fee-flow"))
        .await?
        .into_inner();
    client
        .create_debt_position(requests::fine("fine-flow"))
        .await?;

    let by_id = client
        .get_debt_position(pb::GetDebtPositionRequest {
            lookup: Some(pb::get_debt_position_request::Lookup::Id(tari.id.clone())),
            creditor_fiscal_code: String::new(),
        })
        .await?
        .into_inner();
    assert_eq!(by_id, tari);
    let third_rate = &tari.payment_options[1].installments[2];
    let by_nav = client
        .get_debt_position(pb::GetDebtPositionRequest {
            lookup: Some(pb::get_debt_position_request::Lookup::NoticeNumber(
                third_rate.printed_notice_number.clone(),
            )),
            creditor_fiscal_code: String::new(),
        })
        .await?
        .into_inner();
    assert_eq!(by_nav.id, tari.id);

    let rossi = client
        .list_debt_positions(pb::ListDebtPositionsRequest {
            debtor_fiscal_code: "RSSMRA80A01F205X".to_owned(),
            page_size: 1,
            ..Default::default()
        })
        .await?
        .into_inner();
    assert_eq!(rossi.debt_positions.len(), 1);
    assert_eq!(rossi.debt_positions[0].id, fee.id, "newest first");
    let next = client
        .list_debt_positions(pb::ListDebtPositionsRequest {
            debtor_fiscal_code: "RSSMRA80A01F205X".to_owned(),
            page_size: 1,
            page_token: rossi.next_page_token.clone(),
            ..Default::default()
        })
        .await?
        .into_inner();
    assert_eq!(next.debt_positions[0].id, tari.id);
    assert!(next.next_page_token.is_empty());
    let misuse = client
        .list_debt_positions(pb::ListDebtPositionsRequest {
            kind: pb::DebtKind::TrafficFine as i32,
            page_token: rossi.next_page_token,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(misuse.code(), Code::InvalidArgument);

    let updated = client
        .update_debt_position(pb::UpdateDebtPositionRequest {
            request_id: "tari-flow-saldo".to_owned(),
            id: tari.id.clone(),
            installments: vec![pb::InstallmentUpdate {
                notice_number: third_rate.notice_number.clone(),
                due_date: Some("2026-12-16".to_owned()),
                ..Default::default()
            }],
            ..Default::default()
        })
        .await?
        .into_inner();
    let moved = &updated.payment_options[1].installments[2];
    assert_eq!(moved.notice_number, third_rate.notice_number);
    assert_eq!(moved.due_date, "2026-12-16");
    assert_eq!(updated.version, tari.version + 1);

    let cancelled = client
        .cancel_debt_position(pb::CancelDebtPositionRequest {
            request_id: "fee-flow-cancel".to_owned(),
            id: fee.id.clone(),
            reason: "ritiro dal servizio".to_owned(),
        })
        .await?
        .into_inner();
    assert_eq!(cancelled.state, pb::DebtPositionState::Cancelled as i32);
    assert!(
        all_installments(&cancelled)
            .iter()
            .all(|i| i.state == pb::InstallmentState::Cancelled as i32)
    );
    let refused = client
        .update_debt_position(pb::UpdateDebtPositionRequest {
            request_id: "fee-flow-late".to_owned(),
            id: fee.id.clone(),
            description: Some("Retta nido dicembre".to_owned()),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);
    let missing = client
        .get_debt_position(pb::GetDebtPositionRequest {
            lookup: Some(pb::get_debt_position_request::Lookup::Id(
                uuid::Uuid::now_v7().to_string(),
            )),
            creditor_fiscal_code: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    app.stop().await
}

async fn payable_amount_of_a_fine_follows_the_calendar(engine: Engine) -> anyhow::Result<()> {
    let app = TestApp::spawn(engine).await?;
    let mut client = app.notices().await?;
    let fine = client
        .create_debt_position(requests::fine("cds-cal"))
        .await?
        .into_inner();
    let notice = all_installments(&fine)[0].notice_number.clone();
    for (date, cents, band) in [
        ("2026-11-12", 4200, pb::FineBand::Reduced),
        ("2026-12-01", 5460, pb::FineBand::Full),
        ("2027-02-01", 9660, pb::FineBand::Increased),
    ] {
        let amount = client
            .get_payable_amount(pb::GetPayableAmountRequest {
                notice_number: notice.clone(),
                date: date.to_owned(),
                creditor_fiscal_code: String::new(),
            })
            .await?
            .into_inner();
        assert_eq!(amount.amount_cents, cents, "{date}");
        assert_eq!(amount.fine_band, band as i32, "{date}");
        assert!(amount.payable);
    }
    app.stop().await
}
