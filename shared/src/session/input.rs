//! Bytes for a command: staged into a private file in the pod through the session's own shell,
//! then given to the command as its stdin (or named by `$__pw_in`, for scripts and copies).
//!
//! Why staged, and why as base64 here-documents:
//! - The long-lived shell reads its commands from the same stdin. Raw bytes after a command
//!   line would be read by the shell itself: dash and busybox ash read their input in blocks,
//!   so `head -c N` after a command line gets nothing (POSIX asks for byte-wise reads, few
//!   shells do it). Bytes inside a here-document are read by the shell's parser, the one
//!   reader that always knows where they end.
//! - Here-documents cannot carry NUL bytes, and a TTY line discipline acts on control
//!   characters and cuts lines near 4096 bytes: base64 in 76-character lines passes both.
//! - Each piece is one framed command (`base64 -d >>FILE <<EOF`), so a write that fails (full
//!   or read-only disk, no `base64`) stops the transfer at that piece, with the shell's message.
//! - Memory stays bounded: one piece (`PIECE` bytes) is encoded and sent at a time, and the
//!   sender blocks on the WebSocket when the pod reads slowly.
//!
//! On Kubernetes without a TTY, where the API server speaks `v5.channel.k8s.io` (which can
//! close a process's stdin), the bytes skip the shell: the session creates the file as above,
//! and a second exec in the same container, `cat >>FILE`, gets them raw on its own stdin until
//! it is closed, and its exit status says whether they all reached the disk. Elsewhere (v4,
//! PlainTTY) the here-documents are used.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use tokio::sync::mpsc::Receiver;
use tokio::time::Instant;

use super::transport::{Output, Transport};
use super::{Conn, End, Live, PodSession, exec};
use crate::models::DEFAULT_COMMAND_TIMEOUT;

/// Raw bytes per here-document: about 340 KiB of shell text per piece.
pub const PIECE: usize = 256 * 1024;
/// Base64 characters per line (as `base64` writes them).
const LINE: usize = 76;
/// Shell variable that names the staged file.
pub const STAGED_VAR: &str = "__pw_in";
/// The longest a single piece may take to reach the pod's disk.
const PIECE_TIMEOUT: Duration = DEFAULT_COMMAND_TIMEOUT;
/// Output kept from the staging commands (only error messages are expected).
const STAGE_OUTPUT: usize = 4096;

/// The piece that ends an input: an empty `Ok`. Without it, a closed channel means the sender
/// went away half-way, and a truncated input must never reach the command.
pub const END_OF_INPUT: std::io::Result<Vec<u8>> = Ok(Vec::new());

/// What the staged bytes are to the command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InputRole {
    /// The command's stdin.
    Stdin,
    /// A file the command names as `"$__pw_in"` (its stdin stays `/dev/null`). The file is
    /// removed after the command unless the command moved it away.
    Named,
}

/// Bytes to give a command: pieces as they arrive, ended by an empty piece (see
/// [`END_OF_INPUT`]); an `Err`, or a channel closed before the empty piece (its sender went
/// away half-way), aborts the transfer and the command does not run. Also what the bytes are
/// to the command, and where they are staged.
#[derive(Debug)]
pub struct Input {
    pub data: Receiver<std::io::Result<Vec<u8>>>,
    pub role: InputRole,
    /// Directory for the staged file, as a shell word (quoted by the caller); default
    /// `${TMPDIR:-/tmp}`. A copy stages beside its destination, so its rename stays on one
    /// filesystem.
    pub stage_dir: Option<String>,
}

impl Input {
    /// The command's stdin, staged in the pod's temp directory.
    pub fn stdin(data: Receiver<std::io::Result<Vec<u8>>>) -> Input {
        Input {
            data,
            role: InputRole::Stdin,
            stage_dir: None,
        }
    }
}

/// How staging ended: the file is complete, or why not.
pub(super) enum Staged {
    /// The command may run with this stdin and this clean-up after it.
    Ready { stdin: String, after: String },
    /// The shell refused a piece (status and what it said), or the input broke off.
    Failed { code: Option<i32>, reason: String },
    /// The session ended, timed out or was cancelled while staging.
    Ended(End),
}

/// `'` quoted for the shell.
pub fn shell_quote(text: &str) -> String {
    format!("'{}'", super::script::single_quote_escape(text))
}

/// Writes `input` into a new private file in the pod, piece by piece: raw through a second
/// exec when `side` (the session, on a channel without a TTY) can open one, else as
/// here-documents through the shell.
pub(super) async fn stage(
    conn: &mut Conn,
    mut input: Input,
    nonce: &str,
    live: Live<'_>,
    side: Option<&PodSession>,
) -> Staged {
    let dir = input
        .stage_dir
        .clone()
        .unwrap_or_else(|| "\"${TMPDIR:-/tmp}\"".to_owned());
    let create = format!("{STAGED_VAR}={dir}/.pw-in-$$-{nonce}; (umask 077; : >\"${STAGED_VAR}\")");
    let piece_deadline = || Instant::now() + PIECE_TIMEOUT;
    if let Some(failed) = step(
        conn,
        &create,
        piece_deadline(),
        live,
        "cannot create the staging file",
    )
    .await
    {
        return failed;
    }
    if let Some(session) = side {
        match stage_raw(conn, session, &mut input, live).await {
            Raw::Written => return ready(input.role),
            // The shell is idle while the second exec writes: it can remove the file.
            Raw::Failed(failed) => {
                cleanup(conn).await;
                return failed;
            }
            Raw::Ended(end) => return Staged::Ended(end),
            Raw::Unavailable => {}
        }
    }
    let mut raw = Vec::with_capacity(PIECE);
    let mut done = false;
    while !done {
        raw.clear();
        while raw.len() < PIECE {
            match input.data.recv().await {
                Some(Ok(bytes)) if bytes.is_empty() => {
                    done = true;
                    break;
                }
                Some(Ok(bytes)) => raw.extend_from_slice(&bytes),
                Some(Err(e)) => {
                    cleanup(conn).await;
                    return Staged::Failed {
                        code: None,
                        reason: format!("the input broke off: {e}"),
                    };
                }
                None => {
                    cleanup(conn).await;
                    return Staged::Failed {
                        code: None,
                        reason: "the input ended before it was complete (its sender went away)"
                            .into(),
                    };
                }
            }
        }
        // Pieces larger than PIECE (a sender's big buffer) go out whole; still bounded by it.
        if raw.is_empty() {
            continue;
        }
        let text = piece_command(&raw);
        if let Some(failed) = step(
            conn,
            &text,
            piece_deadline(),
            live,
            "cannot write the input into the pod",
        )
        .await
        {
            if !matches!(failed, Staged::Ended(_)) {
                cleanup(conn).await;
            }
            return failed;
        }
    }
    ready(input.role)
}

/// What the command gets once its input is staged.
fn ready(role: InputRole) -> Staged {
    let (stdin, after) = match role {
        InputRole::Stdin => (
            format!("\"${STAGED_VAR}\""),
            format!("rm -f \"${STAGED_VAR}\""),
        ),
        InputRole::Named => ("/dev/null".to_owned(), format!("rm -f \"${STAGED_VAR}\"")),
    };
    Staged::Ready { stdin, after }
}

/// How a raw transfer through a second exec went.
enum Raw {
    /// Every byte is in the staged file.
    Written,
    /// No second exec that can close its stdin: nothing was read from the input, so the
    /// here-documents can carry it.
    Unavailable,
    /// The transfer started and did not finish.
    Failed(Staged),
    /// The session's shell ended, timed out or was cancelled while asked for the file's path.
    Ended(End),
}

/// The staged file's absolute path, as the session's shell sees it (the second exec starts in
/// the container's working directory, not the shell's).
const ABSOLUTE_PATH: &str =
    "case \"$__pw_in\" in /*) printf '%s' \"$__pw_in\";; *) printf '%s' \"$PWD/$__pw_in\";; esac";

/// Sends the input raw to `cat >>FILE` in a second exec of the session's container.
async fn stage_raw(
    conn: &mut Conn,
    session: &PodSession,
    input: &mut Input,
    live: Live<'_>,
) -> Raw {
    let quiet = Live {
        output: None,
        cancel: live.cancel,
    };
    let found = exec(
        conn,
        ABSOLUTE_PATH,
        STAGE_OUTPUT,
        Instant::now() + PIECE_TIMEOUT,
        quiet,
    )
    .await;
    let path = match found.end {
        End::Exit(0) => found.out.to_string_lossy(),
        End::Exit(_) => return Raw::Unavailable,
        other => return Raw::Ended(other),
    };
    if !path.starts_with('/') {
        return Raw::Unavailable;
    }
    // The writer says it runs before any input is read, so an exec that cannot start (no
    // such shell, a policy that refuses it) falls back to the here-documents.
    let argv = session.shell_script(
        &format!("printf {WRITER_READY}; exec cat >>\"$0\""),
        &[&path],
    );
    // No waiting: without a permit the here-documents carry the input at once.
    let Some(mut side) = session.side_exec(argv, Duration::ZERO).await else {
        return Raw::Unavailable;
    };
    if !side.transport.can_close_stdin() || !writer_ready(&mut side.transport).await {
        side.transport.close().await;
        return Raw::Unavailable;
    }
    let result = send_raw(&mut side.transport, input, live).await;
    side.transport.close().await;
    result
}

/// What the raw writer prints once it runs.
const WRITER_READY: &str = "PW-READY";
/// The longest the raw writer may take to start before the shell carries the input instead.
const WRITER_START: Duration = Duration::from_secs(10);

/// Waits for the writer's [`WRITER_READY`]; false if it ended or said something else first.
async fn writer_ready(side: &mut Transport) -> bool {
    let wait = async {
        let mut said = Vec::new();
        loop {
            match side.recv().await {
                Output::Stdout(b) => {
                    said.extend_from_slice(&b);
                    if said.len() >= WRITER_READY.len() {
                        return said == WRITER_READY.as_bytes();
                    }
                }
                Output::Stderr(_) => {}
                Output::Exited(_) | Output::Closed(_) => return false,
            }
        }
    };
    tokio::time::timeout(WRITER_START, wait)
        .await
        .unwrap_or(false)
}

/// Streams the input to `side`'s stdin, closes it and waits for the writer's status.
async fn send_raw(side: &mut Transport, input: &mut Input, live: Live<'_>) -> Raw {
    let failed = |code: Option<i32>, reason: String| Raw::Failed(Staged::Failed { code, reason });
    let mut said = Vec::new();
    let mut piece = Vec::with_capacity(PIECE);
    let mut done = false;
    while !done {
        let next = tokio::select! {
            biased;
            _ = cancelled(live) => return Raw::Failed(Staged::Ended(End::Cancelled)),
            // The writer ended early (no space, read-only disk): its status says why.
            out = side.recv() => match out {
                Output::Stderr(b) | Output::Stdout(b) => {
                    keep(&mut said, &b);
                    continue;
                }
                Output::Exited(code) => return failed(code, writer_failed(&said, code)),
                Output::Closed(why) => return failed(None, format!("cannot write the input into the pod: {why}")),
            },
            // As through the shell, a sender may pause as long as it likes: the command's
            // timeout starts once its input is complete.
            next = input.data.recv() => next,
        };
        match next {
            Some(Ok(bytes)) if bytes.is_empty() => done = true,
            Some(Ok(bytes)) => piece.extend_from_slice(&bytes),
            Some(Err(e)) => return failed(None, format!("the input broke off: {e}")),
            None => {
                return failed(
                    None,
                    "the input ended before it was complete (its sender went away)".into(),
                );
            }
        }
        if piece.len() >= PIECE || (done && !piece.is_empty()) {
            match tokio::time::timeout(PIECE_TIMEOUT, side.send(&piece)).await {
                Ok(Ok(())) => piece.clear(),
                Ok(Err(e)) => {
                    return failed(None, format!("cannot write the input into the pod: {e}"));
                }
                Err(_) => {
                    return failed(
                        None,
                        "cannot write the input into the pod: it stopped reading".into(),
                    );
                }
            }
        }
    }
    if let Err(e) = side.close_stdin().await {
        return failed(None, format!("cannot write the input into the pod: {e}"));
    }
    let wait = async {
        loop {
            match side.recv().await {
                Output::Stderr(b) | Output::Stdout(b) => keep(&mut said, &b),
                Output::Exited(Some(0)) => return Raw::Written,
                Output::Exited(code) => return failed(code, writer_failed(&said, code)),
                Output::Closed(why) => {
                    return failed(None, format!("cannot write the input into the pod: {why}"));
                }
            }
        }
    };
    tokio::select! {
        biased;
        _ = cancelled(live) => Raw::Failed(Staged::Ended(End::Cancelled)),
        r = tokio::time::timeout(PIECE_TIMEOUT, wait) => r.unwrap_or_else(|_| {
            failed(None, "cannot write the input into the pod: no status from the writer".into())
        }),
    }
}

/// Resolves when `live` is cancelled; never otherwise.
async fn cancelled(live: Live<'_>) {
    match live.cancel {
        Some(c) => c.cancelled().await,
        None => std::future::pending().await,
    }
}

/// Keeps the first [`STAGE_OUTPUT`] bytes the writer printed (only errors are expected).
fn keep(said: &mut Vec<u8>, bytes: &[u8]) {
    let room = STAGE_OUTPUT.saturating_sub(said.len());
    said.extend_from_slice(&bytes[..bytes.len().min(room)]);
}

fn writer_failed(said: &[u8], code: Option<i32>) -> String {
    let said = String::from_utf8_lossy(said);
    let said = said.trim();
    match (said.is_empty(), code) {
        (false, _) => format!("cannot write the input into the pod: {said}"),
        (true, Some(code)) => format!("cannot write the input into the pod: status {code}"),
        (true, None) => "cannot write the input into the pod".into(),
    }
}

/// `base64 -d >>"$__pw_in" <<__PW_B64` with `raw` as 76-character lines.
fn piece_command(raw: &[u8]) -> String {
    let encoded = BASE64.encode(raw);
    let mut text = String::with_capacity(encoded.len() + encoded.len() / LINE + 64);
    text.push_str(&format!("base64 -d >>\"${STAGED_VAR}\" <<__PW_B64\n"));
    for line in encoded.as_bytes().chunks(LINE) {
        // Base64 is ASCII, so every chunk is valid UTF-8.
        text.push_str(std::str::from_utf8(line).unwrap_or_default());
        text.push('\n');
    }
    text.push_str("__PW_B64\n");
    text
}

/// Runs one staging command; `None` when it succeeded.
async fn step(
    conn: &mut Conn,
    command: &str,
    deadline: Instant,
    live: Live<'_>,
    what: &str,
) -> Option<Staged> {
    let live = Live {
        output: None,
        cancel: live.cancel,
    };
    let c = exec(conn, command, STAGE_OUTPUT, deadline, live).await;
    match c.end {
        End::Exit(0) => None,
        End::Exit(code) => {
            let said = format!(
                "{} {}",
                c.err.to_string_lossy().trim(),
                c.out.to_string_lossy().trim()
            );
            let said = said.trim();
            let hint = if code == 127 {
                " (the pod needs `base64`)"
            } else {
                ""
            };
            Some(Staged::Failed {
                code: Some(code),
                reason: if said.is_empty() {
                    format!("{what}: status {code}{hint}")
                } else {
                    format!("{what}: {said}{hint}")
                },
            })
        }
        other => Some(Staged::Ended(other)),
    }
}

/// Removes a half-written staging file (best effort: the shell may be gone).
async fn cleanup(conn: &mut Conn) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let _ = exec(
        conn,
        &format!("rm -f \"${STAGED_VAR}\""),
        0,
        deadline,
        Live::default(),
    )
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_are_short_base64_lines_in_a_here_document() {
        let raw: Vec<u8> = (0..=255u8).cycle().take(10_000).collect();
        let text = piece_command(&raw);
        assert!(text.starts_with("base64 -d >>\"$__pw_in\" <<__PW_B64\n"));
        assert!(text.ends_with("\n__PW_B64\n"));
        let body: String = text
            .lines()
            .skip(1)
            .take_while(|l| *l != "__PW_B64")
            .collect();
        assert!(
            text.lines()
                .all(|l| l.len() <= 76 || l.starts_with("base64"))
        );
        assert_eq!(BASE64.decode(body).unwrap(), raw);
        // Nothing the shell would expand inside an unquoted here-document.
        assert!(!text.contains('$') || text.matches('$').count() == 1);
        assert!(!text.contains('`') && !text.contains('\\'));
    }

    #[test]
    fn quoting_survives_quotes() {
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
    }
}
