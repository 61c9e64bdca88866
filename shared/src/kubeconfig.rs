//! Reading a kubeconfig as kubectl does (context, CA, bearer token, token file, client
//! certificate, exec plugin) into explicit [`KubeCredentials`]. `pwctl` runs this as the user
//! who types the command; the daemon runs it only for clusters its administrator named in its
//! configuration. No REST request can reach it: the API takes credentials, never a path.

use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use kube::client::ConfigExt;
use kube::config::{KubeConfigOptions, Kubeconfig, KubeconfigError};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use secrecy::ExposeSecret;

use crate::error::{PodError, Result};
use crate::secret::{Secret, redact_url};

/// A cluster's server and the credentials to present to it, all explicit.
#[derive(Clone, PartialEq, Eq)]
pub struct KubeCredentials {
    /// API server URL.
    pub server: String,
    /// PEM certificates the server's certificate must chain to.
    pub certificate_authority: Option<String>,
    pub insecure_skip_tls_verify: bool,
    /// Bearer token, without the `Bearer ` prefix.
    pub token: Option<Secret>,
    /// PEM client certificate and its key.
    pub client_certificate: Option<String>,
    pub client_key: Option<Secret>,
    /// The context's namespace (`default` when it names none).
    pub namespace: String,
}

impl std::fmt::Debug for KubeCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeCredentials")
            .field("server", &redact_url(&self.server))
            .field(
                "certificate_authority",
                &self.certificate_authority.is_some(),
            )
            .field("insecure_skip_tls_verify", &self.insecure_skip_tls_verify)
            .field("token", &self.token)
            .field("client_certificate", &self.client_certificate.is_some())
            .field("client_key", &self.client_key)
            .field("namespace", &self.namespace)
            .finish()
    }
}

impl KubeCredentials {
    /// True when there is something to authenticate with.
    pub fn has_credentials(&self) -> bool {
        self.token.is_some() || self.client_key.is_some()
    }

    /// The explicit target these credentials describe (the token and client key go in the
    /// endpoint's secrets).
    pub fn target(&self) -> crate::models::KubernetesTarget {
        crate::models::KubernetesTarget {
            cluster: None,
            server: Some(self.server.clone()),
            certificate_authority: self.certificate_authority.clone(),
            client_certificate: self.client_certificate.clone(),
            insecure_skip_tls_verify: self.insecure_skip_tls_verify,
            shell: Vec::new(),
        }
    }
}

fn kube_err(context: &str, e: impl std::fmt::Display) -> PodError {
    PodError::Kubernetes(format!("{context}: {e}"))
}

/// Describes a kubeconfig error without quoting the file: a YAML error carries the offending
/// lines, and a file's lines must never travel further than the file itself.
fn describe(e: &KubeconfigError) -> String {
    match e {
        KubeconfigError::Parse(_) => "the file is not a valid kubeconfig (YAML)".into(),
        KubeconfigError::ReadConfig(io, _) => format!("cannot read it: {}", io.kind()),
        KubeconfigError::ParseClusterUrl(_) => "the cluster's server is not a valid URL".into(),
        KubeconfigError::ParseCertificates(_) => {
            "the certificate authority is not valid PEM".into()
        }
        other => other.to_string(),
    }
}

/// Loads `path` (or, without one, what kubectl would: `$KUBECONFIG`, then `~/.kube/config`) with
/// `context` (or the current one) and works out every credential it names. Token files are read
/// and exec plugins run here, as the calling process's user.
pub async fn credentials_from_kubeconfig(
    path: Option<&Path>,
    context: Option<&str>,
) -> Result<KubeCredentials> {
    // kube builds rustls configurations; rustls needs a process-wide crypto provider.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let options = KubeConfigOptions {
        context: context.map(str::to_owned),
        cluster: None,
        user: None,
    };
    let shown = path
        .map(|p| format!("kubeconfig {}", p.display()))
        .unwrap_or_else(|| "the default kubeconfig".into());
    let config = match path {
        Some(path) => {
            let kc = Kubeconfig::read_from(path).map_err(|e| kube_err(&shown, describe(&e)))?;
            kube::Config::from_custom_kubeconfig(kc, &options).await
        }
        None => kube::Config::from_kubeconfig(&options).await,
    }
    .map_err(|e| kube_err(&shown, describe(&e)))?;
    credentials_of(&config).await
}

/// The explicit credentials of a loaded `kube::Config`.
pub async fn credentials_of(config: &kube::Config) -> Result<KubeCredentials> {
    let certificate_authority = config.root_cert.as_ref().map(|ders| {
        ders.iter()
            .map(|der| pem_encode("CERTIFICATE", der))
            .collect::<String>()
    });
    let auth = &config.auth_info;
    let client_certificate = load_pem(
        auth.client_certificate_data.as_deref(),
        auth.client_certificate.as_deref(),
        "client certificate",
    )?;
    let key_data = auth
        .client_key_data
        .as_ref()
        .map(|k| k.expose_secret().to_owned());
    let client_key = load_pem(
        key_data.as_deref(),
        auth.client_key.as_deref(),
        "client key",
    )?
    .map(Secret::new);
    if client_certificate.is_some() != client_key.is_some() {
        return Err(kube_err(
            "kubeconfig credentials",
            "a client certificate needs its key and a key its certificate",
        ));
    }
    let token = match authorization_header(config).await? {
        None => None,
        Some(header) => match header.expose().strip_prefix("Bearer ") {
            Some(token) => Some(Secret::new(token.trim())),
            None => {
                return Err(kube_err(
                    "kubeconfig credentials",
                    "only bearer tokens and client certificates are supported (not basic auth)",
                ));
            }
        },
    };
    Ok(KubeCredentials {
        server: config
            .cluster_url
            .to_string()
            .trim_end_matches('/')
            .to_owned(),
        certificate_authority,
        insecure_skip_tls_verify: config.accept_invalid_certs,
        token,
        client_certificate,
        client_key,
        namespace: config.default_namespace.clone(),
    })
}

/// A `kube::Config` that presents exactly these credentials (no file, no plugin): what the
/// daemon's pod set watchers build their client from.
pub fn client_config(creds: &KubeCredentials) -> Result<kube::Config> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let url: http::Uri = creds
        .server
        .parse()
        .map_err(|_| kube_err("cluster server", "is not a valid URL"))?;
    let mut config = kube::Config::new(url);
    config.default_namespace = creds.namespace.clone();
    config.accept_invalid_certs = creds.insecure_skip_tls_verify;
    if let Some(pem) = &creds.certificate_authority {
        let ders = CertificateDer::pem_slice_iter(pem.as_bytes())
            .map(|c| c.map(|c| c.to_vec()))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|_| kube_err("certificate authority", "is not valid PEM"))?;
        config.root_cert = Some(ders);
    }
    if let Some(token) = &creds.token {
        config.auth_info.token = Some(token.expose().to_owned().into());
    }
    if let (Some(cert), Some(key)) = (&creds.client_certificate, &creds.client_key) {
        config.auth_info.client_certificate_data = Some(BASE64.encode(cert));
        config.auth_info.client_key_data = Some(BASE64.encode(key.expose()).into());
    }
    Ok(config)
}

/// `data` (base64 of PEM, as kubeconfigs carry it) or the file at `path`.
fn load_pem(data: Option<&str>, path: Option<&str>, what: &str) -> Result<Option<String>> {
    let bytes = match (data, path) {
        (Some(data), _) => BASE64
            .decode(data.trim())
            .map_err(|_| kube_err(&format!("kubeconfig {what}"), "is not valid base64"))?,
        (None, Some(path)) => std::fs::read(path).map_err(|e| {
            kube_err(
                &format!("kubeconfig {what}"),
                format!("cannot read {path}: {}", e.kind()),
            )
        })?,
        (None, None) => return Ok(None),
    };
    String::from_utf8(bytes)
        .map(Some)
        .map_err(|_| kube_err(&format!("kubeconfig {what}"), "is not PEM text"))
}

fn pem_encode(label: &str, der: &[u8]) -> String {
    let b64 = BASE64.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// Checks that `pem` holds at least one certificate; the error names `field`.
pub fn check_certificates(field: &str, pem: &str) -> Result<()> {
    let certs: Vec<_> = CertificateDer::pem_slice_iter(pem.as_bytes()).collect();
    if certs.is_empty() || certs.iter().any(|c| c.is_err()) {
        return Err(PodError::ConfigValidation {
            field: field.into(),
            reason: "expected PEM certificates (-----BEGIN CERTIFICATE-----)".into(),
        });
    }
    Ok(())
}

/// Checks that `pem` holds a private key; the error names `field` and never quotes the key.
pub fn check_private_key(field: &str, pem: &Secret) -> Result<()> {
    PrivateKeyDer::from_pem_slice(pem.expose().as_bytes())
        .map(|_| ())
        .map_err(|_| PodError::ConfigValidation {
            field: field.into(),
            reason: "expected a PEM private key".into(),
        })
}

/// The `Authorization` header kube would send: bearer tokens, token files, auth providers and
/// exec plugins all go through kube's own auth layer, applied to a probe request. That runs on a
/// blocking thread: exec plugins are run synchronously by kube, and the layer's futures are not
/// provably `Send` for the callers' async blocks.
async fn authorization_header(config: &kube::Config) -> Result<Option<Secret>> {
    let auth = &config.auth_info;
    if let Some(token) = &auth.token
        && auth.exec.is_none()
        && auth.auth_provider.is_none()
        && auth.token_file.is_none()
    {
        return Ok(Some(Secret::new(format!(
            "Bearer {}",
            token.expose_secret()
        ))));
    }
    // A token file is read here, as kubectl reads it: the token without a trailing newline.
    if let Some(path) = &auth.token_file
        && auth.exec.is_none()
        && auth.auth_provider.is_none()
    {
        let token = std::fs::read_to_string(path).map_err(|e| {
            kube_err(
                "kubeconfig token file",
                format!("cannot read {path}: {}", e.kind()),
            )
        })?;
        return Ok(Some(Secret::new(format!("Bearer {}", token.trim()))));
    }
    if auth.exec.is_none() && auth.auth_provider.is_none() && auth.username.is_none() {
        return Ok(None);
    }
    let config = config.clone();
    tokio::task::spawn_blocking(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| kube_err("starting the credential probe", e))?;
        rt.block_on(probe_authorization(&config))
    })
    .await
    .map_err(|e| kube_err("credential probe", e))?
}

async fn probe_authorization(config: &kube::Config) -> Result<Option<Secret>> {
    use tower::{BoxError, Layer, ServiceExt, service_fn};
    let Some(layer) = config
        .auth_layer()
        .map_err(|e| kube_err("kubeconfig credentials", e))?
    else {
        return Ok(None);
    };
    let capture = service_fn(|req: http::Request<kube::client::Body>| async move {
        Ok::<_, BoxError>(http::Response::new(
            req.headers()
                .get(http::header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .map(|v| Secret::new(v.to_owned())),
        ))
    });
    let probe = http::Request::builder()
        .uri(config.cluster_url.clone())
        .body(kube::client::Body::empty())
        .map_err(|e| kube_err("building the credential probe", e))?;
    match layer.layer(capture).oneshot(probe).await {
        Ok(resp) => Ok(resp.into_body()),
        Err(e) => Err(kube_err(
            "getting credentials (token file or exec plugin)",
            e,
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_round_trips_and_checks() {
        let pem = pem_encode("CERTIFICATE", &[1, 2, 3]);
        assert!(pem.starts_with("-----BEGIN CERTIFICATE-----\nAQID\n"));
        let e = check_certificates("certificate_authority", "hello").unwrap_err();
        assert!(e.to_string().contains("certificate_authority"));
        let e = check_private_key("client_key", &Secret::new("not a key SEKRIT")).unwrap_err();
        assert!(!e.to_string().contains("SEKRIT"));
    }

    #[tokio::test]
    async fn token_file_exec_plugin_and_client_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let token_file = dir.path().join("token");
        std::fs::write(&token_file, "from-file-token\n").unwrap();
        let plugin = dir.path().join("plugin.sh");
        std::fs::write(
            &plugin,
            "#!/bin/sh\nprintf '%s' '{\"apiVersion\":\"client.authentication.k8s.io/v1\",\"kind\":\"ExecCredential\",\"status\":{\"token\":\"from-plugin-token\"}}'\n",
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&plugin, std::fs::Permissions::from_mode(0o755)).unwrap();
        let cert = BASE64.encode("-----BEGIN CERTIFICATE-----\nAQID\n-----END CERTIFICATE-----\n");
        let key = BASE64.encode("-----BEGIN PRIVATE KEY-----\nAQID\n-----END PRIVATE KEY-----\n");
        let kubeconfig = dir.path().join("config");
        std::fs::write(
            &kubeconfig,
            format!(
                r#"apiVersion: v1
kind: Config
current-context: filectx
clusters:
- name: c
  cluster:
    server: https://127.0.0.1:6443
    certificate-authority-data: {cert}
contexts:
- name: filectx
  context: {{cluster: c, user: fileuser, namespace: team-a}}
- name: execctx
  context: {{cluster: c, user: execuser}}
- name: certctx
  context: {{cluster: c, user: certuser}}
users:
- name: fileuser
  user:
    tokenFile: {}
- name: execuser
  user:
    exec:
      apiVersion: client.authentication.k8s.io/v1
      command: {}
      interactiveMode: Never
- name: certuser
  user:
    client-certificate-data: {cert}
    client-key-data: {key}
"#,
                token_file.display(),
                plugin.display()
            ),
        )
        .unwrap();
        let c = credentials_from_kubeconfig(Some(&kubeconfig), None)
            .await
            .unwrap();
        assert_eq!(c.token.as_ref().unwrap().expose(), "from-file-token");
        assert_eq!(c.namespace, "team-a");
        assert_eq!(c.server, "https://127.0.0.1:6443");
        assert!(c.certificate_authority.unwrap().contains("AQID"));
        assert!(!format!("{:?}", c.token).contains("from-file-token"));

        let c = credentials_from_kubeconfig(Some(&kubeconfig), Some("execctx"))
            .await
            .unwrap();
        assert_eq!(c.token.unwrap().expose(), "from-plugin-token");

        let c = credentials_from_kubeconfig(Some(&kubeconfig), Some("certctx"))
            .await
            .unwrap();
        assert!(c.token.is_none());
        assert!(c.client_certificate.unwrap().contains("BEGIN CERTIFICATE"));
        assert!(c.client_key.unwrap().expose().contains("BEGIN PRIVATE KEY"));
    }

    #[tokio::test]
    async fn broken_yaml_is_never_quoted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config");
        std::fs::write(&path, "apiVersion: v1\nclusters: [ SECRET-LINE-xyz: : :\n").unwrap();
        let e = credentials_from_kubeconfig(Some(&path), None)
            .await
            .unwrap_err()
            .to_string();
        assert!(!e.contains("SECRET-LINE"), "{e}");
        assert!(e.contains("not a valid kubeconfig"), "{e}");
    }
}
