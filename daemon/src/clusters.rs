//! Clusters the daemon's administrator names in its config (`[clusters.NAME]`): a kubeconfig
//! and context, or a server with a token file and a CA file. Only these make the daemon read
//! files or run exec plugins; API callers refer to them by name. Credentials are resolved once
//! per cluster and reused for a few minutes (short-lived tokens are refreshed after that), so a
//! thousand pods of one cluster cost one plugin run, not a thousand.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use podwrangler::api::ClusterInfo;
use podwrangler::kubeconfig::{KubeCredentials, credentials_from_kubeconfig};
use podwrangler::provider::{BoxFuture, ClusterSource};
use podwrangler::{PodError, Secret};
use serde::Deserialize;

/// How long resolved credentials are reused before token files are re-read and exec plugins
/// re-run.
pub const CREDENTIALS_TTL: Duration = Duration::from_secs(300);

/// One `[clusters.NAME]` table.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// A kubeconfig file (with `context`), read as kubectl reads it.
    pub kubeconfig: Option<PathBuf>,
    pub context: Option<String>,
    /// Or: the API server, a file holding a bearer token, and a PEM CA file.
    pub server: Option<String>,
    pub token_file: Option<PathBuf>,
    pub ca_file: Option<PathBuf>,
    #[serde(default)]
    pub insecure_skip_tls_verify: bool,
}

impl ClusterConfig {
    /// Checks the table is one of the two forms; the error says what is wrong.
    pub fn check(&self) -> Result<(), String> {
        match (&self.kubeconfig, &self.server) {
            (Some(_), Some(_)) => Err("give either kubeconfig or server, not both".into()),
            (None, None) => Err("needs kubeconfig (and context) or server and token_file".into()),
            (Some(_), None) if self.token_file.is_some() || self.ca_file.is_some() => {
                Err("token_file and ca_file go with server, not kubeconfig".into())
            }
            (None, Some(server)) => {
                if self.context.is_some() {
                    return Err("context goes with kubeconfig, not server".into());
                }
                if self.token_file.is_none() {
                    return Err("server needs token_file".into());
                }
                match url::Url::parse(server) {
                    Ok(u) if matches!(u.scheme(), "https" | "http") => Ok(()),
                    _ => Err(format!("server {server:?} must be an http(s) URL")),
                }
            }
            _ => Ok(()),
        }
    }

    fn source(&self) -> &'static str {
        if self.kubeconfig.is_some() {
            "kubeconfig"
        } else {
            "token_file"
        }
    }

    async fn resolve(&self) -> Result<KubeCredentials, PodError> {
        if let Some(path) = &self.kubeconfig {
            let mut creds =
                credentials_from_kubeconfig(Some(path), self.context.as_deref()).await?;
            creds.insecure_skip_tls_verify |= self.insecure_skip_tls_verify;
            return Ok(creds);
        }
        let read = |what: &str, path: &PathBuf| {
            std::fs::read_to_string(path).map_err(|e| {
                PodError::Kubernetes(format!(
                    "cannot read the {what} {}: {}",
                    path.display(),
                    e.kind()
                ))
            })
        };
        let token = match &self.token_file {
            Some(p) => Some(Secret::new(read("token file", p)?.trim())),
            None => None,
        };
        let certificate_authority = match &self.ca_file {
            Some(p) => {
                let pem = read("CA file", p)?;
                podwrangler::kubeconfig::check_certificates("ca_file", &pem)?;
                Some(pem)
            }
            None => None,
        };
        Ok(KubeCredentials {
            server: self.server.clone().unwrap_or_default(),
            certificate_authority,
            insecure_skip_tls_verify: self.insecure_skip_tls_verify,
            token,
            client_certificate: None,
            client_key: None,
            namespace: "default".into(),
        })
    }
}

/// The configured clusters and their cached credentials. Reloaded on SIGHUP.
#[derive(Debug, Default)]
pub struct ClusterSet {
    configs: RwLock<BTreeMap<String, ClusterConfig>>,
    cache: tokio::sync::Mutex<HashMap<String, (Instant, KubeCredentials)>>,
}

impl ClusterSet {
    pub fn new(configs: BTreeMap<String, ClusterConfig>) -> Arc<ClusterSet> {
        Arc::new(ClusterSet {
            configs: RwLock::new(configs),
            cache: Default::default(),
        })
    }

    /// Replaces the configured clusters (SIGHUP) and forgets cached credentials.
    pub async fn replace(&self, configs: BTreeMap<String, ClusterConfig>) {
        *self.configs.write().unwrap_or_else(|e| e.into_inner()) = configs;
        self.cache.lock().await.clear();
    }

    pub fn contains(&self, name: &str) -> bool {
        self.configs
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(name)
    }

    /// Names and credential sources, never the credentials.
    pub fn list(&self) -> Vec<ClusterInfo> {
        self.configs
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(name, c)| ClusterInfo {
                name: name.clone(),
                source: c.source().into(),
            })
            .collect()
    }

    /// The credentials of `name`, from the cache while they are fresh. One resolution runs at a
    /// time, so a start-up with many pods of one cluster runs its exec plugin once.
    pub async fn credentials_of(&self, name: &str) -> Result<KubeCredentials, PodError> {
        let mut cache = self.cache.lock().await;
        if let Some((at, creds)) = cache.get(name)
            && at.elapsed() < CREDENTIALS_TTL
        {
            return Ok(creds.clone());
        }
        let config = self
            .configs
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
            .ok_or_else(|| PodError::ConfigValidation {
                field: "cluster".into(),
                reason: format!("no cluster named {name:?} in the daemon's configuration"),
            })?;
        match config.resolve().await {
            Ok(creds) => {
                cache.insert(name.to_owned(), (Instant::now(), creds.clone()));
                Ok(creds)
            }
            Err(e) => {
                tracing::warn!(cluster = %name, error = %e, "cannot get the cluster's credentials");
                Err(PodError::Kubernetes(format!(
                    "credentials of cluster {name:?} are unavailable: {e}"
                )))
            }
        }
    }
}

impl ClusterSource for ClusterSet {
    fn credentials<'a>(
        &'a self,
        name: &'a str,
    ) -> BoxFuture<'a, Result<KubeCredentials, PodError>> {
        Box::pin(self.credentials_of(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cluster_is_one_of_two_forms() {
        let kc = ClusterConfig {
            kubeconfig: Some("/etc/podwrangler/prod.kubeconfig".into()),
            context: Some("prod".into()),
            ..Default::default()
        };
        assert!(kc.check().is_ok());
        let tf = ClusterConfig {
            server: Some("https://10.0.0.1:6443".into()),
            token_file: Some("/etc/podwrangler/prod.token".into()),
            ca_file: Some("/etc/podwrangler/prod-ca.pem".into()),
            ..Default::default()
        };
        assert!(tf.check().is_ok());
        assert!(ClusterConfig::default().check().is_err());
        let both = ClusterConfig {
            server: Some("https://h".into()),
            ..kc.clone()
        };
        assert!(both.check().is_err());
        let no_token = ClusterConfig {
            token_file: None,
            ..tf
        };
        assert!(no_token.check().is_err());
    }

    #[tokio::test]
    async fn token_file_clusters_are_read_and_cached() {
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("token");
        std::fs::write(&token, "first\n").unwrap();
        let set = ClusterSet::new(BTreeMap::from([(
            "prod".to_owned(),
            ClusterConfig {
                server: Some("https://127.0.0.1:6443".into()),
                token_file: Some(token.clone()),
                ..Default::default()
            },
        )]));
        assert_eq!(set.list()[0].source, "token_file");
        let c = set.credentials_of("prod").await.unwrap();
        assert_eq!(c.token.unwrap().expose(), "first");
        std::fs::write(&token, "second").unwrap();
        // Cached until the TTL passes or the set is reloaded.
        let c = set.credentials_of("prod").await.unwrap();
        assert_eq!(c.token.unwrap().expose(), "first");
        let configs = set.configs.read().unwrap().clone();
        set.replace(configs).await;
        let c = set.credentials_of("prod").await.unwrap();
        assert_eq!(c.token.unwrap().expose(), "second");
        assert!(set.credentials_of("staging").await.is_err());
    }
}
