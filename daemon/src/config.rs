//! Daemon configuration: a TOML file, then `PODWRANGLER_*` environment variables, then flags.

use std::collections::BTreeMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;

use argh::FromArgs;
use podwrangler::api::PodCreate;
use podwrangler::redact_url;
use serde::Deserialize;

use crate::clusters::ClusterConfig;
use crate::keys::{KeyEntry, KeyRing, Scope};

/// System-wide config file (packages install it).
pub const SYSTEM_CONFIG: &str = "/etc/podwrangler/podwranglerd.toml";
/// System-wide SQLite database.
pub const SYSTEM_DATABASE: &str = "/var/lib/podwrangler/podwrangler.db";
/// System-wide Unix socket.
pub const SYSTEM_SOCKET: &str = "/run/podwrangler/podwranglerd.sock";
/// System-wide API key file (SHA-256 digests; `podwranglerd key add` writes it).
pub const SYSTEM_KEYS_FILE: &str = "/etc/podwrangler/api-keys.toml";
/// TCP listener when TCP is turned on without an address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8000";
/// Connection attempts in flight at once when the config does not say.
pub const DEFAULT_CONCURRENT_CONNECTS: usize = 64;
/// The group that owns the service's state and may read its config and key files.
pub const SERVICE_GROUP: &str = "podwrangler";

/// podwranglerd: the PodWrangler daemon. Keeps long-lived shell sessions to registered pods,
/// runs commands in them, keeps their history and serves a REST API on a Unix socket and TCP.
#[derive(FromArgs, Debug, Default)]
pub struct Args {
    /// config file (default: /etc/podwrangler/podwranglerd.toml in system mode, the user
    /// config dir's podwrangler/podwranglerd.toml in user mode; optional unless given here)
    #[argh(option)]
    pub config: Option<PathBuf>,
    /// unix socket path (env PODWRANGLER_SOCKET)
    #[argh(option)]
    pub socket: Option<PathBuf>,
    /// do not listen on a Unix socket
    #[argh(switch)]
    pub no_socket: bool,
    /// TCP address HOST:PORT (port 0 picks a free port; see --ready-file)
    #[argh(option)]
    pub listen: Option<String>,
    /// TCP host (env PODWRANGLER_API_HOST)
    #[argh(option)]
    pub host: Option<String>,
    /// TCP port (env PODWRANGLER_API_PORT)
    #[argh(option)]
    pub port: Option<u16>,
    /// do not listen on TCP
    #[argh(switch)]
    pub no_tcp: bool,
    /// database URL: a SQLite path or sqlite:// URL, or postgres://... (env PODWRANGLER_DATABASE_URL)
    #[argh(option)]
    pub database_url: Option<String>,
    /// file holding the API key TCP clients must send as a bearer token (env PODWRANGLER_API_KEY holds the key itself)
    #[argh(option)]
    pub api_key_file: Option<PathBuf>,
    /// log as JSON lines instead of human-readable text
    #[argh(switch)]
    pub log_json: bool,
    /// log filter, e.g. info, debug, podwranglerd=debug (env PODWRANGLER_LOG)
    #[argh(option)]
    pub log_level: Option<String>,
    /// validate the configuration, print a summary to stderr and exit
    #[argh(switch)]
    pub check_config: bool,
    /// force user-mode default paths (directories of the current user)
    #[argh(switch)]
    pub user: bool,
    /// force system-mode default paths (/etc, /var/lib, /run)
    #[argh(switch)]
    pub system: bool,
    /// connect every pod's session at start-up (the default)
    #[argh(switch)]
    pub connect_on_start: bool,
    /// connect pods' sessions on first use instead of at start-up
    #[argh(switch)]
    pub lazy: bool,
    /// when both listeners accept, write {"tcp":"HOST:PORT"|null,"socket":PATH|null,"pid":N} to this file
    #[argh(option)]
    pub ready_file: Option<PathBuf>,
    /// seconds in-flight commands get to finish on SIGTERM before they are marked interrupted
    #[argh(option)]
    pub grace_period: Option<f64>,
    /// print the version and exit
    #[argh(switch)]
    pub version: bool,
    #[argh(subcommand)]
    pub command: Option<Command>,
}

/// Subcommands that manage the daemon's files instead of running it.
#[derive(FromArgs, Debug)]
#[argh(subcommand)]
pub enum Command {
    Key(KeyCommand),
}

/// manage TCP API keys (stored as SHA-256 digests in api-keys.toml; SIGHUP applies changes)
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "key")]
pub struct KeyCommand {
    #[argh(subcommand)]
    pub action: KeyAction,
}

#[derive(FromArgs, Debug)]
#[argh(subcommand)]
pub enum KeyAction {
    Add(KeyAdd),
    List(KeyList),
    Revoke(KeyRevoke),
}

/// add a key and print it once (its digest is all that is stored)
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "add")]
pub struct KeyAdd {
    /// the key's name, recorded as the actor `key:NAME` of what it does
    #[argh(positional)]
    pub name: String,
    /// read (health, pods, history), exec (read and run commands) or admin (exec and register,
    /// update, remove, import pods); default read
    #[argh(option, default = "Scope::Read")]
    pub scope: Scope,
}

/// list the keys' names and scopes
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "list")]
pub struct KeyList {}

/// remove a key; a running daemon stops accepting it on SIGHUP
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "revoke")]
pub struct KeyRevoke {
    /// the key's name
    #[argh(positional)]
    pub name: String,
}

/// The TOML file. Every key is optional.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub database_url: Option<String>,
    pub socket: Option<PathBuf>,
    /// `false` turns the Unix socket off.
    pub unix_socket: Option<bool>,
    /// `HOST:PORT`; overrides `host`/`port`.
    pub listen: Option<String>,
    pub host: Option<String>,
    pub port: Option<u16>,
    /// `false` turns the TCP listener off.
    pub tcp: Option<bool>,
    /// A single key in clear (kept for compatibility; it is the admin key named `default`).
    pub api_key: Option<String>,
    pub api_key_file: Option<PathBuf>,
    /// Named keys with scopes, as SHA-256 digests (`[[api_keys]]`).
    #[serde(default)]
    pub api_keys: Vec<KeyEntry>,
    /// The file `podwranglerd key` manages (default: `api-keys.toml` beside the config file).
    pub api_keys_file: Option<PathBuf>,
    /// Clusters whose credentials the daemon keeps; callers name them (`"cluster": "prod"`).
    #[serde(default)]
    pub clusters: BTreeMap<String, ClusterConfig>,
    pub log_level: Option<String>,
    pub log_json: Option<bool>,
    pub connect_on_start: Option<bool>,
    pub grace_period_secs: Option<f64>,
    pub fanout_concurrency: Option<usize>,
    pub queue_capacity: Option<usize>,
    pub keepalive_secs: Option<f64>,
    /// Seconds of silence after which an idle session gets harmless data (an empty line), for
    /// servers whose idle timer ignores pings (the kubelet's, 4 h by default); 0 turns it off.
    pub idle_keepalive_secs: Option<f64>,
    pub command_timeout_secs: Option<f64>,
    pub max_command_timeout_secs: Option<f64>,
    pub connect_timeout_secs: Option<f64>,
    pub reconnect_base_ms: Option<u64>,
    pub reconnect_max_attempts: Option<u32>,
    /// Pod sessions that may be connecting at once; the rest wait (state `waiting`), so a
    /// start with thousands of pods does not stampede the API server.
    pub max_concurrent_connects: Option<usize>,
    pub store_threads: Option<usize>,
    /// The history spool (default: beside a SQLite database as `FILE.spool`, else
    /// `history.spool` in the state directory).
    pub spool_path: Option<PathBuf>,
    /// Seconds between replays of the spool while history waits in it.
    pub spool_retry_secs: Option<f64>,
    pub pod_arbiters: Option<usize>,
    pub max_body_bytes: Option<usize>,
    /// Serve `GET /metrics` on TCP too (it is always served on the Unix socket).
    pub metrics_on_tcp: Option<bool>,
    /// Pods to register (or update) at start-up and on SIGHUP.
    #[serde(default)]
    pub pods: Vec<PodCreate>,
    /// `[history]`: retention (docs/history.md).
    #[serde(default)]
    pub history: HistoryConfig,
}

/// `[history]` in the config file: how long history is kept. Both limits are off by default.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistoryConfig {
    /// Remove finished commands that started more than this many days ago.
    pub max_age_days: Option<f64>,
    /// Keep at most this many rows (the newest).
    pub max_rows: Option<u64>,
    /// Seconds between retention runs (default 300).
    pub retention_every_secs: Option<f64>,
    /// Rows removed per transaction (default 500); runs pause between batches.
    pub retention_batch: Option<usize>,
}

impl HistoryConfig {
    /// Whether any limit is set.
    pub fn enabled(&self) -> bool {
        self.max_age_days.is_some() || self.max_rows.is_some()
    }
}

/// Which default paths apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    System,
    User,
}

/// How pod actors behave; shared by the registry and every pod actor.
#[derive(Debug, Clone)]
pub struct PodSettings {
    /// The Kubernetes provider, which knows the configured clusters.
    pub kubernetes: std::sync::Arc<dyn podwrangler::Provider>,
    pub connect_on_start: bool,
    pub keepalive: Duration,
    /// Send data to an idle session after this much silence (`None`: never).
    pub idle_keepalive: Option<Duration>,
    pub queue_capacity: usize,
    pub connect_timeout: Duration,
    pub reconnect_base: Duration,
    pub reconnect_max_attempts: u32,
    /// Slots for connection attempts, shared by every pod actor.
    pub connect_slots: std::sync::Arc<tokio::sync::Semaphore>,
    /// Shares of the open-file budget, one per open session (see `crate::fds`).
    pub session_slots: std::sync::Arc<tokio::sync::Semaphore>,
    /// Shares of the open-file budget for second execs; unset: no limit.
    pub side_exec_slots: Option<std::sync::Arc<tokio::sync::Semaphore>>,
}

impl PodSettings {
    /// The provider that reaches pods of `kind`.
    pub fn provider_for(
        &self,
        kind: podwrangler::ProviderKind,
    ) -> std::sync::Arc<dyn podwrangler::Provider> {
        match kind {
            podwrangler::ProviderKind::Kubernetes => self.kubernetes.clone(),
            other => podwrangler::provider_for(other),
        }
    }
}

impl Default for PodSettings {
    fn default() -> Self {
        PodSettings {
            kubernetes: std::sync::Arc::new(podwrangler::KubernetesProvider::new()),
            connect_on_start: true,
            keepalive: Duration::from_secs(20),
            idle_keepalive: Some(Duration::from_secs(600)),
            queue_capacity: 64,
            connect_timeout: podwrangler::DEFAULT_CONNECT_TIMEOUT,
            reconnect_base: Duration::from_millis(500),
            reconnect_max_attempts: 6,
            connect_slots: std::sync::Arc::new(tokio::sync::Semaphore::new(
                DEFAULT_CONCURRENT_CONNECTS,
            )),
            session_slots: std::sync::Arc::new(tokio::sync::Semaphore::new(
                tokio::sync::Semaphore::MAX_PERMITS,
            )),
            side_exec_slots: None,
        }
    }
}

/// The resolved configuration the daemon runs with.
#[derive(Debug, Clone)]
pub struct Config {
    pub mode: Mode,
    /// The file that was read, if any.
    pub config_file: Option<PathBuf>,
    pub database_url: String,
    pub socket: Option<PathBuf>,
    /// `HOST:PORT` of the TCP listener, if any.
    pub tcp: Option<String>,
    /// The API keys TCP clients may present.
    pub keys: KeyRing,
    /// Where `podwranglerd key` keeps them.
    pub keys_file: PathBuf,
    /// Clusters named by the administrator.
    pub clusters: BTreeMap<String, ClusterConfig>,
    pub log_level: String,
    pub log_json: bool,
    pub ready_file: Option<PathBuf>,
    pub grace_period: Duration,
    pub fanout_concurrency: usize,
    pub command_timeout: Duration,
    pub max_command_timeout: Duration,
    pub store_threads: usize,
    /// Where history the database cannot take waits to be replayed.
    pub spool_path: PathBuf,
    /// How often the spool is replayed while history waits in it.
    pub spool_retry: Duration,
    pub pod_arbiters: usize,
    pub max_body_bytes: usize,
    /// Whether `GET /metrics` answers on TCP (with a key) as well as on the Unix socket.
    pub metrics_on_tcp: bool,
    pub pods: PodSettings,
    pub config_pods: Vec<PodCreate>,
    /// `[history]`: retention.
    pub history: HistoryConfig,
}

/// Why the configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid {field}: {reason}")]
    Invalid { field: String, reason: String },
    #[error(
        "refusing to listen on TCP {addr} without an API key: anyone who reaches the port could run commands in your pods (add one with `podwranglerd key add NAME --scope exec`, or set PODWRANGLER_API_KEY or --api-key-file)"
    )]
    TcpWithoutKey { addr: String },
}

fn invalid(field: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        field: field.to_owned(),
        reason: reason.into(),
    }
}

/// Reads an environment variable, treating an empty value as unset.
pub trait Env {
    fn get(&self, key: &str) -> Option<String>;
}

/// The process environment.
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn get(&self, key: &str) -> Option<String> {
        std::env::var(key).ok().filter(|v| !v.is_empty())
    }
}

impl<const N: usize> Env for [(&str, &str); N] {
    fn get(&self, key: &str) -> Option<String> {
        self.iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| (*v).to_owned())
    }
}

/// System mode when asked, or when running as root or a system account (uid below 1000).
pub fn detect_mode(args: &Args) -> Mode {
    if args.user {
        Mode::User
    } else if args.system {
        Mode::System
    } else {
        // SAFETY: geteuid has no preconditions and cannot fail.
        let uid = unsafe { libc::geteuid() };
        if uid < 1000 { Mode::System } else { Mode::User }
    }
}

struct UserPaths {
    config: PathBuf,
    data: PathBuf,
    runtime: PathBuf,
}

fn user_paths() -> Result<UserPaths, ConfigError> {
    let dirs = directories::BaseDirs::new()
        .ok_or_else(|| invalid("home", "cannot find the home directory for user-mode paths"))?;
    let data = dirs.data_dir().join("podwrangler");
    Ok(UserPaths {
        config: dirs
            .config_dir()
            .join("podwrangler")
            .join("podwranglerd.toml"),
        runtime: dirs
            .runtime_dir()
            .map(|d| d.join("podwrangler"))
            .unwrap_or_else(|| data.clone()),
        data,
    })
}

/// The default config file for a mode.
pub fn default_config_path(mode: Mode) -> Result<PathBuf, ConfigError> {
    Ok(match mode {
        Mode::System => PathBuf::from(SYSTEM_CONFIG),
        Mode::User => user_paths()?.config,
    })
}

/// The default socket path for a mode (what pwctl looks for too).
pub fn default_socket_path(mode: Mode) -> Result<PathBuf, ConfigError> {
    Ok(match mode {
        Mode::System => PathBuf::from(SYSTEM_SOCKET),
        Mode::User => user_paths()?.runtime.join("podwranglerd.sock"),
    })
}

/// The default API key file for a mode.
pub fn default_keys_path(mode: Mode) -> Result<PathBuf, ConfigError> {
    Ok(match mode {
        Mode::System => PathBuf::from(SYSTEM_KEYS_FILE),
        Mode::User => user_paths()?.config.with_file_name("api-keys.toml"),
    })
}

/// The default SQLite database for a mode.
pub fn default_database_path(mode: Mode) -> Result<PathBuf, ConfigError> {
    Ok(match mode {
        Mode::System => PathBuf::from(SYSTEM_DATABASE),
        Mode::User => user_paths()?.data.join("podwrangler.db"),
    })
}

/// The default history spool: `FILE.spool` beside a SQLite database file, else (PostgreSQL,
/// in-memory SQLite) `history.spool` in the mode's state directory.
pub fn default_spool_path(mode: Mode, database_url: &str) -> Result<PathBuf, ConfigError> {
    if let Some(db) = crate::store::DbTarget::parse(database_url)
        .ok()
        .and_then(|t| t.sqlite_path())
    {
        let mut name = db.file_name().unwrap_or_default().to_os_string();
        name.push(".spool");
        return Ok(db.with_file_name(name));
    }
    Ok(default_database_path(mode)?.with_file_name("history.spool"))
}

/// The key file `podwranglerd key` edits: `api_keys_file` of the config file in use, else
/// `api-keys.toml` beside it, else the mode's default.
pub fn keys_file_for(args: &Args, mode: Mode) -> Result<PathBuf, ConfigError> {
    let config = match args.config.clone() {
        Some(p) => Some(p),
        None => {
            let p = default_config_path(mode)?;
            p.exists().then_some(p)
        }
    };
    match config {
        Some(path) => {
            let file = read_file(&path)?;
            Ok(file
                .api_keys_file
                .unwrap_or_else(|| path.with_file_name("api-keys.toml")))
        }
        None => default_keys_path(mode),
    }
}

/// Reads and parses a TOML config file.
pub fn read_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    toml::from_str(&text).map_err(|e| ConfigError::Parse {
        path: path.to_owned(),
        message: e.to_string(),
    })
}

fn env_parse<T: std::str::FromStr>(env: &dyn Env, key: &str) -> Result<Option<T>, ConfigError>
where
    T::Err: std::fmt::Display,
{
    match env.get(key) {
        None => Ok(None),
        Some(v) => v
            .parse()
            .map(Some)
            .map_err(|e| invalid(key, format!("{v:?}: {e}"))),
    }
}

fn env_bool(env: &dyn Env, key: &str) -> Result<Option<bool>, ConfigError> {
    match env
        .get(key)
        .as_deref()
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        None => Ok(None),
        Some("1" | "true" | "yes" | "on") => Ok(Some(true)),
        Some("0" | "false" | "no" | "off") => Ok(Some(false)),
        Some(other) => Err(invalid(key, format!("{other:?} is not a boolean"))),
    }
}

fn secs(field: &str, value: f64, min: f64, max: f64) -> Result<Duration, ConfigError> {
    if !value.is_finite() || value < min || value > max {
        return Err(invalid(
            field,
            format!("{value} is outside {min}..={max} seconds"),
        ));
    }
    Ok(Duration::from_secs_f64(value))
}

fn read_key_file(path: &Path) -> Result<String, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    let key = text.trim();
    if key.is_empty() {
        return Err(invalid(
            "api_key_file",
            format!("{} is empty", path.display()),
        ));
    }
    Ok(key.to_owned())
}

/// True when every address `addr` resolves to is a loopback address.
pub fn is_loopback(addr: &str) -> bool {
    match addr.to_socket_addrs() {
        Ok(addrs) => {
            let addrs: Vec<SocketAddr> = addrs.collect();
            !addrs.is_empty() && addrs.iter().all(|a| a.ip().is_loopback())
        }
        Err(_) => false,
    }
}

impl Config {
    /// Resolves the configuration from flags, the process environment and the config file.
    pub fn load(args: &Args) -> Result<Config, ConfigError> {
        Self::load_with(args, &ProcessEnv)
    }

    /// As [`Config::load`], with the environment given (tests).
    pub fn load_with(args: &Args, env: &dyn Env) -> Result<Config, ConfigError> {
        let mode = detect_mode(args);
        let explicit = args
            .config
            .clone()
            .or_else(|| env.get("PODWRANGLER_CONFIG").map(PathBuf::from));
        let (file, config_file) = match explicit {
            Some(path) => (read_file(&path)?, Some(path)),
            None => {
                let path = default_config_path(mode)?;
                if path.exists() {
                    (read_file(&path)?, Some(path))
                } else {
                    (FileConfig::default(), None)
                }
            }
        };
        Self::resolve(args, env, mode, file, config_file)
    }

    fn resolve(
        args: &Args,
        env: &dyn Env,
        mode: Mode,
        file: FileConfig,
        config_file: Option<PathBuf>,
    ) -> Result<Config, ConfigError> {
        let database_url = match args
            .database_url
            .clone()
            .or_else(|| env.get("PODWRANGLER_DATABASE_URL"))
            .or(file.database_url.clone())
        {
            Some(url) => url,
            None => default_database_path(mode)?.display().to_string(),
        };
        if database_url.trim().is_empty() {
            return Err(invalid("database_url", "is empty"));
        }
        let spool_path = match env
            .get("PODWRANGLER_SPOOL_PATH")
            .map(PathBuf::from)
            .or(file.spool_path.clone())
        {
            Some(p) if p.as_os_str().is_empty() || p.is_dir() => {
                return Err(invalid(
                    "spool_path",
                    format!("{} is not a file path", p.display()),
                ));
            }
            Some(p) => p,
            None => default_spool_path(mode, &database_url)?,
        };

        let socket = if args.no_socket || file.unix_socket == Some(false) && args.socket.is_none() {
            None
        } else {
            Some(match args.socket.clone() {
                Some(p) => p,
                None => match env.get("PODWRANGLER_SOCKET") {
                    Some(p) => PathBuf::from(p),
                    None => match file.socket.clone() {
                        Some(p) => p,
                        None => default_socket_path(mode)?,
                    },
                },
            })
        };

        // TCP is off unless asked for: the Unix socket is the local way in, and TCP needs a key.
        // A flag asking for TCP wins over `tcp = false` in the file.
        let flag_asked = args.listen.is_some() || args.port.is_some() || args.host.is_some();
        let setting_asked = env.get("PODWRANGLER_API_HOST").is_some()
            || env.get("PODWRANGLER_API_PORT").is_some()
            || file.listen.is_some()
            || file.port.is_some()
            || file.host.is_some();
        let tcp_enabled = !args.no_tcp
            && (flag_asked
                || (file.tcp != Some(false) && (setting_asked || file.tcp == Some(true))));
        let tcp = if tcp_enabled {
            let listen = if let Some(l) = &args.listen {
                l.clone()
            } else {
                let host = args
                    .host
                    .clone()
                    .or_else(|| env.get("PODWRANGLER_API_HOST"))
                    .or(file.host.clone());
                let port = match args.port {
                    Some(p) => Some(p),
                    None => env_parse::<u16>(env, "PODWRANGLER_API_PORT")?.or(file.port),
                };
                match (host, port, &file.listen) {
                    (None, None, Some(l)) => l.clone(),
                    (h, p, _) => format!(
                        "{}:{}",
                        h.unwrap_or_else(|| "127.0.0.1".into()),
                        p.unwrap_or(8000)
                    ),
                }
            };
            if listen.to_socket_addrs().is_err() {
                return Err(invalid(
                    "listen",
                    format!("{listen:?} is not a HOST:PORT address"),
                ));
            }
            Some(listen)
        } else {
            None
        };
        if socket.is_none() && tcp.is_none() {
            return Err(invalid(
                "listeners",
                "both the Unix socket and TCP are turned off",
            ));
        }

        let legacy_key = if let Some(path) = &args.api_key_file {
            Some(read_key_file(path)?)
        } else if let Some(key) = env.get("PODWRANGLER_API_KEY") {
            Some(key.trim().to_owned())
        } else if let Some(key) = &file.api_key {
            Some(key.trim().to_owned())
        } else if let Some(path) = &file.api_key_file {
            Some(read_key_file(path)?)
        } else {
            None
        };
        if legacy_key.as_ref().is_some_and(|k| k.is_empty()) {
            return Err(invalid("api_key", "is empty"));
        }
        let keys_file = match &file.api_keys_file {
            Some(p) => p.clone(),
            None => match &config_file {
                Some(cfg) => cfg.with_file_name("api-keys.toml"),
                None => default_keys_path(mode)?,
            },
        };
        let mut entries = file.api_keys.clone();
        entries.extend(crate::keys::read_file(&keys_file)?.keys);
        let mut keys = KeyRing::new(&entries)?;
        if let Some(key) = &legacy_key {
            keys.add_plain("default", Scope::Admin, key);
        }
        if let Some(addr) = &tcp
            && keys.is_empty()
        {
            return Err(ConfigError::TcpWithoutKey { addr: addr.clone() });
        }
        for (name, cluster) in &file.clusters {
            crate::api::validate::alias_in("clusters", name)
                .map_err(|e| invalid(&format!("clusters.{name}"), e.to_string()))?;
            cluster
                .check()
                .map_err(|r| invalid(&format!("clusters.{name}"), r))?;
        }

        let log_level = args
            .log_level
            .clone()
            .or_else(|| env.get("PODWRANGLER_LOG"))
            .or(file.log_level.clone())
            .unwrap_or_else(|| "info".into());
        tracing_subscriber::EnvFilter::try_new(&log_level)
            .map_err(|e| invalid("log_level", format!("{log_level:?}: {e}")))?;
        let log_json = args.log_json
            || env_bool(env, "PODWRANGLER_LOG_JSON")?
                .or(file.log_json)
                .unwrap_or(false);

        let connect_on_start = if args.lazy {
            false
        } else if args.connect_on_start {
            true
        } else {
            env_bool(env, "PODWRANGLER_CONNECT_ON_START")?
                .or(file.connect_on_start)
                .unwrap_or(true)
        };
        let grace = match args.grace_period {
            Some(g) => g,
            None => env_parse::<f64>(env, "PODWRANGLER_GRACE_PERIOD")?
                .or(file.grace_period_secs)
                .unwrap_or(10.0),
        };
        let defaults = PodSettings::default();
        let pods = PodSettings {
            kubernetes: defaults.kubernetes.clone(),
            connect_on_start,
            keepalive: secs(
                "keepalive_secs",
                file.keepalive_secs.unwrap_or(20.0),
                1.0,
                3600.0,
            )?,
            idle_keepalive: match file.idle_keepalive_secs {
                Some(0.0) => None,
                Some(v) => Some(secs("idle_keepalive_secs", v, 1.0, 86400.0)?),
                None => defaults.idle_keepalive,
            },
            queue_capacity: positive(
                "queue_capacity",
                file.queue_capacity,
                defaults.queue_capacity,
            )?,
            connect_timeout: secs(
                "connect_timeout_secs",
                file.connect_timeout_secs
                    .unwrap_or(defaults.connect_timeout.as_secs_f64()),
                0.1,
                600.0,
            )?,
            reconnect_base: Duration::from_millis(
                file.reconnect_base_ms
                    .unwrap_or(defaults.reconnect_base.as_millis() as u64),
            ),
            reconnect_max_attempts: file
                .reconnect_max_attempts
                .unwrap_or(defaults.reconnect_max_attempts),
            connect_slots: std::sync::Arc::new(tokio::sync::Semaphore::new(positive(
                "max_concurrent_connects",
                file.max_concurrent_connects,
                DEFAULT_CONCURRENT_CONNECTS,
            )?)),
            session_slots: defaults.session_slots.clone(),
            side_exec_slots: None,
        };
        let max_command_timeout = secs(
            "max_command_timeout_secs",
            file.max_command_timeout_secs.unwrap_or(3600.0),
            1.0,
            86400.0,
        )?;
        let command_timeout = secs(
            "command_timeout_secs",
            file.command_timeout_secs
                .unwrap_or(podwrangler::DEFAULT_COMMAND_TIMEOUT.as_secs_f64()),
            0.001,
            max_command_timeout.as_secs_f64(),
        )?;
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2);

        for (i, pod) in file.pods.iter().enumerate() {
            crate::api::validate::registered_alias(&pod.alias)
                .map_err(|e| invalid(&format!("pods[{i}].alias"), e.to_string()))?;
        }

        if let Some(days) = file.history.max_age_days
            && !(days > 0.0 && days.is_finite())
        {
            return Err(invalid(
                "history.max_age_days",
                "must be a positive number of days",
            ));
        }
        if file.history.max_rows == Some(0) {
            return Err(invalid("history.max_rows", "must be at least 1"));
        }
        if file.history.retention_batch == Some(0) {
            return Err(invalid("history.retention_batch", "must be at least 1"));
        }
        if let Some(every) = file.history.retention_every_secs
            && !(0.1..=86400.0).contains(&every)
        {
            return Err(invalid(
                "history.retention_every_secs",
                "must be between 0.1 and 86400",
            ));
        }
        let history = file.history.clone();
        Ok(Config {
            history,
            mode,
            config_file,
            database_url,
            socket,
            tcp,
            keys,
            keys_file,
            clusters: file.clusters,
            log_level,
            log_json,
            ready_file: args.ready_file.clone(),
            grace_period: secs("grace_period", grace, 0.0, 3600.0)?,
            fanout_concurrency: positive("fanout_concurrency", file.fanout_concurrency, 64)?,
            command_timeout,
            max_command_timeout,
            store_threads: positive("store_threads", file.store_threads, 2)?,
            spool_path,
            spool_retry: secs(
                "spool_retry_secs",
                file.spool_retry_secs.unwrap_or(2.0),
                0.1,
                3600.0,
            )?,
            pod_arbiters: positive("pod_arbiters", file.pod_arbiters, cores)?,
            max_body_bytes: positive("max_body_bytes", file.max_body_bytes, 1024 * 1024)?,
            metrics_on_tcp: file.metrics_on_tcp.unwrap_or(false),
            pods,
            config_pods: file.pods,
        })
    }

    /// A one-screen summary for `--check-config` and the start-up log; secrets redacted.
    pub fn summary(&self) -> String {
        format!(
            "mode: {:?}\nconfig file: {}\ndatabase: {}\nhistory spool: {}\nsocket: {}\ntcp: {}\napi keys: {} ({})\nclusters: {}\nconnect on start: {}\ngrace period: {:.1}s\nconfigured pods: {}",
            self.mode,
            self.config_file
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| "(none)".into()),
            redact_url(&self.database_url),
            self.spool_path.display(),
            self.socket
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| "(off)".into()),
            self.tcp.as_deref().unwrap_or("(off)"),
            self.keys.len(),
            self.keys_file.display(),
            if self.clusters.is_empty() {
                "(none)".to_owned()
            } else {
                self.clusters.keys().cloned().collect::<Vec<_>>().join(", ")
            },
            self.pods.connect_on_start,
            self.grace_period.as_secs_f64(),
            self.config_pods.len(),
        )
    }
}

fn positive(field: &str, value: Option<usize>, default: usize) -> Result<usize, ConfigError> {
    match value {
        Some(0) => Err(invalid(field, "must be at least 1")),
        Some(v) => Ok(v),
        None => Ok(default),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args() -> Args {
        Args {
            user: true,
            socket: Some("/tmp/x.sock".into()),
            database_url: Some("/tmp/x.db".into()),
            ..Default::default()
        }
    }

    #[test]
    fn flags_override_env_which_overrides_file() {
        let file: FileConfig =
            toml::from_str("host = \"127.0.0.1\"\nport = 9000\nlog_level = \"warn\"").unwrap();
        let env = [
            ("PODWRANGLER_API_PORT", "9100"),
            ("PODWRANGLER_LOG", "debug"),
            ("PODWRANGLER_API_KEY", "k"),
        ];
        let c = Config::resolve(&args(), &env, Mode::User, file.clone(), None).unwrap();
        assert_eq!(c.tcp.as_deref(), Some("127.0.0.1:9100"));
        assert_eq!(c.log_level, "debug");
        let a = Args {
            port: Some(9200),
            ..args()
        };
        let c = Config::resolve(&a, &env, Mode::User, file, None).unwrap();
        assert_eq!(c.tcp.as_deref(), Some("127.0.0.1:9200"));
    }

    #[test]
    fn a_listen_flag_wins_over_tcp_false_in_the_file() {
        let file: FileConfig = toml::from_str("tcp = false\nlisten = \"127.0.0.1:8000\"").unwrap();
        let env = [("PODWRANGLER_API_KEY", "k")];
        let c = Config::resolve(&args(), &env, Mode::User, file.clone(), None).unwrap();
        assert_eq!(c.tcp, None);
        let a = Args {
            listen: Some("127.0.0.1:9300".into()),
            ..args()
        };
        let c = Config::resolve(&a, &env, Mode::User, file, None).unwrap();
        assert_eq!(c.tcp.as_deref(), Some("127.0.0.1:9300"));
    }

    #[test]
    fn tcp_is_off_unless_asked_and_never_without_a_key() {
        let c = Config::resolve(
            &args(),
            &[("X", "y")],
            Mode::User,
            FileConfig::default(),
            None,
        )
        .unwrap();
        assert_eq!(c.tcp, None);
        for listen in ["0.0.0.0:8000", "127.0.0.1:8000"] {
            let a = Args {
                listen: Some(listen.into()),
                ..args()
            };
            let err = Config::resolve(&a, &[("X", "y")], Mode::User, FileConfig::default(), None)
                .unwrap_err();
            assert!(matches!(err, ConfigError::TcpWithoutKey { .. }), "{err}");
            let ok = Config::resolve(
                &a,
                &[("PODWRANGLER_API_KEY", "k")],
                Mode::User,
                FileConfig::default(),
                None,
            )
            .unwrap();
            assert_eq!(ok.tcp.as_deref(), Some(listen));
            assert_eq!(ok.keys.authenticate("k").unwrap().scope, Scope::Admin);
            assert!(!format!("{ok:?}").contains("\"k\""));
        }
    }

    #[test]
    fn named_keys_and_clusters_from_the_file() {
        let file: FileConfig = toml::from_str(&format!(
            "listen = \"127.0.0.1:0\"\n[[api_keys]]\nname = \"ci\"\nscope = \"exec\"\nsha256 = \"{}\"\n\
             [clusters.prod]\nserver = \"https://10.0.0.1:6443\"\ntoken_file = \"/etc/podwrangler/prod.token\"\n",
            crate::keys::digest_hex("ci-key")
        ))
        .unwrap();
        let c = Config::resolve(&args(), &[("X", "y")], Mode::User, file, None).unwrap();
        assert_eq!(c.keys.authenticate("ci-key").unwrap().name, "ci");
        assert!(c.clusters.contains_key("prod"));
        let bad: FileConfig = toml::from_str("[clusters.prod]\ncontext = \"x\"\n").unwrap();
        let err = Config::resolve(&args(), &[("X", "y")], Mode::User, bad, None).unwrap_err();
        assert!(err.to_string().contains("clusters.prod"), "{err}");
    }

    #[test]
    fn in_cluster_clusters_from_the_file() {
        let file: FileConfig = toml::from_str(
            "[clusters.local]\nin_cluster = true\n\
             [clusters.test]\nin_cluster = true\nservice_account_dir = \"/tmp/sa\"\n",
        )
        .unwrap();
        let c = Config::resolve(&args(), &[("X", "y")], Mode::User, file, None).unwrap();
        assert!(c.clusters["local"].in_cluster);
        assert!(
            c.summary().contains("clusters: local, test"),
            "{}",
            c.summary()
        );
        for extra in [
            "kubeconfig = \"/k\"",
            "server = \"https://10.0.0.1\"",
            "token_file = \"/t\"",
        ] {
            let bad: FileConfig =
                toml::from_str(&format!("[clusters.local]\nin_cluster = true\n{extra}\n")).unwrap();
            let err = Config::resolve(&args(), &[("X", "y")], Mode::User, bad, None).unwrap_err();
            assert!(err.to_string().contains("clusters.local"), "{err}");
        }
        let stray: FileConfig = toml::from_str(
            "[clusters.local]\nkubeconfig = \"/k\"\nservice_account_dir = \"/tmp/sa\"\n",
        )
        .unwrap();
        assert!(Config::resolve(&args(), &[("X", "y")], Mode::User, stray, None).is_err());
    }

    #[test]
    fn unknown_file_keys_and_bad_values_are_errors() {
        assert!(toml::from_str::<FileConfig>("bogus = 1").is_err());
        let file: FileConfig = toml::from_str("grace_period_secs = -1.0").unwrap();
        let err = Config::resolve(&args(), &[("X", "y")], Mode::User, file, None).unwrap_err();
        assert!(err.to_string().contains("grace_period"), "{err}");
    }

    #[test]
    fn the_spool_sits_beside_sqlite_or_in_the_state_dir() {
        let c = Config::resolve(
            &args(),
            &[("X", "y")],
            Mode::User,
            FileConfig::default(),
            None,
        )
        .unwrap();
        assert_eq!(c.spool_path, PathBuf::from("/tmp/x.db.spool"));
        assert_eq!(c.spool_retry, Duration::from_secs(2));
        let pg = Args {
            database_url: Some("postgres://u:p@h/db".into()),
            ..args()
        };
        let c = Config::resolve(
            &pg,
            &[("X", "y")],
            Mode::System,
            FileConfig::default(),
            None,
        )
        .unwrap();
        assert_eq!(
            c.spool_path,
            PathBuf::from("/var/lib/podwrangler/history.spool")
        );
        let file: FileConfig =
            toml::from_str("spool_path = \"/srv/pw.spool\"\nspool_retry_secs = 0.5").unwrap();
        let c = Config::resolve(&pg, &[("X", "y")], Mode::User, file.clone(), None).unwrap();
        assert_eq!(c.spool_path, PathBuf::from("/srv/pw.spool"));
        assert_eq!(c.spool_retry, Duration::from_millis(500));
        let env = [("PODWRANGLER_SPOOL_PATH", "/run/x.spool")];
        let c = Config::resolve(&pg, &env, Mode::User, file, None).unwrap();
        assert_eq!(c.spool_path, PathBuf::from("/run/x.spool"));
    }

    #[test]
    fn history_retention_is_off_by_default_and_validated() {
        let pg = Args {
            database_url: Some("postgres://u:p@h/db".into()),
            ..args()
        };
        let c =
            Config::resolve(&pg, &[("X", "y")], Mode::User, FileConfig::default(), None).unwrap();
        assert!(!c.history.enabled());
        let file: FileConfig =
            toml::from_str("[history]\nmax_age_days = 30\nmax_rows = 1000").unwrap();
        let c = Config::resolve(&pg, &[("X", "y")], Mode::User, file, None).unwrap();
        assert_eq!(c.history.max_age_days, Some(30.0));
        assert_eq!(c.history.max_rows, Some(1000));
        for bad in [
            "[history]\nmax_age_days = 0",
            "[history]\nmax_rows = 0",
            "[history]\nretention_batch = 0",
            "[history]\nretention_every_secs = 0.0",
        ] {
            let file: FileConfig = toml::from_str(bad).unwrap();
            assert!(
                Config::resolve(&pg, &[("X", "y")], Mode::User, file, None).is_err(),
                "{bad}"
            );
        }
        assert!(toml::from_str::<FileConfig>("[history]\nmax_days = 3").is_err());
    }

    #[test]
    fn file_pods_are_parsed_and_validated() {
        let file: FileConfig = toml::from_str(
            "[[pods]]\nalias = \"web\"\nprovider = \"plaintty\"\nurl = \"ws://h/exec/1/?token=t&pod=p\"\ntags = [\"a\"]",
        )
        .unwrap();
        let c = Config::resolve(&args(), &[("X", "y")], Mode::User, file, None).unwrap();
        assert_eq!(c.config_pods[0].alias, "web");
        let bad: FileConfig =
            toml::from_str("[[pods]]\nalias = \"no spaces\"\nprovider = \"plaintty\"").unwrap();
        assert!(Config::resolve(&args(), &[("X", "y")], Mode::User, bad, None).is_err());
    }
}
