//! Command history: `GET /api/v1/commands` (filters, cursor paging) and `/commands/{id}`; the
//! audit log of pod changes: `GET /api/v1/audit`.

use actix_web::{HttpRequest, HttpResponse, web};
use podwrangler::api::{AuditPage, CommandPage, CommandRecord, CommandStatus};

use super::error::ApiError;
use super::{mailbox, store_err, validate};
use crate::server::AppState;
use crate::store::{
    AuditFilter, ExportPage, GetCommand, HistoryFilter, ListAudit, ListCommands, OutputStream,
    ReadOutput,
};

/// Schemas of the query parameters, with the limits [`filter_of`] enforces.
mod params {
    use podwrangler::api::limits::*;
    use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};

    pub fn alias() -> ObjectBuilder {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .min_length(Some(1))
            .max_length(Some(MAX_ALIAS_LEN))
            .pattern(Some(ALIAS_PATTERN))
            .description(Some("Only this pod's commands (an alias)."))
    }
    pub fn set() -> ObjectBuilder {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .min_length(Some(1))
            .max_length(Some(63))
            .pattern(Some(ALIAS_PATTERN))
            .description(Some(
                "Only commands run in members of this pod set (a set name), pods long gone included.",
            ))
    }
    pub fn since() -> ObjectBuilder {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
            .description(Some(
                "RFC 3339 instant: only commands started at or after it.",
            ))
    }
    pub fn actor() -> ObjectBuilder {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .min_length(Some(1))
            .max_length(Some(MAX_ACTOR_LEN))
            .pattern(Some(SINGLE_LINE_PATTERN))
            .description(Some(
                "Only what this caller did: `unix:UID(NAME)`, `key:NAME`, or a bare user or key name; 1 to 200 characters, no control characters.",
            ))
    }
    pub fn limit() -> ObjectBuilder {
        ObjectBuilder::new()
            .schema_type(Type::Integer)
            .minimum(Some(1))
            .maximum(Some(MAX_PAGE_LIMIT as u32))
            .description(Some("Page size, 1 to 1000 (default 50)."))
    }
    pub fn job() -> ObjectBuilder {
        ObjectBuilder::new()
            .schema_type(Type::Integer)
            .minimum(Some(1))
            .maximum(Some(i64::MAX))
            .description(Some("Only the commands of this fan-out job (a job id)."))
    }
    pub fn stream() -> ObjectBuilder {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(["stdout", "stderr"]))
            .description(Some("Which output: `stdout` (the default) or `stderr`."))
    }
    pub fn format() -> ObjectBuilder {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(["ndjson", "csv"]))
            .description(Some(
                "`ndjson` (the default): one record per line; `csv`: RFC 4180 with a header row.",
            ))
    }
    pub fn cursor() -> ObjectBuilder {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some(CURSOR_PATTERN))
            .description(Some(
                "`next_cursor` of the previous page (empty: the first page).",
            ))
    }
}

/// Query of `GET /api/v1/commands`.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct HistoryQuery {
    /// Only this pod's commands.
    #[param(schema_with = params::alias)]
    pub alias: Option<String>,
    /// Only commands that ran in members of this pod set, pods long gone included.
    #[param(schema_with = params::set)]
    pub set: Option<String>,
    /// running, succeeded, failed, timeout, error or interrupted.
    #[param(value_type = Option<CommandStatus>)]
    pub status: Option<String>,
    /// RFC 3339 instant: only commands started at or after it.
    #[param(schema_with = params::since)]
    pub since: Option<String>,
    /// Only commands this caller asked for: `unix:UID(NAME)`, `key:NAME`, or a bare user or key
    /// name; 1 to 200 characters, no control characters.
    #[param(schema_with = params::actor)]
    pub actor: Option<String>,
    /// Page size, 1..=1000 (default 50).
    #[param(schema_with = params::limit)]
    pub limit: Option<String>,
    /// `next_cursor` of the previous page.
    #[param(schema_with = params::cursor)]
    pub cursor: Option<String>,
    /// Only the commands of this fan-out job.
    #[param(schema_with = params::job)]
    pub job: Option<String>,
}

/// A cursor as a page's `next_cursor` gives it: a positive id (empty: the first page).
pub(super) fn cursor(c: Option<String>) -> Result<Option<String>, ApiError> {
    match c {
        Some(c) if c.is_empty() => Ok(None),
        Some(c) => {
            let ok = c.len() <= 18 && c.bytes().all(|b| b.is_ascii_digit()) && !c.starts_with('0');
            if ok {
                Ok(Some(c))
            } else {
                let shown: String = c.chars().take(40).collect();
                Err(ApiError::validation(
                    "cursor",
                    format!("invalid cursor {shown:?}: pass back a page's next_cursor"),
                ))
            }
        }
        None => Ok(None),
    }
}

fn filter_of(q: HistoryQuery) -> Result<HistoryFilter, ApiError> {
    if let Some(a) = &q.alias {
        validate::alias(a)?;
    }
    if let Some(s) = &q.set {
        validate::set_name_in("set", s)?;
    }
    let status = q
        .status
        .as_deref()
        .map(|s| s.parse::<CommandStatus>())
        .transpose()
        .map_err(|e| ApiError::validation("status", e))?;
    let since = q
        .since
        .as_deref()
        .map(|s| {
            chrono::DateTime::parse_from_rfc3339(s)
                .map(|d| d.with_timezone(&chrono::Utc))
                .map_err(|e| {
                    ApiError::validation("since", format!("{s:?} is not an RFC 3339 time: {e}"))
                })
        })
        .transpose()?;
    let limit = page_limit(q.limit.as_deref())?;
    Ok(HistoryFilter {
        alias: q.alias,
        set: q.set,
        status,
        actor: q.actor.as_deref().map(actor_filter).transpose()?,
        since,
        job: q.job.as_deref().map(job_id).transpose()?,
        limit,
        cursor: cursor(q.cursor)?,
    })
}

/// A job id in a query: a positive integer.
pub(super) fn job_id(text: &str) -> Result<i64, ApiError> {
    match text.parse::<i64>() {
        Ok(id) if id > 0 => Ok(id),
        _ => Err(ApiError::validation(
            "job",
            format!(
                "{:?} is not a job id",
                text.chars().take(40).collect::<String>()
            ),
        )),
    }
}

pub(super) fn page_limit(limit: Option<&str>) -> Result<usize, ApiError> {
    match limit {
        None => Ok(HistoryFilter::DEFAULT_LIMIT),
        // `10.0` is an integer too, as JSON Schema counts them.
        Some(l) => match l.parse::<usize>().ok().or_else(|| {
            l.parse::<f64>()
                .ok()
                .filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f < 1e9)
                .map(|f| f as usize)
        }) {
            Some(n) if (1..=validate::MAX_PAGE_LIMIT).contains(&n) => Ok(n),
            _ => Err(ApiError::validation(
                "limit",
                format!("{l:?} is not a number in 1..={}", validate::MAX_PAGE_LIMIT),
            )),
        },
    }
}

/// An actor filter as stored: `unix:...` and `key:...` as given; a bare name is the user of
/// that name on this host (`alice` -> `unix:1000(alice)`), else the key of that name.
fn actor_filter(actor: &str) -> Result<String, ApiError> {
    validate::no_control("actor", actor, false)?;
    if actor.is_empty() || actor.chars().count() > validate::MAX_ACTOR_LEN {
        return Err(ApiError::validation(
            "actor",
            format!("must be 1 to {} characters", validate::MAX_ACTOR_LEN),
        ));
    }
    if actor.starts_with("unix:") || actor.starts_with("key:") || actor == "config" {
        return Ok(actor.to_owned());
    }
    Ok(match user_id(actor) {
        Some(uid) => format!("unix:{uid}({actor})"),
        None => format!("key:{actor}"),
    })
}

/// The uid of user `name`, if this host has one.
fn user_id(name: &str) -> Option<u32> {
    let cname = std::ffi::CString::new(name).ok()?;
    let mut buf = vec![0u8; 4096];
    // SAFETY: an all-zero passwd is a valid value for getpwnam_r to overwrite.
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call; `buf` outlives the use of `pwd`.
    let rc = unsafe {
        libc::getpwnam_r(
            cname.as_ptr(),
            &mut pwd,
            buf.as_mut_ptr().cast(),
            buf.len(),
            &mut result,
        )
    };
    (rc == 0 && !result.is_null()).then_some(pwd.pw_uid)
}

/// Cancel a running command: it is interrupted (Ctrl-C, or a signal on Kubernetes), recorded
/// `cancelled`, and its pod's shell is kept.
#[utoipa::path(
    post,
    path = "/api/v1/commands/{id}/cancel",
    tag = "exec",
    params(("id" = i64, Path, description = "History record id of the running command")),
    responses(
        (status = 202, description = "Cancelling: the command's caller gets its record, status `cancelled`", body = podwrangler::api::CancelAccepted),
        (status = 404, description = "`command_not_found`", body = podwrangler::api::Problem, content_type = "application/problem+json"),
        (status = 409, description = "`command_not_running`", body = podwrangler::api::Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation`: the id is not a number", body = podwrangler::api::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn cancel_command(
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let record = find_command(&state, &id).await?;
    let id = record.id;
    if record.status != CommandStatus::Running {
        return Err(ApiError::NotRunning(id));
    }
    let pod = state
        .registry
        .send(crate::actors::registry::Lookup(record.alias.clone()))
        .await
        .map_err(mailbox)?
        .ok_or(ApiError::NotRunning(id))?;
    let cancelled = pod
        .send(crate::actors::pod::Cancel { id })
        .await
        .map_err(mailbox)?;
    if !cancelled {
        return Err(ApiError::NotRunning(id));
    }
    Ok(
        HttpResponse::Accepted().json(podwrangler::api::CancelAccepted {
            id,
            cancelling: true,
        }),
    )
}

/// The history row a path's `{id}` names: 422 when it is not a number, 404 when there is none.
async fn find_command(state: &AppState, id: &str) -> Result<CommandRecord, ApiError> {
    let id: i64 = id
        .parse()
        .map_err(|_| ApiError::validation("id", format!("{id:?} is not a command id")))?;
    state
        .store
        .send(GetCommand { id })
        .await
        .map_err(mailbox)?
        .map_err(store_err)?
        .ok_or(ApiError::CommandNotFound(id))
}

/// Query of `GET /api/v1/audit`.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// Only events by this caller (same forms as the history's `actor`).
    #[param(schema_with = params::actor)]
    pub actor: Option<String>,
    /// Page size, 1..=1000 (default 50).
    #[param(schema_with = params::limit)]
    pub limit: Option<String>,
    /// `next_cursor` of the previous page.
    #[param(schema_with = params::cursor)]
    pub cursor: Option<String>,
}

/// Who registered, changed, removed and imported pods, newest first. Append-only.
#[utoipa::path(
    get,
    path = "/api/v1/audit",
    tag = "history",
    params(AuditQuery),
    responses(
        (status = 200, description = "A page of audit events; pass `next_cursor` back as `cursor`", body = AuditPage),
        (status = 400, description = "Unknown query parameter", body = podwrangler::api::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid filter", body = podwrangler::api::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn list_audit(
    state: web::Data<AppState>,
    query: web::Query<AuditQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = query.into_inner();
    let filter = AuditFilter {
        actor: q.actor.as_deref().map(actor_filter).transpose()?,
        limit: page_limit(q.limit.as_deref())?,
        cursor: cursor(q.cursor)?,
    };
    let page = state
        .store
        .send(ListAudit(filter))
        .await
        .map_err(mailbox)?
        .map_err(store_err)?;
    Ok(HttpResponse::Ok().json(page))
}

/// Command history, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/commands",
    tag = "history",
    params(HistoryQuery),
    responses(
        (status = 200, description = "A page of history; pass `next_cursor` back as `cursor`", body = CommandPage),
        (status = 400, description = "Unknown query parameter", body = podwrangler::api::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid filter", body = podwrangler::api::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn list_commands(
    state: web::Data<AppState>,
    query: web::Query<HistoryQuery>,
) -> Result<HttpResponse, ApiError> {
    let filter = filter_of(query.into_inner())?;
    let page = state
        .store
        .send(ListCommands(filter))
        .await
        .map_err(mailbox)?
        .map_err(store_err)?;
    Ok(HttpResponse::Ok().json(page))
}

/// One history record.
#[utoipa::path(
    get,
    path = "/api/v1/commands/{id}",
    tag = "history",
    params(("id" = i64, Path, description = "History record id")),
    responses(
        (status = 200, description = "The record", body = CommandRecord),
        (status = 404, description = "`command_not_found`", body = podwrangler::api::Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation`: the id is not a number", body = podwrangler::api::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get_command(
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let record = find_command(&state, &id).await?;
    Ok(HttpResponse::Ok().json(record))
}

/// Query of `GET /api/v1/commands/{id}/output`.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct OutputQuery {
    /// `stdout` (the default) or `stderr`.
    #[param(schema_with = params::stream)]
    pub stream: Option<String>,
}

/// Bytes of output read from the database per step of a download: what one output request
/// holds in memory at most (besides the database engine's own working memory).
pub const OUTPUT_CHUNK_BYTES: u64 = 256 * 1024;

/// The inclusive byte range `Range: bytes=...` asks of `size` bytes: `a-b`, `a-` or the suffix
/// `-n`, one range only; a range that ends past the end is cut to it. `None` for a header this
/// server ignores, as RFC 9110 lets it: another unit, several ranges, or a malformed one (the
/// whole output is sent). A well-formed range that starts past the end is 416.
pub fn byte_range(header: &str, size: u64) -> Result<Option<(u64, u64)>, ApiError> {
    let refuse = |message: String| ApiError::RangeNotSatisfiable { size, message };
    let Some(spec) = header.trim().strip_prefix("bytes=").map(str::trim) else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None);
    }
    let Some((first, last)) = spec.split_once('-') else {
        return Ok(None);
    };
    let number = |s: &str| {
        let s = s.trim();
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse::<u64>().ok())
            .flatten()
    };
    let (start, end) = match (first.trim().is_empty(), number(first), number(last)) {
        // `-n`: the last n bytes.
        (true, _, Some(n)) if n > 0 && size > 0 => (size.saturating_sub(n), size - 1),
        (true, _, Some(_)) => {
            return Err(refuse(format!("{header:?} asks for no bytes of {size}")));
        }
        (false, Some(a), None) if last.trim().is_empty() => (a, size.saturating_sub(1)),
        (false, Some(a), Some(b)) if a <= b => (a, b.min(size.saturating_sub(1))),
        _ => return Ok(None),
    };
    if start >= size {
        return Err(refuse(format!(
            "{header:?} starts past the end of the {size} bytes there are"
        )));
    }
    Ok(Some((start, end)))
}

/// A command's stdout or stderr as stored, raw (UTF-8 text; a range may cut through a
/// character). `Range: bytes=FIRST-LAST` (or `FIRST-`, or `-SUFFIX`) gets 206 with that part
/// (a header in another form is ignored);
/// only the bytes asked for are read from the database, 256 KiB at a time.
#[utoipa::path(
    get,
    path = "/api/v1/commands/{id}/output",
    tag = "history",
    params(
        ("id" = i64, Path, description = "History record id"),
        OutputQuery,
        ("Range" = Option<String>, Header, description = "One byte range: `bytes=FIRST-LAST`, `bytes=FIRST-` or `bytes=-SUFFIX` (RFC 9110); absent, or in any other form (another unit, several ranges, malformed): ignored, all of it is sent"),
    ),
    responses(
        (status = 200, description = "The whole output", body = String, content_type = "text/plain; charset=utf-8",
            headers(("Accept-Ranges" = String, description = "`bytes`"))),
        (status = 206, description = "The range asked for", body = String, content_type = "text/plain; charset=utf-8",
            headers(("Content-Range" = String, description = "`bytes FIRST-LAST/SIZE`"))),
        (status = 404, description = "`command_not_found`", body = podwrangler::api::Problem, content_type = "application/problem+json"),
        (status = 416, description = "`range_not_satisfiable`: the range starts past the end (or asks for no bytes); `Content-Range: bytes */SIZE` gives the size", body = podwrangler::api::Problem, content_type = "application/problem+json",
            headers(("Content-Range" = String, description = "`bytes */SIZE`"))),
        (status = 422, description = "`validation`: the id is not a number, or `stream` is neither `stdout` nor `stderr`", body = podwrangler::api::Problem, content_type = "application/problem+json"),
        (status = 503, description = "`database_unavailable`: retry after `Retry-After`", body = podwrangler::api::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn command_output(
    state: web::Data<AppState>,
    id: web::Path<String>,
    query: web::Query<OutputQuery>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let id: i64 = id
        .parse()
        .map_err(|_| ApiError::validation("id", format!("{id:?} is not a command id")))?;
    let stream = match query.stream.as_deref() {
        None | Some("stdout") => OutputStream::Stdout,
        Some("stderr") => OutputStream::Stderr,
        Some(other) => {
            let shown: String = other.chars().take(40).collect();
            return Err(ApiError::validation(
                "stream",
                format!("{shown:?} is neither stdout nor stderr"),
            ));
        }
    };
    let store = state.store.clone();
    let size = store
        .send(ReadOutput {
            id,
            stream,
            offset: 0,
            len: 0,
        })
        .await
        .map_err(mailbox)?
        .map_err(store_err)?
        .ok_or(ApiError::CommandNotFound(id))?
        .total;
    let range = req
        .headers()
        .get(actix_web::http::header::RANGE)
        .map(|v| {
            let text = v.to_str().map_err(|_| ApiError::RangeNotSatisfiable {
                size,
                message: "the Range header is not ASCII".into(),
            })?;
            byte_range(text, size)
        })
        .transpose()?
        .flatten();
    let (start, end_excl, mut resp) = match range {
        Some((first, last)) => {
            let mut r = HttpResponse::PartialContent();
            r.insert_header((
                actix_web::http::header::CONTENT_RANGE,
                format!("bytes {first}-{last}/{size}"),
            ));
            (first, last + 1, r)
        }
        None => (0, size, HttpResponse::Ok()),
    };
    resp.content_type("text/plain; charset=utf-8")
        .insert_header((actix_web::http::header::ACCEPT_RANGES, "bytes"));
    // Read step by step as the client takes the body: at most one step in memory.
    let body = futures_util::stream::unfold(start, move |pos| {
        let store = store.clone();
        async move {
            if pos >= end_excl {
                return None;
            }
            let len = (end_excl - pos).min(OUTPUT_CHUNK_BYTES);
            let read = store
                .send(ReadOutput {
                    id,
                    stream,
                    offset: pos,
                    len,
                })
                .await;
            match read {
                Ok(Ok(Some(slice))) if !slice.bytes.is_empty() => {
                    let next = pos + slice.bytes.len() as u64;
                    Some((Ok(web::Bytes::from(slice.bytes)), next))
                }
                _ => {
                    tracing::warn!(id, "a command's output could not be read while sending it");
                    Some((
                        Err(actix_web::error::ErrorServiceUnavailable(
                            "the output could not be read",
                        )),
                        end_excl,
                    ))
                }
            }
        }
    });
    Ok(resp
        .no_chunking(end_excl - start)
        .streaming::<_, actix_web::Error>(body))
}

/// Query of `GET /api/v1/commands/export`: the listing's filters and a format.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ExportQuery {
    /// Only the commands that ran on members of this pod set (also pods gone since).
    #[param(schema_with = params::set)]
    pub set: Option<String>,
    /// Only the commands of this fan-out job.
    #[param(schema_with = params::job)]
    pub job: Option<String>,
    /// `ndjson` (the default) or `csv`.
    #[param(schema_with = params::format)]
    pub format: Option<String>,
    /// Only this pod's commands.
    #[param(schema_with = params::alias)]
    pub alias: Option<String>,
    /// running, succeeded, failed, timeout, error or interrupted.
    #[param(value_type = Option<CommandStatus>)]
    pub status: Option<String>,
    /// RFC 3339 instant: only commands started at or after it.
    #[param(schema_with = params::since)]
    pub since: Option<String>,
    /// Only commands this caller asked for.
    #[param(schema_with = params::actor)]
    pub actor: Option<String>,
}

/// Full records an export reads from the database per step: with outputs of up to 4 MiB per
/// stream, at most 32 MiB of stored text (plus its encoding) per export at a time.
pub const EXPORT_STEP_ROWS: usize = 4;

/// The CSV columns of an export, in order.
pub const EXPORT_CSV_COLUMNS: [&str; 16] = [
    "id",
    "alias",
    "pod_label",
    "command",
    "status",
    "exit_code",
    "stdout",
    "stderr",
    "error",
    "truncated",
    "started_at",
    "finished_at",
    "duration_ms",
    "actor",
    "session_restarted",
    "job_id",
];

/// One CSV field (RFC 4180): quoted, with quotes doubled, when it holds a comma, a quote, CR
/// or LF (or starts with a space).
fn csv_field(out: &mut Vec<u8>, text: &str) {
    if text.contains([',', '"', '\r', '\n']) || text.starts_with(' ') {
        out.push(b'"');
        out.extend_from_slice(text.replace('"', "\"\"").as_bytes());
        out.push(b'"');
    } else {
        out.extend_from_slice(text.as_bytes());
    }
}

/// One record as a CSV line (CRLF-terminated).
pub fn csv_line(out: &mut Vec<u8>, r: &CommandRecord) {
    let opt = |v: Option<String>| v.unwrap_or_default();
    let fields = [
        r.id.to_string(),
        r.alias.clone(),
        r.pod_label.clone(),
        r.command.clone(),
        r.status.as_str().to_owned(),
        opt(r.exit_code.map(|c| c.to_string())),
        r.stdout.clone(),
        r.stderr.clone(),
        opt(r.error.clone()),
        r.truncated.to_string(),
        r.started_at.to_rfc3339(),
        opt(r.finished_at.map(|t| t.to_rfc3339())),
        opt(r.duration_ms.map(|d| d.to_string())),
        opt(r.actor.clone()),
        r.session_restarted.to_string(),
        opt(r.job_id.map(|j| j.to_string())),
    ];
    for (i, f) in fields.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        csv_field(out, f);
    }
    out.extend_from_slice(b"\r\n");
}

/// The whole (filtered) history with full output, oldest first, streamed: NDJSON (one
/// `CommandRecord` per line) or CSV. The daemon reads 4 records at a time as the client takes
/// the body, so memory stays bounded however large the history is.
#[utoipa::path(
    get,
    path = "/api/v1/commands/export",
    tag = "history",
    params(ExportQuery),
    responses(
        (status = 200, description = "Every matching record, oldest first: NDJSON (`CommandRecord` per line) or CSV with a header row", content(
            (String = "application/x-ndjson"),
            (String = "text/csv"),
        )),
        (status = 400, description = "Unknown query parameter", body = podwrangler::api::Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation`: a bad filter or `format`", body = podwrangler::api::Problem, content_type = "application/problem+json"),
        (status = 503, description = "`database_unavailable`: retry after `Retry-After`", body = podwrangler::api::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn export_commands(
    state: web::Data<AppState>,
    query: web::Query<ExportQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = query.into_inner();
    let csv = match q.format.as_deref() {
        None | Some("ndjson") => false,
        Some("csv") => true,
        Some(other) => {
            let shown: String = other.chars().take(40).collect();
            return Err(ApiError::validation(
                "format",
                format!("{shown:?} is neither ndjson nor csv"),
            ));
        }
    };
    let filter = filter_of(HistoryQuery {
        alias: q.alias,
        status: q.status,
        since: q.since,
        actor: q.actor,
        limit: None,
        cursor: None,
        job: q.job,
        set: q.set,
    })?;
    let store = state.store.clone();
    // The first step before the answer, so a database that is down is a 503, not a cut body.
    let first = store
        .send(ExportPage {
            filter: filter.clone(),
            after: 0,
            limit: EXPORT_STEP_ROWS,
        })
        .await
        .map_err(mailbox)?
        .map_err(store_err)?;
    let encode = move |rows: &[CommandRecord], header: bool| {
        let mut out = Vec::new();
        if csv && header {
            out.extend_from_slice(EXPORT_CSV_COLUMNS.join(",").as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        for r in rows {
            if csv {
                csv_line(&mut out, r);
            } else if serde_json::to_writer(&mut out, r).is_ok() {
                out.push(b'\n');
            }
        }
        web::Bytes::from(out)
    };
    let head = encode(&first, true);
    let after = first.last().map(|r| r.id);
    let done = first.len() < EXPORT_STEP_ROWS;
    let rest = futures_util::stream::unfold((after, done), move |(after, done)| {
        let store = store.clone();
        let filter = filter.clone();
        async move {
            let after = after?;
            if done {
                return None;
            }
            let page = store
                .send(ExportPage {
                    filter,
                    after,
                    limit: EXPORT_STEP_ROWS,
                })
                .await;
            match page {
                Ok(Ok(rows)) if rows.is_empty() => None,
                Ok(Ok(rows)) => {
                    let next = (rows.last().map(|r| r.id), rows.len() < EXPORT_STEP_ROWS);
                    Some((Ok(encode(&rows, false)), next))
                }
                _ => {
                    tracing::warn!("an export broke off: the database could not be read");
                    Some((
                        Err(actix_web::error::ErrorServiceUnavailable(
                            "the history could not be read",
                        )),
                        (None, true),
                    ))
                }
            }
        }
    });
    let body = futures_util::StreamExt::chain(
        futures_util::stream::once(async move { Ok::<_, actix_web::Error>(head) }),
        rest,
    );
    Ok(HttpResponse::Ok()
        .content_type(if csv {
            "text/csv; charset=utf-8"
        } else {
            podwrangler::api::NDJSON
        })
        .streaming(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_quote_what_needs_it() {
        let mut out = Vec::new();
        csv_field(&mut out, "plain");
        out.push(b'|');
        csv_field(&mut out, "a,b");
        out.push(b'|');
        csv_field(&mut out, "say \"hi\"\nbye");
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "plain|\"a,b\"|\"say \"\"hi\"\"\nbye\""
        );
    }

    #[test]
    fn byte_ranges_follow_rfc_9110() {
        let ok = |h: &str| byte_range(h, 100).unwrap();
        assert_eq!(ok("bytes=0-9"), Some((0, 9)));
        assert_eq!(ok("bytes=90-"), Some((90, 99)));
        assert_eq!(ok("bytes=-10"), Some((90, 99)));
        assert_eq!(ok("bytes=-1000"), Some((0, 99)));
        assert_eq!(ok("bytes=95-200"), Some((95, 99)));
        // Ignored: the whole output is sent.
        for ignored in [
            "bytes=5-2",
            "bytes=0-1,5-6",
            "items=0-1",
            "bytes=a-b",
            "bytes=-",
            "G",
        ] {
            assert_eq!(ok(ignored), None, "{ignored}");
        }
        for unsatisfiable in ["bytes=100-", "bytes=-0", "bytes=100-200"] {
            assert!(
                matches!(
                    byte_range(unsatisfiable, 100),
                    Err(ApiError::RangeNotSatisfiable { size: 100, .. })
                ),
                "{unsatisfiable}"
            );
        }
        assert!(byte_range("bytes=0-", 0).is_err());
    }

    fn q() -> HistoryQuery {
        HistoryQuery {
            alias: None,
            set: None,
            status: None,
            since: None,
            actor: None,
            limit: None,
            cursor: None,
            job: None,
        }
    }

    #[test]
    fn actor_filters_name_users_and_keys() {
        assert_eq!(actor_filter("root").unwrap(), "unix:0(root)");
        assert_eq!(
            actor_filter("unix:1000(alice)").unwrap(),
            "unix:1000(alice)"
        );
        assert_eq!(
            actor_filter("no-such-user-ci").unwrap(),
            "key:no-such-user-ci"
        );
        assert!(actor_filter("").is_err());
        assert!(actor_filter("a\nb").is_err());
    }

    #[test]
    fn filters_validate_and_name_fields() {
        let f = filter_of(HistoryQuery {
            status: Some("failed".into()),
            since: Some("2026-01-02T03:04:05Z".into()),
            limit: Some("10".into()),
            ..q()
        })
        .unwrap();
        assert_eq!(f.status, Some(CommandStatus::Failed));
        assert_eq!(f.limit, 10);
        for (bad, field) in [
            (
                HistoryQuery {
                    status: Some("x".into()),
                    ..q()
                },
                "status",
            ),
            (
                HistoryQuery {
                    since: Some("yesterday".into()),
                    ..q()
                },
                "since",
            ),
            (
                HistoryQuery {
                    limit: Some("0".into()),
                    ..q()
                },
                "limit",
            ),
            (
                HistoryQuery {
                    limit: Some("abc".into()),
                    ..q()
                },
                "limit",
            ),
        ] {
            match filter_of(bad) {
                Err(ApiError::Validation { field: f, .. }) => assert_eq!(f, field),
                other => panic!("{other:?}"),
            }
        }
    }
}
