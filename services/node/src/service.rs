//! The paForNode primitives: who may call (creditor, broker, station), what a notice costs
//! today, and what its state makes of a verify or an activation. Every business refusal is a
//! KO with the PAA_ code the Node and the citizen's app understand, chosen in one place
//! ([`Refusal::fault`]); only a genuinely transient failure (the database unreachable) is
//! PAA_SYSTEM_ERROR, the one answer that makes the Node retry. Verify and activation read;
//! they never change a position.
//!
//! Every call gets one `paForNode` span, opened before the message is read, with the
//! primitive, the creditor (idPA), the notice number and IUV, the outcome and the fault code
//! recorded as they become known; never the debtor or the payer.

use std::collections::BTreeMap;

use incasso_domain::debt_position::{
    DebtPosition, EffectiveInstallmentState, Installment, KindDetails,
};
use incasso_domain::validation::format_date;
use incasso_store::receipts::{
    ReceiptFacts, ReceiptInput, ReceiptOutcome, ReceiptPrimitive, ReceiptTransferInput,
};
use incasso_store::{AppError, Store};
use tracing::Instrument;
use tracing::field::Empty;

use crate::call_record;
use crate::message::{
    self, GetPaymentRequest, Header, Operation, Request, SendRtRequest, SyntaxError, TransferType,
    VerifyRequest,
};
use crate::response::{
    self, Fault, FaultCode, PaymentOptionView, PaymentView, TransferView, VerifyView,
};
use crate::xml::Limits;

/// Who incasso is on the PagoPA Node: its intermediary (broker) and stations, the creditors
/// those stations serve, and which stations serve which creditor.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StationConfig {
    /// idBrokerPA.
    pub broker_id: String,
    /// idStation values.
    pub station_ids: Vec<String>,
    /// idPA values (creditor fiscal codes) incasso issues notices for: verify, activation and
    /// receipts.
    pub creditor_ids: Vec<String>,
    /// idPA values that only receive receipts: beneficiaries of other creditors' notices (the
    /// Città Metropolitana's TEFA share of a TARI notice), to which the Node broadcasts the
    /// receipt through their own station.
    pub beneficiary_ids: Vec<String>,
    /// The stations of each creditor (idPA) that is served by only some of `station_ids`. A
    /// creditor not named here is served by every station, as before stations were listed
    /// per creditor.
    pub creditor_stations: BTreeMap<String, Vec<String>>,
}

impl StationConfig {
    /// Whether `station` serves `id_pa`: one of incasso's stations, and among the creditor's
    /// own stations when it has a list.
    pub fn serves(&self, id_pa: &str, station: &str) -> bool {
        self.station_ids.iter().any(|s| s == station)
            && self
                .creditor_stations
                .get(id_pa)
                .is_none_or(|stations| stations.iter().any(|s| s == station))
    }
}

/// An HTTP answer: status and SOAP body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// 200 for every paForNode answer, OK or KO; 500, 404 or 405 only for a SOAP Fault.
    pub status: u16,
    /// The SOAP envelope.
    pub body: String,
}

/// The description of every fault caused by an internal failure: what went wrong is in the
/// error log, not in an answer that travels through the Node to PSPs and apps.
const INTERNAL_DESCRIPTION: &str =
    "the creditor could not process this request: an internal check failed and was logged";

/// Why a primitive is refused. [`Refusal::fault`] is the one place that turns a refusal
/// (a syntax error, a caller check, a notice's state, a use-case error) into a PAA_ code.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    /// The message cannot be read as a paForNode request (not XML, not UTF-8, a DTD, too
    /// big, the wrong content type).
    #[error("{0}")]
    Unreadable(String),
    /// Well-formed but not valid against the XSD.
    #[error("{}", .0.description())]
    Invalid(SyntaxError),
    /// The SOAPAction names another operation than the body's wrapper element.
    #[error("the SOAPAction '{action}' does not match the body's {element}, which is {operation}")]
    ActionMismatch {
        /// The SOAPAction as sent (cut).
        action: String,
        /// The body's wrapper element.
        element: &'static str,
        /// The operation the wrapper names.
        operation: &'static str,
    },
    /// idPA is not a creditor of this station.
    #[error("idPA is not served by this station")]
    UnknownCreditor,
    /// idPA only receives receipts here: it issues no notices through incasso.
    #[error("idPA issues no notices through this station; it only receives receipts")]
    ReceiptsOnly,
    /// idBrokerPA is not this intermediary.
    #[error("idBrokerPA is not this intermediary")]
    UnknownBroker,
    /// idStation is not one of this intermediary's stations.
    #[error("idStation is not a station of this intermediary")]
    UnknownStation,
    /// idStation is one of this intermediary's stations, but not one serving idPA.
    #[error("idStation is not a station of idPA")]
    StationNotOfCreditor,
    /// The QR code names another creditor than idPA.
    #[error("qrCode.fiscalCode is not idPA")]
    QrCodeCreditorMismatch,
    /// The QR code's creditor does not issue notices here.
    #[error("the notice's creditor is not served here")]
    NoticeCreditorNotServed,
    /// The notice is paid.
    #[error("the notice is already paid")]
    AlreadyPaid,
    /// Another payment option of the debt was paid.
    #[error("another payment option of this debt was paid")]
    OtherOptionPaid,
    /// The notice is past its expiry date.
    #[error("the notice has expired")]
    Expired,
    /// The position was cancelled.
    #[error("the notice was cancelled")]
    Cancelled,
    /// paDemandPaymentNotice: nothing to create.
    #[error("no spontaneous-payment service is published by this creditor")]
    NoDemandService,
    /// A use case failed.
    #[error(transparent)]
    Store(AppError),
    /// A receipt could not be stored at all (not even parked): the Node must deliver it again.
    #[error("the receipt could not be stored: {0}")]
    ReceiptNotStored(AppError),
    /// Stored data breaks an invariant the answer relies on (a bug or tampering).
    #[error("internal invariant broken: {0}")]
    Inconsistent(String),
}

impl From<SyntaxError> for Refusal {
    fn from(error: SyntaxError) -> Self {
        match error {
            SyntaxError::Unparseable(message) => Self::Unreadable(message),
            invalid @ SyntaxError::Invalid { .. } => Self::Invalid(invalid),
        }
    }
}

impl From<AppError> for Refusal {
    fn from(error: AppError) -> Self {
        Self::Store(error)
    }
}

impl Refusal {
    /// The fault code and the description the Node receives. Only a transient failure (the
    /// database unreachable, a lost deadlock) is PAA_SYSTEM_ERROR, the answer that makes the
    /// Node retry; an internal failure is PAA_SEMANTICA with a generic description, because
    /// retrying a bug cannot succeed and its details are for the error log.
    pub fn fault(&self) -> (FaultCode, String) {
        let code = match self {
            Self::Unreadable(_) | Self::ActionMismatch { .. } => FaultCode::SintassiExtraXsd,
            Self::Invalid(_) => FaultCode::SintassiXsd,
            Self::UnknownCreditor
            | Self::ReceiptsOnly
            | Self::QrCodeCreditorMismatch
            | Self::NoticeCreditorNotServed => FaultCode::IdDominioErrato,
            Self::UnknownBroker => FaultCode::IdIntermediarioErrato,
            Self::UnknownStation | Self::StationNotOfCreditor => FaultCode::StazioneIntErrata,
            Self::AlreadyPaid | Self::OtherOptionPaid => FaultCode::PagamentoDuplicato,
            Self::Expired => FaultCode::PagamentoScaduto,
            Self::Cancelled => FaultCode::PagamentoAnnullato,
            Self::NoDemandService => FaultCode::Semantica,
            Self::Store(AppError::NotFound { .. } | AppError::Invalid(_)) => {
                return (
                    FaultCode::PagamentoSconosciuto,
                    "notice unknown to the creditor".to_owned(),
                );
            }
            Self::Store(AppError::Unavailable(_)) | Self::ReceiptNotStored(_) => {
                return (
                    FaultCode::SystemError,
                    "temporarily unavailable, retry".to_owned(),
                );
            }
            Self::Store(
                AppError::Internal(_) | AppError::IdempotencyConflict { .. } | AppError::Refused(_),
            )
            | Self::Inconsistent(_) => {
                return (FaultCode::Semantica, INTERNAL_DESCRIPTION.to_owned());
            }
        };
        (code, self.to_string())
    }

    /// Logs what an operator must know: internal failures as errors with their details,
    /// transient ones and refused messages as warnings.
    fn log(&self, code: FaultCode) {
        match self {
            Self::Store(AppError::Unavailable(detail)) => {
                tracing::warn!(%detail, "storage unavailable");
            }
            Self::ReceiptNotStored(error) => {
                tracing::error!(%error, "receipt not stored: the Node will deliver it again");
            }
            Self::Store(error) if code == FaultCode::Semantica => {
                tracing::error!(%error, "internal error");
            }
            Self::Inconsistent(detail) => tracing::error!(%detail, "internal error"),
            Self::Unreadable(_) | Self::Invalid(_) | Self::ActionMismatch { .. } => {
                tracing::warn!(reason = %self, "request refused");
            }
            _ => {}
        }
    }
}

/// The paForNode service.
#[derive(Debug, Clone)]
pub struct NodeService {
    store: Store,
    station: StationConfig,
    limits: Limits,
}

/// The span of one call to the endpoint. It is opened before the message is read, so that
/// refused calls have one too; each field is recorded once known. It never carries the
/// debtor or the payer.
fn call_span() -> tracing::Span {
    tracing::info_span!(
        "paForNode",
        primitive = Empty,
        creditor = Empty,
        notice_number = Empty,
        iuv = Empty,
        outcome = Empty,
        fault_code = Empty,
    )
}

fn record(field: &str, value: &str) {
    tracing::Span::current().record(field, value);
}

/// Records the primitive on the span and for the request metrics.
fn record_primitive(operation: Operation) {
    record("primitive", operation.name());
    call_record::primitive(operation.name());
}

/// Records the outcome on the span and for the request metrics.
fn record_outcome(outcome: &'static str) {
    record("outcome", outcome);
    call_record::outcome(outcome);
}

fn ok(body: String) -> Reply {
    record_outcome("OK");
    Reply { status: 200, body }
}

/// The SOAPAction's disagreement with the body, if any. An absent or empty SOAPAction (SOAP
/// 1.1: "the intent is the URI") is no disagreement.
fn action_mismatch(soap_action: Option<&str>, operation: Operation) -> Option<Refusal> {
    let action = soap_action?.trim().trim_matches('"').trim();
    if action.is_empty() || Operation::from_soap_action(action) == Some(operation) {
        return None;
    }
    Some(Refusal::ActionMismatch {
        action: response::cut(action, 100),
        element: operation.request_element(),
        operation: operation.name(),
    })
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
        self.handle_traced(&http::HeaderMap::new(), body, soap_action)
            .await
    }

    /// [`NodeService::handle`] for a message that came with `headers`: a W3C `traceparent`
    /// among them becomes the parent of the call's span.
    pub async fn handle_traced(
        &self,
        headers: &http::HeaderMap,
        body: &[u8],
        soap_action: Option<&str>,
    ) -> Reply {
        let span = call_span();
        incasso_telemetry::propagation::set_parent_from_headers(&span, headers);
        call_record::measure(
            async {
                let reply = self.answer(body, soap_action).await;
                tracing::info!(status = reply.status, "answered");
                reply
            }
            .instrument(span),
        )
        .await
    }

    /// Answers a message the HTTP layer refused before handing it over (wrong content type:
    /// `body` is what was read; over the size limit: no body): a KO of the operation the
    /// body or the SOAPAction names, or a SOAP Fault when neither does.
    pub fn refuse(
        &self,
        headers: &http::HeaderMap,
        soap_action: Option<&str>,
        body: Option<&[u8]>,
        reason: &str,
    ) -> Reply {
        call_record::measure_now(|| self.refuse_now(headers, soap_action, body, reason))
    }

    fn refuse_now(
        &self,
        headers: &http::HeaderMap,
        soap_action: Option<&str>,
        body: Option<&[u8]>,
        reason: &str,
    ) -> Reply {
        let span = call_span();
        incasso_telemetry::propagation::set_parent_from_headers(&span, headers);
        let _entered = span.entered();
        let peek = body.map(message::peek).unwrap_or_default();
        self.record_peek(&peek);
        let operation = peek
            .operation
            .or_else(|| soap_action.and_then(Operation::from_soap_action));
        let reply = self.refused(
            operation,
            peek.id_pa.as_deref(),
            Refusal::Unreadable(reason.to_owned()),
        );
        tracing::info!(status = reply.status, "answered");
        reply
    }

    /// A SOAP 1.1 Fault with `status` for a call that is no paForNode request at all (another
    /// path, another HTTP method): never an empty or HTML answer.
    pub fn not_a_request(&self, status: u16, reason: &str) -> Reply {
        call_record::measure_now(|| Self::not_a_request_now(status, reason))
    }

    fn not_a_request_now(status: u16, reason: &str) -> Reply {
        let _entered = call_span().entered();
        record_outcome("SOAP Fault");
        record("fault_code", FaultCode::SintassiExtraXsd.code());
        tracing::warn!(status, %reason, "call refused");
        Reply {
            status,
            body: response::soap_fault(FaultCode::SintassiExtraXsd, reason),
        }
    }

    fn record_peek(&self, peek: &message::Peek) {
        if let Some(operation) = peek.operation {
            record_primitive(operation);
        }
        if let Some(id_pa) = &peek.id_pa {
            record("creditor", id_pa);
        }
        if let Some(notice) = &peek.notice_number {
            record("notice_number", notice);
        }
        if let Some(iuv) = &peek.iuv {
            record("iuv", iuv);
        }
    }

    /// The KO (or, without an operation, the SOAP Fault) for `refusal`. Its `id` is the
    /// creditor (idPA) whenever the request let us read one; otherwise incasso's broker id,
    /// the only identity left to name.
    fn refused(
        &self,
        operation: Option<Operation>,
        id_pa: Option<&str>,
        refusal: Refusal,
    ) -> Reply {
        let (code, description) = refusal.fault();
        refusal.log(code);
        record("fault_code", code.code());
        match operation {
            Some(operation) => {
                record_outcome("KO");
                Reply {
                    status: 200,
                    body: response::ko(
                        operation,
                        &Fault {
                            code,
                            description,
                            id: id_pa.unwrap_or(&self.station.broker_id).to_owned(),
                        },
                    ),
                }
            }
            None => {
                record_outcome("SOAP Fault");
                Reply {
                    status: 500,
                    body: response::soap_fault(code, &description),
                }
            }
        }
    }

    async fn answer(&self, body: &[u8], soap_action: Option<&str>) -> Reply {
        let request = match message::parse_request(body, self.limits) {
            Ok(request) => request,
            Err(error) => {
                let peek = message::peek(body);
                self.record_peek(&peek);
                // The body's wrapper names the operation; the SOAPAction only when the body
                // cannot be read.
                let operation = peek
                    .operation
                    .or_else(|| soap_action.and_then(Operation::from_soap_action));
                return self.refused(operation, peek.id_pa.as_deref(), error.into());
            }
        };
        let operation = request.operation();
        let id_pa = request.header().id_pa.clone();
        record_primitive(operation);
        record("creditor", &id_pa);
        let result = match action_mismatch(soap_action, operation) {
            Some(refusal) => Err(refusal),
            None => match self.check_caller(operation, request.header()) {
                Err(refusal) => Err(refusal),
                Ok(()) => match &request {
                    Request::Verify(verify) => self.verify(verify).await,
                    Request::GetPayment(get, operation) => self.get_payment(get, *operation).await,
                    Request::SendRt(send, operation) => self.send_rt(send, *operation, body).await,
                    Request::Demand(_) => Err(Refusal::NoDemandService),
                },
            },
        };
        result.unwrap_or_else(|refusal| self.refused(Some(operation), Some(&id_pa), refusal))
    }

    /// The caller checks, in the order the answers table gives: idPA, idBrokerPA, idStation.
    /// A creditor that only receives receipts (a beneficiary of other creditors' notices) is
    /// a known idPA for receipts alone; verify, activation and demand stay refused for it.
    fn check_caller(&self, operation: Operation, header: &Header) -> Result<(), Refusal> {
        let id_pa = &header.id_pa;
        if !self.station.creditor_ids.contains(id_pa) {
            if !self.station.beneficiary_ids.contains(id_pa) {
                return Err(Refusal::UnknownCreditor);
            }
            if !matches!(operation, Operation::SendRt | Operation::SendRtV2) {
                return Err(Refusal::ReceiptsOnly);
            }
        }
        if header.id_broker_pa != self.station.broker_id {
            return Err(Refusal::UnknownBroker);
        }
        if !self.station.station_ids.contains(&header.id_station) {
            return Err(Refusal::UnknownStation);
        }
        if !self.station.serves(id_pa, &header.id_station) {
            return Err(Refusal::StationNotOfCreditor);
        }
        Ok(())
    }

    /// A creditor's name for a field the Node requires: its configured name, or its fiscal
    /// code when it is no longer configured (a text of 1..140 characters either way).
    fn required_name(&self, fiscal_code: &str) -> String {
        self.store
            .registry()
            .get(fiscal_code)
            .map_or_else(|| fiscal_code.to_owned(), |c| c.name().to_owned())
    }

    /// Finds the notice and checks that it can be paid today. The QR code's creditor must be
    /// the caller's idPA: the Node verifies and activates a notice on behalf of the creditor
    /// that issued it, and a notice is never looked up under a creditor that did not ask.
    async fn payable(
        &self,
        header: &Header,
        qr: &message::QrCode,
    ) -> Result<(DebtPosition, Installment), Refusal> {
        let (fiscal_code, notice_number) = (qr.fiscal_code.as_str(), qr.notice_number.as_str());
        record("notice_number", notice_number);
        if fiscal_code != header.id_pa {
            return Err(Refusal::QrCodeCreditorMismatch);
        }
        if self.store.registry().issuer(fiscal_code).is_none() {
            return Err(Refusal::NoticeCreditorNotServed);
        }
        let (position, notice) = self
            .store
            .find_by_notice_number(notice_number, fiscal_code)
            .await?;
        let installment = position.installment(&notice).cloned().ok_or_else(|| {
            Refusal::Inconsistent(format!(
                "notice {notice} not in its position {}",
                position.id
            ))
        })?;
        record("iuv", installment.iuv.as_str());
        match installment.effective_state(self.store.today()) {
            EffectiveInstallmentState::Unpaid => Ok((position, installment)),
            EffectiveInstallmentState::Paid => Err(Refusal::AlreadyPaid),
            EffectiveInstallmentState::Unpayable => Err(Refusal::OtherOptionPaid),
            EffectiveInstallmentState::Expired => Err(Refusal::Expired),
            EffectiveInstallmentState::Cancelled => Err(Refusal::Cancelled),
        }
    }

    async fn verify(&self, request: &VerifyRequest) -> Result<Reply, Refusal> {
        let qr = &request.qr_code;
        let (position, installment) = self.payable(&request.header, qr).await?;
        let amount = position.amount_payable_on(&installment, self.store.today());
        let option_label = position
            .payment_options
            .iter()
            .find(|o| o.installments.iter().any(|i| i.id == installment.id))
            .map(|o| o.label.clone())
            .unwrap_or_default();
        Ok(ok(response::verify_ok(&VerifyView {
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
            company_name: self.required_name(position.creditor.as_str()),
        })))
    }

    async fn send_rt(
        &self,
        request: &SendRtRequest,
        operation: Operation,
        raw: &[u8],
    ) -> Result<Reply, Refusal> {
        let receipt = &request.receipt;
        record("notice_number", &receipt.notice_number);
        record("iuv", &receipt.creditor_reference_id);
        for element in &request.unknown_elements {
            // The name only: the content could be personal data.
            tracing::warn!(
                primitive = operation.name(),
                %element,
                "receipt element unknown to this version skipped"
            );
        }
        let input = ReceiptInput {
            facts: ReceiptFacts {
                receiving_creditor: request.header.id_pa.clone(),
                primitive: match operation {
                    Operation::SendRtV2 => ReceiptPrimitive::SendRtV2,
                    _ => ReceiptPrimitive::SendRt,
                },
                creditor_fiscal_code: receipt.fiscal_code.clone(),
                notice_number: receipt.notice_number.clone(),
                notice: receipt.notice.clone(),
                iuv: receipt.creditor_reference_id.clone(),
                receipt_id: receipt.receipt_id.clone(),
                outcome: receipt.outcome,
                psp_id: receipt.id_psp.clone(),
                channel_id: receipt.id_channel.clone(),
                payment_amount_cents: receipt.payment_amount_cents,
                fee_cents: receipt.fee_cents,
                payment_date_time: receipt.payment_date_time.clone(),
                paid_at: receipt.paid_at,
                stand_in: receipt.stand_in,
                transfers: receipt
                    .transfers
                    .iter()
                    .map(|t| ReceiptTransferInput {
                        id_transfer: t.id_transfer,
                        beneficiary: t.fiscal_code_pa.clone(),
                        iban: t.iban.clone(),
                        amount_cents: t.amount_cents,
                        remittance_information: t.remittance_information.clone(),
                        transfer_category: t.transfer_category.clone(),
                    })
                    .collect(),
            },
            // Redeliveries are recognised by content, not bytes: the Node may re-serialise.
            canonical: receipt.canonical(),
            raw: raw.to_vec(),
        };
        let outcome = self
            .store
            .record_receipt(input)
            .await
            .map_err(Refusal::ReceiptNotStored)?;
        tracing::info!(outcome = ?outcome, "receipt acknowledged");
        incasso_telemetry::metrics().receipt(match outcome {
            ReceiptOutcome::Recorded(classification) => classification.as_str(),
            ReceiptOutcome::Redelivered => "redelivered",
            ReceiptOutcome::Conflict => "conflict",
            ReceiptOutcome::Parked => "parked",
        });
        Ok(ok(response::send_rt_ok(operation)))
    }

    async fn get_payment(
        &self,
        request: &GetPaymentRequest,
        operation: Operation,
    ) -> Result<Reply, Refusal> {
        let qr = &request.qr_code;
        let (position, installment) = self.payable(&request.header, qr).await?;
        let amount = position
            .amount_payable_on(&installment, self.store.today())
            .get();
        if let Some(requested_cents) = request.amount_cents
            && requested_cents != amount
        {
            // The creditor's amount is authoritative (the Node accepts it); a difference means
            // the PSP showed the citizen another figure, which support may be asked about.
            tracing::warn!(
                notice_number = %qr.notice_number,
                requested_cents,
                amount_cents = amount,
                "the Node's amount differs from today's amount; answering today's"
            );
        }
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
                    // GPD's behaviour: a creditor without a Poste account is still paid at a
                    // Poste counter, into its bank account, rather than refused.
                    tracing::info!(
                        notice_number = %qr.notice_number,
                        creditor = %transfer.beneficiary.as_str(),
                        "transferType POSTAL without a Poste account: transfer 1 credits the \
                         bank account"
                    );
                    transfer.iban.as_str().to_owned()
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
                // Optional in the XSD: a beneficiary no longer configured has no name to
                // give, and an empty one would be invalid (minLength 1).
                company_name: registry
                    .get(transfer.beneficiary.as_str())
                    .map(|c| c.name().to_owned()),
                iban,
                remittance_information: transfer.remittance_information.clone(),
                transfer_category: transfer.taxonomy.as_str().to_owned(),
                metadata,
            });
        }
        let sum: i64 = transfers.iter().map(|t| t.amount_cents).sum();
        if sum != amount || transfers.is_empty() || transfers.len() > 5 {
            return Err(Refusal::Inconsistent(format!(
                "the {} transfers of notice {} add up to {sum} cents, the notice costs {amount}",
                transfers.len(),
                qr.notice_number
            )));
        }
        let (debtor_type, debtor_code, debtor_name, debtor_email) = match &position.debtor {
            Some(debtor) => (
                debtor.entity_type.as_str(),
                debtor.fiscal_code.as_str().to_owned(),
                debtor.full_name.clone(),
                debtor.email.clone(),
            ),
            // Personal data erased (or no longer readable): PagoPA's convention for an
            // unknown debtor.
            None => ("F", "ANONIMO".to_owned(), "ANONIMO".to_owned(), None),
        };
        Ok(ok(response::get_payment_ok(
            operation,
            &PaymentView {
                creditor_reference_id: installment.iuv.as_str().to_owned(),
                payment_amount_cents: amount,
                due_date: format_date(installment.due_date),
                description: position.description.clone(),
                company_name: self.required_name(position.creditor.as_str()),
                debtor_type: debtor_type.to_owned(),
                debtor_code,
                debtor_name,
                debtor_email,
                transfers,
            },
        )))
    }
}
