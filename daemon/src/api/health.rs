//! `GET /health`: version, uptime, database reachability and writability, history waiting in
//! the spool, and pods by state.

use std::time::Duration;

use actix_web::{HttpResponse, web};
use podwrangler::api::{DatabaseHealth, Health};

use crate::actors::registry::StateCounts;
use crate::server::AppState;
use crate::store::Ping;

/// Daemon health.
#[utoipa::path(
    get,
    path = "/health",
    tag = "daemon",
    security(()),
    responses((status = 200, description = "Daemon health; `status` is `degraded` when the database does not answer or does not take writes (`database.ok` false, `database.error` says why), or while history waits in the spool (`database.spool_pending`)", body = Health))
)]
pub async fn health(state: web::Data<AppState>) -> HttpResponse {
    let ping = match state.store.send(Ping).timeout(Duration::from_secs(5)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(e) => Err(format!("the store does not answer: {e}")),
    };
    let writes_ok = state.store_health.ok();
    let db_ok = ping.is_ok() && writes_ok;
    let error = match ping {
        Err(e) => Some(e),
        Ok(()) if !writes_ok => state.store_health.last_error(),
        Ok(()) => None,
    };
    let spool_pending = state.store_health.spool_pending();
    let pods = state.registry.send(StateCounts).await.unwrap_or_default();
    HttpResponse::Ok().json(Health {
        status: if db_ok && spool_pending == 0 {
            "ok"
        } else {
            "degraded"
        }
        .into(),
        version: env!("CARGO_PKG_VERSION").into(),
        uptime_secs: state.started.elapsed().as_secs_f64(),
        database: DatabaseHealth {
            ok: db_ok,
            backend: state.backend.clone(),
            spool_pending,
            error,
        },
        pods,
        files: Some(podwrangler::api::FilesHealth {
            limit: state.fd_budget.limit,
            reserve: state.fd_budget.reserve,
            session_budget: state.fd_budget.sessions,
            sessions_open: state.fd_budget.sessions_open(),
            side_exec_budget: state.fd_budget.side_execs,
            in_use: crate::fds::in_use().unwrap_or(0),
        }),
    })
}
