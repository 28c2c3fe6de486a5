//! Importing reconciliation evidence: labels and their history follow the evidence, the same
//! file twice changes nothing, and a refused document stores nothing.

use std::path::{Path, PathBuf};

use incasso_domain::notice_number::Iuv;
use incasso_domain::receipt::NodeOutcome;
use incasso_domain::reconciliation::{
    CreditId, EvidenceRef, FlowId, FlowLine, FlowTreasuryState, Label, OutcomeCode, ReportingFlow,
    Subject, TransferIndex, TransferKey,
};
use incasso_reconciliation::CamtVersion;
use incasso_reconciliation::testing::{
    CamtEntry, CamtMessage, OpiMovement, OpiSchema, camt, fdr_xml, opi,
};
use incasso_store::AppError;
use incasso_store::receipts::{ReceiptFacts, ReceiptInput, ReceiptPrimitive, ReceiptTransferInput};
use incasso_store::reconciliation::{RecoveryState, TreasuryAccounts};
use incasso_store::testing::Engine;
use time::macros::{date, datetime};

use crate::fixtures::{CITTA_METROPOLITANA, Harness, MILANO, MILANO_BANK_IBAN};
use crate::on_both_engines;

pub(crate) const TREASURY_IBAN: &str = "IT60X0542811101000000123456";
const IUV: &str = "99000000000000011";
pub(crate) const IUF: &str = "2026-11-23ABI03069-0001";

pub(crate) fn accounts() -> TreasuryAccounts {
    let mut accounts = TreasuryAccounts::new();
    accounts.add_iban(MILANO, TREASURY_IBAN).unwrap();
    accounts.add_opi_code(MILANO, "C0MI01").unwrap();
    accounts
}

/// A TARI receipt of a notice incasso did not issue: 95.00 to Milan, 5.00 of TEFA to the
/// Città Metropolitana.
pub(crate) fn receipt() -> ReceiptInput {
    let transfer = |id: u8, beneficiary: &str, cents: i64| ReceiptTransferInput {
        id_transfer: id,
        beneficiary: beneficiary.to_owned(),
        iban: Some(MILANO_BANK_IBAN.to_owned()),
        amount_cents: cents,
        remittance_information: "TARI 2026".to_owned(),
        transfer_category: "9/0101100IM/".to_owned(),
    };
    ReceiptInput {
        facts: ReceiptFacts {
            receiving_creditor: MILANO.to_owned(),
            primitive: ReceiptPrimitive::SendRtV2,
            creditor_fiscal_code: MILANO.to_owned(),
            notice_number: format!("3{IUV}"),
            notice: None,
            iuv: IUV.to_owned(),
            receipt_id: "RCPT-1".to_owned(),
            outcome: NodeOutcome::Ok,
            psp_id: "ABI03069".to_owned(),
            channel_id: "ABI03069_01".to_owned(),
            payment_amount_cents: 10_000,
            fee_cents: None,
            payment_date_time: Some("2026-11-23T10:00:00".to_owned()),
            paid_at: Some(datetime!(2026-11-23 09:00 UTC)),
            stand_in: false,
            transfers: vec![
                transfer(1, MILANO, 9_500),
                transfer(2, CITTA_METROPOLITANA, 500),
            ],
        },
        canonical: b"receipt RCPT-1".to_vec(),
        raw: b"<paSendRTV2Req/>".to_vec(),
    }
}

/// A receipt of `cents` for the IUV `iuv`, all of it to Milan in one transfer.
pub(crate) fn receipt_to_milan(iuv: &str, receipt_id: &str, cents: i64) -> ReceiptInput {
    let mut input = receipt();
    input.facts.iuv = iuv.to_owned();
    input.facts.notice_number = format!("3{iuv}");
    input.facts.receipt_id = receipt_id.to_owned();
    input.facts.payment_amount_cents = cents;
    input.facts.transfers = vec![ReceiptTransferInput {
        id_transfer: 1,
        beneficiary: MILANO.to_owned(),
        iban: Some(MILANO_BANK_IBAN.to_owned()),
        amount_cents: cents,
        remittance_information: "TARI 2026".to_owned(),
        transfer_category: "9/0101100IM/".to_owned(),
    }];
    input.canonical = format!("receipt {receipt_id}").into_bytes();
    input
}

pub(crate) fn key(index: i64) -> TransferKey {
    TransferKey::new(
        Iuv::parse(IUV).unwrap(),
        "RCPT-1",
        TransferIndex::new(index).unwrap(),
    )
    .unwrap()
}

pub(crate) fn flow() -> ReportingFlow {
    ReportingFlow {
        flow_id: FlowId::parse(IUF).unwrap(),
        revision: 0,
        created_at: datetime!(2026-11-24 06:00 UTC),
        psp_id: "ABI03069".to_owned(),
        trn: "TRN-0001".to_owned(),
        regulation_date: date!(2026 - 11 - 24),
        total_cents: 9_500,
        lines: vec![FlowLine {
            key: key(1),
            amount_cents: 9_500,
            outcome: OutcomeCode::Executed,
            paid_on: date!(2026 - 11 - 23),
        }],
    }
}

/// `text` written as a file named `name` in a folder of its own, removed with the folder when
/// dropped.
pub(crate) fn write(name: &str, text: &str) -> Written {
    let dir = std::env::temp_dir().join(format!("incasso-recon-store-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    Written(path)
}

/// A file [`write`] wrote; its folder goes when it is dropped.
pub(crate) struct Written(PathBuf);

impl std::ops::Deref for Written {
    type Target = Path;

    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for Written {
    fn drop(&mut self) {
        if let Some(dir) = self.0.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

pub(crate) fn statement(iban: &str, amount_cents: i64) -> String {
    camt(
        CamtMessage::Statement,
        CamtVersion::V08,
        iban,
        date!(2026 - 11 - 24),
        date!(2026 - 11 - 24),
        &[CamtEntry::credit(
            "ASR-77",
            amount_cents,
            date!(2026 - 11 - 24),
            &format!("/PUR/LGPE-RIVERSAMENTO/URI/{IUF}"),
        )],
    )
}

async fn count(h: &Harness, table: &str) -> i64 {
    crate::fixtures::count(h, table).await
}

pub(crate) async fn label(h: &Harness, subject: Subject) -> Option<Label> {
    h.store
        .reconciliation_assessments(MILANO)
        .await
        .unwrap()
        .get(&subject)
        .and_then(|a| a.label)
}

async fn evidence_is_labelled_as_it_arrives_with_its_history(engine: Engine) {
    let h = Harness::new(engine).await;
    h.store.record_receipt(receipt()).await.unwrap();
    let accounts = accounts();

    let flow_file = write("flow.xml", &fdr_xml(&flow(), MILANO));
    let outcome = h
        .store
        .import_reconciliation_file(&flow_file, &accounts)
        .await
        .unwrap();
    assert_eq!(outcome.creditor, MILANO);
    assert_eq!(outcome.kind, "FlussoRiversamento");
    assert_eq!((outcome.flows_added, outcome.lines_added), (1, 1));
    assert!(!outcome.already_imported);
    assert_eq!(
        label(&h, Subject::Transfer(key(1))).await,
        Some(Label::RtIuf)
    );
    // The TEFA transfer is the Città Metropolitana's: not labelled for Milan.
    let milan = h.store.reconciliation_assessments(MILANO).await.unwrap();
    assert!(!milan.contains_key(&Subject::Transfer(key(2))));

    // The same file again: nothing changes.
    let again = h
        .store
        .import_reconciliation_file(&flow_file, &accounts)
        .await
        .unwrap();
    assert!(again.already_imported);
    assert_eq!(count(&h, "recon_flow").await, 1);
    assert_eq!(count(&h, "recon_document").await, 1);
    let changes_before = count(&h, "recon_label_change").await;

    // The treasury's credit of the flow's total: cashed.
    let statement_file = write("statement.xml", &statement(TREASURY_IBAN, 9_500));
    let outcome = h
        .store
        .import_reconciliation_file(&statement_file, &accounts)
        .await
        .unwrap();
    assert_eq!(outcome.kind, "camt.053.001.08");
    assert_eq!(outcome.credits_added, 1);
    assert!(count(&h, "recon_label_change").await > changes_before);
    assert_eq!(
        label(&h, Subject::Transfer(key(1))).await,
        Some(Label::RtIufTes)
    );
    assert_eq!(
        label(&h, Subject::Credit(CreditId::parse("ASR-77").unwrap())).await,
        Some(Label::RtIufTes)
    );
    let flow_assessment = h
        .store
        .reconciliation_assessments(MILANO)
        .await
        .unwrap()
        .remove(&Subject::Flow(FlowId::parse(IUF).unwrap()))
        .unwrap();
    assert_eq!(
        flow_assessment.treasury_state,
        Some(FlowTreasuryState::Cashed)
    );

    // The key's history: the receipt, then the flow, then the credit.
    let history = h
        .store
        .reconciliation_history(MILANO, &Subject::Transfer(key(1)))
        .await
        .unwrap();
    let labels: Vec<Option<Label>> = history.iter().map(|c| c.label).collect();
    assert_eq!(
        labels,
        vec![
            Some(Label::RtNoIuf),
            Some(Label::RtIuf),
            Some(Label::RtIufTes)
        ]
    );
    assert_eq!(history[0].causes.document, None);
    assert_eq!(
        history[0].causes.evidence,
        vec![EvidenceRef::Receipt(key(1))]
    );
    assert_eq!(history[1].previous_label, Some(Label::RtNoIuf));
    assert_eq!(
        history[1].causes.evidence,
        vec![EvidenceRef::Flow(FlowId::parse(IUF).unwrap(), 1)]
    );
    assert_eq!(
        history[2].causes.document.as_ref().map(|d| d.1.clone()),
        Some(statement_file.display().to_string())
    );
    assert!(
        history[2]
            .causes
            .evidence
            .contains(&EvidenceRef::Credit(CreditId::parse("ASR-77").unwrap())),
        "{:?}",
        history[2].causes
    );
    assert_eq!(history[2].labels, vec![Label::RtIufTes]);
    h.finish().await;
}

async fn a_refused_document_stores_nothing(engine: Engine) {
    let h = Harness::new(engine).await;
    let accounts = accounts();
    let before = (
        count(&h, "recon_document").await,
        count(&h, "recon_credit").await,
    );

    // Another account's statement.
    let other = write("other.xml", &statement(MILANO_BANK_IBAN, 9_500));
    let error = h
        .store
        .import_reconciliation_file(&other, &accounts)
        .await
        .unwrap_err();
    let AppError::Invalid(errors) = &error else {
        panic!("{error:?}");
    };
    let message = errors.to_string();
    assert!(message.contains(MILANO_BANK_IBAN), "{message}");
    assert!(message.contains("treasury_ibans"), "{message}");
    assert!(message.contains("Acct/Id/IBAN"), "{message}");

    // A malformed amount, named with its line and element.
    let text = statement(TREASURY_IBAN, 9_500).replacen(">95.00<", ">95,00<", 1);
    let line = text.lines().position(|l| l.contains("95,00")).unwrap() + 1;
    let bad = write("bad.xml", &text);
    let message = h
        .store
        .import_reconciliation_file(&bad, &accounts)
        .await
        .unwrap_err()
        .to_string();
    assert!(message.contains(&format!("line {line}")), "{message}");
    assert!(message.contains("Ntry/Amt"), "{message}");

    // A flow for a creditor incasso does not serve.
    let foreign = write("foreign.xml", &fdr_xml(&flow(), "00000000000"));
    let message = h
        .store
        .import_reconciliation_file(&foreign, &accounts)
        .await
        .unwrap_err()
        .to_string();
    assert!(message.contains("00000000000"), "{message}");

    // The same credit id with other facts, in a second statement.
    let first = write("first.xml", &statement(TREASURY_IBAN, 9_500));
    h.store
        .import_reconciliation_file(&first, &accounts)
        .await
        .unwrap();
    let conflicting = write("conflict.xml", &statement(TREASURY_IBAN, 9_400));
    let message = h
        .store
        .import_reconciliation_file(&conflicting, &accounts)
        .await
        .unwrap_err()
        .to_string();
    assert!(message.contains("ASR-77"), "{message}");
    // The same id twice in one statement with other facts.
    let twice = camt(
        CamtMessage::Statement,
        CamtVersion::V02,
        TREASURY_IBAN,
        date!(2026 - 11 - 25),
        date!(2026 - 11 - 25),
        &[
            CamtEntry::credit("ASR-88", 100, date!(2026 - 11 - 25), "A"),
            CamtEntry::credit("ASR-88", 200, date!(2026 - 11 - 25), "A"),
        ],
    );
    let message = h
        .store
        .import_reconciliation_file(&write("twice.xml", &twice), &accounts)
        .await
        .unwrap_err()
        .to_string();
    assert!(message.contains("ASR-88"), "{message}");
    assert_eq!(
        (
            count(&h, "recon_document").await,
            count(&h, "recon_credit").await,
        ),
        (before.0 + 1, before.1 + 1)
    );
    h.finish().await;
}

async fn an_opi_giornale_belongs_to_the_creditor_of_its_entity_code(engine: Engine) {
    let h = Harness::new(engine).await;
    let giornale = write(
        "gdc.xml",
        &opi(
            OpiSchema::V1_8,
            "C0MI01",
            date!(2026 - 11 - 24),
            &[OpiMovement::credit(
                "CRI-1",
                1_000,
                date!(2026 - 11 - 24),
                "BONIFICO STIPENDI",
            )],
        ),
    );
    let outcome = h
        .store
        .import_reconciliation_file(&giornale, &accounts())
        .await
        .unwrap();
    assert_eq!(outcome.creditor, MILANO);
    assert_eq!(
        label(&h, Subject::Credit(CreditId::parse("CRI-1").unwrap())).await,
        Some(Label::TesNoMatch)
    );
    let unknown = write(
        "gdc2.xml",
        &opi(OpiSchema::V1_8, "ZZZZ99", date!(2026 - 11 - 24), &[]),
    );
    let message = h
        .store
        .import_reconciliation_file(&unknown, &accounts())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("ZZZZ99") && message.contains("opi_entity_code"),
        "{message}"
    );
    h.finish().await;
}

async fn receipts_booked_after_an_import_are_caught_up_by_a_refresh(engine: Engine) {
    let h = Harness::new(engine).await;
    let flow_file = write("flow.xml", &fdr_xml(&flow(), MILANO));
    h.store
        .import_reconciliation_file(&flow_file, &accounts())
        .await
        .unwrap();
    assert_eq!(
        label(&h, Subject::Transfer(key(1))).await,
        Some(Label::IuvNoRt)
    );
    // The receipt arrives after the flow: the label stays until reconciliation runs.
    h.store.record_receipt(receipt()).await.unwrap();
    assert_eq!(
        label(&h, Subject::Transfer(key(1))).await,
        Some(Label::IuvNoRt)
    );
    assert_eq!(h.store.refresh_reconciliation(MILANO).await.unwrap(), 1);
    assert_eq!(
        label(&h, Subject::Transfer(key(1))).await,
        Some(Label::RtIuf)
    );
    let history = h
        .store
        .reconciliation_history(MILANO, &Subject::Transfer(key(1)))
        .await
        .unwrap();
    assert_eq!(history.len(), 2);
    assert_eq!(history[1].previous_label, Some(Label::IuvNoRt));
    assert_eq!(history[1].causes.document, None);
    assert_eq!(
        history[1].causes.evidence,
        vec![EvidenceRef::Receipt(key(1))]
    );
    // Nothing new: nothing written.
    assert_eq!(h.store.refresh_reconciliation(MILANO).await.unwrap(), 0);
    h.finish().await;
}

/// The `reported` and `cashed` entries of one flow, as an auditor lists them.
async fn flow_entries(h: &Harness) -> Vec<incasso_domain::ledger::EntryDraft> {
    h.store
        .list_ledger_entries(
            &incasso_store::ledger::EntryFilterInput {
                reporting_flow_id: IUF.to_owned(),
                ..Default::default()
            },
            100,
            "",
        )
        .await
        .unwrap()
        .entries
        .into_iter()
        .map(|e| e.entry.draft)
        .collect()
}

fn amounts(draft: &incasso_domain::ledger::EntryDraft) -> Vec<(String, i64)> {
    draft
        .lines
        .iter()
        .map(|l| (l.account.code(), l.amount_cents))
        .collect()
}

/// A flow reports a payment whose receipt has not arrived: its line waits in suspense. The
/// receipt is booked (to clearing) and the refresh that relabels its key moves the line from
/// suspense to clearing in the same transaction; a second refresh posts nothing; the credit
/// is cashed; the chain verifies.
async fn the_books_follow_a_receipt_booked_after_its_flow(engine: Engine) {
    let h = Harness::new(engine).await;
    let flow_file = write("flow.xml", &fdr_xml(&flow(), MILANO));
    let imported = h
        .store
        .import_reconciliation_file(&flow_file, &accounts())
        .await
        .unwrap();
    assert_eq!(imported.ledger_entries_posted, 1);
    let entries = flow_entries(&h).await;
    assert_eq!(entries.len(), 1);
    assert_eq!(
        amounts(&entries[0]),
        [
            ("in_transit:01199250158".to_owned(), 9_500),
            ("suspense:01199250158".to_owned(), -9_500),
        ]
    );
    // The flow's keys are journaled as one entry naming the flow, its revision and each
    // notice; the key's own posting is its position.
    assert_eq!(entries[0].cause.reporting_flow_id.as_deref(), Some(IUF));
    assert_eq!(entries[0].cause.reporting_flow_revision, Some(1));
    assert_eq!(entries[0].cause.posting_key, None);
    assert_eq!(entries[0].cause.receipt_id.as_deref(), Some("RCPT-1"));
    assert_eq!(entries[0].cause.notices, [(String::new(), IUV.to_owned())]);

    h.store.record_receipt(receipt()).await.unwrap();
    let head = h.store.ledger_head().await.unwrap().sequence;
    h.store.refresh_reconciliation(MILANO).await.unwrap();
    let entries = flow_entries(&h).await;
    assert_eq!(entries.len(), 2);
    assert_eq!(
        amounts(&entries[1]),
        [
            ("psp_clearing:01199250158:ABI03069".to_owned(), -9_500),
            ("suspense:01199250158".to_owned(), 9_500),
        ]
    );
    assert_eq!(
        entries[1].cause.notices,
        [(format!("3{IUV}"), IUV.to_owned())]
    );
    assert_eq!(h.store.ledger_head().await.unwrap().sequence, head + 1);
    h.store.refresh_reconciliation(MILANO).await.unwrap();
    assert_eq!(h.store.ledger_head().await.unwrap().sequence, head + 1);

    let statement_file = write("statement.xml", &statement(TREASURY_IBAN, 9_500));
    let credited = h
        .store
        .import_reconciliation_file(&statement_file, &accounts())
        .await
        .unwrap();
    assert_eq!(credited.ledger_entries_posted, 1);
    let cashed = flow_entries(&h).await.pop().unwrap();
    assert_eq!(cashed.cause.treasury_line_id.as_deref(), Some("ASR-77"));
    assert_eq!(
        amounts(&cashed),
        [
            ("in_transit:01199250158".to_owned(), -9_500),
            ("treasury:01199250158".to_owned(), 9_500),
        ]
    );
    let report = h.store.verify_ledger(None, None, &[], true).await.unwrap();
    assert!(report.ok, "{report:?}");

    // The flow revision and posting key are part of the record: a projection that says
    // otherwise is caught by the deep verification.
    let cashed_sequence = h.store.ledger_head().await.unwrap().sequence;
    incasso_store::testing::disable_ledger_triggers(h.store.db())
        .await
        .unwrap();
    for tamper in [
        "UPDATE ledger_entry SET reporting_flow_revision = 7 WHERE posting_key = 'cashed:ASR-77'",
        "UPDATE ledger_entry SET reporting_flow_revision = 1, posting_key = 'cashed:OTHER' \
         WHERE posting_key = 'cashed:ASR-77'",
    ] {
        use sea_orm::ConnectionTrait;
        h.store.db().execute_unprepared(tamper).await.unwrap();
        let report = h.store.verify_ledger(None, None, &[], true).await.unwrap();
        assert!(!report.ok);
        assert_eq!(report.first_broken_sequence, Some(cashed_sequence));
        assert!(report.reason.contains("cause"), "{}", report.reason);
    }
    h.finish().await;
}

/// Undoes the migration whose name contains `number` (`"_000019_"`) and every one after it.
pub(crate) async fn undo_migrations_from(h: &Harness, number: &str) {
    use sea_orm_migration::MigratorTrait;
    let count = incasso_migrations::Migrator::migrations()
        .iter()
        .rev()
        .position(|m| m.name().contains(number))
        .unwrap()
        + 1;
    incasso_migrations::Migrator::down(h.store.db(), Some(u32::try_from(count).unwrap()))
        .await
        .unwrap();
}

/// Migration 19 copies each subject's identity out of its JSON key into columns: labels
/// written before it are found by the lists exactly as labels written after (and the flows
/// stored before migration 25 have their lines summed).
async fn labels_written_before_migration_19_are_listed_after_it(engine: Engine) {
    use incasso_store::reconciliation::{CreditFilterInput, FlowFilterInput, TransferFilterInput};
    use sea_orm_migration::MigratorTrait;

    let h = Harness::new(engine).await;
    h.store.record_receipt(receipt()).await.unwrap();
    let accounts = accounts();
    for (name, text) in [
        ("flow.xml", fdr_xml(&flow(), MILANO)),
        ("statement.xml", statement(TREASURY_IBAN, 9_500)),
    ] {
        h.store
            .import_reconciliation_file(&write(name, &text), &accounts)
            .await
            .unwrap();
    }
    // Back to the schema before 19 (its columns dropped), and up again: 19 and every
    // migration after it are undone.
    undo_migrations_from(&h, "_000019_").await;
    incasso_migrations::Migrator::up(h.store.db(), None)
        .await
        .unwrap();

    let labelled = TransferFilterInput {
        label: Some(Label::RtIufTes),
        ..TransferFilterInput::default()
    };
    let page = h
        .store
        .list_reconciliation_transfers(&labelled, 0, "")
        .await
        .unwrap();
    assert_eq!(page.transfers.len(), 1);
    let item = &page.transfers[0];
    assert_eq!(
        (
            item.iuv.as_str(),
            item.receipt_id.as_str(),
            item.id_transfer
        ),
        (IUV, "RCPT-1", 1)
    );
    assert_eq!(
        page.transfers[0].flow,
        Some((FlowId::parse(IUF).unwrap(), 1))
    );
    let flows = h
        .store
        .list_reporting_flows(
            &FlowFilterInput {
                treasury_state: Some(FlowTreasuryState::Cashed),
                ..FlowFilterInput::default()
            },
            0,
            "",
        )
        .await
        .unwrap();
    assert_eq!(flows.flows.len(), 1);
    // Migration 25 summed the lines of the flows stored before it.
    assert_eq!(flows.flows[0].lines_cents, 9_500);
    let credits = h
        .store
        .list_treasury_credits(
            &CreditFilterInput {
                label: Some(Label::RtIufTes),
                ..CreditFilterInput::default()
            },
            0,
            "",
        )
        .await
        .unwrap();
    assert_eq!(credits.credits.len(), 1);
    assert_eq!(credits.credits[0].id.as_str(), "ASR-77");
    h.finish().await;
}

/// Books posted before migration 28 held one `reported` entry per transfer key; the
/// migration makes each key's entries its position, which the deep verification then checks
/// against the entries: a position that says otherwise is caught.
async fn reported_entries_posted_before_migration_28_become_positions(engine: Engine) {
    use incasso_domain::fiscal_code::OrganizationFiscalCode;
    use incasso_domain::ledger::{Account, Cause, EntryDraft, EventType, Line};
    use sea_orm::{ConnectionTrait, TransactionTrait};
    use sea_orm_migration::MigratorTrait;

    let h = Harness::new(engine).await;
    undo_migrations_from(&h, "_000028_").await;
    let milano = OrganizationFiscalCode::parse(MILANO).unwrap();
    let posting_key = format!("reported:{IUV}/1/RCPT-1");
    let per_key = |lines: Vec<(Account, i64)>, nav: &str| EntryDraft {
        event_type: EventType::Reported,
        creditor: milano.clone(),
        kind: None,
        description: "reported by ABI03069".to_owned(),
        cause: Cause {
            notices: vec![(nav.to_owned(), IUV.to_owned())],
            receipt_id: Some("RCPT-1".to_owned()),
            reporting_flow_id: Some(IUF.to_owned()),
            reporting_flow_revision: Some(1),
            posting_key: Some(posting_key.clone()),
            ..Cause::default()
        },
        lines: lines
            .into_iter()
            .map(|(account, amount_cents)| Line {
                account,
                amount_cents,
            })
            .collect(),
    };
    // The line in suspense until its receipt came, then moved to clearing.
    let entries = vec![
        per_key(
            vec![
                (Account::in_transit(&milano), 9_500),
                (Account::suspense(&milano), -9_500),
            ],
            "",
        ),
        per_key(
            vec![
                (Account::psp_clearing(&milano, "ABI03069"), -9_500),
                (Account::suspense(&milano), 9_500),
            ],
            &format!("3{IUV}"),
        ),
    ];
    let append = |entries: Vec<EntryDraft>| async {
        let txn = h.store.db().begin().await.unwrap();
        incasso_store::ledger::append_with_documents(
            &txn,
            &[],
            entries.into_iter().map(|e| (e, None)).collect(),
            h.store.now(),
        )
        .await?;
        txn.commit().await.map_err(AppError::from)
    };
    let older_release = entries[0].clone();
    append(entries).await.unwrap();
    incasso_migrations::Migrator::up(h.store.db(), None)
        .await
        .unwrap();
    // A replica of the older release posting per key from now on is refused, whole.
    let head = h.store.ledger_head().await.unwrap().sequence;
    let refused = append(vec![older_release]).await.unwrap_err();
    assert!(
        refused.to_string().contains("journaled per flow revision"),
        "{refused}"
    );
    assert_eq!(h.store.ledger_head().await.unwrap().sequence, head);

    let backend = h.store.db().get_database_backend();
    let rows = h
        .store
        .db()
        .query_all_raw(sea_orm::Statement::from_string(
            backend,
            "SELECT posting_key, amounts, reporting_flow_id, reporting_flow_revision, \
             receipt_id, notice_number, iuv FROM ledger_reported_position",
        ))
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    let row = &rows[0];
    let text = |column: &str| row.try_get::<Option<String>>("", column).unwrap();
    assert_eq!(text("posting_key"), Some(posting_key.clone()));
    let mut amounts: Vec<String> = text("amounts")
        .unwrap()
        .split(';')
        .map(str::to_owned)
        .collect();
    amounts.sort();
    assert_eq!(
        amounts,
        [
            "in_transit:01199250158=9500",
            "psp_clearing:01199250158:ABI03069=-9500"
        ]
    );
    assert_eq!(text("reporting_flow_id").as_deref(), Some(IUF));
    assert_eq!(
        row.try_get::<Option<i32>>("", "reporting_flow_revision")
            .unwrap(),
        Some(1)
    );
    assert_eq!(text("receipt_id").as_deref(), Some("RCPT-1"));
    assert_eq!(text("notice_number"), Some(format!("3{IUV}")));
    assert_eq!(text("iuv").as_deref(), Some(IUV));
    let report = h.store.verify_ledger(None, None, &[], true).await.unwrap();
    assert!(report.ok, "{report:?}");

    h.store
        .db()
        .execute_unprepared(
            "UPDATE ledger_reported_position SET amounts = \
             'in_transit:01199250158=9400;psp_clearing:01199250158:ABI03069=-9400'",
        )
        .await
        .unwrap();
    let report = h.store.verify_ledger(None, None, &[], true).await.unwrap();
    assert!(!report.ok);
    assert!(
        report
            .reason
            .contains("reported positions of creditor 01199250158")
            && report
                .reason
                .contains("in_transit:01199250158: positions 9400 cents, entries 9500 cents"),
        "{}",
        report.reason
    );
    h.finish().await;
}

/// The schema leaves receiptId unbounded and incasso stores receipts with up to 256
/// characters: such a receipt's transfer is reconciled like any other (no FdR line can carry
/// it), and it does not stop the creditor's imports.
async fn a_receipt_id_longer_than_an_iur_is_labelled_and_imports_go_on(engine: Engine) {
    let h = Harness::new(engine).await;
    let long_id = format!("{}-token", "p".repeat(40));
    let mut long = receipt();
    long.facts.receipt_id = long_id.clone();
    long.facts.transfers.truncate(1);
    long.facts.payment_amount_cents = 9_500;
    long.canonical = b"receipt long".to_vec();
    h.store.record_receipt(long).await.unwrap();
    let outcome = h
        .store
        .import_reconciliation_file(&write("flow.xml", &fdr_xml(&flow(), MILANO)), &accounts())
        .await
        .unwrap();
    assert_eq!(outcome.flows_added, 1);
    let long_key = TransferKey::new(
        Iuv::parse(IUV).unwrap(),
        &long_id,
        TransferIndex::new(1).unwrap(),
    )
    .unwrap();
    let labels = h.store.reconciliation_assessments(MILANO).await.unwrap();
    // The flow reports RCPT-1, which no receipt has; the long receipt is a second payment of
    // the same IUV and idTransfer: a double payment, both keys.
    assert_eq!(
        labels
            .get(&Subject::Transfer(long_key))
            .and_then(|a| a.label),
        Some(Label::Doppi)
    );
    assert_eq!(
        labels.get(&Subject::Transfer(key(1))).and_then(|a| a.label),
        Some(Label::Doppi)
    );
    h.finish().await;
}

on_both_engines!(
    missing_receipts_their_attempts_and_the_recovery_lease,
    a_receipt_id_longer_than_an_iur_is_labelled_and_imports_go_on,
    labels_written_before_migration_19_are_listed_after_it,
    reported_entries_posted_before_migration_28_become_positions,
    receipts_booked_after_an_import_are_caught_up_by_a_refresh,
    the_books_follow_a_receipt_booked_after_its_flow,
    evidence_is_labelled_as_it_arrives_with_its_history,
    a_refused_document_stores_nothing,
    an_opi_giornale_belongs_to_the_creditor_of_its_entity_code,
);

/// The receipts missing for `IUV_NO_RT` keys, what each attempt to recover them recorded, and
/// the lease that lets one replica recover a creditor at a time.
async fn missing_receipts_their_attempts_and_the_recovery_lease(engine: Engine) {
    let h = Harness::new(engine).await;
    let mut with_no_rpt = flow();
    let no_rpt_key = TransferKey::new(
        Iuv::parse("99000000000000029").unwrap(),
        "IUR-9",
        TransferIndex::new(1).unwrap(),
    )
    .unwrap();
    with_no_rpt.lines.push(FlowLine {
        key: no_rpt_key,
        amount_cents: 1_000,
        outcome: OutcomeCode::NoRpt,
        paid_on: date!(2026 - 11 - 23),
    });
    with_no_rpt.total_cents += 1_000;
    h.store
        .import_reconciliation_file(
            &write("flow.xml", &fdr_xml(&with_no_rpt, MILANO)),
            &accounts(),
        )
        .await
        .unwrap();
    let missing = h.store.missing_receipts(MILANO).await.unwrap();
    let now = h.store.now();
    let seen: Vec<(&str, &str, bool, bool, bool)> = missing
        .iter()
        .map(|m| {
            (
                m.iuv.as_str(),
                m.receipt_id.as_str(),
                m.paid_without_rpt(),
                m.due(now),
                m.held,
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            (IUV, "RCPT-1", false, true, false),
            ("99000000000000029", "IUR-9", true, true, false),
        ]
    );

    // Not found twice: two attempts, the detail kept, not due until the pause is over.
    let later = now + time::Duration::hours(6);
    for _ in 0..2 {
        h.store
            .record_receipt_recovery(
                MILANO,
                IUV,
                "RCPT-1",
                RecoveryState::NotFound,
                Some("not found at PagoPA (404)".to_owned()),
                Some(later),
            )
            .await
            .unwrap();
    }
    let missing = h.store.missing_receipts(MILANO).await.unwrap();
    let attempt = missing[0].last_attempt.clone().unwrap();
    assert_eq!(attempt.state, RecoveryState::NotFound);
    assert_eq!(attempt.attempts, 2);
    assert_eq!(attempt.detail.as_deref(), Some("not found at PagoPA (404)"));
    assert!(!missing[0].due(now));
    assert!(missing[0].due(later));

    // The Node's receipt arrives: the key is held, only its label is behind.
    h.store.record_receipt(receipt()).await.unwrap();
    let missing = h.store.missing_receipts(MILANO).await.unwrap();
    assert!(missing[0].held);

    // Recovered: never asked again.
    let recovered = h
        .store
        .record_receipt_recovery(
            MILANO,
            IUV,
            "RCPT-1",
            RecoveryState::Recovered,
            None,
            Some(later),
        )
        .await
        .unwrap();
    assert_eq!(recovered.attempts, 3);
    assert_eq!(recovered.next_attempt_at, None);
    assert_eq!(
        h.store
            .receipt_recoveries(Some(MILANO))
            .await
            .unwrap()
            .len(),
        1
    );

    // One holder at a time; given back, another takes it.
    let (a, b) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
    assert!(
        h.store
            .take_recovery_lease(MILANO, a, 60_000)
            .await
            .unwrap()
    );
    assert!(
        !h.store
            .take_recovery_lease(MILANO, b, 60_000)
            .await
            .unwrap()
    );
    assert!(
        h.store
            .take_recovery_lease(MILANO, a, 60_000)
            .await
            .unwrap()
    );
    h.store.release_recovery_lease(MILANO, a).await.unwrap();
    assert!(
        h.store
            .take_recovery_lease(MILANO, b, 60_000)
            .await
            .unwrap()
    );
    // The FdR poller's lease on the same creditor is another lease.
    assert!(h.store.take_fdr_lease(MILANO, a, 60_000).await.unwrap());
    h.finish().await;
}
