//! The shell-session engine: one long-lived shell per pod over a WebSocket, commands framed by
//! nonce markers, with timeouts, output caps, connection-loss reporting and opt-in reconnects.
//!
//! All I/O happens inside the caller's `run` (no background task), under a FIFO async mutex, so
//! concurrent calls queue in order and the engine works on any tokio runtime flavour (including
//! actix-rt arbiters).
//!
//! ```no_run
//! # async fn demo() -> podwrangler::Result<()> {
//! use std::time::Duration;
//! use podwrangler::{PodSession, ProviderKind, RunOptions};
//!
//! let url = "wss://k8s.example.com/exec/45582/?token=JWT&cols=220&pod=my-app-abc12-xyz99";
//! let session = PodSession::from_url(url, ProviderKind::PlainTty).await?;
//! session.run("cd /app", RunOptions::default()).await?;
//! let r = session.run("git pull", RunOptions::with_timeout(Duration::from_secs(120)).checked()).await?;
//! println!("{}: {}", r.pod_label, r.stdout);
//! session.close().await;
//! # Ok(()) }
//! ```

pub mod ansi;
pub mod backoff;
pub mod input;
pub mod limits;
pub mod marker;
pub mod script;
pub mod transport;

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use chrono::Utc;
use tokio::sync::Mutex;
use tokio::time::Instant;

pub use ansi::AnsiStripper;
pub use backoff::Backoff;
pub use input::{Input, InputRole};
pub use limits::raise_fd_limit;
pub use marker::{CappedBuffer, MarkerParser, Markers};
pub use transport::{Output, Transport};

use crate::error::{PodError, Result};
use crate::models::{
    CommandResult, DEFAULT_COMMAND_TIMEOUT, DEFAULT_CONNECT_TIMEOUT, DEFAULT_MAX_OUTPUT,
    KubernetesTarget, MAX_RECONNECT_ATTEMPTS, PodEndpoint, ProviderConfig, ProviderKind,
    RECONNECT_BACKOFF_BASE, WssSchema,
};
use crate::provider::{Provider, endpoint_from_url, provider_for};

/// Interrupts sent before a timed-out or cancelled command is given up on.
const INTERRUPT_ATTEMPTS: u32 = 4;
/// How long a TTY gets to come back after Ctrl-C before the connection is replaced instead.
const RESYNC_TIMEOUT: Duration = Duration::from_secs(5);

/// How a session connects and recovers.
#[derive(Clone, Debug)]
pub struct SessionOptions {
    /// Limit for one connect (TCP, TLS, upgrade, shell init and first marker).
    pub connect_timeout: Duration,
    /// Reconnect on the next command after the connection dropped.
    pub auto_reconnect: bool,
    /// Connect attempts per reconnect (at least one).
    pub max_reconnect_attempts: u32,
    /// Delay before the second attempt; it doubles for each further one, with jitter.
    pub backoff_base: Duration,
    /// The pod's namespace for labels; unset means the endpoint's, else detected in the shell.
    pub namespace: Option<String>,
    /// Permits for second execs (interrupts, raw input), each one more open socket for a
    /// moment: a process with a budget of open files shares a few among all its sessions.
    /// Unset: no limit.
    pub side_exec_slots: Option<Arc<tokio::sync::Semaphore>>,
}

impl Default for SessionOptions {
    fn default() -> Self {
        SessionOptions {
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            auto_reconnect: false,
            max_reconnect_attempts: MAX_RECONNECT_ATTEMPTS,
            backoff_base: RECONNECT_BACKOFF_BASE,
            namespace: None,
            side_exec_slots: None,
        }
    }
}

/// Limits of one command, and where its output goes live.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// How long the command may run; on expiry it is interrupted and `PodError::Timeout` returned.
    pub timeout: Duration,
    /// Turn a non-zero exit into `PodError::CommandFailed`.
    pub check: bool,
    /// Bytes kept per stream; more is drained and dropped, and `truncated` is set.
    pub max_output: usize,
    /// Every piece of output as it arrives, uncapped (the cap applies to what the result
    /// keeps). A slow receiver slows the reading of the pod's output, so memory stays bounded.
    pub output: Option<tokio::sync::mpsc::Sender<OutputChunk>>,
    /// Interrupts the command as a timeout would (the shell is kept where possible).
    pub cancel: Option<CancelToken>,
    /// On a timeout or cancel, answer at once and leave the interrupt and resync (or the
    /// reconnect) to [`PodSession::recover`], or to the next command, which does it first. The
    /// partial result's error then says the interrupt is under way instead of how it ended.
    pub defer_recovery: bool,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            timeout: DEFAULT_COMMAND_TIMEOUT,
            check: false,
            max_output: DEFAULT_MAX_OUTPUT,
            output: None,
            cancel: None,
            defer_recovery: false,
        }
    }
}

/// A piece of a command's output, as it arrived.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OutputChunk {
    Stdout(Vec<u8>),
    /// Only where the provider keeps stderr apart (Kubernetes).
    Stderr(Vec<u8>),
}

/// Cancels a running command from another task: [`CancelToken::cancel`] interrupts it the way a
/// timeout does, and `run` answers [`PodError::Cancelled`] with the partial result.
#[derive(Clone, Debug, Default)]
pub struct CancelToken(Arc<CancelInner>);

#[derive(Debug, Default)]
struct CancelInner {
    cancelled: std::sync::atomic::AtomicBool,
    notify: tokio::sync::Notify,
}

impl CancelToken {
    pub fn new() -> Self {
        CancelToken::default()
    }

    pub fn cancel(&self) {
        self.0.cancelled.store(true, Ordering::SeqCst);
        self.0.notify.notify_waiters();
    }

    pub fn is_cancelled(&self) -> bool {
        self.0.cancelled.load(Ordering::SeqCst)
    }

    /// Resolves once cancelled (at once if it already was).
    pub async fn cancelled(&self) {
        loop {
            let notified = self.0.notify.notified();
            if self.is_cancelled() {
                return;
            }
            notified.await;
        }
    }
}

impl RunOptions {
    /// Defaults with another timeout.
    pub fn with_timeout(timeout: Duration) -> Self {
        RunOptions {
            timeout,
            ..Default::default()
        }
    }

    /// The same options with `check` set.
    pub fn checked(mut self) -> Self {
        self.check = true;
        self
    }
}

/// How a shell came out of an interrupted (timed-out or cancelled) command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Recovery {
    /// The command was interrupted and the shell, with its `cd`/`export` state, kept.
    Kept,
    /// The shell did not come back and was replaced by a new connection.
    Replaced,
    /// The shell did not come back and no new connection could be opened yet.
    Closed,
}

impl fmt::Display for Recovery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Recovery::Kept => "the command was interrupted and the shell kept",
            Recovery::Replaced => "the shell was replaced (cd/export state is lost)",
            Recovery::Closed => {
                "the shell was closed and is reopened on the next command (cd/export state is lost)"
            }
        })
    }
}

/// What the error of a timed-out (`timeout` set) or cancelled command says: how the shell came
/// out of it, or, with `recovery` unset, that the interrupt is still under way.
pub fn interrupted_message(timeout: Option<Duration>, recovery: Option<Recovery>) -> String {
    let what = match timeout {
        Some(t) => format!("timed out after {:.1}s", t.as_secs_f64()),
        None => "cancelled".to_owned(),
    };
    match recovery {
        Some(r) => format!("{what}; {r}"),
        None => format!("{what}; {RECOVERY_PENDING}"),
    }
}

/// The end of an interrupted command's error while its interrupt runs in the background.
pub const RECOVERY_PENDING: &str =
    "interrupting the command in the background (history says whether the shell was kept)";

/// A connected shell and its per-connection state.
struct Conn {
    transport: Transport,
    /// The shell's process id, learnt at connect on endpoints without a TTY: a timed-out
    /// command is interrupted by signalling its processes from a second, short exec.
    shell_pid: Option<u32>,
    tty: bool,
    binary_framed: bool,
    stripper: AnsiStripper,
    scratch: Vec<u8>,
}

struct State {
    conn: Option<Conn>,
    /// A command was started and not seen to the end (its future was dropped): the shell may
    /// still be busy, so it is interrupted or replaced before the next command.
    dirty: bool,
    /// `close()` was called.
    closed: bool,
    /// A connection was made at least once.
    ever_connected: bool,
    /// The shell was replaced since the last command (it exited, or the link dropped while
    /// idle): `cd`/`export` state is gone, and the next result says so.
    restarted: bool,
    /// The shell ended by itself (`exit`): the next command opens a new one, even without
    /// auto-reconnect, since nothing was lost on the way.
    reopen: bool,
}

/// How a framed command ended.
enum End {
    Exit(i32),
    Cancelled,
    /// The shell ended during the command, with this status.
    ShellExited(i32),
    Timeout,
    Lost(String),
    /// The command's input could not be put in the pod, so the command did not run.
    InputFailed {
        code: Option<i32>,
        reason: String,
    },
}

struct Collected {
    out: CappedBuffer,
    err: CappedBuffer,
    end: End,
}

/// One long-lived shell in one pod. `Send + Sync`; every method takes `&self`, and concurrent
/// `run` calls execute one at a time in the order they were made.
pub struct PodSession {
    endpoint: PodEndpoint,
    provider: Arc<dyn Provider>,
    options: SessionOptions,
    state: Mutex<State>,
    connected: AtomicBool,
    namespace: StdMutex<Option<String>>,
}

impl fmt::Debug for PodSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PodSession")
            .field("label", &self.label())
            .field("endpoint", &self.endpoint)
            .field("provider", &self.provider.kind())
            .field("connected", &self.is_connected())
            .finish()
    }
}

impl PodSession {
    /// Connect to `endpoint` with the built-in provider of its kind.
    pub async fn connect(endpoint: PodEndpoint, options: SessionOptions) -> Result<PodSession> {
        let provider = provider_for(endpoint.provider.kind());
        Self::connect_with(endpoint, provider, options).await
    }

    /// Connect through a custom provider.
    pub async fn connect_with(
        endpoint: PodEndpoint,
        provider: Arc<dyn Provider>,
        options: SessionOptions,
    ) -> Result<PodSession> {
        let session = Self::lazy_with(endpoint, provider, options);
        {
            let mut state = session.state.lock().await;
            session.open_into(&mut state).await?;
        }
        session.learn_namespace().await;
        Ok(session)
    }

    /// Parse a provider URL and connect with default options.
    pub async fn from_url(url: &str, kind: ProviderKind) -> Result<PodSession> {
        Self::connect(endpoint_from_url(kind, url)?, SessionOptions::default()).await
    }

    /// A session that connects on its first command (or `reconnect()`), with the built-in
    /// provider. No I/O happens here.
    pub fn lazy(endpoint: PodEndpoint, options: SessionOptions) -> PodSession {
        let provider = provider_for(endpoint.provider.kind());
        Self::lazy_with(endpoint, provider, options)
    }

    /// [`PodSession::lazy`] through a custom provider.
    pub fn lazy_with(
        endpoint: PodEndpoint,
        provider: Arc<dyn Provider>,
        options: SessionOptions,
    ) -> PodSession {
        let namespace = options
            .namespace
            .clone()
            .or_else(|| endpoint.identity.namespace.clone())
            .filter(|n| !n.is_empty());
        PodSession {
            endpoint,
            provider,
            options,
            state: Mutex::new(State {
                conn: None,
                dirty: false,
                closed: false,
                ever_connected: false,
                restarted: false,
                reopen: false,
            }),
            connected: AtomicBool::new(false),
            namespace: StdMutex::new(namespace),
        }
    }

    pub fn endpoint(&self) -> &PodEndpoint {
        &self.endpoint
    }

    pub fn options(&self) -> &SessionOptions {
        &self.options
    }

    pub fn provider(&self) -> &Arc<dyn Provider> {
        &self.provider
    }

    /// The namespace used in labels, once known.
    pub fn namespace(&self) -> Option<String> {
        self.namespace.lock().map(|n| n.clone()).unwrap_or(None)
    }

    /// True while the last known state of the connection is open.
    pub fn is_connected(&self) -> bool {
        self.connected.load(Ordering::SeqCst)
    }

    /// `namespace/pod` (or the pod name while the namespace is unknown).
    pub fn label(&self) -> String {
        let mut id = self.endpoint.identity.clone();
        id.namespace = self.namespace();
        id.label()
    }

    /// Run one command in the shell. A non-zero exit is `Ok` unless `opts.check`.
    pub async fn run(&self, command: &str, opts: RunOptions) -> Result<CommandResult> {
        self.run_inner(command, None, opts).await
    }

    /// Run one command with bytes from `input` (see [`input`]): they are staged into a private
    /// file in the pod first, through this same shell, then given to the command as its stdin
    /// (or named by `$__pw_in`). The timeout counts from when the input is in place. When the
    /// input cannot be staged (no space, no `base64`, the input broke off), the command does
    /// not run, and the result says why with `exit_code` set to the staging step's status.
    pub async fn run_with_input(
        &self,
        command: &str,
        input: Input,
        opts: RunOptions,
    ) -> Result<CommandResult> {
        self.run_inner(command, Some(input), opts).await
    }

    async fn run_inner(
        &self,
        command: &str,
        input: Option<Input>,
        opts: RunOptions,
    ) -> Result<CommandResult> {
        let mut state = self.state.lock().await;
        self.ensure_ready(&mut state).await?;
        let started_at = Utc::now();
        let t0 = Instant::now();
        state.dirty = true;
        let collected = {
            let conn = state
                .conn
                .as_mut()
                .expect("ensure_ready leaves a connection");
            let live = Live {
                output: opts.output.as_ref(),
                cancel: opts.cancel.as_ref(),
            };
            let nonce = Markers::random().nonce().to_owned();
            let staged = match input {
                None => input::Staged::Ready {
                    stdin: "/dev/null".into(),
                    after: String::new(),
                },
                Some(input) => {
                    // Raw bytes through a second exec need a channel without a TTY, from a
                    // server that can close stdin (the session's own protocol tells).
                    let side = (!conn.tty && conn.transport.can_close_stdin()).then_some(self);
                    input::stage(conn, input, &nonce, live, side).await
                }
            };
            match staged {
                input::Staged::Ready { stdin, after } => {
                    let deadline = Instant::now() + opts.timeout;
                    exec_with(
                        conn,
                        command,
                        (&stdin, &after),
                        opts.max_output,
                        deadline,
                        live,
                    )
                    .await
                }
                input::Staged::Failed { code, reason } => Collected {
                    out: CappedBuffer::new(0),
                    err: CappedBuffer::new(0),
                    end: End::InputFailed { code, reason },
                },
                input::Staged::Ended(end) => Collected {
                    out: CappedBuffer::new(0),
                    err: CappedBuffer::new(0),
                    end,
                },
            }
        };
        let Collected { out, err, end } = collected;
        let truncated = out.truncated() || err.truncated();
        let shell_exited = matches!(end, End::ShellExited(_));
        let restarted = std::mem::take(&mut state.restarted) || shell_exited;
        let tty = state.conn.as_ref().is_some_and(|c| c.tty);
        // Moves the kept bytes into the result (no second copy of up to the cap).
        let finish = |exit_code: Option<i32>, error: Option<String>| {
            let mut stdout = out.into_string_lossy();
            // An interactive shell announces its own `exit` on the terminal.
            if shell_exited && tty && stdout.ends_with("exit\n") {
                stdout.truncate(stdout.len() - "exit\n".len());
            }
            CommandResult {
                command: command.to_owned(),
                pod_label: self.label(),
                stdout,
                stderr: err.into_string_lossy(),
                exit_code,
                error,
                started_at,
                finished_at: Utc::now(),
                duration_ms: t0.elapsed().as_secs_f64() * 1000.0,
                truncated,
                session_restarted: restarted,
            }
        };
        match end {
            End::Exit(code) => {
                state.dirty = false;
                let result = finish(Some(code), None);
                if opts.check && code != 0 {
                    return Err(PodError::CommandFailed {
                        exit_code: code,
                        result: Box::new(result),
                    });
                }
                Ok(result)
            }
            End::ShellExited(code) => {
                // The command finished by ending the shell: its status is the command's; the
                // next command gets a fresh shell.
                self.drop_conn(&mut state).await;
                state.dirty = false;
                state.restarted = true;
                state.reopen = true;
                let result = finish(Some(code), None);
                if opts.check && code != 0 {
                    return Err(PodError::CommandFailed {
                        exit_code: code,
                        result: Box::new(result),
                    });
                }
                Ok(result)
            }
            End::InputFailed { code, reason } => {
                state.dirty = false;
                let result = finish(code.or(Some(1)), Some(reason));
                if opts.check {
                    return Err(PodError::CommandFailed {
                        exit_code: result.exit_code.unwrap_or(1),
                        result: Box::new(result),
                    });
                }
                Ok(result)
            }
            End::Cancelled | End::Timeout => {
                let timeout = matches!(end, End::Timeout).then_some(opts.timeout);
                let recovery = if opts.defer_recovery {
                    // The next command (or `recover`) interrupts and resyncs first.
                    state.dirty = true;
                    None
                } else {
                    Some(self.recover_after_timeout(&mut state).await)
                };
                let partial = Box::new(finish(None, Some(interrupted_message(timeout, recovery))));
                Err(match timeout {
                    Some(timeout) => PodError::Timeout { timeout, partial },
                    None => PodError::Cancelled { partial },
                })
            }
            End::Lost(ref reason) => {
                let reason = reason.clone();
                self.drop_conn(&mut state).await;
                state.dirty = false;
                state.restarted = true;
                let partial = finish(None, Some(reason.clone()));
                Err(PodError::ConnectionLost {
                    pod: self.label(),
                    reason,
                    partial: Box::new(partial),
                })
            }
        }
    }

    /// Run commands one after another in the same shell, each with `timeout_each`. A command
    /// that fails (non-zero exit, timeout, lost connection) is recorded with its error; with
    /// `stop_on_error` nothing after it runs. Errors that prevent running at all (not connected)
    /// are returned as `Err`.
    pub async fn run_many(
        &self,
        commands: &[&str],
        timeout_each: Duration,
        stop_on_error: bool,
    ) -> Result<Vec<CommandResult>> {
        let mut results = Vec::with_capacity(commands.len());
        for command in commands {
            let result = match self
                .run(command, RunOptions::with_timeout(timeout_each))
                .await
            {
                Ok(r) => r,
                Err(e) => {
                    let reason = e.to_string();
                    match e {
                        PodError::Timeout { partial, .. }
                        | PodError::ConnectionLost { partial, .. } => {
                            let mut r = *partial;
                            r.error.get_or_insert(reason);
                            r
                        }
                        PodError::CommandFailed { result, .. } => *result,
                        other => {
                            if results.is_empty() {
                                return Err(other);
                            }
                            break;
                        }
                    }
                }
            };
            let ok = result.succeeded();
            results.push(result);
            if stop_on_error && !ok {
                break;
            }
        }
        Ok(results)
    }

    /// Finish what a command run with `defer_recovery` left: interrupt it and resync the shell,
    /// or replace the connection when the shell does not come back. `None` when nothing was
    /// left to do. Commands wait for it (they run after it, in order).
    pub async fn recover(&self) -> Option<Recovery> {
        let mut state = self.state.lock().await;
        if !state.dirty || state.closed || state.conn.is_none() {
            return None;
        }
        Some(self.recover_after_timeout(&mut state).await)
    }

    /// Send harmless data to the shell (an empty line on its stdin) so that servers whose idle
    /// timer counts data frames and not WebSocket pings (the kubelet's
    /// `--streaming-connection-idle-timeout`) keep an idle session open. Waits for a running
    /// command to finish first; the next command discards whatever the empty line printed.
    pub async fn keepalive(&self) -> Result<()> {
        let mut state = self.state.lock().await;
        if state.closed {
            return Err(self.not_connected());
        }
        let Some(conn) = state.conn.as_mut() else {
            return Err(self.not_connected());
        };
        if let Err(e) = conn.transport.send(b"\n").await {
            self.drop_conn(&mut state).await;
            return Err(e);
        }
        Ok(())
    }

    /// Check the connection with a WebSocket ping and its pong.
    pub async fn ping(&self) -> Result<()> {
        let mut state = self.state.lock().await;
        let Some(conn) = state.conn.as_mut() else {
            return Err(self.not_connected());
        };
        let timeout = self.options.connect_timeout.min(Duration::from_secs(10));
        match conn.transport.ping(timeout).await {
            Ok(()) => Ok(()),
            Err(e) => {
                self.drop_conn(&mut state).await;
                Err(PodError::Connection {
                    target: self.label(),
                    reason: e.to_string(),
                })
            }
        }
    }

    /// Drop any connection and connect again (with backoff between attempts). Also reopens a
    /// closed session.
    pub async fn reconnect(&self) -> Result<()> {
        let mut state = self.state.lock().await;
        state.closed = false;
        self.drop_conn(&mut state).await;
        self.reconnect_with_backoff(&mut state).await
    }

    /// Close the connection. Later commands fail with `NotConnected` until `reconnect()`.
    pub async fn close(&self) {
        let mut state = self.state.lock().await;
        state.closed = true;
        self.drop_conn(&mut state).await;
    }

    fn not_connected(&self) -> PodError {
        PodError::NotConnected { pod: self.label() }
    }

    async fn drop_conn(&self, state: &mut State) {
        if let Some(mut conn) = state.conn.take() {
            conn.transport.close().await;
        }
        self.connected.store(false, Ordering::SeqCst);
    }

    /// Detect the namespace in the shell when neither options nor endpoint name one.
    async fn learn_namespace(&self) {
        if self.namespace().is_some() {
            return;
        }
        if let Ok(ns) = self.provider.detect_namespace(self).await
            && let Ok(mut slot) = self.namespace.lock()
        {
            *slot = Some(ns);
        }
    }

    /// Make sure a clean connection is there: notice drops that happened while idle, clean up
    /// after an abandoned command, connect lazily or reconnect when allowed.
    async fn ensure_ready(&self, state: &mut State) -> Result<()> {
        if state.closed {
            return Err(self.not_connected());
        }
        let mut found_dead = false;
        if let Some(conn) = state.conn.as_mut() {
            // Let the reader notice a close that already arrived before looking.
            tokio::task::yield_now().await;
            // Output that arrived between commands is stale; a close means the link is gone.
            while let Some(out) = conn.transport.try_recv() {
                if matches!(out, Output::Closed(_) | Output::Exited(_)) {
                    found_dead = true;
                    break;
                }
            }
        }
        if state.conn.is_none() && std::mem::take(&mut state.reopen) {
            state.dirty = false;
            return self.open_into(state).await;
        }
        if found_dead {
            self.drop_conn(state).await;
            // Nothing of the next command was sent, so connecting again and running it is
            // safe, even without auto-reconnect; the shell is new, and the result says so.
            state.restarted = true;
            state.dirty = false;
            return if self.options.auto_reconnect {
                self.reconnect_with_backoff(state).await
            } else {
                self.open_into(state).await
            };
        }
        if state.dirty && state.conn.is_some() {
            state.dirty = false;
            self.recover_after_timeout(state).await;
        }
        state.dirty = false;
        if state.conn.is_none() {
            if !state.ever_connected {
                if self.options.auto_reconnect {
                    self.reconnect_with_backoff(state).await?;
                } else {
                    self.open_into(state).await?;
                }
            } else if self.options.auto_reconnect {
                self.reconnect_with_backoff(state).await?;
            } else {
                return Err(self.not_connected());
            }
        }
        Ok(())
    }

    /// After a timeout (or an abandoned command): interrupt the command and resync, keeping
    /// the shell and its state: Ctrl-C on a TTY; without one, a second short exec signals the
    /// shell's children. When that fails, replace the connection.
    async fn recover_after_timeout(&self, state: &mut State) -> Recovery {
        state.dirty = false;
        if let Some(conn) = state.conn.as_mut() {
            // An interrupt can land between two parts of the command (after `echo`, before
            // `sleep` starts) and miss the part that then runs: try a few times.
            let until = Instant::now() + RESYNC_TIMEOUT;
            for _ in 0..INTERRUPT_ATTEMPTS {
                let interrupted = if conn.tty {
                    conn.transport.send(b"\x03").await.is_ok()
                } else if let Some(pid) = conn.shell_pid {
                    self.signal_children(pid).await
                } else {
                    false
                };
                if !interrupted {
                    break;
                }
                let deadline = (Instant::now() + RESYNC_TIMEOUT / INTERRUPT_ATTEMPTS).min(until);
                let resync = exec(conn, ":", 0, deadline, Live::default()).await;
                match resync.end {
                    End::Exit(_) => return Recovery::Kept,
                    End::Timeout if Instant::now() < until => continue,
                    _ => break,
                }
            }
        }
        self.drop_conn(state).await;
        if self.open_into(state).await.is_err() {
            tracing::warn!(pod = %self.label(), "could not reconnect after a timeout");
            return Recovery::Closed;
        }
        Recovery::Replaced
    }

    /// `SHELL -c SCRIPT ARGS...` with the shell program the session runs (`/bin/sh` unless the
    /// target names another), so a second exec works in any image the session works in.
    fn shell_script(&self, script: &str, args: &[&str]) -> Vec<String> {
        let program = match &self.endpoint.provider {
            ProviderConfig::Kubernetes(t) => t.shell.first().cloned(),
            _ => None,
        }
        .unwrap_or_else(|| "/bin/sh".to_owned());
        let mut argv = vec![program, "-c".to_owned(), script.to_owned()];
        argv.extend(args.iter().map(|a| (*a).to_owned()));
        argv
    }

    /// A second exec of `argv` in the session's container (Kubernetes only), beside the
    /// session and with its credentials; `None` when there is none, or no permit for one
    /// (see [`SessionOptions::side_exec_slots`]) within `wait`.
    async fn side_exec(&self, argv: Vec<String>, wait: Duration) -> Option<SideExec> {
        let ProviderConfig::Kubernetes(target) = &self.endpoint.provider else {
            return None;
        };
        let permit = match &self.options.side_exec_slots {
            Some(slots) => Some(
                tokio::time::timeout(wait, slots.clone().acquire_owned())
                    .await
                    .ok()?
                    .ok()?,
            ),
            None => None,
        };
        let mut endpoint = self.endpoint.clone();
        endpoint.provider = ProviderConfig::Kubernetes(KubernetesTarget {
            shell: argv,
            ..target.clone()
        });
        let plan = self.provider.prepare(&endpoint).await.ok()?;
        let transport = Transport::connect(&plan.schema, plan.tls.clone(), RESYNC_TIMEOUT)
            .await
            .ok()?;
        Some(SideExec {
            transport,
            _permit: permit,
        })
    }

    /// Kubernetes exec has no signal channel without a TTY: a second exec in the same
    /// container sends SIGINT, then SIGTERM, to the children of the session's shell (the
    /// running command), found through /proc, so no tool needs to be installed in the pod.
    async fn signal_children(&self, shell_pid: u32) -> bool {
        let script = format!(
            "p={shell_pid}; sig() {{ for d in /proc/[0-9]*; do s=$(cat \"$d/stat\" 2>/dev/null) || continue; s=${{s##*) }}; set -- $s; if [ \"$2\" = \"$p\" ]; then kill -\"$SIG\" \"${{d#/proc/}}\" 2>/dev/null; fi; done; }}; SIG=INT; sig; sleep 0.2; SIG=TERM; sig; true"
        );
        let attempt = async {
            // Worth a short wait for a permit: the alternative is a new shell, its state lost.
            let mut side = self
                .side_exec(self.shell_script(&script, &[]), Duration::from_secs(2))
                .await?;
            loop {
                match side.transport.recv().await {
                    Output::Exited(status) => return Some(status == Some(0)),
                    Output::Closed(_) => return Some(false),
                    _ => {}
                }
            }
        };
        let ok = tokio::time::timeout(RESYNC_TIMEOUT, attempt)
            .await
            .ok()
            .flatten()
            .unwrap_or(false);
        if !ok {
            tracing::debug!(pod = %self.label(), "could not interrupt the command through a second exec");
        }
        ok
    }

    async fn reconnect_with_backoff(&self, state: &mut State) -> Result<()> {
        let attempts = self.options.max_reconnect_attempts.max(1);
        let mut last = None;
        for attempt in 1..=attempts {
            // The first attempt goes at once; retries back off.
            let delay = Backoff::new(self.options.backoff_base).delay(attempt - 1);
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            match self.open_into(state).await {
                Ok(()) => return Ok(()),
                Err(e) => {
                    tracing::debug!(pod = %self.label(), attempt, error = %e, "connect attempt failed");
                    last = Some(e);
                }
            }
        }
        Err(last.unwrap_or_else(|| self.not_connected()))
    }

    /// Connect, init the shell and synchronise on a first marker.
    async fn open_into(&self, state: &mut State) -> Result<()> {
        let timeout = self.options.connect_timeout;
        let deadline = Instant::now() + timeout;
        let target = || crate::secret::redact_url(&self.label());
        let plan = tokio::time::timeout_at(deadline, self.provider.prepare(&self.endpoint))
            .await
            .map_err(|_| PodError::Connection {
                target: target(),
                reason: "timed out preparing the connection".into(),
            })??;
        if let (Some(ns), Ok(mut slot)) = (&plan.namespace, self.namespace.lock())
            && slot.is_none()
        {
            *slot = Some(ns.clone());
        }
        let remaining = deadline.saturating_duration_since(Instant::now());
        let mut transport = Transport::connect(&plan.schema, plan.tls.clone(), remaining).await?;
        let fail = |reason: String| PodError::Connection {
            target: crate::secret::redact_url(&plan.schema.url),
            reason,
        };
        match tokio::time::timeout_at(
            deadline,
            self.provider.init_shell(&mut transport, &plan.schema),
        )
        .await
        {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(fail(format!("shell init failed: {e}"))),
            Err(_) => return Err(fail("shell init timed out".into())),
        }
        let mut conn = Conn::new(transport, &plan.schema);
        let sync = if conn.tty { ":" } else { "printf %s $$" };
        let synced = exec(&mut conn, sync, 64, deadline, Live::default()).await;
        if !conn.tty {
            conn.shell_pid = synced.out.to_string_lossy().trim().parse().ok();
        }
        match synced.end {
            End::Exit(_) => {}
            // Nothing can cancel the first marker; it counts as no answer.
            End::Timeout | End::Cancelled => {
                conn.transport.close().await;
                return Err(fail(format!(
                    "the shell did not answer within {:.1}s",
                    timeout.as_secs_f64()
                )));
            }
            End::Lost(reason) | End::InputFailed { reason, .. } => return Err(fail(reason)),
            End::ShellExited(code) => {
                return Err(fail(format!("the shell exited at once (status {code})")));
            }
        }
        state.conn = Some(conn);
        if state.ever_connected {
            state.restarted = true;
        }
        state.ever_connected = true;
        state.dirty = false;
        self.connected.store(true, Ordering::SeqCst);
        Ok(())
    }
}

impl Conn {
    fn new(transport: Transport, schema: &WssSchema) -> Conn {
        Conn {
            transport,
            shell_pid: None,
            tty: schema.tty,
            binary_framed: schema.is_binary_framed,
            stripper: AnsiStripper::new(),
            scratch: Vec::new(),
        }
    }
}

/// A second exec in a session's container, and the permit it holds while open.
struct SideExec {
    transport: Transport,
    _permit: Option<tokio::sync::OwnedSemaphorePermit>,
}

/// Where output goes live, and what cancels, for one command.
#[derive(Clone, Copy, Default)]
struct Live<'a> {
    output: Option<&'a tokio::sync::mpsc::Sender<OutputChunk>>,
    cancel: Option<&'a CancelToken>,
}

/// Send one framed command and collect its output until its end marker(s), the deadline,
/// cancellation or the end of the connection.
async fn exec(
    conn: &mut Conn,
    command: &str,
    max_output: usize,
    deadline: Instant,
    live: Live<'_>,
) -> Collected {
    exec_with(conn, command, ("/dev/null", ""), max_output, deadline, live).await
}

/// [`exec`] with the command's stdin (a shell word) and clean-up text run after it.
async fn exec_with(
    conn: &mut Conn,
    command: &str,
    (stdin, after): (&str, &str),
    max_output: usize,
    deadline: Instant,
    live: Live<'_>,
) -> Collected {
    let markers = Markers::random();
    let split = conn.binary_framed;
    let text = script::build_with(command, &markers, conn.tty, split, stdin, after);
    let mut out_parser = MarkerParser::new(&markers);
    let mut err_parser = MarkerParser::new_started(&markers);
    let mut c = Collected {
        out: CappedBuffer::new(max_output),
        err: CappedBuffer::new(max_output),
        end: End::Timeout,
    };
    match tokio::time::timeout_at(deadline, conn.transport.send(text.as_bytes())).await {
        Err(_) => return c,
        Ok(Err(e)) => {
            c.end = End::Lost(e.to_string());
            return c;
        }
        Ok(Ok(())) => {}
    }
    let mut code = None;
    let mut fresh = Vec::new();
    loop {
        let next = tokio::time::timeout_at(deadline, conn.transport.recv());
        let piece = match live.cancel {
            Some(token) => tokio::select! {
                p = next => p,
                _ = token.cancelled() => {
                    c.end = End::Cancelled;
                    return c;
                }
            },
            None => next.await,
        };
        let piece = match piece {
            Err(_) => return c,
            Ok(p) => p,
        };
        match piece {
            Output::Stdout(bytes) => {
                let data: &[u8] = if conn.tty {
                    conn.scratch.clear();
                    conn.stripper.filter(&bytes, &mut conn.scratch);
                    &conn.scratch
                } else {
                    &bytes
                };
                let status = out_parser.feed(data, &mut |b| {
                    c.out.push(b);
                    if live.output.is_some() {
                        fresh.extend_from_slice(b);
                    }
                });
                if let Some(status) = status {
                    code = Some(status);
                }
                if let Some(sink) = live.output
                    && !fresh.is_empty()
                {
                    let _ = sink
                        .send(OutputChunk::Stdout(std::mem::take(&mut fresh)))
                        .await;
                }
            }
            Output::Stderr(bytes) => {
                err_parser.feed(&bytes, &mut |b| {
                    c.err.push(b);
                    if live.output.is_some() {
                        fresh.extend_from_slice(b);
                    }
                });
                if let Some(sink) = live.output
                    && !fresh.is_empty()
                {
                    let _ = sink
                        .send(OutputChunk::Stderr(std::mem::take(&mut fresh)))
                        .await;
                }
            }
            Output::Exited(status) => {
                c.end = match status {
                    Some(s) => End::ShellExited(s),
                    None => End::Lost("the shell exited".into()),
                };
                return c;
            }
            Output::Closed(reason) => {
                c.end = match exit_status_in(&reason) {
                    Some(s) => End::ShellExited(s),
                    None => End::Lost(format!("{reason} (the shell may have exited)")),
                };
                return c;
            }
        }
        if let Some(status) = code
            && (!split || err_parser.finished().is_some())
        {
            c.end = if status >= script::SHELL_EXITED {
                End::ShellExited(status - script::SHELL_EXITED)
            } else {
                End::Exit(status)
            };
            return c;
        }
    }
}

/// The status in a close reason such as `shell exited: status 137` (what a terminal server
/// says when the shell it runs ends), if there is one.
fn exit_status_in(reason: &str) -> Option<i32> {
    let rest = &reason[reason.find("shell exited")?..];
    let digits = rest
        .split("status")
        .nth(1)?
        .trim_start_matches([' ', ':', '=']);
    let end = digits
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(digits.len());
    digits[..end].parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_reasons_may_carry_the_shell_status() {
        assert_eq!(exit_status_in("shell exited: status 137"), Some(137));
        assert_eq!(
            exit_status_in("closed (1000): shell exited status 7"),
            Some(7)
        );
        assert_eq!(exit_status_in("shell exited"), None);
        assert_eq!(exit_status_in("connection reset"), None);
    }

    #[test]
    fn defaults_match_the_seed() {
        let s = SessionOptions::default();
        assert_eq!(s.connect_timeout, Duration::from_secs(15));
        assert_eq!(s.max_reconnect_attempts, 3);
        assert_eq!(s.backoff_base, Duration::from_secs(2));
        assert!(!s.auto_reconnect);
        let r = RunOptions::default();
        assert_eq!(r.timeout, Duration::from_secs(30));
        assert!(!r.check);
    }

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn session_is_send_and_sync() {
        assert_send_sync::<PodSession>();
    }
}
