//! The OPI giornale di cassa (SIOPE+), versions 1.4, 1.6.1, 1.7.1 and 1.8. Elements are
//! unqualified and the same in 1.6.1-1.8; 1.4 names its period with a start and an end day
//! instead of one reference day, which is how the version is told. A credit is a movement
//! with `tipo_movimento=ENTRATA` and `tipo_operazione=ESEGUITO` (contract §1), identified by
//! `codice_riferimento_interno`; the schema makes it optional, and a credit without it is
//! identified by its bill, `<esercizio>/<numero_bolletta_quietanza>` (the key the Tesoriere
//! and p4pa use), rather than refusing the day's giornale. The document belongs to the
//! creditor whose OPI entity code is `testata_messaggio/codice_ente`. The Tesoriere's
//! signature is not read.

use incasso_domain::reconciliation::{CreditId, TreasuryCredit};
use time::Date;

use crate::document::{
    CreditRecord, DocumentKind, Format, OpiVersion, ReversalRecord, Sink, TreasuryAccount,
};
use crate::values::{cents, date, shown};
use crate::xml::Start;

#[derive(Default)]
struct Movement {
    kind: Option<String>,
    operation: Option<String>,
    amount_cents: Option<i64>,
    booking_date: Option<Date>,
    value_date: Option<Date>,
    id: Option<String>,
    bill: Option<String>,
    /// `numero_bolletta_quietanza_storno`: the bill a `STORNATO` reverses.
    reversed_bill: Option<String>,
    trn: Option<String>,
    end_to_end_id: Option<String>,
    ordering_party: Option<String>,
    causale: Option<String>,
}

/// Reads one giornale di cassa.
pub(crate) struct OpiHandler {
    version: Option<OpiVersion>,
    entity: bool,
    reference_day: Option<Date>,
    /// `esercizio`, the financial year the bills are numbered in.
    fiscal_year: Option<String>,
    movement: Option<Movement>,
}

impl OpiHandler {
    pub(crate) fn new() -> Self {
        Self {
            version: None,
            entity: false,
            reference_day: None,
            fiscal_year: None,
            movement: None,
        }
    }

    fn set_version(&mut self, version: OpiVersion, sink: &mut dyn Sink) -> Result<(), String> {
        if self.version.is_none() {
            self.version = Some(version);
            sink.kind(DocumentKind::Opi(version))?;
        }
        Ok(())
    }
}

impl Format for OpiHandler {
    fn start(
        &mut self,
        path: &[String],
        start: &Start<'_>,
        _sink: &mut dyn Sink,
    ) -> Result<(), String> {
        if path.len() == 1 && start.namespace.is_some() {
            return Err("an OPI giornale di cassa has unqualified elements (no namespace)".into());
        }
        if path.len() == 3 && start.name == "movimento_conto_evidenza" {
            if !self.entity {
                return Err("testata_messaggio/codice_ente is missing before the movements".into());
            }
            self.movement = Some(Movement::default());
        }
        Ok(())
    }

    fn end(&mut self, path: &[String], raw: &str, sink: &mut dyn Sink) -> Result<(), String> {
        let text = raw.trim();
        let depth = path.len();
        let name = path.last().map(String::as_str).unwrap_or_default();
        if depth >= 4
            && path[2] == "movimento_conto_evidenza"
            && let Some(m) = self.movement.as_mut()
        {
            match (depth, name) {
                (4, "tipo_movimento") => m.kind = Some(text.to_owned()),
                (4, "tipo_operazione") => m.operation = Some(text.to_owned()),
                (4, "importo") => m.amount_cents = Some(cents(text)?),
                (4, "data_movimento") => m.booking_date = Some(date(text)?),
                (4, "data_valuta_ente") => m.value_date = Some(date(text)?),
                (4, "codice_riferimento_interno") => m.id = Some(text.to_owned()),
                (4, "numero_bolletta_quietanza") => m.bill = Some(text.to_owned()),
                (4, "numero_bolletta_quietanza_storno") => {
                    m.reversed_bill = Some(text.to_owned());
                }
                (4, "codice_riferimento_operazione") => m.trn = Some(text.to_owned()),
                (4, "end_to_end_id") => m.end_to_end_id = Some(text.to_owned()),
                (4, "causale") => m.causale = Some(raw.to_owned()),
                (5, "anagrafica_cliente") if path[3] == "cliente" => {
                    m.ordering_party = Some(text.to_owned());
                }
                _ => {}
            }
            return Ok(());
        }
        match (depth, name) {
            (3, "movimento_conto_evidenza") => {
                let m = self.movement.take().unwrap_or_default();
                let missing = |field: &str| format!("{field} is missing");
                let kind = m.kind.ok_or_else(|| missing("tipo_movimento"))?;
                let operation = m.operation.ok_or_else(|| missing("tipo_operazione"))?;
                let in_year = |bill: Option<String>| match (&self.fiscal_year, bill) {
                    (Some(year), Some(bill)) if !bill.is_empty() => Some(format!("{year}/{bill}")),
                    _ => None,
                };
                if kind == "ENTRATA" && operation == "STORNATO" {
                    return sink.reversal(ReversalRecord {
                        reference: m.id.filter(|id| !id.is_empty()).or_else(|| in_year(m.bill)),
                        reverses_bill: in_year(m.reversed_bill),
                        amount_cents: m.amount_cents,
                        booking_date: m.booking_date,
                    });
                }
                if kind != "ENTRATA" || operation != "ESEGUITO" {
                    return sink.other_movement();
                }
                let amount_cents = m.amount_cents.ok_or_else(|| missing("importo"))?;
                if amount_cents < 0 {
                    return Err(format!(
                        "importo is negative ({amount_cents} cents): the sign is tipo_movimento's"
                    ));
                }
                let booking_date = m.booking_date.ok_or_else(|| missing("data_movimento"))?;
                let bill = in_year(m.bill);
                let id = m.id.filter(|id| !id.is_empty()).or(bill).ok_or_else(|| {
                    "codice_riferimento_interno is missing, and no numero_bolletta_quietanza \
                     with esercizio stands in for it: a credit is identified by one of them"
                        .to_owned()
                })?;
                let id =
                    CreditId::parse(&id).map_err(|e| format!("codice_riferimento_interno: {e}"))?;
                sink.credit(CreditRecord {
                    credit: TreasuryCredit {
                        id,
                        amount_cents,
                        booking_date,
                        value_date: m.value_date.unwrap_or(booking_date),
                        causale: m.causale.ok_or_else(|| missing("causale"))?,
                        trn: m.trn.filter(|t| !t.is_empty()),
                    },
                    ordering_party: m.ordering_party.filter(|n| !n.is_empty()),
                    end_to_end_id: m.end_to_end_id.filter(|e| !e.is_empty()),
                })
            }
            (3, "codice_ente") if path[1] == "testata_messaggio" => {
                // The IPA code: six capitals or digits from 1.6.1 on, any text in 1.4 (whose
                // version is told only after the header); the configuration decides whose it is.
                if text.is_empty() || text.chars().any(char::is_whitespace) {
                    return Err(format!("'{}' is not an OPI entity code", shown(text)));
                }
                self.entity = true;
                sink.account(&TreasuryAccount::OpiEntity(text.to_owned()))
            }
            (2, "data_riferimento_GdC") => {
                self.set_version(OpiVersion::V1_6To1_8, sink)?;
                self.reference_day = Some(date(text)?);
                Ok(())
            }
            (2, "esercizio") => {
                self.fiscal_year = Some(text.to_owned());
                Ok(())
            }
            (2, "data_inizio_periodo_riferimento") => self.set_version(OpiVersion::V1_4, sink),
            (2, "data_fine_periodo_riferimento") => {
                self.set_version(OpiVersion::V1_4, sink)?;
                self.reference_day = Some(date(text)?);
                Ok(())
            }
            (1, _) => {
                if !self.entity {
                    return Err("testata_messaggio/codice_ente is missing".into());
                }
                let day = self.reference_day.ok_or_else(|| {
                    "neither data_riferimento_GdC nor data_fine_periodo_riferimento is present"
                        .to_owned()
                })?;
                sink.coverage(day)
            }
            _ => Ok(()),
        }
    }

    fn detected(&self) -> Option<DocumentKind> {
        self.version.map(DocumentKind::Opi)
    }
}
