//! Integration-test support: real podsim and podwranglerd processes that clean up after themselves.
//!
//! Blocking and std-only (plus serde), so any test, async or not, can use it. Processes are
//! killed and reaped on `Drop`, even when the test panics; podsim is also started with
//! `--exit-on-stdin-close`, so a test process that dies outright takes its podsim with it.

pub mod daemon;
pub mod http;
pub mod pg;
pub mod tmpfs;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};

/// The JSON line podsim prints when it is ready.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PodsimInfo {
    pub address: String,
    pub http_base: String,
    pub ws_base: String,
    pub namespace: String,
    pub token: String,
    pub tls: bool,
    pub kubeconfig: Option<PathBuf>,
    pub pods: Vec<SimPod>,
    /// Plain-HTTP address of the `/_podsim` admin endpoints (differs from `address` with TLS).
    #[serde(default)]
    pub admin_address: String,
    /// PEM of podsim's throwaway CA when `tls` is on: it signed the server certificate and the
    /// client certificate below.
    #[serde(default)]
    pub ca_cert_pem: Option<String>,
    /// PEM of the client certificate (CN `podsim-admin`) podsim accepts instead of the token,
    /// when `tls` is on.
    #[serde(default)]
    pub client_cert_pem: Option<String>,
    /// PEM (PKCS#8) of the client certificate's private key, when `tls` is on.
    #[serde(default)]
    pub client_key_pem: Option<String>,
    /// Directory holding each pod's home directory (`<workdir>/<pod name>`).
    #[serde(default)]
    pub workdir: Option<PathBuf>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct SimPod {
    pub name: String,
    pub namespace: String,
    pub plaintty_url: String,
    pub exec_path: String,
}

/// How to start podsim; `PodsimOptions { pods: 3, ..Default::default() }`.
#[derive(Clone, Debug)]
pub struct PodsimOptions {
    pub pods: usize,
    pub namespace: Option<String>,
    pub token: Option<String>,
    /// Serve https/wss with podsim's throwaway CA (podsim's own default). Off by default here,
    /// so tests get plain http/ws (`--plain-http`) unless they ask.
    pub tls: bool,
    /// Where podsim writes a kubeconfig (`--kubeconfig-out`, mode 0600): plain http and the token
    /// without `tls`; with it, the CA, the token context (current) and the `podsim-cert` context.
    pub kubeconfig_out: Option<PathBuf>,
    pub app: Option<String>,
    /// Any further command-line arguments.
    pub extra_args: Vec<String>,
}

impl Default for PodsimOptions {
    fn default() -> Self {
        PodsimOptions {
            pods: 3,
            namespace: None,
            token: None,
            tls: false,
            kubeconfig_out: None,
            app: None,
            extra_args: Vec::new(),
        }
    }
}

/// A running podsim. Killed (and reaped) on drop.
pub struct Podsim {
    pub info: PodsimInfo,
    child: Child,
    _stdin: Option<ChildStdin>,
    /// The pods' home directories; removed on drop after the process is gone.
    workdir: TempDirGuard,
}

impl Podsim {
    /// Starts podsim with `pods` pods and default options. Panics with a clear message on failure.
    pub fn start(pods: usize) -> Podsim {
        Podsim::start_with(PodsimOptions {
            pods,
            ..Default::default()
        })
    }

    pub fn start_with(opts: PodsimOptions) -> Podsim {
        let bin = bin_path("podsim");
        let workdir = TempDirGuard::new("podsim-test");
        let mut cmd = Command::new(&bin);
        cmd.arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--pods")
            .arg(opts.pods.to_string())
            .arg("--workdir")
            .arg(&workdir.0)
            .arg("--exit-on-stdin-close");
        if let Some(ns) = &opts.namespace {
            cmd.arg("--namespace").arg(ns);
        }
        if let Some(t) = &opts.token {
            cmd.arg("--token").arg(t);
        }
        if !opts.tls {
            cmd.arg("--plain-http");
        }
        if let Some(k) = &opts.kubeconfig_out {
            cmd.arg("--kubeconfig-out").arg(k);
        }
        if let Some(a) = &opts.app {
            cmd.arg("--app").arg(a);
        }
        cmd.args(&opts.extra_args);
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("testkit: could not start {}: {e}", bin.display()));
        let stdout = child.stdout.take().expect("stdout is piped");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            let res = reader.read_line(&mut line).map(|_| line);
            let _ = tx.send(res);
            // Keep draining so podsim never blocks on a full stdout pipe.
            let _ = std::io::copy(&mut reader, &mut std::io::sink());
        });
        let line = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(Ok(line)) if !line.trim().is_empty() => line,
            other => {
                let _ = child.kill();
                let status = child.wait();
                panic!(
                    "testkit: podsim ({}) did not print its ready line: {other:?}; exit status {status:?}",
                    bin.display()
                );
            }
        };
        let mut info: PodsimInfo = match serde_json::from_str(&line) {
            Ok(i) => i,
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("testkit: podsim's ready line is not the expected JSON ({e}): {line}");
            }
        };
        if info.admin_address.is_empty() {
            info.admin_address = info.address.clone();
        }
        Podsim {
            info,
            _stdin: child.stdin.take(),
            child,
            workdir,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// PEM of podsim's CA (TLS only): trust it to verify podsim's server certificate.
    pub fn ca_cert_pem(&self) -> Option<&str> {
        self.info.ca_cert_pem.as_deref()
    }

    /// PEM of the client certificate podsim accepts instead of the token (TLS only).
    pub fn client_cert_pem(&self) -> Option<&str> {
        self.info.client_cert_pem.as_deref()
    }

    /// PEM of the client certificate's private key (TLS only).
    pub fn client_key_pem(&self) -> Option<&str> {
        self.info.client_key_pem.as_deref()
    }

    /// Directory holding every pod's home directory (`<workdir>/<pod name>`).
    pub fn workdir(&self) -> &Path {
        &self.workdir.0
    }

    /// Names of the pods, in order.
    pub fn pod_names(&self) -> Vec<String> {
        self.info.pods.iter().map(|p| p.name.clone()).collect()
    }

    /// Injects faults into `pod` (`{"drop_now":true}`, `{"latency_ms":200}`, ...). Panics unless
    /// podsim accepts them.
    pub fn admin(&self, pod: &str, fault_json: &str) {
        let (status, body) = self.admin_request(
            "POST",
            &format!("/_podsim/pods/{pod}/faults"),
            Some(fault_json),
        );
        assert_eq!(
            status, 200,
            "testkit: podsim rejected faults {fault_json} for {pod}: {body}"
        );
    }

    pub fn clear_faults(&self, pod: &str) {
        let (status, body) =
            self.admin_request("DELETE", &format!("/_podsim/pods/{pod}/faults"), None);
        assert_eq!(
            status, 200,
            "testkit: clearing faults of {pod} failed: {body}"
        );
    }

    /// `{"connections_total":N,"connections_live":N,"faults":{..}}` of one pod.
    pub fn stats(&self, pod: &str) -> serde_json::Value {
        self.admin_json(&format!("/_podsim/pods/{pod}/stats"))
    }

    /// Totals and memory (`rss_bytes`, `children_rss_bytes`, `total_rss_bytes`, PSS likewise).
    pub fn global_stats(&self) -> serde_json::Value {
        self.admin_json("/_podsim/stats")
    }

    fn admin_json(&self, path: &str) -> serde_json::Value {
        let (status, body) = self.admin_request("GET", path, None);
        assert_eq!(status, 200, "testkit: GET {path} failed: {body}");
        serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("testkit: GET {path}: bad JSON ({e}): {body}"))
    }

    /// One plain-HTTP request to the admin address; returns (status, body).
    pub fn admin_request(&self, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
        http_request(&self.info.admin_address, method, path, &[], body)
            .unwrap_or_else(|e| panic!("testkit: {method} {path} to podsim failed: {e}"))
    }
}

impl Drop for Podsim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One request to a local test server over TCP (`Connection: close`); answers (status, body).
pub fn http_request(
    address: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> std::io::Result<(u16, String)> {
    http::tcp_request(address, method, path, headers, body)
}

/// Polls `f` every 20 ms until it returns true or `deadline` has passed; returns the last result.
pub fn wait_until(deadline: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + deadline;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The workspace root (testkit lives one level below it).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("testkit is inside the workspace")
        .to_path_buf()
}

/// `target/<profile>` of the running test binary (`.../target/debug/deps/test-xxxx`).
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let mut dir = exe
        .parent()
        .expect("test binary has a directory")
        .to_path_buf();
    if dir.ends_with("deps") {
        dir.pop();
    }
    dir
}

fn package_of(bin: &str) -> &str {
    match bin {
        "podsim" | "bench" => "podsim",
        "podwranglerd" => "podwranglerd",
        "pwctl" => "pwctl",
        other => other,
    }
}

fn newest_mtime(dir: &Path) -> Option<SystemTime> {
    let mut newest = None;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            let Ok(meta) = e.metadata() else { continue };
            if meta.is_dir() {
                stack.push(p);
            } else if let Ok(m) = meta.modified() {
                newest = newest.max(Some(m));
            }
        }
    }
    newest
}

/// Path of a workspace binary in the same `target/<profile>` as the running test. Builds it with
/// `cargo build -p <package> --bin <name>` when it is missing or older than its package's sources
/// or the shared library's (once per test process and binary).
///
/// `TESTKIT_BIN_DIR=/path/to/dir` uses `<dir>/<name>` as is (e.g. release or packaged binaries).
pub fn bin_path(name: &str) -> PathBuf {
    if let Some(dir) = std::env::var_os("TESTKIT_BIN_DIR") {
        let path = PathBuf::from(dir).join(name);
        assert!(
            path.is_file(),
            "testkit: TESTKIT_BIN_DIR has no {}",
            path.display()
        );
        return path;
    }
    static BUILT: OnceLock<Mutex<Vec<String>>> = OnceLock::new();
    let dir = profile_dir();
    let path = dir.join(name);
    let built = BUILT.get_or_init(|| Mutex::new(Vec::new()));
    let mut built = built.lock().unwrap_or_else(|p| p.into_inner());
    if built.iter().any(|b| b == name) {
        return path;
    }
    let pkg = package_of(name);
    let root = workspace_root();
    let pkg_dir = match pkg {
        "podsim" => "sim",
        "podwranglerd" => "daemon",
        "pwctl" => "ctl",
        other => other,
    };
    let bin_time = std::fs::metadata(&path).and_then(|m| m.modified()).ok();
    let src_time = [
        root.join(pkg_dir).join("src"),
        root.join("shared").join("src"),
    ]
    .iter()
    .filter_map(|d| newest_mtime(d))
    .max();
    let stale = match (bin_time, src_time) {
        (None, _) => true,
        (Some(b), Some(s)) => s > b,
        (Some(_), None) => false,
    };
    if stale {
        let profile = dir.file_name().and_then(|n| n.to_str()).unwrap_or("debug");
        let target_dir = dir
            .parent()
            .expect("profile dir has a parent")
            .to_path_buf();
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
        let mut cmd = Command::new(cargo);
        cmd.current_dir(&root)
            .arg("build")
            .arg("-p")
            .arg(pkg)
            .arg("--bin")
            .arg(name)
            .env("CARGO_TARGET_DIR", &target_dir);
        if profile == "release" {
            cmd.arg("--release");
        }
        let status = cmd
            .status()
            .unwrap_or_else(|e| panic!("testkit: could not run cargo to build {name}: {e}"));
        if !status.success() {
            // Another crate's work in progress may not compile right now; an older binary is
            // better than no test run at all, so only fail when there is none.
            assert!(
                bin_time.is_some(),
                "testkit: `cargo build -p {pkg} --bin {name}` failed and there is no older build"
            );
            eprintln!(
                "testkit: WARNING: rebuilding {name} failed; using the older {}",
                path.display()
            );
        }
    }
    assert!(
        path.exists(),
        "testkit: {} does not exist after building",
        path.display()
    );
    built.push(name.to_string());
    path
}

/// A temporary directory removed on drop (std-only stand-in for tempfile::TempDir).
pub struct TempDirGuard(pub PathBuf);

impl TempDirGuard {
    pub fn new(prefix: &str) -> TempDirGuard {
        static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let dir = std::env::temp_dir().join(format!("{prefix}-{}-{n}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir)
            .unwrap_or_else(|e| panic!("testkit: creating {}: {e}", dir.display()));
        TempDirGuard(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDirGuard {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
