//! What a caller sends to create a debt position, and the rules that turn it into a
//! validated [`NewDebtPosition`]. The input is kept as plain strings and integers, exactly as
//! it arrived, so that every rule can name the offending field and so that the idempotency
//! hash is taken over what the caller said, not over what incasso filled in.
//!
//! Defaults are filled here from the creditor registry: a transfer without an IBAN gets the
//! beneficiary's registered bank IBAN, a missing transfer list means the whole amount goes to
//! the creditor, a missing taxonomy code gets the kind's code, and a traffic fine gets its one
//! installment computed from the fine's schedule.

use serde::{Deserialize, Serialize};
use time::Date;

use super::{
    DebtKind, Debtor, KindDetails, MAX_INSTALLMENTS, MAX_INSTALLMENTS_PER_OPTION,
    MAX_PAYMENT_OPTIONS, MAX_TRANSFERS, SchoolFeeDetails, SchoolService, TariDetails,
    TrafficFineDetails, Transfer,
};
use crate::creditor::{Creditor, CreditorRegistry};
use crate::fiscal_code::{EntityType, FiscalCode, OrganizationFiscalCode};
use crate::iban::Iban;
use crate::money::AmountCents;
use crate::taxonomy::{self, TaxonomyCode};
use crate::traffic_fine::{FineAmounts, FineSchedule};
use crate::validation::{self, ValidationErrors};

/// The debtor as sent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DebtorInput {
    /// "F" or "G"; `None` when not specified.
    pub entity_type: Option<EntityType>,
    /// Codice fiscale or partita IVA.
    pub fiscal_code: String,
    /// Full name.
    pub full_name: String,
    /// E-mail, may be empty.
    pub email: String,
}

/// TARI details as sent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TariInput {
    /// Tax year.
    pub tax_year: i32,
    /// Property reference.
    pub property_ref: String,
}

/// Traffic fine details as sent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrafficFineInput {
    /// Verbale number.
    pub report_number: String,
    /// Plate.
    pub plate: String,
    /// YYYY-MM-DD.
    pub violation_date: String,
    /// YYYY-MM-DD.
    pub notification_date: String,
    /// Reduced sanction (-30%), cents.
    pub reduced_amount_cents: i64,
    /// Minimum sanction, cents.
    pub full_amount_cents: i64,
    /// Half the maximum, cents.
    pub increased_amount_cents: i64,
    /// Notification costs, cents.
    pub notification_costs_cents: i64,
}

/// School fee details as sent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchoolFeeInput {
    /// Pupil reference.
    pub pupil_ref: String,
    /// Service; `None` when not specified.
    pub service: Option<SchoolService>,
    /// "2026/2027".
    pub school_year: String,
    /// "2026-11" or empty.
    pub month: String,
}

/// The kind-specific details as sent (a proto `oneof`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum DetailsInput {
    /// TARI.
    Tari(TariInput),
    /// Traffic fine.
    TrafficFine(TrafficFineInput),
    /// School fee.
    SchoolFee(SchoolFeeInput),
}

/// A transfer as sent; empty strings mean "use the default".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransferInput {
    /// Beneficiary fiscal code.
    pub beneficiary_fiscal_code: String,
    /// Amount, cents.
    pub amount_cents: i64,
    /// Causale.
    pub remittance_information: String,
    /// IBAN.
    pub iban: String,
    /// Taxonomy code.
    pub taxonomy_code: String,
}

/// An installment as sent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstallmentInput {
    /// Amount, cents.
    pub amount_cents: i64,
    /// YYYY-MM-DD.
    pub due_date: String,
    /// YYYY-MM-DD or empty.
    pub expiry_date: String,
    /// May be empty.
    pub transfers: Vec<TransferInput>,
}

/// A payment option as sent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentOptionInput {
    /// Label, may be empty.
    pub label: String,
    /// Installments.
    pub installments: Vec<InstallmentInput>,
}

/// A create request as sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DebtPositionInput {
    /// Idempotency key.
    pub request_id: String,
    /// Creditor fiscal code.
    pub creditor_fiscal_code: String,
    /// Kind; `None` when not specified.
    pub kind: Option<DebtKind>,
    /// Debtor; `None` when left out.
    pub debtor: Option<DebtorInput>,
    /// Subject.
    pub description: String,
    /// Details; `None` when left out.
    pub details: Option<DetailsInput>,
    /// Options.
    pub payment_options: Vec<PaymentOptionInput>,
}

/// An installment of a new position, validated, defaults filled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewInstallment {
    /// Amount.
    pub amount: AmountCents,
    /// Due date.
    pub due_date: Date,
    /// Expiry date.
    pub expiry_date: Option<Date>,
    /// 1..=5 transfers summing to `amount`.
    pub transfers: Vec<Transfer>,
}

/// A payment option of a new position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPaymentOption {
    /// Label.
    pub label: String,
    /// 1.. installments.
    pub installments: Vec<NewInstallment>,
}

/// A validated new debt position, ready to be stored; notice numbers are issued by the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDebtPosition {
    /// Idempotency key.
    pub request_id: String,
    /// The creditor (one incasso issues notices for).
    pub creditor: OrganizationFiscalCode,
    /// Debtor.
    pub debtor: Debtor,
    /// Subject.
    pub description: String,
    /// Kind-specific data.
    pub details: KindDetails,
    /// Options, in the order sent.
    pub payment_options: Vec<NewPaymentOption>,
}

impl NewDebtPosition {
    /// The kind.
    pub fn kind(&self) -> DebtKind {
        self.details.kind()
    }

    /// How many notices this position needs.
    pub fn installment_count(&self) -> usize {
        self.payment_options
            .iter()
            .map(|option| option.installments.len())
            .sum()
    }
}

/// Checks a caller's request id: 1..=100 printable characters.
pub fn request_id(errors: &mut ValidationErrors, value: &str) -> Option<String> {
    validation::text(errors, "request_id", value, 1, 100)
}

/// Parses the creditor of a command: an 11-digit fiscal code incasso issues notices for.
pub fn issuing_creditor<'r>(
    errors: &mut ValidationErrors,
    registry: &'r CreditorRegistry,
    value: &str,
) -> Option<&'r Creditor> {
    let field = "creditor_fiscal_code";
    let code = errors.check(field, OrganizationFiscalCode::parse(value.trim()))?;
    let creditor = registry.issuer(code.as_str());
    if creditor.is_none() {
        errors.add(
            field,
            format!(
                "unknown creditor {}: incasso does not issue notices for it",
                code.as_str()
            ),
        );
    }
    creditor
}

impl DebtPositionInput {
    /// Validates the request against the creditor registry on `today` (Europe/Rome) and
    /// fills the defaults. Every violation is reported, not just the first.
    pub fn parse(
        &self,
        registry: &CreditorRegistry,
        today: Date,
    ) -> Result<NewDebtPosition, ValidationErrors> {
        let mut errors = ValidationErrors::new();
        let request_id = request_id(&mut errors, &self.request_id);
        let creditor = issuing_creditor(&mut errors, registry, &self.creditor_fiscal_code);
        let debtor = parse_debtor(&mut errors, self.debtor.as_ref());
        let description = validation::text(&mut errors, "description", &self.description, 1, 140);
        let details = parse_details(&mut errors, self.kind, self.details.as_ref(), today);

        let options = match (&details, creditor) {
            (Some(KindDetails::TrafficFine(fine)), Some(creditor)) => {
                if !self.payment_options.is_empty() {
                    errors.add(
                        "payment_options",
                        "must be left out for traffic fines: incasso issues one notice whose \
                         amount it computes from traffic_fine on the day of payment",
                    );
                }
                description
                    .as_deref()
                    .map(|description| vec![fine_option(fine, creditor, description)])
            }
            (Some(details), Some(creditor)) => {
                let context = TransferContext {
                    registry,
                    creditor,
                    details,
                    description: description.as_deref().unwrap_or_default(),
                    today,
                };
                parse_options(&mut errors, &self.payment_options, &context)
            }
            _ => None,
        };

        match (request_id, creditor, debtor, description, details, options) {
            (
                Some(request_id),
                Some(creditor),
                Some(debtor),
                Some(description),
                Some(details),
                Some(payment_options),
            ) if errors.is_empty() => Ok(NewDebtPosition {
                request_id,
                creditor: creditor.fiscal_code().clone(),
                debtor,
                description,
                details,
                payment_options,
            }),
            _ => Err(errors),
        }
    }
}

fn parse_debtor(errors: &mut ValidationErrors, input: Option<&DebtorInput>) -> Option<Debtor> {
    let Some(input) = input else {
        errors.add("debtor", "required");
        return None;
    };
    let entity_type = input.entity_type;
    if entity_type.is_none() {
        errors.add(
            "debtor.type",
            "required: ENTITY_TYPE_F (person) or ENTITY_TYPE_G (legal entity)",
        );
    }
    let fiscal_code = errors.check(
        "debtor.fiscal_code",
        FiscalCode::parse(input.fiscal_code.trim()),
    );
    let full_name = validation::text(errors, "debtor.full_name", &input.full_name, 1, 70);
    let email = parse_email(errors, "debtor.email", &input.email);
    Some(Debtor {
        entity_type: entity_type?,
        fiscal_code: fiscal_code?,
        full_name: full_name?,
        email: email?,
    })
}

/// An optional e-mail address, checked against PagoPA's stEMail pattern.
fn parse_email(errors: &mut ValidationErrors, field: &str, value: &str) -> Option<Option<String>> {
    let value = value.trim();
    if value.is_empty() {
        return Some(None);
    }
    let valid = value.len() <= 256
        && value.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && local
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_.+-".contains(c))
                && !domain.is_empty()
                && domain.split('.').all(|label| {
                    !label.is_empty()
                        && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                })
        });
    if valid {
        Some(Some(value.to_owned()))
    } else {
        errors.add(
            field,
            "not an e-mail address (at most 256 characters, name@domain)",
        );
        None
    }
}

fn parse_details(
    errors: &mut ValidationErrors,
    kind: Option<DebtKind>,
    details: Option<&DetailsInput>,
    today: Date,
) -> Option<KindDetails> {
    let Some(kind) = kind else {
        errors.add(
            "kind",
            "required: DEBT_KIND_TARI, DEBT_KIND_TRAFFIC_FINE or DEBT_KIND_SCHOOL_FEE",
        );
        return None;
    };
    let (field, name) = match kind {
        DebtKind::Tari => ("tari", "DEBT_KIND_TARI"),
        DebtKind::TrafficFine => ("traffic_fine", "DEBT_KIND_TRAFFIC_FINE"),
        DebtKind::SchoolFee => ("school_fee", "DEBT_KIND_SCHOOL_FEE"),
    };
    match (kind, details) {
        (DebtKind::Tari, Some(DetailsInput::Tari(tari))) => parse_tari(errors, tari, today),
        (DebtKind::TrafficFine, Some(DetailsInput::TrafficFine(fine))) => {
            parse_fine(errors, "traffic_fine", fine, today).map(KindDetails::TrafficFine)
        }
        (DebtKind::SchoolFee, Some(DetailsInput::SchoolFee(fee))) => parse_school_fee(errors, fee),
        _ => {
            errors.add(
                field,
                format!("required for kind {name}, and no other details may be set"),
            );
            None
        }
    }
}

fn parse_tari(
    errors: &mut ValidationErrors,
    input: &TariInput,
    today: Date,
) -> Option<KindDetails> {
    let max_year = today.year() + 1;
    let tax_year = if (2000..=max_year).contains(&input.tax_year) {
        Some(input.tax_year)
    } else {
        errors.add(
            "tari.tax_year",
            format!(
                "must be between 2000 and {max_year}, got {}",
                input.tax_year
            ),
        );
        None
    };
    let property_ref = validation::text(errors, "tari.property_ref", &input.property_ref, 1, 35);
    Some(KindDetails::Tari(TariDetails {
        tax_year: tax_year?,
        property_ref: property_ref?,
    }))
}

/// Parses a fine's details; `prefix` is the field path of the details in the request.
pub fn parse_fine(
    errors: &mut ValidationErrors,
    prefix: &str,
    input: &TrafficFineInput,
    today: Date,
) -> Option<TrafficFineDetails> {
    let field = |name: &str| format!("{prefix}.{name}");
    let report_number =
        validation::text(errors, &field("report_number"), &input.report_number, 1, 35);
    let plate = parse_plate(errors, &field("plate"), &input.plate);
    let violation_date = validation::date(errors, &field("violation_date"), &input.violation_date);
    let notification_date = validation::date(
        errors,
        &field("notification_date"),
        &input.notification_date,
    );
    if let Some(violation) = violation_date {
        if violation > today {
            errors.add(field("violation_date"), "must not be in the future");
        }
        if notification_date.is_some_and(|notified| notified < violation) {
            errors.add(
                field("notification_date"),
                "must not be before violation_date",
            );
        }
    }
    let amount = |errors: &mut ValidationErrors, name: &str, cents: i64| {
        errors.check(&field(name), AmountCents::new(cents))
    };
    let reduced = amount(errors, "reduced_amount_cents", input.reduced_amount_cents);
    let full = amount(errors, "full_amount_cents", input.full_amount_cents);
    let increased = amount(
        errors,
        "increased_amount_cents",
        input.increased_amount_cents,
    );
    let costs = input.notification_costs_cents;
    if costs < 0 {
        errors.add(field("notification_costs_cents"), "must not be negative");
    }
    let amounts = match (reduced, full, increased) {
        (Some(reduced), Some(full), Some(increased)) if costs >= 0 => errors.check(
            &field("full_amount_cents"),
            FineAmounts::new(reduced, full, increased, costs),
        ),
        _ => None,
    };
    Some(TrafficFineDetails {
        report_number: report_number?,
        plate: plate?,
        violation_date: violation_date?,
        schedule: FineSchedule::new(amounts?, notification_date?),
    })
}

fn parse_plate(errors: &mut ValidationErrors, field: &str, value: &str) -> Option<String> {
    let plate: String = value
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .collect::<String>()
        .to_uppercase();
    if (2..=10).contains(&plate.len()) && plate.chars().all(|c| c.is_ascii_alphanumeric()) {
        Some(plate)
    } else {
        errors.add(field, "expected 2 to 10 letters and digits");
        None
    }
}

fn parse_school_fee(errors: &mut ValidationErrors, input: &SchoolFeeInput) -> Option<KindDetails> {
    let pupil_ref = validation::text(errors, "school_fee.pupil_ref", &input.pupil_ref, 1, 35);
    let service = input.service;
    if service.is_none() {
        errors.add(
            "school_fee.service",
            "required: SCHOOL_SERVICE_NIDO, SCHOOL_SERVICE_INFANZIA or SCHOOL_SERVICE_REFEZIONE",
        );
    }
    let first_year = parse_school_year(&input.school_year);
    if first_year.is_none() {
        errors.add(
            "school_fee.school_year",
            format!(
                "'{}' is not a school year (expected e.g. 2026/2027)",
                input.school_year.trim()
            ),
        );
    }
    let month = input.month.trim();
    let month = if month.is_empty() {
        Some(None)
    } else {
        match (parse_month(month), first_year) {
            (Some((year, m)), Some(first)) => {
                // A school year runs from September to August.
                let in_year = (year == first && m >= 9) || (year == first + 1 && m <= 8);
                if in_year {
                    Some(Some(month.to_owned()))
                } else {
                    errors.add(
                        "school_fee.month",
                        format!("{month} is not in school year {}/{}", first, first + 1),
                    );
                    None
                }
            }
            (None, _) => {
                errors.add(
                    "school_fee.month",
                    format!("'{month}' is not a month (expected YYYY-MM)"),
                );
                None
            }
            (Some(_), None) => None,
        }
    };
    first_year?;
    Some(KindDetails::SchoolFee(SchoolFeeDetails {
        pupil_ref: pupil_ref?,
        service: service?,
        school_year: input.school_year.trim().to_owned(),
        month: month?,
    }))
}

/// "2026/2027" -> 2026.
fn parse_school_year(value: &str) -> Option<i32> {
    let (first, second) = value.trim().split_once('/')?;
    if first.len() != 4 || second.len() != 4 {
        return None;
    }
    let first: i32 = first.parse().ok()?;
    let second: i32 = second.parse().ok()?;
    (second == first + 1 && (2000..=2100).contains(&first)).then_some(first)
}

/// "2026-11" -> (2026, 11).
fn parse_month(value: &str) -> Option<(i32, u8)> {
    let (year, month) = value.split_once('-')?;
    if year.len() != 4 || month.len() != 2 {
        return None;
    }
    let year: i32 = year.parse().ok()?;
    let month: u8 = month.parse().ok()?;
    (1..=12).contains(&month).then_some((year, month))
}

/// The one option of a traffic fine: one notice, the whole amount to the creditor, printed
/// with the reduced amount (plus costs) and due on the last day of the full-amount band.
pub fn fine_option(
    fine: &TrafficFineDetails,
    creditor: &Creditor,
    description: &str,
) -> NewPaymentOption {
    let schedule = &fine.schedule;
    let amount = schedule.amount_payable_on(schedule.notification_date());
    NewPaymentOption {
        label: "Verbale".to_owned(),
        installments: vec![NewInstallment {
            amount,
            due_date: schedule.full_deadline(),
            expiry_date: None,
            transfers: vec![Transfer {
                beneficiary: creditor.fiscal_code().clone(),
                amount,
                remittance_information: description.to_owned(),
                iban: creditor.default_bank_iban().clone(),
                postal_iban: creditor.default_postal_iban().cloned(),
                taxonomy: default_taxonomy(&KindDetails::TrafficFine(fine.clone()), true, 0),
            }],
        }],
    }
}

/// What the transfer rules need to know about the position.
pub struct TransferContext<'a> {
    /// Where beneficiaries are looked up.
    pub registry: &'a CreditorRegistry,
    /// The position's creditor.
    pub creditor: &'a Creditor,
    /// The position's details (for default taxonomy codes).
    pub details: &'a KindDetails,
    /// Default causale.
    pub description: &'a str,
    /// Today, Europe/Rome.
    pub today: Date,
}

fn parse_options(
    errors: &mut ValidationErrors,
    inputs: &[PaymentOptionInput],
    context: &TransferContext<'_>,
) -> Option<Vec<NewPaymentOption>> {
    if inputs.is_empty() {
        errors.add("payment_options", "at least one payment option is required");
        return None;
    }
    if inputs.len() > MAX_PAYMENT_OPTIONS {
        errors.add(
            "payment_options",
            format!(
                "at most {MAX_PAYMENT_OPTIONS} payment options, got {}",
                inputs.len()
            ),
        );
        return None;
    }
    let total: usize = inputs.iter().map(|o| o.installments.len()).sum();
    if total > MAX_INSTALLMENTS {
        errors.add(
            "payment_options",
            format!("at most {MAX_INSTALLMENTS} installments in all, got {total}"),
        );
        return None;
    }
    let mut options = Vec::with_capacity(inputs.len());
    for (o, input) in inputs.iter().enumerate() {
        let prefix = format!("payment_options[{o}]");
        let label = if input.label.trim().is_empty() {
            Some(default_label(input.installments.len()))
        } else {
            validation::text(errors, &format!("{prefix}.label"), &input.label, 1, 140)
        };
        if input.installments.is_empty() {
            errors.add(
                format!("{prefix}.installments"),
                "at least one installment is required",
            );
            continue;
        }
        if input.installments.len() > MAX_INSTALLMENTS_PER_OPTION {
            errors.add(
                format!("{prefix}.installments"),
                format!(
                    "at most {MAX_INSTALLMENTS_PER_OPTION} installments per option, got {}",
                    input.installments.len()
                ),
            );
            continue;
        }
        let installments: Vec<_> = input
            .installments
            .iter()
            .enumerate()
            .map(|(i, installment)| {
                parse_installment(
                    errors,
                    &format!("{prefix}.installments[{i}]"),
                    installment,
                    context,
                )
            })
            .collect();
        if let (Some(label), Some(installments)) = (label, installments.into_iter().collect()) {
            options.push(NewPaymentOption {
                label,
                installments,
            });
        }
    }
    (options.len() == inputs.len()).then_some(options)
}

fn default_label(installments: usize) -> String {
    if installments == 1 {
        "Rata unica".to_owned()
    } else {
        format!("Piano in {installments} rate")
    }
}

fn parse_installment(
    errors: &mut ValidationErrors,
    prefix: &str,
    input: &InstallmentInput,
    context: &TransferContext<'_>,
) -> Option<NewInstallment> {
    let amount = errors.check(
        &format!("{prefix}.amount_cents"),
        AmountCents::new(input.amount_cents),
    );
    let due_date = validation::date(errors, &format!("{prefix}.due_date"), &input.due_date);
    let expiry_date = parse_expiry(errors, prefix, &input.expiry_date, due_date);
    let transfers = parse_transfers(errors, prefix, &input.transfers, amount?, context);
    Some(NewInstallment {
        amount: amount?,
        due_date: due_date?,
        expiry_date: expiry_date?,
        transfers: transfers?,
    })
}

/// An optional expiry date, not before the due date.
pub fn parse_expiry(
    errors: &mut ValidationErrors,
    prefix: &str,
    value: &str,
    due_date: Option<Date>,
) -> Option<Option<Date>> {
    if value.trim().is_empty() {
        return Some(None);
    }
    let field = format!("{prefix}.expiry_date");
    let expiry = validation::date(errors, &field, value)?;
    if due_date.is_some_and(|due| expiry < due) {
        errors.add(field, "must not be before due_date");
        return None;
    }
    Some(Some(expiry))
}

/// Validates an installment's transfers (or builds the default one) for `amount`.
pub fn parse_transfers(
    errors: &mut ValidationErrors,
    prefix: &str,
    inputs: &[TransferInput],
    amount: AmountCents,
    context: &TransferContext<'_>,
) -> Option<Vec<Transfer>> {
    let creditor = context.creditor;
    if inputs.is_empty() {
        return Some(vec![Transfer {
            beneficiary: creditor.fiscal_code().clone(),
            amount,
            remittance_information: default_remittance(context.description),
            iban: creditor.default_bank_iban().clone(),
            postal_iban: creditor.default_postal_iban().cloned(),
            taxonomy: default_taxonomy(context.details, true, context.today.year()),
        }]);
    }
    let field = format!("{prefix}.transfers");
    if inputs.len() > MAX_TRANSFERS {
        errors.add(
            field,
            format!(
                "at most {MAX_TRANSFERS} transfers per installment, got {}",
                inputs.len()
            ),
        );
        return None;
    }
    let mut transfers = Vec::with_capacity(inputs.len());
    for (t, input) in inputs.iter().enumerate() {
        if let Some(transfer) = parse_transfer(errors, &format!("{field}[{t}]"), t, input, context)
        {
            transfers.push(transfer);
        }
    }
    if transfers.len() != inputs.len() {
        return None;
    }
    let sum: i64 = transfers.iter().map(|t| t.amount.get()).sum();
    if sum != amount.get() {
        errors.add(
            field,
            format!(
                "transfers sum to {sum} cents but the installment is {} cents; they must match exactly",
                amount.get()
            ),
        );
        return None;
    }
    Some(transfers)
}

fn parse_transfer(
    errors: &mut ValidationErrors,
    prefix: &str,
    index: usize,
    input: &TransferInput,
    context: &TransferContext<'_>,
) -> Option<Transfer> {
    let beneficiary_field = format!("{prefix}.beneficiary_fiscal_code");
    let beneficiary = errors
        .check(
            &beneficiary_field,
            OrganizationFiscalCode::parse(input.beneficiary_fiscal_code.trim()),
        )
        .and_then(|code| match context.registry.get(code.as_str()) {
            Some(beneficiary) => Some(beneficiary),
            None => {
                errors.add(
                    &beneficiary_field,
                    format!(
                        "unknown beneficiary {}: not a registered creditor",
                        code.as_str()
                    ),
                );
                None
            }
        });
    let is_primary = beneficiary.is_some_and(|b| b.fiscal_code() == context.creditor.fiscal_code());
    if index == 0 && beneficiary.is_some() && !is_primary {
        errors.add(
            &beneficiary_field,
            format!(
                "the first transfer must go to the creditor {}",
                context.creditor.fiscal_code().as_str()
            ),
        );
    }
    let amount = errors.check(
        &format!("{prefix}.amount_cents"),
        AmountCents::new(input.amount_cents),
    );
    let remittance_information = if input.remittance_information.trim().is_empty() {
        Some(default_remittance(context.description))
    } else {
        validation::text(
            errors,
            &format!("{prefix}.remittance_information"),
            &input.remittance_information,
            1,
            140,
        )
    };
    let iban_field = format!("{prefix}.iban");
    let iban = if input.iban.trim().is_empty() {
        beneficiary.map(|b| b.default_bank_iban().clone())
    } else {
        errors
            .check(&iban_field, Iban::parse(&input.iban))
            .and_then(|iban| match beneficiary {
                Some(b) if !b.has_iban(&iban) => {
                    errors.add(
                        &iban_field,
                        format!(
                            "{} is not an account registered for beneficiary {}",
                            iban.as_str(),
                            b.fiscal_code().as_str()
                        ),
                    );
                    None
                }
                _ => Some(iban),
            })
    };
    let taxonomy = if input.taxonomy_code.trim().is_empty() {
        Some(default_taxonomy(
            context.details,
            is_primary,
            context.today.year(),
        ))
    } else {
        errors.check(
            &format!("{prefix}.taxonomy_code"),
            TaxonomyCode::parse(input.taxonomy_code.trim()),
        )
    };
    let beneficiary = beneficiary?;
    Some(Transfer {
        beneficiary: beneficiary.fiscal_code().clone(),
        amount: amount?,
        remittance_information: remittance_information?,
        iban: iban?,
        postal_iban: beneficiary.default_postal_iban().cloned(),
        taxonomy: taxonomy?,
    })
}

fn default_remittance(description: &str) -> String {
    description.chars().take(140).collect()
}

/// The taxonomy code of a transfer when the caller gives none: by kind, by whether it goes to
/// the creditor or to a secondary beneficiary (TEFA), and, for TARI, by whether the tax year
/// is the current one (`current_year`) or an earlier one (arrears have their own codes).
pub fn default_taxonomy(
    details: &KindDetails,
    to_creditor: bool,
    current_year: i32,
) -> TaxonomyCode {
    let code = match details {
        KindDetails::Tari(tari) => {
            let arrears = tari.tax_year < current_year;
            match (to_creditor, arrears) {
                (true, false) => taxonomy::TARI_CURRENT_YEAR,
                (true, true) => taxonomy::TARI_PREVIOUS_YEARS,
                (false, false) => taxonomy::TEFA_CURRENT_YEAR,
                (false, true) => taxonomy::TEFA_PREVIOUS_YEARS,
            }
        }
        KindDetails::TrafficFine(_) => taxonomy::TRAFFIC_FINE,
        KindDetails::SchoolFee(fee) => match fee.service {
            SchoolService::Nido => taxonomy::SCHOOL_NIDO,
            SchoolService::Infanzia => taxonomy::SCHOOL_FEES,
            SchoolService::Refezione => taxonomy::SCHOOL_MEALS,
        },
    };
    #[allow(clippy::expect_used)]
    TaxonomyCode::parse(code).expect("the default taxonomy constants are valid codes")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notice_number::SegregationCode;
    use time::macros::date;

    const MILANO: &str = "01199250158";
    const CM: &str = "08911820960";
    const TODAY: Date = date!(2026 - 11 - 24);

    fn registry() -> CreditorRegistry {
        let iban = |s: &str| Iban::parse(s).unwrap();
        CreditorRegistry::new([
            Creditor::new(
                OrganizationFiscalCode::parse(MILANO).unwrap(),
                "Comune di Milano",
                Some(SegregationCode::new(12).unwrap()),
                vec![iban("IT02N0306909400000012345678")],
                vec![iban("IT22L0760101600000012345678")],
            )
            .unwrap(),
            Creditor::new(
                OrganizationFiscalCode::parse(CM).unwrap(),
                "Città Metropolitana di Milano",
                None,
                vec![iban("IT66Q0503401633000000098765")],
                vec![],
            )
            .unwrap(),
        ])
        .unwrap()
    }

    fn transfer(beneficiary: &str, cents: i64) -> TransferInput {
        TransferInput {
            beneficiary_fiscal_code: beneficiary.to_owned(),
            amount_cents: cents,
            ..Default::default()
        }
    }

    fn tari(tax_year: i32, transfers: Vec<TransferInput>) -> DebtPositionInput {
        DebtPositionInput {
            request_id: "r-1".to_owned(),
            creditor_fiscal_code: MILANO.to_owned(),
            kind: Some(DebtKind::Tari),
            debtor: Some(DebtorInput {
                entity_type: Some(EntityType::F),
                fiscal_code: "RSSMRA80A01F205X".to_owned(),
                full_name: "Mario Rossi".to_owned(),
                email: String::new(),
            }),
            description: "TARI".to_owned(),
            details: Some(DetailsInput::Tari(TariInput {
                tax_year,
                property_ref: "UT1".to_owned(),
            })),
            payment_options: vec![PaymentOptionInput {
                label: String::new(),
                installments: vec![InstallmentInput {
                    amount_cents: 10000,
                    due_date: "2026-12-01".to_owned(),
                    expiry_date: String::new(),
                    transfers,
                }],
            }],
        }
    }

    fn fields(result: Result<NewDebtPosition, ValidationErrors>) -> Vec<String> {
        result
            .unwrap_err()
            .violations()
            .iter()
            .map(|v| v.field.clone())
            .collect()
    }

    #[test]
    fn defaults_are_filled_from_the_registry_and_the_kind() {
        let new = tari(2026, vec![transfer(MILANO, 9500), transfer(CM, 500)])
            .parse(&registry(), TODAY)
            .unwrap();
        let transfers = &new.payment_options[0].installments[0].transfers;
        assert_eq!(new.payment_options[0].label, "Rata unica");
        assert_eq!(transfers[0].iban.as_str(), "IT02N0306909400000012345678");
        assert_eq!(
            transfers[0].postal_iban.as_ref().unwrap().as_str(),
            "IT22L0760101600000012345678"
        );
        assert_eq!(transfers[0].taxonomy.as_str(), "9/0101101IM/");
        assert_eq!(transfers[1].taxonomy.as_str(), "9/0201102IM/");
        assert_eq!(transfers[1].remittance_information, "TARI");
        // Arrears have their own codes.
        let arrears = tari(2024, vec![transfer(MILANO, 9500), transfer(CM, 500)])
            .parse(&registry(), TODAY)
            .unwrap();
        let transfers = &arrears.payment_options[0].installments[0].transfers;
        assert_eq!(transfers[0].taxonomy.as_str(), "9/0101109IM/");
        assert_eq!(transfers[1].taxonomy.as_str(), "9/0201133IM/");
    }

    #[test]
    fn transfer_rules() {
        let tefa_first = tari(2026, vec![transfer(CM, 500), transfer(MILANO, 9500)]);
        assert!(fields(tefa_first.parse(&registry(), TODAY)).contains(
            &"payment_options[0].installments[0].transfers[0].beneficiary_fiscal_code".to_owned()
        ));
        let unknown = tari(
            2026,
            vec![transfer(MILANO, 9500), transfer("80012345678", 500)],
        );
        assert_eq!(
            fields(unknown.parse(&registry(), TODAY)),
            ["payment_options[0].installments[0].transfers[1].beneficiary_fiscal_code"]
        );
        let mut foreign_iban = tari(2026, vec![transfer(MILANO, 10000)]);
        foreign_iban.payment_options[0].installments[0].transfers[0].iban =
            "IT60X0542811101000000123456".to_owned();
        assert_eq!(
            fields(foreign_iban.parse(&registry(), TODAY)),
            ["payment_options[0].installments[0].transfers[0].iban"]
        );
    }

    #[test]
    fn kinds_and_details_must_agree() {
        let mut mismatch = tari(2026, vec![]);
        mismatch.kind = Some(DebtKind::SchoolFee);
        assert_eq!(fields(mismatch.parse(&registry(), TODAY)), ["school_fee"]);
        let mut no_kind = tari(2026, vec![]);
        no_kind.kind = None;
        assert_eq!(fields(no_kind.parse(&registry(), TODAY)), ["kind"]);
        let mut future = tari(2030, vec![]);
        future.debtor = None;
        assert_eq!(
            fields(future.parse(&registry(), TODAY)),
            ["debtor", "tari.tax_year"]
        );
    }

    #[test]
    fn a_fine_gets_one_notice_from_its_schedule() {
        let input = DebtPositionInput {
            kind: Some(DebtKind::TrafficFine),
            details: Some(DetailsInput::TrafficFine(TrafficFineInput {
                report_number: "V1".to_owned(),
                plate: "ab 123 cd".to_owned(),
                violation_date: "2026-11-02".to_owned(),
                notification_date: "2026-11-10".to_owned(),
                reduced_amount_cents: 2940,
                full_amount_cents: 4200,
                increased_amount_cents: 8400,
                notification_costs_cents: 1260,
            })),
            payment_options: vec![],
            ..tari(2026, vec![])
        };
        let new = input.parse(&registry(), TODAY).unwrap();
        let KindDetails::TrafficFine(fine) = &new.details else {
            panic!("a fine")
        };
        assert_eq!(fine.plate, "AB123CD");
        let notice = &new.payment_options[0].installments[0];
        assert_eq!(
            notice.amount.get(),
            4200,
            "printed with the reduced amount plus costs"
        );
        assert_eq!(
            notice.due_date,
            date!(2027 - 01 - 09),
            "the last day of the full amount"
        );
        assert_eq!(notice.transfers[0].taxonomy.as_str(), "9/0102100SA/");
        let with_options = DebtPositionInput {
            payment_options: tari(2026, vec![]).payment_options,
            ..input.clone()
        };
        assert_eq!(
            fields(with_options.parse(&registry(), TODAY)),
            ["payment_options"]
        );
        let mut unordered = input;
        if let Some(DetailsInput::TrafficFine(fine)) = &mut unordered.details {
            fine.reduced_amount_cents = 5000;
            fine.notification_date = "2026-11-01".to_owned();
        }
        assert_eq!(
            fields(unordered.parse(&registry(), TODAY)),
            [
                "traffic_fine.notification_date",
                "traffic_fine.full_amount_cents"
            ]
        );
    }

    #[test]
    fn school_months_belong_to_their_school_year() {
        let fee = |month: &str| DebtPositionInput {
            kind: Some(DebtKind::SchoolFee),
            details: Some(DetailsInput::SchoolFee(SchoolFeeInput {
                pupil_ref: "ALU1".to_owned(),
                service: Some(SchoolService::Nido),
                school_year: "2026/2027".to_owned(),
                month: month.to_owned(),
            })),
            ..tari(2026, vec![])
        };
        assert!(fee("2026-11").parse(&registry(), TODAY).is_ok());
        assert!(fee("2027-07").parse(&registry(), TODAY).is_ok());
        assert!(fee("").parse(&registry(), TODAY).is_ok(), "an annual fee");
        assert_eq!(
            fields(fee("2026-08").parse(&registry(), TODAY)),
            ["school_fee.month"]
        );
        assert_eq!(
            fields(fee("11/2026").parse(&registry(), TODAY)),
            ["school_fee.month"]
        );
    }
}
