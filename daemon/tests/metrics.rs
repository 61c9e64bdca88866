//! `GET /metrics` on a real daemon with real podsim pods: the Prometheus text names the pods'
//! states, connects, command latency by provider, fan-out sizes, responses by status and the
//! history store; it is served on the Unix socket, and on TCP only when configured.

mod common;

use common::*;
use serde_json::json;

/// The value of the first sample line that starts with `series` (name and labels).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
}

fn scrape(d: &Daemon) -> String {
    let r = d.unix("GET", "/metrics", None);
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        r.header("content-type")
            .is_some_and(|c| c.starts_with("text/plain")),
        "{:?}",
        r.header("content-type")
    );
    r.body
}

#[test]
fn metrics_follow_pods_commands_and_responses() {
    let sim = podsim(4);
    let d = start_daemon();
    for i in 0..2 {
        register(
            &d,
            Via::Unix,
            &plaintty_body(&sim, &format!("pt-{i}"), i, &["m"]),
        );
    }
    for i in 2..4 {
        register(
            &d,
            Via::Unix,
            &kubernetes_body(&sim, &format!("k8s-{i}"), i, &["m"]),
        );
    }
    wait_ready(&d, 4);

    let before = scrape(&d);
    assert_eq!(
        sample(&before, "podwrangler_pods{state=\"ready\"}"),
        Some(4.0),
        "{before}"
    );
    assert_eq!(
        sample(&before, "podwrangler_connects_total{result=\"ok\"}"),
        Some(4.0),
        "{before}"
    );
    assert_eq!(
        sample(&before, "podwrangler_exec_queue_depth"),
        Some(0.0),
        "{before}"
    );
    assert_eq!(
        sample(&before, "podwrangler_database_up"),
        Some(1.0),
        "{before}"
    );
    assert_eq!(
        sample(&before, "podwrangler_spool_pending"),
        Some(0.0),
        "{before}"
    );

    exec_ok(&d, Via::Unix, "pt-0", "true");
    exec_ok(&d, Via::Unix, "k8s-2", "echo hi");
    let r = call(
        &d,
        Via::Unix,
        "POST",
        "/api/v1/exec",
        Some(&json!({"command": "false", "tag": "m"})),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let missing = call(&d, Via::Unix, "GET", "/api/v1/pods/no-such-pod", None);
    assert_eq!(missing.status, 404);

    let after = scrape(&d);
    let count = |series: &str| sample(&after, series).unwrap_or(0.0);
    assert_eq!(
        count("podwrangler_exec_duration_seconds_count{provider=\"plaintty\"}"),
        3.0,
        "{after}"
    );
    assert_eq!(
        count("podwrangler_exec_duration_seconds_count{provider=\"kubernetes\"}"),
        3.0,
        "{after}"
    );
    assert_eq!(
        count("podwrangler_commands_total{status=\"succeeded\"}"),
        2.0,
        "{after}"
    );
    assert_eq!(
        count("podwrangler_commands_total{status=\"failed\"}"),
        4.0,
        "{after}"
    );
    assert_eq!(count("podwrangler_fanout_pods_count"), 1.0, "{after}");
    assert_eq!(count("podwrangler_fanout_pods_sum"), 4.0, "{after}");
    assert!(
        count("podwrangler_http_responses_total{code=\"404\"}") >= 1.0,
        "{after}"
    );
    assert!(
        count("podwrangler_database_duration_seconds_count{kind=\"write\"}") >= 12.0,
        "{after}"
    );
    assert!(count("process_resident_memory_bytes") > 0.0, "{after}");
}

#[test]
fn metrics_stay_off_tcp_unless_configured() {
    let d = start_daemon();
    let r = d.tcp("GET", "/metrics", None);
    assert_eq!(r.status, 404, "{}", r.body);
    assert!(r.body.contains("metrics_on_tcp"), "{}", r.body);

    let mut opts = daemon_opts();
    opts.config_toml = Some("metrics_on_tcp = true\n".into());
    let d = Daemon::start(opts);
    let r = d.tcp("GET", "/metrics", None);
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("podwrangler_pods"), "{}", r.body);
}
