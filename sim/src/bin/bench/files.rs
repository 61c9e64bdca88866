//! `bench files`: whole `pwctl` processes against podwranglerd and podsim. A file copied to many
//! pods (`pwctl cp FILE :PATH --all`) next to `kubectl cp` per pod under `xargs -P 32`; a large
//! output streamed through the daemon to pwctl, with both processes' peak RSS; and one
//! `pwctl exec run POD true` from start to exit next to `kubectl exec POD -- true`.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use argh::FromArgs;
use serde_json::json;

use crate::daemon::{register, wait_ready};
use crate::daemon_proc::{DaemonProc, DaemonSpec, raise_fd_limit, sibling_binary};
use crate::podsim_proc::PodsimProc;
use crate::table::{fmt_bytes, fmt_ms};

/// File copies, streaming throughput and whole-process latency of pwctl.
#[derive(FromArgs)]
#[argh(subcommand, name = "files")]
pub struct FilesArgs {
    /// pods the file is copied to (default 100)
    #[argh(option, default = "100")]
    pods: usize,
    /// size of the copied file in MiB (default 50)
    #[argh(option, default = "50")]
    mib: usize,
    /// bytes of zeros turned into base64 output for the streaming part, in MiB (default 1024)
    #[argh(option, default = "1024")]
    stream_mib: usize,
    /// runs of `pwctl exec run POD true` and of `kubectl exec` each; the median is reported
    /// (default 50)
    #[argh(option, default = "50")]
    runs: usize,
    /// kubectl processes at once under xargs (default 32)
    #[argh(option, default = "32")]
    kubectl_parallel: usize,
    /// the kubectl binary (default: kubectl on PATH)
    #[argh(option, default = "String::from(\"kubectl\")")]
    kubectl: String,
    /// skip the copy part
    #[argh(switch)]
    skip_copy: bool,
    /// skip the streaming part
    #[argh(switch)]
    skip_stream: bool,
    /// skip the single-exec latency part
    #[argh(switch)]
    skip_latency: bool,
}

pub fn main(args: FilesArgs) -> anyhow::Result<()> {
    raise_fd_limit();
    let pwctl = sibling_binary("pwctl", "pwctl")?;
    let kubectl_ok = Command::new(&args.kubectl)
        .args(["version", "--client"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !kubectl_ok {
        eprintln!(
            "bench: {} is not runnable; kubectl comparisons are skipped",
            args.kubectl
        );
    }
    let mut report = Vec::new();
    if !args.skip_latency {
        eprintln!(
            "bench: one `pwctl exec run POD true` as a process, {} runs ...",
            args.runs
        );
        report.push(bench_latency(&pwctl, &args, kubectl_ok)?);
    }
    if !args.skip_stream {
        eprintln!(
            "bench: streaming {} MiB of zeros as base64 ...",
            args.stream_mib
        );
        report.push(bench_stream(&pwctl, &args)?);
    }
    if !args.skip_copy {
        eprintln!("bench: copying {} MiB to {} pods ...", args.mib, args.pods);
        report.push(bench_copy(&pwctl, &args, kubectl_ok)?);
    }
    println!();
    for section in report {
        println!("{section}");
    }
    Ok(())
}

/// A podsim of `n` pods over TLS with a kubeconfig, and an eager daemon with all of them
/// registered (through the Kubernetes provider) and connected.
struct Cluster {
    sim: PodsimProc,
    daemon: DaemonProc,
    kubeconfig: std::path::PathBuf,
    names: Vec<String>,
    _dir: tempfile::TempDir,
}

fn cluster(n: usize) -> anyhow::Result<Cluster> {
    let dir = tempfile::Builder::new()
        .prefix("pw-bench-files")
        .tempdir()?;
    let kubeconfig = dir.path().join("kubeconfig");
    let sim = PodsimProc::start_with(n, true, Some(&kubeconfig))?;
    let names: Vec<String> = sim.info["pods"]
        .as_array()
        .context("podsim's pods")?
        .iter()
        .filter_map(|p| p["name"].as_str().map(str::to_owned))
        .collect();
    let import = json!({
        "namespace": sim.info["namespace"],
        "server": sim.info["http_base"],
        "token": sim.info["token"],
        "certificate_authority": sim.info["ca_cert_pem"],
    })
    .to_string();
    let daemon = DaemonProc::start(DaemonSpec::default())?;
    let mut client = daemon.client(Duration::from_secs(600));
    register(&mut client, &import, n)?;
    wait_ready(&mut client, n, Duration::from_secs(600), &daemon)?;
    Ok(Cluster {
        sim,
        daemon,
        kubeconfig,
        names,
        _dir: dir,
    })
}

fn pwctl_cmd(pwctl: &Path, daemon: &DaemonProc) -> Command {
    let mut cmd = Command::new(pwctl);
    for (k, _) in std::env::vars() {
        if k.starts_with("PODWRANGLER_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("PODWRANGLER_SOCKET", &daemon.socket)
        .env("NO_COLOR", "1");
    cmd
}

/// Runs `cmd` to its end with stdout to `stdout`; answers its wall time and peak RSS (from
/// `wait4`'s rusage, so nothing has to catch it alive).
fn timed(mut cmd: Command, stdout: Stdio) -> anyhow::Result<(Duration, i32, u64)> {
    let t = Instant::now();
    let child = cmd
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(Stdio::null())
        .spawn()
        .context("spawning")?;
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: rusage is a plain C struct that wait4 fills in.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for our own child, writing into the two locals.
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let elapsed = t.elapsed();
    std::mem::forget(child);
    if r != pid {
        bail!("wait4 failed: {}", std::io::Error::last_os_error());
    }
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        -1
    };
    Ok((elapsed, code, usage.ru_maxrss as u64 * 1024))
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort_unstable();
    v[v.len() / 2]
}

fn bench_latency(pwctl: &Path, args: &FilesArgs, kubectl_ok: bool) -> anyhow::Result<String> {
    let c = cluster(1)?;
    // `pod import` registers each pod under its name.
    let alias = c.names[0].clone();
    let pod = c.names[0].clone();
    let pw = || {
        let mut cmd = pwctl_cmd(pwctl, &c.daemon);
        cmd.args(["exec", "run", &alias, "true"]);
        cmd
    };
    let kc = || {
        let mut cmd = Command::new(&args.kubectl);
        cmd.arg("--kubeconfig")
            .arg(&c.kubeconfig)
            .args(["exec", &pod, "--", "true"]);
        cmd
    };
    let version = || {
        let mut cmd = Command::new(pwctl);
        cmd.arg("--version");
        cmd
    };
    // Warm-up, and proof that both work.
    for _ in 0..3 {
        let (_, code, _) = timed(pw(), Stdio::null())?;
        if code != 0 {
            bail!("pwctl exec run {alias} true exited {code}");
        }
    }
    if kubectl_ok {
        let (_, code, _) = timed(kc(), Stdio::null())?;
        if code != 0 {
            bail!("kubectl exec {pod} -- true exited {code}");
        }
    }
    let (mut p, mut k, mut v) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..args.runs {
        p.push(timed(pw(), Stdio::null())?.0);
        v.push(timed(version(), Stdio::null())?.0);
        if kubectl_ok {
            k.push(timed(kc(), Stdio::null())?.0);
        }
    }
    let (p, v) = (median(p), median(v));
    let mut out = format!(
        "One command as a whole process (median of {} runs, Kubernetes pod over TLS)\n  pwctl exec run POD true      {}\n  pwctl --version              {}\n",
        args.runs,
        fmt_ms(p),
        fmt_ms(v)
    );
    if kubectl_ok {
        let k = median(k);
        out.push_str(&format!(
            "  kubectl exec POD -- true     {}\n  ratio kubectl / pwctl        {:.1}x\n",
            fmt_ms(k),
            k.as_secs_f64() / p.as_secs_f64()
        ));
    }
    drop(c.sim);
    Ok(out)
}

fn bench_stream(pwctl: &Path, args: &FilesArgs) -> anyhow::Result<String> {
    let c = cluster(1)?;
    let alias = c.names[0].clone();
    let bytes = args.stream_mib as u64 * 1024 * 1024;
    let mut cmd = pwctl_cmd(pwctl, &c.daemon);
    cmd.args([
        "exec",
        "run",
        &alias,
        "--timeout",
        "3600",
        &format!("head -c {bytes} /dev/zero | base64"),
    ]);
    // Count what arrives: pwctl writes into a pipe read here.
    let out_file = tempfile::NamedTempFile::new()?;
    let sink = std::fs::File::create(out_file.path())?;
    let (elapsed, code, pwctl_peak) = timed(cmd, Stdio::from(sink))?;
    if code != 0 {
        bail!(
            "the streaming pwctl exited {code}; daemon log:\n{}",
            c.daemon.log_tail()
        );
    }
    let received = std::fs::metadata(out_file.path())?.len();
    let expected = bytes.div_ceil(3) * 4 + (bytes.div_ceil(3) * 4).div_ceil(76);
    if received != expected {
        bail!("received {received} bytes of output, expected {expected}");
    }
    let daemon_peak = vm_hwm(c.daemon.pid)?;
    Ok(format!(
        "Streaming `head -c {} /dev/zero | base64` through the daemon to pwctl (Kubernetes pod)\n  output            {}\n  time              {:.2} s\n  throughput        {:.1} MiB/s\n  pwctl peak RSS    {}\n  daemon peak RSS   {} (VmHWM, the whole run)\n",
        bytes,
        fmt_bytes(received),
        elapsed.as_secs_f64(),
        received as f64 / (1024.0 * 1024.0) / elapsed.as_secs_f64(),
        fmt_bytes(pwctl_peak),
        fmt_bytes(daemon_peak),
    ))
}

/// `VmHWM` (peak resident set) of a process, in bytes.
fn vm_hwm(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|kb| kb.parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .context("no VmHWM")
}

fn bench_copy(pwctl: &Path, args: &FilesArgs, kubectl_ok: bool) -> anyhow::Result<String> {
    let c = cluster(args.pods)?;
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("payload.bin");
    {
        use rand::RngCore;
        let mut f = std::io::BufWriter::new(std::fs::File::create(&file)?);
        let mut buf = vec![0u8; 1 << 20];
        for _ in 0..args.mib {
            rand::rng().fill_bytes(&mut buf);
            f.write_all(&buf)?;
        }
    }
    let mut cmd = pwctl_cmd(pwctl, &c.daemon);
    cmd.args(["--json", "cp"])
        .arg(&file)
        .args([":payload.bin", "--all"]);
    let out_file = tempfile::NamedTempFile::new()?;
    let (pw, code, pwctl_peak) = timed(cmd, Stdio::from(std::fs::File::create(out_file.path())?))?;
    let resp: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out_file.path())?).context("pwctl cp --json")?;
    if code != 0 || resp["succeeded"].as_u64() != Some(args.pods as u64) {
        bail!(
            "pwctl cp did not verify in every pod (exit {code}): {}",
            resp["results"]
                .as_array()
                .and_then(|r| r.iter().find(|x| x["ok"] != true))
                .cloned()
                .unwrap_or_default()
        );
    }
    let daemon_peak = vm_hwm(c.daemon.pid)?;
    // Out of one pod, checked against what went in.
    let back = dir.path().join("back.bin");
    let mut cmd = pwctl_cmd(pwctl, &c.daemon);
    cmd.arg("cp")
        .arg(format!("{}:payload.bin", c.names[0]))
        .arg(&back);
    let (pw_out, code, _) = timed(cmd, Stdio::null())?;
    if code != 0 || std::fs::read(&back)? != std::fs::read(&file)? {
        bail!(
            "pwctl cp out of {} did not give the file back (exit {code})",
            c.names[0]
        );
    }
    let names = c.names.clone();
    let kubeconfig = c.kubeconfig.clone();
    // Free the daemon's sessions before kubectl starts its own.
    drop(c.daemon);
    let mut out = format!(
        "Copy {} MiB to {} pods (Kubernetes over TLS; SHA-256 verified in every pod)\n  pwctl cp FILE :PATH --all    {:.2} s ({:.1} MiB/s into pods)\n  pwctl peak RSS               {}\n  daemon peak RSS              {} (VmHWM, from start-up)\n",
        args.mib,
        args.pods,
        pw.as_secs_f64(),
        (args.mib * args.pods) as f64 / pw.as_secs_f64(),
        fmt_bytes(pwctl_peak),
        fmt_bytes(daemon_peak),
    );
    out.push_str(&format!(
        "  pwctl cp POD:PATH FILE       {:.2} s ({:.1} MiB/s out of one pod)\n",
        pw_out.as_secs_f64(),
        args.mib as f64 / pw_out.as_secs_f64()
    ));
    if kubectl_ok {
        match kubectl_cp(
            &args.kubectl,
            &kubeconfig,
            &file,
            &names,
            args.kubectl_parallel,
        ) {
            Ok(k) => out.push_str(&format!(
                "  kubectl cp, xargs -P {}      {:.2} s\n  ratio kubectl / pwctl        {:.1}x\n",
                args.kubectl_parallel,
                k.as_secs_f64(),
                k.as_secs_f64() / pw.as_secs_f64()
            )),
            Err(e) => out.push_str(&format!("  kubectl cp failed: {e:#}\n")),
        }
        let back = dir.path().join("kubectl-back.bin");
        let mut cmd = Command::new(&args.kubectl);
        cmd.arg("--kubeconfig")
            .arg(&kubeconfig)
            .arg("cp")
            .arg(format!("{}:kubectl.bin", names[0]))
            .arg(&back);
        match timed(cmd, Stdio::null()) {
            Ok((k, 0, _)) => out.push_str(&format!(
                "  kubectl cp POD:PATH FILE     {:.2} s\n  ratio kubectl / pwctl (out)  {:.1}x\n",
                k.as_secs_f64(),
                k.as_secs_f64() / pw_out.as_secs_f64()
            )),
            Ok((_, code, _)) => out.push_str(&format!("  kubectl cp out exited {code}\n")),
            Err(e) => out.push_str(&format!("  kubectl cp out failed: {e:#}\n")),
        }
    }
    drop(c.sim);
    Ok(out)
}

/// `kubectl cp FILE POD:kubectl.bin` per pod, `parallel` at once under xargs.
fn kubectl_cp(
    kubectl: &str,
    kubeconfig: &Path,
    file: &Path,
    names: &[String],
    parallel: usize,
) -> anyhow::Result<Duration> {
    let argv: Vec<std::ffi::OsString> = vec![
        kubectl.into(),
        "--kubeconfig".into(),
        kubeconfig.into(),
        "cp".into(),
        file.into(),
        "{}:kubectl.bin".into(),
    ];
    let (out, elapsed) = crate::xargs::per_pod(parallel, &argv, names, false)?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        bail!(
            "{}: {}",
            out.status,
            stderr.lines().take(3).collect::<Vec<_>>().join("; ")
        );
    }
    Ok(elapsed)
}
