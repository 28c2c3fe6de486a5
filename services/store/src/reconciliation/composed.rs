//! A key's label composed with its flow's when read. A treasury statement changes the
//! treasury state of the flows it reaches, and with it the label of every key their lines
//! report; those keys' rows are not rewritten. A key reported by one flow keeps what its
//! receipts and lines decided, with its flow's standing as it was when the row was written,
//! and whoever reads it composes it with its flow's current assessment (the domain's
//! [`recompose`]): the import's passes with the flows they hold, the lists with the
//! flow row joined by `composed_flow_id` (in SQL when they filter by label), a key's history
//! with its flow's (docs/reconciliation.md, "A key's label composed with its flow's").

use std::collections::{BTreeMap, BTreeSet};

use incasso_domain::reconciliation::{
    Assessment, FlowId, FlowTreasuryState, Label, Subject, compose_labels, recompose,
    records_standing_of,
};

use sea_orm::DbBackend;

use super::labels::StoredLabel;
use super::plain;

/// The assessments of `stored` as they read, each transfer key's composed with its flow's
/// when its row says so. `flows` holds the flows' current assessments, `before` the ones a
/// reader saw before the changes `flows` has since (an import's own: a key it has not written
/// yet read as composed with its flow's `before`, and the import records the key's change);
/// a key whose row records its flow's current standing reads as written. Read outside any
/// import, both maps are the same.
pub(crate) fn compose_keys(
    stored: BTreeMap<Subject, StoredLabel>,
    flows: &BTreeMap<Subject, Assessment>,
    before: &BTreeMap<Subject, Assessment>,
) -> BTreeMap<Subject, Assessment> {
    stored
        .into_iter()
        .map(|(subject, row)| {
            let now = match subject {
                Subject::Transfer(_) if row.composed => {
                    let flow = sole_flow(&row.assessment).map(|f| Subject::Flow(f.clone()));
                    let current = flow.as_ref().and_then(|f| flows.get(f));
                    match current {
                        Some(current) if records_standing_of(&row.assessment, current) => None,
                        _ => flow
                            .as_ref()
                            .and_then(|f| before.get(f))
                            .and_then(|before| recompose(&row.assessment, before)),
                    }
                }
                _ => None,
            };
            (subject, now.unwrap_or(row.assessment))
        })
        .collect()
}

/// The one flow an assessment names; the domain decides whether the key is composed with it.
fn sole_flow(assessment: &Assessment) -> Option<&FlowId> {
    let mut flows = assessment.flow_ids.iter();
    match (flows.next(), flows.next()) {
        (Some(flow), None) => Some(flow),
        _ => None,
    }
}

/// `stored` composed with its flow's current assessment, which `flow_of` finds; `None` when it
/// reads as stored (not composed with a flow, its flow not found, or its flow's standing the
/// one it records).
pub(crate) fn composed_now<'a>(
    stored: &Assessment,
    flow_of: impl FnOnce(&FlowId) -> Option<&'a Assessment>,
) -> Option<Assessment> {
    recompose(stored, flow_of(sole_flow(stored)?)?)
}

/// The kinds of facts a key's labels record, as [`compose_labels`] reads them back: one set
/// of labels for each, and the SQL condition on a label row's `labels` (codes joined by
/// commas) that holds exactly for it.
fn facts(labels: &str) -> Vec<(BTreeSet<Label>, String)> {
    let has = |label: Label| format!("(',' || {labels} || ',') LIKE '%,{},%'", label.code());
    let mut out = Vec::new();
    for doppi in [true, false] {
        let doppi_condition = if doppi {
            has(Label::Doppi)
        } else {
            format!("NOT {}", has(Label::Doppi))
        };
        for (set, condition) in [
            (vec![Label::IuvNoRt], has(Label::IuvNoRt)),
            (
                vec![Label::RtNoIuf],
                format!("NOT {} AND {}", has(Label::IuvNoRt), has(Label::RtNoIuf)),
            ),
            (
                vec![],
                format!(
                    "NOT {} AND NOT {}",
                    has(Label::IuvNoRt),
                    has(Label::RtNoIuf)
                ),
            ),
        ] {
            let mut set: BTreeSet<Label> = set.into_iter().collect();
            if doppi {
                set.insert(Label::Doppi);
            }
            out.push((set, format!("{doppi_condition} AND {condition}")));
        }
    }
    out
}

const STATES: [FlowTreasuryState; 4] = [
    FlowTreasuryState::Cashed,
    FlowTreasuryState::DivImp,
    FlowTreasuryState::NoTes,
    FlowTreasuryState::Pending,
];

/// SQL of the label a transfer label row aliased `row` reads as: its stored label, composed
/// with its flow's current treasury state when it names one (`composed_flow_id`), or, for a
/// plain key's bare row, with the flow of its line in a marked revision ([`super::plain`]),
/// when some revision was marked (`plain_rows`: without one a bare row reads as stored, and
/// the lines' index is not probed for each). Generated from [`compose_labels`] for every kind
/// of facts and state, so SQL and the domain agree.
pub fn label_sql(backend: DbBackend, row: &str, plain_rows: bool) -> String {
    let mut cases = String::new();
    for (set, condition) in facts(&format!("{row}.labels")) {
        for state in STATES {
            if let Some(label) = compose_labels(&set, state).first() {
                cases.push_str(&format!(
                    " WHEN f.treasury_state = '{}' AND {condition} THEN '{}'",
                    state.code(),
                    label.code()
                ));
            }
        }
    }
    let bare = if plain_rows {
        format!(
            "WHEN {} THEN COALESCE({}, {row}.label) ",
            plain::bare_sql(row),
            plain::label_sql(backend, row)
        )
    } else {
        String::new()
    };
    format!(
        "(CASE WHEN {row}.composed_flow_id IS NOT NULL THEN COALESCE(\
         (SELECT CASE{cases} END FROM recon_label f \
          WHERE f.creditor_fiscal_code = {row}.creditor_fiscal_code AND f.subject_kind = 'flow' \
          AND f.flow_id = {row}.composed_flow_id), {row}.label) \
         {bare}ELSE {row}.label END)"
    )
}

/// The stored labels a row that reads as `label` can have: `label` itself, when a flow's state
/// composes into it every label the same facts give in another state, and a plain key's bare
/// row when some flow revision left such rows (`plain_rows`). Lets a filter by label keep to
/// the label index, and to the rows that can read as it.
pub(crate) fn stored_labels_reading_as(label: Label, plain_rows: bool) -> BTreeSet<Label> {
    let mut out = BTreeSet::from([label]);
    if plain_rows && plain::labels_read().contains(&label) {
        out.insert(Label::RtNoIuf);
    }
    for (set, _) in facts("labels") {
        let principal = |state| compose_labels(&set, state).first().copied();
        if STATES.iter().any(|s| principal(*s) == Some(label)) {
            out.extend(STATES.iter().filter_map(|s| principal(*s)));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_labels_a_flow_state_decides_read_as_another() {
        assert_eq!(
            stored_labels_reading_as(Label::Doppi, true),
            BTreeSet::from([Label::Doppi])
        );
        assert_eq!(
            stored_labels_reading_as(Label::IuvNoRt, true),
            BTreeSet::from([Label::IuvNoRt])
        );
        assert_eq!(
            stored_labels_reading_as(Label::RtTes, true),
            BTreeSet::from([Label::RtTes])
        );
        assert_eq!(
            stored_labels_reading_as(Label::RtIufTes, true),
            BTreeSet::from([
                Label::IufTesDivImp,
                Label::IufNoTes,
                Label::RtIufTes,
                Label::RtIuf,
                // A plain key's bare row.
                Label::RtNoIuf,
            ])
        );
        assert!(stored_labels_reading_as(Label::RtNoIuf, true).contains(&Label::IufNoTes));
        // No bare row can read as a flow's label when no revision left its plain keys so.
        assert!(!stored_labels_reading_as(Label::RtIufTes, false).contains(&Label::RtNoIuf));
    }
}
