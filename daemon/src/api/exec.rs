//! Running commands: one pod (`/pods/{alias}/exec`) and fan-out to many (`/exec`, a job:
//! optionally streamed as NDJSON events, in waves, with a failure budget and a canary).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix::Addr;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::Utc;
use futures_util::StreamExt;
use podwrangler::api::{
    CommandRecord, CommandStatus, ExecEvent, ExecRequest, FanOutRequest, FanOutResponse,
    JobOptions, JobSummary, NDJSON,
};
use podwrangler::groups::OutputGrouper;

use super::body::ApiJson;
use super::error::ApiError;
use super::{check_running, db_err, mailbox, validate};
use crate::actors::pod::{Exec, ExecDone, ExecFailure, ExecRejected, PodActor};
use crate::actors::registry::{Lookup, LookupMany};
use crate::auth::Actor;
use crate::server::AppState;
use crate::store::jobs::{CreateJob, FailedAliases, FinishJob, GetJob};
use crate::store::{Kept, ListPods, ListPodsByTag, StartCommand, StoreActor};

/// Largest fan-out concurrency a request may ask for.
pub use super::validate::MAX_CONCURRENCY;

pub(super) fn rejected(e: ExecRejected) -> ApiError {
    match e {
        ExecRejected::Busy { alias, queued } => ApiError::PodBusy { alias, queued },
        ExecRejected::Retired(alias) => ApiError::PodNotFound(alias),
        e @ ExecRejected::History(_) => ApiError::DatabaseUnavailable {
            message: e.to_string(),
            record: None,
        },
    }
}

/// Turns a finished command into the single-exec answer.
pub(super) fn answer(done: ExecDone, check: bool) -> Result<HttpResponse, ApiError> {
    let record = Box::new(done.record);
    if done.kept == Kept::Lost {
        // Never a success for a result that neither the database nor the spool keeps.
        return Err(ApiError::DatabaseUnavailable {
            message: record.history_error.clone().unwrap_or_default(),
            record: Some(record),
        });
    }
    match done.failure {
        Some(ExecFailure::Connection(message)) => Err(ApiError::PodConnection {
            alias: record.alias.clone(),
            message,
            record: Some(record),
        }),
        Some(ExecFailure::Timeout(_)) => Err(ApiError::CommandTimeout { record }),
        // The caller (or another) asked for it: the record says `cancelled`.
        Some(ExecFailure::Cancelled(_)) => Ok(HttpResponse::Ok().json(record)),
        Some(ExecFailure::Other(code, message)) => Err(ApiError::PodError {
            alias: record.alias.clone(),
            code,
            message,
            record: Some(record),
        }),
        None if check && record.status == CommandStatus::Failed => {
            Err(ApiError::CommandFailed { record })
        }
        None => Ok(HttpResponse::Ok().json(record)),
    }
}

/// Run a command in one pod's shell.
#[utoipa::path(
    post,
    path = "/api/v1/pods/{alias}/exec",
    tag = "exec",
    params(("alias" = String, Path, description = "The pod's alias")),
    request_body = ExecRequest,
    responses(
        (status = 200, description = "Finished (a non-zero exit is status `failed` unless `check`); with `Accept: application/x-ndjson`, one ExecEvent per line as it happens (`started`, `stdout`, `stderr`, then `finished` or `error`)", content((CommandRecord = "application/json"), (ExecEvent = "application/x-ndjson"))),
        (status = 404, description = "`pod_not_found`", body = podwrangler::api::Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation`, or `command_failed` with `check` (with `record`)", body = podwrangler::api::Problem, content_type = "application/problem+json"),
        (status = 429, description = "`pod_busy`: the pod's queue is full", body = podwrangler::api::Problem, content_type = "application/problem+json"),
        (status = 502, description = "`pod_connection`", body = podwrangler::api::Problem, content_type = "application/problem+json"),
        (status = 503, description = "`database_unavailable`: history can keep neither the command (it did not run) nor its result (with `record`); retry after `Retry-After`", body = podwrangler::api::Problem, content_type = "application/problem+json"),
        (status = 504, description = "`command_timeout` (with `record`)", body = podwrangler::api::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn exec_pod(
    state: web::Data<AppState>,
    http: HttpRequest,
    alias: web::Path<String>,
    actor: Actor,
    body: ApiJson<ExecRequest>,
) -> Result<HttpResponse, ApiError> {
    check_running(&state)?;
    let req = body.0;
    validate::command(&req.command)?;
    let timeout = validate::timeout(
        req.timeout,
        state.config.command_timeout,
        state.config.max_command_timeout,
    )?;
    let alias = alias.into_inner();
    validate::alias(&alias)?;
    let addr = state
        .registry
        .send(Lookup(alias.clone()))
        .await
        .map_err(mailbox)?
        .ok_or(ApiError::PodNotFound(alias))?;
    if wants_ndjson(&http) {
        let exec = Exec::command(req.command, timeout, actor.0);
        return Ok(stream_exec(addr, exec, req.check));
    }
    let done = addr
        .send(Exec::command(req.command, timeout, actor.0))
        .await
        .map_err(mailbox)?
        .map_err(rejected)?;
    answer(done, req.check)
}

pub(super) fn wants_ndjson(http: &HttpRequest) -> bool {
    http.headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains(NDJSON))
}

/// The streamed answer of a single exec: `started`, output events as they arrive, then
/// `finished` (or `error`). The command runs to its end even if the client goes away.
pub(super) fn stream_exec(addr: Addr<PodActor>, exec: Exec, check: bool) -> HttpResponse {
    let (tx, rx) = tokio::sync::mpsc::channel::<ExecEvent>(64);
    actix_web::rt::spawn(async move {
        let done = addr
            .send(Exec {
                events: Some(tx.clone()),
                ..exec
            })
            .await;
        let last = match done {
            Ok(Ok(done)) => match answer(done.clone(), check) {
                Ok(_) => ExecEvent::Finished {
                    record: Box::new(done.record),
                },
                Err(e) => ExecEvent::Error {
                    problem: Box::new(e.problem()),
                },
            },
            Ok(Err(rejection)) => ExecEvent::Error {
                problem: Box::new(rejected(rejection).problem()),
            },
            Err(e) => ExecEvent::Error {
                problem: Box::new(mailbox(e).problem()),
            },
        };
        let _ = tx.send(last).await;
    });
    let body = futures_util::stream::unfold(rx, |mut rx| async move {
        let event = rx.recv().await?;
        let mut line = serde_json::to_vec(&event).unwrap_or_default();
        line.push(b'\n');
        Some((Ok::<_, actix_web::Error>(web::Bytes::from(line)), rx))
    });
    HttpResponse::Ok().content_type(NDJSON).streaming(body)
}

/// One fan-out job while it runs: what every pod runs, for whom, and whether it has stopped.
struct FanOutJob {
    /// `None` when the database could not record the job: the pods run anyway (their results
    /// wait in the spool like any other), without a job to point at.
    id: Option<i64>,
    command: String,
    timeout: Duration,
    actor: String,
    /// Live events for a streamed fan-out.
    events: Option<tokio::sync::mpsc::Sender<ExecEvent>>,
    /// Failures tolerated before no more pods start (`max_failures`).
    budget: Option<usize>,
    failures: AtomicUsize,
    /// Why no more pods start, once that is so.
    stopped: Mutex<Option<String>>,
}

impl FanOutJob {
    fn stop(&self, reason: String) {
        let mut stopped = self.stopped.lock().unwrap_or_else(|p| p.into_inner());
        if stopped.is_none() {
            *stopped = Some(reason);
        }
    }

    fn stopped(&self) -> Option<String> {
        self.stopped
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Counts a result against the failure budget (a canary's failure stops the job at once).
    fn count(&self, record: &CommandRecord, canary: bool) {
        if record.status == CommandStatus::Succeeded {
            return;
        }
        let failures = self.failures.fetch_add(1, Ordering::SeqCst) + 1;
        if canary {
            self.stop(format!(
                "the canary failed on {} ({})",
                record.alias,
                record.status.as_str()
            ));
        } else if let Some(budget) = self.budget
            && failures > budget
        {
            self.stop(format!(
                "{failures} pods failed, more than max_failures allows ({budget})"
            ));
        }
    }
}

/// Records a fan-out result for a pod that did not run the command (busy, gone, skipped), so
/// every pod of the job has one row and history says why: one finished row, or a spool entry.
async fn record_not_run(
    store: &Addr<StoreActor>,
    job: &FanOutJob,
    alias: &str,
    status: CommandStatus,
    error: String,
) -> CommandRecord {
    let start = StartCommand {
        alias: alias.to_owned(),
        pod_label: alias.to_owned(),
        command: job.command.clone(),
        started_at: Utc::now(),
        actor: job.actor.clone(),
        job_id: job.id,
    };
    crate::store::record::record_not_run(store, start, status, error)
        .await
        .record
}

/// Runs the command in one pod of the job, or records why it did not: the job has stopped, or
/// the pod is no longer registered. The result goes to the stream as `finished`.
async fn run_one(
    store: Addr<StoreActor>,
    job: Arc<FanOutJob>,
    alias: String,
    addr: Option<Addr<PodActor>>,
    canary: bool,
) -> CommandRecord {
    let record = match (job.stopped(), addr) {
        (Some(reason), _) => {
            let why = format!("skipped: {reason}");
            record_not_run(&store, &job, &alias, CommandStatus::Skipped, why).await
        }
        (None, None) => {
            let why = "skipped: the pod is no longer registered".to_owned();
            record_not_run(&store, &job, &alias, CommandStatus::Skipped, why).await
        }
        (None, Some(addr)) => {
            let record = match addr
                .send(Exec {
                    events: job.events.clone(),
                    job_id: job.id,
                    ..Exec::command(job.command.clone(), job.timeout, job.actor.clone())
                })
                .await
            {
                Ok(Ok(done)) => done.record,
                Ok(Err(e)) => {
                    record_not_run(&store, &job, &alias, CommandStatus::Error, e.to_string()).await
                }
                Err(e) => {
                    let why = format!("pod actor unavailable: {e}");
                    record_not_run(&store, &job, &alias, CommandStatus::Error, why).await
                }
            };
            job.count(&record, canary);
            record
        }
    };
    if let Some(events) = &job.events {
        // A client that went away does not stop the job: history stays complete.
        let _ = events
            .send(ExecEvent::Finished {
                record: Box::new(record.clone()),
            })
            .await;
    }
    record
}

/// `N` pods or `P%` of them.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Amount {
    Pods(usize),
    Percent(u32),
}

impl Amount {
    /// Reads `N` or `P%`: digits only, N in `min..=MAX_FANOUT_PODS`, P in `min..=100`.
    fn parse(field: &str, text: &str, min: usize) -> Result<Amount, ApiError> {
        use podwrangler::api::limits::MAX_FANOUT_PODS;
        let (digits, percent) = match text.strip_suffix('%') {
            Some(d) => (d, true),
            None => (text, false),
        };
        let bad = || {
            ApiError::validation(
                field,
                format!(
                    "{text:?} is not a pod count ({min} to {MAX_FANOUT_PODS}) or a percentage ({min}% to 100%)"
                ),
            )
        };
        // As strict as the documented pattern: digits only, no leading zero.
        if digits.is_empty()
            || digits.len() > 6
            || !digits.bytes().all(|b| b.is_ascii_digit())
            || (digits.len() > 1 && digits.starts_with('0'))
        {
            return Err(bad());
        }
        let n: usize = digits.parse().map_err(|_| bad())?;
        match percent {
            true if (min..=100).contains(&n) => Ok(Amount::Percent(n as u32)),
            false if (min..=MAX_FANOUT_PODS).contains(&n) => Ok(Amount::Pods(n)),
            _ => Err(bad()),
        }
    }

    /// The pod count for a job of `total` pods: percentages rounded up (`up`) or down.
    fn of(self, total: usize, up: bool) -> usize {
        match self {
            Amount::Pods(n) => n,
            Amount::Percent(p) => {
                let scaled = total * p as usize;
                if up {
                    scaled.div_ceil(100)
                } else {
                    scaled / 100
                }
            }
        }
    }
}

fn fanout_count(field: &str, n: Option<usize>) -> Result<Option<usize>, ApiError> {
    use podwrangler::api::limits::MAX_FANOUT_PODS;
    match n {
        Some(n) if !(1..=MAX_FANOUT_PODS).contains(&n) => Err(ApiError::validation(
            field,
            format!("{n} is outside 1..={MAX_FANOUT_PODS}"),
        )),
        other => Ok(other),
    }
}

/// The pods a fan-out request names, in order, each with its actor (`None`: a pod a rerun
/// names that is no longer registered); a description of them for the job; and the command
/// to run (a rerun's comes from its job).
pub(super) struct Targets {
    pub(super) pods: Vec<(String, Option<Addr<PodActor>>)>,
    description: String,
    command: String,
}

pub(super) async fn targets(state: &AppState, req: &FanOutRequest) -> Result<Targets, ApiError> {
    let chosen = usize::from(req.aliases.is_some())
        + usize::from(req.tag.is_some())
        + usize::from(req.set.is_some())
        + usize::from(req.all)
        + usize::from(req.rerun_failed.is_some());
    if chosen != 1 {
        let field = if req.rerun_failed.is_some() {
            "rerun_failed"
        } else {
            "aliases"
        };
        return Err(ApiError::validation(
            field,
            "give exactly one of aliases, tag, set, all=true or rerun_failed",
        ));
    }
    if let Some(set) = &req.set {
        return set_targets(state, set, req.command.as_deref().unwrap_or_default()).await;
    }
    let (aliases, description, command): (Vec<String>, String, String) =
        if let Some(job) = req.rerun_failed {
            if job < 1 {
                return Err(ApiError::validation(
                    "rerun_failed",
                    "must be a job id (1 or more)",
                ));
            }
            if req.command.is_some() {
                return Err(ApiError::validation(
                    "command",
                    "leave it out with rerun_failed: the job's command runs again",
                ));
            }
            let info = state
                .store
                .send(GetJob { id: job })
                .await
                .map_err(mailbox)?
                .map_err(db_err)?
                .ok_or(ApiError::JobNotFound(job))?;
            let failed = state
                .store
                .send(FailedAliases { job })
                .await
                .map_err(mailbox)?
                .map_err(db_err)?;
            if failed.is_empty() {
                return Err(ApiError::validation(
                    "rerun_failed",
                    format!("job {job} has no pod that failed, timed out or could not run"),
                ));
            }
            (failed, format!("rerun-failed of job {job}"), info.command)
        } else {
            let command = req.command.clone().unwrap_or_default();
            if let Some(list) = &req.aliases {
                if list.is_empty() {
                    return Err(ApiError::validation("aliases", "must not be empty"));
                }
                let mut seen = std::collections::HashSet::new();
                let mut out = Vec::with_capacity(list.len());
                for (i, a) in list.iter().enumerate() {
                    validate::pod_ref_in(&format!("aliases[{i}]"), a)?;
                    if seen.insert(a.clone()) {
                        out.push(a.clone());
                    }
                }
                let description = format!("aliases: {}", podwrangler::nodeset::fold(&out));
                (out, description, command)
            } else {
                let (rows, description) = if let Some(tag) = &req.tag {
                    validate::alias_in("tag", tag)?;
                    (
                        state.store.send(ListPodsByTag { tag: tag.clone() }).await,
                        format!("tag: {tag}"),
                    )
                } else {
                    (state.store.send(ListPods).await, "all".to_owned())
                };
                let rows = rows.map_err(mailbox)?.map_err(db_err)?;
                (
                    rows.into_iter().map(|r| r.alias).collect(),
                    description,
                    command,
                )
            }
        };
    let rerun = req.rerun_failed.is_some();
    let found = state
        .registry
        .send(LookupMany(aliases))
        .await
        .map_err(mailbox)?;
    let mut pods = Vec::with_capacity(found.len());
    for (alias, addr) in found {
        match addr {
            None if !rerun => return Err(ApiError::PodNotFound(alias)),
            addr => pods.push((alias, addr)),
        }
    }
    Ok(Targets {
        pods,
        description,
        command,
    })
}

/// The members of a pod set now. A member retired between the list and the lookup is left
/// out: its pod is going, so the command is not sent there.
async fn set_targets(state: &AppState, set: &str, command: &str) -> Result<Targets, ApiError> {
    validate::set_name_in("set", set)?;
    let aliases = state
        .sets
        .member_aliases(set)
        .ok_or_else(|| ApiError::SetNotFound(set.to_owned()))?;
    let found = state
        .registry
        .send(LookupMany(aliases))
        .await
        .map_err(mailbox)?;
    Ok(Targets {
        pods: found
            .into_iter()
            .filter_map(|(alias, addr)| addr.map(|a| (alias, Some(a))))
            .collect(),
        description: format!("set: {set}"),
        command: command.to_owned(),
    })
}

/// Runs the job's pods: the canary first (when asked), then waves of `wave` pods (all at once
/// without one), each wave `concurrency` pods at a time; every result goes to `sink`.
async fn run_job(
    store: Addr<StoreActor>,
    job: Arc<FanOutJob>,
    mut pods: Vec<(String, Option<Addr<PodActor>>)>,
    canary: usize,
    wave: Option<usize>,
    concurrency: usize,
    mut sink: impl FnMut(CommandRecord),
) {
    let mut phases = Vec::new();
    if canary > 0 {
        let rest = pods.split_off(canary.min(pods.len()));
        phases.push((std::mem::replace(&mut pods, rest), true));
    }
    let wave = wave.unwrap_or(pods.len()).max(1);
    while !pods.is_empty() {
        let rest = pods.split_off(wave.min(pods.len()));
        phases.push((std::mem::replace(&mut pods, rest), false));
    }
    for (phase, canary) in phases {
        let at_once = concurrency.min(phase.len()).max(1);
        let mut results = futures_util::stream::iter(
            phase
                .into_iter()
                .map(|(alias, addr)| run_one(store.clone(), job.clone(), alias, addr, canary)),
        )
        .buffer_unordered(at_once);
        while let Some(record) = results.next().await {
            sink(record);
        }
    }
}

/// Records the job's end; answers the job as recorded.
async fn finish_job(
    store: &Addr<StoreActor>,
    job: &FanOutJob,
    counts: BTreeMap<String, usize>,
    fallback: podwrangler::api::JobInfo,
) -> podwrangler::api::JobInfo {
    let stopped = job.stopped();
    let fallback = podwrangler::api::JobInfo {
        finished_at: Some(Utc::now()),
        stopped: stopped.clone(),
        ..fallback
    };
    let Some(id) = job.id else {
        return fallback;
    };
    let finish = FinishJob {
        id,
        counts,
        stopped,
    };
    if let Ok(Err(e)) | Err(e) = store
        .send(finish)
        .await
        .map_err(|e| crate::store::StoreError::Unavailable(e.to_string()))
    {
        tracing::error!(job = id, error = %e, "cannot record the end of a job");
    }
    match store.send(GetJob { id }).await {
        Ok(Ok(Some(info))) => info,
        _ => fallback,
    }
}

/// Run one command in many pods (aliases, a tag, a pod set, or all) as a job; or run a job's command again
/// on its pods that failed.
#[utoipa::path(
    post,
    path = "/api/v1/exec",
    tag = "exec",
    request_body = FanOutRequest,
    responses(
        (status = 200, description = "One result per pod (pods not run are `skipped`, with the reason in `error`), and the job's id; with `Accept: application/x-ndjson`, ExecEvents as they happen: `job` first, then each pod's `started`, `stdout`, `stderr` and `finished` (each carrying the pod's alias), then `job_finished` with the job's summary", content((FanOutResponse = "application/json"), (ExecEvent = "application/x-ndjson"))),
        (status = 404, description = "`pod_not_found`: an alias is not registered, `set_not_found`: no such pod set (nothing ran); `job_not_found`: `rerun_failed` names no job", body = podwrangler::api::Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation`", body = podwrangler::api::Problem, content_type = "application/problem+json"),
        (status = 503, description = "`database_unavailable`: the pods a tag, `all` or `rerun_failed` names cannot be read (nothing ran); retry after `Retry-After`. A database that only refuses writes does not stop a fan-out: its results wait in the spool, and it has no job (`job_id` absent, the stream's `job` id 0)", body = podwrangler::api::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn fan_out(
    state: web::Data<AppState>,
    http: HttpRequest,
    actor: Actor,
    body: ApiJson<FanOutRequest>,
) -> Result<HttpResponse, ApiError> {
    check_running(&state)?;
    let req = body.0;
    let timeout = validate::timeout(
        req.timeout,
        state.config.command_timeout,
        state.config.max_command_timeout,
    )?;
    let concurrency = match req.concurrency {
        None => state.config.fanout_concurrency,
        Some(c) if (1..=MAX_CONCURRENCY).contains(&c) => c,
        Some(c) => {
            return Err(ApiError::validation(
                "concurrency",
                format!("{c} is outside 1..={MAX_CONCURRENCY}"),
            ));
        }
    };
    let batch = req
        .batch
        .as_deref()
        .map(|b| Amount::parse("batch", b, 1))
        .transpose()?;
    let max_failures = req
        .max_failures
        .as_deref()
        .map(|m| Amount::parse("max_failures", m, 0))
        .transpose()?;
    let canary = fanout_count("canary", req.canary)?;
    let pick = fanout_count("pick", req.pick)?;
    if req.rerun_failed.is_none() {
        validate::command(req.command.as_deref().unwrap_or_default())?;
    }
    let Targets {
        mut pods,
        mut description,
        command,
    } = targets(&state, &req).await?;
    if let Some(n) = pick {
        // Chosen at random, run in the order they were named.
        use rand::seq::SliceRandom;
        let mut order: Vec<usize> = (0..pods.len()).collect();
        order.shuffle(&mut rand::rng());
        order.truncate(n);
        order.sort_unstable();
        let mut all: Vec<Option<_>> = pods.into_iter().map(Some).collect();
        pods = order.into_iter().filter_map(|i| all[i].take()).collect();
        description.push_str(&format!(", pick {n}"));
    }
    let total = pods.len();
    crate::metrics::METRICS.fanout_pods.observe(total as f64);
    let options = JobOptions {
        timeout_secs: timeout.as_secs_f64(),
        concurrency,
        batch: req.batch.clone(),
        max_failures: req.max_failures.clone(),
        canary,
        pick,
        rerun_failed: req.rerun_failed,
    };
    let create = CreateJob {
        command: command.clone(),
        actor: actor.0.clone(),
        targets: description.clone(),
        options: options.clone(),
        total,
    };
    let job_id = match state.store.send(create).await.map_err(mailbox)? {
        Ok(id) => Some(id),
        // As for single commands, a database that cannot take writes does not stop the work:
        // the rows go to the spool, only the job itself is not recorded.
        Err(crate::store::StoreError::Unavailable(e)) => {
            tracing::error!(error = %e, "cannot record a fan-out job; its pods run without one");
            None
        }
        Err(e) => return Err(db_err(e)),
    };
    let fallback_info = podwrangler::api::JobInfo {
        id: job_id.unwrap_or(0),
        command: command.clone(),
        actor: actor.0.clone(),
        targets: description,
        options,
        created_at: Utc::now(),
        finished_at: None,
        total,
        stopped: None,
    };
    let streaming = wants_ndjson(&http);
    let (events, rx) = if streaming {
        let (tx, rx) = tokio::sync::mpsc::channel::<ExecEvent>(256);
        let _ = tx.try_send(ExecEvent::Job {
            id: job_id.unwrap_or(0),
            pods: total,
        });
        (Some(tx), Some(rx))
    } else {
        (None, None)
    };
    let job = Arc::new(FanOutJob {
        id: job_id,
        command,
        timeout,
        actor: actor.0,
        events: events.clone(),
        budget: max_failures.map(|m| m.of(total, false)),
        failures: AtomicUsize::new(0),
        stopped: Mutex::new(None),
    });
    let canary = canary.unwrap_or(0);
    let wave = batch.map(|b| b.of(total, true));
    let store = state.store.clone();
    let started = Instant::now();

    if let (Some(events), Some(rx)) = (events, rx) {
        // The job runs to completion even if the client goes away, so history is complete.
        actix_web::rt::spawn(async move {
            let mut grouper = OutputGrouper::new();
            run_job(
                store.clone(),
                job.clone(),
                pods,
                canary,
                wave,
                concurrency,
                |r| grouper.add(&r),
            )
            .await;
            let grouped = grouper.finish();
            let info = finish_job(&store, &job, grouped.counts.clone(), fallback_info).await;
            drop(job);
            let summary = JobSummary {
                job: info,
                counts: grouped.counts,
                groups: grouped.groups,
                skipped: grouped.skipped,
            };
            let _ = events
                .send(ExecEvent::JobFinished {
                    summary: Box::new(summary),
                })
                .await;
        });
        let body = futures_util::stream::unfold(rx, |mut rx| async move {
            let event = rx.recv().await?;
            let mut line = serde_json::to_vec(&event).unwrap_or_default();
            line.push(b'\n');
            Some((Ok::<_, actix_web::Error>(web::Bytes::from(line)), rx))
        });
        return Ok(HttpResponse::Ok().content_type(NDJSON).streaming(body));
    }

    let order: std::collections::HashMap<String, usize> = pods
        .iter()
        .enumerate()
        .map(|(i, (a, _))| (a.clone(), i))
        .collect();
    let mut records: Vec<CommandRecord> = Vec::with_capacity(total);
    run_job(
        store.clone(),
        job.clone(),
        pods,
        canary,
        wave,
        concurrency,
        |r| records.push(r),
    )
    .await;
    let mut counts = BTreeMap::new();
    for r in &records {
        *counts.entry(r.status.as_str().to_owned()).or_insert(0) += 1;
    }
    let info = finish_job(&store, &job, counts, fallback_info).await;
    records.sort_by_key(|r| order.get(&r.alias).copied().unwrap_or(usize::MAX));
    let count = |s: CommandStatus| records.iter().filter(|r| r.status == s).count();
    let (succeeded, skipped) = (
        count(CommandStatus::Succeeded),
        count(CommandStatus::Skipped),
    );
    Ok(HttpResponse::Ok().json(FanOutResponse {
        failed: records.len() - succeeded - skipped,
        succeeded,
        skipped,
        results: records,
        duration_ms: started.elapsed().as_secs_f64() * 1000.0,
        job_id,
        stopped: info.stopped,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_are_counts_or_percentages_as_strict_as_their_pattern() {
        assert_eq!(Amount::parse("batch", "25", 1).unwrap(), Amount::Pods(25));
        assert_eq!(
            Amount::parse("batch", "10%", 1).unwrap(),
            Amount::Percent(10)
        );
        assert_eq!(
            Amount::parse("max_failures", "0", 0).unwrap(),
            Amount::Pods(0)
        );
        for bad in [
            "0", "0%", "007", "05%", "101%", "100001", "", "%", "1.5", " 3", "-1",
        ] {
            assert!(Amount::parse("batch", bad, 1).is_err(), "{bad}");
        }
        // Waves round up, budgets down.
        assert_eq!(Amount::Percent(10).of(15, true), 2);
        assert_eq!(Amount::Percent(10).of(15, false), 1);
        assert_eq!(Amount::Pods(4).of(2, true), 4);
    }
}
