//! ISO 20022 camt.053 statements and camt.054 notifications, versions .001.02, .04 and .08,
//! through one entry (`Ntry`) reader: the versions differ in where the status code and the
//! parties' names sit, not in what an entry means. A credit is a booked (`BOOK`) entry with
//! `CdtDbtInd=CRDT` that is not a reversal (`RvslInd`: a reversed debit gives money back, it
//! pays no flow); its id is `AcctSvcrRef`, its causale every `TxDtls/RmtInf/Ustrd`
//! concatenated as written (banks cut long texts into 140-character pieces that keep their
//! spaces), its TRN `Refs/ClrSysRef`. `AddtlNtryInf` is the bank's own text and is not read.
//! An entry without `AcctSvcrRef` whose one transaction carries `TxDtls/Refs/AcctSvcrRef`
//! (where CBI statements put the bank's reference) is identified by that one. Entries that
//! are not credits need only what the schema asks of them (a pending entry has no booking
//! day).
//!
//! The days a document covers (contract §3: a flow due by then and not cashed is `NO_TES`):
//! its period's end (`FrToDt/ToDtTm`; midnight ends the day before), else the statement's
//! closing balance day (`CLBD`), else its last booked entry's day. A pending entry's expected
//! booking day covers nothing.
//!
//! CBI XML statements hold camt.053.001.02 statements deeper, inside their envelope: the
//! reader sees every path from the statements' parent down, so both read alike.

use incasso_domain::reconciliation::{CreditId, TreasuryCredit};
use time::Date;

use crate::document::{CreditRecord, Format, ReversalRecord, Sink, TreasuryAccount};
use crate::values::{cents, date, date_of_date_time, shown};
use crate::xml::{Start, ends};

#[derive(Default)]
struct Entry {
    amount_cents: Option<i64>,
    currency: Option<String>,
    credit: Option<bool>,
    status: Option<String>,
    reversal: bool,
    booking_date: Option<Date>,
    value_date: Option<Date>,
    id: Option<String>,
    causale: String,
    trn: Option<String>,
    end_to_end_id: Option<String>,
    ordering_party: Option<String>,
    /// Every `TxDtls/Refs/AcctSvcrRef`, which stands in for a missing `Ntry/AcctSvcrRef`
    /// when there is exactly one.
    transaction_refs: Vec<String>,
}

/// Reads the statements (or notifications) of one camt document.
pub(crate) struct CamtHandler {
    /// Elements above the statements' parent (the CBI envelope's), cut from every path so
    /// that a statement sits at depth 3 as under a camt `Document`.
    envelope: usize,
    account: bool,
    period_end: Option<Date>,
    closing_balance: Option<Date>,
    last_booking: Option<Date>,
    entry: Option<Entry>,
    balance: Option<Balance>,
}

/// One `Bal` of a statement, as far as its day is wanted.
#[derive(Default)]
struct Balance {
    closing: bool,
    day: Option<Date>,
}

impl CamtHandler {
    /// A reader of a document whose statements (`Stmt`, `Ntfctn`) sit at `statement_depth`
    /// (3 in a camt `Document`, deeper in a CBI envelope).
    pub(crate) fn new(statement_depth: usize) -> Self {
        Self {
            envelope: statement_depth.saturating_sub(3),
            account: false,
            period_end: None,
            closing_balance: None,
            last_booking: None,
            entry: None,
            balance: None,
        }
    }
}

fn is_statement(name: &str) -> bool {
    name == "Stmt" || name == "Ntfctn"
}

impl Format for CamtHandler {
    fn start(
        &mut self,
        path: &[String],
        start: &Start<'_>,
        _sink: &mut dyn Sink,
    ) -> Result<(), String> {
        let Some(path) = path.get(self.envelope..) else {
            return Ok(());
        };
        if path.len() == 3 && is_statement(start.name) {
            self.account = false;
            self.period_end = None;
            self.closing_balance = None;
            self.last_booking = None;
        }
        if path.len() == 4 && start.name == "Bal" {
            self.balance = Some(Balance::default());
        }
        if path.len() == 4 && start.name == "Ntry" {
            if !self.account {
                return Err(
                    "the statement names no account IBAN (Acct/Id/IBAN) before its entries".into(),
                );
            }
            self.entry = Some(Entry::default());
        }
        if path.len() == 5
            && start.name == "Amt"
            && let Some(entry) = self.entry.as_mut()
        {
            entry.currency = start
                .attributes
                .iter()
                .find(|(name, _)| name == "Ccy")
                .map(|(_, value)| value.clone());
        }
        Ok(())
    }

    fn end(&mut self, path: &[String], raw: &str, sink: &mut dyn Sink) -> Result<(), String> {
        let Some(path) = path.get(self.envelope..) else {
            return Ok(());
        };
        let text = raw.trim();
        let depth = path.len();
        if depth >= 5
            && path[3] == "Ntry"
            && let Some(entry) = self.entry.as_mut()
        {
            let name = path[depth - 1].as_str();
            match (depth, name) {
                (5, "Amt") => entry.amount_cents = Some(cents(text)?),
                (5, "CdtDbtInd") => {
                    entry.credit = Some(match text {
                        "CRDT" => true,
                        "DBIT" => false,
                        other => return Err(format!("'{}' is not CRDT or DBIT", shown(other))),
                    });
                }
                (5, "Sts") if !text.is_empty() => entry.status = Some(text.to_owned()),
                (6, "Cd" | "Prtry") if path[4] == "Sts" => {
                    entry.status = Some(text.to_owned());
                }
                (5, "RvslInd") => {
                    entry.reversal = match text {
                        "true" | "1" => true,
                        "false" | "0" => false,
                        other => return Err(format!("'{}' is not a boolean", shown(other))),
                    };
                }
                (6, "Dt") if path[4] == "BookgDt" => entry.booking_date = Some(date(text)?),
                (6, "DtTm") if path[4] == "BookgDt" => {
                    entry.booking_date = Some(date_of_date_time(text)?);
                }
                (6, "Dt") if path[4] == "ValDt" => entry.value_date = Some(date(text)?),
                (6, "DtTm") if path[4] == "ValDt" => {
                    entry.value_date = Some(date_of_date_time(text)?);
                }
                (5, "AcctSvcrRef") => entry.id = Some(text.to_owned()),
                (_, "AcctSvcrRef") if ends(path, &["TxDtls", "Refs", "AcctSvcrRef"]) => {
                    entry.transaction_refs.push(text.to_owned());
                }
                (_, "Ustrd") if ends(path, &["TxDtls", "RmtInf", "Ustrd"]) => {
                    entry.causale.push_str(raw);
                }
                (_, "ClrSysRef") if ends(path, &["TxDtls", "Refs", "ClrSysRef"]) => {
                    entry.trn.get_or_insert_with(|| text.to_owned());
                }
                (_, "EndToEndId") if ends(path, &["TxDtls", "Refs", "EndToEndId"]) => {
                    entry.end_to_end_id.get_or_insert_with(|| text.to_owned());
                }
                (_, "Nm")
                    if ends(path, &["RltdPties", "Dbtr", "Nm"])
                        || ends(path, &["RltdPties", "Dbtr", "Pty", "Nm"]) =>
                {
                    entry.ordering_party.get_or_insert_with(|| text.to_owned());
                }
                _ => {}
            }
            return Ok(());
        }
        if depth == 4 && path[3] == "Ntry" {
            let entry = self.entry.take().unwrap_or_default();
            let missing = |field: &str| format!("Ntry/{field} is missing");
            let amount_cents = entry.amount_cents.ok_or_else(|| missing("Amt"))?;
            let is_credit = entry.credit.ok_or_else(|| missing("CdtDbtInd"))?;
            let status = entry.status.ok_or_else(|| missing("Sts"))?;
            let booked = status == "BOOK";
            if booked && let Some(day) = entry.booking_date {
                self.last_booking = Some(self.last_booking.map_or(day, |d| d.max(day)));
            }
            if !is_credit && booked && entry.reversal {
                return sink.reversal(ReversalRecord {
                    reference: entry
                        .id
                        .or_else(|| match entry.transaction_refs.as_slice() {
                            [one] => Some(one.clone()),
                            _ => None,
                        }),
                    reverses_bill: None,
                    amount_cents: Some(amount_cents),
                    booking_date: entry.booking_date,
                });
            }
            if !is_credit || !booked || entry.reversal {
                return sink.other_movement();
            }
            let booking_date = entry.booking_date.ok_or_else(|| missing("BookgDt"))?;
            match entry.currency.as_deref() {
                Some("EUR") => {}
                other => {
                    return Err(format!(
                        "a credit in {} cannot be reconciled: treasury accounts are in EUR",
                        other.unwrap_or("no currency")
                    ));
                }
            }
            let id = match (entry.id, entry.transaction_refs.as_slice()) {
                (Some(id), _) => id,
                (None, [one]) => one.clone(),
                (None, _) => {
                    return Err("Ntry/AcctSvcrRef is missing, and no single \
                                TxDtls/Refs/AcctSvcrRef stands in for it: a credit is \
                                identified by the bank's reference"
                        .to_owned());
                }
            };
            let id = CreditId::parse(&id).map_err(|e| format!("Ntry/AcctSvcrRef: {e}"))?;
            return sink.credit(CreditRecord {
                credit: TreasuryCredit {
                    id,
                    amount_cents,
                    booking_date,
                    value_date: entry.value_date.unwrap_or(booking_date),
                    causale: entry.causale,
                    trn: entry.trn.filter(|t| !t.is_empty()),
                },
                ordering_party: entry.ordering_party.filter(|n| !n.is_empty()),
                end_to_end_id: entry.end_to_end_id.filter(|e| !e.is_empty()),
            });
        }
        if depth == 3 && is_statement(&path[2]) {
            if !self.account {
                return Err("the statement names no account IBAN (Acct/Id/IBAN)".into());
            }
            // The latest of the period's end, the closing balance's day and the last booked
            // entry's day: an entry booked on a day shows that day covered whatever the
            // period says (a daily statement's period written as its own day's midnight to
            // midnight would otherwise close the day before the one it books).
            if let Some(day) = [self.period_end, self.closing_balance, self.last_booking]
                .into_iter()
                .flatten()
                .max()
            {
                sink.coverage(day)?;
            }
            return Ok(());
        }
        if depth >= 5
            && path[3] == "Bal"
            && let Some(balance) = self.balance.as_mut()
        {
            match path[depth - 1].as_str() {
                "Cd" if ends(path, &["Bal", "Tp", "CdOrPrtry", "Cd"]) => {
                    balance.closing = text == "CLBD";
                }
                "Dt" if ends(path, &["Bal", "Dt", "Dt"]) => balance.day = Some(date(text)?),
                "DtTm" if ends(path, &["Bal", "Dt", "DtTm"]) => {
                    balance.day = Some(date_of_date_time(text)?);
                }
                _ => {}
            }
            return Ok(());
        }
        if depth == 4 && path[3] == "Bal" {
            if let Some(Balance {
                closing: true,
                day: Some(day),
            }) = self.balance.take()
            {
                self.closing_balance = Some(self.closing_balance.map_or(day, |d| d.max(day)));
            }
            return Ok(());
        }
        if ends(path, &["Acct", "Id", "IBAN"]) && depth == 6 {
            self.account = true;
            return sink.account(&TreasuryAccount::Iban(text.to_owned()));
        }
        if ends(path, &["FrToDt", "ToDtTm"]) && depth == 5 {
            self.period_end = Some(end_of_period(text)?);
        }
        Ok(())
    }
}

/// The last day a period ending at `to` (an `xs:dateTime`) covers: its day, or the day before
/// when it ends at midnight (`2026-03-12T00:00:00` closes 11 March).
fn end_of_period(to: &str) -> Result<Date, String> {
    let day = date_of_date_time(to)?;
    let time = to.get(11..).unwrap_or_default();
    let midnight = time.strip_prefix("00:00:00").is_some_and(|rest| {
        rest.strip_prefix('.')
            .map_or(rest, |fraction| fraction.trim_start_matches('0'))
            .chars()
            .next()
            .is_none_or(|c| !c.is_ascii_digit())
    });
    Ok(if midnight {
        day.previous_day().unwrap_or(day)
    } else {
        day
    })
}
