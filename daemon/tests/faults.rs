//! Faults: connections dropped mid-command and between commands, pods refusing connections, a
//! daemon killed with SIGKILL during a fan-out, and a database that cannot be opened.

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;

/// Fast keepalive and backoff so drops are noticed quickly in tests.
const FAST: &str = "keepalive_secs = 1.0\nreconnect_base_ms = 100\n";

fn fast_daemon() -> Daemon {
    Daemon::start(DaemonOptions {
        config_toml: Some(FAST.into()),
        ..daemon_opts()
    })
}

fn state_of(d: &Daemon, alias: &str) -> serde_json::Value {
    d.unix("GET", &format!("/api/v1/pods/{alias}"), None).json()["state"].clone()
}

#[test]
fn drop_mid_command_is_a_clear_error_then_the_pod_reconnects() {
    let sim = podsim(2);
    let d = fast_daemon();
    register(&d, Via::Unix, &plaintty_body(&sim, "tty", 0, &[]));
    register(&d, Via::Unix, &kubernetes_body(&sim, "k8s", 1, &[]));
    wait_ready(&d, 2);
    for (alias, pod) in [("tty", 0usize), ("k8s", 1)] {
        let name = sim.info.pods[pod].name.clone();
        let before = sim.stats(&name)["connections_total"].as_u64().unwrap();
        let handle = {
            let socket = d.socket.clone();
            let alias = alias.to_owned();
            std::thread::spawn(move || {
                let s = std::os::unix::net::UnixStream::connect(socket).unwrap();
                let body = json!({"command": "echo begun; sleep 20; echo never", "timeout": 60})
                    .to_string();
                testkit::daemon::request(
                    s,
                    "x",
                    "POST",
                    &format!("/api/v1/pods/{alias}/exec"),
                    &[],
                    Some(body.as_bytes()),
                )
                .unwrap()
            })
        };
        assert!(
            wait_until(Duration::from_secs(30), || state_of(&d, alias)["state"]
                == "busy"),
            "{alias} never became busy"
        );
        std::thread::sleep(Duration::from_millis(300));
        sim.admin(&name, r#"{"drop_now":true}"#);
        let r = handle.join().unwrap();
        assert_eq!(r.status, 502, "{alias}: {}", r.body);
        let p = r.json();
        assert_eq!(p["code"], "pod_connection", "{p}");
        assert!(p["detail"].as_str().unwrap().contains("lost"), "{p}");
        assert_eq!(p["record"]["status"], "error");
        assert!(
            p["record"]["stdout"].as_str().unwrap().contains("begun"),
            "partial output kept: {p}"
        );
        // The pod reconnects by itself and runs the next command.
        let rec = exec_ok(&d, Via::Unix, alias, "echo back");
        assert_eq!(rec["stdout"], "back\n");
        let after = sim.stats(&name)["connections_total"].as_u64().unwrap();
        assert!(
            after > before,
            "{alias}: no new connection ({before} -> {after})"
        );
    }
    let history = all_history(&d);
    assert_eq!(history.len(), 4, "{history:?}");
    assert!(history.iter().all(|r| r["status"] != "running"));
    assert_eq!(history.iter().filter(|r| r["status"] == "error").count(), 2);
}

#[test]
fn drop_between_commands_reconnects_without_losing_the_next_command() {
    let sim = podsim(1);
    let d = fast_daemon();
    let name = sim.info.pods[0].name.clone();
    register(&d, Via::Unix, &plaintty_body(&sim, "p", 0, &[]));
    wait_ready(&d, 1);
    exec_ok(&d, Via::Unix, "p", "true");
    sim.admin(&name, r#"{"drop_now":true}"#);
    // The keepalive notices the drop and the actor reconnects on its own.
    assert!(
        wait_until(Duration::from_secs(60), || {
            sim.stats(&name)["connections_total"].as_u64() == Some(2)
                && state_of(&d, "p")["state"] == "ready"
        }),
        "no reconnect: {} / {}",
        sim.stats(&name),
        state_of(&d, "p")
    );
    let rec = exec_ok(&d, Via::Unix, "p", "echo $POD_NAME");
    assert_eq!(rec["stdout"], format!("{name}\n"));
    // A drop right before a command: the command still runs, on a fresh connection.
    sim.admin(&name, r#"{"drop_now":true}"#);
    assert!(wait_until(
        Duration::from_secs(10),
        || sim.stats(&name)["connections_live"] == 0
    ));
    // Nothing of it had been sent, so it runs on a new connection, and says the shell is new.
    let rec = exec_ok(&d, Via::Unix, "p", "echo again");
    assert_eq!(rec["stdout"], "again\n");
    assert_eq!(rec["session_restarted"], true, "{rec}");
    let history = all_history(&d);
    assert!(history.iter().all(|r| r["status"] != "running"));
}

#[test]
fn refused_connections_back_off_then_recover() {
    let sim = podsim(1);
    let name = sim.info.pods[0].name.clone();
    sim.admin(&name, r#"{"refuse":true}"#);
    let d = fast_daemon();
    register(&d, Via::Unix, &plaintty_body(&sim, "p", 0, &[]));
    assert!(
        wait_until(Duration::from_secs(30), || {
            let st = state_of(&d, "p");
            (st["state"] == "backing_off" || st["state"] == "failed")
                && st["last_error"].as_str().is_some_and(|e| !e.is_empty())
        }),
        "{}",
        state_of(&d, "p")
    );
    let r = exec(&d, Via::Unix, "p", "true");
    assert_eq!(r.status, 502, "{}", r.body);
    let p = r.json();
    assert_eq!(p["code"], "pod_connection");
    assert_eq!(p["record"]["status"], "error");
    assert_no_token("connection error", &r.body);
    sim.clear_faults(&name);
    let rec = exec_ok(&d, Via::Unix, "p", "echo ok");
    assert_eq!(rec["stdout"], "ok\n");
}

#[test]
fn sigkill_during_fan_out_leaves_every_command_finished_or_interrupted() {
    let sim = podsim(20);
    let mut d = start_daemon();
    for i in 0..20 {
        let body = if i % 2 == 0 {
            plaintty_body(&sim, &format!("p{i}"), i, &["all"])
        } else {
            kubernetes_body(&sim, &format!("p{i}"), i, &["all"])
        };
        register(&d, Via::Unix, &body);
    }
    wait_ready(&d, 20);
    // Half the pods finish quickly, half are still sleeping when the daemon dies.
    let socket = d.socket.clone();
    let fan = std::thread::spawn(move || {
        let s = std::os::unix::net::UnixStream::connect(socket).unwrap();
        let body = json!({"command": "case $POD_NAME in *[02468]) true;; *) sleep 30;; esac", "tag": "all"}).to_string();
        testkit::daemon::request(
            s,
            "x",
            "POST",
            "/api/v1/exec",
            &[("Accept", "application/x-ndjson")],
            Some(body.as_bytes()),
        )
    });
    // Both halves settle: a quick command's row may still say running for a moment, while a
    // slow one has not started yet.
    let count = |status: &str| {
        d.unix(
            "GET",
            &format!("/api/v1/commands?status={status}&limit=1000"),
            None,
        )
        .json()["items"]
            .as_array()
            .unwrap()
            .len()
    };
    assert!(
        wait_until(Duration::from_secs(60), || count("running") == 10
            && count("succeeded") == 10),
        "the fan-out never settled into 10 running and 10 succeeded: {} and {}",
        count("running"),
        count("succeeded")
    );
    let _keep = d.keep_state_dir();
    let dir = d.state_dir.clone();
    d.kill9();
    let _ = fan.join();
    let d2 = Daemon::start(DaemonOptions {
        state_dir: Some(dir),
        ..daemon_opts()
    });
    assert!(d2.log().contains("interrupted"), "{}", d2.log());
    let history = all_history(&d2);
    assert_eq!(history.len(), 20);
    let interrupted = history
        .iter()
        .filter(|r| r["status"] == "interrupted")
        .count();
    let succeeded = history
        .iter()
        .filter(|r| r["status"] == "succeeded")
        .count();
    assert_eq!((succeeded, interrupted), (10, 10), "{history:?}");
    assert!(
        history
            .iter()
            .filter(|r| r["status"] == "interrupted")
            .all(|r| r["error"]
                .as_str()
                .is_some_and(|e| e.contains("interrupted"))),
        "{history:?}"
    );
    drop(d2);
}

#[test]
fn a_database_that_cannot_be_opened_is_a_clear_error_at_start() {
    let blocker = testkit::TempDirGuard::new("pwd-db");
    // A path below a regular file can never be created.
    let file = blocker.path().join("file");
    std::fs::write(&file, "x").unwrap();
    let bad = file.join("sub").join("pw.db");
    let f = Daemon::try_start(DaemonOptions {
        database_url: Some(bad.display().to_string()),
        ..daemon_opts()
    })
    .err()
    .expect("the daemon must not start");
    assert!(f.status.is_some_and(|s| !s.success()), "{f:?}");
    assert!(f.log.contains("cannot open the database"), "{}", f.log);
    assert!(f.log.contains("pw.db"), "{}", f.log);

    let f = Daemon::try_start(DaemonOptions {
        database_url: Some("postgres://podwrangler:hunter2pw@127.0.0.1:1/podwrangler".into()),
        ..daemon_opts()
    })
    .err()
    .expect("the daemon must not start");
    assert!(f.log.contains("cannot open the database"), "{}", f.log);
    assert!(
        !f.log.contains("hunter2pw"),
        "database password leaked: {}",
        f.log
    );
}

/// `exit N` (and `kill -9 $$`) end the shell: a finished command with its exit code and output,
/// status `failed`, flagged `session_restarted`; the next command runs in a fresh shell and says
/// so. Never a 502. Both providers.
#[test]
fn a_command_that_ends_the_shell_is_a_finished_command() {
    let sim = podsim(2);
    let d = fast_daemon();
    register(&d, Via::Unix, &plaintty_body(&sim, "tty", 0, &[]));
    register(&d, Via::Unix, &kubernetes_body(&sim, "k8s", 1, &[]));
    wait_ready(&d, 2);
    for alias in ["tty", "k8s"] {
        exec_ok(&d, Via::Unix, alias, "export KEPT=yes; cd /tmp");
        let r = exec(&d, Via::Unix, alias, "echo hi; exit 7");
        assert_eq!(r.status, 200, "{alias}: {}", r.body);
        let rec = r.json();
        assert_eq!(rec["status"], "failed", "{rec}");
        assert_eq!(rec["exit_code"], 7, "{rec}");
        assert_eq!(
            rec["stdout"], "hi\n",
            "{alias}: the shell's echo of exit is not output"
        );
        assert_eq!(rec["session_restarted"], true, "{rec}");
        let next = exec_ok(&d, Via::Unix, alias, "echo ${KEPT:-lost} $(pwd)");
        assert!(
            next["stdout"].as_str().unwrap().starts_with("lost "),
            "{next}"
        );
        assert_eq!(next["session_restarted"], true, "{next}");
        let steady = exec_ok(&d, Via::Unix, alias, "true");
        assert_eq!(steady["session_restarted"], false, "{steady}");
        let r = exec(&d, Via::Unix, alias, "kill -9 $$");
        assert_eq!(r.status, 200, "{alias}: {}", r.body);
        assert_eq!(r.json()["exit_code"], 137, "{}", r.body);
        exec_ok(&d, Via::Unix, alias, "true");
    }
    let stored = all_history(&d);
    let exited: Vec<_> = stored
        .iter()
        .filter(|r| r["command"] == "echo hi; exit 7")
        .collect();
    assert_eq!(exited.len(), 2);
    assert!(
        exited
            .iter()
            .all(|r| r["session_restarted"] == true && r["exit_code"] == 7)
    );
}

/// podsim with an idle timeout that counts data frames only, as the kubelet's does: pings
/// alone do not keep a session, the daemon's idle keepalive (an empty line) does, so `export`
/// state survives a long quiet spell on the same connection.
#[test]
fn an_idle_session_outlives_a_data_idle_timeout() {
    let sim = Podsim::start_with(PodsimOptions {
        pods: 2,
        token: Some(POD_TOKEN.into()),
        extra_args: vec!["--idle-timeout".into(), "4".into()],
        ..Default::default()
    });
    let start = |idle_keepalive: &str| {
        Daemon::start(DaemonOptions {
            config_toml: Some(format!(
                "keepalive_secs = 1.0\nidle_keepalive_secs = {idle_keepalive}\nreconnect_base_ms = 100\n"
            )),
            ..daemon_opts()
        })
    };
    let with = start("1.0");
    register(&with, Via::Unix, &kubernetes_body(&sim, "kept", 0, &[]));
    let without = start("0.0");
    register(&without, Via::Unix, &kubernetes_body(&sim, "lost", 1, &[]));
    wait_ready(&with, 1);
    wait_ready(&without, 1);
    exec_ok(&with, Via::Unix, "kept", "export KEPT=yes");
    exec_ok(&without, Via::Unix, "lost", "export KEPT=yes");
    let total = |i: usize| sim.stats(&sim.info.pods[i].name)["connections_total"].as_u64();
    let (kept_before, lost_before) = (total(0), total(1));
    std::thread::sleep(Duration::from_secs(10));

    let rec = exec_ok(&with, Via::Unix, "kept", "echo ${KEPT:-gone}");
    assert_eq!(rec["stdout"], "yes\n", "{rec}\n{}", with.log());
    assert_eq!(rec["session_restarted"], false, "{rec}");
    assert_eq!(total(0), kept_before, "the kept session was reconnected");

    // Without data keepalives podsim closed the session; the daemon reconnects and says so.
    let rec = exec_ok(&without, Via::Unix, "lost", "echo ${KEPT:-gone}");
    assert_eq!(rec["stdout"], "gone\n", "{rec}");
    assert_eq!(rec["session_restarted"], true, "{rec}");
    assert!(total(1) > lost_before);
}

/// A timeout interrupts the command and keeps the shell on both providers (Kubernetes without
/// a TTY too: a second exec signals the command), so `cd`/`export` state survives it.
#[test]
fn a_timeout_keeps_the_shell_and_its_state() {
    let sim = podsim(2);
    let d = fast_daemon();
    register(&d, Via::Unix, &plaintty_body(&sim, "tty", 0, &[]));
    register(&d, Via::Unix, &kubernetes_body(&sim, "k8s", 1, &[]));
    wait_ready(&d, 2);
    for alias in ["tty", "k8s"] {
        exec_ok(&d, Via::Unix, alias, "export KEPT=yes; cd /tmp");
        let r = call(
            &d,
            Via::Unix,
            "POST",
            &format!("/api/v1/pods/{alias}/exec"),
            Some(&json!({"command": "echo before; sleep 30", "timeout": 1})),
        );
        assert_eq!(r.status, 504, "{alias}: {}", r.body);
        let rec = &r.json()["record"];
        assert_eq!(rec["status"], "timeout", "{rec}");
        assert!(
            rec["stdout"].as_str().unwrap().starts_with("before"),
            "{rec}"
        );
        // The answer comes before the interrupt; history learns how the shell came out of it.
        assert!(
            rec["error"].as_str().unwrap().contains("interrupting"),
            "{rec}"
        );
        let next = exec_ok(&d, Via::Unix, alias, "echo ${KEPT:-lost} $(pwd)");
        assert_eq!(next["stdout"], "yes /tmp\n", "{alias}: {next}");
        assert_eq!(next["session_restarted"], false, "{next}");
        let id = rec["id"].as_i64().unwrap();
        let stored = d
            .unix("GET", &format!("/api/v1/commands/{id}"), None)
            .json();
        assert!(
            stored["error"].as_str().unwrap().contains("shell kept"),
            "{stored}"
        );
    }
}

/// A stalled pod (its output held back) and a timeout of 2 s: the caller's answer comes at the
/// timeout plus a small constant, not after the interrupt, resync or reconnect, which go on in
/// the background; the pod's next command waits for them and runs correctly. Both providers.
#[test]
fn a_timeout_bounds_the_callers_wait_on_a_stalled_pod() {
    let sim = podsim(2);
    let d = fast_daemon();
    register(&d, Via::Unix, &plaintty_body(&sim, "tty", 0, &[]));
    register(&d, Via::Unix, &kubernetes_body(&sim, "k8s", 1, &[]));
    wait_ready(&d, 2);
    for (alias, pod) in [("tty", 0usize), ("k8s", 1)] {
        let name = sim.info.pods[pod].name.clone();
        exec_ok(&d, Via::Unix, alias, "true");
        sim.admin(&name, r#"{"stall":true}"#);
        let t0 = std::time::Instant::now();
        let r = call(
            &d,
            Via::Unix,
            "POST",
            &format!("/api/v1/pods/{alias}/exec"),
            Some(&json!({"command": "echo stalled", "timeout": 2})),
        );
        let waited = t0.elapsed();
        sim.clear_faults(&name);
        assert_eq!(r.status, 504, "{alias}: {}", r.body);
        // The one timed assertion: timeout 2 s, answer well under 5 s.
        assert!(
            waited < Duration::from_secs(5),
            "{alias}: answered after {waited:?}"
        );
        let rec = &r.json()["record"];
        assert_eq!(rec["status"], "timeout", "{rec}");
        let duration = rec["duration_ms"].as_f64().unwrap();
        assert!(duration >= 2000.0, "{alias}: duration_ms {duration}");
        assert!(
            rec["error"].as_str().unwrap().contains("interrupting"),
            "{rec}"
        );
        let next = exec_ok(&d, Via::Unix, alias, "echo next $((6*7))");
        assert_eq!(next["stdout"], "next 42\n", "{alias}: {next}");
        // Once the interrupt has ended, the record says how the shell came out of it.
        let id = rec["id"].as_i64().unwrap();
        let stored = d
            .unix("GET", &format!("/api/v1/commands/{id}"), None)
            .json();
        let error = stored["error"].as_str().unwrap().to_owned();
        assert!(
            !error.contains("interrupting")
                && (error.contains("shell kept") || error.contains("cd/export state is lost")),
            "{alias}: {stored}"
        );
        assert_eq!(stored["duration_ms"], rec["duration_ms"], "{stored}");
    }
}

/// Connection attempts are bounded daemon-wide: with two slots, never more than two pods are
/// connecting at once; the others wait in state `waiting`, and all of them get connected.
#[test]
fn connection_attempts_are_bounded() {
    let sim = podsim(12);
    for pod in &sim.info.pods {
        sim.admin(&pod.name, r#"{"latency_ms":150}"#);
    }
    let d = Daemon::start(DaemonOptions {
        config_toml: Some("max_concurrent_connects = 2\n".into()),
        ..daemon_opts()
    });
    for i in 0..12 {
        register(
            &d,
            Via::Unix,
            &kubernetes_body(&sim, &format!("p{i}"), i, &[]),
        );
    }
    let (mut most_connecting, mut saw_waiting) = (0, false);
    let all_ready = wait_until(Duration::from_secs(120), || {
        let pods = d.unix("GET", "/health", None).json()["pods"].clone();
        let count = |s: &str| pods[s].as_u64().unwrap_or(0);
        most_connecting = most_connecting.max(count("connecting"));
        saw_waiting |= count("waiting") > 0;
        count("ready") == 12
    });
    assert!(all_ready, "{}", d.unix("GET", "/health", None).body);
    assert!(
        most_connecting <= 2,
        "{most_connecting} pods were connecting at once"
    );
    assert!(saw_waiting, "no pod ever waited for a slot");
}
