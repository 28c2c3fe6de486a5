//! Requests and a store on a fresh database, as the tests' starting point.

use std::sync::Arc;

use incasso_domain::creditor::{Creditor, CreditorRegistry};
use incasso_domain::debt_position::input::{
    DebtPositionInput, DebtorInput, DetailsInput, InstallmentInput, PaymentOptionInput,
    SchoolFeeInput, TariInput, TrafficFineInput, TransferInput,
};
use incasso_domain::debt_position::{DebtKind, SchoolService};
use incasso_domain::fiscal_code::{EntityType, OrganizationFiscalCode};
use incasso_domain::iban::Iban;
use incasso_domain::notice_number::SegregationCode;
use incasso_store::testing::{Engine, TestDatabase};
use incasso_store::{IuvFloors, PrivacyKeys, Store};
use sea_orm::{ConnectionTrait, Statement};
use time::macros::datetime;

pub const MILANO: &str = "01199250158";
pub const CITTA_METROPOLITANA: &str = "08911820960";
pub const MILANO_BANK_IBAN: &str = incasso_test_ibans::MILANO_BANK;
pub const MILANO_POSTE_IBAN: &str = incasso_test_ibans::MILANO_POSTE;
pub const CM_BANK_IBAN: &str = incasso_test_ibans::CM_BANK;
pub const CM_POSTE_IBAN: &str = incasso_test_ibans::CM_POSTE;

mod incasso_test_ibans {
    pub const MILANO_BANK: &str = "IT02N0306909400000012345678";
    pub const MILANO_POSTE: &str = "IT22L0760101600000012345678";
    pub const CM_BANK: &str = "IT66Q0503401633000000098765";
    pub const CM_POSTE: &str = "IT92G0760101600000098765432";
}

/// Milan (segregation code 12) and the Città Metropolitana.
pub fn registry() -> CreditorRegistry {
    let iban = |s: &str| Iban::parse(s).unwrap();
    CreditorRegistry::new([
        Creditor::new(
            OrganizationFiscalCode::parse(MILANO).unwrap(),
            "Comune di Milano",
            Some(SegregationCode::new(12).unwrap()),
            vec![iban(MILANO_BANK_IBAN)],
            vec![iban(MILANO_POSTE_IBAN)],
        )
        .unwrap(),
        Creditor::new(
            OrganizationFiscalCode::parse(CITTA_METROPOLITANA).unwrap(),
            "Città Metropolitana di Milano",
            None,
            vec![iban(CM_BANK_IBAN)],
            vec![iban(CM_POSTE_IBAN)],
        )
        .unwrap(),
    ])
    .unwrap()
}

/// A store on a fresh database, its clock fixed at 2026-11-24 10:00 UTC.
pub struct Harness {
    pub store: Store,
    pub database: Option<TestDatabase>,
}

impl Harness {
    pub async fn new(engine: Engine) -> Self {
        let (database, db) = TestDatabase::migrated(engine).await.unwrap();
        let store = Store::open(
            db,
            registry(),
            PrivacyKeys::development(),
            &IuvFloors::default(),
        )
        .await
        .unwrap()
        .with_clock(Arc::new(|| datetime!(2026-11-24 10:00 UTC)));
        Self {
            store,
            database: Some(database),
        }
    }

    /// A second store on the same database, as another replica would have.
    pub async fn replica(&self) -> Store {
        self.replica_with_pool(8).await
    }

    /// [`Harness::replica`] with a pool of `max_connections` (at least 2 on PostgreSQL).
    pub async fn replica_with_pool(&self, max_connections: u32) -> Store {
        let database = self.database.as_ref().unwrap();
        let db = incasso_store::db::connect(&database.url, max_connections)
            .await
            .unwrap();
        Store::open(
            db,
            registry(),
            PrivacyKeys::development(),
            &IuvFloors::default(),
        )
        .await
        .unwrap()
        .with_clock(Arc::new(|| datetime!(2026-11-24 10:00 UTC)))
    }

    pub async fn finish(mut self) {
        let database = self.database.take().unwrap();
        self.store.db().clone().close().await.unwrap();
        database.drop_database().await.unwrap();
    }
}

fn transfer(beneficiary: &str, cents: i64, remittance: &str) -> TransferInput {
    TransferInput {
        beneficiary_fiscal_code: beneficiary.to_owned(),
        amount_cents: cents,
        remittance_information: remittance.to_owned(),
        ..Default::default()
    }
}

fn installment(cents: i64, due: &str, transfers: Vec<TransferInput>) -> InstallmentInput {
    InstallmentInput {
        amount_cents: cents,
        due_date: due.to_owned(),
        expiry_date: String::new(),
        transfers,
    }
}

/// The TARI request of the foundation issue: a single payment and a plan of three.
pub fn tari(request_id: &str) -> DebtPositionInput {
    let rate = |due: &str| {
        installment(
            10000,
            due,
            vec![
                transfer(MILANO, 9500, ""),
                transfer(CITTA_METROPOLITANA, 500, ""),
            ],
        )
    };
    DebtPositionInput {
        request_id: request_id.to_owned(),
        creditor_fiscal_code: MILANO.to_owned(),
        kind: Some(DebtKind::Tari),
        debtor: Some(DebtorInput {
            entity_type: Some(EntityType::F),
            fiscal_code: "RSSMRA80A01F205X".to_owned(),
            full_name: "Mario Rossi".to_owned(),
            email: String::new(),
        }),
        description: "TARI 2026 utenza domestica".to_owned(),
        details: Some(DetailsInput::Tari(TariInput {
            tax_year: 2026,
            property_ref: "UT000123".to_owned(),
        })),
        payment_options: vec![
            PaymentOptionInput {
                label: "Rata unica".to_owned(),
                installments: vec![installment(
                    30000,
                    "2026-07-31",
                    vec![
                        transfer(MILANO, 28500, "TARI 2026 rata unica"),
                        transfer(CITTA_METROPOLITANA, 1500, "TEFA 2026 rata unica"),
                    ],
                )],
            },
            PaymentOptionInput {
                label: "Tre rate".to_owned(),
                installments: vec![rate("2026-07-31"), rate("2026-09-30"), rate("2026-11-30")],
            },
        ],
    }
}

/// The traffic fine of the foundation issue.
pub fn fine(request_id: &str) -> DebtPositionInput {
    DebtPositionInput {
        request_id: request_id.to_owned(),
        creditor_fiscal_code: MILANO.to_owned(),
        kind: Some(DebtKind::TrafficFine),
        debtor: Some(DebtorInput {
            entity_type: Some(EntityType::F),
            fiscal_code: "BNCLRA85M41F205C".to_owned(),
            full_name: "Laura Bianchi".to_owned(),
            email: String::new(),
        }),
        description: "Verbale V123456/2026".to_owned(),
        details: Some(DetailsInput::TrafficFine(TrafficFineInput {
            report_number: "V123456/2026".to_owned(),
            plate: "AB123CD".to_owned(),
            violation_date: "2026-11-02".to_owned(),
            notification_date: "2026-11-10".to_owned(),
            reduced_amount_cents: 2940,
            full_amount_cents: 4200,
            increased_amount_cents: 8400,
            notification_costs_cents: 1260,
        })),
        payment_options: vec![],
    }
}

/// The school fee of the foundation issue.
pub fn school_fee(request_id: &str) -> DebtPositionInput {
    DebtPositionInput {
        request_id: request_id.to_owned(),
        creditor_fiscal_code: MILANO.to_owned(),
        kind: Some(DebtKind::SchoolFee),
        debtor: Some(DebtorInput {
            entity_type: Some(EntityType::F),
            fiscal_code: "RSSMRA80A01F205X".to_owned(),
            full_name: "Mario Rossi".to_owned(),
            email: String::new(),
        }),
        description: "Retta nido novembre 2026".to_owned(),
        details: Some(DetailsInput::SchoolFee(SchoolFeeInput {
            pupil_ref: "ALU7781".to_owned(),
            service: Some(SchoolService::Nido),
            school_year: "2026/2027".to_owned(),
            month: "2026-11".to_owned(),
        })),
        payment_options: vec![PaymentOptionInput {
            label: "Novembre".to_owned(),
            installments: vec![installment(46500, "2026-12-15", vec![])],
        }],
    }
}

/// Counts the rows of a table.
pub async fn count(harness: &Harness, table: &str) -> i64 {
    let db = harness.store.db();
    let row = db
        .query_one_raw(Statement::from_string(
            db.get_database_backend(),
            format!("SELECT COUNT(*) AS n FROM {table}"),
        ))
        .await
        .unwrap()
        .unwrap();
    row.try_get("", "n").unwrap()
}

/// Runs raw SQL, as an operator at the database would.
pub async fn execute(harness: &Harness, sql: &str) -> Result<(), sea_orm::DbErr> {
    let db = harness.store.db();
    db.execute_raw(Statement::from_string(
        db.get_database_backend(),
        sql.to_owned(),
    ))
    .await
    .map(|_| ())
}
