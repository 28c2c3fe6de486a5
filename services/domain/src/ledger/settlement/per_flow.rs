//! `reported` postings journaled per flow. [`super::settle_reported`] works per transfer key:
//! what each key's posting should be, against what it is. Booking each key's difference as an
//! entry of its own cost a day of a million receipts a million entries, each with its lines,
//! notice and hash; a PSP's reporting flow is one transfer of money, and a bookkeeper journals
//! it as one. So a store keeps what each key has posted as a position of its own
//! ([`apply_to_positions`]: the per-key truth the next settlement reads), and appends the
//! keys' differences merged into one entry per flow revision ([`merge_reported`]): the same
//! amounts per account, the notices of every key it moved, the keys that went to suspense
//! named in its description. The ledger's balances are those of the per-key entries they
//! replace, and the positions of a creditor sum, per account, to its `reported` entries.

use std::collections::{BTreeMap, BTreeSet};

use super::super::rules::{Amounts, add, lines};
use super::super::{AccountType, Cause, EntryDraft, EventType};
use super::{DESCRIPTION_MAX_CHARS, NOTICES_MAX, Posted, bounded};

/// Brings `positions` (what each posting key has posted) to what they say once `drafts` are
/// posted: each draft's lines added to its key's amounts, and its cause become the key's.
/// Drafts without a posting key change nothing.
pub fn apply_to_positions(positions: &mut BTreeMap<String, Posted>, drafts: &[EntryDraft]) {
    for draft in drafts {
        let Some(posting_key) = &draft.cause.posting_key else {
            continue;
        };
        let posted = positions.entry(posting_key.clone()).or_default();
        for line in &draft.lines {
            add(&mut posted.amounts, line.account.clone(), line.amount_cents);
        }
        posted.amounts.retain(|_, cents| *cents != 0);
        posted.cause = draft.cause.clone();
    }
}

/// The flow revision a `reported` draft follows: what its entry is merged by.
type FlowRevision = (Option<String>, Option<u32>);

/// The `reported` drafts `drafts` merged into one entry per flow revision they name, in the
/// order of their flows: lines summed per account (an entry whose keys' differences cancel
/// out is not written: the positions carry the change), the notices of every key (at most
/// [`NOTICES_MAX`]), the receipt when every key is of one receipt, and no posting key (the
/// keys' positions are the per-key record). Drafts of other event types pass through.
pub fn merge_reported(drafts: Vec<EntryDraft>) -> Vec<EntryDraft> {
    let mut out = Vec::new();
    let mut groups: BTreeMap<FlowRevision, Vec<EntryDraft>> = BTreeMap::new();
    for draft in drafts {
        if draft.event_type == EventType::Reported {
            let flow = (
                draft.cause.reporting_flow_id.clone(),
                draft.cause.reporting_flow_revision,
            );
            groups.entry(flow).or_default().push(draft);
        } else {
            out.push(draft);
        }
    }
    out.extend(
        groups
            .into_iter()
            .filter_map(|(flow, drafts)| merged(flow, drafts)),
    );
    out
}

/// One flow revision's drafts as one entry; `None` when their lines cancel out.
fn merged((flow_id, revision): FlowRevision, drafts: Vec<EntryDraft>) -> Option<EntryDraft> {
    let first = drafts.first()?;
    let creditor = first.creditor.clone();
    let mut amounts = Amounts::new();
    // In the keys' order, each once.
    let mut notices: Vec<(String, String)> = Vec::new();
    let mut named = BTreeSet::new();
    let mut receipts = BTreeSet::new();
    let mut to_suspense = Vec::new();
    for draft in &drafts {
        for line in &draft.lines {
            add(&mut amounts, line.account.clone(), line.amount_cents);
        }
        for notice in &draft.cause.notices {
            if named.insert(notice) {
                notices.push(notice.clone());
            }
        }
        receipts.insert(draft.cause.receipt_id.clone());
        let suspense: i64 = draft
            .lines
            .iter()
            .filter(|l| l.account.account_type() == AccountType::Suspense)
            .map(|l| l.amount_cents)
            .sum();
        if suspense != 0 {
            to_suspense.push((draft, suspense));
        }
    }
    let lines = lines(amounts);
    if lines.is_empty() {
        return None;
    }
    let cents_of = |account_type: AccountType| -> i64 {
        lines
            .iter()
            .filter(|l| l.account.account_type() == account_type)
            .map(|l| l.amount_cents)
            .sum()
    };
    let flow = flow_id.clone().unwrap_or_default();
    let mut why = format!(
        "flow {flow} revision {}: {} transfer keys' reported postings: in transit {} cents, \
         PSP clearing {} cents, suspense {} cents",
        revision.unwrap_or_default(),
        drafts.len(),
        cents_of(AccountType::InTransit),
        cents_of(AccountType::PspClearing),
        cents_of(AccountType::Suspense),
    );
    // The keys the finance office must look at first: what went to (or left) suspense, and
    // why, in the per-key rule's words (without the flow, which the entry names), as many
    // as the description holds.
    let clauses: Vec<String> = to_suspense
        .iter()
        .map(|(draft, cents)| {
            let key = draft.cause.posting_key.as_deref().unwrap_or_default();
            let reason = draft
                .description
                .split_once("; ")
                .map_or(draft.description.as_str(), |(_, reason)| reason);
            format!(
                "; {} suspense {cents} cents: {reason}",
                key.trim_start_matches("reported:")
            )
        })
        .collect();
    for (named, clause) in clauses.iter().enumerate() {
        let rest = clauses.len() - named;
        let more = format!("; and {rest} more keys to or from suspense");
        let room = DESCRIPTION_MAX_CHARS.saturating_sub(why.chars().count());
        let last = rest == 1;
        if clause.chars().count() + if last { 0 } else { more.chars().count() } > room {
            why.push_str(&more);
            break;
        }
        why.push_str(clause);
    }
    if notices.len() > NOTICES_MAX {
        why = format!(
            "names the first {NOTICES_MAX} of {} notices; {why}",
            notices.len()
        );
        notices.truncate(NOTICES_MAX);
    }
    let receipt_id = match receipts.len() {
        1 => receipts.into_iter().next().flatten(),
        _ => None,
    };
    Some(EntryDraft {
        event_type: EventType::Reported,
        creditor,
        kind: None,
        description: bounded(why),
        cause: Cause {
            notices,
            receipt_id,
            reporting_flow_id: flow_id,
            reporting_flow_revision: revision,
            ..Cause::default()
        },
        lines,
    })
}
