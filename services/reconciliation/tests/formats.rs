//! The readers against the official schemas and samples in `../shared`: the PagoPA sample
//! flow is read field by field; camt and OPI documents in every version are first validated
//! with xmllint against the official XSD, then read back; malformed documents are refused
//! with the file, line and element named; a large statement streams in bounded memory.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, Read};
use std::path::{Path, PathBuf};
use std::process::Command;

use incasso_domain::notice_number::Iuv;
use incasso_domain::reconciliation::{
    CreditId, FlowId, FlowLine, OutcomeCode, ReportingFlow, TransferIndex, TransferKey,
};
use incasso_reconciliation::testing::{
    CamtEntry, CamtMessage, OpiMovement, OpiSchema, camt, cbi_statement, fdr_xml, opi,
};
use incasso_reconciliation::{
    CamtVersion, Collected, DocumentKind, FormatError, OpiVersion, ReadError, ReversalRecord,
    TreasuryAccount, read_document, read_file,
};
use time::macros::{date, datetime};

const IBAN: &str = "IT60X0542811101000000123456";

fn shared() -> PathBuf {
    std::env::var("INCASSO_SHARED").map_or_else(
        |_| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared"),
        PathBuf::from,
    )
}

/// Validates `xml` with xmllint against `schema` (relative to `../shared`).
fn validate(xml: &str, schema: &str) {
    validate_bytes(&format!("{}", xml.len()), xml.as_bytes(), schema);
}

/// Validates the document `bytes` (`name` tells it from others) with xmllint against
/// `schema`, xmllint reading them in the encoding they declare.
fn validate_bytes(name: &str, bytes: &[u8], schema: &str) {
    let schema = shared().join(schema);
    assert!(
        schema.exists(),
        "the official schema {} is missing",
        schema.display()
    );
    let file =
        std::env::temp_dir().join(format!("incasso-recon-{}-{name}.xml", std::process::id(),));
    std::fs::write(&file, bytes).unwrap();
    let output = Command::new("xmllint")
        .arg("--noout")
        .arg("--schema")
        .arg(&schema)
        .arg(&file)
        .output()
        .expect("xmllint (libxml2-utils) is needed by the conformance tests");
    let _ = std::fs::remove_file(&file);
    assert!(
        output.status.success(),
        "not valid against {}: {}\n{}",
        schema.display(),
        String::from_utf8_lossy(&output.stderr),
        String::from_utf8_lossy(bytes)
    );
}

/// Validates a giornale di cassa with xmllint against the official XSD of its version.
fn validate_opi(xml: &str, schema: OpiSchema) {
    validate(
        xml,
        &format!(
            "treasury-spec/opi/OPI_GIORNALE_DI_CASSA_V_{}.xsd",
            schema.file_suffix()
        ),
    );
}

fn read(name: &str, xml: &str) -> Result<Collected, FormatError> {
    let mut sink = Collected::default();
    read_document(name, xml.as_bytes(), &mut sink)?;
    Ok(sink)
}

#[test]
fn the_official_flusso_riversamento_sample_is_read() {
    let path = shared().join("pagopa-spec/samples/FlussoRiversamento.sanp-doc.xml");
    let mut sink = Collected::default();
    let kind = read_file(&path, &mut sink).unwrap();
    assert_eq!(kind, DocumentKind::FlussoRiversamento);
    let (header, lines) = &sink.flows[0];
    assert_eq!(
        header.flow_id.as_str(),
        "2021-11-21ABI00000-AABB648200001295"
    );
    assert_eq!(header.trn, "Bonifico SEPA-00000-AABB0");
    assert_eq!(header.regulation_date, date!(2021 - 11 - 21));
    assert_eq!(header.psp_id, "ABI00000");
    assert_eq!(header.psp_name.as_deref(), Some("BANCO DI XXXXXXXX SPA"));
    assert_eq!(header.creditor_fiscal_code, "77777777777");
    assert_eq!(header.total_cents, 123_456);
    // dataOraFlusso has no offset: Rome's local time (CET in November).
    assert_eq!(header.created_at, datetime!(2021-11-21 23:37:32 UTC));
    assert_eq!(
        lines,
        &vec![FlowLine {
            key: TransferKey::new(
                Iuv::parse("12210209926737900").unwrap(),
                "2130101502302932577",
                TransferIndex::new(1).unwrap()
            )
            .unwrap(),
            amount_cents: 123_456,
            outcome: OutcomeCode::Executed,
            paid_on: date!(2021 - 11 - 21),
        }]
    );
}

fn sample_flow() -> ReportingFlow {
    let line = |iuv: &str, iur: &str, index: i64, cents: i64, outcome| FlowLine {
        key: TransferKey::new(
            Iuv::parse(iuv).unwrap(),
            iur,
            TransferIndex::new(index).unwrap(),
        )
        .unwrap(),
        amount_cents: cents,
        outcome,
        paid_on: date!(2026 - 03 - 10),
    };
    let lines = vec![
        line("12000000000000123", "R-1", 1, 12_550, OutcomeCode::Executed),
        line("12000000000000123", "R-1", 2, 1_000, OutcomeCode::Executed),
        line("12000000000000999", "IUR-9", 1, 7, OutcomeCode::NoRpt),
    ];
    ReportingFlow {
        flow_id: FlowId::parse("2026-03-11ABI03069-0001").unwrap(),
        revision: 0,
        created_at: datetime!(2026-03-11 07:15:00 UTC),
        psp_id: "ABI03069".into(),
        trn: "0306912345678901234567890IT".into(),
        regulation_date: date!(2026 - 03 - 11),
        total_cents: lines.iter().map(|l| l.amount_cents).sum(),
        lines,
    }
}

#[test]
fn a_declared_total_other_than_the_lines_is_read_as_declared() {
    let flow = sample_flow();
    let xml = fdr_xml(&flow, "01199250158").replace(
        "<importoTotalePagamenti>135.57</importoTotalePagamenti>",
        "<importoTotalePagamenti>135.58</importoTotalePagamenti>",
    );
    let read = read("flow.xml", &xml).unwrap();
    let read = &read.reporting_flows()[0];
    assert_eq!(read.total_cents, 13_558);
    assert_eq!(read.lines, flow.lines);
    assert_eq!(read.lines_cents(), 13_557);
    let warning = read.total_discrepancy().unwrap();
    assert!(
        warning.contains("2026-03-11ABI03069-0001")
            && warning.contains("13558")
            && warning.contains("13557")
            && warning.contains("+1 cents"),
        "{warning}"
    );
    assert_eq!(sample_flow().total_discrepancy(), None);
}

#[test]
fn a_written_flow_is_valid_against_the_xsd_and_reads_back_equal() {
    let flow = sample_flow();
    let xml = fdr_xml(&flow, "01199250158");
    validate(
        &xml,
        "pagopa-spec/xsd/xsd-common/FlussoRiversamento_1_0_4.xsd",
    );
    let read = read("flow.xml", &xml).unwrap();
    assert_eq!(read.kind, Some(DocumentKind::FlussoRiversamento));
    assert_eq!(read.reporting_flows(), vec![flow]);
    assert_eq!(read.flows[0].0.creditor_fiscal_code, "01199250158");
}

fn entries() -> Vec<CamtEntry> {
    let long = format!(
        "BONIFICO SEPA DA BANCA XYZ SPA SERVIZIO PAGOPA PER CONTO DI CLIENTI VARI RIF. OPERAZIONE 123456789 {} :RI3:/PUR/LGPE-RIVERSAMENTO/URI/2026-03-11ABI03069-0001 :SEC:AB",
        "X".repeat(60)
    );
    let mut pagopa = CamtEntry::credit("ASR-1", 13_550, date!(2026 - 03 - 12), &long);
    pagopa.trn = Some("0306912345678901234567890IT".into());
    pagopa.end_to_end_id = Some("E2E-1".into());
    pagopa.debtor = Some("BANCA XYZ Servizio pagoPA".into());
    pagopa.additional_info = Some("/PUR/LGPE-RIVERSAMENTO/URI/NOT-THIS-ONE".into());
    let mut debit = CamtEntry::credit("ASR-2", 500, date!(2026 - 03 - 12), "COMMISSIONI");
    debit.credit = false;
    let mut pending = CamtEntry::credit("ASR-3", 900, date!(2026 - 03 - 12), "IN ARRIVO");
    pending.booked = false;
    let rfb = CamtEntry::credit(
        "ASR-4",
        1_200,
        date!(2026 - 03 - 11),
        "/RFB/12000000000000555/12.00/TXT/TARI 2026",
    );
    vec![pagopa, debit, pending, rfb]
}

#[test]
fn camt_statements_and_notifications_in_every_version_are_valid_and_read_back() {
    for message in [CamtMessage::Statement, CamtMessage::Notification] {
        for (version, v) in [
            (CamtVersion::V02, "02"),
            (CamtVersion::V04, "04"),
            (CamtVersion::V08, "08"),
        ] {
            let xml = camt(
                message,
                version,
                IBAN,
                date!(2026 - 03 - 11),
                date!(2026 - 03 - 12),
                &entries(),
            );
            let number = match message {
                CamtMessage::Statement => "053",
                CamtMessage::Notification => "054",
            };
            validate(
                &xml,
                &format!("treasury-spec/iso20022/camt.{number}.001.{v}.xsd"),
            );
            let read = read("statement.xml", &xml).unwrap();
            let expected_kind = match message {
                CamtMessage::Statement => DocumentKind::Camt053(version),
                CamtMessage::Notification => DocumentKind::Camt054(version),
            };
            assert_eq!(read.kind, Some(expected_kind));
            assert_eq!(read.accounts, vec![TreasuryAccount::Iban(IBAN.into())]);
            assert_eq!(read.coverage, vec![date!(2026 - 03 - 12)]);
            assert_eq!(read.other_movements, 2, "the debit and the pending entry");
            assert_eq!(read.credits.len(), 2);
            let first = &read.credits[0];
            assert_eq!(first.credit.id, CreditId::parse("ASR-1").unwrap());
            assert_eq!(first.credit.amount_cents, 13_550);
            assert_eq!(first.credit.causale, entries()[0].ustrd.concat());
            assert!(
                first.credit.causale.len() > 140,
                "split over two Ustrd and joined"
            );
            assert_eq!(
                first.credit.trn.as_deref(),
                Some("0306912345678901234567890IT")
            );
            assert_eq!(first.end_to_end_id.as_deref(), Some("E2E-1"));
            assert_eq!(
                first.ordering_party.as_deref(),
                Some("BANCA XYZ Servizio pagoPA")
            );
            assert_eq!(first.credit.booking_date, date!(2026 - 03 - 12));
            assert_eq!(read.credits[1].credit.value_date, date!(2026 - 03 - 11));
        }
    }
}

/// `xml` with the entry `reference` (whose indicator is `indicator`) marked as a reversal:
/// `<RvslInd>true</RvslInd>` right after its `CdtDbtInd`, where the schema wants it.
fn reversed(xml: &str, reference: &str, indicator: &str) -> String {
    let at = xml
        .find(&format!("<AcctSvcrRef>{reference}</AcctSvcrRef>"))
        .unwrap();
    let tag = format!("<CdtDbtInd>{indicator}</CdtDbtInd>");
    let end = xml[..at].rfind(&tag).unwrap() + tag.len();
    format!("{}<RvslInd>true</RvslInd>{}", &xml[..end], &xml[end..])
}

#[test]
fn entries_the_schema_allows_without_a_booking_day_or_as_reversals_are_not_credits() {
    let d = date!(2026 - 03 - 11);
    let paid = CamtEntry::credit("ASR-1", 13_550, d, "/PUR/LGPE-RIVERSAMENTO/URI/IUF-1");
    let mut later = CamtEntry::credit("ASR-2", 900, date!(2026 - 03 - 14), "IN ARRIVO");
    later.booked = false;
    let mut undated = CamtEntry::credit("ASR-3", 700, d, "IN ARRIVO SENZA DATA");
    undated.booked = false;
    let reversal = CamtEntry::credit("ASR-4", 13_550, d, "/PUR/LGPE-RIVERSAMENTO/URI/IUF-2");
    for (version, v) in [(CamtVersion::V02, "02"), (CamtVersion::V08, "08")] {
        let xml = camt(
            CamtMessage::Notification,
            version,
            IBAN,
            d,
            d,
            &[
                paid.clone(),
                later.clone(),
                undated.clone(),
                reversal.clone(),
            ],
        );
        // A notification need not name its period, a pending entry its booking day, and a
        // reversed debit is booked on the credit side.
        let start = xml.find("<FrToDt>").unwrap();
        let end = xml.find("</FrToDt>").unwrap() + "</FrToDt>".len();
        let xml = format!("{}{}", &xml[..start], &xml[end..]);
        let at = xml.find("<AcctSvcrRef>ASR-3</AcctSvcrRef>").unwrap();
        let dated = xml[..at].rfind("<BookgDt>").unwrap();
        let xml = format!(
            "{}{}",
            &xml[..dated],
            &xml[dated + format!("<BookgDt><Dt>{d}</Dt></BookgDt>\n").len()..]
        );
        let xml = reversed(&xml, "ASR-4", "CRDT");
        validate(
            &xml,
            &format!("treasury-spec/iso20022/camt.054.001.{v}.xsd"),
        );
        let read = read("notification.xml", &xml).unwrap();
        let ids: Vec<&str> = read.credits.iter().map(|c| c.credit.id.as_str()).collect();
        assert_eq!(ids, ["ASR-1"], "{v}");
        assert_eq!(
            read.other_movements, 3,
            "{v}: two pending entries and the reversal"
        );
        assert!(
            read.reversals.is_empty(),
            "{v}: a reversed debit reverses no credit"
        );
        assert_eq!(
            read.coverage,
            vec![d],
            "{v}: a pending entry's expected day covers nothing"
        );
    }
}

/// A debit that reverses a credit (`DBIT` with `RvslInd`) is reported as a reversal; the
/// credit stays a credit (the contract defines credits only).
#[test]
fn a_debit_reversing_a_credit_is_reported_as_a_reversal() {
    let d = date!(2026 - 03 - 11);
    let paid = CamtEntry::credit("ASR-1", 13_550, d, "/PUR/LGPE-RIVERSAMENTO/URI/IUF-1");
    let mut undone = CamtEntry::credit("ASR-9", 13_550, date!(2026 - 03 - 12), "STORNO");
    undone.credit = false;
    for (version, v) in [(CamtVersion::V02, "02"), (CamtVersion::V08, "08")] {
        let xml = camt(
            CamtMessage::Statement,
            version,
            IBAN,
            d,
            date!(2026 - 03 - 12),
            &[paid.clone(), undone.clone()],
        );
        let xml = reversed(&xml, "ASR-9", "DBIT");
        validate(
            &xml,
            &format!("treasury-spec/iso20022/camt.053.001.{v}.xsd"),
        );
        let read = read("statement.xml", &xml).unwrap();
        let ids: Vec<&str> = read.credits.iter().map(|c| c.credit.id.as_str()).collect();
        assert_eq!(ids, ["ASR-1"], "{v}");
        assert_eq!(read.other_movements, 1, "{v}");
        let reversal = ReversalRecord {
            reference: Some("ASR-9".into()),
            reverses_bill: None,
            amount_cents: Some(13_550),
            booking_date: Some(date!(2026 - 03 - 12)),
        };
        assert_eq!(read.reversals, std::slice::from_ref(&reversal), "{v}");
        let warning = reversal.warning();
        assert!(
            warning.starts_with("reversal ASR-9 of 13550 cents booked on 2026-03-12: not applied"),
            "{warning}"
        );
    }
}

#[test]
fn a_statement_covers_its_period_or_its_closing_balance_day() {
    let d = date!(2026 - 03 - 11);
    let entries = [CamtEntry::credit("ASR-1", 100, d, "BONIFICO")];
    // A period ending at midnight closes the day before.
    let xml = camt(
        CamtMessage::Statement,
        CamtVersion::V08,
        IBAN,
        d,
        d,
        &entries,
    );
    let xml = xml.replace(
        &format!("<ToDtTm>{d}T23:59:59</ToDtTm>"),
        "<ToDtTm>2026-03-12T00:00:00+01:00</ToDtTm>",
    );
    validate(&xml, "treasury-spec/iso20022/camt.053.001.08.xsd");
    assert_eq!(read("midnight.xml", &xml).unwrap().coverage, vec![d]);
    // A period written as midnight to midnight of the day it books covers that day: the
    // entry booked on it says so.
    let xml = camt(
        CamtMessage::Statement,
        CamtVersion::V08,
        IBAN,
        d,
        d,
        &entries,
    )
    .replace(
        &format!("<ToDtTm>{d}T23:59:59</ToDtTm>"),
        &format!("<ToDtTm>{d}T00:00:00</ToDtTm>"),
    );
    validate(&xml, "treasury-spec/iso20022/camt.053.001.08.xsd");
    assert_eq!(read("same-midnight.xml", &xml).unwrap().coverage, vec![d]);
    // Without a period, the closing balance's day, though the last entry is older.
    let xml = camt(
        CamtMessage::Statement,
        CamtVersion::V02,
        IBAN,
        d,
        date!(2026 - 03 - 13),
        &entries,
    );
    let start = xml.find("<FrToDt>").unwrap();
    let end = xml.find("</FrToDt>").unwrap() + "</FrToDt>".len();
    let xml = format!("{}{}", &xml[..start], &xml[end..]);
    validate(&xml, "treasury-spec/iso20022/camt.053.001.02.xsd");
    assert_eq!(
        read("closing.xml", &xml).unwrap().coverage,
        vec![date!(2026 - 03 - 13)]
    );
    // A proprietary status is no booked entry, and refuses nothing.
    let xml = camt(
        CamtMessage::Statement,
        CamtVersion::V08,
        IBAN,
        d,
        d,
        &entries,
    )
    .replace(
        "<Sts><Cd>BOOK</Cd></Sts>",
        "<Sts><Prtry>CONTABILIZZATO-PARZ</Prtry></Sts>",
    );
    validate(&xml, "treasury-spec/iso20022/camt.053.001.08.xsd");
    let read = read("proprietary.xml", &xml).unwrap();
    assert!(read.credits.is_empty());
    assert_eq!(read.other_movements, 1);
}

#[test]
fn amounts_in_every_lexical_form_of_xs_decimal_are_read() {
    let d = date!(2026 - 03 - 11);
    let entries = [
        CamtEntry::credit("ASR-1", 1_230, d, "A"),
        CamtEntry::credit("ASR-2", 50, d, "B"),
        CamtEntry::credit("ASR-3", 1_200, d, "C"),
    ];
    let xml = camt(
        CamtMessage::Statement,
        CamtVersion::V08,
        IBAN,
        d,
        d,
        &entries,
    )
    .replace(">12.30<", ">+12.30<")
    .replace(">0.50<", ">.50<")
    .replace(">12.00<", ">0012.<");
    validate(&xml, "treasury-spec/iso20022/camt.053.001.08.xsd");
    let cents: Vec<i64> = read("decimals.xml", &xml)
        .unwrap()
        .credits
        .iter()
        .map(|c| c.credit.amount_cents)
        .collect();
    assert_eq!(cents, [1_230, 50, 1_200]);
}

#[test]
fn opi_giornali_in_every_version_are_valid_and_read_back() {
    for (schema, version) in [
        (OpiSchema::V1_4, OpiVersion::V1_4),
        (OpiSchema::V1_6_1, OpiVersion::V1_6To1_8),
        (OpiSchema::V1_7_1, OpiVersion::V1_6To1_8),
        (OpiSchema::V1_8, OpiVersion::V1_6To1_8),
    ] {
        let mut credit = OpiMovement::credit(
            "CRI-0001",
            13_550,
            date!(2026 - 03 - 12),
            "/PUR/LGPE-RIVERSAMENTO/URI/2026-03-11ABI03069-0001",
        );
        credit.trn = Some("0306912345678901234567890IT".into());
        let mut reversed = OpiMovement::credit("CRI-0002", 100, date!(2026 - 03 - 12), "X");
        reversed.operation = "STORNATO";
        let mut outgoing = OpiMovement::credit("CRI-0003", 100, date!(2026 - 03 - 12), "Y");
        outgoing.entrata = false;
        let xml = opi(
            schema,
            "C0MI01",
            date!(2026 - 03 - 12),
            &[credit, reversed, outgoing],
        );
        // The STORNATO names the bill it reverses.
        let stornato = xml
            .find("<tipo_operazione>STORNATO</tipo_operazione>")
            .unwrap();
        let bill_end = stornato
            + xml[stornato..]
                .find("</numero_bolletta_quietanza>")
                .unwrap()
            + "</numero_bolletta_quietanza>".len();
        let xml = format!(
            "{}\n<numero_bolletta_quietanza_storno>77</numero_bolletta_quietanza_storno>{}",
            &xml[..bill_end],
            &xml[bill_end..]
        );
        validate_opi(&xml, schema);
        let read = read("giornale.xml", &xml).unwrap();
        assert_eq!(read.kind, Some(DocumentKind::Opi(version)), "{schema:?}");
        assert_eq!(
            read.accounts,
            vec![TreasuryAccount::OpiEntity("C0MI01".into())]
        );
        assert_eq!(read.coverage, vec![date!(2026 - 03 - 12)]);
        assert_eq!(read.other_movements, 2);
        // The STORNATO is reported, with what it says of itself.
        assert_eq!(
            read.reversals,
            [ReversalRecord {
                reference: Some("CRI-0002".into()),
                reverses_bill: Some("2026/77".into()),
                amount_cents: Some(100),
                booking_date: Some(date!(2026 - 03 - 12)),
            }],
            "{schema:?}"
        );
        assert_eq!(read.credits.len(), 1);
        let c = &read.credits[0];
        assert_eq!(c.credit.id.as_str(), "CRI-0001");
        assert_eq!(c.credit.amount_cents, 13_550);
        assert_eq!(
            c.credit.causale,
            "/PUR/LGPE-RIVERSAMENTO/URI/2026-03-11ABI03069-0001"
        );
        assert_eq!(c.credit.trn.as_deref(), Some("0306912345678901234567890IT"));
        assert_eq!(c.ordering_party.as_deref(), Some("PSP SPA Servizio pagoPA"));
    }
}

#[test]
fn a_giornale_of_version_1_4_names_its_entity_in_free_text() {
    // OPI 1.4 (OPI_GLOBAL 1.3.1) types codice_ente as any string; 1.6.1 on, six capitals.
    let credit = OpiMovement::credit("CRI-0001", 100, date!(2026 - 03 - 12), "X");
    let xml = opi(OpiSchema::V1_4, "c_f205", date!(2026 - 03 - 12), &[credit]);
    validate_opi(&xml, OpiSchema::V1_4);
    let read = read("giornale-1.4.xml", &xml).unwrap();
    assert_eq!(
        read.accounts,
        vec![TreasuryAccount::OpiEntity("c_f205".into())]
    );
    assert_eq!(read.credits.len(), 1);
}

#[test]
fn a_credit_without_its_internal_reference_is_identified_by_its_bill() {
    let day = date!(2026 - 03 - 12);
    for schema in [OpiSchema::V1_4, OpiSchema::V1_8] {
        let xml = opi(
            schema,
            "C0MI01",
            day,
            &[
                OpiMovement::credit("CRI-0001", 100, day, "X"),
                OpiMovement::credit("CRI-0002", 200, day, "Y"),
            ],
        )
        .replace(
            "<codice_riferimento_interno>CRI-0002</codice_riferimento_interno>\n",
            "",
        );
        validate_opi(&xml, schema);
        let read = read("giornale.xml", &xml).unwrap();
        let ids: Vec<&str> = read.credits.iter().map(|c| c.credit.id.as_str()).collect();
        // The second movement's bill: numero_bolletta_quietanza 2 of esercizio 2026.
        assert_eq!(ids, ["CRI-0001", "2026/2"], "{schema:?}");
    }
}

fn statement_lines() -> String {
    camt(
        CamtMessage::Statement,
        CamtVersion::V02,
        IBAN,
        date!(2026 - 03 - 11),
        date!(2026 - 03 - 12),
        &entries(),
    )
}

fn line_of(xml: &str, needle: &str) -> u64 {
    xml.lines()
        .position(|l| l.contains(needle))
        .map(|i| i as u64 + 1)
        .unwrap()
}

#[test]
fn a_malformed_document_is_refused_with_file_line_and_element() {
    // A comma amount.
    let xml = statement_lines().replacen(">135.50<", ">135,50<", 1);
    let error = read("march.xml", &xml).unwrap_err();
    assert_eq!(error.file, "march.xml");
    assert_eq!(error.line, line_of(&xml, "135,50"));
    assert_eq!(error.element, "Document/BkToCstmrStmt/Stmt/Ntry/Amt");
    assert!(error.reason.contains("135,50"), "{error}");
    assert!(
        error.to_string().starts_with(&format!(
            "march.xml: line {}, element Document/BkToCstmrStmt/Stmt/Ntry/Amt:",
            error.line
        )),
        "{error}"
    );

    // Cut short.
    let xml = statement_lines();
    let cut = &xml[..xml.len() / 2];
    let error = read("cut.xml", cut).unwrap_err();
    assert!(error.reason.contains("ends inside"), "{error}");
    assert!(
        error.element.starts_with("Document/BkToCstmrStmt/Stmt"),
        "{error}"
    );

    // Tags that do not match.
    let xml = statement_lines().replacen("</CdtDbtInd>", "</CdtDbtIndX>", 1);
    let error = read("tags.xml", &xml).unwrap_err();
    assert!(error.reason.contains("not well-formed"), "{error}");
    assert_eq!(error.line, line_of(&xml, "CdtDbtIndX"));

    // A credit the bank did not identify.
    let xml = statement_lines().replacen("<AcctSvcrRef>ASR-1</AcctSvcrRef>", "", 1);
    let error = read("noref.xml", &xml).unwrap_err();
    assert!(error.reason.contains("AcctSvcrRef"), "{error}");
    assert_eq!(error.element, "Document/BkToCstmrStmt/Stmt/Ntry");

    // Another currency.
    let xml = statement_lines().replacen("Ccy=\"EUR\">135.50", "Ccy=\"USD\">135.50", 1);
    let error = read("usd.xml", &xml).unwrap_err();
    assert!(error.reason.contains("USD"), "{error}");

    // A DTD (entity expansion) is never processed.
    let xml = statement_lines().replacen(
        "<Document",
        "<!DOCTYPE Document [<!ENTITY x \"y\">]>\n<Document",
        1,
    );
    let error = read("dtd.xml", &xml).unwrap_err();
    assert!(error.reason.contains("document type"), "{error}");

    // Not a format incasso reads, and an unsupported camt version.
    let error = read("x.xml", "<Invoice/>").unwrap_err();
    assert!(error.reason.contains("<Invoice>"), "{error}");
    let xml = statement_lines().replace("camt.053.001.02", "camt.053.001.06");
    let error = read("v6.xml", &xml).unwrap_err();
    assert!(error.reason.contains("camt.053.001.06"), "{error}");

    // A flow whose count disagrees with its lines.
    let flow = sample_flow();
    let xml = fdr_xml(&flow, "01199250158").replace(
        &format!(
            "<numeroTotalePagamenti>{}</numeroTotalePagamenti>",
            flow.lines.len()
        ),
        &format!(
            "<numeroTotalePagamenti>{}</numeroTotalePagamenti>",
            flow.lines.len() + 1
        ),
    );
    let error = read("flow.xml", &xml).unwrap_err();
    assert!(error.reason.contains("numeroTotalePagamenti"), "{error}");
    assert_eq!(error.element, "FlussoRiversamento");

    // A flow line with a bad IUV names the line's field.
    let xml = fdr_xml(&flow, "01199250158").replacen("12000000000000999", "1200-0000", 1);
    let error = read("flow.xml", &xml).unwrap_err();
    assert_eq!(
        error.element,
        "FlussoRiversamento/datiSingoliPagamenti/identificativoUnivocoVersamento"
    );
    assert_eq!(error.line, line_of(&xml, "1200-0000"));
}

#[test]
fn a_missing_file_is_an_io_error_naming_it() {
    let mut sink = Collected::default();
    let error = read_file(Path::new("/nonexistent/statement.xml"), &mut sink).unwrap_err();
    assert!(matches!(error, ReadError::Io { .. }));
    assert!(error.to_string().contains("/nonexistent/statement.xml"));
}

/// A camt.053 statement of `entries` credits, produced as it is read.
struct GeneratedStatement {
    head: Vec<u8>,
    template: String,
    entry: usize,
    entries: usize,
    buffer: Vec<u8>,
    position: usize,
    done: bool,
}

impl GeneratedStatement {
    fn new(entries: usize) -> Self {
        let whole = camt(
            CamtMessage::Statement,
            CamtVersion::V08,
            IBAN,
            date!(2026 - 03 - 11),
            date!(2026 - 03 - 12),
            &[],
        );
        let head = whole.split("</Stmt>").next().unwrap().as_bytes().to_vec();
        let mut e = CamtEntry::credit(
            "ASR-999999",
            100_000,
            date!(2026 - 03 - 12),
            "/PUR/LGPE-RIVERSAMENTO/URI/2026-03-11PSP999999-X",
        );
        e.trn = Some("TRN999999".into());
        let one = camt(
            CamtMessage::Statement,
            CamtVersion::V08,
            IBAN,
            date!(2026 - 03 - 11),
            date!(2026 - 03 - 12),
            &[e],
        );
        let template = one[one.find("<Ntry>").unwrap()..one.find("</Stmt>").unwrap()].to_owned();
        Self {
            head,
            template,
            entry: 0,
            entries,
            buffer: Vec::new(),
            position: 0,
            done: false,
        }
    }

    fn refill(&mut self) {
        self.buffer.clear();
        self.position = 0;
        if !self.head.is_empty() {
            self.buffer = std::mem::take(&mut self.head);
        } else if self.entry < self.entries {
            self.buffer = self
                .template
                .replace("999999", &self.entry.to_string())
                .replace(
                    "1000.00",
                    &format!(
                        "{}.{:02}",
                        (100 + self.entry) / 100,
                        (100 + self.entry) % 100
                    ),
                )
                .into_bytes();
            self.entry += 1;
        } else if !self.done {
            self.buffer = b"</Stmt>\n</BkToCstmrStmt>\n</Document>\n".to_vec();
            self.done = true;
        }
    }
}

impl Read for GeneratedStatement {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        let available = self.fill_buf()?;
        let n = available.len().min(out.len());
        out[..n].copy_from_slice(&available[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl BufRead for GeneratedStatement {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        if self.position >= self.buffer.len() {
            self.refill();
        }
        Ok(&self.buffer[self.position..])
    }

    fn consume(&mut self, amount: usize) {
        self.position += amount;
    }
}

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// Counts without keeping.
#[derive(Default)]
struct Counting {
    credits: u64,
    cents: i64,
}

impl incasso_reconciliation::Sink for Counting {
    fn kind(&mut self, _: DocumentKind) -> Result<(), String> {
        Ok(())
    }
    fn flow(&mut self, _: &incasso_reconciliation::FlowHeader) -> Result<(), String> {
        Ok(())
    }
    fn flow_line(&mut self, _: FlowLine) -> Result<(), String> {
        Ok(())
    }
    fn account(&mut self, _: &TreasuryAccount) -> Result<(), String> {
        Ok(())
    }
    fn credit(&mut self, credit: incasso_reconciliation::CreditRecord) -> Result<(), String> {
        self.credits += 1;
        self.cents += credit.credit.amount_cents;
        Ok(())
    }
    fn other_movement(&mut self) -> Result<(), String> {
        Ok(())
    }
    fn reversal(&mut self, _: incasso_reconciliation::ReversalRecord) -> Result<(), String> {
        Ok(())
    }
    fn coverage(&mut self, _: time::Date) -> Result<(), String> {
        Ok(())
    }
}

#[test]
fn a_large_statement_streams_in_bounded_memory() {
    const ENTRIES: usize = 50_000;
    let before = peak_rss_kib();
    let mut sink = Counting::default();
    let kind = read_document("big.xml", GeneratedStatement::new(ENTRIES), &mut sink).unwrap();
    let grown_kib = peak_rss_kib().saturating_sub(before);
    assert_eq!(kind, DocumentKind::Camt053(CamtVersion::V08));
    assert_eq!(sink.credits, ENTRIES as u64);
    let n = ENTRIES as i64;
    assert_eq!(sink.cents, 100 * n + n * (n - 1) / 2);
    // The document is about 40 MB; reading it must not hold it.
    assert!(grown_kib < 16 * 1024, "peak RSS grew by {grown_kib} KiB");
}

/// `text` in ISO-8859-1, one byte per character (every character of it must have one).
fn latin_1(text: &str) -> Vec<u8> {
    text.chars()
        .map(|c| u8::try_from(u32::from(c)).expect("a character ISO-8859-1 has"))
        .collect()
}

/// `text` in windows-1252: ISO-8859-1 but for the euro sign (0x80) this test needs.
fn windows_1252(text: &str) -> Vec<u8> {
    text.chars()
        .map(|c| match c {
            '€' => 0x80,
            c => u8::try_from(u32::from(c)).expect("a character windows-1252 has"),
        })
        .collect()
}

/// `text` in UTF-16, little-endian, after its byte order mark.
fn utf16_le(text: &str) -> Vec<u8> {
    let mut bytes = vec![0xFF, 0xFE];
    bytes.extend(text.encode_utf16().flat_map(u16::to_le_bytes));
    bytes
}

fn declaring(xml: &str, encoding: &str) -> String {
    xml.replacen("encoding=\"UTF-8\"", &format!("encoding=\"{encoding}\""), 1)
}

/// Banks still write statements in ISO-8859-1 or windows-1252: each is read in the encoding
/// it declares (its accents and euro signs intact), and so are UTF-16 and a UTF-8 byte order
/// mark. xmllint, reading the same bytes against the official schema, agrees they are valid.
#[test]
fn a_statement_is_read_in_the_encoding_it_declares() {
    let causale =
        "TARI 2026 CITTÀ DI MILANO 12,00 € /PUR/LGPE-RIVERSAMENTO/URI/2026-03-11ABI03069-0001";
    let mut entry = CamtEntry::credit("ASR-1", 1_200, date!(2026 - 03 - 12), causale);
    entry.debtor = Some("Società Pagamenti S.p.A.".into());
    let xml = camt(
        CamtMessage::Statement,
        CamtVersion::V08,
        IBAN,
        date!(2026 - 03 - 11),
        date!(2026 - 03 - 12),
        &[entry],
    );
    let latin = xml.replace(" €", " EUR");
    let expected_latin = causale.replace(" €", " EUR");
    let mut bom = vec![0xEF, 0xBB, 0xBF];
    bom.extend_from_slice(xml.as_bytes());
    for (name, bytes, expected) in [
        (
            "iso-8859-1.xml",
            latin_1(&declaring(&latin, "ISO-8859-1")),
            expected_latin.as_str(),
        ),
        (
            "windows-1252.xml",
            windows_1252(&declaring(&xml, "windows-1252")),
            causale,
        ),
        ("utf-16.xml", utf16_le(&declaring(&xml, "UTF-16")), causale),
        ("utf-8-bom.xml", bom, causale),
    ] {
        validate_bytes(name, &bytes, "treasury-spec/iso20022/camt.053.001.08.xsd");
        let mut read = Collected::default();
        let kind =
            read_document(name, &bytes[..], &mut read).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(kind, DocumentKind::Camt053(CamtVersion::V08), "{name}");
        assert_eq!(read.credits.len(), 1, "{name}");
        let credit = &read.credits[0];
        assert_eq!(credit.credit.causale, expected, "{name}");
        assert_eq!(
            credit.ordering_party.as_deref(),
            Some("Società Pagamenti S.p.A."),
            "{name}"
        );
        assert_eq!(credit.credit.amount_cents, 1_200, "{name}");
    }
}

#[test]
fn a_giornale_di_cassa_in_iso_8859_1_is_read() {
    let mut credit = OpiMovement::credit(
        "CRI-0001",
        13_550,
        date!(2026 - 03 - 12),
        "RIVERSAMENTO ENTRATE CITTÀ /PUR/LGPE-RIVERSAMENTO/URI/2026-03-11ABI03069-0001",
    );
    credit.ordering_party = "Società di pagamento".into();
    let xml = opi(OpiSchema::V1_8, "C0MI01", date!(2026 - 03 - 12), &[credit]);
    let bytes = latin_1(&declaring(&xml, "ISO-8859-1"));
    validate_bytes(
        "giornale.xml",
        &bytes,
        "treasury-spec/opi/OPI_GIORNALE_DI_CASSA_V_1_8.xsd",
    );
    let mut read = Collected::default();
    read_document("giornale.xml", &bytes[..], &mut read).unwrap();
    assert_eq!(
        read.credits[0].credit.causale,
        "RIVERSAMENTO ENTRATE CITTÀ /PUR/LGPE-RIVERSAMENTO/URI/2026-03-11ABI03069-0001"
    );
    assert_eq!(
        read.credits[0].ordering_party.as_deref(),
        Some("Società di pagamento")
    );
}

/// An encoding incasso cannot read, or a declaration the bytes contradict, refuses the file
/// at its first line, naming the encoding; bytes that are not UTF-8 in a file that declares
/// nothing are refused at their element, as before.
#[test]
fn an_encoding_that_cannot_be_read_refuses_the_file_naming_it() {
    let xml = statement_lines();
    for (declared, says) in [
        ("EBCDIC-IT", "'EBCDIC-IT', which is not one incasso knows"),
        ("UTF-16", "'UTF-16', but the file is not written in it"),
    ] {
        let error = read("statement.xml", &declaring(&xml, declared)).unwrap_err();
        assert_eq!(error.file, "statement.xml");
        assert_eq!(error.line, 1, "{error}");
        assert!(error.reason.contains(says), "{error}");
        assert!(error.to_string().contains(declared), "{error}");
    }
    let latin_undeclared = latin_1(&xml.replace("COMMISSIONI", "COMMISSIONI ÀÈ"));
    let mut sink = Collected::default();
    let error = read_document("statement.xml", &latin_undeclared[..], &mut sink).unwrap_err();
    assert_eq!(error.line, line_of(&xml, "COMMISSIONI"), "{error}");
    assert!(error.element.ends_with("Ustrd"), "{error}");
}

fn cbi_entries() -> Vec<CamtEntry> {
    let mut credit = CamtEntry::credit(
        "002300059736330",
        13_550,
        date!(2026 - 03 - 12),
        "/PUR/LGPE-RIVERSAMENTO/URI/2026-03-11ABI03069-0001",
    );
    credit.value_date = date!(2026 - 03 - 11);
    credit.trn = Some("0306927563392306481710017100IT".into());
    credit.end_to_end_id = Some("E2E-CBI-1".into());
    credit.debtor = Some("BANCA XYZ Servizio pagoPA".into());
    credit.additional_info = Some("BO:0306909606:TRN:0306927563392306481710017100IT".into());
    let mut fee = CamtEntry::credit("002300059736331", 500, date!(2026 - 03 - 12), "");
    fee.credit = false;
    vec![credit, fee]
}

/// CBI statements, the envelope Italian banks wrap camt.053.001.02 in, are read like a camt
/// statement: the credit is identified by its transaction's `AcctSvcrRef`, which CBI writes
/// under `TxDtls/Refs` rather than on the entry; every statement of a physical message
/// names its account.
#[test]
fn a_cbi_statement_is_read_as_the_camt_statements_it_wraps() {
    let other = "IT02L1234512345123456789012";
    let entries = cbi_entries();
    let xml = cbi_statement(
        date!(2026 - 03 - 12),
        &[(IBAN, &entries[..]), (other, &entries[..])],
    );
    let physical = read("cbi.xml", &xml).unwrap();
    assert_eq!(physical.kind, Some(DocumentKind::CbiStatement));
    assert_eq!(
        physical.accounts,
        vec![
            TreasuryAccount::Iban(IBAN.into()),
            TreasuryAccount::Iban(other.into())
        ]
    );
    assert_eq!(physical.other_movements, 2, "the debits");
    assert_eq!(physical.credits.len(), 2);
    let credit = &physical.credits[0];
    assert_eq!(credit.credit.id.as_str(), "002300059736330");
    assert_eq!(credit.credit.amount_cents, 13_550);
    assert_eq!(credit.credit.booking_date, date!(2026 - 03 - 12));
    assert_eq!(credit.credit.value_date, date!(2026 - 03 - 11));
    assert_eq!(
        credit.credit.causale,
        "/PUR/LGPE-RIVERSAMENTO/URI/2026-03-11ABI03069-0001"
    );
    assert_eq!(
        credit.credit.trn.as_deref(),
        Some("0306927563392306481710017100IT")
    );
    assert_eq!(credit.end_to_end_id.as_deref(), Some("E2E-CBI-1"));
    assert_eq!(
        credit.ordering_party.as_deref(),
        Some("BANCA XYZ Servizio pagoPA")
    );
    assert_eq!(
        physical.coverage,
        vec![date!(2026 - 03 - 12), date!(2026 - 03 - 12)]
    );
    assert_eq!(
        DocumentKind::CbiStatement.to_string(),
        "CBI statement (camt.053.001.02)"
    );

    // One logical message on its own is a CBI statement too.
    let from = xml.find("<BDY:CBIBkToCstmrStmtReqLogMsg>").unwrap();
    let to = xml.find("</BDY:CBIBkToCstmrStmtReqLogMsg>").unwrap();
    let logical = format!(
        "<?xml version=\"1.0\"?>\n<DATA:CBIBkToCstmrStmtReqLogMsg xmlns:DATA=\"urn:CBI:xsd:CBIBkToCstmrStmtReqLogMsg.00.01.02\" xmlns:DLY=\"urn:CBI:xsd:CBIDlyStmtReqLogMsg.00.01.02\">{}</DATA:CBIBkToCstmrStmtReqLogMsg>\n",
        &xml[from + "<BDY:CBIBkToCstmrStmtReqLogMsg>".len()..to]
    );
    let logical = read("cbi-logical.xml", &logical).unwrap();
    assert_eq!(logical.kind, Some(DocumentKind::CbiStatement));
    assert_eq!(logical.credits.len(), 1);
    assert_eq!(logical.credits[0].credit.id.as_str(), "002300059736330");
}

#[test]
fn a_cbi_statement_of_another_version_or_without_a_reference_is_refused() {
    let xml = cbi_statement(date!(2026 - 03 - 12), &[(IBAN, &cbi_entries()[..])]);
    let later = xml.replace(
        "urn:CBI:xsd:CBIBdyBkToCstmrStmtReq.00.01.02",
        "urn:CBI:xsd:CBIBdyBkToCstmrStmtReq.00.02.00",
    );
    let error = read("cbi.xml", &later).unwrap_err();
    assert_eq!(error.line, 2, "{error}");
    assert!(
        error
            .reason
            .contains("'urn:CBI:xsd:CBIBdyBkToCstmrStmtReq.00.02.00' is not read"),
        "{error}"
    );
    let unnamed = xml.replace("<DLY:AcctSvcrRef>002300059736330</DLY:AcctSvcrRef>", "");
    let error = read("cbi.xml", &unnamed).unwrap_err();
    assert!(error.element.ends_with("Stmt/Ntry"), "{error}");
    assert!(
        error.reason.contains("Ntry/AcctSvcrRef is missing"),
        "{error}"
    );
}

proptest::proptest! {
    /// Whatever a causale says, a statement written in ISO-8859-1 or UTF-16 and declaring so
    /// reads back exactly what was written.
    #[test]
    fn a_causale_reads_back_in_the_encoding_declared(
        causale in "[!-~\u{A0}-\u{FF}][ -~\u{A0}-\u{FF}]{0,139}",
        utf16 in proptest::prelude::any::<bool>(),
    ) {
        let xml = camt(
            CamtMessage::Statement,
            CamtVersion::V02,
            IBAN,
            date!(2026 - 03 - 11),
            date!(2026 - 03 - 12),
            &[CamtEntry::credit("ASR-1", 100, date!(2026 - 03 - 12), &causale)],
        );
        let bytes = if utf16 {
            utf16_le(&declaring(&xml, "UTF-16"))
        } else {
            latin_1(&declaring(&xml, "ISO-8859-1"))
        };
        let mut sink = Collected::default();
        read_document("statement.xml", &bytes[..], &mut sink).unwrap();
        proptest::prop_assert_eq!(&sink.credits[0].credit.causale, &causale);
    }
}

/// A bank cuts a long causale into 140-character pieces that keep their spaces: a piece that
/// starts with spaces before an escaped character, one that is only spaces, and a no-break
/// space all survive, so the concatenation is the text the bank was given.
#[test]
fn white_space_inside_a_causale_is_kept() {
    let mut entry = CamtEntry::credit("ASR-1", 100, date!(2026 - 03 - 12), "");
    entry.ustrd = vec![
        "RIMBORSO".into(),
        "  & SPESE".into(),
        "   ".into(),
        "\u{a0}/RFB/12000000000000555".into(),
    ];
    let xml = camt(
        CamtMessage::Statement,
        CamtVersion::V02,
        IBAN,
        date!(2026 - 03 - 11),
        date!(2026 - 03 - 12),
        &[entry],
    );
    assert_eq!(
        read("statement.xml", &xml).unwrap().credits[0]
            .credit
            .causale,
        "RIMBORSO  & SPESE   \u{a0}/RFB/12000000000000555"
    );
}
