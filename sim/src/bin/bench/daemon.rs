//! `bench daemon`: podwranglerd against podsim. Single-pod exec of `true` over the Unix socket
//! (p50/p99/req/s, and the ratio to the engine alone on the same pod), fan-out of
//! `echo $POD_NAME` to 100 and 1,000 pods versus `kubectl exec` per pod with `xargs -P 32`, and
//! the daemon's RSS per connected idle pod.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use argh::FromArgs;
use podwrangler::{PodSession, ProviderKind, RunOptions};

use crate::podsim_proc::PodsimProc;

/// podwranglerd latency, fan-out against kubectl, and memory per pod.
#[derive(FromArgs)]
#[argh(subcommand, name = "daemon")]
pub struct DaemonArgs {
    /// single-pod round trips measured (default 2000)
    #[argh(option, default = "2000")]
    commands: usize,
    /// fan-out sizes, comma-separated (default 100,1000)
    #[argh(option, default = "String::from(\"100,1000\")")]
    fanout: String,
    /// fan-out concurrency asked of the daemon (default 256)
    #[argh(option, default = "256")]
    concurrency: usize,
    /// skip the kubectl comparison
    #[argh(switch)]
    no_kubectl: bool,
}

fn pct(mut v: Vec<Duration>, q: f64) -> Duration {
    v.sort_unstable();
    v[((v.len() as f64 - 1.0) * q).round() as usize]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// A keep-alive HTTP/1.1 connection over the daemon's Unix socket.
struct Conn {
    reader: BufReader<UnixStream>,
}

impl Conn {
    fn open(socket: &Path) -> anyhow::Result<Conn> {
        let s = UnixStream::connect(socket)
            .with_context(|| format!("connecting to {}", socket.display()))?;
        Ok(Conn {
            reader: BufReader::new(s),
        })
    }

    fn request(&mut self, method: &str, path: &str, body: &str) -> anyhow::Result<(u16, String)> {
        let req = format!(
            "{method} {path} HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        self.reader.get_mut().write_all(req.as_bytes())?;
        let mut line = String::new();
        self.reader.read_line(&mut line)?;
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .with_context(|| format!("bad status line {line:?}"))?;
        let mut len = 0usize;
        loop {
            line.clear();
            self.reader.read_line(&mut line)?;
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((k, v)) = l.split_once(':')
                && k.eq_ignore_ascii_case("content-length")
            {
                len = v.trim().parse()?;
            }
        }
        let mut buf = vec![0; len];
        self.reader.read_exact(&mut buf)?;
        Ok((status, String::from_utf8_lossy(&buf).into_owned()))
    }
}

/// A podwranglerd on a temp socket and SQLite file; killed on drop.
struct DaemonProc {
    child: Child,
    socket: PathBuf,
    pid: u32,
    _dir: tempfile::TempDir,
}

impl DaemonProc {
    fn start() -> anyhow::Result<DaemonProc> {
        let bin = sibling_binary("podwranglerd", "podwranglerd")?;
        let dir = tempfile::tempdir()?;
        let socket = dir.path().join("pw.sock");
        let ready = dir.path().join("ready.json");
        let config = dir.path().join("config.toml");
        std::fs::write(&config, "")?;
        let child = Command::new(&bin)
            .arg("--user")
            .arg("--config")
            .arg(&config)
            .arg("--socket")
            .arg(&socket)
            .arg("--no-tcp")
            .arg("--database-url")
            .arg(dir.path().join("pw.db"))
            .arg("--ready-file")
            .arg(&ready)
            .arg("--log-level")
            .arg("warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(text) = std::fs::read_to_string(&ready)
                && let Ok(v) = serde_json::from_str::<serde_json::Value>(&text)
            {
                let pid = v["pid"].as_u64().context("ready file pid")? as u32;
                return Ok(DaemonProc {
                    child,
                    socket,
                    pid,
                    _dir: dir,
                });
            }
            if Instant::now() > deadline {
                bail!("podwranglerd did not become ready");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn rss_kib(&self) -> u64 {
        rss_kib(self.pid)
    }
}

impl Drop for DaemonProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// A binary beside this one (same profile), built with cargo when missing.
fn sibling_binary(package: &str, name: &str) -> anyhow::Result<PathBuf> {
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
    if !cmd.status()?.success() {
        bail!("building {name} failed");
    }
    Ok(bin)
}

fn pod_names(sim: &PodsimProc) -> Vec<String> {
    sim.info["pods"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|p| p["name"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Registers `names` as Kubernetes pods of `sim` (tag `bench`) and waits until all are ready.
fn register_all(conn: &mut Conn, sim: &PodsimProc, names: &[String]) -> anyhow::Result<()> {
    let base = sim.info["http_base"].as_str().context("http_base")?;
    let token = sim.info["token"].as_str().context("token")?;
    for name in names {
        let body = serde_json::json!({
            "alias": name,
            "provider": "kubernetes",
            "url": format!("{base}/api/v1/namespaces/default/pods/{name}/exec"),
            "token": token,
            "tags": ["bench"],
        });
        let (status, text) = conn.request("POST", "/api/v1/pods/", &body.to_string())?;
        if status != 201 {
            bail!("registering {name}: {status} {text}");
        }
    }
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let (_, h) = conn.request("GET", "/health", "")?;
        let h: serde_json::Value = serde_json::from_str(&h)?;
        if h["pods"]["ready"].as_u64() == Some(names.len() as u64) {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("pods not ready: {}", h["pods"]);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn single_pod(args: &DaemonArgs) -> anyhow::Result<()> {
    let sim = PodsimProc::start(1)?;
    let daemon = DaemonProc::start()?;
    let mut conn = Conn::open(&daemon.socket)?;
    let url = sim.info["pods"][0]["plaintty_url"]
        .as_str()
        .context("plaintty_url")?
        .to_owned();
    let body = serde_json::json!({"alias": "p", "provider": "plaintty", "url": url});
    let (st, text) = conn.request("POST", "/api/v1/pods/", &body.to_string())?;
    if st != 201 {
        bail!("register: {st} {text}");
    }
    let exec = r#"{"command":"true"}"#;
    for _ in 0..100 {
        let (st, text) = conn.request("POST", "/api/v1/pods/p/exec", exec)?;
        if st != 200 {
            bail!("exec: {st} {text}");
        }
    }
    let mut samples = Vec::with_capacity(args.commands);
    let t0 = Instant::now();
    for _ in 0..args.commands {
        let t = Instant::now();
        let (st, _) = conn.request("POST", "/api/v1/pods/p/exec", exec)?;
        samples.push(t.elapsed());
        if st != 200 {
            bail!("exec failed with {st}");
        }
    }
    let total = t0.elapsed();
    let daemon_p50 = pct(samples.clone(), 0.5);
    let daemon_p99 = pct(samples, 0.99);

    // The engine alone, in this process, to the same pod over the same provider.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let engine: Vec<Duration> = rt.block_on(async {
        let s = PodSession::from_url(&url, ProviderKind::PlainTty).await?;
        for _ in 0..100 {
            s.run("true", RunOptions::default()).await?;
        }
        let mut v = Vec::with_capacity(args.commands);
        for _ in 0..args.commands {
            let t = Instant::now();
            s.run("true", RunOptions::default()).await?;
            v.push(t.elapsed());
        }
        s.close().await;
        anyhow::Ok(v)
    })?;
    let engine_p50 = pct(engine, 0.5);
    println!(
        "## podwranglerd: single-pod exec of `true` over the Unix socket (PlainTTY, {} round trips)",
        args.commands
    );
    println!();
    println!("| | p50 ms | p99 ms | req/s |");
    println!("|---|---|---|---|");
    println!(
        "| daemon (HTTP over Unix socket, history written) | {:.3} | {:.3} | {:.0} |",
        ms(daemon_p50),
        ms(daemon_p99),
        args.commands as f64 / total.as_secs_f64()
    );
    println!("| engine alone (in-process) | {:.3} | | |", ms(engine_p50));
    println!();
    println!(
        "daemon overhead at p50: {:.3} ms; daemon/engine p50 ratio {:.2}",
        ms(daemon_p50) - ms(engine_p50),
        daemon_p50.as_secs_f64() / engine_p50.as_secs_f64()
    );
    println!();
    Ok(())
}

fn write_kubeconfig(dir: &Path, sim: &PodsimProc) -> anyhow::Result<PathBuf> {
    let path = dir.join("kubeconfig");
    let server = sim.info["http_base"].as_str().context("http_base")?;
    let token = sim.info["token"].as_str().context("token")?;
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: sim\n  cluster:\n    server: {server}\ncontexts:\n- name: sim\n  context:\n    cluster: sim\n    user: sim\n    namespace: default\ncurrent-context: sim\nusers:\n- name: sim\n  user:\n    token: {token}\n"
        ),
    )?;
    Ok(path)
}

/// `kubectl exec` per pod with `xargs -P 32`, as users do it today. Returns the wall time.
fn kubectl_fanout(kubeconfig: &Path, names: &[String]) -> anyhow::Result<(Duration, usize)> {
    let list = names.join("\n");
    let t = Instant::now();
    let mut child = Command::new("xargs")
        .args(["-P", "32", "-I{}", "kubectl", "--kubeconfig"])
        .arg(kubeconfig)
        .args(["exec", "{}", "--", "sh", "-c", "echo $POD_NAME"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("running xargs kubectl (is kubectl installed?)")?;
    child
        .stdin
        .take()
        .context("stdin")?
        .write_all(list.as_bytes())?;
    let out = child.wait_with_output()?;
    let elapsed = t.elapsed();
    let lines = String::from_utf8_lossy(&out.stdout).lines().count();
    Ok((elapsed, lines))
}

fn fanout(args: &DaemonArgs, n: usize) -> anyhow::Result<()> {
    let sim = PodsimProc::start(n)?;
    let names = pod_names(&sim);
    let daemon = DaemonProc::start()?;
    let mut conn = Conn::open(&daemon.socket)?;
    std::thread::sleep(Duration::from_millis(300));
    let rss_before = daemon.rss_kib();
    let t = Instant::now();
    register_all(&mut conn, &sim, &names)?;
    let connect_all = t.elapsed();
    std::thread::sleep(Duration::from_secs(2));
    let rss_after = daemon.rss_kib();
    let body = serde_json::json!({"command": "echo $POD_NAME", "tag": "bench", "concurrency": args.concurrency});
    // One warm-up round, then the measured one.
    conn.request("POST", "/api/v1/exec", &body.to_string())?;
    let t = Instant::now();
    let (st, text) = conn.request("POST", "/api/v1/exec", &body.to_string())?;
    let daemon_wall = t.elapsed();
    if st != 200 {
        bail!("fan-out: {st} {text}");
    }
    let resp: serde_json::Value = serde_json::from_str(&text)?;
    let ok = resp["succeeded"].as_u64().unwrap_or(0);
    println!("## Fan-out of `echo $POD_NAME` to {n} podsim pods (Kubernetes provider)");
    println!();
    println!(
        "- daemon: {:.1} ms wall ({ok}/{n} succeeded, concurrency {}); registering and connecting all took {:.1} s",
        ms(daemon_wall),
        args.concurrency,
        connect_all.as_secs_f64()
    );
    println!(
        "- daemon RSS: {} KiB before, {} KiB with {n} connected idle pods: {:.1} KiB per pod",
        rss_before,
        rss_after,
        rss_after.saturating_sub(rss_before) as f64 / n as f64
    );
    if !args.no_kubectl {
        let dir = tempfile::tempdir()?;
        let kc = write_kubeconfig(dir.path(), &sim)?;
        let (kwall, klines) = kubectl_fanout(&kc, &names)?;
        println!(
            "- kubectl exec per pod, xargs -P 32: {:.1} ms wall ({klines}/{n} printed)",
            ms(kwall)
        );
        println!(
            "- ratio kubectl/daemon: {:.1}x",
            kwall.as_secs_f64() / daemon_wall.as_secs_f64()
        );
    }
    println!();
    Ok(())
}

pub fn main(args: DaemonArgs) -> anyhow::Result<()> {
    if args.commands == 0 {
        bail!("--commands must be at least 1");
    }
    let sizes: Vec<usize> = args
        .fanout
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|s| s.trim().parse())
        .collect::<Result<_, _>>()
        .context("--fanout must be comma-separated numbers")?;
    single_pod(&args)?;
    for n in sizes {
        fanout(&args, n)?;
    }
    Ok(())
}
