//! podsim's command line and lifecycle: the ready line, the kubeconfig it writes, and that its
//! shells never outlive it (stdin closed with `--exit-on-stdin-close`, or podsim SIGKILLed).

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

fn spawn(args: &[&str]) -> Running {
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
    assert!(text.contains("token: t0k3n"), "{text}");
    assert!(text.contains("namespace: team-a"), "{text}");
    assert!(!text.contains("insecure-skip-tls-verify"), "{text}");
    let mode = std::fs::metadata(&kc).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the kubeconfig holds a token");
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
        .args(["--listen", "127.0.0.1:0", "--pods", "1"])
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
