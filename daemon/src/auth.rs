//! API-key check for TCP clients. The Unix socket is trusted: its file mode decides who connects.

use std::any::Any;

use actix_web::body::MessageBody;
use actix_web::dev::{Extensions, ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{Error, web};
use podwrangler::Secret;

use crate::api::error::ApiError;

/// Which listener a connection came in on, recorded per connection by [`mark_transport`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    Unix,
    Tcp,
}

/// `HttpServer::on_connect` hook: tags Unix-socket connections so the key check skips them.
pub fn mark_transport(conn: &dyn Any, ext: &mut Extensions) {
    if conn.downcast_ref::<tokio::net::UnixStream>().is_some() {
        ext.insert(Transport::Unix);
    } else {
        ext.insert(Transport::Tcp);
    }
}

/// The configured key, as app data; `None` means TCP is open (loopback only, checked at start).
#[derive(Clone)]
pub struct ApiKey(pub Option<Secret>);

/// Compares in time that depends only on the lengths, so a key cannot be guessed byte by byte.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut diff = 0u8;
    for (x, y) in a.iter().zip(b) {
        diff |= x ^ y;
    }
    // Keep the optimizer from short-circuiting the loop.
    std::hint::black_box(diff) == 0
}

/// True when `header` is `Bearer <key>` with the right key.
pub fn bearer_matches(header: Option<&str>, key: &Secret) -> bool {
    let Some(value) = header else { return false };
    let Some(token) = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
    else {
        return false;
    };
    constant_time_eq(token.trim().as_bytes(), key.expose().as_bytes())
}

/// Middleware: TCP requests (other than `GET /health`) need the bearer key when one is set.
pub async fn require_key(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let transport = req
        .conn_data::<Transport>()
        .copied()
        .unwrap_or(Transport::Tcp);
    // Anything not positively known to be the Unix socket is treated as TCP.
    if transport == Transport::Tcp && req.path() != "/health" {
        let key = req
            .app_data::<web::Data<ApiKey>>()
            .and_then(|k| k.0.clone());
        if let Some(key) = key {
            let header = req
                .headers()
                .get(actix_web::http::header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok());
            if !bearer_matches(header, &key) {
                tracing::warn!(path = %req.path(), peer = ?req.peer_addr(), "rejected TCP request without a valid API key");
                return Err(ApiError::Unauthorized.into());
            }
        }
    }
    next.call(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_check() {
        let k = Secret::new("s3cret");
        assert!(bearer_matches(Some("Bearer s3cret"), &k));
        assert!(!bearer_matches(Some("Bearer s3cre"), &k));
        assert!(!bearer_matches(Some("Bearer s3cretX"), &k));
        assert!(!bearer_matches(Some("Basic s3cret"), &k));
        assert!(!bearer_matches(None, &k));
        assert!(constant_time_eq(b"", b""));
    }
}
