//! Clusters the daemon's administrator names in its config (`[clusters.NAME]`): a kubeconfig
//! and context, a server with a token file and a CA file, or the daemon's own pod's service
//! account (`in_cluster = true`). Only these make the daemon read files or run exec plugins; API
//! callers refer to them by name. Credentials are resolved once per cluster and reused for a few
//! minutes (short-lived tokens are refreshed after that), so a thousand pods of one cluster cost
//! one plugin run, not a thousand.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
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

/// How long in-cluster credentials are reused before the service account's files are read
/// again. The kubelet rotates the projected token when 80% of its lifetime has passed, and
/// client-go and the kube crate re-read it every minute; so does the daemon.
pub const IN_CLUSTER_TTL: Duration = Duration::from_secs(60);

/// Where the kubelet mounts a pod's service account: `token`, `ca.crt`, `namespace`.
pub const SERVICE_ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// Reads an environment variable (`KUBERNETES_SERVICE_HOST`, `KUBERNETES_SERVICE_PORT`); an
/// empty value counts as unset. Tests give their own.
pub type EnvLookup = fn(&str) -> Option<String>;

fn process_env(key: &str) -> Option<String> {
    std::env::var(key).ok().filter(|v| !v.trim().is_empty())
}

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
    /// Or: the service account of the pod the daemon runs in, as client-go's
    /// `rest.InClusterConfig` finds it: the token and CA the kubelet mounts, the server from
    /// `KUBERNETES_SERVICE_HOST` and `KUBERNETES_SERVICE_PORT`.
    #[serde(default)]
    pub in_cluster: bool,
    /// Where the service account's `token`, `ca.crt` and `namespace` are (default
    /// [`SERVICE_ACCOUNT_DIR`]); only for tests and unusual mounts.
    pub service_account_dir: Option<PathBuf>,
}

impl ClusterConfig {
    /// Checks the table is one of the three forms; the error says what is wrong.
    pub fn check(&self) -> Result<(), String> {
        if self.in_cluster {
            let others = [
                ("kubeconfig", self.kubeconfig.is_some()),
                ("context", self.context.is_some()),
                ("server", self.server.is_some()),
                ("token_file", self.token_file.is_some()),
                ("ca_file", self.ca_file.is_some()),
                ("insecure_skip_tls_verify", self.insecure_skip_tls_verify),
            ];
            return match others.iter().find(|(_, set)| *set) {
                Some((key, _)) => Err(format!(
                    "in_cluster uses the pod's service account; {key} does not go with it"
                )),
                None => Ok(()),
            };
        }
        if self.service_account_dir.is_some() {
            return Err("service_account_dir goes with in_cluster = true".into());
        }
        match (&self.kubeconfig, &self.server) {
            (Some(_), Some(_)) => Err("give either kubeconfig or server, not both".into()),
            (None, None) => Err(
                "needs kubeconfig (and context), server and token_file, or in_cluster = true"
                    .into(),
            ),
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
        if self.in_cluster {
            "in_cluster"
        } else if self.kubeconfig.is_some() {
            "kubeconfig"
        } else {
            "token_file"
        }
    }

    /// How long resolved credentials are reused.
    fn ttl(&self) -> Duration {
        if self.in_cluster {
            IN_CLUSTER_TTL
        } else {
            CREDENTIALS_TTL
        }
    }

    async fn resolve(&self, env: EnvLookup) -> Result<KubeCredentials, PodError> {
        if self.in_cluster {
            return self.resolve_in_cluster(env);
        }
        if let Some(path) = &self.kubeconfig {
            let mut creds =
                credentials_from_kubeconfig(Some(path), self.context.as_deref()).await?;
            creds.insecure_skip_tls_verify |= self.insecure_skip_tls_verify;
            return Ok(creds);
        }
        let token = match &self.token_file {
            Some(p) => Some(read_token(p)?),
            None => None,
        };
        let certificate_authority = match &self.ca_file {
            Some(p) => Some(read_ca(p)?),
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

    /// The pod's service account, read afresh: the kubelet replaces the token file (an atomic
    /// symlink swap) well before the old token expires.
    fn resolve_in_cluster(&self, env: EnvLookup) -> Result<KubeCredentials, PodError> {
        let dir = self
            .service_account_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from(SERVICE_ACCOUNT_DIR));
        let server = in_cluster_server(
            env("KUBERNETES_SERVICE_HOST").as_deref(),
            env("KUBERNETES_SERVICE_PORT").as_deref(),
        )?;
        let token = read_token(&dir.join("token"))?;
        let certificate_authority = read_ca(&dir.join("ca.crt"))?;
        // The pod's own namespace; a missing file is not an error (client-go falls back too).
        let namespace = std::fs::read_to_string(dir.join("namespace"))
            .ok()
            .map(|n| n.trim().to_owned())
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| "default".into());
        Ok(KubeCredentials {
            server,
            certificate_authority: Some(certificate_authority),
            insecure_skip_tls_verify: false,
            token: Some(token),
            client_certificate: None,
            client_key: None,
            namespace,
        })
    }
}

fn read_file(what: &str, path: &Path) -> Result<String, PodError> {
    std::fs::read_to_string(path).map_err(|e| {
        PodError::Kubernetes(format!(
            "cannot read the {what} {}: {}",
            path.display(),
            e.kind()
        ))
    })
}

fn read_token(path: &Path) -> Result<Secret, PodError> {
    let token = read_file("token file", path)?;
    let token = token.trim();
    if token.is_empty() {
        return Err(PodError::Kubernetes(format!(
            "the token file {} is empty",
            path.display()
        )));
    }
    Ok(Secret::new(token))
}

fn read_ca(path: &Path) -> Result<String, PodError> {
    let pem = read_file("CA file", path)?;
    podwrangler::kubeconfig::check_certificates("ca_file", &pem)?;
    Ok(pem)
}

/// `https://HOST:PORT` from the variables the kubelet sets in every pod, an IPv6 host in
/// brackets (as client-go's `net.JoinHostPort`).
pub fn in_cluster_server(host: Option<&str>, port: Option<&str>) -> Result<String, PodError> {
    let (Some(host), Some(port)) = (
        host.map(str::trim).filter(|h| !h.is_empty()),
        port.map(str::trim).filter(|p| !p.is_empty()),
    ) else {
        return Err(PodError::Kubernetes(
            "in_cluster needs KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT, which the \
             kubelet sets in every pod; is the daemon running in Kubernetes?"
                .into(),
        ));
    };
    let port: u16 = port.parse().map_err(|_| {
        PodError::Kubernetes(format!("KUBERNETES_SERVICE_PORT {port:?} is not a port"))
    })?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let server = if host.contains(':') {
        format!("https://[{host}]:{port}")
    } else {
        format!("https://{host}:{port}")
    };
    match url::Url::parse(&server) {
        Ok(u) if u.host().is_some() => Ok(server),
        _ => Err(PodError::Kubernetes(format!(
            "KUBERNETES_SERVICE_HOST {host:?} is not a host name or address"
        ))),
    }
}

/// The configured clusters and their cached credentials. Reloaded on SIGHUP.
#[derive(Debug)]
pub struct ClusterSet {
    configs: RwLock<BTreeMap<String, ClusterConfig>>,
    /// Resolved credentials and until when they are used.
    cache: tokio::sync::Mutex<HashMap<String, (Instant, KubeCredentials)>>,
    env: EnvLookup,
}

impl ClusterSet {
    pub fn new(configs: BTreeMap<String, ClusterConfig>) -> Arc<ClusterSet> {
        Self::with_env(configs, process_env)
    }

    /// As [`ClusterSet::new`], reading `KUBERNETES_SERVICE_*` through `env` (tests).
    pub fn with_env(configs: BTreeMap<String, ClusterConfig>, env: EnvLookup) -> Arc<ClusterSet> {
        Arc::new(ClusterSet {
            configs: RwLock::new(configs),
            cache: Default::default(),
            env,
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
        if let Some((fresh_until, creds)) = cache.get(name)
            && Instant::now() < *fresh_until
        {
            return Ok(creds.clone());
        }
        match config.resolve(self.env).await {
            Ok(creds) => {
                cache.insert(
                    name.to_owned(),
                    (Instant::now() + config.ttl(), creds.clone()),
                );
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

    #[test]
    fn in_cluster_stands_alone() {
        let ic = ClusterConfig {
            in_cluster: true,
            ..Default::default()
        };
        assert!(ic.check().is_ok());
        assert_eq!(ic.source(), "in_cluster");
        let with_dir = ClusterConfig {
            service_account_dir: Some("/tmp/sa".into()),
            ..ic.clone()
        };
        assert!(with_dir.check().is_ok());
        for (key, bad) in [
            (
                "kubeconfig",
                ClusterConfig {
                    kubeconfig: Some("/etc/podwrangler/k".into()),
                    ..ic.clone()
                },
            ),
            (
                "server",
                ClusterConfig {
                    server: Some("https://10.0.0.1".into()),
                    ..ic.clone()
                },
            ),
            (
                "token_file",
                ClusterConfig {
                    token_file: Some("/t".into()),
                    ..ic.clone()
                },
            ),
            (
                "ca_file",
                ClusterConfig {
                    ca_file: Some("/c".into()),
                    ..ic.clone()
                },
            ),
            (
                "context",
                ClusterConfig {
                    context: Some("c".into()),
                    ..ic.clone()
                },
            ),
        ] {
            let err = bad.check().unwrap_err();
            assert!(err.contains(key), "{key}: {err}");
        }
        let stray = ClusterConfig {
            server: Some("https://10.0.0.1".into()),
            token_file: Some("/t".into()),
            service_account_dir: Some("/tmp/sa".into()),
            ..Default::default()
        };
        assert!(stray.check().unwrap_err().contains("in_cluster"));
        let parsed: ClusterConfig = toml::from_str("in_cluster = true\n").unwrap();
        assert_eq!(parsed, ic);
    }

    #[test]
    fn in_cluster_server_from_the_kubelet_variables() {
        let s = |h, p| in_cluster_server(h, p);
        assert_eq!(
            s(Some("10.96.0.1"), Some("443")).unwrap(),
            "https://10.96.0.1:443"
        );
        assert_eq!(
            s(Some("fd00:10:96::1"), Some("443")).unwrap(),
            "https://[fd00:10:96::1]:443"
        );
        assert_eq!(
            s(Some("[::1]"), Some("6443")).unwrap(),
            "https://[::1]:6443"
        );
        assert_eq!(
            s(Some("kubernetes.default.svc"), Some("443")).unwrap(),
            "https://kubernetes.default.svc:443"
        );
        assert!(s(None, Some("443")).is_err());
        assert!(s(Some("10.96.0.1"), None).is_err());
        assert!(s(Some(""), Some("443")).is_err());
        assert!(s(Some("10.96.0.1"), Some("https")).is_err());
        assert!(s(Some("10.96.0.1"), Some("70000")).is_err());
    }

    const CA: &str = "-----BEGIN CERTIFICATE-----\nAQID\n-----END CERTIFICATE-----\n";

    fn kubelet_env(key: &str) -> Option<String> {
        match key {
            "KUBERNETES_SERVICE_HOST" => Some("fd00:10:96::1".into()),
            "KUBERNETES_SERVICE_PORT" => Some("443".into()),
            _ => None,
        }
    }

    fn no_env(_: &str) -> Option<String> {
        None
    }

    /// Writes the service account's files as the kubelet's atomic writer does: a timestamped
    /// directory, `..data` pointing at it, and each file a link through `..data`.
    fn kubelet_write(dir: &Path, version: &str, token: &str) {
        use std::os::unix::fs::symlink;
        let data = dir.join(version);
        std::fs::create_dir(&data).unwrap();
        std::fs::write(data.join("token"), token).unwrap();
        std::fs::write(data.join("ca.crt"), CA).unwrap();
        std::fs::write(data.join("namespace"), "podwrangler").unwrap();
        let tmp = dir.join("..data_tmp");
        symlink(version, &tmp).unwrap();
        std::fs::rename(&tmp, dir.join("..data")).unwrap();
        for f in ["token", "ca.crt", "namespace"] {
            let link = dir.join(f);
            if link.symlink_metadata().is_err() {
                symlink(Path::new("..data").join(f), link).unwrap();
            }
        }
    }

    /// How long the cached credentials of `name` stay in use.
    async fn fresh_for(set: &ClusterSet, name: &str) -> Duration {
        let cache = set.cache.lock().await;
        cache[name].0.saturating_duration_since(Instant::now())
    }

    /// Lets the cached credentials of `name` expire, as if their time had passed.
    async fn expire(set: &ClusterSet, name: &str) {
        set.cache.lock().await.get_mut(name).unwrap().0 = Instant::now();
    }

    #[tokio::test]
    async fn in_cluster_credentials_follow_the_rotated_token() {
        let dir = tempfile::tempdir().unwrap();
        kubelet_write(dir.path(), "..2026_01_01_00_00_00.1", "first\n");
        let configs = BTreeMap::from([(
            "local".to_owned(),
            ClusterConfig {
                in_cluster: true,
                service_account_dir: Some(dir.path().to_owned()),
                ..Default::default()
            },
        )]);
        let set = ClusterSet::with_env(configs.clone(), kubelet_env);
        let c = set.credentials_of("local").await.unwrap();
        assert_eq!(c.server, "https://[fd00:10:96::1]:443");
        assert_eq!(c.token.unwrap().expose(), "first");
        assert_eq!(c.certificate_authority.as_deref(), Some(CA));
        assert!(!c.insecure_skip_tls_verify);
        assert_eq!(c.namespace, "podwrangler");

        // The kubelet rotates the token: the old one stays in use until the cache is a
        // minute old, then the new one is read; the daemon is not restarted.
        kubelet_write(dir.path(), "..2026_01_01_00_48_00.2", "second");
        std::fs::remove_dir_all(dir.path().join("..2026_01_01_00_00_00.1")).unwrap();
        let c = set.credentials_of("local").await.unwrap();
        assert_eq!(c.token.unwrap().expose(), "first");
        let left = fresh_for(&set, "local").await;
        assert!(
            left <= IN_CLUSTER_TTL && left > IN_CLUSTER_TTL / 2,
            "{left:?}"
        );
        expire(&set, "local").await;
        let c = set.credentials_of("local").await.unwrap();
        assert_eq!(c.token.unwrap().expose(), "second");

        // Outside a pod (no KUBERNETES_SERVICE_*), or without the files, it says why.
        let outside = ClusterSet::with_env(configs, no_env);
        let err = outside.credentials_of("local").await.unwrap_err();
        assert!(err.to_string().contains("KUBERNETES_SERVICE_HOST"), "{err}");
        let missing = ClusterSet::with_env(
            BTreeMap::from([(
                "local".to_owned(),
                ClusterConfig {
                    in_cluster: true,
                    service_account_dir: Some(dir.path().join("nowhere")),
                    ..Default::default()
                },
            )]),
            kubelet_env,
        );
        let err = missing.credentials_of("local").await.unwrap_err();
        assert!(err.to_string().contains("token"), "{err}");
    }

    #[tokio::test]
    async fn other_sources_keep_five_minutes() {
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("token");
        std::fs::write(&token, "first").unwrap();
        let set = ClusterSet::new(BTreeMap::from([(
            "prod".to_owned(),
            ClusterConfig {
                server: Some("https://127.0.0.1:6443".into()),
                token_file: Some(token.clone()),
                ..Default::default()
            },
        )]));
        set.credentials_of("prod").await.unwrap();
        let left = fresh_for(&set, "prod").await;
        assert!(left > CREDENTIALS_TTL - Duration::from_secs(60), "{left:?}");
        std::fs::write(&token, "second").unwrap();
        expire(&set, "prod").await;
        let c = set.credentials_of("prod").await.unwrap();
        assert_eq!(c.token.unwrap().expose(), "second");
    }
}
