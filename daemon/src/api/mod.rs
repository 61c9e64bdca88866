//! The REST API: routes, and the handlers behind them (the same app on TCP and the Unix socket).

pub mod body;
pub mod commands;
pub mod error;
pub mod exec;
pub mod health;
pub mod pods;
pub mod validate;

use actix_web::{HttpRequest, HttpResponse, web};

use self::error::ApiError;
use crate::server::AppState;

/// Path segments that do not parse (a non-numeric command id) are 400 problems.
pub fn path_config() -> web::PathConfig {
    web::PathConfig::default().error_handler(|err, req| {
        let field = req.match_info().iter().next().map(|(k, _)| k.to_owned());
        ApiError::BadRequest {
            message: format!("invalid path parameter: {err}"),
            field,
        }
        .into()
    })
}

/// Query strings that do not parse are 400 problems.
pub fn query_config() -> web::QueryConfig {
    web::QueryConfig::default().error_handler(|err, _| {
        ApiError::BadRequest {
            field: None,
            message: format!("invalid query string: {err}"),
        }
        .into()
    })
}

async fn not_found(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound(format!(
        "{} {}",
        req.method(),
        req.path()
    )))
}

async fn method_not_allowed(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::MethodNotAllowed {
        method: req.method().to_string(),
        path: req.path().to_owned(),
    })
}

/// Every route of the API.
pub fn routes(cfg: &mut web::ServiceConfig) {
    let res = |path: &str| web::resource(path).default_service(web::to(method_not_allowed));
    cfg.service(res("/health").get(health::health))
        .service(res("/docs").get(crate::openapi::docs_page))
        .service(res("/docs/").get(crate::openapi::docs_page))
        .service(res("/api/v1/openapi.json").get(crate::openapi::openapi_json))
        .service(
            res("/api/v1/pods/")
                .get(pods::list_pods)
                .post(pods::create_pod),
        )
        .service(
            res("/api/v1/pods")
                .get(pods::list_pods)
                .post(pods::create_pod),
        )
        .service(res("/api/v1/pods/import").post(pods::import_pods))
        .service(
            res("/api/v1/pods/{alias}")
                .get(pods::get_pod)
                .patch(pods::update_pod)
                .delete(pods::delete_pod),
        )
        .service(res("/api/v1/pods/{alias}/exec").post(exec::exec_pod))
        .service(res("/api/v1/exec").post(exec::fan_out))
        .service(res("/api/v1/commands").get(commands::list_commands))
        .service(res("/api/v1/commands/").get(commands::list_commands))
        .service(res("/api/v1/commands/{id}").get(commands::get_command))
        .service(res("/api/v1/commands/{id}/cancel").post(commands::cancel_command))
        .service(res("/api/v1/audit").get(commands::list_audit))
        .service(res("/api/v1/clusters").get(pods::list_clusters))
        .default_service(web::to(not_found));
}

/// Maps a mailbox failure (actor gone) to a 500 that says so.
pub(crate) fn mailbox(e: actix::MailboxError) -> ApiError {
    ApiError::Internal(format!("actor unavailable: {e}"))
}

/// Maps a store failure to the API error it means.
pub(crate) fn store_err(e: crate::store::StoreError) -> ApiError {
    use crate::store::StoreError;
    match e {
        StoreError::Invalid(m) => ApiError::validation("cursor", m),
        StoreError::NotFound => ApiError::NotFound("record".into()),
        other => db_err(other),
    }
}

/// A store failure with no meaning of its own to the route: 503 `database_unavailable` when
/// the database is down (the client should retry), else 500.
pub(crate) fn db_err(e: crate::store::StoreError) -> ApiError {
    match e {
        crate::store::StoreError::Unavailable(message) => ApiError::DatabaseUnavailable {
            message,
            record: None,
        },
        other => ApiError::Internal(other.to_string()),
    }
}

/// Rejects new work once the drain has begun.
pub(crate) fn check_running(state: &AppState) -> Result<(), ApiError> {
    if state
        .shutting_down
        .load(std::sync::atomic::Ordering::SeqCst)
    {
        Err(ApiError::ShuttingDown)
    } else {
        Ok(())
    }
}
