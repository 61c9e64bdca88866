//! JSON body and query extraction whose errors are 4xx problems naming the field at fault.

use std::future::Future;
use std::pin::Pin;

use std::ops::Not;

use actix_web::{FromRequest, HttpRequest, dev, web};
use futures_util::StreamExt;
use serde::de::DeserializeOwned;

use super::error::ApiError;

/// Largest accepted request body, stored as app data.
#[derive(Clone, Copy, Debug)]
pub struct BodyLimit(pub usize);

/// A JSON request body. Malformed JSON, wrong types, missing and unknown fields are 400 with the
/// field's path; bodies over the limit are 413.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned + 'static> FromRequest for ApiJson<T> {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut dev::Payload) -> Self::Future {
        let limit = req
            .app_data::<BodyLimit>()
            .map(|l| l.0)
            .unwrap_or(1024 * 1024);
        let declared = req
            .headers()
            .get(actix_web::http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        // Bodies are JSON whatever the client labelled them (`curl -d` says form-urlencoded);
        // only a type that cannot be JSON is refused.
        let refused_type = match req.headers().get(actix_web::http::header::CONTENT_TYPE) {
            None => None,
            Some(v) => match v.to_str() {
                Ok(s) => {
                    let lower = s.to_ascii_lowercase();
                    let media = lower.split(';').next().unwrap_or("").trim();
                    json_capable(media).not().then(|| s.to_owned())
                }
                Err(_) => Some(String::from_utf8_lossy(v.as_bytes()).into_owned()),
            },
        };
        let mut payload = payload.take();
        Box::pin(async move {
            if declared.is_some_and(|n| n > limit) {
                return Err(ApiError::PayloadTooLarge { limit });
            }
            if let Some(t) = refused_type {
                return Err(ApiError::UnsupportedMediaType(t));
            }
            let mut body = web::BytesMut::new();
            while let Some(chunk) = payload.next().await {
                let chunk = chunk.map_err(|e| ApiError::BadRequest {
                    field: None,
                    message: format!("cannot read the request body: {e}"),
                })?;
                if body.len() + chunk.len() > limit {
                    return Err(ApiError::PayloadTooLarge { limit });
                }
                body.extend_from_slice(&chunk);
            }
            parse_json(&body).map(ApiJson)
        })
    }
}

/// Whether a body labelled `media` (lower case, no parameters) may be JSON. Clients label JSON
/// loosely (`curl -d` says form-urlencoded, some say text/plain), so only the families that
/// cannot be JSON are refused: multipart, images, audio, video, fonts.
fn json_capable(media: &str) -> bool {
    !["multipart/", "image/", "audio/", "video/", "font/"]
        .iter()
        .any(|p| media.starts_with(p))
}

/// Deserializes `body`, reporting the path of the field that failed.
pub fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::BadRequest {
            field: None,
            message: "request body is empty; expected a JSON object".into(),
        });
    }
    let de = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(de).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        let message = inner.to_string();
        // The path names the field at fault; for a missing field it is the parent, so the
        // name comes from serde's message instead.
        let field = match quoted_field(&message) {
            Some(f) if message.starts_with("missing") => Some(if path == "." {
                f
            } else {
                format!("{path}.{f}")
            }),
            _ => (path != ".").then_some(path),
        };
        // Fields that would make the daemon read its own files or run its programs are
        // refused with a reason, not as mere unknown fields.
        if message.starts_with("unknown field")
            && let Some(name) = quoted_field(&message)
            && let Some(reason) = host_access_field(&name)
        {
            return ApiError::validation(&name, reason);
        }
        let what = if inner.is_syntax() || inner.is_eof() {
            "malformed JSON"
        } else {
            "invalid request body"
        };
        ApiError::BadRequest {
            message: match &field {
                Some(f) => format!("{what}: field {f}: {message}"),
                None => format!("{what}: {message}"),
            },
            field,
        }
    })
}

/// Why a field that names a file or a program on the daemon's host is refused, if `name` is one.
fn host_access_field(name: &str) -> Option<&'static str> {
    match name {
        "kubeconfig"
        | "context"
        | "token_file"
        | "exec"
        | "client_certificate_file"
        | "client_key_file"
        | "ca_file" => Some(
            "the API takes no file paths or programs of the daemon's host: pwctl reads your kubeconfig and sends its credentials (server, certificate_authority, token or client_certificate and client_key), or name a cluster from the daemon's configuration with \"cluster\" (GET /api/v1/clusters)",
        ),
        _ => None,
    }
}

fn quoted_field(message: &str) -> Option<String> {
    let rest = message
        .strip_prefix("unknown field `")
        .or_else(|| message.strip_prefix("missing field `"))?;
    rest.split('`').next().map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use podwrangler::api::{ExecRequest, FanOutRequest};

    fn field_of(e: ApiError) -> Option<String> {
        match e {
            ApiError::BadRequest { field, .. } => field,
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn host_file_fields_are_refused_with_a_reason() {
        use podwrangler::api::PodCreate;
        let e = parse_json::<PodCreate>(
            br#"{"alias":"a","provider":"kubernetes","kubeconfig":"/etc/shadow"}"#,
        )
        .unwrap_err();
        assert!(
            matches!(&e, ApiError::Validation { field, .. } if field == "kubeconfig"),
            "{e:?}"
        );
        assert!(!e.to_string().contains("/etc/shadow"), "{e}");
    }

    #[test]
    fn names_the_field() {
        let e = parse_json::<ExecRequest>(br#"{"command":"ls","bogus":1}"#).unwrap_err();
        assert!(e.to_string().contains("bogus"), "{e}");
        assert_eq!(field_of(e).as_deref(), Some("bogus"));
        let e = parse_json::<ExecRequest>(br#"{"command":"ls","timeout":"x"}"#).unwrap_err();
        assert_eq!(field_of(e).as_deref(), Some("timeout"));
        let e = parse_json::<ExecRequest>(br#"{"timeout":1}"#).unwrap_err();
        assert_eq!(field_of(e).as_deref(), Some("command"));
        let e = parse_json::<FanOutRequest>(br#"{"command":"ls","aliases":["a",3]}"#).unwrap_err();
        assert_eq!(field_of(e).as_deref(), Some("aliases[1]"));
        let e = parse_json::<ExecRequest>(br#"{"command":"#).unwrap_err();
        assert!(e.to_string().contains("malformed JSON"), "{e}");
    }
}
