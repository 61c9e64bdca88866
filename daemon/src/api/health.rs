//! `GET /health`: version, uptime, database reachability and pods by state.

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
    responses((status = 200, description = "Daemon health; `status` is `degraded` when the database does not answer", body = Health))
)]
pub async fn health(state: web::Data<AppState>) -> HttpResponse {
    let db_ok = matches!(
        state.store.send(Ping).timeout(Duration::from_secs(5)).await,
        Ok(Ok(()))
    );
    let pods = state.registry.send(StateCounts).await.unwrap_or_default();
    HttpResponse::Ok().json(Health {
        status: if db_ok { "ok" } else { "degraded" }.into(),
        version: env!("CARGO_PKG_VERSION").into(),
        uptime_secs: state.started.elapsed().as_secs_f64(),
        database: DatabaseHealth {
            ok: db_ok,
            backend: state.backend.clone(),
        },
        pods,
    })
}
