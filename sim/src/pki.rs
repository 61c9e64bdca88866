//! podsim's throwaway PKI: a CA made at start-up, the server certificate it signs for the
//! loopback names, and one client certificate that authenticates like the bearer token.
//!
//! Everything lives only as long as the process: clients learn the CA from the ready line, the
//! kubeconfig (`--kubeconfig-out`) or the files of `--pki-out`, never from a trust store.

use std::path::Path;

use anyhow::Context;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// Common name of the client certificate podsim issues (the "user" it authenticates as).
pub const CLIENT_COMMON_NAME: &str = "podsim-admin";

/// The CA, the server's certificate and key, and the client certificate and key.
pub struct Pki {
    pub ca_cert_pem: String,
    ca_cert_der: CertificateDer<'static>,
    server_cert_der: CertificateDer<'static>,
    server_key_der: Vec<u8>,
    pub client_cert_pem: String,
    pub client_key_pem: String,
}

impl Pki {
    /// Generates a fresh CA and the certificates it signs. The server certificate names
    /// localhost, 127.0.0.1 and ::1, plus `listen_host` when it is none of those.
    pub fn generate(listen_host: &str) -> anyhow::Result<Pki> {
        let ca_key = KeyPair::generate().context("generating the CA key")?;
        let ca_params = ca_params()?;
        let ca_cert = ca_params
            .self_signed(&ca_key)
            .context("signing the CA certificate")?;
        let issuer = Issuer::new(ca_params, ca_key);

        let server_key = KeyPair::generate().context("generating the server key")?;
        let server_cert = server_params(listen_host)?
            .signed_by(&server_key, &issuer)
            .context("signing the server certificate")?;

        let client_key = KeyPair::generate().context("generating the client key")?;
        let client_cert = client_params()?
            .signed_by(&client_key, &issuer)
            .context("signing the client certificate")?;

        Ok(Pki {
            ca_cert_pem: ca_cert.pem(),
            ca_cert_der: ca_cert.der().clone(),
            server_cert_der: server_cert.der().clone(),
            server_key_der: server_key.serialize_der(),
            client_cert_pem: client_cert.pem(),
            client_key_pem: client_key.serialize_pem(),
        })
    }

    pub fn ca_cert_der(&self) -> CertificateDer<'static> {
        self.ca_cert_der.clone()
    }

    /// The chain the server presents: its own certificate, then the CA (so a client that only
    /// pinned the CA still sees the full path).
    pub fn server_chain(&self) -> Vec<CertificateDer<'static>> {
        vec![self.server_cert_der.clone(), self.ca_cert_der.clone()]
    }

    pub fn server_key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.server_key_der.clone()))
    }

    /// Writes `ca.crt`, `client.crt` and `client.key` into `dir` (created if missing). The key
    /// is 0600: it is as good as the bearer token.
    pub fn write_to(&self, dir: &Path) -> anyhow::Result<()> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating --pki-out {}", dir.display()))?;
        crate::files::write_file(&dir.join("ca.crt"), &self.ca_cert_pem, 0o644)?;
        crate::files::write_file(&dir.join("client.crt"), &self.client_cert_pem, 0o644)?;
        crate::files::write_file(&dir.join("client.key"), &self.client_key_pem, 0o600)
    }
}

fn ca_params() -> anyhow::Result<CertificateParams> {
    let mut params = CertificateParams::new(Vec::new())?;
    params
        .distinguished_name
        .push(DnType::CommonName, "podsim throwaway CA");
    // Path length 0: this CA signs leaf certificates only.
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    Ok(params)
}

fn server_params(listen_host: &str) -> anyhow::Result<CertificateParams> {
    let mut names: Vec<String> = ["localhost", "127.0.0.1", "::1"].map(String::from).to_vec();
    if !names.iter().any(|n| n == listen_host) {
        names.push(listen_host.to_string());
    }
    let mut params = CertificateParams::new(names)
        .with_context(|| format!("{listen_host:?} is not a usable certificate name"))?;
    params.distinguished_name.push(DnType::CommonName, "podsim");
    leaf(&mut params, ExtendedKeyUsagePurpose::ServerAuth);
    Ok(params)
}

fn client_params() -> anyhow::Result<CertificateParams> {
    let mut params = CertificateParams::new(Vec::new())?;
    params
        .distinguished_name
        .push(DnType::CommonName, CLIENT_COMMON_NAME);
    // Kubernetes reads the groups of a client certificate from its organisations.
    params
        .distinguished_name
        .push(DnType::OrganizationName, "system:masters");
    leaf(&mut params, ExtendedKeyUsagePurpose::ClientAuth);
    Ok(params)
}

/// What every end-entity certificate needs for strict verifiers (Go's crypto/x509, webpki).
fn leaf(params: &mut CertificateParams, purpose: ExtendedKeyUsagePurpose) {
    params.is_ca = IsCa::ExplicitNoCa;
    params.use_authority_key_identifier_extension = true;
    // ECDSA keys only sign; key encipherment would be an RSA-only usage.
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![purpose];
}
