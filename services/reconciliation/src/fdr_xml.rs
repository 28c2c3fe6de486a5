//! `FlussoRiversamento` (FdR XML, 1.0.4 and 1.0.5): the header, then one line per
//! `datiSingoliPagamenti`, streamed. Read leniently where the platform itself is
//! inconsistent (pagopa-spec.md §10.1: outcome codes 4 and 8 missing from some XSD copies, a
//! negative amount for a revoked line, and a declared total that differs from the lines,
//! which is kept as the PSP declared it and warned of by the import) and strictly everywhere
//! else: every field is checked as it is read and the declared count must equal the lines.

use incasso_domain::notice_number::Iuv;
use incasso_domain::reconciliation::{FlowId, FlowLine, OutcomeCode, TransferIndex, TransferKey};
use time::{Date, OffsetDateTime};

use crate::document::{FlowHeader, Format, Sink};
use crate::values::{cents, date, date_time, shown};
use crate::xml::{Start, ends};

/// The FdR namespace.
pub const NAMESPACE: &str = "http://www.digitpa.gov.it/schemas/2011/Pagamenti/";

#[derive(Default)]
struct Header {
    flow_id: Option<FlowId>,
    created_at: Option<OffsetDateTime>,
    trn: Option<String>,
    regulation_date: Option<Date>,
    psp_id: Option<String>,
    psp_name: Option<String>,
    bic: Option<String>,
    creditor: Option<String>,
    line_count: Option<u64>,
    total_cents: Option<i64>,
}

#[derive(Default)]
struct Line {
    iuv: Option<Iuv>,
    iur: Option<String>,
    index: Option<TransferIndex>,
    amount_cents: Option<i64>,
    outcome: Option<OutcomeCode>,
    paid_on: Option<Date>,
}

/// Reads one `FlussoRiversamento`.
pub(crate) struct FdrHandler {
    header: Header,
    announced: bool,
    line: Option<Line>,
    lines: u64,
}

impl FdrHandler {
    pub(crate) fn new() -> Self {
        Self {
            header: Header::default(),
            announced: false,
            line: None,
            lines: 0,
        }
    }

    fn announce(&mut self, sink: &mut dyn Sink) -> Result<(), String> {
        if self.announced {
            return Ok(());
        }
        self.announced = true;
        let h = &self.header;
        let missing = |name: &str| format!("{name} is missing before the payments");
        let header = FlowHeader {
            flow_id: h
                .flow_id
                .clone()
                .ok_or_else(|| missing("identificativoFlusso"))?,
            revision: None,
            created_at: h.created_at.ok_or_else(|| missing("dataOraFlusso"))?,
            trn: h
                .trn
                .clone()
                .ok_or_else(|| missing("identificativoUnivocoRegolamento"))?,
            regulation_date: h
                .regulation_date
                .ok_or_else(|| missing("dataRegolamento"))?,
            psp_id: h
                .psp_id
                .clone()
                .ok_or_else(|| missing("istitutoMittente codiceIdentificativoUnivoco"))?,
            psp_name: h.psp_name.clone(),
            bic: h.bic.clone(),
            creditor_fiscal_code: h
                .creditor
                .clone()
                .ok_or_else(|| missing("istitutoRicevente codiceIdentificativoUnivoco"))?,
            line_count: h
                .line_count
                .ok_or_else(|| missing("numeroTotalePagamenti"))?,
            total_cents: h
                .total_cents
                .ok_or_else(|| missing("importoTotalePagamenti"))?,
        };
        sink.flow(&header)
    }
}

fn text35(text: &str, name: &str) -> Result<String, String> {
    let length = text.chars().count();
    if (1..=35).contains(&length) {
        Ok(text.to_owned())
    } else {
        Err(format!("{name} must be 1 to 35 characters, got {length}"))
    }
}

impl Format for FdrHandler {
    fn start(
        &mut self,
        path: &[String],
        start: &Start<'_>,
        sink: &mut dyn Sink,
    ) -> Result<(), String> {
        if path.len() == 1 && start.namespace != Some(NAMESPACE) {
            return Err(format!(
                "FlussoRiversamento must be in namespace {NAMESPACE}, found {}",
                start.namespace.unwrap_or("none")
            ));
        }
        if path.len() == 2 && start.name == "datiSingoliPagamenti" {
            self.announce(sink)?;
            self.line = Some(Line::default());
        }
        Ok(())
    }

    fn end(&mut self, path: &[String], text: &str, sink: &mut dyn Sink) -> Result<(), String> {
        let text = text.trim();
        let Some(name) = path.last().map(String::as_str) else {
            return Ok(());
        };
        if path.len() == 1 {
            self.announce(sink)?;
            let h = &self.header;
            if h.line_count != Some(self.lines) {
                return Err(format!(
                    "numeroTotalePagamenti says {}, the flow has {} datiSingoliPagamenti",
                    h.line_count.unwrap_or_default(),
                    self.lines
                ));
            }
            // A total that differs from its lines is the PSP's declaration, kept as declared
            // (the contract's flow amount): the import warns of it, and the books carry the
            // difference.
            return Ok(());
        }
        if let Some(line) = self.line.as_mut() {
            if path.len() == 3 {
                match name {
                    "identificativoUnivocoVersamento" => {
                        line.iuv = Some(Iuv::parse(text).map_err(|_| {
                            format!(
                                "'{}' is not an IUV (1 to 35 letters and digits)",
                                shown(text)
                            )
                        })?);
                    }
                    "identificativoUnivocoRiscossione" => {
                        line.iur = Some(text35(text, name)?);
                    }
                    "indiceDatiSingoloPagamento" => {
                        let index: i64 = text
                            .parse()
                            .map_err(|_| format!("'{}' is not a number", shown(text)))?;
                        line.index = Some(TransferIndex::new(index).map_err(|e| e.to_string())?);
                    }
                    "singoloImportoPagato" => line.amount_cents = Some(cents(text)?),
                    "codiceEsitoSingoloPagamento" => {
                        line.outcome =
                            Some(OutcomeCode::parse_code(text).map_err(|e| e.to_string())?);
                    }
                    "dataEsitoSingoloPagamento" => line.paid_on = Some(date(text)?),
                    _ => {}
                }
                return Ok(());
            }
            if path.len() == 2 && name == "datiSingoliPagamenti" {
                let line = self.line.take().unwrap_or_default();
                let missing = |field: &str| format!("{field} is missing");
                let key = TransferKey::new(
                    line.iuv
                        .ok_or_else(|| missing("identificativoUnivocoVersamento"))?,
                    &line
                        .iur
                        .ok_or_else(|| missing("identificativoUnivocoRiscossione"))?,
                    // A missing index is the first transfer (SACI; GovPay defaults to 1).
                    line.index
                        .unwrap_or(TransferIndex::new(1).map_err(|e| e.to_string())?),
                )
                .map_err(|e| e.to_string())?;
                let amount_cents = line
                    .amount_cents
                    .ok_or_else(|| missing("singoloImportoPagato"))?;
                self.lines += 1;
                return sink.flow_line(FlowLine {
                    key,
                    amount_cents,
                    outcome: line
                        .outcome
                        .ok_or_else(|| missing("codiceEsitoSingoloPagamento"))?,
                    paid_on: line
                        .paid_on
                        .ok_or_else(|| missing("dataEsitoSingoloPagamento"))?,
                });
            }
        }
        let h = &mut self.header;
        match (path.len(), name) {
            (2, "identificativoFlusso") => {
                h.flow_id = Some(FlowId::parse(text).map_err(|e| e.to_string())?);
            }
            (2, "dataOraFlusso") => h.created_at = Some(date_time(text)?),
            (2, "identificativoUnivocoRegolamento") => h.trn = Some(text35(text, name)?),
            (2, "dataRegolamento") => h.regulation_date = Some(date(text)?),
            (2, "numeroTotalePagamenti") => {
                h.line_count = Some(
                    text.split('.')
                        .next()
                        .unwrap_or_default()
                        .parse()
                        .ok()
                        .filter(|n| *n >= 1)
                        .ok_or_else(|| format!("'{}' is not a count of at least 1", shown(text)))?,
                );
            }
            (2, "importoTotalePagamenti") => h.total_cents = Some(cents(text)?),
            (_, "codiceIdentificativoUnivoco")
                if ends(
                    path,
                    &["istitutoMittente", "identificativoUnivocoMittente", name],
                ) =>
            {
                h.psp_id = Some(text35(text, "the PSP's codiceIdentificativoUnivoco")?);
            }
            (3, "denominazioneMittente") => h.psp_name = Some(text.to_owned()),
            (2, "codiceBicBancaDiRiversamento") => {
                h.bic = Some(text35(text, name)?);
            }
            (_, "codiceIdentificativoUnivoco")
                if ends(
                    path,
                    &["istitutoRicevente", "identificativoUnivocoRicevente", name],
                ) =>
            {
                h.creditor = Some(text35(text, "the creditor's codiceIdentificativoUnivoco")?);
            }
            _ => {}
        }
        Ok(())
    }
}
