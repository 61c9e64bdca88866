//! The data PodWrangler talks about: who a pod is, how to reach it, and what a command did.

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::secret::{Secret, redact_url};

/// Terminal width asked of TTY endpoints.
pub const DEFAULT_TERMINAL_COLS: u16 = 220;
/// How long a WebSocket connect (TCP, TLS, upgrade, shell init) may take.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// How long one command may run before it is interrupted.
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(30);
/// Reconnect attempts before a session gives up.
pub const MAX_RECONNECT_ATTEMPTS: u32 = 3;
/// First reconnect delay; it doubles on each attempt, with jitter.
pub const RECONNECT_BACKOFF_BASE: Duration = Duration::from_secs(2);
/// Default cap on the output kept per command (stdout and stderr each).
pub const DEFAULT_MAX_OUTPUT: usize = 4 * 1024 * 1024;

/// Which built-in provider reaches a pod.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum ProviderKind {
    /// A web terminal: `wss://HOST/exec/{service_id}/?token=JWT&cols=220&pod=POD`.
    #[default]
    #[serde(rename = "plaintty", alias = "plain_tty", alias = "PlainTTY")]
    PlainTty,
    /// The Kubernetes API server's pod exec endpoint.
    #[serde(rename = "kubernetes", alias = "k8s")]
    Kubernetes,
}

impl ProviderKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::PlainTty => "plaintty",
            ProviderKind::Kubernetes => "kubernetes",
        }
    }
}

impl fmt::Display for ProviderKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for ProviderKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "plaintty" | "plain_tty" | "tty" => Ok(ProviderKind::PlainTty),
            "kubernetes" | "k8s" => Ok(ProviderKind::Kubernetes),
            other => Err(format!(
                "unknown provider {other:?} (expected \"plaintty\" or \"kubernetes\")"
            )),
        }
    }
}

/// Who a pod is. For PlainTTY, `cluster` is the service id in the URL path.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PodIdentity {
    pub pod_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default = "default_cols")]
    pub cols: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
}

fn default_cols() -> u16 {
    DEFAULT_TERMINAL_COLS
}

impl PodIdentity {
    /// An identity for `pod_name`, with service and deployment derived from the name the way
    /// Deployments name their pods (`my-app-deploy-abc12-xyz99` -> `my-app-deploy`, `abc12`).
    pub fn new(pod_name: impl Into<String>) -> Self {
        let pod_name = pod_name.into();
        let (service, deployment) = split_pod_name(&pod_name);
        PodIdentity {
            pod_name,
            service,
            deployment,
            cluster: None,
            namespace: None,
            cols: DEFAULT_TERMINAL_COLS,
            container: None,
        }
    }

    /// `namespace/pod` (or just the pod), the label results carry.
    pub fn label(&self) -> String {
        match &self.namespace {
            Some(ns) if !ns.is_empty() => format!("{ns}/{}", self.pod_name),
            _ => self.pod_name.clone(),
        }
    }
}

/// `my-app-deploy-abc12-xyz99` -> (`my-app-deploy`, `abc12`); names with fewer than three
/// dash-separated parts have neither.
pub fn split_pod_name(pod_name: &str) -> (Option<String>, Option<String>) {
    let parts: Vec<&str> = pod_name.split('-').collect();
    if parts.len() < 3 || parts.iter().any(|p| p.is_empty()) {
        return (None, None);
    }
    let n = parts.len();
    (
        Some(parts[..n - 2].join("-")),
        Some(parts[n - 2].to_owned()),
    )
}

/// How to reach a pod through the Kubernetes API: either a cluster the daemon's administrator
/// configured (`cluster`, credentials kept by the daemon), or an explicit server with the
/// caller's own credentials (CA, client certificate; the bearer token and client key are the
/// endpoint's secrets). Never a file path or a program to run: callers cannot make the daemon
/// read its host's files or run its programs.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct KubernetesTarget {
    /// A cluster named in the daemon's configuration (`[clusters.NAME]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    /// API server URL (`https://host:6443`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    /// PEM certificates the API server's certificate must chain to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_authority: Option<String>,
    /// PEM client certificate (its key is [`PodEndpoint::client_key`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_certificate: Option<String>,
    /// Skip TLS verification of the API server (kubeconfig's `insecure-skip-tls-verify`).
    #[serde(default)]
    pub insecure_skip_tls_verify: bool,
    /// The shell started in the container; `["/bin/sh"]` when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shell: Vec<String>,
}

/// Where a provider connects. PlainTTY keeps its base URL (`wss://host[:port]`); the rest of its
/// URL comes from the identity.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "kind")]
pub enum ProviderConfig {
    #[serde(rename = "plaintty")]
    PlainTty {
        /// Scheme, host and port: `wss://k8s.provider.com` or `ws://127.0.0.1:8080`.
        base_url: String,
    },
    #[serde(rename = "kubernetes")]
    Kubernetes(KubernetesTarget),
}

impl ProviderConfig {
    pub fn kind(&self) -> ProviderKind {
        match self {
            ProviderConfig::PlainTty { .. } => ProviderKind::PlainTty,
            ProviderConfig::Kubernetes(_) => ProviderKind::Kubernetes,
        }
    }
}

/// A pod and everything needed to open a shell in it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodEndpoint {
    pub identity: PodIdentity,
    pub provider: ProviderConfig,
    /// Bearer token (PlainTTY JWT or Kubernetes token). Serialized as `***`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<Secret>,
    /// PEM private key of the Kubernetes client certificate. Serialized as `***`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_key: Option<Secret>,
}

impl fmt::Debug for PodEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PodEndpoint")
            .field("identity", &self.identity)
            .field("provider", &self.provider)
            .field("token", &self.token)
            .field("client_key", &self.client_key)
            .finish()
    }
}

/// The WebSocket request a provider builds for a pod. `Debug` redacts the URL and headers.
#[derive(Clone)]
pub struct WssSchema {
    /// Full URL, possibly carrying a token in its query (PlainTTY).
    pub url: String,
    /// Extra request headers (`Authorization`); values are secrets.
    pub headers: Vec<(String, Secret)>,
    /// `Sec-WebSocket-Protocol` offers, most preferred first.
    pub subprotocols: Vec<String>,
    /// True when frames carry a channel byte (Kubernetes); false for raw terminal text (PlainTTY).
    pub is_binary_framed: bool,
    /// True when the far end is a TTY (echo, CR/LF, prompts).
    pub tty: bool,
}

impl fmt::Debug for WssSchema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WssSchema")
            .field("url", &redact_url(&self.url))
            .field(
                "headers",
                &self
                    .headers
                    .iter()
                    .map(|(k, v)| (k.as_str(), v))
                    .collect::<Vec<_>>(),
            )
            .field("subprotocols", &self.subprotocols)
            .field("is_binary_framed", &self.is_binary_framed)
            .field("tty", &self.tty)
            .finish()
    }
}

/// What one command did in one pod.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CommandResult {
    pub command: String,
    /// `namespace/pod` or the pod name.
    pub pod_label: String,
    /// Standard output. On TTY providers stderr is merged into it.
    pub stdout: String,
    /// Standard error, where the provider keeps it apart (Kubernetes); empty otherwise.
    pub stderr: String,
    /// The command's exit status; `None` when it never finished (timeout, connection lost).
    pub exit_code: Option<i32>,
    /// Why the command did not complete, if it did not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub duration_ms: f64,
    /// True when output beyond the cap was dropped.
    #[serde(default)]
    pub truncated: bool,
    /// True when the command ran in a new shell (the previous one exited or its connection
    /// dropped: `cd` and `export` state is gone), or when it ended the shell itself.
    #[serde(default)]
    pub session_restarted: bool,
}

impl CommandResult {
    /// Completed with exit code 0.
    pub fn succeeded(&self) -> bool {
        self.error.is_none() && self.exit_code == Some(0)
    }

    /// The command's standard output (the seed's `result.output`).
    pub fn output(&self) -> &str {
        &self.stdout
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_name_splits_into_service_and_deployment() {
        let id = PodIdentity::new("my-app-deploy-abc12-xyz99");
        assert_eq!(id.service.as_deref(), Some("my-app-deploy"));
        assert_eq!(id.deployment.as_deref(), Some("abc12"));
        assert_eq!(id.cols, 220);
        assert_eq!(split_pod_name("web"), (None, None));
        assert_eq!(split_pod_name("a--b"), (None, None));
    }

    #[test]
    fn endpoint_debug_and_json_hide_the_token() {
        let ep = PodEndpoint {
            identity: PodIdentity::new("web-1"),
            provider: ProviderConfig::PlainTty {
                base_url: "wss://example".into(),
            },
            token: Some(Secret::new("tok-XYZ")),
            client_key: Some(Secret::new("key-PEM")),
        };
        for shown in [format!("{ep:?}"), serde_json::to_string(&ep).unwrap()] {
            assert!(
                !shown.contains("tok-XYZ") && !shown.contains("key-PEM"),
                "{shown}"
            );
        }
    }

    #[test]
    fn schema_debug_redacts_url_token() {
        let s = WssSchema {
            url: "wss://h/exec/1/?token=abc.def&pod=p".into(),
            headers: vec![("Authorization".into(), Secret::new("Bearer abc.def"))],
            subprotocols: vec![],
            is_binary_framed: false,
            tty: true,
        };
        assert!(!format!("{s:?}").contains("abc.def"));
    }

    #[test]
    fn provider_kind_parses_names() {
        assert_eq!(
            "PlainTTY".parse::<ProviderKind>(),
            Ok(ProviderKind::PlainTty)
        );
        assert_eq!("k8s".parse::<ProviderKind>(), Ok(ProviderKind::Kubernetes));
        assert!("ssh".parse::<ProviderKind>().is_err());
    }
}
