//! Settlement postings: the `reported` and `cashed` entries that reconciliation evidence asks
//! of the books, once a PSP's reporting flow (FdR) declares a receipt's money transferred and
//! once a treasury credit brings a flow's money in.
//!
//! Every posting has a *posting key* naming what it settles: `reported:IUV/n/IUR` for one
//! transfer key (IUV, idTransfer, receiptId/IUR), `cashed:CREDIT` for one treasury credit.
//! From the evidence held, [`settle`] computes what the entries of each key should sum to
//! (the *target*), compares it with what the entries already posted under that key sum to,
//! and drafts one entry for the difference. So posting is idempotent (the same evidence twice
//! drafts nothing), independent of the order and grouping in which evidence arrived (the
//! target depends only on the evidence), and a later flow revision or credit that changes a
//! target posts only the change, naming the evidence that changed it. This is the same
//! "post the difference" rule positions are assessed by ([`super::rules::reassess`]).
//!
//! The targets, for creditor C (amounts in cents, debit positive):
//!
//! * **reported**, for a transfer key K reported by lines of the latest revision of one or
//!   more flows, their amounts summing to L: `in_transit:C` +L. If C's books hold the receipt
//!   of K (its booking put the money in `psp_clearing:C:PSP`), that clearing account is
//!   credited with the receipt transfer's amount T and the divergence L − T, if any, goes to
//!   `suspense:C`; otherwise (no receipt, as for an `IUV_NO_RT` key, or a receipt the books
//!   did not post) all of L goes to `suspense:C`. A key no latest revision reports any more
//!   has an empty target: its earlier posting is reversed.
//! * **cashed**, for a treasury credit X of amount c attributed to flows (contract §3):
//!   `treasury:C` +c, `in_transit:C` −c. The component's difference, its credits' sum minus
//!   what its flows' latest lines put in transit, is carried by the component's first credit
//!   (smallest id): `in_transit:C` +d, `suspense:C` −d. So a cashed component whose lines add
//!   up to its credits leaves nothing in transit and nothing in suspense, and a divergent one
//!   (contract `IUF_TES_DIV_IMP`) leaves exactly its difference in suspense, with its cause in
//!   the entry's description, until further evidence moves it.
//!
//! * **cashed**, for an `/RFB/`·`/RFS/` credit X of amount c that pays one receipt transfer
//!   T of its IUVs directly (contract `RT_TES`: no latest line reports T's key, and T's
//!   amount is c): `treasury:C` +c, and the `psp_clearing` account T's booking debited −c
//!   (`suspense:C` −c when the books did not post T). No flow is involved, so nothing passes
//!   through `in_transit`. Each transfer is cashed by one credit at most (the smallest id
//!   naming it), and a credit whose transfer a flow line reports later, or that matches no
//!   transfer any more, has its posting reversed: the money then travels by the flow.
//!
//! A store journals the `reported` differences of a flow revision's keys as one entry
//! ([`merge_reported`]) and keeps what each key has posted as a position of its own
//! ([`apply_to_positions`]), which is what it gives back as `posted`.
//!
//! Other credits attributed to no flow (no pagoPA marker, an unknown IUF, an IUV marker
//! matching no receipt) are not posted: the treasury account holds much that is not pagoPA
//! money, and those credits keep their labels for the finance office to look at.

use std::collections::{BTreeMap, BTreeSet};

use super::rules::{Amounts, add, lines};
use super::{Account, Cause, EntryDraft, EventType, Line};
use crate::fiscal_code::OrganizationFiscalCode;
use crate::notice_number::Iuv;
use crate::reconciliation::classify::{Component, component_of_credit};
use crate::reconciliation::{CausaleReferences, CreditId, Evidence, FlowId, TransferKey};

/// The longest description an entry may carry.
const DESCRIPTION_MAX_CHARS: usize = 500;

/// The flows named in a description before "and N more".
const FLOWS_NAMED: usize = 4;

/// The notices a `cashed` entry, or a flow's merged `reported` entry, names at most: a flow's
/// lines can be many thousands (and `ledger_entry_notice` numbers an entry's notices with a
/// `SMALLINT`).
const NOTICES_MAX: usize = 10_000;

/// How one receipt is booked in the creditor's books.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BookedReceipt {
    /// The notice it paid (NAV), as the receipt sent it.
    pub notice_number: String,
    /// The `psp_clearing` account its booking debited in the creditor's books; `None` when its
    /// booking posted nothing there.
    pub clearing: Option<Account>,
}

/// The receipts of the creditor's transfer keys, by (IUV, receiptId).
pub type BookedReceipts = BTreeMap<(Iuv, String), BookedReceipt>;

/// What the entries of one posting key already say.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Posted {
    /// Their lines, summed per account.
    pub amounts: Amounts,
    /// The cause of the last of them, named again by an entry that reverses them.
    pub cause: Cause,
}

/// The posting key of a transfer key's `reported` entries.
pub fn reported_key(key: &TransferKey) -> String {
    format!(
        "reported:{}/{}/{}",
        key.iuv.as_str(),
        key.transfer_index.get(),
        key.receipt_id
    )
}

/// The posting key of a treasury credit's `cashed` entries.
pub fn cashed_key(credit: &CreditId) -> String {
    format!("cashed:{}", credit.as_str())
}

/// `target − posted`, without zero lines.
fn difference(target: &Amounts, posted: &Amounts) -> Vec<Line> {
    let mut delta = target.clone();
    for (account, cents) in posted {
        add(&mut delta, account.clone(), -cents);
    }
    lines(delta)
}

fn bounded(mut text: String) -> String {
    if let Some((at, _)) = text.char_indices().nth(DESCRIPTION_MAX_CHARS) {
        text.truncate(at);
    }
    text
}

fn notice_of(key: &TransferKey, receipts: &BookedReceipts) -> (String, String) {
    let nav = receipts
        .get(&(key.iuv.clone(), key.receipt_id.clone()))
        .map(|r| r.notice_number.clone())
        .unwrap_or_default();
    (nav, key.iuv.as_str().to_owned())
}

/// The drafts that bring every posting key of `creditor` from `posted` to what `evidence`
/// asks: `reported` entries in transfer key order, then `cashed` entries in credit order.
/// Posting them and calling again with them added to `posted` drafts nothing.
pub fn settle(
    creditor: &OrganizationFiscalCode,
    evidence: &Evidence,
    receipts: &BookedReceipts,
    posted: &BTreeMap<String, Posted>,
) -> Vec<EntryDraft> {
    let mut drafts = settle_reported(creditor, evidence, receipts, posted);
    let credits: BTreeSet<CreditId> = evidence.credits().map(|c| c.credit.id.clone()).collect();
    drafts.extend(settle_cashed(
        creditor, evidence, receipts, posted, &credits,
    ));
    drafts.extend(settle_iuv_credits(
        creditor, evidence, receipts, posted, &credits,
    ));
    drafts
}

/// The `reported` half of [`settle`]: the entries of the transfer keys the evidence's latest
/// lines report, and the reversal of every `reported:` key of `posted` they no longer
/// report. A store that settles a part of the evidence at a time gives it the lines of a set
/// of IUVs (every revision's) and the postings of exactly those keys.
pub fn settle_reported(
    creditor: &OrganizationFiscalCode,
    evidence: &Evidence,
    receipts: &BookedReceipts,
    posted: &BTreeMap<String, Posted>,
) -> Vec<EntryDraft> {
    let mut drafts = Vec::new();
    let reported_keys: BTreeSet<&TransferKey> = evidence
        .latest_flows()
        .flat_map(|f| f.lines.iter().map(|l| &l.key))
        .collect();
    let mut seen = BTreeSet::new();
    for key in reported_keys {
        let posting_key = reported_key(key);
        let draft = reported(creditor, evidence, receipts, key, &posting_key, posted);
        drafts.extend(draft);
        seen.insert(posting_key);
    }
    let empty = Amounts::new();
    for (posting_key, before) in posted {
        if !posting_key.starts_with("reported:") || seen.contains(posting_key) {
            continue;
        }
        // No latest revision reports the key any more: what was posted for it is undone.
        let lines = difference(&empty, &before.amounts);
        if lines.len() >= 2 {
            let flow = before.cause.reporting_flow_id.clone().unwrap_or_default();
            let revision = FlowId::parse(&flow)
                .ok()
                .and_then(|id| evidence.latest_flow(&id))
                .map(|f| f.revision);
            drafts.push(EntryDraft {
                event_type: EventType::Reported,
                creditor: creditor.clone(),
                kind: None,
                description: bounded(format!(
                    "flow {flow} revision {} no longer reports this transfer: its earlier \
                     reported posting is reversed",
                    revision.unwrap_or_default()
                )),
                cause: Cause {
                    reporting_flow_revision: revision,
                    posting_key: Some(posting_key.clone()),
                    corrects_sequence: None,
                    ..before.cause.clone()
                },
                lines,
            });
        }
    }
    drafts
}

/// The `cashed` half of [`settle`], for the credits `only`: each needs the whole latest lines
/// of its component's flows in `evidence`.
pub fn settle_cashed(
    creditor: &OrganizationFiscalCode,
    evidence: &Evidence,
    receipts: &BookedReceipts,
    posted: &BTreeMap<String, Posted>,
    only: &BTreeSet<CreditId>,
) -> Vec<EntryDraft> {
    let mut drafts = Vec::new();
    let mut components: BTreeMap<CreditId, Component> = BTreeMap::new();
    for id in only {
        if evidence.credit(id).is_none() {
            continue;
        }
        let component = component_of_credit(evidence, id);
        if !component.flow_ids.is_empty() {
            components.insert(id.clone(), component);
        }
    }
    for (id, component) in &components {
        drafts.extend(cashed(creditor, evidence, receipts, id, component, posted));
    }
    drafts
}

/// The `cashed` entries of the `/RFB/`·`/RFS/` credits among `only`, in credit order: each
/// needs in `evidence` the receipts and the latest lines of every IUV it names, and every
/// other credit naming one of those IUVs must be in `only` too (a transfer is cashed by the
/// smallest credit id naming it). A store that settles a part of the evidence at a time gives
/// it such a group with the postings of exactly those credits.
pub fn settle_iuv_credits(
    creditor: &OrganizationFiscalCode,
    evidence: &Evidence,
    receipts: &BookedReceipts,
    posted: &BTreeMap<String, Posted>,
    only: &BTreeSet<CreditId>,
) -> Vec<EntryDraft> {
    let mut drafts = Vec::new();
    let mut taken: BTreeSet<&TransferKey> = BTreeSet::new();
    for id in only {
        let Some(held) = evidence.credit(id) else {
            continue;
        };
        let CausaleReferences::Iuvs(iuvs) = &held.references else {
            continue;
        };
        let amount_cents = held.credit.amount_cents;
        let cashes = iuvs
            .iter()
            .flat_map(|iuv| evidence.keys_of_iuv(iuv))
            .find(|key| {
                !taken.contains(key)
                    && evidence
                        .receipt(key)
                        .is_some_and(|r| r.amount_cents == amount_cents)
                    && evidence.lines_of(key).is_empty()
            });
        let posting_key = cashed_key(id);
        let before = posted.get(&posting_key);
        let mut target = Amounts::new();
        let (why, cause) = match cashes {
            Some(key) => {
                taken.insert(key);
                add(&mut target, Account::treasury(creditor), amount_cents);
                let booking = receipts.get(&(key.iuv.clone(), key.receipt_id.clone()));
                let mut why = format!(
                    "treasury credit {id}: {amount_cents} cents paying receipt {} of IUV {} \
                     directly (RT_TES), no flow reports it",
                    key.receipt_id,
                    key.iuv.as_str()
                );
                match booking.and_then(|b| b.clearing.as_ref()) {
                    Some(clearing) => add(&mut target, clearing.clone(), -amount_cents),
                    None => {
                        add(&mut target, Account::suspense(creditor), -amount_cents);
                        why.push_str("; its receipt was not booked in these books: to suspense");
                    }
                }
                let cause = Cause {
                    notices: vec![notice_of(key, receipts)],
                    receipt_id: Some(key.receipt_id.clone()),
                    treasury_line_id: Some(id.as_str().to_owned()),
                    posting_key: Some(posting_key.clone()),
                    ..Cause::default()
                };
                (why, cause)
            }
            None => {
                let why = format!(
                    "treasury credit {id} no longer pays a receipt directly (a flow reports \
                     it, or no receipt of its IUVs has its amount): its earlier cashed \
                     posting is reversed"
                );
                let cause = Cause {
                    treasury_line_id: Some(id.as_str().to_owned()),
                    posting_key: Some(posting_key.clone()),
                    corrects_sequence: None,
                    ..before.map(|p| p.cause.clone()).unwrap_or_default()
                };
                (why, cause)
            }
        };
        let delta = difference(&target, before.map_or(&Amounts::new(), |p| &p.amounts));
        if delta.is_empty() {
            continue;
        }
        drafts.push(EntryDraft {
            event_type: EventType::Cashed,
            creditor: creditor.clone(),
            kind: None,
            description: bounded(why),
            cause,
            lines: delta,
        });
    }
    drafts
}

fn reported(
    creditor: &OrganizationFiscalCode,
    evidence: &Evidence,
    receipts: &BookedReceipts,
    key: &TransferKey,
    posting_key: &str,
    posted: &BTreeMap<String, Posted>,
) -> Option<EntryDraft> {
    let lines = evidence.lines_of(key);
    let (flow, _) = lines.first()?;
    let line_cents: i64 = lines.iter().map(|(_, l)| l.amount_cents).sum();
    let mut target = Amounts::new();
    add(&mut target, Account::in_transit(creditor), line_cents);
    let receipt = evidence.receipt(key);
    let booking = receipts.get(&(key.iuv.clone(), key.receipt_id.clone()));
    let mut why = format!(
        "reported by {} in flow {} revision {}: {line_cents} cents",
        flow.psp_id, flow.flow_id, flow.revision
    );
    match (receipt, booking.and_then(|b| b.clearing.as_ref())) {
        (Some(receipt), Some(clearing)) => {
            add(&mut target, clearing.clone(), -receipt.amount_cents);
            let divergence = line_cents - receipt.amount_cents;
            if divergence != 0 {
                add(&mut target, Account::suspense(creditor), -divergence);
                why.push_str(&format!(
                    "; the receipt transferred {} cents: the difference, {divergence} cents, \
                     to suspense",
                    receipt.amount_cents
                ));
            }
        }
        (Some(_), None) => {
            add(&mut target, Account::suspense(creditor), -line_cents);
            why.push_str("; its receipt was not booked in these books: to suspense");
        }
        (None, _) => {
            add(&mut target, Account::suspense(creditor), -line_cents);
            why.push_str("; no receipt is held for it (IUV_NO_RT): to suspense");
        }
    }
    if lines.len() > 1 {
        why.push_str(&format!("; reported by {} lines", lines.len()));
    }
    let before = posted.get(posting_key);
    let delta = difference(&target, before.map_or(&Amounts::new(), |p| &p.amounts));
    if delta.is_empty() {
        return None;
    }
    if before.is_some_and(|p| !p.amounts.values().all(|c| *c == 0)) {
        why = format!("adjusts the earlier posting to what is now {why}");
    }
    Some(EntryDraft {
        event_type: EventType::Reported,
        creditor: creditor.clone(),
        kind: None,
        description: bounded(why),
        cause: Cause {
            notices: vec![notice_of(key, receipts)],
            receipt_id: Some(key.receipt_id.clone()),
            reporting_flow_id: Some(flow.flow_id.as_str().to_owned()),
            reporting_flow_revision: Some(flow.revision),
            posting_key: Some(posting_key.to_owned()),
            ..Cause::default()
        },
        lines: delta,
    })
}

fn cashed(
    creditor: &OrganizationFiscalCode,
    evidence: &Evidence,
    receipts: &BookedReceipts,
    id: &CreditId,
    component: &Component,
    posted: &BTreeMap<String, Posted>,
) -> Option<EntryDraft> {
    let credit = evidence.credit(id)?;
    let amount_cents = credit.credit.amount_cents;
    let mut target = Amounts::new();
    add(&mut target, Account::treasury(creditor), amount_cents);
    add(&mut target, Account::in_transit(creditor), -amount_cents);
    let flows: Vec<_> = component
        .flow_ids
        .iter()
        .filter_map(|f| evidence.latest_flow(f))
        .collect();
    let in_transit_cents: i64 = flows
        .iter()
        .flat_map(|f| f.lines.iter())
        .map(|l| l.amount_cents)
        .sum();
    let named: Vec<String> = flows
        .iter()
        .take(FLOWS_NAMED)
        .map(|f| format!("{} revision {}", f.flow_id, f.revision))
        .collect();
    let mut why = format!(
        "treasury credit {id}: {amount_cents} cents for flow {}",
        named.join(", ")
    );
    if flows.len() > FLOWS_NAMED {
        why.push_str(&format!(" and {} more", flows.len() - FLOWS_NAMED));
    }
    let divergence = component.credits_cents - in_transit_cents;
    let carries = component.credit_ids.first() == Some(id);
    if carries && divergence != 0 {
        add(&mut target, Account::in_transit(creditor), divergence);
        add(&mut target, Account::suspense(creditor), -divergence);
        let state = if component.is_cashed() {
            "cashed, but its flows' lines do not add up to their totals"
        } else {
            "divergent (IUF_TES_DIV_IMP)"
        };
        why.push_str(&format!(
            "; the component is {state}: credits {} cents, flows' totals {} cents, reported \
             lines {in_transit_cents} cents: the difference, {divergence} cents, to suspense",
            component.credits_cents, component.flows_cents
        ));
    }
    let posting_key = cashed_key(id);
    let before = posted.get(&posting_key);
    let delta = difference(&target, before.map_or(&Amounts::new(), |p| &p.amounts));
    if delta.is_empty() {
        return None;
    }
    if before.is_some_and(|p| !p.amounts.values().all(|c| *c == 0)) {
        why = format!("adjusts the earlier posting as the component changed: {why}");
    }
    let mut notices = BTreeSet::new();
    for flow in &flows {
        for line in &flow.lines {
            notices.insert(notice_of(&line.key, receipts));
        }
    }
    if notices.len() > NOTICES_MAX {
        why = format!(
            "{why}; names the first {NOTICES_MAX} of {} notices",
            notices.len()
        );
        notices = notices.into_iter().take(NOTICES_MAX).collect();
    }
    let first = flows.first()?;
    Some(EntryDraft {
        event_type: EventType::Cashed,
        creditor: creditor.clone(),
        kind: None,
        description: bounded(why),
        cause: Cause {
            notices: notices.into_iter().collect(),
            reporting_flow_id: Some(first.flow_id.as_str().to_owned()),
            reporting_flow_revision: Some(first.revision),
            treasury_line_id: Some(id.as_str().to_owned()),
            posting_key: Some(posting_key),
            ..Cause::default()
        },
        lines: delta,
    })
}

mod per_flow;
pub use per_flow::{apply_to_positions, merge_reported};

#[cfg(test)]
mod tests;
