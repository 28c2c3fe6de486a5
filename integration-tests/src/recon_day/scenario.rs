//! The day's intent: which notices exist, who pays them and how, which flow reports each
//! payment, which credit pays each flow and in which words. Everything here is decided by the
//! seeded stream before any identifier incasso assigns is known; [`super::Plan::day`] then
//! writes the documents and the ground truth from it.
//!
//! Each scenario the contract names is placed on purpose (a flow *is* paid by two transfers, a
//! key *is* a double payment); the random stream picks only what does not decide a label:
//! amounts, PSPs, how many ordinary lines a flow has, which flow a special line lands in, the
//! receipt protocol, the document a credit is booked in, the camt and OPI versions.

use rand::Rng;
use rand::seq::IndexedRandom;
use rand_chacha::ChaCha8Rng;
use time::{Date, Duration, OffsetDateTime, Time};

use incasso_domain::reconciliation::causale::MARKER_SPELLINGS;
use incasso_domain::reconciliation::{FlowTreasuryState, Label, OutcomeCode};
use incasso_grpc::pb;
use incasso_reconciliation::CamtVersion;
use incasso_reconciliation::testing::OpiSchema;

use super::DayShape;
use crate::requests::{CITTA_METROPOLITANA, MILANO};

/// PSPs that send Milan reporting flows (BIC-style and ABI-style ids, as the Node has them).
const PSPS: [&str; 8] = [
    "BCITITMM",
    "UNCRITMM",
    "BPPIITRRXXX",
    "POSOIT22XXX",
    "PASCITMMXXX",
    "SELBIT2BXXX",
    "IPRSITR1XXX",
    "ABI03069",
];

/// Booking texts of credits that are not pagoPA's.
const UNRELATED: [&str; 6] = [
    "RIMBORSO SPESE CONDOMINIALI VIA LARGA 12",
    "CANONE CONCESSIONE SUOLO PUBBLICO 2026 RATA 4",
    "BONIFICO DA REGIONE LOMBARDIA CONTRIBUTO TRASPORTO SCOLASTICO",
    "GIROFONDI DA CONTO 0000002 TESORERIA",
    "RESTITUZIONE DEPOSITO CAUZIONALE PRATICA 2026/4417",
    "FATTURA 118/2026 SPONSORIZZAZIONE EVENTI",
];

/// Who issued a notice.
#[derive(Debug, Clone)]
pub(super) enum Payee {
    /// Created through NoticeService; its IUV is incasso's (index into the plan's requests).
    Issued(usize),
    /// Issued by another system (a legacy notice): its IUV, chosen here.
    Legacy(String),
}

/// A notice and its transfers, in `idTransfer` order.
#[derive(Debug, Clone)]
pub(super) struct Notice {
    pub payee: Payee,
    /// (beneficiary fiscal code, amount in cents).
    pub transfers: Vec<(&'static str, i64)>,
}

impl Notice {
    /// Milan's first transfer (always the first of all: incasso refuses a TARI whose TEFA
    /// comes first).
    pub fn milan_cents(&self) -> i64 {
        self.transfers[0].1
    }

    /// Milan's transfers: (idTransfer, amount in cents).
    pub fn milan_transfers(&self) -> impl Iterator<Item = (u32, i64)> + '_ {
        self.transfers
            .iter()
            .zip(1u32..)
            .filter(|((beneficiary, _), _)| *beneficiary == MILANO)
            .map(|((_, cents), id)| (id, *cents))
    }
}

/// How a receipt reaches incasso.
#[derive(Debug, Clone, Copy)]
pub(super) struct Delivery {
    /// paSendRTV2 (else paSendRT).
    pub v2: bool,
    /// `standIn` of the receipt.
    pub stand_in: bool,
    /// The Node sends it again later (it missed the first answer).
    pub again: bool,
}

/// A payment's line in a flow.
#[derive(Debug, Clone, Copy)]
pub(super) struct Reported {
    /// Index into the flows.
    pub flow: usize,
    /// `codiceEsitoSingoloPagamento`.
    pub outcome: OutcomeCode,
    /// `singoloImportoPagato` less the receipt's `transferAmount` on the payment's first
    /// line (0 but for the PSP's mistakes).
    pub delta_cents: i64,
}

/// One payment of a notice: one receiptId/IUR. A reported payment has one line per transfer
/// of Milan's.
#[derive(Debug, Clone)]
pub(super) struct Payment {
    pub notice: usize,
    pub receipt_id: String,
    pub psp: String,
    /// `paymentDateTime`, Europe/Rome wall clock.
    pub paid_at: time::PrimitiveDateTime,
    /// `None`: the receipt never reaches incasso (lost, or a code-9 payment without RPT).
    pub delivery: Option<Delivery>,
    pub reported: Option<Reported>,
    /// Paid to the treasury directly by an `/RFB/` or `/RFS/` credit of the same amount.
    pub paid_by_iuv_credit: bool,
}

/// One flow (its revision that counts), with what the treasury does with it.
#[derive(Debug, Clone)]
pub(super) struct Flow {
    pub id: String,
    pub psp: String,
    pub trn: String,
    pub regulation_date: Date,
    pub created_at: OffsetDateTime,
    pub state: FlowTreasuryState,
    /// Payments reported, in line order.
    pub lines: Vec<usize>,
    /// An earlier revision exists: one line missing and another with a wrong amount.
    pub revised: bool,
    /// What its PSP declares beyond what its lines add up to (negative: short of them): not
    /// zero for a flow that does not add up, imported as declared.
    pub declared_extra_cents: i64,
}

/// Which treasury document books a credit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Book {
    /// The camt.053 statement of the first booking day.
    Statement,
    /// The camt.054 notification of the second booking day.
    Notification,
    /// The OPI giornale di cassa of the second booking day.
    Giornale,
}

/// How an IUF is written in a causale (contract §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Spelling {
    /// `/PUR/LGPE-RIVERSAMENTO/URI/<IUF>`.
    Plain,
    /// One of the spacing variants of the marker (index into `MARKER_SPELLINGS`, not 0).
    Spaced(usize),
    /// ` URI ` with spaces for separators.
    SpaceSeparators,
    /// Buried in a long bank description (longer than one 140-character `Ustrd`).
    Embedded,
    /// The IUF's date broken by a space: `2026-11-2 4PSP…`.
    SplitDate,
    /// `ACCREDITI VARI …/URI/2026-11-24 PSP…`: a whole date split from the rest.
    AccreditiVari,
}

impl Spelling {
    /// Every spelling, each used at least once per repeat.
    pub fn all() -> Vec<Self> {
        let mut all = vec![Self::Plain];
        all.extend((1..MARKER_SPELLINGS.len()).map(Self::Spaced));
        all.extend([
            Self::SpaceSeparators,
            Self::Embedded,
            Self::SplitDate,
            Self::AccreditiVari,
        ]);
        all
    }
}

/// What a credit says and means.
#[derive(Debug, Clone)]
pub(super) enum CreditIntent {
    /// Pays these flows (one transfer for all of them when several).
    Flows {
        flows: Vec<usize>,
        spelling: Spelling,
    },
    /// Part `part` (`/TXT/<part>/`) of a flow paid by several transfers.
    FlowPart { flow: usize, part: u8 },
    /// Names a flow by a truncated IUF (after naming another flow in full, when `also`).
    Truncated {
        flow: usize,
        keep: usize,
        also: Option<usize>,
    },
    /// `/RFB/` (or `/RFS/`) of a payment's IUV.
    Iuv { payment: usize, rfs: bool },
    /// `/RFB/` of an IUV nobody issued.
    UnknownIuv { iuv: String },
    /// No pagoPA reference.
    Unrelated { text: &'static str },
}

/// One treasury credit.
#[derive(Debug, Clone)]
pub(super) struct Credit {
    pub id: String,
    pub book: Book,
    pub booking_date: Date,
    pub amount_cents: i64,
    pub intent: CreditIntent,
    /// The label the contract gives it (§5), decided with the intent.
    pub label: Label,
}

/// The whole intent of a day.
#[derive(Debug, Clone)]
pub(super) struct Scenario {
    pub payment_day: Date,
    pub requests: Vec<pb::CreateDebtPositionRequest>,
    pub notices: Vec<Notice>,
    pub payments: Vec<Payment>,
    pub flows: Vec<Flow>,
    pub credits: Vec<Credit>,
    pub statement_version: CamtVersion,
    pub notification_version: CamtVersion,
    pub opi_schema: OpiSchema,
}

impl Scenario {
    /// The first booking day (the statement's), the day after the payments.
    pub fn first_booking(&self) -> Date {
        self.payment_day + Duration::days(1)
    }

    /// The second booking day (the notification's and the giornale's): the last day the
    /// treasury evidence covers.
    pub fn second_booking(&self) -> Date {
        self.payment_day + Duration::days(2)
    }

    /// A flow's declared total (`importoTotalePagamenti`): the sum of its lines, and what its
    /// PSP declared beyond them when the flow does not add up.
    pub fn flow_total(&self, flow: usize) -> i64 {
        self.flows[flow]
            .lines
            .iter()
            .flat_map(|&p| self.lines(p))
            .map(|(_, cents)| cents)
            .sum::<i64>()
            + self.flows[flow].declared_extra_cents
    }

    /// The lines of a reported payment: (idTransfer, `singoloImportoPagato`), one per
    /// transfer of Milan's, the first off by the payment's delta.
    pub fn lines(&self, payment: usize) -> Vec<(u32, i64)> {
        let p = &self.payments[payment];
        let Some(reported) = p.reported else {
            return Vec::new();
        };
        self.notices[p.notice]
            .milan_transfers()
            .enumerate()
            .map(|(i, (id, cents))| {
                (
                    id,
                    if i == 0 {
                        cents + reported.delta_cents
                    } else {
                        cents
                    },
                )
            })
            .collect()
    }
}

/// What kind of notice an ordinary payment pays.
#[derive(Debug, Clone, Copy)]
enum Kind {
    /// TARI with its TEFA share for the Città Metropolitana.
    Tari,
    /// A school fee: one transfer to Milan.
    Fee,
    /// A notice of another system, one transfer to Milan.
    Legacy,
    /// A notice of another system with two transfers to Milan (two accounts).
    LegacyTwoTransfers,
}

struct Builder {
    rng: ChaCha8Rng,
    shape: DayShape,
    s: Scenario,
    /// Flows of the repeat being built, for placing special lines.
    repeat_flows: Vec<usize>,
    next_legacy: u64,
    next_credit: u32,
}

/// Builds the intent of a day from `rng`.
pub(super) fn build(rng: ChaCha8Rng, shape: DayShape, payment_day: Date) -> Scenario {
    let mut b = Builder {
        rng,
        shape,
        s: Scenario {
            payment_day,
            requests: Vec::new(),
            notices: Vec::new(),
            payments: Vec::new(),
            flows: Vec::new(),
            credits: Vec::new(),
            statement_version: CamtVersion::V08,
            notification_version: CamtVersion::V04,
            opi_schema: OpiSchema::V1_8,
        },
        repeat_flows: Vec::new(),
        next_legacy: 0,
        next_credit: 0,
    };
    let versions = [CamtVersion::V02, CamtVersion::V04, CamtVersion::V08];
    b.s.statement_version = *versions.choose(&mut b.rng).unwrap_or(&CamtVersion::V08);
    b.s.notification_version = *versions.choose(&mut b.rng).unwrap_or(&CamtVersion::V04);
    let schemas = [
        OpiSchema::V1_4,
        OpiSchema::V1_6_1,
        OpiSchema::V1_7_1,
        OpiSchema::V1_8,
    ];
    b.s.opi_schema = *schemas.choose(&mut b.rng).unwrap_or(&OpiSchema::V1_8);
    for _ in 0..b.shape.repeats.max(1) {
        b.repeat();
    }
    b.s
}

impl Builder {
    fn repeat(&mut self) {
        self.repeat_flows.clear();
        let first = self.s.first_booking();
        let second = self.s.second_booking();
        let late = self.s.payment_day + Duration::days(3);

        // Flows cashed by one credit each, in every spelling of the marker.
        for spelling in Spelling::all() {
            let flow = self.flow(first, FlowTreasuryState::Cashed, false);
            let book = self.book_any();
            self.credit(
                book,
                CreditIntent::Flows {
                    flows: vec![flow],
                    spelling,
                },
                Label::RtIufTes,
            );
        }
        // A flow paid by two transfers on two days (/TXT/0/ and /TXT/1/).
        let split = self.flow(first, FlowTreasuryState::Cashed, false);
        self.credit(
            Book::Statement,
            CreditIntent::FlowPart {
                flow: split,
                part: 0,
            },
            Label::RtIufTes,
        );
        self.credit(
            Book::Notification,
            CreditIntent::FlowPart {
                flow: split,
                part: 1,
            },
            Label::RtIufTes,
        );
        // One transfer paying two flows.
        let a = self.flow(first, FlowTreasuryState::Cashed, false);
        let b = self.flow(first, FlowTreasuryState::Cashed, false);
        let spelling = *Spelling::all()
            .choose(&mut self.rng)
            .unwrap_or(&Spelling::Plain);
        self.credit(
            Book::Giornale,
            CreditIntent::Flows {
                flows: vec![a, b],
                spelling,
            },
            Label::RtIufTes,
        );
        // A revised flow: the latest revision is the one the credit pays.
        let revised = self.flow(first, FlowTreasuryState::Cashed, true);
        let book = self.book_any();
        self.credit(
            book,
            CreditIntent::Flows {
                flows: vec![revised],
                spelling: Spelling::Plain,
            },
            Label::RtIufTes,
        );
        // A flow whose PSP declares a total its lines do not add up to: cashed by a credit of
        // what it declares (contract §3 compares credits with the flows' totals).
        let declaring = self.flow(first, FlowTreasuryState::Cashed, false);
        self.s.flows[declaring].declared_extra_cents = self.cents_off();
        let book = self.book_any();
        self.credit(
            book,
            CreditIntent::Flows {
                flows: vec![declaring],
                spelling: Spelling::Plain,
            },
            Label::RtIufTes,
        );
        // A credit that differs from its flow's total by some cents.
        let divergent = self.flow(first, FlowTreasuryState::DivImp, false);
        let book = self.book_any();
        self.credit(
            book,
            CreditIntent::Flows {
                flows: vec![divergent],
                spelling: Spelling::Plain,
            },
            Label::IufTesDivImp,
        );
        // One transfer for two flows that falls short of (or exceeds) their totals.
        let a = self.flow(first, FlowTreasuryState::DivImp, false);
        let b = self.flow(first, FlowTreasuryState::DivImp, false);
        let book = self.book_any();
        self.credit(
            book,
            CreditIntent::Flows {
                flows: vec![a, b],
                spelling: Spelling::Plain,
            },
            Label::IufTesDivImp,
        );
        // A flow regulated after the coverage whose transfer came early: cashed all the same.
        let early = self.flow(late, FlowTreasuryState::Cashed, false);
        let book = self.book_any_second();
        self.credit(
            book,
            CreditIntent::Flows {
                flows: vec![early],
                spelling: Spelling::Plain,
            },
            Label::RtIufTes,
        );
        // Transfers that never arrive: due within the coverage, no credit.
        let day = if self.rng.random_bool(0.5) {
            first
        } else {
            second
        };
        self.flow(day, FlowTreasuryState::NoTes, false);
        // A transfer whose causale truncates the IUF: attributed to nothing.
        let truncated = self.flow(first, FlowTreasuryState::NoTes, false);
        let keep = self
            .rng
            .random_range(12..=self.s.flows[truncated].id.len() - 2);
        let book = self.book_any();
        self.credit(
            book,
            CreditIntent::Truncated {
                flow: truncated,
                keep,
                also: None,
            },
            Label::TesNoIufOrIuv,
        );
        // One transfer for two flows, the second IUF truncated: attributed to neither.
        let named = self.flow(first, FlowTreasuryState::NoTes, false);
        let cut = self.flow(first, FlowTreasuryState::NoTes, false);
        let keep = self.rng.random_range(12..=self.s.flows[cut].id.len() - 2);
        let book = self.book_any();
        self.credit(
            book,
            CreditIntent::Truncated {
                flow: cut,
                keep,
                also: Some(named),
            },
            Label::TesNoIufOrIuv,
        );
        // A flow paid in two parts that do not add up to its total.
        let short = self.flow(first, FlowTreasuryState::DivImp, false);
        for part in 0..2 {
            let book = if part == 0 {
                Book::Statement
            } else {
                self.book_any_second()
            };
            self.credit(
                book,
                CreditIntent::FlowPart { flow: short, part },
                Label::IufTesDivImp,
            );
        }
        // Not due yet: regulated after the last day the treasury evidence covers.
        self.flow(late, FlowTreasuryState::Pending, false);

        // Ordinary lines in every flow of this repeat.
        for flow in self.repeat_flows.clone() {
            let (low, high) = self.shape.lines_per_flow;
            let count = self.rng.random_range(low.max(1)..=high.max(low.max(1)));
            for _ in 0..count {
                let kind = self.kind();
                let notice = self.notice(kind);
                let delivery = Some(self.delivery(false));
                self.pay(notice, flow, delivery, OutcomeCode::Executed, 0);
            }
        }
        self.special_lines();
        self.receipt_only();
    }

    /// Lines whose story is not an ordinary payment, each in a flow picked at random.
    fn special_lines(&mut self) {
        // A line off by some cents from its receipt.
        let flow = self.any_flow();
        let notice = self.notice(Kind::Fee);
        let delta = self.cents_off();
        let delivery = Some(self.delivery(false));
        self.pay(notice, flow, delivery, OutcomeCode::Executed, delta);
        // A receipt lost on the way: the flow reports a notice of incasso's no receipt paid.
        let flow = self.any_flow();
        let notice = self.notice(Kind::Fee);
        self.pay(notice, flow, None, OutcomeCode::Executed, 0);
        // A code-9 line: paid without RPT, so no receipt ever; and a code-8 one.
        for outcome in [OutcomeCode::NoRpt, OutcomeCode::StandInNoRpt] {
            let flow = self.any_flow();
            let notice = self.notice(Kind::Legacy);
            self.pay(notice, flow, None, outcome, 0);
        }
        // A notice of another system paying Milan on two accounts: two lines.
        let flow = self.any_flow();
        let notice = self.notice(Kind::LegacyTwoTransfers);
        let delivery = Some(self.delivery(false));
        self.pay(notice, flow, delivery, OutcomeCode::Executed, 0);
        // A receipt the Node sends twice.
        let flow = self.any_flow();
        let kind = self.kind();
        let notice = self.notice(kind);
        let mut delivery = self.delivery(false);
        delivery.again = true;
        self.pay(notice, flow, Some(delivery), OutcomeCode::Executed, 0);
        // A Stand-In payment: outcome 4 and a receipt saying standIn.
        let flow = self.any_flow();
        let kind = self.kind();
        let notice = self.notice(kind);
        let delivery = Some(self.delivery(true));
        self.pay(notice, flow, delivery, OutcomeCode::StandIn, 0);
        // A TARI, whose TEFA transfer is the Città Metropolitana's.
        let flow = self.any_flow();
        let notice = self.notice(Kind::Tari);
        let delivery = Some(self.delivery(false));
        self.pay(notice, flow, delivery, OutcomeCode::Executed, 0);
        // Double payments: both reported (by two PSPs' flows), ...
        let kind = self.kind();
        let notice = self.notice(kind);
        for _ in 0..2 {
            let flow = self.any_flow();
            let delivery = Some(self.delivery(false));
            self.pay(notice, flow, delivery, OutcomeCode::Executed, 0);
        }
        // ... the second one's receipt lost, ...
        let notice = self.notice(Kind::Fee);
        let flow = self.any_flow();
        let delivery = Some(self.delivery(false));
        self.pay(notice, flow, delivery, OutcomeCode::Executed, 0);
        let flow = self.any_flow();
        self.pay(notice, flow, None, OutcomeCode::Executed, 0);
        // ... and the second one not reported yet.
        let notice = self.notice(Kind::Legacy);
        let flow = self.any_flow();
        let delivery = Some(self.delivery(false));
        self.pay(notice, flow, delivery, OutcomeCode::Executed, 0);
        let delivery = Some(self.delivery(false));
        self.unreported(notice, delivery);
    }

    /// Receipts no flow reports: some paid by an `/RFB/`·`/RFS/` credit, the others waiting
    /// (`RT_NO_IUF`); an `/RFB/` of an IUV nobody issued; credits that are not pagoPA's.
    fn receipt_only(&mut self) {
        for rfs in [false, true] {
            let kind = if self.rng.random_bool(0.5) {
                Kind::Fee
            } else {
                Kind::Legacy
            };
            let notice = self.notice(kind);
            let delivery = Some(self.delivery(false));
            let payment = self.unreported(notice, delivery);
            self.s.payments[payment].paid_by_iuv_credit = true;
            let book = self.book_any();
            self.credit(book, CreditIntent::Iuv { payment, rfs }, Label::RtTes);
        }
        for _ in 0..self.shape.unreported_receipts {
            let kind = self.kind();
            let notice = self.notice(kind);
            let delivery = Some(self.delivery(false));
            self.unreported(notice, delivery);
        }
        let iuv = self.legacy_iuv();
        let book = self.book_any();
        self.credit(book, CreditIntent::UnknownIuv { iuv }, Label::TesNoIufOrIuv);
        for _ in 0..self.shape.unrelated_credits.max(1) {
            let text = *UNRELATED.choose(&mut self.rng).unwrap_or(&UNRELATED[0]);
            let book = self.book_any();
            self.credit(book, CreditIntent::Unrelated { text }, Label::TesNoMatch);
        }
    }

    fn kind(&mut self) -> Kind {
        *[Kind::Tari, Kind::Fee, Kind::Fee, Kind::Legacy]
            .choose(&mut self.rng)
            .unwrap_or(&Kind::Fee)
    }

    /// A non-zero difference of up to 2.50 euro either way.
    fn cents_off(&mut self) -> i64 {
        let cents = self.rng.random_range(1..=250);
        if self.rng.random_bool(0.5) {
            cents
        } else {
            -cents
        }
    }

    fn any_flow(&mut self) -> usize {
        *self.repeat_flows.choose(&mut self.rng).unwrap_or(&0)
    }

    fn book_any_second(&mut self) -> Book {
        if self.rng.random_bool(0.5) {
            Book::Notification
        } else {
            Book::Giornale
        }
    }

    fn book_any(&mut self) -> Book {
        *[Book::Statement, Book::Notification, Book::Giornale]
            .choose(&mut self.rng)
            .unwrap_or(&Book::Statement)
    }

    fn delivery(&mut self, stand_in: bool) -> Delivery {
        Delivery {
            v2: self.rng.random_bool(0.5),
            stand_in,
            again: self.rng.random_bool(0.05),
        }
    }

    fn legacy_iuv(&mut self) -> String {
        use incasso_domain::notice_number::{IuvBase, NoticeNumber, SegregationCode};
        // Milan's segregation code with bases from the top of the range down: numbers an
        // earlier system issued, far above anything incasso issues in a test.
        self.next_legacy += 1;
        let base = IuvBase::MAX - self.next_legacy * 7919;
        let (Ok(code), Ok(base)) = (SegregationCode::new(12), IuvBase::new(base)) else {
            unreachable!("12 and a base below the maximum are valid")
        };
        NoticeNumber::issue(code, base).iuv().as_str().to_owned()
    }

    /// A new notice of `kind` and the request that creates it (none for a legacy notice).
    fn notice(&mut self, kind: Kind) -> usize {
        let n = self.s.notices.len();
        let notice = match kind {
            Kind::Legacy => {
                let cents = self.rng.random_range(10..=400) * 50;
                Notice {
                    payee: Payee::Legacy(self.legacy_iuv()),
                    transfers: vec![(MILANO, cents)],
                }
            }
            Kind::LegacyTwoTransfers => {
                let first = self.rng.random_range(10..=400) * 50;
                let second = self.rng.random_range(1..=100) * 25;
                Notice {
                    payee: Payee::Legacy(self.legacy_iuv()),
                    transfers: vec![(MILANO, first), (MILANO, second)],
                }
            }
            Kind::Fee => {
                let cents = self.rng.random_range(80..=600) * 50 + self.rng.random_range(0..50);
                let request = school_fee(n, cents);
                self.s.requests.push(request);
                Notice {
                    payee: Payee::Issued(self.s.requests.len() - 1),
                    transfers: vec![(MILANO, cents)],
                }
            }
            Kind::Tari => {
                // TEFA is 5% of the tax; both shares in whole cents.
                let tax = self.rng.random_range(60..=900) * 100 + self.rng.random_range(0..100);
                let tefa = tax * 5 / 100;
                let request = tari(n, tax, tefa);
                self.s.requests.push(request);
                Notice {
                    payee: Payee::Issued(self.s.requests.len() - 1),
                    transfers: vec![(MILANO, tax), (CITTA_METROPOLITANA, tefa)],
                }
            }
        };
        self.s.notices.push(notice);
        n
    }

    fn receipt_id(&mut self) -> String {
        // A paymentToken: 32 hex digits.
        let high: u64 = self.rng.random();
        let low: u64 = self.rng.random();
        format!("{high:016x}{low:016x}")
    }

    fn paid_at(&mut self) -> time::PrimitiveDateTime {
        let seconds = self.rng.random_range(7 * 3600..21 * 3600);
        let time = Time::MIDNIGHT + Duration::seconds(seconds);
        time::PrimitiveDateTime::new(self.s.payment_day, time)
    }

    /// A payment of `notice` reported in `flow` (by that flow's PSP).
    fn pay(
        &mut self,
        notice: usize,
        flow: usize,
        delivery: Option<Delivery>,
        outcome: OutcomeCode,
        delta_cents: i64,
    ) -> usize {
        let payment = Payment {
            notice,
            receipt_id: self.receipt_id(),
            psp: self.s.flows[flow].psp.clone(),
            paid_at: self.paid_at(),
            delivery,
            reported: Some(Reported {
                flow,
                outcome,
                delta_cents,
            }),
            paid_by_iuv_credit: false,
        };
        self.s.payments.push(payment);
        let index = self.s.payments.len() - 1;
        self.s.flows[flow].lines.push(index);
        index
    }

    /// A payment of `notice` no flow reports.
    fn unreported(&mut self, notice: usize, delivery: Option<Delivery>) -> usize {
        let psp = (*PSPS.choose(&mut self.rng).unwrap_or(&PSPS[0])).to_owned();
        let payment = Payment {
            notice,
            receipt_id: self.receipt_id(),
            psp,
            paid_at: self.paid_at(),
            delivery,
            reported: None,
            paid_by_iuv_credit: false,
        };
        self.s.payments.push(payment);
        self.s.payments.len() - 1
    }

    fn flow(&mut self, regulation_date: Date, state: FlowTreasuryState, revised: bool) -> usize {
        let psp = (*PSPS.choose(&mut self.rng).unwrap_or(&PSPS[0])).to_owned();
        let serial = self.s.flows.len() + 1;
        let flow_day = self.s.first_booking();
        let created_at = OffsetDateTime::new_utc(flow_day, Time::MIDNIGHT)
            + Duration::minutes(self.rng.random_range(5 * 60..7 * 60));
        let flow = Flow {
            id: format!("{flow_day}{psp}-{serial:010}"),
            trn: format!(
                "{:011}{serial:05}",
                self.rng.random_range(0..99_999_999_999u64)
            ),
            psp,
            regulation_date,
            created_at,
            state,
            lines: Vec::new(),
            revised,
            declared_extra_cents: 0,
        };
        self.s.flows.push(flow);
        let index = self.s.flows.len() - 1;
        self.repeat_flows.push(index);
        index
    }

    /// Records a credit; its amount is fixed later, when every flow has its lines.
    fn credit(&mut self, book: Book, intent: CreditIntent, label: Label) {
        self.next_credit += 1;
        let booking_date = match book {
            Book::Statement => self.s.first_booking(),
            Book::Notification | Book::Giornale => self.s.second_booking(),
        };
        let prefix = match book {
            Book::Statement => "ASR053",
            Book::Notification => "ASR054",
            Book::Giornale => "OPI",
        };
        let compact = booking_date.to_string().replace('-', "");
        self.s.credits.push(Credit {
            id: format!("{prefix}-{compact}-{:06}", self.next_credit),
            book,
            booking_date,
            amount_cents: 0,
            intent,
            label,
        });
    }
}

/// Fixes every credit's amount from the flows' totals and the payments (what the intent
/// says each credit pays), with a random split for flows paid in two parts and a random
/// difference for divergent ones.
pub(super) fn settle(s: &mut Scenario, rng: &mut ChaCha8Rng) {
    // The parts of a flow paid by several transfers: the first a random share.
    let mut first_parts: std::collections::BTreeMap<usize, i64> = Default::default();
    for i in 0..s.credits.len() {
        let amount = match s.credits[i].intent.clone() {
            CreditIntent::Flows { flows, .. } => {
                let total: i64 = flows.iter().map(|&f| s.flow_total(f)).sum();
                if s.credits[i].label == Label::IufTesDivImp {
                    let off = rng.random_range(1..=99);
                    if rng.random_bool(0.5) && total > off {
                        total - off
                    } else {
                        total + off
                    }
                } else {
                    total
                }
            }
            CreditIntent::FlowPart { flow, part } => {
                let total = s.flow_total(flow);
                if part == 0 {
                    let share = rng.random_range(1..=(total / 2).max(1));
                    first_parts.insert(flow, share);
                    share
                } else {
                    // Short of the total by some cents when the flow is divergent.
                    let short = if s.credits[i].label == Label::IufTesDivImp {
                        rng.random_range(1..=99)
                    } else {
                        0
                    };
                    total - first_parts.get(&flow).copied().unwrap_or(0) - short
                }
            }
            CreditIntent::Truncated { flow, also, .. } => {
                s.flow_total(flow) + also.map_or(0, |f| s.flow_total(f))
            }
            CreditIntent::Iuv { payment, .. } => {
                s.notices[s.payments[payment].notice].milan_cents()
            }
            CreditIntent::UnknownIuv { .. } => rng.random_range(20..=500) * 100,
            CreditIntent::Unrelated { .. } => rng.random_range(1_000..=2_000_000),
        };
        s.credits[i].amount_cents = amount;
    }
}

fn school_fee(n: usize, cents: i64) -> pb::CreateDebtPositionRequest {
    let mut request = crate::requests::school_fee(&format!("recon-day-fee-{n}"));
    request.description = format!("Retta nido novembre 2026 n. {n}");
    if let Some(debtor) = request.debtor.as_mut() {
        debtor.full_name = format!("Genitore {n}");
    }
    if let Some(pb::create_debt_position_request::Details::SchoolFee(details)) =
        request.details.as_mut()
    {
        details.pupil_ref = format!("ALU{n:05}");
    }
    for option in &mut request.payment_options {
        for installment in &mut option.installments {
            installment.amount_cents = cents;
        }
    }
    request
}

fn tari(n: usize, tax_cents: i64, tefa_cents: i64) -> pb::CreateDebtPositionRequest {
    let mut request = crate::requests::tari(&format!("recon-day-tari-{n}"));
    request.description = format!("TARI 2026 utenza n. {n}");
    if let Some(debtor) = request.debtor.as_mut() {
        debtor.full_name = format!("Contribuente {n}");
    }
    if let Some(pb::create_debt_position_request::Details::Tari(details)) = request.details.as_mut()
    {
        details.property_ref = format!("UT{n:06}");
    }
    // The single payment only.
    request.payment_options.truncate(1);
    for option in &mut request.payment_options {
        for installment in &mut option.installments {
            installment.amount_cents = tax_cents + tefa_cents;
            installment.transfers[0].amount_cents = tax_cents;
            installment.transfers[1].amount_cents = tefa_cents;
        }
    }
    request
}
