//! `bench sets`: pod sets at scale and under churn.
//!
//! Scale: a podsim of N pods (default 10,000; exec shells on pipes), a daemon whose
//! `[clusters.sim]` is that podsim, one pod set over all of them. Measured: from creating the set
//! until every member is ready (the watcher's list, N registrations, N sessions), the same after
//! a daemon restart with the N members stored (cold start), the daemon's RSS per pod, and a
//! fan-out of `echo $POD_NAME` to the whole set with every output checked against its alias.
//!
//! Churn: a pod set of M pods (default 1,000) while podsim rolls every one of them (new names,
//! batch by batch) and fan-outs to the set run back to back. Every result is sorted: ran in a
//! live pod with that pod's output, never sent (the member was retired first), or lost (sent to
//! a pod that died under it, or wrong output). The goal is 0 lost.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use argh::FromArgs;
use serde_json::{Value, json};

use crate::daemon_proc::{DaemonProc, DaemonSpec, cpu_time, raise_fd_limit};
use crate::http::UnixClient;
use crate::podsim_proc::PodsimProc;
use crate::table::{Table, fmt_bytes};

/// Pod sets: 10,000 pods through one set, and a rollout under fan-outs.
#[derive(FromArgs)]
#[argh(subcommand, name = "sets")]
pub struct SetsArgs {
    /// pods in the scale run (default 10000; 0 skips it)
    #[argh(option, default = "10_000")]
    pods: usize,
    /// pods in the churn run (default 1000; 0 skips it)
    #[argh(option, default = "1000")]
    churn_pods: usize,
    /// pods the rollout replaces at a time (default 50)
    #[argh(option, default = "50")]
    batch: usize,
    /// pause between rollout batches, ms (default 200)
    #[argh(option, default = "200")]
    interval_ms: u64,
    /// seconds a deleted pod's shells live on in the churn run (default 30, Kubernetes' default
    /// terminationGracePeriodSeconds)
    #[argh(option, default = "30")]
    grace_secs: u64,
    /// fan-out concurrency (default 512)
    #[argh(option, default = "512")]
    concurrency: usize,
}

const SET: &str = "bench";

/// `[clusters.NAME]` for a podsim: its server and a token file.
fn cluster_config(name: &str, sim: &PodsimProc, dir: &std::path::Path) -> anyhow::Result<String> {
    let token = dir.join(format!("{name}.token"));
    std::fs::write(&token, sim.info["token"].as_str().context("podsim token")?)?;
    Ok(format!(
        "[clusters.{name}]\nserver = {:?}\ntoken_file = {:?}\n",
        sim.info["http_base"].as_str().context("podsim http_base")?,
        token.display().to_string()
    ))
}

fn config_for(sim: &PodsimProc, dir: &std::path::Path) -> anyhow::Result<String> {
    cluster_config("sim", sim, dir)
}

fn create_set(client: &mut UnixClient) -> anyhow::Result<()> {
    create_named_set(client, SET, "sim")
}

fn create_named_set(client: &mut UnixClient, name: &str, cluster: &str) -> anyhow::Result<()> {
    let body =
        json!({"name": name, "cluster": cluster, "namespace": "default", "selector": "app=web"});
    client
        .post("/api/v1/sets", &body.to_string())?
        .ok_json("create the pod set")?;
    Ok(())
}

/// Members now, and how many of them are ready.
fn members(client: &mut UnixClient) -> anyhow::Result<(Vec<Value>, usize)> {
    members_of(client, SET)
}

fn members_of(client: &mut UnixClient, set: &str) -> anyhow::Result<(Vec<Value>, usize)> {
    let v = client
        .get(&format!("/api/v1/sets/{set}"))?
        .ok_json("show the set")?;
    let pods = v["pods"].as_array().cloned().unwrap_or_default();
    let ready = pods
        .iter()
        .filter(|p| p["state"]["state"] == "ready")
        .count();
    Ok((pods, ready))
}

fn wait_all_ready(client: &mut UnixClient, n: usize, limit: Duration) -> anyhow::Result<Duration> {
    wait_sets_ready(client, &[SET.to_owned()], n, limit)
}

/// Until the sets have `n` members in all, every one ready.
fn wait_sets_ready(
    client: &mut UnixClient,
    sets: &[String],
    n: usize,
    limit: Duration,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    loop {
        let (mut total, mut ready) = (0, 0);
        for set in sets {
            let (pods, r) = members_of(client, set)?;
            total += pods.len();
            ready += r;
        }
        if total == n && ready == n {
            return Ok(started.elapsed());
        }
        if started.elapsed() > limit {
            bail!("only {ready} of {n} members ready after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn fan_out(client: &mut UnixClient, concurrency: usize) -> anyhow::Result<Vec<Value>> {
    let body = json!({"command": "echo $POD_NAME", "set": SET, "timeout": 120, "concurrency": concurrency});
    let v = client
        .post("/api/v1/exec", &body.to_string())?
        .ok_json("fan-out")?;
    Ok(v["results"].as_array().cloned().unwrap_or_default())
}

/// A fan-out to every registered pod (the members of every set).
fn fan_out_all(client: &mut UnixClient, concurrency: usize) -> anyhow::Result<Vec<Value>> {
    let body = json!({"command": "echo $POD_NAME", "all": true, "timeout": 120, "concurrency": concurrency});
    let v = client
        .post("/api/v1/exec", &body.to_string())?
        .ok_json("fan-out")?;
    Ok(v["results"].as_array().cloned().unwrap_or_default())
}

/// How one fan-out result ended.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Outcome {
    Ran,
    NeverSent,
    Lost,
}

fn outcome(r: &Value) -> Outcome {
    let alias = r["alias"].as_str().unwrap_or_default();
    let pod = alias.split_once('/').map(|(_, p)| p).unwrap_or(alias);
    if r["status"] == "succeeded" && r["stdout"].as_str().map(str::trim) == Some(pod) {
        Outcome::Ran
    } else if r["status"] == "error"
        && r["error"]
            .as_str()
            .is_some_and(|e| e.contains("was removed"))
    {
        Outcome::NeverSent
    } else {
        Outcome::Lost
    }
}

fn scale(args: &SetsArgs, fd_limit: u64) -> anyhow::Result<()> {
    let n = args.pods;
    // Each connected pod holds a socket and three pipes in podsim: one podsim per shard keeps
    // each under the open-file limit; each shard is a cluster with a set of its own.
    let per_podsim = ((fd_limit.saturating_sub(1000)) / 5).max(100) as usize;
    let shards = n.div_ceil(per_podsim).max(1);
    println!("== {n} pods in pod sets ({shards} podsim cluster(s), exec shells on pipes)");
    let dir = tempfile::tempdir()?;
    let mut sims = Vec::with_capacity(shards);
    let mut config = String::new();
    let mut sets = Vec::with_capacity(shards);
    for i in 0..shards {
        let count = n / shards + usize::from(i < n % shards);
        let sim = PodsimProc::start_with_args(count, false, None, &[])?;
        config.push_str(&cluster_config(&format!("sim{i}"), &sim, dir.path())?);
        sets.push(format!("{SET}{i}"));
        sims.push(sim);
    }
    let db = dir.path().join("podwrangler.db");
    let mut table = Table::new(&["measure", "value"]);
    {
        let daemon = DaemonProc::start(DaemonSpec {
            database: Some(&db),
            config: Some(&config),
            ..Default::default()
        })?;
        let mut client = daemon.client(Duration::from_secs(600));
        let rss_empty = daemon.rss_bytes()?;
        let cpu = CpuMeter::start(&daemon, &sims)?;
        let started = Instant::now();
        for (i, set) in sets.iter().enumerate() {
            create_named_set(&mut client, set, &format!("sim{i}"))?;
        }
        wait_sets_ready(&mut client, &sets, n, Duration::from_secs(1800))
            .with_context(|| daemon.log_tail())?;
        let all_ready = started.elapsed();
        table.row(vec![
            format!("sets created -> {n} members ready"),
            format!("{:.1} s", all_ready.as_secs_f64()),
        ]);
        cpu.rows(&mut table, n)?;
        let rss = daemon.rss_bytes()?;
        table.row(vec![
            "daemon RSS with every member connected".into(),
            fmt_bytes(rss),
        ]);
        table.row(vec![
            "daemon RSS per pod (above the empty daemon)".into(),
            fmt_bytes(rss.saturating_sub(rss_empty) / n as u64),
        ]);
        let started = Instant::now();
        let results = fan_out_all(&mut client, args.concurrency)?;
        let took = started.elapsed();
        let ran = results
            .iter()
            .filter(|r| outcome(r) == Outcome::Ran)
            .count();
        let distinct: BTreeSet<&str> = results.iter().filter_map(|r| r["alias"].as_str()).collect();
        table.row(vec![
            format!(
                "fan-out `echo $POD_NAME` to all {n} ({} at once)",
                args.concurrency
            ),
            format!("{:.2} s", took.as_secs_f64()),
        ]);
        table.row(vec![
            "outputs verified (own pod name)".into(),
            format!("{ran} of {n} ({} distinct pods answered)", distinct.len()),
        ]);
        if ran != n {
            bail!("only {ran} of {n} outputs were right");
        }
    }
    // Cold start: the same database, the sets and their members stored.
    let started = Instant::now();
    let daemon = DaemonProc::start(DaemonSpec {
        database: Some(&db),
        config: Some(&config),
        ..Default::default()
    })?;
    let cpu = CpuMeter::start(&daemon, &sims)?;
    let mut client = daemon.client(Duration::from_secs(600));
    wait_sets_ready(&mut client, &sets, n, Duration::from_secs(1800))
        .with_context(|| daemon.log_tail())?;
    table.row(vec![
        format!("cold start: daemon restart (stored sets) -> {n} members ready"),
        format!("{:.1} s", started.elapsed().as_secs_f64()),
    ]);
    cpu.rows(&mut table, n)?;
    table.print();
    drop(sims);
    Ok(())
}

fn churn(args: &SetsArgs) -> anyhow::Result<()> {
    let m = args.churn_pods;
    println!(
        "== rollout of a {m}-pod set ({} at a time, {} ms apart, {} s grace) while fan-outs run",
        args.batch, args.interval_ms, args.grace_secs
    );
    let grace = args.grace_secs.to_string();
    let sim = PodsimProc::start_with_args(m, false, None, &["--termination-grace", &grace])?;
    let admin = sim.info["admin_address"]
        .as_str()
        .context("podsim admin address")?
        .to_owned();
    let dir = tempfile::tempdir()?;
    let config = config_for(&sim, dir.path())?;
    let daemon = DaemonProc::start(DaemonSpec {
        config: Some(&config),
        ..Default::default()
    })?;
    let mut client = daemon.client(Duration::from_secs(600));
    create_set(&mut client)?;
    wait_all_ready(&mut client, m, Duration::from_secs(900)).with_context(|| daemon.log_tail())?;

    let started = Instant::now();
    let roll = json!({"selector": "app=web", "batch": args.batch, "interval_ms": args.interval_ms});
    let (status, body) = admin_post(&admin, "/_podsim/rollout", &roll.to_string())?;
    if status != 200 {
        bail!("rollout: HTTP {status}: {body}");
    }
    let hash = serde_json::from_str::<Value>(&body)?["template_hash"]
        .as_str()
        .context("template hash")?
        .to_owned();
    let (mut fan_outs, mut ran, mut never_sent, mut lost) = (0, 0, 0, 0);
    let mut lost_examples = Vec::new();
    let settled = loop {
        for r in fan_out(&mut client, args.concurrency)? {
            match outcome(&r) {
                Outcome::Ran => ran += 1,
                Outcome::NeverSent => never_sent += 1,
                Outcome::Lost => {
                    lost += 1;
                    if lost_examples.len() < 5 {
                        lost_examples.push(r.to_string());
                    }
                }
            }
        }
        fan_outs += 1;
        let (pods, ready) = members(&mut client)?;
        let all_new = pods.len() == m
            && ready == m
            && pods.iter().all(|p| {
                p["pod"]
                    .as_str()
                    .is_some_and(|n| n.starts_with(&format!("web-{hash}-")))
            });
        if all_new {
            break started.elapsed();
        }
        if started.elapsed() > Duration::from_secs(1800) {
            bail!("the set did not settle on the new pods within 30 min");
        }
    };
    let mut table = Table::new(&["measure", "value"]);
    table.row(vec![
        "rollout until every member is a new, ready pod".into(),
        format!("{:.1} s", settled.as_secs_f64()),
    ]);
    table.row(vec![
        "fan-outs during the rollout".into(),
        fan_outs.to_string(),
    ]);
    table.row(vec![
        "commands that ran with the right output".into(),
        ran.to_string(),
    ]);
    table.row(vec![
        "commands never sent (member retired first)".into(),
        never_sent.to_string(),
    ]);
    table.row(vec![
        "commands lost or sent to dead pods (goal 0)".into(),
        lost.to_string(),
    ]);
    table.print();
    for e in lost_examples {
        println!("  lost: {e}");
    }
    Ok(())
}

/// CPU time the daemon and the podsims use over a phase: the daemon's share is the cost of
/// PodWrangler; podsim's is the test cluster's (it forks a shell per session).
struct CpuMeter {
    daemon: u32,
    sims: Vec<u32>,
    daemon_at_start: Duration,
    sims_at_start: Duration,
}

impl CpuMeter {
    fn start(daemon: &DaemonProc, sims: &[PodsimProc]) -> anyhow::Result<CpuMeter> {
        let sims: Vec<u32> = sims.iter().map(PodsimProc::pid).collect();
        Ok(CpuMeter {
            daemon: daemon.pid,
            daemon_at_start: cpu_time(daemon.pid)?,
            sims_at_start: total_cpu(&sims)?,
            sims,
        })
    }

    fn rows(&self, table: &mut Table, pods: usize) -> anyhow::Result<()> {
        let daemon = cpu_time(self.daemon)?.saturating_sub(self.daemon_at_start);
        let sims = total_cpu(&self.sims)?.saturating_sub(self.sims_at_start);
        table.row(vec![
            "  daemon CPU (per pod)".into(),
            format!(
                "{:.2} s ({:.0} us)",
                daemon.as_secs_f64(),
                daemon.as_secs_f64() * 1e6 / pods.max(1) as f64
            ),
        ]);
        table.row(vec![
            "  podsim CPU (spawning the shells)".into(),
            format!("{:.2} s", sims.as_secs_f64()),
        ]);
        Ok(())
    }
}

fn total_cpu(pids: &[u32]) -> anyhow::Result<Duration> {
    pids.iter().map(|p| cpu_time(*p)).sum()
}

/// One plain-HTTP POST to podsim's admin port.
fn admin_post(address: &str, path: &str, body: &str) -> anyhow::Result<(u16, String)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(address)?;
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    let mut raw = String::new();
    s.read_to_string(&mut raw)?;
    let (head, rest) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .context("podsim answered no status")?;
    Ok((status, rest.to_owned()))
}

/// Each member costs podsim a socket and three pipes: ask for room for 10,000 pods and more
/// (root may raise the hard limit), then take whatever the hard limit allows.
fn raise_hard_fd_limit(wanted: u64) {
    let lim = libc::rlimit {
        rlim_cur: wanted,
        rlim_max: wanted,
    };
    // SAFETY: setrlimit only reads the struct passed for the call.
    unsafe {
        let mut current = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut current) == 0 && current.rlim_max < wanted {
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

pub fn main(args: SetsArgs) -> anyhow::Result<()> {
    raise_hard_fd_limit(((args.pods.max(args.churn_pods) as u64) * 6).max(65_536));
    let limit = raise_fd_limit();
    println!("open-file limit: {limit}");
    if args.pods > 0 {
        scale(&args, limit)?;
    }
    if args.churn_pods > 0 {
        churn(&args)?;
    }
    Ok(())
}
