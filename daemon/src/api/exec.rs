//! Running commands: one pod (`/pods/{alias}/exec`) and fan-out to many (`/exec`, optionally
//! streamed as NDJSON while pods finish).

use std::time::{Duration, Instant};

use actix::Addr;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::Utc;
use futures_util::StreamExt;
use podwrangler::api::{
    CommandRecord, CommandStatus, ExecEvent, ExecRequest, FanOutRequest, FanOutResponse, NDJSON,
};

use super::body::ApiJson;
use super::error::ApiError;
use super::{check_running, db_err, mailbox, validate};
use crate::actors::pod::{Exec, ExecDone, ExecFailure, ExecRejected, PodActor};
use crate::actors::registry::{Lookup, LookupMany};
use crate::auth::Actor;
use crate::server::AppState;
use crate::store::{
    CommandEnd, Kept, ListPods, ListPodsByTag, RecordFinish, StartCommand, StoreActor, new_uid,
    record_of,
};

/// Largest fan-out concurrency a request may ask for.
pub use super::validate::MAX_CONCURRENCY;

fn rejected(e: ExecRejected) -> ApiError {
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
fn answer(done: ExecDone, check: bool) -> Result<HttpResponse, ApiError> {
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
        return Ok(stream_exec(addr, req, timeout, actor.0));
    }
    let done = addr
        .send(Exec {
            command: req.command,
            timeout,
            actor: actor.0,
            events: None,
        })
        .await
        .map_err(mailbox)?
        .map_err(rejected)?;
    answer(done, req.check)
}

fn wants_ndjson(http: &HttpRequest) -> bool {
    http.headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains(NDJSON))
}

/// The streamed answer of a single exec: `started`, output events as they arrive, then
/// `finished` (or `error`). The command runs to its end even if the client goes away.
fn stream_exec(
    addr: Addr<PodActor>,
    req: ExecRequest,
    timeout: Duration,
    actor: String,
) -> HttpResponse {
    let (tx, rx) = tokio::sync::mpsc::channel::<ExecEvent>(64);
    actix_web::rt::spawn(async move {
        let done = addr
            .send(Exec {
                command: req.command,
                timeout,
                actor,
                events: Some(tx.clone()),
            })
            .await;
        let last = match done {
            Ok(Ok(done)) => match answer(done.clone(), req.check) {
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

/// Records a fan-out result for a pod that could not take the command (busy, gone), so every
/// pod has one result and history says why: one finished row, or a spool entry.
async fn record_rejection(
    store: &Addr<StoreActor>,
    job: &FanOutJob,
    alias: &str,
    error: String,
) -> CommandRecord {
    let started_at = Utc::now();
    let start = StartCommand {
        alias: alias.to_owned(),
        pod_label: alias.to_owned(),
        command: job.command.clone(),
        started_at,
        actor: job.actor.clone(),
    };
    let end = CommandEnd {
        status: CommandStatus::Error,
        exit_code: None,
        stdout: String::new(),
        stderr: String::new(),
        error: Some(error),
        truncated: false,
        finished_at: started_at,
        duration_ms: 0.0,
        session_restarted: false,
    };
    let fallback = record_of(None, &start, &end);
    let msg = RecordFinish {
        uid: new_uid(),
        id: None,
        start,
        end,
    };
    match store.send(msg).await {
        Ok(recorded) => recorded.record,
        Err(e) => CommandRecord {
            history_error: Some(format!("history store unavailable: {e}")),
            ..fallback
        },
    }
}

/// What every pod of one fan-out runs, and for whom.
struct FanOutJob {
    command: String,
    timeout: Duration,
    actor: String,
}

async fn run_one(
    store: Addr<StoreActor>,
    job: std::sync::Arc<FanOutJob>,
    alias: String,
    addr: Addr<PodActor>,
) -> CommandRecord {
    match addr
        .send(Exec {
            command: job.command.clone(),
            timeout: job.timeout,
            actor: job.actor.clone(),
            events: None,
        })
        .await
    {
        Ok(Ok(done)) => done.record,
        Ok(Err(e)) => record_rejection(&store, &job, &alias, e.to_string()).await,
        Err(e) => {
            record_rejection(&store, &job, &alias, format!("pod actor unavailable: {e}")).await
        }
    }
}

/// The pods a fan-out request names, in order, each with its actor.
async fn targets(
    state: &AppState,
    req: &FanOutRequest,
) -> Result<Vec<(String, Addr<PodActor>)>, ApiError> {
    let chosen = usize::from(req.aliases.is_some())
        + usize::from(req.tag.is_some())
        + usize::from(req.set.is_some())
        + usize::from(req.all);
    if chosen != 1 {
        return Err(ApiError::validation(
            "aliases",
            "give exactly one of aliases, tag, set or all=true",
        ));
    }
    if let Some(set) = &req.set {
        return set_targets(state, set).await;
    }
    let aliases: Vec<String> = if let Some(list) = &req.aliases {
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
        out
    } else {
        let rows = if let Some(tag) = &req.tag {
            validate::alias_in("tag", tag)?;
            state.store.send(ListPodsByTag { tag: tag.clone() }).await
        } else {
            state.store.send(ListPods).await
        }
        .map_err(mailbox)?
        .map_err(db_err)?;
        rows.into_iter().map(|r| r.alias).collect()
    };
    let found = state
        .registry
        .send(LookupMany(aliases))
        .await
        .map_err(mailbox)?;
    let mut out = Vec::with_capacity(found.len());
    for (alias, addr) in found {
        match addr {
            Some(a) => out.push((alias, a)),
            None => return Err(ApiError::PodNotFound(alias)),
        }
    }
    Ok(out)
}

/// The members of a pod set now. A member retired between the list and the lookup is left
/// out: its pod is going, so the command is not sent there.
async fn set_targets(
    state: &AppState,
    set: &str,
) -> Result<Vec<(String, Addr<PodActor>)>, ApiError> {
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
    Ok(found
        .into_iter()
        .filter_map(|(alias, addr)| addr.map(|a| (alias, a)))
        .collect())
}

/// Run one command in many pods at once (aliases, a tag, a pod set, or all).
#[utoipa::path(
    post,
    path = "/api/v1/exec",
    tag = "exec",
    request_body = FanOutRequest,
    responses(
        (status = 200, description = "One result per pod; with `Accept: application/x-ndjson`, one CommandRecord JSON per line as each pod finishes", body = FanOutResponse),
        (status = 404, description = "`pod_not_found`: an alias is not registered, or `set_not_found` (nothing ran)", body = podwrangler::api::Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation`", body = podwrangler::api::Problem, content_type = "application/problem+json"),
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
    validate::command(&req.command)?;
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
    let targets = targets(&state, &req).await?;
    let streaming = wants_ndjson(&http);
    let started = Instant::now();
    let store = state.store.clone();
    let job = std::sync::Arc::new(FanOutJob {
        command: req.command,
        timeout,
        actor: actor.0,
    });
    let order: std::collections::HashMap<String, usize> = targets
        .iter()
        .enumerate()
        .map(|(i, (a, _))| (a.clone(), i))
        .collect();
    let results = futures_util::stream::iter(
        targets
            .into_iter()
            .map(move |(alias, addr)| run_one(store.clone(), job.clone(), alias, addr)),
    )
    .buffer_unordered(concurrency);

    if streaming {
        // The fan-out runs to completion even if the client goes away, so history is complete.
        let (tx, rx) = tokio::sync::mpsc::channel::<web::Bytes>(64);
        actix_web::rt::spawn(async move {
            let mut results = std::pin::pin!(results);
            let mut client_gone = false;
            while let Some(record) = results.next().await {
                if client_gone {
                    continue;
                }
                let mut line = serde_json::to_vec(&record).unwrap_or_default();
                line.push(b'\n');
                client_gone = tx.send(web::Bytes::from(line)).await.is_err();
            }
        });
        let body = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|b| (Ok::<_, actix_web::Error>(b), rx))
        });
        return Ok(HttpResponse::Ok().content_type(NDJSON).streaming(body));
    }

    let mut records: Vec<CommandRecord> = results.collect().await;
    records.sort_by_key(|r| order.get(&r.alias).copied().unwrap_or(usize::MAX));
    let succeeded = records
        .iter()
        .filter(|r| r.status == CommandStatus::Succeeded)
        .count();
    Ok(HttpResponse::Ok().json(FanOutResponse {
        failed: records.len() - succeeded,
        succeeded,
        results: records,
        duration_ms: started.elapsed().as_secs_f64() * 1000.0,
    }))
}
