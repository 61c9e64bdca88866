//! Fan-out jobs against a real daemon and podsim: groups of identical output (API summary and
//! `run-many --group --diff`), the failure budget and the canary with `skipped` rows, the exit
//! status roll-up, `--stream` lines prefixed by their pod, and `NO_COLOR`.

mod common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;

use common::Stack;
use podwrangler::api::{CommandPage, CommandStatus, JobSummary};
use serde_json::json;

/// Registers every podsim pod through the API as `web-00`, `web-01`, ... (faster than one
/// pwctl run per pod).
fn register(s: &Stack) -> Vec<String> {
    let mut aliases = Vec::new();
    for (i, pod) in s.sim.info.pods.iter().enumerate() {
        let alias = format!("web-{i:02}");
        let body = json!({"alias": alias, "provider": "plaintty", "url": pod.plaintty_url});
        let r = s
            .daemon
            .unix("POST", "/api/v1/pods", Some(&body.to_string()));
        assert_eq!(r.status, 201, "{}", r.body);
        aliases.push(alias);
    }
    aliases
}

fn summary(s: &Stack, job: i64) -> JobSummary {
    let r = s.daemon.unix("GET", &format!("/api/v1/jobs/{job}"), None);
    assert_eq!(r.status, 200, "{}", r.body);
    serde_json::from_str(&r.body).unwrap()
}

/// The job id in run-many's summary line: `... (job 12)`.
fn job_of(text: &str) -> i64 {
    let at = text.rfind("(job ").expect("a job id in the summary") + 5;
    text[at..].split(')').next().unwrap().parse().unwrap()
}

/// Pods 07, 21 and 42 answer `odd`, the others `same`.
const THREE_DIFFER: &str =
    "case $POD_NAME in *00007|*00021|*00042) echo odd;; *) echo same;; esac; echo common";

#[test]
fn fifty_pods_three_different_give_two_groups_and_a_diff() {
    let s = Stack::start(50);
    register(&s);
    let r = s.run(&[
        "exec",
        "run-many",
        "--all",
        "--group",
        "--diff",
        "--",
        THREE_DIFFER,
    ]);
    r.ok();
    let out = &r.stdout;
    let big = out
        .find("web-[00-06,08-20,22-41,43-49] (47)")
        .unwrap_or_else(|| panic!("no block of 47:\n{out}"));
    let small = out
        .find("web-[07,21,42] (3)")
        .unwrap_or_else(|| panic!("no block of 3:\n{out}"));
    assert!(big < small, "largest group first:\n{out}");
    // --diff: the minority's lines against the largest group's.
    assert!(out.contains("-same"), "{out}");
    assert!(out.contains("+odd"), "{out}");
    assert!(out.contains("50 pods: 50 succeeded, 0 failed"), "{out}");

    // The job's summary through the API: exactly two groups with the right members.
    let job = job_of(out);
    let sum = summary(&s, job);
    assert_eq!(sum.groups.len(), 2, "{sum:?}");
    assert_eq!(sum.groups[0].count, 47);
    assert_eq!(sum.groups[0].stdout, "same\ncommon\n");
    assert_eq!(sum.groups[1].aliases, ["web-07", "web-21", "web-42"]);
    assert_eq!(sum.groups[1].stdout, "odd\ncommon\n");
    assert_eq!(sum.counts["succeeded"], 50);
    assert_eq!(sum.job.total, 50);
    assert!(sum.job.finished_at.is_some());

    // Its rows point at it.
    let r = s.daemon.unix(
        "GET",
        &format!("/api/v1/commands?job={job}&limit=100"),
        None,
    );
    let page: CommandPage = serde_json::from_str(&r.body).unwrap();
    assert_eq!(page.items.len(), 50);
    assert!(page.items.iter().all(|c| c.job_id == Some(job)));

    // pwctl exec job shows it again, grouped.
    let again = s.run(&["exec", "job", &job.to_string(), "--diff"]);
    again.ok();
    assert!(
        again.stdout.contains("web-[07,21,42] (3)") && again.stdout.contains("+odd"),
        "{}",
        again.stdout
    );
    let listed = s.run(&["exec", "jobs"]);
    listed.ok();
    assert!(
        listed.stdout.contains(&job.to_string()),
        "{}",
        listed.stdout
    );
}

/// Pods web-00 .. web-04 fail (exit 1); the others succeed.
const FIRST_FIVE_FAIL: &str = "case $POD_NAME in *0000[0-4]) exit 1;; esac; echo ok";

#[test]
fn failure_budget_canary_and_exit_roll_up() {
    let s = Stack::start(10);
    register(&s);

    // One pod at a time, in alias order: web-00, -01, -02 fail; the third failure is more than
    // the budget of 2, so the seven pods left are skipped.
    let r = s.run(&[
        "exec",
        "run-many",
        "--all",
        "--concurrency",
        "1",
        "--max-failures",
        "2",
        "--",
        FIRST_FIVE_FAIL,
    ]);
    r.expect_code(1);
    assert!(
        r.stdout
            .contains("10 pods: 0 succeeded, 3 failed, 7 skipped"),
        "{}",
        r.stdout
    );
    assert!(r.stderr.contains("stopped early"), "{}", r.stderr);
    let job = job_of(&r.stdout);
    let sum = summary(&s, job);
    assert_eq!(sum.counts["failed"], 3);
    assert_eq!(sum.counts["skipped"], 7);
    assert_eq!(sum.skipped.len(), 1);
    assert_eq!(sum.skipped[0].pods, "web-[03-09]");
    assert!(sum.skipped[0].reason.contains("max_failures"), "{sum:?}");
    assert!(sum.job.stopped.is_some());
    let r = s.daemon.unix(
        "GET",
        &format!("/api/v1/commands?job={job}&status=skipped&limit=100"),
        None,
    );
    let page: CommandPage = serde_json::from_str(&r.body).unwrap();
    assert_eq!(page.items.len(), 7);
    assert!(page.items.iter().all(|c| {
        c.status == CommandStatus::Skipped
            && c.error
                .as_deref()
                .is_some_and(|e| e.contains("max_failures"))
    }));

    // --rerun-failed runs the job's command again on the three that failed.
    let again = s.run(&[
        "exec",
        "run-many",
        "--rerun-failed",
        &job.to_string(),
        "--json",
    ]);
    again.expect_code(1);
    let resp: serde_json::Value = again.json();
    let mut rerun: Vec<&str> = resp["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["alias"].as_str().unwrap())
        .collect();
    rerun.sort();
    assert_eq!(rerun, ["web-00", "web-01", "web-02"]);

    // A canary of 2 in alias order: web-00 fails, so nothing else runs.
    let r = s.run(&[
        "exec",
        "run-many",
        "--all",
        "--canary",
        "2",
        "--",
        FIRST_FIVE_FAIL,
    ]);
    r.expect_code(1);
    assert!(r.stdout.contains("8 skipped"), "{}", r.stdout);
    let sum = summary(&s, job_of(&r.stdout));
    assert!(
        sum.job.stopped.as_deref().unwrap_or("").contains("canary"),
        "{sum:?}"
    );
    assert_eq!(sum.skipped[0].pods, "web-[02-09]");

    // A canary that passes lets the rest run, in waves of 50%.
    let r = s.run(&[
        "exec", "run-many", "--all", "--canary", "1", "--batch", "50%", "--", "echo ok",
    ]);
    r.ok();
    assert!(r.stdout.contains("10 pods: 10 succeeded"), "{}", r.stdout);

    // Exit roll-up: the largest exit code; a timeout counts 124.
    s.run(&[
        "exec",
        "run-many",
        "--all",
        "--",
        "case $POD_NAME in *00003) exit 3;; *00006) exit 7;; esac",
    ])
    .expect_code(7);
    s.run(&[
        "exec",
        "run-many",
        "--aliases",
        "web-01,web-02",
        "--timeout",
        "1",
        "--",
        "case $POD_NAME in *00001) sleep 20;; *) exit 9;; esac",
    ])
    .expect_code(124);

    // --pick runs on that many pods.
    let r = s.run(&["exec", "run-many", "--all", "--pick", "3", "--json", "true"]);
    r.ok();
    assert_eq!(r.json()["results"].as_array().unwrap().len(), 3);

    // The daemon enforces the controls, not only pwctl.
    for (body, field) in [
        (
            json!({"command": "true", "all": true, "batch": "0"}),
            "batch",
        ),
        (
            json!({"command": "true", "all": true, "max_failures": "101%"}),
            "max_failures",
        ),
        (
            json!({"command": "true", "all": true, "canary": 0}),
            "canary",
        ),
        (json!({"command": "true", "rerun_failed": job}), "command"),
    ] {
        let r = s
            .daemon
            .unix("POST", "/api/v1/exec", Some(&body.to_string()));
        assert_eq!(r.status, 422, "{body}: {}", r.body);
        assert_eq!(r.json()["field"], field, "{}", r.body);
    }
    let r = s.daemon.unix(
        "POST",
        "/api/v1/exec",
        Some(&json!({"rerun_failed": 999999}).to_string()),
    );
    assert_eq!(r.status, 404, "{}", r.body);
    assert_eq!(r.json()["code"], "job_not_found");
}

#[test]
fn stream_prints_whole_lines_prefixed_by_pod_before_the_command_ends() {
    let s = Stack::start(2);
    register(&s);
    let gate = s.home.path().join("gate");
    // The first line, then a partial line finished later, then wait for the test to open the
    // gate: "released" is printed only if the test saw "first" while the command still ran.
    let command = format!(
        "echo first; printf 'par'; sleep 0.2; printf 'tial\\n'; \
         for i in $(seq 300); do [ -e {g} ] && break; sleep 0.05; done; \
         [ -e {g} ] && echo released",
        g = gate.display()
    );
    let mut child = s
        .command()
        .args(["exec", "run-many", "--aliases", "web-00", "--stream", "--"])
        .arg(&command)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    assert_eq!(first, "web-00: first");
    std::fs::write(&gate, "").unwrap();
    let rest: Vec<String> = lines.map(Result::unwrap).collect();
    assert!(child.wait().unwrap().success());
    assert_eq!(rest, ["web-00: partial", "web-00: released"]);

    // Colour: one per pod on a terminal; none with NO_COLOR or in a pipe.
    let coloured = |no_color: bool| -> String {
        let mut cmd = s.command();
        cmd.env("IGNORE_IS_TERMINAL", "1")
            .env("TERM", "xterm-256color");
        if no_color {
            cmd.env("NO_COLOR", "1");
        }
        let r: common::Run = cmd
            .args(["exec", "run-many", "--all", "--stream", "echo hi"])
            .output()
            .unwrap()
            .into();
        r.ok();
        r.stdout
    };
    let with = coloured(false);
    assert!(with.contains("\u{1b}["), "{with:?}");
    let without = coloured(true);
    assert!(!without.contains("\u{1b}["), "{without:?}");
    let mut plain: Vec<&str> = without.lines().collect();
    plain.sort();
    assert_eq!(plain, ["web-00: hi", "web-01: hi"]);
}
