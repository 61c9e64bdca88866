//! The one error type of the REST API, rendered as `application/problem+json` with a stable code.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use podwrangler::api::{CommandRecord, PROBLEM_JSON, Problem};

/// Everything a handler can answer with instead of success.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A request field is not acceptable (semantic check): 422.
    #[error("invalid {field}: {reason}")]
    Validation { field: String, reason: String },
    /// The body or query could not be read as the expected shape: 400.
    #[error("{message}")]
    BadRequest {
        field: Option<String>,
        message: String,
    },
    #[error("request body is larger than the limit of {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("no pod named {0:?}")]
    PodNotFound(String),
    #[error("a pod named {0:?} already exists")]
    PodExists(String),
    #[error("no pod set named {0:?}")]
    SetNotFound(String),
    #[error("a pod set named {0:?} already exists")]
    SetExists(String),
    #[error("no command with id {0}")]
    CommandNotFound(i64),
    #[error("no job with id {0}")]
    JobNotFound(i64),
    /// A file to copy out of a pod is not a readable regular file there.
    #[error("no readable regular file at {0:?} in the pod")]
    FileNotFound(String),
    #[error("no such endpoint: {0}")]
    NotFound(String),
    /// `allow` lists the methods the resource has, for the `Allow` header.
    #[error("method {method} is not allowed on {path} (allowed: {allow})")]
    MethodNotAllowed {
        method: String,
        path: String,
        allow: &'static str,
    },
    /// The request body's `Content-Type` cannot be JSON.
    #[error("Content-Type {0:?} is not accepted; send application/json")]
    UnsupportedMediaType(String),
    #[error("missing or wrong API key (send Authorization: Bearer <key>)")]
    Unauthorized,
    /// Cancel was asked of a command that is not running (finished, or never started).
    #[error("command {0} is not running")]
    NotRunning(i64),
    /// The caller's API key does not have the scope the route needs.
    #[error("this API key may not do that: the route needs scope {needed}")]
    Forbidden { needed: &'static str },
    #[error("pod {alias:?} is busy: {queued} commands already queued")]
    PodBusy { alias: String, queued: usize },
    /// Connecting failed or the connection was lost; `record` when a history row exists.
    #[error("pod {alias:?}: {message}")]
    PodConnection {
        alias: String,
        message: String,
        record: Option<Box<CommandRecord>>,
    },
    #[error("command timed out in pod {:?}", record.alias)]
    CommandTimeout { record: Box<CommandRecord> },
    #[error("command exited with code {} in pod {:?}", record.exit_code.unwrap_or(-1), record.alias)]
    CommandFailed { record: Box<CommandRecord> },
    /// A pod-side error that is neither a connection problem nor a timeout.
    #[error("pod {alias:?}: {message}")]
    PodError {
        alias: String,
        code: &'static str,
        message: String,
        record: Option<Box<CommandRecord>>,
    },
    #[error("Kubernetes API: {0}")]
    Upstream(String),
    #[error("the daemon is shutting down")]
    ShuttingDown,
    /// The database cannot serve the request now (down, full, read-only): 503 with
    /// `Retry-After`. `record` when a command ran but neither the database nor the spool
    /// could keep its result.
    #[error("the database is unavailable: {message}")]
    DatabaseUnavailable {
        message: String,
        record: Option<Box<CommandRecord>>,
    },
    /// Storage or actor failure; the message is safe to show (no secrets).
    #[error("internal error: {0}")]
    Internal(String),
    /// A `Range` header that is malformed, asks for several ranges, or lies outside the
    /// `size` bytes there are: 416 with `Content-Range: bytes */size`.
    #[error("range not satisfiable: {message}")]
    RangeNotSatisfiable { size: u64, message: String },
}

impl ApiError {
    pub fn validation(field: impl Into<String>, reason: impl Into<String>) -> Self {
        ApiError::Validation {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// The stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Validation { .. } | ApiError::BadRequest { .. } => "validation",
            ApiError::PayloadTooLarge { .. } => "payload_too_large",
            ApiError::PodNotFound(_) => "pod_not_found",
            ApiError::PodExists(_) => "pod_exists",
            ApiError::SetNotFound(_) => "set_not_found",
            ApiError::SetExists(_) => "set_exists",
            ApiError::CommandNotFound(_) => "command_not_found",
            ApiError::JobNotFound(_) => "job_not_found",
            ApiError::FileNotFound(_) => "file_not_found",
            ApiError::NotFound(_) => "not_found",
            ApiError::MethodNotAllowed { .. } => "method_not_allowed",
            ApiError::UnsupportedMediaType(_) => "unsupported_media_type",
            ApiError::Unauthorized => "unauthorized",
            ApiError::Forbidden { .. } => "forbidden",
            ApiError::NotRunning(_) => "command_not_running",
            ApiError::PodBusy { .. } => "pod_busy",
            ApiError::PodConnection { .. } => "pod_connection",
            ApiError::CommandTimeout { .. } => "command_timeout",
            ApiError::CommandFailed { .. } => "command_failed",
            ApiError::PodError { code, .. } => code,
            ApiError::Upstream(_) => "upstream",
            ApiError::ShuttingDown => "shutting_down",
            ApiError::DatabaseUnavailable { .. } => "database_unavailable",
            ApiError::Internal(_) => "internal",
            ApiError::RangeNotSatisfiable { .. } => "range_not_satisfiable",
        }
    }

    fn title(&self) -> &'static str {
        match self {
            ApiError::Validation { .. } => "Invalid request field",
            ApiError::BadRequest { .. } => "Malformed request",
            ApiError::PayloadTooLarge { .. } => "Payload too large",
            ApiError::PodNotFound(_) => "Pod not found",
            ApiError::PodExists(_) => "Pod already exists",
            ApiError::SetNotFound(_) => "Pod set not found",
            ApiError::SetExists(_) => "Pod set already exists",
            ApiError::CommandNotFound(_) => "Command not found",
            ApiError::JobNotFound(_) => "Job not found",
            ApiError::FileNotFound(_) => "File not found",
            ApiError::NotFound(_) => "Not found",
            ApiError::MethodNotAllowed { .. } => "Method not allowed",
            ApiError::UnsupportedMediaType(_) => "Unsupported media type",
            ApiError::Unauthorized => "Unauthorized",
            ApiError::Forbidden { .. } => "Forbidden",
            ApiError::NotRunning(_) => "Command not running",
            ApiError::PodBusy { .. } => "Pod busy",
            ApiError::PodConnection { .. } => "Pod connection failed",
            ApiError::CommandTimeout { .. } => "Command timed out",
            ApiError::CommandFailed { .. } => "Command failed",
            ApiError::PodError { .. } => "Pod error",
            ApiError::Upstream(_) => "Upstream error",
            ApiError::ShuttingDown => "Shutting down",
            ApiError::DatabaseUnavailable { .. } => "Database unavailable",
            ApiError::Internal(_) => "Internal error",
            ApiError::RangeNotSatisfiable { .. } => "Range not satisfiable",
        }
    }

    /// The RFC 9457 body.
    pub fn problem(&self) -> Problem {
        let status = self.status_code();
        let (field, record) = match self {
            ApiError::Validation { field, .. } => (Some(field.clone()), None),
            ApiError::BadRequest { field, .. } => (field.clone(), None),
            ApiError::PodConnection { record, .. }
            | ApiError::PodError { record, .. }
            | ApiError::DatabaseUnavailable { record, .. } => (None, record.clone()),
            ApiError::CommandTimeout { record } | ApiError::CommandFailed { record } => {
                (None, Some(record.clone()))
            }
            _ => (None, None),
        };
        let code = self.code();
        Problem {
            kind: format!(
                "https://podwrangler.dev/problems/{}",
                code.replace('_', "-")
            ),
            title: self.title().to_owned(),
            status: status.as_u16(),
            detail: self.to_string(),
            code: code.to_owned(),
            field,
            record,
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::Validation { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::PodNotFound(_)
            | ApiError::CommandNotFound(_)
            | ApiError::JobNotFound(_)
            | ApiError::NotFound(_)
            | ApiError::FileNotFound(_) => StatusCode::NOT_FOUND,
            ApiError::PodExists(_) => StatusCode::CONFLICT,
            ApiError::SetNotFound(_) => StatusCode::NOT_FOUND,
            ApiError::SetExists(_) => StatusCode::CONFLICT,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden { .. } => StatusCode::FORBIDDEN,
            ApiError::NotRunning(_) => StatusCode::CONFLICT,
            ApiError::PodBusy { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::PodConnection { .. } | ApiError::PodError { .. } | ApiError::Upstream(_) => {
                StatusCode::BAD_GATEWAY
            }
            ApiError::CommandTimeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            ApiError::CommandFailed { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::ShuttingDown | ApiError::DatabaseUnavailable { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::RangeNotSatisfiable { .. } => StatusCode::RANGE_NOT_SATISFIABLE,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut resp = HttpResponse::build(self.status_code());
        resp.content_type(PROBLEM_JSON);
        if matches!(self, ApiError::Unauthorized) {
            resp.insert_header(("WWW-Authenticate", "Bearer"));
        }
        if matches!(self, ApiError::PodBusy { .. }) {
            resp.insert_header(("Retry-After", "1"));
        }
        if matches!(self, ApiError::DatabaseUnavailable { .. }) {
            resp.insert_header(("Retry-After", crate::store::RETRY_AFTER_SECS.to_string()));
        }
        if let ApiError::RangeNotSatisfiable { size, .. } = self {
            resp.insert_header((
                actix_web::http::header::CONTENT_RANGE,
                format!("bytes */{size}"),
            ));
        }
        if let ApiError::MethodNotAllowed { allow, .. } = self {
            resp.insert_header((actix_web::http::header::ALLOW, *allow));
        }
        resp.json(self.problem())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problems_carry_stable_codes_and_fields() {
        let e = ApiError::validation("timeout", "must be positive");
        let p = e.problem();
        assert_eq!(p.status, 422);
        assert_eq!(p.code, "validation");
        assert_eq!(p.field.as_deref(), Some("timeout"));
        assert!(p.detail.contains("timeout"));
        assert_eq!(ApiError::PodExists("a".into()).problem().status, 409);
        assert_eq!(
            ApiError::PodBusy {
                alias: "a".into(),
                queued: 3
            }
            .status_code(),
            StatusCode::TOO_MANY_REQUESTS
        );
    }

    #[test]
    fn an_unavailable_database_is_503_with_retry_after() {
        let e = ApiError::DatabaseUnavailable {
            message: "disk full".into(),
            record: None,
        };
        assert_eq!(e.problem().status, 503);
        assert_eq!(e.problem().code, "database_unavailable");
        let resp = e.error_response();
        assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(resp.headers().contains_key("retry-after"));
    }
}
