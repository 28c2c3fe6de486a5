//! A PagoPA Node simulator: builds paForNode requests to the official schema and posts them
//! over real HTTP/1.1, the way the Node drives a creditor's station (verify, activate,
//! receipt, receipt again). Used by the end-to-end tests and the benchmark.

use std::fmt::Write as _;
use std::net::SocketAddr;

use anyhow::{Context, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The paForNode namespace.
pub const PA_FOR_NODE: &str = "http://pagopa-api.pagopa.gov.it/pa/paForNode.xsd";
/// The SOAP 1.1 envelope namespace.
pub const SOAP_ENVELOPE: &str = "http://schemas.xmlsoap.org/soap/envelope/";

/// The caller's identity in every request.
#[derive(Debug, Clone)]
pub struct Caller {
    /// idPA.
    pub id_pa: String,
    /// idBrokerPA.
    pub id_broker_pa: String,
    /// idStation.
    pub id_station: String,
}

impl Default for Caller {
    /// The default configuration of incasso: Milan, its own broker and station 01.
    fn default() -> Self {
        Self {
            id_pa: "01199250158".to_owned(),
            id_broker_pa: "01199250158".to_owned(),
            id_station: "01199250158_01".to_owned(),
        }
    }
}

fn envelope(wrapper: &str, inner: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\
         <soapenv:Envelope xmlns:soapenv=\"http://schemas.xmlsoap.org/soap/envelope/\" xmlns:paf=\"{PA_FOR_NODE}\">\
         <soapenv:Header/><soapenv:Body><paf:{wrapper}>{inner}</paf:{wrapper}></soapenv:Body></soapenv:Envelope>"
    )
}

fn header(caller: &Caller) -> String {
    format!(
        "<idPA>{}</idPA><idBrokerPA>{}</idBrokerPA><idStation>{}</idStation>",
        caller.id_pa, caller.id_broker_pa, caller.id_station
    )
}

/// paVerifyPaymentNotice.
pub fn verify(caller: &Caller, fiscal_code: &str, notice_number: &str) -> String {
    envelope(
        "paVerifyPaymentNoticeReq",
        &format!(
            "{}<qrCode><fiscalCode>{fiscal_code}</fiscalCode><noticeNumber>{notice_number}</noticeNumber></qrCode>",
            header(caller)
        ),
    )
}

/// paGetPayment (V1) or paGetPaymentV2; `transfer_type` is POSTAL or PAGOPA.
pub fn get_payment(
    caller: &Caller,
    v2: bool,
    fiscal_code: &str,
    notice_number: &str,
    amount: &str,
    transfer_type: Option<&str>,
) -> String {
    let mut inner = format!(
        "{}<qrCode><fiscalCode>{fiscal_code}</fiscalCode><noticeNumber>{notice_number}</noticeNumber></qrCode>\
         <amount>{amount}</amount>",
        header(caller)
    );
    if let Some(transfer_type) = transfer_type {
        let _ = write!(inner, "<transferType>{transfer_type}</transferType>");
    }
    envelope(
        if v2 {
            "paGetPaymentV2Request"
        } else {
            "paGetPaymentReq"
        },
        &inner,
    )
}

/// A receipt's content.
#[derive(Debug, Clone)]
pub struct ReceiptSpec {
    /// paymentToken.
    pub receipt_id: String,
    /// NAV.
    pub notice_number: String,
    /// The notice's creditor.
    pub fiscal_code: String,
    /// IUV.
    pub iuv: String,
    /// `\d+\.\d{2}`.
    pub amount: String,
    /// idPSP.
    pub psp: String,
    /// (fiscalCodePA, amount, IBAN) per transfer.
    pub transfers: Vec<(String, String, String)>,
    /// Paid in Stand-In.
    pub stand_in: bool,
    /// paymentDateTime.
    pub payment_date_time: String,
}

/// The bank account of the Comune di Milano in the sample configuration.
pub const MILANO_BANK: &str = "IT02N0306909400000012345678";
/// The bank account of the Città Metropolitana di Milano in the sample configuration.
pub const CM_BANK: &str = "IT66Q0503401633000000098765";

/// `cents` as the schema's `stAmount` text (`\d+\.\d{2}`).
pub fn st_amount(cents: i64) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

impl ReceiptSpec {
    /// The receipt of `installment` paid in full as issued by the sample Milan configuration:
    /// each transfer to its beneficiary's bank account (the Città Metropolitana's for TEFA,
    /// Milan's otherwise).
    pub fn paying(
        installment: &incasso_grpc::pb::Installment,
        receipt_id: &str,
        psp: &str,
        payment_date_time: &str,
    ) -> Self {
        Self {
            receipt_id: receipt_id.to_owned(),
            notice_number: installment.notice_number.clone(),
            fiscal_code: crate::requests::MILANO.to_owned(),
            iuv: installment.iuv.clone(),
            amount: st_amount(installment.amount_cents),
            psp: psp.to_owned(),
            transfers: installment
                .transfers
                .iter()
                .map(|t| {
                    let iban = if t.beneficiary_fiscal_code == crate::requests::MILANO {
                        MILANO_BANK
                    } else {
                        CM_BANK
                    };
                    (
                        t.beneficiary_fiscal_code.clone(),
                        st_amount(t.amount_cents),
                        iban.to_owned(),
                    )
                })
                .collect(),
            stand_in: false,
            payment_date_time: payment_date_time.to_owned(),
        }
    }
}

/// paSendRT (V1) or paSendRTV2.
pub fn send_rt(caller: &Caller, v2: bool, receipt: &ReceiptSpec) -> String {
    let mut transfers = String::new();
    for (i, (fiscal_code, amount, iban)) in receipt.transfers.iter().enumerate() {
        let _ = write!(
            transfers,
            "<transfer><idTransfer>{}</idTransfer><transferAmount>{amount}</transferAmount>\
             <fiscalCodePA>{fiscal_code}</fiscalCodePA><IBAN>{iban}</IBAN>\
             <remittanceInformation>/RFB/{}/{amount}</remittanceInformation>\
             <transferCategory>9/0101101IM/</transferCategory></transfer>",
            i + 1,
            receipt.iuv
        );
    }
    let inner = format!(
        "{}<receipt><receiptId>{}</receiptId><noticeNumber>{}</noticeNumber><fiscalCode>{}</fiscalCode>\
         <outcome>OK</outcome><creditorReferenceId>{}</creditorReferenceId><paymentAmount>{}</paymentAmount>\
         <description>Pagamento avviso</description><companyName>Comune di Milano</companyName>\
         <debtor><uniqueIdentifier><entityUniqueIdentifierType>F</entityUniqueIdentifierType>\
         <entityUniqueIdentifierValue>RSSMRA80A01F205X</entityUniqueIdentifierValue></uniqueIdentifier>\
         <fullName>Mario Rossi</fullName></debtor><transferList>{transfers}</transferList>\
         <idPSP>{}</idPSP><PSPCompanyName>Banca Esempio</PSPCompanyName><idChannel>{}_01</idChannel>\
         <channelDescription>app</channelDescription><paymentMethod>creditCard</paymentMethod><fee>1.00</fee>\
         <paymentDateTime>{}</paymentDateTime><applicationDate>{}</applicationDate>\
         <transferDate>{}</transferDate><standIn>{}</standIn></receipt>",
        header(caller),
        receipt.receipt_id,
        receipt.notice_number,
        receipt.fiscal_code,
        receipt.iuv,
        receipt.amount,
        receipt.psp,
        receipt.psp,
        receipt.payment_date_time,
        &receipt.payment_date_time[..10],
        &receipt.payment_date_time[..10],
        receipt.stand_in
    );
    envelope(
        if v2 {
            "paSendRTV2Request"
        } else {
            "paSendRTReq"
        },
        &inner,
    )
}

/// An HTTP answer.
#[derive(Debug, Clone)]
pub struct HttpReply {
    /// Status code.
    pub status: u16,
    /// Content-Type.
    pub content_type: String,
    /// Every header, names in lower case.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: String,
}

impl HttpReply {
    /// The value of header `name` (lower case), if sent.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// POSTs `body` to `http://addr/paForNode` over a fresh connection, as the Node does.
pub async fn post(
    addr: SocketAddr,
    soap_action: Option<&str>,
    content_type: &str,
    body: &[u8],
) -> anyhow::Result<HttpReply> {
    post_to(addr, "/paForNode", soap_action, content_type, body).await
}

/// POSTs to any path.
pub async fn post_to(
    addr: SocketAddr,
    path: &str,
    soap_action: Option<&str>,
    content_type: &str,
    body: &[u8],
) -> anyhow::Result<HttpReply> {
    let mut headers = vec![("Content-Type", content_type.to_owned())];
    if let Some(action) = soap_action {
        headers.push(("SOAPAction", format!("\"{action}\"")));
    }
    request(addr, "POST", path, &headers, body).await
}

/// How long a request may wait for its whole answer: a server that never answers fails the
/// test that asked, naming the request, instead of holding the run.
const ANSWER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// Sends any HTTP/1.1 request over a fresh connection and reads the whole answer.
pub async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> anyhow::Result<HttpReply> {
    tokio::time::timeout(ANSWER_TIMEOUT, exchange(addr, method, path, headers, body))
        .await
        .with_context(|| {
            format!("{method} {path} to {addr}: no answer within {ANSWER_TIMEOUT:?}")
        })?
}

async fn exchange(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> anyhow::Result<HttpReply> {
    let mut stream = TcpStream::connect(addr).await?;
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (name, value) in headers {
        let _ = write!(head, "{name}: {value}\r\n");
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await?;
    // A server may stop reading an oversize body and answer early: a failed write is fine.
    let _ = stream.write_all(body).await;
    let mut raw = Vec::new();
    stream
        .read_to_end(&mut raw)
        .await
        .context("reading the answer")?;
    let text = String::from_utf8(raw).context("the answer is not UTF-8")?;
    let (head, body) = text
        .split_once("\r\n\r\n")
        .context("no header/body separator")?;
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .context("no status code")?;
    let headers: Vec<(String, String)> = head
        .lines()
        .skip(1)
        .filter_map(|l| {
            let (name, value) = l.split_once(':')?;
            Some((name.trim().to_ascii_lowercase(), value.trim().to_owned()))
        })
        .collect();
    let content_type = headers
        .iter()
        .find(|(n, _)| n == "content-type")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
    let body = if chunked {
        dechunk(body)?
    } else {
        body.to_owned()
    };
    Ok(HttpReply {
        status,
        content_type,
        headers,
        body,
    })
}

fn dechunk(mut body: &str) -> anyhow::Result<String> {
    let mut out = String::new();
    loop {
        let (size, rest) = body.split_once("\r\n").context("bad chunk")?;
        let size = usize::from_str_radix(size.trim(), 16)?;
        if size == 0 {
            return Ok(out);
        }
        out.push_str(rest.get(..size).context("short chunk")?);
        body = rest.get(size + 2..).context("short chunk")?;
    }
}

/// The folder of the official PagoPA schemas (`../shared/pagopa-spec`), which the
/// conformance tests require: they fail, never skip, when it is missing.
pub fn spec_dir() -> std::path::PathBuf {
    std::env::var("INCASSO_PAGOPA_SPEC").map_or_else(
        |_| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/pagopa-spec"),
        std::path::PathBuf::from,
    )
}

/// Validates a SOAP envelope against the official XSD with xmllint. The envelope schema
/// validates the Body's child only when it knows the element ("lax"), so a message in a
/// wrong namespace would pass it unchecked: the child must also be a paForNode element or a
/// SOAP Fault.
pub fn validate(xml: &str) -> anyhow::Result<()> {
    let dir = spec_dir().join("xsd");
    let schema = dir.join("soap-envelope+paForNode.local.xsd");
    if !schema.exists() {
        bail!(
            "the PagoPA schemas are missing at {}: the conformance tests need them",
            dir.display()
        );
    }
    let file =
        std::env::temp_dir().join(format!("incasso-conformance-{}.xml", uuid::Uuid::new_v4()));
    std::fs::write(&file, xml)?;
    let output = std::process::Command::new("xmllint")
        .arg("--noout")
        .arg("--schema")
        .arg(&schema)
        .arg(&file)
        .current_dir(&dir)
        .output()
        .context("running xmllint (install libxml2-utils)");
    let child = std::process::Command::new("xmllint")
        .arg("--xpath")
        .arg(
            "concat(namespace-uri(/*[local-name()='Envelope']/*[local-name()='Body']/*[1]),\
             ' ', local-name(/*[local-name()='Envelope']/*[local-name()='Body']/*[1]))",
        )
        .arg(&file)
        .output()
        .context("running xmllint --xpath");
    let _ = std::fs::remove_file(&file);
    let output = output?;
    if !output.status.success() {
        bail!(
            "not valid against the PagoPA XSD: {}\n{xml}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let child = String::from_utf8_lossy(&child?.stdout).trim().to_owned();
    let fault = format!("{SOAP_ENVELOPE} Fault");
    if !(child.starts_with(&format!("{PA_FOR_NODE} ")) || child == fault) {
        bail!("the SOAP Body holds '{child}', neither a paForNode element nor a SOAP Fault\n{xml}");
    }
    Ok(())
}

/// The texts of every `<name>` element in `xml`, in order.
pub fn element_texts<'a>(xml: &'a str, name: &str) -> Vec<&'a str> {
    let open = format!("<{name}>");
    let close = format!("</{name}>");
    let mut found = Vec::new();
    let mut rest = xml;
    while let Some(start) = rest.find(&open) {
        let after = &rest[start + open.len()..];
        let Some(end) = after.find(&close) else {
            break;
        };
        found.push(&after[..end]);
        rest = &after[end + close.len()..];
    }
    found
}

/// The text of the first `<name>` element in `xml`, if any.
pub fn element_text<'a>(xml: &'a str, name: &str) -> Option<&'a str> {
    let open = format!("<{name}>");
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find(&format!("</{name}>"))? + start;
    Some(&xml[start..end])
}

/// Delivers `receipt` with paSendRTV2 to incasso's SOAP endpoint at `addr` and checks that
/// the Node hears OK.
pub async fn deliver_receipt(addr: SocketAddr, receipt: &ReceiptSpec) -> anyhow::Result<()> {
    let request = send_rt(&Caller::default(), true, receipt);
    let reply = post(
        addr,
        Some("paSendRTV2"),
        "text/xml; charset=utf-8",
        request.as_bytes(),
    )
    .await?;
    anyhow::ensure!(
        element_text(&reply.body, "outcome") == Some("OK"),
        "receipt not acknowledged: {}",
        reply.body
    );
    Ok(())
}
