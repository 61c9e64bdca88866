//! podsim's command line and lifecycle: the ready line, the kubeconfig and PKI files it writes
//! (TLS by default, `--plain-http` on request), and that its shells never outlive it (stdin
//! closed with `--exit-on-stdin-close`, or podsim SIGKILLed).

mod podsim_support;

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use futures_util::StreamExt;
use podsim_support::*;
use testkit::{PodsimInfo, TempDirGuard, wait_until};
use tokio_tungstenite::tungstenite::Message;

struct Running {
    child: Child,
    info: PodsimInfo,
    _dir: TempDirGuard,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// podsim serving plain http/ws (what the std-only helpers here speak), plus `args`.
fn spawn(args: &[&str]) -> Running {
    let mut plain = vec!["--plain-http"];
    plain.extend_from_slice(args);
    spawn_as_is(&plain)
}

/// podsim with its defaults (TLS) but for `args`.
fn spawn_as_is(args: &[&str]) -> Running {
    let dir = TempDirGuard::new("podsim-cli");
    let mut child = Command::new(env!("CARGO_BIN_EXE_podsim"))
        .args(["--listen", "127.0.0.1:0", "--workdir"])
        .arg(dir.path())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn podsim");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let info = serde_json::from_str(&line).unwrap_or_else(|e| panic!("ready line {line:?}: {e}"));
    Running {
        child,
        info,
        _dir: dir,
    }
}

/// A live process in the pod; returns its pid once it runs.
async fn sleeper(info: &PodsimInfo) -> (Ws, i32) {
    let mut ws = exec(
        info,
        &info.pods[0].name,
        &["sh", "-c", "echo $$; exec sleep 600"],
        false,
    )
    .await;
    loop {
        match ws.next().await {
            Some(Ok(Message::Binary(b))) if b.len() > 1 && b[0] == 1 => {
                let pid = String::from_utf8_lossy(&b[1..])
                    .trim()
                    .parse()
                    .expect("pid");
                return (ws, pid);
            }
            Some(Ok(_)) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
}

/// Gone or a zombie waiting for a reaper: either way no longer running.
fn process_gone(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rfind(')')
            .and_then(|i| {
                stat[i + 1..]
                    .split_whitespace()
                    .next()
                    .map(|s| s == "Z" || s == "X")
            })
            .unwrap_or(true),
    }
}

#[test]
fn ready_line_and_kubeconfig_follow_the_options() {
    let dir = TempDirGuard::new("podsim-kc");
    let kc = dir.path().join("kc.yaml");
    let r = spawn(&[
        "--pods",
        "2",
        "--namespace",
        "team-a",
        "--app",
        "api",
        "--token",
        "t0k3n",
        "--kubeconfig-out",
        kc.to_str().unwrap(),
    ]);
    let i = &r.info;
    assert_eq!(i.namespace, "team-a");
    assert_eq!(i.token, "t0k3n");
    assert!(!i.tls);
    assert_eq!(i.http_base, format!("http://{}", i.address));
    assert_eq!(i.ws_base, format!("ws://{}", i.address));
    assert_eq!(i.kubeconfig.as_deref(), Some(kc.as_path()));
    let names: Vec<&str> = i.pods.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["api-5d8f7-00000", "api-5d8f7-00001"]);
    assert_eq!(
        i.pods[1].plaintty_url,
        format!(
            "ws://{}/exec/api-5d8f7/?token=t0k3n&cols=220&pod=api-5d8f7-00001",
            i.address
        )
    );
    assert_eq!(
        i.pods[1].exec_path,
        "/api/v1/namespaces/team-a/pods/api-5d8f7-00001/exec"
    );
    assert_eq!(i.pods[1].namespace, "team-a");
    let text = std::fs::read_to_string(&kc).unwrap();
    assert!(
        text.contains(&format!("server: http://{}", i.address)),
        "{text}"
    );
    assert!(text.contains("token: \"t0k3n\""), "{text}");
    assert!(text.contains("namespace: team-a"), "{text}");
    assert!(!text.contains("insecure-skip-tls-verify"), "{text}");
    // No TLS, so no CA and no client-certificate user.
    assert!(!text.contains("certificate"), "{text}");
    assert_eq!(i.ca_cert_pem, None);
    assert_eq!(i.client_cert_pem, None);
    assert_eq!(i.client_key_pem, None);
    assert_eq!(mode_of(&kc), 0o600, "the kubeconfig holds a token");
    // The labels carry the app and namespace.
    let auth = "Bearer t0k3n";
    let (status, body) = testkit::http_request(
        &i.address,
        "GET",
        "/api/v1/namespaces/team-a/pods?labelSelector=app%3Dapi",
        &[("Authorization", auth)],
        None,
    )
    .unwrap();
    assert_eq!(status, 200);
    let list: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(list["items"].as_array().unwrap().len(), 2);
    let (_, body) = testkit::http_request(
        &i.address,
        "GET",
        "/api/v1/namespaces/default/pods",
        &[("Authorization", auth)],
        None,
    )
    .unwrap();
    let list: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        list["items"].as_array().unwrap().len(),
        0,
        "no pods in another namespace"
    );
}

fn mode_of(path: &std::path::Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn tls_is_the_default_and_the_kubeconfig_and_pki_files_carry_the_ca() {
    use base64::Engine;
    let b64 = |pem: &str| base64::engine::general_purpose::STANDARD.encode(pem);
    let dir = TempDirGuard::new("podsim-pki");
    let kc = dir.path().join("kubeconfig");
    let pki = dir.path().join("pki");
    let r = spawn_as_is(&[
        "--pods",
        "1",
        "--kubeconfig-out",
        kc.to_str().unwrap(),
        "--pki-out",
        pki.to_str().unwrap(),
    ]);
    let i = &r.info;
    assert!(i.tls);
    assert_eq!(i.http_base, format!("https://{}", i.address));
    assert_eq!(i.ws_base, format!("wss://{}", i.address));
    assert!(i.pods[0].plaintty_url.starts_with("wss://"));
    assert_ne!(
        i.admin_address, i.address,
        "a plain-HTTP admin port beside TLS"
    );
    let ca = i.ca_cert_pem.as_deref().expect("CA in the ready line");
    let cert = i.client_cert_pem.as_deref().expect("client certificate");
    let key = i.client_key_pem.as_deref().expect("client key");
    assert!(ca.starts_with("-----BEGIN CERTIFICATE-----"), "{ca}");
    assert!(cert.starts_with("-----BEGIN CERTIFICATE-----"), "{cert}");
    assert!(key.starts_with("-----BEGIN PRIVATE KEY-----"), "PKCS#8");
    assert_ne!(ca, cert);

    let text = std::fs::read_to_string(&kc).unwrap();
    assert!(
        text.contains(&format!("server: https://{}\n", i.address)),
        "{text}"
    );
    assert!(
        text.contains(&format!("certificate-authority-data: {}\n", b64(ca))),
        "{text}"
    );
    assert!(!text.contains("insecure-skip-tls-verify"), "{text}");
    assert!(
        text.contains(&format!("client-certificate-data: {}\n", b64(cert))),
        "{text}"
    );
    assert!(
        text.contains(&format!("client-key-data: {}\n", b64(key))),
        "{text}"
    );
    assert!(text.contains("- name: podsim-cert\n"), "{text}");
    assert!(text.contains("    user: podsim-cert\n"), "{text}");
    assert!(text.contains("current-context: podsim\n"), "{text}");
    assert_eq!(
        mode_of(&kc),
        0o600,
        "the kubeconfig holds a token and a key"
    );

    let read = |name: &str| std::fs::read_to_string(pki.join(name)).unwrap();
    assert_eq!(read("ca.crt"), ca);
    assert_eq!(read("client.crt"), cert);
    assert_eq!(read("client.key"), key);
    assert_eq!(mode_of(&pki.join("client.key")), 0o600);

    // The admin port needs no TLS client.
    let (status, _) =
        testkit::http_request(&i.admin_address, "GET", "/_podsim/stats", &[], None).unwrap();
    assert_eq!(status, 200);
}

#[test]
fn every_run_makes_a_new_ca() {
    let a = spawn_as_is(&["--pods", "1"]);
    let b = spawn_as_is(&["--pods", "1"]);
    assert_ne!(a.info.ca_cert_pem, b.info.ca_cert_pem);
    assert_ne!(a.info.client_key_pem, b.info.client_key_pem);
}

#[test]
fn the_old_tls_switch_still_starts_a_tls_podsim() {
    let r = spawn_as_is(&["--pods", "1", "--tls"]);
    assert!(r.info.tls);
    assert!(r.info.ca_cert_pem.is_some());
}

#[test]
fn contradictory_or_unsafe_tls_options_fail_with_a_message() {
    let dir = TempDirGuard::new("podsim-pki-plain");
    let pki = dir.path().join("pki");
    for (args, mentions) in [
        (vec!["--plain-http", "--tls"], "--plain-http"),
        (
            vec!["--plain-http", "--pki-out", pki.to_str().unwrap()],
            "--pki-out",
        ),
        // Tokens in clear text beyond loopback: refused.
        (vec!["--plain-http", "--listen", "0.0.0.0:0"], "loopback"),
    ] {
        let listen = match args.contains(&"--listen") {
            true => vec![],
            false => vec!["--listen", "127.0.0.1:0"],
        };
        let out = Command::new(env!("CARGO_BIN_EXE_podsim"))
            .args(listen)
            .args(&args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} must fail");
        assert!(out.stdout.is_empty(), "nothing on stdout when not ready");
        assert!(stderr.contains(mentions), "{args:?}: {stderr}");
    }
    assert!(!pki.exists(), "nothing written when refusing to start");
}

#[test]
fn a_random_token_is_generated_and_required() {
    let r = spawn(&["--pods", "1"]);
    assert!(r.info.token.len() >= 32, "{}", r.info.token);
    let (status, _) = testkit::http_request(&r.info.address, "GET", "/version", &[], None).unwrap();
    assert_eq!(status, 401);
    let auth = format!("Bearer {}", r.info.token);
    let (status, body) = testkit::http_request(
        &r.info.address,
        "GET",
        "/version",
        &[("Authorization", &auth)],
        None,
    )
    .unwrap();
    assert_eq!(status, 200);
    assert!(body.contains("gitVersion"));
    let other = spawn(&["--pods", "1"]);
    assert_ne!(other.info.token, r.info.token);
}

#[test]
fn invalid_options_fail_with_a_message() {
    let out = Command::new(env!("CARGO_BIN_EXE_podsim"))
        .args(["--app", "Not_A_Label"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(out.stdout.is_empty(), "nothing on stdout when not ready");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--app"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn closing_stdin_stops_podsim_and_its_shells() {
    let mut r = spawn(&["--pods", "1", "--exit-on-stdin-close"]);
    let (_ws, pid) = sleeper(&r.info).await;
    assert!(!process_gone(pid));
    drop(r.child.stdin.take());
    assert!(
        wait_until(LONG, || matches!(r.child.try_wait(), Ok(Some(_)))),
        "podsim must exit"
    );
    assert!(
        wait_until(LONG, || process_gone(pid)),
        "the shell {pid} must die with podsim"
    );
}

#[tokio::test]
async fn killing_podsim_kills_its_shells() {
    let mut r = spawn(&["--pods", "1"]);
    let (_ws, pid) = sleeper(&r.info).await;
    r.child.kill().unwrap();
    r.child.wait().unwrap();
    assert!(
        wait_until(Duration::from_secs(30), || process_gone(pid)),
        "the shell {pid} must not outlive a SIGKILLed podsim"
    );
}

#[tokio::test]
async fn sigterm_stops_podsim_kills_shells_and_removes_its_temporary_workdir() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_podsim"))
        .args(["--listen", "127.0.0.1:0", "--pods", "1", "--plain-http"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let info: PodsimInfo = serde_json::from_str(&line).unwrap();
    let mut r = Running {
        child,
        info,
        _dir: TempDirGuard::new("podsim-unused"),
    };
    let workdir = r.info.workdir.clone().expect("workdir in the ready line");
    let (_ws, pid) = sleeper(&r.info).await;
    assert!(workdir.join(&r.info.pods[0].name).is_dir());
    // SAFETY: signalling our own child process.
    unsafe { libc::kill(r.child.id() as i32, libc::SIGTERM) };
    assert!(wait_until(
        LONG,
        || matches!(r.child.try_wait(), Ok(Some(s)) if s.success())
    ));
    assert!(wait_until(LONG, || process_gone(pid)));
    assert!(!workdir.exists(), "{} must be removed", workdir.display());
}
