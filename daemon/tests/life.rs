//! Daemon life: SIGTERM drains (in-flight commands finish, the rest become `interrupted`),
//! sd_notify readiness, systemd socket activation, SIGHUP reload, `--check-config`, a full
//! queue answering busy, and the OpenAPI document and docs page.

mod common;

use std::os::unix::net::UnixDatagram;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use serde_json::json;

fn exec_in_thread(d: &Daemon, alias: &str, command: &str) -> std::thread::JoinHandle<Response> {
    let socket = d.socket.clone();
    let path = format!("/api/v1/pods/{alias}/exec");
    let body = json!({ "command": command, "timeout": 120 }).to_string();
    std::thread::spawn(move || {
        let s = std::os::unix::net::UnixStream::connect(socket).unwrap();
        testkit::daemon::request(s, "x", "POST", &path, &[], Some(body.as_bytes())).unwrap()
    })
}

fn wait_busy(d: &Daemon, alias: &str) {
    assert!(
        wait_until(Duration::from_secs(30), || {
            d.unix("GET", &format!("/api/v1/pods/{alias}"), None).json()["state"]["state"] == "busy"
        }),
        "{alias} never became busy"
    );
}

#[test]
fn sigterm_lets_in_flight_commands_finish_then_exits_zero() {
    let sim = podsim(1);
    let mut d = start_daemon();
    register(&d, Via::Unix, &plaintty_body(&sim, "p", 0, &[]));
    wait_ready(&d, 1);
    let running = exec_in_thread(&d, "p", "sleep 2; echo finished");
    wait_busy(&d, "p");
    let socket = d.socket.clone();
    let status = d
        .terminate(Duration::from_secs(60))
        .expect("daemon did not exit");
    assert!(status.success(), "exit status {status:?}");
    let r = running.join().unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["stdout"], "finished\n");
    assert!(!socket.exists(), "socket file left behind");
    assert!(d.log().contains("SIGTERM: draining"));
}

#[test]
fn sigterm_marks_commands_past_the_grace_period_interrupted() {
    let sim = podsim(1);
    let mut d = Daemon::start(DaemonOptions {
        extra_args: vec!["--grace-period".into(), "1".into()],
        ..daemon_opts()
    });
    register(&d, Via::Unix, &kubernetes_body(&sim, "k", 0, &[]));
    wait_ready(&d, 1);
    let running = exec_in_thread(&d, "k", "sleep 60");
    wait_busy(&d, "k");
    let _keep = d.keep_state_dir();
    let dir = d.state_dir.clone();
    let t = Instant::now();
    let status = d
        .terminate(Duration::from_secs(60))
        .expect("daemon did not exit");
    assert!(status.success(), "exit status {status:?}");
    assert!(
        t.elapsed() < Duration::from_secs(30),
        "drain took {:?}",
        t.elapsed()
    );
    let _ = running.join();
    assert!(
        d.log().contains("marked unfinished commands interrupted"),
        "{}",
        d.log()
    );
    // The next daemon finds the row already interrupted (not left running).
    let d2 = Daemon::start(DaemonOptions {
        state_dir: Some(dir),
        ..daemon_opts()
    });
    assert!(!d2.log().contains("left running"), "{}", d2.log());
    let history = all_history(&d2);
    assert_eq!(history.len(), 1);
    assert_eq!(history[0]["status"], "interrupted", "{:?}", history[0]);
}

#[test]
fn notifies_systemd_when_ready() {
    let dir = testkit::TempDirGuard::new("pwd-notify");
    let path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let mut d = Daemon::start(DaemonOptions {
        env: vec![("NOTIFY_SOCKET".into(), path.display().to_string())],
        ..daemon_opts()
    });
    let mut buf = [0u8; 256];
    let n = sock.recv(&mut buf).expect("no sd_notify message");
    assert!(String::from_utf8_lossy(&buf[..n]).contains("READY=1"));
    assert_eq!(d.unix("GET", "/health", None).status, 200);
    d.signal("TERM");
    let n = sock.recv(&mut buf).expect("no STOPPING message");
    assert!(String::from_utf8_lossy(&buf[..n]).contains("STOPPING=1"));
    assert!(
        d.terminate(Duration::from_secs(30))
            .is_none_or(|s| s.success())
    );
}

#[test]
fn uses_the_socket_systemd_passes() {
    let dir = testkit::TempDirGuard::new("pwd-activate");
    let activated = dir.path().join("activated.sock");
    // systemd-socket-activate listens, then starts the daemon with LISTEN_FDS on the first
    // connection.
    let wrapper = dir.path().join("wrapper.sh");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nexec systemd-socket-activate -l {} {} \"$@\"\n",
            activated.display(),
            env!("CARGO_BIN_EXE_podwranglerd")
        ),
    )
    .unwrap();
    Command::new("chmod")
        .arg("+x")
        .arg(&wrapper)
        .status()
        .unwrap();
    let client = {
        let activated = activated.clone();
        std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                if let Ok(s) = std::os::unix::net::UnixStream::connect(&activated) {
                    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
                    return testkit::daemon::request(s, "x", "GET", "/health", &[], None).unwrap();
                }
                assert!(
                    Instant::now() < deadline,
                    "activation socket never appeared"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        })
    };
    let d = Daemon::start(DaemonOptions {
        bin: wrapper,
        tcp: false,
        ..daemon_opts()
    });
    let r = client.join().unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(d.ready.socket.as_deref(), Some(activated.to_str().unwrap()));
    assert!(!d.socket.exists(), "the daemon bound its own socket too");
    assert!(d.log().contains("activated=true"), "{}", d.log());
}

#[test]
fn sighup_reloads_pods_from_the_config_file() {
    let sim = podsim(2);
    let mut d = Daemon::start(DaemonOptions {
        config_toml: Some("log_level = \"info\"\n".into()),
        ..daemon_opts()
    });
    assert_eq!(d.unix("GET", "/api/v1/pods/", None).json(), json!([]));
    let config = format!(
        "log_level = \"debug\"\n[[pods]]\nalias = \"from-config\"\nprovider = \"plaintty\"\nurl = \"{}\"\ntags = [\"cfg\"]\n",
        sim.info.pods[0].plaintty_url
    );
    std::fs::write(d.state_dir.join("config.toml"), config).unwrap();
    d.signal("HUP");
    assert!(
        wait_until(Duration::from_secs(30), || {
            d.unix("GET", "/api/v1/pods/from-config", None).status == 200
        }),
        "{}",
        d.log()
    );
    let rec = exec_ok(&d, Via::Unix, "from-config", "echo $POD_NAME");
    assert_eq!(rec["stdout"], format!("{}\n", sim.info.pods[0].name));
    // Changing the pod's URL in the file and reloading again reconnects it elsewhere.
    let config = format!(
        "[[pods]]\nalias = \"from-config\"\nprovider = \"plaintty\"\nurl = \"{}\"\ntags = [\"cfg\"]\n",
        sim.info.pods[1].plaintty_url
    );
    std::fs::write(d.state_dir.join("config.toml"), config).unwrap();
    d.signal("HUP");
    assert!(wait_until(Duration::from_secs(30), || {
        d.unix("GET", "/api/v1/pods/from-config", None).json()["identity"]["pod_name"]
            == sim.info.pods[1].name.as_str()
    }));
    let rec = exec_ok(&d, Via::Unix, "from-config", "echo $POD_NAME");
    assert_eq!(rec["stdout"], format!("{}\n", sim.info.pods[1].name));
    // A broken file is reported and changes nothing.
    std::fs::write(d.state_dir.join("config.toml"), "bogus_key = 1\n").unwrap();
    d.signal("HUP");
    assert!(wait_until(Duration::from_secs(30), || d
        .log()
        .contains("configuration not reloaded")));
    assert!(d.is_running());
    assert_no_token("daemon log", &d.log());
}

#[test]
fn check_config_validates_and_exits() {
    let dir = testkit::TempDirGuard::new("pwd-check");
    let good = dir.path().join("good.toml");
    std::fs::write(
        &good,
        "database_url = \"/tmp/x.db\"\nlisten = \"127.0.0.1:8123\"\napi_key = \"abc\"\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_podwranglerd"))
        .args(["--user", "--check-config", "--config"])
        .arg(&good)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("configuration OK") && err.contains("127.0.0.1:8123"),
        "{err}"
    );
    assert!(
        !err.contains("abc\n") && err.contains("api keys: 1"),
        "{err}"
    );
    assert!(out.stdout.is_empty(), "prints nothing on stdout");

    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "listen = \"127.0.0.1:8123\"\nfanout_concurency = 3\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_podwranglerd"))
        .args(["--user", "--check-config", "--config"])
        .arg(&bad)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("fanout_concurency"), "{err}");

    let out = Command::new(env!("CARGO_BIN_EXE_podwranglerd"))
        .args([
            "--user",
            "--check-config",
            "--listen",
            "0.0.0.0:80",
            "--config",
        ])
        .arg(dir.path().join("missing.toml"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.toml"));
}

#[test]
fn a_full_queue_answers_busy() {
    let sim = podsim(1);
    let d = Daemon::start(DaemonOptions {
        config_toml: Some("queue_capacity = 1\n".into()),
        ..daemon_opts()
    });
    register(&d, Via::Unix, &plaintty_body(&sim, "p", 0, &[]));
    wait_ready(&d, 1);
    let running = exec_in_thread(&d, "p", "sleep 2; echo first");
    wait_busy(&d, "p");
    let r = exec(&d, Via::Unix, "p", "echo second");
    assert_eq!(r.status, 429, "{}", r.body);
    assert_eq!(r.json()["code"], "pod_busy");
    assert!(r.header("retry-after").is_some());
    assert_eq!(running.join().unwrap().json()["stdout"], "first\n");
    exec_ok(&d, Via::Unix, "p", "echo third");
    // The rejected command never ran, so it is not in history.
    let commands: Vec<String> = all_history(&d)
        .iter()
        .map(|r| r["command"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        commands,
        vec!["echo third".to_owned(), "sleep 2; echo first".to_owned()]
    );
}

#[test]
fn serves_the_openapi_document_and_docs_page() {
    let d = Daemon::start(DaemonOptions {
        api_key: Some("k".into()),
        ..daemon_opts()
    });
    let doc = d.unix("GET", "/api/v1/openapi.json", None);
    assert_eq!(doc.status, 200);
    let doc = doc.json();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_object().unwrap();
    // Every documented operation is served (not a 404 or 405).
    for (path, item) in paths {
        for method in item.as_object().unwrap().keys() {
            let concrete = path.replace("{alias}", "nobody").replace("{id}", "1");
            let body = matches!(method.as_str(), "post" | "patch").then_some("{}");
            let r = d.unix(&method.to_uppercase(), &concrete, body);
            assert!(
                r.status != 405 && !(r.status == 404 && r.json()["code"] == "not_found"),
                "{method} {path}: {}",
                r.body
            );
        }
    }
    assert!(paths.contains_key("/api/v1/pods/{alias}/exec"));
    assert!(doc["components"]["securitySchemes"]["api_key"].is_object());
    let page = d.unix("GET", "/docs", None);
    assert_eq!(page.status, 200);
    assert!(
        page.header("content-type")
            .unwrap()
            .starts_with("text/html")
    );
    assert!(page.body.contains("/api/v1/openapi.json"));
    assert!(
        !page.body.contains("https://"),
        "the docs page must not load anything remote"
    );
}

#[test]
fn a_stale_socket_is_replaced_and_a_live_one_is_not_stolen() {
    let dir = testkit::TempDirGuard::new("pwd-stale");
    let socket = dir.path().join("run").join("podwranglerd.sock");
    std::fs::create_dir_all(socket.parent().unwrap()).unwrap();
    drop(std::os::unix::net::UnixListener::bind(&socket).unwrap());
    assert!(socket.exists(), "stale socket file");
    let d = Daemon::start(DaemonOptions {
        state_dir: Some(dir.path().to_path_buf()),
        ..daemon_opts()
    });
    assert_eq!(d.unix("GET", "/health", None).status, 200);
    use std::os::unix::fs::PermissionsExt;
    // User mode: the user's own socket (system mode gives its socket group 0660).
    let mode = std::fs::metadata(&socket).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    // A history spool of its own: the first daemon holds the shared one locked, which would
    // refuse the second before it reaches the socket.
    let second = Daemon::try_start(DaemonOptions {
        state_dir: Some(dir.path().to_path_buf()),
        env: vec![(
            "PODWRANGLER_SPOOL_PATH".into(),
            dir.path().join("second.spool").display().to_string(),
        )],
        ..daemon_opts()
    })
    .err()
    .expect("a second daemon must not take the socket");
    assert!(
        second.log.contains("another daemon is listening"),
        "{}",
        second.log
    );
    assert_eq!(d.unix("GET", "/health", None).status, 200);
}
