//! Reversals of treasury credits, as the finance office finds them after the import: the
//! Tesoriere's giornale di cassa takes back a credit (`STORNATO`), the import warns, and
//! ListTreasuryReversals keeps listing it, once however many documents repeat it, by
//! booking day and page by page, and GetSummary counts them. Labels do not move: the
//! contract reads credits only.

use incasso_grpc::pb;
use incasso_grpc::pb::ReconciliationLabel as L;
use incasso_integration_tests::requests::MILANO;
use incasso_integration_tests::{Engine, TestApp};
use incasso_reconciliation::testing::{OpiMovement, OpiSchema, opi};
use time::Date;
use time::macros::date;
use tonic::Code;

use crate::on_both_engines;
use crate::reconciliation_service::{Client, import, violation_fields};

on_both_engines!(a_reversed_credit_is_listed_after_its_import,);

const ENTITY: &str = "C0MI01";

fn reversal(id: &str, cents: i64, day: Date) -> OpiMovement {
    OpiMovement {
        operation: "STORNATO",
        ..OpiMovement::credit(id, cents, day, "STORNO ACCREDITO")
    }
}

async fn reversals(
    client: &mut Client,
    request: pb::ListTreasuryReversalsRequest,
) -> Result<pb::ListTreasuryReversalsResponse, tonic::Status> {
    client
        .list_treasury_reversals(request)
        .await
        .map(tonic::Response::into_inner)
}

fn references(page: &pb::ListTreasuryReversalsResponse) -> Vec<&str> {
    page.reversals
        .iter()
        .map(|r| r.reference.as_str())
        .collect()
}

async fn a_reversed_credit_is_listed_after_its_import(engine: Engine) -> anyhow::Result<()> {
    let app = TestApp::spawn_with(engine, |settings| {
        settings
            .treasury_accounts
            .add_opi_code(MILANO, ENTITY)
            .unwrap();
    })
    .await?;
    let mut client = app.reconciliation().await?;

    // The 25th: a credit of the 24th, and its reversal.
    let first = opi(
        OpiSchema::V1_8,
        ENTITY,
        date!(2026 - 11 - 25),
        &[
            OpiMovement::credit("CRI-7", 100, date!(2026 - 11 - 24), "CANONE MERCATO"),
            reversal("CRI-8", 100, date!(2026 - 11 - 25)),
        ],
    );
    let imported = import(&mut client, "giornale-1125.xml", &first, 1 << 20).await?;
    assert_eq!(imported.credits_added, 1);
    assert!(
        imported
            .warnings
            .iter()
            .any(|w| w.starts_with("reversal CRI-8 of 100 cents booked on 2026-11-25")),
        "{:?}",
        imported.warnings
    );

    let listed = reversals(&mut client, pb::ListTreasuryReversalsRequest::default()).await?;
    assert_eq!(
        listed.reversals,
        vec![pb::TreasuryReversal {
            creditor_fiscal_code: MILANO.to_owned(),
            reference: "CRI-8".to_owned(),
            reverses_bill: String::new(),
            amount_cents: Some(100),
            booking_date: "2026-11-25".to_owned(),
            account: format!("OPI:{ENTITY}"),
            file_name: "giornale-1125.xml".to_owned(),
        }]
    );
    assert!(listed.next_page_token.is_empty());

    // The 26th repeats the reversal and takes back one more credit: each is kept once.
    let second = opi(
        OpiSchema::V1_8,
        ENTITY,
        date!(2026 - 11 - 26),
        &[
            reversal("CRI-8", 100, date!(2026 - 11 - 25)),
            reversal("CRI-9", 250, date!(2026 - 11 - 26)),
        ],
    );
    import(&mut client, "giornale-1126.xml", &second, 1 << 20).await?;
    let every = reversals(&mut client, pb::ListTreasuryReversalsRequest::default()).await?;
    assert_eq!(references(&every), ["CRI-8", "CRI-9"]);
    assert_eq!(every.reversals[0].file_name, "giornale-1125.xml");

    // By booking day, and one at a time.
    let later = reversals(
        &mut client,
        pb::ListTreasuryReversalsRequest {
            creditor_fiscal_code: MILANO.to_owned(),
            booked_from: "2026-11-26".to_owned(),
            ..Default::default()
        },
    )
    .await?;
    assert_eq!(references(&later), ["CRI-9"]);
    let page = |token: String| pb::ListTreasuryReversalsRequest {
        page_size: 1,
        page_token: token,
        ..Default::default()
    };
    let one = reversals(&mut client, page(String::new())).await?;
    assert_eq!(references(&one), ["CRI-8"]);
    let two = reversals(&mut client, page(one.next_page_token.clone())).await?;
    assert_eq!(references(&two), ["CRI-9"]);
    assert!(two.next_page_token.is_empty());

    // A range that ends before it starts is refused, naming the field.
    let refused = reversals(
        &mut client,
        pb::ListTreasuryReversalsRequest {
            booked_from: "2026-11-26".to_owned(),
            booked_to: "2026-11-25".to_owned(),
            ..Default::default()
        },
    )
    .await
    .unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert_eq!(violation_fields(&refused), ["booked_to"]);

    // The summary of the days counts them, next to the credits they leave labelled.
    let summary = |from: &str, to: &str| pb::GetSummaryRequest {
        from: from.to_owned(),
        to: to.to_owned(),
        creditor_fiscal_code: MILANO.to_owned(),
    };
    let both = client
        .get_summary(summary("2026-11-24", "2026-11-26"))
        .await?
        .into_inner();
    let taken_back = both.reversals.unwrap();
    assert_eq!((taken_back.count, taken_back.amount_cents), (2, 350));
    let last = client
        .get_summary(summary("2026-11-26", "2026-11-26"))
        .await?
        .into_inner();
    let taken_back = last.reversals.unwrap();
    assert_eq!((taken_back.count, taken_back.amount_cents), (1, 250));

    // The reversed credit keeps its label.
    let credits = client
        .list_treasury_credits(pb::ListTreasuryCreditsRequest::default())
        .await?
        .into_inner()
        .credits;
    assert_eq!(credits.len(), 1);
    assert_eq!(credits[0].label, L::TesNoMatch as i32);
    app.stop().await
}
