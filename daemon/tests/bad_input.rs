//! Bad input: malformed JSON, wrong types, missing and unknown fields, empty commands, huge
//! bodies, invalid URLs and query values all get a 4xx problem naming the field, and nothing
//! is written.

mod common;

use common::*;
use serde_json::{Value, json};

fn problem(r: &Response, status: u16) -> Value {
    assert_eq!(r.status, status, "{}", r.body);
    assert_eq!(
        r.header("content-type"),
        Some("application/problem+json"),
        "{}",
        r.body
    );
    let p = r.json();
    assert_eq!(p["status"], status);
    assert!(p["detail"].as_str().is_some_and(|d| !d.is_empty()));
    p
}

#[test]
fn bad_requests_are_4xx_problems_and_write_nothing() {
    let sim = podsim(1);
    let d = start_daemon();
    register(&d, Via::Unix, &plaintty_body(&sim, "good", 0, &[]));
    let post = |path: &str, body: &str| d.unix("POST", path, Some(body));

    // Pod registration.
    let p = problem(&post("/api/v1/pods/", "{\"alias\": \"x\", "), 400);
    assert!(
        p["detail"].as_str().unwrap().contains("malformed JSON"),
        "{p}"
    );
    let p = problem(
        &post("/api/v1/pods/", r#"{"alias": 5, "provider": "plaintty"}"#),
        400,
    );
    assert_eq!(p["field"], "alias");
    let p = problem(
        &post("/api/v1/pods/", r#"{"alias": "x", "provider": "ssh"}"#),
        400,
    );
    assert_eq!(p["field"], "provider");
    let p = problem(&post("/api/v1/pods/", r#"{"provider": "plaintty"}"#), 400);
    assert_eq!(p["field"], "alias");
    let url = &sim.info.pods[0].plaintty_url;
    let p = problem(
        &post(
            "/api/v1/pods/",
            &json!({"alias": "x", "provider": "plaintty", "url": url, "colour": "red"}).to_string(),
        ),
        400,
    );
    assert_eq!(p["field"], "colour");
    for (body, field) in [
        (
            json!({"alias": "has space", "provider": "plaintty", "url": url}),
            "alias",
        ),
        (
            json!({"alias": "a".repeat(129), "provider": "plaintty", "url": url}),
            "alias",
        ),
        (
            json!({"alias": "x", "provider": "plaintty", "url": "not a url"}),
            "url",
        ),
        (
            json!({"alias": "x", "provider": "plaintty", "url": "http://h/exec/1/?pod=p"}),
            "url",
        ),
        (
            json!({"alias": "x", "provider": "plaintty", "url": "ws://h/elsewhere"}),
            "url",
        ),
        (
            json!({"alias": "x", "provider": "kubernetes", "url": "https://h/api/v1/pods"}),
            "url",
        ),
        (json!({"alias": "x", "provider": "plaintty"}), "pod_name"),
        (
            json!({"alias": "x", "provider": "plaintty", "pod_name": "p", "server": "ws://h"}),
            "service_id",
        ),
        (
            json!({"alias": "x", "provider": "plaintty", "url": url, "tags": ["ok", "not ok"]}),
            "tags[1]",
        ),
        (
            json!({"alias": "x", "provider": "plaintty", "url": url, "token": ""}),
            "token",
        ),
    ] {
        let p = problem(&post("/api/v1/pods/", &body.to_string()), 422);
        assert_eq!(p["code"], "validation");
        assert_eq!(p["field"], field, "{body}: {p}");
    }
    let p = problem(&post("/api/v1/pods/", ""), 400);
    assert!(p["detail"].as_str().unwrap().contains("empty"), "{p}");

    // Exec.
    let p = problem(&post("/api/v1/pods/good/exec", r#"{"command": ""}"#), 422);
    assert_eq!(p["field"], "command");
    let p = problem(
        &post("/api/v1/pods/good/exec", r#"{"command": "   "}"#),
        422,
    );
    assert_eq!(p["field"], "command");
    let p = problem(
        &post("/api/v1/pods/good/exec", r#"{"command": ["ls"]}"#),
        400,
    );
    assert_eq!(p["field"], "command");
    let p = problem(
        &post(
            "/api/v1/pods/good/exec",
            r#"{"command": "ls", "timeout": "soon"}"#,
        ),
        400,
    );
    assert_eq!(p["field"], "timeout");
    for t in ["0", "-1", "1e9"] {
        let p = problem(
            &post(
                "/api/v1/pods/good/exec",
                &format!(r#"{{"command": "ls", "timeout": {t}}}"#),
            ),
            422,
        );
        assert_eq!(p["field"], "timeout");
    }
    let p = problem(&post("/api/v1/pods/good/exec", r#"{"cmd": "ls"}"#), 400);
    assert_eq!(p["field"], "cmd");

    // Fan-out.
    let p = problem(&post("/api/v1/exec", r#"{"command": "ls"}"#), 422);
    assert_eq!(p["field"], "aliases");
    let p = problem(
        &post(
            "/api/v1/exec",
            r#"{"command": "ls", "all": true, "tag": "x"}"#,
        ),
        422,
    );
    assert_eq!(p["field"], "aliases");
    let p = problem(
        &post(
            "/api/v1/exec",
            r#"{"command": "ls", "all": true, "concurrency": 0}"#,
        ),
        422,
    );
    assert_eq!(p["field"], "concurrency");
    let p = problem(
        &post(
            "/api/v1/exec",
            r#"{"command": "ls", "aliases": ["good", 7]}"#,
        ),
        400,
    );
    assert_eq!(p["field"], "aliases[1]");

    // A huge body is refused without being buffered.
    let huge = format!(r#"{{"command": "echo {}"}}"#, "x".repeat(2 * 1024 * 1024));
    let p = problem(&post("/api/v1/pods/good/exec", &huge), 413);
    assert_eq!(p["code"], "payload_too_large");

    // History queries.
    for (q, field) in [
        ("status=weird", "status"),
        ("since=yesterday", "since"),
        ("limit=0", "limit"),
        ("limit=x", "limit"),
        ("cursor=zz%21", "cursor"),
    ] {
        let p = problem(&d.unix("GET", &format!("/api/v1/commands?{q}"), None), 422);
        assert_eq!(p["field"], field, "{q}: {p}");
    }
    problem(&d.unix("GET", "/api/v1/commands?bogus=1", None), 400);
    problem(&d.unix("GET", "/api/v1/commands/abc", None), 422);

    // PATCH.
    let r = d.unix("PATCH", "/api/v1/pods/good", Some(r#"{"tags": "x"}"#));
    assert_eq!(problem(&r, 400)["field"], "tags");
    let r = d.unix(
        "PATCH",
        "/api/v1/pods/good",
        Some(r#"{"provider": "kubernetes"}"#),
    );
    assert_eq!(problem(&r, 422)["field"], "url");
    // Unknown routes and methods.
    assert_eq!(
        problem(&d.unix("GET", "/api/v1/nothing", None), 404)["code"],
        "not_found"
    );
    problem(&d.unix("PUT", "/api/v1/pods/good", Some("{}")), 405);

    // Nothing was written: one pod, unchanged; no history.
    let pods = d.unix("GET", "/api/v1/pods/", None).json();
    assert_eq!(pods.as_array().unwrap().len(), 1);
    assert_eq!(pods[0]["tags"], json!([]));
    assert_eq!(all_history(&d).len(), 0);
    // And the daemon is fine.
    exec_ok(&d, Via::Unix, "good", "true");
}
