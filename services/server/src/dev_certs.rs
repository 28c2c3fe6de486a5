//! `incasso dev-certs`: a throw-away certificate authority for running incasso with TLS on a
//! developer's machine. It writes a CA, a server certificate for `localhost` and
//! `127.0.0.1`, one client certificate per role (and one for the PagoPA Node's SOAP calls),
//! and a configuration whose `[tls]` and `[[clients]]` use them. Never for production: the
//! CA's key lies next to the certificates it signed.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};

/// One client certificate written, with the identity and role the sample configuration
/// gives it.
#[derive(Debug, Clone)]
pub struct DevClient {
    /// The file stem: `<name>.pem` and `<name>.key`.
    pub name: &'static str,
    /// The DNS SAN and subject CN.
    pub identity: &'static str,
    /// The sample `[[clients]]` entry, without the identity.
    pub grant: &'static str,
}

/// The client certificates `dev-certs` writes.
pub const DEV_CLIENTS: &[DevClient] = &[
    DevClient {
        name: "tributi",
        identity: "tributi.localhost",
        grant: "role = \"backend\"\ncreditors = [\"01199250158\"]\nkinds = [\"tari\"]\naccess = \"write\"",
    },
    DevClient {
        name: "polizia-locale",
        identity: "polizia-locale.localhost",
        grant: "role = \"backend\"\ncreditors = [\"01199250158\"]\nkinds = [\"traffic_fine\"]\naccess = \"write\"",
    },
    DevClient {
        name: "fascicolo",
        identity: "fascicolo.localhost",
        grant: "role = \"fascicolo\"",
    },
    DevClient {
        name: "auditor",
        identity: "auditor.localhost",
        grant: "role = \"auditor\"",
    },
    DevClient {
        name: "finance",
        identity: "finance.localhost",
        grant: "role = \"finance\"",
    },
    DevClient {
        name: "operator",
        identity: "operator.localhost",
        grant: "role = \"operator\"",
    },
];

/// The sample configuration written as `incasso.toml`: paths are relative to it.
pub fn sample_config() -> String {
    let mut text = String::from(
        "# Written by `incasso dev-certs`: for a developer's machine only.\n\
         [tls]\n\
         cert = \"server.pem\"\n\
         key = \"server.key\"\n\
         client_ca = \"ca.pem\"\n\
         # The PagoPA Node's SOAP calls need node.pem / node.key with this set.\n\
         soap_client_ca = \"ca.pem\"\n",
    );
    for client in DEV_CLIENTS {
        text.push_str(&format!(
            "\n[[clients]]\nidentity = \"{}\"\n{}\n",
            client.identity, client.grant
        ));
    }
    text
}

/// Writes the CA, the server's and the clients' certificates and the sample configuration
/// into `out`; returns the configuration's path.
pub fn generate(out: &Path) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(out)?;
    let ca_key = KeyPair::generate()?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "incasso development CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca = CertifiedIssuer::self_signed(ca_params, ca_key)?;
    write(out, "ca.pem", &ca.pem())?;
    let leaf = |names: Vec<String>, purpose: ExtendedKeyUsagePurpose| -> anyhow::Result<_> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(names.clone())?;
        if let Some(first) = names.first() {
            params.distinguished_name.push(DnType::CommonName, first);
        }
        params.extended_key_usages = vec![purpose];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let cert = params.signed_by(&key, &ca)?;
        Ok((cert.pem(), key.serialize_pem()))
    };
    let (cert, key) = leaf(
        vec!["localhost".into(), "127.0.0.1".into()],
        ExtendedKeyUsagePurpose::ServerAuth,
    )?;
    write(out, "server.pem", &cert)?;
    write(out, "server.key", &key)?;
    let clients = DEV_CLIENTS
        .iter()
        .map(|c| (c.name, c.identity))
        .chain([("node", "node.localhost")]);
    for (name, identity) in clients {
        let (cert, key) = leaf(vec![identity.into()], ExtendedKeyUsagePurpose::ClientAuth)?;
        write(out, &format!("{name}.pem"), &cert)?;
        write(out, &format!("{name}.key"), &key)?;
    }
    let config = out.join("incasso.toml");
    std::fs::write(&config, sample_config())?;
    Ok(config)
}

fn write(out: &Path, name: &str, contents: &str) -> anyhow::Result<()> {
    let path = out.join(name);
    std::fs::write(&path, contents)
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
    if name.ends_with(".key") {
        restrict(&path)?;
    }
    Ok(())
}

/// Private keys readable by their owner only.
#[cfg(unix)]
fn restrict(path: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(())
}

#[cfg(not(unix))]
fn restrict(_path: &Path) -> anyhow::Result<()> {
    Ok(())
}
