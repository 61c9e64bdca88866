//! The session engine against a real podsim through the Kubernetes provider: every trap of a
//! long-lived shell (framing, quoting, stdin, timeouts, caps, drops, ordering, redaction).

#[macro_use]
mod engine_support;

use engine_support::Kind;

const KIND: Kind = Kind::Kubernetes;

provider_scenarios!(KIND);

// ---- Kubernetes only ------------------------------------------------------------------------

use std::sync::Arc;
use std::time::Duration;

use podwrangler::provider::{BoxFuture, ConnectPlan, KubernetesProvider, Provider};
use podwrangler::session::Transport;
use podwrangler::{
    KubernetesTarget, PodEndpoint, PodIdentity, PodSession, ProviderConfig, ProviderKind,
    RunOptions, Secret, WssSchema,
};
use testkit::{Podsim, PodsimOptions};

/// stdout and stderr stay apart, and neither is cut short: both carry an end marker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdout_and_stderr_are_separate_and_complete() {
    let sim = Podsim::start(1);
    let s = engine_support::connect(&sim, KIND, false).await;
    let r = s
        .run(
            "echo out; echo err >&2; sleep 0.3; printf 'late-err' >&2; exit_code() { return 3; }; exit_code",
            RunOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(r.stdout, "out\n");
    assert_eq!(r.stderr, "err\nlate-err");
    assert_eq!(r.exit_code, Some(3));
    // A command writing only to stderr, late, after stdout is done.
    let r = s
        .run("echo o; (sleep 0.5; echo slow >&2)", RunOptions::default())
        .await
        .unwrap();
    assert_eq!((r.stdout.as_str(), r.stderr.as_str()), ("o\n", "slow\n"));
}

/// A kubeconfig resolved as kubectl reads it (on the caller's side) into an explicit target and
/// its secrets.
async fn from_kubeconfig(
    path: &std::path::Path,
    context: Option<&str>,
) -> (KubernetesTarget, Option<Secret>, Option<Secret>) {
    let creds = podwrangler::kubeconfig::credentials_from_kubeconfig(Some(path), context)
        .await
        .unwrap();
    (
        creds.target(),
        creds.token.clone(),
        creds.client_key.clone(),
    )
}

/// Credentials and TLS from a kubeconfig as kubectl reads it (podsim writes one with its CA and
/// a bearer token); the namespace comes from the identity.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubeconfig_over_tls_in_another_namespace() {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    let sim = Podsim::start_with(PodsimOptions {
        pods: 2,
        namespace: Some("team-a".into()),
        tls: true,
        kubeconfig_out: Some(kubeconfig.clone()),
        ..Default::default()
    });
    let (target, token, _) = from_kubeconfig(&kubeconfig, None).await;
    assert!(target.certificate_authority.is_some() && !target.insecure_skip_tls_verify);
    let mut identity = PodIdentity::new(sim.info.pods[1].name.clone());
    identity.namespace = Some("team-a".into());
    let endpoint = PodEndpoint {
        identity,
        provider: ProviderConfig::Kubernetes(target.clone()),
        token: token.clone(),
        client_key: None,
    };
    let s = PodSession::connect(endpoint, engine_support::opts(false))
        .await
        .unwrap();
    let r = engine_support::run_ok(&s, "echo $POD_NAMESPACE/$POD_NAME").await;
    assert_eq!(r.stdout.trim(), format!("team-a/{}", sim.info.pods[1].name));
    assert_eq!(r.pod_label, format!("team-a/{}", sim.info.pods[1].name));

    // The same kubeconfig lists pods, with label selectors.
    let token = token.as_ref();
    let all = podwrangler::list_pods(&target, token, None, "team-a", None)
        .await
        .unwrap();
    assert_eq!(all.len(), 2);
    let even = podwrangler::list_pods(&target, token, None, "team-a", Some("parity=even"))
        .await
        .unwrap();
    assert_eq!(even.len(), 1);
    assert_eq!(even[0].pod_name, sim.info.pods[0].name);
    assert_eq!(even[0].namespace.as_deref(), Some("team-a"));
    assert_eq!(even[0].service.as_deref(), Some("web"));
    let none = podwrangler::list_pods(&target, token, None, "elsewhere", None)
        .await
        .unwrap();
    assert!(none.is_empty());
}

/// The kubeconfig's `podsim-cert` context: a client certificate and no token at all, for the
/// exec session and for listing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubeconfig_client_certificate_context() {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    let sim = Podsim::start_with(PodsimOptions {
        pods: 1,
        tls: true,
        kubeconfig_out: Some(kubeconfig.clone()),
        ..Default::default()
    });
    let (target, token, key) = from_kubeconfig(&kubeconfig, Some("podsim-cert")).await;
    assert!(token.is_none() && key.is_some() && target.client_certificate.is_some());
    let endpoint = PodEndpoint {
        identity: PodIdentity::new(sim.info.pods[0].name.clone()),
        provider: ProviderConfig::Kubernetes(target.clone()),
        token: None,
        client_key: key.clone(),
    };
    let s = PodSession::connect(endpoint, engine_support::opts(false))
        .await
        .unwrap();
    let r = engine_support::run_ok(&s, "echo cert:$POD_NAME").await;
    assert_eq!(r.stdout.trim(), format!("cert:{}", sim.info.pods[0].name));
    let pods = podwrangler::list_pods(&target, None, key.as_ref(), "default", None)
        .await
        .unwrap();
    assert_eq!(pods.len(), 1);
}

/// Listing with an explicit server + token; a wrong token is an error without the token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_pods_with_server_and_token() {
    let sim = Podsim::start(4);
    let target = KubernetesTarget {
        server: Some(sim.info.http_base.clone()),
        ..Default::default()
    };
    let token = Secret::new(sim.info.token.clone());
    let odd = podwrangler::list_pods(
        &target,
        Some(&token),
        None,
        "default",
        Some("parity=odd,app=web"),
    )
    .await
    .unwrap();
    let mut names: Vec<_> = odd.iter().map(|p| p.pod_name.clone()).collect();
    names.sort();
    assert_eq!(
        names,
        vec![sim.info.pods[1].name.clone(), sim.info.pods[3].name.clone()]
    );
    let e = podwrangler::list_pods(
        &target,
        Some(&Secret::new("bad-token-xyz")),
        None,
        "default",
        None,
    )
    .await
    .unwrap_err();
    assert!(!format!("{e} {e:?}").contains("bad-token-xyz"));
    // Through the provider trait too.
    let provider = podwrangler::provider_for(ProviderKind::Kubernetes);
    let pods = provider
        .list_pods(
            &ProviderConfig::Kubernetes(target),
            Some(&token),
            None,
            "",
            None,
        )
        .await
        .unwrap();
    assert_eq!(pods.len(), 4);
}

/// A custom provider (here: one that offers only the v4 subprotocol) plugs into the engine.
#[derive(Debug)]
struct V4Only(KubernetesProvider);

impl Provider for V4Only {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Kubernetes
    }
    fn parse_url(&self, url: &str) -> podwrangler::Result<PodEndpoint> {
        self.0.parse_url(url)
    }
    fn prepare<'a>(
        &'a self,
        endpoint: &'a PodEndpoint,
    ) -> BoxFuture<'a, podwrangler::Result<ConnectPlan>> {
        Box::pin(async move {
            let mut plan = self.0.prepare(endpoint).await?;
            plan.schema.subprotocols = vec!["v4.channel.k8s.io".into()];
            Ok(plan)
        })
    }
    fn init_shell<'a>(
        &'a self,
        transport: &'a mut Transport,
        schema: &'a WssSchema,
    ) -> BoxFuture<'a, podwrangler::Result<()>> {
        assert_eq!(transport.protocol(), Some("v4.channel.k8s.io"));
        self.0.init_shell(transport, schema)
    }
    fn list_pods<'a>(
        &'a self,
        target: &'a ProviderConfig,
        token: Option<&'a Secret>,
        client_key: Option<&'a Secret>,
        namespace: &'a str,
        label_selector: Option<&'a str>,
    ) -> BoxFuture<'a, podwrangler::Result<Vec<PodIdentity>>> {
        self.0
            .list_pods(target, token, client_key, namespace, label_selector)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v4_subprotocol_and_custom_provider() {
    let sim = Podsim::start(1);
    let endpoint = engine_support::endpoint(&sim, KIND, 0);
    // The built-in provider negotiates v5.
    let plan = KubernetesProvider::new().prepare(&endpoint).await.unwrap();
    let t = Transport::connect(&plan.schema, plan.tls.clone(), Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(t.protocol(), Some("v5.channel.k8s.io"));
    let s = PodSession::connect_with(
        endpoint,
        Arc::new(V4Only(KubernetesProvider::new())),
        engine_support::opts(false),
    )
    .await
    .unwrap();
    let r = s
        .run("echo v4; echo e >&2; false", RunOptions::default())
        .await
        .unwrap();
    assert_eq!(
        (r.stdout.as_str(), r.stderr.as_str(), r.exit_code),
        ("v4\n", "e\n", Some(1))
    );
}

/// Exec URLs parse into endpoints that reach the same pod.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_url_round_trip_reaches_the_pod() {
    let sim = Podsim::start(2);
    let url = format!("{}{}", sim.info.http_base, sim.info.pods[1].exec_path);
    let mut endpoint = podwrangler::endpoint_from_url(ProviderKind::Kubernetes, &url).unwrap();
    endpoint.token = Some(Secret::new(sim.info.token.clone()));
    let s = PodSession::connect(endpoint, engine_support::opts(false))
        .await
        .unwrap();
    let r = engine_support::run_ok(&s, "echo $POD_NAME").await;
    assert_eq!(r.stdout.trim(), sim.info.pods[1].name);
}

/// Where the API server can close a process's stdin (v5), input skips the shell: a second exec
/// in the container appends it raw to the staged file, so it arrives even when the shell's
/// `base64` is broken, and the shell keeps its state. On a v4-only server the here-documents
/// carry it, and a broken `base64` stops them with the shell's status.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn input_goes_raw_through_a_second_exec_where_stdin_can_be_closed() {
    use podwrangler::session::Input;
    use rand::RngCore;
    use sha2::Digest;

    for v4_only in [false, true] {
        let sim = Podsim::start_with(PodsimOptions {
            pods: 1,
            extra_args: if v4_only {
                vec!["--exec-v4-only".into()]
            } else {
                Vec::new()
            },
            ..Default::default()
        });
        let pod = sim.info.pods[0].name.clone();
        let s = engine_support::connect(&sim, KIND, false).await;
        engine_support::run_ok(&s, "mkdir -p sub && cd sub && export KEPT=kept").await;
        let mut data = vec![0u8; 3 << 20];
        rand::rng().fill_bytes(&mut data);
        let want = hex::encode(sha2::Sha256::digest(&data));
        let execs_before = engine_support::total(&sim, &pod);
        let r = s
            .run_with_input(
                "sha256sum; echo $KEPT; basename $PWD",
                Input::stdin(engine_support::feed(data)),
                engine_support::secs(120),
            )
            .await
            .unwrap();
        assert_eq!(r.exit_code, Some(0), "v4 only {v4_only}: {r:?}");
        assert_eq!(
            r.stdout,
            format!("{want}  -\nkept\nsub\n"),
            "v4 only {v4_only}"
        );
        let side_execs = engine_support::total(&sim, &pod) - execs_before;
        assert_eq!(side_execs, u64::from(!v4_only), "v4 only {v4_only}");

        if !v4_only {
            // A second exec the server refuses: the shell carries the input instead.
            sim.admin(&pod, r#"{"refuse":true}"#);
            let r = s
                .run_with_input(
                    "wc -c",
                    Input::stdin(engine_support::feed(vec![1u8; 100_000])),
                    engine_support::secs(30),
                )
                .await
                .unwrap();
            assert_eq!((r.exit_code, r.stdout.trim()), (Some(0), "100000"), "{r:?}");
            sim.admin(&pod, r#"{"refuse":false}"#);
        }
        engine_support::run_ok(&s, "base64() { return 99; }").await;
        let r = s
            .run_with_input(
                "wc -c",
                Input::stdin(engine_support::feed(b"12345".to_vec())),
                engine_support::secs(30),
            )
            .await
            .unwrap();
        if v4_only {
            assert_eq!(r.exit_code, Some(99), "{r:?}");
            assert!(
                r.error
                    .as_deref()
                    .is_some_and(|e| e.contains("cannot write the input")),
                "{r:?}"
            );
        } else {
            assert_eq!((r.exit_code, r.stdout.trim()), (Some(0), "5"), "{r:?}");
        }
        // No staging file is left behind either way.
        let r = engine_support::run_ok(
            &s,
            "ls -a \"${TMPDIR:-/tmp}\" | grep -c \"^.pw-in-$$-\"; true",
        )
        .await;
        assert_eq!(r.stdout.trim(), "0", "{r:?}");
    }
}

/// Cancelling a command while its input still travels through the second exec: the command
/// never runs, the half-written staging file is removed, and the shell keeps its state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_during_a_raw_input_transfer_leaves_nothing_behind() {
    use podwrangler::session::Input;

    let sim = Podsim::start(1);
    let s = engine_support::connect(&sim, KIND, false).await;
    engine_support::run_ok(&s, "cd /tmp && export KEPT=kept").await;
    // One mebibyte, then nothing: the sender stalls without ending the input.
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let sender = tokio::spawn(async move {
        tx.send(Ok(vec![7u8; 1 << 20])).await.unwrap();
        std::future::pending::<()>().await;
        drop(tx);
    });
    let cancel = podwrangler::CancelToken::new();
    let opts = RunOptions {
        cancel: Some(cancel.clone()),
        ..engine_support::secs(60)
    };
    let canceller = {
        let cancel = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(500)).await;
            cancel.cancel();
        })
    };
    let t0 = std::time::Instant::now();
    match s
        .run_with_input("touch RAN; wc -c", Input::stdin(rx), opts)
        .await
    {
        Err(podwrangler::PodError::Cancelled { partial }) => {
            assert!(partial.stdout.is_empty(), "{partial:?}");
        }
        other => panic!("expected Cancelled, got {other:?}"),
    }
    assert!(t0.elapsed() < Duration::from_secs(20), "{:?}", t0.elapsed());
    canceller.await.unwrap();
    sender.abort();
    let r = engine_support::run_ok(
        &s,
        "ls -a \"${TMPDIR:-/tmp}\" | grep -c \"^.pw-in-$$-\"; test -e RAN && echo ran; echo $KEPT $PWD",
    )
    .await;
    assert_eq!(r.stdout, "0\nkept /tmp\n", "{r:?}");
}
