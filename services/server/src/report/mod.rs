//! The reports the finance office opens (`incasso recon report`): for a range of days, the
//! summary per label, the anomalies, the reporting flows, the treasury credits, the refund
//! worklist and the reversals of credits, as an XLSX workbook ([`xlsx`]) or as CSV files
//! ([`csv`]). The rows come from the very queries the gRPC ReconciliationService and
//! ReceiptService answer with (transfers by payment day, flows by regulation day, credits and
//! reversals by booking day, receipts by payment day),
//! read page by page and handed to the writer as they arrive; [`tables`] shapes them.

pub mod csv;
pub mod tables;
pub mod xlsx;

use std::path::PathBuf;

use incasso_domain::validation::{ValidationErrors, format_date, parse_date};
use incasso_store::receipts::query::ReceiptFilterInput;
use incasso_store::reconciliation::{
    CreditFilterInput, FlowFilterInput, ReversalFilterInput, TransferFilterInput, TransferScope,
};
use incasso_store::{AppError, Store};
use time::Date;

pub use tables::{Cell, Column, Table};

/// Items read per query: the largest page the store serves.
const PAGE_SIZE: i32 = 1000;

/// Why a report was not written. Nothing is left at the output path when it fails.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The request is malformed (the option is named).
    #[error("{0}")]
    Invalid(String),
    /// A store query failed.
    #[error("reading the store: {0}")]
    Store(#[from] AppError),
    /// Writing the workbook failed.
    #[error("writing the workbook {path}: {source}")]
    Xlsx {
        /// The workbook.
        path: PathBuf,
        /// Why.
        source: rust_xlsxwriter::XlsxError,
    },
    /// Writing a CSV file failed.
    #[error("writing {path}: {source}")]
    Csv {
        /// The file.
        path: PathBuf,
        /// Why.
        source: ::csv::Error,
    },
    /// A file or folder could not be created, written or renamed.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// What a report covers: the days `from..=to` (Europe/Rome) of one creditor, or of every
/// creditor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportRange {
    /// The creditor; `None` for every creditor (each row names its creditor).
    pub creditor_fiscal_code: Option<String>,
    /// First day.
    pub from: Date,
    /// Last day.
    pub to: Date,
}

impl ReportRange {
    /// A range from the command line's texts, each checked and named by its option.
    pub fn parse(creditor: Option<&str>, from: &str, to: &str) -> Result<Self, ReportError> {
        let mut errors = ValidationErrors::new();
        let from = errors.check("--from", parse_date(from));
        let to = errors.check("--to", parse_date(to));
        if let (Some(from), Some(to)) = (from, to)
            && to < from
        {
            errors.add(
                "--to",
                format!("{to} is before --from {from}: the range would be empty"),
            );
        }
        let creditor = creditor.map(str::trim).filter(|c| !c.is_empty());
        if let Some(code) = creditor {
            let _ = errors.check(
                "--creditor",
                incasso_domain::fiscal_code::OrganizationFiscalCode::parse(code),
            );
        }
        match (from, to) {
            (Some(from), Some(to)) if errors.is_empty() => Ok(Self {
                creditor_fiscal_code: creditor.map(str::to_owned),
                from,
                to,
            }),
            _ => Err(ReportError::Invalid(errors.to_string())),
        }
    }

    fn creditor(&self) -> String {
        self.creditor_fiscal_code.clone().unwrap_or_default()
    }

    fn first_day(&self) -> String {
        format_date(self.from)
    }

    fn last_day(&self) -> String {
        format_date(self.to)
    }
}

/// Where the rows of a report go: one table after the other, row by row.
pub trait TableSink {
    /// Starts `table`; the previous one, if any, is complete.
    fn begin(&mut self, table: Table) -> Result<(), ReportError>;
    /// Appends a row to the current table, one cell per column.
    fn row(&mut self, cells: &[Cell]) -> Result<(), ReportError>;
}

/// How many rows each table got.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReportCounts {
    /// Rows per table, in sheet order.
    pub rows: Vec<(Table, u64)>,
}

struct Counting<'a, S> {
    sink: &'a mut S,
    counts: ReportCounts,
}

impl<S: TableSink> Counting<'_, S> {
    fn begin(&mut self, table: Table) -> Result<(), ReportError> {
        self.counts.rows.push((table, 0));
        self.sink.begin(table)
    }

    fn row(&mut self, cells: &[Cell]) -> Result<(), ReportError> {
        if let Some((_, n)) = self.counts.rows.last_mut() {
            *n += 1;
        }
        self.sink.row(cells)
    }
}

/// Reads the range's evidence from `store` and writes the six tables into `sink`, in sheet
/// order. The caller finishes the sink (and only then is anything at the output path).
pub async fn write_report<S: TableSink>(
    store: &Store,
    range: &ReportRange,
    sink: &mut S,
) -> Result<ReportCounts, ReportError> {
    let mut out = Counting {
        sink,
        counts: ReportCounts::default(),
    };

    let summary = store
        .reconciliation_summary(&range.creditor(), &range.first_day(), &range.last_day())
        .await?;
    out.begin(Table::Summary)?;
    for row in tables::summary_rows(&summary) {
        out.row(&row)?;
    }

    out.begin(Table::Anomalies)?;
    let transfers = TransferFilterInput {
        creditor_fiscal_code: range.creditor(),
        paid_from: range.first_day(),
        paid_to: range.last_day(),
        scope: Some(TransferScope::Creditor),
        ..TransferFilterInput::default()
    };
    let mut token = String::new();
    loop {
        let page = store
            .list_reconciliation_transfers(&transfers, PAGE_SIZE, &token)
            .await?;
        for item in page.transfers.iter().filter(|t| tables::is_anomaly(t)) {
            out.row(&tables::anomaly_row(item))?;
        }
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }

    out.begin(Table::Flows)?;
    let flows = FlowFilterInput {
        creditor_fiscal_code: range.creditor(),
        regulation_from: range.first_day(),
        regulation_to: range.last_day(),
        ..FlowFilterInput::default()
    };
    let mut token = String::new();
    loop {
        let page = store
            .list_reporting_flows(&flows, PAGE_SIZE, &token)
            .await?;
        for flow in &page.flows {
            out.row(&tables::flow_row(flow))?;
        }
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }

    out.begin(Table::Treasury)?;
    let credits = CreditFilterInput {
        creditor_fiscal_code: range.creditor(),
        booked_from: range.first_day(),
        booked_to: range.last_day(),
        ..CreditFilterInput::default()
    };
    let mut token = String::new();
    loop {
        let page = store
            .list_treasury_credits(&credits, PAGE_SIZE, &token)
            .await?;
        for credit in &page.credits {
            out.row(&tables::credit_row(credit))?;
        }
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }

    out.begin(Table::DoublePayments)?;
    let receipts = ReceiptFilterInput {
        classifications: tables::REFUND_CLASSIFICATIONS.to_vec(),
        creditor_fiscal_code: range.creditor(),
        paid_from: range.first_day(),
        paid_to: range.last_day(),
        ..ReceiptFilterInput::default()
    };
    let mut token = String::new();
    loop {
        let page = store.list_receipts(&receipts, PAGE_SIZE, &token).await?;
        for receipt in &page.receipts {
            out.row(&tables::double_payment_row(receipt))?;
        }
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }

    out.begin(Table::Reversals)?;
    let reversals = ReversalFilterInput {
        creditor_fiscal_code: range.creditor(),
        booked_from: range.first_day(),
        booked_to: range.last_day(),
    };
    let mut token = String::new();
    loop {
        let page = store
            .list_treasury_reversals(&reversals, PAGE_SIZE, &token)
            .await?;
        for reversal in &page.reversals {
            out.row(&tables::reversal_row(reversal))?;
        }
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    Ok(out.counts)
}
