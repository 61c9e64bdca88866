//! Pod sets over REST (`/api/v1/sets`), and the per-pod routes for set members written as two
//! path segments (`/api/v1/pods/{set}/{pod}`, the same as `/api/v1/pods/{set}%2F{pod}`).

use actix_web::{HttpRequest, HttpResponse, web};
use podwrangler::api::{
    AuditAction, ExecRequest, PodSetCreate, PodSetDetail, PodSetInfo, PodUpdate, limits,
};

use super::body::ApiJson;
use super::error::ApiError;
use super::{check_running, db_err, mailbox, validate};
use crate::auth::Actor;
use crate::server::AppState;
use crate::store::sets::{DeleteSet, InsertSet, PodSetRow};
use crate::store::{NewAuditEvent, StoreError};

/// Appends to the audit log; the change already happened, so a failure is logged.
async fn audit(state: &AppState, actor: &str, action: AuditAction, subject: &str, detail: String) {
    let event = NewAuditEvent {
        actor: actor.to_owned(),
        action,
        subject: subject.to_owned(),
        detail,
    };
    match state.store.send(event).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::error!(%actor, %subject, error = %e, "cannot write the audit log"),
        Err(e) => {
            tracing::error!(%actor, %subject, error = %e, "store unavailable for the audit log")
        }
    }
}

fn check_create(state: &AppState, body: &PodSetCreate) -> Result<(), ApiError> {
    validate::set_name_in("name", &body.name)?;
    validate::alias_in("cluster", &body.cluster)?;
    if !state.clusters.contains(&body.cluster) {
        return Err(ApiError::validation(
            "cluster",
            format!(
                "no cluster named {:?} in the daemon's configuration (GET /api/v1/clusters lists them)",
                body.cluster
            ),
        ));
    }
    validate::dns_label("namespace", &body.namespace)?;
    validate::no_control("selector", &body.selector, false)?;
    if body.selector.trim().is_empty() {
        return Err(ApiError::validation(
            "selector",
            "must not be empty (a set of every pod in the namespace is too easy to make by mistake)",
        ));
    }
    if body.selector.chars().count() > limits::MAX_SELECTOR_LEN {
        return Err(ApiError::validation(
            "selector",
            format!("at most {} characters", limits::MAX_SELECTOR_LEN),
        ));
    }
    if let Some(c) = &body.container {
        validate::dns_label("container", c)?;
    }
    Ok(())
}

/// Create a pod set: the daemon watches the cluster and keeps every Ready pod the selector
/// matches registered as `NAME/POD`.
#[utoipa::path(
    post,
    path = "/api/v1/sets",
    tag = "sets",
    request_body = PodSetCreate,
    responses(
        (status = 201, description = "Created; members arrive as the watch lists Ready pods", body = PodSetInfo, headers(("Location" = String, description = "`/api/v1/sets/{name}` of the new set"))),
        (status = 409, description = "`set_exists`: the name is taken", body = podwrangler::api::Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation`: a field breaks a rule, or `cluster` is not configured", body = podwrangler::api::Problem, content_type = "application/problem+json"),
        (status = 503, description = "`database_unavailable` (retry after `Retry-After`) or `shutting_down`", body = podwrangler::api::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn create_set(
    state: web::Data<AppState>,
    actor: Actor,
    body: ApiJson<PodSetCreate>,
) -> Result<HttpResponse, ApiError> {
    check_running(&state)?;
    let body = body.0;
    check_create(&state, &body)?;
    let row = PodSetRow {
        name: body.name.clone(),
        cluster: body.cluster.clone(),
        namespace: body.namespace.clone(),
        selector: body.selector.trim().to_owned(),
        container: body.container.clone(),
        // Microseconds, as both backends keep them.
        created_at: chrono::DateTime::from_timestamp_micros(chrono::Utc::now().timestamp_micros())
            .unwrap_or_default()
            .naive_utc(),
        actor: actor.0.clone(),
    };
    state
        .store
        .send(InsertSet(row.clone()))
        .await
        .map_err(mailbox)?
        .map_err(|e| match e {
            StoreError::Conflict(_) => ApiError::SetExists(body.name.clone()),
            other => db_err(other),
        })?;
    let set = state.sets.start(state.clone(), row, Default::default());
    audit(
        &state,
        &actor.0,
        AuditAction::SetCreated,
        &body.name,
        format!(
            "cluster {} namespace {} selector {}{}",
            body.cluster,
            body.namespace,
            body.selector,
            body.container
                .as_deref()
                .map(|c| format!(" container {c}"))
                .unwrap_or_default()
        ),
    )
    .await;
    tracing::info!(set = %body.name, cluster = %body.cluster, namespace = %body.namespace, selector = %body.selector, "pod set created");
    Ok(HttpResponse::Created()
        .insert_header((
            actix_web::http::header::LOCATION,
            format!("/api/v1/sets/{}", body.name),
        ))
        .json(set.info()))
}

/// List pod sets with their member counts and how their watches stand.
#[utoipa::path(
    get,
    path = "/api/v1/sets",
    tag = "sets",
    responses(
        (status = 200, description = "Every pod set, by name", body = [PodSetInfo]),
    )
)]
pub async fn list_sets(state: web::Data<AppState>) -> HttpResponse {
    let sets: Vec<PodSetInfo> = state.sets.list().iter().map(|s| s.info()).collect();
    HttpResponse::Ok().json(sets)
}

/// One pod set with its members and their session states.
#[utoipa::path(
    get,
    path = "/api/v1/sets/{name}",
    tag = "sets",
    params(("name" = String, Path, description = "The set's name", max_length = 63, pattern = "^[A-Za-z0-9_][A-Za-z0-9._-]*$")),
    responses(
        (status = 200, description = "The set and its members", body = PodSetDetail),
        (status = 404, description = "`set_not_found`", body = podwrangler::api::Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation`: not a set name", body = podwrangler::api::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get_set(
    state: web::Data<AppState>,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let name = name.into_inner();
    validate::set_name_in("name", &name)?;
    let set = state
        .sets
        .get(&name)
        .ok_or_else(|| ApiError::SetNotFound(name.clone()))?;
    let pods = crate::sets::members_of(&state, &set).await?;
    Ok(HttpResponse::Ok().json(PodSetDetail {
        set: set.info(),
        pods,
    }))
}

/// Delete a pod set: its watch stops and its members are retired (their history stays).
#[utoipa::path(
    delete,
    path = "/api/v1/sets/{name}",
    tag = "sets",
    params(("name" = String, Path, description = "The set's name", max_length = 63, pattern = "^[A-Za-z0-9_][A-Za-z0-9._-]*$")),
    responses(
        (status = 204, description = "Deleted; its members are retired"),
        (status = 404, description = "`set_not_found`", body = podwrangler::api::Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation`: not a set name", body = podwrangler::api::Problem, content_type = "application/problem+json"),
        (status = 503, description = "`database_unavailable`: retry after `Retry-After`", body = podwrangler::api::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn delete_set(
    state: web::Data<AppState>,
    name: web::Path<String>,
    actor: Actor,
) -> Result<HttpResponse, ApiError> {
    let name = name.into_inner();
    validate::set_name_in("name", &name)?;
    if state.sets.get(&name).is_none() {
        return Err(ApiError::SetNotFound(name));
    }
    state
        .store
        .send(DeleteSet(name.clone()))
        .await
        .map_err(mailbox)?
        .map_err(|e| match e {
            StoreError::NotFound => ApiError::SetNotFound(name.clone()),
            other => db_err(other),
        })?;
    if let Some(set) = state.sets.remove(&name) {
        crate::sets::retire_members(&state, &set).await;
    }
    audit(
        &state,
        &actor.0,
        AuditAction::SetDeleted,
        &name,
        String::new(),
    )
    .await;
    tracing::info!(set = %name, "pod set deleted");
    Ok(HttpResponse::NoContent().finish())
}

/// `/api/v1/pods/{set}/{pod}`: a set member by its set and pod name.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct MemberPath {
    /// The pod set
    #[param(max_length = 63, pattern = "^[A-Za-z0-9_][A-Za-z0-9._-]*$")]
    set: String,
    /// The Kubernetes pod's name
    #[param(max_length = 64, pattern = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")]
    pod: String,
}

/// The member's alias, `SET/POD`, as the `/api/v1/pods/{alias}` handlers take it.
fn member(path: web::Path<MemberPath>) -> web::Path<String> {
    let MemberPath { set, pod } = path.into_inner();
    web::Path::from(format!("{set}/{pod}"))
}

/// One pod set member with its live state (as `/api/v1/pods/{alias}` with alias `SET/POD`).
#[utoipa::path(
    get,
    path = "/api/v1/pods/{set}/{pod}",
    tag = "pods",
    params(MemberPath),
    responses(
        (status = 200, description = "The pod", body = podwrangler::api::PodInfo),
        (status = 404, description = "`pod_not_found`", body = podwrangler::api::Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation`: not a set member's alias", body = podwrangler::api::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get_member(
    state: web::Data<AppState>,
    path: web::Path<MemberPath>,
) -> Result<HttpResponse, ApiError> {
    super::pods::get_pod(state, member(path)).await
}

/// Change a set member's connection details or tags (as `PATCH /api/v1/pods/{alias}`).
#[utoipa::path(
    patch,
    path = "/api/v1/pods/{set}/{pod}",
    tag = "pods",
    params(MemberPath),
    request_body = PodUpdate,
    responses(
        (status = 200, description = "Updated", body = podwrangler::api::PodInfo),
        (status = 404, description = "`pod_not_found`", body = podwrangler::api::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid field", body = podwrangler::api::Problem, content_type = "application/problem+json"),
        (status = 503, description = "`database_unavailable` or `shutting_down`", body = podwrangler::api::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn update_member(
    state: web::Data<AppState>,
    path: web::Path<MemberPath>,
    actor: Actor,
    body: ApiJson<PodUpdate>,
) -> Result<HttpResponse, ApiError> {
    super::pods::update_pod(state, member(path), actor, body).await
}

/// Remove a set member now (the set adds it again if the pod changes and is still Ready).
#[utoipa::path(
    delete,
    path = "/api/v1/pods/{set}/{pod}",
    tag = "pods",
    params(MemberPath),
    responses(
        (status = 204, description = "Removed"),
        (status = 404, description = "`pod_not_found`", body = podwrangler::api::Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation`: not a set member's alias", body = podwrangler::api::Problem, content_type = "application/problem+json"),
        (status = 503, description = "`database_unavailable`", body = podwrangler::api::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn delete_member(
    state: web::Data<AppState>,
    path: web::Path<MemberPath>,
    actor: Actor,
) -> Result<HttpResponse, ApiError> {
    super::pods::delete_pod(state, member(path), actor).await
}

/// Run a command in a set member's shell (as `POST /api/v1/pods/{alias}/exec`).
#[utoipa::path(
    post,
    path = "/api/v1/pods/{set}/{pod}/exec",
    tag = "exec",
    params(MemberPath),
    request_body = ExecRequest,
    responses(
        (status = 200, description = "Finished; with `Accept: application/x-ndjson`, one ExecEvent per line", content((podwrangler::api::CommandRecord = "application/json"), (podwrangler::api::ExecEvent = "application/x-ndjson"))),
        (status = 404, description = "`pod_not_found` (not a member, or retired)", body = podwrangler::api::Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation`, or `command_failed` with `check`", body = podwrangler::api::Problem, content_type = "application/problem+json"),
        (status = 429, description = "`pod_busy`", body = podwrangler::api::Problem, content_type = "application/problem+json"),
        (status = 502, description = "`pod_connection`", body = podwrangler::api::Problem, content_type = "application/problem+json"),
        (status = 503, description = "`database_unavailable` or `shutting_down`", body = podwrangler::api::Problem, content_type = "application/problem+json"),
        (status = 504, description = "`command_timeout`", body = podwrangler::api::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn exec_member(
    state: web::Data<AppState>,
    http: HttpRequest,
    path: web::Path<MemberPath>,
    actor: Actor,
    body: ApiJson<ExecRequest>,
) -> Result<HttpResponse, ApiError> {
    super::exec::exec_pod(state, http, member(path), actor, body).await
}
