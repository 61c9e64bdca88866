//! pwctl exec ... against a real daemon and podsim: streams and exit codes of `exec run`,
//! fan-out tables and JSON, history and `exec show`.

mod common;

use common::Stack;
use podwrangler::api::{CommandPage, CommandRecord, CommandStatus, FanOutResponse};

#[test]
fn exec_run_splits_the_streams_and_passes_the_exit_code_through() {
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

    // Kubernetes exec keeps stdout and stderr apart; so does pwctl.
    let r = s.run(&[
        "exec",
        "run",
        "k8s-web-5d8f7-00000",
        "echo out; echo err >&2; (exit 3)",
    ]);
    r.expect_code(3);
    assert_eq!(r.stdout, "out\n");
    assert_eq!(r.stderr, "err\n");

    // A web terminal has one stream: everything arrives on stdout.
    let r = s.run(&["exec", "run", "web-0", "echo out; echo err >&2; (exit 5)"]);
    r.expect_code(5);
    assert_eq!(r.stdout, "out\nerr\n");

    let ok = s.run(&["exec", "run", "web-0", "echo", "$POD_NAME"]);
    ok.ok();
    assert_eq!(
        ok.stdout, "web-5d8f7-00000\n",
        "words are joined into one command"
    );

    // After `--` words that look like flags belong to the command.
    let dashed = s.run(&["exec", "run", "web-0", "--", "echo", "--json"]);
    dashed.ok();
    assert_eq!(dashed.stdout, "--json\n");

    // --json: the CommandRecord, and still the remote exit code.
    let j = s.run(&["exec", "run", "web-0", "--json", "echo hi; (exit 4)"]);
    j.expect_code(4);
    let rec: CommandRecord = serde_json::from_str(&j.stdout).expect("CommandRecord");
    assert_eq!(rec.exit_code, Some(4));
    assert_eq!(rec.status, CommandStatus::Failed);
    assert_eq!(rec.stdout, "hi\n");
    assert_eq!(rec.alias, "web-0");
}

#[test]
fn exec_run_timeout_exits_124_with_the_partial_output() {
    let s = Stack::start(1);
    s.add_all();
    let r = s.run(&[
        "exec",
        "run",
        "web-0",
        "--timeout",
        "1",
        "echo started; sleep 30",
    ]);
    r.expect_code(124);
    assert!(r.stdout.contains("started"), "{}", r.stdout);
    assert!(r.stderr.contains("timed out"), "{}", r.stderr);

    let bad = s.run(&["exec", "run", "web-0", "--timeout", "-1", "true"]);
    bad.expect_code(65);
    assert!(bad.stderr.contains("--timeout"), "{}", bad.stderr);
    s.run(&["exec", "run", "web-0"]).expect_code(2);
}

#[test]
fn run_many_prints_a_table_and_fails_when_any_pod_fails() {
    let s = Stack::start(3);
    let aliases = s.add_all();

    let all = s.run(&["exec", "run-many", "echo $POD_NAME; uname -s", "--all"]);
    all.ok();
    let lines: Vec<&str> = all.stdout.lines().collect();
    assert!(lines[0].contains("POD") && lines[0].contains("EXIT") && lines[0].contains("OUTPUT"));
    for (i, alias) in aliases.iter().enumerate() {
        let row = lines
            .iter()
            .find(|l| l.split_whitespace().next() == Some(alias))
            .unwrap_or_else(|| panic!("no row for {alias}:\n{}", all.stdout));
        assert!(
            row.contains(&format!("web-5d8f7-0000{i}")),
            "first line of output: {row}"
        );
    }
    assert!(
        all.stdout.contains("3 pods: 3 succeeded, 0 failed"),
        "{}",
        all.stdout
    );

    // One pod fails: exit 1, its exit code in the table.
    let mixed = s.run(&[
        "exec",
        "run-many",
        "--aliases",
        "web-0,web-1",
        "--show-output",
        "--",
        "echo from $POD_NAME; test $POD_NAME != web-5d8f7-00001",
    ]);
    mixed.expect_code(1);
    assert!(
        mixed.stdout.contains("1 succeeded, 1 failed"),
        "{}",
        mixed.stdout
    );
    let web1 = mixed
        .stdout
        .lines()
        .find(|l| l.starts_with("web-1"))
        .unwrap();
    assert_eq!(web1.split_whitespace().nth(1), Some("1"), "{web1}");
    // --show-output: each pod's output under a header.
    assert!(mixed.stdout.contains("── web-0"), "{}", mixed.stdout);
    assert!(
        mixed.stdout.contains("from web-5d8f7-00001"),
        "{}",
        mixed.stdout
    );

    // --json: the FanOutResponse, one record per pod.
    let j = s.run(&[
        "exec",
        "run-many",
        "--tag",
        "sim",
        "--json",
        "--",
        "echo $POD_NAME",
    ]);
    j.ok();
    let resp: FanOutResponse = serde_json::from_str(&j.stdout).expect("FanOutResponse");
    assert_eq!(resp.results.len(), 3);
    assert_eq!((resp.succeeded, resp.failed), (3, 0));
    let mut outs: Vec<&str> = resp.results.iter().map(|r| r.stdout.trim()).collect();
    outs.sort();
    assert_eq!(
        outs,
        ["web-5d8f7-00000", "web-5d8f7-00001", "web-5d8f7-00002"]
    );

    // Which pods must be said exactly once.
    s.run(&["exec", "run-many", "true"]).expect_code(2);
    s.run(&["exec", "run-many", "true", "--all", "--tag", "sim"])
        .expect_code(2);
    let missing = s.run(&["exec", "run-many", "true", "--aliases", "web-0,web-9"]);
    assert_ne!(missing.code, 0);
    assert!(missing.stderr.contains("web-9"), "{}", missing.stderr);
}

#[test]
fn history_and_show_read_back_what_ran() {
    let s = Stack::start(2);
    s.add_all();
    s.run(&["exec", "run", "web-0", "echo first"]).ok();
    s.run(&["exec", "run", "web-1", "echo second; (exit 2)"])
        .expect_code(2);
    s.run(&["exec", "run", "web-0", "echo third"]).ok();

    let page: CommandPage =
        serde_json::from_str(&s.run(&["exec", "history", "--json"]).stdout).unwrap();
    let commands: Vec<&str> = page.items.iter().map(|r| r.command.as_str()).collect();
    assert_eq!(
        commands,
        ["echo third", "echo second; (exit 2)", "echo first"],
        "newest first"
    );

    let text = s.run(&["exec", "history"]);
    text.ok();
    assert!(text.stdout.lines().next().unwrap().contains("COMMAND"));
    assert!(text.stdout.contains("echo second; (exit 2)"));

    let web1: CommandPage = serde_json::from_str(
        &s.run(&["exec", "history", "--alias", "web-1", "--json"])
            .stdout,
    )
    .unwrap();
    assert_eq!(web1.items.len(), 1);
    assert_eq!(web1.items[0].alias, "web-1");

    let failed: CommandPage =
        serde_json::from_str(&s.run(&["exec", "history", "--failed", "--json"]).stdout).unwrap();
    assert_eq!(failed.items.len(), 1, "{failed:?}");
    assert_eq!(failed.items[0].exit_code, Some(2));

    // Paging: one at a time, following the cursor.
    let first: CommandPage =
        serde_json::from_str(&s.run(&["exec", "history", "--limit", "1", "--json"]).stdout)
            .unwrap();
    assert_eq!(first.items.len(), 1);
    let cursor = first.next_cursor.clone().expect("a next page");
    let second: CommandPage = serde_json::from_str(
        &s.run(&[
            "exec", "history", "--limit", "1", "--cursor", &cursor, "--json",
        ])
        .stdout,
    )
    .unwrap();
    assert_eq!(second.items[0].command, "echo second; (exit 2)");

    let id = page.items[1].id.to_string();
    let show = s.run(&["exec", "show", &id]);
    show.ok();
    assert!(show.stdout.contains("echo second"), "{}", show.stdout);
    assert!(show.stdout.contains("failed"), "{}", show.stdout);
    let rec: CommandRecord =
        serde_json::from_str(&s.run(&["exec", "show", &id, "--json"]).stdout).unwrap();
    assert_eq!(rec.stdout, "second\n");

    let missing = s.run(&["exec", "show", "999999"]);
    missing.expect_code(1);
    assert!(missing.stderr.contains("999999"), "{}", missing.stderr);
}

/// A listing shows a preview of big output; `exec show --stdout` prints it raw, whole or a
/// byte range of it.
#[test]
fn history_previews_and_raw_output_ranges() {
    let s = Stack::start(1);
    s.add_all();
    s.run(&["exec", "run", "web-0", "seq 1 2000"]).ok();
    let full: String = (1..=2000).map(|i| format!("{i}\n")).collect();
    let page: CommandPage =
        serde_json::from_str(&s.run(&["exec", "history", "--json"]).stdout).unwrap();
    let item = &page.items[0];
    assert!(item.preview, "{item:?}");
    assert_eq!(item.stdout_bytes, full.len() as u64);
    assert_eq!(item.stdout, full[..1024]);
    let table = s.run(&["exec", "history"]);
    table.ok();
    assert!(table.stdout.contains("OUTPUT"), "{}", table.stdout);
    assert!(table.stdout.contains("1..."), "{}", table.stdout);

    let id = item.id.to_string();
    let raw = s.run(&["exec", "show", &id, "--stdout"]);
    raw.ok();
    assert_eq!(raw.stdout, full);
    let part = s.run(&["exec", "show", &id, "--stdout", "--range", "0-5"]);
    part.ok();
    assert_eq!(part.stdout, "1\n2\n3\n");
    let tail = s.run(&["exec", "show", &id, "--stdout", "--range", "-5"]);
    tail.ok();
    assert_eq!(tail.stdout, "2000\n");
    let bad = s.run(&["exec", "show", &id, "--stdout", "--range", "99999-"]);
    assert_ne!(bad.code, 0);
    assert!(bad.stderr.contains("range"), "{}", bad.stderr);

    // An export has the full output.
    let nd = s.run(&["exec", "history", "--export", "ndjson"]);
    nd.ok();
    let records: Vec<CommandRecord> = nd
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].stdout, full);
    let csv = s.run(&["exec", "history", "--export", "csv"]);
    csv.ok();
    assert!(csv.stdout.starts_with("id,alias,"), "{}", csv.stdout);
    assert!(csv.stdout.contains("\"1\n2\n3\n"), "{}", &csv.stdout[..200]);
}

/// `exec run` prints output while the command runs; Ctrl-C cancels the command in the pod
/// (recorded `cancelled`, the shell and its state kept) and pwctl exits 130.
#[test]
fn exec_run_streams_live_and_ctrl_c_cancels_in_the_pod() {
    use std::io::Read;
    use std::process::Stdio;
    let s = Stack::start(1);
    s.add_all();
    s.run(&["exec", "run", "web-0", "export KEPT=yes"]).ok();
    let mut child = s
        .command()
        .args(["exec", "run", "web-0", "echo started; sleep 39"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut first = [0u8; 7];
    stdout.read_exact(&mut first).unwrap();
    assert_eq!(&first, b"started", "output arrives while the command runs");
    // SAFETY: kill has no memory effects; the pid is our live child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let status = child.wait().unwrap();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert_eq!(status.code(), Some(130), "{err}");
    assert!(err.contains("cancelled"), "{err}");
    let history: CommandPage =
        serde_json::from_str(&s.run(&["--json", "exec", "history", "--limit", "1"]).stdout)
            .unwrap();
    assert_eq!(history.items[0].status, CommandStatus::Cancelled);
    let r = s.run(&[
        "exec",
        "run",
        "web-0",
        "echo $KEPT; ps -eo args | grep -cx 'sleep 39'; true",
    ]);
    r.ok();
    assert_eq!(r.stdout, "yes\n0\n");
}
