//! A small tmpfs mounted for one test, to fill a file system on purpose. Needs root; unmounted
//! (and its directory removed) on `Drop`, even when the test panics.

use std::path::Path;
use std::process::Command;

use crate::TempDirGuard;

/// A tmpfs of a given size, mounted on a fresh temporary directory.
pub struct Tmpfs {
    dir: Option<TempDirGuard>,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (`mount -o size=...`, e.g. `"8m"`). `None`, after a SKIP line
    /// naming `test`, when not running as root or when the mount is refused.
    pub fn mount(test: &str, size: &str) -> Option<Tmpfs> {
        if !crate::pg::is_root() {
            eprintln!(
                "\n*** SKIP {test}: mounting a tmpfs needs root (run the test as root) ***\n"
            );
            return None;
        }
        let dir = TempDirGuard::new("pw-tmpfs");
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(dir.path())
            .output();
        match out {
            Ok(o) if o.status.success() => Some(Tmpfs { dir: Some(dir) }),
            Ok(o) => {
                eprintln!(
                    "\n*** SKIP {test}: mount -t tmpfs refused: {} ***\n",
                    String::from_utf8_lossy(&o.stderr).trim()
                );
                None
            }
            Err(e) => {
                eprintln!("\n*** SKIP {test}: cannot run mount: {e} ***\n");
                None
            }
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.as_ref().expect("mounted").path()
    }

    /// Fills the file system with `name` (`dd` from /dev/zero until it is full).
    pub fn fill(&self, name: &str) {
        let _ = Command::new("dd")
            .arg("if=/dev/zero")
            .arg(format!("of={}", self.path().join(name).display()))
            .args(["bs=4k", "status=none"])
            .stderr(std::process::Stdio::null())
            .status();
    }

    /// Bytes still free on the file system.
    pub fn available(&self) -> u64 {
        let out = Command::new("df")
            .args(["--output=avail", "-B1"])
            .arg(self.path())
            .output()
            .expect("run df");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .nth(1)
            .and_then(|l| l.trim().parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        if let Some(dir) = self.dir.take() {
            let unmounted = Command::new("umount")
                .arg(dir.path())
                .status()
                .is_ok_and(|s| s.success());
            if !unmounted {
                // Something still holds a file open there (a daemon that outlived the test):
                // detach it now; the kernel frees it when the last file closes.
                let _ = Command::new("umount").arg("-l").arg(dir.path()).status();
            }
            drop(dir);
        }
    }
}
