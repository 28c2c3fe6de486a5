//! The report as an XLSX workbook (rust_xlsxwriter): one sheet per table, a bold header row
//! frozen above an autofilter, amounts as numbers in a euro format, dates as Excel dates.
//! Sheets are written in "low memory" mode, row after row into a temporary file, so a year of
//! rows is not held in memory; the workbook is saved under a temporary name next to the
//! output and renamed into place when complete.

use std::path::{Path, PathBuf};

use rust_xlsxwriter::{ExcelDateTime, Format, FormatAlign, Workbook, XlsxError};

use super::csv::decimal_text;
use super::{Cell, ReportError, Table, TableSink};

/// The number format of amounts: thousands grouped, two decimals, the euro sign after, as
/// the finance office writes them. Excel shows the separators of the reader's locale.
pub const EURO_FORMAT: &str = "#,##0.00 \"€\"";
/// The number format of dates.
pub const DATE_FORMAT: &str = "dd/mm/yyyy";

/// A workbook being written.
pub struct XlsxReport {
    workbook: Workbook,
    path: PathBuf,
    header: Format,
    euro: Format,
    date: Format,
    /// (sheet index, table, next row) of the current sheet.
    current: Option<(usize, Table, u32)>,
    sheets: usize,
}

impl std::fmt::Debug for XlsxReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XlsxReport")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// An amount as the number Excel stores: the nearest double to the decimal `cents / 100`,
/// read from its exact text (so no float arithmetic touches money).
pub fn euro_value(cents: i64) -> f64 {
    decimal_text(cents, '.').parse().unwrap_or_default()
}

fn day(date: time::Date) -> Result<ExcelDateTime, XlsxError> {
    let year = u16::try_from(date.year())
        .map_err(|_| XlsxError::ParameterError(format!("{date}: a year Excel cannot show")))?;
    ExcelDateTime::from_ymd(year, u8::from(date.month()), date.day())
}

impl XlsxReport {
    /// A workbook to be saved at `path` by [`XlsxReport::finish`].
    pub fn create(path: &Path) -> Result<Self, ReportError> {
        if path.is_dir() {
            return Err(ReportError::Invalid(format!(
                "--out: {} is a folder; an XLSX report is a file",
                path.display()
            )));
        }
        let mut workbook = Workbook::new();
        // The sheets' row files go next to the output, not to a /tmp that may be memory.
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            if !parent.is_dir() {
                return Err(ReportError::Invalid(format!(
                    "--out: the folder {} does not exist",
                    parent.display()
                )));
            }
            workbook
                .set_tempdir(parent)
                .map_err(|source| ReportError::Xlsx {
                    path: path.to_owned(),
                    source,
                })?;
        }
        Ok(Self {
            workbook,
            path: path.to_owned(),
            header: Format::new()
                .set_bold()
                .set_align(FormatAlign::Center)
                .set_text_wrap(),
            euro: Format::new().set_num_format(EURO_FORMAT),
            date: Format::new().set_num_format(DATE_FORMAT),
            current: None,
            sheets: 0,
        })
    }

    fn error(&self, source: XlsxError) -> ReportError {
        ReportError::Xlsx {
            path: self.path.clone(),
            source,
        }
    }

    /// Freezes the header and puts the autofilter over the finished sheet's table.
    fn close_current(&mut self) -> Result<(), XlsxError> {
        let Some((index, table, next_row)) = self.current.take() else {
            return Ok(());
        };
        let last_column = u16::try_from(table.columns().len().saturating_sub(1)).unwrap_or(0);
        let sheet = self.workbook.worksheet_from_index(index)?;
        sheet.set_freeze_panes(1, 0)?;
        sheet.autofilter(0, 0, next_row.saturating_sub(1).max(1), last_column)?;
        Ok(())
    }

    /// Completes the last sheet, saves the workbook and moves it into place.
    pub fn finish(mut self) -> Result<PathBuf, ReportError> {
        self.close_current().map_err(|e| self.error(e))?;
        let name = self
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let partial = self.path.with_file_name(format!(".{name}.partial"));
        if let Err(source) = self.workbook.save(&partial) {
            let _ = std::fs::remove_file(&partial);
            return Err(self.error(source));
        }
        std::fs::rename(&partial, &self.path).map_err(|source| {
            let _ = std::fs::remove_file(&partial);
            ReportError::Io {
                path: self.path.clone(),
                source,
            }
        })?;
        Ok(self.path)
    }

    fn begin_sheet(&mut self, table: Table) -> Result<(), XlsxError> {
        self.close_current()?;
        let index = self.sheets;
        self.sheets += 1;
        let header = self.header.clone();
        let sheet = self.workbook.add_worksheet_with_low_memory()?;
        sheet.set_name(table.sheet_name())?;
        for (col, column) in (0u16..).zip(table.columns()) {
            sheet.set_column_width(col, column.width)?;
            sheet.write_string_with_format(0, col, column.header, &header)?;
        }
        self.current = Some((index, table, 1));
        Ok(())
    }

    fn write_row(&mut self, cells: &[Cell]) -> Result<(), XlsxError> {
        let Some((index, table, row)) = self.current.as_mut() else {
            return Err(XlsxError::ParameterError("a row before its sheet".into()));
        };
        debug_assert_eq!(cells.len(), table.columns().len(), "{table:?}");
        let at = *row;
        *row += 1;
        let sheet = self.workbook.worksheet_from_index(*index)?;
        for (col, cell) in (0u16..).zip(cells) {
            match cell {
                Cell::Empty => {}
                Cell::Text(text) if text.is_empty() => {}
                Cell::Text(text) => {
                    sheet.write_string(at, col, text)?;
                }
                Cell::Euro(cents) => {
                    sheet.write_number_with_format(at, col, euro_value(*cents), &self.euro)?;
                }
                Cell::Date(date) => {
                    sheet.write_datetime_with_format(at, col, day(*date)?, &self.date)?;
                }
                Cell::Count(n) => {
                    // Counts of rows and revisions: far below 2^53, exact as doubles.
                    #[allow(clippy::cast_precision_loss)]
                    sheet.write_number(at, col, *n as f64)?;
                }
            }
        }
        Ok(())
    }
}

impl TableSink for XlsxReport {
    fn begin(&mut self, table: Table) -> Result<(), ReportError> {
        self.begin_sheet(table).map_err(|e| self.error(e))
    }

    fn row(&mut self, cells: &[Cell]) -> Result<(), ReportError> {
        self.write_row(cells).map_err(|e| self.error(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The stored number is the decimal the cents name, to the last cent.
        #[test]
        fn euro_values_are_the_cents_exactly(cents in -(1i64 << 50)..(1i64 << 50)) {
            let value = euro_value(cents);
            prop_assert_eq!(format!("{value:.2}"), decimal_text(cents, '.'));
        }
    }
}
