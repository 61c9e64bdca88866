//! Starting a podsim for a benchmark: the `podsim` binary beside this one (built on demand),
//! its ready line parsed, and the process killed when the handle drops.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};

use anyhow::{Context, bail};

/// A running podsim; killed on drop.
pub struct PodsimProc {
    pub info: serde_json::Value,
    child: Child,
    _stdin: Option<ChildStdin>,
    _workdir: tempfile::TempDir,
}

impl PodsimProc {
    pub fn start(pods: usize) -> anyhow::Result<PodsimProc> {
        PodsimProc::start_with(pods, false, None)
    }

    /// With `tls`, podsim serves HTTPS/WSS with its throwaway CA (kubectl only sends its token
    /// over TLS), else plain HTTP/WS; `kubeconfig_out` asks podsim to write a kubeconfig for
    /// itself there.
    pub fn start_with(
        pods: usize,
        tls: bool,
        kubeconfig_out: Option<&std::path::Path>,
    ) -> anyhow::Result<PodsimProc> {
        PodsimProc::start_with_args(pods, tls, kubeconfig_out, &[])
    }

    /// As [`PodsimProc::start_with`], with further podsim arguments.
    pub fn start_with_args(
        pods: usize,
        tls: bool,
        kubeconfig_out: Option<&std::path::Path>,
        extra: &[&str],
    ) -> anyhow::Result<PodsimProc> {
        let bin = podsim_binary()?;
        let workdir = tempfile::tempdir()?;
        let mut cmd = Command::new(&bin);
        cmd.args(["--listen", "127.0.0.1:0", "--pods", &pods.to_string()]);
        if !tls {
            cmd.arg("--plain-http");
        }
        if let Some(path) = kubeconfig_out {
            cmd.arg("--kubeconfig-out").arg(path);
        }
        cmd.args(extra);
        let mut child = cmd
            .arg("--workdir")
            .arg(workdir.path())
            .arg("--exit-on-stdin-close")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().context("podsim stdout")?;
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line)?;
        if line.trim().is_empty() {
            let _ = child.kill();
            bail!("podsim exited before printing its ready line");
        }
        let info = serde_json::from_str(&line).context("podsim's ready line")?;
        Ok(PodsimProc {
            info,
            child,
            _stdin: stdin,
            _workdir: workdir,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for PodsimProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `podsim` in this binary's directory, built with the same profile when missing.
fn podsim_binary() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let dir = exe
        .parent()
        .context("bench has no directory")?
        .to_path_buf();
    let bin = dir.join("podsim");
    if bin.exists() {
        return Ok(bin);
    }
    let profile = dir.file_name().and_then(|n| n.to_str()).unwrap_or("debug");
    let target_dir = dir.parent().context("profile dir has no parent")?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "-p", "podsim", "--bin", "podsim"])
        .env("CARGO_TARGET_DIR", target_dir)
        .current_dir(env!("CARGO_MANIFEST_DIR"));
    if profile == "release" {
        cmd.arg("--release");
    }
    eprintln!("bench: building podsim ({profile})");
    let status = cmd.status().context("running cargo to build podsim")?;
    if !status.success() || !bin.exists() {
        bail!("could not build podsim; run `cargo build --release -p podsim` first");
    }
    Ok(bin)
}
