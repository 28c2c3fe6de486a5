//! One bank movement imported twice, from the Tesoriere's OPI giornale and from a camt
//! statement of the account: both stay credits (the contract keys a credit by its id), the
//! second import warns of the pair, and the credit list shows each credit's probable twin.

use incasso_domain::reconciliation::{CreditId, DuplicateReason, Label, Subject};
use incasso_reconciliation::CamtVersion;
use incasso_reconciliation::testing::{
    CamtEntry, CamtMessage, OpiMovement, OpiSchema, camt, fdr_xml, opi,
};
use incasso_store::reconciliation::{CreditFilterInput, CreditItem, PossibleDuplicate};
use incasso_store::testing::Engine;
use time::macros::date;

use crate::fixtures::{Harness, MILANO};
use crate::on_both_engines;
use crate::reconciliation::{IUF, TREASURY_IBAN, accounts, flow, key, label, receipt, write};

on_both_engines!(
    a_movement_in_the_giornale_and_the_statement_is_shown_as_one,
    a_notification_restated_by_the_evening_statement_keeps_the_credit_held,
);

/// The SCT's TRN, as the bank and the Tesoriere both give it.
const TRN: &str = "0306909400123456789";

fn marker() -> String {
    format!("/PUR/LGPE-RIVERSAMENTO/URI/{IUF}")
}

async fn credits(h: &Harness) -> Vec<CreditItem> {
    h.store
        .list_treasury_credits(
            &CreditFilterInput {
                creditor_fiscal_code: MILANO.to_owned(),
                ..CreditFilterInput::default()
            },
            100,
            "",
        )
        .await
        .unwrap()
        .credits
}

fn twins(credits: &[CreditItem], id: &str) -> Vec<(String, DuplicateReason)> {
    credits
        .iter()
        .find(|c| c.id.as_str() == id)
        .unwrap_or_else(|| panic!("credit {id} is listed: {credits:#?}"))
        .possible_duplicates
        .iter()
        .map(
            |PossibleDuplicate {
                 credit_id, reason, ..
             }| (credit_id.to_string(), *reason),
        )
        .collect()
}

async fn a_movement_in_the_giornale_and_the_statement_is_shown_as_one(engine: Engine) {
    let h = Harness::new(engine).await;
    let accounts = accounts();
    h.store.record_receipt(receipt()).await.unwrap();
    h.store
        .import_reconciliation_file(&write("flow.xml", &fdr_xml(&flow(), MILANO)), &accounts)
        .await
        .unwrap();

    // The statement of the 24th books the flow's transfer, with its TRN; and two credits
    // that only look alike: the same TRN with another amount, and a NOTPROVIDED
    // EndToEndId.
    let day = date!(2026 - 11 - 24);
    let statement = write(
        "statement-1124.xml",
        &camt(
            CamtMessage::Statement,
            CamtVersion::V08,
            TREASURY_IBAN,
            day,
            day,
            &[
                CamtEntry {
                    trn: Some(TRN.to_owned()),
                    end_to_end_id: Some("NOTPROVIDED".to_owned()),
                    ..CamtEntry::credit("ASR-77", 9_500, day, &marker())
                },
                CamtEntry {
                    trn: Some(TRN.to_owned()),
                    ..CamtEntry::credit("ASR-78", 9_400, day, "GIROCONTO")
                },
                CamtEntry {
                    end_to_end_id: Some("NOTPROVIDED".to_owned()),
                    ..CamtEntry::credit("ASR-79", 1_000, day, "BONIFICO")
                },
            ],
        ),
    );
    let outcome = h
        .store
        .import_reconciliation_file(&statement, &accounts)
        .await
        .unwrap();
    assert_eq!(outcome.credits_added, 3);
    assert!(outcome.warnings.is_empty(), "{:?}", outcome.warnings);
    assert_eq!(
        label(&h, Subject::Transfer(key(1))).await,
        Some(Label::RtIufTes)
    );

    // The Tesoriere's giornale books the same movement under its own id, and one more
    // credit of 10.00 with no TRN.
    let giornale = write(
        "gdc-1124.xml",
        &opi(
            OpiSchema::V1_8,
            "C0MI01",
            day,
            &[
                OpiMovement {
                    trn: Some(TRN.to_owned()),
                    ..OpiMovement::credit("CRI-1", 9_500, day, &marker())
                },
                OpiMovement::credit("CRI-2", 1_000, day, "BONIFICO"),
            ],
        ),
    );
    let outcome = h
        .store
        .import_reconciliation_file(&giornale, &accounts)
        .await
        .unwrap();
    assert_eq!(outcome.credits_added, 2);
    assert_eq!(outcome.warnings.len(), 1, "{:?}", outcome.warnings);
    let warning = &outcome.warnings[0];
    for part in [
        "treasury credit CRI-1 of 9500 cents, value date 2026-11-24",
        "credit ASR-77 of ",
        "statement-1124.xml",
        &format!("same TRN {TRN}, amount and value date"),
        "both are counted",
    ] {
        assert!(warning.contains(part), "{part:?} in {warning}");
    }

    // Both count, as the contract says: the flow's transfer reads as divergent by the twin.
    assert_eq!(
        label(&h, Subject::Transfer(key(1))).await,
        Some(Label::IufTesDivImp)
    );
    for id in ["ASR-77", "CRI-1"] {
        assert_eq!(
            label(&h, Subject::Credit(CreditId::parse(id).unwrap())).await,
            Some(Label::IufTesDivImp),
            "{id}"
        );
    }

    // Each twin names the other, and where it came from; look-alikes name nothing.
    let listed = credits(&h).await;
    assert_eq!(
        twins(&listed, "ASR-77"),
        vec![("CRI-1".to_owned(), DuplicateReason::Trn)]
    );
    assert_eq!(
        twins(&listed, "CRI-1"),
        vec![("ASR-77".to_owned(), DuplicateReason::Trn)]
    );
    let asr = listed.iter().find(|c| c.id.as_str() == "ASR-77").unwrap();
    assert!(
        asr.possible_duplicates[0]
            .file_name
            .ends_with("gdc-1124.xml"),
        "{:?}",
        asr.possible_duplicates
    );
    for id in ["ASR-78", "ASR-79", "CRI-2"] {
        assert!(twins(&listed, id).is_empty(), "{id}");
    }

    // The same giornale again: nothing new, nothing to warn of.
    let again = h
        .store
        .import_reconciliation_file(&giornale, &accounts)
        .await
        .unwrap();
    assert!(again.already_imported);
    assert!(again.warnings.is_empty(), "{:?}", again.warnings);
    h.finish().await;
}

/// The morning's camt.054 notifies a credit without its value day (the reader takes the
/// booking day); the evening's camt.053 books it again under the same `AcctSvcrRef` with the
/// value day and the TRN. The statement is imported (its other credits with it), the credit
/// held stands and the import says where the two differ; another amount under the same id
/// is still refused whole.
async fn a_notification_restated_by_the_evening_statement_keeps_the_credit_held(engine: Engine) {
    let h = Harness::new(engine).await;
    let accounts = accounts();
    h.store.record_receipt(receipt()).await.unwrap();
    h.store
        .import_reconciliation_file(&write("flow.xml", &fdr_xml(&flow(), MILANO)), &accounts)
        .await
        .unwrap();
    let day = date!(2026 - 11 - 24);
    let notification = write(
        "camt054-1124.xml",
        &camt(
            CamtMessage::Notification,
            CamtVersion::V08,
            TREASURY_IBAN,
            day,
            day,
            &[CamtEntry::credit("ASR-77", 9_500, day, &marker())],
        ),
    );
    let outcome = h
        .store
        .import_reconciliation_file(&notification, &accounts)
        .await
        .unwrap();
    assert_eq!(outcome.credits_added, 1);
    let evening = |amount_cents: i64| {
        camt(
            CamtMessage::Statement,
            CamtVersion::V08,
            TREASURY_IBAN,
            day,
            day,
            &[
                CamtEntry {
                    value_date: date!(2026 - 11 - 23),
                    trn: Some(TRN.to_owned()),
                    ..CamtEntry::credit("ASR-77", amount_cents, day, &marker())
                },
                CamtEntry::credit("ASR-80", 1_000, day, "BONIFICO"),
            ],
        )
    };
    let outcome = h
        .store
        .import_reconciliation_file(&write("camt053-1124.xml", &evening(9_500)), &accounts)
        .await
        .unwrap();
    assert_eq!(
        (outcome.credits_added, outcome.credits_already_held),
        (1, 1)
    );
    assert_eq!(outcome.warnings.len(), 1, "{:?}", outcome.warnings);
    let warning = &outcome.warnings[0];
    for part in [
        "camt053-1124.xml",
        "treasury credit ASR-77 is already held with another value date and TRN",
        "(booked 2026-11-24, value 2026-11-24, TRN none; here booked 2026-11-24, value 2026-11-23",
        "the credit held stands",
    ] {
        assert!(warning.contains(part), "{part:?} in {warning}");
    }
    let listed = credits(&h).await;
    let held = listed
        .iter()
        .find(|c| c.id.as_str() == "ASR-77")
        .expect("ASR-77 is listed");
    assert_eq!((held.value_date, held.trn.as_deref()), (day, None));
    assert!(listed.iter().any(|c| c.id.as_str() == "ASR-80"));
    assert_eq!(
        label(&h, Subject::Transfer(key(1))).await,
        Some(Label::RtIufTes)
    );

    // Another amount under the same id is two movements under one id: refused, nothing kept.
    let message = h
        .store
        .import_reconciliation_file(&write("camt053-bis.xml", &evening(9_400)), &accounts)
        .await
        .unwrap_err()
        .to_string();
    for part in [
        "treasury credit ASR-77 is already held with another amount",
        "9500 cents",
        "9400 cents",
    ] {
        assert!(message.contains(part), "{part:?} in {message}");
    }
    assert_eq!(credits(&h).await.len(), 2);
    h.finish().await;
}
