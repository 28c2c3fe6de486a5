//! Debt positions, after the PagoPA model: a position (one upstream debt: a TARI bill, a fine,
//! a monthly school fee) has mutually exclusive payment options (a single payment, an
//! installment plan); each option has installments, each one notice with its own number,
//! amount and due date; each installment is split into 1..5 transfers to beneficiaries.
//!
//! This module holds the model as stored and its state machine; `input` turns what a caller
//! sent into a validated new position, `update` plans changes and cancellation, and
//! `payment` decides what a payment does to the states.

pub mod input;
pub mod payment;
pub mod update;

use serde::{Deserialize, Serialize};
use time::{Date, OffsetDateTime};
use uuid::Uuid;

use crate::fiscal_code::{EntityType, FiscalCode, OrganizationFiscalCode};
use crate::iban::Iban;
use crate::money::AmountCents;
use crate::notice_number::{Iuv, NoticeNumber};
use crate::taxonomy::TaxonomyCode;
use crate::traffic_fine::FineSchedule;

/// At most this many transfers per installment (PagoPA's transferList maxOccurs).
pub const MAX_TRANSFERS: usize = 5;
/// At most this many payment options per position.
pub const MAX_PAYMENT_OPTIONS: usize = 10;
/// At most this many installments per payment option (the longest CdS plan has 60).
pub const MAX_INSTALLMENTS_PER_OPTION: usize = 60;
/// At most this many installments (notices) per position.
pub const MAX_INSTALLMENTS: usize = 120;

/// What a debt is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DebtKind {
    /// Tassa sui rifiuti (with TEFA for the Città Metropolitana).
    Tari,
    /// A Codice della Strada fine.
    TrafficFine,
    /// A school fee.
    SchoolFee,
}

impl DebtKind {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tari => "tari",
            Self::TrafficFine => "traffic_fine",
            Self::SchoolFee => "school_fee",
        }
    }

    /// The kind from its stored name.
    pub fn from_name(name: &str) -> Option<Self> {
        [Self::Tari, Self::TrafficFine, Self::SchoolFee]
            .into_iter()
            .find(|kind| kind.as_str() == name)
    }
}

/// The municipal school services.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SchoolService {
    /// Nido d'infanzia.
    Nido,
    /// Scuola dell'infanzia.
    Infanzia,
    /// Refezione scolastica.
    Refezione,
}

impl SchoolService {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Nido => "nido",
            Self::Infanzia => "infanzia",
            Self::Refezione => "refezione",
        }
    }

    /// The service from its stored name.
    pub fn from_name(name: &str) -> Option<Self> {
        [Self::Nido, Self::Infanzia, Self::Refezione]
            .into_iter()
            .find(|service| service.as_str() == name)
    }
}

/// TARI: the tax year and the property (utenza) billed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TariDetails {
    /// The tax year.
    pub tax_year: i32,
    /// The tax office's reference of the utenza.
    pub property_ref: String,
}

/// A traffic fine (verbale) and its date-dependent amounts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrafficFineDetails {
    /// Verbale number.
    pub report_number: String,
    /// Vehicle plate; personal data.
    pub plate: String,
    /// The day of the violation.
    pub violation_date: Date,
    /// The amounts and the notification date they run from.
    pub schedule: FineSchedule,
}

/// A school fee: pupil, service, school year and month.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchoolFeeDetails {
    /// The Education office's reference of the pupil.
    pub pupil_ref: String,
    /// The service billed.
    pub service: SchoolService,
    /// "2026/2027".
    pub school_year: String,
    /// "2026-11", or none for an annual fee.
    pub month: Option<String>,
}

/// The kind-specific part of a position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KindDetails {
    /// TARI.
    Tari(TariDetails),
    /// A traffic fine.
    TrafficFine(TrafficFineDetails),
    /// A school fee.
    SchoolFee(SchoolFeeDetails),
}

impl KindDetails {
    /// The kind these details belong to.
    pub fn kind(&self) -> DebtKind {
        match self {
            Self::Tari(_) => DebtKind::Tari,
            Self::TrafficFine(_) => DebtKind::TrafficFine,
            Self::SchoolFee(_) => DebtKind::SchoolFee,
        }
    }
}

/// Who owes the debt. Personal data: kept encrypted, never logged.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Debtor {
    /// Natural person (F) or legal entity (G).
    pub entity_type: EntityType,
    /// The debtor's fiscal code.
    pub fiscal_code: FiscalCode,
    /// Full name or company name.
    pub full_name: String,
    /// Optional e-mail address.
    pub email: Option<String>,
}

impl std::fmt::Debug for Debtor {
    // Personal data must never reach a log line through a `{:?}`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Debtor")
            .field("entity_type", &self.entity_type)
            .finish_non_exhaustive()
    }
}

/// One share of an installment, to one beneficiary's account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transfer {
    /// The beneficiary creditor.
    pub beneficiary: OrganizationFiscalCode,
    /// The share.
    pub amount: AmountCents,
    /// The causale.
    pub remittance_information: String,
    /// The account credited.
    pub iban: Iban,
    /// The beneficiary's Poste account, used when the Node asks for a postal transfer.
    pub postal_iban: Option<Iban>,
    /// The PagoPA taxonomy code (transferCategory).
    pub taxonomy: TaxonomyCode,
}

/// The stored state of an installment. "Expired" is not stored: it is an unpaid installment
/// whose expiry date has passed, and depends on the day it is looked at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InstallmentState {
    /// Can be paid (unless past its expiry date).
    Unpaid,
    /// Paid.
    Paid,
    /// The position was cancelled.
    Cancelled,
    /// Another payment option of the position was paid.
    Unpayable,
}

impl InstallmentState {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unpaid => "unpaid",
            Self::Paid => "paid",
            Self::Cancelled => "cancelled",
            Self::Unpayable => "unpayable",
        }
    }

    /// The state from its stored name.
    pub fn from_name(name: &str) -> Option<Self> {
        [Self::Unpaid, Self::Paid, Self::Cancelled, Self::Unpayable]
            .into_iter()
            .find(|state| state.as_str() == name)
    }
}

/// The state of an installment as seen on a given day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EffectiveInstallmentState {
    /// Payable.
    Unpaid,
    /// Paid.
    Paid,
    /// Unpaid and past its expiry date.
    Expired,
    /// The position was cancelled.
    Cancelled,
    /// Another payment option was paid.
    Unpayable,
}

/// The stored state of a position. "Expired" is derived, as for installments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PositionState {
    /// Nothing paid.
    Valid,
    /// Some installments of the chosen option paid, others still due.
    PartiallyPaid,
    /// Every installment of the chosen option paid.
    Paid,
    /// Cancelled by the creditor.
    Cancelled,
}

impl PositionState {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Valid => "valid",
            Self::PartiallyPaid => "partially_paid",
            Self::Paid => "paid",
            Self::Cancelled => "cancelled",
        }
    }

    /// The state from its stored name.
    pub fn from_name(name: &str) -> Option<Self> {
        [
            Self::Valid,
            Self::PartiallyPaid,
            Self::Paid,
            Self::Cancelled,
        ]
        .into_iter()
        .find(|state| state.as_str() == name)
    }
}

/// The state of a position as seen on a given day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EffectivePositionState {
    /// Payable, nothing paid.
    Valid,
    /// Partly paid.
    PartiallyPaid,
    /// Paid.
    Paid,
    /// Nothing paid and no installment payable any more.
    Expired,
    /// Cancelled.
    Cancelled,
}

/// An installment as stored: one notice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installment {
    /// Storage id.
    pub id: Uuid,
    /// The notice number (NAV).
    pub notice_number: NoticeNumber,
    /// The IUV (creditorReferenceId).
    pub iuv: Iuv,
    /// The amount printed on the notice (for fines: the reduced amount plus costs).
    pub amount: AmountCents,
    /// The due date printed on the notice.
    pub due_date: Date,
    /// After this day the notice can no longer be paid.
    pub expiry_date: Option<Date>,
    /// Stored state.
    pub state: InstallmentState,
    /// 1..=5 shares, summing to `amount`.
    pub transfers: Vec<Transfer>,
}

impl Installment {
    /// The state on `today`.
    pub fn effective_state(&self, today: Date) -> EffectiveInstallmentState {
        match self.state {
            InstallmentState::Unpaid if self.is_past_expiry(today) => {
                EffectiveInstallmentState::Expired
            }
            InstallmentState::Unpaid => EffectiveInstallmentState::Unpaid,
            InstallmentState::Paid => EffectiveInstallmentState::Paid,
            InstallmentState::Cancelled => EffectiveInstallmentState::Cancelled,
            InstallmentState::Unpayable => EffectiveInstallmentState::Unpayable,
        }
    }

    /// True when the expiry date has passed on `today`.
    pub fn is_past_expiry(&self, today: Date) -> bool {
        self.expiry_date.is_some_and(|expiry| today > expiry)
    }
}

/// A payment option as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentOption {
    /// Storage id.
    pub id: Uuid,
    /// "Rata unica", "Tre rate", ...
    pub label: String,
    /// In the order sent.
    pub installments: Vec<Installment>,
}

/// A debt position as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DebtPosition {
    /// Storage id (UUID v7).
    pub id: Uuid,
    /// The caller's idempotency key of the create.
    pub request_id: String,
    /// The creditor.
    pub creditor: OrganizationFiscalCode,
    /// Who owes it; `None` once the personal data has been erased.
    pub debtor: Option<Debtor>,
    /// Subject of the notices.
    pub description: String,
    /// Kind-specific data.
    pub details: KindDetails,
    /// Stored state.
    pub state: PositionState,
    /// In the order sent.
    pub payment_options: Vec<PaymentOption>,
    /// Incremented by every change.
    pub version: i64,
    /// Why it was cancelled.
    pub cancellation_reason: Option<String>,
    /// When created.
    pub created_at: OffsetDateTime,
    /// When last changed.
    pub updated_at: OffsetDateTime,
}

impl DebtPosition {
    /// The kind.
    pub fn kind(&self) -> DebtKind {
        self.details.kind()
    }

    /// Every installment, option by option.
    pub fn installments(&self) -> impl Iterator<Item = &Installment> {
        self.payment_options
            .iter()
            .flat_map(|option| option.installments.iter())
    }

    /// The installment with this notice number.
    pub fn installment(&self, notice_number: &NoticeNumber) -> Option<&Installment> {
        self.installments()
            .find(|installment| &installment.notice_number == notice_number)
    }

    /// Where the notice sits: (index of its payment option, index in that option).
    pub fn place_of(&self, notice_number: &NoticeNumber) -> Option<(usize, usize)> {
        self.place_where(|i| &i.notice_number == notice_number)
    }

    /// Where the first installment matching `found` sits: (index of its payment option,
    /// index in that option).
    pub fn place_where(&self, found: impl Fn(&Installment) -> bool) -> Option<(usize, usize)> {
        self.payment_options
            .iter()
            .enumerate()
            .find_map(|(o, option)| option.installments.iter().position(&found).map(|i| (o, i)))
    }

    /// The state on `today`: a valid position whose every installment is past its expiry
    /// date is expired.
    pub fn effective_state(&self, today: Date) -> EffectivePositionState {
        match self.state {
            PositionState::Valid => {
                let mut installments = self.installments().peekable();
                let any = installments.peek().is_some();
                if any && installments.all(|i| i.is_past_expiry(today)) {
                    EffectivePositionState::Expired
                } else {
                    EffectivePositionState::Valid
                }
            }
            PositionState::PartiallyPaid => EffectivePositionState::PartiallyPaid,
            PositionState::Paid => EffectivePositionState::Paid,
            PositionState::Cancelled => EffectivePositionState::Cancelled,
        }
    }

    /// The last day any installment can be paid, when every installment has an expiry
    /// date; stored so that "expired" can be filtered on in the database.
    pub fn expires_on(&self) -> Option<Date> {
        expires_on(self.installments().map(|i| i.expiry_date))
    }

    /// The amount the notice costs on `day`: for fines the band's amount plus costs, for
    /// everything else the installment's amount.
    pub fn amount_payable_on(&self, installment: &Installment, day: Date) -> AmountCents {
        match &self.details {
            KindDetails::TrafficFine(fine) => fine.schedule.amount_payable_on(day),
            _ => installment.amount,
        }
    }
}

/// The last expiry date of a set of installments, or `None` if any has none.
pub fn expires_on(expiry_dates: impl IntoIterator<Item = Option<Date>>) -> Option<Date> {
    let mut last: Option<Date> = None;
    for expiry in expiry_dates {
        let expiry = expiry?;
        last = Some(last.map_or(expiry, |l| l.max(expiry)));
    }
    last
}
