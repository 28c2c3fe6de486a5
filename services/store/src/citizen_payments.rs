//! The citizen's side of the read model: what one person owes and has paid, for the
//! Fascicolo del Cittadino. A citizen is found only through the keyed hash of their fiscal
//! code (as `ListDebtPositions` does), so no query and no page token carries the code; an
//! invalid code is refused naming the field, never repeating it. Every query of a call reads
//! one snapshot, so a receipt committing meanwhile is seen whole or not at all.

use std::collections::HashMap;

use sea_orm::sea_query::Query;
use sea_orm::{ColumnTrait, Condition, EntityTrait, Order, QueryFilter, QueryOrder, QuerySelect};
use sha2::{Digest, Sha256};
use time::Date;
use uuid::Uuid;

use incasso_domain::debt_position::{DebtKind, DebtPosition, Installment, PaymentOption};
use incasso_domain::fiscal_code::FiscalCode;
use incasso_domain::notice_number::NoticeNumber;
use incasso_domain::receipt::Classification;
use incasso_domain::validation::ValidationErrors;

use crate::entity::{debt_position, installment, receipt};
use crate::error::AppError;
use crate::receipts::query::{StoredReceipt, receipt_id_filter};
use crate::{Store, page_token};

const DEFAULT_PAGE_SIZE: u64 = 50;
const MAX_PAGE_SIZE: u64 = 1000;

/// Which of the citizen's notices to list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum CitizenNoticeFilter {
    /// What can be paid today: unpaid, not past its expiry date, not cancelled, not closed
    /// by another option's payment.
    Pending,
    /// Paid.
    Paid,
    /// Everything.
    #[default]
    All,
}

impl CitizenNoticeFilter {
    fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Paid => "paid",
            Self::All => "all",
        }
    }
}

/// A citizen notices query, as sent.
#[derive(Debug, Clone, Default)]
pub struct CitizenNoticeQuery {
    /// The citizen's fiscal code, as sent (checked here).
    pub fiscal_code: String,
    /// Which notices.
    pub filter: CitizenNoticeFilter,
    /// Only this kind.
    pub kind: Option<DebtKind>,
    /// 0 for the default (50), at most 1000.
    pub page_size: i32,
    /// From the previous page.
    pub page_token: String,
}

/// One of the citizen's notices, with its position (shared by the notices of one position)
/// and the day it was looked at.
#[derive(Debug, Clone)]
pub struct CitizenNotice {
    /// The notice's position, as stored now.
    pub position: std::sync::Arc<DebtPosition>,
    /// Index of the payment option in the position.
    pub option_index: usize,
    /// Index of the instalment in its option.
    pub installment_index: usize,
    /// The day (Europe/Rome) the states and amounts are for.
    pub today: Date,
    /// The receipt that paid it (settled or settled late), for a paid notice.
    pub receipt: Option<StoredReceipt>,
}

impl CitizenNotice {
    /// The notice's payment option.
    pub fn option(&self) -> &PaymentOption {
        &self.position.payment_options[self.option_index]
    }

    /// The notice itself.
    pub fn installment(&self) -> &Installment {
        &self.option().installments[self.installment_index]
    }
}

/// One page of a citizen's notices, newest first.
#[derive(Debug, Clone)]
pub struct CitizenNoticePage {
    /// The notices.
    pub notices: Vec<CitizenNotice>,
    /// Token of the next page; empty on the last one.
    pub next_page_token: String,
}

/// How [`Store::get_citizen_receipt`] finds a receipt; texts as sent, checked and named by
/// their field when wrong.
#[derive(Debug, Clone)]
pub enum CitizenReceiptLookup {
    /// By PagoPA's receiptId (`receipt_id`).
    ReceiptId(String),
    /// The receipt that paid a notice (`notice_number`).
    NoticeNumber(String),
}

/// The classifications of a receipt that paid its notice.
const PAYING: [Classification; 2] = [Classification::Settled, Classification::SettledLate];

impl Store {
    /// The citizen's notices matching the query, newest first.
    pub async fn list_citizen_notices(
        &self,
        query: &CitizenNoticeQuery,
    ) -> Result<CitizenNoticePage, AppError> {
        let mut errors = ValidationErrors::new();
        let citizen = self.citizen_hash(&mut errors, &query.fiscal_code);
        let page_size = page_token::page_size(
            &mut errors,
            query.page_size,
            DEFAULT_PAGE_SIZE,
            MAX_PAGE_SIZE,
        );
        let fingerprint = fingerprint(citizen.as_deref(), query.filter, query.kind);
        let after = page_token::decode(&mut errors, &query.page_token, &fingerprint);
        let Some(citizen) = citizen.filter(|_| errors.is_empty()) else {
            return Err(AppError::Invalid(errors));
        };
        let today = self.today();
        let mut positions = Query::select();
        positions
            .column(debt_position::Column::Id)
            .from(debt_position::Entity)
            .and_where(debt_position::Column::DebtorFiscalCodeHash.eq(citizen));
        if let Some(kind) = query.kind {
            positions.and_where(debt_position::Column::Kind.eq(kind.as_str()));
        }
        let mut select = installment::Entity::find()
            .select_only()
            .column(installment::Column::Id)
            .column(installment::Column::DebtPositionId)
            .filter(installment::Column::DebtPositionId.in_subquery(positions))
            .order_by(installment::Column::Id, Order::Desc)
            .limit(page_size + 1);
        select = match query.filter {
            CitizenNoticeFilter::All => select,
            CitizenNoticeFilter::Paid => select.filter(installment::Column::State.eq("paid")),
            CitizenNoticeFilter::Pending => select
                .filter(installment::Column::State.eq("unpaid"))
                .filter(
                    Condition::any()
                        .add(installment::Column::ExpiryDate.is_null())
                        .add(installment::Column::ExpiryDate.gte(today)),
                ),
        };
        if let Some(after) = after {
            select = select.filter(installment::Column::Id.lt(after));
        }
        let txn = self.read_snapshot().await?;
        let mut rows: Vec<(Uuid, Uuid)> = select.into_tuple().all(&txn).await?;
        let more = rows.len() as u64 > page_size;
        rows.truncate(usize::try_from(page_size).unwrap_or(usize::MAX));
        let next_page_token = match (more, rows.last()) {
            (true, Some((last, _))) => page_token::encode(*last, &fingerprint),
            _ => String::new(),
        };
        let mut position_ids: Vec<Uuid> = rows.iter().map(|(_, position)| *position).collect();
        position_ids.sort_unstable();
        position_ids.dedup();
        let positions: HashMap<Uuid, std::sync::Arc<DebtPosition>> = self
            .load_many(&txn, &position_ids)
            .await?
            .into_iter()
            .map(|p| (p.id, std::sync::Arc::new(p)))
            .collect();
        let paid_ids: Vec<Uuid> = rows.iter().map(|(id, _)| *id).collect();
        let mut receipts: HashMap<Uuid, StoredReceipt> = HashMap::new();
        for row in receipt::Entity::find()
            .filter(receipt::Column::InstallmentId.is_in(paid_ids))
            .filter(receipt::Column::Classification.is_in(PAYING.map(Classification::as_str)))
            .order_by(receipt::Column::Id, Order::Asc)
            .all(&txn)
            .await?
        {
            let stored = StoredReceipt::try_from(row)?;
            if let Some(installment) = stored.installment_id {
                // The first payment is the one that paid it.
                receipts.entry(installment).or_insert(stored);
            }
        }
        txn.commit().await?;
        let mut notices = Vec::with_capacity(rows.len());
        for (installment_id, position_id) in rows {
            let position = positions.get(&position_id).ok_or_else(|| {
                AppError::corrupt(format!(
                    "installment {installment_id}: position {position_id} missing"
                ))
            })?;
            let (option_index, installment_index) = position
                .place_where(|i| i.id == installment_id)
                .ok_or_else(|| {
                    AppError::corrupt(format!(
                        "installment {installment_id} missing from position {position_id}"
                    ))
                })?;
            notices.push(CitizenNotice {
                position: position.clone(),
                option_index,
                installment_index,
                today,
                receipt: receipts.remove(&installment_id),
            });
        }
        Ok(CitizenNoticePage {
            notices,
            next_page_token,
        })
    }

    /// A receipt of one of the citizen's payments: by receiptId, any receipt of money taken
    /// for one of their notices (a double payment too); by notice number, the receipt that
    /// paid that notice. Another citizen's receipt is not found, exactly like a missing one.
    pub async fn get_citizen_receipt(
        &self,
        fiscal_code: &str,
        lookup: &CitizenReceiptLookup,
    ) -> Result<StoredReceipt, AppError> {
        let mut errors = ValidationErrors::new();
        let citizen = self.citizen_hash(&mut errors, fiscal_code);
        let mut positions = Query::select();
        positions
            .column(debt_position::Column::Id)
            .from(debt_position::Entity)
            .and_where(debt_position::Column::DebtorFiscalCodeHash.eq(citizen.clone()));
        let mut select = receipt::Entity::find()
            .filter(receipt::Column::DebtPositionId.in_subquery(positions))
            .order_by(receipt::Column::Id, Order::Asc);
        let what = match lookup {
            CitizenReceiptLookup::ReceiptId(text) => {
                if text.trim().is_empty() {
                    errors.add("receipt_id", "required");
                }
                let receipt_id =
                    receipt_id_filter(&mut errors, "receipt_id", text).unwrap_or_default();
                select = select
                    .filter(receipt::Column::ReceiptId.eq(receipt_id.as_str()))
                    .filter(receipt::Column::Classification.is_not_in([
                        Classification::NotPaid.as_str(),
                        Classification::UnknownNotice.as_str(),
                    ]));
                format!("receipt {receipt_id} of this citizen")
            }
            CitizenReceiptLookup::NoticeNumber(notice) => {
                match errors.check("notice_number", NoticeNumber::parse(notice)) {
                    Some(notice) => {
                        select = select
                            .filter(receipt::Column::NoticeNumber.eq(notice.as_str()))
                            .filter(
                                receipt::Column::Classification
                                    .is_in(PAYING.map(Classification::as_str)),
                            );
                        format!("payment of notice {notice} by this citizen")
                    }
                    None => String::new(),
                }
            }
        };
        if !errors.is_empty() || citizen.is_none() {
            return Err(AppError::Invalid(errors));
        }
        let row = select
            .one(self.db())
            .await?
            .ok_or(AppError::NotFound { what })?;
        StoredReceipt::try_from(row)
    }

    /// The keyed hash of a citizen's fiscal code; a refusal names `fiscal_code` and says
    /// which rule failed, never the code.
    fn citizen_hash(&self, errors: &mut ValidationErrors, fiscal_code: &str) -> Option<Vec<u8>> {
        let fiscal_code = fiscal_code.trim();
        if fiscal_code.is_empty() {
            errors.add("fiscal_code", "required");
            return None;
        }
        errors
            .check("fiscal_code", FiscalCode::parse(fiscal_code))
            .map(|code| self.keys().fiscal_code_hash(&code))
    }
}

/// A fingerprint of a query's filters for its page tokens; the citizen enters only through
/// the keyed hash.
fn fingerprint(
    citizen: Option<&[u8]>,
    filter: CitizenNoticeFilter,
    kind: Option<DebtKind>,
) -> String {
    let mut hasher = Sha256::new();
    hasher.update(b"citizen\0");
    hasher.update(citizen.unwrap_or_default());
    hasher.update(b"\0");
    hasher.update(filter.as_str().as_bytes());
    hasher.update(b"\0");
    hasher.update(kind.map_or("", DebtKind::as_str).as_bytes());
    hex::encode(&hasher.finalize()[..8])
}
