//! Configuration: an optional TOML file, overridden by environment variables and flags.
//! With no file at all incasso serves the Comune di Milano with a sample segregation code and
//! knows the Città Metropolitana di Milano as a secondary beneficiary (TEFA), each with a
//! sample bank IBAN and a sample Poste IBAN, so `incasso serve` works on a fresh machine.
//! The sample accounts, segregation code and keys are for trying incasso out only.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;

use serde::Deserialize;

use incasso_domain::creditor::{Creditor, CreditorRegistry};
use incasso_domain::fiscal_code::OrganizationFiscalCode;
use incasso_domain::iban::Iban;
use incasso_domain::notice_number::SegregationCode;
use incasso_fdr::FdrConfig;
use incasso_node::service::StationConfig;
use incasso_recovery::RecoveryConfig;
use incasso_relay::aca::AcaConfig;
use incasso_relay::fascicolo::FascicoloConfig;
use incasso_store::receipts::writer::ReceiptWriterConfig;
use incasso_store::reconciliation::TreasuryAccounts;
use incasso_store::{IuvFloors, PrivacyKeys};

/// The default SQLite database, created in the working directory.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://incasso.db?mode=rwc";
/// The default gRPC address.
pub const DEFAULT_GRPC_LISTEN: &str = "127.0.0.1:50051";
/// The default address of the paForNode SOAP endpoint.
pub const DEFAULT_SOAP_LISTEN: &str = "127.0.0.1:8080";
/// The default address of the admin listener (`/livez`, `/readyz`, `/metrics`): loopback
/// only, so a developer's machine exposes nothing; the Helm chart listens on every address.
pub const DEFAULT_ADMIN_LISTEN: &str = "127.0.0.1:9090";
/// How often the gRPC health status is brought in line with the readiness check.
pub const DEFAULT_READINESS_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);
/// The sample segregation code of the default configuration. PagoPA assigns the real one.
pub const SAMPLE_SEGREGATION_CODE: &str = "12";

/// Why the configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read configuration file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML for incasso.
    #[error("invalid configuration file {path}: {message}")]
    Parse {
        /// The file.
        path: String,
        /// The parser's message, with line and column.
        message: String,
    },
    /// A value is invalid.
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

/// A creditor as configured.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreditorConfig {
    /// 11-digit fiscal code.
    pub fiscal_code: String,
    /// Name (companyName).
    pub name: String,
    /// Two digits; only for creditors incasso issues notices for.
    pub segregation_code: Option<String>,
    /// The first IUV base incasso may issue (above any number an earlier system issued with
    /// the same segregation code). Default 1.
    pub first_iuv_base: Option<i64>,
    /// Registered bank IBANs; the first is the default account.
    pub bank_ibans: Vec<String>,
    /// Registered Poste Italiane IBANs.
    #[serde(default)]
    pub postal_ibans: Vec<String>,
    /// The stations (of `node.station_ids`) that serve this creditor, as registered on the
    /// PagoPA Back Office. Default: every station.
    pub stations: Option<Vec<String>>,
    /// The treasury accounts whose camt statements reconciliation imports for this creditor.
    #[serde(default)]
    pub treasury_ibans: Vec<String>,
    /// The OPI entity code (`codice_ente`) of this creditor's giornale di cassa.
    #[serde(default)]
    pub opi_entity_code: Option<String>,
}

/// incasso's identity on the PagoPA Node.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// idBrokerPA: the intermediary's fiscal code. Default: the first issuing creditor's.
    pub broker_id: Option<String>,
    /// idStation values. Default: `<broker>_01`.
    pub station_ids: Option<Vec<String>>,
    /// Largest SOAP message accepted, bytes. Default 1 MiB.
    pub body_limit_bytes: Option<usize>,
    /// The subscription keys the Comune's gateway passes on (`Ocp-Apim-Subscription-Key`);
    /// set, a paForNode call without one of them is refused. Better from the environment:
    /// `INCASSO_NODE_SUBSCRIPTION_KEYS`, comma-separated.
    #[serde(default)]
    pub subscription_keys: Vec<String>,
}

/// The Stand-In archive (ACA) relay.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AcaFileConfig {
    /// e.g. `https://api.platform.pagopa.it/aca/v1`; without it the relay does not run and
    /// events wait in the outbox.
    pub base_url: Option<String>,
    /// The API Management subscription key.
    pub subscription_key: Option<String>,
}

/// The Fascicolo del Cittadino push.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FascicoloFileConfig {
    /// The Fascicolo's gRPC endpoint, e.g. `http://127.0.0.1:7000`; without it no citizen
    /// events are queued and the relay does not run.
    pub url: Option<String>,
    /// Longest retry delay after a failure, seconds (default 30: the relay resumes within
    /// 45 s of the Fascicolo answering again).
    pub retry_max_seconds: Option<u64>,
    /// Events per PushEvents call, 1..=500 (default 500).
    pub batch: Option<u64>,
    /// Calls in flight at once per replica (default 2).
    pub workers: Option<usize>,
}

/// The FdR REST poller.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FdrFileConfig {
    /// The FdR organization API, e.g. `https://api.platform.pagopa.it/fdr-org/service/v1`;
    /// without it `incasso serve` does not poll and `incasso recon fdr-sync` refuses to run.
    pub url: Option<String>,
    /// The API Management subscription key (`Ocp-Apim-Subscription-Key`).
    pub subscription_key: Option<String>,
    /// Pause between polls of `incasso serve`, seconds (default 600).
    pub poll_interval_seconds: Option<u64>,
    /// Flows and payments asked per page, 1..=1000 (default 1000, the API's maximum).
    pub page_size: Option<u32>,
    /// A listed flow still not imported this many days after its publication is warned
    /// about (default 25; the API keeps flows 30 days).
    pub warn_after_days: Option<u64>,
}

/// The recovery of missing receipts from PagoPA's biz-events API.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BizEventsFileConfig {
    /// The biz-events API, e.g. `https://api.platform.pagopa.it/bizevents/service/v1`;
    /// without it `incasso serve` recovers nothing and `incasso recon recover` refuses to run.
    pub url: Option<String>,
    /// The API Management subscription key (`Ocp-Apim-Subscription-Key`).
    pub subscription_key: Option<String>,
    /// Pause between recovery passes of `incasso serve`, seconds (default 3600).
    pub interval_seconds: Option<u64>,
    /// The most receipts asked for in one pass, 1..=100 (default 10: the API allows a
    /// subscription 10 calls an hour).
    pub calls_per_pass: Option<u32>,
    /// The pause before a receipt not found (or not given) is asked again, hours; doubled
    /// after each attempt up to `retry_max_hours` (default 6).
    pub retry_after_hours: Option<u64>,
    /// The longest pause between attempts of one receipt, hours (default 48).
    pub retry_max_hours: Option<u64>,
}

/// How receipts are booked.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReceiptsFileConfig {
    /// The most receipts one group commit books (default 64, 1 books each alone).
    pub batch_max: Option<usize>,
    /// How many writers book batches concurrently (default 2 on PostgreSQL; SQLite has one
    /// writer whatever this says).
    pub writers: Option<usize>,
    /// Microseconds a busy writer waits for more receipts before booking a batch that is not
    /// full (default 0: books what is queued at once).
    pub linger_us: Option<u64>,
    /// How often parked receipts whose next attempt is due are retried (default 5 seconds).
    pub parked_retry_interval_seconds: Option<u64>,
}

/// How reconciliation imports relabel.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReconciliationFileConfig {
    /// IUVs relabelled together, 1..=10,000 (default 2,500): an import holds one slice's
    /// receipts, flow lines and labels in memory at a time, so a smaller slice lowers its
    /// peak at the cost of more statements.
    pub iuvs_per_slice: Option<usize>,
    /// How often the receipts booked since the last import are labelled (default 60
    /// seconds). Reads label them anyway before answering; this keeps the queue short, so
    /// no read waits on a long catch-up, and the `reported` postings current.
    pub catch_up_interval_seconds: Option<u64>,
    /// A flow's import leaves the labels of its plain keys (one receipt, one line of its
    /// amount, no credit naming the IUV) as their receipts left them, and every read composes
    /// them with their flow (default false). Halves what a flow's import writes. Turn it on
    /// only once no replica of a release before the one that reads such keys serves: an
    /// older one would read them as `RT_NO_IUF` (docs/operations.md, Migrations).
    pub plain_keys_composed: Option<bool>,
}

/// Keys protecting personal data, hex-encoded.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrivacyConfig {
    /// Names the encryption key (stored with every ciphertext).
    pub key_id: Option<String>,
    /// 32 bytes, 64 hex digits.
    pub encryption_key_hex: Option<String>,
    /// At least 16 bytes, hex.
    pub fiscal_code_pepper_hex: Option<String>,
}

/// The configuration file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Database URL.
    pub database_url: Option<String>,
    /// PostgreSQL pool size.
    pub database_max_connections: Option<u32>,
    /// gRPC listen address.
    pub grpc_listen: Option<String>,
    /// How long a shutdown waits for calls in flight before closing connections (default 20).
    pub shutdown_grace_seconds: Option<u64>,
    /// paForNode SOAP listen address.
    pub soap_listen: Option<String>,
    /// Admin listen address: `/livez`, `/readyz`, `/metrics` (default 127.0.0.1:9090).
    pub admin_listen: Option<String>,
    /// Whether `/readyz` and gRPC health stay ready on a schema a newer release migrated
    /// (default false: only the binary's own schema is ready). The Helm chart turns it on.
    pub ready_on_newer_schema: Option<bool>,
    /// The PagoPA Node side.
    #[serde(default)]
    pub node: NodeConfig,
    /// The Stand-In archive relay.
    #[serde(default)]
    pub aca: AcaFileConfig,
    /// Receipt booking.
    #[serde(default)]
    pub receipts: ReceiptsFileConfig,
    /// The Fascicolo del Cittadino push.
    #[serde(default)]
    pub fascicolo: FascicoloFileConfig,
    /// Personal-data keys.
    #[serde(default)]
    pub privacy: PrivacyConfig,
    /// Creditors; when absent, the sample Milan configuration.
    pub creditors: Option<Vec<CreditorConfig>>,
    /// App IO messages.
    #[serde(default)]
    pub io: crate::io_config::IoFileConfig,
    /// The FdR REST poller.
    #[serde(default)]
    pub fdr: FdrFileConfig,
    /// Missing receipts recovered from biz-events.
    #[serde(default)]
    pub biz_events: BizEventsFileConfig,
    /// Reconciliation imports.
    #[serde(default)]
    pub reconciliation: ReconciliationFileConfig,
    /// TLS on the gRPC and SOAP listeners; without it they serve plaintext.
    pub tls: Option<crate::tls_config::TlsFileConfig>,
    /// Client identities and what each may do (needs `tls.client_ca`).
    #[serde(default)]
    pub clients: Vec<crate::tls_config::ClientFileConfig>,
    /// TLS of the outbound clients (ACA, IO, Fascicolo, FdR, biz-events).
    #[serde(default)]
    pub outbound_tls: crate::tls_config::OutboundTlsFileConfig,
    /// The folder of the configuration file, which relative paths start from; the working
    /// directory without a file.
    #[serde(skip)]
    pub base_dir: Option<std::path::PathBuf>,
}

impl FileConfig {
    /// Reads and parses a configuration file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let mut config: Self = toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        config.base_dir = path.parent().map(Path::to_owned);
        Ok(config)
    }
}

/// The sample creditors served when no configuration file names any.
pub fn sample_creditors() -> Vec<CreditorConfig> {
    vec![
        CreditorConfig {
            fiscal_code: "01199250158".to_owned(),
            name: "Comune di Milano".to_owned(),
            segregation_code: Some(SAMPLE_SEGREGATION_CODE.to_owned()),
            first_iuv_base: None,
            bank_ibans: vec![SAMPLE_MILANO_BANK_IBAN.to_owned()],
            postal_ibans: vec![SAMPLE_MILANO_POSTE_IBAN.to_owned()],
            stations: None,
            treasury_ibans: vec![SAMPLE_MILANO_BANK_IBAN.to_owned()],
            opi_entity_code: None,
        },
        CreditorConfig {
            fiscal_code: "08911820960".to_owned(),
            name: "Città Metropolitana di Milano".to_owned(),
            segregation_code: None,
            first_iuv_base: None,
            bank_ibans: vec![SAMPLE_CITTA_METROPOLITANA_BANK_IBAN.to_owned()],
            postal_ibans: vec![SAMPLE_CITTA_METROPOLITANA_POSTE_IBAN.to_owned()],
            stations: None,
            treasury_ibans: Vec::new(),
            opi_entity_code: None,
        },
    ]
}

/// Sample bank account of the Comune di Milano (made up; valid check digits).
pub const SAMPLE_MILANO_BANK_IBAN: &str = "IT02N0306909400000012345678";
/// Sample Poste account of the Comune di Milano (made up; valid check digits).
pub const SAMPLE_MILANO_POSTE_IBAN: &str = "IT22L0760101600000012345678";
/// Sample bank account of the Città Metropolitana di Milano (made up; valid check digits).
pub const SAMPLE_CITTA_METROPOLITANA_BANK_IBAN: &str = "IT66Q0503401633000000098765";
/// Sample Poste account of the Città Metropolitana di Milano (made up; valid check digits).
pub const SAMPLE_CITTA_METROPOLITANA_POSTE_IBAN: &str = "IT92G0760101600000098765432";

/// Everything incasso needs to run, resolved and validated.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Database URL.
    pub database_url: String,
    /// PostgreSQL pool size.
    pub database_max_connections: u32,
    /// gRPC listen address (port 0 picks a free port).
    pub grpc_listen: SocketAddr,
    /// The creditors.
    pub registry: CreditorRegistry,
    /// First IUV bases.
    pub iuv_floors: IuvFloors,
    /// Personal-data keys.
    pub keys: PrivacyKeys,
    /// True when the publicly known development keys are in use.
    pub development_keys: bool,
    /// How long a shutdown waits for calls in flight.
    pub shutdown_grace: std::time::Duration,
    /// paForNode SOAP listen address.
    pub soap_listen: SocketAddr,
    /// Admin listen address (`/livez`, `/readyz`, `/metrics`).
    pub admin_listen: SocketAddr,
    /// How often gRPC health is brought in line with the readiness check.
    pub readiness_interval: std::time::Duration,
    /// Ready on a schema a newer release migrated.
    pub ready_on_newer_schema: bool,
    /// incasso's identity on the Node.
    pub station: StationConfig,
    /// Largest SOAP message accepted, bytes.
    pub soap_body_limit_bytes: usize,
    /// The subscription keys a paForNode call must carry one of; empty: none asked.
    pub soap_subscription_keys: Vec<String>,
    /// The Stand-In archive relay, when configured.
    pub aca: Option<AcaConfig>,
    /// The Fascicolo del Cittadino push, when configured.
    pub fascicolo: Option<FascicoloConfig>,
    /// Group commit of receipts.
    pub receipt_writer: ReceiptWriterConfig,
    /// How often due parked receipts are retried.
    pub parked_retry_interval: std::time::Duration,
    /// App IO messages, when a URL is configured.
    pub io: Option<incasso_relay::app_io::IoConfig>,
    /// The creditors' treasury accounts, for reconciliation imports.
    pub treasury_accounts: TreasuryAccounts,
    /// The FdR REST poller, when a URL is configured.
    pub fdr: Option<FdrConfig>,
    /// The recovery of missing receipts from biz-events, when a URL is configured.
    pub biz_events: Option<RecoveryConfig>,
    /// TLS on the gRPC and SOAP listeners; `None` serves plaintext.
    pub tls: Option<crate::tls::TlsSettings>,
    /// Who may call which RPC.
    pub access: incasso_grpc::access::AccessPolicy,
    /// Serve plaintext on an address other than loopback (`--insecure`).
    pub insecure: bool,
    /// IUVs reconciliation relabels together (`[reconciliation] iuvs_per_slice`); `None`: the
    /// store's default (2,500; at most 10,000, the most one statement lists).
    pub recon_iuvs_per_slice: Option<usize>,
    /// Imports leave plain keys' labels unwritten (`[reconciliation] plain_keys_composed`).
    pub recon_plain_keys_composed: bool,
    /// How often receipts booked since the last import are labelled
    /// (`[reconciliation] catch_up_interval_seconds`).
    pub recon_catch_up_interval: std::time::Duration,
}

/// Values given on the command line or in the environment; they win over the file.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--database-url` / `INCASSO_DATABASE_URL`.
    pub database_url: Option<String>,
    /// `--grpc-listen` / `INCASSO_GRPC_LISTEN`.
    pub grpc_listen: Option<String>,
    /// `INCASSO_ENCRYPTION_KEY_HEX`.
    pub encryption_key_hex: Option<String>,
    /// `INCASSO_FISCAL_CODE_PEPPER_HEX`.
    pub fiscal_code_pepper_hex: Option<String>,
    /// `INCASSO_SHUTDOWN_GRACE_SECONDS`.
    pub shutdown_grace_seconds: Option<u64>,
    /// `--soap-listen` / `INCASSO_SOAP_LISTEN`.
    pub soap_listen: Option<String>,
    /// `--admin-listen` / `INCASSO_ADMIN_LISTEN`.
    pub admin_listen: Option<String>,
    /// `INCASSO_ACA_URL`.
    pub aca_url: Option<String>,
    /// `INCASSO_ACA_SUBSCRIPTION_KEY`.
    pub aca_subscription_key: Option<String>,
    /// `INCASSO_IO_URL`.
    pub io_url: Option<String>,
    /// `INCASSO_FASCICOLO_URL`.
    pub fascicolo_url: Option<String>,
    /// `INCASSO_FDR_URL`.
    pub fdr_url: Option<String>,
    /// `INCASSO_FDR_SUBSCRIPTION_KEY`.
    pub fdr_subscription_key: Option<String>,
    /// `INCASSO_BIZ_EVENTS_URL`.
    pub biz_events_url: Option<String>,
    /// `INCASSO_BIZ_EVENTS_SUBSCRIPTION_KEY`.
    pub biz_events_subscription_key: Option<String>,
    /// `--insecure` / `INCASSO_INSECURE`: plaintext on a non-loopback address.
    pub insecure: bool,
    /// `INCASSO_NODE_SUBSCRIPTION_KEYS`, comma-separated.
    pub node_subscription_keys: Option<String>,
}

impl Settings {
    /// Resolves the settings from an optional file and the overrides.
    pub fn resolve(file: FileConfig, overrides: Overrides) -> Result<Self, ConfigError> {
        let database_url = overrides
            .database_url
            .or(file.database_url)
            .unwrap_or_else(|| DEFAULT_DATABASE_URL.to_owned());
        let grpc_listen = overrides
            .grpc_listen
            .or(file.grpc_listen)
            .unwrap_or_else(|| DEFAULT_GRPC_LISTEN.to_owned());
        let grpc_listen: SocketAddr = grpc_listen.parse().map_err(|_| {
            ConfigError::Invalid(format!(
                "grpc_listen: '{grpc_listen}' is not an address like 127.0.0.1:50051"
            ))
        })?;
        let soap_listen = overrides
            .soap_listen
            .or(file.soap_listen)
            .unwrap_or_else(|| DEFAULT_SOAP_LISTEN.to_owned());
        let soap_listen: SocketAddr = soap_listen.parse().map_err(|_| {
            ConfigError::Invalid(format!(
                "soap_listen: '{soap_listen}' is not an address like 127.0.0.1:8080"
            ))
        })?;
        let admin_listen = overrides
            .admin_listen
            .or(file.admin_listen)
            .unwrap_or_else(|| DEFAULT_ADMIN_LISTEN.to_owned());
        let admin_listen: SocketAddr = admin_listen.parse().map_err(|_| {
            ConfigError::Invalid(format!(
                "admin_listen: '{admin_listen}' is not an address like 127.0.0.1:9090"
            ))
        })?;
        let creditors = file.creditors.unwrap_or_else(sample_creditors);
        let (registry, iuv_floors) = registry(&creditors)?;
        let tls = crate::tls_config::tls_settings(file.tls.as_ref(), file.base_dir.as_deref())?;
        let access = crate::tls_config::access_policy(&file.clients, tls.as_ref(), &registry)?;
        let outbound_tls =
            crate::tls_config::outbound_tls(&file.outbound_tls, file.base_dir.as_deref())?;
        let mut io = crate::io_config::resolve(file.io, overrides.io_url, &registry)?;
        if let Some(io) = &mut io {
            io.tls = outbound_tls.clone();
        }
        let treasury_accounts = treasury_accounts(&creditors)?;
        let creditor_ids: Vec<String> = registry
            .iter()
            .filter(|c| c.segregation_code().is_some())
            .map(|c| c.fiscal_code().as_str().to_owned())
            .collect();
        let broker_id = file
            .node
            .broker_id
            .clone()
            .or_else(|| creditor_ids.first().cloned())
            .unwrap_or_default();
        let station_ids = file
            .node
            .station_ids
            .clone()
            .unwrap_or_else(|| vec![format!("{broker_id}_01")]);
        if station_ids.is_empty() || station_ids.iter().any(|s| s.is_empty() || s.len() > 35) {
            return Err(ConfigError::Invalid(
                "node.station_ids: 1..35 characters each, at least one".into(),
            ));
        }
        let beneficiary_ids = registry
            .iter()
            .filter(|c| c.segregation_code().is_none())
            .map(|c| c.fiscal_code().as_str().to_owned())
            .collect();
        let creditor_stations = creditor_stations(&creditors, &station_ids)?;
        let station = StationConfig {
            broker_id,
            station_ids,
            creditor_ids,
            beneficiary_ids,
            creditor_stations,
        };
        let key_hex = overrides
            .encryption_key_hex
            .or(file.privacy.encryption_key_hex);
        let pepper_hex = overrides
            .fiscal_code_pepper_hex
            .or(file.privacy.fiscal_code_pepper_hex);
        let (keys, development_keys) = match (key_hex, pepper_hex) {
            (None, None) => (PrivacyKeys::development(), true),
            (Some(key), Some(pepper)) => {
                let key = hex_bytes("privacy.encryption_key_hex", &key)?;
                let pepper = hex_bytes("privacy.fiscal_code_pepper_hex", &pepper)?;
                let key_id = file.privacy.key_id.unwrap_or_else(|| "k1".to_owned());
                let keys = PrivacyKeys::new(&key_id, &key, &pepper)
                    .map_err(|e| ConfigError::Invalid(format!("privacy: {e}")))?;
                (keys, false)
            }
            _ => {
                return Err(ConfigError::Invalid(
                    "privacy: give both encryption_key_hex and fiscal_code_pepper_hex, or neither"
                        .into(),
                ));
            }
        };
        let max_slice = incasso_store::MAX_RECONCILIATION_SLICE;
        let recon_iuvs_per_slice = match file.reconciliation.iuvs_per_slice {
            Some(n) if !(1..=max_slice).contains(&n) => {
                return Err(ConfigError::Invalid(format!(
                    "reconciliation.iuvs_per_slice: between 1 and {max_slice}, not {n}"
                )));
            }
            other => other,
        };
        let recon_catch_up_interval = match file.reconciliation.catch_up_interval_seconds {
            Some(0) => {
                return Err(ConfigError::Invalid(
                    "reconciliation.catch_up_interval_seconds: must be at least 1".into(),
                ));
            }
            seconds => std::time::Duration::from_secs(seconds.unwrap_or(60)),
        };
        let receipt_writer = ReceiptWriterConfig {
            max_batch: match file.receipts.batch_max {
                Some(0) => {
                    return Err(ConfigError::Invalid(
                        "receipts.batch_max: must be at least 1".into(),
                    ));
                }
                Some(n) => n.min(1000),
                None => 64,
            },
            writers: if database_url.starts_with("sqlite:") {
                1
            } else {
                match file.receipts.writers {
                    Some(0) => {
                        return Err(ConfigError::Invalid(
                            "receipts.writers: must be at least 1".into(),
                        ));
                    }
                    Some(n) => n.min(16),
                    None => 2,
                }
            },
            linger: match file.receipts.linger_us {
                // Past 50 ms a receipt's answer waits more than a batch saves.
                Some(n) if n > 50_000 => {
                    return Err(ConfigError::Invalid(
                        "receipts.linger_us: at most 50000 (50 ms)".into(),
                    ));
                }
                Some(n) => std::time::Duration::from_micros(n),
                None => std::time::Duration::ZERO,
            },
        };
        Ok(Self {
            database_url,
            database_max_connections: file.database_max_connections.unwrap_or(16),
            grpc_listen,
            registry,
            iuv_floors,
            keys,
            development_keys,
            shutdown_grace: std::time::Duration::from_secs(
                overrides
                    .shutdown_grace_seconds
                    .or(file.shutdown_grace_seconds)
                    .unwrap_or(20),
            ),
            soap_listen,
            admin_listen,
            readiness_interval: DEFAULT_READINESS_INTERVAL,
            ready_on_newer_schema: file.ready_on_newer_schema.unwrap_or(false),
            station,
            soap_body_limit_bytes: file.node.body_limit_bytes.unwrap_or(1024 * 1024),
            soap_subscription_keys: match overrides.node_subscription_keys {
                Some(keys) => keys.split(',').map(str::to_owned).collect(),
                None => file.node.subscription_keys.clone(),
            }
            .into_iter()
            .map(|k| k.trim().to_owned())
            .filter(|k| !k.is_empty())
            .collect(),
            aca: overrides
                .aca_url
                .or(file.aca.base_url)
                .map(|url| AcaConfig {
                    tls: outbound_tls.clone(),
                    ..AcaConfig::new(
                        &url,
                        overrides.aca_subscription_key.or(file.aca.subscription_key),
                    )
                }),
            fascicolo: fascicolo_config(overrides.fascicolo_url, &file.fascicolo)?.map(|c| {
                FascicoloConfig {
                    tls: outbound_tls.clone(),
                    ..c
                }
            }),
            receipt_writer,
            parked_retry_interval: std::time::Duration::from_secs(
                file.receipts
                    .parked_retry_interval_seconds
                    .unwrap_or(5)
                    .max(1),
            ),
            io,
            treasury_accounts,
            fdr: fdr_config(overrides.fdr_url, overrides.fdr_subscription_key, &file.fdr)?.map(
                |mut c| {
                    c.client.tls = outbound_tls.clone();
                    c
                },
            ),
            biz_events: biz_events_config(
                overrides.biz_events_url,
                overrides.biz_events_subscription_key,
                &file.biz_events,
            )?
            .map(|mut c| {
                c.client.tls = outbound_tls.clone();
                c
            }),
            tls,
            access,
            insecure: overrides.insecure,
            recon_iuvs_per_slice,
            recon_plain_keys_composed: file.reconciliation.plain_keys_composed.unwrap_or(false),
            recon_catch_up_interval,
        })
    }
}

/// The FdR poller's settings: none without a URL.
fn fdr_config(
    url: Option<String>,
    subscription_key: Option<String>,
    file: &FdrFileConfig,
) -> Result<Option<FdrConfig>, ConfigError> {
    let Some(url) = url
        .or_else(|| file.url.clone())
        .filter(|u| !u.trim().is_empty())
    else {
        return Ok(None);
    };
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(ConfigError::Invalid(
            "fdr.url: expected an http:// or https:// URL".into(),
        ));
    }
    let key = subscription_key
        .or_else(|| file.subscription_key.clone())
        .filter(|k| !k.trim().is_empty());
    let mut config = FdrConfig::new(&url, key);
    if let Some(seconds) = file.poll_interval_seconds {
        if seconds == 0 {
            return Err(ConfigError::Invalid(
                "fdr.poll_interval_seconds: expected at least 1".into(),
            ));
        }
        config.poll_interval = std::time::Duration::from_secs(seconds);
    }
    if let Some(size) = file.page_size {
        if !(1..=1000).contains(&size) {
            return Err(ConfigError::Invalid(
                "fdr.page_size: expected 1..=1000 (the API's limits)".into(),
            ));
        }
        config.page_size = size;
    }
    if let Some(days) = file.warn_after_days {
        if !(1..=29).contains(&days) {
            return Err(ConfigError::Invalid(
                "fdr.warn_after_days: expected 1..=29 (the API keeps flows 30 days)".into(),
            ));
        }
        config.stale_after = std::time::Duration::from_secs(days * 86_400);
    }
    Ok(Some(config))
}

/// The recovery's settings: none without a URL.
fn biz_events_config(
    url: Option<String>,
    subscription_key: Option<String>,
    file: &BizEventsFileConfig,
) -> Result<Option<RecoveryConfig>, ConfigError> {
    let Some(url) = url
        .or_else(|| file.url.clone())
        .filter(|u| !u.trim().is_empty())
    else {
        return Ok(None);
    };
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(ConfigError::Invalid(
            "biz_events.url: expected an http:// or https:// URL".into(),
        ));
    }
    let key = subscription_key
        .or_else(|| file.subscription_key.clone())
        .filter(|k| !k.trim().is_empty());
    let mut config = RecoveryConfig::new(&url, key);
    if let Some(seconds) = file.interval_seconds {
        if seconds == 0 {
            return Err(ConfigError::Invalid(
                "biz_events.interval_seconds: expected at least 1".into(),
            ));
        }
        config.interval = std::time::Duration::from_secs(seconds);
    }
    if let Some(calls) = file.calls_per_pass {
        if !(1..=100).contains(&calls) {
            return Err(ConfigError::Invalid(
                "biz_events.calls_per_pass: expected 1..=100 (the API allows 10 calls an hour)"
                    .into(),
            ));
        }
        config.calls_per_pass = calls;
    }
    let hours = |value: Option<u64>, field: &str, default: std::time::Duration| match value {
        None => Ok(default),
        Some(h) if (1..=24 * 30).contains(&h) => Ok(std::time::Duration::from_secs(h * 3600)),
        Some(_) => Err(ConfigError::Invalid(format!(
            "biz_events.{field}: expected 1..=720 hours"
        ))),
    };
    config.retry_after = hours(
        file.retry_after_hours,
        "retry_after_hours",
        config.retry_after,
    )?;
    config.retry_max = hours(file.retry_max_hours, "retry_max_hours", config.retry_max)?;
    if config.retry_max < config.retry_after {
        return Err(ConfigError::Invalid(
            "biz_events.retry_max_hours: expected at least retry_after_hours".into(),
        ));
    }
    Ok(Some(config))
}

/// The Fascicolo push's settings: none without a URL; the batch must fit the contract.
fn fascicolo_config(
    url: Option<String>,
    file: &FascicoloFileConfig,
) -> Result<Option<FascicoloConfig>, ConfigError> {
    let Some(url) = url
        .or_else(|| file.url.clone())
        .filter(|u| !u.trim().is_empty())
    else {
        return Ok(None);
    };
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(ConfigError::Invalid(
            "fascicolo.url: expected an http:// or https:// URL".into(),
        ));
    }
    let mut config = FascicoloConfig::new(url.trim());
    if let Some(batch) = file.batch {
        if !(1..=incasso_relay::fascicolo::MAX_BATCH).contains(&batch) {
            return Err(ConfigError::Invalid(format!(
                "fascicolo.batch: expected 1..={} events per call",
                incasso_relay::fascicolo::MAX_BATCH
            )));
        }
        config.batch = batch;
    }
    if let Some(seconds) = file.retry_max_seconds {
        if seconds == 0 {
            return Err(ConfigError::Invalid(
                "fascicolo.retry_max_seconds: expected at least 1".into(),
            ));
        }
        config.retry_max = std::time::Duration::from_secs(seconds);
        config.retry_base = config.retry_base.min(config.retry_max);
    }
    if let Some(workers) = file.workers {
        config.workers = workers.clamp(1, 16);
    }
    Ok(Some(config))
}

fn hex_bytes(field: &str, value: &str) -> Result<Vec<u8>, ConfigError> {
    hex::decode(value.trim())
        .map_err(|e| ConfigError::Invalid(format!("{field}: expected hexadecimal digits ({e})")))
}

/// The station lists of the creditors that have one, each station checked against
/// `node.station_ids`: a station the Node would never call through is a mistake in the
/// configuration, not a creditor nobody can reach.
fn creditor_stations(
    creditors: &[CreditorConfig],
    station_ids: &[String],
) -> Result<BTreeMap<String, Vec<String>>, ConfigError> {
    let mut lists = BTreeMap::new();
    for (i, c) in creditors.iter().enumerate() {
        let Some(stations) = &c.stations else {
            continue;
        };
        if stations.is_empty() {
            return Err(ConfigError::Invalid(format!(
                "creditors[{i}].stations: name at least one station, or leave the key out to \
                 have the creditor served by every station of node.station_ids"
            )));
        }
        let mut list: Vec<String> = Vec::with_capacity(stations.len());
        for station in stations {
            let station = station.trim();
            if !station_ids.iter().any(|s| s == station) {
                return Err(ConfigError::Invalid(format!(
                    "creditors[{i}].stations: '{station}' is not one of node.station_ids ({})",
                    station_ids.join(", ")
                )));
            }
            if !list.iter().any(|s| s == station) {
                list.push(station.to_owned());
            }
        }
        lists.insert(c.fiscal_code.trim().to_owned(), list);
    }
    Ok(lists)
}

fn treasury_accounts(creditors: &[CreditorConfig]) -> Result<TreasuryAccounts, ConfigError> {
    let mut accounts = TreasuryAccounts::new();
    for (i, c) in creditors.iter().enumerate() {
        let fiscal_code = c.fiscal_code.trim();
        for iban in &c.treasury_ibans {
            Iban::parse(iban).map_err(|e| {
                ConfigError::Invalid(format!("creditors[{i}].treasury_ibans: {iban}: {e}"))
            })?;
            accounts
                .add_iban(fiscal_code, iban)
                .map_err(|e| ConfigError::Invalid(format!("creditors[{i}].treasury_ibans: {e}")))?;
        }
        if let Some(code) = &c.opi_entity_code {
            accounts
                .add_opi_code(fiscal_code, code.trim())
                .map_err(|e| {
                    ConfigError::Invalid(format!("creditors[{i}].opi_entity_code: {e}"))
                })?;
        }
    }
    Ok(accounts)
}

fn registry(creditors: &[CreditorConfig]) -> Result<(CreditorRegistry, IuvFloors), ConfigError> {
    let mut entries = Vec::with_capacity(creditors.len());
    let mut floors = IuvFloors::default();
    for (i, c) in creditors.iter().enumerate() {
        let at = |field: &str| format!("creditors[{i}].{field}");
        let fiscal_code = OrganizationFiscalCode::parse(c.fiscal_code.trim())
            .map_err(|e| ConfigError::Invalid(format!("{}: {e}", at("fiscal_code"))))?;
        let segregation_code = c
            .segregation_code
            .as_deref()
            .map(|s| SegregationCode::parse(s.trim()))
            .transpose()
            .map_err(|e| ConfigError::Invalid(format!("{}: {e}", at("segregation_code"))))?;
        let ibans = |field: &str, values: &[String]| {
            values
                .iter()
                .map(|v| {
                    Iban::parse(v)
                        .map_err(|e| ConfigError::Invalid(format!("{}: {v}: {e}", at(field))))
                })
                .collect::<Result<Vec<_>, _>>()
        };
        let bank = ibans("bank_ibans", &c.bank_ibans)?;
        let postal = ibans("postal_ibans", &c.postal_ibans)?;
        if let Some(floor) = c.first_iuv_base {
            if !(1..incasso_store::sequence::BASE_LIMIT).contains(&floor) {
                return Err(ConfigError::Invalid(format!(
                    "{}: must be 1..=9999999999999",
                    at("first_iuv_base")
                )));
            }
            floors.floors.push((fiscal_code.as_str().to_owned(), floor));
        }
        let creditor = Creditor::new(fiscal_code, &c.name, segregation_code, bank, postal)
            .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        entries.push(creditor);
    }
    let registry =
        CreditorRegistry::new(entries).map_err(|e| ConfigError::Invalid(e.to_string()))?;
    if registry.iter().all(|c| c.segregation_code().is_none()) {
        return Err(ConfigError::Invalid(
            "creditors: at least one creditor needs a segregation_code (incasso issues its notices)".into(),
        ));
    }
    Ok((registry, floors))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_configuration_serves_milan() {
        let settings = Settings::resolve(FileConfig::default(), Overrides::default()).unwrap();
        let milan = settings.registry.issuer("01199250158").unwrap();
        assert_eq!(milan.segregation_code().unwrap().get(), 12);
        assert!(milan.default_postal_iban().unwrap().is_poste());
        let cm = settings.registry.get("08911820960").unwrap();
        assert!(cm.segregation_code().is_none());
        assert!(cm.default_postal_iban().unwrap().is_poste());
        assert!(!cm.default_bank_iban().is_poste());
        assert_eq!(settings.database_url, DEFAULT_DATABASE_URL);
        assert_eq!(settings.grpc_listen.to_string(), DEFAULT_GRPC_LISTEN);
        assert!(settings.development_keys);
        assert_eq!(settings.soap_listen.to_string(), DEFAULT_SOAP_LISTEN);
        assert_eq!(settings.station.broker_id, "01199250158");
        assert_eq!(settings.station.station_ids, ["01199250158_01"]);
        assert_eq!(settings.station.creditor_ids, ["01199250158"]);
        assert_eq!(settings.station.beneficiary_ids, ["08911820960"]);
        assert!(settings.station.creditor_stations.is_empty());
        assert!(settings.station.serves("01199250158", "01199250158_01"));
        assert_eq!(settings.soap_body_limit_bytes, 1024 * 1024);
    }

    #[test]
    fn overrides_win_over_the_file() {
        let file: FileConfig = toml::from_str(
            r#"
            database_url = "postgres://file"
            grpc_listen = "0.0.0.0:1"
            "#,
        )
        .unwrap();
        let settings = Settings::resolve(
            file,
            Overrides {
                database_url: Some("postgres://flag".into()),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(settings.database_url, "postgres://flag");
        assert_eq!(settings.grpc_listen.to_string(), "0.0.0.0:1");
    }

    #[test]
    fn the_reconciliation_slice_is_read_and_bounded() {
        let resolve = |text: &str| {
            let file: FileConfig = toml::from_str(text).unwrap();
            Settings::resolve(file, Overrides::default())
        };
        assert_eq!(resolve("").unwrap().recon_iuvs_per_slice, None);
        let settings = resolve("[reconciliation]\niuvs_per_slice = 2500").unwrap();
        assert_eq!(settings.recon_iuvs_per_slice, Some(2500));
        for bad in [0, 10_001] {
            let error = resolve(&format!("[reconciliation]\niuvs_per_slice = {bad}"))
                .unwrap_err()
                .to_string();
            assert!(error.contains("reconciliation.iuvs_per_slice"), "{error}");
        }
        assert!(toml::from_str::<FileConfig>("[reconciliation]\nslice = 5").is_err());
        assert!(!resolve("").unwrap().recon_plain_keys_composed);
        let settings = resolve("[reconciliation]\nplain_keys_composed = true").unwrap();
        assert!(settings.recon_plain_keys_composed);
    }

    #[test]
    fn the_reconciliation_catch_up_interval_is_read_and_at_least_a_second() {
        let resolve = |text: &str| {
            let file: FileConfig = toml::from_str(text).unwrap();
            Settings::resolve(file, Overrides::default())
        };
        assert_eq!(
            resolve("").unwrap().recon_catch_up_interval,
            std::time::Duration::from_secs(60)
        );
        let settings = resolve("[reconciliation]\ncatch_up_interval_seconds = 5").unwrap();
        assert_eq!(
            settings.recon_catch_up_interval,
            std::time::Duration::from_secs(5)
        );
        let error = resolve("[reconciliation]\ncatch_up_interval_seconds = 0")
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("reconciliation.catch_up_interval_seconds"),
            "{error}"
        );
    }

    #[test]
    fn treasury_accounts_are_checked_and_name_their_field() {
        let config = |extra: &str| {
            let text = format!(
                r#"
                [[creditors]]
                fiscal_code = "01199250158"
                name = "Comune di Milano"
                segregation_code = "12"
                bank_ibans = ["IT02N0306909400000012345678"]
                {extra}
                "#
            );
            let file: FileConfig = toml::from_str(&text).unwrap();
            Settings::resolve(file, Overrides::default())
        };
        let settings = config(
            r#"treasury_ibans = ["it60 x054 2811 1010 0000 0123 456"]
               opi_entity_code = "C0MI01""#,
        )
        .unwrap();
        let accounts = &settings.treasury_accounts;
        assert_eq!(
            accounts.creditor_of_iban("IT60X0542811101000000123456"),
            Some("01199250158")
        );
        assert_eq!(accounts.creditor_of_opi_code("C0MI01"), Some("01199250158"));
        assert_eq!(
            accounts.creditor_of_iban("IT02N0306909400000012345678"),
            None
        );
        let error = config(r#"treasury_ibans = ["IT60X0542811101000000123457"]"#)
            .unwrap_err()
            .to_string();
        assert!(error.contains("creditors[0].treasury_ibans"), "{error}");
        let error = config(r#"opi_entity_code = "C0 MI""#)
            .unwrap_err()
            .to_string();
        assert!(error.contains("creditors[0].opi_entity_code"), "{error}");
    }

    #[test]
    fn bad_values_name_their_field() {
        let file: FileConfig = toml::from_str(
            r#"
            [[creditors]]
            fiscal_code = "01199250158"
            name = "Comune di Milano"
            segregation_code = "47"
            bank_ibans = []
            "#,
        )
        .unwrap();
        let error = Settings::resolve(file, Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(error.contains("creditors[0].segregation_code"), "{error}");
        let error = toml::from_str::<FileConfig>("unknown_key = 1")
            .unwrap_err()
            .to_string();
        assert!(error.contains("unknown_key"), "{error}");
    }

    /// Two stations; Milan lists its station, the Città Metropolitana none: `stations` is the
    /// only thing that changes between the cases.
    fn two_stations(milan_stations: &str) -> FileConfig {
        toml::from_str(&format!(
            r#"
            [node]
            broker_id = "01199250158"
            station_ids = ["01199250158_01", "01199250158_02"]

            [[creditors]]
            fiscal_code = "01199250158"
            name = "Comune di Milano"
            segregation_code = "12"
            bank_ibans = ["IT02N0306909400000012345678"]
            {milan_stations}

            [[creditors]]
            fiscal_code = "08911820960"
            name = "Città Metropolitana di Milano"
            bank_ibans = ["IT66Q0503401633000000098765"]
            "#
        ))
        .unwrap()
    }

    #[test]
    fn a_creditor_is_served_by_its_stations_or_by_every_station() {
        let settings = Settings::resolve(
            two_stations(r#"stations = [" 01199250158_02 "]"#),
            Overrides::default(),
        )
        .unwrap();
        let station = &settings.station;
        assert!(!station.serves("01199250158", "01199250158_01"));
        assert!(station.serves("01199250158", "01199250158_02"));
        assert!(station.serves("08911820960", "01199250158_01"));
        assert!(station.serves("08911820960", "01199250158_02"));
        assert!(!station.serves("08911820960", "01199250158_03"));
        // An old configuration, without lists: every station serves every creditor.
        let settings = Settings::resolve(two_stations(""), Overrides::default()).unwrap();
        assert!(settings.station.serves("01199250158", "01199250158_01"));
        assert!(settings.station.serves("01199250158", "01199250158_02"));
    }

    #[test]
    fn a_station_list_names_only_configured_stations() {
        let error = Settings::resolve(
            two_stations(r#"stations = ["01199250158_01", "01199250158_03"]"#),
            Overrides::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            error.contains("creditors[0].stations")
                && error.contains("'01199250158_03'")
                && error.contains("node.station_ids"),
            "{error}"
        );
        let error = Settings::resolve(two_stations("stations = []"), Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(error.contains("creditors[0].stations"), "{error}");
        // Without [node] the only station is the default one, `<broker>_01`.
        let mut file = two_stations(r#"stations = ["01199250158_02"]"#);
        file.node = NodeConfig::default();
        let error = Settings::resolve(file, Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(error.contains("'01199250158_02'"), "{error}");
    }

    /// The example an operator copies is a valid configuration, and so is each commented-out
    /// key it documents once uncommented.
    #[test]
    fn the_example_configuration_is_valid() {
        let example = include_str!("../../../incasso.example.toml");
        for text in [example.to_owned(), uncommented(example)] {
            let file: FileConfig = toml::from_str(&text).unwrap();
            let settings = Settings::resolve(file, Overrides::default()).unwrap();
            assert!(settings.station.serves("01199250158", "01199250158_01"));
            assert!(
                settings
                    .station
                    .beneficiary_ids
                    .contains(&"08911820960".to_owned())
            );
        }
        let all = uncommented(example);
        let settings =
            Settings::resolve(toml::from_str(&all).unwrap(), Overrides::default()).unwrap();
        assert!(!settings.station.serves("01199250158", "01199250158_02"));
        assert!(settings.station.serves("08911820960", "01199250158_02"));
        let fascicolo = settings.fascicolo.expect("the example's Fascicolo");
        assert_eq!(fascicolo.url, "http://127.0.0.1:7000");
        assert_eq!(fascicolo.batch, 500);
        let fdr = settings.fdr.expect("the example's FdR poller");
        assert_eq!(fdr.client.base_url, "http://127.0.0.1:9000");
        assert_eq!(fdr.page_size, 1000);
        let recovery = settings
            .biz_events
            .expect("the example's biz-events recovery");
        assert_eq!(recovery.client.base_url, "http://127.0.0.1:9100");
        assert_eq!(recovery.calls_per_pass, 10);
    }

    #[test]
    fn the_recovery_needs_a_url_and_values_the_api_allows() {
        let parse = |text: &str| {
            Settings::resolve(toml::from_str(text).unwrap(), Overrides::default())
                .map(|s| s.biz_events)
        };
        assert!(parse("").unwrap().is_none());
        let error = parse("[biz_events]\nurl = \"http://b\"\ncalls_per_pass = 0")
            .unwrap_err()
            .to_string();
        assert!(error.contains("biz_events.calls_per_pass"), "{error}");
        let error =
            parse("[biz_events]\nurl = \"http://b\"\nretry_after_hours = 10\nretry_max_hours = 5")
                .unwrap_err()
                .to_string();
        assert!(error.contains("biz_events.retry_max_hours"), "{error}");
        let error = parse("[biz_events]\nurl = \"b\"").unwrap_err().to_string();
        assert!(error.contains("biz_events.url"), "{error}");
        let from_env = Settings::resolve(
            toml::from_str("[biz_events]\nsubscription_key = \"from-file\"\ninterval_seconds = 60")
                .unwrap(),
            Overrides {
                biz_events_url: Some("http://127.0.0.1:9100/bizevents/".to_owned()),
                biz_events_subscription_key: Some("from-env".to_owned()),
                ..Overrides::default()
            },
        )
        .unwrap()
        .biz_events
        .unwrap();
        assert_eq!(from_env.client.base_url, "http://127.0.0.1:9100/bizevents");
        assert_eq!(
            from_env.client.subscription_key.as_deref(),
            Some("from-env")
        );
        assert_eq!(from_env.interval, std::time::Duration::from_secs(60));
        assert_eq!(
            from_env.retry_after,
            std::time::Duration::from_secs(6 * 3600)
        );
    }

    #[test]
    fn the_fascicolo_needs_a_url_and_a_batch_the_contract_allows() {
        let parse = |text: &str| {
            Settings::resolve(toml::from_str(text).unwrap(), Overrides::default())
                .map(|s| s.fascicolo)
        };
        assert_eq!(parse("").unwrap(), None);
        let error = parse("[fascicolo]\nurl = \"http://f:7000\"\nbatch = 501")
            .unwrap_err()
            .to_string();
        assert!(error.contains("fascicolo.batch"), "{error}");
        let error = parse("[fascicolo]\nurl = \"f:7000\"")
            .unwrap_err()
            .to_string();
        assert!(error.contains("fascicolo.url"), "{error}");
        let from_env = Settings::resolve(
            FileConfig::default(),
            Overrides {
                fascicolo_url: Some("http://127.0.0.1:7000/".to_owned()),
                ..Overrides::default()
            },
        )
        .unwrap()
        .fascicolo
        .unwrap();
        assert_eq!(from_env.url, "http://127.0.0.1:7000");
        assert_eq!(from_env.retry_max, std::time::Duration::from_secs(30));
    }

    #[test]
    fn the_fdr_poller_needs_a_url_and_values_the_api_allows() {
        let parse = |text: &str| {
            Settings::resolve(toml::from_str(text).unwrap(), Overrides::default()).map(|s| s.fdr)
        };
        assert!(parse("").unwrap().is_none());
        let error = parse("[fdr]\nurl = \"http://f\"\npage_size = 1001")
            .unwrap_err()
            .to_string();
        assert!(error.contains("fdr.page_size"), "{error}");
        let error = parse("[fdr]\nurl = \"http://f\"\nwarn_after_days = 30")
            .unwrap_err()
            .to_string();
        assert!(error.contains("fdr.warn_after_days"), "{error}");
        let error = parse("[fdr]\nurl = \"f\"").unwrap_err().to_string();
        assert!(error.contains("fdr.url"), "{error}");
        let from_env = Settings::resolve(
            toml::from_str("[fdr]\nsubscription_key = \"from-file\"\npoll_interval_seconds = 60")
                .unwrap(),
            Overrides {
                fdr_url: Some("http://127.0.0.1:9000/fdr/".to_owned()),
                fdr_subscription_key: Some("from-env".to_owned()),
                ..Overrides::default()
            },
        )
        .unwrap()
        .fdr
        .unwrap();
        assert_eq!(from_env.client.base_url, "http://127.0.0.1:9000/fdr");
        assert_eq!(
            from_env.client.subscription_key.as_deref(),
            Some("from-env")
        );
        assert_eq!(from_env.poll_interval, std::time::Duration::from_secs(60));
        assert_eq!(
            from_env.stale_after,
            std::time::Duration::from_secs(25 * 86_400)
        );
    }

    /// The example with its `key = value` comments (and the `[node]` header) uncommented,
    /// except the ones whose values are placeholders.
    fn uncommented(example: &str) -> String {
        example
            .lines()
            .map(|line| match line.strip_prefix("# ") {
                Some(rest)
                    if (rest.starts_with("[node]")
                        || rest.starts_with("broker_id")
                        || rest.starts_with("station_ids")
                        || rest.starts_with("body_limit_bytes")
                        || rest.starts_with("stations")
                        || rest.starts_with("first_iuv_base")
                        || rest.starts_with("[fascicolo]")
                        || rest.starts_with("[fdr]")
                        || rest.starts_with("[biz_events]")
                        || rest.starts_with("interval_seconds")
                        || rest.starts_with("calls_per_pass")
                        || rest.starts_with("retry_after_hours")
                        || rest.starts_with("retry_max_hours")
                        || rest.starts_with("subscription_key")
                        || rest.starts_with("poll_interval_seconds")
                        || rest.starts_with("page_size")
                        || rest.starts_with("warn_after_days")
                        || rest.starts_with("url")
                        || rest.starts_with("retry_max_seconds")
                        || rest.starts_with("batch")
                        || rest.starts_with("workers")) =>
                {
                    rest
                }
                _ => line,
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}
