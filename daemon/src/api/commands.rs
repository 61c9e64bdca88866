//! Command history: `GET /api/v1/commands` (filters, cursor paging) and `/commands/{id}`; the
//! audit log of pod changes: `GET /api/v1/audit`.

use actix_web::{HttpResponse, web};
use podwrangler::api::{AuditPage, CommandPage, CommandRecord, CommandStatus};

use super::error::ApiError;
use super::{mailbox, store_err, validate};
use crate::server::AppState;
use crate::store::{AuditFilter, GetCommand, HistoryFilter, ListAudit, ListCommands};

/// Query of `GET /api/v1/commands`.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct HistoryQuery {
    /// Only this pod's commands.
    pub alias: Option<String>,
    /// running, succeeded, failed, timeout, error or interrupted.
    pub status: Option<String>,
    /// RFC 3339 instant: only commands started at or after it.
    pub since: Option<String>,
    /// Only commands this caller asked for: `unix:UID(NAME)`, `key:NAME`, or a bare user or key
    /// name.
    pub actor: Option<String>,
    /// Page size, 1..=1000 (default 50).
    pub limit: Option<String>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

fn filter_of(q: HistoryQuery) -> Result<HistoryFilter, ApiError> {
    if let Some(a) = &q.alias {
        validate::alias(a)?;
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
        status,
        actor: q.actor.as_deref().map(actor_filter).transpose()?,
        since,
        limit,
        cursor: q.cursor.filter(|c| !c.is_empty()),
    })
}

fn page_limit(limit: Option<&str>) -> Result<usize, ApiError> {
    match limit {
        None => Ok(HistoryFilter::DEFAULT_LIMIT),
        Some(l) => match l.parse::<usize>() {
            Ok(n) if (1..=HistoryFilter::MAX_LIMIT).contains(&n) => Ok(n),
            _ => Err(ApiError::validation(
                "limit",
                format!("{l:?} is not a number in 1..={}", HistoryFilter::MAX_LIMIT),
            )),
        },
    }
}

/// An actor filter as stored: `unix:...` and `key:...` as given; a bare name is the user of
/// that name on this host (`alice` -> `unix:1000(alice)`), else the key of that name.
fn actor_filter(actor: &str) -> Result<String, ApiError> {
    if actor.is_empty() || actor.len() > 200 || actor.chars().any(char::is_control) {
        return Err(ApiError::validation(
            "actor",
            "must be 1 to 200 printable characters",
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
        (status = 202, description = "Cancelling: the command's caller gets its record, status `cancelled`"),
        (status = 404, description = "`command_not_found`", body = podwrangler::api::Problem, content_type = "application/problem+json"),
        (status = 409, description = "`command_not_running`", body = podwrangler::api::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn cancel_command(
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id: i64 = id.parse().map_err(|_| {
        ApiError::validation("id", format!("{:?} is not a command id", id.as_str()))
    })?;
    let record = state
        .store
        .send(GetCommand { id })
        .await
        .map_err(mailbox)?
        .map_err(store_err)?
        .ok_or(ApiError::CommandNotFound(id))?;
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
    Ok(HttpResponse::Accepted().json(serde_json::json!({"id": id, "cancelling": true})))
}

/// Query of `GET /api/v1/audit`.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// Only events by this caller (same forms as the history's `actor`).
    pub actor: Option<String>,
    /// Page size, 1..=1000 (default 50).
    pub limit: Option<String>,
    /// `next_cursor` of the previous page.
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
        cursor: q.cursor.filter(|c| !c.is_empty()),
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
    )
)]
pub async fn get_command(
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id: i64 = id.parse().map_err(|_| {
        ApiError::validation("id", format!("{:?} is not a command id", id.as_str()))
    })?;
    let record = state
        .store
        .send(GetCommand { id })
        .await
        .map_err(mailbox)?
        .map_err(store_err)?
        .ok_or(ApiError::CommandNotFound(id))?;
    Ok(HttpResponse::Ok().json(record))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q() -> HistoryQuery {
        HistoryQuery {
            alias: None,
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
