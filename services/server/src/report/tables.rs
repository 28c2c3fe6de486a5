//! The report's tables as the finance office reads them, independent of the file format: the
//! five tables with their Italian headers, the kind of every cell (text, euro amount, date,
//! count), and the rows made from what the store's reconciliation and receipt queries return.
//! Amounts stay integer cents here; each writer turns them into its own representation.

use std::collections::BTreeMap;

use incasso_domain::receipt::Classification;
use incasso_domain::reconciliation::{
    CandidateReason, CreditId, DuplicateReason, FlowTreasuryState, Label, Suggestion,
};
use incasso_domain::rome_time::rome_date;
use incasso_store::receipts::query::StoredReceipt;
use incasso_store::reconciliation::{
    CreditItem, FlowItem, LabelTotal, PossibleDuplicate, ReconciliationSummary, RecoveryState,
    ReversalItem, TransferItem,
};
use time::Date;

/// One cell of a table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cell {
    /// Nothing.
    Empty,
    /// Text, as is.
    Text(String),
    /// An amount in euro, held as integer cents.
    Euro(i64),
    /// A calendar day.
    Date(Date),
    /// A count or a small integer (a revision, an index).
    Count(i64),
}

impl Cell {
    fn text(value: impl Into<String>) -> Self {
        Self::Text(value.into())
    }

    fn optional_euro(cents: Option<i64>) -> Self {
        cents.map_or(Self::Empty, Self::Euro)
    }

    fn optional_date(day: Option<Date>) -> Self {
        day.map_or(Self::Empty, Self::Date)
    }
}

/// A column: its Italian header and its width in characters (for the workbook).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Column {
    /// The header, in Italian.
    pub header: &'static str,
    /// Width in characters.
    pub width: f64,
}

const fn column(header: &'static str, width: f64) -> Column {
    Column { header, width }
}

/// The tables of a report, in the order of the workbook's sheets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Table {
    /// Count and sum per label, with the totals paid, reported and cashed.
    Summary,
    /// Every creditor's transfer key whose label is not `RT_IUF_TES`.
    Anomalies,
    /// Reporting flows regulated in the range.
    Flows,
    /// Treasury credits booked in the range.
    Treasury,
    /// Receipts of notices already paid or closed: the refund worklist.
    DoublePayments,
    /// Reversals of credits booked in the range: money the treasury took back.
    Reversals,
}

const SUMMARY_COLUMNS: &[Column] = &[
    column("Voce", 20.0),
    column("Descrizione", 60.0),
    column("Trasferimenti (numero)", 14.0),
    column("Trasferimenti (importo)", 18.0),
    column("Accrediti (numero)", 14.0),
    column("Accrediti (importo)", 18.0),
];

const ANOMALY_COLUMNS: &[Column] = &[
    column("Ente", 13.0),
    column("IUV", 20.0),
    column("ID ricevuta (IUR)", 36.0),
    column("Indice trasferimento", 10.0),
    column("Data pagamento", 12.0),
    column("Importo", 14.0),
    column("Importo ricevuta", 14.0),
    column("Importo rendicontato", 14.0),
    column("Etichetta", 18.0),
    column("Descrizione", 50.0),
    column("Condizioni", 30.0),
    column("Flusso (IUF)", 36.0),
    column("Revisione flusso", 10.0),
    column("Stato tesoreria", 12.0),
    column("Accrediti", 30.0),
    column("Suggerimenti", 60.0),
];

const FLOW_COLUMNS: &[Column] = &[
    column("Ente", 13.0),
    column("Identificativo flusso (IUF)", 36.0),
    column("Revisione", 10.0),
    column("PSP", 16.0),
    column("Data regolamento", 12.0),
    column("TRN", 36.0),
    column("Importo totale", 16.0),
    column("Numero pagamenti", 12.0),
    column("Stato tesoreria", 12.0),
    column("Accrediti", 30.0),
    column("Suggerimenti", 60.0),
    // Last, so the columns before keep their places: equal to Importo totale unless the
    // PSP's flow does not add up.
    column("Somma pagamenti", 16.0),
];

const TREASURY_COLUMNS: &[Column] = &[
    column("Ente", 13.0),
    column("ID accredito", 24.0),
    column("Data contabile", 12.0),
    column("Data valuta", 12.0),
    column("Importo", 16.0),
    column("Causale", 60.0),
    column("TRN", 36.0),
    column("Flussi citati", 36.0),
    column("IUV citati", 20.0),
    column("Flussi attribuiti", 36.0),
    column("Etichetta", 18.0),
    column("Descrizione", 50.0),
    column("Suggerimenti", 60.0),
    // Columns added later go last, so the columns before keep their places.
    column("Possibili doppioni", 40.0),
    // The account credited (an IBAN, or OPI:<codice_ente>).
    column("Conto", 30.0),
];

const DOUBLE_PAYMENT_COLUMNS: &[Column] = &[
    column("Ente", 13.0),
    column("Numero avviso", 20.0),
    column("IUV", 20.0),
    column("ID ricevuta", 36.0),
    column("Motivo", 40.0),
    column("Data pagamento", 12.0),
    column("Importo pagato", 14.0),
    column("PSP", 16.0),
    column("Stand-In", 9.0),
    column("Riferimento interno", 38.0),
];

const REVERSAL_COLUMNS: &[Column] = &[
    column("Ente", 13.0),
    column("Riferimento storno", 24.0),
    column("Bolletta stornata", 16.0),
    column("Data contabile", 12.0),
    column("Importo", 16.0),
    column("Conto", 30.0),
    column("File", 40.0),
];

impl Table {
    /// Every table, in sheet order.
    pub const ALL: [Self; 6] = [
        Self::Summary,
        Self::Anomalies,
        Self::Flows,
        Self::Treasury,
        Self::DoublePayments,
        Self::Reversals,
    ];

    /// The sheet's name.
    pub fn sheet_name(self) -> &'static str {
        match self {
            Self::Summary => "Riepilogo",
            Self::Anomalies => "Anomalie",
            Self::Flows => "Flussi",
            Self::Treasury => "Tesoreria",
            Self::DoublePayments => "Doppi pagamenti",
            Self::Reversals => "Storni",
        }
    }

    /// The CSV file's name.
    pub fn file_name(self) -> &'static str {
        match self {
            Self::Summary => "riepilogo.csv",
            Self::Anomalies => "anomalie.csv",
            Self::Flows => "flussi.csv",
            Self::Treasury => "tesoreria.csv",
            Self::DoublePayments => "doppi_pagamenti.csv",
            Self::Reversals => "storni.csv",
        }
    }

    /// The columns, in order.
    pub fn columns(self) -> &'static [Column] {
        match self {
            Self::Summary => SUMMARY_COLUMNS,
            Self::Anomalies => ANOMALY_COLUMNS,
            Self::Flows => FLOW_COLUMNS,
            Self::Treasury => TREASURY_COLUMNS,
            Self::DoublePayments => DOUBLE_PAYMENT_COLUMNS,
            Self::Reversals => REVERSAL_COLUMNS,
        }
    }
}

/// What a label means, in Italian, for the finance office.
pub fn label_description(label: Option<Label>) -> &'static str {
    match label {
        None => {
            "Non ancora etichettato: sarà etichettato dalla prossima importazione o da `incasso recon refresh`"
        }
        Some(Label::Doppi) => {
            "Pagamento doppio: più ricevute (IUR) per lo stesso IUV e trasferimento"
        }
        Some(Label::IuvNoRt) => "Rendicontato dal PSP senza ricevuta",
        Some(Label::IufTesDivImp) => {
            "Rendicontato; l'importo accreditato in tesoreria differisce da quello dei flussi"
        }
        Some(Label::IufNoTes) => "Rendicontato; flusso scaduto senza accredito in tesoreria",
        Some(Label::RtIufTes) => "Riconciliato: ricevuta, rendicontazione e tesoreria concordano",
        Some(Label::RtIuf) => {
            "Ricevuta e rendicontazione concordano; riversamento in tesoreria non ancora dovuto"
        }
        Some(Label::RtTes) => "Ricevuta e accredito /RFB/ o /RFS/ dello IUV, senza rendicontazione",
        Some(Label::RtNoIuf) => "Ricevuta senza rendicontazione dello stesso importo",
        Some(Label::TesNoIufOrIuv) => "Accredito pagoPA con flusso (IUF) o IUV sconosciuto",
        Some(Label::TesNoMatch) => "Accredito senza riferimento pagoPA nella causale",
    }
}

/// The code shown for a label; an item not labelled yet shows this.
pub const UNLABELLED: &str = "NON_ETICHETTATO";

fn label_code(label: Option<Label>) -> &'static str {
    label.map_or(UNLABELLED, Label::code)
}

/// `cents` as Italian text, exactly: `1.234,56 €`, `-0,05 €`.
pub fn euro_text(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let magnitude = cents.unsigned_abs();
    let units = (magnitude / 100).to_string();
    let mut grouped = String::new();
    for (i, digit) in units.chars().enumerate() {
        if i > 0 && (units.len() - i).is_multiple_of(3) {
            grouped.push('.');
        }
        grouped.push(digit);
    }
    format!("{sign}{grouped},{:02} €", magnitude % 100)
}

fn reason_text(reason: CandidateReason) -> &'static str {
    match reason {
        CandidateReason::Trn => "stesso TRN",
        CandidateReason::Amount => "stesso importo",
        CandidateReason::Date => "data di regolamento vicina alla data valuta",
        CandidateReason::Prefix => "l'identificativo troncato è l'inizio del flusso",
    }
}

/// A suggestion in Italian.
pub fn suggestion_text(suggestion: &Suggestion) -> String {
    match suggestion {
        Suggestion::CandidateFlow { flow_id, reasons } => format!(
            "Flusso candidato {flow_id}: {}",
            reasons
                .iter()
                .map(|r| reason_text(*r))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Suggestion::ComponentDifference {
            credits_cents,
            flows_cents,
            difference_cents,
        } => format!(
            "Accrediti {} contro flussi {}: differenza {}",
            euro_text(*credits_cents),
            euro_text(*flows_cents),
            euro_text(*difference_cents)
        ),
        Suggestion::LineDifference {
            flow_id,
            receipt_cents,
            line_cents,
            difference_cents,
        } => format!(
            "Flusso {flow_id}: ricevuta {}, rendicontato {}: differenza {}",
            euro_text(*receipt_cents),
            euro_text(*line_cents),
            euro_text(*difference_cents)
        ),
        Suggestion::IuvCreditDifference {
            credit_id,
            difference_cents,
        } => format!(
            "Accredito {credit_id} dello stesso IUV con importo diverso: differenza {}",
            euro_text(*difference_cents)
        ),
    }
}

fn suggestions_text(suggestions: &[Suggestion]) -> Cell {
    Cell::Text(
        suggestions
            .iter()
            .map(suggestion_text)
            .collect::<Vec<_>>()
            .join("; "),
    )
}

fn joined<T: std::fmt::Display>(items: &[T]) -> Cell {
    Cell::Text(
        items
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", "),
    )
}

fn credits_text(ids: &[CreditId]) -> Cell {
    joined(ids)
}

fn state_text(state: Option<FlowTreasuryState>) -> Cell {
    Cell::text(state.map(FlowTreasuryState::code).unwrap_or_default())
}

/// The summary's rows: one per label (in the contract's order, zero included, and the
/// not-yet-labelled ones when there are any), the total, then the totals paid, reported and
/// cashed of the range's transfers.
pub fn summary_rows(summary: &ReconciliationSummary) -> Vec<Vec<Cell>> {
    let mut keys: Vec<Option<Label>> = Label::ALL.into_iter().map(Some).collect();
    if summary.transfers.contains_key(&None) || summary.credits.contains_key(&None) {
        keys.push(None);
    }
    let get = |totals: &BTreeMap<Option<Label>, LabelTotal>, key| {
        totals.get(&key).copied().unwrap_or_default()
    };
    let count = |n: u64| Cell::Count(i64::try_from(n).unwrap_or(i64::MAX));
    let mut rows = Vec::new();
    let (mut transfers, mut credits) = (LabelTotal::default(), LabelTotal::default());
    for key in keys {
        let t = get(&summary.transfers, key);
        let c = get(&summary.credits, key);
        transfers.count += t.count;
        transfers.amount_cents += t.amount_cents;
        credits.count += c.count;
        credits.amount_cents += c.amount_cents;
        rows.push(vec![
            Cell::text(label_code(key)),
            Cell::text(label_description(key)),
            count(t.count),
            Cell::Euro(t.amount_cents),
            count(c.count),
            Cell::Euro(c.amount_cents),
        ]);
    }
    rows.push(vec![
        Cell::text("TOTALE"),
        Cell::text("Tutti i trasferimenti pagati e gli accrediti contabilizzati nel periodo"),
        count(transfers.count),
        Cell::Euro(transfers.amount_cents),
        count(credits.count),
        Cell::Euro(credits.amount_cents),
    ]);
    for (code, description, cents) in [
        (
            "PAGATO",
            "Importo delle ricevute dei trasferimenti del periodo",
            summary.paid_cents,
        ),
        (
            "RENDICONTATO",
            "Importo rendicontato dai PSP (FdR) per quei trasferimenti",
            summary.reported_cents,
        ),
        (
            "INCASSATO",
            "Importo di quei trasferimenti giunto in tesoreria",
            summary.cashed_cents,
        ),
    ] {
        rows.push(vec![
            Cell::text(code),
            Cell::text(description),
            Cell::Empty,
            Cell::Euro(cents),
            Cell::Empty,
            Cell::Empty,
        ]);
    }
    for (code, description, total) in [
        (
            "POSSIBILI DOPPIONI",
            "Accrediti del periodo che sono probabilmente lo stesso movimento importato da \
             un'altra fonte (stesso importo, data valuta e TRN o EndToEndId): contati entrambi",
            summary.possibly_duplicated_credits,
        ),
        (
            "STORNI",
            "Storni di accrediti contabilizzati nel periodo: non cambiano le etichette, da \
             verificare con il tesoriere",
            summary.reversals,
        ),
    ] {
        rows.push(vec![
            Cell::text(code),
            Cell::text(description),
            Cell::Empty,
            Cell::Empty,
            count(total.count),
            Cell::Euro(total.amount_cents),
        ]);
    }
    rows
}

/// Whether a transfer belongs to the anomalies: every key whose label is not `RT_IUF_TES`.
pub fn is_anomaly(item: &TransferItem) -> bool {
    item.label != Some(Label::RtIufTes)
}

/// A transfer key's row of the anomalies.
pub fn anomaly_row(item: &TransferItem) -> Vec<Cell> {
    let conditions: Vec<&str> = item.labels.iter().map(|l| l.code()).collect();
    vec![
        Cell::text(&item.creditor_fiscal_code),
        Cell::text(&item.iuv),
        Cell::text(&item.receipt_id),
        Cell::Count(i64::from(item.id_transfer)),
        Cell::optional_date(item.paid_on),
        Cell::Euro(item.amount_cents),
        Cell::optional_euro(item.receipt_cents),
        Cell::optional_euro(item.reported_cents),
        Cell::text(label_code(item.label)),
        Cell::text(label_description(item.label)),
        Cell::Text(conditions.join(", ")),
        Cell::text(
            item.flow
                .as_ref()
                .map(|(id, _)| id.as_str())
                .unwrap_or_default(),
        ),
        item.flow.as_ref().map_or(Cell::Empty, |(_, revision)| {
            Cell::Count(i64::from(*revision))
        }),
        state_text(item.treasury_state),
        credits_text(&item.treasury_credit_ids),
        transfer_suggestions_text(item),
    ]
}

/// A transfer's suggestions, with the recovery of an `IUV_NO_RT` key's receipt.
fn transfer_suggestions_text(item: &TransferItem) -> Cell {
    let mut texts: Vec<String> = item.suggestions.iter().map(suggestion_text).collect();
    if let Some(recovery) = &item.recovery {
        let state = match recovery.state {
            RecoveryState::Recovered => "recuperata, in attesa di rietichettatura",
            RecoveryState::NotFound => "non trovata su PagoPA",
            RecoveryState::Failed => "recupero non riuscito",
        };
        let mut text = format!(
            "Ricevuta {} (biz-events): {state}, tentativi {}",
            recovery.receipt_id, recovery.attempts
        );
        if let Some(detail) = &recovery.detail {
            text.push_str(&format!(" ({detail})"));
        }
        texts.push(text);
    }
    Cell::Text(texts.join("; "))
}

/// A reporting flow's row.
pub fn flow_row(flow: &FlowItem) -> Vec<Cell> {
    vec![
        Cell::text(&flow.creditor_fiscal_code),
        Cell::text(flow.flow_id.as_str()),
        Cell::Count(i64::from(flow.revision)),
        Cell::text(&flow.psp_id),
        Cell::Date(flow.regulation_date),
        Cell::text(&flow.trn),
        Cell::Euro(flow.total_cents),
        Cell::Count(flow.line_count),
        state_text(flow.treasury_state),
        credits_text(&flow.treasury_credit_ids),
        suggestions_text(&flow.suggestions),
        Cell::Euro(flow.lines_cents),
    ]
}

/// A treasury credit's row.
pub fn credit_row(credit: &CreditItem) -> Vec<Cell> {
    vec![
        Cell::text(&credit.creditor_fiscal_code),
        Cell::text(credit.id.as_str()),
        Cell::Date(credit.booking_date),
        Cell::Date(credit.value_date),
        Cell::Euro(credit.amount_cents),
        Cell::text(&credit.causale),
        Cell::text(credit.trn.as_deref().unwrap_or_default()),
        joined(&credit.referenced_flow_ids),
        joined(&credit.referenced_iuvs),
        joined(&credit.attributed_flow_ids),
        Cell::text(label_code(credit.label)),
        Cell::text(label_description(credit.label)),
        suggestions_text(&credit.suggestions),
        duplicates_text(&credit.possible_duplicates),
        Cell::text(&credit.account),
    ]
}

/// The credits that are probably the same movement, in Italian: "ID (stesso TRN, file)".
fn duplicates_text(duplicates: &[PossibleDuplicate]) -> Cell {
    let texts: Vec<String> = duplicates
        .iter()
        .map(|d| {
            let reason = match d.reason {
                DuplicateReason::Trn => "stesso TRN",
                DuplicateReason::EndToEndId => "stesso EndToEndId",
            };
            format!(
                "{} ({reason}, importo e data valuta; {})",
                d.credit_id, d.file_name
            )
        })
        .collect();
    Cell::text(texts.join("; "))
}

/// Why a receipt is in the refund worklist, in Italian.
fn refund_reason(classification: Classification) -> &'static str {
    match classification {
        Classification::DoublePayment => "Doppio pagamento: avviso già pagato",
        Classification::ClosedNotice => "Avviso annullato o opzione non scelta",
        _ => "",
    }
}

/// The classifications of the refund worklist.
pub const REFUND_CLASSIFICATIONS: [Classification; 2] =
    [Classification::DoublePayment, Classification::ClosedNotice];

/// A receipt's row of the refund worklist.
pub fn double_payment_row(receipt: &StoredReceipt) -> Vec<Cell> {
    vec![
        Cell::text(&receipt.creditor_fiscal_code),
        Cell::text(&receipt.notice_number),
        Cell::text(&receipt.iuv),
        Cell::text(&receipt.receipt_id),
        Cell::text(refund_reason(receipt.classification)),
        Cell::Date(rome_date(receipt.paid_at.unwrap_or(receipt.received_at))),
        Cell::Euro(receipt.payment_amount_cents),
        Cell::text(&receipt.psp_id),
        Cell::text(if receipt.stand_in { "sì" } else { "no" }),
        Cell::Text(receipt.id.to_string()),
    ]
}

/// A reversal's row; what its document does not say stays empty.
pub fn reversal_row(reversal: &ReversalItem) -> Vec<Cell> {
    vec![
        Cell::text(&reversal.creditor_fiscal_code),
        Cell::text(reversal.reference.as_deref().unwrap_or_default()),
        Cell::text(reversal.reverses_bill.as_deref().unwrap_or_default()),
        reversal.booking_date.map_or(Cell::Empty, Cell::Date),
        Cell::optional_euro(reversal.amount_cents),
        Cell::text(&reversal.account),
        Cell::text(&reversal.file_name),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn euro_text_groups_thousands_and_keeps_every_cent() {
        assert_eq!(euro_text(0), "0,00 €");
        assert_eq!(euro_text(5), "0,05 €");
        assert_eq!(euro_text(-5), "-0,05 €");
        assert_eq!(euro_text(123_456_789), "1.234.567,89 €");
        assert_eq!(euro_text(100_000), "1.000,00 €");
    }

    proptest! {
        #[test]
        fn euro_text_reads_back_as_the_same_cents(cents in -10_000_000_000i64..10_000_000_000) {
            let text = euro_text(cents);
            let digits: String = text.chars().filter(|c| c.is_ascii_digit() || *c == '-').collect();
            prop_assert_eq!(digits.parse::<i64>().unwrap(), cents);
        }
    }

    #[test]
    fn every_row_has_one_cell_per_column() {
        let summary = ReconciliationSummary::default();
        for row in summary_rows(&summary) {
            assert_eq!(row.len(), Table::Summary.columns().len());
        }
    }

    #[test]
    fn the_summary_ends_with_what_no_label_shows() {
        let summary = ReconciliationSummary {
            possibly_duplicated_credits: LabelTotal {
                count: 2,
                amount_cents: 71_000,
            },
            reversals: LabelTotal {
                count: 1,
                amount_cents: 250,
            },
            ..ReconciliationSummary::default()
        };
        let rows = summary_rows(&summary);
        let last: Vec<(&Cell, &Cell, &Cell)> = rows[rows.len() - 2..]
            .iter()
            .map(|r| (&r[0], &r[4], &r[5]))
            .collect();
        assert_eq!(
            last,
            [
                (
                    &Cell::text("POSSIBILI DOPPIONI"),
                    &Cell::Count(2),
                    &Cell::Euro(71_000)
                ),
                (&Cell::text("STORNI"), &Cell::Count(1), &Cell::Euro(250)),
            ]
        );
    }

    #[test]
    fn a_credit_names_its_probable_twins_in_the_last_column() {
        let day = time::macros::date!(2026 - 11 - 24);
        let twin = |id: &str, reason, file: &str| PossibleDuplicate {
            credit_id: CreditId::parse(id).unwrap(),
            reason,
            file_name: file.to_owned(),
        };
        let credit = CreditItem {
            creditor_fiscal_code: "01199250158".to_owned(),
            account: "IT60X0542811101000000123456".to_owned(),
            id: CreditId::parse("ASR-77").unwrap(),
            amount_cents: 9_500,
            booking_date: day,
            value_date: day,
            causale: "BONIFICO".to_owned(),
            trn: None,
            referenced_flow_ids: Vec::new(),
            referenced_iuvs: Vec::new(),
            attributed_flow_ids: Vec::new(),
            label: Some(Label::TesNoMatch),
            suggestions: Vec::new(),
            possible_duplicates: vec![
                twin("CRI-1", DuplicateReason::Trn, "gdc-1124.xml"),
                twin("NTF-9", DuplicateReason::EndToEndId, "ntf.xml"),
            ],
        };
        let row = credit_row(&credit);
        assert_eq!(row.len(), Table::Treasury.columns().len());
        let headers: Vec<&str> = Table::Treasury.columns().iter().map(|c| c.header).collect();
        assert_eq!(
            headers[headers.len() - 2..],
            ["Possibili doppioni", "Conto"]
        );
        assert_eq!(
            row[row.len() - 2],
            Cell::text(
                "CRI-1 (stesso TRN, importo e data valuta; gdc-1124.xml); \
                 NTF-9 (stesso EndToEndId, importo e data valuta; ntf.xml)"
            )
        );
        assert_eq!(row.last(), Some(&Cell::text("IT60X0542811101000000123456")));
    }
}
