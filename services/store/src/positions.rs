//! Use cases on debt positions: create (one, or a batch from a bulk stream), read, list,
//! update, cancel, and the amount payable on a day. Each command is one transaction holding
//! its idempotency record and its business rows; notice numbers are allocated just before it
//! (see [`crate::sequence`]).

use std::collections::{HashMap, HashSet};

use sea_orm::sea_query::{Expr, ExprTrait, Query};
use sea_orm::{
    AccessMode, ColumnTrait, Condition, ConnectionTrait, DatabaseTransaction, DbBackend,
    EntityTrait, IsolationLevel, Order, QueryFilter, QueryOrder, QuerySelect, Set,
    TransactionTrait,
};
use sha2::{Digest, Sha256};
use time::{Date, OffsetDateTime};
use uuid::Uuid;

use incasso_domain::citizen;
use incasso_domain::debt_position::input::{self, DebtPositionInput, NewDebtPosition};
use incasso_domain::debt_position::update::{
    self as position_update, CancelInput, PositionChange, UpdateError, UpdateInput,
};
use incasso_domain::debt_position::{
    DebtKind, DebtPosition, EffectiveInstallmentState, EffectivePositionState, InstallmentState,
    KindDetails, PositionState,
};
use incasso_domain::fiscal_code::{FiscalCode, OrganizationFiscalCode};
use incasso_domain::ledger::rules as ledger_rules;
use incasso_domain::money::AmountCents;
use incasso_domain::notice_number::NoticeNumber;
use incasso_domain::traffic_fine::FineBand;
use incasso_domain::validation::ValidationErrors;

use crate::batch::{MAX_BIND_PARAMETERS, insert_chunked, is_in};
use crate::entity::{command, debt_position, installment, payment_option, personal_data, transfer};
use crate::error::AppError;
use crate::idempotency::{CommandKey, CommandKind, request_sha256};
use crate::ledger::{self, SourceDocumentInput};
use crate::mapping::{self, PositionRows, StoredRows};
use crate::{Store, citizens, io_messages, outbox, page_token, sequence};

/// A position returned by a command, and whether it was a replay of an earlier request.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The position after the command.
    pub position: DebtPosition,
    /// True when the request id had already been processed with the same content.
    pub replayed: bool,
}

/// The filters of a list query, as sent.
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    /// Only this creditor's positions; empty for all.
    pub creditor_fiscal_code: String,
    /// Only this debtor's positions; empty for all.
    pub debtor_fiscal_code: String,
    /// Only this kind.
    pub kind: Option<DebtKind>,
    /// Only positions in this state (as of today).
    pub state: Option<EffectivePositionState>,
    /// 0 for the default (50), at most 1000.
    pub page_size: i32,
    /// From the previous page.
    pub page_token: String,
    /// The caller's scope, on top of the filters: `None` for everything.
    pub scope: Option<ListScope>,
}

/// The creditors and kinds a caller may see: a list returns nothing else.
#[derive(Debug, Clone, Default)]
pub struct ListScope {
    /// Creditors' fiscal codes.
    pub creditors: Vec<String>,
    /// Kinds.
    pub kinds: Vec<DebtKind>,
}

/// One page of positions, newest first.
#[derive(Debug, Clone)]
pub struct Page {
    /// The positions.
    pub positions: Vec<DebtPosition>,
    /// Token of the next page; empty on the last one.
    pub next_page_token: String,
}

/// The amount of a notice on a day.
#[derive(Debug, Clone)]
pub struct PayableAmount {
    /// The notice.
    pub notice_number: NoticeNumber,
    /// The day.
    pub day: Date,
    /// What it costs that day.
    pub amount: AmountCents,
    /// Whether it can be paid that day.
    pub payable: bool,
    /// Its state that day.
    pub state: EffectiveInstallmentState,
    /// For fines, which band applies.
    pub fine_band: Option<FineBand>,
    /// Its due date.
    pub due_date: Date,
}

const DEFAULT_PAGE_SIZE: u64 = 50;
const MAX_PAGE_SIZE: u64 = 1000;

impl Store {
    /// Creates a debt position, or replays an earlier identical request.
    pub async fn create_debt_position(
        &self,
        input: &DebtPositionInput,
    ) -> Result<Outcome, AppError> {
        let now = self.now();
        let new = input
            .parse(self.registry(), incasso_domain::rome_time::rome_date(now))
            .map_err(AppError::Invalid)?;
        let key = create_key(input, &new);
        if let Some(stored) = key.find(self.db()).await? {
            return self.replay(&key, &stored).await;
        }
        let mut bases = self
            .allocate(&new.creditor, new.installment_count(), now)
            .await?;
        let (rows, position) = self.rows_for(&new, &mut bases, now)?;
        let txn = self.db().begin().await?;
        if !key.record(&txn, position.id, now).await? {
            txn.rollback().await?;
            let stored = key
                .find(self.db())
                .await?
                .ok_or_else(|| AppError::Internal("command vanished after a conflict".into()))?;
            return self.replay(&key, &stored).await;
        }
        insert_rows(&txn, vec![rows]).await?;
        insert_chunked(
            &txn,
            vec![outbox::position_changed(position.id, "created", now)],
            10,
        )
        .await?;
        io_messages::queue(&txn, self.io_scheduling(), &[&position], now, true).await?;
        citizens::queue(
            &txn,
            self.citizen_changes(&position, citizen::on_issue(&position)),
            now,
        )
        .await?;
        let postings = ledger_rules::notice_issued(&position)
            .map(|draft| (draft, Some(0)))
            .into_iter()
            .collect();
        ledger::append(
            &txn,
            self.keys(),
            vec![request_document("grpc.CreateDebtPosition", input)],
            postings,
            now,
        )
        .await?;
        txn.commit().await?;
        self.outbox_queued();
        tracing::info!(
            debt_position = %position.id,
            creditor = %position.creditor.as_str(),
            kind = position.kind().as_str(),
            notices = new.installment_count(),
            "debt position created"
        );
        Ok(Outcome {
            position,
            replayed: false,
        })
    }

    /// Creates a batch of debt positions in one transaction; one result per input, in order.
    /// Invalid items and replays never affect the others. If the batch meets a concurrent
    /// copy of one of its requests, it falls back to creating its items one by one.
    pub async fn create_debt_positions(
        &self,
        inputs: &[DebtPositionInput],
    ) -> Vec<Result<Outcome, AppError>> {
        let now = self.now();
        let today = incasso_domain::rome_time::rome_date(now);
        let mut results: Vec<Option<Result<Outcome, AppError>>> =
            inputs.iter().map(|_| None).collect();
        let mut pending = Vec::new();
        let mut later = Vec::new();
        let mut seen = HashSet::new();
        for (i, input) in inputs.iter().enumerate() {
            match input.parse(self.registry(), today) {
                Err(errors) => results[i] = Some(Err(AppError::Invalid(errors))),
                Ok(new) => {
                    let key = create_key(input, &new);
                    if seen.insert((key.creditor_fiscal_code.clone(), key.request_id.clone())) {
                        pending.push((i, new, key));
                    } else {
                        // The same request twice in one batch: the second is a replay of the
                        // first, so it must run after the first commits.
                        later.push(i);
                    }
                }
            }
        }
        match self.create_batch(&pending, inputs, now).await {
            Ok(outcomes) => {
                for (i, outcome) in outcomes {
                    results[i] = Some(outcome);
                }
            }
            Err(error) => {
                tracing::warn!(%error, items = pending.len(), "batch create failed; retrying item by item");
                later.extend(pending.iter().map(|(i, _, _)| *i));
                later.sort_unstable();
            }
        }
        for i in later {
            results[i] = Some(self.create_debt_position(&inputs[i]).await);
        }
        results
            .into_iter()
            .map(|r| {
                r.unwrap_or_else(|| Err(AppError::Internal("batch item without a result".into())))
            })
            .collect()
    }

    async fn create_batch(
        &self,
        pending: &[(usize, NewDebtPosition, CommandKey)],
        inputs: &[DebtPositionInput],
        now: OffsetDateTime,
    ) -> Result<Vec<(usize, Result<Outcome, AppError>)>, AppError> {
        let mut outcomes = Vec::with_capacity(pending.len());
        if pending.is_empty() {
            return Ok(outcomes);
        }
        // One lookup per creditor, so it is a range scan of the primary key (creditor,
        // request_id) and stays as fast with millions of commands as with ten.
        let mut request_ids: HashMap<&str, Vec<String>> = HashMap::new();
        for (_, _, key) in pending {
            request_ids
                .entry(key.creditor_fiscal_code.as_str())
                .or_default()
                .push(key.request_id.clone());
        }
        let mut stored: HashMap<(String, String), command::Model> = HashMap::new();
        for (creditor, ids) in request_ids {
            for chunk in ids.chunks(MAX_BIND_PARAMETERS) {
                for row in command::Entity::find()
                    .filter(command::Column::CreditorFiscalCode.eq(creditor))
                    .filter(command::Column::RequestId.is_in(chunk.iter().cloned()))
                    .all(self.db())
                    .await?
                {
                    stored.insert(
                        (row.creditor_fiscal_code.clone(), row.request_id.clone()),
                        row,
                    );
                }
            }
        }
        let mut fresh = Vec::new();
        let mut replays = Vec::new();
        for (i, new, key) in pending {
            match stored.get(&(key.creditor_fiscal_code.clone(), key.request_id.clone())) {
                Some(row) => replays.push((*i, key.replay_of(row))),
                None => fresh.push((*i, new, key)),
            }
        }
        let replay_ids: Vec<Uuid> = replays
            .iter()
            .filter_map(|(_, r)| r.as_ref().ok().copied())
            .collect();
        let mut replayed: HashMap<Uuid, DebtPosition> = self
            .load_many(self.db(), &replay_ids)
            .await?
            .into_iter()
            .map(|p| (p.id, p))
            .collect();
        for (i, result) in replays {
            outcomes.push((
                i,
                result.and_then(|id| {
                    replayed
                        .remove(&id)
                        .map(|position| Outcome {
                            position,
                            replayed: true,
                        })
                        .ok_or_else(|| {
                            AppError::Internal(format!("replayed position {id} not found"))
                        })
                }),
            ));
        }
        if fresh.is_empty() {
            return Ok(outcomes);
        }
        let mut needed: HashMap<&OrganizationFiscalCode, usize> = HashMap::new();
        for (_, new, _) in &fresh {
            *needed.entry(&new.creditor).or_default() += new.installment_count();
        }
        let mut bases = HashMap::new();
        for (creditor, count) in needed {
            bases.insert(
                creditor.as_str().to_owned(),
                self.allocate(creditor, count, now).await?,
            );
        }
        let mut rows = Vec::with_capacity(fresh.len());
        let mut commands = Vec::with_capacity(fresh.len());
        let mut created = Vec::with_capacity(fresh.len());
        for (i, new, key) in fresh {
            let creditor_bases = bases
                .get_mut(new.creditor.as_str())
                .ok_or_else(|| AppError::Internal("no bases for creditor".into()))?;
            let (position_rows, position) = self.rows_for(new, creditor_bases, now)?;
            commands.push(key.active_model(position.id, now));
            rows.push(position_rows);
            created.push((i, position));
        }
        let txn = self.db().begin().await?;
        // Commands first: a concurrent copy of one of these requests fails here, before any
        // other row is written, and the caller retries the batch item by item.
        insert_chunked(&txn, commands, 6).await?;
        insert_rows(&txn, rows).await?;
        let events = created
            .iter()
            .map(|(_, p)| outbox::position_changed(p.id, "created", now))
            .collect();
        insert_chunked(&txn, events, 10).await?;
        let new_positions: Vec<&DebtPosition> = created.iter().map(|(_, p)| p).collect();
        io_messages::queue(&txn, self.io_scheduling(), &new_positions, now, true).await?;
        let pending = created
            .iter()
            .flat_map(|(_, p)| self.citizen_changes(p, citizen::on_issue(p)))
            .collect();
        citizens::queue(&txn, pending, now).await?;
        let mut documents = Vec::with_capacity(created.len());
        let mut postings = Vec::with_capacity(created.len());
        for (i, position) in &created {
            if let Some(draft) = ledger_rules::notice_issued(position) {
                postings.push((draft, Some(documents.len())));
                documents.push(request_document("grpc.CreateDebtPosition", &inputs[*i]));
            }
        }
        ledger::append(&txn, self.keys(), documents, postings, now).await?;
        txn.commit().await?;
        self.outbox_queued();
        tracing::info!(positions = created.len(), "debt positions created in bulk");
        outcomes.extend(created.into_iter().map(|(i, position)| {
            (
                i,
                Ok(Outcome {
                    position,
                    replayed: false,
                }),
            )
        }));
        Ok(outcomes)
    }

    /// Reserves `count` IUV bases of `creditor`'s segregation code.
    async fn allocate(
        &self,
        creditor: &OrganizationFiscalCode,
        count: usize,
        now: OffsetDateTime,
    ) -> Result<std::ops::Range<u64>, AppError> {
        let segregation_code = self
            .registry()
            .issuer(creditor.as_str())
            .and_then(|c| c.segregation_code())
            .ok_or_else(|| AppError::Internal("creditor without segregation code".into()))?;
        sequence::allocate(
            self.db(),
            creditor.as_str(),
            segregation_code.get(),
            count,
            now,
        )
        .await
    }

    fn rows_for(
        &self,
        new: &NewDebtPosition,
        bases: &mut impl Iterator<Item = u64>,
        now: OffsetDateTime,
    ) -> Result<(PositionRows, DebtPosition), AppError> {
        let segregation_code = self
            .registry()
            .issuer(new.creditor.as_str())
            .and_then(|c| c.segregation_code())
            .ok_or_else(|| AppError::Internal("creditor without segregation code".into()))?;
        mapping::new_position_rows(new, segregation_code, bases, self.keys(), now)
    }

    async fn replay(&self, key: &CommandKey, stored: &command::Model) -> Result<Outcome, AppError> {
        let id = key.replay_of(stored)?;
        let position = self.load(self.db(), id).await?;
        Ok(Outcome {
            position,
            replayed: true,
        })
    }

    /// Reads a position by id.
    pub async fn get_debt_position(&self, id: &str) -> Result<DebtPosition, AppError> {
        let id = parse_id("id", id)?;
        self.load(self.db(), id).await
    }

    /// Reads the position of a notice. `creditor` is needed only when several creditors
    /// issued the same number.
    pub async fn find_by_notice_number(
        &self,
        notice_number: &str,
        creditor: &str,
    ) -> Result<(DebtPosition, NoticeNumber), AppError> {
        let mut errors = ValidationErrors::new();
        let notice = errors.check("notice_number", NoticeNumber::parse(notice_number));
        let creditor = if creditor.trim().is_empty() {
            None
        } else {
            errors.check(
                "creditor_fiscal_code",
                OrganizationFiscalCode::parse(creditor.trim()),
            )
        };
        let Some(notice) = notice.filter(|_| errors.is_empty()) else {
            return Err(AppError::Invalid(errors));
        };
        let mut query = installment::Entity::find()
            .select_only()
            .column(installment::Column::DebtPositionId)
            .filter(installment::Column::NoticeNumber.eq(notice.as_str()));
        if let Some(creditor) = &creditor {
            query = query.filter(installment::Column::CreditorFiscalCode.eq(creditor.as_str()));
        }
        // The lookup and the load are several queries; a receipt or an update committing
        // between them would mix old and new rows (a paid installment in a position still
        // valid, transfers of the previous version). One read-only snapshot makes them all
        // see one committed state.
        let txn = self.read_snapshot().await?;
        let ids: Vec<Uuid> = query.into_tuple().all(&txn).await?;
        let found = match ids.as_slice() {
            [] => Err(AppError::NotFound {
                what: format!("notice {notice}"),
            }),
            [id] => self.load(&txn, *id).await.map(|p| (p, notice)),
            _ => Err(AppError::invalid(
                "creditor_fiscal_code",
                format!(
                    "required: notice {notice} was issued by {} creditors",
                    ids.len()
                ),
            )),
        };
        // Nothing was written: ending the snapshot either way is the same.
        txn.commit().await?;
        found
    }

    /// A read-only transaction with one consistent snapshot for every query in it:
    /// REPEATABLE READ on PostgreSQL (read-only, so it can never fail to serialize). SQLite
    /// has a single connection, which the transaction holds, so no write can interleave;
    /// it takes no isolation options.
    pub(crate) async fn read_snapshot(&self) -> Result<DatabaseTransaction, AppError> {
        Ok(match self.db().get_database_backend() {
            DbBackend::Postgres => {
                self.db()
                    .begin_with_config(
                        Some(IsolationLevel::RepeatableRead),
                        Some(AccessMode::ReadOnly),
                    )
                    .await?
            }
            _ => self.db().begin().await?,
        })
    }

    /// Lists positions, newest first.
    pub async fn list_debt_positions(&self, query: &ListQuery) -> Result<Page, AppError> {
        let mut errors = ValidationErrors::new();
        let creditor = if query.creditor_fiscal_code.trim().is_empty() {
            None
        } else {
            errors.check(
                "creditor_fiscal_code",
                OrganizationFiscalCode::parse(query.creditor_fiscal_code.trim()),
            )
        };
        let debtor_hash = if query.debtor_fiscal_code.trim().is_empty() {
            None
        } else {
            errors
                .check(
                    "debtor_fiscal_code",
                    FiscalCode::parse(query.debtor_fiscal_code.trim()),
                )
                .map(|code| self.keys().fiscal_code_hash(&code))
        };
        let page_size = page_token::page_size(
            &mut errors,
            query.page_size,
            DEFAULT_PAGE_SIZE,
            MAX_PAGE_SIZE,
        );
        let filter = filter_fingerprint(
            creditor.as_ref(),
            debtor_hash.as_deref(),
            query.kind,
            query.state,
        );
        let after = page_token::decode(&mut errors, &query.page_token, &filter);
        if !errors.is_empty() {
            return Err(AppError::Invalid(errors));
        }
        let today = self.today();
        let mut select = debt_position::Entity::find()
            .select_only()
            .column(debt_position::Column::Id)
            .order_by(debt_position::Column::Id, Order::Desc)
            .limit(page_size + 1);
        if let Some(creditor) = &creditor {
            select = select.filter(debt_position::Column::CreditorFiscalCode.eq(creditor.as_str()));
        }
        if let Some(hash) = debtor_hash {
            select = select.filter(debt_position::Column::DebtorFiscalCodeHash.eq(hash));
        }
        if let Some(kind) = query.kind {
            select = select.filter(debt_position::Column::Kind.eq(kind.as_str()));
        }
        if let Some(state) = query.state {
            select = select.filter(state_condition(state, today));
        }
        if let Some(scope) = &query.scope {
            select = select
                .filter(debt_position::Column::CreditorFiscalCode.is_in(scope.creditors.clone()))
                .filter(debt_position::Column::Kind.is_in(scope.kinds.iter().map(|k| k.as_str())));
        }
        if let Some(after) = after {
            select = select.filter(debt_position::Column::Id.lt(after));
        }
        let mut ids: Vec<Uuid> = select.into_tuple().all(self.db()).await?;
        let more = ids.len() as u64 > page_size;
        ids.truncate(usize::try_from(page_size).unwrap_or(usize::MAX));
        let next_page_token = match (more, ids.last()) {
            (true, Some(last)) => page_token::encode(*last, &filter),
            _ => String::new(),
        };
        let positions = self.load_many(self.db(), &ids).await?;
        Ok(Page {
            positions,
            next_page_token,
        })
    }

    /// Changes installments (and, for fines, the schedule) of a position.
    pub async fn update_debt_position(&self, input: &UpdateInput) -> Result<Outcome, AppError> {
        self.modify(Modification::Update(input)).await
    }

    /// Cancels a position.
    pub async fn cancel_debt_position(&self, input: &CancelInput) -> Result<Outcome, AppError> {
        self.modify(Modification::Cancel(input)).await
    }

    /// The skeleton of every change to an existing position: idempotency, a row lock taken
    /// by bumping the version first (so concurrent changes of one position queue on both
    /// engines), the plan on the locked state, the writes, one commit.
    async fn modify(&self, modification: Modification<'_>) -> Result<Outcome, AppError> {
        let (kind, request_id, id, hash) = match modification {
            Modification::Update(input) => (
                CommandKind::Update,
                &input.request_id,
                &input.id,
                request_sha256(CommandKind::Update, input),
            ),
            Modification::Cancel(input) => (
                CommandKind::Cancel,
                &input.request_id,
                &input.id,
                request_sha256(CommandKind::Cancel, input),
            ),
        };
        let mut errors = ValidationErrors::new();
        let request_id = input::request_id(&mut errors, request_id);
        let id = errors.check("id", parse_uuid(id));
        let (Some(request_id), Some(id)) = (request_id, id) else {
            return Err(AppError::Invalid(errors));
        };
        let creditor = debt_position::Entity::find_by_id(id)
            .select_only()
            .column(debt_position::Column::CreditorFiscalCode)
            .into_tuple::<String>()
            .one(self.db())
            .await?
            .ok_or_else(|| AppError::NotFound {
                what: format!("debt position {id}"),
            })?;
        let key = CommandKey {
            creditor_fiscal_code: creditor,
            request_id,
            kind,
            request_sha256: hash,
        };
        if let Some(stored) = key.find(self.db()).await? {
            return self.replay(&key, &stored).await;
        }
        let now = self.now();
        let txn = self.db().begin().await?;
        if !key.record(&txn, id, now).await? {
            txn.rollback().await?;
            let stored = key
                .find(self.db())
                .await?
                .ok_or_else(|| AppError::Internal("command vanished after a conflict".into()))?;
            return self.replay(&key, &stored).await;
        }
        lock_position(&txn, id, now).await?;
        let position = self.load(&txn, id).await?;
        let planned = match modification {
            Modification::Update(input) => {
                position_update::plan_update(&position, input, self.registry(), self.today())
                    .map(Planned::Change)
            }
            Modification::Cancel(input) => {
                position_update::plan_cancel(&position, &input.reason).map(Planned::Cancel)
            }
        };
        match planned {
            Ok(Planned::Change(change)) => apply_change(&txn, &position, change, now).await?,
            Ok(Planned::Cancel(reason)) => apply_cancel(&txn, id, reason, now).await?,
            Err(error) => {
                txn.rollback().await?;
                return Err(update_error(error));
            }
        }
        let before = position;
        let position = self.load(&txn, id).await?;
        let (draft, document) = match modification {
            Modification::Update(input) => (
                ledger_rules::notice_changed(&before, &position, "changed by UpdateDebtPosition"),
                request_document("grpc.UpdateDebtPosition", input),
            ),
            Modification::Cancel(input) => (
                ledger_rules::notice_cancelled(&before, input.reason.trim()),
                request_document("grpc.CancelDebtPosition", input),
            ),
        };
        if let Some(draft) = draft {
            ledger::append(
                &txn,
                self.keys(),
                vec![document],
                vec![(draft, Some(0))],
                now,
            )
            .await?;
        }
        let change = match modification {
            Modification::Update(_) => "changed",
            Modification::Cancel(_) => "cancelled",
        };
        insert_chunked(&txn, vec![outbox::position_changed(id, change, now)], 10).await?;
        if let Modification::Update(_) = modification {
            // Messages whose time moved are queued again; the old ones find the position no
            // longer plans them and send nothing.
            io_messages::queue(&txn, self.io_scheduling(), &[&position], now, false).await?;
        }
        let told = match modification {
            Modification::Update(_) => citizen::on_update(&before, &position),
            Modification::Cancel(_) => vec![citizen::on_cancel(&before)],
        };
        citizens::queue(&txn, self.citizen_changes(&position, told), now).await?;
        txn.commit().await?;
        self.outbox_queued();
        tracing::info!(
            debt_position = %id,
            command = kind.as_str(),
            version = position.version,
            "debt position changed"
        );
        Ok(Outcome {
            position,
            replayed: false,
        })
    }

    /// What `notice_number` costs on `day` (today in Europe/Rome when empty).
    pub async fn payable_amount(
        &self,
        notice_number: &str,
        creditor: &str,
        day: &str,
    ) -> Result<PayableAmount, AppError> {
        let day = if day.trim().is_empty() {
            self.today()
        } else {
            incasso_domain::validation::parse_date(day).map_err(|e| AppError::invalid("date", e))?
        };
        let (position, notice) = self.find_by_notice_number(notice_number, creditor).await?;
        let installment = position
            .installment(&notice)
            .ok_or_else(|| AppError::Internal("notice not in its own position".into()))?;
        let state = installment.effective_state(day);
        let fine_band = match &position.details {
            KindDetails::TrafficFine(fine) => Some(fine.schedule.band_on(day)),
            _ => None,
        };
        Ok(PayableAmount {
            notice_number: notice.clone(),
            day,
            amount: position.amount_payable_on(installment, day),
            payable: state == EffectiveInstallmentState::Unpaid,
            state,
            fine_band,
            due_date: installment.due_date,
        })
    }

    /// Loads one position with its options, installments, transfers and personal data.
    pub(crate) async fn load(
        &self,
        db: &impl ConnectionTrait,
        id: Uuid,
    ) -> Result<DebtPosition, AppError> {
        self.load_many(db, &[id])
            .await?
            .pop()
            .ok_or_else(|| AppError::NotFound {
                what: format!("debt position {id}"),
            })
    }

    /// Loads positions in the order of `ids` (missing ones are skipped), with five queries
    /// per batch whatever its size.
    pub(crate) async fn load_many(
        &self,
        db: &impl ConnectionTrait,
        ids: &[Uuid],
    ) -> Result<Vec<DebtPosition>, AppError> {
        let mut loaded = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(1000) {
            loaded.extend(self.load_chunk(db, chunk).await?);
        }
        Ok(loaded)
    }

    async fn load_chunk(
        &self,
        db: &impl ConnectionTrait,
        ids: &[Uuid],
    ) -> Result<Vec<DebtPosition>, AppError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let backend = db.get_database_backend();
        let positions = debt_position::Entity::find()
            .filter(is_in(backend, debt_position::Column::Id, ids.to_vec()))
            .all(db)
            .await?;
        self.load_children(db, ids, positions).await
    }

    /// Loads the positions whose rows are `positions` (read by the caller, e.g. as it locked
    /// them), in the order of `ids`, with their options, installments, transfers and personal
    /// data.
    pub(crate) async fn load_children(
        &self,
        db: &impl ConnectionTrait,
        ids: &[Uuid],
        positions: Vec<debt_position::Model>,
    ) -> Result<Vec<DebtPosition>, AppError> {
        if positions.is_empty() {
            return Ok(Vec::new());
        }
        let backend = db.get_database_backend();
        let personal_ids: Vec<Uuid> = positions.iter().map(|p| p.personal_data_id).collect();
        let mut personal: HashMap<Uuid, personal_data::Model> = personal_data::Entity::find()
            .filter(is_in(backend, personal_data::Column::Id, personal_ids))
            .all(db)
            .await?
            .into_iter()
            .map(|p| (p.id, p))
            .collect();
        let mut options: HashMap<Uuid, Vec<payment_option::Model>> = HashMap::new();
        for option in payment_option::Entity::find()
            .filter(is_in(
                backend,
                payment_option::Column::DebtPositionId,
                ids.to_vec(),
            ))
            .all(db)
            .await?
        {
            options
                .entry(option.debt_position_id)
                .or_default()
                .push(option);
        }
        let installment_rows = installment::Entity::find()
            .filter(is_in(
                backend,
                installment::Column::DebtPositionId,
                ids.to_vec(),
            ))
            .all(db)
            .await?;
        let mut transfers: HashMap<Uuid, Vec<transfer::Model>> = HashMap::new();
        let installment_ids: Vec<Uuid> = installment_rows.iter().map(|i| i.id).collect();
        for chunk in installment_ids.chunks(MAX_BIND_PARAMETERS) {
            for row in transfer::Entity::find()
                .filter(is_in(
                    backend,
                    transfer::Column::InstallmentId,
                    chunk.to_vec(),
                ))
                .all(db)
                .await?
            {
                transfers.entry(row.installment_id).or_default().push(row);
            }
        }
        let mut installments: HashMap<Uuid, Vec<installment::Model>> = HashMap::new();
        for row in installment_rows {
            installments
                .entry(row.debt_position_id)
                .or_default()
                .push(row);
        }
        let mut by_id: HashMap<Uuid, DebtPosition> = HashMap::with_capacity(positions.len());
        for position in positions {
            let id = position.id;
            let position_installments = installments.remove(&id).unwrap_or_default();
            let position_transfers = position_installments
                .iter()
                .filter_map(|i| transfers.remove(&i.id).map(|t| (i.id, t)))
                .collect();
            let rows = StoredRows {
                personal: personal.remove(&position.personal_data_id),
                options: options.remove(&id).unwrap_or_default(),
                installments: position_installments,
                transfers: position_transfers,
                position,
            };
            by_id.insert(id, mapping::position_from_rows(rows, self.keys())?);
        }
        Ok(ids.iter().filter_map(|id| by_id.remove(id)).collect())
    }
}

/// A command's request, stored as the source document of the entries it caused.
fn request_document(kind: &'static str, request: &impl serde::Serialize) -> SourceDocumentInput {
    SourceDocumentInput {
        kind,
        media_type: "application/json",
        #[allow(clippy::expect_used)]
        content: serde_json::to_vec(request).expect("requests always serialise"),
    }
}

fn create_key(input: &DebtPositionInput, new: &NewDebtPosition) -> CommandKey {
    CommandKey {
        creditor_fiscal_code: new.creditor.as_str().to_owned(),
        request_id: new.request_id.clone(),
        kind: CommandKind::Create,
        request_sha256: request_sha256(CommandKind::Create, input),
    }
}

/// A change to an existing position.
#[derive(Clone, Copy)]
enum Modification<'a> {
    Update(&'a UpdateInput),
    Cancel(&'a CancelInput),
}

/// What a modification will write.
enum Planned {
    Change(PositionChange),
    Cancel(String),
}

fn parse_uuid(value: &str) -> Result<Uuid, String> {
    Uuid::parse_str(value.trim())
        .map_err(|_| format!("'{}' is not a debt position id (UUID)", value.trim()))
}

fn parse_id(field: &str, value: &str) -> Result<Uuid, AppError> {
    parse_uuid(value).map_err(|e| AppError::invalid(field, e))
}

fn update_error(error: UpdateError) -> AppError {
    match error {
        UpdateError::Invalid(errors) => AppError::Invalid(errors),
        UpdateError::Refused(refused) => AppError::Refused(refused),
    }
}

/// Inserts the rows of new positions, table by table, in multi-row statements.
async fn insert_rows(txn: &DatabaseTransaction, rows: Vec<PositionRows>) -> Result<(), AppError> {
    let mut personal = Vec::with_capacity(rows.len());
    let mut positions = Vec::with_capacity(rows.len());
    let mut options = Vec::new();
    let mut installments = Vec::new();
    let mut transfers = Vec::new();
    for r in rows {
        personal.push(r.personal);
        positions.push(r.position);
        options.extend(r.options);
        installments.extend(r.installments);
        transfers.extend(r.transfers);
    }
    insert_chunked(txn, personal, 5).await?;
    insert_chunked(txn, positions, 28).await?;
    insert_chunked(txn, options, 4).await?;
    insert_chunked(txn, installments, 15).await?;
    insert_chunked(txn, transfers, 8).await?;
    Ok(())
}

/// Takes the position's row lock by bumping its version.
pub(crate) async fn lock_position(
    txn: &DatabaseTransaction,
    id: Uuid,
    now: OffsetDateTime,
) -> Result<(), AppError> {
    let bump = Query::update()
        .table(debt_position::Entity)
        .value(
            debt_position::Column::Version,
            Expr::col(debt_position::Column::Version).add(1),
        )
        .value(debt_position::Column::UpdatedAt, now)
        .and_where(debt_position::Column::Id.eq(id))
        .to_owned();
    let result = txn.execute(&bump).await?;
    if result.rows_affected() != 1 {
        return Err(AppError::NotFound {
            what: format!("debt position {id}"),
        });
    }
    Ok(())
}

async fn apply_change(
    txn: &DatabaseTransaction,
    position: &DebtPosition,
    change: PositionChange,
    now: OffsetDateTime,
) -> Result<(), AppError> {
    let mut expiry: HashMap<Uuid, Option<Date>> = position
        .installments()
        .map(|i| (i.id, i.expiry_date))
        .collect();
    for installment_change in &change.installments {
        let id = installment_change.installment_id;
        installment::Entity::update_many()
            .col_expr(
                installment::Column::AmountCents,
                Expr::value(installment_change.amount.get()),
            )
            .col_expr(
                installment::Column::DueDate,
                Expr::value(installment_change.due_date),
            )
            .col_expr(
                installment::Column::ExpiryDate,
                Expr::value(installment_change.expiry_date),
            )
            .col_expr(installment::Column::UpdatedAt, Expr::value(now))
            .filter(installment::Column::Id.eq(id))
            .filter(installment::Column::State.eq(InstallmentState::Unpaid.as_str()))
            .exec(txn)
            .await?;
        transfer::Entity::delete_many()
            .filter(transfer::Column::InstallmentId.eq(id))
            .exec(txn)
            .await?;
        insert_chunked(
            txn,
            mapping::transfer_rows(id, &installment_change.transfers),
            8,
        )
        .await?;
        expiry.insert(id, installment_change.expiry_date);
    }
    let mut row = debt_position::ActiveModel {
        id: Set(position.id),
        description: Set(change.description),
        expires_on: Set(mapping::expires_on(expiry.into_values())),
        updated_at: Set(now),
        ..Default::default()
    };
    if let Some(fine) = &change.traffic_fine {
        let columns = mapping::details_columns(&KindDetails::TrafficFine(fine.clone()));
        row.fine_report_number = columns.fine_report_number;
        row.fine_violation_date = columns.fine_violation_date;
        row.fine_notification_date = columns.fine_notification_date;
        row.fine_reduced_amount_cents = columns.fine_reduced_amount_cents;
        row.fine_full_amount_cents = columns.fine_full_amount_cents;
        row.fine_increased_amount_cents = columns.fine_increased_amount_cents;
        row.fine_notification_costs_cents = columns.fine_notification_costs_cents;
    }
    debt_position::Entity::update(row).exec(txn).await?;
    Ok(())
}

async fn apply_cancel(
    txn: &DatabaseTransaction,
    id: Uuid,
    reason: String,
    now: OffsetDateTime,
) -> Result<(), AppError> {
    installment::Entity::update_many()
        .col_expr(
            installment::Column::State,
            Expr::value(InstallmentState::Cancelled.as_str()),
        )
        .col_expr(installment::Column::UpdatedAt, Expr::value(now))
        .filter(installment::Column::DebtPositionId.eq(id))
        .filter(installment::Column::State.is_in([
            InstallmentState::Unpaid.as_str(),
            InstallmentState::Unpayable.as_str(),
        ]))
        .exec(txn)
        .await?;
    debt_position::Entity::update(debt_position::ActiveModel {
        id: Set(id),
        state: Set(PositionState::Cancelled.as_str().to_owned()),
        cancellation_reason: Set(Some(reason)),
        cancelled_at: Set(Some(now)),
        updated_at: Set(now),
        ..Default::default()
    })
    .exec(txn)
    .await?;
    Ok(())
}

/// The condition for a state filter on `today`: "valid" and "expired" depend on the day.
fn state_condition(state: EffectivePositionState, today: Date) -> Condition {
    let stored = |s: PositionState| debt_position::Column::State.eq(s.as_str());
    match state {
        EffectivePositionState::Valid => Condition::all().add(stored(PositionState::Valid)).add(
            Condition::any()
                .add(debt_position::Column::ExpiresOn.is_null())
                .add(debt_position::Column::ExpiresOn.gte(today)),
        ),
        EffectivePositionState::Expired => Condition::all()
            .add(stored(PositionState::Valid))
            .add(debt_position::Column::ExpiresOn.lt(today)),
        EffectivePositionState::PartiallyPaid => {
            Condition::all().add(stored(PositionState::PartiallyPaid))
        }
        EffectivePositionState::Paid => Condition::all().add(stored(PositionState::Paid)),
        EffectivePositionState::Cancelled => Condition::all().add(stored(PositionState::Cancelled)),
    }
}

/// A fingerprint of a list query's filters, so a page token cannot be used with other ones.
/// The debtor enters only through its keyed hash: a token never reveals a fiscal code.
fn filter_fingerprint(
    creditor: Option<&OrganizationFiscalCode>,
    debtor_hash: Option<&[u8]>,
    kind: Option<DebtKind>,
    state: Option<EffectivePositionState>,
) -> String {
    let mut hasher = Sha256::new();
    hasher.update(creditor.map_or("", |c| c.as_str()).as_bytes());
    hasher.update(b"\0");
    hasher.update(debtor_hash.unwrap_or_default());
    hasher.update(b"\0");
    hasher.update(kind.map_or("", DebtKind::as_str).as_bytes());
    hasher.update(b"\0");
    hasher.update(format!("{state:?}").as_bytes());
    hex::encode(&hasher.finalize()[..8])
}
