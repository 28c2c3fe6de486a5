//! The one conversion layer between rows and the domain: new positions become rows, rows
//! become [`DebtPosition`]s. Stored values are parsed back through the domain's own parsers,
//! so a row that no longer satisfies a domain rule is reported as corrupt, never served.

use std::collections::HashMap;

use sea_orm::Set;
use time::{Date, OffsetDateTime};
use uuid::Uuid;

use incasso_domain::debt_position::input::NewDebtPosition;
use incasso_domain::debt_position::{
    DebtKind, DebtPosition, Debtor, Installment, InstallmentState, KindDetails, PaymentOption,
    PositionState, SchoolFeeDetails, SchoolService, TariDetails, TrafficFineDetails, Transfer,
};
use incasso_domain::fiscal_code::OrganizationFiscalCode;
use incasso_domain::iban::Iban;
use incasso_domain::money::AmountCents;
use incasso_domain::notice_number::{Iuv, IuvBase, NoticeNumber, SegregationCode};
use incasso_domain::taxonomy::TaxonomyCode;
use incasso_domain::traffic_fine::{FineAmounts, FineSchedule};

use crate::entity::{debt_position, installment, payment_option, personal_data, transfer};
use crate::error::AppError;
use crate::pii::{PersonalRecord, PrivacyKeys};

/// Every row of one new position.
pub(crate) struct PositionRows {
    pub personal: personal_data::ActiveModel,
    pub position: debt_position::ActiveModel,
    pub options: Vec<payment_option::ActiveModel>,
    pub installments: Vec<installment::ActiveModel>,
    pub transfers: Vec<transfer::ActiveModel>,
}

fn small(index: usize) -> i16 {
    i16::try_from(index).unwrap_or(i16::MAX)
}

/// The rows of `new` and the position they describe, with notice numbers from `bases`.
pub(crate) fn new_position_rows(
    new: &NewDebtPosition,
    segregation_code: SegregationCode,
    bases: &mut impl Iterator<Item = u64>,
    keys: &PrivacyKeys,
    now: OffsetDateTime,
) -> Result<(PositionRows, DebtPosition), AppError> {
    let id = Uuid::now_v7();
    let personal_id = Uuid::now_v7();
    let plate = match &new.details {
        KindDetails::TrafficFine(fine) => Some(fine.plate.clone()),
        _ => None,
    };
    let record = PersonalRecord {
        entity_type: new.debtor.entity_type,
        fiscal_code: new.debtor.fiscal_code.clone(),
        full_name: new.debtor.full_name.clone(),
        email: new.debtor.email.clone(),
        plate,
    };
    let sealed = keys.seal(personal_id, &record);
    let personal = personal_data::ActiveModel {
        id: Set(personal_id),
        key_id: Set(sealed.key_id),
        nonce: Set(sealed.nonce),
        ciphertext: Set(sealed.ciphertext),
        created_at: Set(now),
    };

    let creditor = new.creditor.as_str();
    let mut options = Vec::with_capacity(new.payment_options.len());
    let mut installments = Vec::with_capacity(new.installment_count());
    let mut transfers = Vec::new();
    let mut domain_options = Vec::with_capacity(new.payment_options.len());
    for (o, option) in new.payment_options.iter().enumerate() {
        let option_id = Uuid::now_v7();
        options.push(payment_option::ActiveModel {
            id: Set(option_id),
            debt_position_id: Set(id),
            option_index: Set(small(o)),
            label: Set(option.label.clone()),
        });
        let mut domain_installments = Vec::with_capacity(option.installments.len());
        for (i, new_installment) in option.installments.iter().enumerate() {
            let base = bases.next().ok_or_else(|| {
                AppError::Internal("fewer IUV bases allocated than needed".into())
            })?;
            let base = IuvBase::new(base).map_err(|e| AppError::Internal(e.to_string()))?;
            let notice_number = NoticeNumber::issue(segregation_code, base);
            let iuv = notice_number.iuv();
            let installment_id = Uuid::now_v7();
            installments.push(installment::ActiveModel {
                id: Set(installment_id),
                debt_position_id: Set(id),
                payment_option_id: Set(option_id),
                option_index: Set(small(o)),
                installment_index: Set(small(i)),
                creditor_fiscal_code: Set(creditor.to_owned()),
                notice_number: Set(notice_number.as_str().to_owned()),
                iuv: Set(iuv.as_str().to_owned()),
                amount_cents: Set(new_installment.amount.get()),
                due_date: Set(new_installment.due_date),
                expiry_date: Set(new_installment.expiry_date),
                state: Set(InstallmentState::Unpaid.as_str().to_owned()),
                paid_at: Set(None),
                created_at: Set(now),
                updated_at: Set(now),
            });
            transfers.extend(transfer_rows(installment_id, &new_installment.transfers));
            domain_installments.push(Installment {
                id: installment_id,
                notice_number,
                iuv,
                amount: new_installment.amount,
                due_date: new_installment.due_date,
                expiry_date: new_installment.expiry_date,
                state: InstallmentState::Unpaid,
                transfers: new_installment.transfers.clone(),
            });
        }
        domain_options.push(PaymentOption {
            id: option_id,
            label: option.label.clone(),
            installments: domain_installments,
        });
    }

    let position_domain = DebtPosition {
        id,
        request_id: new.request_id.clone(),
        creditor: new.creditor.clone(),
        debtor: Some(new.debtor.clone()),
        description: new.description.clone(),
        details: new.details.clone(),
        state: PositionState::Valid,
        payment_options: domain_options,
        version: 1,
        cancellation_reason: None,
        created_at: now,
        updated_at: now,
    };
    let mut position = debt_position::ActiveModel {
        id: Set(id),
        creditor_fiscal_code: Set(creditor.to_owned()),
        request_id: Set(new.request_id.clone()),
        kind: Set(new.kind().as_str().to_owned()),
        description: Set(new.description.clone()),
        state: Set(PositionState::Valid.as_str().to_owned()),
        expires_on: Set(position_domain.expires_on()),
        debtor_entity_type: Set(new.debtor.entity_type.as_str().to_owned()),
        debtor_fiscal_code_hash: Set(keys.fiscal_code_hash(&new.debtor.fiscal_code)),
        personal_data_id: Set(personal_id),
        version: Set(1),
        cancellation_reason: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
        cancelled_at: Set(None),
        ..details_columns(&new.details)
    };
    position.id = Set(id);
    Ok((
        PositionRows {
            personal,
            position,
            options,
            installments,
            transfers,
        },
        position_domain,
    ))
}

/// The kind-specific columns of a position; every other column unset. All three kinds' columns
/// are set (to NULL when not this kind) so that multi-row inserts have identical column lists.
pub(crate) fn details_columns(details: &KindDetails) -> debt_position::ActiveModel {
    let mut model = debt_position::ActiveModel {
        tari_tax_year: Set(None),
        tari_property_ref: Set(None),
        fine_report_number: Set(None),
        fine_violation_date: Set(None),
        fine_notification_date: Set(None),
        fine_reduced_amount_cents: Set(None),
        fine_full_amount_cents: Set(None),
        fine_increased_amount_cents: Set(None),
        fine_notification_costs_cents: Set(None),
        school_pupil_ref: Set(None),
        school_service: Set(None),
        school_year: Set(None),
        school_month: Set(None),
        ..Default::default()
    };
    match details {
        KindDetails::Tari(tari) => {
            model.tari_tax_year = Set(Some(tari.tax_year));
            model.tari_property_ref = Set(Some(tari.property_ref.clone()));
        }
        KindDetails::TrafficFine(fine) => {
            let amounts = fine.schedule.amounts();
            model.fine_report_number = Set(Some(fine.report_number.clone()));
            model.fine_violation_date = Set(Some(fine.violation_date));
            model.fine_notification_date = Set(Some(fine.schedule.notification_date()));
            model.fine_reduced_amount_cents = Set(Some(amounts.reduced().get()));
            model.fine_full_amount_cents = Set(Some(amounts.full().get()));
            model.fine_increased_amount_cents = Set(Some(amounts.increased().get()));
            model.fine_notification_costs_cents = Set(Some(amounts.notification_costs_cents()));
        }
        KindDetails::SchoolFee(fee) => {
            model.school_pupil_ref = Set(Some(fee.pupil_ref.clone()));
            model.school_service = Set(Some(fee.service.as_str().to_owned()));
            model.school_year = Set(Some(fee.school_year.clone()));
            model.school_month = Set(fee.month.clone());
        }
    }
    model
}

/// The transfer rows of an installment, indexed 1..=5 as PagoPA's idTransfer.
pub(crate) fn transfer_rows(
    installment_id: Uuid,
    transfers: &[Transfer],
) -> Vec<transfer::ActiveModel> {
    transfers
        .iter()
        .enumerate()
        .map(|(t, transfer)| transfer::ActiveModel {
            installment_id: Set(installment_id),
            transfer_index: Set(small(t + 1)),
            beneficiary_fiscal_code: Set(transfer.beneficiary.as_str().to_owned()),
            amount_cents: Set(transfer.amount.get()),
            remittance_information: Set(transfer.remittance_information.clone()),
            iban: Set(transfer.iban.as_str().to_owned()),
            postal_iban: Set(transfer
                .postal_iban
                .as_ref()
                .map(|iban| iban.as_str().to_owned())),
            taxonomy_code: Set(transfer.taxonomy.as_str().to_owned()),
        })
        .collect()
}

/// The rows of one stored position.
pub(crate) struct StoredRows {
    pub position: debt_position::Model,
    pub personal: Option<personal_data::Model>,
    pub options: Vec<payment_option::Model>,
    pub installments: Vec<installment::Model>,
    pub transfers: HashMap<Uuid, Vec<transfer::Model>>,
}

fn parsed<T, E: std::fmt::Display>(
    what: &str,
    id: Uuid,
    result: Result<T, E>,
) -> Result<T, AppError> {
    result.map_err(|e| AppError::corrupt(format!("{what} of debt position {id}: {e}")))
}

/// Rebuilds a position from its rows.
pub(crate) fn position_from_rows(
    rows: StoredRows,
    keys: &PrivacyKeys,
) -> Result<DebtPosition, AppError> {
    let row = rows.position;
    let id = row.id;
    let record = rows.personal.and_then(|p| {
        let record = keys.open(p.id, &p.key_id, &p.nonce, &p.ciphertext);
        if record.is_none() {
            tracing::error!(debt_position = %id, "personal data does not decrypt: wrong key or altered row");
        }
        record
    });
    let kind = DebtKind::from_name(&row.kind)
        .ok_or_else(|| AppError::corrupt(format!("kind of debt position {id}")))?;
    let details = match kind {
        DebtKind::Tari => KindDetails::Tari(TariDetails {
            tax_year: parsed("tax year", id, row.tari_tax_year.ok_or("missing"))?,
            property_ref: parsed("property ref", id, row.tari_property_ref.ok_or("missing"))?,
        }),
        DebtKind::TrafficFine => {
            let cents = |value: Option<i64>| {
                parsed(
                    "fine amount",
                    id,
                    value.ok_or("missing").map(AmountCents::new),
                )
                .and_then(|r| parsed("fine amount", id, r))
            };
            let amounts = parsed(
                "fine amounts",
                id,
                FineAmounts::new(
                    cents(row.fine_reduced_amount_cents)?,
                    cents(row.fine_full_amount_cents)?,
                    cents(row.fine_increased_amount_cents)?,
                    parsed(
                        "costs",
                        id,
                        row.fine_notification_costs_cents.ok_or("missing"),
                    )?,
                ),
            )?;
            KindDetails::TrafficFine(TrafficFineDetails {
                report_number: parsed(
                    "report number",
                    id,
                    row.fine_report_number.ok_or("missing"),
                )?,
                plate: record
                    .as_ref()
                    .and_then(|r| r.plate.clone())
                    .unwrap_or_default(),
                violation_date: parsed(
                    "violation date",
                    id,
                    row.fine_violation_date.ok_or("missing"),
                )?,
                schedule: FineSchedule::new(
                    amounts,
                    parsed(
                        "notification date",
                        id,
                        row.fine_notification_date.ok_or("missing"),
                    )?,
                ),
            })
        }
        DebtKind::SchoolFee => KindDetails::SchoolFee(SchoolFeeDetails {
            pupil_ref: parsed("pupil ref", id, row.school_pupil_ref.ok_or("missing"))?,
            service: parsed(
                "school service",
                id,
                row.school_service
                    .as_deref()
                    .and_then(SchoolService::from_name)
                    .ok_or("unknown"),
            )?,
            school_year: parsed("school year", id, row.school_year.ok_or("missing"))?,
            month: row.school_month,
        }),
    };
    let mut transfers = rows.transfers;
    let mut installments_by_option: HashMap<Uuid, Vec<installment::Model>> = HashMap::new();
    for installment in rows.installments {
        installments_by_option
            .entry(installment.payment_option_id)
            .or_default()
            .push(installment);
    }
    let mut options = rows.options;
    options.sort_by_key(|o| o.option_index);
    let mut payment_options = Vec::with_capacity(options.len());
    for option in options {
        let mut rows = installments_by_option
            .remove(&option.id)
            .unwrap_or_default();
        rows.sort_by_key(|i| i.installment_index);
        let mut installments = Vec::with_capacity(rows.len());
        for i in rows {
            let mut transfer_rows = transfers.remove(&i.id).unwrap_or_default();
            transfer_rows.sort_by_key(|t| t.transfer_index);
            let transfers = transfer_rows
                .into_iter()
                .map(|t| transfer_from_row(id, t))
                .collect::<Result<Vec<_>, _>>()?;
            installments.push(Installment {
                id: i.id,
                notice_number: parsed("notice number", id, NoticeNumber::parse(&i.notice_number))?,
                iuv: parsed("IUV", id, Iuv::parse(&i.iuv))?,
                amount: parsed("amount", id, AmountCents::new(i.amount_cents))?,
                due_date: i.due_date,
                expiry_date: i.expiry_date,
                state: parsed(
                    "state",
                    id,
                    InstallmentState::from_name(&i.state).ok_or(&i.state),
                )?,
                transfers,
            });
        }
        payment_options.push(PaymentOption {
            id: option.id,
            label: option.label,
            installments,
        });
    }
    Ok(DebtPosition {
        id,
        request_id: row.request_id,
        creditor: parsed(
            "creditor",
            id,
            OrganizationFiscalCode::parse(&row.creditor_fiscal_code),
        )?,
        debtor: record.map(|r| Debtor {
            entity_type: r.entity_type,
            fiscal_code: r.fiscal_code,
            full_name: r.full_name,
            email: r.email,
        }),
        description: row.description,
        details,
        state: parsed(
            "state",
            id,
            PositionState::from_name(&row.state).ok_or(&row.state),
        )?,
        payment_options,
        version: row.version,
        cancellation_reason: row.cancellation_reason,
        created_at: row.created_at,
        updated_at: row.updated_at,
    })
}

fn transfer_from_row(position: Uuid, t: transfer::Model) -> Result<Transfer, AppError> {
    Ok(Transfer {
        beneficiary: parsed(
            "beneficiary",
            position,
            OrganizationFiscalCode::parse(&t.beneficiary_fiscal_code),
        )?,
        amount: parsed(
            "transfer amount",
            position,
            AmountCents::new(t.amount_cents),
        )?,
        remittance_information: t.remittance_information,
        iban: parsed("IBAN", position, Iban::parse(&t.iban))?,
        postal_iban: t
            .postal_iban
            .map(|iban| parsed("postal IBAN", position, Iban::parse(&iban)))
            .transpose()?,
        taxonomy: parsed(
            "taxonomy code",
            position,
            TaxonomyCode::parse(&t.taxonomy_code),
        )?,
    })
}

/// The `expires_on` column for a position's installments.
pub(crate) fn expires_on(installments: impl IntoIterator<Item = Option<Date>>) -> Option<Date> {
    incasso_domain::debt_position::expires_on(installments)
}
