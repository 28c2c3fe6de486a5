//! Spans and log lines as an operator's collector receives them, in a test binary of their own.
//!
//! The server logs through whatever subscriber the process has, from every thread it uses
//! (runtime workers, blocking threads, SQLite's worker). Only a global subscriber sees all of
//! them, and a global subscriber sees every test of its process, so the tests that look at
//! what is logged live here, alone, and take turns. A thread-local subscriber (`set_default`)
//! in the shared e2e binary is not enough: tracing caches each call site's interest for the
//! whole process, and while one thread-local subscriber is the only one alive, a call site
//! first reached on another test's thread is cached as "never" for every thread; the span
//! then disappears from the capture (`cargo test`, tests on threads, made that happen).

// Test bodies are assertions; unwraps there are assertions too.
#![allow(clippy::unwrap_used)]

use std::sync::{Mutex, OnceLock, PoisonError};

use incasso_grpc::pb;
use incasso_integration_tests::node_simulator::{
    self as node, Caller, element_text, post, validate,
};
use incasso_integration_tests::requests::{self, MILANO};
use incasso_integration_tests::{Engine, TestApp};

const XML: &str = "text/xml; charset=utf-8";

/// The process's subscriber, installed once: everything logged at DEBUG and above, from
/// every thread, as spans, events and JSON lines.
fn captured() -> &'static capture::Captured {
    static CAPTURED: OnceLock<capture::Captured> = OnceLock::new();
    CAPTURED.get_or_init(|| {
        use tracing_subscriber::layer::SubscriberExt;
        let captured = capture::Captured::default();
        let json = captured.json.clone();
        let subscriber = tracing_subscriber::registry()
            .with(tracing_subscriber::filter::LevelFilter::DEBUG)
            .with(captured.clone())
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_current_span(true)
                    .with_span_list(true)
                    .with_writer(move || capture::Writer(json.clone())),
            );
        tracing::subscriber::set_global_default(subscriber)
            .expect("no other subscriber in this test binary");
        captured
    })
}

/// The capture is shared by the whole process, so its tests run one at a time.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

async fn call(app: &TestApp, action: &str, request: &str) -> anyhow::Result<String> {
    validate(request)?;
    let reply = post(app.soap_addr, Some(action), XML, request.as_bytes()).await?;
    assert_eq!(reply.status, 200, "{}", reply.body);
    validate(&reply.body)?;
    Ok(reply.body)
}

fn fault_code(body: &str) -> Option<&str> {
    element_text(body, "faultCode")
}

fn first_notice(position: &pb::DebtPosition) -> pb::Installment {
    position.payment_options[0].installments[0].clone()
}

/// One span per call with creditor, notice, IUV, outcome and fault code, for answered and
/// refused calls alike; the debtor's fiscal code and name nowhere in spans or log lines,
/// whichever thread wrote them.
fn spans_name_the_call_and_never_the_debtor(engine: Engine) -> anyhow::Result<()> {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(PoisonError::into_inner);
    let captured = captured();
    captured.clear();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()?;
    let (notice, iuv) = runtime.block_on(async {
        let app = TestApp::spawn(engine).await?;
        let fee = app
            .notices()
            .await?
            .create_debt_position(requests::school_fee("node-spans"))
            .await?
            .into_inner();
        let installment = first_notice(&fee);
        let caller = Caller::default();
        let verify = node::verify(&caller, MILANO, &installment.notice_number);
        let body = call(&app, "paVerifyPaymentNotice", &verify).await?;
        assert_eq!(element_text(&body, "outcome"), Some("OK"));
        let refused = verify.replace("<idStation>01199250158_01</idStation>", "");
        let reply = post(app.soap_addr, None, XML, refused.as_bytes()).await?;
        assert_eq!(fault_code(&reply.body), Some("PAA_SINTASSI_XSD"));
        let receipt = node::ReceiptSpec {
            receipt_id: "token-spans".to_owned(),
            notice_number: installment.notice_number.clone(),
            fiscal_code: MILANO.to_owned(),
            iuv: installment.iuv.clone(),
            amount: "465.00".to_owned(),
            psp: "BCITITMM".to_owned(),
            transfers: vec![(
                MILANO.to_owned(),
                "465.00".to_owned(),
                "IT02N0306909400000012345678".to_owned(),
            )],
            stand_in: false,
            payment_date_time: "2026-11-20T10:15:00".to_owned(),
        };
        let request = node::send_rt(&caller, true, &receipt);
        assert!(request.contains("RSSMRA80A01F205X") && request.contains("Mario Rossi"));
        let body = call(&app, "paSendRTV2", &request).await?;
        assert_eq!(element_text(&body, "outcome"), Some("OK"));
        app.stop().await?;
        anyhow::Ok((installment.notice_number, installment.iuv))
    })?;
    drop(runtime);
    let spans: Vec<capture::SpanRecord> = captured
        .spans
        .lock()
        .unwrap()
        .iter()
        .filter(|s| s.name == "paForNode")
        .cloned()
        .collect();
    assert_eq!(spans.len(), 3, "one span per call: {spans:?}");
    let expect = |span: &capture::SpanRecord,
                  primitive: &str,
                  outcome: &str,
                  fault: Option<&str>,
                  iuv_known: bool| {
        assert_eq!(span.get("primitive"), Some(primitive), "{span:?}");
        assert_eq!(span.get("creditor"), Some(MILANO), "{span:?}");
        assert_eq!(span.get("notice_number"), Some(notice.as_str()), "{span:?}");
        assert_eq!(
            span.get("iuv"),
            iuv_known.then_some(iuv.as_str()),
            "{span:?}"
        );
        assert_eq!(span.get("outcome"), Some(outcome), "{span:?}");
        assert_eq!(span.get("fault_code"), fault, "{span:?}");
    };
    expect(&spans[0], "paVerifyPaymentNotice", "OK", None, true);
    expect(
        &spans[1],
        "paVerifyPaymentNotice",
        "KO",
        Some("PAA_SINTASSI_XSD"),
        false,
    );
    expect(&spans[2], "paSendRTV2", "OK", None, true);
    let events = captured.events.lock().unwrap().join("\n");
    let json = String::from_utf8(captured.json.lock().unwrap().clone())?;
    assert!(
        json.contains("\"answered\"") && json.contains(&format!("\"notice_number\":\"{notice}\"")),
        "the JSON log lines carry the span: {json}"
    );
    let everything = format!("{spans:?}\n{events}\n{json}");
    for personal in ["RSSMRA80A01F205X", "Mario Rossi", "Mario", "Rossi"] {
        assert!(
            !everything.contains(personal),
            "{personal} reached the logs:\n{everything}"
        );
    }
    Ok(())
}

#[test]
fn spans_name_the_call_and_never_the_debtor_sqlite() -> anyhow::Result<()> {
    spans_name_the_call_and_never_the_debtor(Engine::Sqlite)
}

#[test]
fn spans_name_the_call_and_never_the_debtor_postgres() -> anyhow::Result<()> {
    spans_name_the_call_and_never_the_debtor(Engine::Postgres)
}

/// The Fascicolo push at work (deliveries, a payment, a refusal that quotes the fiscal code,
/// a gap, a resync) logs no fiscal code and no name.
fn the_fascicolo_push_never_logs_the_citizen(engine: Engine) -> anyhow::Result<()> {
    use incasso_integration_tests::fake_fascicolo::{FakeFascicolo, citizen_code};
    use std::time::{Duration, Instant};
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(PoisonError::into_inner);
    let captured = captured();
    captured.clear();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()?;
    let citizens = [citizen_code(50), citizen_code(51)];
    runtime.block_on(async {
        let fake = FakeFascicolo::start().await?;
        fake.state()
            .behaviour
            .refuse_citizens
            .insert(citizens[1].clone());
        let config = incasso_relay::fascicolo::FascicoloConfig {
            poll_interval: Duration::from_millis(20),
            retry_base: Duration::from_millis(20),
            retry_max: Duration::from_millis(100),
            ..incasso_relay::fascicolo::FascicoloConfig::new(&fake.url())
        };
        let app = TestApp::spawn_with(engine, move |s| s.fascicolo = Some(config)).await?;
        let mut notices = app.notices().await?;
        let mut fee = requests::school_fee("fasc-logs-0");
        fee.debtor.as_mut().unwrap().fiscal_code = citizens[0].clone();
        let fee = notices.create_debt_position(fee).await?.into_inner();
        let mut refused = requests::school_fee("fasc-logs-1");
        refused.debtor.as_mut().unwrap().fiscal_code = citizens[1].clone();
        notices.create_debt_position(refused).await?;
        let installment = first_notice(&fee);
        let receipt = node::ReceiptSpec::paying(
            &installment,
            "token-fasc-logs",
            "BCITITMM",
            "2026-11-20T10:15:00",
        );
        let body = call(
            &app,
            "paSendRTV2",
            &node::send_rt(&Caller::default(), true, &receipt),
        )
        .await?;
        assert_eq!(element_text(&body, "outcome"), Some("OK"));
        let deadline = Instant::now() + Duration::from_secs(30);
        while fake.sequences(&citizens[0]).len() < 2
            || app
                .store
                .outbox_dead(incasso_store::outbox::FASCICOLO_CITIZEN)
                .await?
                .is_empty()
        {
            anyhow::ensure!(Instant::now() < deadline, "the push did not happen");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // A gap, resent; and a resync.
        fake.forget_from(&citizens[0], 1);
        app.store.resync_citizen(&citizens[0]).await?;
        while fake.sequences(&citizens[0]).len() < 6 {
            anyhow::ensure!(Instant::now() < deadline, "the resend did not happen");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        app.stop().await?;
        anyhow::Ok(())
    })?;
    drop(runtime);
    let spans = captured.spans.lock().unwrap().clone();
    let events = captured.events.lock().unwrap().join("\n");
    let json = String::from_utf8(captured.json.lock().unwrap().clone())?;
    assert!(
        events.contains("dead letter") && events.contains("asked to resend"),
        "the relay's log lines were captured: {events}"
    );
    let everything = format!("{spans:?}\n{events}\n{json}");
    for personal in [
        citizens[0].as_str(),
        citizens[1].as_str(),
        "Mario Rossi",
        "RSSMRA80A01F205X",
    ] {
        assert!(
            !everything.contains(personal),
            "{personal} reached the logs:\n{everything}"
        );
    }
    Ok(())
}

#[test]
fn the_fascicolo_push_never_logs_the_citizen_sqlite() -> anyhow::Result<()> {
    the_fascicolo_push_never_logs_the_citizen(Engine::Sqlite)
}

#[test]
fn the_fascicolo_push_never_logs_the_citizen_postgres() -> anyhow::Result<()> {
    the_fascicolo_push_never_logs_the_citizen(Engine::Postgres)
}

/// App IO and the citizen's gRPC service log the notice and the outcome, never the citizen:
/// a message sent, one to a citizen not on IO, one retried after a 429, one dead-lettered
/// after a 403, and the Fascicolo's queries (a valid and an invalid fiscal code).
fn io_and_citizen_queries_never_log_the_citizen(engine: Engine) -> anyhow::Result<()> {
    use incasso_integration_tests::fake_io::{FakeIo, Profile, SERVICE_KEY};
    use incasso_relay::app_io::{IoConfig, IoService};

    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(PoisonError::into_inner);
    let captured = captured();
    captured.clear();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()?;
    const LAURA: &str = "BNCLRA85M41F205C";
    runtime.block_on(async {
        let fake = FakeIo::start().await?;
        fake.with(|s| {
            s.behaviour
                .profiles
                .insert(LAURA.to_owned(), Profile::NotOnIo);
            s.behaviour.script.push_back(429);
        });
        let io = IoConfig {
            poll_interval: std::time::Duration::from_millis(20),
            retry_base: std::time::Duration::from_millis(1),
            retry_max: std::time::Duration::from_millis(1),
            ..IoConfig::new(
                &fake.base_url(),
                vec![IoService {
                    creditor: MILANO.to_owned(),
                    kind: incasso_domain::debt_position::DebtKind::SchoolFee,
                    subscription_key: SERVICE_KEY.to_owned(),
                    enabled: true,
                    reminder_days: 7,
                }],
            )
        };
        let app = TestApp::spawn_with(engine, move |settings| settings.io = Some(io)).await?;
        let mut notices = app.notices().await?;
        notices
            .create_debt_position(requests::school_fee("io-logs-mario"))
            .await?;
        let mut laura = requests::school_fee("io-logs-laura");
        if let Some(debtor) = laura.debtor.as_mut() {
            debtor.fiscal_code = LAURA.to_owned();
            debtor.full_name = "Laura Bianchi".to_owned();
        }
        notices.create_debt_position(laura).await?;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while fake.with(|s| s.accepted.len()) < 1
            || fake.with(|s| s.statuses("/profiles").len()) < 3
        {
            anyhow::ensure!(
                std::time::Instant::now() < deadline,
                "IO messages not delivered"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        fake.with(|s| {
            s.behaviour.forbidden_keys.insert(SERVICE_KEY.to_owned());
        });
        notices
            .create_debt_position(requests::school_fee("io-logs-forbidden"))
            .await?;
        while app.store.outbox_dead("io.message").await?.is_empty() {
            anyhow::ensure!(std::time::Instant::now() < deadline, "no dead letter");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        let mut citizen = app.citizen_payments().await?;
        citizen
            .list_citizen_notices(pb::ListCitizenNoticesRequest {
                fiscal_code: "RSSMRA80A01F205X".to_owned(),
                ..Default::default()
            })
            .await?;
        let refused = citizen
            .list_citizen_notices(pb::ListCitizenNoticesRequest {
                fiscal_code: "RSSMRA80A01F205Y".to_owned(),
                ..Default::default()
            })
            .await;
        assert!(refused.is_err());
        app.stop().await?;
        anyhow::Ok(())
    })?;
    drop(runtime);
    let spans = format!("{:?}", captured.spans.lock().unwrap());
    let events = captured.events.lock().unwrap().join("\n");
    let json = String::from_utf8(captured.json.lock().unwrap().clone())?;
    assert!(events.contains("IO message sent"), "{events}");
    assert!(events.contains("not on IO"), "{events}");
    let everything = format!("{spans}\n{events}\n{json}");
    for personal in [
        "RSSMRA80A01F205X",
        "RSSMRA80A01F205Y",
        LAURA,
        "Mario Rossi",
        "Laura Bianchi",
    ] {
        assert!(
            !everything.contains(personal),
            "{personal} reached the logs:\n{everything}"
        );
    }
    Ok(())
}

#[test]
fn io_and_citizen_queries_never_log_the_citizen_sqlite() -> anyhow::Result<()> {
    io_and_citizen_queries_never_log_the_citizen(Engine::Sqlite)
}

#[test]
fn io_and_citizen_queries_never_log_the_citizen_postgres() -> anyhow::Result<()> {
    io_and_citizen_queries_never_log_the_citizen(Engine::Postgres)
}

/// Spans and log lines captured in-process, as the server's subscriber would receive them.
mod capture {
    use std::fmt::Debug;
    use std::sync::{Arc, Mutex};

    use tracing::field::{Field, Visit};
    use tracing::span::{Attributes, Id, Record};
    use tracing::{Event, Subscriber};
    use tracing_subscriber::layer::{Context, Layer};
    use tracing_subscriber::registry::LookupSpan;

    /// A closed span: its name and every field recorded on it.
    #[derive(Debug, Clone, Default)]
    pub struct SpanRecord {
        pub name: String,
        pub fields: Vec<(String, String)>,
    }

    impl SpanRecord {
        pub fn get(&self, name: &str) -> Option<&str> {
            self.fields
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
        }
    }

    /// Collects closed spans, every event, and whatever a JSON formatter writes.
    #[derive(Clone, Default)]
    pub struct Captured {
        pub spans: Arc<Mutex<Vec<SpanRecord>>>,
        pub events: Arc<Mutex<Vec<String>>>,
        pub json: Arc<Mutex<Vec<u8>>>,
    }

    impl Captured {
        /// Forgets everything captured so far.
        pub fn clear(&self) {
            self.spans.lock().unwrap().clear();
            self.events.lock().unwrap().clear();
            self.json.lock().unwrap().clear();
        }
    }

    struct Fields(Vec<(String, String)>);

    impl Visit for Fields {
        fn record_str(&mut self, field: &Field, value: &str) {
            self.0.push((field.name().to_owned(), value.to_owned()));
        }

        fn record_debug(&mut self, field: &Field, value: &dyn Debug) {
            self.0.push((field.name().to_owned(), format!("{value:?}")));
        }
    }

    impl<S> Layer<S> for Captured
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
            let mut fields = Fields(Vec::new());
            attrs.record(&mut fields);
            if let Some(span) = ctx.span(id) {
                span.extensions_mut().insert(SpanRecord {
                    name: attrs.metadata().name().to_owned(),
                    fields: fields.0,
                });
            }
        }

        fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
            let mut fields = Fields(Vec::new());
            values.record(&mut fields);
            if let Some(span) = ctx.span(id)
                && let Some(record) = span.extensions_mut().get_mut::<SpanRecord>()
            {
                record.fields.extend(fields.0);
            }
        }

        fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
            let mut fields = Fields(Vec::new());
            event.record(&mut fields);
            self.events.lock().unwrap().push(format!(
                "{} {}: {:?}",
                event.metadata().level(),
                event.metadata().target(),
                fields.0
            ));
        }

        fn on_close(&self, id: Id, ctx: Context<'_, S>) {
            if let Some(span) = ctx.span(&id)
                && let Some(record) = span.extensions_mut().remove::<SpanRecord>()
            {
                self.spans.lock().unwrap().push(record);
            }
        }
    }

    /// The JSON formatter's writer.
    pub struct Writer(pub Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Writer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
}
