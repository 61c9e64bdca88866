//! pwctl health and pwctl pod ... against a real daemon and podsim: text, `--json` shapes and
//! exit codes, plus the errors a person meets first (no daemon, unknown alias, bad input).

mod common;

use common::{Home, Stack};
use podwrangler::api::{Health, ImportResponse, PodInfo};
use testkit::PodsimOptions;

#[test]
fn health_reports_the_daemon_in_text_and_json() {
    let s = Stack::start(1);
    let text = s.run(&["health"]);
    text.ok();
    assert!(text.stdout.contains("podwranglerd"), "{}", text.stdout);
    assert!(text.stdout.contains(": ok"), "{}", text.stdout);
    assert!(
        text.stdout.contains("database: sqlite ok"),
        "{}",
        text.stdout
    );

    let json = s.run(&["health", "--json"]);
    json.ok();
    let h: Health = serde_json::from_str(&json.stdout).expect("Health JSON");
    assert_eq!(h.status, "ok");
    assert_eq!(h.database.backend, "sqlite");
    assert!(h.database.ok);
}

#[test]
fn pods_are_added_listed_shown_updated_and_removed() {
    let s = Stack::start(2);
    let url = &s.sim.info.pods[0].plaintty_url;

    let added = s.run(&[
        "--json", "pod", "add", "--alias", "web-0", "--url", url, "--tag", "blue",
    ]);
    added.ok();
    let p: PodInfo = serde_json::from_str(&added.stdout).expect("PodInfo JSON");
    assert_eq!(p.alias, "web-0");
    assert_eq!(p.provider.as_str(), "plaintty", "guessed from the URL");
    assert_eq!(p.identity.pod_name, "web-5d8f7-00000");
    assert!(p.has_token);
    assert_eq!(p.tags, ["blue"]);
    // The token never comes back.
    assert!(!added.stdout.contains("sim-token"), "{}", added.stdout);

    let text = s.run(&[
        "pod",
        "add",
        "--alias",
        "web-1",
        "--url",
        &s.sim.info.pods[1].plaintty_url,
    ]);
    text.ok();
    assert!(text.stdout.contains("registered web-1"), "{}", text.stdout);

    let list = s.run(&["pod", "list"]);
    list.ok();
    assert!(list.stdout.contains("ALIAS"), "{}", list.stdout);
    for alias in ["web-0", "web-1"] {
        assert!(list.stdout.contains(alias), "{}", list.stdout);
    }
    assert!(list.stdout.contains("web-5d8f7-00001"));

    let pods: Vec<PodInfo> =
        serde_json::from_str(&s.run(&["pod", "list", "--json"]).stdout).unwrap();
    assert_eq!(pods.len(), 2);

    let quiet = s.run(&["pod", "list", "-q", "--tag", "blue"]);
    quiet.ok();
    assert_eq!(quiet.stdout, "web-0\n");

    let show = s.run(&["pod", "show", "web-0"]);
    show.ok();
    assert!(show.stdout.contains("web-5d8f7-00000"), "{}", show.stdout);
    assert!(show.stdout.contains("token:"), "{}", show.stdout);
    assert!(!show.stdout.contains("sim-token"), "{}", show.stdout);

    let updated = s.run(&[
        "pod", "update", "web-1", "--tag", "green", "--tag", "canary", "--json",
    ]);
    updated.ok();
    let p: PodInfo = serde_json::from_str(&updated.stdout).unwrap();
    let mut tags = p.tags.clone();
    tags.sort();
    assert_eq!(tags, ["canary", "green"]);
    let cleared: PodInfo = serde_json::from_str(
        &s.run(&["pod", "update", "web-1", "--clear-tags", "--json"])
            .stdout,
    )
    .unwrap();
    assert!(cleared.tags.is_empty());

    let removed = s.run(&["pod", "remove", "web-0", "--json"]);
    removed.ok();
    assert_eq!(removed.json()["removed"], serde_json::json!(["web-0"]));
    let pods: Vec<PodInfo> =
        serde_json::from_str(&s.run(&["pod", "list", "--json"]).stdout).unwrap();
    assert_eq!(
        pods.iter().map(|p| p.alias.as_str()).collect::<Vec<_>>(),
        ["web-1"]
    );
}

#[test]
fn unknown_aliases_taken_aliases_and_bad_fields_read_clearly() {
    let s = Stack::start(1);
    let url = &s.sim.info.pods[0].plaintty_url;

    for args in [
        vec!["pod", "show", "web-9"],
        vec!["pod", "remove", "web-9"],
        vec!["pod", "update", "web-9", "--tag", "x"],
        vec!["exec", "run", "web-9", "true"],
    ] {
        let r = s.run(&args);
        r.expect_code(1);
        assert_eq!(
            r.stderr.trim(),
            "error: no pod named web-9 (pwctl pod list shows the aliases)",
            "{args:?}"
        );
    }

    s.run(&["pod", "add", "--alias", "web-0", "--url", url])
        .ok();
    let dup = s.run(&["pod", "add", "--alias", "web-0", "--url", url]);
    dup.expect_code(1);
    assert!(dup.stderr.contains("web-0"), "{}", dup.stderr);

    // The daemon's validation Problem is shown by its detail, exit 65.
    let bad = s.run(&["pod", "add", "--alias", "bad alias!", "--url", url]);
    bad.expect_code(65);
    assert!(bad.stderr.starts_with("error: "), "{}", bad.stderr);
    assert!(!bad.stderr.contains("problem+json"), "{}", bad.stderr);

    let nothing = s.run(&["pod", "update", "web-0"]);
    nothing.expect_code(2);
    assert!(
        nothing.stderr.contains("nothing to change"),
        "{}",
        nothing.stderr
    );
}

#[test]
fn pods_are_imported_through_the_kubernetes_api() {
    let home = Home::new();
    let kubeconfig = home.path().join("kubeconfig");
    let s = Stack::start_with(PodsimOptions {
        pods: 3,
        token: Some("k8s-token".into()),
        kubeconfig_out: Some(kubeconfig.clone()),
        ..Default::default()
    });
    let r = s.run(&[
        "pod",
        "import",
        "--kubeconfig",
        kubeconfig.to_str().unwrap(),
        "--namespace",
        "default",
        "--prefix",
        "k8s-",
        "--tag",
        "imported",
        "--json",
    ]);
    r.ok();
    let resp: ImportResponse = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(resp.registered.len(), 3, "{resp:?}");
    assert!(
        resp.registered.contains(&"k8s-web-5d8f7-00002".to_string()),
        "{resp:?}"
    );

    // Importing again skips what is there, and says so in text.
    let again = s.run(&[
        "pod",
        "import",
        "--kubeconfig",
        kubeconfig.to_str().unwrap(),
        "--prefix",
        "k8s-",
    ]);
    again.ok();
    assert!(again.stdout.contains("skipped 3"), "{}", again.stdout);

    let pods: Vec<PodInfo> = serde_json::from_str(
        &s.run(&["pod", "list", "--tag", "imported", "--json"])
            .stdout,
    )
    .unwrap();
    assert_eq!(pods.len(), 3);
    assert!(pods.iter().all(|p| p.provider.as_str() == "kubernetes"));
}

#[test]
fn no_daemon_means_exit_69_with_a_way_out() {
    let home = Home::new();
    let r = home.run(&["--socket", "/nonexistent/pw.sock", "health"]);
    r.expect_code(69);
    assert_eq!(
        r.stderr.trim(),
        "error: no daemon at /nonexistent/pw.sock (is podwranglerd running? try --local)"
    );

    // Nothing configured, no user socket: the system socket is the one named.
    if !std::path::Path::new("/run/podwrangler/podwranglerd.sock").exists() {
        let r = home.run(&["pod", "list"]);
        r.expect_code(69);
        assert_eq!(
            r.stderr.trim(),
            "error: no daemon at /run/podwrangler/podwranglerd.sock (is podwranglerd running? try --local)"
        );
    }

    // A TCP URL nobody listens on (port 1 on loopback refuses).
    let r = home.run(&["--api-url", "http://127.0.0.1:1", "health"]);
    r.expect_code(69);
    assert!(
        r.stderr.contains("no daemon at http://127.0.0.1:1"),
        "{}",
        r.stderr
    );
}

#[test]
fn usage_errors_exit_2() {
    let home = Home::new();
    let r = home.run(&["bogus"]);
    r.expect_code(2);
    assert!(r.stderr.contains("bogus"), "{}", r.stderr);
    home.run(&[]).expect_code(2);
    home.run(&["pod", "show"]).expect_code(2);
    let r = home.run(&["--socket", "/a", "--api-url", "http://b", "health"]);
    r.expect_code(2);
    assert!(r.stderr.contains("--api-url and --socket"), "{}", r.stderr);
    let help = home.run(&["--help"]);
    help.ok();
    for code in ["69", "124", "65"] {
        assert!(help.stdout.contains(code), "help lacks exit code {code}");
    }
    home.run(&["--version"]).ok();
}

#[test]
fn config_file_and_environment_choose_the_daemon() {
    let s = Stack::start(1);
    // PODWRANGLER_SOCKET is how Stack::run reaches the daemon; here use the config file.
    let cfg_dir = s.home.path().join("config").join("podwrangler");
    std::fs::create_dir_all(&cfg_dir).unwrap();
    std::fs::write(
        cfg_dir.join("pwctl.toml"),
        format!("socket = {:?}\n", s.daemon.socket.display().to_string()),
    )
    .unwrap();
    s.home.run(&["health"]).ok();

    // A flag beats the file.
    s.home
        .run(&["--socket", "/nonexistent/x.sock", "health"])
        .expect_code(69);

    // The seed's ~/.podwrangler.toml api_url counts when nothing else is set.
    std::fs::remove_file(cfg_dir.join("pwctl.toml")).unwrap();
    std::fs::write(
        s.home.path().join(".podwrangler.toml"),
        "api_url = \"http://127.0.0.1:1\"\n",
    )
    .unwrap();
    let r = s.home.run(&["health"]);
    r.expect_code(69);
    assert!(r.stderr.contains("http://127.0.0.1:1"), "{}", r.stderr);

    // A broken config file is named.
    std::fs::write(cfg_dir.join("pwctl.toml"), "sockett = 1\n").unwrap();
    let r = s.home.run(&["health"]);
    r.expect_code(78);
    assert!(r.stderr.contains("pwctl.toml"), "{}", r.stderr);
}

#[test]
fn tcp_with_an_api_key() {
    let sim = testkit::Podsim::start(1);
    let mut opts = testkit::daemon::DaemonOptions::new(testkit::bin_path("podwranglerd"));
    opts.api_key = Some("s3cret-key".into());
    let daemon = testkit::daemon::Daemon::start(opts);
    let home = Home::new();
    let url = format!("http://{}", daemon.tcp_addr());

    let r = home.run(&["--api-url", &url, "pod", "list"]);
    r.expect_code(77);
    assert!(r.stderr.contains("--api-key"), "{}", r.stderr);

    home.run(&["--api-url", &url, "--api-key", "s3cret-key", "pod", "list"])
        .ok();
    let r = home
        .command()
        .env("PODWRANGLER_API_URL", &url)
        .env("PODWRANGLER_API_KEY", "s3cret-key")
        .args([
            "pod",
            "add",
            "--alias",
            "web-0",
            "--url",
            &sim.info.pods[0].plaintty_url,
            "--json",
        ])
        .output()
        .unwrap();
    let r: common::Run = r.into();
    r.ok();
    assert!(!r.stdout.contains("s3cret-key") && !r.stderr.contains("s3cret-key"));
}

#[test]
fn colour_follows_no_color_and_the_flag() {
    let s = Stack::start(1);
    // IGNORE_IS_TERMINAL makes the colour check treat the pipe as a terminal.
    let coloured = |extra: &[(&str, &str)], args: &[&str]| -> String {
        let mut cmd = s.command();
        cmd.env("IGNORE_IS_TERMINAL", "1")
            .env("TERM", "xterm-256color");
        for (k, v) in extra {
            cmd.env(k, v);
        }
        let r: common::Run = cmd.args(args).output().unwrap().into();
        r.ok();
        r.stdout
    };
    assert!(
        coloured(&[], &["health"]).contains("\u{1b}["),
        "colour expected on a terminal"
    );
    assert!(!coloured(&[("NO_COLOR", "1")], &["health"]).contains("\u{1b}["));
    assert!(!coloured(&[], &["--no-color", "health"]).contains("\u{1b}["));
    // A plain pipe gets none either.
    assert!(!s.run(&["health"]).stdout.contains("\u{1b}["));
}
