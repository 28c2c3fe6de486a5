//! The paForNode primitives: who may call (creditor, broker, station), what a notice costs
//! today, and what its state makes of a verify or an activation. Every business refusal is a
//! KO with the PAA_ code the Node and the citizen's app understand; only a genuinely transient
//! failure (the database unreachable) is PAA_SYSTEM_ERROR, the one answer that makes the Node
//! retry. Verify and activation read; they never change a position.

use incasso_domain::debt_position::{
    DebtPosition, EffectiveInstallmentState, Installment, KindDetails,
};
use incasso_domain::ledger::chain::hex_lower;
use incasso_domain::validation::format_date;
use incasso_store::receipts::{ReceiptInput, ReceiptTransferInput};
use incasso_store::{AppError, Store};
use tracing::Instrument;

use crate::message::{
    self, GetPaymentRequest, Header, Operation, Request, SendRtRequest, SyntaxError, TransferType,
    VerifyRequest,
};
use crate::response::{
    self, Fault, FaultCode, PaymentOptionView, PaymentView, TransferView, VerifyView,
};
use crate::xml::Limits;

/// Who incasso is on the PagoPA Node: its intermediary (broker) and stations, and the
/// creditors those stations serve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StationConfig {
    /// idBrokerPA.
    pub broker_id: String,
    /// idStation values.
    pub station_ids: Vec<String>,
    /// idPA values (creditor fiscal codes) served.
    pub creditor_ids: Vec<String>,
}

/// An HTTP answer: status and SOAP body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// 200 for every paForNode answer, OK or KO; 500 only for a SOAP Fault.
    pub status: u16,
    /// The SOAP envelope.
    pub body: String,
}

/// The paForNode service.
#[derive(Debug, Clone)]
pub struct NodeService {
    store: Store,
    station: StationConfig,
    limits: Limits,
}

fn ko(operation: Operation, code: FaultCode, id: &str, description: impl Into<String>) -> Reply {
    Reply {
        status: 200,
        body: response::ko(
            operation,
            &Fault {
                code,
                description: description.into(),
                id: id.to_owned(),
            },
        ),
    }
}

/// The one mapping from use-case errors to faults.
fn store_fault(operation: Operation, id: &str, error: &AppError) -> Reply {
    match error {
        AppError::NotFound { .. } | AppError::Invalid(_) => ko(
            operation,
            FaultCode::PagamentoSconosciuto,
            id,
            "notice unknown to the creditor",
        ),
        AppError::Unavailable(detail) => {
            tracing::warn!(%detail, "storage unavailable");
            ko(
                operation,
                FaultCode::SystemError,
                id,
                "temporarily unavailable, retry",
            )
        }
        AppError::Internal(detail) => {
            tracing::error!(%detail, "internal error");
            ko(operation, FaultCode::SystemError, id, "internal error")
        }
        AppError::IdempotencyConflict { .. } | AppError::Refused(_) => {
            ko(operation, FaultCode::Semantica, id, error.to_string())
        }
    }
}

impl NodeService {
    /// A service over `store` for `station`.
    pub fn new(store: Store, station: StationConfig, limits: Limits) -> Self {
        Self {
            store,
            station,
            limits,
        }
    }

    /// Answers one SOAP message. `soap_action` is the SOAPAction header, if any.
    pub async fn handle(&self, body: &[u8], soap_action: Option<&str>) -> Reply {
        let hinted = soap_action
            .and_then(Operation::from_soap_action)
            .or_else(|| message::operation_of(body));
        let request = match message::parse_request(body, self.limits) {
            Ok(request) => request,
            Err(error) => return self.syntax_fault(hinted, &error),
        };
        let operation = request.operation();
        let id_pa = request.header().id_pa.clone();
        let span = tracing::info_span!(
            "paForNode",
            primitive = operation.name(),
            creditor = %id_pa,
            iuv = tracing::field::Empty,
            outcome = tracing::field::Empty,
        );
        async move {
            let reply = match self.check_caller(operation, request.header()) {
                Err(reply) => reply,
                Ok(()) => match &request {
                    Request::Verify(verify) => self.verify(verify).await,
                    Request::GetPayment(get, operation) => self.get_payment(get, *operation).await,
                    Request::SendRt(send, operation) => self.send_rt(send, *operation, body).await,
                    Request::Demand(_) => ko(
                        Operation::DemandPaymentNotice,
                        FaultCode::Semantica,
                        &id_pa,
                        "no spontaneous-payment service is published by this creditor",
                    ),
                },
            };
            let outcome = if reply.body.contains("<outcome>OK</outcome>") {
                "OK"
            } else {
                "KO"
            };
            tracing::Span::current().record("outcome", outcome);
            tracing::info!("answered");
            reply
        }
        .instrument(span)
        .await
    }

    fn syntax_fault(&self, operation: Option<Operation>, error: &SyntaxError) -> Reply {
        let code = match error {
            SyntaxError::Unparseable(_) => FaultCode::SintassiExtraXsd,
            SyntaxError::Invalid { .. } => FaultCode::SintassiXsd,
        };
        tracing::warn!(code = code.code(), reason = %error.description(), "request refused");
        match operation {
            Some(operation) => ko(
                operation,
                code,
                &self.station.broker_id,
                error.description(),
            ),
            None => Reply {
                status: 500,
                body: response::soap_fault(&error.description()),
            },
        }
    }

    fn check_caller(&self, operation: Operation, header: &Header) -> Result<(), Reply> {
        if !self.station.creditor_ids.contains(&header.id_pa) {
            return Err(ko(
                operation,
                FaultCode::IdDominioErrato,
                &header.id_pa,
                "idPA is not served by this station",
            ));
        }
        if header.id_broker_pa != self.station.broker_id {
            return Err(ko(
                operation,
                FaultCode::IdIntermediarioErrato,
                &header.id_pa,
                "idBrokerPA is not this intermediary",
            ));
        }
        if !self.station.station_ids.contains(&header.id_station) {
            return Err(ko(
                operation,
                FaultCode::StazioneIntErrata,
                &header.id_pa,
                "idStation is not a station of this intermediary",
            ));
        }
        Ok(())
    }

    /// Finds the notice and checks that it can be paid today.
    async fn payable(
        &self,
        operation: Operation,
        id_pa: &str,
        fiscal_code: &str,
        notice_number: &str,
    ) -> Result<(DebtPosition, Installment), Reply> {
        if self.store.registry().issuer(fiscal_code).is_none() {
            return Err(ko(
                operation,
                FaultCode::IdDominioErrato,
                id_pa,
                "the notice's creditor is not served here",
            ));
        }
        let (position, notice) = self
            .store
            .find_by_notice_number(notice_number, fiscal_code)
            .await
            .map_err(|e| store_fault(operation, id_pa, &e))?;
        let installment = position.installment(&notice).cloned().ok_or_else(|| {
            ko(
                operation,
                FaultCode::SystemError,
                id_pa,
                "notice not in its position",
            )
        })?;
        tracing::Span::current().record("iuv", installment.iuv.as_str());
        let code = match installment.effective_state(self.store.today()) {
            EffectiveInstallmentState::Unpaid => return Ok((position, installment)),
            EffectiveInstallmentState::Paid => {
                (FaultCode::PagamentoDuplicato, "the notice is already paid")
            }
            EffectiveInstallmentState::Unpayable => (
                FaultCode::PagamentoDuplicato,
                "another payment option of this debt was paid",
            ),
            EffectiveInstallmentState::Expired => {
                (FaultCode::PagamentoScaduto, "the notice has expired")
            }
            EffectiveInstallmentState::Cancelled => {
                (FaultCode::PagamentoAnnullato, "the notice was cancelled")
            }
        };
        Err(ko(operation, code.0, id_pa, code.1))
    }

    async fn verify(&self, request: &VerifyRequest) -> Reply {
        let operation = Operation::VerifyPaymentNotice;
        let qr = &request.qr_code;
        let (position, installment) = match self
            .payable(
                operation,
                &request.header.id_pa,
                &qr.fiscal_code,
                &qr.notice_number,
            )
            .await
        {
            Ok(found) => found,
            Err(reply) => return reply,
        };
        let amount = position.amount_payable_on(&installment, self.store.today());
        let option_label = position
            .payment_options
            .iter()
            .find(|o| o.installments.iter().any(|i| i.id == installment.id))
            .map(|o| o.label.clone())
            .unwrap_or_default();
        let company_name = self
            .store
            .registry()
            .get(position.creditor.as_str())
            .map(|c| c.name().to_owned())
            .unwrap_or_default();
        Reply {
            status: 200,
            body: response::verify_ok(&VerifyView {
                option: PaymentOptionView {
                    amount_cents: amount.get(),
                    due_date: format_date(installment.due_date),
                    detail_description: option_label,
                    all_ccp: installment
                        .transfers
                        .iter()
                        .all(|t| t.postal_iban.is_some()),
                },
                payment_description: position.description.clone(),
                fiscal_code_pa: position.creditor.as_str().to_owned(),
                company_name,
            }),
        }
    }

    async fn send_rt(&self, request: &SendRtRequest, operation: Operation, raw: &[u8]) -> Reply {
        use sha2::Digest;
        let receipt = &request.receipt;
        tracing::Span::current().record("iuv", receipt.creditor_reference_id.as_str());
        // Redeliveries are recognised by content, not bytes: the Node may re-serialise.
        #[allow(clippy::expect_used)]
        let content = serde_json::to_vec(receipt).expect("a receipt serialises");
        let input = ReceiptInput {
            receiving_creditor: request.header.id_pa.clone(),
            primitive: operation.name(),
            creditor_fiscal_code: receipt.fiscal_code.clone(),
            notice_number: receipt.notice_number.clone(),
            iuv: receipt.creditor_reference_id.clone(),
            receipt_id: receipt.receipt_id.clone(),
            outcome_ok: receipt.outcome == "OK",
            psp_id: receipt.id_psp.clone(),
            channel_id: receipt.id_channel.clone(),
            payment_amount_cents: receipt.payment_amount_cents,
            fee_cents: receipt.fee_cents,
            payment_date_time: receipt.payment_date_time.clone(),
            stand_in: receipt.stand_in,
            transfers: receipt
                .transfers
                .iter()
                .map(|t| ReceiptTransferInput {
                    beneficiary: t.fiscal_code_pa.clone(),
                    amount_cents: t.amount_cents,
                })
                .collect(),
            content_sha256: hex_lower(&sha2::Sha256::digest(&content).into()),
            raw: raw.to_vec(),
        };
        match self.store.record_receipt(&input).await {
            Ok(outcome) => {
                tracing::info!(outcome = ?outcome, "receipt acknowledged");
                Reply {
                    status: 200,
                    body: response::send_rt_ok(operation),
                }
            }
            Err(error) => store_fault(operation, &request.header.id_pa, &error),
        }
    }

    async fn get_payment(&self, request: &GetPaymentRequest, operation: Operation) -> Reply {
        let qr = &request.qr_code;
        let id_pa = &request.header.id_pa;
        let (position, installment) = match self
            .payable(operation, id_pa, &qr.fiscal_code, &qr.notice_number)
            .await
        {
            Ok(found) => found,
            Err(reply) => return reply,
        };
        let amount = position
            .amount_payable_on(&installment, self.store.today())
            .get();
        let fine = matches!(position.details, KindDetails::TrafficFine(_));
        let registry = self.store.registry();
        let mut transfers = Vec::with_capacity(installment.transfers.len());
        for (index, transfer) in installment.transfers.iter().enumerate() {
            // A fine has one transfer, whose amount follows the day's band.
            let amount_cents = if fine { amount } else { transfer.amount.get() };
            let postal = transfer.postal_iban.as_ref().map(|i| i.as_str().to_owned());
            let iban = match (request.transfer_type, index, &postal) {
                (Some(TransferType::Postal), 0, Some(postal)) => postal.clone(),
                (Some(TransferType::Postal), 0, None) => {
                    return ko(
                        operation,
                        FaultCode::Semantica,
                        id_pa,
                        "no postal account is registered for this creditor",
                    );
                }
                _ => transfer.iban.as_str().to_owned(),
            };
            let metadata = match (request.transfer_type, operation, &postal) {
                (Some(TransferType::PagoPa), Operation::GetPaymentV2, Some(postal)) => {
                    vec![("IBANAPPOGGIO".to_owned(), postal.clone())]
                }
                _ => Vec::new(),
            };
            transfers.push(TransferView {
                id_transfer: index + 1,
                amount_cents,
                fiscal_code_pa: transfer.beneficiary.as_str().to_owned(),
                company_name: registry
                    .get(transfer.beneficiary.as_str())
                    .map(|c| c.name().to_owned())
                    .unwrap_or_default(),
                iban,
                remittance_information: transfer.remittance_information.clone(),
                transfer_category: transfer.taxonomy.as_str().to_owned(),
                metadata,
            });
        }
        let sum: i64 = transfers.iter().map(|t| t.amount_cents).sum();
        if sum != amount || transfers.is_empty() || transfers.len() > 5 {
            tracing::error!(
                sum,
                amount,
                "transfers do not add up to the notice's amount"
            );
            return ko(
                operation,
                FaultCode::SystemError,
                id_pa,
                "inconsistent transfers",
            );
        }
        let (debtor_type, debtor_code, debtor_name, debtor_email) = match &position.debtor {
            Some(debtor) => (
                debtor.entity_type.as_str(),
                debtor.fiscal_code.as_str().to_owned(),
                debtor.full_name.clone(),
                debtor.email.clone(),
            ),
            // Personal data erased: PagoPA's convention for an unknown debtor.
            None => ("F", "ANONIMO".to_owned(), "ANONIMO".to_owned(), None),
        };
        Reply {
            status: 200,
            body: response::get_payment_ok(
                operation,
                &PaymentView {
                    creditor_reference_id: installment.iuv.as_str().to_owned(),
                    payment_amount_cents: amount,
                    due_date: format_date(installment.due_date),
                    description: position.description.clone(),
                    company_name: registry
                        .get(position.creditor.as_str())
                        .map(|c| c.name().to_owned())
                        .unwrap_or_default(),
                    debtor_type: debtor_type.to_owned(),
                    debtor_code,
                    debtor_name,
                    debtor_email,
                    transfers,
                },
            ),
        }
    }
}
