//! Pod sets against a cluster that changes: a real podwranglerd whose `[clusters.sim]` is a real
//! podsim (TLS, podsim's CA, a token file), followed through kube's watcher while podsim rolls
//! the pods, deletes them and the daemon restarts.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::*;
use serde_json::{Value, json};
use testkit::TempDirGuard;

/// podsim over TLS whose deleted pods keep their shells for `grace` seconds.
fn cluster(pods: usize, grace: &str) -> Podsim {
    Podsim::start_with(PodsimOptions {
        pods,
        token: Some(POD_TOKEN.into()),
        tls: true,
        extra_args: vec!["--termination-grace".into(), grace.into()],
        ..Default::default()
    })
}

/// Daemon options whose `[clusters.sim]` is `sim`: its server, its CA and a token file.
fn options(sim: &Podsim, secrets: &TempDirGuard) -> DaemonOptions {
    let token = secrets.path().join("sim.token");
    let ca = secrets.path().join("sim-ca.pem");
    std::fs::write(&token, POD_TOKEN).unwrap();
    std::fs::write(&ca, sim.ca_cert_pem().expect("podsim runs TLS")).unwrap();
    let mut opts = daemon_opts();
    opts.config_toml = Some(format!(
        "[clusters.sim]\nserver = {:?}\ntoken_file = {:?}\nca_file = {:?}\n",
        sim.info.http_base,
        token.display().to_string(),
        ca.display().to_string()
    ));
    opts
}

fn create_set(d: &Daemon) {
    let r = d.unix(
        "POST",
        "/api/v1/sets",
        Some(
            &json!({"name": "web", "cluster": "sim", "namespace": "default", "selector": "app=web"})
                .to_string(),
        ),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.header("location"), Some("/api/v1/sets/web"));
}

fn set(d: &Daemon) -> Value {
    let r = d.unix("GET", "/api/v1/sets/web", None);
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()
}

/// The set's members' pod names once every one of them is ready.
fn ready_members(d: &Daemon) -> Option<BTreeSet<String>> {
    let s = set(d);
    let pods = s["pods"].as_array()?;
    pods.iter()
        .all(|p| p["state"]["state"] == "ready")
        .then(|| {
            pods.iter()
                .map(|p| p["pod"].as_str().unwrap().to_owned())
                .collect()
        })
}

/// The pods podsim has now (name, ready, terminating).
fn sim_pods(sim: &Podsim) -> Vec<(String, bool, bool)> {
    let (status, body) = sim.admin_request("GET", "/_podsim/pods", None);
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    v["pods"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap().to_owned(),
                p["ready"].as_bool().unwrap(),
                p["terminating"].as_bool().unwrap(),
            )
        })
        .collect()
}

fn live_pods(sim: &Podsim) -> BTreeSet<String> {
    sim_pods(sim)
        .into_iter()
        .filter(|(_, ready, terminating)| *ready && !terminating)
        .map(|(n, _, _)| n)
        .collect()
}

fn fan_out(d: &Daemon, command: &str) -> Vec<Value> {
    let r = d.unix(
        "POST",
        "/api/v1/exec",
        Some(&json!({"command": command, "set": "web", "timeout": 60}).to_string()),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()["results"].as_array().unwrap().clone()
}

/// A fan-out result is fine when it ran in a live pod with that pod's output, or was never
/// sent (the member was retired first); anything else is a lost command.
fn lost(result: &Value) -> bool {
    let alias = result["alias"].as_str().unwrap();
    let pod = alias.strip_prefix("web/").expect("a set member's alias");
    let ran =
        result["status"] == "succeeded" && result["stdout"].as_str().map(str::trim) == Some(pod);
    let never_sent = result["status"] == "error"
        && result["error"]
            .as_str()
            .is_some_and(|e| e.contains("was removed"));
    !(ran || never_sent)
}

#[test]
fn a_pod_set_follows_a_rollout_without_losing_commands() {
    let sim = cluster(3, "2");
    let secrets = TempDirGuard::new("sets-secrets");
    let mut d = Daemon::start(options(&sim, &secrets));
    create_set(&d);
    let first: BTreeSet<String> = sim.pod_names().into_iter().collect();
    assert!(
        wait_until(Duration::from_secs(60), || ready_members(&d).as_ref()
            == Some(&first)),
        "members never became ready: {}",
        set(&d)
    );
    assert_eq!(set(&d)["watch"], "watching");

    // Every per-pod route takes a member as two segments or percent-encoded.
    let pod = first.iter().next().unwrap().clone();
    let r = d.unix(
        "POST",
        &format!("/api/v1/pods/web/{pod}/exec"),
        Some(r#"{"command": "echo $POD_NAME"}"#),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["stdout"].as_str().unwrap().trim(), pod);
    let r = d.unix(
        "POST",
        &format!("/api/v1/pods/web%2F{pod}/exec"),
        Some(r#"{"command": "echo $POD_NAME"}"#),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let r = d.unix("GET", &format!("/api/v1/pods/web/{pod}"), None);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["identity"]["pod_name"], pod.as_str());
    for result in fan_out(&d, "echo $POD_NAME") {
        assert!(!lost(&result), "{result}");
        assert_eq!(result["status"], "succeeded", "{result}");
    }

    // Roll every pod, one at a time, while fan-outs keep running.
    let (status, body) = sim.admin_request(
        "POST",
        "/_podsim/rollout",
        Some(r#"{"selector": "app=web", "batch": 1, "interval_ms": 300}"#),
    );
    assert_eq!(status, 200, "{body}");
    let mut results = Vec::new();
    let mut rounds = 0;
    loop {
        rounds += 1;
        results.extend(fan_out(&d, "sleep 0.2; echo $POD_NAME"));
        let live = live_pods(&sim);
        let done = live.len() == 3 && live.is_disjoint(&first);
        if done && ready_members(&d).as_ref() == Some(&live) {
            break;
        }
        assert!(rounds < 2000, "the rollout never settled: {}", set(&d));
    }
    let lost_results: Vec<&Value> = results.iter().filter(|r| lost(r)).collect();
    assert!(lost_results.is_empty(), "lost commands: {lost_results:#?}");
    let ran_on_old = results
        .iter()
        .filter(|r| r["status"] == "succeeded")
        .filter(|r| first.contains(r["alias"].as_str().unwrap().trim_start_matches("web/")))
        .count();
    let second = live_pods(&sim);
    for p in &second {
        let r = d.unix(
            "POST",
            &format!("/api/v1/pods/web/{p}/exec"),
            Some(r#"{"command": "echo $POD_NAME"}"#),
        );
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.json()["stdout"].as_str().unwrap().trim(), p);
    }
    // The old pods are retired: no longer members, no longer registered.
    let r = d.unix("GET", &format!("/api/v1/pods/web/{pod}"), None);
    assert_eq!(r.status, 404, "{}", r.body);
    assert_eq!(r.json()["code"], "pod_not_found");

    // History of the set still has the commands of pods that are gone.
    let r = d.unix("GET", "/api/v1/commands?set=web&limit=1000", None);
    assert_eq!(r.status, 200, "{}", r.body);
    let rows = r.json()["items"].as_array().unwrap().clone();
    let aliases: BTreeSet<String> = rows
        .iter()
        .map(|r| r["alias"].as_str().unwrap().to_owned())
        .collect();
    assert!(aliases.contains(&format!("web/{pod}")), "{aliases:?}");
    assert!(
        second.iter().all(|p| aliases.contains(&format!("web/{p}"))),
        "{aliases:?}"
    );
    assert!(ran_on_old > 0, "no command ran on the old pods");
    let r = d.unix("GET", "/api/v1/commands?set=nosuchset", None);
    assert!(r.json()["items"].as_array().unwrap().is_empty());

    // A restart keeps the set; the watcher re-lists and the members answer again.
    let dir = d.keep_state_dir().unwrap();
    d.terminate(Duration::from_secs(30));
    let mut opts = options(&sim, &secrets);
    opts.state_dir = Some(dir.path().to_path_buf());
    // Meanwhile one more pod goes: the restarted daemon must notice from its first list.
    let gone = second.iter().next().unwrap().clone();
    let (status, _) =
        sim.admin_request("DELETE", &format!("/_podsim/pods/{gone}?grace_ms=0"), None);
    assert_eq!(status, 200);
    let d = Daemon::start(opts);
    let expected: BTreeSet<String> = second.iter().filter(|p| **p != gone).cloned().collect();
    assert!(
        wait_until(Duration::from_secs(60), || ready_members(&d).as_ref()
            == Some(&expected)),
        "after the restart: {}",
        set(&d)
    );
    for result in fan_out(&d, "echo $POD_NAME") {
        assert_eq!(result["status"], "succeeded", "{result}");
        assert!(!lost(&result), "{result}");
    }

    // Deleting the set retires its members and is audited.
    let r = d.unix("DELETE", "/api/v1/sets/web", None);
    assert_eq!(r.status, 204, "{}", r.body);
    let r = d.unix("GET", "/api/v1/sets/web", None);
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["code"], "set_not_found");
    let pods = d.unix("GET", "/api/v1/pods/", None).json();
    assert!(pods.as_array().unwrap().is_empty(), "{pods}");
    let audit = d.unix("GET", "/api/v1/audit", None).body;
    assert!(
        audit.contains("set_created") && audit.contains("set_deleted"),
        "{audit}"
    );
    assert_no_token("the log", &d.log());
    drop(dir);
}

#[test]
fn pod_set_requests_are_checked() {
    let sim = cluster(1, "0");
    let secrets = TempDirGuard::new("sets-secrets");
    let d = Daemon::start(options(&sim, &secrets));
    for (body, field) in [
        (
            json!({"name": "a/b", "cluster": "sim", "namespace": "default", "selector": "app=web"}),
            "name",
        ),
        (
            json!({"name": "web", "cluster": "nope", "namespace": "default", "selector": "app=web"}),
            "cluster",
        ),
        (
            json!({"name": "web", "cluster": "sim", "namespace": "Bad_NS", "selector": "app=web"}),
            "namespace",
        ),
        (
            json!({"name": "web", "cluster": "sim", "namespace": "default", "selector": " "}),
            "selector",
        ),
    ] {
        let r = d.unix("POST", "/api/v1/sets", Some(&body.to_string()));
        assert_eq!(r.status, 422, "{body}: {}", r.body);
        assert_eq!(r.json()["field"], field, "{}", r.body);
    }
    create_set(&d);
    let r = d.unix(
        "POST",
        "/api/v1/sets",
        Some(&json!({"name": "web", "cluster": "sim", "namespace": "default", "selector": "app=web"}).to_string()),
    );
    assert_eq!(r.status, 409, "{}", r.body);
    assert_eq!(r.json()["code"], "set_exists");
    let list = d.unix("GET", "/api/v1/sets", None).json();
    assert_eq!(list[0]["name"], "web");
    // Only a pod set registers `SET/POD` aliases.
    let r = d.unix(
        "POST",
        "/api/v1/pods/",
        Some(
            &json!({"alias": "web/x", "provider": "kubernetes", "pod_name": "x", "cluster": "sim"})
                .to_string(),
        ),
    );
    assert_eq!(r.status, 422, "{}", r.body);
    let r = d.unix(
        "POST",
        "/api/v1/exec",
        Some(r#"{"command": "true", "set": "nope"}"#),
    );
    assert_eq!(r.status, 404, "{}", r.body);
    assert_eq!(r.json()["code"], "set_not_found");
    let r = d.unix(
        "POST",
        "/api/v1/exec",
        Some(r#"{"command": "true", "set": "web", "all": true}"#),
    );
    assert_eq!(r.status, 422, "{}", r.body);
    let r = d.unix("DELETE", "/api/v1/sets/nope", None);
    assert_eq!(r.status, 404);
}

/// Deleting a set while its watcher is still registering members leaves nothing behind: no
/// pod row, no pod actor, neither at once nor a little later, nor after a restart.
#[test]
fn deleting_a_set_while_it_registers_leaves_no_member() {
    let sim = cluster(150, "0");
    let secrets = TempDirGuard::new("sets-secrets");
    let mut d = Daemon::start(options(&sim, &secrets));
    create_set(&d);
    assert!(
        wait_until(Duration::from_secs(60), || set(&d)["members"]
            .as_u64()
            .is_some_and(|n| n > 0)),
        "no member was registered: {}",
        set(&d)
    );
    let r = d.unix("DELETE", "/api/v1/sets/web", None);
    assert_eq!(r.status, 204, "{}", r.body);
    let registered = |d: &Daemon| {
        let pods = d.unix("GET", "/api/v1/pods/", None).json();
        let health = d.unix("GET", "/health", None).json();
        (pods.as_array().unwrap().len(), health["pods"].clone())
    };
    assert_eq!(registered(&d), (0, json!({})), "right after the delete");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(registered(&d), (0, json!({})), "two seconds later");
    let dir = d.keep_state_dir().unwrap();
    d.terminate(Duration::from_secs(30));
    let mut opts = options(&sim, &secrets);
    opts.state_dir = Some(dir.path().to_path_buf());
    let d = Daemon::start(opts);
    assert_eq!(registered(&d), (0, json!({})), "after a restart");
    drop(dir);
}
