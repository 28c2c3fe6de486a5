//! BulkCreateDebtPositions: a stream in, one result per item out.

use tonic::Code;

use incasso_grpc::pb;
use incasso_grpc::pb::bulk_create_debt_positions_response::Result as ItemResult;
use incasso_integration_tests::requests;
use incasso_integration_tests::{Engine, TestApp};

use crate::on_both_engines;

on_both_engines!(a_bad_item_never_aborts_the_good_ones_and_a_resent_stream_creates_nothing);

fn stream(n: usize) -> Vec<pb::CreateDebtPositionRequest> {
    (0..n)
        .map(|i| match i % 7 {
            3 => {
                let mut bad = requests::tari(&format!("bulk-{i}"));
                bad.payment_options[0].installments[0].amount_cents += 1;
                bad
            }
            5 => requests::school_fee(&format!("bulk-{i}")),
            _ => requests::tari(&format!("bulk-{i}")),
        })
        .collect()
}

async fn a_bad_item_never_aborts_the_good_ones_and_a_resent_stream_creates_nothing(
    engine: Engine,
) -> anyhow::Result<()> {
    let app = TestApp::spawn(engine).await?;
    let mut client = app.notices().await?;
    let items = stream(1200);
    let mut responses = client
        .bulk_create_debt_positions(tokio_stream::iter(items.clone()))
        .await?
        .into_inner();
    let mut results = Vec::new();
    while let Some(item) = responses.message().await? {
        results.push(item);
    }
    assert_eq!(results.len(), items.len());
    let mut navs = std::collections::HashSet::new();
    for (i, item) in results.iter().enumerate() {
        assert_eq!(item.index, i as i64);
        assert_eq!(item.request_id, items[i].request_id);
        match (&item.result, i % 7) {
            (Some(ItemResult::Error(error)), 3) => {
                assert_eq!(error.code, Code::InvalidArgument as i32);
                assert_eq!(
                    error.field_violations[0].field,
                    "payment_options[0].installments[0].transfers"
                );
            }
            (Some(ItemResult::DebtPosition(position)), k) if k != 3 => {
                assert!(!item.replayed);
                for option in &position.payment_options {
                    for installment in &option.installments {
                        assert!(
                            navs.insert(installment.notice_number.clone()),
                            "NAV issued twice"
                        );
                    }
                }
            }
            other => panic!("item {i}: unexpected {other:?}"),
        }
    }
    // The same stream again: everything replays, the same notice numbers come back.
    let mut again = client
        .bulk_create_debt_positions(tokio_stream::iter(items.clone()))
        .await?
        .into_inner();
    let mut replayed = 0;
    while let Some(item) = again.message().await? {
        if let Some(ItemResult::DebtPosition(position)) = &item.result {
            assert!(item.replayed);
            let ItemResult::DebtPosition(first) =
                results[item.index as usize].result.clone().unwrap()
            else {
                panic!("item {} was not created the first time", item.index);
            };
            assert_eq!(position, &first);
            replayed += 1;
        }
    }
    assert_eq!(
        replayed,
        items.iter().enumerate().filter(|(i, _)| i % 7 != 3).count()
    );
    let total = client
        .list_debt_positions(pb::ListDebtPositionsRequest {
            page_size: 1000,
            ..Default::default()
        })
        .await?
        .into_inner();
    assert_eq!(total.debt_positions.len(), 1000);
    assert!(
        !total.next_page_token.is_empty(),
        "more than 1000 positions"
    );
    app.stop().await
}
