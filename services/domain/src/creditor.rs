//! The creditor institutions (Enti Creditori) incasso knows: the ones it issues notices for
//! (with a segregation code) and the secondary beneficiaries of multi-beneficiary notices
//! (e.g. the Città Metropolitana for TEFA). Loaded from configuration; the registry is what
//! transfers are checked against, because the PagoPA Node refuses a transfer whose IBAN is
//! not registered for its beneficiary.

use std::collections::BTreeMap;

use crate::fiscal_code::OrganizationFiscalCode;
use crate::iban::Iban;
use crate::notice_number::SegregationCode;

/// Why a creditor's configuration was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CreditorError {
    /// The name is empty or longer than PagoPA's companyName allows.
    #[error("creditor {fiscal_code}: name must be 1..=140 characters")]
    Name {
        /// The creditor.
        fiscal_code: String,
    },
    /// No bank IBAN to credit by default.
    #[error("creditor {fiscal_code}: at least one bank IBAN is required")]
    NoBankIban {
        /// The creditor.
        fiscal_code: String,
    },
    /// A postal IBAN that is not a Poste Italiane account.
    #[error(
        "creditor {fiscal_code}: postal IBAN {iban} is not a Poste Italiane account (ABI 07601)"
    )]
    NotPoste {
        /// The creditor.
        fiscal_code: String,
        /// The IBAN.
        iban: String,
    },
    /// The same fiscal code twice.
    #[error("creditor {fiscal_code} is configured twice")]
    Duplicate {
        /// The creditor.
        fiscal_code: String,
    },
}

/// A creditor institution and its registered accounts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Creditor {
    fiscal_code: OrganizationFiscalCode,
    name: String,
    segregation_code: Option<SegregationCode>,
    bank_ibans: Vec<Iban>,
    postal_ibans: Vec<Iban>,
}

impl Creditor {
    /// A creditor; with a segregation code it can issue notices, without one it can only be
    /// the beneficiary of transfers. The first bank IBAN is the default account.
    pub fn new(
        fiscal_code: OrganizationFiscalCode,
        name: &str,
        segregation_code: Option<SegregationCode>,
        bank_ibans: Vec<Iban>,
        postal_ibans: Vec<Iban>,
    ) -> Result<Self, CreditorError> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 140 {
            return Err(CreditorError::Name {
                fiscal_code: fiscal_code.as_str().to_owned(),
            });
        }
        if bank_ibans.is_empty() {
            return Err(CreditorError::NoBankIban {
                fiscal_code: fiscal_code.as_str().to_owned(),
            });
        }
        if let Some(iban) = postal_ibans.iter().find(|iban| !iban.is_poste()) {
            return Err(CreditorError::NotPoste {
                fiscal_code: fiscal_code.as_str().to_owned(),
                iban: iban.as_str().to_owned(),
            });
        }
        Ok(Self {
            fiscal_code,
            name: name.to_owned(),
            segregation_code,
            bank_ibans,
            postal_ibans,
        })
    }

    /// The creditor's 11-digit fiscal code.
    pub fn fiscal_code(&self) -> &OrganizationFiscalCode {
        &self.fiscal_code
    }

    /// The creditor's name (companyName).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The segregation code of incasso's notice numbers for this creditor, if it issues any.
    pub fn segregation_code(&self) -> Option<SegregationCode> {
        self.segregation_code
    }

    /// The account credited when a transfer names none.
    pub fn default_bank_iban(&self) -> &Iban {
        &self.bank_ibans[0]
    }

    /// The registered bank IBANs.
    pub fn bank_ibans(&self) -> &[Iban] {
        &self.bank_ibans
    }

    /// The registered Poste accounts; the first is used when the Node asks for a postal
    /// transfer.
    pub fn postal_ibans(&self) -> &[Iban] {
        &self.postal_ibans
    }

    /// The Poste account used for postal transfers, if any.
    pub fn default_postal_iban(&self) -> Option<&Iban> {
        self.postal_ibans.first()
    }

    /// True when `iban` is one of this creditor's registered accounts.
    pub fn has_iban(&self, iban: &Iban) -> bool {
        self.bank_ibans.contains(iban) || self.postal_ibans.contains(iban)
    }
}

/// Every creditor incasso knows, by fiscal code.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CreditorRegistry {
    creditors: BTreeMap<String, Creditor>,
}

impl CreditorRegistry {
    /// A registry of the given creditors; a fiscal code may appear once.
    pub fn new(creditors: impl IntoIterator<Item = Creditor>) -> Result<Self, CreditorError> {
        let mut map = BTreeMap::new();
        for creditor in creditors {
            let key = creditor.fiscal_code.as_str().to_owned();
            if map.contains_key(&key) {
                return Err(CreditorError::Duplicate { fiscal_code: key });
            }
            map.insert(key, creditor);
        }
        Ok(Self { creditors: map })
    }

    /// The creditor with this fiscal code.
    pub fn get(&self, fiscal_code: &str) -> Option<&Creditor> {
        self.creditors.get(fiscal_code)
    }

    /// The creditor with this fiscal code if incasso issues notices for it.
    pub fn issuer(&self, fiscal_code: &str) -> Option<&Creditor> {
        self.get(fiscal_code)
            .filter(|creditor| creditor.segregation_code.is_some())
    }

    /// All creditors, ordered by fiscal code.
    pub fn iter(&self) -> impl Iterator<Item = &Creditor> {
        self.creditors.values()
    }
}
