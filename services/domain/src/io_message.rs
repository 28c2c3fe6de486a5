//! App IO messages about payment notices: when each goes out and what it says, following
//! PagoPA's guidance for IO (one notice per message; a rata unica first and the instalments
//! of a plan only once the rata unica is past its due date unpaid; no personal data in the
//! subject). Dates are Europe/Rome calendar days; a scheduled message goes out at
//! [`SEND_HOUR`]:00 Rome time of its day. Nothing here sends anything: the relay asks
//! [`schedule`] what to queue when a position is issued or changed, and [`compose`] what to
//! send when a queued message comes due, from the position as it stands then, so a message
//! never carries a stale amount and nothing goes out for a notice paid or cancelled since.

use serde::{Deserialize, Serialize};
use time::{Date, Duration, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset};

use crate::debt_position::{
    DebtKind, DebtPosition, EffectiveInstallmentState, Installment, KindDetails, SchoolService,
};
use crate::fiscal_code::{EntityType, FiscalCode, PersonalFiscalCode};
use crate::money::AmountCents;
use crate::notice_number::NoticeNumber;
use crate::rome_time;

/// IO's shortest subject.
pub const SUBJECT_MIN_CHARS: usize = 10;
/// IO's longest subject.
pub const SUBJECT_MAX_CHARS: usize = 120;
/// IO's shortest markdown body.
pub const MARKDOWN_MIN_CHARS: usize = 80;
/// IO's longest markdown body.
pub const MARKDOWN_MAX_CHARS: usize = 10_000;
/// Days before a notice's due date its reminder goes out, unless configured.
pub const DEFAULT_REMINDER_DAYS: u16 = 7;
/// Days before its due date an instalment's own message goes out once the plan applies.
pub const INSTALMENT_LEAD_DAYS: i64 = 30;
/// The hour (Europe/Rome) scheduled messages go out: not in the night.
pub const SEND_HOUR: u8 = 9;

/// Why a message is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IoPurpose {
    /// A notice to pay: a new notice, or an instalment once its plan applies.
    Notice,
    /// A few days before an unpaid notice's due date.
    Reminder,
    /// The day before a traffic fine's reduced amount ends.
    ReducedAmountEnding,
}

impl IoPurpose {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Notice => "notice",
            Self::Reminder => "reminder",
            Self::ReducedAmountEnding => "reduced_amount_ending",
        }
    }
}

/// When a message is meant to go out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SendWhen {
    /// As soon as the notice is issued.
    AtIssue,
    /// At this instant.
    At(#[serde(with = "time::serde::timestamp")] OffsetDateTime),
}

/// One message a position calls for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduledMessage {
    /// The notice it is about.
    pub notice_number: NoticeNumber,
    /// Why.
    pub purpose: IoPurpose,
    /// When, as the position's current dates say.
    pub when: SendWhen,
}

/// The instant `SEND_HOUR`:00 of `day` in Europe/Rome.
pub fn send_instant(day: Date) -> OffsetDateTime {
    let at = Time::from_hms(SEND_HOUR, 0, 0).unwrap_or(Time::MIDNIGHT);
    rome_time::from_rome_local(PrimitiveDateTime::new(day, at))
}

/// The option messaged first: the rata unica (the first option of one notice) when there is
/// one, otherwise the first option.
fn primary_option(position: &DebtPosition) -> usize {
    position
        .payment_options
        .iter()
        .position(|o| o.installments.len() == 1)
        .unwrap_or(0)
}

/// When the notice message of the instalment at (`option`, `index`) is meant to go out.
fn notice_when(position: &DebtPosition, option: usize, index: usize) -> Option<SendWhen> {
    let installment = position
        .payment_options
        .get(option)?
        .installments
        .get(index)?;
    let primary = primary_option(position);
    let ahead = send_instant(installment.due_date - Duration::days(INSTALMENT_LEAD_DAYS));
    if option == primary {
        return Some(if index == 0 {
            SendWhen::AtIssue
        } else {
            SendWhen::At(ahead)
        });
    }
    // Another option (the instalment plan beside a rata unica): only once the rata unica is
    // past its due date unpaid, and ahead of the instalment's own due date.
    let rata_unica_due = position
        .payment_options
        .get(primary)?
        .installments
        .first()?
        .due_date;
    let after_rata_unica = send_instant(rata_unica_due + Duration::days(1));
    Some(SendWhen::At(after_rata_unica.max(ahead)))
}

/// The instant a reminder of `purpose` for `installment` is meant to go out, if the position
/// calls for one.
fn reminder_at(
    position: &DebtPosition,
    installment: &Installment,
    purpose: IoPurpose,
    reminder_days: u16,
) -> Option<OffsetDateTime> {
    match purpose {
        IoPurpose::Notice => None,
        IoPurpose::Reminder if reminder_days == 0 => None,
        IoPurpose::Reminder => Some(send_instant(
            installment.due_date - Duration::days(i64::from(reminder_days)),
        )),
        IoPurpose::ReducedAmountEnding => match &position.details {
            KindDetails::TrafficFine(fine) => Some(send_instant(
                fine.schedule.reduced_deadline() - Duration::days(1),
            )),
            _ => None,
        },
    }
}

/// When the message (`notice`, `purpose`) is meant to go out, as the position's current
/// dates say; `None` when the position does not call for it. A queued message whose planned
/// time is no longer this one is stale (its position changed) and is not sent.
pub fn planned(
    position: &DebtPosition,
    notice: &NoticeNumber,
    purpose: IoPurpose,
    reminder_days: u16,
) -> Option<SendWhen> {
    let (option, index) = position.place_of(notice)?;
    let notice_when = notice_when(position, option, index)?;
    if purpose == IoPurpose::Notice {
        return Some(notice_when);
    }
    let installment = &position.payment_options[option].installments[index];
    let at = reminder_at(position, installment, purpose, reminder_days)?;
    // A reminder must follow the notice it reminds of, and come before the day it is about.
    let after_notice = match notice_when {
        SendWhen::AtIssue => at >= send_instant(rome_time::rome_date(position.created_at)),
        SendWhen::At(notice_at) => at > notice_at,
    };
    let before_due = at < send_instant(installment.due_date);
    (after_notice && before_due).then_some(SendWhen::At(at))
}

/// The messages to queue for a position issued or changed at `from`: every notice message
/// (the store drops those queued already with the same planned time, so a change requeues
/// only the notices whose time moved) and the reminders still ahead. Legal entities get
/// nothing: IO is for citizens.
pub fn schedule(
    position: &DebtPosition,
    reminder_days: u16,
    from: OffsetDateTime,
) -> Vec<ScheduledMessage> {
    if recipient(position).is_none() {
        return Vec::new();
    }
    let mut messages = Vec::new();
    for installment in position.installments() {
        for purpose in [
            IoPurpose::Notice,
            IoPurpose::Reminder,
            IoPurpose::ReducedAmountEnding,
        ] {
            let Some(when) = planned(position, &installment.notice_number, purpose, reminder_days)
            else {
                continue;
            };
            let wanted = match when {
                SendWhen::AtIssue => true,
                SendWhen::At(at) => purpose == IoPurpose::Notice || at >= from,
            };
            if wanted {
                messages.push(ScheduledMessage {
                    notice_number: installment.notice_number.clone(),
                    purpose,
                    when,
                });
            }
        }
    }
    messages
}

/// The citizen a position's messages go to: a natural person with a 16-character fiscal
/// code. `None` for a legal entity, an 11-digit temporary code or erased personal data.
pub fn recipient(position: &DebtPosition) -> Option<&PersonalFiscalCode> {
    let debtor = position.debtor.as_ref()?;
    match (&debtor.entity_type, &debtor.fiscal_code) {
        (EntityType::F, FiscalCode::Personal(code)) => Some(code),
        _ => None,
    }
}

/// Why a due message is not sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum NotSent {
    /// The notice is no longer part of the position.
    #[error("the notice is no longer part of the position")]
    NoticeGone,
    /// The position's dates changed since the message was queued; the change queued the
    /// message at its new time.
    #[error("the position changed: the message is no longer due at this time")]
    Rescheduled,
    /// Paid.
    #[error("the notice is paid")]
    Paid,
    /// Cancelled.
    #[error("the notice is cancelled")]
    Cancelled,
    /// Another option was paid.
    #[error("another payment option of the position was paid")]
    Unpayable,
    /// Past its expiry date.
    #[error("the notice is past its expiry date")]
    Expired,
    /// The reduced amount of a fine already ended.
    #[error("the reduced amount has already ended")]
    ReducedAmountOver,
    /// Not a citizen with a personal fiscal code (or the personal data was erased).
    #[error("the debtor is not a citizen reachable on IO")]
    NotACitizen,
}

/// A message ready for IO's `POST /messages`.
#[derive(Clone, PartialEq, Eq)]
pub struct IoMessage {
    /// The recipient.
    pub fiscal_code: PersonalFiscalCode,
    /// 10..=120 characters, no personal data.
    pub subject: String,
    /// 80..=10,000 characters.
    pub markdown: String,
    /// What the notice costs on the day of sending.
    pub amount: AmountCents,
    /// The notice.
    pub notice_number: NoticeNumber,
    /// True only when the notice cannot be paid after its due date (its expiry is its due
    /// date).
    pub invalid_after_due_date: bool,
    /// The last second of the due date in Rome, in UTC.
    pub due_date: OffsetDateTime,
}

impl std::fmt::Debug for IoMessage {
    // The recipient and the body (which names what is owed) never reach a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IoMessage")
            .field("notice_number", &self.notice_number)
            .field("amount", &self.amount)
            .finish_non_exhaustive()
    }
}

/// The last second of `day` in Europe/Rome, in UTC: IO wants the due date as a UTC instant
/// and shows the day of it in the citizen's time.
pub fn end_of_due_day_utc(day: Date) -> OffsetDateTime {
    let next = day.next_day().unwrap_or(day);
    (rome_time::start_of_rome_day(next) - Duration::seconds(1)).to_offset(UtcOffset::UTC)
}

/// The message (`notice`, `purpose`) planned for `planned_when`, composed at `now` from the
/// position as it stands; or why it must not be sent.
pub fn compose(
    position: &DebtPosition,
    notice: &NoticeNumber,
    purpose: IoPurpose,
    planned_when: SendWhen,
    reminder_days: u16,
    creditor_name: &str,
    now: OffsetDateTime,
) -> Result<IoMessage, NotSent> {
    let fiscal_code = recipient(position).ok_or(NotSent::NotACitizen)?.clone();
    let (option, index) = position.place_of(notice).ok_or(NotSent::NoticeGone)?;
    let installment = &position.payment_options[option].installments[index];
    let today = rome_time::rome_date(now);
    match installment.effective_state(today) {
        EffectiveInstallmentState::Unpaid => {}
        EffectiveInstallmentState::Paid => return Err(NotSent::Paid),
        EffectiveInstallmentState::Cancelled => return Err(NotSent::Cancelled),
        EffectiveInstallmentState::Unpayable => return Err(NotSent::Unpayable),
        EffectiveInstallmentState::Expired => return Err(NotSent::Expired),
    }
    if planned(position, notice, purpose, reminder_days) != Some(planned_when) {
        return Err(NotSent::Rescheduled);
    }
    let amount = position.amount_payable_on(installment, today);
    let texts = Texts::new(position, option, index, creditor_name);
    let (subject, body) = match purpose {
        IoPurpose::Notice => (texts.notice_subject(), texts.notice_body(amount, today)),
        IoPurpose::Reminder => (texts.reminder_subject(), texts.reminder_body(amount, today)),
        IoPurpose::ReducedAmountEnding => {
            let KindDetails::TrafficFine(fine) = &position.details else {
                return Err(NotSent::NoticeGone);
            };
            if today > fine.schedule.reduced_deadline() {
                return Err(NotSent::ReducedAmountOver);
            }
            let full = fine
                .schedule
                .amount_payable_on(fine.schedule.reduced_deadline() + Duration::days(1));
            (
                texts.reduced_ending_subject(),
                texts.reduced_ending_body(amount, full, fine.schedule.reduced_deadline()),
            )
        }
    };
    Ok(IoMessage {
        fiscal_code,
        subject: fit(&subject, SUBJECT_MIN_CHARS, SUBJECT_MAX_CHARS),
        markdown: fit(&body, MARKDOWN_MIN_CHARS, MARKDOWN_MAX_CHARS),
        amount,
        notice_number: installment.notice_number.clone(),
        invalid_after_due_date: installment.expiry_date == Some(installment.due_date),
        due_date: end_of_due_day_utc(installment.due_date),
    })
}

/// `text` cut to `max` characters (never inside a character), padded to `min` with a
/// closing line if it were ever shorter.
fn fit(text: &str, min: usize, max: usize) -> String {
    let mut fitted: String = text.chars().take(max).collect();
    while fitted.chars().count() < min {
        fitted.push_str(" - Comune");
    }
    fitted.chars().take(max).collect()
}

/// An amount the Italian way: `€ 1.234,56`.
pub fn format_euro(amount: AmountCents) -> String {
    let cents = amount.get();
    let euros = (cents / 100).to_string();
    let mut grouped = String::new();
    for (i, digit) in euros.chars().enumerate() {
        if i > 0 && (euros.len() - i).is_multiple_of(3) {
            grouped.push('.');
        }
        grouped.push(digit);
    }
    format!("€ {grouped},{:02}", cents % 100)
}

/// A day the Italian way: `31/07/2026`.
pub fn format_day(day: Date) -> String {
    format!(
        "{:02}/{:02}/{}",
        day.day(),
        u8::from(day.month()),
        day.year()
    )
}

const MONTHS: [&str; 12] = [
    "gennaio",
    "febbraio",
    "marzo",
    "aprile",
    "maggio",
    "giugno",
    "luglio",
    "agosto",
    "settembre",
    "ottobre",
    "novembre",
    "dicembre",
];

/// "2026-11" as "novembre 2026"; anything else as it is (it was validated on input).
fn month_name(month: &str) -> String {
    let parsed = month
        .split_once('-')
        .and_then(|(y, m)| Some((y.parse::<i32>().ok()?, m.parse::<usize>().ok()?)));
    match parsed {
        Some((year, m)) if (1..=12).contains(&m) => format!("{} {year}", MONTHS[m - 1]),
        _ => month.chars().take(7).collect(),
    }
}

/// The texts of one notice's messages.
struct Texts<'a> {
    position: &'a DebtPosition,
    installment: &'a Installment,
    index: usize,
    count: usize,
    label: &'a str,
    creditor_name: &'a str,
    /// What is paid, for the subject: no personal data.
    topic: String,
}

impl<'a> Texts<'a> {
    fn new(
        position: &'a DebtPosition,
        option: usize,
        index: usize,
        creditor_name: &'a str,
    ) -> Self {
        let option = &position.payment_options[option];
        let topic = match &position.details {
            KindDetails::Tari(tari) => format!("TARI {}", tari.tax_year),
            KindDetails::TrafficFine(_) => "Multa (Codice della Strada)".to_owned(),
            KindDetails::SchoolFee(fee) => {
                let service = match fee.service {
                    SchoolService::Nido => "Retta del nido d'infanzia",
                    SchoolService::Infanzia => "Retta della scuola dell'infanzia",
                    SchoolService::Refezione => "Refezione scolastica",
                };
                match &fee.month {
                    Some(month) => format!("{service}, {}", month_name(month)),
                    None => format!(
                        "{service}, anno {}",
                        fee.school_year.chars().take(9).collect::<String>()
                    ),
                }
            }
        };
        Self {
            position,
            installment: &option.installments[index],
            index,
            count: option.installments.len(),
            label: &option.label,
            creditor_name,
            topic,
        }
    }

    fn is_instalment(&self) -> bool {
        self.count > 1
    }

    fn notice_subject(&self) -> String {
        if self.is_instalment() {
            format!("{}: rata {} di {}", self.topic, self.index + 1, self.count)
        } else {
            format!("{}: avviso di pagamento", self.topic)
        }
    }

    fn reminder_subject(&self) -> String {
        format!(
            "{}: promemoria, scadenza {}",
            self.topic,
            format_day(self.installment.due_date)
        )
    }

    fn reduced_ending_subject(&self) -> String {
        format!("{}: l'importo ridotto scade domani", self.topic)
    }

    /// What the notice is for, as the body names it.
    fn what(&self) -> String {
        let description: String = self.position.description.chars().take(140).collect();
        let kind = match self.position.kind() {
            DebtKind::Tari => "la tassa sui rifiuti (TARI)",
            DebtKind::TrafficFine => "una multa (violazione del Codice della Strada)",
            DebtKind::SchoolFee => "un servizio scolastico",
        };
        format!("{kind}: {description}")
    }

    fn facts(&self, amount: AmountCents) -> String {
        let mut facts = format!(
            "- Importo: **{}**\n- Scadenza: **{}**\n- Codice avviso: {}\n",
            format_euro(amount),
            format_day(self.installment.due_date),
            self.installment.notice_number.printed()
        );
        if self.is_instalment() {
            facts.push_str(&format!(
                "- Rata {} di {} ({})\n",
                self.index + 1,
                self.count,
                self.label.chars().take(140).collect::<String>()
            ));
        }
        if self.installment.expiry_date == Some(self.installment.due_date) {
            facts.push_str("- Dopo la scadenza l'avviso non potrà più essere pagato.\n");
        }
        facts
    }

    fn closing(&self) -> &'static str {
        "\nPuoi pagare subito da questo messaggio con il pulsante \"Paga\", oppure con il \
         codice avviso presso gli sportelli e le app abilitati a pagoPA.\n"
    }

    fn fine_bands(&self, today: Date) -> String {
        let KindDetails::TrafficFine(fine) = &self.position.details else {
            return String::new();
        };
        let schedule = &fine.schedule;
        let reduced_end = schedule.reduced_deadline();
        if today > reduced_end {
            return String::new();
        }
        format!(
            "\nSe paghi entro il {} l'importo è ridotto del 30%: {} (spese di notifica \
             comprese). Dal giorno successivo l'importo sarà {}.\n",
            format_day(reduced_end),
            format_euro(schedule.amount_payable_on(reduced_end)),
            format_euro(schedule.amount_payable_on(reduced_end + Duration::days(1))),
        )
    }

    fn notice_body(&self, amount: AmountCents, today: Date) -> String {
        let intro = if self.is_instalment() && self.position.payment_options.len() > 1 {
            "La rata unica non risulta pagata entro la sua scadenza: puoi pagare a rate. \
             Questo è l'avviso di una delle rate.\n\n"
        } else {
            ""
        };
        format!(
            "{intro}{} ti invia un avviso di pagamento pagoPA per {}.\n\n{}{}{}",
            self.creditor_name,
            self.what(),
            self.facts(amount),
            self.fine_bands(today),
            self.closing()
        )
    }

    fn reminder_body(&self, amount: AmountCents, today: Date) -> String {
        format!(
            "Ti ricordiamo che l'avviso di pagamento pagoPA di {} per {} scade il {} e non \
             risulta ancora pagato.\n\n{}{}{}\nSe hai già pagato, ignora questo messaggio.\n",
            self.creditor_name,
            self.what(),
            format_day(self.installment.due_date),
            self.facts(amount),
            self.fine_bands(today),
            self.closing()
        )
    }

    fn reduced_ending_body(&self, reduced: AmountCents, full: AmountCents, last: Date) -> String {
        format!(
            "Domani, {}, è l'ultimo giorno per pagare la multa di {} con l'importo ridotto \
             del 30%: {} (spese di notifica comprese). Dal giorno successivo l'importo sarà \
             {}.\n\n{}{}\nSe hai già pagato, ignora questo messaggio.\n",
            format_day(last),
            self.creditor_name,
            format_euro(reduced),
            format_euro(full),
            self.facts(reduced),
            self.closing()
        )
    }
}

#[cfg(test)]
mod tests;
