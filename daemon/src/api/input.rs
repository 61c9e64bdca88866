//! Commands with input from the caller: a command whose stdin is the request body
//! (`/pods/{alias}/exec/stdin`) and a script sent as the body (`/pods/{alias}/exec/script`).
//! The body streams into the pod (staged in a private file by the session engine), so memory
//! stays bounded whatever its size.

use actix::Addr;
use actix_web::{HttpRequest, HttpResponse, web};
use futures_util::StreamExt;
use podwrangler::api::limits::{MAX_SCRIPT_BYTES, MAX_STDIN_BYTES, MAX_STDIN_COMMAND_LEN};
use podwrangler::api::{CommandRecord, ExecEvent, ScriptQuery, StdinQuery};
use podwrangler::session::{Input, InputRole};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use super::error::ApiError;
use super::exec::{answer, rejected, stream_exec, wants_ndjson};
use super::{check_running, mailbox, validate};
use crate::actors::pod::{Exec, PodActor};
use crate::actors::registry::Lookup;
use crate::auth::Actor;
use crate::server::AppState;

/// Pieces of body in flight between the HTTP reader and the pod; with actix's pieces of at
/// most 64 KiB, about 1 MiB.
const INPUT_QUEUE: usize = 16;

/// What a body turned out to be once it was all read.
#[derive(Debug, Clone)]
pub(crate) struct BodyDigest {
    pub size: u64,
    pub sha256: String,
}

/// The declared `Content-Length`, refused with 413 over `limit`.
pub(crate) fn check_declared_length(http: &HttpRequest, limit: u64) -> Result<(), ApiError> {
    let declared = http
        .headers()
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(ApiError::PayloadTooLarge {
            limit: usize::try_from(limit).unwrap_or(usize::MAX),
        });
    }
    Ok(())
}

/// Feeds the request body into `tx` piece by piece, counting and hashing it. A body over
/// `limit` or one that breaks off ends the input with an error, so the command does not run.
/// Stops early (without error) when the receiver is gone (the pod refused the command).
pub(crate) async fn pump_body(
    mut payload: web::Payload,
    tx: mpsc::Sender<std::io::Result<Vec<u8>>>,
    limit: u64,
) -> Result<BodyDigest, String> {
    let mut size = 0u64;
    let mut hasher = Sha256::new();
    while let Some(piece) = payload.next().await {
        let piece = match piece {
            Ok(p) => p,
            Err(e) => {
                let why = format!("cannot read the request body: {e}");
                let _ = tx.send(Err(std::io::Error::other(why.clone()))).await;
                return Err(why);
            }
        };
        size += piece.len() as u64;
        if size > limit {
            let why = format!("the body is larger than the limit of {limit} bytes");
            let _ = tx.send(Err(std::io::Error::other(why.clone()))).await;
            return Err(why);
        }
        hasher.update(&piece);
        if tx.send(Ok(piece.to_vec())).await.is_err() {
            return Err("the pod did not take the input".into());
        }
    }
    if tx
        .send(podwrangler::session::input::END_OF_INPUT)
        .await
        .is_err()
    {
        return Err("the pod did not take the input".into());
    }
    Ok(BodyDigest {
        size,
        sha256: hex::encode(hasher.finalize()),
    })
}

async fn pod(state: &AppState, alias: String) -> Result<Addr<PodActor>, ApiError> {
    validate::alias(&alias)?;
    state
        .registry
        .send(Lookup(alias.clone()))
        .await
        .map_err(mailbox)?
        .ok_or(ApiError::PodNotFound(alias))
}

/// Runs `exec` (whose input is fed from `payload` by `pump`), answering JSON or NDJSON.
async fn run_with_body(
    http: &HttpRequest,
    addr: Addr<PodActor>,
    exec: Exec,
    check: bool,
    pump: impl std::future::Future<Output = Result<BodyDigest, String>> + 'static,
) -> Result<HttpResponse, ApiError> {
    if wants_ndjson(http) {
        // The body is read beside the streamed answer; the command starts once it is in.
        actix_web::rt::spawn(pump);
        return Ok(stream_exec(addr, exec, check));
    }
    let (_, done) = futures_util::future::join(pump, addr.send(exec)).await;
    answer(done.map_err(mailbox)?.map_err(rejected)?, check)
}

/// Run a command with the request body as its stdin.
#[utoipa::path(
    post,
    path = "/api/v1/pods/{alias}/exec/stdin",
    tag = "exec",
    params(("alias" = String, Path, description = "The pod's alias"), StdinQuery),
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "The command's stdin: any bytes, at most 1 GiB (1073741824). It is staged in a private file in the pod's temp directory (`$TMPDIR`, else /tmp) before the command starts, and removed after; the pod needs `base64`. A body that breaks off or exceeds the limit leaves the command unrun (status `failed`, with the reason in `error`)."),
    responses(
        (status = 200, description = "Finished, as `POST /pods/{alias}/exec` (`Accept: application/x-ndjson` streams ExecEvents). When the input could not be put in the pod the command did not run: status `failed` and `error` says why", content((CommandRecord = "application/json"), (ExecEvent = "application/x-ndjson"))),
        (status = 404, description = "`pod_not_found`", body = podwrangler::api::Problem, content_type = "application/problem+json"),
        (status = 413, description = "`payload_too_large`: `Content-Length` over 1 GiB", body = podwrangler::api::Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation`, or `command_failed` with `check` (with `record`)", body = podwrangler::api::Problem, content_type = "application/problem+json"),
        (status = 429, description = "`pod_busy`: the pod's queue is full", body = podwrangler::api::Problem, content_type = "application/problem+json"),
        (status = 431, description = "The request line and headers exceed 128 KiB (no body)"),
        (status = 502, description = "`pod_connection`", body = podwrangler::api::Problem, content_type = "application/problem+json"),
        (status = 503, description = "`database_unavailable` (see `POST /pods/{alias}/exec`)", body = podwrangler::api::Problem, content_type = "application/problem+json"),
        (status = 504, description = "`command_timeout` (with `record`)", body = podwrangler::api::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn exec_stdin(
    state: web::Data<AppState>,
    http: HttpRequest,
    alias: web::Path<String>,
    actor: Actor,
    query: web::Query<StdinQuery>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    check_running(&state)?;
    let q = query.into_inner();
    validate::command(&q.command)?;
    let chars = q.command.chars().count();
    if chars > MAX_STDIN_COMMAND_LEN {
        return Err(ApiError::validation(
            "command",
            format!(
                "is {chars} characters; at most {MAX_STDIN_COMMAND_LEN} here (send longer ones as a script)"
            ),
        ));
    }
    let timeout = validate::timeout(
        q.timeout,
        state.config.command_timeout,
        state.config.max_command_timeout,
    )?;
    check_declared_length(&http, MAX_STDIN_BYTES)?;
    let addr = pod(&state, alias.into_inner()).await?;
    let (tx, rx) = mpsc::channel(INPUT_QUEUE);
    let exec = Exec {
        input: Some(Input::stdin(rx)),
        history_text: Some(format!("{}\n# stdin: the caller's", q.command)),
        ..Exec::command(q.command, timeout, actor.0)
    };
    run_with_body(
        &http,
        addr,
        exec,
        q.check,
        pump_body(payload, tx, MAX_STDIN_BYTES),
    )
    .await
}

/// What history keeps of a script: a header with its size and digest, then its text (cut
/// at the command length limit).
fn script_history(script: &[u8]) -> String {
    use podwrangler::api::limits::MAX_COMMAND_LEN;
    let text = String::from_utf8_lossy(script);
    let kept: String = text.chars().take(MAX_COMMAND_LEN).collect();
    let cut = if kept.len() < text.len() {
        "\n# (the rest is not kept)"
    } else {
        ""
    };
    format!(
        "# script: {} bytes, sha256 {}\n{kept}{cut}",
        script.len(),
        hex::encode(Sha256::digest(script))
    )
}

/// Run a script (the request body) in the pod's shell.
#[utoipa::path(
    post,
    path = "/api/v1/pods/{alias}/exec/script",
    tag = "exec",
    params(("alias" = String, Path, description = "The pod's alias"), ScriptQuery),
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "The script: shell text of any length and line length (quotes, here-documents, long lines), at most 16 MiB (16777216 bytes). It is staged in a private file in the pod and sourced in the pod's shell (`. FILE`, stdin /dev/null), so `cd` and `export` carry over as for a command; the pod needs `base64`. History keeps a header with its size and SHA-256 and its first 65536 characters."),
    responses(
        (status = 200, description = "Finished, as `POST /pods/{alias}/exec` (`Accept: application/x-ndjson` streams ExecEvents)", content((CommandRecord = "application/json"), (ExecEvent = "application/x-ndjson"))),
        (status = 404, description = "`pod_not_found`", body = podwrangler::api::Problem, content_type = "application/problem+json"),
        (status = 413, description = "`payload_too_large`: the script is over 16 MiB", body = podwrangler::api::Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation` (an empty script), or `command_failed` with `check` (with `record`)", body = podwrangler::api::Problem, content_type = "application/problem+json"),
        (status = 429, description = "`pod_busy`: the pod's queue is full", body = podwrangler::api::Problem, content_type = "application/problem+json"),
        (status = 431, description = "The request line and headers exceed 128 KiB (no body)"),
        (status = 502, description = "`pod_connection`", body = podwrangler::api::Problem, content_type = "application/problem+json"),
        (status = 503, description = "`database_unavailable` (see `POST /pods/{alias}/exec`)", body = podwrangler::api::Problem, content_type = "application/problem+json"),
        (status = 504, description = "`command_timeout` (with `record`)", body = podwrangler::api::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn exec_script(
    state: web::Data<AppState>,
    http: HttpRequest,
    alias: web::Path<String>,
    actor: Actor,
    query: web::Query<ScriptQuery>,
    mut payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    check_running(&state)?;
    let q = query.into_inner();
    let timeout = validate::timeout(
        q.timeout,
        state.config.command_timeout,
        state.config.max_command_timeout,
    )?;
    check_declared_length(&http, MAX_SCRIPT_BYTES)?;
    let addr = pod(&state, alias.into_inner()).await?;
    // Scripts are small enough to hold: history needs their text before they run.
    let mut script = Vec::new();
    while let Some(piece) = payload.next().await {
        let piece = piece.map_err(|e| ApiError::BadRequest {
            field: None,
            message: format!("cannot read the request body: {e}"),
        })?;
        if (script.len() + piece.len()) as u64 > MAX_SCRIPT_BYTES {
            return Err(ApiError::PayloadTooLarge {
                limit: MAX_SCRIPT_BYTES as usize,
            });
        }
        script.extend_from_slice(&piece);
    }
    if script.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::validation("body", "the script is empty"));
    }
    let history = script_history(&script);
    let (tx, rx) = mpsc::channel(INPUT_QUEUE);
    let feed = async move {
        for piece in script.chunks(64 * 1024) {
            if tx.send(Ok(piece.to_vec())).await.is_err() {
                break;
            }
        }
        let _ = tx.send(podwrangler::session::input::END_OF_INPUT).await;
        Ok(BodyDigest {
            size: 0,
            sha256: String::new(),
        })
    };
    let exec = Exec {
        input: Some(Input {
            data: rx,
            role: InputRole::Named,
            stage_dir: None,
        }),
        history_text: Some(history),
        ..Exec::command(
            format!("command . \"${}\"", podwrangler::session::input::STAGED_VAR),
            timeout,
            actor.0,
        )
    };
    run_with_body(&http, addr, exec, q.check, feed).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_scripts_are_cut_in_history_with_their_digest() {
        let short = script_history(b"echo hi\n");
        assert!(short.starts_with("# script: 8 bytes, sha256 "));
        assert!(short.ends_with("echo hi\n"));
        let long = vec![b'x'; 100_000];
        let kept = script_history(&long);
        assert!(kept.ends_with("(the rest is not kept)"));
        assert!(kept.len() < 70_000);
    }
}
