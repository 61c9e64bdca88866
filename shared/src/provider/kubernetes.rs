//! Kubernetes: the API server's pod exec endpoint over `v5.channel.k8s.io` (or v4), with
//! credentials and TLS from a kubeconfig as kubectl reads it (via the `kube` crate: contexts, CA,
//! insecure-skip-tls-verify, bearer token, token file, client certificates, exec plugins), or an
//! explicit server + token. Pods are listed through the API.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use kube::client::ConfigExt;
use kube::config::{KubeConfigOptions, Kubeconfig};

use crate::error::{PodError, Result};
use crate::models::{
    KubernetesTarget, PodEndpoint, PodIdentity, ProviderConfig, ProviderKind, WssSchema,
};
use crate::secret::{Secret, redact_url};
use crate::session::Transport;
use crate::session::transport::install_crypto_provider;

use super::{BoxFuture, ConnectPlan, Provider};

/// Subprotocols offered, most preferred first.
pub const SUBPROTOCOLS: [&str; 2] = ["v5.channel.k8s.io", "v4.channel.k8s.io"];

/// The Kubernetes exec provider. Stateless: everything it needs is in the endpoint's
/// [`KubernetesTarget`].
#[derive(Clone, Debug, Default)]
pub struct KubernetesProvider;

impl KubernetesProvider {
    pub fn new() -> Self {
        KubernetesProvider
    }
}

/// A target's kubeconfig, credentials and TLS worked out.
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

/// Load the kubeconfig (or use server + token), apply the target's overrides and find the
/// bearer token and TLS settings.
pub async fn resolve_kubernetes(
    target: &KubernetesTarget,
    token: Option<&Secret>,
) -> Result<ResolvedKubernetes> {
    install_crypto_provider();
    let options = KubeConfigOptions {
        context: target.context.clone(),
        cluster: None,
        user: None,
    };
    let explicit_token = token.filter(|t| !t.is_empty());
    let mut config = if let Some(path) = &target.kubeconfig {
        let kc = Kubeconfig::read_from(path)
            .map_err(|e| kube_err(&format!("cannot read kubeconfig {path}"), e))?;
        kube::Config::from_custom_kubeconfig(kc, &options)
            .await
            .map_err(|e| kube_err(&format!("kubeconfig {path}"), e))?
    } else if let Some(server) = &target.server {
        match (
            explicit_token,
            kube::Config::from_kubeconfig(&options).await,
        ) {
            // A server with its own token needs no kubeconfig at all.
            (Some(_), _) | (None, Err(_)) => kube::Config::new(parse_server(server)?),
            (None, Ok(config)) => config,
        }
    } else {
        kube::Config::from_kubeconfig(&options).await.map_err(|e| {
            kube_err(
                "no kubeconfig found (set KUBECONFIG, ~/.kube/config, or a server and a token)",
                e,
            )
        })?
    };
    if let Some(server) = &target.server {
        config.cluster_url = parse_server(server)?;
    }
    if target.insecure_skip_tls_verify {
        config.accept_invalid_certs = true;
    }
    if let Some(t) = explicit_token {
        let auth = &mut config.auth_info;
        auth.token = Some(secrecy::SecretString::from(t.expose().to_owned()));
        auth.token_file = None;
        auth.exec = None;
        auth.auth_provider = None;
        auth.username = None;
        auth.password = None;
    }
    let authorization = authorization_header(&config).await?;
    let tls = if config.cluster_url.scheme_str() == Some("https") {
        let tls = config
            .rustls_client_config()
            .map_err(|e| kube_err("TLS settings of the kubeconfig", e))?;
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

/// The `Authorization` header kube would send: bearer tokens, token files, basic auth, auth
/// providers and exec plugins all go through kube's own auth layer, applied to a probe request.
/// That runs on a blocking thread: exec plugins are run synchronously by kube, and the layer's
/// futures are not provably `Send` for the callers' async blocks.
async fn authorization_header(config: &kube::Config) -> Result<Option<Secret>> {
    use secrecy::ExposeSecret;
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
        })
    }

    fn prepare<'a>(&'a self, endpoint: &'a PodEndpoint) -> BoxFuture<'a, Result<ConnectPlan>> {
        Box::pin(async move {
            let target = target_of(endpoint)?;
            let resolved = resolve_kubernetes(target, endpoint.token.as_ref()).await?;
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
        namespace: &'a str,
        label_selector: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Vec<PodIdentity>>> {
        Box::pin(async move {
            match target {
                ProviderConfig::Kubernetes(t) => {
                    list_pods(t, token, namespace, label_selector).await
                }
                ProviderConfig::PlainTty { .. } => Err(PodError::ConfigValidation {
                    field: "provider".into(),
                    reason: "the Kubernetes provider needs a Kubernetes target".into(),
                }),
            }
        })
    }
}

/// List pods through the API (`GET /api/v1/namespaces/{ns}/pods?labelSelector=..`).
pub(super) async fn list_pods(
    target: &KubernetesTarget,
    token: Option<&Secret>,
    namespace: &str,
    label_selector: Option<&str>,
) -> Result<Vec<PodIdentity>> {
    let resolved = resolve_kubernetes(target, token).await?;
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
        let p = KubernetesProvider;
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
        let p = KubernetesProvider;
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

    #[tokio::test]
    async fn kubeconfig_token_file_and_exec_plugin_give_bearer_tokens() {
        let dir = tempfile::tempdir().unwrap();
        let token_file = dir.path().join("token");
        std::fs::write(&token_file, "from-file-token").unwrap();
        let plugin = dir.path().join("plugin.sh");
        std::fs::write(
            &plugin,
            "#!/bin/sh\nprintf '%s' '{\"apiVersion\":\"client.authentication.k8s.io/v1\",\"kind\":\"ExecCredential\",\"status\":{\"token\":\"from-plugin-token\"}}'\n",
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&plugin, std::fs::Permissions::from_mode(0o755)).unwrap();
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
    insecure-skip-tls-verify: true
contexts:
- name: filectx
  context: {{cluster: c, user: fileuser, namespace: team-a}}
- name: execctx
  context: {{cluster: c, user: execuser}}
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
"#,
                token_file.display(),
                plugin.display()
            ),
        )
        .unwrap();
        let mut target = KubernetesTarget {
            kubeconfig: Some(kubeconfig.display().to_string()),
            ..Default::default()
        };
        let r = resolve_kubernetes(&target, None).await.unwrap();
        assert_eq!(
            r.authorization.as_ref().unwrap().expose(),
            "Bearer from-file-token"
        );
        assert_eq!(r.config.default_namespace, "team-a");
        assert!(r.config.accept_invalid_certs);
        assert!(r.tls.is_some());
        assert!(!format!("{r:?}").contains("from-file-token"));

        target.context = Some("execctx".into());
        let r = resolve_kubernetes(&target, None).await.unwrap();
        assert_eq!(
            r.authorization.as_ref().unwrap().expose(),
            "Bearer from-plugin-token"
        );

        // An explicit token wins over the kubeconfig's user.
        let r = resolve_kubernetes(&target, Some(&Secret::new("explicit")))
            .await
            .unwrap();
        assert_eq!(r.authorization.unwrap().expose(), "Bearer explicit");
    }

    #[tokio::test]
    async fn explicit_server_and_token_need_no_kubeconfig() {
        let target = KubernetesTarget {
            server: Some("http://127.0.0.1:1".into()),
            ..Default::default()
        };
        let r = resolve_kubernetes(&target, Some(&Secret::new("tok")))
            .await
            .unwrap();
        assert_eq!(r.authorization.unwrap().expose(), "Bearer tok");
        assert!(r.tls.is_none());
        assert_eq!(r.config.cluster_url.to_string(), "http://127.0.0.1:1/");
    }
}
