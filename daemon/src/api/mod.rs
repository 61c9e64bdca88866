//! The REST API: routes, and the handlers behind them (the same app on TCP and the Unix socket).

pub mod body;
pub mod commands;
pub mod error;
pub mod exec;
pub mod files;
pub mod health;
pub mod input;
pub mod jobs;
pub mod pods;
pub mod sets;
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

/// A resource whose other methods are answered with 405 and `Allow: {allow}`. `allow` lists the
/// methods routed below, as the OpenAPI document does (tests compare the two).
fn resource(path: &str, allow: &'static str) -> actix_web::Resource {
    web::resource(path).default_service(web::to(move |req: HttpRequest| async move {
        Err::<HttpResponse, _>(ApiError::MethodNotAllowed {
            method: req.method().to_string(),
            path: req.path().to_owned(),
            allow,
        })
    }))
}

/// Every route of the API.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/health", "GET").get(health::health))
        .service(resource("/metrics", "GET").get(crate::metrics::metrics))
        .service(resource("/docs", "GET").get(crate::openapi::docs_page))
        .service(resource("/docs/", "GET").get(crate::openapi::docs_page))
        .service(resource("/api/v1/openapi.json", "GET").get(crate::openapi::openapi_json))
        .service(
            resource("/api/v1/pods/", "GET, POST")
                .get(pods::list_pods)
                .post(pods::create_pod),
        )
        .service(
            resource("/api/v1/pods", "GET, POST")
                .get(pods::list_pods)
                .post(pods::create_pod),
        )
        .service(resource("/api/v1/pods/import", "POST").post(pods::import_pods))
        .service(
            resource("/api/v1/pods/{alias}", "GET, PATCH, DELETE")
                .get(pods::get_pod)
                .patch(pods::update_pod)
                .delete(pods::delete_pod),
        )
        .service(resource("/api/v1/pods/{alias}/exec", "POST").post(exec::exec_pod))
        .service(resource("/api/v1/exec", "POST").post(exec::fan_out))
        .service(resource("/api/v1/jobs", "GET").get(jobs::list_jobs))
        .service(resource("/api/v1/jobs/{id}", "GET").get(jobs::get_job))
        .service(resource("/api/v1/pods/{alias}/exec/stdin", "POST").post(input::exec_stdin))
        .service(resource("/api/v1/pods/{alias}/exec/script", "POST").post(input::exec_script))
        .service(
            resource("/api/v1/pods/{alias}/files", "GET, PUT")
                .get(files::get_file)
                .put(files::put_file),
        )
        .service(resource("/api/v1/files", "POST").post(files::put_files))
        .service(resource("/api/v1/commands", "GET").get(commands::list_commands))
        .service(resource("/api/v1/commands/", "GET").get(commands::list_commands))
        // Before `{id}`, which would take `export` for an id.
        .service(resource("/api/v1/commands/export", "GET").get(commands::export_commands))
        .service(resource("/api/v1/commands/{id}", "GET").get(commands::get_command))
        .service(resource("/api/v1/commands/{id}/cancel", "POST").post(commands::cancel_command))
        .service(resource("/api/v1/commands/{id}/output", "GET").get(commands::command_output))
        .service(resource("/api/v1/audit", "GET").get(commands::list_audit))
        .service(resource("/api/v1/clusters", "GET").get(pods::list_clusters))
        .service(
            resource("/api/v1/sets", "GET, POST")
                .get(sets::list_sets)
                .post(sets::create_set),
        )
        .service(
            resource("/api/v1/sets/", "GET, POST")
                .get(sets::list_sets)
                .post(sets::create_set),
        )
        .service(
            resource("/api/v1/sets/{name}", "GET, DELETE")
                .get(sets::get_set)
                .delete(sets::delete_set),
        )
        // Set members (`SET/POD`) as two path segments; `{set}%2F{pod}` reaches the routes above.
        .service(
            resource("/api/v1/pods/{set}/{pod}", "GET, PATCH, DELETE")
                .get(sets::get_member)
                .patch(sets::update_member)
                .delete(sets::delete_member),
        )
        .service(resource("/api/v1/pods/{set}/{pod}/exec", "POST").post(sets::exec_member))
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
