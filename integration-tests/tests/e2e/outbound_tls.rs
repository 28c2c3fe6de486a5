//! The clients incasso calls out with (ACA, App IO, FdR over HTTPS) verify the server against
//! the configured CA and present the configured client certificate: an HTTPS server that
//! requires a client certificate of its own CA, as the PagoPA gateways do, answers a client
//! built from `[outbound_tls]`, and refuses one without the certificate or without the CA.

use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use incasso_integration_tests::certs::{TestPki, der_of};
use incasso_relay::outbound_tls::{ClientCertificate, OutboundTls};

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// An HTTPS server that requires a client certificate of `pki`'s CA; each answer's body says
/// whether the client presented `expected` (DER).
async fn gateway(pki: &TestPki, expected: Vec<u8>) -> anyhow::Result<std::net::SocketAddr> {
    let server = pki.server()?;
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from(der_of(&pki.ca_pem())?))?;
    let verifier =
        rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
            .build()?;
    let config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            vec![CertificateDer::from(der_of(&server.cert)?)],
            PrivateKeyDer::from_pem_slice(server.key.as_bytes())?,
        )?;
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let expected = expected.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let presented = tls
                    .get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|chain| chain.first())
                    .map(|cert| cert.as_ref().to_vec());
                let presented = if presented.as_deref() == Some(expected.as_slice()) {
                    "incasso's certificate"
                } else {
                    "another certificate"
                };
                let mut request = [0_u8; 4096];
                let _ = tls.read(&mut request).await;
                let answer = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{presented}",
                    presented.len()
                );
                let _ = tls.write_all(answer.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    Ok(addr)
}

async fn get(tls: &OutboundTls, addr: std::net::SocketAddr) -> anyhow::Result<String> {
    let client = tls.reqwest()?.build()?;
    let url = format!("https://localhost:{}/", addr.port());
    Ok(client
        .get(url)
        .send()
        .await?
        .error_for_status()?
        .text()
        .await?)
}

#[tokio::test]
async fn outbound_clients_verify_the_gateway_and_present_their_certificate() -> anyhow::Result<()> {
    let pki = TestPki::new("outbound")?;
    let client = pki.client("incasso.comune.milano.it")?;
    let addr = gateway(&pki, der_of(&client.cert)?).await?;
    let configured = OutboundTls {
        ca_pem: Some(pki.ca_pem().into_bytes()),
        client: Some(ClientCertificate {
            cert_pem: client.cert.clone().into_bytes(),
            key_pem: client.key.clone().into_bytes(),
        }),
    };
    assert_eq!(
        get(&configured, addr).await?,
        "incasso's certificate",
        "the certificate the gateway saw"
    );

    // Without the client certificate the gateway refuses the handshake.
    let anonymous = OutboundTls {
        client: None,
        ..configured.clone()
    };
    assert!(
        get(&anonymous, addr).await.is_err(),
        "answered without a client certificate"
    );

    // With the system roots the test CA is unknown: the server is not trusted.
    let system_roots = OutboundTls {
        ca_pem: None,
        ..configured.clone()
    };
    assert!(
        get(&system_roots, addr).await.is_err(),
        "trusted a server of an unknown CA"
    );

    // A CA other than the server's: not trusted either.
    let other = TestPki::new("outbound-other")?;
    let wrong_ca = OutboundTls {
        ca_pem: Some(other.ca_pem().into_bytes()),
        ..configured
    };
    assert!(
        get(&wrong_ca, addr).await.is_err(),
        "trusted a server of another CA"
    );
    Ok(())
}
