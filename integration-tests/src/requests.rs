//! The requests of the foundation issue's acceptance checks, as protobuf messages.

use incasso_grpc::pb;

/// Comune di Milano.
pub const MILANO: &str = "01199250158";
/// Città Metropolitana di Milano (TEFA).
pub const CITTA_METROPOLITANA: &str = "08911820960";

fn transfer(beneficiary: &str, cents: i64, remittance: &str) -> pb::Transfer {
    pb::Transfer {
        beneficiary_fiscal_code: beneficiary.to_owned(),
        amount_cents: cents,
        remittance_information: remittance.to_owned(),
        ..Default::default()
    }
}

fn installment(cents: i64, due: &str, transfers: Vec<pb::Transfer>) -> pb::Installment {
    pb::Installment {
        amount_cents: cents,
        due_date: due.to_owned(),
        transfers,
        ..Default::default()
    }
}

fn debtor(fiscal_code: &str, name: &str) -> pb::Debtor {
    pb::Debtor {
        r#type: pb::EntityType::F as i32,
        fiscal_code: fiscal_code.to_owned(),
        full_name: name.to_owned(),
        email: String::new(),
    }
}

/// The TARI position: a single payment and a plan of three, with TEFA.
pub fn tari(request_id: &str) -> pb::CreateDebtPositionRequest {
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
    pb::CreateDebtPositionRequest {
        request_id: request_id.to_owned(),
        creditor_fiscal_code: MILANO.to_owned(),
        kind: pb::DebtKind::Tari as i32,
        debtor: Some(debtor("RSSMRA80A01F205X", "Mario Rossi")),
        description: "TARI 2026 utenza domestica".to_owned(),
        details: Some(pb::create_debt_position_request::Details::Tari(
            pb::TariDetails {
                tax_year: 2026,
                property_ref: "UT000123".to_owned(),
            },
        )),
        payment_options: vec![
            pb::PaymentOption {
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
            pb::PaymentOption {
                label: "Tre rate".to_owned(),
                installments: vec![rate("2026-07-31"), rate("2026-09-30"), rate("2026-11-30")],
            },
        ],
    }
}

/// The traffic fine.
pub fn fine(request_id: &str) -> pb::CreateDebtPositionRequest {
    pb::CreateDebtPositionRequest {
        request_id: request_id.to_owned(),
        creditor_fiscal_code: MILANO.to_owned(),
        kind: pb::DebtKind::TrafficFine as i32,
        debtor: Some(debtor("BNCLRA85M41F205C", "Laura Bianchi")),
        description: "Verbale V123456/2026".to_owned(),
        details: Some(pb::create_debt_position_request::Details::TrafficFine(
            pb::TrafficFineDetails {
                report_number: "V123456/2026".to_owned(),
                plate: "AB123CD".to_owned(),
                violation_date: "2026-11-02".to_owned(),
                notification_date: "2026-11-10".to_owned(),
                reduced_amount_cents: 2940,
                full_amount_cents: 4200,
                increased_amount_cents: 8400,
                notification_costs_cents: 1260,
            },
        )),
        payment_options: vec![],
    }
}

/// The monthly nido fee.
pub fn school_fee(request_id: &str) -> pb::CreateDebtPositionRequest {
    pb::CreateDebtPositionRequest {
        request_id: request_id.to_owned(),
        creditor_fiscal_code: MILANO.to_owned(),
        kind: pb::DebtKind::SchoolFee as i32,
        debtor: Some(debtor("RSSMRA80A01F205X", "Mario Rossi")),
        description: "Retta nido novembre 2026".to_owned(),
        details: Some(pb::create_debt_position_request::Details::SchoolFee(
            pb::SchoolFeeDetails {
                pupil_ref: "ALU7781".to_owned(),
                service: pb::SchoolService::Nido as i32,
                school_year: "2026/2027".to_owned(),
                month: "2026-11".to_owned(),
            },
        )),
        payment_options: vec![pb::PaymentOption {
            label: "Novembre".to_owned(),
            installments: vec![installment(46500, "2026-12-15", vec![])],
        }],
    }
}
