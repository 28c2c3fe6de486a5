//! The `[tls]`, `[[clients]]` and `[outbound_tls]` configuration: the listeners'
//! certificate files (paths relative to the configuration file), per client identity its
//! role and scope, and the outbound clients' CA and certificate; checked and turned into
//! [`TlsSettings`], an [`AccessPolicy`] and an [`OutboundTls`].

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use incasso_domain::creditor::CreditorRegistry;
use incasso_domain::debt_position::DebtKind;
use incasso_grpc::access::{Access, AccessPolicy, Grant, Role};
use incasso_relay::outbound_tls::{ClientCertificate, OutboundTls};

use crate::config::ConfigError;
use crate::tls::{DEFAULT_RELOAD_INTERVAL, TlsSettings};

/// `[tls]`: TLS on the gRPC and SOAP listeners.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFileConfig {
    /// The server certificate chain, PEM, leaf first.
    pub cert: Option<String>,
    /// The server's private key, PEM.
    pub key: Option<String>,
    /// The CA issuing gRPC client certificates: set, clients authenticate with one and
    /// `[[clients]]` says what each may do.
    pub client_ca: Option<String>,
    /// The CA issuing the PagoPA Node's client certificate: set, the SOAP listener requires it.
    pub soap_client_ca: Option<String>,
    /// How often the certificate files are checked for changes, seconds (default 10).
    pub reload_interval_seconds: Option<u64>,
}

/// `[[clients]]`: one client identity, its role and scope.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientFileConfig {
    /// A DNS SAN or the subject CN of the client certificate.
    pub identity: String,
    /// backend, fascicolo, auditor, finance or operator.
    pub role: String,
    /// Backends only: the creditors' fiscal codes.
    #[serde(default)]
    pub creditors: Vec<String>,
    /// Backends only: tari, traffic_fine, school_fee.
    #[serde(default)]
    pub kinds: Vec<String>,
    /// Backends only: read or write (default read).
    pub access: Option<String>,
}

/// A path of the configuration, relative to the configuration file's folder.
fn resolve_path(base_dir: Option<&Path>, value: &str) -> PathBuf {
    let path = Path::new(value.trim());
    match base_dir {
        Some(base) if path.is_relative() => base.join(path),
        _ => path.to_owned(),
    }
}

/// The listeners' TLS, or `None` for plaintext.
pub fn tls_settings(
    file: Option<&TlsFileConfig>,
    base_dir: Option<&Path>,
) -> Result<Option<TlsSettings>, ConfigError> {
    let Some(file) = file else {
        return Ok(None);
    };
    let required = |field: &str, value: &Option<String>| {
        value
            .as_deref()
            .filter(|v| !v.trim().is_empty())
            .map(|v| resolve_path(base_dir, v))
            .ok_or_else(|| ConfigError::Invalid(format!("tls.{field}: required in [tls]")))
    };
    let optional = |value: &Option<String>| {
        value
            .as_deref()
            .filter(|v| !v.trim().is_empty())
            .map(|v| resolve_path(base_dir, v))
    };
    let reload_interval = match file.reload_interval_seconds {
        Some(0) => {
            return Err(ConfigError::Invalid(
                "tls.reload_interval_seconds: expected at least 1".into(),
            ));
        }
        Some(seconds) => std::time::Duration::from_secs(seconds),
        None => DEFAULT_RELOAD_INTERVAL,
    };
    Ok(Some(TlsSettings {
        cert: required("cert", &file.cert)?,
        key: required("key", &file.key)?,
        client_ca: optional(&file.client_ca),
        soap_client_ca: optional(&file.soap_client_ca),
        reload_interval,
    }))
}

/// Who may call what: open without a client CA, else exactly the configured clients.
pub fn access_policy(
    clients: &[ClientFileConfig],
    tls: Option<&TlsSettings>,
    registry: &CreditorRegistry,
) -> Result<AccessPolicy, ConfigError> {
    let authenticates = tls.is_some_and(|t| t.client_ca.is_some());
    if !authenticates {
        if !clients.is_empty() {
            return Err(ConfigError::Invalid(
                "clients: client identities come from client certificates; set tls.client_ca"
                    .into(),
            ));
        }
        return Ok(AccessPolicy::open());
    }
    let mut grants = BTreeMap::new();
    for (i, client) in clients.iter().enumerate() {
        let at = |field: &str| format!("clients[{i}].{field}");
        let identity = client.identity.trim();
        if identity.is_empty() {
            return Err(ConfigError::Invalid(format!(
                "{}: required",
                at("identity")
            )));
        }
        let role = Role::from_name(client.role.trim()).ok_or_else(|| {
            ConfigError::Invalid(format!(
                "{}: '{}' is not one of backend, fascicolo, auditor, finance, operator",
                at("role"),
                client.role
            ))
        })?;
        let grant = if role == Role::Backend {
            backend_grant(client, registry, &at)?
        } else {
            for (field, set) in [
                ("creditors", !client.creditors.is_empty()),
                ("kinds", !client.kinds.is_empty()),
                ("access", client.access.is_some()),
            ] {
                if set {
                    return Err(ConfigError::Invalid(format!(
                        "{}: only for role backend; the {} role's scope is fixed",
                        at(field),
                        role.as_str()
                    )));
                }
            }
            Grant {
                role,
                creditors: BTreeSet::new(),
                kinds: HashSet::new(),
                access: Access::Read,
            }
        };
        if grants.insert(identity.to_owned(), grant).is_some() {
            return Err(ConfigError::Invalid(format!(
                "{}: '{identity}' is configured twice",
                at("identity")
            )));
        }
    }
    Ok(AccessPolicy::by_identity(grants))
}

fn backend_grant(
    client: &ClientFileConfig,
    registry: &CreditorRegistry,
    at: &dyn Fn(&str) -> String,
) -> Result<Grant, ConfigError> {
    if client.creditors.is_empty() {
        return Err(ConfigError::Invalid(format!(
            "{}: a backend needs at least one creditor",
            at("creditors")
        )));
    }
    let mut creditors = BTreeSet::new();
    for code in &client.creditors {
        let code = code.trim();
        if registry.get(code).is_none() {
            return Err(ConfigError::Invalid(format!(
                "{}: '{code}' is not a configured creditor",
                at("creditors")
            )));
        }
        creditors.insert(code.to_owned());
    }
    if client.kinds.is_empty() {
        return Err(ConfigError::Invalid(format!(
            "{}: a backend needs at least one of tari, traffic_fine, school_fee",
            at("kinds")
        )));
    }
    let mut kinds = HashSet::new();
    for kind in &client.kinds {
        kinds.insert(DebtKind::from_name(kind.trim()).ok_or_else(|| {
            ConfigError::Invalid(format!(
                "{}: '{kind}' is not one of tari, traffic_fine, school_fee",
                at("kinds")
            ))
        })?);
    }
    let access = match client.access.as_deref().map(str::trim) {
        None | Some("read") => Access::Read,
        Some("write") => Access::Write,
        Some(other) => {
            return Err(ConfigError::Invalid(format!(
                "{}: '{other}' is not read or write",
                at("access")
            )));
        }
    };
    Ok(Grant {
        role: Role::Backend,
        creditors,
        kinds,
        access,
    })
}

/// `[outbound_tls]`: the CA and client certificate of every outbound client.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutboundTlsFileConfig {
    /// The CA (PEM) remote servers' certificates must chain to; the system roots without it.
    pub ca: Option<String>,
    /// The client certificate (PEM) presented to remote servers.
    pub cert: Option<String>,
    /// Its private key (PEM).
    pub key: Option<String>,
}

/// The outbound clients' TLS, with the files read (an unreadable one names its key).
pub fn outbound_tls(
    file: &OutboundTlsFileConfig,
    base_dir: Option<&Path>,
) -> Result<OutboundTls, ConfigError> {
    let read = |field: &str, value: &Option<String>| -> Result<Option<Vec<u8>>, ConfigError> {
        let Some(value) = value.as_deref().filter(|v| !v.trim().is_empty()) else {
            return Ok(None);
        };
        let path = resolve_path(base_dir, value);
        std::fs::read(&path).map(Some).map_err(|e| {
            ConfigError::Invalid(format!(
                "outbound_tls.{field}: cannot read {}: {e}",
                path.display()
            ))
        })
    };
    let ca_pem = read("ca", &file.ca)?;
    let client = match (read("cert", &file.cert)?, read("key", &file.key)?) {
        (None, None) => None,
        (Some(cert_pem), Some(key_pem)) => Some(ClientCertificate { cert_pem, key_pem }),
        _ => {
            return Err(ConfigError::Invalid(
                "outbound_tls: give both cert and key, or neither".into(),
            ));
        }
    };
    Ok(OutboundTls { ca_pem, client })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use crate::config::{FileConfig, Overrides, Settings};

    fn resolve(text: &str) -> Result<Settings, String> {
        let mut file: FileConfig = toml::from_str(text).map_err(|e| e.to_string())?;
        file.base_dir = Some("/etc/incasso".into());
        Settings::resolve(file, Overrides::default()).map_err(|e| e.to_string())
    }

    const TLS: &str =
        "[tls]\ncert = \"server.pem\"\nkey = \"/keys/server.key\"\nclient_ca = \"ca.pem\"\n";

    #[test]
    fn tls_paths_are_relative_to_the_configuration_file() {
        let settings = resolve(TLS).unwrap();
        let tls = settings.tls.unwrap();
        assert_eq!(tls.cert, std::path::Path::new("/etc/incasso/server.pem"));
        assert_eq!(tls.key, std::path::Path::new("/keys/server.key"));
        assert_eq!(
            tls.client_ca.as_deref(),
            Some(std::path::Path::new("/etc/incasso/ca.pem"))
        );
        assert_eq!(tls.soap_client_ca, None);
        assert!(!settings.access.is_open());
        assert!(resolve("").unwrap().access.is_open());
    }

    #[test]
    fn bad_clients_name_their_field() {
        let client = |entry: &str| resolve(&format!("{TLS}\n[[clients]]\n{entry}")).unwrap_err();
        let cases = [
            ("identity = \"a\"\nrole = \"admin\"", "clients[0].role"),
            (
                "identity = \"a\"\nrole = \"backend\"\nkinds = [\"tari\"]",
                "clients[0].creditors",
            ),
            (
                "identity = \"a\"\nrole = \"backend\"\ncreditors = [\"01199250158\"]\nkinds = [\"tarì\"]",
                "clients[0].kinds",
            ),
            (
                "identity = \"a\"\nrole = \"backend\"\ncreditors = [\"00000000000\"]\nkinds = [\"tari\"]",
                "clients[0].creditors",
            ),
            (
                "identity = \"a\"\nrole = \"backend\"\ncreditors = [\"01199250158\"]\nkinds = [\"tari\"]\naccess = \"all\"",
                "clients[0].access",
            ),
            (
                "identity = \"a\"\nrole = \"auditor\"\naccess = \"write\"",
                "clients[0].access",
            ),
        ];
        for (entry, field) in cases {
            let error = client(entry);
            assert!(error.contains(field), "{entry}: {error}");
        }
        let twice = resolve(&format!(
            "{TLS}\n[[clients]]\nidentity = \"a\"\nrole = \"auditor\"\n[[clients]]\nidentity = \"a\"\nrole = \"finance\""
        ))
        .unwrap_err();
        assert!(twice.contains("clients[1].identity"), "{twice}");
        let without_ca = resolve("[[clients]]\nidentity = \"a\"\nrole = \"auditor\"").unwrap_err();
        assert!(without_ca.contains("tls.client_ca"), "{without_ca}");
        let without_key = resolve("[tls]\ncert = \"server.pem\"").unwrap_err();
        assert!(without_key.contains("tls.key"), "{without_key}");
    }
}
