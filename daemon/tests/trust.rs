//! The trust boundary, against a real daemon: API callers reach pods, never the daemon's host,
//! files or credentials; TCP keys have scopes; every command and pod change names who asked;
//! what the daemon creates is private to its user.

mod common;

use std::io::Read;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use serde_json::json;

/// A loopback listener that records every byte anyone sends it.
struct Honeypot {
    port: u16,
    received: Arc<Mutex<Vec<u8>>>,
    connections: Arc<Mutex<usize>>,
}

impl Honeypot {
    fn start() -> Honeypot {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let received = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(Mutex::new(0));
        let (r, c) = (received.clone(), connections.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                *c.lock().unwrap() += 1;
                stream.set_read_timeout(Some(Duration::from_secs(2))).ok();
                let mut buf = [0u8; 4096];
                while let Ok(n) = stream.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    r.lock().unwrap().extend_from_slice(&buf[..n]);
                }
            }
        });
        Honeypot {
            port,
            received,
            connections,
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn received(&self) -> String {
        String::from_utf8_lossy(&self.received.lock().unwrap()).into_owned()
    }
}

const DAEMON_OWN_TOKEN: &str = "daemon-own-token-91c2";

/// A daemon whose own environment has a kubeconfig (token and an exec plugin that would leave
/// `marker`) pointing at `server`: exactly what a caller must never be able to use.
fn daemon_with_own_kubeconfig(
    dir: &std::path::Path,
    server: &str,
    marker: &std::path::Path,
) -> Daemon {
    let plugin = dir.join("plugin.sh");
    std::fs::write(
        &plugin,
        format!(
            "#!/bin/sh\ntouch {}\nprintf '%s' '{{\"apiVersion\":\"client.authentication.k8s.io/v1\",\"kind\":\"ExecCredential\",\"status\":{{\"token\":\"{DAEMON_OWN_TOKEN}\"}}}}'\n",
            marker.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&plugin, std::fs::Permissions::from_mode(0o755)).unwrap();
    let kubeconfig = dir.join("daemon-kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: own\nclusters:\n- name: own\n  cluster:\n    server: {server}\n\
contexts:\n- name: own\n  context: {{cluster: own, user: tok}}\n- name: plug\n  context: {{cluster: own, user: plug}}\n\
users:\n- name: tok\n  user:\n    token: {DAEMON_OWN_TOKEN}\n- name: plug\n  user:\n    exec:\n      apiVersion: client.authentication.k8s.io/v1\n      command: {}\n      interactiveMode: Never\n",
            plugin.display()
        ),
    )
    .unwrap();
    Daemon::start(DaemonOptions {
        env: vec![
            ("KUBECONFIG".into(), kubeconfig.display().to_string()),
            ("HOME".into(), dir.display().to_string()),
        ],
        ..daemon_opts()
    })
}

#[test]
fn a_callers_server_never_gets_the_daemons_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let pot = Honeypot::start();
    let marker = dir.path().join("plugin-ran");
    let d = daemon_with_own_kubeconfig(dir.path(), &pot.url(), &marker);

    // A server with no credentials: 422, never "use the daemon's defaults".
    let r = d.unix(
        "POST",
        "/api/v1/pods/",
        Some(
            &json!({"alias": "k", "provider": "kubernetes", "server": pot.url(), "pod_name": "p"})
                .to_string(),
        ),
    );
    assert_eq!(r.status, 422, "{}", r.body);
    assert_eq!(r.json()["field"], "token", "{}", r.body);
    let r = d.unix(
        "POST",
        "/api/v1/pods/import",
        Some(&json!({"namespace": "default", "server": pot.url()}).to_string()),
    );
    assert_eq!(r.status, 422, "{}", r.body);
    // No server and no cluster either.
    let r = d.unix(
        "POST",
        "/api/v1/pods/",
        Some(&json!({"alias": "k", "provider": "kubernetes", "pod_name": "p"}).to_string()),
    );
    assert_eq!(r.status, 422, "{}", r.body);
    let r = d.unix(
        "POST",
        "/api/v1/pods/import",
        Some(&json!({"namespace": "default"}).to_string()),
    );
    assert_eq!(r.status, 422, "{}", r.body);
    // A cluster the config does not name.
    let r = d.unix(
        "POST",
        "/api/v1/pods/import",
        Some(&json!({"namespace": "default", "cluster": "own"}).to_string()),
    );
    assert_eq!(r.status, 422, "{}", r.body);
    assert_eq!(r.json()["field"], "cluster");

    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(*pot.connections.lock().unwrap(), 0, "the daemon connected");
    assert!(!pot.received().contains(DAEMON_OWN_TOKEN));
    assert!(!marker.exists(), "the daemon ran its own exec plugin");
    assert_eq!(d.unix("GET", "/api/v1/pods/", None).json(), json!([]));
}

#[test]
fn kubeconfig_paths_and_plugins_from_callers_are_refused_and_never_read() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("caller-plugin-ran");
    let plugin = dir.path().join("evil.sh");
    std::fs::write(&plugin, format!("#!/bin/sh\ntouch {}\n", marker.display())).unwrap();
    std::fs::set_permissions(&plugin, std::fs::Permissions::from_mode(0o755)).unwrap();
    let with_plugin = dir.path().join("with-plugin.kubeconfig");
    std::fs::write(
        &with_plugin,
        format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: c\nclusters:\n- name: c\n  cluster:\n    server: http://127.0.0.1:1\n\
contexts:\n- name: c\n  context: {{cluster: c, user: u}}\nusers:\n- name: u\n  user:\n    exec:\n      apiVersion: client.authentication.k8s.io/v1\n      command: {}\n      interactiveMode: Never\n",
            plugin.display()
        ),
    )
    .unwrap();
    let broken = dir.path().join("broken.yaml");
    std::fs::write(&broken, "root:SECRET-LINE-4411:x:0:0\n  : : [unclosed\n").unwrap();
    let d = start_daemon();

    for path in [&with_plugin, &broken] {
        let path = path.display().to_string();
        let bodies = [
            (
                "POST",
                "/api/v1/pods/",
                json!({"alias": "k", "provider": "kubernetes", "pod_name": "p", "kubeconfig": path}),
            ),
            (
                "POST",
                "/api/v1/pods/import",
                json!({"namespace": "default", "kubeconfig": path}),
            ),
            (
                "POST",
                "/api/v1/pods/import",
                json!({"namespace": "default", "kubeconfig": path, "context": "c"}),
            ),
        ];
        for (method, route, body) in bodies {
            let r = d.unix(method, route, Some(&body.to_string()));
            assert_eq!(r.status, 422, "{route} {body}: {}", r.body);
            assert_eq!(r.json()["code"], "validation");
            assert!(r.json()["field"] == "kubeconfig" || r.json()["field"] == "context");
            assert!(!r.body.contains("SECRET-LINE"), "{}", r.body);
            assert!(!r.body.contains(&path), "the path is echoed: {}", r.body);
        }
    }
    // PATCH of an existing pod with a kubeconfig is refused the same way.
    let sim = podsim(1);
    register(&d, Via::Unix, &plaintty_body(&sim, "web", 0, &[]));
    let r = d.unix(
        "PATCH",
        "/api/v1/pods/web",
        Some(&json!({"kubeconfig": broken.display().to_string()}).to_string()),
    );
    assert_eq!(r.status, 422, "{}", r.body);

    std::thread::sleep(Duration::from_millis(300));
    assert!(!marker.exists(), "a caller's exec plugin ran");
    assert!(!d.log().contains("SECRET-LINE"), "file contents in the log");
}

#[test]
fn tokens_never_travel_in_clear_text_off_loopback() {
    // --lazy: even a wrong answer here would not connect anywhere.
    let d = Daemon::start(DaemonOptions {
        lazy: true,
        ..daemon_opts()
    });
    let refused = [
        json!({"alias": "k1", "provider": "kubernetes", "server": "http://10.255.0.1:6443", "pod_name": "p", "token": "t0k"}),
        json!({"alias": "k2", "provider": "kubernetes", "url": "http://k8s.example.com/api/v1/namespaces/default/pods/p/exec", "token": "t0k"}),
        json!({"alias": "p1", "provider": "plaintty", "url": "ws://10.255.0.1/exec/svc/?token=t0k&pod=web-1-2"}),
        json!({"alias": "p2", "provider": "plaintty", "server": "ws://terminal.example.com", "service_id": "svc", "pod_name": "web-1-2", "token": "t0k"}),
    ];
    for body in refused {
        let r = d.unix("POST", "/api/v1/pods/", Some(&body.to_string()));
        assert_eq!(r.status, 422, "{body}: {}", r.body);
        assert!(
            r.json()["detail"].as_str().unwrap().contains("clear text"),
            "{}",
            r.body
        );
        assert!(!r.body.contains("t0k"), "{}", r.body);
    }
    let r = d.unix(
        "POST",
        "/api/v1/pods/import",
        Some(
            &json!({"namespace": "default", "server": "http://10.255.0.1:6443", "token": "t0k"})
                .to_string(),
        ),
    );
    assert_eq!(r.status, 422, "{}", r.body);
    // TLS, or plain http to loopback, is fine.
    for body in [
        json!({"alias": "ok1", "provider": "kubernetes", "server": "https://10.255.0.1:6443", "pod_name": "p", "token": "t0k"}),
        json!({"alias": "ok2", "provider": "kubernetes", "server": "http://127.0.0.1:6443", "pod_name": "p", "token": "t0k"}),
        json!({"alias": "ok3", "provider": "plaintty", "url": "ws://127.0.0.1:1/exec/svc/?token=t0k&pod=web-1-2"}),
    ] {
        let r = d.unix("POST", "/api/v1/pods/", Some(&body.to_string()));
        assert_eq!(r.status, 201, "{body}: {}", r.body);
    }
    assert_eq!(d.unix("DELETE", "/api/v1/pods/ok1", None).status, 204);
}

/// A config with one key per scope; answers (config, read key, exec key, admin key).
fn keys_config(extra: &str) -> (String, String, String, String) {
    let (read, exec, admin) = (
        "read-key-0001".to_owned(),
        "exec-key-0002".to_owned(),
        "admin-key-0003".to_owned(),
    );
    let mut toml = String::from(extra);
    for (name, scope, key) in [
        ("reader", "read", &read),
        ("runner", "exec", &exec),
        ("boss", "admin", &admin),
    ] {
        toml.push_str(&format!(
            "[[api_keys]]\nname = \"{name}\"\nscope = \"{scope}\"\nsha256 = \"{}\"\n",
            podwranglerd::keys::digest_hex(key)
        ));
    }
    (toml, read, exec, admin)
}

fn with_key(
    d: &Daemon,
    key: &str,
    method: &str,
    path: &str,
    body: Option<&serde_json::Value>,
) -> Response {
    let auth = format!("Bearer {key}");
    let body = body.map(|b| b.to_string());
    d.tcp_with(method, path, &[("Authorization", &auth)], body.as_deref())
}

#[test]
fn scopes_bound_what_each_key_may_do_and_history_names_the_caller() {
    let (toml, read, exec, admin) = keys_config("");
    let d = Daemon::start(DaemonOptions {
        config_toml: Some(toml),
        ..daemon_opts()
    });
    let sim = podsim(1);
    let pod = plaintty_body(&sim, "web", 0, &["t"]);
    let run = json!({"command": "echo hi", "timeout": 60});

    // read: reads only.
    for path in [
        "/api/v1/pods/",
        "/api/v1/commands",
        "/api/v1/audit",
        "/api/v1/clusters",
        "/health",
    ] {
        let r = with_key(&d, &read, "GET", path, None);
        assert_eq!(r.status, 200, "{path}: {}", r.body);
    }
    for (method, path, body) in [
        ("POST", "/api/v1/pods/", Some(&pod)),
        ("POST", "/api/v1/pods/web/exec", Some(&run)),
        (
            "POST",
            "/api/v1/exec",
            Some(&json!({"command": "true", "all": true})),
        ),
        ("DELETE", "/api/v1/pods/web", None),
    ] {
        let r = with_key(&d, &read, method, path, body);
        assert_eq!(r.status, 403, "{method} {path}: {}", r.body);
        assert_eq!(r.json()["code"], "forbidden");
        assert!(r.header("content-type").unwrap().contains("problem+json"));
    }
    // exec: runs commands, changes no pods.
    let r = with_key(&d, &exec, "POST", "/api/v1/pods/", Some(&pod));
    assert_eq!(r.status, 403, "{}", r.body);
    // admin: everything.
    let r = with_key(&d, &admin, "POST", "/api/v1/pods/", Some(&pod));
    assert_eq!(r.status, 201, "{}", r.body);
    let r = with_key(&d, &exec, "POST", "/api/v1/pods/web/exec", Some(&run));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["actor"], "key:runner");
    let r = with_key(
        &d,
        &exec,
        "PATCH",
        "/api/v1/pods/web",
        Some(&json!({"tags": ["x"]})),
    );
    assert_eq!(r.status, 403, "{}", r.body);

    // Over the socket: the peer's uid and name.
    let me = unsafe { libc::geteuid() };
    let rec = exec_ok(&d, Via::Unix, "web", "echo from-socket");
    let actor = rec["actor"].as_str().unwrap().to_owned();
    assert!(actor.starts_with(&format!("unix:{me}(")), "{actor}");

    // Filter by actor, by its full form or by the key's name.
    let mine = d
        .unix("GET", &format!("/api/v1/commands?actor={actor}"), None)
        .json();
    assert_eq!(mine["items"].as_array().unwrap().len(), 1, "{mine}");
    let runner = d.unix("GET", "/api/v1/commands?actor=runner", None).json();
    let items = runner["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{runner}");
    assert_eq!(items[0]["command"], "echo hi");

    // The audit log names who registered and who changed the pod; nothing deletes it.
    let r = d.unix(
        "PATCH",
        "/api/v1/pods/web",
        Some(&json!({"tags": ["y"]}).to_string()),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(d.unix("DELETE", "/api/v1/pods/web", None).status, 204);
    let audit = d.unix("GET", "/api/v1/audit", None).json();
    let events: Vec<(String, String)> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap().to_owned(),
                e["actor"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        events,
        vec![
            ("pod_removed".to_owned(), actor.clone()),
            ("pod_updated".to_owned(), actor.clone()),
            ("pod_registered".to_owned(), "key:boss".to_owned()),
        ]
    );
    let by_boss = d.unix("GET", "/api/v1/audit?actor=boss", None).json();
    assert_eq!(by_boss["items"].as_array().unwrap().len(), 1);
    assert_no_token("the audit log", &audit.to_string());
    for method in ["DELETE", "PUT", "PATCH"] {
        let r = d.unix(method, "/api/v1/commands", None);
        assert_eq!(r.status, 405, "{method}: {}", r.body);
    }
}

#[test]
fn keys_are_managed_by_the_cli_and_revoked_on_sighup() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("podwranglerd.toml");
    std::fs::write(&config, "").unwrap();
    let cli = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_podwranglerd"))
            .arg("--user")
            .arg("--config")
            .arg(&config)
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let key = cli(&["key", "add", "ci", "--scope", "read"])
        .trim()
        .to_owned();
    assert!(key.starts_with("pwk_"), "{key}");
    let keys_file = dir.path().join("api-keys.toml");
    let stored = std::fs::read_to_string(&keys_file).unwrap();
    assert!(!stored.contains(&key), "the key itself is stored");
    assert!(stored.contains(&podwranglerd::keys::digest_hex(&key)));
    assert_eq!(
        std::fs::metadata(&keys_file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(cli(&["key", "list"]).contains("ci\tread"));

    let d = Daemon::start(DaemonOptions {
        config_toml: Some(format!("api_keys_file = \"{}\"\n", keys_file.display())),
        ..daemon_opts()
    });
    assert_eq!(with_key(&d, &key, "GET", "/api/v1/pods/", None).status, 200);
    cli(&["key", "revoke", "ci"]);
    assert_eq!(
        with_key(&d, &key, "GET", "/api/v1/pods/", None).status,
        200,
        "still valid until SIGHUP"
    );
    d.signal("HUP");
    let revoked = wait_until(Duration::from_secs(10), || {
        with_key(&d, &key, "GET", "/api/v1/pods/", None).status == 401
    });
    assert!(revoked, "the revoked key still works after SIGHUP");
    assert!(!d.log().contains(&key), "the key is in the log");
}

#[test]
fn tcp_is_never_open_without_a_key() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("empty.toml");
    std::fs::write(&config, "").unwrap();
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_podwranglerd"))
            .args(["--user", "--config"])
            .arg(&config)
            .args(["--socket"])
            .arg(dir.path().join("s.sock"))
            .args(["--database-url"])
            .arg(dir.path().join("db"))
            .args(args)
            .env_remove("PODWRANGLER_API_KEY")
            .output()
            .unwrap()
    };
    let out = run(&["--check-config"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("tcp: (off)"));
    for listen in ["127.0.0.1:0", "0.0.0.0:0"] {
        let out = run(&["--listen", listen, "--check-config"]);
        assert!(!out.status.success(), "{listen} without a key was accepted");
        assert!(String::from_utf8_lossy(&out.stderr).contains("without an API key"));
    }
}

#[test]
fn what_the_daemon_creates_is_private_to_its_user() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("data").join("podwrangler.db");
    let mut d = Daemon::start(DaemonOptions {
        database_url: Some(db.display().to_string()),
        ..daemon_opts()
    });
    let sim = podsim(1);
    register(&d, Via::Unix, &plaintty_body(&sim, "web", 0, &[]));
    exec_ok(&d, Via::Unix, "web", "true");
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&db.with_file_name("")), 0o700, "database directory");
    for f in ["podwrangler.db", "podwrangler.db-wal", "podwrangler.db-shm"] {
        let p = db.with_file_name(f);
        assert_eq!(mode(&p), 0o600, "{}", p.display());
    }
    assert_eq!(mode(&d.socket), 0o600, "user-mode socket");
    assert_eq!(mode(d.socket.parent().unwrap()), 0o700, "socket directory");
    d.terminate(Duration::from_secs(20));
}
