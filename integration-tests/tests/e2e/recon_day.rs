//! A whole reconciliation day from the generator (`incasso_integration_tests::recon_day`),
//! delivered the real ways: notices created through NoticeService, receipts sent by the Node
//! simulator over paSendRT and paSendRTV2, reporting flows (two revisions for some) and the
//! treasury's camt.053, camt.054 and OPI giornale uploaded through ImportDocument, in several
//! orders. After each complete import every transfer, credit and flow that the
//! ReconciliationService lists is compared with the generator's ground truth (which the
//! generator derives from its own scenario, not from incasso's classifier), and importing
//! everything a second time changes nothing.
//!
//! `INCASSO_RECON_DAY_SEED` replaces each test's seed and `INCASSO_RECON_DAY_REPEATS` makes
//! the day that many times bigger, to explore other days.

use std::collections::{BTreeMap, BTreeSet};

use futures::StreamExt;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use incasso_domain::reconciliation::{FlowTreasuryState, Label};
use incasso_grpc::pb;
use incasso_grpc::pb::reconciliation_service_client::ReconciliationServiceClient;
use incasso_integration_tests::node_simulator as node;
use incasso_integration_tests::recon_day::{
    Day, DayShape, Document, DocumentKind, GroundTruth, IssuedNotice, OPI_ENTITY_CODE, PAYMENT_DAY,
    Plan, Scope,
};
use incasso_integration_tests::requests::MILANO;
use incasso_integration_tests::{Engine, TestApp};
use tonic::transport::Channel;

use crate::on_both_engines;

on_both_engines!(
    a_day_imported_flows_first_matches_its_truth,
    a_day_imported_treasury_first_matches_its_truth,
    a_day_imported_one_file_at_a_time_in_a_shuffled_order_matches_its_truth,
    a_day_whose_evidence_comes_around_its_receipts_matches_its_truth,
    a_day_whose_evidence_all_comes_before_its_receipts_matches_its_truth,
    a_day_whose_receipts_come_last_is_read_current_without_a_refresh,
    a_day_relabelled_three_iuvs_at_a_time_records_what_one_slice_records,
    a_day_whose_plain_keys_are_composed_when_read_reads_as_one_that_writes_them,
);

type Client = ReconciliationServiceClient<Channel>;

/// How the finance office's files arrive.
#[derive(Debug, Clone, Copy)]
enum Order {
    /// Receipts, then every flow, then the treasury.
    FlowsFirst,
    /// Receipts, then the treasury, then the flows (latest revisions first).
    TreasuryFirst,
    /// Receipts, then one file at a time in a seeded shuffled order.
    Shuffled,
    /// Half the files (shuffled), the receipts, the other half.
    AroundReceipts,
    /// Every file, then the receipts, then a catch-up (`incasso recon refresh`).
    BeforeReceipts,
    /// Every file, then the receipts, read at once: the reads label the receipts first.
    ReceiptsLast,
}

/// The day's shape: the small one, or `INCASSO_RECON_DAY_REPEATS` times its scenarios.
fn shape() -> DayShape {
    std::env::var("INCASSO_RECON_DAY_REPEATS")
        .ok()
        .and_then(|s| s.parse().ok())
        .map_or_else(DayShape::small, |repeats| DayShape::scaled(repeats, 6))
}

fn seed(default: u64) -> u64 {
    std::env::var("INCASSO_RECON_DAY_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

async fn a_day_imported_flows_first_matches_its_truth(engine: Engine) -> anyhow::Result<()> {
    run(engine, Order::FlowsFirst, seed(1)).await
}

async fn a_day_imported_treasury_first_matches_its_truth(engine: Engine) -> anyhow::Result<()> {
    run(engine, Order::TreasuryFirst, seed(2)).await
}

async fn a_day_imported_one_file_at_a_time_in_a_shuffled_order_matches_its_truth(
    engine: Engine,
) -> anyhow::Result<()> {
    run(engine, Order::Shuffled, seed(3)).await
}

async fn a_day_whose_evidence_comes_around_its_receipts_matches_its_truth(
    engine: Engine,
) -> anyhow::Result<()> {
    run(engine, Order::AroundReceipts, seed(4)).await
}

async fn a_day_whose_evidence_all_comes_before_its_receipts_matches_its_truth(
    engine: Engine,
) -> anyhow::Result<()> {
    run(engine, Order::BeforeReceipts, seed(5)).await
}

/// What a day's imports recorded: label changes (every import and catch-up), and the
/// creditor's balances at the end. (Not the number of ledger entries: a flow's `reported`
/// postings are journaled one entry per slice of the import that reached them.)
#[derive(Debug, Default, PartialEq, Eq)]
struct Recorded {
    label_changes: i64,
    balances: BTreeMap<String, i64>,
}

impl Recorded {
    fn add(&mut self, imported: &pb::ImportDocumentResponse) {
        self.label_changes += imported.label_changes;
    }
}

async fn a_day_whose_receipts_come_last_is_read_current_without_a_refresh(
    engine: Engine,
) -> anyhow::Result<()> {
    run(engine, Order::ReceiptsLast, seed(7)).await
}

async fn a_day_relabelled_three_iuvs_at_a_time_records_what_one_slice_records(
    engine: Engine,
) -> anyhow::Result<()> {
    // Slices of three IUVs split the documents' IUVs, the flows' pages and the queue's
    // chunks many times over, and an IUV of the queue is relabelled twice; the truth, the
    // history and the balances are those of one slice.
    for order in [Order::AroundReceipts, Order::BeforeReceipts] {
        let whole = run_sliced(engine, order, seed(6), None).await?;
        let sliced = run_sliced(engine, order, seed(6), Some(3)).await?;
        assert_eq!(sliced, whole, "{order:?}");
    }
    Ok(())
}

async fn a_day_whose_plain_keys_are_composed_when_read_reads_as_one_that_writes_them(
    engine: Engine,
) -> anyhow::Result<()> {
    // With `[reconciliation] plain_keys_composed` a flow's import leaves its plain keys' rows
    // as their receipts left them; every read composes them. Through the interface the day
    // must be the same one: every transfer as listed, every key's history, every label
    // filter, the summary, the changes counted and the books.
    for (order, seed) in [
        (Order::FlowsFirst, seed(8)),
        (Order::Shuffled, seed(9)),
        (Order::AroundReceipts, seed(10)),
    ] {
        let observe = Options {
            observe: true,
            ..Options::default()
        };
        let written = run_with(engine, order, seed, observe).await?;
        let composed = run_with(
            engine,
            order,
            seed,
            Options {
                plain_keys_composed: true,
                ..observe
            },
        )
        .await?;
        // And the same day's plain keys written back once the day is over.
        let written_back = run_with(
            engine,
            order,
            seed,
            Options {
                plain_keys_composed: true,
                write_back_plain_keys: true,
                ..observe
            },
        )
        .await?;
        assert!(
            composed.keys_left_unwritten > 0,
            "{order:?}: no plain key was left unwritten"
        );
        assert_eq!(written.keys_left_unwritten, 0, "{order:?}");
        assert_eq!(written_back.keys_left_unwritten, 0, "{order:?}");
        assert_eq!(written_back.recorded, written.recorded, "{order:?}");
        assert_eq!(composed.recorded, written.recorded, "{order:?}");
        let (Some(composed), Some(written), Some(written_back)) =
            (composed.observed, written.observed, written_back.observed)
        else {
            unreachable!("observed on request");
        };
        assert_same_day(&written, &written_back, &format!("{order:?}, written back"));
        assert_same_day(&written, &composed, &format!("{order:?}"));
    }
    Ok(())
}

/// Everything `other` says of the day is what `written` (every key written) says: every
/// transfer as listed, every label filter, the summary and every key's history.
fn assert_same_day(written: &Observed, other: &Observed, case: &str) {
    let differing: Vec<_> = written
        .transfers
        .iter()
        .filter(|(key, w)| other.transfers.get(*key) != Some(*w))
        .map(|(key, w)| (w, other.transfers.get(key)))
        .take(5)
        .collect();
    assert!(
        differing.is_empty(),
        "{case}: ListTransfers, against every key written: {differing:#?}"
    );
    assert_eq!(other.transfers.len(), written.transfers.len(), "{case}");
    assert_eq!(other.by_label, written.by_label, "{case}: label filters");
    assert_eq!(other.summary, written.summary, "{case}: GetSummary");
    assert_eq!(other.histories.len(), written.histories.len(), "{case}");
    for (key, history) in &written.histories {
        assert_eq!(
            other.histories.get(key),
            Some(history),
            "{case}: history of {key:?}"
        );
    }
}

async fn run(engine: Engine, order: Order, seed: u64) -> anyhow::Result<()> {
    run_sliced(engine, order, seed, None).await.map(|_| ())
}

async fn run_sliced(
    engine: Engine,
    order: Order,
    seed: u64,
    iuvs_per_slice: Option<usize>,
) -> anyhow::Result<Recorded> {
    let options = Options {
        iuvs_per_slice,
        ..Options::default()
    };
    Ok(run_with(engine, order, seed, options).await?.recorded)
}

/// How the service under test is set up, and what a run reads back.
#[derive(Debug, Default, Clone, Copy)]
struct Options {
    iuvs_per_slice: Option<usize>,
    plain_keys_composed: bool,
    /// Write the plain keys back at the end (`incasso recon write-plain-keys`), before reading.
    write_back_plain_keys: bool,
    /// Read the whole day back through the interface at the end ([`Observed`]).
    observe: bool,
}

/// What a run found.
struct Run {
    recorded: Recorded,
    /// Keys whose row a flow's import left as their receipt left it (read from the tables).
    keys_left_unwritten: i64,
    /// Everything the interface says of the day, when the options asked for it.
    observed: Option<Observed>,
}

/// The day as the ReconciliationService tells it, without what differs between two runs of
/// it: instants, document ids, and IUVs (notices are created a few at a time, so which IUV a
/// notice gets varies; a transfer is known by its creditor, receiptId and idTransfer).
struct Observed {
    transfers: BTreeMap<RunKey, pb::ReconciliationTransfer>,
    histories: BTreeMap<RunKey, Vec<pb::LabelChange>>,
    by_label: BTreeMap<i32, BTreeSet<RunKey>>,
    summary: pb::GetSummaryResponse,
}

/// A transfer as two runs of one day both know it: (creditor, receiptId, idTransfer).
type RunKey = (String, String, i32);

async fn observe(client: &mut Client) -> anyhow::Result<Observed> {
    let listed = transfers(client, pb::ReconciliationScope::Unspecified).await?;
    let mut histories = BTreeMap::new();
    let key = |t: &pb::ReconciliationTransfer| {
        (
            t.creditor_fiscal_code.clone(),
            t.receipt_id.clone(),
            t.id_transfer,
        )
    };
    let transfers: BTreeMap<RunKey, pb::ReconciliationTransfer> = listed
        .iter()
        .map(|t| {
            let mut t = t.clone();
            t.iuv.clear();
            (key(&t), t)
        })
        .collect();
    assert_eq!(
        transfers.len(),
        listed.len(),
        "a receiptId and idTransfer twice"
    );
    for t in &listed {
        let mut changes = history(client, t).await?;
        for change in &mut changes {
            change.changed_at = None;
            if let Some(document) = &mut change.document {
                document.id.clear();
            }
            for evidence in &mut change.evidence {
                if let Some(pb::evidence::Kind::Receipt(receipt)) = &mut evidence.kind {
                    receipt.iuv.clear();
                }
            }
        }
        histories.insert(key(t), changes);
    }
    let mut by_label = BTreeMap::new();
    for code in (1..64).filter(|c| pb::ReconciliationLabel::try_from(*c).is_ok()) {
        let filter = pb::ListTransfersRequest {
            label: code,
            ..Default::default()
        };
        let keys = every_transfer(client, filter)
            .await?
            .iter()
            .map(key)
            .collect();
        by_label.insert(code, keys);
    }
    let day = PAYMENT_DAY.to_string();
    let summary = client
        .get_summary(pb::GetSummaryRequest {
            from: day.clone(),
            to: day,
            creditor_fiscal_code: MILANO.to_owned(),
        })
        .await?
        .into_inner();
    Ok(Observed {
        transfers,
        histories,
        by_label,
        summary,
    })
}

async fn run_with(
    engine: Engine,
    order: Order,
    seed: u64,
    options: Options,
) -> anyhow::Result<Run> {
    let app = TestApp::spawn_with(engine, |settings| {
        settings
            .treasury_accounts
            .add_opi_code(MILANO, OPI_ENTITY_CODE)
            .unwrap();
        settings.recon_iuvs_per_slice = options.iuvs_per_slice;
        settings.recon_plain_keys_composed = options.plain_keys_composed;
    })
    .await?;
    let mut recorded = Recorded::default();
    let plan = Plan::generate(seed, shape());
    let issued = create_notices(&app, &plan).await?;
    let day = plan.day(&issued)?;
    let mut client = app.reconciliation().await?;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);

    let flows: Vec<&Document> = day
        .documents
        .iter()
        .filter(|d| d.kind == DocumentKind::Flow)
        .collect();
    let treasury: Vec<&Document> = day
        .documents
        .iter()
        .filter(|d| d.kind == DocumentKind::Treasury)
        .collect();
    let mut shuffled: Vec<&Document> = day.documents.iter().collect();
    shuffled.shuffle(&mut rng);
    match order {
        Order::FlowsFirst => {
            deliver(&app, &day).await?;
            import_all(&mut client, flows.iter().chain(&treasury), &mut recorded).await?;
        }
        Order::TreasuryFirst => {
            deliver(&app, &day).await?;
            import_all(
                &mut client,
                treasury.iter().chain(flows.iter().rev()),
                &mut recorded,
            )
            .await?;
        }
        Order::Shuffled => {
            deliver(&app, &day).await?;
            import_all(&mut client, shuffled.iter(), &mut recorded).await?;
        }
        Order::AroundReceipts => {
            let (before, after) = shuffled.split_at(shuffled.len() / 2);
            import_all(&mut client, before.iter(), &mut recorded).await?;
            deliver(&app, &day).await?;
            // The next import catches the receipts' keys up.
            import_all(&mut client, after.iter(), &mut recorded).await?;
        }
        Order::BeforeReceipts => {
            import_all(&mut client, shuffled.iter(), &mut recorded).await?;
            deliver(&app, &day).await?;
            // Receipts are not relabelled by the receipt path: `incasso recon refresh
            // --creditor` catches their keys up (this is the store call it makes).
            let changes = app.store.refresh_reconciliation(MILANO).await?;
            assert!(changes > 0, "the receipts moved no label");
            recorded.label_changes += i64::try_from(changes)?;
        }
        Order::ReceiptsLast => {
            import_all(&mut client, shuffled.iter(), &mut recorded).await?;
            deliver(&app, &day).await?;
            // No import and no refresh: the first read labels the receipts' keys.
        }
    }
    assert_matches_truth(&mut client, &day.truth, &format!("{order:?}, seed {seed}")).await?;
    assert_ledger_verifies(&app, &day.truth).await?;
    assert_histories_are_whole(&mut client).await?;

    // Everything again, in yet another order: nothing changes.
    shuffled.shuffle(&mut rng);
    for document in &shuffled {
        let again = import(&mut client, document).await?;
        assert!(again.already_imported, "{}: {again:?}", document.name);
        assert_eq!(again.label_changes, 0, "{}", document.name);
        assert_eq!(again.ledger_entries_posted, 0, "{}", document.name);
    }
    assert_matches_truth(
        &mut client,
        &day.truth,
        &format!("{order:?} again, seed {seed}"),
    )
    .await?;
    recorded.balances = balances(&app).await?;
    if options.write_back_plain_keys {
        let tomorrow = time::OffsetDateTime::now_utc() + time::Duration::days(1);
        let written = app.store.write_back_plain_keys(MILANO, tomorrow).await?;
        assert!(written.keys > 0, "{order:?}: nothing written back");
    }
    let observed = if options.observe {
        Some(observe(&mut client).await?)
    } else {
        None
    };
    let keys_left_unwritten = keys_left_unwritten(&app).await?;
    app.stop().await?;
    Ok(Run {
        recorded,
        keys_left_unwritten,
        observed,
    })
}

/// Transfer keys whose row says `RT_NO_IUF` alone while a marked revision that counts holds
/// their line: the plain keys a flow's import left unwritten.
async fn keys_left_unwritten(app: &TestApp) -> anyhow::Result<i64> {
    use sea_orm::{ConnectionTrait, Statement};
    let db = app.store.db();
    let row = db
        .query_one_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT COUNT(*) AS n FROM recon_label l WHERE l.subject_kind = 'transfer' \
             AND l.labels = 'RT_NO_IUF' AND l.composed_flow_id IS NULL AND EXISTS (\
             SELECT 1 FROM recon_flow_line fl JOIN recon_flow f ON f.id = fl.flow_row_id \
             WHERE f.plain_keys_unwritten AND fl.iuv = l.iuv AND fl.receipt_id = l.receipt_id \
             AND fl.id_transfer = l.id_transfer)",
        ))
        .await?
        .ok_or_else(|| anyhow::anyhow!("no count"))?;
    Ok(row.try_get("", "n")?)
}

/// Milan's accounts and their balances, those not zero.
async fn balances(app: &TestApp) -> anyhow::Result<BTreeMap<String, i64>> {
    Ok(app
        .ledger()
        .await?
        .get_balances(pb::GetBalancesRequest {
            creditor_fiscal_code: MILANO.to_owned(),
            ..Default::default()
        })
        .await?
        .into_inner()
        .balances
        .into_iter()
        .map(|b| (b.account, b.balance_cents))
        .filter(|(_, cents)| *cents != 0)
        .collect())
}

/// A key's history is whole, as an auditor reads it: each change starts from the label the
/// change before it ended on (the first from none), the last ends on the label listed, and it
/// holds at most one change per import and cause (the receipts caught up, or the document):
/// relabelling never records a change and its undoing.
async fn assert_histories_are_whole(client: &mut Client) -> anyhow::Result<()> {
    for t in transfers(client, pb::ReconciliationScope::Creditor).await? {
        let changes = history(client, &t).await?;
        let name = format!("{} {} {}", t.iuv, t.receipt_id, t.id_transfer);
        let mut seen = std::collections::BTreeSet::new();
        let mut reads_as = pb::ReconciliationLabel::Unspecified as i32;
        for change in &changes {
            let at = change.changed_at.as_ref().map(|t| (t.seconds, t.nanos));
            let document = change.document.as_ref().map(|d| d.id.clone());
            assert!(
                seen.insert((at, document)),
                "{name}: two changes of one import: {changes:#?}"
            );
            assert_eq!(
                change.previous_label, reads_as,
                "{name}: a change from a label the history never reached: {changes:#?}"
            );
            reads_as = change.label;
        }
        assert_eq!(
            reads_as, t.label,
            "{name}: the history ends elsewhere than the label listed: {changes:#?}"
        );
    }
    Ok(())
}

/// A transfer's label changes, as GetTransferHistory gives them.
async fn history(
    client: &mut Client,
    t: &pb::ReconciliationTransfer,
) -> anyhow::Result<Vec<pb::LabelChange>> {
    Ok(client
        .get_transfer_history(pb::GetTransferHistoryRequest {
            creditor_fiscal_code: t.creditor_fiscal_code.clone(),
            iuv: t.iuv.clone(),
            receipt_id: t.receipt_id.clone(),
            id_transfer: t.id_transfer,
        })
        .await?
        .into_inner()
        .changes)
}

/// Every transfer ListTransfers gives for `scope` (`Unspecified`: both), page by page.
async fn transfers(
    client: &mut Client,
    scope: pb::ReconciliationScope,
) -> anyhow::Result<Vec<pb::ReconciliationTransfer>> {
    let filter = pb::ListTransfersRequest {
        scope: scope as i32,
        ..Default::default()
    };
    every_transfer(client, filter).await
}

/// Every transfer ListTransfers gives for the filters of `filter`, page by page.
async fn every_transfer(
    client: &mut Client,
    filter: pb::ListTransfersRequest,
) -> anyhow::Result<Vec<pb::ReconciliationTransfer>> {
    let mut listed = Vec::new();
    let mut token = String::new();
    loop {
        let page = client
            .list_transfers(pb::ListTransfersRequest {
                page_size: 1000,
                page_token: token,
                ..filter.clone()
            })
            .await?
            .into_inner();
        listed.extend(page.transfers);
        if page.next_page_token.is_empty() {
            return Ok(listed);
        }
        token = page.next_page_token;
    }
}

/// The ledger, with the `reported` and `cashed` entries the evidence posted, still verifies,
/// and its treasury account holds exactly the credits that bring pagoPA money: those
/// attributed to flows (cashed or divergent) and the `/RFB/` credits paying a receipt.
async fn assert_ledger_verifies(app: &TestApp, truth: &GroundTruth) -> anyhow::Result<()> {
    let verified = app
        .ledger()
        .await?
        .verify_ledger(pb::VerifyLedgerRequest::default())
        .await?
        .into_inner();
    assert!(verified.ok, "{verified:?}");
    assert!(verified.entries_checked > 0);
    let balance = balances(app)
        .await?
        .get(&format!("treasury:{MILANO}"))
        .copied()
        .unwrap_or_default();
    let expected: i64 = truth
        .credits
        .iter()
        .filter(|c| {
            matches!(
                c.label,
                Label::RtIufTes | Label::IufTesDivImp | Label::RtTes
            )
        })
        .map(|c| c.amount_cents)
        .sum();
    assert_eq!(balance, expected, "the treasury account's balance");
    Ok(())
}

/// Creates the plan's debt positions, in order, and returns their notices.
async fn create_notices(app: &TestApp, plan: &Plan) -> anyhow::Result<Vec<IssuedNotice>> {
    let notices = app.notices().await?;
    let created: Vec<anyhow::Result<IssuedNotice>> =
        futures::stream::iter(plan.requests().iter().cloned())
            .map(|request| {
                let mut notices = notices.clone();
                async move {
                    let expected = request.payment_options[0].installments[0].amount_cents;
                    let position = notices.create_debt_position(request).await?.into_inner();
                    let installment = &position.payment_options[0].installments[0];
                    anyhow::ensure!(installment.amount_cents == expected);
                    Ok(IssuedNotice::from_installment(installment))
                }
            })
            .buffered(4)
            .collect()
            .await;
    created.into_iter().collect()
}

/// Sends every receipt as the Node does, a few at a time, each acknowledged OK.
async fn deliver(app: &TestApp, day: &Day) -> anyhow::Result<()> {
    let addr = app.soap_addr;
    let replies: Vec<anyhow::Result<()>> = futures::stream::iter(day.receipts.iter())
        .map(|receipt| async move {
            let reply = node::post(
                addr,
                Some(receipt.soap_action()),
                "text/xml; charset=utf-8",
                receipt.envelope().as_bytes(),
            )
            .await?;
            anyhow::ensure!(
                node::element_text(&reply.body, "outcome") == Some("OK"),
                "{} of {} not acknowledged: {}",
                receipt.soap_action(),
                receipt.spec.receipt_id,
                reply.body
            );
            Ok(())
        })
        .buffer_unordered(8)
        .collect()
        .await;
    replies.into_iter().collect()
}

async fn import(
    client: &mut Client,
    document: &Document,
) -> anyhow::Result<pb::ImportDocumentResponse> {
    let request = pb::ImportDocumentRequest {
        file_name: document.name.clone(),
        content: document.content.as_bytes().to_vec(),
    };
    Ok(client
        .import_document(tokio_stream::iter([request]))
        .await?
        .into_inner())
}

async fn import_all<'a>(
    client: &mut Client,
    documents: impl Iterator<Item = &'a &'a Document>,
    recorded: &mut Recorded,
) -> anyhow::Result<()> {
    for document in documents {
        let imported = import(client, document).await?;
        assert!(!imported.already_imported, "{}", document.name);
        assert_eq!(imported.creditor_fiscal_code, MILANO);
        recorded.add(&imported);
    }
    Ok(())
}

fn label(value: i32) -> Option<Label> {
    let name = pb::ReconciliationLabel::try_from(value).ok()?.as_str_name();
    Label::parse(name.strip_prefix("RECONCILIATION_LABEL_")?)
}

fn state(value: i32) -> Option<FlowTreasuryState> {
    let name = pb::TreasuryState::try_from(value).ok()?.as_str_name();
    FlowTreasuryState::parse(name.strip_prefix("TREASURY_STATE_")?)
}

/// What a flow is, as compared: state, total, lines, its component's credits.
type FlowFacts = (Option<FlowTreasuryState>, i64, i64, Vec<String>);

/// What a transfer is, as compared: scope, label, amount, flow.
type TransferFacts = (Scope, Option<Label>, i64, Option<String>);

/// Reads every transfer, credit and flow back and compares them with `truth`; a difference
/// is reported with the generator's story of each key.
async fn assert_matches_truth(
    client: &mut Client,
    truth: &GroundTruth,
    context: &str,
) -> anyhow::Result<()> {
    // Transfers, both scopes.
    let listed = transfers(client, pb::ReconciliationScope::Unspecified).await?;
    let mut actual: BTreeMap<(String, String, String, u32), TransferFacts> = BTreeMap::new();
    for t in &listed {
        let scope = if t.scope == pb::ReconciliationScope::OtherBeneficiary as i32 {
            Scope::OtherBeneficiary
        } else {
            Scope::Creditor
        };
        let primary = label(t.label);
        // The primary label is one of the conditions that hold; another beneficiary's
        // transfer has none.
        match primary {
            Some(l) => assert!(
                t.labels.iter().any(|c| label(*c) == Some(l)),
                "{context}: {t:?}"
            ),
            None => assert!(t.labels.is_empty(), "{context}: {t:?}"),
        }
        let flow = (!t.flow_id.is_empty()).then(|| t.flow_id.clone());
        actual.insert(
            (
                t.creditor_fiscal_code.clone(),
                t.iuv.clone(),
                t.receipt_id.clone(),
                u32::try_from(t.id_transfer)?,
            ),
            (scope, primary, t.amount_cents, flow),
        );
    }
    assert_eq!(actual.len(), listed.len(), "{context}: a key listed twice");
    let expected: BTreeMap<(String, String, String, u32), (TransferFacts, &str)> = truth
        .transfers
        .iter()
        .map(|t| {
            (
                (
                    t.beneficiary.clone(),
                    t.iuv.clone(),
                    t.receipt_id.clone(),
                    t.id_transfer,
                ),
                (
                    (t.scope, t.label, t.amount_cents, t.flow_id.clone()),
                    t.story.as_str(),
                ),
            )
        })
        .collect();
    let mut wrong = Vec::new();
    for (key, (facts, story)) in &expected {
        match actual.get(key) {
            Some(got) if got == facts => {}
            got => wrong.push(format!(
                "{key:?} ({story}): expected {facts:?}, incasso has {got:?}"
            )),
        }
    }
    for (key, got) in &actual {
        if !expected.contains_key(key) {
            wrong.push(format!("{key:?}: not in the day, incasso has {got:?}"));
        }
    }
    assert!(
        wrong.is_empty(),
        "{context}: {} of {} transfers differ:\n{}",
        wrong.len(),
        expected.len(),
        wrong.join("\n")
    );

    // Credits.
    let mut credits = Vec::new();
    let mut token = String::new();
    loop {
        let page = client
            .list_treasury_credits(pb::ListTreasuryCreditsRequest {
                page_size: 1000,
                page_token: token,
                ..Default::default()
            })
            .await?
            .into_inner();
        credits.extend(page.credits);
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    let actual: BTreeMap<&str, (Option<Label>, i64, Vec<String>)> = credits
        .iter()
        .map(|c| {
            let mut flows = c.attributed_flow_ids.clone();
            flows.sort();
            (c.id.as_str(), (label(c.label), c.amount_cents, flows))
        })
        .collect();
    let expected: BTreeMap<&str, (Option<Label>, i64, Vec<String>)> = truth
        .credits
        .iter()
        .map(|c| {
            (
                c.id.as_str(),
                (Some(c.label), c.amount_cents, c.attributed_flow_ids.clone()),
            )
        })
        .collect();
    let stories: BTreeMap<&str, &str> = truth
        .credits
        .iter()
        .map(|c| (c.id.as_str(), c.story.as_str()))
        .collect();
    let mut wrong = Vec::new();
    for (id, facts) in &expected {
        if actual.get(id) != Some(facts) {
            wrong.push(format!(
                "{id} ({}): expected {facts:?}, incasso has {:?}",
                stories[id],
                actual.get(id)
            ));
        }
    }
    for id in actual.keys().filter(|id| !expected.contains_key(*id)) {
        wrong.push(format!("{id}: not a credit of the day"));
    }
    assert!(
        wrong.is_empty(),
        "{context}: credits differ:\n{}",
        wrong.join("\n")
    );

    // Flows: the revision that counts, its state and its component's credits.
    let mut flows = Vec::new();
    let mut token = String::new();
    loop {
        let page = client
            .list_reporting_flows(pb::ListReportingFlowsRequest {
                page_size: 1000,
                page_token: token,
                ..Default::default()
            })
            .await?
            .into_inner();
        flows.extend(page.flows);
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    let actual: BTreeMap<&str, FlowFacts> = flows
        .iter()
        .map(|f| {
            let mut credits = f.treasury_credit_ids.clone();
            credits.sort();
            (
                f.flow_id.as_str(),
                (
                    state(f.treasury_state),
                    f.total_cents,
                    f.line_count,
                    credits,
                ),
            )
        })
        .collect();
    let expected: BTreeMap<&str, FlowFacts> = truth
        .flows
        .iter()
        .map(|f| {
            (
                f.flow_id.as_str(),
                (
                    Some(f.state),
                    f.total_cents,
                    i64::try_from(f.line_count).unwrap_or(i64::MAX),
                    f.credit_ids.clone(),
                ),
            )
        })
        .collect();
    assert_eq!(actual, expected, "{context}: flows differ");

    // The summary of the three days: per label, and what was paid, reported and cashed.
    let summary = client
        .get_summary(pb::GetSummaryRequest {
            from: PAYMENT_DAY.to_string(),
            to: (PAYMENT_DAY + time::Duration::days(2)).to_string(),
            creditor_fiscal_code: MILANO.to_owned(),
        })
        .await?
        .into_inner();
    let totals = |list: &[pb::LabelTotal]| -> BTreeMap<Option<Label>, (i64, i64)> {
        list.iter()
            .map(|t| (label(t.label), (t.count, t.amount_cents)))
            .collect()
    };
    let own: Vec<_> = truth
        .transfers
        .iter()
        .filter(|t| t.scope == Scope::Creditor)
        .collect();
    let mut transfer_labels: BTreeMap<Option<Label>, (i64, i64)> = BTreeMap::new();
    for t in &own {
        let total = transfer_labels.entry(t.label).or_default();
        total.0 += 1;
        total.1 += t.amount_cents;
    }
    let mut credit_labels: BTreeMap<Option<Label>, (i64, i64)> = BTreeMap::new();
    for c in &truth.credits {
        let total = credit_labels.entry(Some(c.label)).or_default();
        total.0 += 1;
        total.1 += c.amount_cents;
    }
    let state_of: BTreeMap<&str, FlowTreasuryState> = truth
        .flows
        .iter()
        .map(|f| (f.flow_id.as_str(), f.state))
        .collect();
    let cashed: i64 = own
        .iter()
        .map(|t| {
            let flow_cashed = t
                .flow_id
                .as_deref()
                .is_some_and(|f| state_of[f] == FlowTreasuryState::Cashed);
            if flow_cashed {
                t.reported_cents.unwrap_or(0)
            } else if t.label == Some(Label::RtTes) {
                t.receipt_cents.unwrap_or(0)
            } else {
                0
            }
        })
        .sum();
    assert_eq!(
        (
            totals(&summary.transfer_labels),
            totals(&summary.credit_labels),
            summary.paid_cents,
            summary.reported_cents,
            summary.cashed_cents,
        ),
        (
            transfer_labels,
            credit_labels,
            own.iter().filter_map(|t| t.receipt_cents).sum(),
            own.iter().filter_map(|t| t.reported_cents).sum(),
            cashed,
        ),
        "{context}: the summary differs"
    );
    Ok(())
}
