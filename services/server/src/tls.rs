//! TLS on the gRPC and SOAP listeners, with rustls (ring) and no OpenSSL. The server
//! certificate and key are read from the configured files and reloaded, without dropping a
//! connection, on SIGHUP or when the files change ([`ReloadingCert`]); gRPC clients may
//! present a certificate issued by the configured client CA, whose names become the
//! connection's [`PeerIdentity`] for the access layer; the SOAP side requires the Node's
//! certificate when `soap_client_ca` is set. Handshakes run in their own tasks
//! ([`TlsIncoming`]) so a slow or hostile client never holds up the accept loop.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{RootCertStore, ServerConfig};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use incasso_grpc::access::PeerIdentity;

/// How long a client has to complete its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Handshaken connections waiting for the server to pick them up.
const ACCEPT_BACKLOG: usize = 64;
/// How often the certificate files are checked for changes, by default.
pub const DEFAULT_RELOAD_INTERVAL: Duration = Duration::from_secs(10);

/// Why TLS could not be set up; each names the configuration key at fault.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("{field}: cannot read {path}: {source}")]
    Read {
        /// The configuration key.
        field: &'static str,
        /// The file.
        path: String,
        /// Why.
        source: io::Error,
    },
    /// A file holds no usable PEM item, or one rustls refuses.
    #[error("{field}: {path}: {message}")]
    Invalid {
        /// The configuration key.
        field: &'static str,
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
}

/// The `[tls]` configuration, with paths resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    /// The server certificate chain (PEM), leaf first.
    pub cert: PathBuf,
    /// The server's private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// The CA (PEM) issuing gRPC client certificates; without it clients are not
    /// authenticated.
    pub client_ca: Option<PathBuf>,
    /// The CA (PEM) issuing the PagoPA Node's client certificate; with it the SOAP listener
    /// refuses a handshake without one.
    pub soap_client_ca: Option<PathBuf>,
    /// How often the certificate and key files are checked for changes.
    pub reload_interval: Duration,
}

fn read(field: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        field,
        path: path.display().to_string(),
        source,
    })
}

fn invalid(field: &'static str, path: &Path, message: impl Into<String>) -> TlsError {
    TlsError::Invalid {
        field,
        path: path.display().to_string(),
        message: message.into(),
    }
}

/// Every certificate of a PEM file, in order.
pub fn load_certs(
    field: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(field, path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(field, path, format!("not a PEM certificate file: {e}")))?;
    if certs.is_empty() {
        return Err(invalid(field, path, "no CERTIFICATE in the file"));
    }
    Ok(certs)
}

/// The private key of a PEM file.
pub fn load_key(field: &'static str, path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem = read(field, path)?;
    PrivateKeyDer::from_pem_slice(&pem)
        .map_err(|e| invalid(field, path, format!("no usable PEM private key: {e}")))
}

/// The trust anchors of a CA file.
pub fn load_roots(field: &'static str, path: &Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in load_certs(field, path)? {
        roots
            .add(cert)
            .map_err(|e| invalid(field, path, format!("not a usable CA certificate: {e}")))?;
    }
    Ok(roots)
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// When a file was last changed, and its size: what tells a rotation apart.
type Stamp = Option<(SystemTime, u64)>;

fn stamp(path: &Path) -> Stamp {
    // Follows symbolic links, so the atomic symlink swap of a Kubernetes secret counts.
    let metadata = std::fs::metadata(path).ok()?;
    Some((metadata.modified().ok()?, metadata.len()))
}

/// The server certificate, swapped in place on reload: handshakes after the swap present
/// the new one, connections already established keep the session they have.
#[derive(Debug)]
pub struct ReloadingCert {
    cert_path: PathBuf,
    key_path: PathBuf,
    current: ArcSwap<CertifiedKey>,
    stamps: std::sync::Mutex<(Stamp, Stamp)>,
}

impl ReloadingCert {
    /// Loads the certificate and key, refusing a key that does not match the certificate.
    pub fn load(cert_path: &Path, key_path: &Path) -> Result<Self, TlsError> {
        let stamps = (stamp(cert_path), stamp(key_path));
        let key = Self::read(cert_path, key_path)?;
        Ok(Self {
            cert_path: cert_path.to_owned(),
            key_path: key_path.to_owned(),
            current: ArcSwap::from_pointee(key),
            stamps: std::sync::Mutex::new(stamps),
        })
    }

    fn read(cert_path: &Path, key_path: &Path) -> Result<CertifiedKey, TlsError> {
        let chain = load_certs("tls.cert", cert_path)?;
        let key = load_key("tls.key", key_path)?;
        CertifiedKey::from_der(chain, key, &provider()).map_err(|e| {
            invalid(
                "tls.key",
                key_path,
                format!("does not go with tls.cert: {e}"),
            )
        })
    }

    /// Reads the files again and, when they are valid, serves them from the next
    /// handshake on. Invalid files (a rotation caught half-written) keep the current
    /// certificate.
    pub fn reload(&self) -> Result<(), TlsError> {
        let stamps = (stamp(&self.cert_path), stamp(&self.key_path));
        let key = Self::read(&self.cert_path, &self.key_path)?;
        self.current.store(Arc::new(key));
        if let Ok(mut current) = self.stamps.lock() {
            *current = stamps;
        }
        Ok(())
    }

    /// Reloads when either file changed since the last load.
    fn reload_if_changed(&self) -> Result<bool, TlsError> {
        let now = (stamp(&self.cert_path), stamp(&self.key_path));
        let changed = self.stamps.lock().map(|s| *s != now).unwrap_or(true);
        if changed {
            self.reload()?;
        }
        Ok(changed)
    }
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

/// The TLS side of both listeners, built from [`TlsSettings`].
#[derive(Debug, Clone)]
pub struct ServerTls {
    cert: Arc<ReloadingCert>,
    grpc: Arc<ServerConfig>,
    soap: Arc<ServerConfig>,
    reload_interval: Duration,
    authenticates_clients: bool,
}

impl ServerTls {
    /// Reads the files and builds both listeners' configurations.
    pub fn load(settings: &TlsSettings) -> Result<Self, TlsError> {
        let cert = Arc::new(ReloadingCert::load(&settings.cert, &settings.key)?);
        let config = |client_ca: Option<(&'static str, &PathBuf)>,
                      optional: bool,
                      alpn: Vec<Vec<u8>>|
         -> Result<Arc<ServerConfig>, TlsError> {
            let builder = ServerConfig::builder_with_provider(provider())
                .with_safe_default_protocol_versions()
                .map_err(|e| invalid("tls.cert", &settings.cert, e.to_string()))?;
            let builder = match client_ca {
                None => builder.with_no_client_auth(),
                Some((field, path)) => {
                    let roots = Arc::new(load_roots(field, path)?);
                    let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider());
                    // gRPC lets a client without a certificate through the handshake so it
                    // gets UNAUTHENTICATED, a status it can act on, not a reset connection.
                    let verifier = if optional {
                        verifier.allow_unauthenticated()
                    } else {
                        verifier
                    };
                    let verifier = verifier
                        .build()
                        .map_err(|e| invalid(field, path, e.to_string()))?;
                    builder.with_client_cert_verifier(verifier)
                }
            };
            let mut config = builder.with_cert_resolver(cert.clone());
            config.alpn_protocols = alpn;
            Ok(Arc::new(config))
        };
        let grpc = config(
            settings.client_ca.as_ref().map(|p| ("tls.client_ca", p)),
            true,
            vec![b"h2".to_vec()],
        )?;
        let soap = config(
            settings
                .soap_client_ca
                .as_ref()
                .map(|p| ("tls.soap_client_ca", p)),
            false,
            vec![b"http/1.1".to_vec()],
        )?;
        Ok(Self {
            cert,
            grpc,
            soap,
            reload_interval: settings.reload_interval,
            authenticates_clients: settings.client_ca.is_some(),
        })
    }

    /// Whether gRPC clients are asked for a certificate.
    pub fn authenticates_clients(&self) -> bool {
        self.authenticates_clients
    }

    /// Reloads the certificate and key now.
    pub fn reload(&self) -> Result<(), TlsError> {
        self.cert.reload()
    }

    /// Accepts TLS connections for gRPC on `listener`.
    pub fn grpc_incoming(&self, listener: TcpListener) -> TlsIncoming {
        TlsIncoming::spawn(listener, TlsAcceptor::from(self.grpc.clone()))
    }

    /// Accepts TLS connections for SOAP on `listener`.
    pub fn soap_incoming(&self, listener: TcpListener) -> TlsIncoming {
        TlsIncoming::spawn(listener, TlsAcceptor::from(self.soap.clone()))
    }

    /// Reloads on SIGHUP and whenever the files change, until `stop` resolves. A reload
    /// that fails is logged and the current certificate stays.
    pub async fn watch(self, stop: impl std::future::Future<Output = ()>) {
        #[cfg(unix)]
        let mut hangup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        {
            Ok(signal) => Some(signal),
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGHUP; files are still watched");
                None
            }
        };
        let mut tick = tokio::time::interval(self.reload_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tokio::pin!(stop);
        loop {
            #[cfg(unix)]
            let signal = async {
                match hangup.as_mut() {
                    Some(signal) => {
                        signal.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            #[cfg(not(unix))]
            let signal = std::future::pending::<()>();
            tokio::select! {
                () = &mut stop => return,
                () = signal => match self.cert.reload() {
                    Ok(()) => tracing::info!("SIGHUP: TLS certificate reloaded"),
                    Err(error) => tracing::error!(%error, "SIGHUP: TLS certificate not reloaded; the current one stays"),
                },
                _ = tick.tick() => match self.cert.reload_if_changed() {
                    Ok(true) => tracing::info!("TLS certificate files changed: reloaded"),
                    Ok(false) => {}
                    Err(error) => tracing::error!(%error, "TLS certificate files changed but are not valid; the current certificate stays"),
                },
            }
        }
    }
}

/// The names of a verified client certificate: DNS SANs first, then the subject CN.
pub fn certificate_names(cert: &CertificateDer<'_>) -> Vec<String> {
    use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};
    let Ok((_, parsed)) = X509Certificate::from_der(cert.as_ref()) else {
        return Vec::new();
    };
    let mut names = Vec::new();
    if let Ok(Some(san)) = parsed.subject_alternative_name() {
        for name in &san.value.general_names {
            if let GeneralName::DNSName(dns) = name {
                names.push((*dns).to_owned());
            }
        }
    }
    if let Some(cn) = parsed
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
    {
        names.push(cn.to_owned());
    }
    names
}

/// One accepted TLS connection and who is on the other end.
#[derive(Debug)]
pub struct TlsConnection {
    stream: TlsStream<TcpStream>,
    peer: PeerIdentity,
}

impl TlsConnection {
    /// The client's identity (empty names without a client certificate).
    pub fn peer(&self) -> &PeerIdentity {
        &self.peer
    }
}

impl AsyncRead for TlsConnection {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsConnection {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

impl tonic::transport::server::Connected for TlsConnection {
    type ConnectInfo = PeerIdentity;

    fn connect_info(&self) -> PeerIdentity {
        self.peer.clone()
    }
}

/// Connections that completed their handshake, as a stream for tonic and a listener for
/// axum. Accepting stops when this is dropped.
#[derive(Debug)]
pub struct TlsIncoming {
    connections: mpsc::Receiver<TlsConnection>,
    local_addr: io::Result<SocketAddr>,
    acceptor: tokio::task::JoinHandle<()>,
}

impl Drop for TlsIncoming {
    fn drop(&mut self) {
        self.acceptor.abort();
    }
}

impl TlsIncoming {
    fn spawn(listener: TcpListener, acceptor: TlsAcceptor) -> Self {
        let local_addr = listener.local_addr();
        let (tx, connections) = mpsc::channel(ACCEPT_BACKLOG);
        let acceptor = tokio::spawn(accept_loop(listener, acceptor, tx));
        Self {
            connections,
            local_addr,
            acceptor,
        }
    }
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    connections: mpsc::Sender<TlsConnection>,
) {
    loop {
        let accepted = tokio::select! {
            () = connections.closed() => return,
            accepted = listener.accept() => accepted,
        };
        let (tcp, remote_addr) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of file descriptors, typically: back off instead of spinning.
                tracing::warn!(%error, "cannot accept a connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let connections = connections.clone();
        tokio::spawn(async move {
            let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(stream)) => stream,
                Ok(Err(error)) => {
                    tracing::info!(%remote_addr, %error, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::info!(%remote_addr, "TLS handshake timed out");
                    return;
                }
            };
            let names = stream
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|chain| chain.first())
                .map(certificate_names)
                .unwrap_or_default();
            let peer = PeerIdentity {
                remote_addr: Some(remote_addr),
                names,
            };
            let _ = connections.send(TlsConnection { stream, peer }).await;
        });
    }
}

impl tokio_stream::Stream for TlsIncoming {
    type Item = Result<TlsConnection, io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.connections.poll_recv(cx).map(|c| c.map(Ok))
    }
}

impl axum::serve::Listener for TlsIncoming {
    type Io = TlsConnection;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.connections.recv().await {
            Some(connection) => {
                let addr = connection
                    .peer
                    .remote_addr
                    .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)));
                (connection, addr)
            }
            // The accept loop only ends once this side is dropped.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        match &self.local_addr {
            Ok(addr) => Ok(*addr),
            Err(error) => Err(io::Error::new(error.kind(), error.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn pair(dir: &Path, names: &[&str]) -> (PathBuf, PathBuf, Vec<u8>) {
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(
            names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>(),
        )
        .unwrap();
        let cert = params.self_signed(&key).unwrap();
        let id = uuid::Uuid::new_v4();
        let cert_path = dir.join(format!("{id}.pem"));
        let key_path = dir.join(format!("{id}.key"));
        std::fs::write(&cert_path, cert.pem()).unwrap();
        std::fs::write(&key_path, key.serialize_pem()).unwrap();
        (cert_path, key_path, cert.der().to_vec())
    }

    fn served(cert: &ReloadingCert) -> Vec<u8> {
        cert.current.load().cert[0].as_ref().to_vec()
    }

    #[test]
    fn a_rotation_caught_half_written_keeps_the_current_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let (cert_path, key_path, first) = pair(dir.path(), &["localhost"]);
        let cert = ReloadingCert::load(&cert_path, &key_path).unwrap();
        assert_eq!(served(&cert), first);
        // The new certificate is in place, its key not yet.
        let (next_cert, next_key, next) = pair(dir.path(), &["localhost"]);
        std::fs::copy(&next_cert, &cert_path).unwrap();
        let error = cert.reload().unwrap_err().to_string();
        assert!(error.contains("tls.key"), "{error}");
        assert_eq!(served(&cert), first);
        std::fs::copy(&next_key, &key_path).unwrap();
        cert.reload().unwrap();
        assert_eq!(served(&cert), next);
    }

    #[test]
    fn missing_or_empty_files_name_their_key() {
        let dir = tempfile::tempdir().unwrap();
        let (cert_path, _, _) = pair(dir.path(), &["localhost"]);
        let error = ReloadingCert::load(&cert_path, &dir.path().join("missing.key"))
            .unwrap_err()
            .to_string();
        assert!(error.starts_with("tls.key: cannot read"), "{error}");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "").unwrap();
        let error = load_roots("tls.client_ca", &empty).unwrap_err().to_string();
        assert!(error.starts_with("tls.client_ca:"), "{error}");
    }

    #[test]
    fn a_certificate_is_known_by_its_dns_names_then_its_common_name() {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec![
            "tributi.comune.milano.it".to_owned(),
            "10.0.0.1".to_owned(),
        ])
        .unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "Ufficio Tributi");
        let cert = params.self_signed(&key).unwrap();
        assert_eq!(
            certificate_names(cert.der()),
            ["tributi.comune.milano.it", "Ufficio Tributi"]
        );
    }
}
