//! Importing one evidence document: read and check it (refused whole, nothing stored), then
//! in one transaction under the creditor's lock store what is new and relabel.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufReader, Read};
use std::path::Path;

use incasso_domain::reconciliation::{Evidence, EvidenceItem, ReportingFlow};
use incasso_domain::validation::ValidationErrors;
use incasso_reconciliation::{
    Collected, CreditRecord, DocumentKind, FlowHeader, ReversalRecord, Sink, TreasuryAccount,
    fdr_rest_document_name, read_document, read_fdr_rest,
};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseTransaction, DbBackend, EntityTrait,
    QueryFilter, Statement, TransactionTrait,
};
use sha2::{Digest, Sha256};
use time::Date;
use uuid::Uuid;

use super::accounts::TreasuryAccounts;
use super::duplicates::{self, CreditMovement};
use super::{evidence, labels, plans, reversals, scope};
use crate::batch::insert_chunked;
use crate::entity::{recon_credit, recon_document, recon_flow, recon_flow_line};
use crate::{AppError, Store};

/// What importing one document did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportOutcome {
    /// The file (or the uploaded document's name).
    pub file: String,
    /// Its format, as detected.
    pub kind: String,
    /// The creditor it belongs to.
    pub creditor: String,
    /// The same content was imported before: nothing changed.
    pub already_imported: bool,
    /// Flow revisions stored.
    pub flows_added: usize,
    /// Their lines.
    pub lines_added: usize,
    /// Flow revisions held already (same flow, same dataOraFlusso, same content).
    pub flows_already_held: usize,
    /// Treasury credits stored.
    pub credits_added: usize,
    /// Credits held already (the same credit in another document).
    pub credits_already_held: usize,
    /// Entries or movements that are not credits (debits, pending, reversals).
    pub other_movements: u64,
    /// Label changes written to history (including receipts caught up).
    pub label_changes: usize,
    /// Ledger entries posted (`reported`, `cashed`, and adjustments of earlier ones).
    pub ledger_entries_posted: usize,
    /// What the finance office should look at although the document was imported: a flow
    /// whose declared total differs from its lines, a reversal of a credit (not applied).
    pub warnings: Vec<String>,
}

/// One revision of one flow as the FdR API lists it (`FlowByPSP`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FdrRevision {
    /// The flow's id (`fdr`).
    pub fdr: String,
    /// The PSP that sent it (`pspId`).
    pub psp_id: String,
    /// Its revision, from 1.
    pub revision: u32,
}

fn refused(reason: impl std::fmt::Display) -> AppError {
    AppError::Invalid(ValidationErrors::single("document", reason))
}

/// Feeds the reader's records into a [`Collected`], checking which creditor they belong to.
struct Checking<'a> {
    accounts: &'a TreasuryAccounts,
    creditors: BTreeSet<String>,
    creditor: Option<String>,
    collected: Collected,
}

impl Checking<'_> {
    fn belongs_to(&mut self, creditor: &str) -> Result<(), String> {
        match &self.creditor {
            Some(held) if held != creditor => Err(format!(
                "the document mixes creditors {held} and {creditor}"
            )),
            _ => {
                self.creditor = Some(creditor.to_owned());
                Ok(())
            }
        }
    }
}

impl Sink for Checking<'_> {
    fn kind(&mut self, kind: DocumentKind) -> Result<(), String> {
        self.collected.kind(kind)
    }

    fn flow(&mut self, header: &FlowHeader) -> Result<(), String> {
        if !self.creditors.contains(&header.creditor_fiscal_code) {
            return Err(format!(
                "the flow is addressed to {}, which is not a creditor of this incasso",
                header.creditor_fiscal_code
            ));
        }
        self.belongs_to(&header.creditor_fiscal_code)?;
        self.collected.flow(header)
    }

    fn flow_line(&mut self, line: incasso_domain::reconciliation::FlowLine) -> Result<(), String> {
        self.collected.flow_line(line)
    }

    fn account(&mut self, account: &TreasuryAccount) -> Result<(), String> {
        let creditor = match account {
            TreasuryAccount::Iban(iban) => self.accounts.creditor_of_iban(iban).ok_or_else(|| {
                format!(
                    "account {iban} is not the treasury account of any creditor (treasury_ibans in the configuration)"
                )
            })?,
            TreasuryAccount::OpiEntity(code) => {
                self.accounts.creditor_of_opi_code(code).ok_or_else(|| {
                    format!(
                        "codice_ente {code} is not the opi_entity_code of any creditor in the configuration"
                    )
                })?
            }
        }
        .to_owned();
        self.belongs_to(&creditor)?;
        self.collected.account(account)
    }

    fn credit(&mut self, credit: CreditRecord) -> Result<(), String> {
        self.collected.credit(credit)
    }

    fn other_movement(&mut self) -> Result<(), String> {
        self.collected.other_movement()
    }

    fn reversal(&mut self, reversal: ReversalRecord) -> Result<(), String> {
        self.collected.reversal(reversal)
    }

    fn coverage(&mut self, last_day: Date) -> Result<(), String> {
        self.collected.coverage(last_day)
    }
}

/// Hashes what is read through it.
struct Hashing<R> {
    inner: R,
    hasher: Sha256,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// A document read and checked.
struct ReadDocument {
    sha256: String,
    kind: DocumentKind,
    creditor: String,
    collected: Collected,
}

fn read_checked(
    name: &str,
    source: impl Read,
    accounts: &TreasuryAccounts,
    creditors: BTreeSet<String>,
) -> Result<ReadDocument, AppError> {
    let mut sink = Checking {
        accounts,
        creditors,
        creditor: None,
        collected: Collected::default(),
    };
    let mut reader = BufReader::with_capacity(
        64 * 1024,
        Hashing {
            inner: source,
            hasher: Sha256::new(),
        },
    );
    let kind = read_document(name, &mut reader, &mut sink).map_err(refused)?;
    // Whatever follows the root element was not read: hash it too, so the identity is the
    // whole file's.
    let mut rest = Vec::new();
    reader
        .read_to_end(&mut rest)
        .map_err(|e| refused(format!("{name}: {e}")))?;
    let sha256 = hex::encode(reader.into_inner().hasher.finalize());
    let creditor = sink
        .creditor
        .ok_or_else(|| refused(format!("{name}: the document names no creditor or account")))?;
    Ok(ReadDocument {
        sha256,
        kind,
        creditor,
        collected: sink.collected,
    })
}

impl Store {
    /// Imports a reconciliation document from a file.
    pub async fn import_reconciliation_file(
        &self,
        path: &Path,
        accounts: &TreasuryAccounts,
    ) -> Result<ImportOutcome, AppError> {
        let name = path.display().to_string();
        let file = std::fs::File::open(path).map_err(|e| refused(format!("{name}: {e}")))?;
        let creditors = self.creditor_codes();
        let accounts_owned = accounts.clone();
        let reading_name = name.clone();
        let document = tokio::task::spawn_blocking(move || {
            read_checked(&reading_name, file, &accounts_owned, creditors)
        })
        .await
        .map_err(|e| AppError::Internal(format!("the reader stopped: {e}")))??;
        self.import_read(&name, document).await
    }

    /// Imports a reconciliation document given whole (an upload).
    pub async fn import_reconciliation_bytes(
        &self,
        name: &str,
        bytes: Vec<u8>,
        accounts: &TreasuryAccounts,
    ) -> Result<ImportOutcome, AppError> {
        let creditors = self.creditor_codes();
        let accounts_owned = accounts.clone();
        let reading_name = name.to_owned();
        let document = tokio::task::spawn_blocking(move || {
            read_checked(&reading_name, bytes.as_slice(), &accounts_owned, creditors)
        })
        .await
        .map_err(|e| AppError::Internal(format!("the reader stopped: {e}")))??;
        self.import_read(name, document).await
    }

    /// Imports one reporting flow revision fetched from the FdR REST API: `header` is the
    /// body of the flow's header, `pages` the bodies of its payment pages in order. It is
    /// one document, named after the API path, identified by the SHA-256 of those bodies:
    /// the same revision fetched twice stores nothing new.
    pub async fn import_fdr_rest_flow(
        &self,
        organization: &str,
        flow: &FdrRevision,
        header: &[u8],
        pages: &[Vec<u8>],
    ) -> Result<ImportOutcome, AppError> {
        let name = fdr_rest_document_name(organization, &flow.fdr, flow.revision, &flow.psp_id);
        let mut sink = Checking {
            accounts: &TreasuryAccounts::default(),
            creditors: self.creditor_codes(),
            creditor: None,
            collected: Collected::default(),
        };
        read_fdr_rest(&name, header, pages, &mut sink).map_err(refused)?;
        let (head, _) = sink
            .collected
            .flows
            .first()
            .ok_or_else(|| refused(format!("{name}: no flow was read")))?;
        // The path asked for one revision of one flow: an answer about another is not it.
        if head.flow_id.as_str() != flow.fdr
            || head.revision != Some(flow.revision)
            || head.psp_id != flow.psp_id
            || head.creditor_fiscal_code != organization
        {
            return Err(refused(format!(
                "{name}: the API answered flow {} revision {} of PSP {} for {}",
                head.flow_id,
                head.revision.unwrap_or_default(),
                head.psp_id,
                head.creditor_fiscal_code
            )));
        }
        let mut hasher = Sha256::new();
        for body in std::iter::once(header).chain(pages.iter().map(Vec::as_slice)) {
            // Length-prefixed, so the same bytes split differently are another document.
            hasher.update(u64::try_from(body.len()).unwrap_or(u64::MAX).to_be_bytes());
            hasher.update(body);
        }
        let document = ReadDocument {
            sha256: hex::encode(hasher.finalize()),
            kind: DocumentKind::FdrRest,
            creditor: organization.to_owned(),
            collected: sink.collected,
        };
        self.import_read(&name, document).await
    }

    /// The pool an import reads its slices ahead from: PostgreSQL's; SQLite's one
    /// connection is the import's own.
    fn read_ahead_pool(&self) -> Option<sea_orm::DatabaseConnection> {
        (self.db().get_database_backend() == DbBackend::Postgres).then(|| self.db().clone())
    }

    fn creditor_codes(&self) -> BTreeSet<String> {
        self.registry()
            .iter()
            .map(|c| c.fiscal_code().as_str().to_owned())
            .collect()
    }

    #[tracing::instrument(name = "reconciliation.import", skip_all, fields(kind = %document.kind))]
    async fn import_read(
        &self,
        name: &str,
        document: ReadDocument,
    ) -> Result<ImportOutcome, AppError> {
        let ReadDocument {
            sha256,
            kind,
            creditor,
            collected,
        } = document;
        let mut outcome = ImportOutcome {
            file: name.to_owned(),
            kind: kind.to_string(),
            creditor: creditor.clone(),
            already_imported: false,
            flows_added: 0,
            lines_added: 0,
            flows_already_held: 0,
            credits_added: 0,
            credits_already_held: 0,
            other_movements: collected.other_movements,
            label_changes: 0,
            ledger_entries_posted: 0,
            warnings: collected
                .reversals
                .iter()
                .map(ReversalRecord::warning)
                .collect(),
        };
        let now = self.now();
        let txn = self.db().begin().await?;
        lock_creditor(&txn, &creditor).await?;
        let held = recon_document::Entity::find()
            .filter(recon_document::Column::CreditorFiscalCode.eq(creditor.as_str()))
            .filter(recon_document::Column::ContentSha256.eq(sha256.as_str()))
            .one(&txn)
            .await?;
        if held.is_some() {
            outcome.already_imported = true;
            // Said when it was imported; nothing of it is new.
            outcome.warnings.clear();
            return Ok(outcome);
        }

        // Flow headers and credits, read whole; receipts and lines are read by IUV (`scope`).
        let skeleton = evidence::skeleton(&txn, &creditor).await?;
        let mut held_evidence = Evidence::new();
        for (_, flow) in &skeleton.flows {
            held_evidence
                .add(EvidenceItem::Flow(flow.clone()))
                .map_err(|e| AppError::Internal(format!("stored evidence: {e}")))?;
        }
        for credit in &skeleton.credits {
            held_evidence
                .add(EvidenceItem::Credit(credit.clone()))
                .map_err(|e| AppError::Internal(format!("stored evidence: {e}")))?;
        }
        let document_id = Uuid::now_v7();
        let coverage = collected.coverage.iter().max().copied();
        recon_document::Entity::insert(recon_document::ActiveModel {
            id: Set(document_id),
            creditor_fiscal_code: Set(creditor.clone()),
            content_sha256: Set(sha256),
            kind: Set(kind.to_string()),
            file_name: Set(name.to_owned()),
            coverage_date: Set(coverage),
            imported_at: Set(now),
        })
        .exec_without_returning(&txn)
        .await?;

        // What the document adds, checked against what is held; stored once the relabelling
        // has begun reading (`scope::begin`).
        let mut items = Vec::new();
        // The header of each new flow revision, in the order of `items`.
        let mut headers: Vec<Option<FlowHeader>> = Vec::new();
        for flow in collected.reporting_flows() {
            let held: Vec<&ReportingFlow> = held_evidence.flow_revisions(&flow.flow_id).collect();
            // A REST revision is the platform's (flow, revision); an XML flow is its
            // dataOraFlusso, and incasso numbers its revisions in the order they arrive.
            let rest = flow.revision > 0;
            let same = held.iter().find(|f| {
                if rest {
                    f.version() == flow.version()
                } else {
                    f.created_at == flow.created_at
                }
            });
            if let Some(same) = same {
                // The skeleton holds headers: the lines are read for this revision only.
                let row = skeleton
                    .flows
                    .iter()
                    .find(|(_, f)| f.flow_id == same.flow_id && f.version() == same.version())
                    .map(|(row, _)| *row);
                let same_lines = match row {
                    Some(row) => evidence::lines_of_flows(&txn, &[row])
                        .await?
                        .remove(&row)
                        .unwrap_or_default(),
                    None => Vec::new(),
                };
                if same_lines == flow.lines
                    && same.total_cents == flow.total_cents
                    && same.trn == flow.trn
                    && same.regulation_date == flow.regulation_date
                {
                    outcome.flows_already_held += 1;
                    continue;
                }
                return Err(refused(format!(
                    "{name}: flow {} of {} (revision {}) is already held with other content",
                    flow.flow_id, flow.created_at, same.revision
                )));
            }
            let revision = if rest {
                flow.revision
            } else {
                u32::try_from(held.len() + 1).unwrap_or(u32::MAX)
            };
            let flow = ReportingFlow { revision, ..flow };
            headers.push(
                collected
                    .flows
                    .iter()
                    .find(|(h, _)| h.flow_id == flow.flow_id)
                    .map(|(h, _)| h.clone()),
            );
            outcome.warnings.extend(flow.total_discrepancy());
            outcome.flows_added += 1;
            outcome.lines_added += flow.lines.len();
            items.push(EvidenceItem::Flow(flow));
        }
        // Each credit and reversal on the account of its own statement (a camt file may hold
        // statements of several of the creditor's accounts).
        let account_of = |account: Option<&TreasuryAccount>| {
            account
                .map(|a| match a {
                    TreasuryAccount::Iban(iban) => iban.clone(),
                    TreasuryAccount::OpiEntity(code) => format!("OPI:{code}"),
                })
                .unwrap_or_default()
        };
        let mut credit_rows = Vec::new();
        let mut new_movements = Vec::new();
        let mut in_document: BTreeMap<_, &incasso_domain::reconciliation::TreasuryCredit> =
            BTreeMap::new();
        for (record, account) in collected.credits_with_accounts() {
            let credit = &record.credit;
            let held = held_evidence
                .credit(&credit.id)
                .map(|h| &h.credit)
                .or_else(|| in_document.get(&credit.id).copied());
            if let Some(held) = held {
                let differ = held.differing_facts(credit);
                if held.is_restated_by(credit) {
                    if !differ.is_empty() {
                        outcome.warnings.push(format!(
                            "WARNING {name}: treasury credit {} is already held with another {} \
                             (booked {}, value {}, TRN {}; here booked {}, value {}, TRN {}): \
                             the credit held stands, as its amount and causale are the same",
                            credit.id,
                            differ.join(" and "),
                            held.booking_date,
                            held.value_date,
                            held.trn.as_deref().unwrap_or("none"),
                            credit.booking_date,
                            credit.value_date,
                            credit.trn.as_deref().unwrap_or("none"),
                        ));
                    }
                    outcome.credits_already_held += 1;
                    continue;
                }
                return Err(refused(format!(
                    "{name}: treasury credit {} is already held with another {} ({} cents, \
                     causale '{}'; here {} cents, causale '{}'): one id cannot be two movements",
                    credit.id,
                    differ.join(" and "),
                    held.amount_cents,
                    held.causale,
                    credit.amount_cents,
                    credit.causale,
                )));
            }
            credit_rows.push(recon_credit::ActiveModel {
                creditor_fiscal_code: Set(creditor.clone()),
                credit_id: Set(credit.id.as_str().to_owned()),
                amount_cents: Set(credit.amount_cents),
                booking_date: Set(credit.booking_date),
                value_date: Set(credit.value_date),
                causale: Set(credit.causale.clone()),
                trn: Set(credit.trn.clone()),
                ordering_party: Set(record.ordering_party.clone()),
                end_to_end_id: Set(record.end_to_end_id.clone()),
                account: Set(account_of(account)),
                document_id: Set(document_id),
            });
            outcome.credits_added += 1;
            in_document.insert(credit.id.clone(), credit);
            new_movements.push(CreditMovement {
                id: credit.id.clone(),
                amount_cents: credit.amount_cents,
                value_date: credit.value_date,
                trn: credit.trn.clone(),
                end_to_end_id: record.end_to_end_id.clone(),
            });
            items.push(EvidenceItem::Credit(credit.clone()));
        }
        if let Some(day) = coverage {
            items.push(EvidenceItem::TreasuryCoverage(day));
        }

        plans::reads_planned_afresh(&txn).await?;
        let relabelling = scope::begin(
            &txn,
            &creditor,
            &skeleton,
            &items,
            Some((document_id, name.to_owned(), kind.to_string())),
            |e| refused(format!("{name}: {e}")),
            scope::Relabelling {
                now,
                iuvs_per_slice: self.recon_iuvs_per_slice(),
                pool: self.read_ahead_pool(),
                plain_keys_composed: self.recon_plain_keys_composed(),
            },
        )
        .await?;
        // The document's rows, while its first slices are read ahead. Writes keep the plan
        // cache (`plans`).
        let flows = items.iter().filter_map(|item| match item {
            EvidenceItem::Flow(flow) => Some(flow),
            _ => None,
        });
        let plain_keys_composed = self.recon_plain_keys_composed();
        let reversal_accounts: Vec<String> = collected
            .reversals_with_accounts()
            .map(|(_, account)| account_of(account))
            .collect();
        let duplicate_warnings = plans::with_cached_plans(&txn, async {
            for (flow, header) in flows.zip(&headers) {
                insert_flow(
                    &txn,
                    &creditor,
                    document_id,
                    flow,
                    header.as_ref(),
                    plain_keys_composed,
                )
                .await?;
            }
            insert_chunked(&txn, credit_rows, 11).await?;
            reversals::keep(
                &txn,
                &creditor,
                document_id,
                &reversal_accounts,
                &collected.reversals,
            )
            .await?;
            duplicates::warnings(&txn, &creditor, &new_movements).await
        })
        .await?;
        outcome.warnings.extend(duplicate_warnings);
        let relabelled = relabelling.finish().await?;
        outcome.label_changes = relabelled.label_changes;
        // The books follow the evidence in the same transaction: neither is ever committed
        // without the other.
        outcome.ledger_entries_posted = relabelled.ledger_entries;
        txn.commit().await?;
        labels::record_counts(relabelled.counts);
        for warning in &outcome.warnings {
            tracing::warn!(file = name, creditor, "{warning}");
        }
        Ok(outcome)
    }

    /// Brings `creditor`'s labels, and the `reported` and `cashed` postings of its books, up
    /// to date with the receipts booked since the last import; returns the number of label
    /// changes written.
    pub async fn refresh_reconciliation(&self, creditor: &str) -> Result<usize, AppError> {
        self.refresh_reconciliation_waiting(creditor, None)
            .await
            .map(|changes| changes.unwrap_or(0))
    }

    /// [`Store::refresh_reconciliation`], waiting at most `wait` (when given) for an import
    /// or catch-up of the creditor that is running: `None` when it did not end in time.
    pub(crate) async fn refresh_reconciliation_waiting(
        &self,
        creditor: &str,
        wait: Option<std::time::Duration>,
    ) -> Result<Option<usize>, AppError> {
        let now = self.now();
        let txn = self.db().begin().await?;
        if !lock_creditor_within(&txn, creditor, wait).await? {
            txn.rollback().await?;
            return Ok(None);
        }
        plans::reads_planned_afresh(&txn).await?;
        let skeleton = evidence::skeleton(&txn, creditor).await?;
        let relabelled = scope::relabel(
            &txn,
            creditor,
            &skeleton,
            &[],
            None,
            |e| AppError::Internal(format!("stored evidence contradicts itself: {e}")),
            scope::Relabelling {
                now,
                iuvs_per_slice: self.recon_iuvs_per_slice(),
                pool: self.read_ahead_pool(),
                plain_keys_composed: self.recon_plain_keys_composed(),
            },
        )
        .await?;
        txn.commit().await?;
        labels::record_counts(relabelled.counts);
        Ok(Some(relabelled.label_changes))
    }
}

/// Serialises imports of one creditor: each relabels from the evidence the previous one
/// committed. SQLite has a single writer anyway.
pub(super) async fn lock_creditor(
    db: &impl ConnectionTrait,
    creditor: &str,
) -> Result<(), AppError> {
    lock_creditor_within(db, creditor, None).await.map(|_| ())
}

/// [`lock_creditor`], giving up after `wait` (when given): `false` when another import or
/// catch-up of the creditor held it that long. On SQLite the single writer waits its busy
/// timeout instead.
async fn lock_creditor_within(
    db: &impl ConnectionTrait,
    creditor: &str,
    wait: Option<std::time::Duration>,
) -> Result<bool, AppError> {
    if db.get_database_backend() != DbBackend::Postgres {
        return Ok(true);
    }
    let Some(wait) = wait else {
        lock_creditor_row(db, creditor).await?;
        return Ok(true);
    };
    let millis = wait.as_millis().clamp(1, 3_600_000);
    db.execute_unprepared(&format!("SET LOCAL lock_timeout = {millis}"))
        .await?;
    match lock_creditor_row(db, creditor).await {
        Ok(()) => {}
        // The wait is over; the transaction is aborted, and its caller rolls it back.
        Err(error) if sqlstate(&error).as_deref() == Some(LOCK_NOT_AVAILABLE) => {
            return Ok(false);
        }
        Err(error) => return Err(error.into()),
    }
    db.execute_unprepared("SET LOCAL lock_timeout TO DEFAULT")
        .await?;
    Ok(true)
}

/// PostgreSQL's SQLSTATE for a lock wait that ran out (`lock_timeout`).
const LOCK_NOT_AVAILABLE: &str = "55P03";

/// The SQLSTATE of a database error, if the database gave one.
fn sqlstate(error: &sea_orm::DbErr) -> Option<String> {
    use sea_orm::{DbErr, RuntimeErr};
    let (DbErr::Exec(RuntimeErr::SqlxError(sqlx)) | DbErr::Query(RuntimeErr::SqlxError(sqlx))) =
        error
    else {
        return None;
    };
    sqlx.as_database_error()
        .and_then(|database| database.code())
        .map(|code| code.into_owned())
}

async fn lock_creditor_row(
    db: &impl ConnectionTrait,
    creditor: &str,
) -> Result<(), sea_orm::DbErr> {
    db.execute_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "SELECT fiscal_code FROM creditor WHERE fiscal_code = $1 FOR UPDATE",
        [creditor.into()],
    ))
    .await?;
    Ok(())
}

async fn insert_flow(
    txn: &DatabaseTransaction,
    creditor: &str,
    document_id: Uuid,
    flow: &ReportingFlow,
    header: Option<&FlowHeader>,
    plain_keys_unwritten: bool,
) -> Result<(), AppError> {
    let id = Uuid::now_v7();
    recon_flow::Entity::insert(recon_flow::ActiveModel {
        id: Set(id),
        creditor_fiscal_code: Set(creditor.to_owned()),
        flow_id: Set(flow.flow_id.as_str().to_owned()),
        revision: Set(i32::try_from(flow.revision).unwrap_or(i32::MAX)),
        created_at: Set(flow.created_at),
        psp_id: Set(flow.psp_id.clone()),
        psp_name: Set(header.and_then(|h| h.psp_name.clone())),
        bic: Set(header.and_then(|h| h.bic.clone())),
        trn: Set(flow.trn.clone()),
        regulation_date: Set(flow.regulation_date),
        total_cents: Set(flow.total_cents),
        line_count: Set(i64::try_from(flow.lines.len()).unwrap_or(i64::MAX)),
        lines_cents: Set(flow.lines_cents()),
        document_id: Set(document_id),
        // Set once its keys are labelled (`scope::relabel`).
        keys_composed: Set(false),
        // Its plain keys are left as their receipts left them (`plain`).
        plain_keys_unwritten: Set(plain_keys_unwritten),
    })
    .exec_without_returning(txn)
    .await?;
    let rows: Vec<recon_flow_line::ActiveModel> = flow
        .lines
        .iter()
        .enumerate()
        .map(|(n, line)| recon_flow_line::ActiveModel {
            flow_row_id: Set(id),
            line_number: Set(i32::try_from(n + 1).unwrap_or(i32::MAX)),
            iuv: Set(line.key.iuv.as_str().to_owned()),
            receipt_id: Set(line.key.receipt_id.clone()),
            id_transfer: Set(i16::from(line.key.transfer_index.get())),
            amount_cents: Set(line.amount_cents),
            outcome: Set(i16::from(line.outcome.code())),
            paid_on: Set(line.paid_on),
        })
        .collect();
    insert_chunked(txn, rows, 8).await
}
