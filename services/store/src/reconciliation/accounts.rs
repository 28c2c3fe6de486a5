//! Which creditor a treasury document belongs to: camt statements by the account's IBAN
//! (`treasury_ibans` in the configuration), OPI giornali by the entity code
//! (`opi_entity_code`).

use std::collections::{BTreeMap, BTreeSet};

/// The creditors' treasury accounts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TreasuryAccounts {
    ibans: BTreeMap<String, String>,
    opi_codes: BTreeMap<String, String>,
}

fn normalized_iban(iban: &str) -> String {
    iban.chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .to_ascii_uppercase()
}

impl TreasuryAccounts {
    /// No account.
    pub fn new() -> Self {
        Self::default()
    }

    /// `iban` is a treasury account of `creditor`; refused when another creditor has it.
    pub fn add_iban(&mut self, creditor: &str, iban: &str) -> Result<(), String> {
        let iban = normalized_iban(iban);
        match self.ibans.get(&iban) {
            Some(other) if other != creditor => Err(format!(
                "treasury IBAN {iban} is configured for both {other} and {creditor}"
            )),
            _ => {
                self.ibans.insert(iban, creditor.to_owned());
                Ok(())
            }
        }
    }

    /// `code` is the OPI entity code of `creditor`; refused when another creditor has it.
    pub fn add_opi_code(&mut self, creditor: &str, code: &str) -> Result<(), String> {
        // The giornale's `codice_ente` as written: six capitals or digits from OPI 1.6.1 on,
        // free text in 1.4.
        if code.is_empty() || code.chars().any(char::is_whitespace) {
            return Err(format!(
                "'{code}' is not an OPI entity code (the giornale's codice_ente, without spaces)"
            ));
        }
        match self.opi_codes.get(code) {
            Some(other) if other != creditor => Err(format!(
                "OPI entity code {code} is configured for both {other} and {creditor}"
            )),
            _ => {
                self.opi_codes.insert(code.to_owned(), creditor.to_owned());
                Ok(())
            }
        }
    }

    /// The creditor whose treasury account `iban` is.
    pub fn creditor_of_iban(&self, iban: &str) -> Option<&str> {
        self.ibans.get(&normalized_iban(iban)).map(String::as_str)
    }

    /// The creditor whose OPI entity code `code` is.
    pub fn creditor_of_opi_code(&self, code: &str) -> Option<&str> {
        self.opi_codes.get(code).map(String::as_str)
    }

    /// The creditors with a treasury account or an OPI entity code: those the operator set up
    /// for reconciliation.
    pub fn creditors(&self) -> BTreeSet<String> {
        self.ibans
            .values()
            .chain(self.opi_codes.values())
            .cloned()
            .collect()
    }
}
