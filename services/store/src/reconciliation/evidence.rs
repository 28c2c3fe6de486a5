//! Loading one creditor's stored evidence as the domain's evidence items: the transfers paid
//! to it in receipts (whoever issued the notice) and flow lines, by IUV; every flow
//! revision's header, its treasury credits, and the last booking day its treasury documents
//! cover (the [`Skeleton`] every import reads whole).

use std::collections::{BTreeMap, BTreeSet};

use incasso_domain::notice_number::Iuv;
use incasso_domain::reconciliation::{
    CreditId, EvidenceItem, FlowId, FlowLine, OutcomeCode, ReceiptTransfer, ReportingFlow,
    TransferIndex, TransferKey, TreasuryCredit,
};
use incasso_domain::rome_time::rome_date;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, QueryFilter, QueryOrder, Statement,
};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::AppError;
use crate::entity::{recon_credit, recon_document, recon_flow};

fn corrupt(what: impl std::fmt::Display) -> AppError {
    AppError::Internal(format!("stored reconciliation evidence is invalid: {what}"))
}

fn placeholder(backend: DbBackend) -> &'static str {
    if backend == DbBackend::Postgres {
        "$1"
    } else {
        "?"
    }
}

/// The outcome code as stored.
pub(crate) fn outcome_from_code(code: i16) -> Result<OutcomeCode, AppError> {
    OutcomeCode::parse_code(&code.to_string()).map_err(corrupt)
}

/// The notice (NAV) each receipt paid, by (IUV, receiptId): what the books' entries name.
pub(crate) type ReceiptNotices = BTreeMap<(Iuv, String), String>;

/// The receipt transfers paid to `creditor` (beneficiary) of the IUVs `iuvs`, receipts not
/// paid excluded, and the notice each of their receipts paid (read in the same statement, so
/// the books need not read the receipts again).
pub(crate) async fn receipts_of_iuvs(
    db: &impl ConnectionTrait,
    creditor: &str,
    iuvs: &[String],
) -> Result<(Vec<EvidenceItem>, ReceiptNotices), AppError> {
    let backend = db.get_database_backend();
    let mut values = vec![creditor.into()];
    let filter = format!(" AND {}", in_list(backend, "t.iuv", iuvs, &mut values));
    let sql = format!(
        "SELECT t.iuv, t.receipt_id, t.id_transfer, t.amount_cents, r.paid_at, r.received_at, \
         r.stand_in, r.notice_number FROM receipt_transfer t {} \
         WHERE t.beneficiary_fiscal_code = {} AND r.classification <> 'not_paid'{filter} \
         ORDER BY r.received_at, t.receipt_row_id, t.transfer_index",
        receipt_of_transfer(backend),
        placeholder(backend)
    );
    let rows = db
        .query_all_raw(Statement::from_sql_and_values(backend, sql, values))
        .await?;
    let mut seen = BTreeSet::new();
    let mut items = Vec::with_capacity(rows.len());
    let mut notices = ReceiptNotices::new();
    for row in rows {
        let iuv: String = row.try_get("", "iuv")?;
        let receipt_id: String = row.try_get("", "receipt_id")?;
        let id_transfer: i16 = row.try_get("", "id_transfer")?;
        let paid_at: Option<OffsetDateTime> = row.try_get("", "paid_at")?;
        let received_at: OffsetDateTime = row.try_get("", "received_at")?;
        let key = TransferKey::new(
            Iuv::parse(&iuv).map_err(corrupt)?,
            &receipt_id,
            TransferIndex::new(i64::from(id_transfer)).map_err(corrupt)?,
        )
        .map_err(corrupt)?;
        notices
            .entry((key.iuv.clone(), key.receipt_id.clone()))
            .or_insert(row.try_get("", "notice_number")?);
        // Two transfers of one receipt with the same idTransfer (the XSD allows it): the
        // first is the key's; a receipt is never refused for it.
        if !seen.insert(key.clone()) {
            tracing::warn!(%key, "a receipt repeats an idTransfer; reconciliation reads the first");
            continue;
        }
        items.push(EvidenceItem::Receipt(ReceiptTransfer {
            key,
            amount_cents: row.try_get("", "amount_cents")?,
            paid_on: rome_date(paid_at.unwrap_or(received_at)),
            stand_in: row.try_get("", "stand_in")?,
        }));
    }
    Ok((items, notices))
}

/// How a statement reading receipt transfers `t` by IUV joins each one's receipt `r`. A slice
/// names a few thousand IUVs, a sliver of the receipts; but while it is a tenth of them (a
/// small day) PostgreSQL prefers scanning every receipt into a hash, in parallel, and keeps
/// doing so as the day grows, so each slice's cost grew with the day. On PostgreSQL the
/// receipt is therefore read by its key for each transfer (a `LATERAL` subquery that
/// `OFFSET 0` keeps from being turned back into a join); SQLite reads it so anyway.
pub(crate) fn receipt_of_transfer(backend: DbBackend) -> &'static str {
    if backend == DbBackend::Postgres {
        "CROSS JOIN LATERAL (SELECT r.paid_at, r.received_at, r.stand_in, r.notice_number, \
         r.classification FROM receipt r WHERE r.id = t.receipt_row_id OFFSET 0) r"
    } else {
        "JOIN receipt r ON r.id = t.receipt_row_id"
    }
}

/// `column IN (values)` for a raw statement whose parameters so far are `params`: on
/// PostgreSQL one array parameter (`= ANY`), on SQLite one parameter per value. Callers keep
/// `values` under the engines' limits (see [`super::scope`]'s chunks).
pub(crate) fn in_list(
    backend: DbBackend,
    column: &str,
    values: &[String],
    params: &mut Vec<sea_orm::Value>,
) -> String {
    if backend == DbBackend::Postgres {
        params.push(values.to_vec().into());
        format!("{column} = ANY(${})", params.len())
    } else {
        let marks = vec!["?"; values.len()].join(", ");
        params.extend(values.iter().map(|v| sea_orm::Value::from(v.clone())));
        if values.is_empty() {
            // `IN ()` is not SQL; nothing matches an empty list.
            return "1 = 0".to_owned();
        }
        format!("{column} IN ({marks})")
    }
}

/// A flow line as stored.
fn line_of_row(row: &sea_orm::QueryResult) -> Result<(Uuid, FlowLine), AppError> {
    let flow_row: Uuid = row.try_get("", "flow_row_id")?;
    let iuv: String = row.try_get("", "iuv")?;
    let receipt_id: String = row.try_get("", "receipt_id")?;
    let id_transfer: i16 = row.try_get("", "id_transfer")?;
    Ok((
        flow_row,
        FlowLine {
            key: TransferKey::new(
                Iuv::parse(&iuv).map_err(corrupt)?,
                &receipt_id,
                TransferIndex::new(i64::from(id_transfer)).map_err(corrupt)?,
            )
            .map_err(corrupt)?,
            amount_cents: row.try_get("", "amount_cents")?,
            outcome: outcome_from_code(row.try_get("", "outcome")?)?,
            paid_on: row.try_get("", "paid_on")?,
        },
    ))
}

/// The lines of the flow revisions `rows` (a creditor's, every revision) whose IUV is one of
/// `iuvs`, by flow row, in line order. Read by IUV alone (its index) and kept when the row is
/// one of `rows`: another creditor may have an IUV of the same text.
///
/// On PostgreSQL each IUV is looked up in the lines' index by itself (a `LATERAL` subquery
/// that `OFFSET 0` keeps from being turned back into a join). Asked as `iuv = ANY(…)`, the
/// planner judged a slice's 2,500 IUVs against statistics taken while the table was small
/// (the day's flows are new: `ANALYZE` found it empty) to match most of it, and read every
/// line stored so far for each slice: at a million receipts the FdR import spent 32 s
/// scanning for lines it never found, more with every flow.
pub(crate) async fn lines_of_iuvs(
    db: &impl ConnectionTrait,
    rows: &BTreeSet<Uuid>,
    iuvs: &[String],
) -> Result<BTreeMap<Uuid, Vec<FlowLine>>, AppError> {
    const COLUMNS: &str =
        "flow_row_id, line_number, iuv, receipt_id, id_transfer, amount_cents, outcome, paid_on";
    let backend = db.get_database_backend();
    let mut values = Vec::new();
    let sql = if backend == DbBackend::Postgres {
        values.push(iuvs.to_vec().into());
        format!(
            "SELECT l.* FROM (SELECT DISTINCT iuv FROM unnest($1::text[]) AS u(iuv)) u \
             CROSS JOIN LATERAL (SELECT {COLUMNS} FROM recon_flow_line \
             WHERE iuv = u.iuv OFFSET 0) l"
        )
    } else {
        let filter = in_list(backend, "iuv", iuvs, &mut values);
        format!("SELECT {COLUMNS} FROM recon_flow_line WHERE {filter}")
    };
    let found = db
        .query_all_raw(Statement::from_sql_and_values(backend, sql, values))
        .await?;
    let mut numbered: BTreeMap<Uuid, Vec<(i32, FlowLine)>> = BTreeMap::new();
    for row in found {
        let number: i32 = row.try_get("", "line_number")?;
        let (flow_row, line) = line_of_row(&row)?;
        if rows.contains(&flow_row) {
            numbered.entry(flow_row).or_default().push((number, line));
        }
    }
    Ok(numbered
        .into_iter()
        .map(|(row, mut lines)| {
            lines.sort_by_key(|(number, _)| *number);
            (row, lines.into_iter().map(|(_, line)| line).collect())
        })
        .collect())
}

/// Every line of the flow revisions `rows`, by flow row, in line order.
pub(crate) async fn lines_of_flows(
    db: &impl ConnectionTrait,
    rows: &[Uuid],
) -> Result<BTreeMap<Uuid, Vec<FlowLine>>, AppError> {
    let mut lines: BTreeMap<Uuid, Vec<FlowLine>> = BTreeMap::new();
    for row_id in rows {
        let backend = db.get_database_backend();
        let sql = format!(
            "SELECT flow_row_id, line_number, iuv, receipt_id, id_transfer, amount_cents, \
             outcome, paid_on FROM recon_flow_line WHERE flow_row_id = {} ORDER BY line_number",
            placeholder(backend)
        );
        let found = db
            .query_all_raw(Statement::from_sql_and_values(
                backend,
                sql,
                [(*row_id).into()],
            ))
            .await?;
        let out = lines.entry(*row_id).or_default();
        for row in found {
            out.push(line_of_row(&row)?.1);
        }
    }
    Ok(lines)
}

/// The IUVs of up to `limit` lines of the flow revision `row`, in line order after line
/// `after`, with the last line read; `None` past its last line. A flow of a big PSP holds
/// hundreds of thousands of lines, read a page at a time. An IUV of several lines may come in
/// more than one page.
pub(crate) async fn iuvs_of_flow_page(
    db: &impl ConnectionTrait,
    row: Uuid,
    after: Option<i32>,
    limit: usize,
) -> Result<Option<(BTreeSet<String>, i32)>, AppError> {
    let backend = db.get_database_backend();
    let sql = if backend == DbBackend::Postgres {
        "SELECT line_number, iuv FROM recon_flow_line WHERE flow_row_id = $1 \
         AND line_number > $2 ORDER BY line_number LIMIT $3"
    } else {
        "SELECT line_number, iuv FROM recon_flow_line WHERE flow_row_id = ? \
         AND line_number > ? ORDER BY line_number LIMIT ?"
    };
    let found = db
        .query_all_raw(Statement::from_sql_and_values(
            backend,
            sql,
            [
                row.into(),
                after.unwrap_or(i32::MIN).into(),
                i64::try_from(limit).unwrap_or(i64::MAX).into(),
            ],
        ))
        .await?;
    let mut last = None;
    let mut iuvs = BTreeSet::new();
    for row in found {
        last = Some(row.try_get::<i32>("", "line_number")?);
        iuvs.insert(row.try_get::<String>("", "iuv")?);
    }
    Ok(last.map(|last| (iuvs, last)))
}

/// What every import reads whole, however many receipts the creditor has: each flow
/// revision's header (lines left empty, with the row that holds it), the credits and the
/// treasury coverage. Flows and credits number a few per PSP and day; receipts and lines are
/// read by IUV, for the IUVs an import touches.
#[derive(Debug, Clone, Default)]
pub(crate) struct Skeleton {
    /// Every flow revision, oldest `created_at` first, without its lines.
    pub flows: Vec<(Uuid, ReportingFlow)>,
    /// Every credit.
    pub credits: Vec<TreasuryCredit>,
    /// The last booking day the treasury documents cover.
    pub coverage: Option<time::Date>,
    /// The flow revisions whose plain keys were left unwritten (`super::plain`).
    pub plain_rows: BTreeSet<Uuid>,
}

/// Reads `creditor`'s [`Skeleton`].
pub(crate) async fn skeleton(
    db: &impl ConnectionTrait,
    creditor: &str,
) -> Result<Skeleton, AppError> {
    let rows = recon_flow::Entity::find()
        .filter(recon_flow::Column::CreditorFiscalCode.eq(creditor))
        .order_by_asc(recon_flow::Column::CreatedAt)
        .all(db)
        .await?;
    let plain_rows = rows
        .iter()
        .filter(|h| h.plain_keys_unwritten)
        .map(|h| h.id)
        .collect();
    let flows = rows
        .into_iter()
        .map(|h| {
            Ok((
                h.id,
                ReportingFlow {
                    flow_id: FlowId::parse(&h.flow_id).map_err(corrupt)?,
                    revision: u32::try_from(h.revision).map_err(corrupt)?,
                    created_at: h.created_at,
                    psp_id: h.psp_id,
                    trn: h.trn,
                    regulation_date: h.regulation_date,
                    total_cents: h.total_cents,
                    lines: Vec::new(),
                },
            ))
        })
        .collect::<Result<_, AppError>>()?;
    Ok(Skeleton {
        flows,
        credits: credits(db, creditor).await?,
        coverage: coverage(db, creditor).await?,
        plain_rows,
    })
}

/// Every stored credit of `creditor`.
async fn credits(
    db: &impl ConnectionTrait,
    creditor: &str,
) -> Result<Vec<TreasuryCredit>, AppError> {
    recon_credit::Entity::find()
        .filter(recon_credit::Column::CreditorFiscalCode.eq(creditor))
        .all(db)
        .await?
        .into_iter()
        .map(|c| {
            Ok(TreasuryCredit {
                id: CreditId::parse(&c.credit_id).map_err(corrupt)?,
                amount_cents: c.amount_cents,
                booking_date: c.booking_date,
                value_date: c.value_date,
                causale: c.causale,
                trn: c.trn,
            })
        })
        .collect()
}

/// The last booking day `creditor`'s treasury documents cover.
async fn coverage(
    db: &impl ConnectionTrait,
    creditor: &str,
) -> Result<Option<time::Date>, AppError> {
    Ok(recon_document::Entity::find()
        .filter(recon_document::Column::CreditorFiscalCode.eq(creditor))
        .filter(recon_document::Column::CoverageDate.is_not_null())
        .all(db)
        .await?
        .into_iter()
        .filter_map(|d| d.coverage_date)
        .max())
}
