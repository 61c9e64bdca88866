//! Shared set-up for pwctl's integration tests: the real pwctl binary run against a real
//! podwranglerd (on its own temp socket and SQLite) and a real podsim, with the user's home,
//! config and runtime dirs pointed at a temp dir so nothing of the machine's state is read or
//! written.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use testkit::daemon::{Daemon, DaemonOptions};
use testkit::{Podsim, PodsimOptions, TempDirGuard};

pub fn pwctl_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_pwctl"))
}

/// What one pwctl run did.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}):\n{}\nstderr:\n{}",
                self.stdout, self.stderr
            )
        })
    }

    /// Panics with everything pwctl printed unless it exited with `code`.
    #[track_caller]
    pub fn expect_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code, code,
            "expected exit {code}, got {}\nstdout:\n{}\nstderr:\n{}",
            self.code, self.stdout, self.stderr
        );
        self
    }

    #[track_caller]
    pub fn ok(&self) -> &Self {
        self.expect_code(0)
    }
}

impl From<Output> for Run {
    fn from(o: Output) -> Run {
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

/// A home of its own: HOME and the XDG dirs in a temp dir.
pub struct Home {
    pub dir: TempDirGuard,
}

impl Home {
    pub fn new() -> Home {
        let dir = TempDirGuard::new("pwctl-home");
        for sub in ["config", "data", "run", "cache"] {
            std::fs::create_dir_all(dir.path().join(sub)).unwrap();
        }
        Home { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn runtime_dir(&self) -> PathBuf {
        self.path().join("run")
    }

    /// pwctl with a clean environment: no PODWRANGLER_* or colour variables of the caller.
    pub fn command(&self) -> Command {
        self.command_with(&pwctl_bin())
    }

    /// As [`Home::command`], for another copy of the binary.
    pub fn command_with(&self, exe: &Path) -> Command {
        let mut cmd = Command::new(exe);
        for (k, _) in std::env::vars() {
            if k.starts_with("PODWRANGLER_")
                || k.starts_with("XDG_")
                || matches!(
                    k.as_str(),
                    // pwctl reads the user's kubeconfig; tests name theirs.
                    "KUBECONFIG"
                        | "NO_COLOR"
                        | "FORCE_COLOR"
                        | "CLICOLOR"
                        | "CLICOLOR_FORCE"
                        | "IGNORE_IS_TERMINAL"
                )
            {
                cmd.env_remove(k);
            }
        }
        cmd.env("HOME", self.path())
            .env("XDG_CONFIG_HOME", self.path().join("config"))
            .env("XDG_DATA_HOME", self.path().join("data"))
            .env("XDG_CACHE_HOME", self.path().join("cache"))
            .env("XDG_RUNTIME_DIR", self.runtime_dir())
            .stdin(Stdio::null());
        cmd
    }

    pub fn run(&self, args: &[&str]) -> Run {
        self.command()
            .args(args)
            .output()
            .expect("run pwctl")
            .into()
    }
}

/// podsim + podwranglerd + a pwctl that talks to that daemon's socket.
pub struct Stack {
    pub sim: Podsim,
    pub daemon: Daemon,
    pub home: Home,
}

impl Stack {
    pub fn start(pods: usize) -> Stack {
        Stack::start_with(PodsimOptions {
            pods,
            token: Some("sim-token".into()),
            ..Default::default()
        })
    }

    pub fn start_with(opts: PodsimOptions) -> Stack {
        Stack::start_configured(opts, |_, _| {})
    }

    /// As [`Stack::start_with`], with `configure` adjusting the daemon's options once podsim
    /// runs (a `[clusters.NAME]` table needs podsim's address).
    pub fn start_configured(
        opts: PodsimOptions,
        configure: impl FnOnce(&Podsim, &mut DaemonOptions),
    ) -> Stack {
        let sim = Podsim::start_with(opts);
        let mut d = DaemonOptions::new(testkit::bin_path("podwranglerd"));
        d.tcp = false;
        configure(&sim, &mut d);
        let daemon = Daemon::start(d);
        Stack {
            sim,
            daemon,
            home: Home::new(),
        }
    }

    /// pwctl pointed at this stack's daemon by `PODWRANGLER_SOCKET`.
    pub fn command(&self) -> Command {
        let mut cmd = self.home.command();
        cmd.env("PODWRANGLER_SOCKET", &self.daemon.socket);
        cmd
    }

    pub fn run(&self, args: &[&str]) -> Run {
        self.command()
            .args(args)
            .output()
            .expect("run pwctl")
            .into()
    }

    /// Registers every podsim pod by its PlainTTY URL as `web-0`, `web-1`, ...
    pub fn add_all(&self) -> Vec<String> {
        let mut aliases = Vec::new();
        for (i, pod) in self.sim.info.pods.iter().enumerate() {
            let alias = format!("web-{i}");
            self.run(&[
                "pod",
                "add",
                "--alias",
                &alias,
                "--url",
                &pod.plaintty_url,
                "--tag",
                "sim",
            ])
            .ok();
            aliases.push(alias);
        }
        aliases
    }
}

/// Polls until `f` holds, for up to `secs` seconds.
pub fn eventually(secs: u64, f: impl FnMut() -> bool) -> bool {
    testkit::wait_until(Duration::from_secs(secs), f)
}
