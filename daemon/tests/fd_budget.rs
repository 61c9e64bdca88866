//! The open-file budget: under a low `RLIMIT_NOFILE` the daemon keeps descriptors for its API
//! and database, pod sessions beyond the budget wait in `waiting_open_files`, and removing a
//! pod lets a waiting one connect.

mod common;

use std::time::Duration;

use common::*;

const PODS: usize = 1200;
const NOFILE: u64 = 1024;

#[test]
fn sessions_beyond_the_open_file_budget_wait_and_the_api_keeps_answering() {
    let sim = Podsim::start_with(PodsimOptions {
        pods: PODS,
        token: Some(POD_TOKEN.into()),
        ..Default::default()
    });
    let d = Daemon::start(DaemonOptions {
        nofile: Some(NOFILE),
        ..daemon_opts()
    });
    let files = d.unix("GET", "/health", None).json()["files"].clone();
    assert_eq!(files["limit"], NOFILE, "{files}");
    assert_eq!(files["reserve"], 128, "{files}");
    let budget = files["session_budget"].as_u64().unwrap() as usize;
    assert!(budget > 0 && budget < PODS, "{files}");
    for i in 0..PODS {
        register(
            &d,
            Via::Unix,
            &kubernetes_body(&sim, &format!("p{i}"), i, &[]),
        );
    }
    let counts = |h: &serde_json::Value, s: &str| h["pods"][s].as_u64().unwrap_or(0) as usize;
    let mut last = serde_json::Value::Null;
    let settled = wait_until(Duration::from_secs(600), || {
        last = d.unix("GET", "/health", None).json();
        counts(&last, "ready") == budget && counts(&last, "waiting_open_files") == PODS - budget
    });
    assert!(settled, "{last}\n{}", tail(&d.log()));
    let files = &last["files"];
    assert_eq!(files["sessions_open"], budget as u64, "{files}");
    assert!(
        files["in_use"].as_u64().unwrap() < NOFILE,
        "{files}: descriptors left for the API"
    );
    // The API answers on both listeners, and a pod shows the state.
    assert_eq!(d.tcp("GET", "/health", None).status, 200);
    let pods = d.unix("GET", "/api/v1/pods/", None);
    assert_eq!(pods.status, 200);
    let waiting: Vec<String> = pods
        .json()
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["state"]["state"] == "waiting_open_files")
        .map(|p| p["alias"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(waiting.len(), PODS - budget);
    // A ready pod runs commands; removing it lets a waiting one connect.
    let ready = (0..PODS)
        .map(|i| format!("p{i}"))
        .find(|a| !waiting.contains(a))
        .unwrap();
    exec_ok(&d, Via::Unix, &ready, "true");
    let r = d.unix("DELETE", &format!("/api/v1/pods/{ready}"), None);
    assert!(r.status == 204 || r.status == 200, "{}", r.body);
    let moved = wait_until(Duration::from_secs(120), || {
        last = d.unix("GET", "/health", None).json();
        counts(&last, "ready") == budget && counts(&last, "waiting_open_files") == PODS - budget - 1
    });
    assert!(moved, "no waiting pod connected: {last}");
}

fn tail(log: &str) -> &str {
    &log[log.len().saturating_sub(4000)..]
}
