//! `--local`: when no daemon answers, start a user-mode `podwranglerd` in the background and
//! wait until its `/health` answers.

use std::fs::OpenOptions;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use podwrangler::api::Health;

use crate::client::Client;
use crate::config::{Connection, Endpoint};
use crate::error::CtlError;

/// A debug build on a busy machine can take a while to open its database and socket.
const READY_DEADLINE: Duration = Duration::from_secs(30);

/// `podwranglerd` beside pwctl's own executable (as packages and `cargo build` place them),
/// else the first one on PATH.
pub fn find_daemon() -> Option<PathBuf> {
    let beside = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|d| d.join("podwranglerd")))
        .filter(|p| p.is_file());
    beside.or_else(|| {
        std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|d| d.join("podwranglerd"))
                .find(|p| p.is_file())
        })
    })
}

fn answers(client: &Client) -> Result<bool, CtlError> {
    match client.get::<Health>("/health", &[]) {
        Ok(_) => Ok(true),
        Err(CtlError::Unreachable { .. }) => Ok(false),
        // Something answered, even if with an error (e.g. 401): it is a daemon.
        Err(CtlError::Api(_)) => Ok(true),
        Err(e) => Err(e),
    }
}

fn is_loopback(url: &str) -> Option<String> {
    let u = url::Url::parse(url).ok()?;
    if u.scheme() != "http" {
        return None;
    }
    let host = u.host_str()?;
    let loopback = host == "localhost"
        || host
            .trim_matches(['[', ']'])
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    loopback.then(|| format!("{}:{}", host, u.port_or_known_default().unwrap_or(80)))
}

fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(5);
    lines[start..].join("\n")
}

/// Makes sure a daemon answers at `conn`, starting one when none does. Returns the connection
/// to use (the user socket when the default lookup found nothing).
pub fn ensure_daemon(conn: &Connection) -> Result<Connection, CtlError> {
    let client = Client::new(conn);
    if answers(&client)? {
        return Ok(conn.clone());
    }
    // Nobody chose a socket: start the user's own daemon at the user-mode path.
    let conn = if conn.is_default {
        let mut c = conn.clone();
        c.endpoint = Endpoint::Unix(conn.user_socket.clone());
        let client = Client::new(&c);
        if answers(&client)? {
            return Ok(c);
        }
        c
    } else {
        conn.clone()
    };

    let daemon = find_daemon().ok_or_else(|| {
        CtlError::Spawn(
            "podwranglerd is neither beside pwctl nor on PATH (install it, or build it with cargo build --workspace --bins)"
                .into(),
        )
    })?;
    let mut cmd = Command::new(&daemon);
    cmd.arg("--user");
    let log_dir = match &conn.endpoint {
        Endpoint::Unix(path) => {
            cmd.arg("--no-tcp").arg("--socket").arg(path);
            path.parent()
                .map(Path::to_path_buf)
                .unwrap_or_else(std::env::temp_dir)
        }
        Endpoint::Tcp(url) => {
            let listen = is_loopback(url).ok_or_else(|| {
                CtlError::Usage(format!(
                    "--local starts a daemon only on a Unix socket or an http:// loopback address, not {url}"
                ))
            })?;
            cmd.arg("--no-socket").arg("--listen").arg(listen);
            if let Some(key) = &conn.api_key {
                cmd.env("PODWRANGLER_API_KEY", key.expose());
            }
            directories::BaseDirs::new()
                .map(|d| d.data_dir().join("podwrangler"))
                .unwrap_or_else(std::env::temp_dir)
        }
    };
    std::fs::create_dir_all(&log_dir)
        .map_err(|e| CtlError::Spawn(format!("cannot create {}: {e}", log_dir.display())))?;
    let log_path = log_dir.join("podwranglerd.log");
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(|e| CtlError::Spawn(format!("cannot open {}: {e}", log_path.display())))?;
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        // Its own process group: Ctrl-C in this terminal must not stop the daemon.
        .process_group(0)
        .spawn()
        .map_err(|e| CtlError::Spawn(format!("{}: {e}", daemon.display())))?;
    eprintln!(
        "started podwranglerd (pid {}) at {}; log: {}",
        child.id(),
        conn.endpoint,
        log_path.display()
    );

    let client = Client::new(&conn);
    let deadline = Instant::now() + READY_DEADLINE;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(CtlError::Spawn(format!(
                "podwranglerd exited ({status}) before it answered; the end of {}:\n{}",
                log_path.display(),
                log_tail(&log_path)
            )));
        }
        if answers(&client)? {
            return Ok(conn);
        }
        if Instant::now() > deadline {
            return Err(CtlError::Spawn(format!(
                "podwranglerd (pid {}) did not answer at {} within {}s; see {}",
                child.id(),
                conn.endpoint,
                READY_DEADLINE.as_secs(),
                log_path.display()
            )));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_http_loopback_urls_can_be_started_locally() {
        assert_eq!(
            is_loopback("http://127.0.0.1:8123"),
            Some("127.0.0.1:8123".into())
        );
        assert_eq!(is_loopback("http://localhost"), Some("localhost:80".into()));
        assert_eq!(is_loopback("http://10.0.0.1:8000"), None);
        assert_eq!(is_loopback("https://127.0.0.1:8000"), None);
    }
}
