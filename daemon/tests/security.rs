//! Security: the API key on TCP (and not on the socket), refusing TCP without a key, and pod
//! tokens never shown in responses, logs or history.

mod common;

use common::*;
use serde_json::json;

#[test]
fn tcp_needs_the_key_and_the_socket_does_not() {
    let d = Daemon::start(DaemonOptions {
        api_key: Some("right-key-123".into()),
        ..daemon_opts()
    });
    let none = d.tcp_with("GET", "/api/v1/pods/", &[], None);
    assert_eq!(none.status, 401, "{}", none.body);
    assert_eq!(none.json()["code"], "unauthorized");
    assert_eq!(none.header("www-authenticate"), Some("Bearer"));
    let wrong = d.tcp_with(
        "GET",
        "/api/v1/pods/",
        &[("Authorization", "Bearer wrong-key-123")],
        None,
    );
    assert_eq!(wrong.status, 401);
    let prefix = d.tcp_with(
        "GET",
        "/api/v1/pods/",
        &[("Authorization", "Bearer right-key-12")],
        None,
    );
    assert_eq!(prefix.status, 401);
    let basic = d.tcp_with(
        "GET",
        "/api/v1/pods/",
        &[("Authorization", "Basic right-key-123")],
        None,
    );
    assert_eq!(basic.status, 401);
    // Nothing is written through an unauthorized request.
    let post = d.tcp_with(
        "POST",
        "/api/v1/pods/",
        &[],
        Some(r#"{"alias":"x","provider":"plaintty","url":"ws://127.0.0.1:1/exec/a/?pod=p"}"#),
    );
    assert_eq!(post.status, 401);
    assert_eq!(d.unix("GET", "/api/v1/pods/", None).json(), json!([]));

    let ok = d.tcp_with(
        "GET",
        "/api/v1/pods/",
        &[("Authorization", "Bearer right-key-123")],
        None,
    );
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert_eq!(d.unix("GET", "/api/v1/pods/", None).status, 200);
    // Health stays open for probes.
    assert_eq!(d.tcp_with("GET", "/health", &[], None).status, 200);
    assert!(!d.log().contains("right-key-123"), "API key in the log");
}

#[test]
fn tcp_without_a_key_is_refused() {
    for listen in ["0.0.0.0:0", "127.0.0.1:0"] {
        let f = Daemon::try_start(DaemonOptions {
            listen: Some(listen.into()),
            tcp_without_key: true,
            ..daemon_opts()
        })
        .err()
        .expect("must refuse");
        assert!(f.status.is_some_and(|s| !s.success()));
        assert!(f.log.contains("without an API key"), "{}", f.log);
    }
    // With a key it starts.
    let d = Daemon::start(DaemonOptions {
        listen: Some("0.0.0.0:0".into()),
        api_key: Some("k-for-any".into()),
        ..daemon_opts()
    });
    assert!(d.tcp_addr().starts_with("0.0.0.0:"));
    let port = d.tcp_addr().rsplit(':').next().unwrap().to_owned();
    let s = std::net::TcpStream::connect(format!("127.0.0.1:{port}")).unwrap();
    let r = testkit::daemon::request(s, "x", "GET", "/api/v1/pods/", &[], None).unwrap();
    assert_eq!(r.status, 401);
}

#[test]
fn pod_tokens_never_leave_the_daemon() {
    let sim = podsim(2);
    let d = Daemon::start(DaemonOptions {
        api_key: Some("k".into()),
        log_level: Some("trace".into()),
        ..daemon_opts()
    });
    let a = register(&d, Via::Unix, &plaintty_body(&sim, "a", 0, &[]));
    let b = register(&d, Via::Tcp, &kubernetes_body(&sim, "b", 1, &[]));
    assert_no_token("register response", &a.to_string());
    assert_no_token("register response", &b.to_string());
    wait_ready(&d, 2);
    // Commands that mention the URL: still only redacted forms in answers.
    exec_ok(&d, Via::Unix, "a", "echo hello");
    exec_ok(&d, Via::Tcp, "b", "echo hello");
    let r = call(
        &d,
        Via::Unix,
        "PATCH",
        "/api/v1/pods/a",
        Some(&json!({"url": sim.info.pods[1].plaintty_url})),
    );
    assert_eq!(r.status, 200);
    assert_no_token("update response", &r.body);
    // A bad URL carrying the token: the error shows it redacted.
    let bad = format!("wss://[bad/exec/x/?token={POD_TOKEN}&pod=p");
    let r = call(
        &d,
        Via::Unix,
        "POST",
        "/api/v1/pods/",
        Some(&json!({"alias": "c", "provider": "plaintty", "url": bad})),
    );
    assert_eq!(r.status, 422, "{}", r.body);
    assert_no_token("validation error", &r.body);
    // A pod that refuses: connection errors are redacted too.
    sim.admin(&sim.info.pods[0].name, r#"{"refuse":true}"#);
    sim.admin(&sim.info.pods[1].name, r#"{"drop_now":true}"#);
    let _ = exec(&d, Via::Unix, "a", "true");
    sim.clear_faults(&sim.info.pods[0].name);
    let _ = exec(&d, Via::Unix, "a", "echo after");
    for path in [
        "/api/v1/pods/",
        "/api/v1/pods/a",
        "/api/v1/pods/b",
        "/health",
        "/api/v1/commands?limit=1000",
    ] {
        assert_no_token(path, &d.unix("GET", path, None).body);
        assert_no_token(path, &d.tcp("GET", path, None).body);
    }
    assert_no_token("history", &serde_json::to_string(&all_history(&d)).unwrap());
    let log = d.log();
    assert!(
        log.contains("TRACE") || log.contains("DEBUG"),
        "log level not applied"
    );
    assert_no_token("daemon log", &log);
}
