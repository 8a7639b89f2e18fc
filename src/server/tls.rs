//! TLS termination with rustls; ALPN offers h2 and http/1.1.

use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

use crate::config::TlsConfig;

pub fn acceptor(config: &TlsConfig) -> anyhow::Result<TlsAcceptor> {
    let certs = CertificateDer::pem_file_iter(&config.cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|err| {
            anyhow::anyhow!("{}: cannot read certificates: {err}", config.cert.display())
        })?;
    let key = PrivateKeyDer::from_pem_file(&config.key).map_err(|err| {
        anyhow::anyhow!(
            "{}: cannot read the private key: {err}",
            config.key.display()
        )
    })?;
    let mut server = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|err| anyhow::anyhow!("TLS certificate and key do not fit together: {err}"))?;
    server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(server)))
}
