//! A real terminal, 80 columns wide (tmux): the fan-out progress bar and the result table
//! render without broken lines, colours appear on a terminal, and `NO_COLOR` removes them.
//! Skips (loudly) when tmux is missing, unless `PODWRANGLER_REQUIRE_TMUX=1`.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::Stack;

const COLS: usize = 80;

/// A detached tmux server of our own (its own socket name), killed on drop.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn start(shell_env: &[(&str, String)]) -> Tmux {
        let socket = format!("pwctl-test-{}-{}", std::process::id(), rand_suffix());
        let mut env_args: Vec<String> = vec!["env".into(), "-i".into()];
        env_args.extend(shell_env.iter().map(|(k, v)| format!("{k}={v}")));
        env_args.extend(["bash".into(), "--norc".into(), "--noprofile".into()]);
        let status = Command::new("tmux")
            .args([
                "-L",
                &socket,
                "-f",
                "/dev/null",
                "-u",
                "new-session",
                "-d",
                "-s",
                "pw",
            ])
            .args(["-x", &COLS.to_string(), "-y", "50"])
            .args(&env_args)
            .status()
            .expect("run tmux");
        assert!(status.success(), "tmux new-session failed");
        let t = Tmux { socket };
        // The pane must really be 80 wide (some tmux versions size detached sessions otherwise).
        t.tmux(&[
            "resize-window",
            "-t",
            "pw",
            "-x",
            &COLS.to_string(),
            "-y",
            "50",
        ]);
        t
    }

    fn tmux(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .args(["-L", &self.socket])
            .args(args)
            .output()
            .expect("run tmux");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn type_line(&self, line: &str) {
        self.tmux(&["send-keys", "-t", "pw", "-l", line]);
        self.tmux(&["send-keys", "-t", "pw", "Enter"]);
    }

    /// The screen, wrapped lines joined (-J) so a line the terminal had to break shows up
    /// longer than the width.
    fn screen(&self) -> String {
        self.tmux(&["capture-pane", "-p", "-J", "-t", "pw", "-S", "-200"])
    }

    /// The screen with colour escapes (-e).
    fn screen_escaped(&self) -> String {
        self.tmux(&["capture-pane", "-p", "-e", "-J", "-t", "pw", "-S", "-200"])
    }

    /// Types `command`, waits until it finished, and returns what it printed (with colour
    /// escapes): the lines between the typed line and the end marker.
    fn output_of(&self, command: &str, marker: &str) -> String {
        self.tmux(&["clear-history", "-t", "pw"]);
        self.type_line(&format!("{command}; echo {marker}_$?"));
        let end = Instant::now() + Duration::from_secs(60);
        loop {
            let screen = self.screen_escaped();
            let lines: Vec<&str> = screen.lines().collect();
            let typed = lines
                .iter()
                .rposition(|l| l.contains(&format!("echo {marker}_")));
            let done = lines
                .iter()
                .rposition(|l| strip_escapes(l).starts_with(&format!("{marker}_")));
            if let (Some(t), Some(d)) = (typed, done)
                && d > t
            {
                return lines[t + 1..d].join("\n");
            }
            assert!(
                Instant::now() < end,
                "{command:?} never finished; screen:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .status();
    }
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

fn tmux_available() -> bool {
    let found = Command::new("tmux")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        if std::env::var("PODWRANGLER_REQUIRE_TMUX").as_deref() == Ok("1") {
            panic!("tmux is required (PODWRANGLER_REQUIRE_TMUX=1) but not installed");
        }
        eprintln!("SKIP: tmux is not installed; the 80-column terminal test did not run");
    }
    found
}

fn strip_escapes(line: &str) -> String {
    let mut out = String::new();
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn width(line: &str) -> usize {
    line.chars().count()
}

#[test]
fn progress_bar_and_table_fit_80_columns() {
    if !tmux_available() {
        return;
    }
    let s = Stack::start(5);
    let aliases = s.add_all();
    let bin_dir = common::pwctl_bin().parent().unwrap().display().to_string();
    let tmux = Tmux::start(&[
        ("PATH", format!("{bin_dir}:/usr/bin:/bin")),
        ("HOME", s.home.path().display().to_string()),
        (
            "XDG_RUNTIME_DIR",
            s.home.runtime_dir().display().to_string(),
        ),
        ("PODWRANGLER_SOCKET", s.daemon.socket.display().to_string()),
        ("TERM", "xterm-256color".into()),
        ("LANG", "C.UTF-8".into()),
        ("PS1", "$ ".into()),
    ]);

    // One pod at a time, each a second or so: the bar is on screen long enough to see it.
    // A long first line of output tests that the table cuts cells instead of wrapping. The
    // command sits in a script so the typed line itself stays short.
    std::fs::write(
        s.home.path().join("fanout.sh"),
        "pwctl exec run-many --all --concurrency 1 -- 'sleep 1; echo $POD_NAME says a rather long line of output that cannot fit in eighty columns at all'\n",
    )
    .unwrap();
    tmux.type_line("sh ~/fanout.sh; echo __EXIT_$?__");
    let mut saw_bar = None;
    let end = Instant::now() + Duration::from_secs(120);
    let final_screen = loop {
        let screen = tmux.screen();
        if let Some(bar) = screen.lines().find(|l| l.contains("/5") && l.contains('[')) {
            saw_bar.get_or_insert_with(|| bar.to_string());
            assert!(
                width(bar) <= COLS,
                "progress line wider than {COLS}: {bar:?}"
            );
        }
        if screen.contains("__EXIT_") && screen.lines().any(|l| l.starts_with("__EXIT_")) {
            break screen;
        }
        assert!(
            Instant::now() < end,
            "run-many never finished; screen:\n{screen}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let bar = saw_bar.expect("the progress bar never showed while pods finished");
    assert!(bar.contains("] "), "{bar}");

    assert!(final_screen.contains("__EXIT_0__"), "{final_screen}");
    for line in final_screen.lines() {
        assert!(
            width(line) <= COLS,
            "line wider than {COLS} (wrapped): {line:?}"
        );
    }
    // The table is one box, every row one line, all rows the same width.
    let table: Vec<&str> = final_screen
        .lines()
        .skip_while(|l| !l.starts_with('╭'))
        .take_while(|l| !l.is_empty() && !l.starts_with("5 pods"))
        .collect();
    assert!(
        table.len() >= 2 + 1 + 5,
        "no table on screen:\n{final_screen}"
    );
    assert!(table.last().unwrap().starts_with('╰'), "{table:#?}");
    let w = width(table[0]);
    assert!(w <= COLS);
    for line in &table {
        assert_eq!(width(line), w, "ragged table line: {line:?}");
        assert!(
            line.starts_with(['╭', '│', '├', '╰']) && line.ends_with(['╮', '│', '┤', '╯']),
            "broken table line: {line:?}"
        );
    }
    for alias in &aliases {
        assert_eq!(
            table
                .iter()
                .filter(|l| l.starts_with(&format!("│ {alias} ")))
                .count(),
            1,
            "{alias} should have exactly one row:\n{}",
            table.join("\n")
        );
    }
    assert!(
        table.iter().any(|l| l.contains('…')),
        "long output is cut with an ellipsis"
    );
    // finish_and_clear: no progress bar left behind.
    assert!(
        !final_screen
            .lines()
            .any(|l| l.contains("/5") && l.contains('[')),
        "{final_screen}"
    );
    assert!(final_screen.contains("5 pods: 5 succeeded, 0 failed"));

    // Colours on a terminal; NO_COLOR turns them off.
    let coloured = tmux.output_of("pwctl health", "__H1");
    assert!(strip_escapes(&coloured).contains(": ok"), "{coloured}");
    assert!(
        coloured.contains("\u{1b}["),
        "no colour on a terminal:\n{coloured}"
    );
    let plain = tmux.output_of("NO_COLOR=1 pwctl health", "__H2");
    assert!(plain.contains(": ok"), "{plain}");
    assert!(
        !plain.contains("\u{1b}["),
        "NO_COLOR still coloured:\n{plain:?}"
    );
    let flag = tmux.output_of("pwctl --no-color health", "__H3");
    assert!(
        flag.contains(": ok") && !flag.contains("\u{1b}["),
        "{flag:?}"
    );
}
