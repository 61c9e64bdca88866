//! Nothing lost: command history through database faults, with real processes. SQLite on a
//! small tmpfs that fills up mid-run, and a PostgreSQL server stopped and started under the
//! daemon. Results are always answered (with `history_error` while the database cannot take
//! them), wait in the spool, and reach the database once it recovers, without a restart.

mod common;

use std::collections::HashSet;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use common::*;
use serde_json::{Value, json};
use testkit::pg::PgServer;
use testkit::tmpfs::Tmpfs;

/// Replays every half second so recovery is quick in tests.
const FAST_RETRY: &str = "spool_retry_secs = 0.5\n";

fn health(d: &Daemon) -> Value {
    let r = d.unix("GET", "/health", None);
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()
}

/// A command whose output names it and is `bytes` long after the name.
fn command(name: &str, bytes: usize) -> String {
    format!("echo {name}; head -c {bytes} /dev/zero | tr '\\0' x; echo")
}

fn expected_stdout(name: &str, bytes: usize) -> String {
    format!("{name}\n{}\n", "x".repeat(bytes))
}

/// Waits until the spool is empty and the database is ok again.
fn wait_recovered(d: &Daemon) {
    let ok = wait_until(Duration::from_secs(60), || {
        let h = health(d);
        h["status"] == "ok" && h["database"]["spool_pending"] == 0
    });
    assert!(
        ok,
        "never recovered: {}\nlog:\n{}",
        health(d),
        tail(&d.log())
    );
}

fn tail(log: &str) -> &str {
    &log[log.len().saturating_sub(6000)..]
}

/// Every history row has a unique id, none is left running, and each named command is there
/// once with its full output.
fn assert_history_complete(d: &Daemon, ran: &[(String, usize)]) {
    let history = all_history(d);
    let ids: HashSet<i64> = history.iter().map(|r| r["id"].as_i64().unwrap()).collect();
    assert_eq!(ids.len(), history.len(), "duplicate ids in {history:?}");
    assert!(!ids.contains(&0));
    for r in &history {
        assert_ne!(r["status"], "running", "left running: {r}");
        assert!(r.get("history_error").is_none(), "{r}");
    }
    for (name, bytes) in ran {
        let rows: Vec<&Value> = history
            .iter()
            .filter(|r| {
                r["stdout"]
                    .as_str()
                    .unwrap()
                    .starts_with(&format!("{name}\n"))
            })
            .collect();
        assert_eq!(rows.len(), 1, "{name}: {} rows", rows.len());
        assert_eq!(rows[0]["status"], "succeeded", "{name}: {}", rows[0]);
        // A listing shows a preview; the record has the full output.
        let id = rows[0]["id"].as_i64().unwrap();
        let full = d
            .unix("GET", &format!("/api/v1/commands/{id}"), None)
            .json();
        assert_eq!(
            full["stdout"].as_str().unwrap(),
            expected_stdout(name, *bytes),
            "{name}"
        );
    }
}

#[test]
fn a_full_sqlite_disk_loses_no_history() {
    let Some(fs) = Tmpfs::mount("a_full_sqlite_disk_loses_no_history", "8m") else {
        return;
    };
    let sim = podsim(2);
    let spool = fs.path().join("podwrangler.db.spool");
    let d = Daemon::start(DaemonOptions {
        database_url: Some(fs.path().join("podwrangler.db").display().to_string()),
        config_toml: Some(FAST_RETRY.into()),
        env: vec![("PODWRANGLER_SPOOL_PATH".into(), spool.display().to_string())],
        ..daemon_opts()
    });
    register(&d, Via::Unix, &plaintty_body(&sim, "tty", 0, &[]));
    register(&d, Via::Unix, &kubernetes_body(&sim, "k8s", 1, &[]));
    wait_ready(&d, 2);
    let mode = std::fs::metadata(&spool).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the spool is private");

    let mut ran: Vec<(String, usize)> = Vec::new();
    for i in 0..3 {
        let name = format!("before-{i}");
        let rec = exec_ok(&d, Via::Unix, "tty", &command(&name, 100));
        assert!(rec["id"].as_i64().unwrap() > 0);
        assert!(rec.get("history_error").is_none(), "{rec}");
        ran.push((name, 100));
    }

    fs.fill("filler");
    assert!(
        fs.available() < 64 * 1024,
        "{} bytes still free",
        fs.available()
    );

    // Commands keep running and answering with their output; the database cannot take them.
    let mut spooled = 0;
    for i in 0..8 {
        let alias = if i % 2 == 0 { "tty" } else { "k8s" };
        let name = format!("full-{i}");
        let r = exec(&d, Via::Unix, alias, &command(&name, 30_000));
        assert_eq!(r.status, 200, "{name}: {}", r.body);
        let rec = r.json();
        assert_eq!(rec["status"], "succeeded", "{rec}");
        assert_eq!(rec["stdout"], expected_stdout(&name, 30_000), "{name}");
        if let Some(e) = rec["history_error"].as_str() {
            assert!(e.contains("spool"), "{e}");
            spooled += 1;
        } else {
            // Answered as recorded: then it really is in the database.
            let id = rec["id"].as_i64().unwrap();
            let got = d.unix("GET", &format!("/api/v1/commands/{id}"), None);
            assert_eq!(got.status, 200, "{}", got.body);
            assert_eq!(got.json()["stdout"], rec["stdout"], "{name}");
        }
        ran.push((name, 30_000));
    }
    assert!(spooled > 0, "the full disk never failed a write");

    // One fan-out while full: every pod answers, and no two results share an id.
    let r = d.unix(
        "POST",
        "/api/v1/exec",
        Some(
            &json!({"command": command("fan", 20_000), "aliases": ["tty", "k8s"], "timeout": 60})
                .to_string(),
        ),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let fan = r.json();
    let ids: Vec<i64> = fan["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_i64().unwrap())
        .filter(|id| *id != 0)
        .collect();
    assert_eq!(ids.len(), ids.iter().collect::<HashSet<_>>().len(), "{fan}");
    for res in fan["results"].as_array().unwrap() {
        assert_eq!(res["stdout"], expected_stdout("fan", 20_000), "{res}");
    }

    // While writes fail: health says so, and a registration (a write) is 503 with Retry-After.
    let h = health(&d);
    assert_eq!(h["status"], "degraded", "{h}");
    assert_eq!(h["database"]["ok"], false, "{h}");
    assert!(h["database"]["spool_pending"].as_u64().unwrap() > 0, "{h}");
    let r = d.unix(
        "POST",
        "/api/v1/pods/",
        Some(&plaintty_body(&sim, "late", 0, &[]).to_string()),
    );
    assert_eq!(r.status, 503, "{}", r.body);
    assert!(r.header("retry-after").is_some(), "{:?}", r.headers);
    assert_eq!(r.json()["code"], "database_unavailable");
    let log = d.log();
    assert!(
        log.contains("ERROR") && log.contains("history cannot record"),
        "{}",
        tail(&log)
    );

    // Space comes back: the spool is replayed without a restart.
    std::fs::remove_file(fs.path().join("filler")).unwrap();
    wait_recovered(&d);
    assert_history_complete(&d, &ran);
    let fan_rows = all_history(&d)
        .into_iter()
        .filter(|r| r["stdout"].as_str().unwrap().starts_with("fan\n"))
        .count();
    assert_eq!(fan_rows, 2);
    assert_eq!(std::fs::metadata(&spool).unwrap().len(), 0, "spool emptied");
    // And new commands are recorded directly again.
    let rec = exec_ok(&d, Via::Unix, "k8s", &command("after", 10));
    assert!(rec["id"].as_i64().unwrap() > 0 && rec.get("history_error").is_none());
    drop(d);
}

#[test]
fn postgres_stopped_mid_run_loses_no_history() {
    let Some(pg) = PgServer::start("postgres_stopped_mid_run_loses_no_history") else {
        return;
    };
    let sim = podsim(2);
    let d = Daemon::start(DaemonOptions {
        database_url: Some(pg.url()),
        config_toml: Some(FAST_RETRY.into()),
        ..daemon_opts()
    });
    register(&d, Via::Unix, &plaintty_body(&sim, "tty", 0, &[]));
    register(&d, Via::Unix, &kubernetes_body(&sim, "k8s", 1, &[]));
    wait_ready(&d, 2);
    let mut ran: Vec<(String, usize)> = Vec::new();
    for alias in ["tty", "k8s"] {
        let name = format!("before-{alias}");
        exec_ok(&d, Via::Unix, alias, &command(&name, 10));
        ran.push((name, 10));
    }

    // A command in flight when the server stops.
    let in_flight = {
        let socket = d.socket.clone();
        std::thread::spawn(move || {
            let s = std::os::unix::net::UnixStream::connect(socket).unwrap();
            let body =
                json!({"command": format!("sleep 3; {}", command("inflight", 50)), "timeout": 60})
                    .to_string();
            testkit::daemon::request(
                s,
                "x",
                "POST",
                "/api/v1/pods/tty/exec",
                &[],
                Some(body.as_bytes()),
            )
            .unwrap()
        })
    };
    // Its `running` row is committed before the server stops.
    assert!(wait_until(Duration::from_secs(30), || {
        let page = d
            .unix("GET", "/api/v1/commands?status=running", None)
            .json();
        page["items"].as_array().is_some_and(|i| i.len() == 1)
    }));
    pg.stop();

    // While it is down: requests that need the database are 503 with Retry-After.
    for (method, path, body) in [
        ("GET", "/api/v1/pods", None),
        ("GET", "/api/v1/commands", None),
        ("GET", "/api/v1/commands/1", None),
        (
            "POST",
            "/api/v1/pods/",
            Some(plaintty_body(&sim, "late", 0, &[]).to_string()),
        ),
    ] {
        let r = d.unix(method, path, body.as_deref());
        assert_eq!(r.status, 503, "{method} {path}: {}", r.body);
        assert!(r.header("retry-after").is_some(), "{:?}", r.headers);
        assert_eq!(r.json()["code"], "database_unavailable", "{}", r.body);
    }
    let h = health(&d);
    assert_eq!(h["status"], "degraded", "{h}");
    assert_eq!(h["database"]["ok"], false, "{h}");

    // A command started while it is down still runs and answers; its start and finish wait.
    let r = exec(&d, Via::Unix, "k8s", &command("down", 40));
    assert_eq!(r.status, 200, "{}", r.body);
    let rec = r.json();
    assert_eq!(rec["stdout"], expected_stdout("down", 40));
    assert_eq!(rec["id"], 0, "no id before the row is committed: {rec}");
    assert!(rec["history_error"].as_str().is_some(), "{rec}");
    ran.push(("down".into(), 40));

    // A command that times out while it is down is answered at once; its interrupt runs after,
    // and how the shell came out of it waits in the spool behind the row.
    let r = d.unix(
        "POST",
        "/api/v1/pods/k8s/exec",
        Some(&json!({"command": "echo slow-while-down; sleep 30", "timeout": 1}).to_string()),
    );
    assert_eq!(r.status, 504, "{}", r.body);
    let rec = &r.json()["record"];
    assert!(
        rec["error"].as_str().unwrap().contains("interrupting"),
        "{rec}"
    );
    // The pod's next command runs once the interrupt is done.
    let r = exec(&d, Via::Unix, "k8s", &command("after-timeout", 5));
    assert_eq!(r.status, 200, "{}", r.body);
    ran.push(("after-timeout".into(), 5));

    // The command in flight answers with its result, though its row could not be completed.
    let r = in_flight.join().unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    let rec = r.json();
    assert_eq!(rec["stdout"], expected_stdout("inflight", 50));
    let inflight_id = rec["id"].as_i64().unwrap();
    assert!(inflight_id > 0, "its start was committed: {rec}");
    assert!(rec["history_error"].as_str().is_some(), "{rec}");
    ran.push(("inflight".into(), 50));
    assert!(health(&d)["database"]["spool_pending"].as_u64().unwrap() >= 3);

    // The server comes back: the rows are completed from the spool, with no daemon restart.
    pg.start_again();
    wait_recovered(&d);
    assert_history_complete(&d, &ran);
    let row = d
        .unix("GET", &format!("/api/v1/commands/{inflight_id}"), None)
        .json();
    assert_eq!(row["status"], "succeeded", "{row}");
    assert_eq!(row["stdout"], expected_stdout("inflight", 50));
    let pods = d.unix("GET", "/api/v1/pods", None);
    assert_eq!(pods.status, 200, "{}", pods.body);
    let log = d.log();
    assert!(log.contains("history spool replayed"), "{}", tail(&log));
    let timed_out = d
        .unix("GET", "/api/v1/commands?status=timeout", None)
        .json();
    let row = &timed_out["items"][0];
    assert_eq!(
        row["command"], "echo slow-while-down; sleep 30",
        "{timed_out}"
    );
    let full = d
        .unix("GET", &format!("/api/v1/commands/{}", row["id"]), None)
        .json();
    assert!(
        full["error"]
            .as_str()
            .unwrap()
            .ends_with("the command was interrupted and the shell kept"),
        "the spool lost how the interrupt ended: {full}"
    );
}

#[test]
fn a_spool_in_use_refuses_a_second_daemon() {
    let first = Daemon::start(daemon_opts());
    let failure = Daemon::try_start(DaemonOptions {
        env: vec![(
            "PODWRANGLER_SPOOL_PATH".into(),
            first.state_dir.join("history.spool").display().to_string(),
        )],
        ..daemon_opts()
    })
    .err()
    .expect("two daemons must not share a spool");
    assert!(
        failure.log.contains("another podwranglerd uses"),
        "{}",
        failure.log
    );
    assert_eq!(health(&first)["status"], "ok");
}
