//! `bench daemon`: podwranglerd against podsim. Single-pod exec latency through the daemon's
//! Unix socket next to the engine's own figure on the same pod; fan-out of `echo $POD_NAME` to
//! many pods next to `kubectl exec` per pod under `xargs -P 32`; the daemon's memory per
//! connected idle pod.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use argh::FromArgs;
use podwrangler::{
    KubernetesTarget, PodEndpoint, PodIdentity, PodSession, ProviderConfig, ProviderKind,
    RunOptions, Secret, SessionOptions,
};
use serde_json::json;

use crate::daemon_proc::{DaemonProc, DaemonSpec, raise_fd_limit};
use crate::http::UnixClient;
use crate::podsim_proc::PodsimProc;
use crate::table::{Table, fmt_bytes, fmt_ms, percentile};

/// Daemon latency, fan-out versus kubectl, and memory per pod.
#[derive(FromArgs)]
#[argh(subcommand, name = "daemon")]
pub struct DaemonArgs {
    /// sequential single-pod requests measured per provider (default 1000)
    #[argh(option, default = "1000")]
    commands: usize,
    /// fan-out pod counts, comma-separated (default 100,1000)
    #[argh(option, default = "String::from(\"100,1000\")")]
    pods: String,
    /// fan-out concurrency sent with each request (default: the daemon's configured default)
    #[argh(option)]
    concurrency: Option<usize>,
    /// warm fan-outs per pod count; the median is reported (default 3)
    #[argh(option, default = "3")]
    rounds: usize,
    /// kubectl processes at once under xargs (default 32)
    #[argh(option, default = "32")]
    kubectl_parallel: usize,
    /// the kubectl binary (default: kubectl on PATH)
    #[argh(option, default = "String::from(\"kubectl\")")]
    kubectl: String,
    /// skip the kubectl comparison
    #[argh(switch)]
    skip_kubectl: bool,
    /// skip the single-pod latency part
    #[argh(switch)]
    skip_single: bool,
    /// skip the cold fan-out (a lazy daemon that connects every pod during the fan-out)
    #[argh(switch)]
    skip_cold: bool,
}

const WARM_UP: usize = 50;
/// Engine and daemon samples alternate in blocks, so machine noise hits both alike.
const BLOCK: usize = 100;
const COMMAND: &str = "echo $POD_NAME";

struct SingleRow {
    provider: &'static str,
    engine: Vec<Duration>,
    engine_total: Duration,
    daemon: Vec<Duration>,
    daemon_total: Duration,
}

struct FanRow {
    pods: usize,
    connect_all: Duration,
    cold: Option<Duration>,
    warm: Vec<Duration>,
    daemon_reported_ms: f64,
    kubectl: Option<Result<Duration, String>>,
    rss_before: u64,
    rss_after: u64,
    /// Pods whose daemon output was checked in every run (cold and warm).
    verified: usize,
}

pub fn main(args: DaemonArgs) -> anyhow::Result<()> {
    if args.commands == 0 || args.rounds == 0 {
        bail!("--commands and --rounds must be at least 1");
    }
    let counts: Vec<usize> = args
        .pods
        .split(',')
        .map(|s| s.trim().parse::<usize>())
        .collect::<Result<_, _>>()
        .with_context(|| format!("--pods {:?}: expected numbers like 100,1000", args.pods))?;
    if counts.contains(&0) {
        bail!("--pods: every count must be at least 1");
    }
    let fds = raise_fd_limit();
    eprintln!("bench: RLIMIT_NOFILE {fds} (podsim and podwranglerd inherit it)");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;

    let mut single = Vec::new();
    if !args.skip_single {
        for kind in [ProviderKind::Kubernetes, ProviderKind::PlainTty] {
            eprintln!("bench: single-pod exec, {kind} ...");
            single.push(bench_single(&rt, kind, args.commands)?);
        }
    }
    let kubectl_ok = !args.skip_kubectl && kubectl_available(&args.kubectl);
    if !args.skip_kubectl && !kubectl_ok {
        eprintln!(
            "bench: {} is not runnable; the kubectl comparison is skipped",
            args.kubectl
        );
    }
    let mut fan = Vec::new();
    for &n in &counts {
        eprintln!("bench: fan-out to {n} pods ...");
        fan.push(bench_fanout(n, &args, kubectl_ok)?);
    }

    if !single.is_empty() {
        print_single(&single, args.commands);
    }
    print_fanout(&fan, &args, kubectl_ok);
    print_rss(&fan);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Single-pod latency

/// The pod as the engine reaches it: Kubernetes through the TLS API server (as the daemon
/// does), PlainTTY through its web-terminal URL.
fn engine_endpoint(sim: &PodsimProc, kind: ProviderKind) -> anyhow::Result<PodEndpoint> {
    let pod = &sim.info["pods"][0];
    Ok(match kind {
        ProviderKind::PlainTty => podwrangler::endpoint_from_url(
            kind,
            pod["plaintty_url"].as_str().context("plaintty_url")?,
        )?,
        ProviderKind::Kubernetes => {
            let mut identity = PodIdentity::new(pod["name"].as_str().context("name")?);
            identity.namespace = pod["namespace"].as_str().map(str::to_owned);
            PodEndpoint {
                identity,
                provider: ProviderConfig::Kubernetes(KubernetesTarget {
                    server: sim.info["http_base"].as_str().map(str::to_owned),
                    certificate_authority: sim.info["ca_cert_pem"].as_str().map(str::to_owned),
                    ..Default::default()
                }),
                token: sim.info["token"].as_str().map(Secret::new),
                client_key: None,
            }
        }
    })
}

/// The same pod registered in the daemon.
fn daemon_registration(sim: &PodsimProc, kind: ProviderKind, alias: &str) -> serde_json::Value {
    let pod = &sim.info["pods"][0];
    match kind {
        ProviderKind::PlainTty => json!({
            "alias": alias,
            "provider": "plaintty",
            "url": pod["plaintty_url"],
        }),
        ProviderKind::Kubernetes => json!({
            "alias": alias,
            "provider": "kubernetes",
            "pod_name": pod["name"],
            "namespace": pod["namespace"],
            "server": sim.info["http_base"],
            "token": sim.info["token"],
            "certificate_authority": sim.info["ca_cert_pem"],
        }),
    }
}

fn bench_single(
    rt: &tokio::runtime::Runtime,
    kind: ProviderKind,
    n: usize,
) -> anyhow::Result<SingleRow> {
    // PlainTTY has no "skip TLS verification": its podsim serves plain WebSockets.
    let sim = PodsimProc::start_with(1, kind == ProviderKind::Kubernetes, None)?;
    let daemon = DaemonProc::start(DaemonSpec::default())?;
    let mut client = daemon.client(Duration::from_secs(60));
    let alias = "bench-single";
    client
        .post(
            "/api/v1/pods/",
            &daemon_registration(&sim, kind, alias).to_string(),
        )?
        .ok_json("registering the pod")?;
    wait_ready(&mut client, 1, Duration::from_secs(60), &daemon)?;

    let session = rt.block_on(PodSession::connect(
        engine_endpoint(&sim, kind)?,
        SessionOptions::default(),
    ))?;
    let quick = RunOptions::with_timeout(Duration::from_secs(30));
    let path = format!("/api/v1/pods/{alias}/exec");
    let body = json!({"command": "true"}).to_string();
    let daemon_once = |client: &mut UnixClient| -> anyhow::Result<Duration> {
        let t = Instant::now();
        let r = client.post(&path, &body)?;
        let elapsed = t.elapsed();
        let record = r.ok_json("exec through the daemon")?;
        if record["exit_code"] != 0 {
            bail!("`true` through the daemon: {record}");
        }
        Ok(elapsed)
    };
    rt.block_on(async {
        for _ in 0..WARM_UP {
            session.run("true", quick.clone()).await?;
        }
        anyhow::Ok(())
    })?;
    for _ in 0..WARM_UP {
        daemon_once(&mut client)?;
    }

    let mut row = SingleRow {
        provider: kind.as_str(),
        engine: Vec::with_capacity(n),
        engine_total: Duration::ZERO,
        daemon: Vec::with_capacity(n),
        daemon_total: Duration::ZERO,
    };
    let mut left = n;
    while left > 0 {
        let block = left.min(BLOCK);
        left -= block;
        let t = Instant::now();
        rt.block_on(async {
            for _ in 0..block {
                let t = Instant::now();
                let r = session.run("true", quick.clone()).await?;
                row.engine.push(t.elapsed());
                if r.exit_code != Some(0) {
                    bail!("`true` through the engine exited {:?}", r.exit_code);
                }
            }
            anyhow::Ok(())
        })?;
        row.engine_total += t.elapsed();
        let t = Instant::now();
        for _ in 0..block {
            row.daemon.push(daemon_once(&mut client)?);
        }
        row.daemon_total += t.elapsed();
    }
    rt.block_on(session.close());
    Ok(row)
}

// ---------------------------------------------------------------------------------------------
// Fan-out, kubectl, memory

fn bench_fanout(n: usize, args: &DaemonArgs, kubectl_ok: bool) -> anyhow::Result<FanRow> {
    let dir = tempfile::Builder::new()
        .prefix("pw-bench-fanout")
        .tempdir()?;
    let kubeconfig = dir.path().join("kubeconfig");
    let sim = PodsimProc::start_with(n, true, Some(&kubeconfig))?;
    let names: Vec<String> = sim.info["pods"]
        .as_array()
        .context("podsim's pods")?
        .iter()
        .filter_map(|p| p["name"].as_str().map(str::to_owned))
        .collect();
    if names.len() != n {
        bail!("podsim reported {} pods, not {n}", names.len());
    }
    // The caller's own credentials, as pwctl would resolve them from the kubeconfig.
    let import = json!({
        "namespace": sim.info["namespace"],
        "server": sim.info["http_base"],
        "token": sim.info["token"],
        "certificate_authority": sim.info["ca_cert_pem"],
    })
    .to_string();
    let mut fanout = json!({"command": COMMAND, "all": true, "timeout": 120.0});
    if let Some(c) = args.concurrency {
        fanout["concurrency"] = json!(c);
    }
    let fanout = fanout.to_string();
    let long = Duration::from_secs(900);

    // Cold: a lazy daemon connects each pod inside the fan-out itself.
    let cold = if args.skip_cold {
        None
    } else {
        let daemon = DaemonProc::start(DaemonSpec {
            lazy: true,
            ..Default::default()
        })?;
        let mut client = daemon.client(long);
        register(&mut client, &import, n)?;
        let t = Instant::now();
        let r = client.post("/api/v1/exec", &fanout)?;
        let cold = t.elapsed();
        verify_fanout(&r.ok_json("cold fan-out")?, &names)
            .with_context(|| format!("cold fan-out; daemon log:\n{}", daemon.log_tail()))?;
        Some(cold)
    };

    // Warm: an eager daemon, every pod connected and idle before the clock starts.
    let daemon = DaemonProc::start(DaemonSpec::default())?;
    let mut client = daemon.client(long);
    // Let start-up allocations settle before the baseline.
    std::thread::sleep(Duration::from_millis(500));
    let rss_before = daemon.rss_bytes()?;
    let t = Instant::now();
    register(&mut client, &import, n)?;
    wait_ready(&mut client, n, Duration::from_secs(600), &daemon)?;
    let connect_all = t.elapsed();
    std::thread::sleep(Duration::from_secs(2));
    let rss_after = daemon.rss_bytes()?;

    let mut warm = Vec::new();
    let mut daemon_reported_ms = Vec::new();
    for _ in 0..args.rounds {
        let t = Instant::now();
        let r = client.post("/api/v1/exec", &fanout)?;
        warm.push(t.elapsed());
        let body = r.ok_json("warm fan-out")?;
        verify_fanout(&body, &names)
            .with_context(|| format!("warm fan-out; daemon log:\n{}", daemon.log_tail()))?;
        daemon_reported_ms.push(body["duration_ms"].as_f64().unwrap_or(f64::NAN));
    }
    daemon_reported_ms.sort_by(f64::total_cmp);
    // Free the pods' shells in podsim before kubectl starts its own.
    drop(client);
    drop(daemon);

    let kubectl = kubectl_ok.then(|| {
        run_kubectl(&args.kubectl, &kubeconfig, &names, args.kubectl_parallel)
            .map_err(|e| format!("{e:#}"))
    });
    Ok(FanRow {
        pods: n,
        connect_all,
        cold,
        warm,
        daemon_reported_ms: daemon_reported_ms[daemon_reported_ms.len() / 2],
        kubectl,
        rss_before,
        rss_after,
        verified: n,
    })
}

/// Imports podsim's pods through the Kubernetes provider and checks all `n` were registered.
pub(crate) fn register(client: &mut UnixClient, import: &str, n: usize) -> anyhow::Result<()> {
    let r = client
        .post("/api/v1/pods/import", import)?
        .ok_json("importing the pods")?;
    let registered = r["registered"].as_array().map_or(0, Vec::len);
    if registered != n {
        bail!("import registered {registered} pods, expected {n}: {r}");
    }
    Ok(())
}

/// Polls `/health` until `n` pods are `ready`; fails early when any pod failed.
pub(crate) fn wait_ready(
    client: &mut UnixClient,
    n: usize,
    limit: Duration,
    daemon: &DaemonProc,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + limit;
    loop {
        let health = client.get("/health")?.ok_json("/health")?;
        let count = |state: &str| health["pods"][state].as_u64().unwrap_or(0) as usize;
        if count("ready") >= n {
            return Ok(());
        }
        if count("failed") > 0 || Instant::now() > deadline {
            bail!(
                "pods not all ready ({}): {}; daemon log:\n{}",
                if count("failed") > 0 {
                    "some failed"
                } else {
                    "timed out"
                },
                health["pods"],
                daemon.log_tail()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Every pod answered exactly once, succeeded, and printed its own name.
fn verify_fanout(body: &serde_json::Value, names: &[String]) -> anyhow::Result<()> {
    let results = body["results"].as_array().context("no results array")?;
    let mut got: Vec<(&str, &str)> = Vec::with_capacity(results.len());
    for r in results {
        if r["status"] != "succeeded" {
            bail!("a pod did not succeed: {r}");
        }
        got.push((
            r["alias"].as_str().unwrap_or(""),
            r["stdout"].as_str().unwrap_or(""),
        ));
    }
    got.sort_unstable();
    if got.len() != names.len() {
        bail!("{} results for {} pods", got.len(), names.len());
    }
    let mut expected: Vec<&String> = names.iter().collect();
    expected.sort_unstable();
    for ((alias, stdout), name) in got.iter().zip(expected) {
        if alias != name || stdout.trim_end() != name {
            bail!("pod {name}: alias {alias:?} printed {stdout:?}");
        }
    }
    Ok(())
}

fn kubectl_available(kubectl: &str) -> bool {
    Command::new(kubectl)
        .args(["version", "--client"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// `kubectl exec POD -- sh -c 'echo $POD_NAME'` per pod, `parallel` at once under xargs, as
/// users do it today. Checks that the output lines are exactly the pod names.
fn run_kubectl(
    kubectl: &str,
    kubeconfig: &Path,
    names: &[String],
    parallel: usize,
) -> anyhow::Result<Duration> {
    let kc = kubeconfig.display().to_string();
    let one = |pod: &str| -> anyhow::Result<()> {
        let out = Command::new(kubectl)
            .args([
                "--kubeconfig",
                kc.as_str(),
                "exec",
                pod,
                "--",
                "sh",
                "-c",
                COMMAND,
            ])
            .output()?;
        if !out.status.success() || String::from_utf8_lossy(&out.stdout).trim() != pod {
            bail!(
                "kubectl exec {pod} failed ({}): {}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(())
    };
    // One untimed call proves kubectl works against this podsim before timing a thousand.
    one(&names[0])?;

    let argv: Vec<std::ffi::OsString> = [
        kubectl,
        "--kubeconfig",
        kc.as_str(),
        "exec",
        "{}",
        "--",
        "sh",
        "-c",
        COMMAND,
    ]
    .iter()
    .map(Into::into)
    .collect();
    let (out, elapsed) = crate::xargs::per_pod(parallel, &argv, names, true)?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let mut lines: Vec<&str> = stdout.lines().collect();
    lines.sort_unstable();
    let mut expected: Vec<&str> = names.iter().map(String::as_str).collect();
    expected.sort_unstable();
    if !out.status.success() || lines != expected {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let first_err: String = stderr.lines().take(5).collect::<Vec<_>>().join("\n");
        bail!(
            "kubectl via xargs: {} ({} of {} lines right); stderr: {first_err}",
            out.status,
            lines
                .iter()
                .filter(|l| expected.binary_search(l).is_ok())
                .count(),
            names.len()
        );
    }
    Ok(elapsed)
}

// ---------------------------------------------------------------------------------------------
// Report

fn print_single(rows: &[SingleRow], n: usize) {
    println!(
        "\nsingle-pod exec of `true`: {n} sequential requests per side after {WARM_UP} warm-up, \
         alternating blocks of {BLOCK}; daemon = POST /api/v1/pods/{{alias}}/exec over a \
         keep-alive Unix-socket connection (history rows written); engine = PodSession::run on \
         the same podsim pod\n"
    );
    let mut t = Table::new(&[
        "provider",
        "engine p50",
        "engine p99",
        "engine req/s",
        "daemon p50",
        "daemon p99",
        "daemon req/s",
        "overhead p50",
        "daemon/engine p50",
    ]);
    for r in rows {
        let (ep50, ep99) = (percentile(&r.engine, 0.5), percentile(&r.engine, 0.99));
        let (dp50, dp99) = (percentile(&r.daemon, 0.5), percentile(&r.daemon, 0.99));
        let overhead = dp50.as_secs_f64() - ep50.as_secs_f64();
        t.row(vec![
            r.provider.to_owned(),
            fmt_ms(ep50),
            fmt_ms(ep99),
            format!(
                "{:.0}",
                r.engine.len() as f64 / r.engine_total.as_secs_f64()
            ),
            fmt_ms(dp50),
            fmt_ms(dp99),
            format!(
                "{:.0}",
                r.daemon.len() as f64 / r.daemon_total.as_secs_f64()
            ),
            format!(
                "{:.3} ms {}",
                overhead * 1000.0,
                if overhead < 0.0005 { "(ok)" } else { "(over)" }
            ),
            format!("{:.2}x", dp50.as_secs_f64() / ep50.as_secs_f64().max(1e-9)),
        ]);
    }
    t.print();
    println!("target: daemon overhead (daemon p50 - engine p50) under 0.5 ms");
}

fn print_fanout(rows: &[FanRow], args: &DaemonArgs, kubectl: bool) {
    let concurrency = args
        .concurrency
        .map_or("the daemon's default".to_owned(), |c| c.to_string());
    println!(
        "\nfan-out of `{COMMAND}` through POST /api/v1/exec (all pods, concurrency {concurrency}), \
         Kubernetes provider over TLS; warm = median of {} with every session connected; cold = a \
         --lazy daemon connecting each pod during the fan-out; kubectl = `kubectl exec POD -- sh \
         -c '{COMMAND}'` per pod under `xargs -P {}`; every pod's output checked in every run\n",
        args.rounds, args.kubectl_parallel
    );
    let mut t = Table::new(&[
        "pods",
        "import+connect all",
        "cold fan-out",
        "warm fan-out (min)",
        "daemon-reported",
        "kubectl xargs",
        "kubectl / warm",
        "kubectl / cold",
        "verified",
    ]);
    for r in rows {
        let mut warm = r.warm.clone();
        warm.sort_unstable();
        let median = warm[warm.len() / 2];
        let (k, kw, kc) = match &r.kubectl {
            None => ("skipped".to_owned(), "-".to_owned(), "-".to_owned()),
            Some(Err(e)) => {
                eprintln!("bench: kubectl at {} pods failed: {e}", r.pods);
                ("failed".to_owned(), "-".to_owned(), "-".to_owned())
            }
            Some(Ok(d)) => (
                fmt_secs(*d),
                format!("{:.1}x", d.as_secs_f64() / median.as_secs_f64()),
                r.cold.map_or("-".to_owned(), |c| {
                    format!("{:.1}x", d.as_secs_f64() / c.as_secs_f64())
                }),
            ),
        };
        t.row(vec![
            r.pods.to_string(),
            fmt_secs(r.connect_all),
            r.cold.map_or("skipped".to_owned(), fmt_secs),
            format!("{} ({})", fmt_secs(median), fmt_secs(warm[0])),
            format!("{:.3} s", r.daemon_reported_ms / 1000.0),
            k,
            kw,
            kc,
            format!("{}/{}", r.verified, r.pods),
        ]);
    }
    t.print();
    if kubectl {
        println!("target: at least 20x faster than kubectl at 1,000 pods (kubectl / warm)");
    }
}

fn print_rss(rows: &[FanRow]) {
    println!(
        "\ndaemon memory: VmRSS of podwranglerd before registering, and 2 s after every pod is \
         connected, ready and idle\n"
    );
    let mut t = Table::new(&["pods", "RSS before", "RSS idle", "delta", "per pod"]);
    for r in rows {
        let delta = r.rss_after.saturating_sub(r.rss_before);
        let per = delta as f64 / r.pods as f64;
        t.row(vec![
            r.pods.to_string(),
            fmt_bytes(r.rss_before),
            fmt_bytes(r.rss_after),
            fmt_bytes(delta),
            format!(
                "{:.1} KiB {}",
                per / 1024.0,
                if per < 64.0 * 1024.0 {
                    "(ok)"
                } else {
                    "(over)"
                }
            ),
        ]);
    }
    t.print();
    println!("target: under 64 KiB per pod");
}

fn fmt_secs(d: Duration) -> String {
    format!("{:.3} s", d.as_secs_f64())
}
