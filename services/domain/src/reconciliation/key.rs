//! The identities reconciliation matches on: a transfer key (IUV, receiptId/IUR, idTransfer),
//! a reporting flow's id (IUF) and a treasury credit's id, as the contract's §1 defines them.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::ledger::RECEIPT_ID_MAX_CHARS;
use crate::notice_number::Iuv;

/// Why an identifier was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// Not `[A-Za-z0-9_-]{1,35}`.
    #[error("'{0}' is not a reporting flow id (1 to 35 letters, digits, '-' or '_')")]
    FlowId(String),
    /// Empty or longer than [`RECEIPT_ID_MAX_CHARS`] characters.
    #[error("a receipt id (IUR) must be 1 to {max} characters, got {0}", max = RECEIPT_ID_MAX_CHARS)]
    ReceiptId(usize),
    /// Empty or longer than 60 characters.
    #[error("a treasury credit id must be 1 to 60 characters, got {0}")]
    CreditId(usize),
    /// Not 1..=5.
    #[error("idTransfer must be 1 to 5, got {0}")]
    TransferIndex(i64),
    /// Not one of 0, 3, 4, 8, 9.
    #[error("'{0}' is not a reporting outcome code (0, 3, 4, 8 or 9)")]
    OutcomeCode(String),
}

/// A reporting flow's id, the IUF (`identificativoFlusso`, REST `fdr`):
/// `[A-Za-z0-9_-]{1,35}`, unique per creditor (it embeds the PSP's id by convention).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct FlowId(String);

impl FlowId {
    /// Parses an IUF.
    pub fn parse(text: &str) -> Result<Self, KeyError> {
        let valid = !text.is_empty()
            && text.len() <= 35
            && text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if valid {
            Ok(Self(text.to_owned()))
        } else {
            Err(KeyError::FlowId(text.chars().take(40).collect()))
        }
    }

    /// The IUF.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for FlowId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for FlowId {
    type Error = KeyError;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        Self::parse(&text)
    }
}

impl From<FlowId> for String {
    fn from(id: FlowId) -> Self {
        id.0
    }
}

/// A treasury credit's id: camt `Ntry/AcctSvcrRef`, OPI `codice_riferimento_interno`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CreditId(String);

impl CreditId {
    /// 1 to 60 characters (OPI's limit; camt's is 35).
    pub fn parse(text: &str) -> Result<Self, KeyError> {
        let length = text.chars().count();
        if (1..=60).contains(&length) {
            Ok(Self(text.to_owned()))
        } else {
            Err(KeyError::CreditId(length))
        }
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CreditId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for CreditId {
    type Error = KeyError;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        Self::parse(&text)
    }
}

impl From<CreditId> for String {
    fn from(id: CreditId) -> Self {
        id.0
    }
}

/// `idTransfer` of a receipt transfer, `indiceDatiSingoloPagamento` of a flow line: 1 to 5.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "i64", into = "i64")]
pub struct TransferIndex(u8);

impl TransferIndex {
    /// 1 to 5.
    pub fn new(index: i64) -> Result<Self, KeyError> {
        match u8::try_from(index) {
            Ok(i @ 1..=5) => Ok(Self(i)),
            _ => Err(KeyError::TransferIndex(index)),
        }
    }

    /// The index.
    pub fn get(self) -> u8 {
        self.0
    }
}

impl TryFrom<i64> for TransferIndex {
    type Error = KeyError;

    fn try_from(index: i64) -> Result<Self, Self::Error> {
        Self::new(index)
    }
}

impl From<TransferIndex> for i64 {
    fn from(index: TransferIndex) -> Self {
        i64::from(index.0)
    }
}

/// One transfer of one payment of the creditor: (IUV, receiptId = IUR, idTransfer). The
/// creditor is implicit: reconciliation runs per creditor.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TransferKey {
    /// `creditorReferenceId` / `identificativoUnivocoVersamento`.
    pub iuv: Iuv,
    /// `receiptId` / `identificativoUnivocoRiscossione`.
    pub receipt_id: String,
    /// `idTransfer` / `indiceDatiSingoloPagamento`.
    pub transfer_index: TransferIndex,
}

impl TransferKey {
    /// A key, the receipt id checked for length: as long as a receipt is accepted with
    /// ([`RECEIPT_ID_MAX_CHARS`]; the schema leaves receiptId unbounded), so that every paid
    /// transfer is a key. An FdR's IUR is at most 35 characters: its readers check that.
    pub fn new(
        iuv: Iuv,
        receipt_id: &str,
        transfer_index: TransferIndex,
    ) -> Result<Self, KeyError> {
        let length = receipt_id.chars().count();
        if !(1..=RECEIPT_ID_MAX_CHARS).contains(&length) {
            return Err(KeyError::ReceiptId(length));
        }
        Ok(Self {
            iuv,
            receipt_id: receipt_id.to_owned(),
            transfer_index,
        })
    }
}

impl fmt::Display for TransferKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{}/{}",
            self.iuv,
            self.receipt_id,
            self.transfer_index.get()
        )
    }
}

/// `codiceEsitoSingoloPagamento` of a flow line (REST `payStatus`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum OutcomeCode {
    /// 0, EXECUTED.
    Executed,
    /// 3, REVOKED.
    Revoked,
    /// 4, STAND_IN: paid during Stand-In; an ordinary paid line when the receipt says so.
    StandIn,
    /// 8, STAND_IN_NO_RPT.
    StandInNoRpt,
    /// 9, NO_RPT: paid without a receipt request; stays `IUV_NO_RT`.
    NoRpt,
}

impl OutcomeCode {
    /// The XML digit.
    pub fn parse_code(text: &str) -> Result<Self, KeyError> {
        match text {
            "0" => Ok(Self::Executed),
            "3" => Ok(Self::Revoked),
            "4" => Ok(Self::StandIn),
            "8" => Ok(Self::StandInNoRpt),
            "9" => Ok(Self::NoRpt),
            _ => Err(KeyError::OutcomeCode(text.chars().take(20).collect())),
        }
    }

    /// The REST `payStatus` name.
    pub fn parse_pay_status(text: &str) -> Result<Self, KeyError> {
        match text {
            "EXECUTED" => Ok(Self::Executed),
            "REVOKED" => Ok(Self::Revoked),
            "STAND_IN" => Ok(Self::StandIn),
            "STAND_IN_NO_RPT" => Ok(Self::StandInNoRpt),
            "NO_RPT" => Ok(Self::NoRpt),
            _ => Err(KeyError::OutcomeCode(text.chars().take(20).collect())),
        }
    }

    /// The digit as the XML writes it.
    pub fn code(self) -> u8 {
        match self {
            Self::Executed => 0,
            Self::Revoked => 3,
            Self::StandIn => 4,
            Self::StandInNoRpt => 8,
            Self::NoRpt => 9,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_checked() {
        assert!(FlowId::parse("2026-03-11ABI03069-0001_x").is_ok());
        assert!(FlowId::parse("").is_err());
        assert!(FlowId::parse("a b").is_err());
        assert!(FlowId::parse(&"a".repeat(36)).is_err());
        assert!(TransferIndex::new(0).is_err());
        assert!(TransferIndex::new(6).is_err());
        assert_eq!(TransferIndex::new(5).unwrap().get(), 5);
        let iuv = Iuv::parse("12000000000000123").unwrap();
        let one = TransferIndex::new(1).unwrap();
        assert!(TransferKey::new(iuv.clone(), "", one).is_err());
        // A receipt's receiptId may be longer than an IUR: still a key.
        assert!(TransferKey::new(iuv.clone(), &"r".repeat(40), one).is_ok());
        assert!(TransferKey::new(iuv, &"r".repeat(RECEIPT_ID_MAX_CHARS + 1), one).is_err());
        for (digit, name) in [
            ("0", "EXECUTED"),
            ("3", "REVOKED"),
            ("4", "STAND_IN"),
            ("8", "STAND_IN_NO_RPT"),
            ("9", "NO_RPT"),
        ] {
            let code = OutcomeCode::parse_code(digit).unwrap();
            assert_eq!(OutcomeCode::parse_pay_status(name).unwrap(), code);
            assert_eq!(code.code().to_string(), digit);
        }
        assert!(OutcomeCode::parse_code("1").is_err());
    }
}
