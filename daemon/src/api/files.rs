//! Files to and from pods over their sessions: `PUT`/`GET /pods/{alias}/files` for one pod and
//! `POST /files` for many. A copy is staged beside its destination, renamed into place, and
//! verified by a SHA-256 the pod computes after writing; one that does not verify is a failure.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::Addr;
use actix_web::{HttpRequest, HttpResponse, web};
use base64::Engine;
use futures_util::StreamExt;
use podwrangler::api::limits::{MAX_ALIAS_LIST_LEN, MAX_FILE_BYTES, MAX_POD_PATH_LEN};
use podwrangler::api::{
    CommandRecord, CommandStatus, FILE_SHA256_HEADER, FILE_SIZE_HEADER, FanOutRequest,
    FileCopyResponse, FileCopyResult, FileFanOutQuery, FileQuery, FileReadQuery,
};
use podwrangler::session::input::{END_OF_INPUT, PIECE, STAGED_VAR, shell_quote};
use podwrangler::session::{Input, InputRole, OutputChunk};
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;

use super::error::ApiError;
use super::exec::{rejected, targets};
use super::input::{BodyDigest, check_declared_length, pump_body};
use super::{check_running, mailbox, validate};
use crate::actors::pod::{Exec, PodActor};
use crate::actors::registry::Lookup;
use crate::auth::Actor;
use crate::server::AppState;

/// Output history keeps of a copy's command (its messages, not the file).
const KEPT_OUTPUT: usize = 4096;
/// Pieces in flight per pod while a file is fed to it.
const FEED_QUEUE: usize = 4;
/// What the pod prints before a file it sends, and instead of one it cannot read.
const FILE_HEADER: &str = "PW-FILE";
const NO_FILE: &str = "PW-NOFILE";
/// What the pod prints when it has no tool to compute a SHA-256.
const NO_SHA: &str = "PW-NO-SHA256";

/// Checks a pod path and answers the directory to stage in (a shell word).
fn check_path(path: &str) -> Result<String, ApiError> {
    if path.is_empty() || path.len() > MAX_POD_PATH_LEN {
        return Err(ApiError::validation(
            "path",
            format!("must be 1 to {MAX_POD_PATH_LEN} bytes"),
        ));
    }
    if path.chars().any(char::is_control) {
        return Err(ApiError::validation(
            "path",
            "must not contain control characters",
        ));
    }
    if path.ends_with('/') {
        return Err(ApiError::validation(
            "path",
            "names a directory; give the file's name too",
        ));
    }
    let dir = match path.rsplit_once('/') {
        Some(("", _)) => "/",
        Some((dir, _)) => dir,
        None => ".",
    };
    Ok(shell_quote(dir))
}

/// Checks an octal mode such as `644` or `0600`.
fn check_mode(mode: Option<&str>) -> Result<Option<String>, ApiError> {
    match mode {
        None => Ok(None),
        Some(m) => {
            let digits = m.strip_prefix('0').filter(|d| d.len() == 3).unwrap_or(m);
            if digits.len() == 3 && digits.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
                Ok(Some(digits.to_owned()))
            } else {
                Err(ApiError::validation(
                    "mode",
                    "must be three octal digits, e.g. 644 or 0600",
                ))
            }
        }
    }
}

/// The shell text run once the file is staged: set its mode, rename it into place, and
/// print the SHA-256 and size the pod sees.
fn put_command(path: &str, mode: Option<&str>) -> String {
    let p = shell_quote(path);
    let mode = match mode {
        Some(m) => m.to_owned(),
        None => "\"$(printf %o $((0666 & ~0$(umask))))\"".to_owned(),
    };
    format!(
        "chmod {mode} \"${STAGED_VAR}\" && mv -f \"${STAGED_VAR}\" {p} && {{ sha256sum {p} 2>/dev/null || openssl dgst -sha256 -r {p} 2>/dev/null || echo {NO_SHA}; }} && wc -c <{p}"
    )
}

/// The shell text that sends a file back: a header line with its size and SHA-256, then its
/// bytes as base64 (or one line saying it cannot be read).
fn get_command(path: &str) -> String {
    let p = shell_quote(path);
    format!(
        "if [ -f {p} ] && [ -r {p} ]; then __pw_cs=$( {{ sha256sum {p} || openssl dgst -sha256 -r {p}; }} 2>/dev/null); printf '{FILE_HEADER} %s %s\\n' \"$(wc -c <{p})\" \"${{__pw_cs%% *}}\"; base64 {p} 2>/dev/null; else echo {NO_FILE}; fi"
    )
}

/// Reads what the pod printed after writing: its SHA-256 and size, compared with what was sent.
fn verdict(
    alias: &str,
    path: &str,
    record: &CommandRecord,
    sent: Option<&BodyDigest>,
    started: Instant,
) -> FileCopyResult {
    let mut result = FileCopyResult {
        alias: alias.to_owned(),
        path: path.to_owned(),
        ok: false,
        size: None,
        sha256: None,
        error: None,
        duration_ms: started.elapsed().as_secs_f64() * 1000.0,
    };
    for line in record.stdout.lines() {
        let first = line.split_whitespace().next().unwrap_or("");
        if first.len() == 64 && first.bytes().all(|b| b.is_ascii_hexdigit()) {
            result.sha256 = Some(first.to_ascii_lowercase());
        } else if let Ok(n) = line.trim().parse::<u64>() {
            result.size = Some(n);
        }
    }
    let said = |r: &CommandRecord| {
        let text = format!("{} {}", r.stderr.trim(), r.stdout.trim());
        let text = text.trim();
        let text: String = text.chars().take(300).collect();
        text
    };
    result.error = if record.status != CommandStatus::Succeeded {
        let why = record.error.clone().unwrap_or_else(|| said(record));
        Some(match record.exit_code {
            Some(code) if record.error.is_none() => {
                format!("writing failed (status {code}): {why}")
            }
            _ => why,
        })
    } else if record.stdout.contains(NO_SHA) || result.sha256.is_none() {
        Some(
            "written, but not verified: the pod has neither sha256sum nor openssl to compute a SHA-256"
                .into(),
        )
    } else {
        match sent {
            None => Some("the upload did not complete".into()),
            Some(sent) if result.sha256.as_deref() != Some(sent.sha256.as_str()) => Some(format!(
                "verification failed: the pod's SHA-256 is {}, {} was sent",
                result.sha256.as_deref().unwrap_or("?"),
                sent.sha256
            )),
            Some(sent) if result.size != Some(sent.size) => Some(format!(
                "verification failed: the pod has {} bytes, {} were sent",
                result.size.map_or("?".into(), |n| n.to_string()),
                sent.size
            )),
            Some(_) => None,
        }
    };
    result.ok = result.error.is_none();
    result
}

/// A copy's job for the pod actor: stage `data` beside `path`, rename, verify.
fn put_exec(
    path: &str,
    mode: Option<&str>,
    dir: String,
    data: mpsc::Receiver<std::io::Result<Vec<u8>>>,
    actor: String,
    size: Option<u64>,
    timeout: Duration,
) -> Exec {
    let history = match size {
        Some(n) => format!("# copy a file of {n} bytes to {path}"),
        None => format!("# copy a file to {path}"),
    };
    Exec {
        input: Some(Input {
            data,
            role: InputRole::Named,
            stage_dir: Some(dir),
        }),
        history_text: Some(history),
        max_output: Some(KEPT_OUTPUT),
        ..Exec::command(put_command(path, mode), timeout, actor)
    }
}

/// The result of a copy the pod refused to take (busy, gone).
fn refused(alias: &str, path: &str, error: String, started: Instant) -> FileCopyResult {
    FileCopyResult {
        alias: alias.to_owned(),
        path: path.to_owned(),
        ok: false,
        size: None,
        sha256: None,
        error: Some(error),
        duration_ms: started.elapsed().as_secs_f64() * 1000.0,
    }
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

fn summary(
    size: u64,
    sha256: String,
    results: Vec<FileCopyResult>,
    started: Instant,
) -> FileCopyResponse {
    let succeeded = results.iter().filter(|r| r.ok).count();
    FileCopyResponse {
        size,
        sha256,
        failed: results.len() - succeeded,
        succeeded,
        results,
        duration_ms: started.elapsed().as_secs_f64() * 1000.0,
    }
}

/// Copy the request body into a file in one pod.
#[utoipa::path(
    put,
    path = "/api/v1/pods/{alias}/files",
    tag = "files",
    params(("alias" = String, Path, description = "The pod's alias"), FileQuery),
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "The file's bytes, at most 4 GiB (4294967296). They stream into a private file beside the destination (`.pw-in-*`), which is renamed onto `path` once complete; the pod needs `base64`, and `sha256sum` or `openssl` to verify."),
    responses(
        (status = 200, description = "One result: `ok` only when the SHA-256 and size the pod computed after writing match what was sent; otherwise `error` says why (no space, read-only, not verifiable, the pod refused)", body = FileCopyResponse),
        (status = 404, description = "`pod_not_found`", body = podwrangler::api::Problem, content_type = "application/problem+json"),
        (status = 413, description = "`payload_too_large`: `Content-Length` over 4 GiB", body = podwrangler::api::Problem, content_type = "application/problem+json"),
        (status = 431, description = "The request line and headers exceed 128 KiB (no body)"),
    )
)]
pub async fn put_file(
    state: web::Data<AppState>,
    http: HttpRequest,
    alias: web::Path<String>,
    actor: Actor,
    query: web::Query<FileQuery>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    check_running(&state)?;
    let q = query.into_inner();
    let dir = check_path(&q.path)?;
    let mode = check_mode(q.mode.as_deref())?;
    check_declared_length(&http, MAX_FILE_BYTES)?;
    let alias = alias.into_inner();
    let addr = pod(&state, alias.clone()).await?;
    let started = Instant::now();
    let (tx, rx) = mpsc::channel(FEED_QUEUE * 4);
    let exec = put_exec(
        &q.path,
        mode.as_deref(),
        dir,
        rx,
        actor.0,
        None,
        state.config.max_command_timeout,
    );
    let (sent, done) =
        futures_util::future::join(pump_body(payload, tx, MAX_FILE_BYTES), addr.send(exec)).await;
    let result = match done.map_err(mailbox)? {
        Ok(done) => verdict(&alias, &q.path, &done.record, sent.as_ref().ok(), started),
        Err(e) => refused(&alias, &q.path, rejected(e).to_string(), started),
    };
    let (size, sha256) = sent.map(|d| (d.size, d.sha256)).unwrap_or_default();
    Ok(HttpResponse::Ok().json(summary(size, sha256, vec![result], started)))
}

/// A private file in the daemon's state directory, removed when dropped.
struct Spooled {
    path: PathBuf,
}

impl Drop for Spooled {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Writes the body to a private temp file (bounded memory), counting and hashing it.
async fn spool_body(
    dir: &Path,
    mut payload: web::Payload,
) -> Result<(Spooled, BodyDigest), ApiError> {
    use tokio::io::AsyncWriteExt;
    crate::files::create_private_dir(dir)
        .map_err(|e| ApiError::Internal(format!("cannot create the upload directory: {e}")))?;
    let path = dir.join(format!(".upload-{:016x}", rand::random::<u64>()));
    let mut file = tokio::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .await
        .map_err(|e| ApiError::Internal(format!("cannot create an upload file: {e}")))?;
    let spooled = Spooled { path };
    let mut size = 0u64;
    let mut hasher = Sha256::new();
    while let Some(piece) = payload.next().await {
        let piece = piece.map_err(|e| ApiError::BadRequest {
            field: None,
            message: format!("cannot read the request body: {e}"),
        })?;
        size += piece.len() as u64;
        if size > MAX_FILE_BYTES {
            return Err(ApiError::PayloadTooLarge {
                limit: MAX_FILE_BYTES as usize,
            });
        }
        hasher.update(&piece);
        file.write_all(&piece)
            .await
            .map_err(|e| ApiError::Internal(format!("cannot spool the upload: {e}")))?;
    }
    file.flush()
        .await
        .map_err(|e| ApiError::Internal(format!("cannot spool the upload: {e}")))?;
    Ok((
        spooled,
        BodyDigest {
            size,
            sha256: hex::encode(hasher.finalize()),
        },
    ))
}

/// Feeds a spooled file to one pod's input.
async fn feed_file(path: PathBuf, tx: mpsc::Sender<std::io::Result<Vec<u8>>>) {
    let mut file = match tokio::fs::File::open(&path).await {
        Ok(f) => f,
        Err(e) => {
            let _ = tx.send(Err(e)).await;
            return;
        }
    };
    loop {
        let mut buf = vec![0u8; PIECE];
        match file.read(&mut buf).await {
            Ok(0) => {
                let _ = tx.send(END_OF_INPUT).await;
                return;
            }
            Ok(n) => {
                buf.truncate(n);
                if tx.send(Ok(buf)).await.is_err() {
                    return;
                }
            }
            Err(e) => {
                let _ = tx.send(Err(e)).await;
                return;
            }
        }
    }
}

/// Copy the request body into a file in many pods (aliases, a tag, or all).
#[utoipa::path(
    post,
    path = "/api/v1/files",
    tag = "files",
    params(FileFanOutQuery),
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "The file's bytes, at most 4 GiB (4294967296). The daemon spools them once to a private file in its state directory (beside the history spool), then copies them to the pods, `concurrency` at a time, each as `PUT /pods/{alias}/files` does."),
    responses(
        (status = 200, description = "One result per pod, in the order asked; `failed` counts the pods whose copy did not verify", body = FileCopyResponse),
        (status = 404, description = "`pod_not_found`: an alias is not registered (nothing was copied)", body = podwrangler::api::Problem, content_type = "application/problem+json"),
        (status = 413, description = "`payload_too_large`: the file is over 4 GiB", body = podwrangler::api::Problem, content_type = "application/problem+json"),
        (status = 431, description = "The request line and headers exceed 128 KiB (no body)"),
    )
)]
pub async fn put_files(
    state: web::Data<AppState>,
    http: HttpRequest,
    actor: Actor,
    query: web::Query<FileFanOutQuery>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    check_running(&state)?;
    let q = query.into_inner();
    let dir = check_path(&q.path)?;
    let mode = check_mode(q.mode.as_deref())?;
    let concurrency = match q.concurrency {
        None => state.config.fanout_concurrency,
        Some(c) if (1..=validate::MAX_CONCURRENCY).contains(&c) => c,
        Some(c) => {
            return Err(ApiError::validation(
                "concurrency",
                format!("{c} is outside 1..={}", validate::MAX_CONCURRENCY),
            ));
        }
    };
    check_declared_length(&http, MAX_FILE_BYTES)?;
    if q.aliases
        .as_ref()
        .is_some_and(|a| a.len() > MAX_ALIAS_LIST_LEN)
    {
        return Err(ApiError::validation(
            "aliases",
            format!("is longer than {MAX_ALIAS_LIST_LEN} bytes"),
        ));
    }
    let request = FanOutRequest {
        command: None,
        aliases: q
            .aliases
            .as_ref()
            .map(|a| a.split(',').map(str::to_owned).collect()),
        tag: q.tag.clone(),
        all: q.all,
        ..FanOutRequest::default()
    };
    // Only a rerun names pods that are gone; a copy never does.
    let targets: Vec<_> = targets(&state, &request)
        .await?
        .pods
        .into_iter()
        .filter_map(|(alias, addr)| Some((alias, addr?)))
        .collect();
    let started = Instant::now();
    let upload_dir = state
        .config
        .spool_path
        .parent()
        .map(|p| p.join("uploads"))
        .unwrap_or_else(|| std::env::temp_dir().join("podwrangler-uploads"));
    let (spooled, sent) = spool_body(&upload_dir, payload).await?;
    let sent = Arc::new(sent);
    let path = Arc::new(q.path);
    let timeout = state.config.max_command_timeout;
    let copies = targets.into_iter().map(|(alias, addr)| {
        let (sent, path, dir, mode, actor) = (
            sent.clone(),
            path.clone(),
            dir.clone(),
            mode.clone(),
            actor.0.clone(),
        );
        let file = spooled.path.clone();
        async move {
            let t0 = Instant::now();
            let (tx, rx) = mpsc::channel(FEED_QUEUE);
            let exec = put_exec(
                &path,
                mode.as_deref(),
                dir,
                rx,
                actor,
                Some(sent.size),
                timeout,
            );
            let feeder = tokio::spawn(feed_file(file, tx));
            let done = addr.send(exec).await;
            feeder.abort();
            match done {
                Ok(Ok(done)) => verdict(&alias, &path, &done.record, Some(&sent), t0),
                Ok(Err(e)) => refused(&alias, &path, e.to_string(), t0),
                Err(e) => refused(&alias, &path, format!("pod actor unavailable: {e}"), t0),
            }
        }
    });
    let results: Vec<FileCopyResult> = futures_util::stream::iter(copies)
        .buffered(concurrency)
        .collect()
        .await;
    drop(spooled);
    let sent = Arc::try_unwrap(sent).unwrap_or_else(|a| (*a).clone());
    Ok(HttpResponse::Ok().json(summary(sent.size, sent.sha256, results, started)))
}

/// Decodes base64 text arriving in pieces, skipping line breaks.
#[derive(Default)]
struct Base64Stream {
    pending: Vec<u8>,
}

impl Base64Stream {
    /// Decodes what is complete in `text`; keeps the rest for the next piece.
    fn feed(&mut self, text: &[u8]) -> Result<Vec<u8>, String> {
        self.pending
            .extend(text.iter().copied().filter(|b| !b.is_ascii_whitespace()));
        let whole = self.pending.len() / 4 * 4;
        let out = base64::engine::general_purpose::STANDARD
            .decode(&self.pending[..whole])
            .map_err(|e| format!("the pod sent bytes that are not base64: {e}"))?;
        self.pending.drain(..whole);
        Ok(out)
    }

    fn finish(&self) -> Result<(), String> {
        if self.pending.is_empty() {
            Ok(())
        } else {
            Err("the pod's base64 ended in the middle of a group".into())
        }
    }
}

/// Copy a file out of a pod.
#[utoipa::path(
    get,
    path = "/api/v1/pods/{alias}/files",
    tag = "files",
    params(("alias" = String, Path, description = "The pod's alias"), FileReadQuery),
    responses(
        (status = 200, description = "The file's bytes, streamed (bounded memory). `x-podwrangler-size` and `x-podwrangler-sha256` carry the size and SHA-256 the pod computed before sending (the SHA-256 is empty when the pod has neither sha256sum nor openssl); a client checks the bytes it got against them. A transfer that fails half-way ends the body early", content_type = "application/octet-stream",
            headers(("x-podwrangler-size" = u64, description = "Bytes in the pod's file"), ("x-podwrangler-sha256" = String, description = "Lower-case hex SHA-256 the pod computed"))),
        (status = 404, description = "`pod_not_found`, or `file_not_found`: no readable regular file at `path`", body = podwrangler::api::Problem, content_type = "application/problem+json"),
        (status = 429, description = "`pod_busy`: the pod's queue is full", body = podwrangler::api::Problem, content_type = "application/problem+json"),
        (status = 431, description = "The request line and headers exceed 128 KiB (no body)"),
        (status = 502, description = "`pod_connection`, or the pod answered something else than the file", body = podwrangler::api::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get_file(
    state: web::Data<AppState>,
    alias: web::Path<String>,
    actor: Actor,
    query: web::Query<FileReadQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = query.into_inner();
    check_path(&q.path)?;
    let alias = alias.into_inner();
    let addr = pod(&state, alias.clone()).await?;
    let (out_tx, mut out_rx) = mpsc::channel::<OutputChunk>(8);
    let exec = Exec {
        raw_output: Some(out_tx),
        history_text: Some(format!("# copy {} out of the pod", q.path)),
        max_output: Some(KEPT_OUTPUT),
        ..Exec::command(
            get_command(&q.path),
            state.config.max_command_timeout,
            actor.0,
        )
    };
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    actix_web::rt::spawn(async move {
        let _ = done_tx.send(addr.send(exec).await);
    });
    // The header line comes first; nothing is answered before it.
    let mut head = Vec::new();
    let header_line = loop {
        match out_rx.recv().await {
            Some(OutputChunk::Stdout(bytes)) => {
                head.extend_from_slice(&bytes);
                if let Some(nl) = head.iter().position(|&b| b == b'\n') {
                    let line = String::from_utf8_lossy(&head[..nl]).trim().to_owned();
                    head.drain(..=nl);
                    break Some(line);
                }
                if head.len() > 4096 {
                    break None;
                }
            }
            Some(OutputChunk::Stderr(_)) => {}
            None => break None,
        }
    };
    let Some(line) = header_line else {
        return Err(failure(done_rx, alias, None).await);
    };
    if line == NO_FILE {
        // Let the command finish (it already has), then answer.
        let _ = failure(done_rx, alias, Some(line)).await;
        return Err(ApiError::FileNotFound(q.path));
    }
    let mut words = line.split_whitespace();
    let (Some(FILE_HEADER), Some(size)) = (words.next(), words.next()) else {
        return Err(failure(done_rx, alias, Some(line)).await);
    };
    let size = size.to_owned();
    let sha = words.next().unwrap_or("").to_owned();
    let mut decoder = Base64Stream::default();
    let first = decoder.feed(&head);
    let body = async_stream_body(first, decoder, out_rx, done_rx);
    Ok(HttpResponse::Ok()
        .content_type("application/octet-stream")
        .insert_header((FILE_SIZE_HEADER, size))
        .insert_header((FILE_SHA256_HEADER, sha))
        .streaming(body))
}

/// Why a copy out of a pod sent no file, once its command has ended.
async fn failure(done_rx: Done, alias: String, line: Option<String>) -> ApiError {
    let why = match done_rx.await {
        Ok(Ok(Ok(done))) => done
            .record
            .error
            .clone()
            .unwrap_or_else(|| format!("the pod answered {line:?} instead of the file")),
        Ok(Ok(Err(e))) => return rejected(e),
        Ok(Err(e)) => return mailbox(e),
        Err(_) => "the copy stopped".into(),
    };
    ApiError::PodError {
        alias,
        code: "pod_error",
        message: why,
        record: None,
    }
}

type Done = tokio::sync::oneshot::Receiver<
    Result<
        Result<crate::actors::pod::ExecDone, crate::actors::pod::ExecRejected>,
        actix::MailboxError,
    >,
>;

/// The decoded file as a body stream; an error ends it early (the client sees a short file and
/// a digest that does not match).
fn async_stream_body(
    first: Result<Vec<u8>, String>,
    decoder: Base64Stream,
    out_rx: mpsc::Receiver<OutputChunk>,
    done_rx: Done,
) -> impl futures_util::Stream<Item = Result<web::Bytes, actix_web::Error>> {
    let start = (Some(first), decoder, out_rx, Some(done_rx));
    futures_util::stream::unfold(start, |(first, mut decoder, mut rx, done)| async move {
        let err = |m: String| actix_web::error::ErrorBadGateway(m);
        if let Some(first) = first {
            return Some((
                first.map(web::Bytes::from).map_err(err),
                (None, decoder, rx, done),
            ));
        }
        loop {
            match rx.recv().await {
                Some(OutputChunk::Stdout(bytes)) => {
                    let piece = decoder.feed(&bytes).map(web::Bytes::from).map_err(err);
                    return Some((piece, (None, decoder, rx, done)));
                }
                Some(OutputChunk::Stderr(_)) => continue,
                None => break,
            }
        }
        // The output is complete: the command must have ended well for the file to be whole.
        let done = done?;
        let ended_well = matches!(
            done.await,
            Ok(Ok(Ok(ref d))) if d.record.status == CommandStatus::Succeeded
        );
        let end = if !ended_well {
            Err(err("the pod did not send the whole file".into()))
        } else {
            decoder.finish().map(|_| web::Bytes::new()).map_err(err)
        };
        Some((end, (None, decoder, rx, None)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_stage_in_their_directory() {
        assert_eq!(check_path("/etc/app.conf").unwrap(), "'/etc'");
        assert_eq!(check_path("/x").unwrap(), "'/'");
        assert_eq!(check_path("rel").unwrap(), "'.'");
        assert_eq!(check_path("a b/it's").unwrap(), "'a b'");
        assert!(check_path("/tmp/").is_err());
        assert!(check_path("").is_err());
        assert!(check_path("/tmp/a\nb").is_err());
    }

    #[test]
    fn modes_are_three_octal_digits() {
        assert_eq!(check_mode(Some("644")).unwrap().as_deref(), Some("644"));
        assert_eq!(check_mode(Some("0600")).unwrap().as_deref(), Some("600"));
        assert!(check_mode(Some("999")).is_err());
        assert!(check_mode(Some("u+x")).is_err());
    }

    #[test]
    fn base64_decodes_across_pieces_and_lines() {
        let data: Vec<u8> = (0..=255u8).cycle().take(5000).collect();
        let text = base64::engine::general_purpose::STANDARD.encode(&data);
        let mut lines = String::new();
        for l in text.as_bytes().chunks(76) {
            lines.push_str(std::str::from_utf8(l).unwrap());
            lines.push('\n');
        }
        let mut d = Base64Stream::default();
        let mut out = Vec::new();
        for piece in lines.as_bytes().chunks(37) {
            out.extend(d.feed(piece).unwrap());
        }
        d.finish().unwrap();
        assert_eq!(out, data);
        assert!(Base64Stream::default().feed(b"!!!!").is_err());
    }
}
