//! Input and files against a real daemon and podsim: `pwctl cp` into 20 pods and back,
//! SHA-256 verified, with a pod whose write fails; `exec run --stdin` with binary data;
//! `exec run --file` with a long script; and the shell's `cd`/`export` state through all of it.

mod common;

use std::io::Write;
use std::process::Stdio;

use common::{Run, Stack};
use podwrangler::api::{CommandRecord, FileCopyResponse, FileCopyResult};
use sha2::{Digest, Sha256};

/// Deterministic pseudo-random bytes (xorshift), different per seed.
fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

fn sha(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// pwctl with `input` on its stdin.
fn run_with_stdin(s: &Stack, args: &[&str], input: &[u8]) -> Run {
    let mut child = s
        .command()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run pwctl");
    let mut stdin = child.stdin.take().expect("stdin");
    let data = input.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&data);
    });
    let out = child.wait_with_output().expect("pwctl output");
    writer.join().unwrap();
    out.into()
}

/// Twenty Kubernetes pods (podsim), each in a `sub` directory it `cd`ed into with a variable
/// exported; pod 7's `ro` is a directory nobody can write in.
fn twenty_pods() -> (Stack, Vec<String>) {
    let home = common::Home::new();
    let kubeconfig = home.path().join("kubeconfig");
    let s = Stack::start_with(testkit::PodsimOptions {
        pods: 20,
        token: Some("sim-token".into()),
        kubeconfig_out: Some(kubeconfig.clone()),
        ..Default::default()
    });
    s.run(&[
        "pod",
        "import",
        "--kubeconfig",
        kubeconfig.to_str().unwrap(),
        "--prefix",
        "k8s-",
    ])
    .ok();
    let aliases: Vec<String> = (0..20).map(|i| format!("k8s-web-5d8f7-{i:05}")).collect();
    for (i, alias) in aliases.iter().enumerate() {
        let ro = if i == 7 {
            "ln -s /proc/1 ro"
        } else {
            "mkdir ro"
        };
        s.run(&[
            "exec",
            "run",
            alias,
            &format!("mkdir -p sub && cd sub && export KEPT=kept-{i} && {ro}"),
        ])
        .ok();
    }
    (s, aliases)
}

#[test]
fn cp_to_twenty_pods_verifies_every_copy_and_copies_back() {
    let (s, aliases) = twenty_pods();
    let dir = tempfile::tempdir().unwrap();
    for (n, size) in [0usize, 1, 1 << 20, 50 << 20].into_iter().enumerate() {
        let data = random_bytes(size, n as u64 + 1);
        let local = dir.path().join(format!("f{size}.bin"));
        std::fs::write(&local, &data).unwrap();
        let r = s.run(&[
            "--json",
            "cp",
            local.to_str().unwrap(),
            ":copy.bin",
            "--all",
            "--concurrency",
            "8",
        ]);
        r.ok();
        let resp: FileCopyResponse = serde_json::from_str(&r.stdout).unwrap();
        assert_eq!(
            (resp.size, resp.sha256.as_str()),
            (size as u64, sha(&data).as_str())
        );
        assert_eq!(resp.results.len(), 20);
        assert_eq!((resp.succeeded, resp.failed), (20, 0));
        for res in &resp.results {
            assert!(res.ok, "{res:?}");
            assert_eq!(res.size, Some(size as u64), "{res:?}");
            assert_eq!(res.sha256.as_deref(), Some(sha(&data).as_str()), "{res:?}");
        }
        // Back from some pods (all for the small files), byte for byte.
        let back_from: Vec<&String> = if size > 1 << 20 {
            vec![&aliases[0], &aliases[19]]
        } else {
            aliases.iter().collect()
        };
        for alias in back_from {
            let out = dir.path().join(format!("back-{alias}-{size}"));
            s.run(&["cp", &format!("{alias}:copy.bin"), out.to_str().unwrap()])
                .ok();
            assert!(
                std::fs::read(&out).unwrap() == data,
                "{alias}: {size} bytes differ"
            );
        }
    }

    // The file landed in the directory each shell had `cd`ed into, with the local mode.
    let r = s.run(&[
        "exec",
        "run",
        &aliases[3],
        "ls -l copy.bin | cut -c1-10; pwd",
    ]);
    r.ok();
    assert!(r.stdout.starts_with("-rw-"), "{}", r.stdout);
    assert!(r.stdout.trim_end().ends_with("/sub"), "{}", r.stdout);

    // A pod whose write fails is reported as failed, with the reason; the others verify.
    let small = dir.path().join("small");
    std::fs::write(&small, b"hello").unwrap();
    let r = s.run(&["--json", "cp", small.to_str().unwrap(), ":ro/x", "--all"]);
    r.expect_code(1);
    let resp: FileCopyResponse = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!((resp.succeeded, resp.failed), (19, 1));
    let failed: Vec<&FileCopyResult> = resp.results.iter().filter(|r| !r.ok).collect();
    assert_eq!(failed[0].alias, aliases[7]);
    assert!(
        failed[0].error.as_deref().unwrap_or("").contains("staging"),
        "{failed:?}"
    );
    // The table says so too.
    let r = s.run(&[
        "cp",
        small.to_str().unwrap(),
        &format!("{}:ro/y", aliases[7]),
    ]);
    r.expect_code(1);
    assert!(r.stdout.contains("FAILED"), "{}", r.stdout);
    // Copying back a file that is not there fails with a reason and writes nothing.
    let missing = dir.path().join("missing");
    let r = s.run(&[
        "cp",
        &format!("{}:nope.bin", aliases[1]),
        missing.to_str().unwrap(),
    ]);
    assert_ne!(r.code, 0);
    assert!(
        r.stderr.contains("no readable regular file"),
        "{}",
        r.stderr
    );
    assert!(!missing.exists());

    // Every shell kept its directory and its variables through all of it.
    for (i, alias) in aliases.iter().enumerate() {
        let r = s.run(&["exec", "run", alias, "basename \"$PWD\"; echo $KEPT"]);
        r.ok();
        assert_eq!(r.stdout, format!("sub\nkept-{i}\n"), "{alias}");
    }
}

#[test]
fn stdin_and_scripts_reach_the_pod_exactly_on_both_providers() {
    let home = common::Home::new();
    let kubeconfig = home.path().join("kubeconfig");
    let s = Stack::start_with(testkit::PodsimOptions {
        pods: 1,
        token: Some("sim-token".into()),
        kubeconfig_out: Some(kubeconfig.clone()),
        ..Default::default()
    });
    s.add_all();
    s.run(&[
        "pod",
        "import",
        "--kubeconfig",
        kubeconfig.to_str().unwrap(),
        "--prefix",
        "k8s-",
    ])
    .ok();
    for (alias, size) in [("k8s-web-5d8f7-00000", 4 << 20), ("web-0", 300 << 10)] {
        s.run(&["exec", "run", alias, "cd / && export KEPT=yes"])
            .ok();
        // Binary stdin through sha256sum, byte for byte.
        let data = random_bytes(size, 42);
        let r = run_with_stdin(&s, &["exec", "run", alias, "--stdin", "sha256sum"], &data);
        r.ok();
        assert_eq!(
            r.stdout,
            format!("{}  -\n", sha(&data)),
            "{alias}: {}",
            r.stderr
        );
        // --json answers the record.
        let r = run_with_stdin(
            &s,
            &["--json", "exec", "run", alias, "--stdin", "wc -c"],
            b"12345",
        );
        r.ok();
        let rec: CommandRecord = serde_json::from_str(&r.stdout).unwrap();
        assert_eq!(rec.stdout.trim(), "5");

        // A long script: long lines, quotes, a here-document; sourced in the same shell.
        let mut script = String::from(
            "cd /tmp\nexport FROM_SCRIPT=\"it's \\\"quoted\\\"\"\ncat <<'EOF'\n$HOME stays literal\nEOF\n",
        );
        for i in 0..3000 {
            script.push_str(&format!("v{i}='{}'\n", "q".repeat(i % 97)));
        }
        script.push_str(&format!(": '{}'\n", "L".repeat(100_000)));
        script.push_str("echo \"$KEPT ${#v96}\"\n");
        assert!(script.len() > 200 * 1024);
        let file = home.path().join("script.sh");
        std::fs::write(&file, &script).unwrap();
        let r = s.run(&["exec", "run", alias, "--file", file.to_str().unwrap()]);
        r.ok();
        assert_eq!(
            r.stdout, "$HOME stays literal\nyes 96\n",
            "{alias}: {}",
            r.stderr
        );
        // From stdin too.
        let r = run_with_stdin(
            &s,
            &["exec", "run", alias, "--file", "-"],
            b"echo from-stdin; (exit 3)",
        );
        r.expect_code(3);
        assert_eq!(r.stdout, "from-stdin\n");
        // The script's cd and export stay, and so does what was there before.
        let r = s.run(&["exec", "run", alias, "pwd; echo \"$FROM_SCRIPT $KEPT\""]);
        r.ok();
        assert_eq!(r.stdout, "/tmp\nit's \"quoted\" yes\n", "{alias}");
    }
    // Usage mistakes are refused before anything is sent.
    s.run(&["exec", "run", "web-0", "--file", "-", "--stdin", "cat"])
        .expect_code(2);
}
