//! Fault injection through podsim's admin endpoints, observed by real WebSocket clients.

mod podsim_support;

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use podsim_support::*;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// How a connection ended, seen from the client.
#[derive(Debug, PartialEq)]
enum End {
    /// A WebSocket close frame arrived.
    CloseFrame,
    /// The TCP connection ended (or failed) with no close frame.
    Abrupt,
}

/// Reads until the connection ends; returns how, and the text seen on the way.
async fn read_to_end(ws: &mut Ws) -> (End, String) {
    let mut seen = String::new();
    loop {
        let msg = tokio::time::timeout(LONG, ws.next())
            .await
            .expect("connection did not end");
        match msg {
            Some(Ok(Message::Close(_))) => return (End::CloseFrame, seen),
            Some(Ok(Message::Text(t))) => seen.push_str(&t),
            Some(Ok(Message::Binary(b))) => seen.push_str(&String::from_utf8_lossy(&b)),
            Some(Ok(_)) => {}
            Some(Err(_)) | None => return (End::Abrupt, seen),
        }
    }
}

async fn ready_shell(url: &str) -> Ws {
    let mut ws = connect_plaintty(url).await;
    send_text(&mut ws, "echo ready-$((40+2))\r").await;
    read_until(&mut ws, "ready-42").await;
    ws
}

#[tokio::test]
async fn drop_now_cuts_live_connections_without_a_close_frame() {
    let sim = start(2);
    let (p0, p1) = (&sim.info.pods[0], &sim.info.pods[1]);
    let mut a = ready_shell(&p0.plaintty_url).await;
    let mut other = ready_shell(&p1.plaintty_url).await;
    sim.admin(&p0.name, r#"{"drop_now":true}"#);
    let (end, _) = read_to_end(&mut a).await;
    assert_eq!(end, End::Abrupt);
    assert!(testkit::wait_until(
        LONG,
        || sim.stats(&p0.name)["connections_live"] == 0
    ));
    // Only that pod's connections; and it is a one-shot: new connections work.
    send_text(&mut other, "echo other-$((1+1))\r").await;
    read_until(&mut other, "other-2").await;
    ready_shell(&p0.plaintty_url).await;
}

#[tokio::test]
async fn drop_after_ms_cuts_each_new_connection() {
    let sim = start(1);
    let pod = &sim.info.pods[0];
    let mut before = ready_shell(&pod.plaintty_url).await;
    sim.admin(&pod.name, r#"{"drop_after_ms":1000}"#);
    let mut ws = connect_plaintty(&pod.plaintty_url).await;
    let opened = Instant::now();
    let (end, _) = read_to_end(&mut ws).await;
    assert_eq!(end, End::Abrupt);
    assert!(
        opened.elapsed() >= Duration::from_millis(250),
        "dropped too early"
    );
    // The connection that existed before the fault is untouched.
    send_text(&mut before, "echo still-$((2+2))\r").await;
    read_until(&mut before, "still-4").await;
    sim.clear_faults(&pod.name);
    let mut ws = ready_shell(&pod.plaintty_url).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    send_text(&mut ws, "echo kept-$((3+3))\r").await;
    read_until(&mut ws, "kept-6").await;
}

#[tokio::test]
async fn refuse_answers_503_until_cleared() {
    let sim = start(1);
    let pod = &sim.info.pods[0];
    sim.admin(&pod.name, r#"{"refuse":true}"#);
    let err = try_connect(pod.plaintty_url.as_str().into_client_request().unwrap())
        .await
        .expect_err("refused");
    assert_eq!(status_of(&err), Some(503));
    let err = try_connect(exec_request(
        &sim.info,
        &pod.name,
        &["true"],
        false,
        false,
        "v5.channel.k8s.io",
        None,
    ))
    .await
    .expect_err("refused");
    assert_eq!(status_of(&err), Some(503));
    assert_eq!(sim.stats(&pod.name)["connections_total"], 0);
    sim.clear_faults(&pod.name);
    ready_shell(&pod.plaintty_url).await;
    assert_eq!(sim.stats(&pod.name)["connections_total"], 1);
}

#[tokio::test]
async fn kill_shell_ends_plaintty_and_exec_sessions() {
    let sim = start(1);
    let pod = &sim.info.pods[0];
    let mut tty = ready_shell(&pod.plaintty_url).await;
    let mut exec_ws = exec(
        &sim.info,
        &pod.name,
        &["sh", "-c", "echo up; exec sleep 600"],
        false,
    )
    .await;
    loop {
        match exec_ws.next().await {
            Some(Ok(Message::Binary(b))) if b.starts_with(b"\x01up") => break,
            Some(Ok(_)) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    sim.admin(&pod.name, r#"{"kill_shell":true}"#);
    let (end, _) = read_to_end(&mut tty).await;
    assert_eq!(
        end,
        End::CloseFrame,
        "the shell died; podsim closes the WebSocket properly"
    );
    let out = collect_exec(&mut exec_ws).await;
    let status = out.status.expect("status frame");
    assert_eq!(status["reason"], "NonZeroExitCode");
    assert_eq!(status["details"]["causes"][0]["message"], "137");
    assert!(testkit::wait_until(LONG, || sim.global_stats()["children"] == 0));
}

#[tokio::test]
async fn stall_holds_output_until_cleared() {
    let sim = start(1);
    let pod = &sim.info.pods[0];
    let mut ws = ready_shell(&pod.plaintty_url).await;
    sim.admin(&pod.name, r#"{"stall":true}"#);
    send_text(&mut ws, "echo stalled-$((5*5))\r").await;
    let mut early = String::new();
    let _ = tokio::time::timeout(Duration::from_millis(1500), async {
        while let Some(Ok(m)) = ws.next().await {
            if let Message::Text(t) = m {
                early.push_str(&t);
            }
        }
    })
    .await;
    assert!(
        !early.contains("stalled-25"),
        "output leaked through a stall: {early:?}"
    );
    sim.clear_faults(&pod.name);
    let seen = read_until(&mut ws, "stalled-25").await;
    assert!(seen.contains("stalled-25"));
}

#[tokio::test]
async fn latency_delays_every_frame() {
    let sim = start(1);
    let pod = &sim.info.pods[0].name;
    sim.admin(pod, r#"{"latency_ms":400}"#);
    let started = Instant::now();
    let mut ws = exec(&sim.info, pod, &["echo", "slow"], false).await;
    let out = collect_exec(&mut ws).await;
    // Ready frame, stdout, status and close: four frames, each 400 ms late.
    assert!(
        started.elapsed() >= Duration::from_millis(1600),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(out.stdout, "slow\n");
    assert_eq!(sim.stats(pod)["faults"]["latency_ms"], 400);
}

#[tokio::test]
async fn admin_rejects_bad_requests() {
    let sim = start(1);
    let (status, body) = sim.admin_request(
        "POST",
        "/_podsim/pods/web-5d8f7-00000/faults",
        Some("{\"stal\":true}"),
    );
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("stal"), "{body}");
    let (status, _) = sim.admin_request("POST", "/_podsim/pods/nope/faults", Some("{}"));
    assert_eq!(status, 404);
    let stats = sim.global_stats();
    assert_eq!(stats["pods"], 1);
    assert!(stats["rss_bytes"].as_u64().unwrap() > 0);
}
