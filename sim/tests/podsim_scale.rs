//! Scale: 1,000 pods cost nothing until connected (shells start on connect), and the memory of
//! 1,000 live connections is measured (ignored by default: `cargo test -p podsim --test
//! podsim_scale -- --ignored --nocapture`; PODSIM_SCALE_CONNECTIONS changes the count).

mod podsim_support;

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use podsim_support::*;
use tokio_tungstenite::tungstenite::Message;

fn mib(v: &serde_json::Value) -> f64 {
    v.as_u64().unwrap_or(0) as f64 / (1024.0 * 1024.0)
}

#[tokio::test]
async fn idle_pods_start_no_processes() {
    let sim = start(1000);
    assert_eq!(sim.info.pods.len(), 1000);
    assert_eq!(sim.info.pods[999].name, "web-5d8f7-00999");
    let stats = sim.global_stats();
    assert_eq!(stats["pods"], 1000);
    assert_eq!(
        stats["children"], 0,
        "no shell may run before a connection: {stats}"
    );
    // Generous bound: an idle podsim with 1,000 pods is a few MiB.
    assert!(mib(&stats["rss_bytes"]) < 64.0, "{stats}");
    let mut ws = connect_plaintty(&sim.info.pods[500].plaintty_url).await;
    send_text(&mut ws, "echo one-$((0+1))\r").await;
    read_until(&mut ws, "one-1").await;
    assert!(sim.global_stats()["children"].as_u64().unwrap() >= 1);
    drop(ws);
    assert!(testkit::wait_until(LONG, || sim.global_stats()["children"] == 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "heavy: starts 1,000 shells; run with --ignored --nocapture to measure memory"]
async fn thousand_live_connections_memory() {
    let n: usize = std::env::var("PODSIM_SCALE_CONNECTIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let sim = start(n);
    let idle = sim.global_stats();
    let started = Instant::now();
    // PODSIM_SCALE_MODE=exec: Kubernetes exec of a non-interactive `sh` on pipes instead.
    let exec_mode = std::env::var("PODSIM_SCALE_MODE").as_deref() == Ok("exec");
    let info = &sim.info;
    let mut conns: Vec<Ws> = futures_util::stream::iter(sim.info.pods.iter())
        .map(|pod| async move {
            if exec_mode {
                let mut ws = exec(info, &pod.name, &["sh"], true).await;
                ws.send(Message::binary(b"\x00echo up-$((1+1))\n".to_vec()))
                    .await
                    .unwrap();
                read_until(&mut ws, "up-2").await;
                ws
            } else {
                let mut ws = connect_plaintty(&pod.plaintty_url).await;
                send_text(&mut ws, "echo up-$((1+1))\r").await;
                read_until(&mut ws, "up-2").await;
                ws
            }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    let open_time = started.elapsed();
    assert_eq!(conns.len(), n);
    assert!(testkit::wait_until(
        LONG,
        || sim.global_stats()["connections_live"] == n
    ));
    let loaded = sim.global_stats();
    assert!(loaded["children"].as_u64().unwrap() >= n as u64, "{loaded}");
    println!(
        "podsim scale: {n} pods, {n} live {} connections opened in {:.1}s\n\
         idle:   podsim RSS {:.1} MiB (no shells)\n\
         loaded: podsim RSS {:.1} MiB, {} shells RSS {:.1} MiB, total RSS {:.1} MiB\n\
         loaded: podsim PSS {:.1} MiB, shells PSS {:.1} MiB, total PSS {:.1} MiB\n\
         per connection: {:.2} MiB RSS, {:.2} MiB PSS (podsim alone: {:.1} KiB)\n\
         raw: {loaded}",
        if exec_mode {
            "exec (sh on pipes)"
        } else {
            "PlainTTY (bash -i on a PTY)"
        },
        open_time.as_secs_f64(),
        mib(&idle["rss_bytes"]),
        mib(&loaded["rss_bytes"]),
        loaded["children"],
        mib(&loaded["children_rss_bytes"]),
        mib(&loaded["total_rss_bytes"]),
        mib(&loaded["pss_bytes"]),
        mib(&loaded["children_pss_bytes"]),
        mib(&loaded["total_pss_bytes"]),
        mib(&loaded["total_rss_bytes"]) / n as f64,
        mib(&loaded["total_pss_bytes"]) / n as f64,
        (mib(&loaded["rss_bytes"]) - mib(&idle["rss_bytes"])) * 1024.0 / n as f64,
    );
    // Every shell still answers.
    for ws in conns.iter_mut().step_by((n / 10).max(1)) {
        if exec_mode {
            ws.send(Message::binary(b"\x00echo alive-$((3+4))\n".to_vec()))
                .await
                .unwrap();
        } else {
            send_text(ws, "echo alive-$((3+4))\r").await;
        }
        read_until(ws, "alive-7").await;
    }
    drop(conns);
    assert!(testkit::wait_until(Duration::from_secs(120), || {
        sim.global_stats()["children"] == 0
    }));
}
