//! Shared scenarios for the engine tests: each trap of a long-lived shell, run against a real
//! podsim through one provider. `engine_plaintty.rs` and `engine_kubernetes.rs` call them.
#![allow(dead_code)]

use std::time::Duration;

use podwrangler::{
    KubernetesTarget, PodEndpoint, PodError, PodIdentity, PodSession, ProviderConfig, RunOptions,
    Secret, SessionOptions,
};
use testkit::Podsim;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    PlainTty,
    Kubernetes,
}

/// The endpoint of pod `index` of `sim` for `kind`.
pub fn endpoint(sim: &Podsim, kind: Kind, index: usize) -> PodEndpoint {
    let pod = &sim.info.pods[index];
    match kind {
        Kind::PlainTty => {
            podwrangler::endpoint_from_url(podwrangler::ProviderKind::PlainTty, &pod.plaintty_url)
                .expect("podsim's PlainTTY URL parses")
        }
        Kind::Kubernetes => {
            let mut identity = PodIdentity::new(pod.name.clone());
            identity.namespace = Some(pod.namespace.clone());
            PodEndpoint {
                identity,
                provider: ProviderConfig::Kubernetes(KubernetesTarget {
                    server: Some(sim.info.http_base.clone()),
                    ..Default::default()
                }),
                token: Some(Secret::new(sim.info.token.clone())),
                client_key: None,
            }
        }
    }
}

pub fn opts(auto_reconnect: bool) -> SessionOptions {
    SessionOptions {
        connect_timeout: Duration::from_secs(20),
        auto_reconnect,
        max_reconnect_attempts: 3,
        backoff_base: Duration::from_millis(200),
        namespace: None,
        side_exec_slots: None,
    }
}

pub async fn connect(sim: &Podsim, kind: Kind, auto_reconnect: bool) -> PodSession {
    PodSession::connect(endpoint(sim, kind, 0), opts(auto_reconnect))
        .await
        .unwrap_or_else(|e| panic!("connect {kind:?}: {e}"))
}

pub fn secs(n: u64) -> RunOptions {
    RunOptions::with_timeout(Duration::from_secs(n))
}

pub async fn run_ok(s: &PodSession, cmd: &str) -> podwrangler::CommandResult {
    let r = s
        .run(cmd, secs(30))
        .await
        .unwrap_or_else(|e| panic!("{cmd:?} failed: {e}"));
    assert_eq!(r.exit_code, Some(0), "{cmd:?}: {r:?}");
    r
}

/// Polls `f` (a blocking check) until it holds or 20 s pass.
pub async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while std::time::Instant::now() < deadline {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting until {what}");
}

/// `data` as an input channel: 50,000-byte pieces, then the end-of-input piece.
pub fn feed(data: Vec<u8>) -> tokio::sync::mpsc::Receiver<std::io::Result<Vec<u8>>> {
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tokio::spawn(async move {
        for piece in data.chunks(50_000) {
            if tx.send(Ok(piece.to_vec())).await.is_err() {
                return;
            }
        }
        let _ = tx.send(Ok(Vec::new())).await;
    });
    rx
}

fn live(sim: &Podsim, pod: &str) -> u64 {
    sim.stats(pod)["connections_live"].as_u64().unwrap_or(0)
}

pub fn total(sim: &Podsim, pod: &str) -> u64 {
    sim.stats(pod)["connections_total"].as_u64().unwrap_or(0)
}

// ---- scenarios --------------------------------------------------------------------------

/// `cd` and `export` carry over: one long-lived shell.
pub async fn state_carries_over(kind: Kind) {
    let sim = Podsim::start(1);
    let s = connect(&sim, kind, false).await;
    run_ok(&s, "mkdir -p sub/dir && cd sub/dir").await;
    run_ok(&s, "export PW_GREETING='hello there'").await;
    let r = run_ok(&s, "pwd; echo \"$PW_GREETING\"; echo $POD_NAME").await;
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert!(lines[0].ends_with("/sub/dir"), "{r:?}");
    assert_eq!(lines[1], "hello there");
    assert_eq!(lines[2], sim.info.pods[0].name);
    assert_eq!(r.pod_label, format!("default/{}", sim.info.pods[0].name));
    let r = run_ok(&s, "echo hi").await;
    assert_eq!(r.stdout, "hi\n", "nothing but the output: {r:?}");
    s.close().await;
}

/// Exit codes come from the end marker; `check` turns them into errors.
pub async fn exit_codes_and_check(kind: Kind) {
    let sim = Podsim::start(1);
    let s = connect(&sim, kind, false).await;
    let r = s.run("false", secs(30)).await.unwrap();
    assert_eq!(r.exit_code, Some(1));
    assert!(!r.succeeded());
    let r = s.run("sh -c 'exit 42'", secs(30)).await.unwrap();
    assert_eq!(r.exit_code, Some(42));
    match s
        .run("echo partial; ls /definitely/missing", secs(30).checked())
        .await
    {
        Err(PodError::CommandFailed { exit_code, result }) => {
            assert_ne!(exit_code, 0);
            assert!(result.stdout.contains("partial"), "{result:?}");
        }
        other => panic!("expected CommandFailed, got {other:?}"),
    }
    // Output without a final newline is framed exactly.
    let r = run_ok(&s, "printf abc").await;
    assert_eq!(r.stdout, "abc");
    let r = run_ok(&s, "printf 'abc\\n\\n'").await;
    assert_eq!(r.stdout, "abc\n\n");
}

/// Command text cannot break the wrapper: quotes, `$()`, heredocs, multi-line, syntax errors.
pub async fn quoting_survives_any_text(kind: Kind) {
    let sim = Podsim::start(1);
    let s = connect(&sim, kind, false).await;
    let r = run_ok(
        &s,
        "echo 'it'\\''s' \"double \\\"q\\\"\" $(echo sub) `echo back`",
    )
    .await;
    assert_eq!(r.stdout, "it's double \"q\" sub back\n");
    let r = run_ok(&s, "cat <<'EOF'\nline one $HOME\n  'quoted'\nEOF").await;
    assert_eq!(r.stdout, "line one $HOME\n  'quoted'\n");
    let r = run_ok(&s, "for i in 1 2 3; do\n  echo n$i\ndone").await;
    assert_eq!(r.stdout, "n1\nn2\nn3\n");
    // Unclosed quote and syntax errors: non-zero, and the shell stays usable.
    for bad in [
        "echo 'unclosed",
        "echo \"unclosed",
        "if then fi (",
        "echo $(",
        ")",
    ] {
        let r = s
            .run(bad, secs(30))
            .await
            .unwrap_or_else(|e| panic!("{bad:?}: {e}"));
        assert_ne!(r.exit_code, Some(0), "{bad:?} must fail: {r:?}");
        let r = run_ok(&s, "echo still-alive").await;
        assert_eq!(r.stdout, "still-alive\n", "after {bad:?}");
    }
    // Marker look-alikes in the output are output.
    let r = run_ok(
        &s,
        "printf '__PW%s_%s__\\n' S 0123; printf '\\036__PW%s_%s_%s__\\n' E 0123 7",
    )
    .await;
    assert_eq!(r.stdout, "__PWS_0123__\n\u{1e}__PWE_0123_7__\n");
}

/// A 100 KiB command (a TTY cuts lines near 4 KiB) arrives whole.
pub async fn hundred_kib_command(kind: Kind) {
    let sim = Podsim::start(1);
    let s = connect(&sim, kind, false).await;
    let payload: String = (0..100 * 1024)
        .map(|i| (b'a' + (i % 26) as u8) as char)
        .collect();
    let r = run_ok(&s, &format!("printf '%s' '{payload}' | wc -c")).await;
    assert_eq!(r.stdout.trim(), "102400", "{:?}", &r.stdout);
    // Long, multi-line, with quotes and control characters.
    let long_lines: String = (0..40)
        .map(|i| {
            format!(
                "printf '%s\\n' '{}{i}'\n",
                "q'\"%\\".repeat(60).replace('\'', "'\\''")
            )
        })
        .collect();
    let r = run_ok(
        &s,
        &format!("{long_lines}printf 'x\\001y' | od -An -c | tr -d ' \\n'"),
    )
    .await;
    assert!(
        r.stdout.ends_with("x001y"),
        "{:?}",
        &r.stdout[r.stdout.len().saturating_sub(100)..]
    );
    assert_eq!(r.stdout.lines().count(), 41);
    let want_first = format!("{}0", "q'\"%\\".repeat(60));
    assert_eq!(r.stdout.lines().next(), Some(want_first.as_str()));
    let raw_ctrl = run_ok(
        &s,
        "printf '%s' 'a\u{3}b\u{15}c\u{7f}d' | od -An -c | tr -d ' \\n'",
    )
    .await;
    assert_eq!(raw_ctrl.stdout, "a003b025c177d");
    let r = run_ok(&s, "echo after").await;
    assert_eq!(r.stdout, "after\n");
}

/// Commands that read stdin get /dev/null, not the next command.
pub async fn stdin_is_isolated(kind: Kind) {
    let sim = Podsim::start(1);
    let s = connect(&sim, kind, false).await;
    let r = s.run("cat", secs(10)).await.expect("cat returns at once");
    assert_eq!(r.stdout, "");
    let r = s.run("read x; echo \"got[$x]\"", secs(10)).await.unwrap();
    assert_eq!(r.stdout, "got[]\n");
    let r = run_ok(&s, "echo next").await;
    assert_eq!(r.stdout, "next\n");
}

/// A timeout returns the partial output, and the next command works.
pub async fn timeout_then_next_command(kind: Kind) {
    let sim = Podsim::start(1);
    let s = connect(&sim, kind, false).await;
    run_ok(&s, "cd /tmp").await;
    let t0 = std::time::Instant::now();
    match s.run("echo before; sleep 30", secs(1)).await {
        Err(PodError::Timeout { timeout, partial }) => {
            assert_eq!(timeout, Duration::from_secs(1));
            assert!(partial.stdout.contains("before"), "{partial:?}");
            assert_eq!(partial.exit_code, None);
            assert!(partial.error.is_some());
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert!(
        t0.elapsed() < Duration::from_secs(25),
        "the timeout must not wait for sleep"
    );
    // The command was interrupted (Ctrl-C on a TTY, a signal from a second exec otherwise)
    // and the same shell kept: the cd is still in effect, and the sleep is gone.
    let r = run_ok(&s, "echo ok; pwd").await;
    assert_eq!(r.stdout, "ok\n/tmp\n", "{r:?}");
    assert!(!r.session_restarted, "{r:?}");
    let r = run_ok(&s, "ps -eo args | grep -cx 'sleep 30'; true").await;
    assert_eq!(r.stdout, "0\n", "the timed-out command still runs");
    // A busy loop inside the shell itself is interrupted too.
    let e = s.run("while :; do :; done", secs(1)).await.unwrap_err();
    assert!(matches!(e, PodError::Timeout { .. }), "{e:?}");
    run_ok(&s, "true").await;
}

/// Output beyond the cap is drained and dropped; non-UTF-8 does not panic.
pub async fn output_cap_and_binary(kind: Kind) {
    let sim = Podsim::start(1);
    let s = connect(&sim, kind, false).await;
    let opts = RunOptions {
        timeout: Duration::from_secs(60),
        check: false,
        max_output: 1000,
        ..RunOptions::default()
    };
    let r = s
        .run(
            "head -c 3000000 /dev/zero | tr '\\0' a; echo tail-end",
            opts,
        )
        .await
        .unwrap();
    assert_eq!(r.exit_code, Some(0));
    assert!(r.truncated);
    assert_eq!(r.stdout.len(), 1000);
    assert!(r.stdout.bytes().all(|b| b == b'a'));
    let r = run_ok(&s, "echo fine").await;
    assert_eq!(r.stdout, "fine\n");
    assert!(!r.truncated);
    let r = run_ok(&s, "printf '\\377\\376abc\\n'").await;
    assert!(
        r.stdout.contains('\u{fffd}') && r.stdout.contains("abc"),
        "{r:?}"
    );
}

/// The connection drops while a command runs: ConnectionLost with the partial output, the
/// command is not re-run, and (with auto-reconnect) the next command reconnects.
pub async fn drop_mid_command(kind: Kind, auto_reconnect: bool) {
    let sim = Podsim::start(1);
    let pod = sim.info.pods[0].name.clone();
    let s = connect(&sim, kind, auto_reconnect).await;
    let dropper = {
        let admin = sim.info.admin_address.clone();
        let pod = pod.clone();
        // Drop only once the command has visibly started (its file exists in the pod's home).
        let started_file = sim.workdir().join(&pod).join("runs.txt");
        std::thread::spawn(move || {
            let deadline = std::time::Instant::now() + Duration::from_secs(20);
            while !started_file.exists() && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            assert!(started_file.exists(), "the command never started");
            std::thread::sleep(Duration::from_millis(500));
            testkit::http_request(
                &admin,
                "POST",
                &format!("/_podsim/pods/{pod}/faults"),
                &[],
                Some(r#"{"drop_now":true}"#),
            )
            .expect("inject drop")
        })
    };
    let err = s
        .run(
            "echo ran >> runs.txt; echo started; sleep 5; echo finished",
            secs(30),
        )
        .await
        .unwrap_err();
    dropper.join().unwrap();
    match &err {
        PodError::ConnectionLost { partial, .. } => {
            assert!(partial.stdout.contains("started"), "{partial:?}");
            assert!(!partial.stdout.contains("finished"));
        }
        other => panic!("expected ConnectionLost, got {other:?}"),
    }
    assert!(!s.is_connected());
    if auto_reconnect {
        let r = run_ok(&s, "cat runs.txt").await;
        assert_eq!(r.stdout, "ran\n", "the lost command must not run again");
        assert!(s.is_connected());
    } else {
        let e = s.run("true", secs(10)).await.unwrap_err();
        assert!(matches!(e, PodError::NotConnected { .. }), "{e:?}");
        s.reconnect().await.unwrap();
        let r = run_ok(&s, "cat runs.txt").await;
        assert_eq!(r.stdout, "ran\n");
    }
}

/// A drop between commands is noticed before sending: the next command reconnects and runs.
pub async fn drop_between_commands(kind: Kind) {
    let sim = Podsim::start(1);
    let pod = sim.info.pods[0].name.clone();
    let s = connect(&sim, kind, true).await;
    run_ok(&s, "true").await;
    let before = total(&sim, &pod);
    sim.admin(&pod, r#"{"drop_now":true}"#);
    eventually("podsim closed the connection", || live(&sim, &pod) == 0).await;
    // podsim unregisters a connection just before its socket closes; let the close arrive.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let r = run_ok(&s, "echo again").await;
    assert_eq!(r.stdout, "again\n");
    assert!(total(&sim, &pod) > before, "a new connection was made");
    // Refused connections: reconnect gives up after its attempts with a connection error.
    sim.admin(&pod, r#"{"refuse":true}"#);
    sim.admin(&pod, r#"{"drop_now":true}"#);
    eventually("podsim closed the connection", || live(&sim, &pod) == 0).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let e = s.run("true", secs(10)).await.unwrap_err();
    assert!(matches!(e, PodError::Connection { .. }), "{e:?}");
    assert!(!e.to_string().contains(&sim.info.token), "{e}");
    sim.clear_faults(&pod);
    run_ok(&s, "true").await;
}

/// `exit N` ends the shell: a finished command with exit code N and its output (without the
/// shell's own echo of `exit`), flagged as restarting the session; the next command runs in a
/// fresh shell, which its result says too. Even without auto-reconnect: nothing was lost.
pub async fn exit_kills_the_shell(kind: Kind) {
    let sim = Podsim::start(1);
    for auto_reconnect in [true, false] {
        let s = connect(&sim, kind, auto_reconnect).await;
        run_ok(&s, "export KEPT=yes").await;
        let r = s.run("echo bye; exit 7", secs(20)).await.unwrap();
        assert_eq!(r.exit_code, Some(7), "{r:?}");
        assert_eq!(r.stdout, "bye\n", "{r:?}");
        assert!(r.error.is_none() && r.session_restarted, "{r:?}");
        let r = run_ok(&s, "echo back ${KEPT:-lost}").await;
        assert_eq!(r.stdout, "back lost\n");
        assert!(r.session_restarted, "the new shell is announced: {r:?}");
        let r = run_ok(&s, "echo steady").await;
        assert!(!r.session_restarted, "{r:?}");
        // A bare `exit` (status 0), and `exec` of something that ends.
        let r = s.run("exit", secs(20)).await.unwrap();
        assert_eq!((r.exit_code, r.stdout.as_str()), (Some(0), ""), "{r:?}");
        let r = s.run("exec true", secs(20)).await.unwrap();
        assert_eq!(r.exit_code, Some(0), "{r:?}");
        assert!(r.session_restarted);
        let e = s
            .run("exit 3", RunOptions::default().checked())
            .await
            .unwrap_err();
        assert!(
            matches!(e, PodError::CommandFailed { exit_code: 3, .. }),
            "{e:?}"
        );
        run_ok(&s, "true").await;
    }
}

/// Concurrent `run` calls on one session execute one at a time, in call order.
pub async fn concurrent_runs_queue_in_order(kind: Kind) {
    let sim = Podsim::start(1);
    let s = connect(&sim, kind, false).await;
    run_ok(&s, ": > order.txt").await;
    type RunFuture<'a> = std::pin::Pin<
        Box<dyn std::future::Future<Output = podwrangler::Result<podwrangler::CommandResult>> + 'a>,
    >;
    let commands: Vec<String> = std::iter::once("sleep 0.5; echo 0 >> order.txt".to_owned())
        .chain((1..12).map(|i| format!("echo {i} >> order.txt; wc -l < order.txt")))
        .collect();
    // join_all polls the futures in this order first, so this is the order of the calls.
    let futures: Vec<RunFuture<'_>> = commands
        .iter()
        .map(|c| Box::pin(s.run(c, secs(30))) as RunFuture<'_>)
        .collect();
    let results = futures_util::future::join_all(futures).await;
    for (i, r) in results.iter().enumerate() {
        let r = r.as_ref().unwrap();
        if i > 0 {
            assert_eq!(
                r.stdout.trim(),
                (i + 1).to_string(),
                "command {i} ran in its turn"
            );
        }
    }
    let r = run_ok(&s, "tr '\\n' ' ' < order.txt").await;
    assert_eq!(r.stdout, "0 1 2 3 4 5 6 7 8 9 10 11 ");
}

/// Tokens never show in Debug output or errors.
pub async fn tokens_are_redacted(kind: Kind) {
    let sim = Podsim::start(1);
    let token = sim.info.token.clone();
    let s = connect(&sim, kind, false).await;
    assert!(!format!("{s:?}").contains(&token));
    assert!(!format!("{:?}", s.endpoint()).contains(&token));
    // A wrong token: 401, and neither token shows in the error.
    let mut ep = endpoint(&sim, kind, 0);
    ep.token = Some(Secret::new("wrong-secret-token-123"));
    let e = PodSession::connect(ep, opts(false)).await.unwrap_err();
    let shown = format!("{e} {e:?}");
    assert!(matches!(e, PodError::Connection { .. }), "{shown}");
    assert!(shown.contains("401"), "{shown}");
    assert!(!shown.contains("wrong-secret-token-123"), "{shown}");
    // Nothing listening: the error names the target without its token.
    let mut ep = endpoint(&sim, kind, 0);
    match &mut ep.provider {
        ProviderConfig::PlainTty { base_url } => *base_url = "ws://127.0.0.1:9".into(),
        ProviderConfig::Kubernetes(t) => t.server = Some("http://127.0.0.1:9".into()),
    }
    let e = PodSession::connect(ep, opts(false)).await.unwrap_err();
    let shown = format!("{e} {e:?}");
    assert!(shown.contains("127.0.0.1:9"), "{shown}");
    assert!(!shown.contains(&token), "{shown}");
}

/// ping, close, reconnect.
pub async fn ping_close_reconnect(kind: Kind) {
    let sim = Podsim::start(1);
    let s = connect(&sim, kind, false).await;
    s.ping().await.unwrap();
    assert!(s.is_connected());
    s.close().await;
    assert!(!s.is_connected());
    assert!(matches!(
        s.run("true", secs(5)).await,
        Err(PodError::NotConnected { .. })
    ));
    assert!(s.ping().await.is_err());
    s.reconnect().await.unwrap();
    run_ok(&s, "true").await;
    s.ping().await.unwrap();
}

/// run_many runs in order in one shell and stops on the first failure when asked.
pub async fn run_many_in_one_shell(kind: Kind) {
    let sim = Podsim::start(1);
    let s = connect(&sim, kind, false).await;
    let rs = s
        .run_many(
            &["cd /tmp", "pwd", "false", "echo after"],
            Duration::from_secs(20),
            true,
        )
        .await
        .unwrap();
    assert_eq!(rs.len(), 3);
    assert_eq!(rs[1].stdout, "/tmp\n");
    assert_eq!(rs[2].exit_code, Some(1));
    let rs = s
        .run_many(
            &["false", "sleep 5", "echo after"],
            Duration::from_secs(1),
            false,
        )
        .await
        .unwrap();
    assert_eq!(rs.len(), 3);
    assert!(
        rs[1].error.as_deref().unwrap_or("").contains("timed out"),
        "{:?}",
        rs[1]
    );
    assert_eq!(rs[2].stdout, "after\n");
}

/// A caller that gives up on `run` (drops its future) leaves no debris: the next command gets
/// only its own output.
pub async fn abandoned_command_is_cleaned_up(kind: Kind) {
    let sim = Podsim::start(1);
    let s = connect(&sim, kind, false).await;
    let abandoned = tokio::time::timeout(
        Duration::from_millis(700),
        s.run("sleep 3; echo late", secs(30)),
    )
    .await;
    assert!(abandoned.is_err(), "the caller's timeout fired first");
    let r = run_ok(&s, "echo next").await;
    assert_eq!(r.stdout, "next\n");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let r = run_ok(&s, "echo third").await;
    assert_eq!(
        r.stdout, "third\n",
        "the abandoned command's output never shows up"
    );
}

/// The shell is killed while a command runs: reported as a lost connection with the partial
/// output, and an explicit reconnect gives a fresh, working shell.
pub async fn shell_killed_mid_command(kind: Kind) {
    let sim = Podsim::start(1);
    let pod = sim.info.pods[0].name.clone();
    let s = connect(&sim, kind, false).await;
    let killer = {
        let admin = sim.info.admin_address.clone();
        let pod = pod.clone();
        let started_file = sim.workdir().join(&pod).join("killed.txt");
        std::thread::spawn(move || {
            let deadline = std::time::Instant::now() + Duration::from_secs(20);
            while !started_file.exists() && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            std::thread::sleep(Duration::from_millis(300));
            testkit::http_request(
                &admin,
                "POST",
                &format!("/_podsim/pods/{pod}/faults"),
                &[],
                Some(r#"{"kill_shell":true}"#),
            )
            .expect("inject kill")
        })
    };
    // The shell's end is reported with its status (Kubernetes: the status channel; PlainTTY:
    // the terminal's close reason), like `kill -9 $$`: a finished command, not a lost link.
    let r = s
        .run("echo partial-out; : > killed.txt; sleep 10", secs(30))
        .await
        .unwrap();
    killer.join().unwrap();
    assert!(r.stdout.contains("partial-out"), "{r:?}");
    assert!(r.exit_code.is_some_and(|c| c != 0), "{r:?}");
    assert!(r.session_restarted, "{r:?}");
    let r = run_ok(&s, "echo fresh").await;
    assert_eq!(r.stdout, "fresh\n");
}

/// Output arrives while the command runs (the first line long before its end), and cancelling
/// interrupts the command but keeps the shell and its state; the cancelled process is gone.
pub async fn output_streams_live_and_cancel_keeps_the_shell(kind: Kind) {
    let sim = Podsim::start(1);
    let s = connect(&sim, kind, false).await;
    run_ok(&s, "export KEPT=yes").await;
    let (tx, mut rx) = tokio::sync::mpsc::channel(16);
    let opts = RunOptions {
        output: Some(tx),
        ..secs(30)
    };
    let run = s.run(
        "for i in 1 2 3 4 5 6 7 8; do echo line$i; sleep 0.1; done",
        opts,
    );
    tokio::pin!(run);
    // The first chunk must come while the command is still running.
    let first = tokio::select! {
        chunk = rx.recv() => chunk.expect("a chunk"),
        r = &mut run => panic!("the command ended before any output streamed: {r:?}"),
    };
    let podwrangler::OutputChunk::Stdout(first) = first else {
        panic!("stdout expected: {first:?}");
    };
    assert!(
        String::from_utf8_lossy(&first).starts_with("line1"),
        "{first:?}"
    );
    let r = run.await.unwrap();
    let mut streamed = first;
    while let Ok(podwrangler::OutputChunk::Stdout(more)) = rx.try_recv() {
        streamed.extend(more);
    }
    assert_eq!(
        String::from_utf8_lossy(&streamed),
        r.stdout,
        "live output equals the kept output"
    );

    let cancel = podwrangler::CancelToken::new();
    let (tx, mut rx) = tokio::sync::mpsc::channel(16);
    let opts = RunOptions {
        output: Some(tx),
        cancel: Some(cancel.clone()),
        ..secs(60)
    };
    let t0 = std::time::Instant::now();
    let run = s.run("echo started; sleep 33", opts);
    tokio::pin!(run);
    tokio::select! {
        _ = rx.recv() => cancel.cancel(),
        r = &mut run => panic!("ended before output: {r:?}"),
    }
    match run.await {
        Err(PodError::Cancelled { partial }) => {
            assert!(partial.stdout.starts_with("started"), "{partial:?}");
            assert!(
                partial
                    .error
                    .as_deref()
                    .unwrap_or("")
                    .contains("shell kept"),
                "{partial:?}"
            );
        }
        other => panic!("expected Cancelled, got {other:?}"),
    }
    assert!(
        t0.elapsed() < Duration::from_secs(20),
        "cancel waited for the command"
    );
    let r = run_ok(&s, "echo $KEPT; ps -eo args | grep -cx 'sleep 33'; true").await;
    assert_eq!(r.stdout, "yes\n0\n", "{r:?}");
}

/// Bytes fed to a command: random binary data staged through the shell reaches the command's
/// stdin byte for byte; a script staged as a file is sourced in the same shell (its `cd` and
/// `export` carry over); a staging directory that cannot be written fails the command with a
/// reason, without running it, and the shell is kept.
pub async fn input_reaches_the_command_exactly(kind: Kind) {
    use podwrangler::session::{Input, InputRole};
    use rand::RngCore;
    use sha2::Digest;

    let sim = Podsim::start(1);
    let s = connect(&sim, kind, false).await;
    run_ok(&s, "cd /tmp && export KEPT=yes").await;
    let size = if kind == Kind::PlainTty {
        600_000
    } else {
        3 << 20
    };
    let mut data = vec![0u8; size];
    rand::rng().fill_bytes(&mut data);
    data[..4].copy_from_slice(b"\0\r\x03\x04");
    let want = hex::encode(sha2::Sha256::digest(&data));
    let r = s
        .run_with_input("sha256sum; echo $KEPT", Input::stdin(feed(data)), secs(120))
        .await
        .unwrap();
    assert_eq!(r.exit_code, Some(0), "{r:?}");
    assert_eq!(r.stdout, format!("{want}  -\nyes\n"));
    // The staging file is gone.
    let r = run_ok(
        &s,
        "ls -a \"${TMPDIR:-/tmp}\" | grep -c \"^.pw-in-$$-\"; true",
    )
    .await;
    assert_eq!(r.stdout.trim(), "0", "{r:?}");

    // Empty input: the command reads an empty stdin.
    let r = s
        .run_with_input("wc -c", Input::stdin(feed(Vec::new())), secs(30))
        .await
        .unwrap();
    assert_eq!(r.stdout.trim(), "0");

    // A long script with long lines, quotes and a here-document, sourced in this shell.
    let mut script =
        String::from("cd /\nexport FROM_SCRIPT='it'\\''s'\ncat <<'EOF'\nheredoc $HOME\nEOF\n");
    for i in 0..2000 {
        script.push_str(&format!("x{i}=\"{}\"\n", "y".repeat(i % 300)));
    }
    script.push_str(&format!(": '{}'\necho done\n", "z".repeat(20_000)));
    let input = Input {
        data: feed(script.into_bytes()),
        role: InputRole::Named,
        stage_dir: None,
    };
    let r = s
        .run_with_input("command . \"$__pw_in\"", input, secs(120))
        .await
        .unwrap();
    assert_eq!(r.exit_code, Some(0), "{r:?}");
    assert_eq!(r.stdout, "heredoc $HOME\ndone\n");
    let r = run_ok(&s, "pwd; echo \"$FROM_SCRIPT $KEPT\"").await;
    assert_eq!(r.stdout, "/\nit's yes\n");

    // A directory nobody can write: the command does not run, the reason says why.
    let input = Input {
        data: feed(b"data".to_vec()),
        role: InputRole::Stdin,
        stage_dir: Some("/proc".into()),
    };
    let r = s.run_with_input("echo RAN", input, secs(30)).await.unwrap();
    assert_ne!(r.exit_code, Some(0), "{r:?}");
    assert!(!r.stdout.contains("RAN"), "{r:?}");
    assert!(
        r.error.as_deref().unwrap_or("").contains("staging"),
        "{r:?}"
    );
    let r = run_ok(&s, "pwd; echo $KEPT").await;
    assert_eq!(r.stdout, "/\nyes\n");

    // A sender that goes away half-way: the command never sees the truncated input.
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tx.send(Ok(b"partial".to_vec())).await.unwrap();
    drop(tx);
    let r = s
        .run_with_input("cat; echo RAN", Input::stdin(rx), secs(30))
        .await
        .unwrap();
    assert!(!r.stdout.contains("RAN"), "{r:?}");
    assert!(
        r.error
            .as_deref()
            .unwrap_or("")
            .contains("before it was complete"),
        "{r:?}"
    );
    let r = run_ok(
        &s,
        "ls -a \"${TMPDIR:-/tmp}\" | grep -c \"^.pw-in-$$-\"; echo $KEPT",
    )
    .await;
    assert_eq!(r.stdout, "0\nyes\n", "{r:?}");
}

/// The scenarios every provider must pass, as `#[tokio::test]`s for `$kind`. Some run on a
/// current-thread runtime on purpose: the engine must work there too (actix arbiters are one).
macro_rules! provider_scenarios {
    ($kind:expr) => {
        provider_scenarios!(@multi $kind;
            state_carries_over, quoting_survives_any_text, hundred_kib_command,
            output_streams_live_and_cancel_keeps_the_shell,
            timeout_then_next_command, output_cap_and_binary, drop_between_commands,
            exit_kills_the_shell, tokens_are_redacted, abandoned_command_is_cleaned_up,
            shell_killed_mid_command, run_many_in_one_shell,
            input_reaches_the_command_exactly);
        provider_scenarios!(@current $kind;
            exit_codes_and_check, stdin_is_isolated, concurrent_runs_queue_in_order,
            ping_close_reconnect);

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn drop_mid_command_with_auto_reconnect() {
            engine_support::drop_mid_command($kind, true).await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn drop_mid_command_without_auto_reconnect() {
            engine_support::drop_mid_command($kind, false).await;
        }
    };
    (@multi $kind:expr; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                engine_support::$name($kind).await;
            }
        )*
    };
    (@current $kind:expr; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "current_thread")]
            async fn $name() {
                engine_support::$name($kind).await;
            }
        )*
    };
}
