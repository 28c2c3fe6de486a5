//! Reconciliation's proto <-> domain conversions: labels, scopes and treasury states as the
//! API's enums, the list filters as the store's inputs (an enum value the API does not define
//! is refused naming its field, never widened to "any"), and the store's items, history and
//! summary as responses.

use incasso_domain::reconciliation::{
    CandidateReason, DuplicateReason, EvidenceRef, FlowTreasuryState, Label, Suggestion,
};
use incasso_domain::validation::{ValidationErrors, format_date};
use incasso_store::AppError;
use incasso_store::reconciliation::{
    CreditFilterInput, CreditItem, FlowFilterInput, FlowItem, ImportOutcome, LabelChangeRecord,
    LabelTotal, PossibleDuplicate, ReceiptRecovery, ReconciliationSummary, RecoveryState,
    ReportedPosting, ReversalFilterInput, ReversalItem, TransferFilterInput, TransferItem,
    TransferKeyInput, TransferScope,
};

use super::timestamp;
use crate::pb;
use crate::pb::suggestion::Kind;

/// The domain's label for a proto value: `Ok(None)` for unspecified, `Err` for a value the
/// API does not define.
fn label_filter(value: i32) -> Result<Option<Label>, ()> {
    use pb::ReconciliationLabel as P;
    Ok(Some(match P::try_from(value).map_err(|_| ())? {
        P::Unspecified => return Ok(None),
        P::Doppi => Label::Doppi,
        P::IuvNoRt => Label::IuvNoRt,
        P::IufTesDivImp => Label::IufTesDivImp,
        P::IufNoTes => Label::IufNoTes,
        P::RtIufTes => Label::RtIufTes,
        P::RtIuf => Label::RtIuf,
        P::RtTes => Label::RtTes,
        P::RtNoIuf => Label::RtNoIuf,
        P::TesNoIufOrIuv => Label::TesNoIufOrIuv,
        P::TesNoMatch => Label::TesNoMatch,
    }))
}

/// The proto value of a label (`None`: unspecified).
pub fn label_value(label: Option<Label>) -> i32 {
    use pb::ReconciliationLabel as P;
    let value = match label {
        None => P::Unspecified,
        Some(Label::Doppi) => P::Doppi,
        Some(Label::IuvNoRt) => P::IuvNoRt,
        Some(Label::IufTesDivImp) => P::IufTesDivImp,
        Some(Label::IufNoTes) => P::IufNoTes,
        Some(Label::RtIufTes) => P::RtIufTes,
        Some(Label::RtIuf) => P::RtIuf,
        Some(Label::RtTes) => P::RtTes,
        Some(Label::RtNoIuf) => P::RtNoIuf,
        Some(Label::TesNoIufOrIuv) => P::TesNoIufOrIuv,
        Some(Label::TesNoMatch) => P::TesNoMatch,
    };
    value as i32
}

fn labels_value(labels: &[Label]) -> Vec<i32> {
    labels.iter().map(|l| label_value(Some(*l))).collect()
}

fn treasury_state_filter(value: i32) -> Result<Option<FlowTreasuryState>, ()> {
    use pb::TreasuryState as P;
    Ok(Some(match P::try_from(value).map_err(|_| ())? {
        P::Unspecified => return Ok(None),
        P::Cashed => FlowTreasuryState::Cashed,
        P::DivImp => FlowTreasuryState::DivImp,
        P::NoTes => FlowTreasuryState::NoTes,
        P::Pending => FlowTreasuryState::Pending,
    }))
}

/// The proto value of a treasury state (`None`: unspecified).
pub fn treasury_state_value(state: Option<FlowTreasuryState>) -> i32 {
    use pb::TreasuryState as P;
    let value = match state {
        None => P::Unspecified,
        Some(FlowTreasuryState::Cashed) => P::Cashed,
        Some(FlowTreasuryState::DivImp) => P::DivImp,
        Some(FlowTreasuryState::NoTes) => P::NoTes,
        Some(FlowTreasuryState::Pending) => P::Pending,
    };
    value as i32
}

fn scope_filter(value: i32) -> Result<Option<TransferScope>, ()> {
    use pb::ReconciliationScope as P;
    Ok(Some(match P::try_from(value).map_err(|_| ())? {
        P::Unspecified => return Ok(None),
        P::Creditor => TransferScope::Creditor,
        P::OtherBeneficiary => TransferScope::OtherBeneficiary,
    }))
}

fn scope_value(scope: TransferScope) -> i32 {
    match scope {
        TransferScope::Creditor => pb::ReconciliationScope::Creditor as i32,
        TransferScope::OtherBeneficiary => pb::ReconciliationScope::OtherBeneficiary as i32,
    }
}

/// Checks an enum filter, naming `field` when its value is not one the API defines.
fn enum_filter<T>(
    errors: &mut ValidationErrors,
    field: &str,
    what: &str,
    value: i32,
    parse: fn(i32) -> Result<Option<T>, ()>,
) -> Option<T> {
    parse(value).unwrap_or_else(|()| {
        errors.add(field, format!("{value} is not a {what}"));
        None
    })
}

/// A ListTransfers request as the store's filter.
pub fn transfer_filter(r: &pb::ListTransfersRequest) -> Result<TransferFilterInput, AppError> {
    let mut errors = ValidationErrors::new();
    let label = enum_filter(
        &mut errors,
        "label",
        "reconciliation label",
        r.label,
        label_filter,
    );
    let scope = enum_filter(
        &mut errors,
        "scope",
        "reconciliation scope",
        r.scope,
        scope_filter,
    );
    errors
        .into_result(|| TransferFilterInput {
            creditor_fiscal_code: r.creditor_fiscal_code.clone(),
            label,
            iuv: r.iuv.clone(),
            receipt_id: r.receipt_id.clone(),
            flow_id: r.flow_id.clone(),
            paid_from: r.paid_from.clone(),
            paid_to: r.paid_to.clone(),
            scope,
        })
        .map_err(AppError::Invalid)
}

/// A GetTransferHistory request as the store's key.
pub fn transfer_key(r: &pb::GetTransferHistoryRequest) -> TransferKeyInput {
    TransferKeyInput {
        creditor_fiscal_code: r.creditor_fiscal_code.clone(),
        iuv: r.iuv.clone(),
        receipt_id: r.receipt_id.clone(),
        id_transfer: i64::from(r.id_transfer),
    }
}

/// A ListReportingFlows request as the store's filter.
pub fn flow_filter(r: &pb::ListReportingFlowsRequest) -> Result<FlowFilterInput, AppError> {
    let mut errors = ValidationErrors::new();
    let treasury_state = enum_filter(
        &mut errors,
        "treasury_state",
        "treasury state",
        r.treasury_state,
        treasury_state_filter,
    );
    errors
        .into_result(|| FlowFilterInput {
            creditor_fiscal_code: r.creditor_fiscal_code.clone(),
            flow_id: r.flow_id.clone(),
            psp_id: r.psp_id.clone(),
            regulation_from: r.regulation_from.clone(),
            regulation_to: r.regulation_to.clone(),
            treasury_state,
        })
        .map_err(AppError::Invalid)
}

/// A ListTreasuryCredits request as the store's filter.
pub fn credit_filter(r: &pb::ListTreasuryCreditsRequest) -> Result<CreditFilterInput, AppError> {
    let mut errors = ValidationErrors::new();
    let label = enum_filter(
        &mut errors,
        "label",
        "reconciliation label",
        r.label,
        label_filter,
    );
    errors
        .into_result(|| CreditFilterInput {
            creditor_fiscal_code: r.creditor_fiscal_code.clone(),
            label,
            booked_from: r.booked_from.clone(),
            booked_to: r.booked_to.clone(),
        })
        .map_err(AppError::Invalid)
}

fn candidate_reason(reason: CandidateReason) -> i32 {
    let value = match reason {
        CandidateReason::Trn => pb::CandidateReason::Trn,
        CandidateReason::Amount => pb::CandidateReason::Amount,
        CandidateReason::Date => pb::CandidateReason::Date,
        CandidateReason::Prefix => pb::CandidateReason::Prefix,
    };
    value as i32
}

/// A suggestion as the API shows it.
pub fn suggestion(s: &Suggestion) -> pb::Suggestion {
    let kind = match s {
        Suggestion::CandidateFlow { flow_id, reasons } => {
            Kind::CandidateFlow(pb::suggestion::CandidateFlow {
                flow_id: flow_id.to_string(),
                reasons: reasons.iter().copied().map(candidate_reason).collect(),
            })
        }
        Suggestion::ComponentDifference {
            credits_cents,
            flows_cents,
            difference_cents,
        } => Kind::ComponentDifference(pb::suggestion::ComponentDifference {
            credits_cents: *credits_cents,
            flows_cents: *flows_cents,
            difference_cents: *difference_cents,
        }),
        Suggestion::LineDifference {
            flow_id,
            receipt_cents,
            line_cents,
            difference_cents,
        } => Kind::LineDifference(pb::suggestion::LineDifference {
            flow_id: flow_id.to_string(),
            receipt_cents: *receipt_cents,
            line_cents: *line_cents,
            difference_cents: *difference_cents,
        }),
        Suggestion::IuvCreditDifference {
            credit_id,
            difference_cents,
        } => Kind::IuvCreditDifference(pb::suggestion::IuvCreditDifference {
            credit_id: credit_id.to_string(),
            difference_cents: *difference_cents,
        }),
    };
    pb::Suggestion { kind: Some(kind) }
}

/// The recovery of an `IUV_NO_RT` key's receipt, as a suggestion.
pub fn receipt_recovery(recovery: &ReceiptRecovery) -> pb::Suggestion {
    let state = match recovery.state {
        RecoveryState::Recovered => pb::ReceiptRecoveryState::Recovered,
        RecoveryState::NotFound => pb::ReceiptRecoveryState::NotFound,
        RecoveryState::Failed => pb::ReceiptRecoveryState::Failed,
    };
    pb::Suggestion {
        kind: Some(Kind::ReceiptRecovery(pb::suggestion::ReceiptRecovery {
            state: state as i32,
            receipt_id: recovery.receipt_id.clone(),
            attempts: i32::try_from(recovery.attempts).unwrap_or(i32::MAX),
            last_attempt_at: Some(timestamp(recovery.last_attempt_at)),
            next_attempt_at: recovery.next_attempt_at.map(timestamp),
            detail: recovery.detail.clone().unwrap_or_default(),
        })),
    }
}

/// A transfer as the API shows it.
pub fn transfer(item: &TransferItem) -> pb::ReconciliationTransfer {
    let (flow_id, flow_revision) = item
        .flow
        .as_ref()
        .map(|(id, revision)| (id.to_string(), i32::try_from(*revision).unwrap_or(i32::MAX)))
        .unwrap_or_default();
    pb::ReconciliationTransfer {
        creditor_fiscal_code: item.creditor_fiscal_code.clone(),
        iuv: item.iuv.clone(),
        receipt_id: item.receipt_id.clone(),
        id_transfer: i32::from(item.id_transfer),
        amount_cents: item.amount_cents,
        label: label_value(item.label),
        labels: labels_value(&item.labels),
        scope: scope_value(item.scope),
        flow_id,
        flow_revision,
        treasury_credit_ids: item
            .treasury_credit_ids
            .iter()
            .map(ToString::to_string)
            .collect(),
        suggestions: item
            .suggestions
            .iter()
            .map(suggestion)
            .chain(item.recovery.as_ref().map(receipt_recovery))
            .collect(),
        treasury_state: treasury_state_value(item.treasury_state),
        reported_cents: item.reported_cents,
        paid_on: item.paid_on.map(format_date).unwrap_or_default(),
    }
}

fn evidence(e: &EvidenceRef) -> pb::Evidence {
    use pb::evidence::Kind as E;
    let kind = match e {
        EvidenceRef::Receipt(key) => E::Receipt(pb::evidence::ReceiptTransfer {
            iuv: key.iuv.to_string(),
            receipt_id: key.receipt_id.clone(),
            id_transfer: i32::from(key.transfer_index.get()),
        }),
        EvidenceRef::Flow(id, revision) => E::Flow(pb::evidence::FlowRevision {
            flow_id: id.to_string(),
            revision: i32::try_from(*revision).unwrap_or(i32::MAX),
        }),
        EvidenceRef::Credit(id) => E::CreditId(id.to_string()),
        EvidenceRef::TreasuryCoverage(day) => E::TreasuryCoverage(format_date(*day)),
    };
    pb::Evidence { kind: Some(kind) }
}

/// A transfer key's `reported` position as the API shows it.
pub fn reported_posting(posting: &ReportedPosting) -> pb::ReportedPosting {
    pb::ReportedPosting {
        flow_id: posting.flow_id.clone().unwrap_or_default(),
        flow_revision: posting
            .flow_revision
            .and_then(|r| i32::try_from(r).ok())
            .unwrap_or(0),
        amounts: posting
            .amounts
            .iter()
            .map(|(account, cents)| pb::LedgerLine {
                account: account.code(),
                amount_cents: *cents,
            })
            .collect(),
    }
}

/// A label change as the API shows it.
pub fn label_change(change: &LabelChangeRecord) -> pb::LabelChange {
    pb::LabelChange {
        changed_at: Some(timestamp(change.changed_at)),
        previous_label: label_value(change.previous_label),
        label: label_value(change.label),
        labels: labels_value(&change.labels),
        treasury_state: treasury_state_value(
            change
                .treasury_state
                .as_deref()
                .and_then(FlowTreasuryState::parse),
        ),
        document: change
            .causes
            .document
            .as_ref()
            .map(|(id, file_name, format)| pb::ImportedDocument {
                id: id.to_string(),
                file_name: file_name.clone(),
                format: format.clone(),
            }),
        evidence: change.causes.evidence.iter().map(evidence).collect(),
    }
}

/// A flow as the API shows it.
pub fn reporting_flow(item: &FlowItem) -> pb::ReportingFlow {
    pb::ReportingFlow {
        creditor_fiscal_code: item.creditor_fiscal_code.clone(),
        flow_id: item.flow_id.to_string(),
        revision: i32::try_from(item.revision).unwrap_or(i32::MAX),
        psp_id: item.psp_id.clone(),
        regulation_date: format_date(item.regulation_date),
        trn: item.trn.clone(),
        total_cents: item.total_cents,
        line_count: item.line_count,
        lines_total_cents: item.lines_cents,
        treasury_state: treasury_state_value(item.treasury_state),
        treasury_credit_ids: item
            .treasury_credit_ids
            .iter()
            .map(ToString::to_string)
            .collect(),
        suggestions: item.suggestions.iter().map(suggestion).collect(),
    }
}

/// A credit as the API shows it.
pub fn treasury_credit(item: &CreditItem) -> pb::TreasuryCredit {
    pb::TreasuryCredit {
        creditor_fiscal_code: item.creditor_fiscal_code.clone(),
        account: item.account.clone(),
        id: item.id.to_string(),
        amount_cents: item.amount_cents,
        booking_date: format_date(item.booking_date),
        value_date: format_date(item.value_date),
        causale: item.causale.clone(),
        trn: item.trn.clone().unwrap_or_default(),
        referenced_flow_ids: item.referenced_flow_ids.clone(),
        referenced_iuvs: item.referenced_iuvs.clone(),
        label: label_value(item.label),
        suggestions: item.suggestions.iter().map(suggestion).collect(),
        attributed_flow_ids: item
            .attributed_flow_ids
            .iter()
            .map(ToString::to_string)
            .collect(),
        possible_duplicates: item
            .possible_duplicates
            .iter()
            .map(possible_duplicate)
            .collect(),
    }
}

/// A ListTreasuryReversals request as the store's filter (validated there).
pub fn reversal_filter(r: &pb::ListTreasuryReversalsRequest) -> ReversalFilterInput {
    ReversalFilterInput {
        creditor_fiscal_code: r.creditor_fiscal_code.clone(),
        booked_from: r.booked_from.clone(),
        booked_to: r.booked_to.clone(),
    }
}

/// A reversal as the API shows it.
pub fn treasury_reversal(item: &ReversalItem) -> pb::TreasuryReversal {
    pb::TreasuryReversal {
        creditor_fiscal_code: item.creditor_fiscal_code.clone(),
        reference: item.reference.clone().unwrap_or_default(),
        reverses_bill: item.reverses_bill.clone().unwrap_or_default(),
        amount_cents: item.amount_cents,
        booking_date: item.booking_date.map(format_date).unwrap_or_default(),
        account: item.account.clone(),
        file_name: item.file_name.clone(),
    }
}

fn possible_duplicate(duplicate: &PossibleDuplicate) -> pb::PossibleDuplicate {
    let reason = match duplicate.reason {
        DuplicateReason::Trn => pb::DuplicateReason::Trn,
        DuplicateReason::EndToEndId => pb::DuplicateReason::EndToEndId,
    };
    pb::PossibleDuplicate {
        credit_id: duplicate.credit_id.to_string(),
        reason: reason.into(),
        file_name: duplicate.file_name.clone(),
    }
}

fn label_totals(
    totals: &std::collections::BTreeMap<Option<Label>, LabelTotal>,
) -> Vec<pb::LabelTotal> {
    // `None` sorts first: "not assessed" leads, then the contract's priority order.
    totals
        .iter()
        .map(|(label, total)| label_total(*label, total))
        .collect()
}

fn label_total(label: Option<Label>, total: &LabelTotal) -> pb::LabelTotal {
    pb::LabelTotal {
        label: label_value(label),
        count: i64::try_from(total.count).unwrap_or(i64::MAX),
        amount_cents: total.amount_cents,
    }
}

/// A summary as the API shows it.
pub fn summary(s: &ReconciliationSummary) -> pb::GetSummaryResponse {
    pb::GetSummaryResponse {
        transfer_labels: label_totals(&s.transfers),
        credit_labels: label_totals(&s.credits),
        paid_cents: s.paid_cents,
        reported_cents: s.reported_cents,
        cashed_cents: s.cashed_cents,
        possibly_duplicated_credits: Some(label_total(None, &s.possibly_duplicated_credits)),
        reversals: Some(label_total(None, &s.reversals)),
    }
}

fn count(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// What an import did, as the API shows it.
pub fn import_outcome(o: &ImportOutcome) -> pb::ImportDocumentResponse {
    pb::ImportDocumentResponse {
        file_name: o.file.clone(),
        format: o.kind.clone(),
        creditor_fiscal_code: o.creditor.clone(),
        already_imported: o.already_imported,
        flows_added: count(o.flows_added),
        lines_added: count(o.lines_added),
        flows_already_held: count(o.flows_already_held),
        credits_added: count(o.credits_added),
        credits_already_held: count(o.credits_already_held),
        other_movements: i64::try_from(o.other_movements).unwrap_or(i64::MAX),
        label_changes: count(o.label_changes),
        ledger_entries_posted: count(o.ledger_entries_posted),
        warnings: o.warnings.clone(),
    }
}

/// An import's refusal with the document's field named as the request names it
/// (`content`): the store names the document it read `document`.
pub fn import_error(error: AppError) -> AppError {
    match error {
        AppError::Invalid(errors) => {
            let mut renamed = ValidationErrors::new();
            for v in errors.violations() {
                let field = if v.field == "document" {
                    "content"
                } else {
                    v.field.as_str()
                };
                renamed.add(field, &v.description);
            }
            AppError::Invalid(renamed)
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_label_has_its_own_value_and_comes_back() {
        let mut seen = std::collections::BTreeSet::new();
        for label in Label::ALL {
            let value = label_value(Some(label));
            assert!(seen.insert(value));
            assert_eq!(label_filter(value), Ok(Some(label)));
            let name = pb::ReconciliationLabel::try_from(value)
                .unwrap()
                .as_str_name();
            assert_eq!(name, format!("RECONCILIATION_LABEL_{}", label.code()));
        }
        assert_eq!(label_filter(0), Ok(None));
        assert_eq!(label_filter(99), Err(()));
    }

    #[test]
    fn every_treasury_state_is_named_as_in_the_contract() {
        for code in ["CASHED", "DIV_IMP", "NO_TES", "PENDING"] {
            let state = FlowTreasuryState::parse(code).unwrap();
            let value = treasury_state_value(Some(state));
            let name = pb::TreasuryState::try_from(value).unwrap().as_str_name();
            assert_eq!(name, format!("TREASURY_STATE_{code}"));
            assert_eq!(treasury_state_filter(value), Ok(Some(state)));
        }
    }
}
