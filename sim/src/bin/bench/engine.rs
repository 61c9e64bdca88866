//! `bench engine`: the session engine against podsim, for both providers. Warm round-trip
//! latency of `true` through the engine versus a bare WebSocket round trip to the same kind of
//! shell (the floor), and the throughput and memory of a 100 MiB output.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use argh::FromArgs;
use futures_util::{SinkExt, StreamExt};
use podwrangler::provider::TTY_INIT_SCRIPT;
use podwrangler::{
    DEFAULT_MAX_OUTPUT, KubernetesTarget, PodEndpoint, PodIdentity, PodSession, ProviderConfig,
    ProviderKind, RunOptions, Secret, SessionOptions,
};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::podsim_proc::PodsimProc;

/// Session engine latency and throughput for both providers.
#[derive(FromArgs)]
#[argh(subcommand, name = "engine")]
pub struct EngineArgs {
    /// round trips measured per session (default 1000)
    #[argh(option, default = "1000")]
    commands: usize,
    /// size of the big output in MiB (default 100)
    #[argh(option, default = "100")]
    mib: u64,
    /// output cap per command in bytes during the big output (default: the library default)
    #[argh(option, default = "DEFAULT_MAX_OUTPUT")]
    max_output: usize,
}

struct Row {
    provider: &'static str,
    engine: Stats,
    floor: Stats,
    mib_per_s: f64,
    rss_growth: u64,
    kept: usize,
    truncated: bool,
}

#[derive(Clone, Copy)]
struct Stats {
    p50: Duration,
    p99: Duration,
}

fn stats(mut samples: Vec<Duration>) -> Stats {
    samples.sort_unstable();
    let at = |q: f64| samples[((samples.len() as f64 - 1.0) * q).round() as usize];
    Stats {
        p50: at(0.50),
        p99: at(0.99),
    }
}

pub fn main(args: EngineArgs) -> anyhow::Result<()> {
    if args.commands == 0 {
        bail!("--commands must be at least 1");
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let sim = PodsimProc::start(2)?;
    eprintln!(
        "bench: podsim pid {} at {}",
        sim.pid(),
        sim.info["address"].as_str().unwrap_or("?")
    );
    let mut rows = Vec::new();
    for kind in [ProviderKind::PlainTty, ProviderKind::Kubernetes] {
        eprintln!("bench: {kind} ...");
        rows.push(rt.block_on(bench_provider(&sim, kind, &args))?);
    }
    print_table(&rows, &args);
    Ok(())
}

fn endpoint(sim: &PodsimProc, kind: ProviderKind, pod: usize) -> anyhow::Result<PodEndpoint> {
    let p = &sim.info["pods"][pod];
    Ok(match kind {
        ProviderKind::PlainTty => podwrangler::endpoint_from_url(
            kind,
            p["plaintty_url"].as_str().context("plaintty_url")?,
        )?,
        ProviderKind::Kubernetes => {
            let mut identity = PodIdentity::new(p["name"].as_str().context("name")?);
            identity.namespace = p["namespace"].as_str().map(str::to_owned);
            PodEndpoint {
                identity,
                provider: ProviderConfig::Kubernetes(KubernetesTarget {
                    server: sim.info["http_base"].as_str().map(str::to_owned),
                    ..Default::default()
                }),
                token: sim.info["token"].as_str().map(Secret::new),
                client_key: None,
            }
        }
    })
}

async fn bench_provider(
    sim: &PodsimProc,
    kind: ProviderKind,
    args: &EngineArgs,
) -> anyhow::Result<Row> {
    let session = PodSession::connect(endpoint(sim, kind, 0)?, SessionOptions::default()).await?;
    let quick = RunOptions::with_timeout(Duration::from_secs(30));
    for _ in 0..50 {
        session.run("true", quick.clone()).await?;
    }
    let mut samples = Vec::with_capacity(args.commands);
    for _ in 0..args.commands {
        let t = Instant::now();
        let r = session.run("true", quick.clone()).await?;
        samples.push(t.elapsed());
        if r.exit_code != Some(0) {
            bail!("`true` exited {:?}", r.exit_code);
        }
    }
    let engine = stats(samples);
    let floor = stats(bare_round_trips(sim, kind, args.commands).await?);

    // The big output: throughput, and how far our memory grows while it streams.
    let bytes = args.mib * 1024 * 1024;
    let cmd = format!("head -c {bytes} /dev/zero | tr '\\0' a");
    let sampler = RssSampler::start();
    let t = Instant::now();
    let r = session
        .run(
            &cmd,
            RunOptions {
                timeout: Duration::from_secs(600),
                check: true,
                max_output: args.max_output,
                ..RunOptions::default()
            },
        )
        .await?;
    let elapsed = t.elapsed();
    let rss_growth = sampler.stop();
    session.close().await;
    Ok(Row {
        provider: kind.as_str(),
        engine,
        floor,
        mib_per_s: args.mib as f64 / elapsed.as_secs_f64(),
        rss_growth,
        kept: r.stdout.len(),
        truncated: r.truncated,
    })
}

/// Round trips of `echo x` straight over a WebSocket to a fresh shell of the same pod kind,
/// with no framing, quoting or parsing: the floor the engine is compared with.
async fn bare_round_trips(
    sim: &PodsimProc,
    kind: ProviderKind,
    n: usize,
) -> anyhow::Result<Vec<Duration>> {
    let token = sim.info["token"].as_str().context("token")?;
    let (url, k8s) = match kind {
        ProviderKind::PlainTty => (
            sim.info["pods"][1]["plaintty_url"]
                .as_str()
                .context("url")?
                .to_owned(),
            false,
        ),
        ProviderKind::Kubernetes => (
            format!(
                "{}{}?command=%2Fbin%2Fsh&stdin=true&stdout=true&stderr=true&tty=false",
                sim.info["ws_base"].as_str().context("ws_base")?,
                sim.info["pods"][1]["exec_path"]
                    .as_str()
                    .context("exec_path")?
            ),
            true,
        ),
    };
    let mut req = url.as_str().into_client_request()?;
    if k8s {
        req.headers_mut()
            .insert("Authorization", format!("Bearer {token}").parse()?);
        req.headers_mut()
            .insert("Sec-WebSocket-Protocol", "v5.channel.k8s.io".parse()?);
    }
    let (mut ws, _) = tokio_tungstenite::connect_async_tls_with_config(req, None, true, None)
        .await
        .context("bare WebSocket connect")?;
    let frame = |text: &str| -> Message {
        if k8s {
            let mut b = vec![0u8];
            b.extend_from_slice(text.as_bytes());
            Message::Binary(b.into())
        } else {
            Message::Text(text.into())
        }
    };
    if !k8s {
        ws.send(frame(TTY_INIT_SCRIPT)).await?;
    }
    // Settle: wait until the shell answers, then drop everything it printed so far.
    ws.send(frame("printf '%s_%s\\n' rea dy\n")).await?;
    let mut seen = Vec::new();
    while !String::from_utf8_lossy(&seen).contains("rea_dy\n")
        && !String::from_utf8_lossy(&seen).contains("rea_dy\r\n")
    {
        let msg = tokio::time::timeout(Duration::from_secs(15), ws.next())
            .await
            .context("bare shell did not answer")?
            .context("bare WebSocket closed")??;
        seen.extend_from_slice(&payload(msg, k8s));
    }
    let mut samples = Vec::with_capacity(n);
    for i in 0..n + 50 {
        let t = Instant::now();
        ws.send(frame("echo x\n")).await?;
        let mut got = Vec::new();
        while !got.ends_with(b"x\n") && !got.ends_with(b"x\r\n") {
            let msg = ws.next().await.context("bare WebSocket closed")??;
            got.extend_from_slice(&payload(msg, k8s));
        }
        if i >= 50 {
            samples.push(t.elapsed());
        }
    }
    let _ = ws.close(None).await;
    Ok(samples)
}

fn payload(msg: Message, k8s: bool) -> Vec<u8> {
    match msg {
        Message::Text(t) => t.as_bytes().to_vec(),
        Message::Binary(b) if k8s => match b.first() {
            Some(1) | Some(2) => b[1..].to_vec(),
            _ => Vec::new(),
        },
        Message::Binary(b) => b.to_vec(),
        _ => Vec::new(),
    }
}

/// Samples this process's resident set every few milliseconds; `stop` gives the peak growth.
struct RssSampler {
    stop: Arc<AtomicBool>,
    peak: Arc<AtomicU64>,
    base: u64,
    thread: Option<std::thread::JoinHandle<()>>,
}

fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

impl RssSampler {
    fn start() -> RssSampler {
        let base = rss_bytes();
        let stop = Arc::new(AtomicBool::new(false));
        let peak = Arc::new(AtomicU64::new(base));
        let thread = {
            let (stop, peak) = (stop.clone(), peak.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    peak.fetch_max(rss_bytes(), Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(5));
                }
            })
        };
        RssSampler {
            stop,
            peak,
            base,
            thread: Some(thread),
        }
    }

    fn stop(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.peak
            .load(Ordering::Relaxed)
            .max(rss_bytes())
            .saturating_sub(self.base)
    }
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1000.0)
}

fn print_table(rows: &[Row], args: &EngineArgs) {
    let mib = |b: u64| format!("{:.1} MiB", b as f64 / (1024.0 * 1024.0));
    println!(
        "\nsession engine vs bare WebSocket ({} warm round trips of `true` / `echo x`; {} MiB output, cap {} per stream)\n",
        args.commands,
        args.mib,
        mib(args.max_output as u64)
    );
    let header = [
        "provider",
        "engine p50",
        "engine p99",
        "floor p50",
        "floor p99",
        "p50 ratio",
        "throughput",
        "peak RSS growth",
        "kept (truncated)",
    ];
    let body: Vec<[String; 9]> = rows
        .iter()
        .map(|r| {
            [
                r.provider.to_owned(),
                ms(r.engine.p50),
                ms(r.engine.p99),
                ms(r.floor.p50),
                ms(r.floor.p99),
                format!(
                    "{:.2}x",
                    r.engine.p50.as_secs_f64() / r.floor.p50.as_secs_f64().max(1e-9)
                ),
                format!("{:.0} MiB/s", r.mib_per_s),
                mib(r.rss_growth),
                format!("{} ({})", mib(r.kept as u64), r.truncated),
            ]
        })
        .collect();
    let widths: Vec<usize> = (0..header.len())
        .map(|i| {
            body.iter()
                .map(|r| r[i].len())
                .chain([header[i].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: Vec<&str>| {
        let parts: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        println!("| {} |", parts.join(" | "));
    };
    line(header.to_vec());
    println!(
        "|{}|",
        widths
            .iter()
            .map(|w| "-".repeat(w + 2))
            .collect::<Vec<_>>()
            .join("|")
    );
    for r in &body {
        line(r.iter().map(String::as_str).collect());
    }
    println!(
        "\ntarget: engine p50 within 1.5x of the floor; memory growth bounded by the cap, not the output size"
    );
}
