//! Certificates for the TLS tests, made with rcgen: a CA per test, a server certificate for
//! `localhost`, client certificates for any identity, written as PEM files into a folder
//! of their own, and clients (tonic, raw rustls) that trust the CA and present a
//! certificate.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

/// A certificate and its key, PEM.
#[derive(Debug, Clone)]
pub struct Pem {
    /// The certificate.
    pub cert: String,
    /// The private key.
    pub key: String,
}

/// A test CA and the folder its files go to (removed on drop).
pub struct TestPki {
    ca: CertifiedIssuer<'static, KeyPair>,
    /// The folder.
    pub dir: PathBuf,
}

impl std::fmt::Debug for TestPki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestPki").field("dir", &self.dir).finish()
    }
}

impl Drop for TestPki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl TestPki {
    /// A fresh CA named `name`.
    pub fn new(name: &str) -> anyhow::Result<Self> {
        let dir = std::env::temp_dir().join(format!("incasso-tls-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir)?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca = CertifiedIssuer::self_signed(params, KeyPair::generate()?)?;
        Ok(Self { ca, dir })
    }

    /// The CA certificate, PEM.
    pub fn ca_pem(&self) -> String {
        self.ca.pem()
    }

    /// A certificate signed by this CA for the DNS or IP `names`, with subject CN `cn`.
    pub fn issue(
        &self,
        cn: &str,
        names: &[&str],
        purpose: ExtendedKeyUsagePurpose,
    ) -> anyhow::Result<Pem> {
        let key = KeyPair::generate()?;
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let mut params = CertificateParams::new(names)?;
        params.distinguished_name.push(DnType::CommonName, cn);
        params.extended_key_usages = vec![purpose];
        let cert = params.signed_by(&key, &self.ca)?;
        Ok(Pem {
            cert: cert.pem(),
            key: key.serialize_pem(),
        })
    }

    /// A server certificate for `localhost` and `127.0.0.1`.
    pub fn server(&self) -> anyhow::Result<Pem> {
        self.issue(
            "incasso test server",
            &["localhost", "127.0.0.1"],
            ExtendedKeyUsagePurpose::ServerAuth,
        )
    }

    /// A client certificate whose DNS SAN (and CN) is `identity`.
    pub fn client(&self, identity: &str) -> anyhow::Result<Pem> {
        self.issue(identity, &[identity], ExtendedKeyUsagePurpose::ClientAuth)
    }

    /// Writes `contents` as `name` in the folder; returns its path.
    pub fn write(&self, name: &str, contents: &str) -> anyhow::Result<PathBuf> {
        let path = self.dir.join(name);
        // Written aside and renamed, as a rotation does: a reader never sees half a file.
        let partial = self.dir.join(format!(".{name}.partial"));
        std::fs::write(&partial, contents)?;
        std::fs::rename(&partial, &path)?;
        Ok(path)
    }

    /// Writes the CA as `ca.pem` and `pem` as `<stem>.pem` / `<stem>.key`.
    pub fn write_pair(&self, stem: &str, pem: &Pem) -> anyhow::Result<()> {
        self.write(&format!("{stem}.pem"), &pem.cert)?;
        self.write(&format!("{stem}.key"), &pem.key)?;
        Ok(())
    }

    /// The folder, for configuration paths.
    pub fn path(&self) -> &Path {
        &self.dir
    }
}

/// A gRPC channel to `addr` over TLS, trusting `ca_pem`, presenting `client` if given.
pub async fn tls_channel(
    addr: SocketAddr,
    ca_pem: &str,
    client: Option<&Pem>,
) -> anyhow::Result<Channel> {
    let mut tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(ca_pem))
        .domain_name("localhost");
    if let Some(client) = client {
        tls = tls.identity(Identity::from_pem(&client.cert, &client.key));
    }
    Ok(Channel::from_shared(format!("https://{addr}"))?
        .tls_config(tls)?
        .connect()
        .await?)
}

/// A raw TLS connection to `addr` (ALPN `alpn`) trusting `ca_pem`; returns the stream and
/// the DER of the certificate the server presented.
pub async fn handshake(
    addr: SocketAddr,
    ca_pem: &str,
    alpn: &[u8],
) -> anyhow::Result<(
    tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
    Vec<u8>,
)> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, ServerName};
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert?)?;
    }
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![alpn.to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let stream = connector
        .connect(ServerName::try_from("localhost")?, tcp)
        .await?;
    let presented = stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|chain| chain.first())
        .map(|c| c.as_ref().to_vec())
        .ok_or_else(|| anyhow::anyhow!("the server presented no certificate"))?;
    Ok((stream, presented))
}

/// The DER of the first certificate of a PEM text.
pub fn der_of(pem: &str) -> anyhow::Result<Vec<u8>> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    Ok(CertificateDer::from_pem_slice(pem.as_bytes())?
        .as_ref()
        .to_vec())
}
