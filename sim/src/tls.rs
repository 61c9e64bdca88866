//! The rustls acceptor of podsim's https/wss listener: the CA-signed server certificate, and
//! optional client certificates that must chain to the same CA.

use std::sync::Arc;

use anyhow::Context;
use rustls::server::WebPkiClientVerifier;
use tokio_rustls::TlsAcceptor;

use crate::pki::Pki;

/// Builds the acceptor. Clients may present a certificate or not: a bearer token is just as
/// good, and a request with neither is refused later with a 401, the way an API server does.
/// A certificate that does not chain to podsim's CA fails the handshake.
pub fn acceptor(pki: &Pki) -> anyhow::Result<TlsAcceptor> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(pki.ca_cert_der())
        .context("trusting podsim's CA for client certificates")?;
    let client_verifier = WebPkiClientVerifier::builder(Arc::new(roots))
        .allow_unauthenticated()
        .build()
        .context("building the client certificate verifier")?;
    let mut config = rustls::ServerConfig::builder()
        .with_client_cert_verifier(client_verifier)
        .with_single_cert(pki.server_chain(), pki.server_key())
        .context("building the TLS server configuration")?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}
