//! Plain keys: the transfer keys whose label their flow alone decides. A key paid once, with
//! one receipt, reported by one line of one flow with the receipt's amount, and named by no
//! treasury credit, is `RT_NO_IUF` until its flow comes and then whatever its flow's treasury
//! state makes of a matching line (`RT_IUF`, `RT_IUF_TES`, `IUF_NO_TES`, `IUF_TES_DIV_IMP`).
//! Nearly every key of an ordinary day is plain, so a store that knows which keys are plain
//! could read their labels from their receipt and their flow instead of writing each key's
//! label when its flow is imported (docs/reconciliation.md, "Scaling the day", item 8). These
//! rules are the ground such a store would stand on (none uses them yet); a property test
//! checks them against [`super::classify_all`] over random days.

use std::collections::BTreeSet;

use super::evidence::Evidence;
use super::key::{FlowId, TransferKey};
use super::label::{Assessment, Label};

pub use super::restate::compose_plain;

/// The assessment of a key with a receipt and nothing else: no line, no credit naming its
/// IUV, no other payment of its IUV and transfer index.
pub fn receipt_only() -> Assessment {
    Assessment {
        label: Some(Label::RtNoIuf),
        labels: BTreeSet::from([Label::RtNoIuf]),
        treasury_state: None,
        flow_ids: BTreeSet::new(),
        credit_ids: BTreeSet::new(),
        iuvs: BTreeSet::new(),
        suggestions: Vec::new(),
    }
}

/// What a plain key's evidence is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlainKey<'e> {
    /// Its receipt alone: labelled [`receipt_only`].
    ReceiptOnly,
    /// Its receipt and one line of its amount in the latest revision of this flow: labelled
    /// [`compose_plain`] with the flow's assessment.
    ReportedBy(&'e FlowId),
}

/// Whether `key` is plain in `evidence`, and how: it has a receipt, no other receipt or line
/// names its IUV and transfer index, no credit names its IUV, and at most one line reports it,
/// with the receipt's amount. `None` when anything else bears on the key: its label is then
/// its whole evidence's.
pub fn plain<'e>(evidence: &'e Evidence, key: &TransferKey) -> Option<PlainKey<'e>> {
    let receipt = evidence.receipt(key)?;
    if evidence.receipt_ids_of(&key.iuv, key.transfer_index).len() != 1 {
        return None;
    }
    if evidence
        .credits_by_iuv
        .get(&key.iuv)
        .is_some_and(|credits| !credits.is_empty())
    {
        return None;
    }
    match evidence.lines_of(key).as_slice() {
        [] => Some(PlainKey::ReceiptOnly),
        [(flow, line)] if line.amount_cents == receipt.amount_cents => {
            Some(PlainKey::ReportedBy(&flow.flow_id))
        }
        _ => None,
    }
}
