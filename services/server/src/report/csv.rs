//! The report as CSV files, one per table, in a folder: `;`-separated with a decimal comma by
//! default (what Excel in Italian opens as is), or `,` and `.`. Amounts are written from
//! integer cents exactly, dates as `YYYY-MM-DD`. Each file is written under a temporary name
//! and renamed into place only when every table is complete, so a failed report leaves no
//! half-written table behind.

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use incasso_domain::validation::format_date;

use super::{Cell, ReportError, Table, TableSink};

/// Separator and decimal mark of the CSV files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CsvStyle {
    /// `;` between fields, `,` before the cents: Excel with Italian settings.
    #[default]
    ExcelIt,
    /// `,` between fields, `.` before the cents.
    Plain,
}

impl CsvStyle {
    fn delimiter(self) -> u8 {
        match self {
            Self::ExcelIt => b';',
            Self::Plain => b',',
        }
    }

    fn decimal_mark(self) -> char {
        match self {
            Self::ExcelIt => ',',
            Self::Plain => '.',
        }
    }
}

/// `cents` as a decimal number with `mark` before the cents and no grouping: `-1234,05`.
pub fn decimal_text(cents: i64, mark: char) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let magnitude = cents.unsigned_abs();
    format!("{sign}{}{mark}{:02}", magnitude / 100, magnitude % 100)
}

fn cell_text(cell: &Cell, style: CsvStyle) -> String {
    match cell {
        Cell::Empty => String::new(),
        Cell::Text(text) => text.clone(),
        Cell::Euro(cents) => decimal_text(*cents, style.decimal_mark()),
        Cell::Date(day) => format_date(*day),
        Cell::Count(n) => n.to_string(),
    }
}

struct Open {
    writer: ::csv::Writer<BufWriter<File>>,
    partial: PathBuf,
    path: PathBuf,
}

/// A folder of CSV files being written.
#[derive(Debug)]
pub struct CsvReport {
    folder: PathBuf,
    style: CsvStyle,
    current: Option<Open>,
    /// (temporary, final) of every table written so far.
    written: Vec<(PathBuf, PathBuf)>,
}

impl std::fmt::Debug for Open {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Open").field("path", &self.path).finish()
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ReportError + '_ {
    move |source| ReportError::Io {
        path: path.to_owned(),
        source,
    }
}

impl CsvReport {
    /// Writes into `folder`, created if missing; a file of a table already there is
    /// replaced when the report is complete.
    pub fn create(folder: &Path, style: CsvStyle) -> Result<Self, ReportError> {
        if folder.exists() && !folder.is_dir() {
            return Err(ReportError::Invalid(format!(
                "--out: {} is a file; a CSV report is a folder of files",
                folder.display()
            )));
        }
        std::fs::create_dir_all(folder).map_err(io(folder))?;
        Ok(Self {
            folder: folder.to_owned(),
            style,
            current: None,
            written: Vec::new(),
        })
    }

    fn close_current(&mut self) -> Result<(), ReportError> {
        if let Some(mut open) = self.current.take() {
            open.writer.flush().map_err(io(&open.partial))?;
            self.written.push((open.partial, open.path));
        }
        Ok(())
    }

    /// Completes the last table and moves every file into place; returns their paths.
    pub fn finish(mut self) -> Result<Vec<PathBuf>, ReportError> {
        self.close_current()?;
        let mut paths = Vec::new();
        for (partial, path) in std::mem::take(&mut self.written) {
            std::fs::rename(&partial, &path).map_err(io(&path))?;
            paths.push(path);
        }
        Ok(paths)
    }
}

impl Drop for CsvReport {
    /// A report that did not finish removes its temporary files.
    fn drop(&mut self) {
        let open = self.current.take().map(|o| o.partial);
        for partial in self.written.iter().map(|(p, _)| p.clone()).chain(open) {
            let _ = std::fs::remove_file(partial);
        }
    }
}

impl TableSink for CsvReport {
    fn begin(&mut self, table: Table) -> Result<(), ReportError> {
        self.close_current()?;
        let path = self.folder.join(table.file_name());
        let partial = self.folder.join(format!(".{}.partial", table.file_name()));
        let file = File::create(&partial).map_err(io(&partial))?;
        let mut writer = ::csv::WriterBuilder::new()
            .delimiter(self.style.delimiter())
            .from_writer(BufWriter::new(file));
        writer
            .write_record(table.columns().iter().map(|c| c.header))
            .map_err(|source| ReportError::Csv {
                path: path.clone(),
                source,
            })?;
        self.current = Some(Open {
            writer,
            partial,
            path,
        });
        Ok(())
    }

    fn row(&mut self, cells: &[Cell]) -> Result<(), ReportError> {
        let style = self.style;
        let Some(open) = self.current.as_mut() else {
            return Err(ReportError::Invalid("a row before its table".to_owned()));
        };
        open.writer
            .write_record(cells.iter().map(|c| cell_text(c, style)))
            .map_err(|source| ReportError::Csv {
                path: open.path.clone(),
                source,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn amounts_are_exact_with_the_style_s_decimal_mark() {
        assert_eq!(decimal_text(123_456, ','), "1234,56");
        assert_eq!(decimal_text(-5, ','), "-0,05");
        assert_eq!(decimal_text(100, '.'), "1.00");
        assert_eq!(decimal_text(i64::MIN, '.'), "-92233720368547758.08");
    }

    proptest! {
        #[test]
        fn amounts_read_back_as_the_same_cents(cents in any::<i64>()) {
            let text = decimal_text(cents, ',');
            let (units, fraction) = text.split_once(',').unwrap();
            prop_assert_eq!(fraction.len(), 2);
            let back = i128::from(units.trim_start_matches('-').parse::<u64>().unwrap()) * 100
                + i128::from(fraction.parse::<u64>().unwrap());
            let back = if text.starts_with('-') { -back } else { back };
            prop_assert_eq!(back, i128::from(cents));
        }
    }
}
