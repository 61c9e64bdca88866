//! pwctl's pod sets against a real daemon that follows a real podsim cluster: add, list, show,
//! a fan-out with `--set`, history by set after a pod is gone, delete, and the errors a user
//! gets for a taken name, an unknown cluster and a set that does not exist.

mod common;

use std::collections::BTreeSet;

use common::{Stack, eventually};
use testkit::PodsimOptions;

const TOKEN: &str = "set-token";
const ADD_WEB: [&str; 9] = [
    "set",
    "add",
    "web",
    "--cluster",
    "sim",
    "-n",
    "default",
    "-l",
    "app=web",
];

fn stack(token_dir: &tempfile::TempDir) -> Stack {
    let token_file = token_dir.path().join("sim.token");
    std::fs::write(&token_file, TOKEN).unwrap();
    Stack::start_configured(
        PodsimOptions {
            pods: 3,
            token: Some(TOKEN.into()),
            extra_args: vec!["--termination-grace".into(), "0".into()],
            ..Default::default()
        },
        |sim, d| {
            d.config_toml = Some(format!(
                "[clusters.sim]\nserver = {:?}\ntoken_file = {:?}\n",
                sim.info.http_base,
                token_file.display().to_string()
            ));
        },
    )
}

/// The set's members (pod names) once each is ready, from `pwctl --json set show`.
fn ready_members(s: &Stack) -> Option<BTreeSet<String>> {
    let r = s.run(&["--json", "set", "show", "web"]);
    r.ok();
    let v = r.json();
    let pods = v["pods"].as_array()?;
    pods.iter()
        .all(|p| p["state"]["state"] == "ready")
        .then(|| {
            pods.iter()
                .map(|p| p["pod"].as_str().unwrap().to_owned())
                .collect()
        })
}

#[test]
fn a_pod_set_from_pwctl() {
    let token_dir = tempfile::tempdir().unwrap();
    let s = stack(&token_dir);
    let pods: BTreeSet<String> = s.sim.pod_names().into_iter().collect();

    let r = s.run(&ADD_WEB);
    r.ok();
    assert!(r.stdout.contains("web"), "{}", r.stdout);
    assert!(
        eventually(60, || ready_members(&s).as_ref() == Some(&pods)),
        "members never became ready: {}",
        s.run(&["set", "show", "web"]).stdout
    );

    let r = s.run(&["set", "list"]);
    r.ok();
    let line = r
        .stdout
        .lines()
        .find(|l| l.starts_with("web"))
        .unwrap_or_else(|| panic!("no line for the set: {}", r.stdout));
    for field in ["sim", "default", "app=web", "3", "watching"] {
        assert!(line.contains(field), "{field:?} missing from {line:?}");
    }
    let r = s.run(&["set", "show", "web"]);
    r.ok();
    for pod in &pods {
        let line = r
            .stdout
            .lines()
            .find(|l| l.contains(&format!("web/{pod}")))
            .unwrap_or_else(|| panic!("web/{pod} missing: {}", r.stdout));
        assert!(line.contains("ready"), "{line}");
    }

    // A fan-out to the set reaches every member, each in its own pod.
    let r = s.run(&[
        "--json",
        "exec",
        "run-many",
        "echo $POD_NAME",
        "--set",
        "web",
    ]);
    r.ok();
    let results = r.json()["results"].as_array().unwrap().clone();
    let answered: BTreeSet<String> = results
        .iter()
        .map(|x| {
            let alias = x["alias"].as_str().unwrap();
            assert_eq!(x["stdout"].as_str().unwrap().trim(), &alias["web/".len()..]);
            alias["web/".len()..].to_owned()
        })
        .collect();
    assert_eq!(answered, pods);

    // A pod goes: the set follows, its history stays under the set.
    let gone = pods.iter().next().unwrap().clone();
    let (status, body) =
        s.sim
            .admin_request("DELETE", &format!("/_podsim/pods/{gone}?grace_ms=0"), None);
    assert_eq!(status, 200, "{body}");
    let rest: BTreeSet<String> = pods.iter().filter(|p| **p != gone).cloned().collect();
    assert!(
        eventually(60, || ready_members(&s).as_ref() == Some(&rest)),
        "the deleted pod stayed a member: {}",
        s.run(&["set", "show", "web"]).stdout
    );
    let r = s.run(&["exec", "run", &format!("web/{gone}"), "true"]);
    r.expect_code(1);
    assert!(r.stderr.contains(&format!("web/{gone}")), "{}", r.stderr);

    // Errors say what was wrong.
    let r = s.run(&ADD_WEB);
    r.expect_code(1);
    assert!(r.stderr.contains("already exists"), "{}", r.stderr);
    let r = s.run(&[
        "set",
        "add",
        "api",
        "--cluster",
        "nope",
        "-n",
        "default",
        "-l",
        "app=api",
    ]);
    r.expect_code(65);
    assert!(r.stderr.contains("nope"), "{}", r.stderr);
    let r = s.run(&["set", "show", "nope"]);
    r.expect_code(1);
    assert!(r.stderr.contains("nope"), "{}", r.stderr);

    // Deleting the set retires its members; what ran on them stays findable by set.
    s.run(&["set", "delete", "web"]).ok();
    let r = s.run(&["set", "list"]);
    r.ok();
    assert!(
        !r.stdout.lines().any(|l| l.starts_with("web")),
        "{}",
        r.stdout
    );
    let r = s.run(&["--json", "pod", "list"]);
    r.ok();
    assert_eq!(r.json(), serde_json::json!([]));
    let r = s.run(&["--json", "exec", "history", "--set", "web"]);
    r.ok();
    let aliases: BTreeSet<String> = r.json()["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["alias"].as_str().unwrap().to_owned())
        .collect();
    let expected: BTreeSet<String> = pods.iter().map(|p| format!("web/{p}")).collect();
    assert_eq!(aliases, expected);
}
