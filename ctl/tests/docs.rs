//! `pwctl completions` and `pwctl man`: the scripts parse in their shells, complete what they
//! should, and the man page renders; the copies shipped in `ctl/dist/` match what the binary prints.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::Home;

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn script(shell: &str) -> String {
    let r = Home::new().run(&["completions", shell]);
    r.ok();
    assert!(r.stdout.len() > 500, "{shell} script is suspiciously short");
    r.stdout
}

fn write_temp(home: &Home, name: &str, text: &str) -> PathBuf {
    let p = home.path().join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn bash_completion_parses_and_completes_commands_flags_and_values() {
    let home = Home::new();
    let file = write_temp(&home, "pwctl.bash", &script("bash"));
    let check = Command::new("bash").arg("-n").arg(&file).output().unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );

    // Drive the completion function the way bash does on <TAB>.
    let complete = |words: &[&str]| -> Vec<String> {
        let array = words
            .iter()
            .map(|w| format!("'{w}'"))
            .collect::<Vec<_>>()
            .join(" ");
        let prog = format!(
            "source {}; COMP_WORDS=({array}); COMP_CWORD={}; _pwctl; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            file.display(),
            words.len() - 1
        );
        let out = Command::new("bash").arg("-c").arg(prog).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| !l.is_empty())
            .map(String::from)
            .collect()
    };
    assert_eq!(
        complete(&["pwctl", ""]),
        [
            "health",
            "pod",
            "exec",
            "set",
            "audit",
            "clusters",
            "cp",
            "completions",
            "man"
        ]
    );
    assert_eq!(complete(&["pwctl", "--json", "ex"]), ["exec"]);
    assert_eq!(complete(&["pwctl", "exec", "run"]), ["run", "run-many"]);
    let flags = complete(&["pwctl", "exec", "run-many", "x", "--"]);
    for f in [
        "--aliases",
        "--tag",
        "--all",
        "--show-output",
        "--json",
        "--socket",
    ] {
        assert!(flags.contains(&f.to_string()), "{f} missing from {flags:?}");
    }
    // An option's value is not taken for a subcommand.
    assert_eq!(complete(&["pwctl", "--socket", "/s", "pod", "l"]), ["list"]);
    // Here `pod` is --socket's value, so `l` would be the command: nothing starts with it.
    assert!(complete(&["pwctl", "--socket", "pod", "l"]).is_empty());
    assert_eq!(
        complete(&["pwctl", "pod", "add", "--provider", ""]),
        ["plaintty", "kubernetes"]
    );
    assert_eq!(complete(&["pwctl", "completions", "f"]), ["fish"]);
    // Files pwctl reads itself complete to paths.
    let home_file = write_temp(&home, "ca.pem", "");
    let prefix = home_file.with_file_name("ca.p");
    assert_eq!(
        complete(&[
            "pwctl",
            "pod",
            "import",
            "--certificate-authority",
            prefix.to_str().unwrap()
        ]),
        [home_file.to_str().unwrap()]
    );
}

#[test]
fn zsh_and_fish_completions_parse() {
    let home = Home::new();
    let zsh = write_temp(&home, "_pwctl", &script("zsh"));
    let fish = write_temp(&home, "pwctl.fish", &script("fish"));
    let mut checked = 0;
    for (shell, file) in [("zsh", &zsh), ("fish", &fish)] {
        if !have(shell) {
            eprintln!("SKIP: {shell} is not installed; only generated, not parsed");
            continue;
        }
        let out = Command::new(shell).arg("-n").arg(file).output().unwrap();
        assert!(
            out.status.success(),
            "{shell} -n: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        checked += 1;
    }
    if have("fish") {
        // fish can list what it would complete for a command line.
        let prog = format!("source {}; complete -C 'pwctl exec '", fish.display());
        let out = Command::new("fish").arg("-c").arg(prog).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        for sub in ["run", "run-many", "history", "show"] {
            assert!(
                text.lines().any(|l| l.starts_with(sub)),
                "fish lacks {sub}: {text}"
            );
        }
    }
    eprintln!("parsed {checked} of 2 shells");
}

#[test]
fn man_page_renders() {
    let r = Home::new().run(&["man"]);
    r.ok();
    assert!(
        r.stdout.starts_with(".\\\""),
        "{}",
        &r.stdout[..80.min(r.stdout.len())]
    );
    assert!(r.stdout.contains(".TH PWCTL 1"));
    for section in [
        "SYNOPSIS",
        "COMMANDS",
        "EXIT STATUS",
        "ENVIRONMENT",
        "FILES",
    ] {
        assert!(r.stdout.contains(&format!(".SH {section}")), "no {section}");
    }
    assert!(r.stdout.contains("pwctl exec run\\-many") || r.stdout.contains("pwctl exec run-many"));
    if have("groff") {
        let home = Home::new();
        let page = write_temp(&home, "pwctl.1", &r.stdout);
        // -ww: every warning; -z: no output, just the check.
        let out = Command::new("groff")
            .args(["-man", "-ww", "-z"])
            .arg(&page)
            .output()
            .unwrap();
        let warnings = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && warnings.trim().is_empty(),
            "groff: {warnings}"
        );
    }
}

/// The man page and completions shipped for packages (`ctl/dist/`) are what the binary prints.
/// Refresh them with `PWCTL_BLESS=1 cargo test -p pwctl --test docs`.
#[test]
fn shipped_copies_are_up_to_date() {
    let dist = Path::new(env!("CARGO_MANIFEST_DIR")).join("dist");
    let home = Home::new();
    let files = [
        ("pwctl.1", vec!["man"]),
        ("pwctl.bash", vec!["completions", "bash"]),
        ("_pwctl", vec!["completions", "zsh"]),
        ("pwctl.fish", vec!["completions", "fish"]),
    ];
    let bless = std::env::var_os("PWCTL_BLESS").is_some();
    for (name, args) in files {
        let fresh = home.run(&args);
        fresh.ok();
        let path = dist.join(name);
        if bless {
            std::fs::create_dir_all(&dist).unwrap();
            std::fs::write(&path, &fresh.stdout).unwrap();
            continue;
        }
        let shipped = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            shipped == fresh.stdout,
            "{} is stale; run PWCTL_BLESS=1 cargo test -p pwctl --test docs",
            path.display()
        );
    }
}
