//! HTTP front door: accepts TCP (optionally TLS), serves the Kubernetes API subset, the admin
//! endpoints and the WebSocket upgrades for PlainTTY and pod exec.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, Limited, StreamBody};
use hyper::body::Frame;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};

use crate::auth::{self, Peer};
use crate::cluster::{CreateRequest, Event, PodStatus, RolloutRequest, WatchStart};
use crate::k8s;
use crate::selector::Selector;
use crate::session::{self, Protocol, SessionParams};
use crate::shell::StreamSpec;
use crate::state::{FaultRequest, Pod, State};

type Resp = Response<BoxBody<Bytes, Infallible>>;

/// Terminal rows of a PlainTTY window (the URL only carries the width).
const TTY_ROWS: u16 = 50;

/// Serves everything on `listener`; with `admin_only`, just the `/_podsim` endpoints (the plain
/// HTTP admin port that sits beside a TLS listener).
pub async fn serve(
    listener: TcpListener,
    state: Arc<State>,
    tls: Option<TlsAcceptor>,
    admin_only: bool,
) {
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                // Typically EMFILE under load: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let state = state.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            match tls {
                Some(acceptor) => match acceptor.accept(tcp).await {
                    Ok(stream) => {
                        // The verifier has already checked the chain; presence is all that is
                        // left to ask.
                        let verified_client_certificate = stream
                            .get_ref()
                            .1
                            .peer_certificates()
                            .is_some_and(|chain| !chain.is_empty());
                        let tls_peer = Peer {
                            verified_client_certificate,
                        };
                        serve_conn(TokioIo::new(stream), state, tls_peer, admin_only).await
                    }
                    Err(e) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                },
                None => serve_conn(TokioIo::new(tcp), state, Peer::default(), admin_only).await,
            }
        });
    }
}

async fn serve_conn<I>(io: I, state: Arc<State>, peer: Peer, admin_only: bool)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let svc = hyper::service::service_fn(move |req| {
        let state = state.clone();
        async move { Ok::<_, Infallible>(handle(req, state, peer, admin_only).await) }
    });
    if let Err(e) = hyper::server::conn::http1::Builder::new()
        .serve_connection(io, svc)
        .with_upgrades()
        .await
    {
        tracing::debug!(error = %e, "HTTP connection ended with an error");
    }
}

fn json_resp(status: StatusCode, v: &Value) -> Resp {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(v.to_string())).boxed())
        .expect("static response parts are valid")
}

fn k8s_error(code: u16, reason: &str, message: &str) -> Resp {
    json_resp(
        StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        &k8s::status_error(code, reason, message, None),
    )
}

fn query_pairs(req: &Request<Incoming>) -> Vec<(String, String)> {
    req.uri()
        .query()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default()
}

fn query_get<'a>(q: &'a [(String, String)], key: &str) -> Option<&'a str> {
    q.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

fn query_bool(q: &[(String, String)], key: &str) -> bool {
    matches!(query_get(q, key), Some("true" | "1" | "True"))
}

async fn handle(req: Request<Incoming>, state: Arc<State>, peer: Peer, admin_only: bool) -> Resp {
    let path = req.uri().path().to_string();
    tracing::debug!(
        method = %req.method(),
        %path,
        headers = ?auth::redacted_headers(&req),
        client_certificate = peer.verified_client_certificate,
        "request"
    );
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    if segs.first() == Some(&"_podsim") {
        return admin(req, &segs[1..], &state).await;
    }
    if admin_only {
        return json_resp(
            StatusCode::NOT_FOUND,
            &json!({"error": "this port serves only /_podsim"}),
        );
    }
    let plaintty = segs.first() == Some(&"exec");
    // Only PlainTTY URLs carry the token in the query (a browser terminal has nothing else).
    let query = query_pairs(&req);
    let query_token = plaintty.then(|| query_get(&query, "token")).flatten();
    if !auth::authenticated(&req, &state, peer, query_token) {
        return k8s_error(401, "Unauthorized", "Unauthorized");
    }
    if plaintty {
        return plaintty_upgrade(req, &state);
    }
    let method = req.method().clone();
    match (method, segs.as_slice()) {
        (Method::GET, ["version"]) => json_resp(StatusCode::OK, &k8s::version()),
        (Method::GET, ["api"]) => json_resp(StatusCode::OK, &k8s::api_versions(&state.address)),
        (Method::GET, ["apis"]) => json_resp(StatusCode::OK, &k8s::api_group_list()),
        (Method::GET, ["api", "v1"]) => json_resp(StatusCode::OK, &k8s::core_v1_resources()),
        (Method::GET, ["api", "v1", "namespaces"]) => json_resp(
            StatusCode::OK,
            &json!({"kind": "NamespaceList", "apiVersion": "v1", "metadata": {"resourceVersion": "1"},
                    "items": [k8s::namespace_json(&state.namespace, state.started)]}),
        ),
        (Method::GET, ["api", "v1", "namespaces", ns]) => {
            if *ns == state.namespace {
                json_resp(StatusCode::OK, &k8s::namespace_json(ns, state.started))
            } else {
                k8s_error(404, "NotFound", &format!("namespaces \"{ns}\" not found"))
            }
        }
        (Method::GET, ["api", "v1", "pods"]) => list_pods(&req, &state, None),
        (Method::GET, ["api", "v1", "namespaces", ns, "pods"]) => list_pods(&req, &state, Some(ns)),
        (Method::GET, ["api", "v1", "namespaces", ns, "pods", name]) => {
            match find_pod(&state, ns, name) {
                Some(pod) => json_resp(StatusCode::OK, &k8s::pod_json(&pod, &pod.status(), &state)),
                None => json_resp(StatusCode::NOT_FOUND, &k8s::pod_not_found(name)),
            }
        }
        (Method::DELETE, ["api", "v1", "namespaces", ns, "pods", name]) => {
            let ns = ns.to_string();
            let name = name.to_string();
            delete_pod(req, &state, &ns, &name).await
        }
        (_, ["api", "v1", "namespaces", ns, "pods", name, "exec"]) => {
            let Some(pod) = find_pod(&state, ns, name) else {
                return json_resp(StatusCode::NOT_FOUND, &k8s::pod_not_found(name));
            };
            exec_upgrade(req, pod, &state)
        }
        (m, _) if m != Method::GET => k8s_error(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
        ),
        _ => k8s_error(
            404,
            "NotFound",
            "the server could not find the requested resource",
        ),
    }
}

fn find_pod(state: &State, ns: &str, name: &str) -> Option<Arc<Pod>> {
    if ns != state.namespace {
        return None;
    }
    state.pod(name)
}

/// The label and field selectors of a list or watch.
struct PodFilter {
    labels: Selector,
    fields: Vec<(String, String, bool)>,
    namespace_ok: bool,
}

impl PodFilter {
    /// The selectors of a query, or the message of the 400 answer.
    fn parse(q: &[(String, String)], state: &State, ns: Option<&str>) -> Result<PodFilter, String> {
        let labels = Selector::parse(query_get(q, "labelSelector").unwrap_or(""))
            .map_err(|e| e.to_string())?;
        let fields = parse_field_selector(query_get(q, "fieldSelector").unwrap_or(""))?;
        Ok(PodFilter {
            labels,
            fields,
            namespace_ok: ns.is_none_or(|n| n == state.namespace),
        })
    }

    fn matches(&self, pod: &Pod, status: &PodStatus, state: &State) -> bool {
        self.namespace_ok
            && self.labels.matches(&pod.labels)
            && self.fields.iter().all(|(k, v, eq)| {
                let actual = match k.as_str() {
                    "metadata.name" => pod.name.as_str(),
                    "metadata.namespace" => state.namespace.as_str(),
                    _ if status.ready_at.is_some() => "Running",
                    _ => "Pending",
                };
                (actual == v) == *eq
            })
    }
}

fn wants_table(req: &Request<Incoming>) -> bool {
    req.headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("as=Table"))
}

fn list_pods(req: &Request<Incoming>, state: &Arc<State>, ns: Option<&str>) -> Resp {
    let q = query_pairs(req);
    let filter = match PodFilter::parse(&q, state, ns) {
        Ok(f) => f,
        Err(msg) => return k8s_error(400, "BadRequest", &msg),
    };
    if query_bool(&q, "watch") {
        return watch_pods(req, state, filter, &q);
    }
    let (resource_version, snapshot) = state.cluster.snapshot();
    let pods: Vec<(&Pod, &PodStatus)> = snapshot
        .iter()
        .filter(|(p, s)| filter.matches(p, s, state))
        .map(|(p, s)| (p.as_ref(), s))
        .collect();
    if wants_table(req) {
        json_resp(
            StatusCode::OK,
            &k8s::pod_table(&pods, resource_version, state),
        )
    } else {
        json_resp(
            StatusCode::OK,
            &k8s::pod_list(&pods, resource_version, state),
        )
    }
}

/// How long a watch stays open when the client does not say (the API server's
/// `--min-request-timeout`).
const DEFAULT_WATCH_TIMEOUT: Duration = Duration::from_secs(1800);

/// How often a watch that allows bookmarks gets one.
const BOOKMARK_INTERVAL: Duration = Duration::from_secs(5);

/// `watch=true`: one JSON event per line (ADDED, MODIFIED, DELETED, BOOKMARK, ERROR), as the
/// API server streams them, until `timeoutSeconds` or the client goes away.
fn watch_pods(
    req: &Request<Incoming>,
    state: &Arc<State>,
    filter: PodFilter,
    q: &[(String, String)],
) -> Resp {
    let from = match query_get(q, "resourceVersion").filter(|v| !v.is_empty()) {
        None => None,
        Some(v) => match v.parse::<u64>() {
            Ok(rv) => Some(rv),
            Err(_) => {
                return k8s_error(
                    400,
                    "BadRequest",
                    &format!("invalid resource version: {v:?}"),
                );
            }
        },
    };
    let timeout = match query_get(q, "timeoutSeconds") {
        None => DEFAULT_WATCH_TIMEOUT,
        Some(v) => match v.parse::<u64>() {
            Ok(secs) => Duration::from_secs(secs),
            Err(_) => return k8s_error(400, "BadRequest", "timeoutSeconds: not a whole number"),
        },
    };
    let bookmarks = query_bool(q, "allowWatchBookmarks");
    let send_initial = query_bool(q, "sendInitialEvents");
    let table = wants_table(req);
    let (current, start, mut live) = state.cluster.watch(if send_initial { None } else { from });
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(256);
    let state = state.clone();
    tokio::spawn(async move {
        let line = |v: Value| {
            let mut s = v.to_string();
            s.push('\n');
            Bytes::from(s)
        };
        let render = |e: &Event| {
            let object = if table {
                k8s::pod_table(&[(&e.pod, &e.status)], e.resource_version(), &state)
            } else {
                k8s::pod_json(&e.pod, &e.status, &state)
            };
            line(json!({"type": e.kind.as_str(), "object": object}))
        };
        let bookmark = |rv: u64, initial_end: bool| {
            let mut metadata = json!({"resourceVersion": rv.to_string()});
            if initial_end {
                metadata["annotations"] = json!({"k8s.io/initial-events-end": "true"});
            }
            line(
                json!({"type": "BOOKMARK", "object": {"kind": "Pod", "apiVersion": "v1", "metadata": metadata}}),
            )
        };
        let mut last_rv = current;
        let initial = match start {
            WatchStart::Expired { oldest } => {
                let status = k8s::status_error(
                    410,
                    "Expired",
                    &format!(
                        "too old resource version: {} ({})",
                        from.unwrap_or(0),
                        oldest.saturating_sub(1)
                    ),
                    None,
                );
                let _ = tx
                    .send(line(json!({"type": "ERROR", "object": status})))
                    .await;
                return;
            }
            WatchStart::Current(events) | WatchStart::Backlog(events) => events,
        };
        for e in &initial {
            if filter.matches(&e.pod, &e.status, &state) && tx.send(render(e)).await.is_err() {
                return;
            }
        }
        if send_initial && bookmarks && tx.send(bookmark(current, true)).await.is_err() {
            return;
        }
        let deadline = tokio::time::Instant::now() + timeout;
        let mut ticker = tokio::time::interval(BOOKMARK_INTERVAL);
        ticker.tick().await;
        loop {
            tokio::select! {
                ev = live.recv() => match ev {
                    Ok(e) => {
                        last_rv = e.resource_version();
                        if filter.matches(&e.pod, &e.status, &state) && tx.send(render(&e)).await.is_err() {
                            return;
                        }
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                        // This watcher fell behind the event stream: it must list again.
                        let status = k8s::status_error(410, "Expired", "watch fell behind; list again", None);
                        let _ = tx.send(line(json!({"type": "ERROR", "object": status}))).await;
                        return;
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                },
                _ = ticker.tick(), if bookmarks => {
                    if tx.send(bookmark(last_rv, false)).await.is_err() {
                        return;
                    }
                }
                _ = tokio::time::sleep_until(deadline) => return,
                _ = tx.closed() => return,
            }
        }
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|b| (Ok::<_, Infallible>(Frame::data(b)), rx))
    });
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CACHE_CONTROL, "no-cache, private")
        .body(BodyExt::boxed(StreamBody::new(stream)))
        .expect("static response parts are valid")
}

/// Reads a small JSON body; an empty body is `None`.
async fn read_json_body(req: Request<Incoming>) -> Result<Option<Value>, String> {
    let body = Limited::new(req.into_body(), 64 * 1024)
        .collect()
        .await
        .map_err(|e| format!("could not read the body: {e}"))?
        .to_bytes();
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    serde_json::from_slice(&body)
        .map(Some)
        .map_err(|e| format!("invalid JSON body: {e}"))
}

/// `DELETE .../pods/{name}`: the pod turns Terminating (the answer shows it) and is gone after
/// its grace period (`gracePeriodSeconds` in the query or the DeleteOptions body, at most
/// podsim's `--termination-grace`).
async fn delete_pod(req: Request<Incoming>, state: &Arc<State>, ns: &str, name: &str) -> Resp {
    let q = query_pairs(&req);
    let mut grace = query_get(&q, "gracePeriodSeconds").and_then(|v| v.parse::<u64>().ok());
    match read_json_body(req).await {
        Ok(Some(body)) => {
            if let Some(g) = body.get("gracePeriodSeconds").and_then(Value::as_u64) {
                grace = Some(g);
            }
        }
        Ok(None) => {}
        Err(e) => return k8s_error(400, "BadRequest", &e),
    }
    if ns != state.namespace {
        return json_resp(StatusCode::NOT_FOUND, &k8s::pod_not_found(name));
    }
    let Some(pod) = state.pod(name) else {
        return json_resp(StatusCode::NOT_FOUND, &k8s::pod_not_found(name));
    };
    match state.cluster.delete(name, grace.map(Duration::from_secs)) {
        Some(status) => json_resp(StatusCode::OK, &k8s::pod_json(&pod, &status, state)),
        None => json_resp(StatusCode::NOT_FOUND, &k8s::pod_not_found(name)),
    }
}

/// Field selectors on the fields a Pod list supports here: `(field, value, equal?)`.
fn parse_field_selector(s: &str) -> Result<Vec<(String, String, bool)>, String> {
    let mut out = Vec::new();
    for term in s.split(',').map(str::trim).filter(|t| !t.is_empty()) {
        let (k, v, eq) = if let Some((k, v)) = term.split_once("!=") {
            (k, v, false)
        } else if let Some((k, v)) = term.split_once("==") {
            (k, v, true)
        } else if let Some((k, v)) = term.split_once('=') {
            (k, v, true)
        } else {
            return Err(format!("invalid selector: {term:?}: expected field=value"));
        };
        let k = k.trim();
        if !["metadata.name", "metadata.namespace", "status.phase"].contains(&k) {
            return Err(format!(
                "field label not supported: {k} (supported: metadata.name, metadata.namespace, status.phase)"
            ));
        }
        out.push((k.to_string(), v.trim().to_string(), eq));
    }
    Ok(out)
}

/// Validates a WebSocket upgrade request; returns the Sec-WebSocket-Accept value.
fn ws_accept_key(req: &Request<Incoming>) -> Option<String> {
    let h = req.headers();
    let upgrade = h
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    let connection = h
        .get(header::CONNECTION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
        });
    let version = h
        .get(header::SEC_WEBSOCKET_VERSION)
        .is_some_and(|v| v.as_bytes() == b"13");
    if !(upgrade && connection && version && req.method() == Method::GET) {
        return None;
    }
    h.get(header::SEC_WEBSOCKET_KEY)
        .map(|k| derive_accept_key(k.as_bytes()))
}

fn refused(pod: &Pod) -> Option<Resp> {
    if pod.faults.borrow().refuse {
        return Some(k8s_error(
            503,
            "ServiceUnavailable",
            &format!("pod {} refuses connections (podsim fault)", pod.name),
        ));
    }
    None
}

fn plaintty_upgrade(req: Request<Incoming>, state: &Arc<State>) -> Resp {
    let q = query_pairs(&req);
    let Some(name) = query_get(&q, "pod") else {
        return k8s_error(400, "BadRequest", "missing query parameter: pod");
    };
    let Some(pod) = state.pod(name) else {
        return json_resp(StatusCode::NOT_FOUND, &k8s::pod_not_found(name));
    };
    let cols = query_get(&q, "cols")
        .and_then(|c| c.parse::<u16>().ok())
        .unwrap_or(80)
        .clamp(10, 1000);
    let Some(accept) = ws_accept_key(&req) else {
        return k8s_error(400, "BadRequest", "expected a WebSocket upgrade request");
    };
    if let Some(r) = refused(&pod) {
        return r;
    }
    let params = SessionParams {
        argv: crate::shell::interactive_shell(),
        spec: StreamSpec::Tty {
            cols,
            rows: TTY_ROWS,
        },
        protocol: Protocol::PlainTty,
    };
    upgrade(req, accept, None, pod, state.clone(), params)
}

fn exec_upgrade(req: Request<Incoming>, pod: Arc<Pod>, state: &Arc<State>) -> Resp {
    let q = query_pairs(&req);
    let argv: Vec<String> = q
        .iter()
        .filter(|(k, _)| k == "command")
        .map(|(_, v)| v.clone())
        .collect();
    if argv.is_empty() {
        return k8s_error(
            400,
            "BadRequest",
            "you must specify at least one command for the container",
        );
    }
    if let Some(c) = query_get(&q, "container")
        && c != state.app
    {
        return k8s_error(
            400,
            "BadRequest",
            &format!("container {c} is not valid for pod {}", pod.name),
        );
    }
    let (stdin, stdout, stderr, tty) = (
        query_bool(&q, "stdin"),
        query_bool(&q, "stdout"),
        query_bool(&q, "stderr"),
        query_bool(&q, "tty"),
    );
    if !(stdin || stdout || stderr) {
        return k8s_error(
            400,
            "BadRequest",
            "you must specify at least 1 of stdin, stdout, stderr",
        );
    }
    let Some(accept) = ws_accept_key(&req) else {
        return k8s_error(400, "BadRequest", "Upgrade request required");
    };
    let offered: Vec<String> = req
        .headers()
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|s| s.trim().to_string())
        .collect();
    let protocol = ["v5.channel.k8s.io", "v4.channel.k8s.io"]
        .into_iter()
        .filter(|p| !state.exec_v4_only || p.starts_with("v4"))
        .find(|p| offered.iter().any(|o| o == p));
    let Some(protocol) = protocol else {
        return k8s_error(
            400,
            "BadRequest",
            "unsupported WebSocket subprotocol: offer v5.channel.k8s.io or v4.channel.k8s.io",
        );
    };
    if let Some(r) = refused(&pod) {
        return r;
    }
    let spec = if tty {
        StreamSpec::Tty { cols: 80, rows: 24 }
    } else {
        StreamSpec::Pipes {
            stdin,
            stdout,
            stderr,
        }
    };
    let params = SessionParams {
        argv,
        spec,
        protocol: Protocol::K8s {
            v5: protocol.starts_with("v5"),
        },
    };
    upgrade(req, accept, Some(protocol), pod, state.clone(), params)
}

fn upgrade(
    req: Request<Incoming>,
    accept: String,
    subprotocol: Option<&'static str>,
    pod: Arc<Pod>,
    state: Arc<State>,
    params: SessionParams,
) -> Resp {
    tokio::spawn(async move {
        match hyper::upgrade::on(req).await {
            Ok(upgraded) => {
                let ws = WebSocketStream::from_raw_socket(
                    TokioIo::new(upgraded),
                    Role::Server,
                    // tungstenite zero-fills its whole read buffer: the 128 KiB default would
                    // be most of a connection's memory. Large frames still grow it on demand.
                    Some(WebSocketConfig::default().read_buffer_size(8 * 1024)),
                )
                .await;
                session::run(ws, pod, state, params).await;
            }
            Err(e) => tracing::debug!(error = %e, "upgrade failed"),
        }
    });
    let mut resp = Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::UPGRADE, "websocket")
        .header(header::CONNECTION, "Upgrade")
        .header(header::SEC_WEBSOCKET_ACCEPT, accept)
        .body(Full::new(Bytes::new()).boxed())
        .expect("static response parts are valid");
    if let Some(p) = subprotocol {
        resp.headers_mut()
            .insert(header::SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_static(p));
    }
    resp
}

async fn admin(req: Request<Incoming>, segs: &[&str], state: &Arc<State>) -> Resp {
    let method = req.method().clone();
    match (method, segs) {
        (Method::GET, ["stats"]) => json_resp(StatusCode::OK, &crate::stats::global(state)),
        (Method::GET, ["pods"]) => {
            let (resource_version, pods) = state.cluster.snapshot();
            json_resp(
                StatusCode::OK,
                &json!({
                    "resource_version": resource_version,
                    "pods": pods.iter().map(|(p, s)| json!({
                        "name": p.name,
                        "labels": p.labels,
                        "ready": s.ready,
                        "terminating": s.deletion.is_some(),
                    })).collect::<Vec<_>>(),
                }),
            )
        }
        (Method::POST, ["pods"]) => {
            let create: CreateRequest = match admin_body(req).await {
                Ok(c) => c,
                Err(e) => return json_resp(StatusCode::BAD_REQUEST, &json!({ "error": e })),
            };
            if create.count == 0 || create.count > 100_000 {
                return json_resp(
                    StatusCode::BAD_REQUEST,
                    &json!({"error": "count must be between 1 and 100000"}),
                );
            }
            let pods = state.cluster.create(&create, None);
            json_resp(
                StatusCode::CREATED,
                &json!({"pods": pods.iter().map(|p| &p.name).collect::<Vec<_>>()}),
            )
        }
        (Method::DELETE, ["pods", name]) => {
            let q = query_pairs(&req);
            let grace = query_get(&q, "grace_ms")
                .and_then(|v| v.parse::<u64>().ok())
                .map(Duration::from_millis);
            match state.cluster.delete(name, grace) {
                Some(_) => json_resp(StatusCode::OK, &json!({"deleted": name})),
                None => json_resp(
                    StatusCode::NOT_FOUND,
                    &json!({"error": format!("no pod named {name:?}")}),
                ),
            }
        }
        (Method::POST, ["rollout"]) => {
            let roll: RolloutRequest = match admin_body(req).await {
                Ok(r) => r,
                Err(e) => return json_resp(StatusCode::BAD_REQUEST, &json!({ "error": e })),
            };
            let selector = match Selector::parse(&roll.selector) {
                Ok(s) => s,
                Err(e) => {
                    return json_resp(
                        StatusCode::BAD_REQUEST,
                        &json!({"error": format!("selector: {e}")}),
                    );
                }
            };
            let (hash, replacing, task) = state.cluster.start_rollout(&selector, &roll);
            if roll.wait {
                let _ = task.await;
            }
            json_resp(
                StatusCode::OK,
                &json!({"template_hash": hash, "replacing": replacing, "finished": roll.wait}),
            )
        }
        (m, ["pods", name, what]) => {
            let Some(pod) = state.pod(name) else {
                return json_resp(
                    StatusCode::NOT_FOUND,
                    &json!({"error": format!("no pod named {name:?}")}),
                );
            };
            match (m, *what) {
                (Method::GET, "stats") => json_resp(
                    StatusCode::OK,
                    &json!({
                        "connections_total": pod.connections_total.load(Ordering::SeqCst),
                        "connections_live": pod.live_count(),
                        "faults": *pod.faults.borrow(),
                    }),
                ),
                (Method::POST, "faults") => {
                    let body = match Limited::new(req.into_body(), 64 * 1024).collect().await {
                        Ok(b) => b.to_bytes(),
                        Err(e) => {
                            return json_resp(
                                StatusCode::BAD_REQUEST,
                                &json!({"error": format!("could not read the body: {e}")}),
                            );
                        }
                    };
                    let fr: FaultRequest = match serde_json::from_slice(&body) {
                        Ok(f) => f,
                        Err(e) => {
                            return json_resp(
                                StatusCode::BAD_REQUEST,
                                &json!({"error": format!("invalid fault JSON: {e}")}),
                            );
                        }
                    };
                    pod.apply(&fr);
                    tracing::debug!(pod = %pod.name, request = ?fr, "faults applied");
                    json_resp(StatusCode::OK, &json!({"faults": *pod.faults.borrow()}))
                }
                (Method::DELETE, "faults") => {
                    pod.clear_faults();
                    json_resp(StatusCode::OK, &json!({"faults": *pod.faults.borrow()}))
                }
                _ => json_resp(
                    StatusCode::NOT_FOUND,
                    &json!({"error": "unknown admin endpoint"}),
                ),
            }
        }
        _ => json_resp(
            StatusCode::NOT_FOUND,
            &json!({"error": "unknown admin endpoint"}),
        ),
    }
}

/// An admin request body (an empty body is the defaults), or the 400 answer's message.
async fn admin_body<T: serde::de::DeserializeOwned + Default>(
    req: Request<Incoming>,
) -> Result<T, String> {
    match read_json_body(req).await {
        Ok(None) => Ok(T::default()),
        Ok(Some(v)) => serde_json::from_value(v).map_err(|e| format!("invalid JSON: {e}")),
        Err(e) => Err(e),
    }
}
