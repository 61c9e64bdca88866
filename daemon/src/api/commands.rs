//! Command history: `GET /api/v1/commands` (filters, cursor paging) and `/commands/{id}`; the
//! audit log of pod changes: `GET /api/v1/audit`.

use actix_web::{HttpResponse, web};
use podwrangler::api::{AuditPage, CommandPage, CommandRecord, CommandStatus};

use super::error::ApiError;
use super::{mailbox, store_err, validate};
use crate::server::AppState;
use crate::store::{AuditFilter, GetCommand, HistoryFilter, ListAudit, ListCommands};

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
}

/// A cursor as a page's `next_cursor` gives it: a positive id (empty: the first page).
fn cursor(c: Option<String>) -> Result<Option<String>, ApiError> {
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
        limit,
        cursor: cursor(q.cursor)?,
    })
}

fn page_limit(limit: Option<&str>) -> Result<usize, ApiError> {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn q() -> HistoryQuery {
        HistoryQuery {
            alias: None,
            set: None,
            status: None,
            since: None,
            actor: None,
            limit: None,
            cursor: None,
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
