//! Pod CRUD and import: requests become endpoints, rows in the store and pod actors.

use std::collections::HashMap;

use actix_web::{HttpResponse, web};
use podwrangler::api::{
    AuditAction, ImportRequest, ImportResponse, PodCreate, PodInfo, PodState, PodUpdate,
};
use podwrangler::provider::Provider as _;
use podwrangler::{
    KubernetesTarget, PodEndpoint, PodError, PodIdentity, ProviderConfig, ProviderKind, Secret,
    redact_url,
};

use super::body::ApiJson;
use super::error::ApiError;
use super::{check_running, db_err, mailbox, validate};
use crate::actors::registry::{StartPod, States, StopPod};
use crate::auth::Actor;
use crate::clusters::ClusterSet;
use crate::server::AppState;
use crate::store::{
    DeletePod, GetPod, InsertPod, ListPods, ListPodsByTag, NewAuditEvent, NewPod, PodChanges,
    PodRow, StoreError, UpdatePod,
};

/// The actor of changes the daemon's own configuration makes (config pods, SIGHUP).
pub const CONFIG_ACTOR: &str = "config";

/// Appends to the audit log. The change already happened, so a failure is logged, not returned.
async fn audit(state: &AppState, actor: &str, action: AuditAction, subject: &str, detail: String) {
    let event = NewAuditEvent {
        actor: actor.to_owned(),
        action,
        subject: subject.to_owned(),
        detail,
    };
    match state.store.send(event).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            tracing::error!(%actor, action = action.as_str(), %subject, error = %e, "cannot write the audit log")
        }
        Err(e) => {
            tracing::error!(%actor, action = action.as_str(), %subject, error = %e, "store unavailable for the audit log")
        }
    }
}

/// The connection fields `PodCreate` and `PodUpdate` share.
#[derive(Default)]
struct Fields<'a> {
    token: Option<&'a Secret>,
    pod_name: Option<&'a str>,
    namespace: Option<&'a str>,
    container: Option<&'a str>,
    service_id: Option<&'a str>,
    server: Option<&'a str>,
    cluster: Option<&'a str>,
    certificate_authority: Option<&'a str>,
    client_certificate: Option<&'a str>,
    client_key: Option<&'a Secret>,
    insecure_skip_tls_verify: Option<bool>,
    cols: Option<u16>,
}

impl<'a> Fields<'a> {
    fn of_create(b: &'a PodCreate) -> Self {
        Fields {
            token: b.token.as_ref(),
            pod_name: b.pod_name.as_deref(),
            namespace: b.namespace.as_deref(),
            container: b.container.as_deref(),
            service_id: b.service_id.as_deref(),
            server: b.server.as_deref(),
            cluster: b.cluster.as_deref(),
            certificate_authority: b.certificate_authority.as_deref(),
            client_certificate: b.client_certificate.as_deref(),
            client_key: b.client_key.as_ref(),
            insecure_skip_tls_verify: b.insecure_skip_tls_verify,
            cols: b.cols,
        }
    }

    fn of_update(b: &'a PodUpdate) -> Self {
        Fields {
            token: b.token.as_ref(),
            pod_name: b.pod_name.as_deref(),
            namespace: b.namespace.as_deref(),
            container: b.container.as_deref(),
            service_id: b.service_id.as_deref(),
            server: b.server.as_deref(),
            cluster: b.cluster.as_deref(),
            certificate_authority: b.certificate_authority.as_deref(),
            client_certificate: b.client_certificate.as_deref(),
            client_key: b.client_key.as_ref(),
            insecure_skip_tls_verify: b.insecure_skip_tls_verify,
            cols: b.cols,
        }
    }
}

fn url_schemes(kind: ProviderKind) -> &'static [&'static str] {
    match kind {
        ProviderKind::PlainTty => &["ws", "wss"],
        ProviderKind::Kubernetes => &["http", "https", "ws", "wss"],
    }
}

fn non_empty<'a>(field: &str, v: Option<&'a str>) -> Result<Option<&'a str>, ApiError> {
    match v {
        Some(s) if s.trim().is_empty() => Err(ApiError::validation(field, "must not be empty")),
        other => Ok(other),
    }
}

/// Parses a provider URL into an endpoint; errors name the `url` field.
fn endpoint_from_url(kind: ProviderKind, url: &str) -> Result<PodEndpoint, ApiError> {
    validate::url("url", url, url_schemes(kind))?;
    podwrangler::provider::endpoint_from_url(kind, url).map_err(|e| match e {
        PodError::UrlParse { reason, .. } => ApiError::validation("url", reason),
        other => ApiError::validation("url", other.to_string()),
    })
}

/// A fresh endpoint from fields alone (no URL).
fn endpoint_from_fields(kind: ProviderKind, f: &Fields<'_>) -> Result<PodEndpoint, ApiError> {
    let pod_name = non_empty("pod_name", f.pod_name)?
        .ok_or_else(|| ApiError::validation("pod_name", "is required when no url is given"))?;
    let identity = PodIdentity::new(pod_name);
    let provider = match kind {
        ProviderKind::PlainTty => {
            let server = non_empty("server", f.server)?.ok_or_else(|| {
                ApiError::validation(
                    "server",
                    "is required for plaintty when no url is given (ws://host[:port] or wss://...)",
                )
            })?;
            non_empty("service_id", f.service_id)?.ok_or_else(|| {
                ApiError::validation(
                    "service_id",
                    "is required for plaintty when no url is given",
                )
            })?;
            ProviderConfig::PlainTty {
                base_url: server.trim_end_matches('/').to_owned(),
            }
        }
        ProviderKind::Kubernetes => ProviderConfig::Kubernetes(KubernetesTarget::default()),
    };
    Ok(PodEndpoint {
        identity,
        provider,
        token: None,
        client_key: None,
    })
}

/// Checks the form of every field the caller gave, before anything is built from them: no
/// control characters anywhere, Kubernetes names where they end up in URLs, alias-like names,
/// the terminal width range. Errors name the field.
fn check_fields(url: Option<&str>, f: &Fields<'_>) -> Result<(), ApiError> {
    if let Some(url) = url {
        validate::text("url", url)?;
    }
    if let Some(v) = f.pod_name {
        validate::dns_subdomain("pod_name", v)?;
    }
    if let Some(v) = f.namespace {
        validate::dns_label("namespace", v)?;
    }
    if let Some(v) = f.container {
        validate::dns_label("container", v)?;
    }
    if let Some(v) = f.service_id {
        validate::alias_in("service_id", v)?;
    }
    if let Some(v) = f.server {
        validate::text("server", v)?;
    }
    if let Some(v) = f.cluster {
        validate::alias_in("cluster", v)?;
    }
    if let Some(token) = f.token {
        validate::text("token", token.expose())?;
        if token.expose().trim().is_empty() {
            return Err(ApiError::validation("token", "must not be empty"));
        }
    }
    for (field, value) in [
        ("certificate_authority", f.certificate_authority),
        ("client_certificate", f.client_certificate),
        ("client_key", f.client_key.map(Secret::expose)),
    ] {
        if let Some(v) = value {
            validate::no_control(field, v, true)?;
        }
    }
    if let Some(cols) = f.cols
        && !(validate::MIN_COLS..=validate::MAX_COLS).contains(&cols)
    {
        return Err(ApiError::validation(
            "cols",
            format!(
                "{cols} is outside {}..={}",
                validate::MIN_COLS,
                validate::MAX_COLS
            ),
        ));
    }
    Ok(())
}

/// Checks what a URL brought into the identity (pod name, namespace, container, PlainTTY
/// service id, width): the same rules as the fields, blaming `url` for what the caller did not
/// send as a field. Parts equal to `before` (the stored identity) are not checked again.
fn check_identity(
    ep: &PodEndpoint,
    f: &Fields<'_>,
    before: Option<&PodIdentity>,
) -> Result<(), ApiError> {
    let id = &ep.identity;
    let blame = |given: bool, field: &'static str| if given { field } else { "url" };
    let changed = |now: &Option<String>, old: Option<&Option<String>>| old != Some(now);
    if before.is_none_or(|b| b.pod_name != id.pod_name) {
        validate::dns_subdomain(blame(f.pod_name.is_some(), "pod_name"), &id.pod_name)?;
    }
    if changed(&id.namespace, before.map(|b| &b.namespace))
        && let Some(ns) = &id.namespace
    {
        validate::dns_label(blame(f.namespace.is_some(), "namespace"), ns)?;
    }
    if changed(&id.container, before.map(|b| &b.container))
        && let Some(c) = &id.container
    {
        validate::dns_label(blame(f.container.is_some(), "container"), c)?;
    }
    if let ProviderConfig::PlainTty { .. } = ep.provider
        && changed(&id.cluster, before.map(|b| &b.cluster))
        && let Some(service) = &id.cluster
    {
        validate::alias_in(blame(f.service_id.is_some(), "service_id"), service)?;
    }
    if before.is_none_or(|b| b.cols != id.cols)
        && !(validate::MIN_COLS..=validate::MAX_COLS).contains(&id.cols)
    {
        return Err(ApiError::validation(
            blame(f.cols.is_some(), "cols"),
            format!(
                "{} is outside {}..={}",
                id.cols,
                validate::MIN_COLS,
                validate::MAX_COLS
            ),
        ));
    }
    Ok(())
}

/// Applies explicit fields over an endpoint (they win over what a URL said).
fn apply_fields(ep: &mut PodEndpoint, f: &Fields<'_>) -> Result<(), ApiError> {
    if let Some(name) = non_empty("pod_name", f.pod_name)? {
        let keep = ep.identity.clone();
        ep.identity = PodIdentity::new(name);
        ep.identity.cluster = keep.cluster;
        ep.identity.namespace = keep.namespace;
        ep.identity.cols = keep.cols;
        ep.identity.container = keep.container;
    }
    if let Some(ns) = non_empty("namespace", f.namespace)? {
        ep.identity.namespace = Some(ns.to_owned());
    }
    if let Some(c) = non_empty("container", f.container)? {
        ep.identity.container = Some(c.to_owned());
    }
    if let Some(cols) = f.cols {
        ep.identity.cols = cols;
    }
    if let Some(token) = f.token {
        if token.expose().trim().is_empty() {
            return Err(ApiError::validation("token", "must not be empty"));
        }
        ep.token = Some(token.clone());
    }
    match &mut ep.provider {
        ProviderConfig::PlainTty { base_url } => {
            if let Some(id) = non_empty("service_id", f.service_id)? {
                ep.identity.cluster = Some(id.to_owned());
            }
            if let Some(server) = non_empty("server", f.server)? {
                validate::url("server", server, &["ws", "wss"])?;
                *base_url = server.trim_end_matches('/').to_owned();
            }
            for (field, set) in [
                ("cluster", f.cluster.is_some()),
                ("certificate_authority", f.certificate_authority.is_some()),
                ("client_certificate", f.client_certificate.is_some()),
                ("client_key", f.client_key.is_some()),
                (
                    "insecure_skip_tls_verify",
                    f.insecure_skip_tls_verify.is_some(),
                ),
            ] {
                if set {
                    return Err(ApiError::validation(
                        field,
                        "applies to the kubernetes provider only",
                    ));
                }
            }
        }
        ProviderConfig::Kubernetes(target) => {
            if let Some(cluster) = non_empty("cluster", f.cluster)? {
                validate::alias_in("cluster", cluster)?;
                for (field, given) in [
                    ("server", f.server.is_some()),
                    ("token", f.token.is_some()),
                    ("certificate_authority", f.certificate_authority.is_some()),
                    ("client_certificate", f.client_certificate.is_some()),
                    ("client_key", f.client_key.is_some()),
                ] {
                    if given {
                        return Err(ApiError::validation(
                            field,
                            "a configured cluster brings its own server and credentials; send cluster alone",
                        ));
                    }
                }
                // A cluster brings its own server and credentials.
                *target = KubernetesTarget {
                    cluster: Some(cluster.to_owned()),
                    shell: std::mem::take(&mut target.shell),
                    ..Default::default()
                };
                ep.token = None;
                ep.client_key = None;
            }
            if let Some(server) = non_empty("server", f.server)? {
                validate::url("server", server, &["http", "https"])?;
                target.server = Some(server.trim_end_matches('/').to_owned());
                target.cluster = None;
            }
            if let Some(pem) = non_empty("certificate_authority", f.certificate_authority)? {
                podwrangler::kubeconfig::check_certificates("certificate_authority", pem)
                    .map_err(pod_field_error)?;
                target.certificate_authority = Some(pem.to_owned());
            }
            if let Some(pem) = non_empty("client_certificate", f.client_certificate)? {
                podwrangler::kubeconfig::check_certificates("client_certificate", pem)
                    .map_err(pod_field_error)?;
                target.client_certificate = Some(pem.to_owned());
            }
            if let Some(key) = f.client_key {
                podwrangler::kubeconfig::check_private_key("client_key", key)
                    .map_err(pod_field_error)?;
                ep.client_key = Some(key.clone());
            }
            if let Some(v) = f.insecure_skip_tls_verify {
                target.insecure_skip_tls_verify = v;
            }
            if f.service_id.is_some() {
                return Err(ApiError::validation(
                    "service_id",
                    "applies to the plaintty provider only",
                ));
            }
            if ep.identity.namespace.is_none() {
                ep.identity.namespace = Some("default".into());
            }
        }
    }
    Ok(())
}

/// A library validation error as the API's, naming the same field.
fn pod_field_error(e: PodError) -> ApiError {
    match e {
        PodError::ConfigValidation { field, reason } => ApiError::validation(field, reason),
        other => ApiError::validation("body", other.to_string()),
    }
}

/// Checks that an endpoint's credentials can be used without lending the daemon's own: a
/// Kubernetes pod names a configured cluster, or a server with the caller's token or client
/// certificate; no credential goes in clear text to a host that is not loopback.
pub fn check_credentials(ep: &PodEndpoint, clusters: &ClusterSet) -> Result<(), ApiError> {
    match &ep.provider {
        ProviderConfig::PlainTty { base_url } => {
            if ep.token.is_some()
                && let Some(why) = podwrangler::cleartext_refusal(base_url)
            {
                return Err(ApiError::validation("url", why));
            }
        }
        ProviderConfig::Kubernetes(t) => {
            if let Some(name) = &t.cluster {
                if !clusters.contains(name) {
                    return Err(ApiError::validation(
                        "cluster",
                        format!(
                            "no cluster named {name:?} in the daemon's configuration (GET /api/v1/clusters lists them)"
                        ),
                    ));
                }
                if ep.token.is_some() || ep.client_key.is_some() || t.server.is_some() {
                    return Err(ApiError::validation(
                        "cluster",
                        "a configured cluster brings its own server and credentials; send cluster alone",
                    ));
                }
                return Ok(());
            }
            let server = t.server.as_deref().ok_or_else(|| {
                ApiError::validation(
                    "server",
                    "is required: give a server with your credentials, or a configured cluster",
                )
            })?;
            if t.client_certificate.is_some() != ep.client_key.is_some() {
                return Err(ApiError::validation(
                    "client_key",
                    "a client certificate needs its key, and a key its certificate",
                ));
            }
            if ep.token.is_none() && ep.client_key.is_none() {
                return Err(ApiError::validation(
                    "token",
                    "a server needs your credentials (token, or client_certificate and client_key): the daemon never lends its own; or name a configured cluster instead",
                ));
            }
            if let Some(why) = podwrangler::cleartext_refusal(server) {
                return Err(ApiError::validation("server", why));
            }
        }
    }
    Ok(())
}

/// The endpoint a `PodCreate` describes.
pub fn endpoint_for_create(body: &PodCreate) -> Result<PodEndpoint, ApiError> {
    let fields = Fields::of_create(body);
    check_fields(body.url.as_deref(), &fields)?;
    let mut ep = match body.url.as_deref() {
        Some(url) => endpoint_from_url(body.provider, url)?,
        None => endpoint_from_fields(body.provider, &fields)?,
    };
    apply_fields(&mut ep, &fields)?;
    check_identity(&ep, &fields, None)?;
    Ok(ep)
}

/// Where a pod is reached, without credentials.
pub fn target_of(ep: &PodEndpoint) -> String {
    let id = &ep.identity;
    let shown = match &ep.provider {
        ProviderConfig::PlainTty { base_url } => format!(
            "{base_url}/exec/{}/?cols={}&pod={}",
            id.cluster.as_deref().unwrap_or(""),
            id.cols,
            id.pod_name
        ),
        ProviderConfig::Kubernetes(t) => {
            let server = match (&t.server, &t.cluster) {
                (Some(server), _) => server.clone(),
                (None, Some(cluster)) => format!("cluster:{cluster}"),
                (None, None) => "(no server)".into(),
            };
            let mut s = format!(
                "{server}/api/v1/namespaces/{}/pods/{}/exec",
                id.namespace.as_deref().unwrap_or("default"),
                id.pod_name
            );
            if let Some(c) = &id.container {
                s.push_str(&format!("?container={c}"));
            }
            s
        }
    };
    redact_url(&shown)
}

/// A row as the API shows it (no token).
pub fn pod_info(row: &PodRow, state: PodState) -> PodInfo {
    PodInfo {
        alias: row.alias.clone(),
        provider: row.provider,
        identity: row.identity.clone(),
        target: target_of(&row.endpoint()),
        has_token: row.token.is_some(),
        tags: row.tags.clone(),
        state,
        created_at: row.created_at,
        updated_at: row.updated_at,
    }
}

fn dedup_tags(tags: &[String]) -> Result<Vec<String>, ApiError> {
    validate::tags(tags)?;
    let mut t = tags.to_vec();
    t.sort();
    t.dedup();
    Ok(t)
}

/// Stores a pod and starts its actor (no audit: callers record why).
pub(crate) async fn insert(state: &AppState, pod: NewPod) -> Result<PodInfo, ApiError> {
    let alias = pod.alias.clone();
    let row = state
        .store
        .send(InsertPod(pod))
        .await
        .map_err(mailbox)?
        .map_err(|e| match e {
            StoreError::Conflict(_) => ApiError::PodExists(alias.clone()),
            other => db_err(other),
        })?;
    let st = state
        .registry
        .send(StartPod {
            alias: row.alias.clone(),
            endpoint: row.endpoint(),
        })
        .await
        .map_err(mailbox)?;
    tracing::info!(alias = %row.alias, target = %target_of(&row.endpoint()), "pod registered");
    Ok(pod_info(&row, st))
}

/// Registers one pod from a `PodCreate` (API and config file) on behalf of `actor`.
pub async fn register(
    state: &AppState,
    body: &PodCreate,
    actor: &str,
) -> Result<PodInfo, ApiError> {
    validate::registered_alias(&body.alias)?;
    let tags = dedup_tags(&body.tags)?;
    let endpoint = endpoint_for_create(body)?;
    check_credentials(&endpoint, &state.clusters)?;
    let info = insert(
        state,
        NewPod {
            alias: body.alias.clone(),
            provider: body.provider,
            identity: endpoint.identity,
            config: endpoint.provider,
            token: endpoint.token,
            client_key: endpoint.client_key,
            tags,
        },
    )
    .await?;
    audit(
        state,
        actor,
        AuditAction::PodRegistered,
        &info.alias,
        info.target.clone(),
    )
    .await;
    Ok(info)
}

/// Starts an actor for every pod in the store (daemon start). Answers how many.
pub async fn load_from_store(state: &AppState) -> Result<usize, ApiError> {
    let rows = state
        .store
        .send(ListPods)
        .await
        .map_err(mailbox)?
        .map_err(db_err)?;
    let n = rows.len();
    for row in rows {
        state
            .registry
            .send(StartPod {
                alias: row.alias.clone(),
                endpoint: row.endpoint(),
            })
            .await
            .map_err(mailbox)?;
    }
    Ok(n)
}

/// Registers the config file's pods, or updates them where the stored details differ.
/// Answers how many were registered or changed; errors are logged, not fatal.
pub async fn apply_config_pods(state: &AppState, pods: &[PodCreate]) -> usize {
    let mut changed = 0;
    for pod in pods {
        let result = async {
            let endpoint = endpoint_for_create(pod)?;
            check_credentials(&endpoint, &state.clusters)?;
            let tags = dedup_tags(&pod.tags)?;
            let existing = state
                .store
                .send(GetPod {
                    alias: pod.alias.clone(),
                })
                .await
                .map_err(mailbox)?
                .map_err(db_err)?;
            match existing {
                None => register(state, pod, CONFIG_ACTOR).await.map(|_| true),
                Some(row) if row.endpoint() == endpoint && row.tags == tags => Ok(false),
                Some(row) => {
                    let reconnect = row.endpoint() != endpoint;
                    let updated = state
                        .store
                        .send(UpdatePod {
                            alias: pod.alias.clone(),
                            changes: PodChanges {
                                provider: Some(pod.provider),
                                identity: Some(endpoint.identity),
                                config: Some(endpoint.provider),
                                token: Some(endpoint.token),
                                client_key: Some(endpoint.client_key),
                                tags: Some(tags),
                            },
                        })
                        .await
                        .map_err(mailbox)?
                        .map_err(db_err)?;
                    audit(
                        state,
                        CONFIG_ACTOR,
                        AuditAction::PodUpdated,
                        &updated.alias,
                        target_of(&updated.endpoint()),
                    )
                    .await;
                    if reconnect {
                        state
                            .registry
                            .send(StartPod {
                                alias: updated.alias.clone(),
                                endpoint: updated.endpoint(),
                            })
                            .await
                            .map_err(mailbox)?;
                    }
                    Ok(true)
                }
            }
        }
        .await;
        match result {
            Ok(true) => changed += 1,
            Ok(false) => {}
            Err(e) => tracing::error!(alias = %pod.alias, error = %e, "config pod not applied"),
        }
    }
    changed
}

/// Query of `GET /api/v1/pods/`.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct PodListQuery {
    /// Only pods with this tag.
    #[param(schema_with = tag_param)]
    pub tag: Option<String>,
}

fn tag_param() -> utoipa::openapi::schema::ObjectBuilder {
    podwrangler::api::schema::tag_opt().schema_type(utoipa::openapi::schema::Type::String)
}

/// List registered pods with their live state.
#[utoipa::path(
    get,
    path = "/api/v1/pods/",
    tag = "pods",
    params(PodListQuery),
    responses(
        (status = 200, description = "Registered pods, by alias", body = [PodInfo]),
        (status = 400, description = "Bad query", body = podwrangler::api::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn list_pods(
    state: web::Data<AppState>,
    query: web::Query<PodListQuery>,
) -> Result<HttpResponse, ApiError> {
    let rows = match &query.tag {
        Some(tag) => {
            validate::alias_in("tag", tag)?;
            state.store.send(ListPodsByTag { tag: tag.clone() }).await
        }
        None => state.store.send(ListPods).await,
    }
    .map_err(mailbox)?
    .map_err(db_err)?;
    let states: HashMap<String, PodState> = state.registry.send(States).await.map_err(mailbox)?;
    let pods: Vec<PodInfo> = rows
        .iter()
        .map(|r| {
            let st = states.get(&r.alias).cloned().unwrap_or(PodState::Idle);
            pod_info(r, st)
        })
        .collect();
    Ok(HttpResponse::Ok().json(pods))
}

/// Register a pod from a provider URL or from fields.
#[utoipa::path(
    post,
    path = "/api/v1/pods/",
    tag = "pods",
    request_body = PodCreate,
    responses(
        (status = 201, description = "Registered", body = PodInfo, headers(("Location" = String, description = "`/api/v1/pods/{alias}` of the new pod"))),
        (status = 400, description = "Malformed body", body = podwrangler::api::Problem, content_type = "application/problem+json"),
        (status = 409, description = "Alias taken (`pod_exists`)", body = podwrangler::api::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid field (`validation`)", body = podwrangler::api::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn create_pod(
    state: web::Data<AppState>,
    actor: Actor,
    body: ApiJson<PodCreate>,
) -> Result<HttpResponse, ApiError> {
    check_running(&state)?;
    let info = register(&state, &body.0, &actor.0).await?;
    Ok(HttpResponse::Created()
        .insert_header((
            actix_web::http::header::LOCATION,
            format!("/api/v1/pods/{}", info.alias),
        ))
        .json(info))
}

async fn get_row(state: &AppState, alias: &str) -> Result<PodRow, ApiError> {
    state
        .store
        .send(GetPod {
            alias: alias.to_owned(),
        })
        .await
        .map_err(mailbox)?
        .map_err(db_err)?
        .ok_or_else(|| ApiError::PodNotFound(alias.to_owned()))
}

async fn state_of(state: &AppState, alias: &str) -> Result<PodState, ApiError> {
    let states = state.registry.send(States).await.map_err(mailbox)?;
    Ok(states.get(alias).cloned().unwrap_or(PodState::Idle))
}

/// One pod with its live state.
#[utoipa::path(
    get,
    path = "/api/v1/pods/{alias}",
    tag = "pods",
    params(("alias" = String, Path, description = "The pod's alias")),
    responses(
        (status = 200, description = "The pod", body = PodInfo),
        (status = 404, description = "`pod_not_found`", body = podwrangler::api::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get_pod(
    state: web::Data<AppState>,
    alias: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    validate::alias(&alias)?;
    let row = get_row(&state, &alias).await?;
    let st = state_of(&state, &alias).await?;
    Ok(HttpResponse::Ok().json(pod_info(&row, st)))
}

/// Change a pod's connection details or tags; a changed connection reconnects.
#[utoipa::path(
    patch,
    path = "/api/v1/pods/{alias}",
    tag = "pods",
    params(("alias" = String, Path, description = "The pod's alias")),
    request_body = PodUpdate,
    responses(
        (status = 200, description = "Updated", body = PodInfo),
        (status = 400, description = "Malformed body", body = podwrangler::api::Problem, content_type = "application/problem+json"),
        (status = 404, description = "`pod_not_found`", body = podwrangler::api::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid field", body = podwrangler::api::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn update_pod(
    state: web::Data<AppState>,
    alias: web::Path<String>,
    actor: Actor,
    body: ApiJson<PodUpdate>,
) -> Result<HttpResponse, ApiError> {
    check_running(&state)?;
    validate::alias(&alias)?;
    let body = body.0;
    let row = get_row(&state, &alias).await?;
    let kind = body.provider.unwrap_or(row.provider);
    let fields = Fields::of_update(&body);
    check_fields(body.url.as_deref(), &fields)?;
    let mut endpoint = match body.url.as_deref() {
        Some(url) => {
            let mut ep = endpoint_from_url(kind, url)?;
            if ep.token.is_none() && kind == row.provider {
                ep.token = row.token.clone();
                ep.client_key = row.client_key.clone();
            }
            ep
        }
        None if kind != row.provider => {
            return Err(ApiError::validation(
                "url",
                "is required when the provider changes",
            ));
        }
        None => row.endpoint(),
    };
    apply_fields(&mut endpoint, &fields)?;
    check_identity(&endpoint, &fields, Some(&row.identity))?;
    check_credentials(&endpoint, &state.clusters)?;
    let tags = body.tags.as_deref().map(dedup_tags).transpose()?;
    let reconnect = endpoint != row.endpoint();
    let updated = state
        .store
        .send(UpdatePod {
            alias: row.alias.clone(),
            changes: PodChanges {
                provider: Some(kind),
                identity: Some(endpoint.identity.clone()),
                config: Some(endpoint.provider.clone()),
                token: Some(endpoint.token.clone()),
                client_key: Some(endpoint.client_key.clone()),
                tags,
            },
        })
        .await
        .map_err(mailbox)?
        .map_err(|e| match e {
            StoreError::NotFound => ApiError::PodNotFound(row.alias.clone()),
            other => db_err(other),
        })?;
    let changed: Vec<&str> = [
        ("provider", body.provider.is_some()),
        ("url", body.url.is_some()),
        ("token", body.token.is_some()),
        ("pod_name", body.pod_name.is_some()),
        ("namespace", body.namespace.is_some()),
        ("container", body.container.is_some()),
        ("service_id", body.service_id.is_some()),
        ("server", body.server.is_some()),
        ("cluster", body.cluster.is_some()),
        (
            "certificate_authority",
            body.certificate_authority.is_some(),
        ),
        ("client_certificate", body.client_certificate.is_some()),
        ("client_key", body.client_key.is_some()),
        (
            "insecure_skip_tls_verify",
            body.insecure_skip_tls_verify.is_some(),
        ),
        ("cols", body.cols.is_some()),
        ("tags", body.tags.is_some()),
    ]
    .into_iter()
    .filter_map(|(name, set)| set.then_some(name))
    .collect();
    audit(
        &state,
        &actor.0,
        AuditAction::PodUpdated,
        &updated.alias,
        format!("changed {}; {}", changed.join(", "), target_of(&endpoint)),
    )
    .await;
    let st = if reconnect {
        tracing::info!(alias = %updated.alias, target = %target_of(&endpoint), "pod updated; reconnecting");
        state
            .registry
            .send(StartPod {
                alias: updated.alias.clone(),
                endpoint: updated.endpoint(),
            })
            .await
            .map_err(mailbox)?
    } else {
        state_of(&state, &updated.alias).await?
    };
    Ok(HttpResponse::Ok().json(pod_info(&updated, st)))
}

/// Remove a pod: its session closes; its history stays.
#[utoipa::path(
    delete,
    path = "/api/v1/pods/{alias}",
    tag = "pods",
    params(("alias" = String, Path, description = "The pod's alias")),
    responses(
        (status = 204, description = "Removed"),
        (status = 404, description = "`pod_not_found`", body = podwrangler::api::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn delete_pod(
    state: web::Data<AppState>,
    alias: web::Path<String>,
    actor: Actor,
) -> Result<HttpResponse, ApiError> {
    let alias = alias.into_inner();
    validate::alias(&alias)?;
    state
        .store
        .send(DeletePod {
            alias: alias.clone(),
        })
        .await
        .map_err(mailbox)?
        .map_err(|e| match e {
            StoreError::NotFound => ApiError::PodNotFound(alias.clone()),
            other => db_err(other),
        })?;
    state
        .registry
        .send(StopPod {
            alias: alias.clone(),
        })
        .await
        .map_err(mailbox)?;
    audit(
        &state,
        &actor.0,
        AuditAction::PodRemoved,
        &alias,
        String::new(),
    )
    .await;
    tracing::info!(%alias, "pod removed");
    Ok(HttpResponse::NoContent().finish())
}

/// List pods through the Kubernetes API and register each as a Kubernetes pod.
#[utoipa::path(
    post,
    path = "/api/v1/pods/import",
    tag = "pods",
    request_body = ImportRequest,
    responses(
        (status = 200, description = "Registered and skipped aliases", body = ImportResponse),
        (status = 422, description = "Invalid field", body = podwrangler::api::Problem, content_type = "application/problem+json"),
        (status = 502, description = "The Kubernetes API failed (`upstream`)", body = podwrangler::api::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn import_pods(
    state: web::Data<AppState>,
    actor: Actor,
    body: ApiJson<ImportRequest>,
) -> Result<HttpResponse, ApiError> {
    check_running(&state)?;
    let req = body.0;
    if !req.namespace.is_empty() {
        validate::dns_label("namespace", &req.namespace)?;
    }
    if let Some(s) = &req.label_selector {
        validate::no_control("label_selector", s, false)?;
    }
    let tags = dedup_tags(&req.tags)?;
    if let Some(p) = &req.alias_prefix
        && !p.is_empty()
    {
        validate::alias_in("alias_prefix", p)?;
    }
    // The pods share one connection template: a configured cluster, or the caller's server
    // and credentials, checked as a registration would check them.
    let mut template = PodEndpoint {
        identity: PodIdentity::new("import"),
        provider: ProviderConfig::Kubernetes(KubernetesTarget::default()),
        token: None,
        client_key: None,
    };
    let fields = Fields {
        token: req.token.as_ref(),
        server: req.server.as_deref(),
        cluster: req.cluster.as_deref(),
        certificate_authority: req.certificate_authority.as_deref(),
        client_certificate: req.client_certificate.as_deref(),
        client_key: req.client_key.as_ref(),
        insecure_skip_tls_verify: req.insecure_skip_tls_verify,
        ..Default::default()
    };
    check_fields(None, &fields)?;
    apply_fields(&mut template, &fields)?;
    check_credentials(&template, &state.clusters)?;
    let ProviderConfig::Kubernetes(target) = template.provider.clone() else {
        return Err(ApiError::Internal(
            "import template is not Kubernetes".into(),
        ));
    };
    let selector = req.label_selector.as_deref().filter(|s| !s.is_empty());
    let provider = podwrangler::KubernetesProvider::with_clusters(state.clusters.clone());
    let found = provider
        .list_pods(
            &template.provider,
            template.token.as_ref(),
            template.client_key.as_ref(),
            &req.namespace,
            selector,
        )
        .await
        .map_err(|e| ApiError::Upstream(e.to_string()))?;
    let prefix = req.alias_prefix.clone().unwrap_or_default();
    let mut registered = Vec::new();
    let mut skipped = Vec::new();
    for mut identity in found {
        let alias = format!("{prefix}{}", identity.pod_name);
        if validate::alias(&alias).is_err() {
            skipped.push(alias);
            continue;
        }
        if identity.namespace.is_none() && !req.namespace.is_empty() {
            identity.namespace = Some(req.namespace.clone());
        }
        let pod = NewPod {
            alias: alias.clone(),
            provider: ProviderKind::Kubernetes,
            identity,
            config: ProviderConfig::Kubernetes(target.clone()),
            token: template.token.clone(),
            client_key: template.client_key.clone(),
            tags: tags.clone(),
        };
        match insert(&state, pod).await {
            Ok(_) => registered.push(alias),
            Err(ApiError::PodExists(_)) => skipped.push(alias),
            Err(e) => return Err(e),
        }
    }
    audit(
        &state,
        &actor.0,
        AuditAction::PodsImported,
        &req.namespace,
        format!(
            "{} registered ({}), {} skipped; selector {:?}; {}",
            registered.len(),
            registered.join(" "),
            skipped.len(),
            selector.unwrap_or(""),
            target_of(&template)
                .split("/api/v1/")
                .next()
                .unwrap_or_default()
        ),
    )
    .await;
    tracing::info!(
        registered = registered.len(),
        skipped = skipped.len(),
        namespace = %req.namespace,
        actor = %actor.0,
        "pods imported"
    );
    Ok(HttpResponse::Ok().json(ImportResponse {
        registered,
        skipped,
    }))
}

/// The clusters the daemon's configuration names (never their credentials).
#[utoipa::path(
    get,
    path = "/api/v1/clusters",
    tag = "pods",
    responses(
        (status = 200, description = "Configured clusters, by name", body = [podwrangler::api::ClusterInfo]),
    )
)]
pub async fn list_clusters(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(state.clusters.list())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_from_url_and_fields() {
        let body = PodCreate {
            alias: "web".into(),
            provider: ProviderKind::PlainTty,
            url: Some("ws://127.0.0.1:9/exec/sim/?token=tok-1&cols=200&pod=web-5d8f7-00000".into()),
            tags: vec!["a".into()],
            ..Default::default()
        };
        let ep = endpoint_for_create(&body).unwrap();
        assert_eq!(ep.identity.pod_name, "web-5d8f7-00000");
        assert_eq!(ep.token.as_ref().unwrap().expose(), "tok-1");
        let target = target_of(&ep);
        assert!(!target.contains("tok-1"), "{target}");
        assert!(target.contains("pod=web-5d8f7-00000"), "{target}");

        let fields = PodCreate {
            alias: "k".into(),
            provider: ProviderKind::Kubernetes,
            pod_name: Some("api-1-2".into()),
            server: Some("http://127.0.0.1:9".into()),
            token: Some(Secret::new("t")),
            ..Default::default()
        };
        let ep = endpoint_for_create(&fields).unwrap();
        assert_eq!(ep.identity.namespace.as_deref(), Some("default"));
        assert!(
            target_of(&ep).starts_with("http://127.0.0.1:9/api/v1/namespaces/default/pods/api-1-2")
        );
    }

    #[test]
    fn bad_urls_and_fields_name_the_field() {
        let mut body = PodCreate {
            alias: "x".into(),
            provider: ProviderKind::PlainTty,
            url: Some("http://h/exec/1/?pod=p".into()),
            ..Default::default()
        };
        let e = endpoint_for_create(&body).unwrap_err();
        assert!(
            matches!(&e, ApiError::Validation { field, .. } if field == "url"),
            "{e:?}"
        );
        body.url = Some("ws://h/nothing".into());
        assert!(
            matches!(endpoint_for_create(&body).unwrap_err(), ApiError::Validation { field, .. } if field == "url")
        );
        body.url = None;
        assert!(
            matches!(endpoint_for_create(&body).unwrap_err(), ApiError::Validation { field, .. } if field == "pod_name")
        );
    }
}
