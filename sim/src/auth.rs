//! Who may use podsim. As on an API server, either credential is enough: the bearer token (in
//! the `Authorization` header, the WebSocket bearer subprotocol, or for PlainTTY the `token`
//! query parameter) or a client certificate that chains to podsim's CA.

use hyper::Request;
use hyper::body::Incoming;
use hyper::header;

use crate::state::State;

/// What the connection's TLS handshake proved about the client; holds for every request on it.
#[derive(Clone, Copy, Debug, Default)]
pub struct Peer {
    /// The client presented a certificate and the handshake verified it against podsim's CA.
    /// (A certificate that does not verify aborts the handshake, so no request gets this far.)
    pub verified_client_certificate: bool,
}

/// Browsers cannot set headers on a WebSocket, so the API server also takes the bearer token as
/// a subprotocol: `base64url.bearer.authorization.k8s.io.<base64url(token)>`.
const BEARER_SUBPROTOCOL: &str = "base64url.bearer.authorization.k8s.io.";

/// True when the request carries a valid credential. `query_token` is the `token` query
/// parameter where the protocol allows one (PlainTTY URLs), else None.
pub fn authenticated(
    req: &Request<Incoming>,
    state: &State,
    peer: Peer,
    query_token: Option<&str>,
) -> bool {
    if peer.verified_client_certificate {
        return true;
    }
    if let Some(v) = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        && let Some(t) = v.strip_prefix("Bearer ")
        && token_eq(t.trim(), &state.token)
    {
        return true;
    }
    if subprotocol_token(req).is_some_and(|t| token_eq(&t, &state.token)) {
        return true;
    }
    query_token.is_some_and(|t| token_eq(t, &state.token))
}

/// Compares without an early exit so the token cannot be guessed byte by byte from timings.
fn token_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn subprotocol_token(req: &Request<Incoming>) -> Option<String> {
    use base64::Engine;
    req.headers()
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .find_map(|p| p.trim().strip_prefix(BEARER_SUBPROTOCOL))
        .and_then(|b64| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(b64.trim_end_matches('='))
                .ok()
        })
        .and_then(|bytes| String::from_utf8(bytes).ok())
}

/// Request headers for debug logs, with credentials blanked.
pub fn redacted_headers(req: &Request<Incoming>) -> Vec<(String, String)> {
    req.headers()
        .iter()
        .map(|(k, v)| {
            let v = String::from_utf8_lossy(v.as_bytes());
            let v = if k == header::AUTHORIZATION {
                "<redacted>".to_string()
            } else if k == header::SEC_WEBSOCKET_PROTOCOL {
                v.split(',')
                    .map(|p| match p.trim().starts_with(BEARER_SUBPROTOCOL) {
                        true => format!("{BEARER_SUBPROTOCOL}<redacted>"),
                        false => p.trim().to_string(),
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            } else {
                v.into_owned()
            };
            (k.to_string(), v)
        })
        .collect()
}
