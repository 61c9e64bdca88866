//! `--tls`: a throwaway self-signed certificate for localhost, and the rustls acceptor using it.

use std::sync::Arc;

use anyhow::Context;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::TlsAcceptor;

/// Returns the acceptor and the certificate in PEM (clients that verify can pin it).
pub fn self_signed(host: &str) -> anyhow::Result<(TlsAcceptor, String)> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
    if !names.iter().any(|n| n == host) {
        names.push(host.to_string());
    }
    let ck = rcgen::generate_simple_self_signed(names)
        .context("generating a self-signed certificate")?;
    let cert_pem = ck.cert.pem();
    let cert: CertificateDer<'static> = ck.cert.der().clone();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(ck.signing_key.serialize_der()));
    let mut config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .context("building the TLS server configuration")?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok((TlsAcceptor::from(Arc::new(config)), cert_pem))
}
