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
//! occurs in every day, whatever the seed (the module's tests check that over many seeds).

mod scenario;

use std::collections::BTreeMap;
use std::fmt::Write as _;

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use time::macros::date;
use time::{Date, Duration};

use incasso_domain::notice_number::{Iuv, IuvBase, NoticeNumber, SegregationCode};
use incasso_domain::reconciliation::causale::MARKER_SPELLINGS;
use incasso_domain::reconciliation::{
    FlowId, FlowLine, FlowTreasuryState, Label, ReportingFlow, TransferIndex, TransferKey,
};
use incasso_grpc::pb;
use incasso_reconciliation::testing::{CamtEntry, CamtMessage, OpiMovement, camt, fdr_xml, opi};

use crate::node_simulator::{self as node, CM_BANK, Caller, MILANO_BANK, ReceiptSpec};
use crate::requests::MILANO;
use scenario::{Book, CreditIntent, Payee, Scenario, Spelling};

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

/// Whose transfer a key is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Scope {
    /// Milan's own: reconciled and labelled.
    Creditor,
    /// Another beneficiary's (the TEFA of a TARI): listed, never labelled.
    OtherBeneficiary,
}

/// The truth about one transfer key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TransferTruth {
    /// The transfer's beneficiary (`fiscalCodePA`).
    pub beneficiary: String,
    /// IUV.
    pub iuv: String,
    /// receiptId / IUR.
    pub receipt_id: String,
    /// idTransfer.
    pub id_transfer: u32,
    /// Creditor or other beneficiary.
    pub scope: Scope,
    /// The primary label (contract §4); none for another beneficiary's transfer.
    #[serde(serialize_with = "optional_label_code")]
    pub label: Option<Label>,
    /// The receipt's `transferAmount` (the line's amount when no receipt has the key).
    pub amount_cents: i64,
    /// The receipt's `transferAmount`, when a receipt has the key.
    pub receipt_cents: Option<i64>,
    /// The line's `singoloImportoPagato`, when a flow reports the key.
    pub reported_cents: Option<i64>,
    /// The flow reporting it.
    pub flow_id: Option<String>,
    /// What happened to it, in words (for a reader of a failed comparison).
    pub story: String,
}

/// The truth about one treasury credit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CreditTruth {
    /// camt `AcctSvcrRef` / OPI `codice_riferimento_interno`.
    pub id: String,
    /// Its label (contract §5).
    #[serde(serialize_with = "label_code")]
    pub label: Label,
    /// Amount.
    pub amount_cents: i64,
    /// Booking day.
    pub booking_date: Date,
    /// The flows it is attributed to, sorted.
    pub attributed_flow_ids: Vec<String>,
    /// What it is, in words.
    pub story: String,
}

/// The truth about one flow (its revision that counts).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FlowTruth {
    /// IUF.
    pub flow_id: String,
    /// Treasury state (contract §3).
    #[serde(serialize_with = "state_code")]
    pub state: FlowTreasuryState,
    /// `importoTotalePagamenti` of the revision that counts.
    pub total_cents: i64,
    /// Its number of lines.
    pub line_count: usize,
    /// The credits of its component, sorted.
    pub credit_ids: Vec<String>,
    /// How many revisions were sent.
    pub revisions: usize,
}

/// What incasso must compute for the day, once every receipt and document is in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GroundTruth {
    /// Every transfer key (both scopes), sorted by (beneficiary, IUV, receiptId, idTransfer).
    pub transfers: Vec<TransferTruth>,
    /// Every treasury credit, sorted by id.
    pub credits: Vec<CreditTruth>,
    /// Every flow, sorted by IUF.
    pub flows: Vec<FlowTruth>,
}

/// Writes a label as the contract's code (`RT_IUF_TES`).
fn label_code<S: serde::Serializer>(label: &Label, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(label.code())
}

/// Writes a label as the contract's code, none as null.
fn optional_label_code<S: serde::Serializer>(
    label: &Option<Label>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match label {
        Some(label) => serializer.serialize_str(label.code()),
        None => serializer.serialize_none(),
    }
}

/// Writes a treasury state as the contract's code (`CASHED`).
fn state_code<S: serde::Serializer>(
    state: &FlowTreasuryState,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(state.code())
}

/// The contract's §4 as a decision on a key's facts: the first label that holds in the order
/// `DOPPI > IUV_NO_RT > IUF_TES_DIV_IMP > IUF_NO_TES > RT_IUF_TES > RT_IUF > RT_TES > RT_NO_IUF`.
/// `line` is the treasury state of the flow reporting the key and whether the line's amount
/// equals the receipt's.
fn transfer_label(
    double: bool,
    received: bool,
    line: Option<(FlowTreasuryState, bool)>,
    paid_by_iuv_credit: bool,
) -> Label {
    if double {
        return Label::Doppi;
    }
    match (received, line) {
        (false, _) => Label::IuvNoRt,
        (true, Some((FlowTreasuryState::DivImp, _))) => Label::IufTesDivImp,
        (true, Some((FlowTreasuryState::NoTes, _))) => Label::IufNoTes,
        (true, Some((FlowTreasuryState::Cashed, true))) => Label::RtIufTes,
        (true, Some((FlowTreasuryState::Pending, true))) => Label::RtIuf,
        (true, Some(_)) => Label::RtNoIuf,
        (true, None) if paid_by_iuv_credit => Label::RtTes,
        (true, None) => Label::RtNoIuf,
    }
}

fn euro(cents: i64) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
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

    fn receipts(&self) -> Vec<Receipt> {
        self.s
            .payments
            .iter()
            .filter_map(|p| {
                let delivery = p.delivery?;
                let notice = &self.s.notices[p.notice];
                let total: i64 = notice.transfers.iter().map(|t| t.1).sum();
                let spec = ReceiptSpec {
                    receipt_id: p.receipt_id.clone(),
                    notice_number: self.notice_number(p.notice),
                    fiscal_code: MILANO.to_owned(),
                    iuv: self.iuv(p.notice).to_owned(),
                    amount: node::st_amount(total),
                    psp: p.psp.clone(),
                    transfers: notice
                        .transfers
                        .iter()
                        .map(|(beneficiary, cents)| {
                            let iban = if *beneficiary == MILANO {
                                MILANO_BANK
                            } else {
                                CM_BANK
                            };
                            (
                                (*beneficiary).to_owned(),
                                node::st_amount(*cents),
                                iban.to_owned(),
                            )
                        })
                        .collect(),
                    stand_in: delivery.stand_in,
                    payment_date_time: format!(
                        "{}T{:02}:{:02}:{:02}",
                        p.paid_at.date(),
                        p.paid_at.hour(),
                        p.paid_at.minute(),
                        p.paid_at.second()
                    ),
                };
                Some(Receipt {
                    spec,
                    v2: delivery.v2,
                })
            })
            .collect()
    }

    /// The lines of a reported payment, one per transfer of Milan's.
    fn flow_lines(&self, payment: usize) -> anyhow::Result<Vec<FlowLine>> {
        let p = &self.s.payments[payment];
        let reported = p
            .reported
            .ok_or_else(|| anyhow::anyhow!("payment {payment} is not reported"))?;
        self.s
            .lines(payment)
            .into_iter()
            .map(|(id_transfer, amount_cents)| {
                Ok(FlowLine {
                    key: TransferKey::new(
                        Iuv::parse(self.iuv(p.notice))?,
                        &p.receipt_id,
                        TransferIndex::new(i64::from(id_transfer))?,
                    )?,
                    amount_cents,
                    outcome: reported.outcome,
                    paid_on: p.paid_at.date(),
                })
            })
            .collect()
    }

    fn documents(&self) -> anyhow::Result<Vec<Document>> {
        let mut documents = Vec::new();
        for (f, flow) in self.s.flows.iter().enumerate() {
            let mut lines = Vec::new();
            for &p in &flow.lines {
                lines.extend(self.flow_lines(p)?);
            }
            let latest = ReportingFlow {
                flow_id: FlowId::parse(&flow.id)?,
                revision: 0,
                created_at: flow.created_at,
                psp_id: flow.psp.clone(),
                trn: flow.trn.clone(),
                regulation_date: flow.regulation_date,
                total_cents: self.s.flow_total(f),
                lines,
            };
            if flow.revised {
                // The first revision: the PSP forgot a line and mistyped another's amount.
                let mut first = latest.clone();
                first.created_at = flow.created_at - Duration::hours(3);
                if first.lines.len() > 1 {
                    first.lines.pop();
                }
                first.lines[0].amount_cents += 100;
                first.total_cents = first.lines.iter().map(|l| l.amount_cents).sum();
                documents.push(Document {
                    name: format!("fdr-{}-1.xml", flow.id),
                    kind: DocumentKind::Flow,
                    content: fdr_xml(&first, MILANO),
                });
                documents.push(Document {
                    name: format!("fdr-{}-2.xml", flow.id),
                    kind: DocumentKind::Flow,
                    content: fdr_xml(&latest, MILANO),
                });
            } else {
                documents.push(Document {
                    name: format!("fdr-{}.xml", flow.id),
                    kind: DocumentKind::Flow,
                    content: fdr_xml(&latest, MILANO),
                });
            }
        }
        documents.extend(self.treasury());
        Ok(documents)
    }

    fn causale(&self, intent: &CreditIntent) -> String {
        let iuf = |f: usize| self.s.flows[f].id.as_str();
        match intent {
            CreditIntent::Flows { flows, spelling } => {
                let markers: Vec<String> = flows
                    .iter()
                    .map(|&f| match spelling {
                        Spelling::Plain | Spelling::Embedded | Spelling::AccreditiVari => {
                            let id = iuf(f);
                            if *spelling == Spelling::AccreditiVari {
                                // The identifier written as a whole date, then the rest.
                                format!("/PUR/LGPE-RIVERSAMENTO/URI/{} {}", &id[..10], &id[10..])
                            } else {
                                format!("/PUR/LGPE-RIVERSAMENTO/URI/{id}")
                            }
                        }
                        Spelling::Spaced(i) => {
                            format!("/PUR/{}/URI/{}", MARKER_SPELLINGS[*i], iuf(f))
                        }
                        Spelling::SpaceSeparators => {
                            format!("/PUR/LGPE-RIVERSAMENTO URI {}", iuf(f))
                        }
                        Spelling::SplitDate => {
                            let id = iuf(f);
                            format!("/PUR/LGPE-RIVERSAMENTO/URI/{} {}", &id[..9], &id[9..])
                        }
                    })
                    .collect();
                let markers = markers.join(" ");
                match spelling {
                    Spelling::AccreditiVari => format!("ACCREDITI VARI {markers}"),
                    Spelling::Embedded => {
                        let flow = &self.s.flows[flows[0]];
                        format!(
                            "BONIFICO SEPA A FAVORE DI COMUNE DI MILANO ORD. {} SERVIZIO PAGOPA \
                             TRN {} DATA REGOLAMENTO {} :RI3:{markers} :SEC:CASH:RI4:RIVERSAMENTO \
                             INCASSI PAGOPA DEL GIORNO",
                            flow.psp, flow.trn, flow.regulation_date
                        )
                    }
                    _ => markers,
                }
            }
            CreditIntent::FlowPart { flow, part } => {
                format!("/PUR/LGPE-RIVERSAMENTO/TXT/{part}/URI/{}", iuf(*flow))
            }
            CreditIntent::Truncated { flow, keep, also } => {
                let cut = format!("/PUR/LGPE-RIVERSAMENTO/URI/{}", &iuf(*flow)[..*keep]);
                match also {
                    Some(named) => format!("/PUR/LGPE-RIVERSAMENTO/URI/{} {cut}", iuf(*named)),
                    None => cut,
                }
            }
            CreditIntent::Iuv { payment, rfs } => {
                let p = &self.s.payments[*payment];
                let iuv = self.iuv(p.notice);
                let cents = self.s.notices[p.notice].milan_cents();
                if *rfs {
                    format!("/RFS/{iuv}/{}", euro(cents))
                } else {
                    format!("/RFB/{iuv}/{}/TXT/PAGAMENTO AVVISO PAGOPA", euro(cents))
                }
            }
            CreditIntent::UnknownIuv { iuv } => {
                format!("/RFB/{iuv}/TXT/PAGAMENTO AVVISO PAGOPA")
            }
            CreditIntent::Unrelated { text } => (*text).to_owned(),
        }
    }

    /// The TRN the bank shows: the flow's, for a transfer paying flows.
    fn trn(&self, intent: &CreditIntent) -> Option<String> {
        match intent {
            CreditIntent::Flows { flows, .. } => Some(self.s.flows[flows[0]].trn.clone()),
            CreditIntent::FlowPart { flow, part } => {
                Some(format!("{}{part}", self.s.flows[*flow].trn))
            }
            CreditIntent::Truncated { flow, .. } => Some(self.s.flows[*flow].trn.clone()),
            _ => None,
        }
    }

    fn treasury(&self) -> Vec<Document> {
        let first = self.s.first_booking();
        let second = self.s.second_booking();
        let camt_entry = |c: &scenario::Credit| {
            let mut entry = CamtEntry::credit(
                &c.id,
                c.amount_cents,
                c.booking_date,
                &self.causale(&c.intent),
            );
            entry.trn = self.trn(&c.intent);
            entry.debtor = Some("PSP SPA SERVIZIO PAGOPA".to_owned());
            entry.additional_info = Some("BONIFICO SEPA IN ENTRATA".to_owned());
            entry
        };
        let mut statement: Vec<CamtEntry> = Vec::new();
        let mut notification: Vec<CamtEntry> = Vec::new();
        let mut giornale: Vec<OpiMovement> = Vec::new();
        for credit in &self.s.credits {
            match credit.book {
                Book::Statement => statement.push(camt_entry(credit)),
                Book::Notification => notification.push(camt_entry(credit)),
                Book::Giornale => {
                    let mut movement = OpiMovement::credit(
                        &credit.id,
                        credit.amount_cents,
                        credit.booking_date,
                        &self.causale(&credit.intent),
                    );
                    movement.trn = self.trn(&credit.intent);
                    giornale.push(movement);
                }
            }
        }
        // Movements that are not credits: a debit, an entry not booked yet, an outgoing
        // payment.
        let mut debit = CamtEntry::credit("ASR053-DEBIT", 1_234, first, "COMMISSIONI TENUTA CONTO");
        debit.credit = false;
        statement.push(debit);
        let mut pending = CamtEntry::credit(
            "ASR054-PENDING",
            5_000,
            second,
            "/PUR/LGPE-RIVERSAMENTO/URI/NOT-BOOKED-YET",
        );
        pending.booked = false;
        notification.push(pending);
        let mut outgoing = OpiMovement::credit("OPI-USCITA", 99_000, second, "MANDATO 4411/2026");
        outgoing.entrata = false;
        giornale.push(outgoing);
        vec![
            Document {
                name: format!("camt053-{first}.xml"),
                kind: DocumentKind::Treasury,
                content: camt(
                    CamtMessage::Statement,
                    self.s.statement_version,
                    MILANO_BANK,
                    first,
                    first,
                    &statement,
                ),
            },
            Document {
                name: format!("camt054-{second}.xml"),
                kind: DocumentKind::Treasury,
                content: camt(
                    CamtMessage::Notification,
                    self.s.notification_version,
                    MILANO_BANK,
                    second,
                    second,
                    &notification,
                ),
            },
            Document {
                name: format!("opi-gdc-{second}.xml"),
                kind: DocumentKind::Treasury,
                content: opi(self.s.opi_schema, OPI_ENTITY_CODE, second, &giornale),
            },
        ]
    }

    fn truth(&self) -> GroundTruth {
        let s = self.s;
        // Payments with evidence (a receipt or a line) per notice: two or more is DOPPI.
        let mut evidenced: BTreeMap<usize, usize> = BTreeMap::new();
        for p in &s.payments {
            if p.delivery.is_some() || p.reported.is_some() {
                *evidenced.entry(p.notice).or_default() += 1;
            }
        }
        let mut transfers = Vec::new();
        for p in &s.payments {
            let notice = &s.notices[p.notice];
            let double = evidenced.get(&p.notice).copied().unwrap_or(0) > 1;
            for (t, (beneficiary, cents)) in notice.transfers.iter().enumerate() {
                let id_transfer = u32::try_from(t + 1).unwrap_or(u32::MAX);
                let mine = *beneficiary == MILANO;
                // Every transfer of Milan's is a line of a reported payment; the PSP's
                // mistake, if any, is on the first.
                let line = p.reported.filter(|_| mine);
                let delta_cents = line.map_or(0, |r| if t == 0 { r.delta_cents } else { 0 });
                if p.delivery.is_none() && line.is_none() {
                    continue;
                }
                let flow_state = line.map(|r| (s.flows[r.flow].state, delta_cents == 0));
                let label = mine.then(|| {
                    transfer_label(
                        double,
                        p.delivery.is_some(),
                        flow_state,
                        p.paid_by_iuv_credit,
                    )
                });
                let amount_cents = if p.delivery.is_some() {
                    *cents
                } else {
                    cents + delta_cents
                };
                let mut story = Vec::new();
                if !mine {
                    story.push("another beneficiary's transfer".to_owned());
                }
                if double {
                    story.push("double payment".to_owned());
                }
                match p.delivery {
                    None => story.push("no receipt".to_owned()),
                    Some(d) => {
                        story.push(if d.v2 { "paSendRTV2" } else { "paSendRT" }.to_owned());
                        if d.stand_in {
                            story.push("Stand-In".to_owned());
                        }
                    }
                }
                if matches!(notice.payee, Payee::Legacy(_)) {
                    story.push("notice incasso did not issue".to_owned());
                }
                if let Some(r) = line {
                    story.push(format!(
                        "line code {} in a {} flow",
                        r.outcome.code(),
                        s.flows[r.flow].state.code()
                    ));
                    if delta_cents != 0 {
                        story.push(format!("line off by {delta_cents} cents"));
                    }
                }
                if p.paid_by_iuv_credit && mine {
                    story.push("paid by an /RFB/ or /RFS/ credit".to_owned());
                }
                transfers.push(TransferTruth {
                    beneficiary: (*beneficiary).to_owned(),
                    iuv: self.iuv(p.notice).to_owned(),
                    receipt_id: p.receipt_id.clone(),
                    id_transfer,
                    scope: if mine {
                        Scope::Creditor
                    } else {
                        Scope::OtherBeneficiary
                    },
                    label,
                    amount_cents,
                    receipt_cents: p.delivery.map(|_| *cents),
                    reported_cents: line.map(|_| cents + delta_cents),
                    flow_id: line.map(|r| s.flows[r.flow].id.clone()),
                    story: story.join(", "),
                });
            }
        }
        transfers.sort_by(|a, b| {
            (&a.beneficiary, &a.iuv, &a.receipt_id, a.id_transfer).cmp(&(
                &b.beneficiary,
                &b.iuv,
                &b.receipt_id,
                b.id_transfer,
            ))
        });

        let mut credits = Vec::new();
        let mut flow_credits: BTreeMap<usize, Vec<String>> = BTreeMap::new();
        for c in &s.credits {
            let (attributed, story): (Vec<usize>, String) = match &c.intent {
                CreditIntent::Flows { flows, spelling } => (
                    flows.clone(),
                    format!("pays {} flow(s), marker {spelling:?}", flows.len()),
                ),
                CreditIntent::FlowPart { flow, part } => (
                    vec![*flow],
                    format!(
                        "part {part} of a flow paid in two{}",
                        if c.label == Label::IufTesDivImp {
                            " parts short of its total"
                        } else {
                            ""
                        }
                    ),
                ),
                CreditIntent::Truncated { also: None, .. } => {
                    (Vec::new(), "truncated IUF".to_owned())
                }
                CreditIntent::Truncated { also: Some(_), .. } => {
                    (Vec::new(), "a known IUF and a truncated one".to_owned())
                }
                CreditIntent::Iuv { rfs, .. } => (
                    Vec::new(),
                    format!(
                        "{} of a receipt no flow reports",
                        if *rfs { "/RFS/" } else { "/RFB/" }
                    ),
                ),
                CreditIntent::UnknownIuv { .. } => {
                    (Vec::new(), "/RFB/ of an IUV nobody issued".to_owned())
                }
                CreditIntent::Unrelated { .. } => (Vec::new(), "not pagoPA's".to_owned()),
            };
            for &f in &attributed {
                flow_credits.entry(f).or_default().push(c.id.clone());
            }
            let mut attributed_flow_ids: Vec<String> =
                attributed.iter().map(|&f| s.flows[f].id.clone()).collect();
            attributed_flow_ids.sort();
            credits.push(CreditTruth {
                id: c.id.clone(),
                label: c.label,
                amount_cents: c.amount_cents,
                booking_date: c.booking_date,
                attributed_flow_ids,
                story,
            });
        }
        credits.sort_by(|a, b| a.id.cmp(&b.id));

        let mut flows: Vec<FlowTruth> = s
            .flows
            .iter()
            .enumerate()
            .map(|(f, flow)| {
                let mut credit_ids = flow_credits.get(&f).cloned().unwrap_or_default();
                credit_ids.sort();
                FlowTruth {
                    flow_id: flow.id.clone(),
                    state: flow.state,
                    total_cents: s.flow_total(f),
                    line_count: flow.lines.iter().map(|&p| s.lines(p).len()).sum(),
                    credit_ids,
                    revisions: if flow.revised { 2 } else { 1 },
                }
            })
            .collect();
        flows.sort_by(|a, b| a.flow_id.cmp(&b.flow_id));
        GroundTruth {
            transfers,
            credits,
            flows,
        }
    }
}

impl GroundTruth {
    /// Writes the truth as JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }
}

/// A short summary of a day (counts per label and state), for logs and the trial files.
pub fn summary(truth: &GroundTruth) -> String {
    let mut out = String::new();
    let mut labels: BTreeMap<&str, usize> = BTreeMap::new();
    for t in &truth.transfers {
        *labels
            .entry(t.label.map_or("(other beneficiary)", Label::code))
            .or_default() += 1;
    }
    let _ = writeln!(out, "transfers: {}", truth.transfers.len());
    for (label, count) in &labels {
        let _ = writeln!(out, "  {label}: {count}");
    }
    let mut credit_labels: BTreeMap<&str, usize> = BTreeMap::new();
    for c in &truth.credits {
        *credit_labels.entry(c.label.code()).or_default() += 1;
    }
    let _ = writeln!(out, "credits: {}", truth.credits.len());
    for (label, count) in &credit_labels {
        let _ = writeln!(out, "  {label}: {count}");
    }
    let mut states: BTreeMap<&str, usize> = BTreeMap::new();
    for f in &truth.flows {
        *states.entry(f.state.code()).or_default() += 1;
    }
    let _ = writeln!(out, "flows: {}", truth.flows.len());
    for (state, count) in &states {
        let _ = writeln!(out, "  {state}: {count}");
    }
    out
}

#[cfg(test)]
mod tests;
