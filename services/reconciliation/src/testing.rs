//! Writers of the formats this crate reads, for tests and generators: camt.053/054 in each
//! version, the OPI giornale di cassa in each version, and FlussoRiversamento. What they write
//! is checked against the official schemas (`../shared/treasury-spec`, `../shared/pagopa-spec`)
//! by this crate's tests, so documents built with them look like what banks and PagoPA send.

use std::fmt::Write as _;

use incasso_domain::reconciliation::ReportingFlow;
use time::Date;

use crate::document::CamtVersion;

/// Escapes text for element content.
pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn amount(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    format!("{sign}{}.{:02}", cents.abs() / 100, cents.abs() % 100)
}

/// One camt entry.
#[derive(Debug, Clone)]
pub struct CamtEntry {
    /// `AcctSvcrRef`.
    pub id: String,
    /// `Amt`, positive.
    pub amount_cents: i64,
    /// `CRDT` (else `DBIT`).
    pub credit: bool,
    /// `Sts`: `BOOK` (else `PDNG`).
    pub booked: bool,
    /// `BookgDt/Dt`.
    pub booking_date: Date,
    /// `ValDt/Dt`.
    pub value_date: Date,
    /// `RmtInf/Ustrd` pieces, written as given.
    pub ustrd: Vec<String>,
    /// `Refs/ClrSysRef`.
    pub trn: Option<String>,
    /// `Refs/EndToEndId`.
    pub end_to_end_id: Option<String>,
    /// `RltdPties/Dbtr` name.
    pub debtor: Option<String>,
    /// `AddtlNtryInf`.
    pub additional_info: Option<String>,
}

impl CamtEntry {
    /// A booked credit with one remittance text cut into 140-character pieces, as banks do.
    pub fn credit(id: &str, amount_cents: i64, day: Date, causale: &str) -> Self {
        let chars: Vec<char> = causale.chars().collect();
        let ustrd = chars
            .chunks(140)
            .map(|c| c.iter().collect::<String>())
            .collect();
        Self {
            id: id.to_owned(),
            amount_cents,
            credit: true,
            booked: true,
            booking_date: day,
            value_date: day,
            ustrd,
            trn: None,
            end_to_end_id: None,
            debtor: None,
            additional_info: None,
        }
    }
}

/// Which camt message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CamtMessage {
    /// camt.053 statement.
    Statement,
    /// camt.054 notification.
    Notification,
}

/// A camt document with one statement (or notification) of `iban` for the days `from..=to`.
pub fn camt(
    message: CamtMessage,
    version: CamtVersion,
    iban: &str,
    from: Date,
    to: Date,
    entries: &[CamtEntry],
) -> String {
    let v = match version {
        CamtVersion::V02 => "02",
        CamtVersion::V04 => "04",
        CamtVersion::V08 => "08",
    };
    let (number, root, block) = match message {
        CamtMessage::Statement => ("053", "BkToCstmrStmt", "Stmt"),
        CamtMessage::Notification => ("054", "BkToCstmrDbtCdtNtfctn", "Ntfctn"),
    };
    let mut x = String::new();
    let _ = writeln!(
        x,
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Document xmlns=\"urn:iso:std:iso:20022:tech:xsd:camt.{number}.001.{v}\">\n<{root}>\n<GrpHdr><MsgId>MSG-{to}</MsgId><CreDtTm>{to}T20:00:00</CreDtTm></GrpHdr>\n<{block}>\n<Id>{block}-{to}</Id>\n<CreDtTm>{to}T20:00:00</CreDtTm>\n<FrToDt><FrDtTm>{from}T00:00:00</FrDtTm><ToDtTm>{to}T23:59:59</ToDtTm></FrToDt>\n<Acct><Id><IBAN>{iban}</IBAN></Id><Ccy>EUR</Ccy></Acct>"
    );
    if message == CamtMessage::Statement {
        let _ = writeln!(
            x,
            "<Bal><Tp><CdOrPrtry><Cd>CLBD</Cd></CdOrPrtry></Tp><Amt Ccy=\"EUR\">0.00</Amt><CdtDbtInd>CRDT</CdtDbtInd><Dt><Dt>{to}</Dt></Dt></Bal>"
        );
    }
    for e in entries {
        let status = if e.booked { "BOOK" } else { "PDNG" };
        let status = if version == CamtVersion::V08 {
            format!("<Sts><Cd>{status}</Cd></Sts>")
        } else {
            format!("<Sts>{status}</Sts>")
        };
        let indicator = if e.credit { "CRDT" } else { "DBIT" };
        let _ = writeln!(
            x,
            "<Ntry>\n<Amt Ccy=\"EUR\">{}</Amt>\n<CdtDbtInd>{indicator}</CdtDbtInd>\n{status}\n<BookgDt><Dt>{}</Dt></BookgDt>\n<ValDt><Dt>{}</Dt></ValDt>\n<AcctSvcrRef>{}</AcctSvcrRef>\n<BkTxCd><Domn><Cd>PMNT</Cd><Fmly><Cd>RCDT</Cd><SubFmlyCd>ESCT</SubFmlyCd></Fmly></Domn></BkTxCd>\n<NtryDtls><TxDtls>",
            amount(e.amount_cents),
            e.booking_date,
            e.value_date,
            escape(&e.id)
        );
        if e.end_to_end_id.is_some() || e.trn.is_some() {
            x.push_str("<Refs>");
            if let Some(e2e) = &e.end_to_end_id {
                let _ = write!(x, "<EndToEndId>{}</EndToEndId>", escape(e2e));
            }
            if let Some(trn) = &e.trn {
                let _ = write!(x, "<ClrSysRef>{}</ClrSysRef>", escape(trn));
            }
            x.push_str("</Refs>\n");
        }
        if version != CamtVersion::V02 {
            let _ = writeln!(
                x,
                "<Amt Ccy=\"EUR\">{}</Amt><CdtDbtInd>{indicator}</CdtDbtInd>",
                amount(e.amount_cents)
            );
        }
        if let Some(debtor) = &e.debtor {
            if version == CamtVersion::V08 {
                let _ = writeln!(
                    x,
                    "<RltdPties><Dbtr><Pty><Nm>{}</Nm></Pty></Dbtr></RltdPties>",
                    escape(debtor)
                );
            } else {
                let _ = writeln!(
                    x,
                    "<RltdPties><Dbtr><Nm>{}</Nm></Dbtr></RltdPties>",
                    escape(debtor)
                );
            }
        }
        if !e.ustrd.is_empty() {
            x.push_str("<RmtInf>");
            for piece in &e.ustrd {
                let _ = write!(x, "<Ustrd>{}</Ustrd>", escape(piece));
            }
            x.push_str("</RmtInf>\n");
        }
        x.push_str("</TxDtls></NtryDtls>\n");
        if let Some(info) = &e.additional_info {
            let _ = writeln!(x, "<AddtlNtryInf>{}</AddtlNtryInf>", escape(info));
        }
        x.push_str("</Ntry>\n");
    }
    let _ = writeln!(x, "</{block}>\n</{root}>\n</Document>");
    x
}

/// A CBI XML statement, as Italian banks deliver camt.053.001.02: one physical message
/// (`CBIBdyBkToCstmrStmtReq` 00.01.02) holding a daily statement of `day` per
/// `(iban, entries)`, every element prefixed, the bank's reference of each entry in
/// `TxDtls/Refs/AcctSvcrRef` (not on the entry) and the CBI causale code in `BkTxCd/Prtry`.
pub fn cbi_statement(day: Date, statements: &[(&str, &[CamtEntry])]) -> String {
    let mut x = String::new();
    let _ = writeln!(
        x,
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<BDY:CBIBdyBkToCstmrStmtReq xmlns:BDY=\"urn:CBI:xsd:CBIBdyBkToCstmrStmtReq.00.01.02\"\n    xmlns:DATA=\"urn:CBI:xsd:CBIBkToCstmrStmtReqLogMsg.00.01.02\"\n    xmlns:DLY=\"urn:CBI:xsd:CBIDlyStmtReqLogMsg.00.01.02\">\n  <BDY:PhyMsgInf><BDY:PhyMsgTpCd>INF-STMT-01</BDY:PhyMsgTpCd><BDY:NbOfLogMsg>{}</BDY:NbOfLogMsg></BDY:PhyMsgInf>",
        statements.len()
    );
    for (n, (iban, entries)) in statements.iter().enumerate() {
        let _ = writeln!(
            x,
            "  <BDY:CBIEnvelBkToCstmrStmtReqLogMsg><BDY:CBIBkToCstmrStmtReqLogMsg><DATA:CBIDlyStmtReqLogMsg>\n    <DLY:GrpHdr><DLY:MsgId>CBI-{day}-{n}</DLY:MsgId><DLY:CreDtTm>{day}T22:00:00</DLY:CreDtTm></DLY:GrpHdr>\n    <DLY:Stmt>\n      <DLY:Id>{}-{day}</DLY:Id><DLY:ElctrncSeqNb>1</DLY:ElctrncSeqNb><DLY:CreDtTm>{day}T22:00:00</DLY:CreDtTm>\n      <DLY:Acct><DLY:Id><DLY:IBAN>{iban}</DLY:IBAN></DLY:Id><DLY:Ccy>EUR</DLY:Ccy></DLY:Acct>\n      <DLY:Bal><DLY:Tp><DLY:CdOrPrtry><DLY:Cd>CLBD</DLY:Cd></DLY:CdOrPrtry></DLY:Tp><DLY:Amt Ccy=\"EUR\">0.00</DLY:Amt><DLY:CdtDbtInd>CRDT</DLY:CdtDbtInd><DLY:Dt><DLY:Dt>{day}</DLY:Dt></DLY:Dt></DLY:Bal>",
            escape(iban)
        );
        for (k, e) in entries.iter().enumerate() {
            let status = if e.booked { "BOOK" } else { "PDNG" };
            let indicator = if e.credit { "CRDT" } else { "DBIT" };
            let _ = write!(
                x,
                "      <DLY:Ntry>\n        <DLY:NtryRef>{}</DLY:NtryRef><DLY:Amt Ccy=\"EUR\">{}</DLY:Amt><DLY:CdtDbtInd>{indicator}</DLY:CdtDbtInd><DLY:Sts>{status}</DLY:Sts>\n        <DLY:BookgDt><DLY:Dt>{}</DLY:Dt></DLY:BookgDt><DLY:ValDt><DLY:Dt>{}</DLY:Dt></DLY:ValDt>\n        <DLY:BkTxCd><DLY:Prtry><DLY:Cd>48//</DLY:Cd><DLY:Issr>CBI</DLY:Issr></DLY:Prtry></DLY:BkTxCd>\n        <DLY:NtryDtls><DLY:TxDtls>\n          <DLY:Refs><DLY:AcctSvcrRef>{}</DLY:AcctSvcrRef>",
                k + 1,
                amount(e.amount_cents),
                e.booking_date,
                e.value_date,
                escape(&e.id)
            );
            if let Some(e2e) = &e.end_to_end_id {
                let _ = write!(x, "<DLY:EndToEndId>{}</DLY:EndToEndId>", escape(e2e));
            }
            if let Some(trn) = &e.trn {
                let _ = write!(x, "<DLY:ClrSysRef>{}</DLY:ClrSysRef>", escape(trn));
            }
            let _ = writeln!(
                x,
                "</DLY:Refs>\n          <DLY:AmtDtls><DLY:InstdAmt><DLY:Amt Ccy=\"EUR\">{}</DLY:Amt></DLY:InstdAmt></DLY:AmtDtls>",
                amount(e.amount_cents)
            );
            if let Some(debtor) = &e.debtor {
                let _ = writeln!(
                    x,
                    "          <DLY:RltdPties><DLY:Dbtr><DLY:Nm>{}</DLY:Nm></DLY:Dbtr></DLY:RltdPties>",
                    escape(debtor)
                );
            }
            if !e.ustrd.is_empty() {
                x.push_str("          <DLY:RmtInf>");
                for piece in &e.ustrd {
                    let _ = write!(x, "<DLY:Ustrd>{}</DLY:Ustrd>", escape(piece));
                }
                x.push_str("</DLY:RmtInf>\n");
            }
            if let Some(info) = &e.additional_info {
                let _ = writeln!(
                    x,
                    "          <DLY:AddtlTxInf>{}</DLY:AddtlTxInf>",
                    escape(info)
                );
            }
            x.push_str("        </DLY:TxDtls></DLY:NtryDtls>\n      </DLY:Ntry>\n");
        }
        x.push_str("    </DLY:Stmt>\n  </DATA:CBIDlyStmtReqLogMsg></BDY:CBIBkToCstmrStmtReqLogMsg></BDY:CBIEnvelBkToCstmrStmtReqLogMsg>\n");
    }
    x.push_str("</BDY:CBIBdyBkToCstmrStmtReq>\n");
    x
}

/// OPI giornale di cassa versions, as written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpiSchema {
    /// 1.4.
    V1_4,
    /// 1.6.1.
    V1_6_1,
    /// 1.7.1.
    V1_7_1,
    /// 1.8.
    V1_8,
}

impl OpiSchema {
    /// The schema file's version suffix.
    pub fn file_suffix(self) -> &'static str {
        match self {
            Self::V1_4 => "1_4",
            Self::V1_6_1 => "1_6_1",
            Self::V1_7_1 => "1_7_1",
            Self::V1_8 => "1_8",
        }
    }
}

/// One OPI movement.
#[derive(Debug, Clone)]
pub struct OpiMovement {
    /// `codice_riferimento_interno`.
    pub id: String,
    /// `importo`.
    pub amount_cents: i64,
    /// `ENTRATA` (else `USCITA`).
    pub entrata: bool,
    /// `tipo_operazione`: `ESEGUITO`, `STORNATO`, ...
    pub operation: &'static str,
    /// `data_movimento`.
    pub booking_date: Date,
    /// `data_valuta_ente`.
    pub value_date: Date,
    /// `causale`.
    pub causale: String,
    /// `codice_riferimento_operazione`.
    pub trn: Option<String>,
    /// `anagrafica_cliente`.
    pub ordering_party: String,
}

impl OpiMovement {
    /// An executed `SOSPESO ENTRATA` credit.
    pub fn credit(id: &str, amount_cents: i64, day: Date, causale: &str) -> Self {
        Self {
            id: id.to_owned(),
            amount_cents,
            entrata: true,
            operation: "ESEGUITO",
            booking_date: day,
            value_date: day,
            causale: causale.to_owned(),
            trn: None,
            ordering_party: "PSP SPA Servizio pagoPA".to_owned(),
        }
    }
}

/// A giornale di cassa of entity `codice_ente` for `day`.
pub fn opi(schema: OpiSchema, codice_ente: &str, day: Date, movements: &[OpiMovement]) -> String {
    let compact = format!(
        "{:04}{:02}{:02}",
        day.year(),
        u8::from(day.month()),
        day.day()
    );
    let mut x = String::new();
    let _ = writeln!(
        x,
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<flusso_giornale_di_cassa xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\">\n<testata_messaggio>\n<codice_ABI_BT>03069</codice_ABI_BT>\n<data_ora_creazione_flusso>{day}T21:00:00</data_ora_creazione_flusso>\n<codice_ente>{codice_ente}</codice_ente>\n<descrizione_ente>COMUNE DI MILANO</descrizione_ente>\n<codice_istat_ente>015146</codice_istat_ente>\n<codice_fiscale_ente>01199250158</codice_fiscale_ente>\n<codice_tramite_ente>A2A-12345678</codice_tramite_ente>\n<codice_tramite_BT>A2A-87654321</codice_tramite_BT>\n<codice_ente_BT>0123456</codice_ente_BT>\n</testata_messaggio>\n<identificativo_flusso_BT>GDC-{compact}ABCDEFGHIJ#001#001</identificativo_flusso_BT>\n<pagina>1</pagina>\n<pagine_totali>1</pagine_totali>\n<esercizio>{}</esercizio>",
        day.year()
    );
    // The ISTAT code needs 9 to 15 digits.
    x = x.replace(
        "<codice_istat_ente>015146<",
        "<codice_istat_ente>003015146<",
    );
    if schema == OpiSchema::V1_4 {
        let _ = writeln!(
            x,
            "<data_inizio_periodo_riferimento>{day}</data_inizio_periodo_riferimento>\n<data_fine_periodo_riferimento>{day}</data_fine_periodo_riferimento>"
        );
    } else {
        let _ = writeln!(x, "<data_riferimento_GdC>{day}</data_riferimento_GdC>");
    }
    x.push_str("<informazioni_conto_evidenza>\n<conto_evidenza>0000001</conto_evidenza>\n");
    for (n, m) in movements.iter().enumerate() {
        x.push_str("<movimento_conto_evidenza>\n");
        if schema != OpiSchema::V1_4 {
            let _ = writeln!(
                x,
                "<identificativo_flusso>GDC-{compact}#{n}</identificativo_flusso>\n<numero_movimento>{}</numero_movimento>",
                n + 1
            );
        }
        let kind = if m.entrata { "ENTRATA" } else { "USCITA" };
        let document = if m.entrata {
            "SOSPESO ENTRATA"
        } else {
            "SOSPESO USCITA"
        };
        let _ = writeln!(
            x,
            "<tipo_movimento>{kind}</tipo_movimento>\n<tipo_documento>{document}</tipo_documento>\n<tipo_operazione>{}</tipo_operazione>\n<numero_documento>{}</numero_documento>\n<progressivo_documento>0</progressivo_documento>\n<importo>{}</importo>\n<numero_bolletta_quietanza>{}</numero_bolletta_quietanza>\n<data_movimento>{}</data_movimento>",
            m.operation,
            n + 1,
            amount(m.amount_cents),
            n + 1,
            m.booking_date
        );
        if schema != OpiSchema::V1_4 {
            let _ = writeln!(
                x,
                "<data_movimento_siope>{}</data_movimento_siope>",
                m.booking_date
            );
        }
        let _ = writeln!(
            x,
            "<data_valuta_ente>{}</data_valuta_ente>\n<tipo_esecuzione>SEPA CREDIT TRANSFER</tipo_esecuzione>",
            m.value_date
        );
        if let Some(trn) = &m.trn {
            let _ = writeln!(
                x,
                "<codice_riferimento_operazione>{}</codice_riferimento_operazione>",
                escape(trn)
            );
        }
        let _ = writeln!(
            x,
            "<codice_riferimento_interno>{}</codice_riferimento_interno>\n<assoggettamento_bollo>ESENTE BOLLO</assoggettamento_bollo>\n<cliente><anagrafica_cliente>{}</anagrafica_cliente></cliente>\n<causale>{}</causale>\n</movimento_conto_evidenza>",
            escape(&m.id),
            escape(&m.ordering_party),
            escape(&m.causale)
        );
    }
    x.push_str("</informazioni_conto_evidenza>\n");
    x.push_str(SIGNATURE);
    x.push_str("</flusso_giornale_di_cassa>\n");
    x
}

/// A structurally valid (not cryptographically meaningful) XML-DSig signature element.
const SIGNATURE: &str = "<ds:Signature><ds:SignedInfo><ds:CanonicalizationMethod Algorithm=\"http://www.w3.org/2001/10/xml-exc-c14n#\"/><ds:SignatureMethod Algorithm=\"http://www.w3.org/2001/04/xmldsig-more#rsa-sha256\"/><ds:Reference URI=\"\"><ds:DigestMethod Algorithm=\"http://www.w3.org/2001/04/xmlenc#sha256\"/><ds:DigestValue>AAAA</ds:DigestValue></ds:Reference></ds:SignedInfo><ds:SignatureValue>AAAA</ds:SignatureValue></ds:Signature>\n";

/// A FlussoRiversamento for `flow`, sent to `creditor`.
pub fn fdr_xml(flow: &ReportingFlow, creditor: &str) -> String {
    let created = flow
        .created_at
        .to_offset(time::UtcOffset::UTC)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let mut x = String::new();
    let _ = writeln!(
        x,
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<FlussoRiversamento xmlns=\"http://www.digitpa.gov.it/schemas/2011/Pagamenti/\">\n<versioneOggetto>1.0</versioneOggetto>\n<identificativoFlusso>{}</identificativoFlusso>\n<dataOraFlusso>{}</dataOraFlusso>\n<identificativoUnivocoRegolamento>{}</identificativoUnivocoRegolamento>\n<dataRegolamento>{}</dataRegolamento>\n<istitutoMittente><identificativoUnivocoMittente><tipoIdentificativoUnivoco>B</tipoIdentificativoUnivoco><codiceIdentificativoUnivoco>{}</codiceIdentificativoUnivoco></identificativoUnivocoMittente><denominazioneMittente>PSP {}</denominazioneMittente></istitutoMittente>\n<istitutoRicevente><identificativoUnivocoRicevente><tipoIdentificativoUnivoco>G</tipoIdentificativoUnivoco><codiceIdentificativoUnivoco>{creditor}</codiceIdentificativoUnivoco></identificativoUnivocoRicevente><denominazioneRicevente>Comune di Milano</denominazioneRicevente></istitutoRicevente>\n<numeroTotalePagamenti>{}</numeroTotalePagamenti>\n<importoTotalePagamenti>{}</importoTotalePagamenti>",
        flow.flow_id,
        created,
        escape(&flow.trn),
        flow.regulation_date,
        escape(&flow.psp_id),
        escape(&flow.psp_id),
        flow.lines.len(),
        amount(flow.total_cents)
    );
    for line in &flow.lines {
        let _ = writeln!(
            x,
            "<datiSingoliPagamenti>\n<identificativoUnivocoVersamento>{}</identificativoUnivocoVersamento>\n<identificativoUnivocoRiscossione>{}</identificativoUnivocoRiscossione>\n<indiceDatiSingoloPagamento>{}</indiceDatiSingoloPagamento>\n<singoloImportoPagato>{}</singoloImportoPagato>\n<codiceEsitoSingoloPagamento>{}</codiceEsitoSingoloPagamento>\n<dataEsitoSingoloPagamento>{}</dataEsitoSingoloPagamento>\n</datiSingoliPagamenti>",
            line.key.iuv,
            escape(&line.key.receipt_id),
            line.key.transfer_index.get(),
            amount(line.amount_cents),
            line.outcome.code(),
            line.paid_on
        );
    }
    x.push_str("</FlussoRiversamento>\n");
    x
}
