//! Processes "in a pod": spawn a command on a PTY or on pipes inside the pod's directory and
//! environment, in its own session so the whole process group can be killed.

use std::io;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;

use tokio::process::{Child, ChildStderr, ChildStdin, ChildStdout, Command};

use crate::pty::{Pty, PtyMaster};

/// Where and as whom a pod's processes run.
pub struct PodEnv<'a> {
    pub name: &'a str,
    pub namespace: &'a str,
    pub dir: &'a Path,
}

/// How the process's standard streams are connected.
pub enum StreamSpec {
    /// One PTY for all three streams, window cols x rows.
    Tty { cols: u16, rows: u16 },
    /// Separate pipes; a stream that was not requested is /dev/null.
    Pipes {
        stdin: bool,
        stdout: bool,
        stderr: bool,
    },
}

pub enum ProcessIo {
    Tty(Arc<PtyMaster>),
    Pipes {
        stdin: Option<ChildStdin>,
        stdout: Option<ChildStdout>,
        stderr: Option<ChildStderr>,
    },
}

pub struct Spawned {
    pub child: Child,
    /// Also the process group and session id (the child calls setsid).
    pub pid: i32,
    pub io: ProcessIo,
}

/// The interactive shell of a web terminal: bash if the machine has it, else sh.
pub fn interactive_shell() -> Vec<String> {
    for bash in ["/bin/bash", "/usr/bin/bash"] {
        if Path::new(bash).exists() {
            return vec![bash.to_string(), "-i".to_string()];
        }
    }
    vec!["/bin/sh".to_string(), "-i".to_string()]
}

/// Creates (if needed) and returns the pod's own directory under `workdir`.
pub fn pod_dir(workdir: &Path, pod: &str) -> io::Result<PathBuf> {
    let dir = workdir.join(pod);
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

pub fn spawn(argv: &[String], env: &PodEnv<'_>, spec: StreamSpec) -> io::Result<Spawned> {
    let Some((program, args)) = argv.split_first() else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "empty command: at least one command argument is required",
        ));
    };
    let mut cmd = Command::new(program);
    cmd.args(args)
        .current_dir(env.dir)
        .env("POD_NAME", env.name)
        .env("POD_NAMESPACE", env.namespace)
        .env("HOSTNAME", env.name)
        .env("HOME", env.dir)
        .kill_on_drop(true);
    let tty = matches!(spec, StreamSpec::Tty { .. });
    let mut master = None;
    match spec {
        StreamSpec::Tty { cols, rows } => {
            let pty = Pty::open(cols, rows)?;
            cmd.env("TERM", "xterm-256color")
                .stdin(Stdio::from(pty.slave.try_clone()?))
                .stdout(Stdio::from(pty.slave.try_clone()?))
                .stderr(Stdio::from(pty.slave));
            master = Some(Arc::new(pty.master));
        }
        StreamSpec::Pipes {
            stdin,
            stdout,
            stderr,
        } => {
            let pick = |on: bool| if on { Stdio::piped() } else { Stdio::null() };
            cmd.stdin(pick(stdin))
                .stdout(pick(stdout))
                .stderr(pick(stderr));
        }
    }
    // SAFETY: only async-signal-safe syscalls between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setsid() < 0 {
                return Err(io::Error::last_os_error());
            }
            if tty && libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                return Err(io::Error::last_os_error());
            }
            // If podsim dies without cleaning up (SIGKILL), its shells must not linger.
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    let mut child = cmd.spawn()?;
    let pid = child.id().map(|p| p as i32).unwrap_or(0);
    let io = match master {
        Some(m) => ProcessIo::Tty(m),
        None => ProcessIo::Pipes {
            stdin: child.stdin.take(),
            stdout: child.stdout.take(),
            stderr: child.stderr.take(),
        },
    };
    Ok(Spawned { child, pid, io })
}

/// SIGKILLs the process group `pgid` (the shell and everything it started in its group).
pub fn kill_group(pgid: i32) {
    if pgid > 1 {
        // SAFETY: kill has no memory-safety preconditions.
        unsafe {
            libc::kill(-pgid, libc::SIGKILL);
        }
    }
}

/// Exit code as a shell reports it: the code, or 128 + signal number when killed by a signal.
pub fn exit_code(status: &ExitStatus) -> i32 {
    status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(1)
}
