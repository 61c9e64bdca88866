//! PodActor: owns one pod's long-lived shell session, runs its commands one at a time from a
//! bounded queue, keeps the session alive and reconnects with backoff after a drop.

use std::collections::VecDeque;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use actix::prelude::*;
use chrono::Utc;
use futures_util::FutureExt;
use podwrangler::api::{CommandRecord, CommandStatus, ExecEvent, PodState};
use podwrangler::session::{
    Backoff, CancelToken, Input, OutputChunk, PodSession, RunOptions, SessionOptions,
    interrupted_message,
};
use podwrangler::{CommandResult, PodEndpoint, PodError};
use tokio::sync::oneshot;

use crate::config::PodSettings;
use crate::metrics::{METRICS, QueuedCommand};
use crate::store::record::{end_without_result, record_end, record_not_run};
use crate::store::{
    AmendCommandError, CommandEnd, INTERRUPTED_ERROR, Kept, RecordStart, StartCommand, StoreActor,
    new_uid,
};

/// Run one command in the pod. Answered when the command has finished (or could not run).
#[derive(Message)]
#[rtype(result = "Result<ExecDone, ExecRejected>")]
pub struct Exec {
    pub command: String,
    pub timeout: Duration,
    /// Who asked, for the history row.
    pub actor: String,
    /// Live events (`started`, output) while it runs; the caller sends `finished` itself.
    pub events: Option<tokio::sync::mpsc::Sender<ExecEvent>>,
    /// The fan-out job it belongs to, for the history row.
    pub job_id: Option<i64>,
    /// Bytes for the command (stdin, a script, a file to copy), staged in the pod first.
    pub input: Option<Input>,
    /// Raw output as it arrives (instead of `events`), for callers that decode it themselves.
    pub raw_output: Option<tokio::sync::mpsc::Sender<OutputChunk>>,
    /// What history records as the command when it is not `command` itself (a copy's
    /// description, a script's summary).
    pub history_text: Option<String>,
    /// Bytes of output history keeps per stream, when not the default.
    pub max_output: Option<usize>,
}

impl Exec {
    /// A plain command: no input, events or other history text.
    pub fn command(command: String, timeout: Duration, actor: String) -> Exec {
        Exec {
            command,
            timeout,
            actor,
            events: None,
            job_id: None,
            input: None,
            raw_output: None,
            history_text: None,
            max_output: None,
        }
    }
}

/// Cancel command `id` if this pod is running it. Answers whether it was.
#[derive(Message)]
#[rtype(result = "bool")]
pub struct Cancel {
    pub id: i64,
}

/// A command that ran (or tried to): its finished history record, why it did not succeed when
/// the reason was not the command's own exit code, and where history keeps it. When the
/// database could not take the record, `record.history_error` says so and `kept` is
/// [`Kept::Spool`] (or [`Kept::Lost`]: then it must not be answered as a success).
#[derive(Debug, Clone)]
pub struct ExecDone {
    pub record: CommandRecord,
    pub failure: Option<ExecFailure>,
    pub kept: Kept,
}

/// Why a command did not complete normally.
#[derive(Debug, Clone)]
pub enum ExecFailure {
    /// Could not connect, or the connection dropped while it ran.
    Connection(String),
    /// Ran past its timeout.
    Timeout(String),
    /// A caller cancelled it.
    Cancelled(String),
    /// Anything else the engine reported (shell protocol, ...): code and message.
    Other(&'static str, String),
}

/// Why a command was not accepted; no history row exists for it.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ExecRejected {
    #[error("pod {alias:?} is busy: {queued} commands already queued")]
    Busy { alias: String, queued: usize },
    #[error("pod {0:?} was removed or the daemon is shutting down")]
    Retired(String),
    /// Neither the database nor the spool could record the command's start, so it did not run.
    #[error("cannot write history, so the command did not run: {0}")]
    History(String),
}

/// Tells the registry a pod's state changed.
#[derive(Message, Clone, Debug)]
#[rtype(result = "()")]
pub struct PodStateChanged {
    pub alias: String,
    pub generation: u64,
    pub state: PodState,
}

/// Stop taking commands, answer queued ones as retired, close the session. Answered once the
/// session is closed; the running command (if any) is left to finish or be interrupted.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Retire;

/// Retire once the running command (if any) has finished, as for a pod that is terminating:
/// new and queued commands are refused as retired (they were never sent), the running one keeps
/// its session to its end, then the session closes. Answered at once.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Drain;

struct Job {
    command: String,
    timeout: Duration,
    actor: String,
    events: Option<tokio::sync::mpsc::Sender<ExecEvent>>,
    job_id: Option<i64>,
    input: Option<Input>,
    raw_output: Option<tokio::sync::mpsc::Sender<OutputChunk>>,
    history_text: Option<String>,
    max_output: Option<usize>,
    reply: oneshot::Sender<Result<ExecDone, ExecRejected>>,
    /// Counts the job in the queue-depth gauge until it starts or is dropped.
    queued: QueuedCommand,
}

/// The command running now, as far as history knows it.
#[derive(Clone)]
struct Running {
    uid: String,
    /// Its row's id; `None` while its start waits in the spool.
    id: Option<i64>,
    start: StartCommand,
}

/// One pod's actor. Started under `actix::Supervisor` on one of the pod arbiters.
pub struct PodActor {
    alias: String,
    generation: u64,
    endpoint: PodEndpoint,
    label: String,
    settings: Arc<PodSettings>,
    store: Addr<StoreActor>,
    registry: Recipient<PodStateChanged>,
    session: Option<Arc<PodSession>>,
    state: PodState,
    queue: VecDeque<Job>,
    running: Option<Running>,
    busy: bool,
    connecting: bool,
    attempt: u32,
    last_error: Option<String>,
    reconnect_timer: Option<SpawnHandle>,
    retired: bool,
    /// Seen by in-flight command futures: a command cut off by retirement (pod removed, daemon
    /// stopping) is recorded `interrupted`, not as a connection error.
    retired_flag: Arc<AtomicBool>,
    /// A session was lost since the last command: the next one runs in a new shell, and its
    /// record says so.
    shell_replaced: bool,
    /// When data last went to or came from the shell (commands, idle keepalives).
    last_data: std::time::Instant,
    /// Connecting, but waiting for one of the daemon's connection slots.
    waiting_for_slot: bool,
    /// Cancels the running command.
    running_cancel: Option<CancelToken>,
    /// This pod's share of the daemon's open-file budget, held while it connects or has a
    /// session.
    files_permit: Option<tokio::sync::OwnedSemaphorePermit>,
    /// Connecting, but waiting for a share of the open-file budget.
    waiting_for_files: bool,
}

impl PodActor {
    pub fn new(
        alias: String,
        generation: u64,
        endpoint: PodEndpoint,
        settings: Arc<PodSettings>,
        store: Addr<StoreActor>,
        registry: Recipient<PodStateChanged>,
    ) -> Self {
        let label = endpoint.identity.label();
        PodActor {
            alias,
            generation,
            endpoint,
            label,
            settings,
            store,
            registry,
            session: None,
            state: PodState::Idle,
            queue: VecDeque::new(),
            running: None,
            busy: false,
            connecting: false,
            attempt: 0,
            last_error: None,
            reconnect_timer: None,
            retired: false,
            retired_flag: Arc::new(AtomicBool::new(false)),
            shell_replaced: false,
            last_data: std::time::Instant::now(),
            waiting_for_slot: false,
            running_cancel: None,
            files_permit: None,
            waiting_for_files: false,
        }
    }

    fn set_state(&mut self, state: PodState) {
        if self.state != state {
            self.state = state.clone();
            self.registry.do_send(PodStateChanged {
                alias: self.alias.clone(),
                generation: self.generation,
                state,
            });
        }
    }

    fn settle_state(&mut self) {
        if self.busy {
            let queued = self.queue.len();
            self.set_state(PodState::Busy { queued });
        } else if self.connecting && self.waiting_for_files {
            self.set_state(PodState::WaitingOpenFiles);
        } else if self.connecting && self.waiting_for_slot {
            self.set_state(PodState::Waiting);
        } else if self.connecting {
            self.set_state(PodState::Connecting);
        } else if self.session.is_some() {
            self.set_state(PodState::Ready);
        }
    }

    fn session_options(&self) -> SessionOptions {
        SessionOptions {
            connect_timeout: self.settings.connect_timeout,
            auto_reconnect: false,
            namespace: self.endpoint.identity.namespace.clone(),
            side_exec_slots: self.settings.side_exec_slots.clone(),
            ..SessionOptions::default()
        }
    }

    fn cancel_reconnect(&mut self, ctx: &mut Context<Self>) {
        if let Some(h) = self.reconnect_timer.take() {
            ctx.cancel_future(h);
        }
    }

    fn connect(&mut self, ctx: &mut Context<Self>) {
        if self.connecting || self.retired {
            return;
        }
        self.cancel_reconnect(ctx);
        self.connecting = true;
        if self.files_permit.is_none() {
            match self.settings.session_slots.clone().try_acquire_owned() {
                Ok(permit) => self.files_permit = Some(permit),
                Err(_) => {
                    // Every share of the open-file budget is taken: wait for a session to
                    // close rather than take descriptors the API and database need.
                    self.waiting_for_files = true;
                    self.settle_state();
                    let files = self.settings.session_slots.clone();
                    ctx.spawn(
                        async move { files.acquire_owned().await.ok() }
                            .into_actor(self)
                            .map(|permit, act, ctx| {
                                act.waiting_for_files = false;
                                act.files_permit = permit;
                                act.connecting = false;
                                if act.retired {
                                    act.files_permit = None;
                                    return;
                                }
                                act.connect(ctx);
                            }),
                    );
                    return;
                }
            }
        }
        self.waiting_for_slot = true;
        self.settle_state();
        let slots = self.settings.connect_slots.clone();
        ctx.spawn(
            async move { slots.acquire_owned().await.ok() }
                .into_actor(self)
                .map(|permit, act, ctx| act.connect_with_slot(ctx, permit)),
        );
    }

    /// The second half of [`PodActor::connect`], once a connection slot is free; the slot is
    /// held until the attempt ends.
    fn connect_with_slot(
        &mut self,
        ctx: &mut Context<Self>,
        permit: Option<tokio::sync::OwnedSemaphorePermit>,
    ) {
        self.waiting_for_slot = false;
        if self.retired {
            self.connecting = false;
            return;
        }
        self.settle_state();
        let endpoint = self.endpoint.clone();
        let options = self.session_options();
        let provider = self.settings.provider_for(endpoint.provider.kind());
        let fut = async move {
            let result = AssertUnwindSafe(PodSession::connect_with(endpoint, provider, options))
                .catch_unwind()
                .await;
            drop(permit);
            result
        };
        if self.attempt > 0 || self.shell_replaced {
            METRICS.reconnects.inc();
        }
        ctx.spawn(fut.into_actor(self).map(|res, act, ctx| {
            act.connecting = false;
            let result = if matches!(res, Ok(Ok(_))) { "ok" } else { "error" };
            METRICS.connects.with_label_values(&[result]).inc();
            match res {
                Ok(Ok(session)) => {
                    if act.retired {
                        actix::spawn(async move { session.close().await });
                        return;
                    }
                    tracing::info!(alias = %act.alias, pod = %act.label, "session connected");
                    act.session = Some(Arc::new(session));
                    act.attempt = 0;
                    act.last_error = None;
                    act.settle_state();
                    act.pump(ctx);
                }
                Ok(Err(err)) => act.connect_failed(ctx, err.to_string()),
                Err(_) => {
                    tracing::error!(alias = %act.alias, "panic while connecting; restarting the pod actor");
                    act.connect_failed(ctx, "internal error while connecting".into());
                    ctx.stop();
                }
            }
        }));
    }

    fn connect_failed(&mut self, ctx: &mut Context<Self>, error: String) {
        tracing::warn!(alias = %self.alias, pod = %self.label, %error, "cannot connect");
        // No session, no descriptors: the share goes back while this pod backs off.
        self.files_permit = None;
        self.last_error = Some(error.clone());
        // Commands waiting for this connection fail now rather than wait through the backoff.
        let waiting: Vec<Job> = self.queue.drain(..).collect();
        for job in waiting {
            self.record_failure(job, ExecFailure::Connection(error.clone()));
        }
        self.schedule_reconnect(ctx, error);
    }

    fn schedule_reconnect(&mut self, ctx: &mut Context<Self>, error: String) {
        if self.retired {
            return;
        }
        self.cancel_reconnect(ctx);
        if self.attempt >= self.settings.reconnect_max_attempts {
            self.set_state(PodState::Failed { last_error: error });
            return;
        }
        self.attempt += 1;
        let delay = Backoff::new(self.settings.reconnect_base).delay(self.attempt);
        let next_retry_at = Utc::now()
            + chrono::Duration::from_std(delay).unwrap_or_else(|_| chrono::Duration::zero());
        self.set_state(PodState::BackingOff {
            attempt: self.attempt,
            next_retry_at,
            last_error: error,
        });
        self.reconnect_timer = Some(ctx.run_later(delay, |act, ctx| {
            act.reconnect_timer = None;
            act.connect(ctx);
        }));
    }

    /// The connection is gone: drop the session and reconnect after a backoff (or at once when
    /// commands are waiting).
    fn on_drop(&mut self, ctx: &mut Context<Self>, error: String) {
        if let Some(session) = self.session.take() {
            tracing::warn!(alias = %self.alias, pod = %self.label, %error, "session dropped");
            actix::spawn(async move { session.close().await });
            self.shell_replaced = true;
        }
        self.files_permit = None;
        self.last_error = Some(error.clone());
        self.attempt = 0;
        if self.queue.is_empty() {
            self.schedule_reconnect(ctx, error);
        } else {
            self.pump(ctx);
        }
    }

    /// Writes a history row for a command that could not run, and answers its caller.
    fn record_failure(&self, job: Job, failure: ExecFailure) {
        let store = self.store.clone();
        let start = StartCommand {
            alias: self.alias.clone(),
            pod_label: self.label.clone(),
            command: job
                .history_text
                .clone()
                .unwrap_or_else(|| job.command.clone()),
            started_at: Utc::now(),
            actor: job.actor.clone(),
            job_id: job.job_id,
        };
        actix::spawn(async move {
            let why = failure_message(&Some(failure.clone())).unwrap_or_default();
            let recorded = record_not_run(&store, start, CommandStatus::Error, why).await;
            let _ = job.reply.send(Ok(ExecDone {
                record: recorded.record,
                failure: Some(failure),
                kept: recorded.kept,
            }));
        });
    }

    /// Starts the next queued command if none is running.
    fn pump(&mut self, ctx: &mut Context<Self>) {
        if self.busy || self.retired {
            return;
        }
        if self.queue.is_empty() {
            self.settle_state();
            return;
        }
        let session = match &self.session {
            Some(s) if s.is_connected() => s.clone(),
            _ => {
                if let Some(old) = self.session.take() {
                    actix::spawn(async move { old.close().await });
                }
                self.connect(ctx);
                return;
            }
        };
        let Some(job) = self.queue.pop_front() else {
            return;
        };
        self.busy = true;
        self.settle_state();
        let store = self.store.clone();
        let retired_flag = self.retired_flag.clone();
        let Job {
            command,
            timeout,
            actor,
            events,
            job_id,
            input,
            raw_output,
            history_text,
            max_output,
            reply,
            queued,
        } = job;
        drop(queued);
        let uid = new_uid();
        let start_row = StartCommand {
            alias: self.alias.clone(),
            pod_label: self.label.clone(),
            command: history_text.unwrap_or_else(|| command.clone()),
            started_at: Utc::now(),
            actor,
            job_id,
        };
        let start = {
            let store = store.clone();
            let msg = RecordStart {
                uid: uid.clone(),
                start: start_row.clone(),
            };
            async move {
                store
                    .send(msg)
                    .await
                    .map_err(|e| ExecRejected::History(e.to_string()))?
                    .map_err(|e| ExecRejected::History(e.to_string()))
            }
        };
        ctx.spawn(start.into_actor(self).map(move |started, act, ctx| {
            let id = match started {
                // The command runs even when its start only reached the spool: the pod does
                // the work, and the result is recorded (or kept) when it ends.
                Ok(s) => s.id,
                Err(e) => {
                    tracing::error!(alias = %act.alias, error = %e, "command not run: history cannot record it");
                    let _ = reply.send(Err(e));
                    act.busy = false;
                    act.pump(ctx);
                    return;
                }
            };
            act.running = Some(Running {
                uid: uid.clone(),
                id,
                start: start_row.clone(),
            });
            let cancel = CancelToken::new();
            act.running_cancel = Some(cancel.clone());
            let output = events.map(|events| {
                let started = ExecEvent::Started {
                    id: id.unwrap_or(0),
                    alias: act.alias.clone(),
                };
                forward_output(act.alias.clone(), started, events)
            });
            let output = output.or(raw_output);
            let defaults = RunOptions::default();
            let opts = RunOptions {
                timeout,
                check: false,
                output,
                cancel: Some(cancel),
                // The caller's wait ends at the timeout; the interrupt runs after the answer.
                defer_recovery: true,
                max_output: max_output.unwrap_or(defaults.max_output),
            };
            let label_for_retired = act.alias.clone();
            let provider = act.endpoint.provider.kind().as_str();
            let replaced = std::mem::take(&mut act.shell_replaced);
            let run = async move {
                let running = async {
                    match input {
                        Some(input) => session.run_with_input(&command, input, opts).await,
                        None => session.run(&command, opts).await,
                    }
                };
                let outcome = AssertUnwindSafe(running).catch_unwind().await;
                let panicked = outcome.is_err();
                let outcome = outcome.unwrap_or_else(|_| {
                    Err(PodError::Protocol("internal error: the session panicked".into()))
                });
                let (status, mut result, failure) = classify(outcome);
                if let Some(r) = &result {
                    METRICS.observe_exec(
                        provider,
                        Duration::from_secs_f64(r.duration_ms.max(0.0) / 1000.0),
                    );
                }
                METRICS.commands.with_label_values(&[status.as_str()]).inc();
                if let Some(r) = result.as_mut() {
                    r.session_restarted |= replaced;
                }
                let lost = matches!(failure, Some(ExecFailure::Connection(_)));
                if lost && retired_flag.load(Ordering::SeqCst) {
                    let mut end = match &result {
                        Some(r) => end_of(CommandStatus::Interrupted, r, None),
                        None => end_without_result(CommandStatus::Interrupted, None, &start_row),
                    };
                    end.status = CommandStatus::Interrupted;
                    end.error = Some(INTERRUPTED_ERROR.into());
                    record_end(&store, uid, id, start_row, end).await;
                    let _ = reply.send(Err(ExecRejected::Retired(label_for_retired)));
                    return (String::new(), lost, panicked);
                }
                // A timeout's or cancel's own account says whether the shell was kept (or
                // that the interrupt is under way).
                let interrupted = match &failure {
                    Some(ExecFailure::Timeout(_)) => Some(Some(timeout)),
                    Some(ExecFailure::Cancelled(_)) => Some(None),
                    _ => None,
                };
                let message = match (&interrupted, &result) {
                    (Some(_), Some(r)) => r.error.clone().or_else(|| failure_message(&failure)),
                    _ => failure_message(&failure),
                };
                let end = match &result {
                    Some(r) => end_of(status, r, message),
                    None => end_without_result(status, message, &start_row),
                };
                let recorded = record_end(&store, uid.clone(), id, start_row, end).await;
                let mut error = recorded.record.error.clone().unwrap_or_default();
                let _ = reply.send(Ok(ExecDone {
                    record: recorded.record,
                    failure,
                    kept: recorded.kept,
                }));
                // The caller has its answer; the pod's next command waits for the interrupt
                // and resync (or reconnect), and history learns how the shell came out of it.
                if let Some(timeout) = interrupted
                    && !panicked
                    && !retired_flag.load(Ordering::SeqCst)
                    && let Some(recovery) = session.recover().await
                {
                    error = interrupted_message(timeout, Some(recovery));
                    amend_error(&store, uid, id, error.clone()).await;
                }
                (error, lost, panicked)
            };
            ctx.spawn(run.into_actor(act).map(move |(error, lost, panicked), act, ctx| {
                act.running = None;
                act.running_cancel = None;
                act.busy = false;
                act.last_data = std::time::Instant::now();
                if panicked {
                    tracing::error!(alias = %act.alias, "panic in the session; restarting the pod actor");
                    ctx.stop();
                    return;
                }
                let still_connected = act.session.as_ref().is_some_and(|s| s.is_connected());
                if lost || !still_connected {
                    act.on_drop(ctx, error);
                } else {
                    act.pump(ctx);
                }
            }));
        }));
    }

    fn keepalive(&mut self, ctx: &mut Context<Self>) {
        if self.busy || self.connecting || self.retired {
            return;
        }
        let Some(session) = self.session.clone() else {
            return;
        };
        if !session.is_connected() {
            self.on_drop(ctx, "connection closed by the peer".into());
            return;
        }
        // Pings keep proxies and load balancers happy; some servers only count data.
        let send_data = self
            .settings
            .idle_keepalive
            .is_some_and(|every| self.last_data.elapsed() >= every);
        if send_data {
            self.last_data = std::time::Instant::now();
        }
        ctx.spawn(
            async move {
                if send_data {
                    session.keepalive().await?;
                }
                session.ping().await
            }
            .into_actor(self)
            .map(|res, act, ctx| {
                if let Err(e) = res
                    && !act.busy
                {
                    act.on_drop(ctx, format!("keepalive ping failed: {e}"));
                }
            }),
        );
    }
}

fn failure_message(failure: &Option<ExecFailure>) -> Option<String> {
    failure.as_ref().map(|f| match f {
        ExecFailure::Connection(m)
        | ExecFailure::Timeout(m)
        | ExecFailure::Cancelled(m)
        | ExecFailure::Other(_, m) => m.clone(),
    })
}

/// Status, the result to record (full or partial), and the failure reason.
fn classify(
    outcome: Result<CommandResult, PodError>,
) -> (CommandStatus, Option<CommandResult>, Option<ExecFailure>) {
    match outcome {
        Ok(r) => {
            let status = if r.exit_code == Some(0) && r.error.is_none() {
                CommandStatus::Succeeded
            } else {
                CommandStatus::Failed
            };
            (status, Some(r), None)
        }
        Err(e) => {
            let message = e.to_string();
            let partial = e.partial_result().cloned();
            let failure = match &e {
                PodError::Timeout { .. } => ExecFailure::Timeout(message),
                PodError::Cancelled { .. } => ExecFailure::Cancelled(message),
                PodError::ConnectionLost { .. }
                | PodError::Connection { .. }
                | PodError::NotConnected { .. } => ExecFailure::Connection(message),
                other => ExecFailure::Other(other.code(), message),
            };
            let status = match failure {
                ExecFailure::Timeout(_) => CommandStatus::Timeout,
                ExecFailure::Cancelled(_) => CommandStatus::Cancelled,
                _ => CommandStatus::Error,
            };
            (status, partial, Some(failure))
        }
    }
}

/// The row's ending from the engine's (full or partial) result.
fn end_of(status: CommandStatus, r: &CommandResult, error: Option<String>) -> CommandEnd {
    CommandEnd {
        status,
        exit_code: r.exit_code,
        stdout: r.stdout.clone(),
        stderr: r.stderr.clone(),
        error: error.or_else(|| r.error.clone()),
        truncated: r.truncated,
        finished_at: r.finished_at,
        duration_ms: r.duration_ms,
        session_restarted: r.session_restarted,
    }
}

/// Tells history how an interrupt that ended after the command's row was written came out.
async fn amend_error(store: &Addr<StoreActor>, uid: String, id: Option<i64>, error: String) {
    let row = id;
    match store.send(AmendCommandError { id, uid, error }).await {
        // Written, or kept in the spool behind the row's own writes.
        Ok(Ok(true)) => {}
        // No such row, or neither the database nor the spool took the change: the row keeps
        // the first account, which says the interrupt was under way.
        Ok(Ok(false)) | Ok(Err(_)) | Err(_) => {
            tracing::warn!(id = ?row, "history could not record how an interrupted command's shell came out of it");
        }
    }
}

impl Actor for PodActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        if self.retired {
            return;
        }
        let every = self.settings.keepalive;
        ctx.run_interval(every, |act, ctx| act.keepalive(ctx));
        if self.settings.connect_on_start || !self.queue.is_empty() {
            self.connect(ctx);
        } else {
            self.set_state(PodState::Idle);
        }
    }
}

impl Supervised for PodActor {
    fn restarting(&mut self, _ctx: &mut Context<Self>) {
        if self.retired {
            return;
        }
        tracing::warn!(alias = %self.alias, "pod actor restarting");
        if let Some(run) = self.running.take() {
            // The command's future was dropped with the old context; close its row honestly.
            let store = self.store.clone();
            actix::spawn(async move {
                let end = end_without_result(
                    CommandStatus::Error,
                    Some("the pod actor restarted while the command ran".into()),
                    &run.start,
                );
                record_end(&store, run.uid, run.id, run.start, end).await;
            });
        }
        if let Some(session) = self.session.take() {
            actix::spawn(async move { session.close().await });
        }
        self.busy = false;
        self.connecting = false;
        self.waiting_for_files = false;
        self.files_permit = None;
        self.reconnect_timer = None;
        self.attempt = 0;
        self.state = PodState::Idle;
    }
}

impl Handler<Exec> for PodActor {
    type Result = ResponseFuture<Result<ExecDone, ExecRejected>>;

    fn handle(&mut self, msg: Exec, ctx: &mut Context<Self>) -> Self::Result {
        if self.retired {
            let alias = self.alias.clone();
            return Box::pin(async move { Err(ExecRejected::Retired(alias)) });
        }
        let in_flight = self.queue.len() + usize::from(self.busy);
        if in_flight >= self.settings.queue_capacity {
            let err = ExecRejected::Busy {
                alias: self.alias.clone(),
                queued: self.queue.len(),
            };
            return Box::pin(async move { Err(err) });
        }
        let (tx, rx) = oneshot::channel();
        self.queue.push_back(Job {
            command: msg.command,
            timeout: msg.timeout,
            actor: msg.actor,
            events: msg.events,
            job_id: msg.job_id,
            input: msg.input,
            raw_output: msg.raw_output,
            history_text: msg.history_text,
            max_output: msg.max_output,
            reply: tx,
            queued: QueuedCommand::new(),
        });
        if self.busy {
            self.settle_state();
        }
        self.pump(ctx);
        let alias = self.alias.clone();
        Box::pin(async move { rx.await.unwrap_or(Err(ExecRejected::Retired(alias))) })
    }
}

impl Handler<Cancel> for PodActor {
    type Result = bool;

    fn handle(&mut self, msg: Cancel, _: &mut Context<Self>) -> bool {
        match (&self.running, &self.running_cancel) {
            (Some(running), Some(token)) if running.id == Some(msg.id) => {
                tracing::info!(alias = %self.alias, id = msg.id, "cancelling the running command");
                token.cancel();
                true
            }
            _ => false,
        }
    }
}

/// A channel for the session's live output that turns it into `stdout`/`stderr` events.
fn forward_output(
    alias: String,
    started: ExecEvent,
    events: tokio::sync::mpsc::Sender<ExecEvent>,
) -> tokio::sync::mpsc::Sender<OutputChunk> {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<OutputChunk>(16);
    actix::spawn(async move {
        // Sent here, not from the actor, so a full stream delays it rather than drops it; the
        // command's output waits behind it in `rx`.
        if events.send(started).await.is_err() {
            while rx.recv().await.is_some() {}
            return;
        }
        while let Some(chunk) = rx.recv().await {
            let event = match chunk {
                OutputChunk::Stdout(b) => ExecEvent::Stdout {
                    alias: alias.clone(),
                    data: String::from_utf8_lossy(&b).into_owned(),
                },
                OutputChunk::Stderr(b) => ExecEvent::Stderr {
                    alias: alias.clone(),
                    data: String::from_utf8_lossy(&b).into_owned(),
                },
            };
            if events.send(event).await.is_err() {
                // The client went away; the command still runs to its end.
                while rx.recv().await.is_some() {}
                return;
            }
        }
    });
    tx
}

impl Handler<Retire> for PodActor {
    type Result = ResponseActFuture<Self, ()>;

    fn handle(&mut self, _: Retire, ctx: &mut Context<Self>) -> Self::Result {
        self.retired = true;
        self.retired_flag.store(true, Ordering::SeqCst);
        self.cancel_reconnect(ctx);
        for job in self.queue.drain(..) {
            let _ = job
                .reply
                .send(Err(ExecRejected::Retired(self.alias.clone())));
        }
        let session = self.session.take();
        Box::pin(
            async move {
                if let Some(s) = session {
                    s.close().await;
                }
            }
            .into_actor(self)
            .map(|_, _, ctx| ctx.stop()),
        )
    }
}

impl Handler<Drain> for PodActor {
    type Result = ();

    fn handle(&mut self, _: Drain, ctx: &mut Context<Self>) {
        self.retired = true;
        self.cancel_reconnect(ctx);
        for job in self.queue.drain(..) {
            let _ = job
                .reply
                .send(Err(ExecRejected::Retired(self.alias.clone())));
        }
        // The running command's own completion does not know about draining; look every few
        // milliseconds whether it is done.
        ctx.run_interval(Duration::from_millis(20), |act, ctx| {
            if act.busy {
                return;
            }
            let session = act.session.take();
            ctx.spawn(
                async move {
                    if let Some(s) = session {
                        s.close().await;
                    }
                }
                .into_actor(act)
                .map(|_, _, ctx| ctx.stop()),
            );
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classify_maps_exit_codes_and_errors() {
        let now = Utc::now();
        let r = CommandResult {
            command: "x".into(),
            pod_label: "p".into(),
            stdout: "o".into(),
            stderr: String::new(),
            exit_code: Some(3),
            error: None,
            started_at: now,
            finished_at: now,
            duration_ms: 1.0,
            truncated: false,
            session_restarted: false,
        };
        assert_eq!(classify(Ok(r.clone())).0, CommandStatus::Failed);
        let (status, partial, failure) = classify(Err(PodError::Timeout {
            timeout: Duration::from_secs(1),
            partial: Box::new(r.clone()),
        }));
        assert_eq!(status, CommandStatus::Timeout);
        assert_eq!(partial.unwrap().stdout, "o");
        assert!(matches!(failure, Some(ExecFailure::Timeout(_))));
        let (status, _, failure) = classify(Err(PodError::ConnectionLost {
            pod: "p".into(),
            reason: "eof".into(),
            partial: Box::new(r),
        }));
        assert_eq!(status, CommandStatus::Error);
        assert!(matches!(failure, Some(ExecFailure::Connection(_))));
    }
}
