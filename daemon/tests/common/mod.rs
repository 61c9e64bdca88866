//! Helpers shared by the daemon's end-to-end tests: a real podwranglerd against a real podsim.
#![allow(dead_code)]

use std::time::Duration;

use serde_json::{Value, json};
pub use testkit::daemon::{Daemon, DaemonOptions, Response};
pub use testkit::{Podsim, PodsimOptions, wait_until};

/// The token every test podsim requires; tests grep for it in responses, logs and history.
pub const POD_TOKEN: &str = "pod-token-7f3a9c1e-SECRET";

pub fn daemon_opts() -> DaemonOptions {
    DaemonOptions::new(env!("CARGO_BIN_EXE_podwranglerd"))
}

pub fn start_daemon() -> Daemon {
    Daemon::start(daemon_opts())
}

pub fn podsim(pods: usize) -> Podsim {
    Podsim::start_with(PodsimOptions {
        pods,
        token: Some(POD_TOKEN.into()),
        ..Default::default()
    })
}

/// Which listener a request goes through.
#[derive(Clone, Copy, Debug)]
pub enum Via {
    Unix,
    Tcp,
}

pub fn call(d: &Daemon, via: Via, method: &str, path: &str, body: Option<&Value>) -> Response {
    let body = body.map(|b| b.to_string());
    match via {
        Via::Unix => d.unix(method, path, body.as_deref()),
        Via::Tcp => d.tcp(method, path, body.as_deref()),
    }
}

/// `POST /api/v1/pods/` for a PlainTTY pod of podsim, by index.
pub fn plaintty_body(sim: &Podsim, alias: &str, index: usize, tags: &[&str]) -> Value {
    json!({
        "alias": alias,
        "provider": "plaintty",
        "url": sim.info.pods[index].plaintty_url,
        "tags": tags,
    })
}

/// `POST /api/v1/pods/` for a Kubernetes pod of podsim, by index (URL + separate token).
pub fn kubernetes_body(sim: &Podsim, alias: &str, index: usize, tags: &[&str]) -> Value {
    json!({
        "alias": alias,
        "provider": "kubernetes",
        "url": format!("{}{}", sim.info.http_base, sim.info.pods[index].exec_path),
        "token": sim.info.token,
        "tags": tags,
    })
}

pub fn register(d: &Daemon, via: Via, body: &Value) -> Value {
    let r = call(d, via, "POST", "/api/v1/pods/", Some(body));
    assert_eq!(r.status, 201, "register {body}: {}", r.body);
    r.json()
}

pub fn exec(d: &Daemon, via: Via, alias: &str, command: &str) -> Response {
    call(
        d,
        via,
        "POST",
        &format!("/api/v1/pods/{alias}/exec"),
        Some(&json!({ "command": command, "timeout": 60 })),
    )
}

/// Execs and asserts 200 + `succeeded`; returns the record.
pub fn exec_ok(d: &Daemon, via: Via, alias: &str, command: &str) -> Value {
    let r = exec(d, via, alias, command);
    assert_eq!(r.status, 200, "{alias}: {command}: {}", r.body);
    let rec = r.json();
    assert_eq!(rec["status"], "succeeded", "{rec}");
    rec
}

/// Waits until every pod reports `ready`.
pub fn wait_ready(d: &Daemon, n: usize) {
    let ok = wait_until(Duration::from_secs(120), || {
        let h = d.unix("GET", "/health", None).json();
        h["pods"]["ready"].as_u64() == Some(n as u64)
    });
    assert!(
        ok,
        "pods not ready: {}",
        d.unix("GET", "/health", None).body
    );
}

/// Every history row (all pages).
pub fn all_history(d: &Daemon) -> Vec<Value> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/commands?limit=200&cursor={c}"),
            None => "/api/v1/commands?limit=200".into(),
        };
        let page = d.unix("GET", &path, None);
        assert_eq!(page.status, 200, "{}", page.body);
        let page = page.json();
        out.extend(page["items"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return out,
        }
    }
}

/// The pod token must not appear in `text`.
pub fn assert_no_token(what: &str, text: &str) {
    assert!(
        !text.contains(POD_TOKEN),
        "the pod token leaked into {what}: {}",
        &text[text.find(POD_TOKEN).unwrap().saturating_sub(200)..]
    );
}
