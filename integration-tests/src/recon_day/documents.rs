//! The day as files and messages: the receipts as the Node sends them, each flow revision as
//! a FlussoRiversamento, and the treasury's camt.053, camt.054 and OPI giornale, each credit's
//! causale written in the words its intent chose.

use incasso_domain::notice_number::Iuv;
use incasso_domain::reconciliation::causale::MARKER_SPELLINGS;
use incasso_domain::reconciliation::{FlowId, FlowLine, ReportingFlow, TransferIndex, TransferKey};
use incasso_reconciliation::testing::{CamtEntry, CamtMessage, OpiMovement, camt, fdr_xml, opi};
use time::Duration;

use super::scenario::{self, Book, CreditIntent, Spelling};
use super::{Document, DocumentKind, OPI_ENTITY_CODE, Receipt, Writer, euro};
use crate::node_simulator::{self as node, CM_BANK, MILANO_BANK, ReceiptSpec};
use crate::requests::MILANO;

impl Writer<'_> {
    pub(super) fn receipts(&self) -> Vec<Receipt> {
        self.s
            .payments
            .iter()
            .filter_map(|p| {
                let delivery = p.delivery?;
                let notice = &self.s.notices[p.notice];
                let total: i64 = notice.transfers.iter().map(|t| t.1).sum();
                let spec = ReceiptSpec {
                    receipt_id: p.receipt_id.clone(),
                    notice_number: self.notice_number(p.notice),
                    fiscal_code: MILANO.to_owned(),
                    iuv: self.iuv(p.notice).to_owned(),
                    amount: node::st_amount(total),
                    psp: p.psp.clone(),
                    transfers: notice
                        .transfers
                        .iter()
                        .map(|(beneficiary, cents)| {
                            let iban = if *beneficiary == MILANO {
                                MILANO_BANK
                            } else {
                                CM_BANK
                            };
                            (
                                (*beneficiary).to_owned(),
                                node::st_amount(*cents),
                                iban.to_owned(),
                            )
                        })
                        .collect(),
                    stand_in: delivery.stand_in,
                    payment_date_time: format!(
                        "{}T{:02}:{:02}:{:02}",
                        p.paid_at.date(),
                        p.paid_at.hour(),
                        p.paid_at.minute(),
                        p.paid_at.second()
                    ),
                };
                Some(Receipt {
                    spec,
                    v2: delivery.v2,
                })
            })
            .collect()
    }

    /// The lines of a reported payment, one per transfer of Milan's.
    fn flow_lines(&self, payment: usize) -> anyhow::Result<Vec<FlowLine>> {
        let p = &self.s.payments[payment];
        let reported = p
            .reported
            .ok_or_else(|| anyhow::anyhow!("payment {payment} is not reported"))?;
        self.s
            .lines(payment)
            .into_iter()
            .map(|(id_transfer, amount_cents)| {
                Ok(FlowLine {
                    key: TransferKey::new(
                        Iuv::parse(self.iuv(p.notice))?,
                        &p.receipt_id,
                        TransferIndex::new(i64::from(id_transfer))?,
                    )?,
                    amount_cents,
                    outcome: reported.outcome,
                    paid_on: p.paid_at.date(),
                })
            })
            .collect()
    }

    pub(super) fn documents(&self) -> anyhow::Result<Vec<Document>> {
        let mut documents = Vec::new();
        for (f, flow) in self.s.flows.iter().enumerate() {
            let mut lines = Vec::new();
            for &p in &flow.lines {
                lines.extend(self.flow_lines(p)?);
            }
            let latest = ReportingFlow {
                flow_id: FlowId::parse(&flow.id)?,
                revision: 0,
                created_at: flow.created_at,
                psp_id: flow.psp.clone(),
                trn: flow.trn.clone(),
                regulation_date: flow.regulation_date,
                total_cents: self.s.flow_total(f),
                lines,
            };
            if flow.revised {
                // The first revision: the PSP forgot a line and mistyped another's amount.
                let mut first = latest.clone();
                first.created_at = flow.created_at - Duration::hours(3);
                if first.lines.len() > 1 {
                    first.lines.pop();
                }
                first.lines[0].amount_cents += 100;
                first.total_cents = first.lines.iter().map(|l| l.amount_cents).sum();
                documents.push(Document {
                    name: format!("fdr-{}-1.xml", flow.id),
                    kind: DocumentKind::Flow,
                    content: fdr_xml(&first, MILANO),
                });
                documents.push(Document {
                    name: format!("fdr-{}-2.xml", flow.id),
                    kind: DocumentKind::Flow,
                    content: fdr_xml(&latest, MILANO),
                });
            } else {
                documents.push(Document {
                    name: format!("fdr-{}.xml", flow.id),
                    kind: DocumentKind::Flow,
                    content: fdr_xml(&latest, MILANO),
                });
            }
        }
        documents.extend(self.treasury());
        Ok(documents)
    }

    fn causale(&self, intent: &CreditIntent) -> String {
        let iuf = |f: usize| self.s.flows[f].id.as_str();
        match intent {
            CreditIntent::Flows { flows, spelling } => {
                let markers: Vec<String> = flows
                    .iter()
                    .map(|&f| match spelling {
                        Spelling::Plain | Spelling::Embedded | Spelling::AccreditiVari => {
                            let id = iuf(f);
                            if *spelling == Spelling::AccreditiVari {
                                // The identifier written as a whole date, then the rest.
                                format!("/PUR/LGPE-RIVERSAMENTO/URI/{} {}", &id[..10], &id[10..])
                            } else {
                                format!("/PUR/LGPE-RIVERSAMENTO/URI/{id}")
                            }
                        }
                        Spelling::Spaced(i) => {
                            format!("/PUR/{}/URI/{}", MARKER_SPELLINGS[*i], iuf(f))
                        }
                        Spelling::SpaceSeparators => {
                            format!("/PUR/LGPE-RIVERSAMENTO URI {}", iuf(f))
                        }
                        Spelling::SplitDate => {
                            let id = iuf(f);
                            format!("/PUR/LGPE-RIVERSAMENTO/URI/{} {}", &id[..9], &id[9..])
                        }
                    })
                    .collect();
                let markers = markers.join(" ");
                match spelling {
                    Spelling::AccreditiVari => format!("ACCREDITI VARI {markers}"),
                    Spelling::Embedded => {
                        let flow = &self.s.flows[flows[0]];
                        format!(
                            "BONIFICO SEPA A FAVORE DI COMUNE DI MILANO ORD. {} SERVIZIO PAGOPA \
                             TRN {} DATA REGOLAMENTO {} :RI3:{markers} :SEC:CASH:RI4:RIVERSAMENTO \
                             INCASSI PAGOPA DEL GIORNO",
                            flow.psp, flow.trn, flow.regulation_date
                        )
                    }
                    _ => markers,
                }
            }
            CreditIntent::FlowPart { flow, part } => {
                format!("/PUR/LGPE-RIVERSAMENTO/TXT/{part}/URI/{}", iuf(*flow))
            }
            CreditIntent::Truncated { flow, keep, also } => {
                let cut = format!("/PUR/LGPE-RIVERSAMENTO/URI/{}", &iuf(*flow)[..*keep]);
                match also {
                    Some(named) => format!("/PUR/LGPE-RIVERSAMENTO/URI/{} {cut}", iuf(*named)),
                    None => cut,
                }
            }
            CreditIntent::Iuv { payment, rfs } => {
                let p = &self.s.payments[*payment];
                let iuv = self.iuv(p.notice);
                let cents = self.s.notices[p.notice].milan_cents();
                if *rfs {
                    format!("/RFS/{iuv}/{}", euro(cents))
                } else {
                    format!("/RFB/{iuv}/{}/TXT/PAGAMENTO AVVISO PAGOPA", euro(cents))
                }
            }
            CreditIntent::UnknownIuv { iuv } => {
                format!("/RFB/{iuv}/TXT/PAGAMENTO AVVISO PAGOPA")
            }
            CreditIntent::Unrelated { text } => (*text).to_owned(),
        }
    }

    /// The TRN the bank shows: the flow's, for a transfer paying flows.
    fn trn(&self, intent: &CreditIntent) -> Option<String> {
        match intent {
            CreditIntent::Flows { flows, .. } => Some(self.s.flows[flows[0]].trn.clone()),
            CreditIntent::FlowPart { flow, part } => {
                Some(format!("{}{part}", self.s.flows[*flow].trn))
            }
            CreditIntent::Truncated { flow, .. } => Some(self.s.flows[*flow].trn.clone()),
            _ => None,
        }
    }

    fn treasury(&self) -> Vec<Document> {
        let first = self.s.first_booking();
        let second = self.s.second_booking();
        let camt_entry = |c: &scenario::Credit| {
            let mut entry = CamtEntry::credit(
                &c.id,
                c.amount_cents,
                c.booking_date,
                &self.causale(&c.intent),
            );
            entry.trn = self.trn(&c.intent);
            entry.debtor = Some("PSP SPA SERVIZIO PAGOPA".to_owned());
            entry.additional_info = Some("BONIFICO SEPA IN ENTRATA".to_owned());
            entry
        };
        let mut statement: Vec<CamtEntry> = Vec::new();
        let mut notification: Vec<CamtEntry> = Vec::new();
        let mut giornale: Vec<OpiMovement> = Vec::new();
        for credit in &self.s.credits {
            match credit.book {
                Book::Statement => statement.push(camt_entry(credit)),
                Book::Notification => notification.push(camt_entry(credit)),
                Book::Giornale => {
                    let mut movement = OpiMovement::credit(
                        &credit.id,
                        credit.amount_cents,
                        credit.booking_date,
                        &self.causale(&credit.intent),
                    );
                    movement.trn = self.trn(&credit.intent);
                    giornale.push(movement);
                }
            }
        }
        // Movements that are not credits: a debit, an entry not booked yet, an outgoing
        // payment.
        let mut debit = CamtEntry::credit("ASR053-DEBIT", 1_234, first, "COMMISSIONI TENUTA CONTO");
        debit.credit = false;
        statement.push(debit);
        let mut pending = CamtEntry::credit(
            "ASR054-PENDING",
            5_000,
            second,
            "/PUR/LGPE-RIVERSAMENTO/URI/NOT-BOOKED-YET",
        );
        pending.booked = false;
        notification.push(pending);
        let mut outgoing = OpiMovement::credit("OPI-USCITA", 99_000, second, "MANDATO 4411/2026");
        outgoing.entrata = false;
        giornale.push(outgoing);
        vec![
            Document {
                name: format!("camt053-{first}.xml"),
                kind: DocumentKind::Treasury,
                content: camt(
                    CamtMessage::Statement,
                    self.s.statement_version,
                    MILANO_BANK,
                    first,
                    first,
                    &statement,
                ),
            },
            Document {
                name: format!("camt054-{second}.xml"),
                kind: DocumentKind::Treasury,
                content: camt(
                    CamtMessage::Notification,
                    self.s.notification_version,
                    MILANO_BANK,
                    second,
                    second,
                    &notification,
                ),
            },
            Document {
                name: format!("opi-gdc-{second}.xml"),
                kind: DocumentKind::Treasury,
                content: opi(self.s.opi_schema, OPI_ENTITY_CODE, second, &giornale),
            },
        ]
    }
}
