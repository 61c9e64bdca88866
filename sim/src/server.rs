//! HTTP front door: accepts TCP (optionally TLS), serves the Kubernetes API subset, the admin
//! endpoints and the WebSocket upgrades for PlainTTY and pod exec.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
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
use crate::k8s;
use crate::selector::Selector;
use crate::session::{self, Protocol, SessionParams};
use crate::shell::StreamSpec;
use crate::state::{FaultRequest, Pod, State};

type Resp = Response<Full<Bytes>>;

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
        .body(Full::new(Bytes::from(v.to_string())))
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
                Some(pod) => json_resp(StatusCode::OK, &k8s::pod_json(pod, &state)),
                None => json_resp(StatusCode::NOT_FOUND, &k8s::pod_not_found(name)),
            }
        }
        (_, ["api", "v1", "namespaces", ns, "pods", name, "exec"]) => {
            let Some(pod) = find_pod(&state, ns, name).cloned() else {
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

fn find_pod<'a>(state: &'a State, ns: &str, name: &str) -> Option<&'a Arc<Pod>> {
    if ns != state.namespace {
        return None;
    }
    state.pod(name)
}

fn list_pods(req: &Request<Incoming>, state: &State, ns: Option<&str>) -> Resp {
    let q = query_pairs(req);
    let selector = match Selector::parse(query_get(&q, "labelSelector").unwrap_or("")) {
        Ok(s) => s,
        Err(e) => return k8s_error(400, "BadRequest", &e.to_string()),
    };
    let fields = match parse_field_selector(query_get(&q, "fieldSelector").unwrap_or("")) {
        Ok(f) => f,
        Err(msg) => return k8s_error(400, "BadRequest", &msg),
    };
    let ns_ok = ns.is_none_or(|n| n == state.namespace);
    let pods: Vec<&Pod> = state
        .pods
        .iter()
        .filter(|_| ns_ok)
        .filter(|p| selector.matches(&p.labels))
        .filter(|p| {
            fields.iter().all(|(k, v, eq)| {
                let actual = match k.as_str() {
                    "metadata.name" => p.name.as_str(),
                    "metadata.namespace" => state.namespace.as_str(),
                    _ => "Running",
                };
                (actual == v) == *eq
            })
        })
        .map(|p| p.as_ref())
        .collect();
    let wants_table = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("as=Table"));
    if wants_table {
        json_resp(StatusCode::OK, &k8s::pod_table(&pods, state))
    } else {
        json_resp(StatusCode::OK, &k8s::pod_list(&pods, state))
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
    let Some(pod) = state.pod(name).cloned() else {
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
        .body(Full::new(Bytes::new()))
        .expect("static response parts are valid");
    if let Some(p) = subprotocol {
        resp.headers_mut()
            .insert(header::SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_static(p));
    }
    resp
}

async fn admin(req: Request<Incoming>, segs: &[&str], state: &State) -> Resp {
    let method = req.method().clone();
    match (method, segs) {
        (Method::GET, ["stats"]) => json_resp(StatusCode::OK, &crate::stats::global(state)),
        (m, ["pods", name, what]) => {
            let Some(pod) = state.pod(name).cloned() else {
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
