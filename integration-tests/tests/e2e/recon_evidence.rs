//! Reconciliation evidence the end-to-end tests write: transfer keys, reporting-flow lines and
//! FlussoRiversamento documents of the Milan sample creditor.

use incasso_domain::notice_number::Iuv;
use incasso_domain::reconciliation::{
    FlowId, FlowLine, OutcomeCode, ReportingFlow, TransferIndex, TransferKey,
};
use incasso_integration_tests::requests::MILANO;
use incasso_reconciliation::testing::fdr_xml;
use time::macros::datetime;

/// The key of transfer `index` of receipt `receipt_id` paying `iuv`.
pub fn transfer_key(iuv: &str, receipt_id: &str, index: i64) -> TransferKey {
    TransferKey::new(
        Iuv::parse(iuv).unwrap(),
        receipt_id,
        TransferIndex::new(index).unwrap(),
    )
    .unwrap()
}

/// A flow line reporting `key` executed for `amount_cents`, paid on `paid_on`.
pub fn line(key: TransferKey, amount_cents: i64, paid_on: time::Date) -> FlowLine {
    FlowLine {
        key,
        amount_cents,
        outcome: OutcomeCode::Executed,
        paid_on,
    }
}

/// Revision 0 of flow `id` of `psp` for Milan, created on 24 November at 06:00 UTC.
pub fn flow(id: &str, psp: &str, regulation_date: time::Date, lines: Vec<FlowLine>) -> String {
    flow_at(
        id,
        psp,
        regulation_date,
        lines,
        datetime!(2026-11-24 06:00 UTC),
    )
}

/// Revision 0 of flow `id` of `psp` for Milan, created at `created_at`; its total is the sum
/// of its lines.
pub fn flow_at(
    id: &str,
    psp: &str,
    regulation_date: time::Date,
    lines: Vec<FlowLine>,
    created_at: time::OffsetDateTime,
) -> String {
    let flow = ReportingFlow {
        flow_id: FlowId::parse(id).unwrap(),
        revision: 0,
        created_at,
        psp_id: psp.to_owned(),
        trn: format!("TRN-{psp}"),
        regulation_date,
        total_cents: lines.iter().map(|l| l.amount_cents).sum(),
        lines,
    };
    fdr_xml(&flow, MILANO)
}
