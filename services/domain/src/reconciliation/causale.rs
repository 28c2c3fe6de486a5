//! Reading the pagoPA references out of a treasury credit's causale (contract §2).
//!
//! Banks rewrite the PSPs' `/PUR/LGPE-RIVERSAMENTO/URI/<IUF>` in many ways: spaces inside the
//! marker, a space instead of a slash, a `/TXT/<n>/` progressive, the marker buried in a long
//! booking text, several markers in one credit, a date split by a space. Each of those is
//! recognised and repaired exactly as the contract says, and nothing more: a truncated
//! identifier stays truncated, because a guessed identifier would decide a label on a guess
//! (the classifier may *suggest* candidates instead).

use std::sync::LazyLock;

use regex::Regex;
use serde::{Deserialize, Serialize};

use crate::notice_number::Iuv;

/// What a causale references.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum CausaleReferences {
    /// One or more reporting flows (IUFs), as written (possibly truncated), in causale order,
    /// duplicates removed.
    Flows(Vec<String>),
    /// No IUF marker, but `/RFB/` or `/RFS/` markers: single payments by IUV, in causale
    /// order, duplicates removed. Empty when no marker is followed by a readable IUV: the
    /// credit still carries a pagoPA marker, of an IUV that cannot be known (contract §5).
    Iuvs(Vec<Iuv>),
    /// No pagoPA reference.
    None,
}

impl CausaleReferences {
    /// True when the causale carries any pagoPA marker.
    pub fn has_marker(&self) -> bool {
        !matches!(self, Self::None)
    }
}

/// A pattern of this module, written here and covered by its tests: it always compiles.
fn pattern(text: &str) -> Regex {
    #[allow(clippy::expect_used)]
    Regex::new(text).expect("the causale patterns compile")
}

static IUF_MARKER: LazyLock<Regex> =
    LazyLock::new(|| pattern(r"L ?GPE ?- ?RIVERSAMENTO[/ ](?:TXT/[0-9]/)?URI[/ ]([A-Za-z0-9_-]+)"));

static IUV_MARKER: LazyLock<Regex> = LazyLock::new(|| pattern(r"/RF([BS])/"));

static IUV_TOKEN: LazyLock<Regex> = LazyLock::new(|| pattern(r"^[A-Za-z0-9]+"));

/// An ISO 11649 creditor reference as printed, in groups of four (`RF18 5390 0754 7034`).
static GROUPED_RF: LazyLock<Regex> =
    LazyLock::new(|| pattern(r"^RF[0-9]{2}(?: [A-Za-z0-9]{4})*(?: [A-Za-z0-9]{1,4})?$"));

/// An ISO 11649 reference is at most 25 characters.
const RF_MAX_LEN: usize = 25;

static SPLIT_DATE: LazyLock<Regex> = LazyLock::new(|| pattern(r"^[0-9]{4}-[0-9]{2}-[0-9]$"));

static WHOLE_DATE: LazyLock<Regex> = LazyLock::new(|| pattern(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"));

static NEXT_TOKEN: LazyLock<Regex> = LazyLock::new(|| pattern(r"^ +([A-Za-z0-9_-]+)"));

/// Parses a causale (case-sensitive), contract §2.
pub fn parse_causale(causale: &str) -> CausaleReferences {
    let accrediti_vari = causale.starts_with("ACCREDITI VARI");
    let mut flows: Vec<String> = Vec::new();
    for captures in IUF_MARKER.captures_iter(causale) {
        let Some(identifier) = captures.get(1) else {
            continue;
        };
        let mut text = identifier.as_str().to_owned();
        let split = SPLIT_DATE.is_match(&text) || (accrediti_vari && WHOLE_DATE.is_match(&text));
        if split
            && let Some(next) = NEXT_TOKEN.captures(&causale[identifier.end()..])
            && let Some(token) = next.get(1)
        {
            text.push_str(token.as_str());
        }
        if !flows.contains(&text) {
            flows.push(text);
        }
    }
    if !flows.is_empty() {
        return CausaleReferences::Flows(flows);
    }
    let mut iuvs: Vec<Iuv> = Vec::new();
    let mut marked = false;
    for captures in IUV_MARKER.captures_iter(causale) {
        let (Some(marker), Some(scheme)) = (captures.get(0), captures.get(1)) else {
            continue;
        };
        marked = true;
        if let Some(iuv) = iuv_after(&causale[marker.end()..], scheme.as_str() == "S")
            && !iuvs.contains(&iuv)
        {
            iuvs.push(iuv);
        }
    }
    if marked {
        CausaleReferences::Iuvs(iuvs)
    } else {
        CausaleReferences::None
    }
}

/// The IUV written right after an `/RFB/` (or, `rfs`, an `/RFS/`) marker, when one is. An
/// `/RFS/` reference is an ISO 11649 `RF` reference, printed in groups of four up to the
/// next `/` (pagopa-spec §9.7): its spaces are dropped. Anything else is one token of letters
/// and digits; one that is no IUV (too long, say) reads as none.
fn iuv_after(rest: &str, rfs: bool) -> Option<Iuv> {
    if rfs {
        let segment = rest.split('/').next().unwrap_or_default().trim_end();
        if segment.contains(' ') && GROUPED_RF.is_match(segment) {
            let compact: String = segment.chars().filter(|c| *c != ' ').collect();
            if compact.len() <= RF_MAX_LEN {
                return Iuv::parse(&compact).ok();
            }
        }
    }
    IUV_TOKEN
        .find(rest)
        .and_then(|token| Iuv::parse(token.as_str()).ok())
}

/// The ways the contract lists of writing the IUF marker, for tests and generators:
/// `(marker, separator before URI, separator after URI)`.
pub const MARKER_SPELLINGS: [&str; 5] = [
    "LGPE-RIVERSAMENTO",
    "LGPE- RIVERSAMENTO",
    "LGPE -RIVERSAMENTO",
    "LGPE - RIVERSAMENTO",
    "L GPE-RIVERSAMENTO",
];

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn flows(list: &[&str]) -> CausaleReferences {
        CausaleReferences::Flows(list.iter().map(|s| (*s).to_owned()).collect())
    }

    #[test]
    fn the_contract_examples() {
        let iuf = "2026-03-11ABI03069-0001";
        assert_eq!(
            parse_causale(&format!("/PUR/LGPE-RIVERSAMENTO/URI/{iuf}")),
            flows(&[iuf])
        );
        assert_eq!(
            parse_causale(&format!("/PUR/LGPE-RIVERSAMENTO/TXT/1/URI/{iuf}")),
            flows(&[iuf])
        );
        for marker in MARKER_SPELLINGS {
            assert_eq!(
                parse_causale(&format!("/PUR/{marker}/URI/{iuf}")),
                flows(&[iuf]),
                "{marker}"
            );
            assert_eq!(
                parse_causale(&format!("/PUR/{marker} URI {iuf} XYZ")),
                flows(&[iuf]),
                "{marker} with spaces"
            );
        }
        assert_eq!(
            parse_causale(&format!(
                "BONIFICO SEPA DA PSP SPA :RI3:/PUR/LGPE-RIVERSAMENTO/URI/{iuf} :SEC:XYZ"
            )),
            flows(&[iuf])
        );
        // A date split by a space is joined; a whole date only in ACCREDITI VARI texts.
        assert_eq!(
            parse_causale("/PUR/LGPE-RIVERSAMENTO/URI/2026-03-1 1ABI03069-0001 TAIL"),
            flows(&[iuf])
        );
        assert_eq!(
            parse_causale("ACCREDITI VARI /PUR/LGPE-RIVERSAMENTO/URI/2026-03-11 ABI03069-0001"),
            flows(&[iuf])
        );
        assert_eq!(
            parse_causale("BONIFICO /PUR/LGPE-RIVERSAMENTO/URI/2026-03-11 ABI03069-0001"),
            flows(&["2026-03-11"])
        );
        // Truncated stays truncated.
        assert_eq!(parse_causale("/PUR/LGPE-RIVERSAMENTO/URI/2"), flows(&["2"]));
        // Several markers, one transfer paying several flows.
        assert_eq!(
            parse_causale("/PUR/LGPE-RIVERSAMENTO/URI/AAA /PUR/LGPE-RIVERSAMENTO/URI/BBB"),
            flows(&["AAA", "BBB"])
        );
        // IUV markers only without an IUF marker.
        let iuv = Iuv::parse("02000000000000012").unwrap();
        assert_eq!(
            parse_causale("/RFB/02000000000000012/125.50/TXT/TARI 2026 rata 1"),
            CausaleReferences::Iuvs(vec![iuv.clone()])
        );
        assert_eq!(
            parse_causale("/RFS/02000000000000012/125.50"),
            CausaleReferences::Iuvs(vec![iuv])
        );
        assert_eq!(
            parse_causale("/RFB/1 /PUR/LGPE-RIVERSAMENTO/URI/AAA"),
            flows(&["AAA"])
        );
        // An RF reference printed in groups of four is one IUV.
        assert_eq!(
            parse_causale("/RFS/RF18 5390 0754 7034/12.50/TXT/RETTA"),
            CausaleReferences::Iuvs(vec![Iuv::parse("RF18539007547034").unwrap()])
        );
        assert_eq!(
            parse_causale("/RFS/RF18 5390 0754 7034"),
            CausaleReferences::Iuvs(vec![Iuv::parse("RF18539007547034").unwrap()])
        );
        assert_eq!(
            parse_causale("/RFS/RF18539007547034/12.50"),
            CausaleReferences::Iuvs(vec![Iuv::parse("RF18539007547034").unwrap()])
        );
        // Too long for an RF reference: only the first group is read.
        assert_eq!(
            parse_causale("/RFS/RF18 5390 0754 7034 TARI 2026 RATA"),
            CausaleReferences::Iuvs(vec![Iuv::parse("RF18").unwrap()])
        );
        // A marker without a readable IUV is still a pagoPA marker (contract §5:
        // TES_NO_IUF_OR_IUV), never a causale without one.
        for unreadable in [
            "/RFB/ 02000000000000012/10.00",
            "/RFB/",
            &format!("/RFB/{}/10.00", "1".repeat(38)),
        ] {
            let references = parse_causale(unreadable);
            assert_eq!(
                references,
                CausaleReferences::Iuvs(Vec::new()),
                "{unreadable}"
            );
            assert!(references.has_marker(), "{unreadable}");
        }
        // A split date is joined with the next token however many spaces split it.
        assert_eq!(
            parse_causale("/PUR/LGPE-RIVERSAMENTO/URI/2026-03-1   1ABI03069-0001 TAIL"),
            flows(&[iuf])
        );
        // Case-sensitive, and plain texts carry nothing.
        assert_eq!(
            parse_causale("/pur/lgpe-riversamento/uri/AAA"),
            CausaleReferences::None
        );
        assert_eq!(parse_causale("STIPENDIO NOVEMBRE"), CausaleReferences::None);
    }

    fn iuf() -> impl Strategy<Value = String> {
        prop_oneof![
            // The convention: <regulation date><PSP id>-<unique>.
            (
                2020u32..2030,
                1u32..13,
                1u32..29,
                "[A-Z0-9]{5,11}",
                "[A-Za-z0-9_]{1,10}"
            )
                .prop_map(|(y, m, d, psp, uid)| format!("{y}-{m:02}-{d:02}{psp}-{uid}")),
            "[A-Za-z][A-Za-z0-9_-]{0,34}",
        ]
    }

    /// A causale writing `ids` in one of the listed variants.
    fn render(
        ids: &[String],
        spelling: usize,
        slash: bool,
        txt: Option<u8>,
        split: bool,
        prefix: &str,
        suffix: &str,
    ) -> String {
        let mut out = String::from(prefix);
        for id in ids {
            let marker = MARKER_SPELLINGS[spelling % MARKER_SPELLINGS.len()];
            let sep = if slash { "/" } else { " " };
            let txt = txt.map(|n| format!("TXT/{n}/")).unwrap_or_default();
            let id = if split
                && id.len() > 10
                && SPLIT_DATE.is_match(&id[..9])
                && id.as_bytes()[9].is_ascii_digit()
            {
                format!("{} {}", &id[..9], &id[9..])
            } else {
                id.clone()
            };
            out.push_str(&format!(" :RI3:/PUR/{marker}{sep}{txt}URI{sep}{id} :SEC:"));
        }
        out.push_str(suffix);
        out
    }

    proptest! {
        #[test]
        fn references_survive_every_variant(
            ids in prop::collection::vec(iuf(), 1..4),
            spelling in 0usize..5,
            slash: bool,
            txt in prop::option::of(0u8..10),
            split: bool,
            prefix in "[A-Z :]{0,40}",
            suffix in "( [A-Za-z0-9 ]{0,40})?",
        ) {
            let causale = render(&ids, spelling, slash, txt, split, &prefix, &suffix);
            let mut expected: Vec<String> = Vec::new();
            for id in &ids {
                if !expected.contains(id) {
                    expected.push(id.clone());
                }
            }
            prop_assert_eq!(parse_causale(&causale), CausaleReferences::Flows(expected), "{}", causale);
        }

        #[test]
        fn iuv_markers_are_read(iuv in "[0-9]{17}", amount in 1u32..100000, text in "[A-Za-z0-9 ]{0,30}") {
            let causale = format!("/RFB/{iuv}/{}.{:02}/TXT/{text}", amount / 100, amount % 100);
            prop_assert_eq!(parse_causale(&causale), CausaleReferences::Iuvs(vec![Iuv::parse(&iuv).unwrap()]));
        }

        #[test]
        fn rf_references_read_back_however_they_are_grouped(
            check in 2u8..99,
            body in "[A-Z0-9]{1,21}",
            grouped: bool,
            amount in 1u32..100000,
        ) {
            let reference = format!("RF{check:02}{body}");
            let printed = if grouped {
                let chars: Vec<char> = reference.chars().collect();
                chars.chunks(4).map(|c| c.iter().collect::<String>()).collect::<Vec<_>>().join(" ")
            } else {
                reference.clone()
            };
            let causale = format!("/RFS/{printed}/{}.{:02}/TXT/RETTA", amount / 100, amount % 100);
            prop_assert_eq!(
                parse_causale(&causale),
                CausaleReferences::Iuvs(vec![Iuv::parse(&reference).unwrap()]),
                "{}", causale
            );
        }

        #[test]
        fn text_without_markers_references_nothing(text in "[A-Za-z0-9 .,:]{0,200}") {
            prop_assume!(!text.contains("RIVERSAMENTO"));
            prop_assert_eq!(parse_causale(&text), CausaleReferences::None);
        }
    }
}
