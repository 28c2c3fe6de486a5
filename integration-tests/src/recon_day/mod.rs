//! A seeded, deterministic generator of one reconciliation day of the Comune di Milano, built
//! from the contract (`../shared/research/reconciliation.md`), with its ground truth.
//!
//! A day is planned in two steps, because incasso assigns the IUVs of the notices it issues:
//! [`Plan::generate`] decides everything from the seed (the notices to create, who pays them
//! and how, which PSP reports what, which credit pays which flow and in which words), and
//! [`Plan::day`], given the notices as incasso issued them, writes the receipts to send over
//! paSendRT/paSendRTV2, the reporting flows (FlussoRiversamento, several revisions for some),
//! the treasury documents (a camt.053 statement, a camt.054 notification and an OPI giornale
//! di cassa) and the [`GroundTruth`]: the label of every transfer key and every credit, each
//! flow's treasury state, and which transfers belong to another beneficiary.
//!
//! The truth comes from the scenario's intent, never from incasso's classifier: the generator
//! decides "this flow is paid by two transfers", "this key is a double payment", "this credit
//! truncates its IUF", and the contract's tables (§4, §5) turn those decisions into labels.
//! Every label of §4 and §5, every flow treasury state and every scenario the issue lists
//! occurs in every day, whatever the seed (the module's tests check that over many seeds),
//! and so does a flow whose declared total its lines do not add up to (imported as declared,
//! cashed by a credit of what it declares).
//!
//! Rooms: `scenario` (the intent, all the seeded decisions), `documents` (the receipts, flows
//! and treasury files written from it), `truth` (the ground truth written from it).

mod documents;
mod scenario;
mod truth;

pub use truth::{CreditTruth, FlowTruth, GroundTruth, Scope, TransferTruth, summary};

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use time::Date;
use time::macros::date;

use incasso_domain::notice_number::{IuvBase, NoticeNumber, SegregationCode};
use incasso_grpc::pb;

use crate::node_simulator::{self as node, Caller, ReceiptSpec};
use scenario::{Payee, Scenario};

/// The OPI entity code (`codice_ente`) the giornale di cassa is written for: configure it as
/// Milan's `opi_entity_code`.
pub const OPI_ENTITY_CODE: &str = "C0MI01";

/// The day the receipts are paid (Europe/Rome). Flows are regulated and credits booked on the
/// two days after; flows regulated on the third day are not due yet.
pub const PAYMENT_DAY: Date = date!(2026 - 11 - 23);

/// How big a day is. Every scenario occurs `repeats` times; the rest is ordinary traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DayShape {
    /// How many times each scenario occurs (at least once).
    pub repeats: usize,
    /// Ordinary paid lines per flow, between these bounds (at least one), besides the
    /// scenarios' own lines.
    pub lines_per_flow: (usize, usize),
    /// Receipts that no flow reports and no credit pays (`RT_NO_IUF`), per repeat.
    pub unreported_receipts: usize,
    /// Credits with no pagoPA reference (`TES_NO_MATCH`), per repeat (at least one).
    pub unrelated_credits: usize,
}

impl DayShape {
    /// A day for the end-to-end tests: about 70 receipts, 17 flows and 20 credits.
    pub fn small() -> Self {
        Self {
            repeats: 1,
            lines_per_flow: (1, 3),
            unreported_receipts: 3,
            unrelated_credits: 2,
        }
    }

    /// `repeats` times the scenarios of [`DayShape::small`], with flows of up to `max_lines`
    /// ordinary lines.
    pub fn scaled(repeats: usize, max_lines: usize) -> Self {
        Self {
            repeats: repeats.max(1),
            lines_per_flow: (1, max_lines.max(1)),
            unreported_receipts: 3,
            unrelated_credits: 2,
        }
    }
}

/// A notice as incasso issued it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedNotice {
    /// The notice number (NAV).
    pub notice_number: String,
    /// Its IUV.
    pub iuv: String,
}

impl IssuedNotice {
    /// The notice of the (single) installment of a created debt position.
    pub fn from_installment(installment: &pb::Installment) -> Self {
        Self {
            notice_number: installment.notice_number.clone(),
            iuv: installment.iuv.clone(),
        }
    }
}

/// A day decided from a seed, before incasso has issued its notices.
#[derive(Debug, Clone)]
pub struct Plan {
    seed: u64,
    scenario: Scenario,
}

impl Plan {
    /// The day of `seed`: the same seed and shape give the same day, byte for byte.
    pub fn generate(seed: u64, shape: DayShape) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut scenario = scenario::build(rng.clone(), shape, PAYMENT_DAY);
        // A stream of its own for the amounts, so that they do not shift the scenario.
        rng.set_stream(1);
        scenario::settle(&mut scenario, &mut rng);
        Self { seed, scenario }
    }

    /// The seed.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The debt positions to create through NoticeService, in order; each has one payment
    /// option of one installment. [`Plan::day`] wants their notices in the same order.
    pub fn requests(&self) -> &[pb::CreateDebtPositionRequest] {
        &self.scenario.requests
    }

    /// Notices numbered as incasso numbers Milan's first notices (segregation code 12, bases
    /// from 1), for a day written without a server (the generator's tests, the files for the
    /// finance office's trials).
    pub fn synthetic_notices(&self) -> Vec<IssuedNotice> {
        (0..self.scenario.requests.len())
            .map(|i| {
                let base = IuvBase::new(i as u64 + 1).unwrap_or_else(|_| unreachable!());
                let code = SegregationCode::new(12).unwrap_or_else(|_| unreachable!());
                let number = NoticeNumber::issue(code, base);
                IssuedNotice {
                    notice_number: number.as_str().to_owned(),
                    iuv: number.iuv().as_str().to_owned(),
                }
            })
            .collect()
    }

    /// The day's receipts, documents and ground truth, with `issued[i]` the notice incasso
    /// issued for `requests()[i]`.
    pub fn day(&self, issued: &[IssuedNotice]) -> anyhow::Result<Day> {
        anyhow::ensure!(
            issued.len() == self.scenario.requests.len(),
            "{} notices issued for {} requests",
            issued.len(),
            self.scenario.requests.len()
        );
        let writer = Writer {
            s: &self.scenario,
            issued,
        };
        let mut receipts = writer.receipts();
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        rng.set_stream(2);
        receipts.shuffle(&mut rng);
        // The receipts the Node sends again, after the others.
        let again: Vec<Receipt> = self
            .scenario
            .payments
            .iter()
            .filter(|p| p.delivery.is_some_and(|d| d.again))
            .filter_map(|p| {
                receipts
                    .iter()
                    .find(|r| r.spec.receipt_id == p.receipt_id)
                    .cloned()
            })
            .collect();
        receipts.extend(again);
        Ok(Day {
            receipts,
            documents: writer.documents()?,
            truth: writer.truth(),
        })
    }
}

/// A receipt and the operation that delivers it.
#[derive(Debug, Clone)]
pub struct Receipt {
    /// What the receipt says.
    pub spec: ReceiptSpec,
    /// paSendRTV2 (else paSendRT).
    pub v2: bool,
}

impl Receipt {
    /// The SOAPAction.
    pub fn soap_action(&self) -> &'static str {
        if self.v2 { "paSendRTV2" } else { "paSendRT" }
    }

    /// The SOAP request the Node sends for it, to Milan's station.
    pub fn envelope(&self) -> String {
        node::send_rt(&Caller::default(), self.v2, &self.spec)
    }
}

/// What a document is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum DocumentKind {
    /// A FlussoRiversamento (one revision of a flow).
    Flow,
    /// A camt.053, camt.054 or OPI giornale di cassa.
    Treasury,
}

/// An evidence document, as a file the finance office imports.
#[derive(Debug, Clone)]
pub struct Document {
    /// Its file name.
    pub name: String,
    /// Flow or treasury.
    pub kind: DocumentKind,
    /// The XML.
    pub content: String,
}

/// One generated day.
#[derive(Debug, Clone)]
pub struct Day {
    /// Receipts, in the order the Node delivers them; some are sent twice (the Node did not
    /// hear the first answer).
    pub receipts: Vec<Receipt>,
    /// Every flow revision and treasury document.
    pub documents: Vec<Document>,
    /// What incasso must compute from all of it.
    pub truth: GroundTruth,
}

/// Writes a scenario's receipts, documents and truth once the IUVs are known.
struct Writer<'a> {
    s: &'a Scenario,
    issued: &'a [IssuedNotice],
}

impl Writer<'_> {
    fn iuv(&self, notice: usize) -> &str {
        match &self.s.notices[notice].payee {
            Payee::Issued(i) => &self.issued[*i].iuv,
            Payee::Legacy(iuv) => iuv,
        }
    }

    fn notice_number(&self, notice: usize) -> String {
        match &self.s.notices[notice].payee {
            Payee::Issued(i) => self.issued[*i].notice_number.clone(),
            Payee::Legacy(iuv) => format!("3{iuv}"),
        }
    }
}

/// `cents` as an amount in euro with a decimal point, as the documents write it.
fn euro(cents: i64) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

#[cfg(test)]
mod tests;
