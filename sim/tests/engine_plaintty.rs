//! The session engine against a real podsim through the PlainTty provider: every trap of a
//! long-lived shell (framing, quoting, stdin, timeouts, caps, drops, ordering, redaction).

#[macro_use]
mod engine_support;

use engine_support::Kind;

const KIND: Kind = Kind::PlainTty;

provider_scenarios!(KIND);

// ---- PlainTTY only --------------------------------------------------------------------------

use podwrangler::{PodRegistry, PodSession, ProviderKind, RunOptions};
use testkit::{Podsim, PodsimOptions};

/// The terminal's echo, prompts, CRs and escape sequences never reach the output.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminal_noise_is_removed() {
    let sim = Podsim::start(1);
    let s = engine_support::connect(&sim, KIND, false).await;
    let r = engine_support::run_ok(&s, "printf '\\033[31mred\\033[0m\\r\\n'; echo plain").await;
    assert_eq!(r.stdout, "red\nplain\n");
    assert!(!r.stdout.contains("printf"), "no echo of the command");
    let r =
        engine_support::run_ok(&s, "ls --color=always -d / ; tput bold 2>/dev/null; echo x").await;
    assert_eq!(r.stdout, "/\nx\n");
    assert_eq!(r.stderr, "", "a TTY merges stderr into stdout");
    // The terminal really has echo off (the engine would drop an echo before the start
    // marker anyway, but echo would cost a round of output per command).
    let r = engine_support::run_ok(
        &s,
        "stty -a </dev/tty | tr ' ;' '\\n\\n' | grep -x -e -echo -e echo",
    )
    .await;
    assert_eq!(r.stdout, "-echo\n");
    let r = engine_support::run_ok(&s, "echo to-stderr >&2").await;
    assert_eq!(r.stdout, "to-stderr\n");
}

/// The namespace is detected in the shell ($POD_NAMESPACE) when the URL does not carry it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespace_is_detected_and_registry_opens_sessions() {
    let sim = Podsim::start_with(PodsimOptions {
        pods: 2,
        namespace: Some("team-b".into()),
        ..Default::default()
    });
    let s = PodSession::from_url(&sim.info.pods[0].plaintty_url, ProviderKind::PlainTty)
        .await
        .unwrap();
    assert_eq!(s.namespace().as_deref(), Some("team-b"));
    assert_eq!(s.label(), format!("team-b/{}", sim.info.pods[0].name));

    let mut registry = PodRegistry::new();
    for (i, pod) in sim.info.pods.iter().enumerate() {
        registry
            .register_from_url(
                format!("web-{i}"),
                &pod.plaintty_url,
                ProviderKind::PlainTty,
            )
            .unwrap();
    }
    assert_eq!(registry.aliases(), vec!["web-0", "web-1"]);
    let s1 = registry.session("web-1").await.unwrap();
    let r = s1
        .run("echo $POD_NAME", RunOptions::default())
        .await
        .unwrap();
    assert_eq!(r.stdout.trim(), sim.info.pods[1].name);
    assert!(matches!(
        registry.session("nope").await,
        Err(podwrangler::PodError::NotFound { .. })
    ));
}
