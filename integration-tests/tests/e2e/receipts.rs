//! Receipts as the Node delivers them: whole payments, redeliveries, double payments,
//! conflicts, unknown and cancelled notices, and concurrent deliveries.

use sea_orm::{ConnectionTrait, Statement};

use incasso_grpc::pb;
use incasso_integration_tests::node_simulator::{
    self as node, Caller, ReceiptSpec, element_text, post, validate,
};
use incasso_integration_tests::node_simulator::{CM_BANK, MILANO_BANK};
use incasso_integration_tests::requests::{self, CITTA_METROPOLITANA, MILANO};
use incasso_integration_tests::{Engine, TestApp};
use incasso_node::service::StationConfig;

use crate::on_both_engines;

on_both_engines!(
    a_whole_payment_closes_the_notice_and_books_it_once,
    double_payments_conflicts_and_strangers_are_kept_and_acknowledged,
    concurrent_deliveries_book_exactly_once,
    late_stand_in_foreign_and_other_amount_receipts_are_flagged,
    every_field_of_a_receipt_counts_for_a_conflict_and_formatting_does_not,
    a_receipt_is_found_in_the_books_by_its_receipt_id_however_long,
);

const XML: &str = "text/xml; charset=utf-8";

async fn send(app: &TestApp, v2: bool, spec: &ReceiptSpec) -> anyhow::Result<String> {
    let request = node::send_rt(&Caller::default(), v2, spec);
    validate(&request)?;
    let action = if v2 { "paSendRTV2" } else { "paSendRT" };
    let reply = post(app.soap_addr, Some(action), XML, request.as_bytes()).await?;
    assert_eq!(reply.status, 200, "{}", reply.body);
    validate(&reply.body)?;
    Ok(reply.body)
}

fn tari_receipt(installment: &pb::Installment, receipt_id: &str, psp: &str) -> ReceiptSpec {
    ReceiptSpec::paying(installment, receipt_id, psp, "2026-11-20T10:15:00")
}

async fn count(app: &TestApp, sql: &str) -> anyhow::Result<i64> {
    app.query_i64(sql).await
}

type TransferRow = (i16, String, Option<String>, i64, String, String);

/// The stored transfers of a receipt, in list order.
async fn transfers(app: &TestApp, receipt_id: &str) -> anyhow::Result<Vec<TransferRow>> {
    let db = app.database().await?;
    let rows = db
        .query_all_raw(Statement::from_string(
            db.get_database_backend(),
            format!(
                "SELECT id_transfer, beneficiary_fiscal_code, iban, amount_cents, \
                 remittance_information, transfer_category FROM receipt_transfer \
                 WHERE receipt_id = '{receipt_id}' ORDER BY transfer_index"
            ),
        ))
        .await?;
    let mut out = Vec::new();
    for row in rows {
        out.push((
            row.try_get_by_index(0)?,
            row.try_get_by_index(1)?,
            row.try_get_by_index(2)?,
            row.try_get_by_index(3)?,
            row.try_get_by_index(4)?,
            row.try_get_by_index(5)?,
        ));
    }
    db.close().await?;
    Ok(out)
}

/// A stored receipt's classification, flags and Stand-In column.
async fn stored(app: &TestApp, receipt_id: &str) -> anyhow::Result<(String, String, bool)> {
    let db = app.database().await?;
    let row = db
        .query_one_raw(Statement::from_string(
            db.get_database_backend(),
            format!(
                "SELECT classification, flags, stand_in FROM receipt \
                 WHERE receipt_id = '{receipt_id}'"
            ),
        ))
        .await?
        .ok_or_else(|| anyhow::anyhow!("receipt {receipt_id} not stored"))?;
    let stored = (
        row.try_get_by_index(0)?,
        row.try_get_by_index(1)?,
        row.try_get_by_index(2)?,
    );
    db.close().await?;
    Ok(stored)
}

async fn entries(app: &TestApp, nav: &str) -> anyhow::Result<Vec<pb::LedgerEntry>> {
    Ok(app
        .ledger()
        .await?
        .list_entries(pb::ListEntriesRequest {
            notice_number: nav.to_owned(),
            page_size: 100,
            ..Default::default()
        })
        .await?
        .into_inner()
        .entries)
}

async fn a_whole_payment_closes_the_notice_and_books_it_once(engine: Engine) -> anyhow::Result<()> {
    let app = TestApp::spawn(engine).await?;
    let mut notices = app.notices().await?;
    let tari = notices
        .create_debt_position(requests::tari("rt-tari"))
        .await?
        .into_inner();
    let first_rate = tari.payment_options[1].installments[0].clone();
    let caller = Caller::default();
    // The Node's sequence: verify, activate, receipt, and the receipt again.
    let verify = post(
        app.soap_addr,
        Some("paVerifyPaymentNotice"),
        XML,
        node::verify(&caller, MILANO, &first_rate.notice_number).as_bytes(),
    )
    .await?;
    assert_eq!(element_text(&verify.body, "amount"), Some("100.00"));
    let activate = post(
        app.soap_addr,
        Some("paGetPaymentV2"),
        XML,
        node::get_payment(
            &caller,
            true,
            MILANO,
            &first_rate.notice_number,
            "100.00",
            None,
        )
        .as_bytes(),
    )
    .await?;
    assert_eq!(element_text(&activate.body, "outcome"), Some("OK"));
    let receipt = tari_receipt(&first_rate, "c3e7d4b2a1f04e6d9b8a7c6d5e4f3a2b", "BCITITMM");
    for v2 in [true, true, false] {
        let body = send(&app, v2, &receipt).await?;
        assert_eq!(element_text(&body, "outcome"), Some("OK"), "{body}");
    }
    let position = notices
        .get_debt_position(pb::GetDebtPositionRequest {
            lookup: Some(pb::get_debt_position_request::Lookup::Id(tari.id.clone())),
            creditor_fiscal_code: String::new(),
        })
        .await?
        .into_inner();
    assert_eq!(position.state, pb::DebtPositionState::PartiallyPaid as i32);
    let states: Vec<i32> = position
        .payment_options
        .iter()
        .flat_map(|o| o.installments.iter().map(|i| i.state))
        .collect();
    assert_eq!(
        states,
        [
            pb::InstallmentState::Unpayable as i32,
            pb::InstallmentState::Paid as i32,
            pb::InstallmentState::Unpaid as i32,
            pb::InstallmentState::Unpaid as i32,
        ],
        "paying the first rate closes the single payment"
    );
    // Booked once: the receipt settles the rate (the plan costs what the single payment did,
    // so choosing it moves no money).
    let booked = entries(&app, &first_rate.notice_number).await?;
    let kinds: Vec<&str> = booked.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(kinds, ["notice_issued", "receipt_paid"]);
    let paid = &booked[1];
    assert_eq!(paid.receipt_id, receipt.receipt_id);
    let lines: Vec<(&str, i64)> = paid
        .lines
        .iter()
        .map(|l| (l.account.as_str(), l.amount_cents))
        .collect();
    assert_eq!(
        lines,
        [
            ("receivable:01199250158:tari", -10000),
            ("due_to_beneficiary:01199250158:08911820960", 500),
            ("psp_clearing:01199250158:BCITITMM", 9500),
        ]
    );
    assert_eq!(count(&app, "SELECT COUNT(*) FROM receipt").await?, 1);
    // The transfers are kept as reconciliation matches them to the PSPs' reporting flows:
    // IUV, receiptId (IUR) and idTransfer (indiceDatiSingoloPagamento).
    assert_eq!(
        transfers(&app, &receipt.receipt_id).await?,
        [
            (
                1,
                MILANO.to_owned(),
                Some(MILANO_BANK.to_owned()),
                9500,
                format!("/RFB/{}/95.00", first_rate.iuv),
                "9/0101101IM/".to_owned()
            ),
            (
                2,
                CITTA_METROPOLITANA.to_owned(),
                Some(CM_BANK.to_owned()),
                500,
                format!("/RFB/{}/5.00", first_rate.iuv),
                "9/0101101IM/".to_owned()
            ),
        ]
    );
    let matched = count(
        &app,
        &format!(
            "SELECT COUNT(*) FROM receipt_transfer WHERE iuv = '{}' AND receipt_id = '{}' \
             AND id_transfer = 2",
            first_rate.iuv, receipt.receipt_id
        ),
    )
    .await?;
    assert_eq!(matched, 1, "a reporting-flow line finds its transfer");
    // The notice is now paid, and the single payment cannot be paid any more.
    let body = post(
        app.soap_addr,
        Some("paVerifyPaymentNotice"),
        XML,
        node::verify(&caller, MILANO, &first_rate.notice_number).as_bytes(),
    )
    .await?
    .body;
    validate(&body)?;
    assert_eq!(
        element_text(&body, "faultCode"),
        Some("PAA_PAGAMENTO_DUPLICATO")
    );
    let single = &tari.payment_options[0].installments[0].notice_number;
    let body = post(
        app.soap_addr,
        Some("paVerifyPaymentNotice"),
        XML,
        node::verify(&caller, MILANO, single).as_bytes(),
    )
    .await?
    .body;
    assert_eq!(
        element_text(&body, "faultCode"),
        Some("PAA_PAGAMENTO_DUPLICATO")
    );
    let ledger = app
        .ledger()
        .await?
        .verify_ledger(pb::VerifyLedgerRequest::default())
        .await?
        .into_inner();
    assert!(ledger.ok);
    let outbox = count(
        &app,
        "SELECT COUNT(*) FROM outbox_event WHERE topic = 'aca.position'",
    )
    .await?;
    assert_eq!(
        outbox, 2,
        "created and paid, queued for the Stand-In archive"
    );
    app.stop().await
}

async fn double_payments_conflicts_and_strangers_are_kept_and_acknowledged(
    engine: Engine,
) -> anyhow::Result<()> {
    let app = TestApp::spawn(engine).await?;
    let mut notices = app.notices().await?;
    let fee = notices
        .create_debt_position(requests::school_fee("rt-fee"))
        .await?
        .into_inner();
    let other = notices
        .create_debt_position(requests::school_fee("rt-other"))
        .await?
        .into_inner();
    let notice = fee.payment_options[0].installments[0].clone();
    let cancelled = other.payment_options[0].installments[0].clone();
    notices
        .cancel_debt_position(pb::CancelDebtPositionRequest {
            request_id: "rt-other-cancel".to_owned(),
            id: other.id.clone(),
            reason: "ritiro".to_owned(),
        })
        .await?;
    let first = tari_receipt(&notice, "token-0001", "BCITITMM");
    send(&app, true, &first).await?;
    // Another PSP collects the same notice again: a real double payment.
    let second = tari_receipt(&notice, "token-0002", "POSOIT22XXX");
    assert_eq!(
        element_text(&send(&app, true, &second).await?, "outcome"),
        Some("OK")
    );
    // The first receipt comes back with other content under its key: a conflict.
    let mut changed = first.clone();
    changed.psp = "UNCRITMM".to_owned();
    assert_eq!(
        element_text(&send(&app, true, &changed).await?, "outcome"),
        Some("OK")
    );
    // A cancelled notice paid anyway (Stand-In), and a notice nobody issued.
    let mut late = tari_receipt(&cancelled, "token-0003", "BCITITMM");
    late.stand_in = true;
    send(&app, false, &late).await?;
    let mut stranger = tari_receipt(&notice, "token-0004", "BCITITMM");
    stranger.notice_number = "312999999999999934".to_owned();
    stranger.iuv = "12999999999999934".to_owned();
    send(&app, true, &stranger).await?;

    assert_eq!(count(&app, "SELECT COUNT(*) FROM receipt").await?, 4);
    assert_eq!(
        count(&app, "SELECT COUNT(*) FROM receipt_conflict").await?,
        1
    );
    for (classification, expected) in [
        ("settled", 1),
        ("double_payment", 1),
        ("closed_notice", 1),
        ("unknown_notice", 1),
    ] {
        let n = count(
            &app,
            &format!("SELECT COUNT(*) FROM receipt WHERE classification = '{classification}'"),
        )
        .await?;
        assert_eq!(n, expected, "{classification}");
    }
    let balances = app
        .ledger()
        .await?
        .get_balances(pb::GetBalancesRequest::default())
        .await?
        .into_inner();
    let balance = |account: &str| {
        balances
            .balances
            .iter()
            .find(|b| b.account == account)
            .map_or(0, |b| b.balance_cents)
    };
    assert_eq!(
        balance("refunds_payable:01199250158"),
        -2 * 46500,
        "the double payment and the cancelled notice"
    );
    assert_eq!(
        balance("suspense:01199250158"),
        -46500,
        "the unknown notice"
    );
    assert_eq!(balance("receivable:01199250158:school_fee"), 0);
    assert_eq!(
        balance("psp_clearing:01199250158:BCITITMM")
            + balance("psp_clearing:01199250158:POSOIT22XXX"),
        4 * 46500
    );
    assert_eq!(CITTA_METROPOLITANA.len(), 11);
    app.stop().await
}

async fn concurrent_deliveries_book_exactly_once(engine: Engine) -> anyhow::Result<()> {
    let app = TestApp::spawn(engine).await?;
    let mut notices = app.notices().await?;
    let fee = notices
        .create_debt_position(requests::school_fee("rt-race"))
        .await?
        .into_inner();
    let notice = fee.payment_options[0].installments[0].clone();
    let receipt = tari_receipt(&notice, "token-race", "BCITITMM");
    let addr = app.soap_addr;
    let mut tasks = Vec::new();
    for i in 0..100 {
        let body = node::send_rt(&Caller::default(), true, &receipt);
        let verify = node::verify(&Caller::default(), MILANO, &notice.notice_number);
        let activate = node::get_payment(
            &Caller::default(),
            true,
            MILANO,
            &notice.notice_number,
            "465.00",
            None,
        );
        tasks.push(tokio::spawn(async move {
            let reply = post(addr, Some("paSendRTV2"), XML, body.as_bytes()).await?;
            anyhow::ensure!(
                element_text(&reply.body, "outcome") == Some("OK"),
                "{}",
                reply.body
            );
            // Verifies and activations racing the receipts see the notice whole, unpaid or
            // paid, never a mix of the two: OK with the full amount, or already paid.
            let mut seen = Vec::new();
            if i % 10 == 0 {
                let reply =
                    post(addr, Some("paVerifyPaymentNotice"), XML, verify.as_bytes()).await?;
                let ok = element_text(&reply.body, "outcome") == Some("OK")
                    && element_text(&reply.body, "amount") == Some("465.00");
                let paid =
                    element_text(&reply.body, "faultCode") == Some("PAA_PAGAMENTO_DUPLICATO");
                anyhow::ensure!(ok || paid, "{}", reply.body);
                seen.push(ok);
            }
            if i % 4 == 0 {
                let reply = post(addr, Some("paGetPaymentV2"), XML, activate.as_bytes()).await?;
                let ok = element_text(&reply.body, "outcome") == Some("OK")
                    && element_text(&reply.body, "paymentAmount") == Some("465.00")
                    && element_text(&reply.body, "transferAmount") == Some("465.00");
                let paid =
                    element_text(&reply.body, "faultCode") == Some("PAA_PAGAMENTO_DUPLICATO");
                anyhow::ensure!(ok || paid, "{}", reply.body);
                seen.push(ok);
            }
            Ok(seen)
        }));
    }
    let mut answered = 0;
    for task in tasks {
        answered += task.await??.len();
    }
    assert_eq!(answered, 10 + 25, "every verify and activation answered");
    assert_eq!(count(&app, "SELECT COUNT(*) FROM receipt").await?, 1);
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) FROM ledger_entry WHERE event_type = 'receipt_paid'"
        )
        .await?,
        1
    );
    // Two different receipts racing on one notice: one payment, one flagged double payment.
    let other = notices
        .create_debt_position(requests::school_fee("rt-race-2"))
        .await?
        .into_inner();
    let notice = other.payment_options[0].installments[0].clone();
    let a = node::send_rt(
        &Caller::default(),
        true,
        &tari_receipt(&notice, "token-a", "BCITITMM"),
    );
    let b = node::send_rt(
        &Caller::default(),
        true,
        &tari_receipt(&notice, "token-b", "POSOIT22XXX"),
    );
    let (ra, rb) = tokio::join!(
        post(addr, Some("paSendRTV2"), XML, a.as_bytes()),
        post(addr, Some("paSendRTV2"), XML, b.as_bytes())
    );
    assert_eq!(element_text(&ra?.body, "outcome"), Some("OK"));
    assert_eq!(element_text(&rb?.body, "outcome"), Some("OK"));
    let settled = count(&app, &format!("SELECT COUNT(*) FROM receipt WHERE notice_number = '{}' AND classification = 'settled'", notice.notice_number)).await?;
    let doubles = count(&app, &format!("SELECT COUNT(*) FROM receipt WHERE notice_number = '{}' AND classification = 'double_payment'", notice.notice_number)).await?;
    assert_eq!((settled, doubles), (1, 1));
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

async fn late_stand_in_foreign_and_other_amount_receipts_are_flagged(
    engine: Engine,
) -> anyhow::Result<()> {
    let app = TestApp::spawn(engine).await?;
    let mut notices = app.notices().await?;
    let create = |id: &str, expired: bool| {
        let mut request = requests::school_fee(id);
        if expired {
            request.payment_options[0].installments[0].due_date = "2026-01-10".to_owned();
            request.payment_options[0].installments[0].expiry_date = "2026-01-31".to_owned();
        }
        request
    };
    let expired = notices
        .create_debt_position(create("rt-expired", true))
        .await?
        .into_inner();
    let stand_in = notices
        .create_debt_position(create("rt-stand-in", false))
        .await?
        .into_inner();
    let less = notices
        .create_debt_position(create("rt-less", false))
        .await?
        .into_inner();
    let notice = |p: &pb::DebtPosition| p.payment_options[0].installments[0].clone();

    // Paid on 20 November for a notice that expired on 31 January: the money was taken.
    send(
        &app,
        true,
        &tari_receipt(&notice(&expired), "token-late", "BCITITMM"),
    )
    .await?;
    let (classification, flags, in_stand_in) = stored(&app, "token-late").await?;
    assert_eq!(classification, "settled_late");
    assert_eq!(flags, "late");
    assert!(!in_stand_in);
    let after = notices
        .get_debt_position(pb::GetDebtPositionRequest {
            lookup: Some(pb::get_debt_position_request::Lookup::Id(
                expired.id.clone(),
            )),
            creditor_fiscal_code: String::new(),
        })
        .await?
        .into_inner();
    assert_eq!(after.state, pb::DebtPositionState::Paid as i32);

    // Authorised in Stand-In while incasso did not answer.
    let mut receipt = tari_receipt(&notice(&stand_in), "token-stand-in", "BCITITMM");
    receipt.stand_in = true;
    send(&app, false, &receipt).await?;
    assert_eq!(
        stored(&app, "token-stand-in").await?,
        ("settled".to_owned(), "stand_in".to_owned(), true)
    );

    // The Node's amount differs from today's: the Node's is what was paid.
    let mut receipt = tari_receipt(&notice(&less), "token-less", "BCITITMM");
    receipt.amount = "400.00".to_owned();
    receipt.transfers[0].1 = "400.00".to_owned();
    send(&app, true, &receipt).await?;
    assert_eq!(
        stored(&app, "token-less").await?,
        ("settled".to_owned(), "amount_differs".to_owned(), false)
    );
    assert_eq!(transfers(&app, "token-less").await?[0].3, 40000);

    // A receipt for a notice of another creditor (Milan a secondary beneficiary of it).
    let mut foreign = tari_receipt(&notice(&less), "token-foreign", "BCITITMM");
    foreign.fiscal_code = CITTA_METROPOLITANA.to_owned();
    foreign.notice_number = "302000000000012345".to_owned();
    foreign.iuv = "02000000000012345".to_owned();
    foreign.amount = "20.00".to_owned();
    foreign.transfers = vec![
        (
            CITTA_METROPOLITANA.to_owned(),
            "15.00".to_owned(),
            CM_BANK.to_owned(),
        ),
        (MILANO.to_owned(), "5.00".to_owned(), MILANO_BANK.to_owned()),
    ];
    send(&app, true, &foreign).await?;
    assert_eq!(
        stored(&app, "token-foreign").await?,
        (
            "unknown_notice".to_owned(),
            "other_creditor_notice".to_owned(),
            false
        )
    );
    let kept = transfers(&app, "token-foreign").await?;
    assert_eq!(kept.len(), 2);
    assert_eq!((kept[1].0, kept[1].1.as_str(), kept[1].3), (2, MILANO, 500));
    app.stop().await
}

/// A leaf element of an XML text: its name and where its text is.
fn leaves(xml: &str) -> Vec<(String, std::ops::Range<usize>)> {
    let mut found = Vec::new();
    let mut at = 0;
    while let Some(open) = xml[at..].find('<').map(|i| i + at) {
        at = open + 1;
        let Some(close) = xml[open..].find('>').map(|i| i + open) else {
            break;
        };
        let name = &xml[open + 1..close];
        if name.is_empty() || name.contains([':', '/', ' ', '?', '!']) {
            continue;
        }
        let text_start = close + 1;
        let Some(text_end) = xml[text_start..].find('<').map(|i| i + text_start) else {
            break;
        };
        if xml[text_end..].starts_with(&format!("</{name}>")) {
            found.push((name.to_owned(), text_start..text_end));
        }
    }
    found
}

/// Another value of the same shape, which the parser still accepts.
fn another(value: &str) -> String {
    match value {
        "OK" => "KO".to_owned(),
        "true" => "false".to_owned(),
        "false" => "true".to_owned(),
        "F" => "G".to_owned(),
        "G" => "F".to_owned(),
        v if v.len() == 2 && v.bytes().all(|b| b.is_ascii_uppercase()) => {
            if v == "FR" { "DE" } else { "FR" }.to_owned()
        }
        v if v.ends_with(|c: char| c.is_ascii_digit()) => {
            let (head, last) = v.split_at(v.len() - 1);
            let digit = last.parse::<u8>().unwrap_or(0);
            format!("{head}{}", (digit + 1) % 10)
        }
        // Same length, so a field at its limit stays valid.
        v => {
            let first = if v.starts_with('X') { 'Y' } else { 'X' };
            format!("{first}{}", v.chars().skip(1).collect::<String>())
        }
    }
}

/// The same key with any one field changed is a conflict: every field of the official V2
/// sample is changed in turn (debtor, payer, metadata and transfers included). The same
/// receipt written differently (prefixes, indentation) is a redelivery.
async fn every_field_of_a_receipt_counts_for_a_conflict_and_formatting_does_not(
    engine: Engine,
) -> anyhow::Result<()> {
    let app = TestApp::spawn_with(engine, |settings| {
        settings.station = StationConfig {
            broker_id: "77777777777".to_owned(),
            station_ids: vec!["77777777777_01".to_owned()],
            creditor_ids: vec!["77777777777".to_owned()],
            ..StationConfig::default()
        };
    })
    .await?;
    let path = node::spec_dir().join("samples/paSendRTV2.request.sanp-doc.adapted.xml");
    let sample =
        std::fs::read_to_string(&path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let deliver = |xml: String| async move {
        let reply = post(app.soap_addr, Some("paSendRTV2"), XML, xml.as_bytes()).await?;
        validate(&reply.body)?;
        anyhow::ensure!(
            element_text(&reply.body, "outcome") == Some("OK"),
            "{}",
            reply.body
        );
        anyhow::Ok(())
    };
    deliver(sample.clone()).await?;
    // The same receipt, written by another serialiser.
    let reformatted = sample
        .replace("soapenv:", "S:")
        .replace("xmlns:soapenv", "xmlns:S")
        .replace("pafn:", "ns2:")
        .replace("xmlns:pafn", "xmlns:ns2")
        .replace(">\n", ">\r\n\t")
        .replace("<standIn>false</standIn>", "");
    assert_ne!(reformatted, sample);
    deliver(reformatted).await?;
    assert_eq!(count(&app, "SELECT COUNT(*) FROM receipt").await?, 1);
    assert_eq!(
        count(&app, "SELECT COUNT(*) FROM receipt_conflict").await?,
        0,
        "a redelivery, not a conflict"
    );
    // Header fields are not the receipt's, and receiptId, creditorReferenceId and the
    // receipt's fiscalCode are its key: changing them makes another receipt.
    let skipped = [
        "idPA",
        "idBrokerPA",
        "idStation",
        "receiptId",
        "creditorReferenceId",
        "fiscalCode",
    ];
    let mut changed = 0;
    for (name, range) in leaves(&sample) {
        if skipped.contains(&name.as_str()) {
            continue;
        }
        let mut mutated = sample.clone();
        mutated.replace_range(range.clone(), &another(&sample[range]));
        deliver(mutated).await?;
        changed += 1;
        assert_eq!(
            count(&app, "SELECT COUNT(*) FROM receipt_conflict").await?,
            changed,
            "changing {name} must be a conflict"
        );
    }
    assert!(
        changed >= 50,
        "only {changed} fields changed: the leaf scan is broken"
    );
    assert_eq!(count(&app, "SELECT COUNT(*) FROM receipt").await?, 1);
    assert_eq!(
        count(&app, "SELECT COUNT(*) FROM receipt_transfer").await?,
        2,
        "a conflict stores no transfers"
    );
    app.stop().await
}

/// The schema leaves receiptId an unbounded string: a long one is stored, booked and found
/// by an auditor filtering the books by receipt, like any other.
async fn a_receipt_is_found_in_the_books_by_its_receipt_id_however_long(
    engine: Engine,
) -> anyhow::Result<()> {
    let app = TestApp::spawn(engine).await?;
    let mut notices = app.notices().await?;
    let tari = notices
        .create_debt_position(requests::tari("rt-long-id"))
        .await?
        .into_inner();
    let single = tari.payment_options[0].installments[0].clone();
    let long_id: String = "R".repeat(40) + &"0123456789".repeat(16);
    assert_eq!(long_id.len(), 200);
    let receipt = tari_receipt(&single, &long_id, "BCITITMM");
    let body = send(&app, true, &receipt).await?;
    assert_eq!(element_text(&body, "outcome"), Some("OK"), "{body}");
    let body = send(&app, true, &receipt).await?;
    assert_eq!(
        element_text(&body, "outcome"),
        Some("OK"),
        "redelivered: {body}"
    );

    let mut ledger = app.ledger().await?;
    let by_receipt = |receipt_id: &str| pb::ListEntriesRequest {
        receipt_id: receipt_id.to_owned(),
        page_size: 100,
        ..Default::default()
    };
    let found = ledger
        .list_entries(by_receipt(&long_id))
        .await?
        .into_inner()
        .entries;
    let kinds: Vec<(&str, &str)> = found
        .iter()
        .map(|e| (e.event_type.as_str(), e.receipt_id.as_str()))
        .collect();
    assert_eq!(kinds, [("receipt_paid", long_id.as_str())], "booked once");
    assert_eq!(found[0].notices[0].notice_number, single.notice_number);
    assert_eq!(
        found[0].lines.iter().map(|l| l.amount_cents).sum::<i64>(),
        0
    );

    let mut export = ledger
        .export_entries(pb::ExportEntriesRequest {
            filter: Some(pb::EntryFilter {
                receipt_id: long_id.clone(),
                ..Default::default()
            }),
        })
        .await?
        .into_inner();
    let mut exported = Vec::new();
    while let Some(entry) = export.message().await? {
        exported.push(entry.sequence);
    }
    assert_eq!(exported, [found[0].sequence], "the export filters alike");

    // With the notice filter too; another receipt id finds nothing.
    let both = ledger
        .list_entries(pb::ListEntriesRequest {
            notice_number: single.notice_number.clone(),
            ..by_receipt(&long_id)
        })
        .await?
        .into_inner()
        .entries;
    assert_eq!(both.len(), 1);
    let other = ledger
        .list_entries(by_receipt("c3e7d4b2a1f04e6d9b8a7c6d5e4f3a2b"))
        .await?
        .into_inner();
    assert!(other.entries.is_empty());

    // A receipt id no receipt can have is a bad filter, named.
    let error = ledger
        .list_entries(by_receipt(&"9".repeat(257)))
        .await
        .unwrap_err();
    assert_eq!(error.code(), tonic::Code::InvalidArgument);
    assert!(
        error.message().contains("receipt_id"),
        "{}",
        error.message()
    );
    app.stop().await
}
