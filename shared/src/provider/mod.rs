//! Providers: how to reach a pod's shell. A provider builds the WebSocket request, parses and
//! builds URLs, prepares the shell after connecting, finds the pod's namespace and lists pods.
//! Two are built in ([`PlainTtyProvider`], [`KubernetesProvider`]); a custom one implements
//! [`Provider`] and is handed to [`crate::session::PodSession::connect_with`].

mod kubernetes;
mod plaintty;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

pub use kubernetes::{ClusterSource, KubernetesProvider, ResolvedKubernetes, resolve_kubernetes};
pub use plaintty::{PlainTtyProvider, TTY_INIT_SCRIPT};

use crate::error::{PodError, Result};
use crate::models::{
    KubernetesTarget, PodEndpoint, PodIdentity, ProviderConfig, ProviderKind, WssSchema,
};
use crate::secret::Secret;
use crate::session::{PodSession, RunOptions, Transport};

/// A boxed `Send` future, so that [`Provider`] stays object-safe (`Arc<dyn Provider>`).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Everything needed to open the WebSocket: the request and, where the provider has its own
/// trust settings (a kubeconfig's CA, client certificate, skip-verify), the TLS configuration.
#[derive(Clone, Debug)]
pub struct ConnectPlan {
    pub schema: WssSchema,
    /// `None` uses the default roots (webpki / native) of tokio-tungstenite.
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// The namespace the provider already knows (Kubernetes), if any.
    pub namespace: Option<String>,
}

/// How to reach pods of one kind.
pub trait Provider: Send + Sync + std::fmt::Debug {
    /// Which kind this is.
    fn kind(&self) -> ProviderKind;

    /// Parse a provider URL into an endpoint; a token in the URL's query goes into
    /// [`PodEndpoint::token`].
    fn parse_url(&self, url: &str) -> Result<PodEndpoint>;

    /// Work out the WebSocket request and TLS settings for `endpoint` (may read a kubeconfig or
    /// run a credential plugin, hence async).
    fn prepare<'a>(&'a self, endpoint: &'a PodEndpoint) -> BoxFuture<'a, Result<ConnectPlan>>;

    /// The WebSocket request for `endpoint`.
    fn build_wss_schema<'a>(
        &'a self,
        endpoint: &'a PodEndpoint,
    ) -> BoxFuture<'a, Result<WssSchema>> {
        Box::pin(async move { self.prepare(endpoint).await.map(|plan| plan.schema) })
    }

    /// Prepare a freshly connected shell for framed commands (turn off echo and prompts on a
    /// TTY). The engine then synchronises on a marker, so output written before that point, such
    /// as a banner or the echo of this init, is discarded.
    fn init_shell<'a>(
        &'a self,
        transport: &'a mut Transport,
        schema: &'a WssSchema,
    ) -> BoxFuture<'a, Result<()>>;

    /// The pod's namespace: `$POD_NAMESPACE`, else the service account's namespace file, as the
    /// shell sees them; else the namespace the endpoint already names.
    fn detect_namespace<'a>(&'a self, session: &'a PodSession) -> BoxFuture<'a, Result<String>> {
        Box::pin(detect_namespace_in_shell(session))
    }

    /// Pods the provider can reach in `namespace` (empty: all namespaces), optionally filtered
    /// by a label selector.
    fn list_pods<'a>(
        &'a self,
        target: &'a ProviderConfig,
        token: Option<&'a Secret>,
        client_key: Option<&'a Secret>,
        namespace: &'a str,
        label_selector: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Vec<PodIdentity>>>;
}

/// The shell side of [`Provider::detect_namespace`], shared by the built-in providers.
pub async fn detect_namespace_in_shell(session: &PodSession) -> Result<String> {
    let probe = "printf '%s' \"${POD_NAMESPACE:-$(cat /var/run/secrets/kubernetes.io/serviceaccount/namespace 2>/dev/null)}\"";
    let result = session
        .run(
            probe,
            RunOptions {
                timeout: std::time::Duration::from_secs(10),
                check: false,
                max_output: 4096,
                ..RunOptions::default()
            },
        )
        .await
        .map_err(|e| PodError::NamespaceDetection(e.to_string()))?;
    let ns = result.stdout.trim();
    if !ns.is_empty() {
        return Ok(ns.to_owned());
    }
    match &session.endpoint().identity.namespace {
        Some(ns) if !ns.is_empty() => Ok(ns.clone()),
        _ => Err(PodError::NamespaceDetection(
            "neither $POD_NAMESPACE nor the service account namespace file is set in the pod"
                .into(),
        )),
    }
}

/// The built-in provider of `kind`.
pub fn provider_for(kind: ProviderKind) -> Arc<dyn Provider> {
    match kind {
        ProviderKind::PlainTty => Arc::new(PlainTtyProvider::default()),
        ProviderKind::Kubernetes => Arc::new(KubernetesProvider::new()),
    }
}

/// Parse a provider URL into an endpoint (token taken from the URL's query where it has one).
pub fn endpoint_from_url(kind: ProviderKind, url: &str) -> Result<PodEndpoint> {
    provider_for(kind).parse_url(url)
}

/// List pods through the Kubernetes API of an explicit target (server, CA, token or client
/// certificate), label selector optional. An empty namespace lists all namespaces.
pub async fn list_pods(
    target: &KubernetesTarget,
    token: Option<&Secret>,
    client_key: Option<&Secret>,
    namespace: &str,
    label_selector: Option<&str>,
) -> Result<Vec<PodIdentity>> {
    kubernetes::list_pods(target, token, client_key, namespace, label_selector).await
}
