//! A real `podwranglerd` process for tests: temp socket, free TCP port, temp SQLite (or a given
//! database URL), stderr captured to a file, killed on drop; requests to its Unix socket and TCP
//! listener go through [`crate::http`].

use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde::Deserialize;

use crate::TempDirGuard;

/// What the daemon writes to `--ready-file` once it accepts on every listener.
#[derive(Clone, Debug, Deserialize)]
pub struct ReadyInfo {
    pub tcp: Option<String>,
    pub socket: Option<String>,
    pub pid: u32,
}

/// How to start the daemon.
#[derive(Clone, Debug)]
pub struct DaemonOptions {
    /// The `podwranglerd` binary (`env!("CARGO_BIN_EXE_podwranglerd")` in the daemon's tests).
    pub bin: PathBuf,
    /// Defaults to a SQLite file in the state directory.
    pub database_url: Option<String>,
    /// Written to a key file passed with `--api-key-file`. With TCP on and no key, the daemon
    /// gets an admin key of its own (TCP always needs one), unless `tcp_without_key` is set.
    pub api_key: Option<String>,
    /// Start TCP with no key at all, to test that the daemon refuses it.
    pub tcp_without_key: bool,
    /// Listen on TCP (`127.0.0.1:0` unless `listen` says otherwise).
    pub tcp: bool,
    pub listen: Option<String>,
    /// `--lazy`: connect pods on first use.
    pub lazy: bool,
    /// Written to `config.toml` in the state directory and passed with `--config`.
    pub config_toml: Option<String>,
    pub extra_args: Vec<String>,
    pub env: Vec<(String, String)>,
    /// `--log-level` (default `info,podwranglerd=debug`).
    pub log_level: Option<String>,
    /// Reuse this state directory (database, socket, logs) instead of a fresh one: a restart.
    pub state_dir: Option<PathBuf>,
    /// Start the daemon with this open-file limit, soft and hard (through `prlimit`), so it
    /// cannot raise it.
    pub nofile: Option<u64>,
}

impl DaemonOptions {
    pub fn new(bin: impl Into<PathBuf>) -> Self {
        DaemonOptions {
            bin: bin.into(),
            database_url: None,
            api_key: None,
            tcp_without_key: false,
            tcp: true,
            listen: None,
            lazy: false,
            config_toml: None,
            extra_args: Vec::new(),
            env: Vec::new(),
            log_level: None,
            state_dir: None,
            nofile: None,
        }
    }
}

/// A running daemon; killed (SIGKILL) and reaped on drop unless already stopped.
pub struct Daemon {
    pub ready: ReadyInfo,
    pub socket: PathBuf,
    pub state_dir: PathBuf,
    pub log_path: PathBuf,
    pub api_key: Option<String>,
    pub database_url: String,
    child: Option<Child>,
    _owned_dir: Option<TempDirGuard>,
}

pub use crate::http::{Response, request};

/// Why the daemon did not start: its exit status (if it exited) and its log.
#[derive(Debug)]
pub struct StartFailure {
    pub status: Option<ExitStatus>,
    pub log: String,
}

impl Daemon {
    /// Starts the daemon and waits (up to 90 s) for its ready file; panics with its log if not.
    pub fn start(opts: DaemonOptions) -> Daemon {
        match Daemon::try_start(opts) {
            Ok(d) => d,
            Err(f) => panic!(
                "podwranglerd did not start (status {:?}); log:\n{}",
                f.status, f.log
            ),
        }
    }

    /// As [`Daemon::start`], returning the failure instead of panicking.
    pub fn try_start(opts: DaemonOptions) -> Result<Daemon, StartFailure> {
        let (owned, dir) = match &opts.state_dir {
            Some(d) => {
                std::fs::create_dir_all(d).expect("create state dir");
                (None, d.clone())
            }
            None => {
                let g = TempDirGuard::new("pwd-daemon");
                let p = g.path().to_path_buf();
                (Some(g), p)
            }
        };
        let socket = dir.join("run").join("podwranglerd.sock");
        let ready_file = dir.join("ready.json");
        let _ = std::fs::remove_file(&ready_file);
        let log_path = dir.join(format!(
            "daemon-{}.log",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0)
        ));
        let database_url = opts
            .database_url
            .clone()
            .unwrap_or_else(|| dir.join("podwrangler.db").display().to_string());
        let mut cmd = match opts.nofile {
            // prlimit sets the limits and then execs the daemon: the same process.
            Some(n) => {
                let mut c = Command::new("prlimit");
                c.arg(format!("--nofile={n}:{n}")).arg("--").arg(&opts.bin);
                c
            }
            None => Command::new(&opts.bin),
        };
        for (k, _) in std::env::vars() {
            if k.starts_with("PODWRANGLER_")
                || k == "LISTEN_FDS"
                || k == "LISTEN_PID"
                || k == "NOTIFY_SOCKET"
            {
                cmd.env_remove(k);
            }
        }
        cmd.arg("--user")
            .arg("--socket")
            .arg(&socket)
            .arg("--database-url")
            .arg(&database_url)
            .arg("--ready-file")
            .arg(&ready_file)
            .arg("--log-level")
            .arg(
                opts.log_level
                    .as_deref()
                    .unwrap_or("info,podwranglerd=debug"),
            );
        let config_path = dir.join("config.toml");
        match &opts.config_toml {
            Some(toml) => {
                std::fs::write(&config_path, toml).expect("write config");
                cmd.arg("--config").arg(&config_path);
            }
            None => {
                // An empty file, so the user's own config never leaks into a test.
                std::fs::write(&config_path, "").expect("write config");
                cmd.arg("--config").arg(&config_path);
            }
        }
        if opts.tcp {
            cmd.arg("--listen")
                .arg(opts.listen.as_deref().unwrap_or("127.0.0.1:0"));
        } else {
            cmd.arg("--no-tcp");
        }
        // TCP always needs a key; tests that do not choose one get an admin key of their own.
        let api_key = match (&opts.api_key, opts.tcp) {
            (Some(k), _) => Some(k.clone()),
            (None, true) if !opts.tcp_without_key => {
                Some(format!("testkit-admin-{}", std::process::id()))
            }
            (None, _) => None,
        };
        if let Some(key) = &api_key {
            let key_file = dir.join("api-key");
            std::fs::write(&key_file, key).expect("write key file");
            cmd.arg("--api-key-file").arg(&key_file);
        }
        if opts.lazy {
            cmd.arg("--lazy");
        }
        // The history spool in the state directory, so daemons on one PostgreSQL server never
        // share the default one in the user's data directory (`env` may name another).
        cmd.env("PODWRANGLER_SPOOL_PATH", dir.join("history.spool"));
        cmd.args(&opts.extra_args);
        for (k, v) in &opts.env {
            cmd.env(k, v);
        }
        let log = std::fs::File::create(&log_path).expect("create log file");
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log));
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", opts.bin.display()));
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            if let Ok(text) = std::fs::read_to_string(&ready_file)
                && let Ok(ready) = serde_json::from_str::<ReadyInfo>(&text)
            {
                return Ok(Daemon {
                    ready,
                    socket,
                    state_dir: dir,
                    log_path,
                    api_key: api_key.clone(),
                    database_url,
                    child: Some(child),
                    _owned_dir: owned,
                });
            }
            if let Ok(Some(status)) = child.try_wait() {
                return Err(StartFailure {
                    status: Some(status),
                    log: std::fs::read_to_string(&log_path).unwrap_or_default(),
                });
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(StartFailure {
                    status: None,
                    log: std::fs::read_to_string(&log_path).unwrap_or_default(),
                });
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// Everything the daemon logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.ready.pid
    }

    pub fn tcp_addr(&self) -> &str {
        self.ready
            .tcp
            .as_deref()
            .expect("the daemon has no TCP listener")
    }

    /// A request over the Unix socket (trusted: no key).
    pub fn unix(&self, method: &str, path: &str, body: Option<&str>) -> Response {
        self.unix_with(method, path, &[], body)
    }

    pub fn unix_with(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> Response {
        let s = UnixStream::connect(&self.socket)
            .unwrap_or_else(|e| panic!("connect {}: {e}", self.socket.display()));
        s.set_read_timeout(Some(Duration::from_secs(300))).ok();
        request(
            s,
            "localhost",
            method,
            path,
            headers,
            body.map(str::as_bytes),
        )
        .unwrap_or_else(|e| panic!("{method} {path} over the socket: {e}"))
    }

    /// A request over TCP with the configured API key (if any).
    pub fn tcp(&self, method: &str, path: &str, body: Option<&str>) -> Response {
        let auth = self.api_key.as_ref().map(|k| format!("Bearer {k}"));
        let headers: Vec<(&str, &str)> = auth
            .as_deref()
            .map(|a| vec![("Authorization", a)])
            .unwrap_or_default();
        self.tcp_with(method, path, &headers, body)
    }

    /// A request over TCP with exactly these headers.
    pub fn tcp_with(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> Response {
        let addr = self.tcp_addr().to_owned();
        let s = TcpStream::connect(&addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
        s.set_read_timeout(Some(Duration::from_secs(300))).ok();
        request(s, &addr, method, path, headers, body.map(str::as_bytes))
            .unwrap_or_else(|e| panic!("{method} {path} over TCP: {e}"))
    }

    /// Sends a signal with `kill(1)`.
    pub fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.ready.pid.to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{sig} {} failed", self.ready.pid);
    }

    /// SIGTERM, then wait up to `timeout` for the exit; SIGKILL after that. Returns the status.
    pub fn terminate(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        self.signal("TERM");
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(st)) = child.try_wait() {
                return Some(st);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL now (a crash), and reap.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        match &mut self.child {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// The state directory outlives this daemon (for a restart on the same database).
    pub fn keep_state_dir(&mut self) -> Option<TempDirGuard> {
        self._owned_dir.take()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
