//! The `[io]` section of the configuration: App IO's base URL (or `INCASSO_IO_URL`) and one
//! `[[io.services]]` entry per (creditor, kind) with its service key, whether messages are on
//! and how many days ahead reminders go. Without a URL no message is queued or sent.

use serde::Deserialize;

use incasso_domain::creditor::CreditorRegistry;
use incasso_domain::debt_position::DebtKind;
use incasso_domain::io_message::DEFAULT_REMINDER_DAYS;
use incasso_relay::app_io::{IoConfig, IoService};

use crate::config::ConfigError;

/// The longest reminder lead accepted, days.
const MAX_REMINDER_DAYS: u16 = 60;

/// `[io]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IoFileConfig {
    /// e.g. `https://api.io.pagopa.it/api/v1`.
    pub url: Option<String>,
    /// One per (creditor, kind).
    #[serde(default)]
    pub services: Vec<IoServiceFileConfig>,
}

/// `[[io.services]]`.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IoServiceFileConfig {
    /// The creditor's fiscal code: the IO service must belong to the notice's creditor.
    pub creditor: String,
    /// `tari`, `traffic_fine` or `school_fee`.
    pub kind: String,
    /// The IO service's key.
    pub subscription_key: String,
    /// Whether messages are sent (default true).
    pub enabled: Option<bool>,
    /// Days before a due date the reminder goes out (default 7; 0 for none).
    pub reminder_days: Option<u16>,
}

impl std::fmt::Debug for IoServiceFileConfig {
    // The key is a secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IoServiceFileConfig")
            .field("creditor", &self.creditor)
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

/// The App IO settings, `None` without a URL; every entry checked, a refusal naming it.
pub fn resolve(
    file: IoFileConfig,
    url_override: Option<String>,
    registry: &CreditorRegistry,
) -> Result<Option<IoConfig>, ConfigError> {
    let mut services: Vec<IoService> = Vec::with_capacity(file.services.len());
    for (i, entry) in file.services.into_iter().enumerate() {
        let field = |name: &str| format!("io.services[{i}].{name}");
        let creditor = entry.creditor.trim().to_owned();
        if registry
            .get(&creditor)
            .is_none_or(|c| c.segregation_code().is_none())
        {
            return Err(ConfigError::Invalid(format!(
                "{}: '{creditor}' is not a creditor incasso issues notices for",
                field("creditor")
            )));
        }
        let kind = DebtKind::from_name(entry.kind.trim()).ok_or_else(|| {
            ConfigError::Invalid(format!(
                "{}: '{}' is not one of tari, traffic_fine, school_fee",
                field("kind"),
                entry.kind
            ))
        })?;
        let subscription_key = entry.subscription_key.trim().to_owned();
        if subscription_key.is_empty() {
            return Err(ConfigError::Invalid(format!(
                "{}: required",
                field("subscription_key")
            )));
        }
        let reminder_days = entry.reminder_days.unwrap_or(DEFAULT_REMINDER_DAYS);
        if reminder_days > MAX_REMINDER_DAYS {
            return Err(ConfigError::Invalid(format!(
                "{}: at most {MAX_REMINDER_DAYS}",
                field("reminder_days")
            )));
        }
        if services
            .iter()
            .any(|s| s.creditor == creditor && s.kind == kind)
        {
            return Err(ConfigError::Invalid(format!(
                "io.services[{i}]: a second entry for {creditor} {}",
                kind.as_str()
            )));
        }
        services.push(IoService {
            creditor,
            kind,
            subscription_key,
            enabled: entry.enabled.unwrap_or(true),
            reminder_days,
        });
    }
    let url = url_override
        .or(file.url)
        .map(|u| u.trim().to_owned())
        .filter(|u| !u.is_empty());
    Ok(url.map(|url| IoConfig::new(&url, services)))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use crate::config::{FileConfig, Overrides, Settings};

    fn resolve(toml_text: &str, url: Option<&str>) -> Result<Settings, String> {
        let file: FileConfig = toml::from_str(toml_text).map_err(|e| e.to_string())?;
        Settings::resolve(
            file,
            Overrides {
                io_url: url.map(str::to_owned),
                ..Overrides::default()
            },
        )
        .map_err(|e| e.to_string())
    }

    const TARI: &str = r#"
        [[io.services]]
        creditor = "01199250158"
        kind = "tari"
        subscription_key = "k"
    "#;

    #[test]
    fn a_service_defaults_to_on_with_reminders_a_week_ahead_and_the_env_url_wins() {
        let text = format!("[io]\nurl = \"http://file/api/v1\"\n{TARI}");
        let io = resolve(&text, Some("http://127.0.0.1:7001/api/v1/"))
            .unwrap()
            .io
            .unwrap();
        assert_eq!(io.base_url, "http://127.0.0.1:7001/api/v1");
        assert_eq!(io.services.len(), 1);
        assert!(io.services[0].enabled);
        assert_eq!(io.services[0].reminder_days, 7);
        let scheduling = io.scheduling();
        assert_eq!(
            scheduling.reminder_days("01199250158", incasso_domain::debt_position::DebtKind::Tari),
            Some(7)
        );
        assert_eq!(
            scheduling.reminder_days(
                "01199250158",
                incasso_domain::debt_position::DebtKind::SchoolFee
            ),
            None
        );
    }

    #[test]
    fn without_a_url_nothing_is_sent() {
        assert!(resolve(TARI, None).unwrap().io.is_none());
    }

    #[test]
    fn a_wrong_entry_is_refused_naming_it() {
        let cases = [
            (TARI.replace("tari", "tarì"), "io.services[0].kind"),
            (
                TARI.replace("01199250158", "08911820960"),
                "io.services[0].creditor",
            ),
            (
                TARI.replace("\"k\"", "\" \""),
                "io.services[0].subscription_key",
            ),
            (
                format!("{TARI}reminder_days = 61"),
                "io.services[0].reminder_days",
            ),
            (format!("{TARI}{TARI}"), "io.services[1]"),
        ];
        for (text, field) in cases {
            let error = resolve(&text, Some("http://io")).unwrap_err();
            assert!(error.contains(field), "{field}: {error}");
        }
    }
}
