//! Kubernetes: the API server's pod exec endpoint over `v5.channel.k8s.io` (or v4), with
//! explicit credentials (server, CA, bearer token or client certificate) or those of a cluster
//! named by a [`ClusterSource`] (the daemon's administrator-configured clusters). Reading a
//! kubeconfig is [`crate::kubeconfig`]'s job, done by whoever owns the file. Pods are listed
//! through the API.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use kube::client::ConfigExt;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

use crate::error::{PodError, Result};
use crate::kubeconfig::KubeCredentials;
use crate::models::{
    KubernetesTarget, PodEndpoint, PodIdentity, ProviderConfig, ProviderKind, WssSchema,
};
use crate::secret::{Secret, redact_url};
use crate::session::Transport;
use crate::session::transport::install_crypto_provider;

use super::{BoxFuture, ConnectPlan, Provider};

/// Subprotocols offered, most preferred first.
pub const SUBPROTOCOLS: [&str; 2] = ["v5.channel.k8s.io", "v4.channel.k8s.io"];

/// Where the credentials of named clusters come from (the daemon's `[clusters.NAME]`).
pub trait ClusterSource: Send + Sync + std::fmt::Debug {
    /// The server and credentials of cluster `name`, fresh enough to use now.
    fn credentials<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<KubeCredentials>>;
}

/// The Kubernetes exec provider. Everything it needs is in the endpoint's [`KubernetesTarget`],
/// except the credentials of named clusters, which come from its [`ClusterSource`].
#[derive(Clone, Debug, Default)]
pub struct KubernetesProvider {
    clusters: Option<Arc<dyn ClusterSource>>,
}

impl KubernetesProvider {
    pub fn new() -> Self {
        KubernetesProvider::default()
    }

    /// A provider that resolves `cluster` references through `clusters`.
    pub fn with_clusters(clusters: Arc<dyn ClusterSource>) -> Self {
        KubernetesProvider {
            clusters: Some(clusters),
        }
    }

    /// The explicit target and secrets for `target`: itself, or its named cluster's.
    pub async fn explicit(
        &self,
        target: &KubernetesTarget,
        token: Option<&Secret>,
        client_key: Option<&Secret>,
    ) -> Result<(KubernetesTarget, Option<Secret>, Option<Secret>)> {
        let Some(name) = target.cluster.as_deref() else {
            return Ok((target.clone(), token.cloned(), client_key.cloned()));
        };
        let source = self
            .clusters
            .as_ref()
            .ok_or_else(|| PodError::ConfigValidation {
                field: "cluster".into(),
                reason: format!("no cluster source knows cluster {name:?}"),
            })?;
        let creds = source.credentials(name).await?;
        let explicit = KubernetesTarget {
            shell: target.shell.clone(),
            ..creds.target()
        };
        Ok((explicit, creds.token, creds.client_key))
    }
}

/// A target's credentials and TLS worked out.
pub struct ResolvedKubernetes {
    /// The `kube` client configuration (server, TLS, auth).
    pub config: kube::Config,
    /// The `Authorization` header value to send, when the credentials give one.
    pub authorization: Option<Secret>,
    /// TLS settings for `https` servers.
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

impl std::fmt::Debug for ResolvedKubernetes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResolvedKubernetes")
            .field("server", &self.config.cluster_url.to_string())
            .field("namespace", &self.config.default_namespace)
            .field("authorization", &self.authorization)
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

fn kube_err(context: &str, e: impl std::fmt::Display) -> PodError {
    PodError::Kubernetes(format!("{context}: {e}"))
}

/// Builds the client configuration of an explicit target (no cluster reference): server, CA,
/// skip-verify, bearer token, client certificate. Credentials are refused over plain http to a
/// host that is not loopback.
pub fn resolve_kubernetes(
    target: &KubernetesTarget,
    token: Option<&Secret>,
    client_key: Option<&Secret>,
) -> Result<ResolvedKubernetes> {
    install_crypto_provider();
    let server = target
        .server
        .as_deref()
        .ok_or_else(|| PodError::ConfigValidation {
            field: "server".into(),
            reason: "a Kubernetes target needs a server or a configured cluster".into(),
        })?;
    let mut config = kube::Config::new(parse_server(server)?);
    config.accept_invalid_certs = target.insecure_skip_tls_verify;
    if let Some(pem) = &target.certificate_authority {
        let certs: Vec<Vec<u8>> = CertificateDer::pem_slice_iter(pem.as_bytes())
            .map(|c| c.map(|c| c.to_vec()))
            .collect::<std::result::Result<_, _>>()
            .map_err(|_| PodError::ConfigValidation {
                field: "certificate_authority".into(),
                reason: "expected PEM certificates".into(),
            })?;
        config.root_cert = Some(certs);
    }
    let token = token.filter(|t| !t.is_empty());
    match (&target.client_certificate, client_key) {
        (Some(cert), Some(key)) => {
            config.auth_info.client_certificate_data = Some(BASE64.encode(cert));
            config.auth_info.client_key_data =
                Some(secrecy::SecretString::from(BASE64.encode(key.expose())));
        }
        (None, None) => {}
        _ => {
            return Err(PodError::ConfigValidation {
                field: "client_key".into(),
                reason: "a client certificate needs its key and a key its certificate".into(),
            });
        }
    }
    if token.is_some() || client_key.is_some() {
        let url = config.cluster_url.to_string();
        if let Some(why) = crate::secret::cleartext_refusal(&url) {
            return Err(PodError::ConfigValidation {
                field: "server".into(),
                reason: why,
            });
        }
    }
    let authorization = token.map(|t| {
        config.auth_info.token = Some(secrecy::SecretString::from(t.expose().to_owned()));
        Secret::new(format!("Bearer {}", t.expose()))
    });
    let tls = if config.cluster_url.scheme_str() == Some("https") {
        let tls = config
            .rustls_client_config()
            .map_err(|e| kube_err("TLS settings", e))?;
        Some(Arc::new(tls))
    } else {
        None
    };
    Ok(ResolvedKubernetes {
        config,
        authorization,
        tls,
    })
}

fn parse_server(server: &str) -> Result<http::Uri> {
    let normalized = server
        .strip_prefix("wss://")
        .map(|r| format!("https://{r}"))
        .or_else(|| server.strip_prefix("ws://").map(|r| format!("http://{r}")))
        .unwrap_or_else(|| server.to_owned());
    let uri: http::Uri = normalized.parse().map_err(|e| PodError::ConfigValidation {
        field: "server".into(),
        reason: format!("{}: {e}", redact_url(server)),
    })?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
        return Err(PodError::ConfigValidation {
            field: "server".into(),
            reason: format!("{} must be an http(s) URL", redact_url(server)),
        });
    }
    Ok(uri)
}

/// `wss://server/api/v1/namespaces/{ns}/pods/{pod}/exec?command=..&stdin=true&...&tty=false`.
pub fn exec_url(
    server: &http::Uri,
    namespace: &str,
    identity: &PodIdentity,
    shell: &[String],
) -> String {
    let base = server.to_string();
    let base = base.trim_end_matches('/');
    let base = base
        .strip_prefix("https://")
        .map(|r| format!("wss://{r}"))
        .or_else(|| base.strip_prefix("http://").map(|r| format!("ws://{r}")))
        .unwrap_or_else(|| base.to_owned());
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    if shell.is_empty() {
        q.append_pair("command", "/bin/sh");
    } else {
        for part in shell {
            q.append_pair("command", part);
        }
    }
    q.append_pair("stdin", "true");
    q.append_pair("stdout", "true");
    q.append_pair("stderr", "true");
    q.append_pair("tty", "false");
    if let Some(c) = identity.container.as_deref().filter(|c| !c.is_empty()) {
        q.append_pair("container", c);
    }
    let seg = |s: &str| -> String { url::form_urlencoded::byte_serialize(s.as_bytes()).collect() };
    format!(
        "{base}/api/v1/namespaces/{}/pods/{}/exec?{}",
        seg(namespace),
        seg(&identity.pod_name),
        q.finish()
    )
}

fn target_of(endpoint: &PodEndpoint) -> Result<&KubernetesTarget> {
    match &endpoint.provider {
        ProviderConfig::Kubernetes(t) => Ok(t),
        ProviderConfig::PlainTty { .. } => Err(PodError::ConfigValidation {
            field: "provider".into(),
            reason: "the Kubernetes provider needs a Kubernetes endpoint".into(),
        }),
    }
}

impl Provider for KubernetesProvider {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Kubernetes
    }

    /// Accepts the exec URL (`https|wss|http|ws://server/api/v1/namespaces/NS/pods/POD/exec?...`)
    /// or the pod URL (`.../namespaces/NS/pods/POD`); `container` and `command` are kept.
    fn parse_url(&self, url: &str) -> Result<PodEndpoint> {
        let shown = redact_url(url);
        let err = |reason: &str| PodError::UrlParse {
            url: shown.clone(),
            reason: reason.to_owned(),
        };
        let parsed = url::Url::parse(url).map_err(|e| err(&e.to_string()))?;
        let scheme = match parsed.scheme() {
            "https" | "wss" => "https",
            "http" | "ws" => "http",
            _ => return Err(err("expected an http(s):// or ws(s):// URL")),
        };
        let host = parsed
            .host_str()
            .ok_or_else(|| err("the URL has no host"))?;
        let segments: Vec<&str> = parsed
            .path_segments()
            .map(|s| s.collect())
            .unwrap_or_default();
        let ns_at = segments
            .iter()
            .position(|s| *s == "namespaces")
            .ok_or_else(|| err("expected a path like /api/v1/namespaces/NS/pods/POD/exec"))?;
        let namespace = segments
            .get(ns_at + 1)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| err("the namespace is missing"))?;
        if segments.get(ns_at + 2) != Some(&"pods") {
            return Err(err("expected /pods/POD after the namespace"));
        }
        let pod = segments
            .get(ns_at + 3)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| err("the pod name is missing"))?;
        match segments.get(ns_at + 4) {
            None | Some(&"exec") | Some(&"") => {}
            Some(_) => return Err(err("only the pod or its /exec path is accepted")),
        }
        // Everything before /api/v1 is the server (API servers behind a path prefix).
        let api_at = segments[..ns_at]
            .iter()
            .rposition(|s| *s == "api")
            .unwrap_or(ns_at);
        let mut server = format!("{scheme}://{host}");
        if let Some(port) = parsed.port() {
            server.push_str(&format!(":{port}"));
        }
        let prefix = segments[..api_at].join("/");
        if !prefix.is_empty() {
            server.push('/');
            server.push_str(&prefix);
        }
        let mut shell = Vec::new();
        let mut container = None;
        let mut token = None;
        for (k, v) in parsed.query_pairs() {
            match k.as_ref() {
                "command" => shell.push(v.into_owned()),
                "container" if !v.is_empty() => container = Some(v.into_owned()),
                "token" if !v.is_empty() => token = Some(Secret::new(v.into_owned())),
                _ => {}
            }
        }
        let mut identity = PodIdentity::new(*pod);
        identity.namespace = Some((*namespace).to_owned());
        identity.container = container;
        Ok(PodEndpoint {
            identity,
            provider: ProviderConfig::Kubernetes(KubernetesTarget {
                server: Some(server),
                shell,
                ..Default::default()
            }),
            token,
            client_key: None,
        })
    }

    fn prepare<'a>(&'a self, endpoint: &'a PodEndpoint) -> BoxFuture<'a, Result<ConnectPlan>> {
        Box::pin(async move {
            let (target, token, client_key) = self
                .explicit(
                    target_of(endpoint)?,
                    endpoint.token.as_ref(),
                    endpoint.client_key.as_ref(),
                )
                .await?;
            let target = &target;
            let resolved = resolve_kubernetes(target, token.as_ref(), client_key.as_ref())?;
            let namespace = endpoint
                .identity
                .namespace
                .clone()
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| resolved.config.default_namespace.clone());
            let url = exec_url(
                &resolved.config.cluster_url,
                &namespace,
                &endpoint.identity,
                &target.shell,
            );
            let headers = resolved
                .authorization
                .map(|v| vec![("Authorization".to_owned(), v)])
                .unwrap_or_default();
            Ok(ConnectPlan {
                schema: WssSchema {
                    url,
                    headers,
                    subprotocols: SUBPROTOCOLS.iter().map(|s| (*s).to_owned()).collect(),
                    is_binary_framed: true,
                    tty: false,
                },
                tls: resolved.tls,
                namespace: Some(namespace),
            })
        })
    }

    fn init_shell<'a>(
        &'a self,
        _transport: &'a mut Transport,
        _schema: &'a WssSchema,
    ) -> BoxFuture<'a, Result<()>> {
        // A pipe-fed shell has no echo, prompt or line editing to turn off.
        Box::pin(async { Ok(()) })
    }

    fn list_pods<'a>(
        &'a self,
        target: &'a ProviderConfig,
        token: Option<&'a Secret>,
        client_key: Option<&'a Secret>,
        namespace: &'a str,
        label_selector: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Vec<PodIdentity>>> {
        Box::pin(async move {
            match target {
                ProviderConfig::Kubernetes(t) => {
                    let (t, token, key) = self.explicit(t, token, client_key).await?;
                    list_pods(&t, token.as_ref(), key.as_ref(), namespace, label_selector).await
                }
                ProviderConfig::PlainTty { .. } => Err(PodError::ConfigValidation {
                    field: "provider".into(),
                    reason: "the Kubernetes provider needs a Kubernetes target".into(),
                }),
            }
        })
    }
}

/// List pods through the API (`GET /api/v1/namespaces/{ns}/pods?labelSelector=..`) of an
/// explicit target.
pub(super) async fn list_pods(
    target: &KubernetesTarget,
    token: Option<&Secret>,
    client_key: Option<&Secret>,
    namespace: &str,
    label_selector: Option<&str>,
) -> Result<Vec<PodIdentity>> {
    let resolved = resolve_kubernetes(target, token, client_key)?;
    let client = kube::Client::try_from(resolved.config)
        .map_err(|e| kube_err("cannot build an API client", e))?;
    let api: Api<Pod> = if namespace.is_empty() {
        Api::all(client)
    } else {
        Api::namespaced(client, namespace)
    };
    let mut params = ListParams::default();
    if let Some(sel) = label_selector.filter(|s| !s.trim().is_empty()) {
        params = params.labels(sel);
    }
    let list = api
        .list(&params)
        .await
        .map_err(|e| kube_err("listing pods", e))?;
    Ok(list
        .items
        .into_iter()
        .filter_map(|pod| {
            let name = pod.metadata.name?;
            let mut id = PodIdentity::new(name);
            id.namespace = pod
                .metadata
                .namespace
                .or_else(|| (!namespace.is_empty()).then(|| namespace.to_owned()));
            Some(id)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_url_has_the_shell_streams_and_container() {
        let server: http::Uri = "https://k8s.example.com:6443".parse().unwrap();
        let mut id = PodIdentity::new("web-5d8f7-00001");
        id.container = Some("app".into());
        let url = exec_url(&server, "prod", &id, &[]);
        assert_eq!(
            url,
            "wss://k8s.example.com:6443/api/v1/namespaces/prod/pods/web-5d8f7-00001/exec?command=%2Fbin%2Fsh&stdin=true&stdout=true&stderr=true&tty=false&container=app"
        );
        let http: http::Uri = "http://127.0.0.1:8080/".parse().unwrap();
        let url = exec_url(
            &http,
            "default",
            &PodIdentity::new("p"),
            &["bash".into(), "-l".into()],
        );
        assert!(
            url.starts_with(
                "ws://127.0.0.1:8080/api/v1/namespaces/default/pods/p/exec?command=bash&command=-l&"
            ),
            "{url}"
        );
    }

    #[test]
    fn parses_exec_urls_and_round_trips() {
        let p = KubernetesProvider::new();
        let url = "wss://k8s.example.com:6443/api/v1/namespaces/prod/pods/web-5d8f7-00001/exec?command=%2Fbin%2Fsh&stdin=true&stdout=true&stderr=true&tty=false&container=app";
        let ep = p.parse_url(url).unwrap();
        assert_eq!(ep.identity.pod_name, "web-5d8f7-00001");
        assert_eq!(ep.identity.namespace.as_deref(), Some("prod"));
        assert_eq!(ep.identity.container.as_deref(), Some("app"));
        let ProviderConfig::Kubernetes(t) = &ep.provider else {
            panic!("not kubernetes")
        };
        assert_eq!(t.server.as_deref(), Some("https://k8s.example.com:6443"));
        assert_eq!(t.shell, vec!["/bin/sh".to_owned()]);
        let server = parse_server(t.server.as_deref().unwrap()).unwrap();
        assert_eq!(exec_url(&server, "prod", &ep.identity, &t.shell), url);

        let ep = p
            .parse_url("https://rancher.example/k8s/clusters/c-1/api/v1/namespaces/ns/pods/pod-a")
            .unwrap();
        let ProviderConfig::Kubernetes(t) = &ep.provider else {
            panic!("not kubernetes")
        };
        assert_eq!(
            t.server.as_deref(),
            Some("https://rancher.example/k8s/clusters/c-1")
        );
    }

    #[test]
    fn rejects_urls_that_are_not_pods() {
        let p = KubernetesProvider::new();
        for url in [
            "ftp://h/api/v1/namespaces/a/pods/b",
            "https://h/api/v1/pods",
            "https://h/api/v1/namespaces/a/services/b",
            "https://h/api/v1/namespaces/a/pods/b/log?token=SEKRIT",
        ] {
            let e = p.parse_url(url).unwrap_err();
            assert!(matches!(e, PodError::UrlParse { .. }), "{url}");
            assert!(!e.to_string().contains("SEKRIT"));
        }
    }

    #[test]
    fn server_must_be_http() {
        assert!(parse_server("https://h:6443").is_ok());
        assert_eq!(
            parse_server("wss://h:6443").unwrap().scheme_str(),
            Some("https")
        );
        assert!(parse_server("h:6443").is_err());
        assert!(parse_server("ftp://h").is_err());
    }

    #[test]
    fn explicit_server_and_token() {
        let target = KubernetesTarget {
            server: Some("http://127.0.0.1:1".into()),
            ..Default::default()
        };
        let r = resolve_kubernetes(&target, Some(&Secret::new("tok")), None).unwrap();
        assert_eq!(r.authorization.unwrap().expose(), "Bearer tok");
        assert!(r.tls.is_none());
        assert_eq!(r.config.cluster_url.to_string(), "http://127.0.0.1:1/");
    }

    #[test]
    fn credentials_never_go_in_clear_text_off_loopback() {
        let target = KubernetesTarget {
            server: Some("http://10.1.2.3:8080".into()),
            ..Default::default()
        };
        let e = resolve_kubernetes(&target, Some(&Secret::new("tok")), None).unwrap_err();
        assert!(e.to_string().contains("clear text"), "{e}");
        // Without credentials there is nothing to leak.
        assert!(resolve_kubernetes(&target, None, None).is_ok());
    }

    #[test]
    fn a_target_without_server_or_cluster_is_refused() {
        let e = resolve_kubernetes(&KubernetesTarget::default(), None, None).unwrap_err();
        assert!(matches!(e, PodError::ConfigValidation { .. }), "{e}");
    }

    #[tokio::test]
    async fn cluster_references_need_a_source() {
        let target = KubernetesTarget {
            cluster: Some("prod".into()),
            ..Default::default()
        };
        let e = KubernetesProvider::new()
            .explicit(&target, None, None)
            .await
            .unwrap_err();
        assert!(e.to_string().contains("prod"), "{e}");
    }
}
