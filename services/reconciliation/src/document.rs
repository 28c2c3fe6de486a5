//! A document as evidence: which format it is (detected from its root element and
//! namespace, never from the file name), the records it yields, and the [`Sink`] that
//! receives them one at a time while the document streams by.

use std::fmt;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;

use incasso_domain::reconciliation::{FlowId, FlowLine, ReportingFlow, TreasuryCredit};
use time::{Date, OffsetDateTime};

use crate::camt::CamtHandler;
use crate::error::{FormatError, ReadError};
use crate::fdr_xml::FdrHandler;
use crate::opi::OpiHandler;
use crate::xml::{Handler, Start, drive};

/// camt message versions read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CamtVersion {
    /// `.001.02` (the CBI statement's content model).
    V02,
    /// `.001.04`.
    V04,
    /// `.001.08`.
    V08,
}

/// OPI giornale di cassa versions, as far as the document tells them apart: 1.6.1, 1.7.1
/// and 1.8 have the same elements and differ only in code lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OpiVersion {
    /// 1.4 (period from/to instead of a reference day).
    V1_4,
    /// 1.6.1, 1.7.1 or 1.8.
    V1_6To1_8,
}

/// The format of a document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DocumentKind {
    /// `FlussoRiversamento` (a reporting flow).
    FlussoRiversamento,
    /// A reporting flow revision read from the FdR REST API (header and payment pages, JSON).
    FdrRest,
    /// camt.053 bank-to-customer statement.
    Camt053(CamtVersion),
    /// camt.054 debit/credit notification.
    Camt054(CamtVersion),
    /// A CBI XML statement ("rendicontazione movimenti", `CBIBdyBkToCstmrStmtReq` or
    /// `CBIBkToCstmrStmtReqLogMsg`, 00.01.x): camt.053.001.02 statements inside the envelope
    /// of CBI, the Italian banks' corporate banking standard.
    CbiStatement,
    /// OPI giornale di cassa.
    Opi(OpiVersion),
}

impl DocumentKind {
    /// True for treasury evidence.
    pub fn is_treasury(self) -> bool {
        !matches!(self, Self::FlussoRiversamento | Self::FdrRest)
    }
}

impl fmt::Display for DocumentKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let camt = |v: &CamtVersion| match v {
            CamtVersion::V02 => "02",
            CamtVersion::V04 => "04",
            CamtVersion::V08 => "08",
        };
        match self {
            Self::FlussoRiversamento => f.write_str("FlussoRiversamento"),
            Self::FdrRest => f.write_str("FdR REST"),
            Self::Camt053(v) => write!(f, "camt.053.001.{}", camt(v)),
            Self::Camt054(v) => write!(f, "camt.054.001.{}", camt(v)),
            Self::CbiStatement => f.write_str("CBI statement (camt.053.001.02)"),
            Self::Opi(OpiVersion::V1_4) => f.write_str("OPI giornale di cassa 1.4"),
            Self::Opi(OpiVersion::V1_6To1_8) => {
                f.write_str("OPI giornale di cassa 1.6.1/1.7.1/1.8")
            }
        }
    }
}

/// The header of a reporting flow, everything but its lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowHeader {
    /// `identificativoFlusso`.
    pub flow_id: FlowId,
    /// The platform's revision number (FdR REST); `None` for an XML flow, whose revisions
    /// incasso numbers in the order they are imported.
    pub revision: Option<u32>,
    /// `dataOraFlusso` (Rome time when written without an offset).
    pub created_at: OffsetDateTime,
    /// `identificativoUnivocoRegolamento`.
    pub trn: String,
    /// `dataRegolamento`.
    pub regulation_date: Date,
    /// `istitutoMittente/identificativoUnivocoMittente/codiceIdentificativoUnivoco`.
    pub psp_id: String,
    /// `denominazioneMittente`.
    pub psp_name: Option<String>,
    /// `codiceBicBancaDiRiversamento` / `bicCodePouringBank`: the bank that sent the SCT.
    pub bic: Option<String>,
    /// `istitutoRicevente/identificativoUnivocoRicevente/codiceIdentificativoUnivoco`.
    pub creditor_fiscal_code: String,
    /// `numeroTotalePagamenti`.
    pub line_count: u64,
    /// `importoTotalePagamenti`.
    pub total_cents: i64,
}

/// The account a treasury document is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TreasuryAccount {
    /// camt `Acct/Id/IBAN`.
    Iban(String),
    /// OPI `testata_messaggio/codice_ente`.
    OpiEntity(String),
}

/// A credit with what the domain does not decide on but people read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreditRecord {
    /// The credit.
    pub credit: TreasuryCredit,
    /// The ordering party (camt `Dbtr` name, OPI `anagrafica_cliente`).
    pub ordering_party: Option<String>,
    /// The SCT's EndToEndId.
    pub end_to_end_id: Option<String>,
}

/// A movement that reverses an earlier credit: an OPI `STORNATO` of an `ENTRATA`, a camt
/// `DBIT` entry with `RvslInd`. The contract (reconciliation.md §1) defines credits only, so a
/// reversal changes no label and no posting: it is reported for the finance office to check
/// the credit it reverses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReversalRecord {
    /// The reversal's own reference (OPI `codice_riferimento_interno`, else its bill; camt
    /// `AcctSvcrRef`), when it has one.
    pub reference: Option<String>,
    /// The bill it names as reversed (OPI `esercizio/numero_bolletta_quietanza_storno`).
    pub reverses_bill: Option<String>,
    /// Its amount, in cents.
    pub amount_cents: Option<i64>,
    /// Its booking day.
    pub booking_date: Option<Date>,
}

impl ReversalRecord {
    /// The warning the import reports.
    pub fn warning(&self) -> String {
        let mut text = format!(
            "reversal {} of {} cents booked {}",
            self.reference.as_deref().unwrap_or("(no reference)"),
            self.amount_cents
                .map_or_else(|| "an unknown number of".to_owned(), |c| c.to_string()),
            self.booking_date
                .map_or_else(|| "on an unknown day".to_owned(), |d| format!("on {d}")),
        );
        if let Some(bill) = &self.reverses_bill {
            text.push_str(&format!(", of bill {bill}"));
        }
        text.push_str(
            ": not applied (reconciliation reads credits only); the credit it reverses keeps \
             its label: check it with the treasury (ListTreasuryReversals lists it)",
        );
        text
    }
}

/// Receives a document's records as they are read. A refusal (`Err(reason)`) stops the
/// reading and becomes a [`FormatError`] at the element being read.
pub trait Sink {
    /// The format, once the root element is read.
    fn kind(&mut self, kind: DocumentKind) -> Result<(), String>;
    /// A flow's header, before its lines.
    fn flow(&mut self, header: &FlowHeader) -> Result<(), String>;
    /// One line of the flow last announced.
    fn flow_line(&mut self, line: FlowLine) -> Result<(), String>;
    /// The account of the statements or movements that follow.
    fn account(&mut self, account: &TreasuryAccount) -> Result<(), String>;
    /// A credit of that account.
    fn credit(&mut self, credit: CreditRecord) -> Result<(), String>;
    /// An entry or movement that is not a credit (a debit, a pending entry, a reversal).
    fn other_movement(&mut self) -> Result<(), String>;
    /// A reversal of an earlier credit. It is an other movement too, which the reader does not
    /// report again through [`Sink::other_movement`].
    fn reversal(&mut self, reversal: ReversalRecord) -> Result<(), String>;
    /// The evidence covers booking days up to this one.
    fn coverage(&mut self, last_day: Date) -> Result<(), String>;
}

/// One format's reader: the elements of the document, with the sink to feed.
pub(crate) trait Format {
    /// An element starts.
    fn start(
        &mut self,
        path: &[String],
        start: &Start<'_>,
        sink: &mut dyn Sink,
    ) -> Result<(), String>;
    /// An element ends, with its text as written.
    fn end(&mut self, path: &[String], text: &str, sink: &mut dyn Sink) -> Result<(), String>;
    /// The format as the elements revealed it, when the root alone did not tell.
    fn detected(&self) -> Option<DocumentKind> {
        None
    }
}

/// Routes the document to its format's reader once the root says which.
struct Detect<'s> {
    sink: &'s mut dyn Sink,
    format: Option<Box<dyn Format>>,
    kind: Option<DocumentKind>,
}

/// How deep a CBI envelope whose root is `root` holds its statements (`Stmt`), when that
/// root is one: 5 under `CBIBdyBkToCstmrStmtReq` (the physical message, which carries many
/// logical ones), 3 under one logical message `CBIBkToCstmrStmtReqLogMsg`.
fn cbi_statement_depth(root: &str, namespace: &str) -> Option<Result<usize, String>> {
    let depth = match root {
        "CBIBdyBkToCstmrStmtReq" => 5,
        "CBIBkToCstmrStmtReqLogMsg" => 3,
        _ => return None,
    };
    let expected = format!("urn:CBI:xsd:{root}.00.01.");
    Some(if namespace.starts_with(&expected) {
        Ok(depth)
    } else {
        Err(format!(
            "a CBI statement in namespace '{namespace}' is not read (version 00.01 is: {expected}NN)"
        ))
    })
}

fn camt_version(namespace: &str, message: &str) -> Option<Result<CamtVersion, String>> {
    let rest = namespace.strip_prefix("urn:iso:std:iso:20022:tech:xsd:")?;
    let version = rest.strip_prefix(message)?.strip_prefix(".001.")?;
    Some(match version {
        "02" => Ok(CamtVersion::V02),
        "04" => Ok(CamtVersion::V04),
        "08" => Ok(CamtVersion::V08),
        other => Err(format!(
            "{message}.001.{other} is not read (versions 02, 04 and 08 are)"
        )),
    })
}

impl Handler for Detect<'_> {
    fn start(&mut self, path: &[String], start: &Start<'_>) -> Result<(), String> {
        if path.len() == 1 {
            let namespace = start.namespace.unwrap_or("");
            let mut statement_depth = 3;
            let kind = match start.name {
                "FlussoRiversamento" => DocumentKind::FlussoRiversamento,
                "flusso_giornale_di_cassa" => DocumentKind::Opi(OpiVersion::V1_6To1_8),
                "Document" => {
                    if let Some(v) = camt_version(namespace, "camt.053") {
                        DocumentKind::Camt053(v?)
                    } else if let Some(v) = camt_version(namespace, "camt.054") {
                        DocumentKind::Camt054(v?)
                    } else {
                        return Err(format!(
                            "an ISO 20022 document in namespace '{namespace}' is not a camt.053 or camt.054 statement"
                        ));
                    }
                }
                other => {
                    if let Some(depth) = cbi_statement_depth(other, namespace) {
                        statement_depth = depth?;
                        DocumentKind::CbiStatement
                    } else {
                        return Err(format!(
                            "<{other}> is not a document incasso reads (FlussoRiversamento, camt.053, camt.054, CBI statement, OPI giornale di cassa)"
                        ));
                    }
                }
            };
            self.kind = Some(kind);
            // The OPI version is known only from the elements; the OPI handler reports it.
            if !matches!(kind, DocumentKind::Opi(_)) {
                self.sink.kind(kind)?;
            }
            self.format = Some(match kind {
                // An XML root never says FdrRest (that is JSON, read by `read_fdr_rest`).
                DocumentKind::FlussoRiversamento | DocumentKind::FdrRest => {
                    Box::new(FdrHandler::new())
                }
                DocumentKind::Camt053(_)
                | DocumentKind::Camt054(_)
                | DocumentKind::CbiStatement => Box::new(CamtHandler::new(statement_depth)),
                DocumentKind::Opi(_) => Box::new(OpiHandler::new()),
            });
        }
        match self.format.as_mut() {
            Some(format) => format.start(path, start, self.sink),
            None => Ok(()),
        }
    }

    fn end(&mut self, path: &[String], text: &str) -> Result<(), String> {
        match self.format.as_mut() {
            Some(format) => format.end(path, text, self.sink),
            None => Ok(()),
        }
    }
}

/// Reads a document from a buffered source, feeding `sink`; `file` names it in errors.
pub fn read_document(
    file: &str,
    source: impl BufRead,
    sink: &mut dyn Sink,
) -> Result<DocumentKind, FormatError> {
    let mut detect = Detect {
        sink,
        format: None,
        kind: None,
    };
    drive(file, source, &mut detect)?;
    let kind = detect
        .format
        .as_ref()
        .and_then(|f| f.detected())
        .or(detect.kind)
        .ok_or_else(|| FormatError {
            file: file.to_owned(),
            line: 1,
            element: String::new(),
            reason: "no document element".into(),
        })?;
    Ok(kind)
}

/// Reads a file.
pub fn read_file(path: &Path, sink: &mut dyn Sink) -> Result<DocumentKind, ReadError> {
    let file = path.display().to_string();
    let opened = File::open(path).map_err(|source| ReadError::Io {
        file: file.clone(),
        source,
    })?;
    Ok(read_document(
        &file,
        BufReader::with_capacity(64 * 1024, opened),
        sink,
    )?)
}

/// A sink that keeps everything: for tests, and for documents small enough to hold (a
/// reporting flow).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Collected {
    /// The format.
    pub kind: Option<DocumentKind>,
    /// Flows, with their lines.
    pub flows: Vec<(FlowHeader, Vec<FlowLine>)>,
    /// Accounts, in order.
    pub accounts: Vec<TreasuryAccount>,
    /// Credits.
    pub credits: Vec<CreditRecord>,
    /// The account of each credit (a file may hold statements of several accounts): its index
    /// in `accounts`, the account announced last before it; `None` before any.
    pub credit_accounts: Vec<Option<usize>>,
    /// Movements that are not credits (reversals included).
    pub other_movements: u64,
    /// The reversals among them.
    pub reversals: Vec<ReversalRecord>,
    /// The account of each reversal, as `credit_accounts` says a credit's.
    pub reversal_accounts: Vec<Option<usize>>,
    /// Coverage days, in order.
    pub coverage: Vec<Date>,
}

impl Collected {
    /// Each credit with the account of its statement (`None` before any account).
    pub fn credits_with_accounts(
        &self,
    ) -> impl Iterator<Item = (&CreditRecord, Option<&TreasuryAccount>)> {
        debug_assert_eq!(self.credits.len(), self.credit_accounts.len());
        self.credits
            .iter()
            .zip(&self.credit_accounts)
            .map(|(credit, index)| (credit, self.account_at(*index)))
    }

    /// Each reversal with the account of its statement (`None` before any account).
    pub fn reversals_with_accounts(
        &self,
    ) -> impl Iterator<Item = (&ReversalRecord, Option<&TreasuryAccount>)> {
        debug_assert_eq!(self.reversals.len(), self.reversal_accounts.len());
        self.reversals
            .iter()
            .zip(&self.reversal_accounts)
            .map(|(reversal, index)| (reversal, self.account_at(*index)))
    }

    fn account_at(&self, index: Option<usize>) -> Option<&TreasuryAccount> {
        index.and_then(|i| self.accounts.get(i))
    }

    /// The flows as the domain holds them (XML flows have no revision number: 0).
    pub fn reporting_flows(&self) -> Vec<ReportingFlow> {
        self.flows
            .iter()
            .map(|(header, lines)| ReportingFlow {
                flow_id: header.flow_id.clone(),
                revision: header.revision.unwrap_or(0),
                created_at: header.created_at,
                psp_id: header.psp_id.clone(),
                trn: header.trn.clone(),
                regulation_date: header.regulation_date,
                total_cents: header.total_cents,
                lines: lines.clone(),
            })
            .collect()
    }
}

impl Sink for Collected {
    fn kind(&mut self, kind: DocumentKind) -> Result<(), String> {
        self.kind = Some(kind);
        Ok(())
    }

    fn flow(&mut self, header: &FlowHeader) -> Result<(), String> {
        self.flows.push((header.clone(), Vec::new()));
        Ok(())
    }

    fn flow_line(&mut self, line: FlowLine) -> Result<(), String> {
        match self.flows.last_mut() {
            Some((_, lines)) => {
                lines.push(line);
                Ok(())
            }
            None => Err("a flow line before its flow".into()),
        }
    }

    fn account(&mut self, account: &TreasuryAccount) -> Result<(), String> {
        self.accounts.push(account.clone());
        Ok(())
    }

    fn credit(&mut self, credit: CreditRecord) -> Result<(), String> {
        self.credits.push(credit);
        self.credit_accounts
            .push(self.accounts.len().checked_sub(1));
        Ok(())
    }

    fn other_movement(&mut self) -> Result<(), String> {
        self.other_movements += 1;
        Ok(())
    }

    fn reversal(&mut self, reversal: ReversalRecord) -> Result<(), String> {
        self.other_movements += 1;
        self.reversals.push(reversal);
        self.reversal_accounts
            .push(self.accounts.len().checked_sub(1));
        Ok(())
    }

    fn coverage(&mut self, last_day: Date) -> Result<(), String> {
        self.coverage.push(last_day);
        Ok(())
    }
}
