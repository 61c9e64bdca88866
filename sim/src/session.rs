//! One WebSocket connection bridged to one process in a pod: PlainTTY raw terminal frames, or the
//! Kubernetes channel protocol (v4/v5.channel.k8s.io), with the pod's faults applied on the way.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::process::ChildStdin;
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::shell::{self, PodEnv, ProcessIo, Spawned, StreamSpec};
use crate::state::{Faults, LiveGuard, Pod, State};

/// Kubernetes remotecommand channels.
pub const CH_STDIN: u8 = 0;
pub const CH_STDOUT: u8 = 1;
pub const CH_STDERR: u8 = 2;
pub const CH_ERROR: u8 = 3;
pub const CH_RESIZE: u8 = 4;
pub const CH_CLOSE: u8 = 255;

/// How long output may keep flowing after the process exited (background children holding the
/// pipes) before the rest of its process group is killed.
const DRAIN_GRACE: Duration = Duration::from_millis(1000);

/// How long to wait for the client's reply to our close frame before dropping the connection.
const CLOSE_REPLY_WAIT: Duration = Duration::from_secs(2);

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Protocol {
    /// Raw terminal bytes in text frames.
    PlainTty,
    /// Channel-framed binary messages; `v5` adds the close channel.
    K8s { v5: bool },
}

pub struct SessionParams {
    pub argv: Vec<String>,
    pub spec: StreamSpec,
    pub protocol: Protocol,
}

/// Runs the session to completion: until the process ends (status sent, socket closed), the
/// client goes away, or a drop fault cuts the TCP connection. The process group never outlives it.
pub async fn run<S>(ws: WebSocketStream<S>, pod: Arc<Pod>, state: Arc<State>, params: SessionParams)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let guard = LiveGuard::register(&pod);
    let faults = pod.faults.subscribe();
    let drop_after = faults.borrow().drop_after_ms.map(Duration::from_millis);
    let (sink, stream) = ws.split();
    let (tx, rx) = mpsc::channel::<Message>(64);
    let activity = Activity::new();
    let writer = writer(sink, rx, faults, activity.clone());

    let spawned = match shell::pod_dir(&state.workdir, &pod.name).and_then(|dir| {
        let env = PodEnv {
            name: &pod.name,
            namespace: &state.namespace,
            dir: &dir,
        };
        shell::spawn(&params.argv, &env, params.spec)
    }) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(pod = %pod.name, error = %e, "spawn failed");
            let msgs = match params.protocol {
                Protocol::PlainTty => vec![close(CloseCode::Error, "could not start the shell")],
                Protocol::K8s { .. } => vec![
                    channel_frame(CH_ERROR, spawn_failure_status(&params.argv, &e).as_bytes()),
                    close(CloseCode::Normal, ""),
                ],
            };
            for m in msgs {
                let _ = tx.send(m).await;
            }
            drop(tx);
            let _ = tokio::time::timeout(Duration::from_secs(5), writer).await;
            return;
        }
    };
    guard.conn.pgid.store(spawned.pid, Ordering::SeqCst);
    tracing::debug!(pod = %pod.name, pid = spawned.pid, argv = ?params.argv, "process started");

    let Spawned { child, pid, io } = spawned;
    let (input, outputs) = split_io(io);
    let reader = reader(stream, input, params.protocol, activity.clone());
    let producer = producer(
        child,
        pid,
        outputs,
        tx,
        params.protocol,
        params.argv.clone(),
    );

    let dropped = async {
        match drop_after {
            Some(d) => {
                tokio::select! {
                    _ = guard.conn.drop.notified() => {}
                    _ = tokio::time::sleep(d) => {}
                }
            }
            None => guard.conn.drop.notified().await,
        }
    };
    let idle = activity.idle_for(state.idle_timeout);
    tokio::pin!(reader, dropped);
    tokio::select! {
        _ = &mut dropped => tracing::debug!(pod = %pod.name, "connection dropped by fault"),
        _ = idle => tracing::debug!(pod = %pod.name, "connection closed: idle timeout"),
        _ = &mut reader => tracing::debug!(pod = %pod.name, "client went away"),
        _ = async { tokio::join!(producer, writer) } => {
            tracing::debug!(pod = %pod.name, "session finished");
            // Our close frame is out; read until the client's reply so no unread input is left
            // in the socket (closing with unread data sends a RST, which can make the client
            // lose the status frame it has not read yet).
            tokio::select! {
                _ = &mut dropped => {}
                _ = tokio::time::timeout(CLOSE_REPLY_WAIT, &mut reader) => {}
            }
        }
    }
    shell::kill_group(pid);
    // The socket halves, the process handles and the live registration drop here: the TCP
    // connection closes (without a close frame if it was not sent yet) and the child is reaped.
}

/// When a data frame last went either way, for the idle timeout.
#[derive(Clone)]
struct Activity(Arc<std::sync::Mutex<tokio::time::Instant>>);

impl Activity {
    fn new() -> Activity {
        Activity(Arc::new(std::sync::Mutex::new(tokio::time::Instant::now())))
    }

    fn touch(&self) {
        *self.0.lock().unwrap() = tokio::time::Instant::now();
    }

    /// Resolves once no data frame went either way for `timeout`; never without a timeout.
    async fn idle_for(&self, timeout: Option<Duration>) {
        let Some(timeout) = timeout else {
            return std::future::pending().await;
        };
        loop {
            let last = *self.0.lock().unwrap();
            if last.elapsed() >= timeout {
                return;
            }
            tokio::time::sleep_until(last + timeout).await;
        }
    }
}

/// Where client input goes.
enum Input {
    Tty(Arc<crate::pty::PtyMaster>),
    Pipe(Option<ChildStdin>),
}

/// Where process output comes from.
enum Outputs {
    Tty(Arc<crate::pty::PtyMaster>),
    Pipes(
        Option<tokio::process::ChildStdout>,
        Option<tokio::process::ChildStderr>,
    ),
}

fn split_io(io: ProcessIo) -> (Input, Outputs) {
    match io {
        ProcessIo::Tty(m) => (Input::Tty(m.clone()), Outputs::Tty(m)),
        ProcessIo::Pipes {
            stdin,
            stdout,
            stderr,
        } => (Input::Pipe(stdin), Outputs::Pipes(stdout, stderr)),
    }
}

/// Sends queued frames to the client, holding them while the pod is stalled and delaying each
/// by the pod's latency. Ends after sending a close frame or when the queue closes.
async fn writer<K>(
    mut sink: K,
    mut rx: mpsc::Receiver<Message>,
    mut faults: watch::Receiver<Faults>,
    activity: Activity,
) where
    K: futures_util::Sink<Message> + Unpin,
{
    while let Some(msg) = rx.recv().await {
        loop {
            if !faults.borrow_and_update().stall {
                break;
            }
            if faults.changed().await.is_err() {
                break;
            }
        }
        let latency = faults.borrow().latency_ms;
        if latency > 0 {
            tokio::time::sleep(Duration::from_millis(latency)).await;
        }
        let is_close = matches!(msg, Message::Close(_));
        if matches!(msg, Message::Binary(_) | Message::Text(_)) {
            activity.touch();
        }
        if sink.send(msg).await.is_err() || is_close {
            break;
        }
    }
}

/// Reads client frames into the process until the client closes or the socket fails.
async fn reader<R>(mut stream: R, mut input: Input, protocol: Protocol, activity: Activity)
where
    R: futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    while let Some(msg) = stream.next().await {
        let msg = match msg {
            Ok(m) => m,
            Err(e) => {
                tracing::debug!(error = %e, "websocket read failed");
                break;
            }
        };
        let data: &[u8] = match &msg {
            Message::Text(t) => t.as_bytes(),
            Message::Binary(b) => b,
            // Pings are answered by tungstenite; a close is answered on the next read, which then
            // ends the stream.
            _ => continue,
        };
        activity.touch();
        match protocol {
            Protocol::PlainTty => input.write(data).await,
            Protocol::K8s { v5 } => {
                let Some((&channel, payload)) = data.split_first() else {
                    continue;
                };
                match channel {
                    CH_STDIN => input.write(payload).await,
                    CH_RESIZE => {
                        if let (Input::Tty(m), Some((w, h))) = (&input, parse_resize(payload)) {
                            let _ = m.resize(w, h);
                        }
                    }
                    CH_CLOSE if v5 => {
                        if payload.first() == Some(&CH_STDIN) {
                            input.close().await;
                        }
                    }
                    other => tracing::debug!(channel = other, "ignoring frame on unknown channel"),
                }
            }
        }
    }
}

impl Input {
    async fn write(&mut self, data: &[u8]) {
        let res = match self {
            Input::Tty(m) => m.write_all(data).await,
            Input::Pipe(Some(p)) => p.write_all(data).await,
            Input::Pipe(None) => Ok(()),
        };
        if let Err(e) = res {
            tracing::debug!(error = %e, "writing to the process failed");
            if let Input::Pipe(p) = self {
                *p = None;
            }
        }
    }

    async fn close(&mut self) {
        match self {
            // A terminal has no separate stdin to close; end-of-file is Ctrl-D as for a user.
            Input::Tty(m) => {
                let _ = m.write_all(b"\x04").await;
            }
            Input::Pipe(p) => {
                if let Some(mut pipe) = p.take() {
                    let _ = pipe.shutdown().await;
                }
            }
        }
    }
}

fn parse_resize(payload: &[u8]) -> Option<(u16, u16)> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Size {
        width: u16,
        height: u16,
    }
    let s: Size = serde_json::from_slice(payload).ok()?;
    Some((s.width, s.height))
}

/// Forwards process output, then (once the process is gone and output drained) the end of the
/// session: a close frame for PlainTTY; the status on channel 3 and a close frame for Kubernetes.
async fn producer(
    mut child: tokio::process::Child,
    pid: i32,
    outputs: Outputs,
    tx: mpsc::Sender<Message>,
    protocol: Protocol,
    argv: Vec<String>,
) {
    if let Protocol::K8s { .. } = protocol {
        // As the kubelet does: an empty frame on the lowest output channel says "ready".
        let first = match &outputs {
            Outputs::Tty(_) | Outputs::Pipes(Some(_), _) => CH_STDOUT,
            Outputs::Pipes(None, Some(_)) => CH_STDERR,
            Outputs::Pipes(None, None) => CH_ERROR,
        };
        let _ = tx.send(channel_frame(first, &[])).await;
    }
    let streams = async {
        match outputs {
            Outputs::Tty(m) => pump_tty(m, &tx, protocol).await,
            Outputs::Pipes(out, err) => {
                tokio::join!(
                    pump_pipe(out, CH_STDOUT, &tx),
                    pump_pipe(err, CH_STDERR, &tx)
                );
            }
        }
    };
    tokio::pin!(streams);
    enum First {
        Exited(std::io::Result<std::process::ExitStatus>),
        Drained,
    }
    let first = tokio::select! {
        st = child.wait() => First::Exited(st),
        _ = &mut streams => First::Drained,
    };
    let status = match first {
        First::Exited(st) => {
            if tokio::time::timeout(DRAIN_GRACE, &mut streams)
                .await
                .is_err()
            {
                shell::kill_group(pid);
                let _ = tokio::time::timeout(DRAIN_GRACE, &mut streams).await;
            }
            st
        }
        First::Drained => child.wait().await,
    };
    let code = match &status {
        Ok(st) => shell::exit_code(st),
        Err(_) => 1,
    };
    tracing::debug!(pid, code, "process ended");
    match protocol {
        Protocol::PlainTty => {
            // A terminal has no status channel; the close reason carries the shell's status.
            let reason = format!("shell exited: status {code}");
            let _ = tx.send(close(CloseCode::Normal, &reason)).await;
        }
        Protocol::K8s { .. } => {
            let status = exit_status_json(&argv, code);
            let _ = tx.send(channel_frame(CH_ERROR, status.as_bytes())).await;
            let _ = tx.send(close(CloseCode::Normal, "")).await;
        }
    }
}

async fn pump_pipe<R: AsyncRead + Unpin>(src: Option<R>, channel: u8, tx: &mpsc::Sender<Message>) {
    let Some(mut src) = src else { return };
    let mut buf = vec![0u8; 8 * 1024];
    loop {
        match src.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if tx.send(channel_frame(channel, &buf[..n])).await.is_err() {
                    return;
                }
            }
        }
    }
}

async fn pump_tty(m: Arc<crate::pty::PtyMaster>, tx: &mpsc::Sender<Message>, protocol: Protocol) {
    // The terminal line discipline hands out at most a few KiB per read anyway.
    let mut buf = vec![0u8; 8 * 1024];
    let mut utf8 = Utf8Carry::default();
    loop {
        let n = match m.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let msg = match protocol {
            Protocol::PlainTty => {
                let text = utf8.decode(&buf[..n], false);
                if text.is_empty() {
                    continue;
                }
                Message::text(text)
            }
            Protocol::K8s { .. } => channel_frame(CH_STDOUT, &buf[..n]),
        };
        if tx.send(msg).await.is_err() {
            return;
        }
    }
    if protocol == Protocol::PlainTty {
        let rest = utf8.decode(&[], true);
        if !rest.is_empty() {
            let _ = tx.send(Message::text(rest)).await;
        }
    }
}

/// Turns a byte stream into valid UTF-8 text frames: a multi-byte character split across two
/// reads is carried over; bytes that can never be UTF-8 become U+FFFD.
#[derive(Default)]
pub struct Utf8Carry(Vec<u8>);

impl Utf8Carry {
    pub fn decode(&mut self, data: &[u8], last: bool) -> String {
        let mut buf = std::mem::take(&mut self.0);
        buf.extend_from_slice(data);
        let mut out = String::with_capacity(buf.len());
        let mut rest = &buf[..];
        loop {
            match std::str::from_utf8(rest) {
                Ok(s) => {
                    out.push_str(s);
                    break;
                }
                Err(e) => {
                    let (valid, after) = rest.split_at(e.valid_up_to());
                    out.push_str(std::str::from_utf8(valid).unwrap_or_default());
                    match e.error_len() {
                        Some(n) => {
                            out.push('\u{FFFD}');
                            rest = &after[n..];
                        }
                        None => {
                            if last {
                                out.push('\u{FFFD}');
                            } else {
                                self.0 = after.to_vec();
                            }
                            break;
                        }
                    }
                }
            }
        }
        out
    }
}

pub fn channel_frame(channel: u8, data: &[u8]) -> Message {
    let mut v = Vec::with_capacity(data.len() + 1);
    v.push(channel);
    v.extend_from_slice(data);
    Message::binary(v)
}

fn close(code: CloseCode, reason: &str) -> Message {
    Message::Close(Some(CloseFrame {
        code,
        reason: reason.into(),
    }))
}

/// The metav1.Status the kubelet reports when an exec'd command ends.
pub fn exit_status_json(argv: &[String], code: i32) -> String {
    if code == 0 {
        return serde_json::json!({"metadata": {}, "status": "Success"}).to_string();
    }
    serde_json::json!({
        "metadata": {},
        "status": "Failure",
        "message": format!(
            "command terminated with non-zero exit code: error executing command [{}], exit code {code}",
            argv.join(" ")
        ),
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]},
    })
    .to_string()
}

fn spawn_failure_status(argv: &[String], err: &std::io::Error) -> String {
    let program = argv.first().map(String::as_str).unwrap_or("");
    let message = if err.kind() == std::io::ErrorKind::NotFound {
        format!(
            "Internal error occurred: error executing command in container: exec: \"{program}\": executable file not found in $PATH"
        )
    } else {
        format!("Internal error occurred: error executing command in container: {err}")
    };
    serde_json::json!({
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": "InternalError",
        "code": 500,
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf8_split_character_is_carried_over() {
        let mut c = Utf8Carry::default();
        let bytes = "aé€".as_bytes();
        assert_eq!(c.decode(&bytes[..2], false), "a");
        assert_eq!(c.decode(&bytes[2..4], false), "é");
        assert_eq!(c.decode(&bytes[4..], false), "€");
    }

    #[test]
    fn utf8_invalid_bytes_become_replacement() {
        let mut c = Utf8Carry::default();
        assert_eq!(c.decode(b"a\xffb", false), "a\u{FFFD}b");
        assert_eq!(c.decode(b"x\xe2\x82", false), "x");
        assert_eq!(c.decode(b"", true), "\u{FFFD}");
    }

    #[test]
    fn status_for_non_zero_exit_names_the_code() {
        let argv = vec!["sh".to_string(), "-c".to_string(), "exit 3".to_string()];
        let v: serde_json::Value = serde_json::from_str(&exit_status_json(&argv, 3)).unwrap();
        assert_eq!(v["status"], "Failure");
        assert_eq!(v["reason"], "NonZeroExitCode");
        assert_eq!(v["details"]["causes"][0]["reason"], "ExitCode");
        assert_eq!(v["details"]["causes"][0]["message"], "3");
        assert!(
            v["message"]
                .as_str()
                .unwrap()
                .contains("[sh -c exit 3], exit code 3")
        );
        let ok: serde_json::Value = serde_json::from_str(&exit_status_json(&argv, 0)).unwrap();
        assert_eq!(ok["status"], "Success");
    }

    #[test]
    fn resize_payload_is_parsed() {
        assert_eq!(
            parse_resize(br#"{"Width":120,"Height":40}"#),
            Some((120, 40))
        );
        assert_eq!(parse_resize(b"nope"), None);
    }
}
