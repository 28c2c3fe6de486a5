//! The finance office's report (`incasso recon report`) of a day's evidence delivered the real
//! ways: receipts over SOAP by the Node simulator (a TARI with the Città Metropolitana's TEFA,
//! a school fee, a notice incasso never issued, a notice paid twice, a cancelled notice paid
//! anyway), two reporting flows and a camt.053 statement through ImportDocument. The workbook
//! is opened with calamine, an independent reader, and its sheets, headers, cell values and
//! cell types are checked against that evidence; the CSV files are parsed with both styles.
//! Every expected value below is computed from the evidence this test sends.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use calamine::{Data, Reader, Xlsx, open_workbook};
use incasso_domain::reconciliation::TransferKey;
use incasso_grpc::pb;
use incasso_integration_tests::node_simulator::{self as node, MILANO_BANK, ReceiptSpec};
use incasso_integration_tests::requests::{self, MILANO};
use incasso_integration_tests::{Engine, TestApp};
use incasso_reconciliation::CamtVersion;
use incasso_reconciliation::testing::{CamtEntry, CamtMessage, camt};
use incasso_server::report::csv::{CsvReport, CsvStyle};
use incasso_server::report::xlsx::XlsxReport;
use incasso_server::report::{ReportRange, write_report};
use time::macros::date;

use crate::on_both_engines;
use crate::recon_evidence::{flow, line, transfer_key};

on_both_engines!(the_finance_office_opens_the_report_of_a_range);

/// Regulated on 24 November: reports the TARI, the legacy notice and a lost receipt.
const FLOW: &str = "2026-11-24BCITITMM-S000000001";
/// Regulated on 20 November, paid on the 19th: outside the report's range.
const OLD_FLOW: &str = "2026-11-20UNCRITMM-S000000009";
const LEGACY_IUV: &str = "12999999999999934";
const LOST_IUV: &str = "12999999999999942";
const OLD_IUV: &str = "12999999999999950";

fn key(iuv: &str, receipt_id: &str) -> TransferKey {
    transfer_key(iuv, receipt_id, 1)
}

async fn import(app: &TestApp, name: &str, document: &str) -> anyhow::Result<()> {
    let mut client = app.reconciliation().await?;
    client
        .import_document(tokio_stream::iter([pb::ImportDocumentRequest {
            file_name: name.to_owned(),
            content: document.as_bytes().to_vec(),
        }]))
        .await?;
    Ok(())
}

/// The IUVs of the notices paid on 23 November.
struct Paid {
    tari: String,
    fee: String,
    twice: String,
    cancelled: String,
}

async fn pay(app: &TestApp) -> anyhow::Result<Paid> {
    let mut notices = app.notices().await?;
    let mut create = async |request| -> anyhow::Result<pb::Installment> {
        let position = notices.create_debt_position(request).await?.into_inner();
        Ok(position.payment_options[0].installments[0].clone())
    };
    let tari = create(requests::tari("rr-tari")).await?;
    let fee = create(requests::school_fee("rr-fee")).await?;
    let twice = create(requests::school_fee("rr-twice")).await?;
    let cancelled_position = notices
        .create_debt_position(requests::school_fee("rr-cancelled"))
        .await?
        .into_inner();
    notices
        .cancel_debt_position(pb::CancelDebtPositionRequest {
            request_id: "rr-cancelled-cancel".to_owned(),
            id: cancelled_position.id.clone(),
            reason: "ritiro".to_owned(),
        })
        .await?;
    let cancelled = cancelled_position.payment_options[0].installments[0].clone();
    let at = "2026-11-23T10:00:00";
    for spec in [
        ReceiptSpec::paying(&tari, "rt-tari", "BCITITMM", at),
        ReceiptSpec::paying(&fee, "rt-fee", "BCITITMM", at),
        ReceiptSpec::paying(&twice, "rt-twice-1", "BCITITMM", at),
        ReceiptSpec::paying(&twice, "rt-twice-2", "POSOIT22XXX", "2026-11-23T11:00:00"),
        ReceiptSpec::paying(&cancelled, "rt-cancelled", "BCITITMM", at),
    ] {
        node::deliver_receipt(app.soap_addr, &spec).await?;
    }
    let mut legacy = ReceiptSpec::paying(&fee, "rt-legacy", "BCITITMM", at);
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
        tari: tari.iuv,
        fee: fee.iuv,
        twice: twice.iuv,
        cancelled: cancelled.iuv,
    })
}

async fn evidence(app: &TestApp, paid: &Paid) -> anyhow::Result<()> {
    let main = flow(
        FLOW,
        "BCITITMM",
        date!(2026 - 11 - 24),
        vec![
            line(key(&paid.tari, "rt-tari"), 28_500, date!(2026 - 11 - 23)),
            line(key(LEGACY_IUV, "rt-legacy"), 5_000, date!(2026 - 11 - 23)),
            line(key(LOST_IUV, "rt-lost"), 2_000, date!(2026 - 11 - 23)),
        ],
    );
    import(app, "flow-bcititmm.xml", &main).await?;
    let old = flow(
        OLD_FLOW,
        "UNCRITMM",
        date!(2026 - 11 - 20),
        vec![line(key(OLD_IUV, "rt-old"), 1_000, date!(2026 - 11 - 19))],
    );
    import(app, "flow-uncritmm.xml", &old).await?;
    let day = date!(2026 - 11 - 25);
    let statement = camt(
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
                &format!("/RFB/{}/465.00/TXT/RETTA NIDO", paid.fee),
            ),
            CamtEntry::credit("ASR-0003", 12_345, day, "RIMBORSO SPESE CONDOMINIALI"),
        ],
    );
    import(app, "statement-1125.xml", &statement).await?;
    Ok(())
}

/// Excel's serial number of a day (days since 30 December 1899).
fn serial(day: time::Date) -> f64 {
    let days = (day - date!(1899 - 12 - 30)).whole_days();
    f64::from(i32::try_from(days).unwrap())
}

fn text(cell: &Data) -> &str {
    match cell {
        Data::String(s) => s,
        other => panic!("not a text cell: {other:?}"),
    }
}

/// A number cell's value; a number written as text fails.
fn number(cell: &Data) -> f64 {
    match cell {
        Data::Float(f) => *f,
        other => panic!("not a number cell: {other:?}"),
    }
}

/// A date cell's serial; a date written as text or as a plain number fails.
fn day(cell: &Data) -> f64 {
    match cell {
        Data::DateTime(d) => d.as_f64(),
        other => panic!("not a date cell: {other:?}"),
    }
}

type Rows = Vec<Vec<Data>>;

fn sheet(workbook: &mut Xlsx<std::io::BufReader<std::fs::File>>, name: &str) -> Rows {
    let range = workbook.worksheet_range(name).unwrap();
    range.rows().map(<[Data]>::to_vec).collect()
}

fn headers(rows: &Rows) -> Vec<&str> {
    rows[0].iter().map(text).collect()
}

/// The row whose column `col` holds `value`.
fn row_with<'a>(rows: &'a Rows, col: usize, value: &str) -> &'a [Data] {
    rows.iter()
        .skip(1)
        .find(|r| matches!(&r[col], Data::String(s) if s == value))
        .unwrap_or_else(|| panic!("no row with {value} in column {col}: {rows:#?}"))
}

/// The sheet's XML part, to see what calamine does not expose (the frozen pane).
fn sheet_xml(path: &Path, index: usize) -> String {
    let file = std::fs::File::open(path).unwrap();
    let mut archive = zip::ZipArchive::new(file).unwrap();
    let mut part = archive
        .by_name(&format!("xl/worksheets/sheet{index}.xml"))
        .unwrap();
    let mut xml = String::new();
    part.read_to_string(&mut xml).unwrap();
    xml
}

/// The expected Riepilogo: (code, transfers count, transfers cents, credits count, credits
/// cents), from the evidence sent above.
const SUMMARY: [(&str, f64, f64, f64, f64); 10] = [
    // The notice paid twice: both keys.
    ("DOPPI", 2.0, 930.0, 0.0, 0.0),
    // The lost receipt's line.
    ("IUV_NO_RT", 1.0, 20.0, 0.0, 0.0),
    ("IUF_TES_DIV_IMP", 0.0, 0.0, 0.0, 0.0),
    ("IUF_NO_TES", 0.0, 0.0, 0.0, 0.0),
    // The TARI's Milan transfer and the legacy notice; the flow's credit.
    ("RT_IUF_TES", 2.0, 335.0, 1.0, 355.0),
    ("RT_IUF", 0.0, 0.0, 0.0, 0.0),
    // The school fee and its /RFB/ credit.
    ("RT_TES", 1.0, 465.0, 1.0, 465.0),
    // The cancelled notice, paid anyway and never reported.
    ("RT_NO_IUF", 1.0, 465.0, 0.0, 0.0),
    ("TES_NO_IUF_OR_IUV", 0.0, 0.0, 0.0, 0.0),
    ("TES_NO_MATCH", 0.0, 0.0, 1.0, 123.45),
];

async fn the_finance_office_opens_the_report_of_a_range(engine: Engine) -> anyhow::Result<()> {
    let app = TestApp::spawn(engine).await?;
    let paid = pay(&app).await?;
    evidence(&app, &paid).await?;
    let dir = tempfile::tempdir()?;
    let range = ReportRange::parse(Some(MILANO), "2026-11-23", "2026-11-25")?;

    let path = dir.path().join("riconciliazione.xlsx");
    let mut workbook = XlsxReport::create(&path)?;
    write_report(&app.store, &range, &mut workbook).await?;
    assert_eq!(workbook.finish()?, path);
    assert_eq!(
        std::fs::read_dir(dir.path())?.count(),
        1,
        "no temporary file is left"
    );

    let mut book: Xlsx<_> = open_workbook(&path)?;
    assert_eq!(
        book.sheet_names(),
        [
            "Riepilogo",
            "Anomalie",
            "Flussi",
            "Tesoreria",
            "Doppi pagamenti",
            "Storni"
        ]
    );

    // Riepilogo: one row per label code, then the totals.
    let summary = sheet(&mut book, "Riepilogo");
    assert_eq!(
        headers(&summary),
        [
            "Voce",
            "Descrizione",
            "Trasferimenti (numero)",
            "Trasferimenti (importo)",
            "Accrediti (numero)",
            "Accrediti (importo)"
        ]
    );
    assert_eq!(summary.len(), 1 + 10 + 1 + 3 + 2, "{summary:#?}");
    for (row, (code, transfers, transfers_euro, credits, credits_euro)) in
        summary[1..].iter().zip(SUMMARY)
    {
        assert_eq!(text(&row[0]), code);
        assert!(!text(&row[1]).is_empty(), "{code} is explained");
        assert_eq!(
            (
                number(&row[2]),
                number(&row[3]),
                number(&row[4]),
                number(&row[5])
            ),
            (transfers, transfers_euro, credits, credits_euro),
            "{code}"
        );
    }
    let total = &summary[11];
    assert_eq!(text(&total[0]), "TOTALE");
    assert_eq!(
        (
            number(&total[2]),
            number(&total[3]),
            number(&total[4]),
            number(&total[5])
        ),
        (7.0, 2_215.0, 3.0, 943.45)
    );
    let totals: Vec<(&str, f64)> = summary[12..15]
        .iter()
        .map(|r| (text(&r[0]), number(&r[3])))
        .collect();
    assert_eq!(
        totals,
        [
            // Every receipt transfer of Milan paid that day: 285 + 50 + 4 × 465.
            ("PAGATO", 2_195.0),
            // The main flow's three lines: 285 + 50 + 20.
            ("RENDICONTATO", 355.0),
            // The cashed flow's lines and the fee credited by /RFB/: 355 + 465.
            ("INCASSATO", 820.0)
        ]
    );
    // Last, what no label shows: credits that are probably one movement seen twice, and
    // reversals; none in this range.
    let unlabelled: Vec<(&str, f64, f64)> = summary[15..]
        .iter()
        .map(|r| (text(&r[0]), number(&r[4]), number(&r[5])))
        .collect();
    assert_eq!(
        unlabelled,
        [("POSSIBILI DOPPIONI", 0.0, 0.0), ("STORNI", 0.0, 0.0)]
    );

    // Anomalie: every Milan key not RT_IUF_TES, with its evidence.
    let anomalies = sheet(&mut book, "Anomalie");
    assert_eq!(
        headers(&anomalies)[..9],
        [
            "Ente",
            "IUV",
            "ID ricevuta (IUR)",
            "Indice trasferimento",
            "Data pagamento",
            "Importo",
            "Importo ricevuta",
            "Importo rendicontato",
            "Etichetta"
        ]
    );
    let col = |name: &str| headers(&anomalies).iter().position(|h| *h == name).unwrap();
    let mut listed: Vec<(String, String, String)> = anomalies[1..]
        .iter()
        .map(|r| {
            (
                text(&r[1]).to_owned(),
                text(&r[2]).to_owned(),
                text(&r[col("Etichetta")]).to_owned(),
            )
        })
        .collect();
    listed.sort();
    let mut expected = vec![
        (paid.fee.clone(), "rt-fee".to_owned(), "RT_TES".to_owned()),
        (
            LOST_IUV.to_owned(),
            "rt-lost".to_owned(),
            "IUV_NO_RT".to_owned(),
        ),
        (
            paid.twice.clone(),
            "rt-twice-1".to_owned(),
            "DOPPI".to_owned(),
        ),
        (
            paid.twice.clone(),
            "rt-twice-2".to_owned(),
            "DOPPI".to_owned(),
        ),
        (
            paid.cancelled.clone(),
            "rt-cancelled".to_owned(),
            "RT_NO_IUF".to_owned(),
        ),
    ];
    expected.sort();
    assert_eq!(listed, expected);
    let fee = row_with(&anomalies, 2, "rt-fee");
    assert_eq!(text(&fee[0]), MILANO);
    assert_eq!(number(&fee[3]), 1.0);
    assert_eq!(day(&fee[4]), serial(date!(2026 - 11 - 23)));
    assert_eq!((number(&fee[5]), number(&fee[6])), (465.0, 465.0));
    assert_eq!(fee[7], Data::Empty, "no flow reports the fee");
    assert_eq!(text(&fee[col("Accrediti")]), "ASR-0002");
    let lost = row_with(&anomalies, 2, "rt-lost");
    assert_eq!(lost[6], Data::Empty, "no receipt");
    assert_eq!((number(&lost[5]), number(&lost[7])), (20.0, 20.0));
    assert_eq!(text(&lost[col("Flusso (IUF)")]), FLOW);
    assert_eq!(text(&lost[col("Stato tesoreria")]), "CASHED");
    assert_eq!(day(&lost[4]), serial(date!(2026 - 11 - 23)));

    // Flussi: the flow regulated in the range, not the older one.
    let flows = sheet(&mut book, "Flussi");
    assert_eq!(
        headers(&flows)[..9],
        [
            "Ente",
            "Identificativo flusso (IUF)",
            "Revisione",
            "PSP",
            "Data regolamento",
            "TRN",
            "Importo totale",
            "Numero pagamenti",
            "Stato tesoreria"
        ]
    );
    assert_eq!(flows.len(), 2, "{flows:#?}");
    let main = &flows[1];
    assert_eq!(
        (text(&main[1]), text(&main[3]), text(&main[5])),
        (FLOW, "BCITITMM", "TRN-BCITITMM")
    );
    assert_eq!(day(&main[4]), serial(date!(2026 - 11 - 24)));
    assert_eq!((number(&main[6]), number(&main[7])), (355.0, 3.0));
    assert_eq!((text(&main[8]), text(&main[9])), ("CASHED", "ASR-0001"));
    // What the lines add up to, last: the same as the declared total for a flow that adds up.
    let lines_col = headers(&flows)
        .iter()
        .position(|h| *h == "Somma pagamenti")
        .unwrap();
    assert_eq!(lines_col, headers(&flows).len() - 1);
    assert_eq!(number(&main[lines_col]), 355.0);

    // Tesoreria: the three credits booked on the 25th.
    let credits = sheet(&mut book, "Tesoreria");
    assert_eq!(
        headers(&credits)[..6],
        [
            "Ente",
            "ID accredito",
            "Data contabile",
            "Data valuta",
            "Importo",
            "Causale"
        ]
    );
    let label_col = headers(&credits)
        .iter()
        .position(|h| *h == "Etichetta")
        .unwrap();
    let read: BTreeMap<&str, (f64, f64, &str)> = credits[1..]
        .iter()
        .map(|r| {
            (
                text(&r[1]),
                (number(&r[4]), day(&r[2]), text(&r[label_col])),
            )
        })
        .collect();
    let booked = serial(date!(2026 - 11 - 25));
    assert_eq!(
        read,
        BTreeMap::from([
            ("ASR-0001", (355.0, booked, "RT_IUF_TES")),
            ("ASR-0002", (465.0, booked, "RT_TES")),
            ("ASR-0003", (123.45, booked, "TES_NO_MATCH")),
        ])
    );
    assert_eq!(
        text(&row_with(&credits, 1, "ASR-0001")[7]),
        FLOW,
        "the IUF its causale names"
    );
    // Last, the credits that are probably the same movement (none of these), and the account
    // each was credited on.
    let last = headers(&credits).len() - 1;
    assert_eq!(
        headers(&credits)[last - 1..],
        ["Possibili doppioni", "Conto"]
    );
    assert!(
        credits[1..].iter().all(|r| r[last - 1] == Data::Empty),
        "{credits:#?}"
    );
    assert!(
        credits[1..].iter().all(|r| text(&r[last]) == MILANO_BANK),
        "{credits:#?}"
    );

    // Doppi pagamenti: the second payment and the cancelled notice's, to refund.
    let refunds = sheet(&mut book, "Doppi pagamenti");
    assert_eq!(refunds.len(), 3, "{refunds:#?}");
    let second = row_with(&refunds, 3, "rt-twice-2");
    assert_eq!(text(&second[2]), paid.twice);
    assert!(text(&second[4]).starts_with("Doppio pagamento"));
    assert_eq!(day(&second[5]), serial(date!(2026 - 11 - 23)));
    assert_eq!(number(&second[6]), 465.0);
    assert_eq!(text(&second[7]), "POSOIT22XXX");
    let closed = row_with(&refunds, 3, "rt-cancelled");
    assert_eq!(text(&closed[2]), paid.cancelled);
    assert!(text(&closed[4]).starts_with("Avviso annullato"));

    // Every sheet: header frozen, autofilter over the table.
    let names = book.defined_names().to_vec();
    for (index, (name, rows)) in [
        ("Riepilogo", 17),
        ("Anomalie", 6),
        ("Flussi", 2),
        ("Tesoreria", 4),
        ("'Doppi pagamenti'", 3),
    ]
    .into_iter()
    .enumerate()
    {
        let xml = sheet_xml(&path, index + 1);
        assert!(
            xml.contains(r#"ySplit="1""#) && xml.contains(r#"state="frozen""#),
            "{name}: {xml}"
        );
        assert!(
            names.iter().any(|(n, value)| n == "_xlnm._FilterDatabase"
                && value.starts_with(&format!("{name}!$A$1:"))
                && value.ends_with(&format!("${rows}"))),
            "{name}: {names:?}"
        );
    }

    // CSV, Italian style: `;` and decimal comma, the same tables.
    let folder = dir.path().join("csv");
    let mut files = CsvReport::create(&folder, CsvStyle::ExcelIt)?;
    write_report(&app.store, &range, &mut files).await?;
    let written = files.finish()?;
    let names: Vec<String> = written
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        [
            "riepilogo.csv",
            "anomalie.csv",
            "flussi.csv",
            "tesoreria.csv",
            "doppi_pagamenti.csv",
            "storni.csv"
        ]
    );
    let raw = std::fs::read_to_string(folder.join("tesoreria.csv"))?;
    assert!(
        raw.starts_with("Ente;ID accredito;Data contabile;Data valuta;Importo;Causale;"),
        "{raw}"
    );
    let records = |path: &Path, delimiter: u8| -> Vec<csv::StringRecord> {
        csv::ReaderBuilder::new()
            .delimiter(delimiter)
            .from_path(path)
            .unwrap()
            .records()
            .map(Result::unwrap)
            .collect()
    };
    let tesoreria = records(&folder.join("tesoreria.csv"), b';');
    let asr3 = tesoreria.iter().find(|r| &r[1] == "ASR-0003").unwrap();
    assert_eq!((&asr3[2], &asr3[4]), ("2026-11-25", "123,45"));
    let riepilogo = records(&folder.join("riepilogo.csv"), b';');
    let doppi = riepilogo.iter().find(|r| &r[0] == "DOPPI").unwrap();
    assert_eq!((&doppi[2], &doppi[3]), ("2", "930,00"));
    let pagato = riepilogo.iter().find(|r| &r[0] == "PAGATO").unwrap();
    assert_eq!(&pagato[3], "2195,00");

    // CSV, plain style: `,` and decimal point.
    let plain = dir.path().join("plain");
    let mut files = CsvReport::create(&plain, CsvStyle::Plain)?;
    write_report(&app.store, &range, &mut files).await?;
    files.finish()?;
    let tesoreria = records(&plain.join("tesoreria.csv"), b',');
    let asr3 = tesoreria.iter().find(|r| &r[1] == "ASR-0003").unwrap();
    assert_eq!(&asr3[4], "123.45");
    let flussi = records(&plain.join("flussi.csv"), b',');
    assert_eq!(flussi.len(), 1);
    assert_eq!((&flussi[0][1], &flussi[0][6]), (FLOW, "355.00"));
    assert_eq!(flussi[0].iter().next_back(), Some("355.00"));

    app.stop().await
}
