//! A command once per pod under `xargs -P` (how people loop kubectl over pods), timed from the
//! moment the pod names are written to the end of the last process.

use std::ffi::OsString;
use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;

/// Runs `argv` (in which `{}` stands for the pod's name) for each of `names`, `parallel` at a
/// time; answers what xargs printed and how long it all took.
pub fn per_pod(
    parallel: usize,
    argv: &[OsString],
    names: &[String],
    capture_stdout: bool,
) -> anyhow::Result<(Output, Duration)> {
    let mut child = Command::new("xargs")
        .args(["-P", &parallel.to_string(), "-I{}"])
        .args(argv)
        .stdin(Stdio::piped())
        .stdout(if capture_stdout {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stderr(Stdio::piped())
        .spawn()
        .context("running xargs")?;
    let t = Instant::now();
    {
        let mut stdin = child.stdin.take().context("xargs stdin")?;
        stdin.write_all((names.join("\n") + "\n").as_bytes())?;
    }
    let out = child.wait_with_output()?;
    Ok((out, t.elapsed()))
}
