//! TLS of the clients incasso calls (ACA, App IO, FdR over HTTPS, the Fascicolo over gRPC):
//! which CA verifies the remote server (the system's roots unless one is configured) and
//! which client certificate, if any, incasso presents. One value, applied to every client.

/// The outbound TLS settings, as PEM.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutboundTls {
    /// The CA the servers' certificates must chain to, instead of the system roots.
    pub ca_pem: Option<Vec<u8>>,
    /// The client certificate chain and its key, presented to the servers.
    pub client: Option<ClientCertificate>,
}

/// A client certificate and its key, PEM.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientCertificate {
    /// The certificate chain.
    pub cert_pem: Vec<u8>,
    /// The private key.
    pub key_pem: Vec<u8>,
}

impl std::fmt::Debug for ClientCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key never reaches a log.
        f.debug_struct("ClientCertificate").finish_non_exhaustive()
    }
}

impl OutboundTls {
    /// An HTTPS client builder with these settings.
    pub fn reqwest(&self) -> Result<reqwest::ClientBuilder, reqwest::Error> {
        let mut builder = reqwest::Client::builder().use_rustls_tls();
        if let Some(ca) = &self.ca_pem {
            builder = builder.tls_built_in_root_certs(false);
            for cert in reqwest::Certificate::from_pem_bundle(ca)? {
                builder = builder.add_root_certificate(cert);
            }
        }
        if let Some(client) = &self.client {
            let mut pem = client.cert_pem.clone();
            pem.push(b'\n');
            pem.extend_from_slice(&client.key_pem);
            builder = builder.identity(reqwest::Identity::from_pem(&pem)?);
        }
        Ok(builder)
    }

    /// The gRPC client's TLS with these settings, for `https://` endpoints.
    pub fn tonic(&self) -> tonic::transport::ClientTlsConfig {
        let mut config = tonic::transport::ClientTlsConfig::new();
        match &self.ca_pem {
            Some(ca) => {
                config = config.ca_certificate(tonic::transport::Certificate::from_pem(ca));
            }
            None => config = config.with_native_roots(),
        }
        if let Some(client) = &self.client {
            config = config.identity(tonic::transport::Identity::from_pem(
                &client.cert_pem,
                &client.key_pem,
            ));
        }
        config
    }
}
