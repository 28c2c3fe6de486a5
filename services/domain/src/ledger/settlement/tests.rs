//! The settlement rules on worked examples, and their properties: every draft balances in
//! integer cents, posting is idempotent, the books end the same whatever the order and
//! grouping of the evidence, and suspense holds exactly the differences.

use std::collections::BTreeMap;

use proptest::prelude::*;
use time::Duration;
use time::macros::{date, datetime};

use super::*;
use crate::ledger::AccountType;
use crate::reconciliation::{
    CausaleReferences, EvidenceItem, FlowLine, OutcomeCode, ReceiptTransfer, Reconciler,
    ReportingFlow, TransferIndex, TreasuryCredit,
};

fn milan() -> OrganizationFiscalCode {
    OrganizationFiscalCode::parse("01199250158").unwrap()
}

fn key(n: usize) -> TransferKey {
    let iuv = Iuv::parse(&format!("120000000000{n:05}")).unwrap();
    TransferKey::new(iuv, &format!("R{n}"), TransferIndex::new(1).unwrap()).unwrap()
}

fn receipt(n: usize, cents: i64) -> EvidenceItem {
    EvidenceItem::Receipt(ReceiptTransfer {
        key: key(n),
        amount_cents: cents,
        paid_on: date!(2026 - 03 - 10),
        stand_in: false,
    })
}

fn flow_id(f: usize) -> String {
    format!("2026-03-11ABI03069-{f:04}")
}

fn flow(f: usize, revision: u32, lines: &[(usize, i64)]) -> EvidenceItem {
    EvidenceItem::Flow(ReportingFlow {
        flow_id: FlowId::parse(&flow_id(f)).unwrap(),
        revision,
        created_at: datetime!(2026-03-11 08:00 UTC) + Duration::hours(i64::from(revision)),
        psp_id: "ABI03069".to_owned(),
        trn: format!("TRN-{f}"),
        regulation_date: date!(2026 - 03 - 11),
        total_cents: lines.iter().map(|(_, c)| c).sum(),
        lines: lines
            .iter()
            .map(|(n, cents)| FlowLine {
                key: key(*n),
                amount_cents: *cents,
                outcome: OutcomeCode::Executed,
                paid_on: date!(2026 - 03 - 10),
            })
            .collect(),
    })
}

fn credit(id: &str, cents: i64, flows: &[usize]) -> EvidenceItem {
    let causale: String = flows
        .iter()
        .map(|f| format!("/PUR/LGPE-RIVERSAMENTO/URI/{} ", flow_id(*f)))
        .collect();
    EvidenceItem::Credit(TreasuryCredit {
        id: CreditId::parse(id).unwrap(),
        amount_cents: cents,
        booking_date: date!(2026 - 03 - 12),
        value_date: date!(2026 - 03 - 12),
        causale,
        trn: None,
    })
}

/// An `/RFB/` credit paying key `n`'s IUV directly.
fn rfb_credit(id: &str, cents: i64, n: usize) -> EvidenceItem {
    EvidenceItem::Credit(TreasuryCredit {
        id: CreditId::parse(id).unwrap(),
        amount_cents: cents,
        booking_date: date!(2026 - 03 - 12),
        value_date: date!(2026 - 03 - 12),
        causale: format!(
            "/RFB/{}/{}.{:02}/TXT/TARI",
            key(n).iuv.as_str(),
            cents / 100,
            cents % 100
        ),
        trn: None,
    })
}

fn booked(keys: &[usize]) -> BookedReceipts {
    keys.iter()
        .map(|n| {
            let k = key(*n);
            (
                (k.iuv.clone(), k.receipt_id.clone()),
                BookedReceipt {
                    notice_number: format!("3{}", k.iuv.as_str()),
                    clearing: Some(Account::psp_clearing(&milan(), "ABI03069")),
                },
            )
        })
        .collect()
}

/// The books of a test: what each posting key has posted (the store's positions), and the
/// entries appended, the `reported` ones merged per flow revision as the store journals them.
#[derive(Default)]
struct Books {
    posted: BTreeMap<String, Posted>,
    entries: Vec<EntryDraft>,
}

impl Books {
    /// Settles against `evidence` and posts the drafts, checking each one; returns the
    /// per-key drafts.
    fn settle(&mut self, evidence: &Evidence, receipts: &BookedReceipts) -> Vec<EntryDraft> {
        let drafts = settle(&milan(), evidence, receipts, &self.posted);
        for draft in &drafts {
            assert_eq!(draft.validate(), Ok(()), "{draft:?}");
            assert!(draft.cause.posting_key.is_some(), "{draft:?}");
        }
        apply_to_positions(&mut self.posted, &drafts);
        let unmerged = balances_of(&drafts);
        let merged = merge_reported(drafts.clone());
        for entry in &merged {
            assert_eq!(entry.validate(), Ok(()), "{entry:?}");
            // The encoding an entry is chained with keeps everything the rules wrote.
            let encoded = crate::ledger::chain::canonical_encoding(
                1,
                uuid::Uuid::nil(),
                datetime!(2026-03-12 12:00 UTC),
                None,
                entry,
            );
            let decoded = crate::ledger::chain::decode_canonical(&encoded).unwrap();
            assert_eq!(&decoded.draft, entry);
        }
        // Merging moves the same money as the per-key drafts.
        assert_eq!(balances_of(&merged), unmerged);
        self.entries.extend(merged);
        drafts
    }

    fn balances(&self) -> BTreeMap<Account, i64> {
        balances_of(&self.entries)
    }

    fn balance(&self, account_type: AccountType) -> i64 {
        self.balances()
            .iter()
            .filter(|(a, _)| a.account_type() == account_type)
            .map(|(_, c)| c)
            .sum()
    }
}

/// What `entries` put in each account, accounts left at zero omitted.
fn balances_of(entries: &[EntryDraft]) -> BTreeMap<Account, i64> {
    let mut out = BTreeMap::new();
    for entry in entries {
        for line in &entry.lines {
            *out.entry(line.account.clone()).or_insert(0) += line.amount_cents;
        }
    }
    out.retain(|_, c| *c != 0);
    out
}

fn evidence(items: Vec<EvidenceItem>) -> Evidence {
    let mut reconciler = Reconciler::new();
    reconciler.apply(items).unwrap();
    reconciler.evidence().clone()
}

fn lines_of(draft: &EntryDraft) -> Vec<(String, i64)> {
    draft
        .lines
        .iter()
        .map(|l| (l.account.code(), l.amount_cents))
        .collect()
}

#[test]
fn a_reported_and_cashed_receipt_moves_from_clearing_to_transit_to_treasury() {
    let mut books = Books::default();
    let receipts = booked(&[1]);
    let held = evidence(vec![
        receipt(1, 12_550),
        flow(1, 1, &[(1, 12_550)]),
        credit("C1", 12_550, &[1]),
    ]);
    let drafts = books.settle(&held, &receipts);
    assert_eq!(drafts.len(), 2);
    let reported = &drafts[0];
    assert_eq!(reported.event_type, EventType::Reported);
    assert_eq!(
        lines_of(reported),
        [
            ("psp_clearing:01199250158:ABI03069".to_owned(), -12_550),
            ("in_transit:01199250158".to_owned(), 12_550),
        ]
    );
    assert_eq!(
        reported.cause.reporting_flow_id.as_deref(),
        Some("2026-03-11ABI03069-0001")
    );
    assert_eq!(reported.cause.reporting_flow_revision, Some(1));
    assert_eq!(reported.cause.receipt_id.as_deref(), Some("R1"));
    assert_eq!(
        reported.cause.notices,
        [(
            "312000000000000001".to_owned(),
            "12000000000000001".to_owned()
        )]
    );
    let cashed = &drafts[1];
    assert_eq!(cashed.event_type, EventType::Cashed);
    assert_eq!(
        lines_of(cashed),
        [
            ("in_transit:01199250158".to_owned(), -12_550),
            ("treasury:01199250158".to_owned(), 12_550),
        ]
    );
    assert_eq!(cashed.cause.treasury_line_id.as_deref(), Some("C1"));
    assert_eq!(cashed.cause.notices, reported.cause.notices);
    assert!(books.settle(&held, &receipts).is_empty(), "posted once");
}

#[test]
fn a_line_that_differs_from_its_receipt_puts_the_difference_in_suspense() {
    let mut books = Books::default();
    let drafts = books.settle(
        &evidence(vec![receipt(1, 10_000), flow(1, 1, &[(1, 9_000)])]),
        &booked(&[1]),
    );
    assert_eq!(
        lines_of(&drafts[0]),
        [
            ("psp_clearing:01199250158:ABI03069".to_owned(), -10_000),
            ("in_transit:01199250158".to_owned(), 9_000),
            ("suspense:01199250158".to_owned(), 1_000),
        ]
    );
    assert!(
        drafts[0]
            .description
            .contains("the difference, -1000 cents, to suspense"),
        "{}",
        drafts[0].description
    );
}

#[test]
fn a_flows_keys_are_journaled_as_one_entry_naming_each_notice_and_the_divergent_key() {
    let mut books = Books::default();
    let items = vec![
        receipt(1, 10_000),
        receipt(2, 2_500),
        receipt(3, 700),
        flow(1, 1, &[(1, 9_000), (2, 2_500), (3, 700)]),
    ];
    let drafts = books.settle(&evidence(items), &booked(&[1, 2]));
    assert_eq!(drafts.len(), 3, "one difference per key");
    assert_eq!(books.entries.len(), 1, "{:#?}", books.entries);
    let entry = &books.entries[0];
    assert_eq!(
        lines_of(entry),
        [
            ("psp_clearing:01199250158:ABI03069".to_owned(), -12_500),
            ("in_transit:01199250158".to_owned(), 12_200),
            ("suspense:01199250158".to_owned(), 300),
        ]
    );
    assert_eq!(entry.cause.reporting_flow_id, Some(flow_id(1)));
    assert_eq!(entry.cause.reporting_flow_revision, Some(1));
    assert_eq!(entry.cause.posting_key, None);
    assert_eq!(entry.cause.receipt_id, None, "three receipts");
    let named: Vec<&str> = entry
        .cause
        .notices
        .iter()
        .map(|(_, iuv)| iuv.as_str())
        .collect();
    assert_eq!(
        named,
        [
            key(1).iuv.as_str(),
            key(2).iuv.as_str(),
            key(3).iuv.as_str()
        ]
    );
    // Key 1 diverges, key 3's receipt was not booked: both are named with their cause.
    for (n, why) in [(1, "the difference, -1000 cents"), (3, "not booked")] {
        let named = format!("{}/1/R{n} suspense", key(n).iuv.as_str());
        assert!(entry.description.contains(&named), "{}", entry.description);
        assert!(entry.description.contains(why), "{}", entry.description);
    }
    assert!(
        !entry.description.contains("/R2 suspense"),
        "{}",
        entry.description
    );
    // The positions keep each key's own posting, so nothing is posted again.
    assert_eq!(books.posted.len(), 3);
    assert_eq!(
        books.posted[&reported_key(&key(3))].amounts,
        Amounts::from([
            (Account::in_transit(&milan()), 700),
            (Account::suspense(&milan()), -700),
        ])
    );
}

#[test]
fn a_flows_entry_names_as_many_suspense_keys_as_it_holds_and_counts_the_rest() {
    let mut books = Books::default();
    let n = 12;
    let mut items: Vec<EvidenceItem> = (0..n).map(|k| receipt(k, 10_000)).collect();
    let lines: Vec<(usize, i64)> = (0..n).map(|k| (k, 9_990)).collect();
    items.push(flow(1, 1, &lines));
    let keys: Vec<usize> = (0..n).collect();
    books.settle(&evidence(items), &booked(&keys));
    let entry = &books.entries[0];
    let description = &entry.description;
    assert!(description.chars().count() <= 500, "{description}");
    assert!(
        description.contains(&format!(
            "{}/1/R0 suspense 10 cents: the receipt",
            key(0).iuv.as_str()
        )),
        "{description}"
    );
    let named = (0..n)
        .filter(|k| description.contains(&format!("{}/1/R{k} suspense", key(*k).iuv.as_str())))
        .count();
    assert!(named >= 1 && named < n, "{description}");
    assert!(
        description.ends_with(&format!(
            "; and {} more keys to or from suspense",
            n - named
        )),
        "{description}"
    );
    assert_eq!(entry.cause.notices.len(), n);
}

#[test]
fn a_new_revision_posts_only_its_change_and_a_dropped_line_is_reversed() {
    let mut books = Books::default();
    let receipts = booked(&[1, 2]);
    let first = vec![
        receipt(1, 5_000),
        receipt(2, 3_000),
        flow(1, 1, &[(1, 5_000), (2, 3_000)]),
    ];
    books.settle(&evidence(first.clone()), &receipts);
    let mut second = first;
    second.push(flow(1, 2, &[(1, 4_500)]));
    let drafts = books.settle(&evidence(second), &receipts);
    assert_eq!(drafts.len(), 2);
    assert_eq!(
        lines_of(&drafts[0]),
        [
            ("in_transit:01199250158".to_owned(), -500),
            ("suspense:01199250158".to_owned(), 500),
        ]
    );
    assert_eq!(drafts[0].cause.reporting_flow_revision, Some(2));
    assert!(
        drafts[0]
            .description
            .starts_with("adjusts the earlier posting")
    );
    assert_eq!(
        lines_of(&drafts[1]),
        [
            ("psp_clearing:01199250158:ABI03069".to_owned(), 3_000),
            ("in_transit:01199250158".to_owned(), -3_000),
        ]
    );
    assert_eq!(drafts[1].cause.receipt_id.as_deref(), Some("R2"));
    assert_eq!(drafts[1].cause.reporting_flow_revision, Some(2));
}

#[test]
fn a_line_without_a_receipt_goes_to_suspense_until_the_receipt_is_booked() {
    let mut books = Books::default();
    let line_only = vec![flow(1, 1, &[(1, 7_000)])];
    let drafts = books.settle(&evidence(line_only.clone()), &BookedReceipts::new());
    assert_eq!(
        lines_of(&drafts[0]),
        [
            ("in_transit:01199250158".to_owned(), 7_000),
            ("suspense:01199250158".to_owned(), -7_000),
        ]
    );
    assert_eq!(drafts[0].cause.notices[0].0, "", "no receipt names the NAV");
    let mut recovered = line_only;
    recovered.push(receipt(1, 7_000));
    let drafts = books.settle(&evidence(recovered), &booked(&[1]));
    assert_eq!(
        lines_of(&drafts[0]),
        [
            ("psp_clearing:01199250158:ABI03069".to_owned(), -7_000),
            ("suspense:01199250158".to_owned(), 7_000),
        ]
    );
    assert_eq!(books.balance(AccountType::Suspense), 0);
}

#[test]
fn a_flow_paid_by_two_credits_is_divergent_after_the_first_and_settles_with_the_second() {
    let mut books = Books::default();
    let receipts = booked(&[1]);
    let mut items = vec![
        receipt(1, 10_000),
        flow(1, 1, &[(1, 10_000)]),
        credit("C1", 6_000, &[1]),
    ];
    let drafts = books.settle(&evidence(items.clone()), &receipts);
    let cashed = drafts.last().unwrap();
    assert_eq!(
        lines_of(cashed),
        [
            ("in_transit:01199250158".to_owned(), -10_000),
            ("treasury:01199250158".to_owned(), 6_000),
            ("suspense:01199250158".to_owned(), 4_000),
        ]
    );
    assert!(cashed.description.contains("IUF_TES_DIV_IMP"));
    items.push(credit("C2", 4_000, &[1]));
    books.settle(&evidence(items), &receipts);
    assert_eq!(books.balance(AccountType::Suspense), 0);
    assert_eq!(books.balance(AccountType::InTransit), 0);
    assert_eq!(books.balance(AccountType::Treasury), 10_000);
    assert_eq!(books.balance(AccountType::PspClearing), -10_000);
}

#[test]
fn an_rfb_credit_cashes_its_receipt_until_a_flow_reports_it() {
    let mut books = Books::default();
    let receipts = booked(&[1]);
    let mut items = vec![receipt(1, 12_550), rfb_credit("X1", 12_550, 1)];
    let drafts = books.settle(&evidence(items.clone()), &receipts);
    assert_eq!(drafts.len(), 1);
    let cashed = &drafts[0];
    assert_eq!(cashed.event_type, EventType::Cashed);
    assert_eq!(
        lines_of(cashed),
        [
            ("psp_clearing:01199250158:ABI03069".to_owned(), -12_550),
            ("treasury:01199250158".to_owned(), 12_550),
        ]
    );
    assert_eq!(cashed.cause.treasury_line_id.as_deref(), Some("X1"));
    assert_eq!(cashed.cause.receipt_id.as_deref(), Some("R1"));
    assert_eq!(cashed.cause.reporting_flow_id, None);
    assert_eq!(
        cashed.cause.notices,
        [(
            "312000000000000001".to_owned(),
            "12000000000000001".to_owned()
        )]
    );
    assert!(
        cashed.description.contains("RT_TES"),
        "{}",
        cashed.description
    );
    assert!(books.settle(&evidence(items.clone()), &receipts).is_empty());

    // A flow reports the same transfer later: the money travels by the flow, and the direct
    // cashing is undone.
    items.push(flow(1, 1, &[(1, 12_550)]));
    let drafts = books.settle(&evidence(items), &receipts);
    assert_eq!(drafts.len(), 2);
    let reversal = drafts
        .iter()
        .find(|d| d.event_type == EventType::Cashed)
        .unwrap();
    assert_eq!(
        lines_of(reversal),
        [
            ("psp_clearing:01199250158:ABI03069".to_owned(), 12_550),
            ("treasury:01199250158".to_owned(), -12_550),
        ]
    );
    assert!(reversal.description.contains("reversed"));
    assert_eq!(reversal.cause.receipt_id.as_deref(), Some("R1"));
    assert_eq!(books.balance(AccountType::Treasury), 0);
    assert_eq!(books.balance(AccountType::InTransit), 12_550);
}

#[test]
fn an_rfb_credit_of_another_amount_or_an_unbooked_receipt_is_not_cleared() {
    let mut books = Books::default();
    let drafts = books.settle(
        &evidence(vec![receipt(1, 10_000), rfb_credit("X1", 9_999, 1)]),
        &booked(&[1]),
    );
    assert!(
        drafts.is_empty(),
        "TES_NO_IUF_OR_IUV is not posted: {drafts:?}"
    );
    // The receipt is held but its booking posted nothing: the credit goes to suspense.
    let drafts = books.settle(
        &evidence(vec![receipt(2, 4_000), rfb_credit("X2", 4_000, 2)]),
        &BookedReceipts::new(),
    );
    assert_eq!(
        lines_of(&drafts[0]),
        [
            ("treasury:01199250158".to_owned(), 4_000),
            ("suspense:01199250158".to_owned(), -4_000),
        ]
    );
}

#[test]
fn two_rfb_credits_of_one_receipt_cash_it_once() {
    let mut books = Books::default();
    let receipts = booked(&[1]);
    let drafts = books.settle(
        &evidence(vec![
            receipt(1, 5_000),
            rfb_credit("X2", 5_000, 1),
            rfb_credit("X1", 5_000, 1),
        ]),
        &receipts,
    );
    assert_eq!(drafts.len(), 1);
    assert_eq!(drafts[0].cause.treasury_line_id.as_deref(), Some("X1"));
    assert_eq!(books.balance(AccountType::Treasury), 5_000);
}

/// A generated day of evidence: receipts, flows with revisions, credits.
#[derive(Debug, Clone)]
struct Day {
    items: Vec<EvidenceItem>,
    booked: Vec<usize>,
}

fn day() -> impl Strategy<Value = Day> {
    (
        proptest::collection::vec(
            (
                100i64..20_000,
                any::<bool>(),
                any::<bool>(),
                0usize..4,
                -300i64..300,
            ),
            1..8,
        ),
        any::<bool>(),
        proptest::collection::vec((0usize..3, -2_000i64..2_000, any::<bool>()), 0..5),
        proptest::collection::vec((0usize..8, 0usize..3, any::<bool>()), 0..4),
    )
        .prop_map(|(keys, second_revision, credits, rfb)| {
            let mut items = Vec::new();
            let mut booked = Vec::new();
            let mut flows: BTreeMap<usize, Vec<(usize, i64)>> = BTreeMap::new();
            let mut amounts = BTreeMap::new();
            for (n, (cents, has_receipt, is_booked, f, off)) in keys.into_iter().enumerate() {
                amounts.insert(n, cents);
                if has_receipt {
                    items.push(receipt(n, cents));
                    if is_booked {
                        booked.push(n);
                    }
                }
                // One key in four is reported by no flow (an `/RFB/` credit may pay it).
                if f == 3 {
                    continue;
                }
                // A line differs from its receipt in one case out of three.
                let line = if off % 3 == 0 { cents + off } else { cents };
                flows.entry(f).or_default().push((n, line));
            }
            // `/RFB/` credits, two of them naming one IUV at times, of the receipt's amount
            // or not.
            for (i, (n, id, exact)) in rfb.into_iter().enumerate() {
                let cents = amounts.get(&n).copied().unwrap_or(1_000);
                let cents = if exact { cents } else { cents + 1 };
                items.push(rfb_credit(&format!("X{id}{i}"), cents, n));
            }
            for (f, lines) in &flows {
                items.push(flow(*f, 1, lines));
                if second_revision && *f == 0 {
                    let changed: Vec<_> = lines.iter().skip(1).map(|(n, c)| (*n, c + 10)).collect();
                    items.push(flow(*f, 2, &changed));
                }
            }
            for (i, (f, off, two)) in credits.into_iter().enumerate() {
                let total: i64 = flows.get(&f).map_or(0, |l| l.iter().map(|(_, c)| c).sum());
                let mut named = vec![f];
                if two && flows.contains_key(&((f + 1) % 3)) {
                    named.push((f + 1) % 3);
                }
                let amount = if off % 2 == 0 { total } else { total + off };
                items.push(credit(&format!("C{i}"), amount.max(1), &named));
            }
            Day { items, booked }
        })
}

/// What suspense must hold: every line's difference from its booked receipt (the whole line
/// when there is none), every component's credits minus its lines, and every `/RFB/` credit
/// that pays an unreported receipt of its amount the books did not post (once per receipt).
fn expected_suspense(evidence: &Evidence, receipts: &BookedReceipts) -> i64 {
    let mut owed = 0i64;
    let mut paid_directly = BTreeSet::new();
    for held in evidence.credits() {
        let CausaleReferences::Iuvs(iuvs) = &held.references else {
            continue;
        };
        for key in iuvs.iter().flat_map(|i| evidence.keys_of_iuv(i)) {
            let pays = evidence
                .receipt(key)
                .is_some_and(|r| r.amount_cents == held.credit.amount_cents)
                && evidence.lines_of(key).is_empty();
            if pays && paid_directly.insert(key.clone()) {
                let unbooked = receipts
                    .get(&(key.iuv.clone(), key.receipt_id.clone()))
                    .is_none_or(|b| b.clearing.is_none());
                if unbooked {
                    owed += held.credit.amount_cents;
                }
            }
        }
    }
    for flow in evidence.latest_flows() {
        for line in &flow.lines {
            let booked = evidence.receipt(&line.key).filter(|_| {
                receipts
                    .get(&(line.key.iuv.clone(), line.key.receipt_id.clone()))
                    .is_some_and(|b| b.clearing.is_some())
            });
            owed += line.amount_cents - booked.map_or(0, |r| r.amount_cents);
        }
    }
    let mut seen = BTreeSet::new();
    for held in evidence.credits() {
        let component = component_of_credit(evidence, &held.credit.id);
        if component.flow_ids.is_empty() || !seen.insert(component.flow_ids.clone()) {
            continue;
        }
        let lines: i64 = component
            .flow_ids
            .iter()
            .filter_map(|f| evidence.latest_flow(f))
            .flat_map(|f| f.lines.iter().map(|l| l.amount_cents))
            .sum();
        owed += component.credits_cents - lines;
    }
    -owed
}

proptest! {
    /// Whatever the evidence: every draft balances, settling twice posts nothing the second
    /// time, suspense holds exactly the differences, and the books reached by settling after
    /// every step of any order and grouping are the books of settling everything at once.
    #[test]
    fn settlement_is_balanced_idempotent_and_order_independent(
        day in day(),
        order in proptest::collection::vec(any::<u32>(), 0..40),
        cuts in proptest::collection::vec(any::<bool>(), 0..40),
    ) {
        let receipts = booked(&day.booked);
        let all = evidence(day.items.clone());
        let mut at_once = Books::default();
        at_once.settle(&all, &receipts);
        prop_assert!(at_once.settle(&all, &receipts).is_empty());
        prop_assert_eq!(at_once.balance(AccountType::Suspense), expected_suspense(&all, &receipts));
        prop_assert_eq!(at_once.balances().values().sum::<i64>(), 0);

        let mut shuffled = day.items.clone();
        // A day may hold nothing: every key unreported and unpaid, and no credit.
        let len = shuffled.len();
        for (i, r) in order.iter().enumerate().filter(|_| len > 0) {
            shuffled.swap(i % len, *r as usize % len);
        }
        let mut reconciler = Reconciler::new();
        let mut stepwise = Books::default();
        let mut batch = Vec::new();
        for (i, item) in shuffled.into_iter().enumerate() {
            batch.push(item);
            if cuts.get(i).copied().unwrap_or(true) {
                reconciler.apply(std::mem::take(&mut batch)).unwrap();
                stepwise.settle(reconciler.evidence(), &receipts);
            }
        }
        reconciler.apply(batch).unwrap();
        stepwise.settle(reconciler.evidence(), &receipts);
        prop_assert_eq!(stepwise.balances(), at_once.balances());
        let sums = |books: &Books| -> BTreeMap<String, Amounts> {
            books.posted.iter().map(|(k, p)| {
                let mut a = p.amounts.clone();
                a.retain(|_, c| *c != 0);
                (k.clone(), a)
            }).filter(|(_, a)| !a.is_empty()).collect()
        };
        prop_assert_eq!(sums(&stepwise), sums(&at_once));
    }

    /// When every line equals its booked receipt and every flow is cashed by credits of its
    /// total, nothing is left in clearing, in transit or suspense: it is all in the treasury.
    #[test]
    fn matching_evidence_leaves_everything_in_the_treasury(
        amounts in proptest::collection::vec((1i64..50_000, any::<bool>()), 1..10),
        flows in 1usize..4,
    ) {
        let mut items = Vec::new();
        let mut lines: BTreeMap<usize, Vec<(usize, i64)>> = BTreeMap::new();
        let mut direct = 0;
        for (n, (cents, by_rfb)) in amounts.iter().enumerate() {
            items.push(receipt(n, *cents));
            if *by_rfb {
                items.push(rfb_credit(&format!("X{n}"), *cents, n));
                direct += 1;
            } else {
                lines.entry(n % flows).or_default().push((n, *cents));
            }
        }
        let amounts: Vec<i64> = amounts.iter().map(|(c, _)| *c).collect();
        for (f, l) in &lines {
            items.push(flow(*f, 1, l));
            items.push(credit(&format!("C{f}"), l.iter().map(|(_, c)| c).sum(), &[*f]));
        }
        let keys: Vec<usize> = (0..amounts.len()).collect();
        let mut books = Books::default();
        // The receipts' own bookings, as the receipt rules post them.
        let clearing = Account::psp_clearing(&milan(), "ABI03069");
        let paid: i64 = amounts.iter().sum();
        books.entries.push(EntryDraft {
            event_type: EventType::ReceiptPaid,
            creditor: milan(),
            kind: None,
            description: String::new(),
            cause: Cause::default(),
            lines: vec![
                Line { account: clearing, amount_cents: paid },
                Line {
                    account: Account::revenue(&milan(), crate::debt_position::DebtKind::Tari),
                    amount_cents: -paid,
                },
            ],
        });
        books.settle(&evidence(items), &booked(&keys));
        prop_assert_eq!(books.balance(AccountType::PspClearing), 0);
        prop_assert_eq!(books.balance(AccountType::InTransit), 0);
        prop_assert_eq!(books.balance(AccountType::Treasury), paid);
        prop_assert_eq!(books.balance(AccountType::Suspense), 0);
        // One `reported` entry per flow, naming the notice of each transfer its lines report.
        let reported: Vec<&EntryDraft> = books
            .entries
            .iter()
            .filter(|e| e.event_type == EventType::Reported)
            .collect();
        prop_assert_eq!(reported.len(), lines.len());
        let named: usize = reported.iter().map(|e| e.cause.notices.len()).sum();
        prop_assert_eq!(named, amounts.len() - direct);
        for (entry, (f, _)) in reported.iter().zip(&lines) {
            prop_assert_eq!(entry.cause.reporting_flow_id.clone(), Some(flow_id(*f)));
            prop_assert_eq!(entry.cause.posting_key.clone(), None);
        }
    }
}
