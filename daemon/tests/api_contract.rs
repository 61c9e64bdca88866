//! The API matches its document: 405 answers carry `Allow` with exactly the documented methods;
//! control characters, `&` and `../` in names that end up in URLs are refused with a 422 that
//! names the field; and the limits the daemon enforces are the `minimum`/`maximum`/`maxLength`
//! the served document states (read from it, then probed on both sides of each bound).

mod common;

use std::collections::BTreeSet;

use common::*;
use serde_json::{Value, json};

/// A daemon on TCP with an admin key and a configured maximum command timeout.
fn daemon() -> Daemon {
    Daemon::start(DaemonOptions {
        api_key: Some("contract-admin-key".into()),
        config_toml: Some("max_command_timeout_secs = 90\n".into()),
        ..daemon_opts()
    })
}

fn document(d: &Daemon) -> Value {
    let r = d.tcp("GET", "/api/v1/openapi.json", None);
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()
}

fn problem(r: &Response, status: u16) -> Value {
    assert_eq!(r.status, status, "{}", r.body);
    assert_eq!(
        r.header("content-type"),
        Some("application/problem+json"),
        "{}",
        r.body
    );
    let p = r.json();
    assert_eq!(p["status"], status, "{p}");
    p
}

/// Asserts a 422 `validation` problem naming `field`.
fn invalid(r: &Response, field: &str, what: &str) {
    let p = problem(r, 422);
    assert_eq!(p["code"], "validation", "{what}: {p}");
    assert_eq!(p["field"], field, "{what}: {p}");
}

fn tcp(d: &Daemon, method: &str, path: &str, body: &Value) -> Response {
    d.tcp(method, path, Some(&body.to_string()))
}

/// The schema of a request body's property, from the served document.
fn property<'a>(doc: &'a Value, schema: &str, prop: &str) -> &'a Value {
    let p = &doc["components"]["schemas"][schema]["properties"][prop];
    assert!(p.is_object(), "{schema}.{prop} is not in the document");
    p
}

fn int(v: &Value, what: &str) -> i64 {
    v.as_i64()
        .or_else(|| v.as_f64().map(|f| f as i64))
        .unwrap_or_else(|| panic!("{what} is not a number: {v}"))
}

#[test]
fn method_not_allowed_lists_the_documented_methods() {
    let d = daemon();
    let doc = document(&d);
    let all = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];
    for (path, item) in doc["paths"].as_object().unwrap() {
        let documented: BTreeSet<String> = item
            .as_object()
            .unwrap()
            .keys()
            .map(|m| m.to_uppercase())
            .collect();
        let concrete = path.replace("{alias}", "nobody").replace("{id}", "1");
        for method in all.iter().filter(|m| !documented.contains(**m)) {
            let body = matches!(*method, "POST" | "PUT" | "PATCH").then_some("{}");
            let r = d.tcp(method, &concrete, body);
            let p = problem(&r, 405);
            assert_eq!(p["code"], "method_not_allowed", "{method} {path}: {p}");
            let allow: BTreeSet<String> = r
                .header("allow")
                .unwrap_or_else(|| panic!("{method} {path}: 405 without Allow"))
                .split(',')
                .map(|m| m.trim().to_owned())
                .collect();
            assert_eq!(allow, documented, "{method} {path}");
            // The document says so too.
            for op in item.as_object().unwrap().values() {
                assert!(
                    op["responses"]["405"]["headers"]["Allow"].is_object(),
                    "{path}: 405 is not documented with Allow"
                );
            }
        }
    }
    // The undocumented spellings answer alike.
    let r = d.tcp("PUT", "/api/v1/pods", Some("{}"));
    problem(&r, 405);
    assert_eq!(r.header("allow"), Some("GET, POST"));
}

#[test]
fn names_that_end_up_in_urls_refuse_control_characters_ampersands_and_traversal() {
    let sim = podsim(1);
    let d = daemon();
    let server = sim.info.http_base.clone();
    let base = json!({
        "alias": "k", "provider": "kubernetes", "server": server,
        "token": POD_TOKEN, "pod_name": "p",
    });
    let bad = [
        "a\u{0}b", "a\r\nb", "a\nb", "a\tb", "../etc", "a/../b", "a&b", "a?b", "a%2Fb", "A", "",
    ];
    for field in ["pod_name", "namespace", "container"] {
        for value in bad {
            let mut body = base.clone();
            body[field] = json!(value);
            let r = tcp(&d, "POST", "/api/v1/pods/", &body);
            invalid(&r, field, &format!("{field} = {value:?}"));
        }
    }
    // Well-formed names are accepted (nothing is registered before this).
    let mut ok = base.clone();
    ok["pod_name"] = json!(sim.info.pods[0].name);
    ok["namespace"] = json!("default");
    let r = tcp(&d, "POST", "/api/v1/pods/", &ok);
    assert_eq!(r.status, 201, "{}", r.body);
    ok["alias"] = json!("k2");
    ok["pod_name"] = json!("web-0.example-1");
    ok["container"] = json!("main-1");
    let r = tcp(&d, "POST", "/api/v1/pods/", &ok);
    assert_eq!(r.status, 201, "{}", r.body);

    // Names a URL brings are held to the same rules, blaming `url`.
    for url in [
        format!("{server}/api/v1/namespaces/default/pods/..%2Fetc/exec"),
        format!("{server}/api/v1/namespaces/Default/pods/p/exec"),
        format!("{server}/api/v1/namespaces/default/pods/p/exec?container=a%26b"),
        format!("{server}/api/v1/namespaces/default/pods/p/exec?container=a%0D%0Ab"),
    ] {
        let body = json!({"alias": "u", "provider": "kubernetes", "url": url, "token": POD_TOKEN});
        invalid(&tcp(&d, "POST", "/api/v1/pods/", &body), "url", &url);
    }
    let plaintty = &sim.info.pods[0].plaintty_url;
    for (from, to) in [("pod=", "pod=a%00"), ("pod=", "pod=..%2F")] {
        let url = plaintty.replacen(from, to, 1);
        let body = json!({"alias": "u", "provider": "plaintty", "url": url});
        invalid(&tcp(&d, "POST", "/api/v1/pods/", &body), "url", &url);
    }

    // PATCH holds the same line.
    for field in ["pod_name", "namespace", "container"] {
        for value in ["x\u{0}", "x\r\n", "../x"] {
            let r = tcp(&d, "PATCH", "/api/v1/pods/k", &json!({ field: value }));
            invalid(&r, field, &format!("PATCH {field} = {value:?}"));
        }
    }

    // Control characters in any other string field: 422 naming it.
    let url = &sim.info.pods[0].plaintty_url;
    for (body, field) in [
        (
            json!({"alias": "a\u{0}", "provider": "plaintty", "url": url}),
            "alias",
        ),
        (
            json!({"alias": "x", "provider": "plaintty", "url": format!("{url}\n")}),
            "url",
        ),
        (
            json!({"alias": "x", "provider": "plaintty", "url": format!("{url}\t")}),
            "url",
        ),
        (
            json!({"alias": "x", "provider": "plaintty", "url": url, "token": "t\r\n"}),
            "token",
        ),
        (
            json!({"alias": "x", "provider": "plaintty", "url": url, "tags": ["ok", "b\u{7}"]}),
            "tags[1]",
        ),
        (
            json!({"alias": "x", "provider": "plaintty", "pod_name": "p", "server": "ws://h\n", "service_id": "s"}),
            "server",
        ),
        (
            json!({"alias": "x", "provider": "plaintty", "pod_name": "p", "server": "ws://h", "service_id": "../s"}),
            "service_id",
        ),
        (
            json!({"alias": "x", "provider": "kubernetes", "pod_name": "p", "server": server, "token": "t", "certificate_authority": "-----BEGIN\u{0}"}),
            "certificate_authority",
        ),
        (
            json!({"alias": "x", "provider": "kubernetes", "pod_name": "p", "server": server, "client_certificate": "c", "client_key": "k\u{1b}"}),
            "client_key",
        ),
    ] {
        invalid(
            &tcp(&d, "POST", "/api/v1/pods/", &body),
            field,
            &body.to_string(),
        );
    }
    for (body, field) in [
        (
            json!({"namespace": "default", "server": server, "token": POD_TOKEN, "label_selector": "a=b\n"}),
            "label_selector",
        ),
        (
            json!({"namespace": "../default", "server": server, "token": POD_TOKEN}),
            "namespace",
        ),
        (
            json!({"namespace": "default", "server": server, "token": POD_TOKEN, "alias_prefix": "a\r"}),
            "alias_prefix",
        ),
    ] {
        invalid(
            &tcp(&d, "POST", "/api/v1/pods/import", &body),
            field,
            &body.to_string(),
        );
    }
    // Commands are scripts: newlines pass, NUL does not.
    invalid(
        &tcp(
            &d,
            "POST",
            "/api/v1/pods/k/exec",
            &json!({"command": "echo a\u{0}"}),
        ),
        "command",
        "NUL in a command",
    );
    invalid(
        &tcp(
            &d,
            "POST",
            "/api/v1/exec",
            &json!({"command": "true", "tag": "a\nb"}),
        ),
        "tag",
        "LF in a tag",
    );
    let r = tcp(
        &d,
        "POST",
        "/api/v1/pods/k/exec",
        &json!({"command": "echo one\n\techo two\n", "timeout": 60}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["stdout"], "one\ntwo\n", "{}", r.body);
    // Path and query parameters too.
    invalid(
        &d.tcp("GET", "/api/v1/pods/a%00b", None),
        "alias",
        "NUL in the path",
    );
    invalid(
        &d.tcp("DELETE", "/api/v1/pods/..%2Fk", None),
        "alias",
        "traversal in the path",
    );
    invalid(
        &d.tcp("GET", "/api/v1/commands?actor=a%0Ab", None),
        "actor",
        "LF in actor",
    );
    invalid(
        &d.tcp("GET", "/api/v1/commands?alias=a%0D", None),
        "alias",
        "CR in alias",
    );
    // Nothing bad was stored.
    let pods = d.tcp("GET", "/api/v1/pods/", None).json();
    assert_eq!(pods.as_array().unwrap().len(), 2, "{pods}");
}

#[test]
fn enforced_limits_are_the_documented_ones() {
    let sim = podsim(1);
    let d = daemon();
    let doc = document(&d);
    let server = sim.info.http_base.clone();
    let pod = |alias: &str| {
        json!({"alias": alias, "provider": "kubernetes", "server": server,
               "token": POD_TOKEN, "pod_name": sim.info.pods[0].name})
    };

    // cols: minimum and maximum, on registration and update.
    let cols = property(&doc, "PodCreate", "cols");
    let (lo, hi) = (
        int(&cols["minimum"], "cols.minimum"),
        int(&cols["maximum"], "cols.maximum"),
    );
    assert_eq!((lo, hi), (20, 1000));
    for c in [lo - 1, hi + 1] {
        let mut b = pod("c");
        b["cols"] = json!(c);
        invalid(
            &tcp(&d, "POST", "/api/v1/pods/", &b),
            "cols",
            &format!("cols {c}"),
        );
    }
    let mut b = pod("c");
    b["cols"] = json!(lo);
    assert_eq!(tcp(&d, "POST", "/api/v1/pods/", &b).status, 201);
    let upd = property(&doc, "PodUpdate", "cols");
    assert_eq!(upd["minimum"], cols["minimum"]);
    assert_eq!(upd["maximum"], cols["maximum"]);
    let r = tcp(&d, "PATCH", "/api/v1/pods/c", &json!({"cols": hi}));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["identity"]["cols"], hi);
    invalid(
        &tcp(&d, "PATCH", "/api/v1/pods/c", &json!({"cols": hi + 1})),
        "cols",
        "cols max+1",
    );

    // alias: maxLength, minLength and pattern.
    let alias = property(&doc, "PodCreate", "alias");
    let max = int(&alias["maxLength"], "alias.maxLength") as usize;
    assert_eq!(alias["minLength"], 1);
    assert!(alias["pattern"].is_string());
    invalid(
        &tcp(&d, "POST", "/api/v1/pods/", &pod(&"a".repeat(max + 1))),
        "alias",
        "long alias",
    );
    invalid(
        &tcp(&d, "POST", "/api/v1/pods/", &pod("")),
        "alias",
        "empty alias",
    );
    assert_eq!(
        tcp(&d, "POST", "/api/v1/pods/", &pod(&"a".repeat(max))).status,
        201
    );

    // namespace, container and pod_name: maxLength.
    for (field, max) in [("namespace", 63usize), ("container", 63), ("pod_name", 253)] {
        let schema = property(&doc, "PodCreate", field);
        assert_eq!(int(&schema["maxLength"], field) as usize, max, "{field}");
        assert!(schema["pattern"].is_string(), "{field} has no pattern");
        let mut b = pod("n");
        b[field] = json!("a".repeat(max + 1));
        invalid(
            &tcp(&d, "POST", "/api/v1/pods/", &b),
            field,
            &format!("long {field}"),
        );
    }
    let mut b = pod("n");
    b["namespace"] = json!("a".repeat(63));
    b["container"] = json!("b".repeat(63));
    b["pod_name"] = json!(format!("{}.{}", "c".repeat(126), "d".repeat(126)));
    assert_eq!(tcp(&d, "POST", "/api/v1/pods/", &b).status, 201);

    // timeout: more than 0, at most the configured maximum (90 s here).
    register(&d, Via::Tcp, &pod("t"));
    for schema in ["ExecRequest", "FanOutRequest"] {
        let t = property(&doc, schema, "timeout");
        assert_eq!(t["exclusiveMinimum"], 0, "{schema}");
        assert_eq!(t["maximum"].as_f64(), Some(90.0), "{schema}: {t}");
    }
    let exec = |body: Value| tcp(&d, "POST", "/api/v1/pods/t/exec", &body);
    for t in [0.0, -1.0, 90.5] {
        invalid(
            &exec(json!({"command": "true", "timeout": t})),
            "timeout",
            &format!("timeout {t}"),
        );
    }
    let r = exec(json!({"command": "true", "timeout": 90}));
    assert_eq!(r.status, 200, "{}", r.body);
    let r = exec(json!({"command": "true", "timeout": 0.001}));
    assert!(r.status == 200 || r.status == 504, "{}", r.body);

    // command: maxLength (checked before the pod is looked up).
    let cmd = property(&doc, "ExecRequest", "command");
    let max = int(&cmd["maxLength"], "command.maxLength") as usize;
    assert_eq!(cmd["minLength"], 1);
    let over = json!({"command": "x".repeat(max + 1)});
    invalid(
        &tcp(&d, "POST", "/api/v1/pods/nobody/exec", &over),
        "command",
        "long command",
    );
    let at = json!({"command": "x".repeat(max)});
    assert_eq!(
        problem(&tcp(&d, "POST", "/api/v1/pods/nobody/exec", &at), 404)["code"],
        "pod_not_found"
    );

    // concurrency: minimum and maximum.
    let c = property(&doc, "FanOutRequest", "concurrency");
    let (lo, hi) = (
        int(&c["minimum"], "concurrency.minimum"),
        int(&c["maximum"], "concurrency.maximum"),
    );
    assert_eq!((lo, hi), (1, 1024));
    for n in [lo - 1, hi + 1] {
        let r = tcp(
            &d,
            "POST",
            "/api/v1/exec",
            &json!({"command": "true", "all": true, "concurrency": n}),
        );
        invalid(&r, "concurrency", &format!("concurrency {n}"));
    }
    for n in [lo, hi] {
        let r = tcp(
            &d,
            "POST",
            "/api/v1/exec",
            &json!({"command": "true", "aliases": ["t"], "concurrency": n}),
        );
        assert_eq!(r.status, 200, "concurrency {n}: {}", r.body);
    }

    // limit (history and audit): minimum and maximum, from the parameters.
    for path in ["/api/v1/commands", "/api/v1/audit"] {
        let params = doc["paths"][path]["get"]["parameters"].as_array().unwrap();
        let limit = params
            .iter()
            .find(|p| p["name"] == "limit")
            .unwrap_or_else(|| panic!("{path} documents no limit"));
        let (lo, hi) = (
            int(&limit["schema"]["minimum"], "limit.minimum"),
            int(&limit["schema"]["maximum"], "limit.maximum"),
        );
        assert_eq!((lo, hi), (1, 1000));
        for n in [lo - 1, hi + 1] {
            invalid(
                &d.tcp("GET", &format!("{path}?limit={n}"), None),
                "limit",
                path,
            );
        }
        for n in [lo, hi] {
            let r = d.tcp("GET", &format!("{path}?limit={n}"), None);
            assert_eq!(r.status, 200, "{path}?limit={n}: {}", r.body);
        }
    }
}

#[test]
fn every_problem_status_is_documented_with_its_body() {
    let d = daemon();
    let doc = document(&d);
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            for (status, resp) in op["responses"].as_object().unwrap() {
                // 431 comes from the HTTP layer before any route runs: no body, as documented.
                if (status.starts_with('4') || status.starts_with('5')) && status != "431" {
                    assert_eq!(
                        resp["content"]["application/problem+json"]["schema"]["$ref"],
                        "#/components/schemas/Problem",
                        "{method} {path} {status}"
                    );
                }
            }
        }
    }
    // A body that cannot be JSON is 415, documented.
    let r = d.tcp_with(
        "POST",
        "/api/v1/pods/",
        &[
            ("Authorization", "Bearer contract-admin-key"),
            ("Content-Type", "multipart/form-data; boundary=x"),
        ],
        Some("{}"),
    );
    assert_eq!(problem(&r, 415)["code"], "unsupported_media_type");
    assert!(doc["paths"]["/api/v1/pods/"]["post"]["responses"]["415"].is_object());
    // 401 and 403 are what the document says they are.
    let r = d.tcp_with("GET", "/api/v1/pods/", &[], None);
    assert_eq!(problem(&r, 401)["code"], "unauthorized");
    assert!(doc["paths"]["/api/v1/pods/"]["get"]["responses"]["401"].is_object());
    assert!(
        doc["paths"]["/api/v1/pods/"]["post"]["responses"]["403"]["description"]
            .as_str()
            .unwrap()
            .contains("forbidden")
    );
}
