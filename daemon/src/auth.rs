//! Who is calling, and what they may do. Unix-socket callers are identified by the peer's uid
//! (`SO_PEERCRED`) and have full access (the socket's file mode decides who connects). TCP
//! callers present a named API key whose scope (`read` < `exec` < `admin`) bounds what they
//! may do. Every history row and audit event names its caller ([`Caller::actor`]).

use std::any::Any;

use actix_web::body::MessageBody;
use actix_web::dev::{Extensions, Payload, ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::{Error, FromRequest, HttpMessage, HttpRequest, web};

use crate::api::error::ApiError;
use crate::keys::Scope;
use crate::server::AppState;

/// Which listener a connection came in on, recorded per connection by [`mark_transport`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// The Unix socket, with the peer's uid when the kernel told it.
    Unix {
        uid: Option<u32>,
    },
    Tcp,
}

/// `HttpServer::on_connect` hook: tags Unix-socket connections with the peer's uid.
pub fn mark_transport(conn: &dyn Any, ext: &mut Extensions) {
    if let Some(stream) = conn.downcast_ref::<tokio::net::UnixStream>() {
        let uid = stream.peer_cred().ok().map(|c| c.uid());
        ext.insert(Transport::Unix { uid });
    } else {
        ext.insert(Transport::Tcp);
    }
}

/// The authenticated caller of a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Caller {
    /// A process on this host, through the Unix socket.
    Unix { uid: Option<u32> },
    /// A TCP client holding the named key.
    Key { name: String, scope: Scope },
}

impl Caller {
    /// How history and the audit log name this caller: `unix:1000(alice)`, `key:ci`.
    pub fn actor(&self) -> String {
        match self {
            Caller::Unix { uid: Some(uid) } => match user_name(*uid) {
                Some(name) => format!("unix:{uid}({name})"),
                None => format!("unix:{uid}"),
            },
            Caller::Unix { uid: None } => "unix:unknown".into(),
            Caller::Key { name, .. } => format!("key:{name}"),
        }
    }

    fn allows(&self, needed: Scope) -> bool {
        match self {
            Caller::Unix { .. } => true,
            Caller::Key { scope, .. } => *scope >= needed,
        }
    }
}

/// The name of user `uid` from the password database, if it has one.
pub fn user_name(uid: u32) -> Option<String> {
    let mut buf = vec![0u8; 4096];
    // SAFETY: an all-zero passwd is a valid value for getpwuid_r to overwrite.
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call and `buf` outlives the use of `pwd`'s fields.
    let rc = unsafe {
        libc::getpwuid_r(
            uid,
            &mut pwd,
            buf.as_mut_ptr().cast(),
            buf.len(),
            &mut result,
        )
    };
    if rc != 0 || result.is_null() || pwd.pw_name.is_null() {
        return None;
    }
    // SAFETY: getpwuid_r succeeded, so pw_name points at a NUL-terminated string inside `buf`.
    let name = unsafe { std::ffi::CStr::from_ptr(pwd.pw_name) };
    Some(name.to_string_lossy().into_owned())
}

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

/// The token of a `Bearer <token>` header.
pub fn bearer_token(header: Option<&str>) -> Option<&str> {
    let value = header?;
    value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .map(str::trim)
}

/// The scope a request needs: reading is `read`; running commands is `exec`; changing the
/// registered pods is `admin`.
pub fn required_scope(method: &Method, path: &str) -> Scope {
    let path = path.trim_end_matches('/');
    // Files in pods are read and written through their shells: that is running commands.
    let moves_files =
        path == "/api/v1/files" || (path.starts_with("/api/v1/pods/") && path.ends_with("/files"));
    if moves_files && *method != Method::OPTIONS {
        return Scope::Exec;
    }
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return Scope::Read;
    }
    let runs_commands = path == "/api/v1/exec"
        || (path.starts_with("/api/v1/pods/") && path.ends_with("/exec"))
        || (path.starts_with("/api/v1/pods/")
            && (path.ends_with("/exec/stdin") || path.ends_with("/exec/script")))
        || (path.starts_with("/api/v1/commands/") && path.ends_with("/cancel"));
    if method == Method::POST && runs_commands {
        Scope::Exec
    } else {
        Scope::Admin
    }
}

/// Middleware: identifies the caller, refuses TCP requests (other than `GET /health`) without a
/// valid key (401) or with a key whose scope is too small (403), and records the caller in the
/// request's extensions.
pub async fn authenticate(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let transport = req
        .conn_data::<Transport>()
        .copied()
        .unwrap_or(Transport::Tcp);
    let caller = match transport {
        Transport::Unix { uid } => Some(Caller::Unix { uid }),
        // Anything not positively known to be the Unix socket is treated as TCP.
        Transport::Tcp => {
            let header = req
                .headers()
                .get(actix_web::http::header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok());
            let identity = match (req.app_data::<web::Data<AppState>>(), bearer_token(header)) {
                (Some(state), Some(token)) => state.keys().authenticate(token),
                _ => None,
            };
            identity.map(|k| Caller::Key {
                name: k.name,
                scope: k.scope,
            })
        }
    };
    match caller {
        None if req.path() == "/health" => {}
        None => {
            tracing::warn!(path = %req.path(), peer = ?req.peer_addr(), "rejected TCP request without a valid API key");
            return Err(ApiError::Unauthorized.into());
        }
        Some(caller) => {
            let needed = required_scope(req.method(), req.path());
            if !caller.allows(needed) {
                tracing::warn!(actor = %caller.actor(), path = %req.path(), needed = needed.as_str(), "refused: the key's scope is too small");
                return Err(ApiError::Forbidden {
                    needed: needed.as_str(),
                }
                .into());
            }
            req.extensions_mut().insert(caller);
        }
    }
    next.call(req).await
}

/// Extractor: the `actor` string of the request's caller.
pub struct Actor(pub String);

impl FromRequest for Actor {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready(
            req.extensions()
                .get::<Caller>()
                .map(|c| Actor(c.actor()))
                .ok_or(ApiError::Unauthorized),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_parsing() {
        assert_eq!(bearer_token(Some("Bearer s3cret")), Some("s3cret"));
        assert_eq!(bearer_token(Some("bearer s3cret ")), Some("s3cret"));
        assert_eq!(bearer_token(Some("Basic s3cret")), None);
        assert_eq!(bearer_token(None), None);
        assert!(constant_time_eq(b"", b""));
        assert!(!constant_time_eq(b"a", b"ab"));
    }

    #[test]
    fn scopes_by_route() {
        assert_eq!(required_scope(&Method::GET, "/api/v1/pods/"), Scope::Read);
        assert_eq!(required_scope(&Method::GET, "/api/v1/audit"), Scope::Read);
        assert_eq!(
            required_scope(&Method::POST, "/api/v1/pods/web/exec"),
            Scope::Exec
        );
        assert_eq!(required_scope(&Method::POST, "/api/v1/exec"), Scope::Exec);
        // Stdin, scripts and files go through the pods' shells: all of it is `exec`, reading a
        // file out of a pod too.
        for (m, p) in [
            (Method::POST, "/api/v1/pods/web/exec/stdin"),
            (Method::POST, "/api/v1/pods/web/exec/script"),
            (Method::PUT, "/api/v1/pods/web/files"),
            (Method::GET, "/api/v1/pods/web/files"),
            (Method::POST, "/api/v1/files"),
        ] {
            assert_eq!(required_scope(&m, p), Scope::Exec, "{m} {p}");
        }
        assert_eq!(
            required_scope(&Method::POST, "/api/v1/commands/7/cancel"),
            Scope::Exec
        );
        assert_eq!(required_scope(&Method::POST, "/api/v1/pods/"), Scope::Admin);
        assert_eq!(
            required_scope(&Method::POST, "/api/v1/pods/import"),
            Scope::Admin
        );
        assert_eq!(
            required_scope(&Method::DELETE, "/api/v1/pods/web"),
            Scope::Admin
        );
        assert_eq!(
            required_scope(&Method::PATCH, "/api/v1/pods/exec"),
            Scope::Admin
        );
    }

    #[test]
    fn actors_name_the_caller() {
        let key = Caller::Key {
            name: "ci".into(),
            scope: Scope::Read,
        };
        assert_eq!(key.actor(), "key:ci");
        assert!(key.allows(Scope::Read) && !key.allows(Scope::Exec));
        assert_eq!(Caller::Unix { uid: Some(0) }.actor(), "unix:0(root)");
        assert!(Caller::Unix { uid: None }.allows(Scope::Admin));
    }
}
