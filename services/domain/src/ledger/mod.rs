//! The books: a chart of accounts for a municipal collector, journal entries of two or more
//! lines that always sum to zero, and the posting rules that turn every business event into
//! entries. Amounts are integer cents; debits are positive, credits negative.
//!
//! Every account belongs to the books of one creditor (the Ente Creditore whose books they
//! are) and is written as `type:creditor[:qualifier]`:
//!
//! | account | side | meaning |
//! |---|---|---|
//! | `receivable:C:kind` | debit | what debtors owe C for its notices of that kind |
//! | `revenue:C:kind` | credit | C's own revenue assessed on those notices |
//! | `due_to_beneficiary:C:B` | credit | what notices issued by C assess for another beneficiary B (TEFA) |
//! | `psp_clearing:C:PSP` | debit | money a PSP collected for C and has not yet transferred |
//! | `in_transit:C` | debit | money a PSP reported transferred to C, not yet seen in C's treasury |
//! | `treasury:C` | debit | money in C's treasury account |
//! | `refunds_payable:C` | credit | double and wrong payments C must give back |
//! | `suspense:C` | credit | money received for C that matches no notice yet |
//!
//! The rules are in [`rules`], the postings reconciliation evidence asks for (`reported`,
//! `cashed`) in [`settlement`], the tamper-evident chain in [`chain`].

pub mod chain;
pub mod rules;
pub mod settlement;

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::debt_position::DebtKind;
use crate::fiscal_code::OrganizationFiscalCode;

/// The kinds of account in the chart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccountType {
    /// Debtors' debts, per kind.
    Receivable,
    /// The creditor's assessed revenue, per kind.
    Revenue,
    /// What the creditor's notices assess for another beneficiary.
    DueToBeneficiary,
    /// Collected by a PSP, not yet transferred.
    PspClearing,
    /// Reported transferred by a PSP, not yet cashed.
    InTransit,
    /// Cashed in the treasury.
    Treasury,
    /// To be refunded.
    RefundsPayable,
    /// Received, matching nothing yet.
    Suspense,
}

impl AccountType {
    /// Every account type, in chart order.
    pub const ALL: [Self; 8] = [
        Self::Receivable,
        Self::Revenue,
        Self::DueToBeneficiary,
        Self::PspClearing,
        Self::InTransit,
        Self::Treasury,
        Self::RefundsPayable,
        Self::Suspense,
    ];

    /// The name used in account codes.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Receivable => "receivable",
            Self::Revenue => "revenue",
            Self::DueToBeneficiary => "due_to_beneficiary",
            Self::PspClearing => "psp_clearing",
            Self::InTransit => "in_transit",
            Self::Treasury => "treasury",
            Self::RefundsPayable => "refunds_payable",
            Self::Suspense => "suspense",
        }
    }

    /// The type from its name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == name)
    }

    /// True for accounts whose normal balance is a debit (assets).
    pub fn is_debit_normal(self) -> bool {
        matches!(
            self,
            Self::Receivable | Self::PspClearing | Self::InTransit | Self::Treasury
        )
    }
}

/// Why an account code was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccountError {
    /// Unknown type.
    #[error(
        "unknown account type '{0}' (expected one of receivable, revenue, due_to_beneficiary, psp_clearing, in_transit, treasury, refunds_payable, suspense)"
    )]
    Type(String),
    /// Bad creditor.
    #[error("'{0}' is not an 11-digit creditor fiscal code")]
    Creditor(String),
    /// Missing or extra qualifier.
    #[error("{0}")]
    Qualifier(String),
}

/// One account of the chart.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Account {
    account_type: AccountType,
    creditor: OrganizationFiscalCode,
    qualifier: Option<String>,
}

/// A PSP identifier as PagoPA writes it (idPSP): 1..=35 letters, digits, `_` or `-`.
pub fn is_psp_id(text: &str) -> bool {
    (1..=35).contains(&text.len())
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

impl Account {
    /// `receivable:C:kind`.
    pub fn receivable(creditor: &OrganizationFiscalCode, kind: DebtKind) -> Self {
        Self::with(AccountType::Receivable, creditor, Some(kind.as_str()))
    }

    /// `revenue:C:kind`.
    pub fn revenue(creditor: &OrganizationFiscalCode, kind: DebtKind) -> Self {
        Self::with(AccountType::Revenue, creditor, Some(kind.as_str()))
    }

    /// `due_to_beneficiary:C:B`.
    pub fn due_to_beneficiary(
        creditor: &OrganizationFiscalCode,
        beneficiary: &OrganizationFiscalCode,
    ) -> Self {
        Self::with(
            AccountType::DueToBeneficiary,
            creditor,
            Some(beneficiary.as_str()),
        )
    }

    /// `psp_clearing:C:PSP`; the PSP id must satisfy [`is_psp_id`].
    pub fn psp_clearing(creditor: &OrganizationFiscalCode, psp: &str) -> Self {
        debug_assert!(is_psp_id(psp), "invalid PSP id");
        Self::with(AccountType::PspClearing, creditor, Some(psp))
    }

    /// `in_transit:C`.
    pub fn in_transit(creditor: &OrganizationFiscalCode) -> Self {
        Self::with(AccountType::InTransit, creditor, None)
    }

    /// `treasury:C`.
    pub fn treasury(creditor: &OrganizationFiscalCode) -> Self {
        Self::with(AccountType::Treasury, creditor, None)
    }

    /// `refunds_payable:C`.
    pub fn refunds_payable(creditor: &OrganizationFiscalCode) -> Self {
        Self::with(AccountType::RefundsPayable, creditor, None)
    }

    /// `suspense:C`.
    pub fn suspense(creditor: &OrganizationFiscalCode) -> Self {
        Self::with(AccountType::Suspense, creditor, None)
    }

    fn with(
        account_type: AccountType,
        creditor: &OrganizationFiscalCode,
        qualifier: Option<&str>,
    ) -> Self {
        Self {
            account_type,
            creditor: creditor.clone(),
            qualifier: qualifier.map(str::to_owned),
        }
    }

    /// Parses an account code, checking the qualifier each type needs.
    pub fn parse(code: &str) -> Result<Self, AccountError> {
        let mut parts = code.split(':');
        let type_name = parts.next().unwrap_or_default();
        let account_type = AccountType::from_name(type_name)
            .ok_or_else(|| AccountError::Type(type_name.to_owned()))?;
        let creditor_text = parts.next().unwrap_or_default();
        let creditor = OrganizationFiscalCode::parse(creditor_text)
            .map_err(|_| AccountError::Creditor(creditor_text.to_owned()))?;
        let qualifier = parts.next();
        if parts.next().is_some() {
            return Err(AccountError::Qualifier(format!(
                "'{code}' has too many parts"
            )));
        }
        let qualifier = match (account_type, qualifier) {
            (AccountType::Receivable | AccountType::Revenue, Some(kind)) => {
                DebtKind::from_name(kind).ok_or_else(|| {
                    AccountError::Qualifier(format!(
                        "'{kind}' is not a kind (tari, traffic_fine, school_fee)"
                    ))
                })?;
                Some(kind)
            }
            (AccountType::DueToBeneficiary, Some(beneficiary)) => {
                OrganizationFiscalCode::parse(beneficiary).map_err(|_| {
                    AccountError::Qualifier(format!(
                        "'{beneficiary}' is not a beneficiary fiscal code"
                    ))
                })?;
                Some(beneficiary)
            }
            (AccountType::PspClearing, Some(psp)) if is_psp_id(psp) => Some(psp),
            (AccountType::PspClearing, Some(psp)) => {
                return Err(AccountError::Qualifier(format!("'{psp}' is not a PSP id")));
            }
            (AccountType::Receivable | AccountType::Revenue, None) => {
                return Err(AccountError::Qualifier(format!(
                    "{type_name} needs a kind: {type_name}:C:kind"
                )));
            }
            (AccountType::DueToBeneficiary | AccountType::PspClearing, None) => {
                return Err(AccountError::Qualifier(format!(
                    "{type_name} needs a third part"
                )));
            }
            (_, Some(extra)) => {
                return Err(AccountError::Qualifier(format!(
                    "{type_name} takes no qualifier, got '{extra}'"
                )));
            }
            (_, None) => None,
        };
        Ok(Self::with(account_type, &creditor, qualifier))
    }

    /// The account type.
    pub fn account_type(&self) -> AccountType {
        self.account_type
    }

    /// Whose books.
    pub fn creditor(&self) -> &OrganizationFiscalCode {
        &self.creditor
    }

    /// The kind, for receivable and revenue accounts.
    pub fn kind(&self) -> Option<DebtKind> {
        match self.account_type {
            AccountType::Receivable | AccountType::Revenue => {
                self.qualifier.as_deref().and_then(DebtKind::from_name)
            }
            _ => None,
        }
    }

    /// The code, `type:creditor[:qualifier]`.
    pub fn code(&self) -> String {
        match &self.qualifier {
            Some(q) => format!(
                "{}:{}:{q}",
                self.account_type.as_str(),
                self.creditor.as_str()
            ),
            None => format!("{}:{}", self.account_type.as_str(), self.creditor.as_str()),
        }
    }
}

impl fmt::Display for Account {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.code())
    }
}

impl FromStr for Account {
    type Err = AccountError;

    fn from_str(code: &str) -> Result<Self, Self::Err> {
        Self::parse(code)
    }
}

/// One line of an entry: a debit (positive) or credit (negative) on an account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// The account.
    pub account: Account,
    /// Cents; debit positive, credit negative, never zero.
    pub amount_cents: i64,
}

/// What happened, as recorded on every entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventType {
    /// Notices of a position were issued: its debt is assessed.
    NoticeIssued,
    /// The assessed debt of a position changed (amounts, transfers, a payment option chosen).
    NoticeChanged,
    /// A position was cancelled: what was still assessed is withdrawn.
    NoticeCancelled,
    /// A payable notice was paid.
    ReceiptPaid,
    /// A notice already paid was paid again: to refund.
    DoublePayment,
    /// A notice that could not be paid (cancelled, another option chosen) was paid: to refund.
    ReceiptClosedNotice,
    /// A receipt for a notice incasso does not know: to suspense.
    ReceiptUnknownNotice,
    /// A PSP's reporting flow declared the money transferred.
    Reported,
    /// The money was seen in the treasury.
    Cashed,
    /// A refund was paid out of the treasury.
    RefundPaid,
    /// A correction: the reversal of an earlier entry.
    Correction,
}

impl EventType {
    /// Every event type.
    pub const ALL: [Self; 11] = [
        Self::NoticeIssued,
        Self::NoticeChanged,
        Self::NoticeCancelled,
        Self::ReceiptPaid,
        Self::DoublePayment,
        Self::ReceiptClosedNotice,
        Self::ReceiptUnknownNotice,
        Self::Reported,
        Self::Cashed,
        Self::RefundPaid,
        Self::Correction,
    ];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NoticeIssued => "notice_issued",
            Self::NoticeChanged => "notice_changed",
            Self::NoticeCancelled => "notice_cancelled",
            Self::ReceiptPaid => "receipt_paid",
            Self::DoublePayment => "double_payment",
            Self::ReceiptClosedNotice => "receipt_closed_notice",
            Self::ReceiptUnknownNotice => "receipt_unknown_notice",
            Self::Reported => "reported",
            Self::Cashed => "cashed",
            Self::RefundPaid => "refund_paid",
            Self::Correction => "correction",
        }
    }

    /// The type from its stored name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == name)
    }
}

/// Why an entry was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EntryError {
    /// Fewer than two lines.
    #[error("an entry needs at least two lines")]
    TooFewLines,
    /// A zero line.
    #[error("a line of zero cents")]
    ZeroLine,
    /// Lines do not sum to zero.
    #[error("lines sum to {0} cents, not zero")]
    Unbalanced(i64),
    /// Lines on accounts of different books.
    #[error("an entry's lines must all be in the books of one creditor")]
    MixedBooks,
}

/// The longest PagoPA receiptId accepted. The schema leaves it an unbounded string; the
/// Node's own are 32 characters, and a bound keeps a hostile message from filling the books.
pub const RECEIPT_ID_MAX_CHARS: usize = 256;

/// The business cause of an entry: which notice, receipt, flow or treasury line moved money.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cause {
    /// The debt position.
    pub debt_position_id: Option<uuid::Uuid>,
    /// The notices concerned (NAV, IUV).
    pub notices: Vec<(String, String)>,
    /// The PagoPA receipt id.
    pub receipt_id: Option<String>,
    /// The PSP's reporting flow (IUF).
    pub reporting_flow_id: Option<String>,
    /// The revision of that flow the entry follows (reconciliation numbers XML flows in the
    /// order they arrive; the FdR REST API gives its own).
    pub reporting_flow_revision: Option<u32>,
    /// The treasury statement line: for a `cashed` entry, the treasury credit's id (camt
    /// `AcctSvcrRef`, OPI `codice_riferimento_interno`).
    pub treasury_line_id: Option<String>,
    /// For a correction, the sequence number of the entry it reverses.
    pub corrects_sequence: Option<i64>,
    /// What the entry settles, for postings derived from evidence (`cashed:CREDIT`; before
    /// migration 28 also `reported:IUV/n/IUR`): the entries of one posting key sum to what the
    /// evidence asks of it, which makes posting idempotent (see [`settlement`]). A flow
    /// revision's merged `reported` entry settles many keys and carries none.
    pub posting_key: Option<String>,
}

/// An entry as the rules produce it, before it is chained.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryDraft {
    /// What happened.
    pub event_type: EventType,
    /// Whose books.
    pub creditor: OrganizationFiscalCode,
    /// The kind of debt, when the entry concerns one.
    pub kind: Option<DebtKind>,
    /// Why, in words.
    pub description: String,
    /// The business cause.
    pub cause: Cause,
    /// Two or more lines summing to zero.
    pub lines: Vec<Line>,
}

impl EntryDraft {
    /// Checks the entry's invariants: two or more non-zero lines, one set of books, zero sum.
    pub fn validate(&self) -> Result<(), EntryError> {
        if self.lines.len() < 2 {
            return Err(EntryError::TooFewLines);
        }
        if self.lines.iter().any(|l| l.amount_cents == 0) {
            return Err(EntryError::ZeroLine);
        }
        if self
            .lines
            .iter()
            .any(|l| l.account.creditor() != &self.creditor)
        {
            return Err(EntryError::MixedBooks);
        }
        let sum: i128 = self.lines.iter().map(|l| i128::from(l.amount_cents)).sum();
        if sum != 0 {
            return Err(EntryError::Unbalanced(
                i64::try_from(sum).unwrap_or(i64::MAX),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn milan() -> OrganizationFiscalCode {
        OrganizationFiscalCode::parse("01199250158").unwrap()
    }

    #[test]
    fn account_codes_round_trip_and_bad_ones_say_why() {
        let cm = OrganizationFiscalCode::parse("08911820960").unwrap();
        for account in [
            Account::receivable(&milan(), DebtKind::Tari),
            Account::revenue(&milan(), DebtKind::TrafficFine),
            Account::due_to_beneficiary(&milan(), &cm),
            Account::psp_clearing(&milan(), "BCITITMM"),
            Account::in_transit(&milan()),
            Account::treasury(&milan()),
            Account::refunds_payable(&milan()),
            Account::suspense(&milan()),
        ] {
            assert_eq!(Account::parse(&account.code()).unwrap(), account);
        }
        assert_eq!(Account::treasury(&milan()).code(), "treasury:01199250158");
        for bad in [
            "cash:01199250158",
            "treasury:0119925015",
            "receivable:01199250158",
            "receivable:01199250158:imu",
            "treasury:01199250158:extra",
            "psp_clearing:01199250158:BAD:ID",
            "due_to_beneficiary:01199250158:123",
            "",
        ] {
            assert!(Account::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn drafts_must_balance() {
        let draft = |lines: Vec<(Account, i64)>| EntryDraft {
            event_type: EventType::Cashed,
            creditor: milan(),
            kind: None,
            description: String::new(),
            cause: Cause::default(),
            lines: lines
                .into_iter()
                .map(|(account, amount_cents)| Line {
                    account,
                    amount_cents,
                })
                .collect(),
        };
        let t = Account::treasury(&milan());
        let i = Account::in_transit(&milan());
        assert!(
            draft(vec![(t.clone(), 100), (i.clone(), -100)])
                .validate()
                .is_ok()
        );
        assert_eq!(
            draft(vec![(t.clone(), 100), (i.clone(), -99)]).validate(),
            Err(EntryError::Unbalanced(1))
        );
        assert_eq!(
            draft(vec![(t.clone(), 0), (i.clone(), 0)]).validate(),
            Err(EntryError::ZeroLine)
        );
        assert_eq!(
            draft(vec![(t, 100)]).validate(),
            Err(EntryError::TooFewLines)
        );
        let other = OrganizationFiscalCode::parse("08911820960").unwrap();
        assert_eq!(
            draft(vec![(i, 100), (Account::treasury(&other), -100)]).validate(),
            Err(EntryError::MixedBooks)
        );
    }
}
