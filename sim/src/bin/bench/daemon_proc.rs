//! Starting a `podwranglerd` for a benchmark: the binary beside this one (built on demand), a
//! temporary state directory (socket, SQLite, log), its ready file awaited, killed on drop; plus
//! the other helpers the daemon benchmarks share (sibling binaries, VmRSS, fd limit).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::http::UnixClient;

/// A running daemon on a Unix socket only (no TCP); SIGKILLed and reaped on drop.
pub struct DaemonProc {
    pub pid: u32,
    pub socket: PathBuf,
    pub log: PathBuf,
    child: Child,
    _dir: tempfile::TempDir,
}

/// How to start it.
#[derive(Default)]
pub struct DaemonSpec<'a> {
    /// An existing database (default: a new SQLite file in the state directory).
    pub database: Option<&'a Path>,
    /// `--lazy`: pods connect on first use instead of at registration.
    pub lazy: bool,
    /// The configuration file's text (default: empty).
    pub config: Option<&'a str>,
}

impl DaemonProc {
    pub fn start(spec: DaemonSpec<'_>) -> anyhow::Result<DaemonProc> {
        let bin = sibling_binary("podwranglerd", "podwranglerd")?;
        let dir = tempfile::Builder::new()
            .prefix("pw-bench-daemon")
            .tempdir()?;
        let socket = dir.path().join("podwranglerd.sock");
        let ready = dir.path().join("ready.json");
        let log = dir.path().join("daemon.log");
        let config = dir.path().join("config.toml");
        // Empty, so the user's own configuration never changes what is measured.
        std::fs::write(&config, spec.config.unwrap_or(""))?;
        let database = spec
            .database
            .map(Path::to_path_buf)
            .unwrap_or_else(|| dir.path().join("podwrangler.db"));
        let mut cmd = Command::new(&bin);
        for (k, _) in std::env::vars() {
            if k.starts_with("PODWRANGLER_") || k.starts_with("LISTEN_") || k == "NOTIFY_SOCKET" {
                cmd.env_remove(k);
            }
        }
        cmd.arg("--user")
            .arg("--config")
            .arg(&config)
            .arg("--socket")
            .arg(&socket)
            .arg("--no-tcp")
            .arg("--database-url")
            .arg(&database)
            .arg("--ready-file")
            .arg(&ready)
            .args(["--log-level", "warn"]);
        if spec.lazy {
            cmd.arg("--lazy");
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(std::fs::File::create(&log)?))
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let deadline = Instant::now() + Duration::from_secs(120);
        let pid = loop {
            if let Ok(text) = std::fs::read_to_string(&ready)
                && let Ok(v) = serde_json::from_str::<serde_json::Value>(&text)
                && let Some(pid) = v["pid"].as_u64()
            {
                break pid as u32;
            }
            if let Some(status) = child.try_wait()? {
                bail!(
                    "podwranglerd exited ({status}) before it was ready; log:\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                bail!("podwranglerd was not ready within 120 s");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        Ok(DaemonProc {
            pid,
            socket,
            log,
            child,
            _dir: dir,
        })
    }

    /// A keep-alive client on the daemon's socket.
    pub fn client(&self, timeout: Duration) -> UnixClient {
        UnixClient::new(&self.socket, timeout)
    }

    pub fn rss_bytes(&self) -> anyhow::Result<u64> {
        vm_rss(self.pid)
    }

    /// The daemon's log so far (for error messages).
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

impl Drop for DaemonProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// CPU time (user + system) of a process, from `/proc/PID/stat`.
pub fn cpu_time(pid: u32) -> anyhow::Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which may hold spaces) start at state, field 3.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .context("unexpected /proc stat format")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| -> anyhow::Result<u64> {
        fields
            .get(i)
            .context("short /proc stat")?
            .parse::<u64>()
            .context("/proc stat field")
    };
    // utime and stime are fields 14 and 15, i.e. 11 and 12 after the state.
    let total = ticks(11)? + ticks(12)?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Ok(Duration::from_millis(total * 1000 / hz))
}

/// `VmRSS` of a process, in bytes.
pub fn vm_rss(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|kb| kb.parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .with_context(|| format!("no VmRSS in /proc/{pid}/status"))
}

/// Raises this process's soft RLIMIT_NOFILE to its hard limit; children (podsim, the daemon,
/// kubectl) inherit it. Returns the new soft limit.
pub fn raise_fd_limit() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed for the call.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 0;
        }
        if lim.rlim_cur < lim.rlim_max {
            let wanted = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &wanted) == 0 {
                return wanted.rlim_cur;
            }
        }
    }
    lim.rlim_cur
}

/// The workspace binary `name` (of package `package`) in this binary's directory, built with
/// the same profile when missing.
pub fn sibling_binary(name: &str, package: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let dir = exe
        .parent()
        .context("bench has no directory")?
        .to_path_buf();
    let bin = dir.join(name);
    if bin.exists() {
        return Ok(bin);
    }
    let profile = dir.file_name().and_then(|n| n.to_str()).unwrap_or("debug");
    let target_dir = dir.parent().context("profile dir has no parent")?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "-p", package, "--bin", name])
        .env("CARGO_TARGET_DIR", target_dir)
        .current_dir(env!("CARGO_MANIFEST_DIR"));
    if profile == "release" {
        cmd.arg("--release");
    }
    eprintln!("bench: building {name} ({profile})");
    let status = cmd.status().context("running cargo")?;
    if !status.success() || !bin.exists() {
        bail!("could not build {name}; run `cargo build --release -p {package}` first");
    }
    Ok(bin)
}
