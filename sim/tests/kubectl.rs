//! The real kubectl against podsim: proof that podsim speaks the Kubernetes API and the exec
//! WebSocket protocol (v5.channel.k8s.io) the way a real API server does.
//!
//! podsim serves TLS with its own throwaway CA, and the kubeconfig it writes carries that CA
//! (never `insecure-skip-tls-verify`), a bearer-token context (current) and a `podsim-cert`
//! context that authenticates with a client certificate: kubectl verifies podsim as it would a
//! real API server, exactly as the README shows.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use testkit::{Podsim, PodsimOptions, TempDirGuard};

fn kubectl_path() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join("kubectl"))
        .find(|p| p.is_file())
}

/// kubectl, or None (and a loud message) when it is missing and not required.
fn kubectl_or_skip(test: &str) -> Option<PathBuf> {
    match kubectl_path() {
        Some(p) => Some(p),
        None if std::env::var("PODWRANGLER_REQUIRE_KUBECTL").as_deref() == Ok("1") => {
            panic!("kubectl is not on PATH but PODWRANGLER_REQUIRE_KUBECTL=1")
        }
        None => {
            eprintln!(
                "\n!!!!!!!!!! SKIPPING {test}: kubectl is not on PATH (set PODWRANGLER_REQUIRE_KUBECTL=1 to fail instead) !!!!!!!!!!\n"
            );
            None
        }
    }
}

struct Cluster {
    sim: Podsim,
    dir: TempDirGuard,
    kubectl: PathBuf,
}

struct Output {
    stdout: String,
    stderr: String,
    code: i32,
}

impl Cluster {
    fn start(test: &str, pods: usize) -> Option<Cluster> {
        Cluster::start_with(test, pods, &[])
    }

    fn start_with(test: &str, pods: usize, extra: &[&str]) -> Option<Cluster> {
        let kubectl = kubectl_or_skip(test)?;
        let dir = TempDirGuard::new("podsim-kubectl");
        let sim = Podsim::start_with(PodsimOptions {
            pods,
            tls: true,
            kubeconfig_out: Some(dir.path().join("kubeconfig")),
            extra_args: extra.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        });
        Some(Cluster { sim, dir, kubectl })
    }

    /// A long-running kubectl (a watch, an exec) whose stdout is collected as it arrives.
    fn spawn(&self, args: &[&str]) -> Background {
        let mut child = Command::new(&self.kubectl)
            .arg("--kubeconfig")
            .arg(self.kubeconfig())
            .arg("--cache-dir")
            .arg(self.dir.path().join("cache"))
            .args(args)
            .env_remove("KUBECONFIG")
            .env("HOME", self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn kubectl");
        let out = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let mut pipe = child.stdout.take().unwrap();
        let sink = out.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        Background { child, out }
    }

    fn kubeconfig(&self) -> PathBuf {
        self.dir.path().join("kubeconfig")
    }

    /// kubectl in the `podsim-cert` context: client-certificate authentication, no token.
    fn run_with_cert(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut all = vec!["--context", "podsim-cert"];
        all.extend_from_slice(args);
        self.run(&all, stdin)
    }

    fn run(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut cmd = Command::new(&self.kubectl);
        cmd.arg("--kubeconfig")
            .arg(self.kubeconfig())
            .arg("--cache-dir")
            .arg(self.dir.path().join("cache"))
            .args(args)
            .env_remove("KUBECONFIG")
            .env("HOME", self.dir.path())
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn kubectl");
        if let Some(input) = stdin {
            let mut pipe = child.stdin.take().unwrap();
            pipe.write_all(input.as_bytes()).unwrap();
        }
        let mut out = child.stdout.take().unwrap();
        let mut err = child.stderr.take().unwrap();
        let t_out = std::thread::spawn(move || {
            let mut s = String::new();
            out.read_to_string(&mut s).unwrap();
            s
        });
        let t_err = std::thread::spawn(move || {
            let mut s = String::new();
            err.read_to_string(&mut s).unwrap();
            s
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(st) = child.try_wait().unwrap() {
                break st;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("kubectl {args:?} did not finish within 60 s");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        Output {
            stdout: t_out.join().unwrap(),
            stderr: t_err.join().unwrap(),
            code: status.code().unwrap_or(-1),
        }
    }
}

struct Background {
    child: std::process::Child,
    out: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Background {
    fn output(&self) -> String {
        self.out.lock().unwrap().clone()
    }

    fn finished(&mut self) -> bool {
        self.child.try_wait().unwrap().is_some()
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn names_in(table: &str) -> Vec<String> {
    table
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

#[test]
fn kubectl_get_pods_lists_every_pod() {
    let Some(c) = Cluster::start("kubectl_get_pods_lists_every_pod", 4) else {
        return;
    };
    let out = c.run(&["get", "pods"], None);
    assert_eq!(out.code, 0, "stderr: {}", out.stderr);
    assert!(out.stdout.starts_with("NAME"), "{}", out.stdout);
    assert_eq!(names_in(&out.stdout), c.sim.pod_names());
    assert!(out.stdout.contains("Running"), "{}", out.stdout);
    // Every namespace: the same pods.
    let out = c.run(&["get", "pods", "-A", "-o", "name"], None);
    assert_eq!(out.code, 0, "stderr: {}", out.stderr);
    let want: Vec<String> = c
        .sim
        .pod_names()
        .iter()
        .map(|n| format!("pod/{n}"))
        .collect();
    assert_eq!(out.stdout.lines().collect::<Vec<_>>(), want);
}

#[test]
fn kubectl_label_selectors_filter_pods() {
    let Some(c) = Cluster::start("kubectl_label_selectors_filter_pods", 5) else {
        return;
    };
    let names = c.sim.pod_names();
    let out = c.run(&["get", "pods", "-l", "parity=even"], None);
    assert_eq!(out.code, 0, "stderr: {}", out.stderr);
    assert_eq!(
        names_in(&out.stdout),
        vec![names[0].clone(), names[2].clone(), names[4].clone()]
    );
    let out = c.run(
        &["get", "pods", "-l", "index in (1,3),app=web", "-o", "name"],
        None,
    );
    assert_eq!(out.code, 0, "stderr: {}", out.stderr);
    assert_eq!(
        out.stdout.lines().collect::<Vec<_>>(),
        vec![format!("pod/{}", names[1]), format!("pod/{}", names[3])]
    );
    let out = c.run(&["get", "pods", "-l", "app=nothing"], None);
    assert_eq!(out.code, 0, "stderr: {}", out.stderr);
    assert!(out.stdout.trim().is_empty(), "{}", out.stdout);
    assert!(out.stderr.contains("No resources found"), "{}", out.stderr);
}

#[test]
fn kubectl_get_pod_json_is_a_realistic_pod() {
    let Some(c) = Cluster::start("kubectl_get_pod_json_is_a_realistic_pod", 2) else {
        return;
    };
    let name = &c.sim.info.pods[1].name;
    let out = c.run(&["get", "pod", name, "-o", "json"], None);
    assert_eq!(out.code, 0, "stderr: {}", out.stderr);
    let pod: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(pod["kind"], "Pod");
    assert_eq!(pod["metadata"]["name"], name.as_str());
    assert_eq!(pod["metadata"]["namespace"], "default");
    assert_eq!(pod["metadata"]["labels"]["parity"], "odd");
    assert!(pod["metadata"]["uid"].as_str().unwrap().len() == 36);
    assert_eq!(pod["status"]["phase"], "Running");
    assert!(pod["status"]["podIP"].as_str().unwrap().starts_with("10."));
    let out = c.run(&["get", "pod", "web-5d8f7-77777"], None);
    assert_ne!(out.code, 0);
    assert!(
        out.stderr.contains("pods \"web-5d8f7-77777\" not found"),
        "{}",
        out.stderr
    );
}

#[test]
fn kubectl_exec_separates_streams_and_passes_the_exit_code() {
    let Some(c) = Cluster::start("kubectl_exec_separates_streams_and_passes_the_exit_code", 2)
    else {
        return;
    };
    let pod = &c.sim.info.pods[0].name;
    let out = c.run(
        &[
            "exec",
            pod,
            "--",
            "sh",
            "-c",
            "echo out; echo err >&2; exit 3",
        ],
        None,
    );
    assert_eq!(out.stdout, "out\n");
    assert!(out.stderr.starts_with("err\n"), "{:?}", out.stderr);
    assert_eq!(out.code, 3, "stderr: {}", out.stderr);

    let out = c.run(
        &["exec", pod, "--", "sh", "-c", "echo \"$POD_NAME $(pwd)\""],
        None,
    );
    assert_eq!(out.code, 0, "stderr: {}", out.stderr);
    let dir: &Path = c.sim.workdir();
    assert_eq!(out.stdout, format!("{pod} {}\n", dir.join(pod).display()));
}

#[test]
fn kubectl_exec_forwards_stdin() {
    let Some(c) = Cluster::start("kubectl_exec_forwards_stdin", 1) else {
        return;
    };
    let pod = &c.sim.info.pods[0].name;
    let out = c.run(
        &["exec", "-i", pod, "--", "sh", "-c", "tr a-z A-Z; echo end"],
        Some("hello pod\n"),
    );
    assert_eq!(out.code, 0, "stderr: {}", out.stderr);
    assert_eq!(out.stdout, "HELLO POD\nend\n");
}

#[test]
fn kubeconfig_trusts_podsims_ca_and_kubectl_verifies_it() {
    let Some(c) = Cluster::start("kubeconfig_trusts_podsims_ca_and_kubectl_verifies_it", 1) else {
        return;
    };
    let text = std::fs::read_to_string(c.kubeconfig()).unwrap();
    assert!(text.contains("certificate-authority-data: "), "{text}");
    assert!(!text.contains("insecure"), "{text}");
    let out = c.run(&["config", "current-context"], None);
    assert_eq!(out.stdout.trim(), "podsim", "stderr: {}", out.stderr);

    // Another CA in place of podsim's: kubectl must refuse the server.
    let other_ca = c.dir.path().join("other-ca.crt");
    let other = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    std::fs::write(&other_ca, other.cert.pem()).unwrap();
    let out = c.run(
        &[
            "--certificate-authority",
            other_ca.to_str().unwrap(),
            "get",
            "pods",
        ],
        None,
    );
    assert_ne!(out.code, 0, "stdout: {}", out.stdout);
    assert!(
        out.stderr
            .contains("certificate signed by unknown authority"),
        "{}",
        out.stderr
    );
}

#[test]
fn kubectl_with_the_client_certificate_context_lists_and_execs() {
    let Some(c) = Cluster::start(
        "kubectl_with_the_client_certificate_context_lists_and_execs",
        2,
    ) else {
        return;
    };
    let out = c.run_with_cert(&["get", "pods"], None);
    assert_eq!(out.code, 0, "stderr: {}", out.stderr);
    assert_eq!(names_in(&out.stdout), c.sim.pod_names());

    let pod = &c.sim.info.pods[1].name;
    let out = c.run_with_cert(
        &[
            "exec",
            pod,
            "--",
            "sh",
            "-c",
            "echo \"cert $POD_NAME\"; exit 5",
        ],
        None,
    );
    assert_eq!(out.stdout, format!("cert {pod}\n"));
    assert_eq!(out.code, 5, "stderr: {}", out.stderr);

    let out = c.run_with_cert(
        &["exec", "-i", pod, "--", "sh", "-c", "tr a-z A-Z"],
        Some("by certificate\n"),
    );
    assert_eq!(out.code, 0, "stderr: {}", out.stderr);
    assert_eq!(out.stdout, "BY CERTIFICATE\n");
}

/// `kubectl get pods -w` sees a pod deleted with `kubectl delete pod` go Terminating then
/// away, and a rollout's new pods arrive; the deleted pod's shell is killed.
#[test]
fn kubectl_delete_pod_and_get_pods_watch() {
    let Some(c) = Cluster::start_with(
        "kubectl_delete_pod_and_get_pods_watch",
        2,
        &["--termination-grace", "0.5"],
    ) else {
        return;
    };
    let pods = c.sim.pod_names();
    let victim = pods[1].clone();
    let watch = c.spawn(&["get", "pods", "-w", "--output-watch-events"]);
    assert!(
        testkit::wait_until(Duration::from_secs(30), || pods
            .iter()
            .all(|p| watch.output().contains(p.as_str()))),
        "the watch never listed the pods: {}",
        watch.output()
    );
    let mut shell = c.spawn(&["exec", &victim, "--", "sh", "-c", "echo up; sleep 600"]);
    assert!(testkit::wait_until(Duration::from_secs(30), || shell
        .output()
        .contains("up")));

    let out = c.run(&["delete", "pod", &victim], None);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout.contains(&format!("pod \"{victim}\" deleted")),
        "{}",
        out.stdout
    );
    // kubectl delete waits until the pod is gone.
    let out = c.run(&["get", "pods"], None);
    assert_eq!(names_in(&out.stdout), vec![pods[0].clone()]);
    assert!(
        testkit::wait_until(Duration::from_secs(30), || shell.finished()),
        "the deleted pod's shell is still running"
    );
    let out = c.run(&["get", "pod", &victim], None);
    assert_ne!(out.code, 0);
    assert!(
        out.stderr.contains("NotFound") || out.stderr.contains("not found"),
        "{}",
        out.stderr
    );

    let roll = c
        .sim
        .admin_request("POST", "/_podsim/rollout", Some(r#"{"wait": true}"#));
    assert_eq!(roll.0, 200, "{}", roll.1);
    let hash = serde_json::from_str::<serde_json::Value>(&roll.1).unwrap()["template_hash"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        testkit::wait_until(Duration::from_secs(30), || {
            let o = watch.output();
            o.lines()
                .any(|l| l.starts_with("DELETED") && l.contains(&pods[0]))
                && o.lines().any(|l| {
                    l.starts_with("MODIFIED")
                        && l.contains(&format!("web-{hash}-"))
                        && l.contains("1/1")
                })
        }),
        "{}",
        watch.output()
    );
    let events = watch.output();
    let about_victim: Vec<&str> = events
        .lines()
        .filter(|l| l.contains(victim.as_str()))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(about_victim.first(), Some(&"ADDED"), "{events}");
    assert_eq!(about_victim.last(), Some(&"DELETED"), "{events}");
    assert!(
        events.lines().any(|l| l.starts_with("MODIFIED")
            && l.contains(victim.as_str())
            && l.contains("Terminating")),
        "{events}"
    );
}
