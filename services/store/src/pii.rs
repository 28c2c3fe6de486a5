//! Personal data protection, after p4pa's approach: the debtor's fiscal code, name, e-mail
//! and a fine's plate are stored only as AES-256-GCM ciphertext in their own table, and the
//! fiscal code is looked up through a keyed hash (HMAC-SHA-256 with a secret pepper), so that
//! neither the table nor its indexes reveal who owes what without the keys. The row id is the
//! associated data, so a ciphertext moved to another row does not decrypt.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use hmac::{Hmac, Mac};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use uuid::Uuid;

use incasso_domain::fiscal_code::{EntityType, FiscalCode};

/// Keys that protect personal data. Both are secrets of the deployment.
#[derive(Clone)]
pub struct PrivacyKeys {
    key_id: String,
    cipher: Aes256Gcm,
    pepper: Vec<u8>,
}

impl std::fmt::Debug for PrivacyKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrivacyKeys")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

/// Why keys were refused.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The encryption key is not 32 bytes.
    #[error("the encryption key must be 32 bytes (64 hex digits), got {0} bytes")]
    KeyLength(usize),
    /// The pepper is too short to resist guessing.
    #[error("the fiscal-code pepper must be at least 16 bytes, got {0}")]
    PepperLength(usize),
    /// The key id is empty or too long.
    #[error("the key id must be 1..=32 characters")]
    KeyId,
}

/// The personal data of one debt position, as encrypted.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersonalRecord {
    /// Debtor type.
    pub entity_type: EntityType,
    /// Debtor fiscal code.
    pub fiscal_code: FiscalCode,
    /// Debtor name.
    pub full_name: String,
    /// Debtor e-mail.
    pub email: Option<String>,
    /// A fine's plate.
    pub plate: Option<String>,
}

impl std::fmt::Debug for PersonalRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PersonalRecord(..)")
    }
}

/// An encrypted record, ready to store.
pub struct Sealed {
    /// Which key encrypted it.
    pub key_id: String,
    /// 96-bit random nonce.
    pub nonce: Vec<u8>,
    /// Ciphertext with its tag.
    pub ciphertext: Vec<u8>,
}

impl PrivacyKeys {
    /// Keys from raw bytes.
    pub fn new(key_id: &str, encryption_key: &[u8], pepper: &[u8]) -> Result<Self, KeyError> {
        if key_id.is_empty() || key_id.len() > 32 {
            return Err(KeyError::KeyId);
        }
        if encryption_key.len() != 32 {
            return Err(KeyError::KeyLength(encryption_key.len()));
        }
        if pepper.len() < 16 {
            return Err(KeyError::PepperLength(pepper.len()));
        }
        let cipher = Aes256Gcm::new_from_slice(encryption_key)
            .map_err(|_| KeyError::KeyLength(encryption_key.len()))?;
        Ok(Self {
            key_id: key_id.to_owned(),
            cipher,
            pepper: pepper.to_vec(),
        })
    }

    /// Fixed, publicly known keys for development and tests. Never for real data.
    pub fn development() -> Self {
        #[allow(clippy::expect_used)]
        Self::new(
            "dev",
            b"incasso-development-key-32-bytes",
            b"incasso-development-pepper",
        )
        .expect("the development keys have valid lengths")
    }

    /// The keyed hash a fiscal code is looked up by.
    pub fn fiscal_code_hash(&self, fiscal_code: &FiscalCode) -> Vec<u8> {
        #[allow(clippy::expect_used)]
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.pepper)
            .expect("HMAC accepts keys of any length");
        mac.update(b"incasso/fiscal-code/v1\0");
        mac.update(fiscal_code.as_str().as_bytes());
        mac.finalize().into_bytes().to_vec()
    }

    /// The keyed hash (HMAC-SHA-256, hex) of a document that carries personal data, such as
    /// the canonical form of a receipt: it tells two deliveries apart without letting
    /// whoever reads the table confirm a guessed fiscal code by hashing candidates, as a plain
    /// SHA-256 over otherwise known fields would. `purpose` separates the uses of the pepper.
    pub fn document_hash(&self, purpose: &str, document: &[u8]) -> String {
        #[allow(clippy::expect_used)]
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.pepper)
            .expect("HMAC accepts keys of any length");
        mac.update(b"incasso/");
        mac.update(purpose.as_bytes());
        mac.update(b"\0");
        mac.update(document);
        hex::encode(mac.finalize().into_bytes())
    }

    /// Encrypts a record for the row `id`.
    pub fn seal(&self, id: Uuid, record: &PersonalRecord) -> Sealed {
        #[allow(clippy::expect_used)]
        let plaintext = serde_json::to_vec(record).expect("a personal record always serialises");
        self.seal_bytes(id, &plaintext)
    }

    /// Encrypts any bytes (a source document) for the row `id`.
    pub fn seal_bytes(&self, id: Uuid, plaintext: &[u8]) -> Sealed {
        let mut nonce = [0u8; 12];
        rand::rng().fill_bytes(&mut nonce);
        #[allow(clippy::expect_used)]
        let ciphertext = self
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: id.as_bytes(),
                },
            )
            .expect("AES-GCM encryption cannot fail for messages under 64 GiB");
        Sealed {
            key_id: self.key_id.clone(),
            nonce: nonce.to_vec(),
            ciphertext,
        }
    }

    /// Decrypts the record of row `id`; `None` if the key id is unknown or the data was
    /// altered.
    pub fn open(
        &self,
        id: Uuid,
        key_id: &str,
        nonce: &[u8],
        ciphertext: &[u8],
    ) -> Option<PersonalRecord> {
        serde_json::from_slice(&self.open_bytes(id, key_id, nonce, ciphertext)?).ok()
    }

    /// Decrypts bytes sealed for row `id`.
    pub fn open_bytes(
        &self,
        id: Uuid,
        key_id: &str,
        nonce: &[u8],
        ciphertext: &[u8],
    ) -> Option<Vec<u8>> {
        if key_id != self.key_id || nonce.len() != 12 {
            return None;
        }
        self.cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: id.as_bytes(),
                },
            )
            .ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> PersonalRecord {
        PersonalRecord {
            entity_type: EntityType::F,
            fiscal_code: FiscalCode::parse("RSSMRA80A01F205X").unwrap(),
            full_name: "Mario Rossi".to_owned(),
            email: None,
            plate: Some("AB123CD".to_owned()),
        }
    }

    #[test]
    fn sealed_records_open_only_with_their_row_and_key() {
        let keys = PrivacyKeys::development();
        let id = Uuid::now_v7();
        let sealed = keys.seal(id, &record());
        assert!(!sealed.ciphertext.windows(11).any(|w| w == b"Mario Rossi"));
        assert_eq!(
            keys.open(id, "dev", &sealed.nonce, &sealed.ciphertext),
            Some(record())
        );
        assert_eq!(
            keys.open(Uuid::now_v7(), "dev", &sealed.nonce, &sealed.ciphertext),
            None
        );
        let mut tampered = sealed.ciphertext.clone();
        tampered[0] ^= 1;
        assert_eq!(keys.open(id, "dev", &sealed.nonce, &tampered), None);
        let other = PrivacyKeys::new("dev", &[7; 32], b"another pepper 16").unwrap();
        assert_eq!(
            other.open(id, "dev", &sealed.nonce, &sealed.ciphertext),
            None
        );
    }

    #[test]
    fn the_lookup_hash_depends_on_the_pepper() {
        let code = FiscalCode::parse("RSSMRA80A01F205X").unwrap();
        let dev = PrivacyKeys::development();
        let other = PrivacyKeys::new("k2", &[7; 32], b"another pepper 16").unwrap();
        assert_eq!(dev.fiscal_code_hash(&code), dev.fiscal_code_hash(&code));
        assert_ne!(dev.fiscal_code_hash(&code), other.fiscal_code_hash(&code));
        assert_eq!(dev.fiscal_code_hash(&code).len(), 32);
    }
}
