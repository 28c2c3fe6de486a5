//! Loading one creditor's stored evidence as the domain's evidence items: the transfers paid
//! to it in receipts (whoever issued the notice), every flow revision with its lines, its
//! treasury credits, and the last booking day its treasury documents cover.

use std::collections::BTreeSet;

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

/// Every receipt transfer paid to `creditor` (beneficiary), receipts not paid excluded.
pub(crate) async fn receipts(
    db: &impl ConnectionTrait,
    creditor: &str,
) -> Result<Vec<EvidenceItem>, AppError> {
    let backend = db.get_database_backend();
    let sql = format!(
        "SELECT t.iuv, t.receipt_id, t.id_transfer, t.amount_cents, r.paid_at, r.received_at, \
         r.stand_in FROM receipt_transfer t JOIN receipt r ON r.id = t.receipt_row_id \
         WHERE t.beneficiary_fiscal_code = {} AND r.classification <> 'not_paid' \
         ORDER BY r.received_at, t.receipt_row_id, t.transfer_index",
        placeholder(backend)
    );
    let rows = db
        .query_all_raw(Statement::from_sql_and_values(
            backend,
            sql,
            [creditor.into()],
        ))
        .await?;
    let mut seen = BTreeSet::new();
    let mut items = Vec::with_capacity(rows.len());
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
    Ok(items)
}

/// Every stored flow revision of `creditor`, with its lines.
pub(crate) async fn flows(
    db: &impl ConnectionTrait,
    creditor: &str,
) -> Result<Vec<(Uuid, ReportingFlow)>, AppError> {
    let headers = recon_flow::Entity::find()
        .filter(recon_flow::Column::CreditorFiscalCode.eq(creditor))
        .order_by_asc(recon_flow::Column::CreatedAt)
        .all(db)
        .await?;
    let backend = db.get_database_backend();
    let sql = format!(
        "SELECT l.flow_row_id, l.line_number, l.iuv, l.receipt_id, l.id_transfer, \
         l.amount_cents, l.outcome, l.paid_on FROM recon_flow_line l \
         JOIN recon_flow f ON f.id = l.flow_row_id WHERE f.creditor_fiscal_code = {} \
         ORDER BY l.flow_row_id, l.line_number",
        placeholder(backend)
    );
    let rows = db
        .query_all_raw(Statement::from_sql_and_values(
            backend,
            sql,
            [creditor.into()],
        ))
        .await?;
    let mut lines: std::collections::BTreeMap<Uuid, Vec<FlowLine>> = Default::default();
    for row in rows {
        let flow_row: Uuid = row.try_get("", "flow_row_id")?;
        let iuv: String = row.try_get("", "iuv")?;
        let receipt_id: String = row.try_get("", "receipt_id")?;
        let id_transfer: i16 = row.try_get("", "id_transfer")?;
        lines.entry(flow_row).or_default().push(FlowLine {
            key: TransferKey::new(
                Iuv::parse(&iuv).map_err(corrupt)?,
                &receipt_id,
                TransferIndex::new(i64::from(id_transfer)).map_err(corrupt)?,
            )
            .map_err(corrupt)?,
            amount_cents: row.try_get("", "amount_cents")?,
            outcome: outcome_from_code(row.try_get("", "outcome")?)?,
            paid_on: row.try_get("", "paid_on")?,
        });
    }
    headers
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
                    lines: lines.remove(&h.id).unwrap_or_default(),
                },
            ))
        })
        .collect()
}

/// Every stored credit of `creditor`.
pub(crate) async fn credits(
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
pub(crate) async fn coverage(
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

/// Everything held for `creditor`, receipts first.
pub(crate) async fn all(
    db: &impl ConnectionTrait,
    creditor: &str,
) -> Result<(Vec<EvidenceItem>, Vec<EvidenceItem>), AppError> {
    let receipts = receipts(db, creditor).await?;
    let mut others: Vec<EvidenceItem> = flows(db, creditor)
        .await?
        .into_iter()
        .map(|(_, f)| EvidenceItem::Flow(f))
        .collect();
    others.extend(
        credits(db, creditor)
            .await?
            .into_iter()
            .map(EvidenceItem::Credit),
    );
    if let Some(day) = coverage(db, creditor).await? {
        others.push(EvidenceItem::TreasuryCoverage(day));
    }
    Ok((receipts, others))
}
