//! Kubernetes credentials end to end: pwctl reads the user's kubeconfig itself (its exec plugin
//! runs as a child of pwctl, never of the daemon), sends podsim's token explicitly, and the pods
//! then run commands; a cluster the daemon's configuration names is used by name; kubeconfig
//! problems exit 65 before the daemon is asked anything.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::{Home, Run, Stack};
use podwrangler::api::{ClusterInfo, ImportResponse, PodInfo};
use testkit::PodsimOptions;

const TOKEN: &str = "plugin-token";
const NAMESPACE: &str = "team-a";

/// Runs pwctl and returns what it did with its process id, so a test can tell what pwctl
/// itself started.
fn run_with_pid(mut cmd: Command, args: &[&str]) -> (Run, u32) {
    let child = cmd
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start pwctl");
    let pid = child.id();
    let output = child.wait_with_output().expect("wait for pwctl");
    (output.into(), pid)
}

/// An exec plugin that prints an ExecCredential with `token`, and appends its parent's pid and
/// its uid to `marker` (kube runs plugins directly, so the parent is whoever resolved the
/// kubeconfig).
fn write_plugin(dir: &Path, token: &str, marker: &Path) -> PathBuf {
    let plugin = dir.join("credential-plugin.sh");
    std::fs::write(
        &plugin,
        format!(
            "#!/bin/sh\necho \"$PPID $(id -u)\" >> '{}'\nprintf '%s' '{{\"apiVersion\":\"client.authentication.k8s.io/v1\",\"kind\":\"ExecCredential\",\"status\":{{\"token\":\"{token}\"}}}}'\n",
            marker.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&plugin, std::fs::Permissions::from_mode(0o755)).unwrap();
    plugin
}

/// A kubeconfig for podsim with two contexts: `plugin` (the exec plugin, namespace team-a) and
/// `stale` (a token podsim refuses); `current` is the current one.
fn write_kubeconfig(dir: &Path, server: &str, plugin: &Path, current: &str) -> PathBuf {
    let path = dir.join(format!("kubeconfig-{current}"));
    std::fs::write(
        &path,
        format!(
            r#"apiVersion: v1
kind: Config
current-context: {current}
clusters:
- name: sim
  cluster:
    server: {server}
contexts:
- name: plugin
  context: {{cluster: sim, user: plugin-user, namespace: {NAMESPACE}}}
- name: stale
  context: {{cluster: sim, user: stale-user}}
users:
- name: plugin-user
  user:
    exec:
      apiVersion: client.authentication.k8s.io/v1
      command: {}
      interactiveMode: Never
- name: stale-user
  user:
    token: not-the-token
"#,
            plugin.display()
        ),
    )
    .unwrap();
    path
}

/// The parent pids and uids the plugin recorded.
fn plugin_runs(marker: &Path) -> Vec<(u32, u32)> {
    std::fs::read_to_string(marker)
        .unwrap_or_default()
        .lines()
        .map(|l| {
            let (ppid, uid) = l.split_once(' ').expect("ppid uid");
            (ppid.parse().unwrap(), uid.parse().unwrap())
        })
        .collect()
}

#[track_caller]
fn assert_plugin_ran_in(marker: &Path, pwctl_pid: u32, daemon_pid: u32) {
    let runs = plugin_runs(marker);
    assert!(!runs.is_empty(), "the exec plugin never ran");
    // SAFETY: geteuid has no preconditions.
    let uid = unsafe { libc::geteuid() };
    for (ppid, plugin_uid) in runs {
        assert_eq!(ppid, pwctl_pid, "the plugin was not started by pwctl");
        assert_ne!(ppid, daemon_pid, "the daemon ran the caller's plugin");
        assert_eq!(plugin_uid, uid, "the plugin ran as another user");
    }
}

fn sim_stack(pods: usize) -> Stack {
    Stack::start_with(PodsimOptions {
        pods,
        namespace: Some(NAMESPACE.into()),
        token: Some(TOKEN.into()),
        ..Default::default()
    })
}

#[test]
fn import_runs_the_users_exec_plugin_in_pwctl_and_the_pods_run_commands() {
    let s = sim_stack(2);
    let marker = s.home.path().join("plugin-ran");
    let plugin = write_plugin(s.home.path(), TOKEN, &marker);
    let kubeconfig = write_kubeconfig(s.home.path(), &s.sim.info.http_base, &plugin, "plugin");

    // No --kubeconfig, --context or -n: found through $KUBECONFIG as kubectl would, and the
    // namespace is the context's.
    let mut cmd = s.command();
    cmd.env("KUBECONFIG", &kubeconfig);
    let (r, pid) = run_with_pid(cmd, &["pod", "import", "--prefix", "k8s-", "--json"]);
    r.ok();
    let resp: ImportResponse = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(resp.registered.len(), 2, "{resp:?}");
    assert_plugin_ran_in(&marker, pid, s.daemon.pid());

    let pods: Vec<PodInfo> =
        serde_json::from_str(&s.run(&["pod", "list", "--json"]).stdout).expect("pod list JSON");
    assert_eq!(pods.len(), 2);
    for p in &pods {
        assert_eq!(p.provider.as_str(), "kubernetes");
        assert_eq!(p.identity.namespace.as_deref(), Some(NAMESPACE));
        assert!(p.has_token, "{p:?}");
    }

    let r = s.run(&[
        "exec",
        "run",
        "k8s-web-5d8f7-00001",
        "echo $POD_NAME $POD_NAMESPACE",
    ]);
    r.ok();
    assert_eq!(r.stdout, format!("web-5d8f7-00001 {NAMESPACE}\n"));
    let fan_out = s.run(&["exec", "run-many", "--all", "true"]);
    fan_out.ok();

    // The token reached the daemon as a value to keep, never to log or show.
    assert!(
        !s.daemon.log().contains(TOKEN),
        "the daemon logged the token"
    );
    assert!(!r.stdout.contains(TOKEN) && !fan_out.stdout.contains(TOKEN));
}

#[test]
fn pod_add_reads_the_named_kubeconfig_and_context() {
    let s = sim_stack(2);
    let marker = s.home.path().join("plugin-ran");
    let plugin = write_plugin(s.home.path(), TOKEN, &marker);
    // The current context would fail; --context picks the plugin's.
    let kubeconfig = write_kubeconfig(s.home.path(), &s.sim.info.http_base, &plugin, "stale");
    let (r, pid) = run_with_pid(
        s.command(),
        &[
            "pod",
            "add",
            "--alias",
            "kc-1",
            "--provider",
            "kubernetes",
            "--pod-name",
            "web-5d8f7-00001",
            "--kubeconfig",
            kubeconfig.to_str().unwrap(),
            "--context",
            "plugin",
            "--json",
        ],
    );
    r.ok();
    let p: PodInfo = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(p.identity.namespace.as_deref(), Some(NAMESPACE));
    assert_plugin_ran_in(&marker, pid, s.daemon.pid());

    let r = s.run(&["exec", "run", "kc-1", "echo $POD_NAME; pwd >/dev/null"]);
    r.ok();
    assert_eq!(r.stdout, "web-5d8f7-00001\n");

    // A URL on the context's own server: the URL names server and namespace, the kubeconfig
    // the credentials.
    let url = format!(
        "{}/api/v1/namespaces/{NAMESPACE}/pods/web-5d8f7-00000/exec",
        s.sim.info.http_base
    );
    std::fs::remove_file(&marker).unwrap();
    let (r, pid) = run_with_pid(
        s.command(),
        &[
            "pod",
            "add",
            "--alias",
            "kc-0",
            "--url",
            &url,
            "--kubeconfig",
            kubeconfig.to_str().unwrap(),
            "--context",
            "plugin",
        ],
    );
    r.ok();
    assert_plugin_ran_in(&marker, pid, s.daemon.pid());
    s.run(&["exec", "run", "kc-0", "true"]).ok();
}

#[test]
fn explicit_server_and_token_read_no_kubeconfig() {
    let s = sim_stack(1);
    // HOME has no ~/.kube/config: reading one would fail.
    let token_file = s.home.path().join("token");
    std::fs::write(&token_file, TOKEN).unwrap();
    s.run(&[
        "pod",
        "import",
        "--server",
        &s.sim.info.http_base,
        "--token-file",
        token_file.to_str().unwrap(),
        "-n",
        NAMESPACE,
    ])
    .ok();
    s.run(&["exec", "run", "web-5d8f7-00000", "true"]).ok();
}

#[test]
fn a_cluster_the_daemon_configured_is_listed_and_used_by_name() {
    let secrets = testkit::TempDirGuard::new("pwctl-cluster");
    let token_file = secrets.path().join("sim-token");
    std::fs::write(&token_file, TOKEN).unwrap();
    let s = Stack::start_configured(
        PodsimOptions {
            pods: 2,
            namespace: Some(NAMESPACE.into()),
            token: Some(TOKEN.into()),
            ..Default::default()
        },
        |sim, d| {
            d.config_toml = Some(format!(
                "[clusters.sim]\nserver = {:?}\ntoken_file = {:?}\n",
                sim.info.http_base,
                token_file.display().to_string()
            ));
        },
    );

    let r = s.run(&["clusters"]);
    r.ok();
    assert!(r.stdout.contains("NAME"), "{}", r.stdout);
    assert!(
        r.stdout
            .lines()
            .any(|l| l.contains("sim") && l.contains("token_file")),
        "{}",
        r.stdout
    );
    let listed: Vec<ClusterInfo> =
        serde_json::from_str(&s.run(&["clusters", "--json"]).stdout).expect("[ClusterInfo]");
    assert_eq!(
        listed,
        [ClusterInfo {
            name: "sim".into(),
            source: "token_file".into()
        }]
    );

    // HOME has no kubeconfig: --cluster must not read one.
    let r = s.run(&[
        "pod",
        "import",
        "--cluster",
        "sim",
        "-n",
        NAMESPACE,
        "--prefix",
        "c-",
        "--json",
    ]);
    r.ok();
    let resp: ImportResponse = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(resp.registered.len(), 2, "{resp:?}");
    s.run(&[
        "pod",
        "add",
        "--alias",
        "one",
        "--pod-name",
        "web-5d8f7-00000",
        "--cluster",
        "sim",
        "-n",
        NAMESPACE,
    ])
    .ok();
    for alias in ["c-web-5d8f7-00001", "one"] {
        let r = s.run(&["exec", "run", alias, "echo $POD_NAME"]);
        r.ok();
        assert!(r.stdout.starts_with("web-5d8f7-0000"), "{}", r.stdout);
    }
}

#[test]
fn kubeconfig_problems_exit_65_before_the_daemon_is_asked() {
    let home = Home::new();
    let marker = home.path().join("plugin-ran");
    let plugin = write_plugin(home.path(), TOKEN, &marker);
    let kubeconfig = write_kubeconfig(home.path(), "http://127.0.0.1:9", &plugin, "plugin");
    let kc = kubeconfig.to_str().unwrap();
    let failing = home.path().join("failing-plugin.sh");
    std::fs::write(&failing, "#!/bin/sh\necho 'plugin says no' >&2\nexit 3\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&failing, std::fs::Permissions::from_mode(0o755)).unwrap();
    let failing_config = write_kubeconfig(home.path(), "http://127.0.0.1:9", &failing, "stale");
    // No daemon answers here: every failure below must come first.
    let pwctl = |args: &[&str]| {
        let mut all = vec!["--socket", "/nonexistent/pw.sock"];
        all.extend_from_slice(args);
        home.run(&all)
    };

    // The default kubeconfig (~/.kube/config under this empty HOME) does not exist.
    let r = pwctl(&["pod", "import"]);
    r.expect_code(65);
    assert!(r.stderr.contains("kubeconfig"), "{}", r.stderr);
    assert!(
        r.stderr.contains("--cluster"),
        "names a way out: {}",
        r.stderr
    );

    let r = pwctl(&["pod", "import", "--kubeconfig", kc, "--context", "nope"]);
    r.expect_code(65);
    assert!(r.stderr.contains("nope"), "{}", r.stderr);

    let r = pwctl(&[
        "pod",
        "import",
        "--kubeconfig",
        failing_config.to_str().unwrap(),
        "--context",
        "plugin",
    ]);
    r.expect_code(65);
    assert!(r.stderr.starts_with("error: "), "{}", r.stderr);

    let broken = home.path().join("broken");
    std::fs::write(&broken, "clusters: [ SECRET-LINE: : :\n").unwrap();
    let r = pwctl(&["pod", "import", "--kubeconfig", broken.to_str().unwrap()]);
    r.expect_code(65);
    assert!(!r.stderr.contains("SECRET-LINE"), "{}", r.stderr);

    // Its credentials go to its own server only.
    let r = pwctl(&[
        "pod",
        "import",
        "--kubeconfig",
        kc,
        "--server",
        "https://elsewhere.example:6443",
    ]);
    r.expect_code(65);
    assert!(r.stderr.contains("own server"), "{}", r.stderr);

    // --cluster takes nothing of the caller's.
    let r = pwctl(&["pod", "import", "--cluster", "prod", "--kubeconfig", kc]);
    r.expect_code(2);
    assert!(r.stderr.contains("--kubeconfig"), "{}", r.stderr);
    let r = pwctl(&[
        "pod",
        "add",
        "--alias",
        "x",
        "--url",
        "wss://h/exec/s/?pod=p",
        "--context",
        "plugin",
    ]);
    r.expect_code(2);
    assert!(r.stderr.contains("kubernetes"), "{}", r.stderr);

    // With a working kubeconfig only the daemon is missing: 69.
    pwctl(&["pod", "import", "--kubeconfig", kc]).expect_code(69);
}

/// podsim over TLS with the kubeconfig it writes: the `podsim-cert` context authenticates with a
/// client certificate only. pwctl sends the CA, the certificate and its key; the daemon keeps
/// the key as a secret and the pods run commands over TLS verified against podsim's CA.
#[test]
fn import_with_a_client_certificate_over_tls() {
    let home = Home::new();
    let kubeconfig = home.path().join("podsim.kubeconfig");
    let s = Stack::start_with(PodsimOptions {
        pods: 2,
        tls: true,
        kubeconfig_out: Some(kubeconfig.clone()),
        ..Default::default()
    });
    let key_pem = s
        .sim
        .client_key_pem()
        .expect("podsim's client key")
        .to_owned();
    let kc = kubeconfig.display().to_string();
    let r = s.run(&[
        "pod",
        "import",
        "--kubeconfig",
        &kc,
        "--context",
        "podsim-cert",
        "--prefix",
        "c-",
        "--json",
    ]);
    r.ok();
    let resp: ImportResponse = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(resp.registered.len(), 2, "{resp:?}");
    let pods: Vec<PodInfo> =
        serde_json::from_str(&s.run(&["pod", "list", "--json"]).stdout).expect("pod list JSON");
    assert!(
        pods.iter().all(|p| p.target.starts_with("https://")),
        "{pods:?}"
    );
    let r = s.run(&["exec", "run", "c-web-5d8f7-00000", "echo cert:$POD_NAME"]);
    r.ok();
    assert_eq!(r.stdout, "cert:web-5d8f7-00000\n");
    // The private key went to the daemon to keep, never to show or log.
    let key_body: String = key_pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    assert!(
        !s.daemon.log().contains(&key_body),
        "the client key is in the log"
    );
    let listed = s.run(&["pod", "list", "--json"]).stdout;
    assert!(!listed.contains(&key_body));
}
