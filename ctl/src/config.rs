//! Where pwctl finds the daemon: flags, then `PODWRANGLER_*` variables, then the user's
//! `pwctl.toml`, then the seed's `~/.podwrangler.toml`, then the default socket.

use std::path::{Path, PathBuf};

use podwrangler::Secret;
use serde::Deserialize;

use crate::error::CtlError;

/// The system daemon's socket (packages and systemd put it here).
pub const SYSTEM_SOCKET: &str = "/run/podwrangler/podwranglerd.sock";

/// `podwrangler/pwctl.toml` in the user's config dir.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub api_url: Option<String>,
    pub api_key: Option<String>,
    pub socket: Option<PathBuf>,
}

/// The Python seed's `~/.podwrangler.toml`: only `api_url` matters here; other keys belong to
/// the seed and are ignored.
#[derive(Debug, Default, Deserialize)]
struct SeedConfig {
    api_url: Option<String>,
}

/// How to reach the daemon.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Endpoint {
    Unix(PathBuf),
    /// Base URL without a trailing slash: `http://127.0.0.1:8000`.
    Tcp(String),
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Endpoint::Unix(p) => write!(f, "{}", p.display()),
            Endpoint::Tcp(u) => f.write_str(u),
        }
    }
}

/// The resolved connection settings.
#[derive(Clone, Debug)]
pub struct Connection {
    pub endpoint: Endpoint,
    pub api_key: Option<Secret>,
    /// Nobody chose the endpoint: it is the default socket lookup.
    pub is_default: bool,
    /// The user-mode socket `--local` starts a daemon on when the default answers nothing.
    pub user_socket: PathBuf,
}

/// What the command line said about the connection.
#[derive(Clone, Debug, Default)]
pub struct ConnectionFlags {
    pub socket: Option<PathBuf>,
    pub api_url: Option<String>,
    pub api_key: Option<String>,
}

/// The places pwctl reads, so tests can point them at temporary files.
pub struct Sources<'a> {
    pub env: &'a dyn Fn(&str) -> Option<String>,
    pub config_file: Option<PathBuf>,
    pub seed_file: Option<PathBuf>,
    pub user_socket: PathBuf,
    pub system_socket: PathBuf,
}

impl Sources<'static> {
    /// The real environment and the user's directories.
    pub fn system() -> Sources<'static> {
        let dirs = directories::BaseDirs::new();
        Sources {
            env: &|k| std::env::var(k).ok().filter(|v| !v.is_empty()),
            config_file: dirs
                .as_ref()
                .map(|d| d.config_dir().join("podwrangler").join("pwctl.toml")),
            seed_file: dirs
                .as_ref()
                .map(|d| d.home_dir().join(".podwrangler.toml")),
            user_socket: user_socket_path(),
            system_socket: PathBuf::from(SYSTEM_SOCKET),
        }
    }
}

/// The user-mode daemon's socket: the runtime dir's `podwrangler/podwranglerd.sock`, or the data
/// dir's when there is no runtime dir (podwranglerd computes the same path).
pub fn user_socket_path() -> PathBuf {
    match directories::BaseDirs::new() {
        Some(d) => d
            .runtime_dir()
            .map(|r| r.join("podwrangler"))
            .unwrap_or_else(|| d.data_dir().join("podwrangler"))
            .join("podwranglerd.sock"),
        None => std::env::temp_dir()
            .join("podwrangler")
            .join("podwranglerd.sock"),
    }
}

fn read_toml<T: for<'de> Deserialize<'de> + Default>(path: &Path) -> Result<T, CtlError> {
    match std::fs::read_to_string(path) {
        Ok(text) => toml::from_str(&text).map_err(|e| {
            CtlError::Config(format!("cannot parse {}: {}", path.display(), e.message()))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(T::default()),
        Err(e) => Err(CtlError::Config(format!(
            "cannot read {}: {e}",
            path.display()
        ))),
    }
}

/// `http://host:port`, `host:port`, or `unix:/path` / `unix:///path` -> an endpoint.
pub fn parse_api_url(url: &str) -> Result<Endpoint, CtlError> {
    let url = url.trim();
    if let Some(path) = url
        .strip_prefix("unix://")
        .or_else(|| url.strip_prefix("unix:"))
    {
        if path.is_empty() {
            return Err(CtlError::Usage(format!(
                "API URL {url:?} names no socket path"
            )));
        }
        return Ok(Endpoint::Unix(PathBuf::from(path)));
    }
    let with_scheme = if url.contains("://") {
        url.to_string()
    } else {
        format!("http://{url}")
    };
    let parsed = url::Url::parse(&with_scheme)
        .map_err(|e| CtlError::Usage(format!("API URL {url:?} is not a URL: {e}")))?;
    match parsed.scheme() {
        "http" | "https" => {}
        other => {
            return Err(CtlError::Usage(format!(
                "API URL {url:?} has scheme {other:?} (expected http, https or unix)"
            )));
        }
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(CtlError::Usage(format!("API URL {url:?} names no host")));
    }
    Ok(Endpoint::Tcp(with_scheme.trim_end_matches('/').to_string()))
}

/// Resolves the connection: the first of `--api-url`, `--socket`, `PODWRANGLER_API_URL`,
/// `PODWRANGLER_SOCKET`, `pwctl.toml` (`api_url`, then `socket`), `~/.podwrangler.toml`
/// `api_url`, the user socket when it exists, the system socket.
pub fn resolve(flags: &ConnectionFlags, src: &Sources<'_>) -> Result<Connection, CtlError> {
    if flags.api_url.is_some() && flags.socket.is_some() {
        return Err(CtlError::Usage(
            "--api-url and --socket both name a daemon; pass one".into(),
        ));
    }
    let file: FileConfig = match &src.config_file {
        Some(p) => read_toml(p)?,
        None => FileConfig::default(),
    };
    let api_key = flags
        .api_key
        .clone()
        .or_else(|| (src.env)("PODWRANGLER_API_KEY"))
        .or(file.api_key.clone())
        .filter(|k| !k.is_empty())
        .map(Secret::new);
    let conn = |endpoint, is_default| Connection {
        endpoint,
        api_key: api_key.clone(),
        is_default,
        user_socket: src.user_socket.clone(),
    };

    if let Some(url) = &flags.api_url {
        return Ok(conn(parse_api_url(url)?, false));
    }
    if let Some(path) = &flags.socket {
        return Ok(conn(Endpoint::Unix(path.clone()), false));
    }
    if let Some(url) = (src.env)("PODWRANGLER_API_URL") {
        return Ok(conn(parse_api_url(&url)?, false));
    }
    if let Some(path) = (src.env)("PODWRANGLER_SOCKET") {
        return Ok(conn(Endpoint::Unix(PathBuf::from(path)), false));
    }
    if let Some(url) = &file.api_url {
        return Ok(conn(parse_api_url(url)?, false));
    }
    if let Some(path) = &file.socket {
        return Ok(conn(Endpoint::Unix(path.clone()), false));
    }
    if let Some(seed) = &src.seed_file {
        let seed: SeedConfig = read_toml(seed)?;
        if let Some(url) = seed.api_url {
            return Ok(conn(parse_api_url(&url)?, false));
        }
    }
    let socket = if src.user_socket.exists() {
        src.user_socket.clone()
    } else {
        src.system_socket.clone()
    };
    Ok(conn(Endpoint::Unix(socket), true))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn sources<'a>(env: &'a dyn Fn(&str) -> Option<String>, dir: &Path) -> Sources<'a> {
        Sources {
            env,
            config_file: Some(dir.join("pwctl.toml")),
            seed_file: Some(dir.join(".podwrangler.toml")),
            user_socket: dir.join("user.sock"),
            system_socket: PathBuf::from(SYSTEM_SOCKET),
        }
    }

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn default_is_the_system_socket_unless_the_user_socket_exists() {
        let dir = tempfile::tempdir().unwrap();
        let env = env_of(&[]);
        let c = resolve(&ConnectionFlags::default(), &sources(&env, dir.path())).unwrap();
        assert_eq!(c.endpoint, Endpoint::Unix(PathBuf::from(SYSTEM_SOCKET)));
        assert!(c.is_default);
        std::fs::write(dir.path().join("user.sock"), "").unwrap();
        let c = resolve(&ConnectionFlags::default(), &sources(&env, dir.path())).unwrap();
        assert_eq!(c.endpoint, Endpoint::Unix(dir.path().join("user.sock")));
    }

    #[test]
    fn flags_beat_env_beat_config_file_beat_seed_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(".podwrangler.toml"),
            "api_url = \"http://seed:1\"\nother = 3\n",
        )
        .unwrap();
        let none = env_of(&[]);
        let c = resolve(&ConnectionFlags::default(), &sources(&none, dir.path())).unwrap();
        assert_eq!(c.endpoint, Endpoint::Tcp("http://seed:1".into()));

        std::fs::write(
            dir.path().join("pwctl.toml"),
            "socket = \"/tmp/file.sock\"\napi_key = \"from-file\"\n",
        )
        .unwrap();
        let c = resolve(&ConnectionFlags::default(), &sources(&none, dir.path())).unwrap();
        assert_eq!(c.endpoint, Endpoint::Unix("/tmp/file.sock".into()));
        assert_eq!(c.api_key.unwrap().expose(), "from-file");

        let env = env_of(&[
            ("PODWRANGLER_API_URL", "127.0.0.1:9000/"),
            ("PODWRANGLER_API_KEY", "from-env"),
        ]);
        let c = resolve(&ConnectionFlags::default(), &sources(&env, dir.path())).unwrap();
        assert_eq!(c.endpoint, Endpoint::Tcp("http://127.0.0.1:9000".into()));
        assert_eq!(c.api_key.unwrap().expose(), "from-env");

        let flags = ConnectionFlags {
            socket: Some("/tmp/flag.sock".into()),
            api_key: Some("from-flag".into()),
            ..Default::default()
        };
        let c = resolve(&flags, &sources(&env, dir.path())).unwrap();
        assert_eq!(c.endpoint, Endpoint::Unix("/tmp/flag.sock".into()));
        assert_eq!(c.api_key.unwrap().expose(), "from-flag");
        assert!(!c.is_default);
    }

    #[test]
    fn a_broken_config_file_names_itself() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("pwctl.toml"), "api_urll = 1\n").unwrap();
        let none = env_of(&[]);
        let err = resolve(&ConnectionFlags::default(), &sources(&none, dir.path())).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("pwctl.toml") && msg.contains("api_urll"),
            "{msg}"
        );
        assert_eq!(err.exit_code(), crate::error::exit::CONFIG);
    }

    #[test]
    fn api_urls_take_several_spellings() {
        assert_eq!(
            parse_api_url("unix:///run/x.sock").unwrap(),
            Endpoint::Unix("/run/x.sock".into())
        );
        assert_eq!(
            parse_api_url("https://pw.example/").unwrap(),
            Endpoint::Tcp("https://pw.example".into())
        );
        assert!(parse_api_url("ftp://x").is_err());
        assert!(
            resolve(
                &ConnectionFlags {
                    socket: Some("/a".into()),
                    api_url: Some("http://b".into()),
                    ..Default::default()
                },
                &sources(&env_of(&[]), Path::new("/nonexistent"))
            )
            .is_err()
        );
    }
}
