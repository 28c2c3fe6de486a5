//! The tamper-evident chain. Entry n's hash is SHA-256 over the previous entry's hash and a
//! canonical encoding of entry n; the first entry's previous hash is 32 zero bytes. Changing
//! any stored field of any entry (or a line, or a notice it names) changes its hash and every
//! hash after it. A checkpoint (sequence number and hash) kept outside the system also catches
//! a rewrite of the whole chain, since a rewritten chain cannot reproduce the kept hash.
//!
//! The canonical encoding is documented in `docs/ledger.md` so that an auditor can recompute
//! the chain with their own tools: a sequence of fields, each written as its byte length in
//! decimal, a colon, the bytes, and a newline; absent values are written as length 0.
//!
//! Two versions exist. An entry that names neither a flow revision nor a posting key is
//! encoded as `v1`, exactly as before those fields existed, so every entry chained before them
//! still verifies; an entry that names either is encoded as `v2`, which is `v1` with those two
//! fields after the source document's hash.

use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use uuid::Uuid;

use super::EntryDraft;

/// The previous hash of the first entry.
pub const GENESIS_HASH: [u8; 32] = [0; 32];

/// The version tag that opens the encoding of an entry with no flow revision and no posting
/// key.
pub const ENCODING_VERSION: &str = "incasso-ledger-entry-v1";

/// The version tag of an entry naming a flow revision or a posting key.
pub const ENCODING_VERSION_V2: &str = "incasso-ledger-entry-v2";

/// True when the entry needs the `v2` encoding.
fn is_v2(draft: &EntryDraft) -> bool {
    draft.cause.reporting_flow_revision.is_some() || draft.cause.posting_key.is_some()
}

/// An entry as stored: a draft, its identity in the chain and its time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainedEntry {
    /// 1, 2, 3, ... without gaps.
    pub sequence: i64,
    /// Stable id.
    pub id: Uuid,
    /// When it was recorded (UTC, microseconds).
    pub recorded_at: OffsetDateTime,
    /// The SHA-256 of the source document behind it, if any.
    pub source_document_sha256: Option<[u8; 32]>,
    /// The entry's content.
    pub draft: EntryDraft,
    /// The hash of entry `sequence - 1`.
    pub previous_hash: [u8; 32],
    /// This entry's hash.
    pub hash: [u8; 32],
}

fn field(out: &mut Vec<u8>, value: &[u8]) {
    out.extend_from_slice(value.len().to_string().as_bytes());
    out.push(b':');
    out.extend_from_slice(value);
    out.push(b'\n');
}

fn text(out: &mut Vec<u8>, value: Option<&str>) {
    field(out, value.unwrap_or_default().as_bytes());
}

/// The canonical encoding of an entry's content (everything but its own hash).
pub fn canonical_encoding(
    sequence: i64,
    id: Uuid,
    recorded_at: OffsetDateTime,
    source_document_sha256: Option<&[u8; 32]>,
    draft: &EntryDraft,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(512);
    let v2 = is_v2(draft);
    let version = if v2 {
        ENCODING_VERSION_V2
    } else {
        ENCODING_VERSION
    };
    field(&mut out, version.as_bytes());
    field(&mut out, sequence.to_string().as_bytes());
    field(&mut out, id.hyphenated().to_string().as_bytes());
    let micros = recorded_at.unix_timestamp_nanos() / 1000;
    field(&mut out, micros.to_string().as_bytes());
    field(&mut out, draft.event_type.as_str().as_bytes());
    field(&mut out, draft.creditor.as_str().as_bytes());
    text(&mut out, draft.kind.map(|k| k.as_str()));
    field(&mut out, draft.description.as_bytes());
    let cause = &draft.cause;
    let position = cause.debt_position_id.map(|id| id.hyphenated().to_string());
    text(&mut out, position.as_deref());
    text(&mut out, cause.receipt_id.as_deref());
    text(&mut out, cause.reporting_flow_id.as_deref());
    text(&mut out, cause.treasury_line_id.as_deref());
    let corrects = cause.corrects_sequence.map(|s| s.to_string());
    text(&mut out, corrects.as_deref());
    let document = source_document_sha256.map(hex_lower);
    text(&mut out, document.as_deref());
    if v2 {
        let revision = cause.reporting_flow_revision.map(|r| r.to_string());
        text(&mut out, revision.as_deref());
        text(&mut out, cause.posting_key.as_deref());
    }
    field(&mut out, cause.notices.len().to_string().as_bytes());
    for (notice_number, iuv) in &cause.notices {
        field(&mut out, notice_number.as_bytes());
        field(&mut out, iuv.as_bytes());
    }
    field(&mut out, draft.lines.len().to_string().as_bytes());
    for line in &draft.lines {
        field(&mut out, line.account.code().as_bytes());
        field(&mut out, line.amount_cents.to_string().as_bytes());
    }
    out
}

/// SHA-256 over the previous hash and the canonical encoding.
pub fn entry_hash(previous_hash: &[u8; 32], canonical: &[u8]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(previous_hash);
    hasher.update(canonical);
    hasher.finalize().into()
}

/// Lower-case hexadecimal.
pub fn hex_lower(bytes: &[u8; 32]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Why stored canonical bytes could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("canonical encoding unreadable at byte {offset}: {what}")]
pub struct DecodeError {
    /// Where.
    pub offset: usize,
    /// What was wrong.
    pub what: &'static str,
}

struct Reader<'a> {
    bytes: &'a [u8],
    offset: usize,
}

impl<'a> Reader<'a> {
    fn error(&self, what: &'static str) -> DecodeError {
        DecodeError {
            offset: self.offset,
            what,
        }
    }

    fn field(&mut self) -> Result<&'a [u8], DecodeError> {
        let rest = &self.bytes[self.offset..];
        // The length digits are read in place: verification reads every field of millions of
        // entries, and this loop is most of its parsing.
        let mut length = Some(0usize);
        let mut colon = None;
        for (at, byte) in rest.iter().enumerate() {
            match byte {
                b':' => {
                    colon = Some(at);
                    break;
                }
                b'0'..=b'9' => {
                    length = length
                        .and_then(|l| l.checked_mul(10))
                        .and_then(|l| l.checked_add(usize::from(byte - b'0')));
                }
                _ => length = None,
            }
        }
        let colon = colon.ok_or_else(|| self.error("no length"))?;
        let length = length
            .filter(|_| colon > 0)
            .ok_or_else(|| self.error("bad length"))?;
        let start = colon + 1;
        let end = start
            .checked_add(length)
            .ok_or_else(|| self.error("bad length"))?;
        if rest.len() <= end || rest[end] != b'\n' {
            return Err(self.error("truncated field"));
        }
        self.offset += end + 1;
        Ok(&rest[start..end])
    }

    fn text(&mut self) -> Result<&'a str, DecodeError> {
        let field = self.field()?;
        std::str::from_utf8(field).map_err(|_| self.error("not UTF-8"))
    }

    fn optional(&mut self) -> Result<Option<&'a str>, DecodeError> {
        self.text().map(|t| (!t.is_empty()).then_some(t))
    }

    fn number<T: std::str::FromStr>(&mut self) -> Result<T, DecodeError> {
        self.text()?.parse().map_err(|_| self.error("not a number"))
    }
}

/// The content of an entry as decoded from its canonical encoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodedEntry {
    /// Sequence.
    pub sequence: i64,
    /// Id.
    pub id: Uuid,
    /// When recorded.
    pub recorded_at: OffsetDateTime,
    /// Source document hash.
    pub source_document_sha256: Option<[u8; 32]>,
    /// Content.
    pub draft: EntryDraft,
}

/// Decodes a canonical encoding: the exact inverse of [`canonical_encoding`].
pub fn decode_canonical(bytes: &[u8]) -> Result<DecodedEntry, DecodeError> {
    use crate::debt_position::DebtKind;
    use crate::fiscal_code::OrganizationFiscalCode;
    use crate::ledger::{Account, Cause, EventType, Line};
    let mut r = Reader { bytes, offset: 0 };
    let v2 = match r.text()? {
        ENCODING_VERSION => false,
        ENCODING_VERSION_V2 => true,
        _ => return Err(r.error("unknown encoding version")),
    };
    let sequence: i64 = r.number()?;
    let id = Uuid::parse_str(r.text()?).map_err(|_| r.error("bad id"))?;
    let micros: i128 = r.number()?;
    let recorded_at = OffsetDateTime::from_unix_timestamp_nanos(micros * 1000)
        .map_err(|_| r.error("bad time"))?;
    let event_type = EventType::from_name(r.text()?).ok_or_else(|| r.error("bad event type"))?;
    let creditor = OrganizationFiscalCode::parse(r.text()?).map_err(|_| r.error("bad creditor"))?;
    let kind = match r.optional()? {
        Some(kind) => Some(DebtKind::from_name(kind).ok_or_else(|| r.error("bad kind"))?),
        None => None,
    };
    let description = r.text()?.to_owned();
    let debt_position_id = match r.optional()? {
        Some(id) => Some(Uuid::parse_str(id).map_err(|_| r.error("bad position id"))?),
        None => None,
    };
    let receipt_id = r.optional()?.map(str::to_owned);
    let reporting_flow_id = r.optional()?.map(str::to_owned);
    let treasury_line_id = r.optional()?.map(str::to_owned);
    let corrects_sequence = match r.optional()? {
        Some(s) => Some(s.parse().map_err(|_| r.error("bad corrected sequence"))?),
        None => None,
    };
    let source_document_sha256 = match r.optional()? {
        Some(hex) => {
            if hex.len() != 64 {
                return Err(r.error("bad document hash"));
            }
            let mut out = [0u8; 32];
            for (i, byte) in out.iter_mut().enumerate() {
                *byte = u8::from_str_radix(&hex[i * 2..i * 2 + 2], 16)
                    .map_err(|_| r.error("bad document hash"))?;
            }
            Some(out)
        }
        None => None,
    };
    let (reporting_flow_revision, posting_key) = if v2 {
        let revision = match r.optional()? {
            Some(n) => Some(n.parse().map_err(|_| r.error("bad flow revision"))?),
            None => None,
        };
        let key = r.optional()?.map(str::to_owned);
        if revision.is_none() && key.is_none() {
            // Such an entry is encoded as v1: these bytes were not written by the encoder.
            return Err(r.error("a v2 encoding without a flow revision or posting key"));
        }
        (revision, key)
    } else {
        (None, None)
    };
    let notice_count: usize = r.number()?;
    let mut notices = Vec::with_capacity(notice_count.min(1024));
    for _ in 0..notice_count {
        let notice = r.text()?.to_owned();
        let iuv = r.text()?.to_owned();
        notices.push((notice, iuv));
    }
    let line_count: usize = r.number()?;
    let mut lines = Vec::with_capacity(line_count.min(1024));
    for _ in 0..line_count {
        let account = Account::parse(r.text()?).map_err(|_| r.error("bad account"))?;
        let amount_cents: i64 = r.number()?;
        lines.push(Line {
            account,
            amount_cents,
        });
    }
    if r.offset != bytes.len() {
        return Err(r.error("trailing bytes"));
    }
    Ok(DecodedEntry {
        sequence,
        id,
        recorded_at,
        source_document_sha256,
        draft: EntryDraft {
            event_type,
            creditor,
            kind,
            description,
            cause: Cause {
                debt_position_id,
                notices,
                receipt_id,
                reporting_flow_id,
                reporting_flow_revision,
                treasury_line_id,
                corrects_sequence,
                posting_key,
            },
            lines,
        },
    })
}

/// What the chain check needs from recorded bytes without decoding them: the sequence they
/// name, and whether their lines are at least two, non-zero and sum to zero. A single pass with
/// no allocation, for verifying millions of entries.
pub fn check_canonical(bytes: &[u8]) -> Result<(i64, Result<(), super::EntryError>), DecodeError> {
    let mut r = Reader { bytes, offset: 0 };
    let header_fields = match r.field()? {
        v if v == ENCODING_VERSION.as_bytes() => 12,
        v if v == ENCODING_VERSION_V2.as_bytes() => 14,
        _ => return Err(r.error("unknown encoding version")),
    };
    let sequence: i64 = r.number()?;
    // id, time, event type, creditor, kind, description, position, receipt, flow, treasury
    // line, corrected sequence, document hash; in v2 also flow revision and posting key.
    for _ in 0..header_fields {
        r.field()?;
    }
    let notices: usize = r.number()?;
    for _ in 0..notices.saturating_mul(2) {
        r.field()?;
    }
    let lines: usize = r.number()?;
    let mut sum: i128 = 0;
    let mut zero = false;
    for _ in 0..lines {
        r.field()?;
        let amount: i64 = r.number()?;
        zero |= amount == 0;
        sum += i128::from(amount);
    }
    if r.offset != bytes.len() {
        return Err(r.error("trailing bytes"));
    }
    let verdict = if lines < 2 {
        Err(super::EntryError::TooFewLines)
    } else if zero {
        Err(super::EntryError::ZeroLine)
    } else if sum != 0 {
        Err(super::EntryError::Unbalanced(
            i64::try_from(sum).unwrap_or(i64::MAX),
        ))
    } else {
        Ok(())
    };
    Ok((sequence, verdict))
}

impl ChainedEntry {
    /// Chains `draft` after the entry whose hash is `previous_hash`, and returns the canonical
    /// bytes that were hashed, which the store keeps beside the entry.
    pub fn chain_with_body(
        sequence: i64,
        id: Uuid,
        recorded_at: OffsetDateTime,
        source_document_sha256: Option<[u8; 32]>,
        draft: EntryDraft,
        previous_hash: [u8; 32],
    ) -> (Self, Vec<u8>) {
        assert!(sequence >= 1, "ledger sequences start at 1");
        let canonical = canonical_encoding(
            sequence,
            id,
            recorded_at,
            source_document_sha256.as_ref(),
            &draft,
        );
        let hash = entry_hash(&previous_hash, &canonical);
        let entry = Self {
            sequence,
            id,
            recorded_at,
            source_document_sha256,
            draft,
            previous_hash,
            hash,
        };
        (entry, canonical)
    }

    /// Chains `draft` after the entry whose hash is `previous_hash`.
    pub fn chain(
        sequence: i64,
        id: Uuid,
        recorded_at: OffsetDateTime,
        source_document_sha256: Option<[u8; 32]>,
        draft: EntryDraft,
        previous_hash: [u8; 32],
    ) -> Self {
        assert!(sequence >= 1, "ledger sequences start at 1");
        let canonical = canonical_encoding(
            sequence,
            id,
            recorded_at,
            source_document_sha256.as_ref(),
            &draft,
        );
        let hash = entry_hash(&previous_hash, &canonical);
        Self {
            sequence,
            id,
            recorded_at,
            source_document_sha256,
            draft,
            previous_hash,
            hash,
        }
    }

    /// The hash this entry's content gives after `previous_hash`.
    pub fn recompute(&self, previous_hash: &[u8; 32]) -> [u8; 32] {
        let canonical = canonical_encoding(
            self.sequence,
            self.id,
            self.recorded_at,
            self.source_document_sha256.as_ref(),
            &self.draft,
        );
        entry_hash(previous_hash, &canonical)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fiscal_code::OrganizationFiscalCode;
    use crate::ledger::{Account, Cause, EventType, Line};
    use time::macros::datetime;

    fn draft(amount: i64) -> EntryDraft {
        let milan = OrganizationFiscalCode::parse("01199250158").unwrap();
        EntryDraft {
            event_type: EventType::Cashed,
            creditor: milan.clone(),
            kind: None,
            description: "cashed".to_owned(),
            cause: Cause {
                treasury_line_id: Some("T1".to_owned()),
                ..Cause::default()
            },
            lines: vec![
                Line {
                    account: Account::treasury(&milan),
                    amount_cents: amount,
                },
                Line {
                    account: Account::in_transit(&milan),
                    amount_cents: -amount,
                },
            ],
        }
    }

    #[test]
    fn the_encoding_is_the_documented_one() {
        let id = Uuid::from_u128(1);
        let encoded = canonical_encoding(7, id, datetime!(2026-11-24 10:00 UTC), None, &draft(500));
        let text = String::from_utf8(encoded).unwrap();
        let expected = "23:incasso-ledger-entry-v1\n1:7\n36:00000000-0000-0000-0000-000000000001\n\
                        16:1795514400000000\n6:cashed\n11:01199250158\n0:\n6:cashed\n0:\n0:\n0:\n2:T1\n0:\n0:\n\
                        1:0\n1:2\n20:treasury:01199250158\n3:500\n22:in_transit:01199250158\n4:-500\n";
        assert_eq!(text, expected);
    }

    #[test]
    fn entries_with_a_flow_revision_or_posting_key_use_v2_and_others_stay_v1() {
        let id = Uuid::from_u128(1);
        let t = datetime!(2026-11-24 10:00 UTC);
        // An entry chained before v2 existed: its bytes, and so its hash, are unchanged.
        let old = canonical_encoding(7, id, t, None, &draft(500));
        assert!(old.starts_with(b"23:incasso-ledger-entry-v1\n"));
        let chained = ChainedEntry::chain(7, id, t, None, draft(500), GENESIS_HASH);
        assert_eq!(chained.hash, entry_hash(&GENESIS_HASH, &old));
        let mut new = draft(500);
        new.cause.reporting_flow_id = Some("2026-11-25BCITITMM-0001".to_owned());
        new.cause.reporting_flow_revision = Some(2);
        new.cause.posting_key = Some("cashed:T1".to_owned());
        let encoded = canonical_encoding(7, id, t, None, &new);
        let text = String::from_utf8(encoded.clone()).unwrap();
        let expected = "23:incasso-ledger-entry-v2\n1:7\n36:00000000-0000-0000-0000-000000000001\n\
                        16:1795514400000000\n6:cashed\n11:01199250158\n0:\n6:cashed\n0:\n0:\n\
                        23:2026-11-25BCITITMM-0001\n2:T1\n0:\n0:\n1:2\n9:cashed:T1\n\
                        1:0\n1:2\n20:treasury:01199250158\n3:500\n22:in_transit:01199250158\n4:-500\n";
        assert_eq!(text, expected);
        assert_eq!(decode_canonical(&encoded).unwrap().draft, new);
        assert_eq!(check_canonical(&encoded), Ok((7, Ok(()))));
        let only_key = Cause {
            reporting_flow_revision: None,
            ..new.cause.clone()
        };
        let mut keyed = new.clone();
        keyed.cause = only_key;
        let encoded = canonical_encoding(7, id, t, None, &keyed);
        assert_eq!(decode_canonical(&encoded).unwrap().draft, keyed);
        // A v2 tag over v1 content is not something the encoder writes.
        let mut forged = b"23:incasso-ledger-entry-v2\n".to_vec();
        forged.extend_from_slice(&old[27..]);
        assert!(decode_canonical(&forged).is_err());
    }

    #[test]
    fn decoding_inverts_the_encoding() {
        let t = datetime!(2026-11-24 10:00:00.123456 UTC);
        let mut entry = draft(500);
        entry.kind = Some(crate::debt_position::DebtKind::Tari);
        entry.cause.notices = vec![(
            "312000000001234587".to_owned(),
            "12000000001234587".to_owned(),
        )];
        entry.cause.debt_position_id = Some(Uuid::from_u128(9));
        entry.cause.corrects_sequence = Some(3);
        entry.description = "with: colons\nand newlines 1:x".to_owned();
        let encoded = canonical_encoding(7, Uuid::from_u128(1), t, Some(&[0xab; 32]), &entry);
        let decoded = decode_canonical(&encoded).unwrap();
        assert_eq!(decoded.draft, entry);
        assert_eq!(decoded.sequence, 7);
        assert_eq!(decoded.recorded_at, t);
        assert_eq!(decoded.source_document_sha256, Some([0xab; 32]));
        for cut in [0, 10, encoded.len() - 1] {
            assert!(decode_canonical(&encoded[..cut]).is_err());
        }
        let mut longer = encoded.clone();
        longer.push(b'x');
        assert!(decode_canonical(&longer).is_err());
        assert_eq!(check_canonical(&encoded), Ok((7, Ok(()))));
        assert!(check_canonical(&longer).is_err());
        let mut unbalanced = entry.clone();
        unbalanced.lines[0].amount_cents = 501;
        let encoded = canonical_encoding(7, Uuid::from_u128(1), t, None, &unbalanced);
        assert_eq!(
            check_canonical(&encoded),
            Ok((7, Err(crate::ledger::EntryError::Unbalanced(1))))
        );
    }

    #[test]
    fn field_lengths_must_be_decimal_digits_before_a_colon() {
        let error = |bytes: &[u8]| Reader { bytes, offset: 0 }.field().unwrap_err().what;
        assert_eq!(error(b"abc"), "no length");
        assert_eq!(error(b"3"), "no length");
        assert_eq!(error(b":abc\n"), "bad length");
        assert_eq!(error(b"1x:a\n"), "bad length");
        assert_eq!(error(b"-1:a\n"), "bad length");
        assert_eq!(error(b"99999999999999999999999:a\n"), "bad length");
        assert_eq!(error(b"4:abc\n"), "truncated field");
        assert_eq!(error(b"2:abc\n"), "truncated field");
        let mut reader = Reader {
            bytes: b"3:a:b\n0:\n",
            offset: 0,
        };
        assert_eq!(reader.field(), Ok(&b"a:b"[..]));
        assert_eq!(reader.field(), Ok(&b""[..]));
        assert_eq!(reader.offset, 9);
    }

    proptest::proptest! {
        /// The fast check agrees with the full decoder on any bytes: where the decoder reads
        /// an entry the check reads the same sequence, and neither panics.
        #[test]
        fn the_fast_check_agrees_with_the_decoder(
            amount in -1_000_000i64..1_000_000,
            cut in 0usize..400,
            flip in 0usize..400,
            byte in proptest::prelude::any::<u8>(),
        ) {
            let t = datetime!(2026-11-24 10:00 UTC);
            let mut bytes = canonical_encoding(9, Uuid::from_u128(1), t, None, &draft(amount));
            if let Some(b) = bytes.get_mut(flip) {
                *b = byte;
            }
            bytes.truncate(cut.max(1).min(bytes.len()));
            let checked = check_canonical(&bytes);
            if let Ok(decoded) = decode_canonical(&bytes) {
                let (sequence, _) = checked.expect("decodable bytes pass the fast check");
                proptest::prop_assert_eq!(sequence, decoded.sequence);
            }
        }
    }

    #[test]
    fn a_changed_entry_changes_its_hash_and_the_next() {
        let t = datetime!(2026-11-24 10:00 UTC);
        let first = ChainedEntry::chain(1, Uuid::from_u128(1), t, None, draft(500), GENESIS_HASH);
        let second = ChainedEntry::chain(2, Uuid::from_u128(2), t, None, draft(700), first.hash);
        assert_eq!(first.recompute(&GENESIS_HASH), first.hash);
        let mut tampered = first.clone();
        tampered.draft.lines[0].amount_cents = 501;
        tampered.draft.lines[1].amount_cents = -501;
        assert_ne!(tampered.recompute(&GENESIS_HASH), first.hash);
        assert_ne!(
            second.recompute(&tampered.recompute(&GENESIS_HASH)),
            second.hash
        );
    }
}
