//! End to end: a real podwranglerd against a real podsim, over the Unix socket and over TCP, on
//! SQLite and on PostgreSQL: register pods of both providers, exec, fan-out to 50 pods (JSON and
//! NDJSON), history, update, remove, import.

mod common;

use std::collections::HashSet;

use common::*;
use serde_json::json;

const FLEET: usize = 50;

/// The whole suite against one daemon. Half the fleet is PlainTTY, half Kubernetes.
fn suite(d: &Daemon, sim: &Podsim) {
    // Register: PlainTTY over the socket, Kubernetes over TCP, all tagged `fleet`.
    for i in 0..FLEET {
        let (via, body) = if i % 2 == 0 {
            (
                Via::Unix,
                plaintty_body(sim, &format!("pt-{i:02}"), i, &["fleet", "even"]),
            )
        } else {
            (
                Via::Tcp,
                kubernetes_body(sim, &format!("k8s-{i:02}"), i, &["fleet"]),
            )
        };
        let info = register(d, via, &body);
        assert_eq!(info["has_token"], true);
        assert!(info.get("token").is_none(), "{info}");
    }
    let dup = call(
        d,
        Via::Unix,
        "POST",
        "/api/v1/pods/",
        Some(&plaintty_body(sim, "pt-00", 0, &[])),
    );
    assert_eq!(dup.status, 409, "{}", dup.body);
    assert_eq!(dup.json()["code"], "pod_exists");
    wait_ready(d, FLEET);

    // Single exec on both providers, both listeners; the shell keeps state between commands.
    let rec = exec_ok(
        d,
        Via::Unix,
        "pt-00",
        "cd /tmp && export PW_X=42; echo $POD_NAME",
    );
    assert_eq!(rec["stdout"], format!("{}\n", sim.info.pods[0].name));
    let rec = exec_ok(d, Via::Tcp, "pt-00", "echo $PWD $PW_X");
    assert_eq!(rec["stdout"], "/tmp 42\n");
    let rec = exec_ok(d, Via::Tcp, "k8s-01", "echo out; echo err >&2");
    assert_eq!(rec["stdout"], "out\n");
    assert_eq!(rec["stderr"], "err\n");
    assert_eq!(
        rec["pod_label"],
        format!("default/{}", sim.info.pods[1].name)
    );

    // Non-zero exit: 200 `failed`; with check: 422 `command_failed` carrying the record.
    let r = exec(d, Via::Unix, "k8s-01", "false");
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["status"], "failed");
    assert_eq!(r.json()["exit_code"], 1);
    let r = call(
        d,
        Via::Unix,
        "POST",
        "/api/v1/pods/pt-02/exec",
        Some(&json!({"command": "exit_code() { return 7; }; exit_code", "check": true})),
    );
    assert_eq!(r.status, 422, "{}", r.body);
    assert_eq!(r.header("content-type"), Some("application/problem+json"));
    let p = r.json();
    assert_eq!(p["code"], "command_failed");
    assert_eq!(p["record"]["exit_code"], 7);
    // Timeout: 504 with the partial output; the pod keeps working afterwards.
    let r = call(
        d,
        Via::Unix,
        "POST",
        "/api/v1/pods/pt-04/exec",
        Some(&json!({"command": "echo started; sleep 30", "timeout": 1})),
    );
    assert_eq!(r.status, 504, "{}", r.body);
    let p = r.json();
    assert_eq!(p["code"], "command_timeout");
    assert_eq!(p["record"]["status"], "timeout");
    assert!(
        p["record"]["stdout"].as_str().unwrap().contains("started"),
        "{p}"
    );
    exec_ok(d, Via::Unix, "pt-04", "true");
    let r = exec(d, Via::Unix, "nope", "true");
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["code"], "pod_not_found");

    // Fan-out to all 50 by tag: one result per pod, each printing its own pod name.
    let r = call(
        d,
        Via::Tcp,
        "POST",
        "/api/v1/exec",
        Some(&json!({"command": "echo $POD_NAME", "tag": "fleet", "concurrency": 16})),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let fan = r.json();
    assert_eq!(fan["succeeded"], FLEET);
    assert_eq!(fan["failed"], 0);
    let results = fan["results"].as_array().unwrap();
    assert_eq!(results.len(), FLEET);
    let names: HashSet<String> = results
        .iter()
        .map(|r| r["stdout"].as_str().unwrap().trim().to_owned())
        .collect();
    let expected: HashSet<String> = sim
        .info
        .pods
        .iter()
        .take(FLEET)
        .map(|p| p.name.clone())
        .collect();
    assert_eq!(names, expected);

    // Fan-out streamed as NDJSON over the socket, to a list of aliases.
    let aliases: Vec<String> = (0..FLEET)
        .step_by(2)
        .map(|i| format!("pt-{i:02}"))
        .collect();
    let r = d.unix_with(
        "POST",
        "/api/v1/exec",
        &[("Accept", "application/x-ndjson")],
        Some(&json!({"command": "echo $POD_NAME", "aliases": aliases}).to_string()),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("content-type"), Some("application/x-ndjson"));
    let events: Vec<serde_json::Value> = r
        .body
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // ExecEvents: `job` first, each pod's `finished` record, `job_finished` last.
    assert_eq!(events[0]["event"], "job", "{events:?}");
    assert_eq!(events[events.len() - 1]["event"], "job_finished");
    let lines: Vec<serde_json::Value> = events
        .iter()
        .filter(|e| e["event"] == "finished")
        .map(|e| e["record"].clone())
        .collect();
    assert_eq!(lines.len(), FLEET / 2);
    let got: HashSet<&str> = lines.iter().map(|l| l["alias"].as_str().unwrap()).collect();
    assert_eq!(
        got,
        aliases.iter().map(String::as_str).collect::<HashSet<_>>()
    );
    assert!(lines.iter().all(|l| l["status"] == "succeeded"));
    // Fan-out naming an unknown alias runs nothing.
    let before = all_history(d).len();
    let r = call(
        d,
        Via::Unix,
        "POST",
        "/api/v1/exec",
        Some(&json!({"command": "true", "aliases": ["pt-00", "ghost"]})),
    );
    assert_eq!(r.status, 404, "{}", r.body);
    assert!(r.json()["detail"].as_str().unwrap().contains("ghost"));
    assert_eq!(all_history(d).len(), before);

    // History: newest first, filters, cursor paging, one record by id.
    let history = all_history(d);
    assert_eq!(history.len(), before);
    let ids: Vec<i64> = history.iter().map(|r| r["id"].as_i64().unwrap()).collect();
    assert!(
        ids.windows(2).all(|w| w[0] > w[1]),
        "not newest first: {ids:?}"
    );
    assert!(history.iter().all(|r| r["status"] != "running"));
    let page = d
        .unix("GET", "/api/v1/commands?alias=k8s-01&status=failed", None)
        .json();
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    assert_eq!(page["items"][0]["command"], "false");
    let p1 = d.unix("GET", "/api/v1/commands?limit=5", None).json();
    assert_eq!(p1["items"].as_array().unwrap().len(), 5);
    let cursor = p1["next_cursor"].as_str().unwrap();
    let p2 = d
        .unix(
            "GET",
            &format!("/api/v1/commands?limit=5&cursor={cursor}"),
            None,
        )
        .json();
    assert!(p2["items"][0]["id"].as_i64().unwrap() < p1["items"][4]["id"].as_i64().unwrap());
    let since = history.last().unwrap()["started_at"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = d.tcp(
        "GET",
        &format!(
            "/api/v1/commands?since={}&limit=1000",
            since.replace('+', "%2B")
        ),
        None,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["items"].as_array().unwrap().len(), history.len());
    let one = d.tcp("GET", &format!("/api/v1/commands/{}", ids[0]), None);
    assert_eq!(one.status, 200);
    // The listing's item is the record plus its preview fields; the full record has none.
    let mut listed = history[0].clone();
    for field in ["preview", "command_bytes", "stdout_bytes", "stderr_bytes"] {
        listed.as_object_mut().unwrap().remove(field);
    }
    assert_eq!(one.json(), listed);
    assert_eq!(
        d.unix("GET", "/api/v1/commands/999999999", None).json()["code"],
        "command_not_found"
    );

    // List and filter pods; live state shown.
    let pods = d.unix("GET", "/api/v1/pods/", None).json();
    assert_eq!(pods.as_array().unwrap().len(), FLEET);
    let even = d.tcp("GET", "/api/v1/pods/?tag=even", None).json();
    assert_eq!(even.as_array().unwrap().len(), FLEET / 2);
    let one = d.unix("GET", "/api/v1/pods/pt-00", None).json();
    assert_eq!(one["state"]["state"], "ready");

    // Update: tags only (no reconnect), then a new URL (reconnects to another pod).
    let r = call(
        d,
        Via::Tcp,
        "PATCH",
        "/api/v1/pods/pt-00",
        Some(&json!({"tags": ["moved"]})),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["tags"], json!(["moved"]));
    let rec = exec_ok(d, Via::Unix, "pt-00", "echo $PW_X");
    assert_eq!(
        rec["stdout"], "42\n",
        "a tags-only update must keep the session"
    );
    let r = call(
        d,
        Via::Unix,
        "PATCH",
        "/api/v1/pods/pt-00",
        Some(&json!({"url": sim.info.pods[FLEET].plaintty_url})),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["identity"]["pod_name"], sim.info.pods[FLEET].name);
    let rec = exec_ok(d, Via::Unix, "pt-00", "echo $POD_NAME");
    assert_eq!(rec["stdout"], format!("{}\n", sim.info.pods[FLEET].name));

    // Remove: 204, then 404; its history stays.
    let r = call(d, Via::Tcp, "DELETE", "/api/v1/pods/k8s-01", None);
    assert_eq!(r.status, 204, "{}", r.body);
    assert_eq!(
        call(d, Via::Unix, "GET", "/api/v1/pods/k8s-01", None).status,
        404
    );
    assert_eq!(
        call(d, Via::Unix, "DELETE", "/api/v1/pods/k8s-01", None).status,
        404
    );
    assert_eq!(exec(d, Via::Unix, "k8s-01", "true").status, 404);
    let page = d.unix("GET", "/api/v1/commands?alias=k8s-01", None).json();
    assert!(page["items"].as_array().unwrap().len() >= 3);

    // Import through podsim's Kubernetes API, with a label selector.
    let r = call(
        d,
        Via::Unix,
        "POST",
        "/api/v1/pods/import",
        Some(&json!({
            "namespace": "default",
            "label_selector": "parity=odd",
            "server": sim.info.http_base,
            "token": sim.info.token,
            "alias_prefix": "imp-",
            "tags": ["imported"],
        })),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let imp = r.json();
    let odd = sim
        .info
        .pods
        .iter()
        .enumerate()
        .filter(|(i, _)| i % 2 == 1)
        .count();
    assert_eq!(imp["registered"].as_array().unwrap().len(), odd, "{imp}");
    let rec = exec_ok(
        d,
        Via::Unix,
        &format!("imp-{}", sim.info.pods[1].name),
        "echo $POD_NAME",
    );
    assert_eq!(rec["stdout"], format!("{}\n", sim.info.pods[1].name));
    let again = call(
        d,
        Via::Unix,
        "POST",
        "/api/v1/pods/import",
        Some(&json!({
            "namespace": "default", "label_selector": "parity=odd", "server": sim.info.http_base,
            "token": sim.info.token, "alias_prefix": "imp-",
        })),
    )
    .json();
    assert_eq!(again["registered"].as_array().unwrap().len(), 0);
    assert_eq!(again["skipped"].as_array().unwrap().len(), odd);

    // Health counts every pod.
    let h = d.tcp("GET", "/health", None).json();
    assert_eq!(h["status"], "ok");
    assert_eq!(h["database"]["ok"], true);
    let total: u64 = h["pods"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(total as usize, FLEET - 1 + odd);

    // The pod token never appears in anything the daemon said or logged.
    assert_no_token("pod list", &d.unix("GET", "/api/v1/pods/", None).body);
    assert_no_token("history", &serde_json::to_string(&all_history(d)).unwrap());
    assert_no_token("daemon log", &d.log());
}

#[test]
fn e2e_sqlite() {
    let sim = podsim(FLEET + 1);
    let d = Daemon::start(DaemonOptions {
        api_key: Some("e2e-key".into()),
        ..daemon_opts()
    });
    suite(&d, &sim);
    let h = d.unix("GET", "/health", None).json();
    assert_eq!(h["database"]["backend"], "sqlite");
}

#[test]
fn e2e_postgres() {
    let Some(db) = testkit::pg::PgDatabase::create("daemon_e2e") else {
        return;
    };
    let sim = podsim(FLEET + 1);
    let d = Daemon::start(DaemonOptions {
        api_key: Some("e2e-key".into()),
        database_url: Some(db.url.clone()),
        ..daemon_opts()
    });
    suite(&d, &sim);
    let h = d.unix("GET", "/health", None).json();
    assert_eq!(h["database"]["backend"], "postgres");
}

#[test]
fn pods_survive_a_restart_and_reconnect() {
    let sim = podsim(2);
    let mut d = start_daemon();
    register(&d, Via::Unix, &plaintty_body(&sim, "a", 0, &["t"]));
    register(&d, Via::Unix, &kubernetes_body(&sim, "b", 1, &[]));
    exec_ok(&d, Via::Unix, "a", "true");
    let mut state = d.keep_state_dir().unwrap();
    assert!(
        d.terminate(std::time::Duration::from_secs(30))
            .is_some_and(|s| s.success())
    );
    let d2 = Daemon::start(DaemonOptions {
        state_dir: Some(state.path().to_path_buf()),
        ..daemon_opts()
    });
    wait_ready(&d2, 2);
    let pods = d2.unix("GET", "/api/v1/pods/", None).json();
    assert_eq!(pods.as_array().unwrap().len(), 2);
    assert_eq!(pods[0]["tags"], json!(["t"]));
    exec_ok(&d2, Via::Unix, "b", "echo $POD_NAME");
    assert_eq!(all_history(&d2).len(), 2);
    drop(d2);
    let _ = &mut state;
}

#[test]
fn lazy_pods_connect_on_first_use() {
    let sim = podsim(1);
    let d = Daemon::start(DaemonOptions {
        lazy: true,
        ..daemon_opts()
    });
    register(&d, Via::Unix, &plaintty_body(&sim, "lazy", 0, &[]));
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert_eq!(
        d.unix("GET", "/api/v1/pods/lazy", None).json()["state"]["state"],
        "idle"
    );
    assert_eq!(sim.stats(&sim.info.pods[0].name)["connections_total"], 0);
    exec_ok(&d, Via::Unix, "lazy", "true");
    assert_eq!(
        d.unix("GET", "/api/v1/pods/lazy", None).json()["state"]["state"],
        "ready"
    );
}
