//! `pwctl --local`: with no daemon answering, pwctl starts a user-mode podwranglerd in the
//! background (found beside itself), waits for it, runs the command, and later runs find it.

mod common;

use std::time::Duration;

use common::{Home, eventually};

/// Stops the daemon pwctl started (it is not our child: pwctl exited and left it running).
struct KillOnDrop(i32);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        // SAFETY: plain kill(2) on a pid this test learnt from pwctl.
        unsafe {
            libc::kill(self.0, libc::SIGTERM);
        }
        let gone = testkit::wait_until(Duration::from_secs(10), || unsafe {
            libc::kill(self.0, 0) != 0
        });
        if !gone {
            unsafe {
                libc::kill(self.0, libc::SIGKILL);
            }
        }
    }
}

fn started_pid(stderr: &str) -> Option<i32> {
    let rest = stderr.split("started podwranglerd (pid ").nth(1)?;
    rest.split(')').next()?.parse().ok()
}

#[test]
fn local_starts_a_user_daemon_once_and_later_commands_find_it() {
    // Built beside pwctl, where --local looks first.
    let daemon = testkit::bin_path("podwranglerd");
    assert_eq!(
        daemon.parent(),
        common::pwctl_bin().parent(),
        "podwranglerd must be built in pwctl's target dir"
    );
    let home = Home::new();

    // Without --local: nothing answers, and the message suggests it.
    let r = home.run(&["health"]);
    r.expect_code(69);
    assert!(r.stderr.contains("try --local"), "{}", r.stderr);

    let r = home.run(&["--local", "health", "--json"]);
    let pid = started_pid(&r.stderr)
        .unwrap_or_else(|| panic!("no 'started podwranglerd (pid N)' in: {}", r.stderr));
    let _guard = KillOnDrop(pid);
    r.ok();
    assert_eq!(r.json()["status"], "ok");
    let socket = home
        .runtime_dir()
        .join("podwrangler")
        .join("podwranglerd.sock");
    assert!(
        r.stderr.contains(&socket.display().to_string()),
        "{}",
        r.stderr
    );
    assert!(socket.exists());

    // The user socket now exists, so plain pwctl finds the daemon; --local starts no second one.
    home.run(&["pod", "list"]).ok();
    let again = home.run(&["-L", "health"]);
    again.ok();
    assert!(!again.stderr.contains("started"), "{}", again.stderr);

    // State lives in the (temporary) user data dir.
    let db = home
        .path()
        .join("data")
        .join("podwrangler")
        .join("podwrangler.db");
    assert!(
        eventually(10, || db.exists()),
        "no database at {}",
        db.display()
    );
}

#[test]
fn local_without_a_daemon_binary_says_where_it_looked() {
    let home = Home::new();
    // A pwctl with no podwranglerd beside it and none on PATH.
    let lone = home.path().join("bin");
    std::fs::create_dir_all(&lone).unwrap();
    let exe = lone.join("pwctl");
    std::fs::copy(common::pwctl_bin(), &exe).unwrap();
    let out = home
        .command_with(&exe)
        .env("PATH", "/usr/bin:/bin")
        .args(["--local", "health"])
        .output()
        .unwrap();
    let r: common::Run = out.into();
    r.expect_code(69);
    assert!(
        r.stderr
            .contains("podwranglerd is neither beside pwctl nor on PATH"),
        "{}",
        r.stderr
    );
}
