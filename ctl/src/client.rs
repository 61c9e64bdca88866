//! The REST client: ureq over the daemon's Unix socket or TCP, the API's wire types in and out,
//! Problem bodies turned into [`CtlError`]s.

use std::io::{BufRead, BufReader};
use std::time::Duration;

use podwrangler::Secret;
use podwrangler::api::{NDJSON, Problem};
use serde::Serialize;
use serde::de::DeserializeOwned;
use ureq::Agent;
use ureq::http::Response;

use crate::config::{Connection, Endpoint};
use crate::error::CtlError;
use crate::unix::{NoResolver, UnixConnector};

/// Largest response body read into memory: a fan-out over many pods with big outputs.
const MAX_BODY: u64 = 1 << 30;
/// Non-exec requests get this long: the daemon answers them from memory or its database.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Clone)]
pub struct Client {
    agent: Agent,
    base: String,
    endpoint: Endpoint,
    api_key: Option<Secret>,
}

/// A query string's pairs.
pub type Query<'a> = &'a [(&'a str, String)];

impl Client {
    pub fn new(conn: &Connection) -> Client {
        let config = Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(5)))
            .user_agent(concat!("pwctl/", env!("CARGO_PKG_VERSION")))
            // The daemon does not gzip for us, and pwctl builds without ureq's gzip.
            .accept_encoding("identity")
            .build();
        match &conn.endpoint {
            Endpoint::Unix(path) => Client {
                agent: Agent::with_parts(config, UnixConnector::new(path.clone()), NoResolver),
                // The host is never resolved (see NoResolver); it only fills the Host header.
                base: "http://localhost".into(),
                endpoint: conn.endpoint.clone(),
                api_key: None,
            },
            Endpoint::Tcp(url) => Client {
                agent: Agent::new_with_config(config),
                base: url.clone(),
                endpoint: conn.endpoint.clone(),
                api_key: conn.api_key.clone(),
            },
        }
    }

    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    fn request(
        &self,
        method: &str,
        path: &str,
        query: Query<'_>,
        body: Option<Vec<u8>>,
        accept: &str,
        timeout: Option<Duration>,
    ) -> Result<Response<ureq::Body>, CtlError> {
        let mut req = ureq::http::Request::builder()
            .method(method)
            .uri(self.url(path, query)?)
            .header("Accept", accept);
        if let Some(key) = &self.api_key {
            req = req.header("Authorization", format!("Bearer {}", key.expose()));
        }
        let result = match body {
            Some(bytes) => {
                let req = req
                    .header("Content-Type", "application/json")
                    .body(bytes)
                    .map_err(|e| CtlError::BadInput(e.to_string()))?;
                let mut req = self.agent.configure_request(req);
                req = req.timeout_global(timeout);
                self.agent.run(req.build())
            }
            None => {
                let req = req
                    .body(())
                    .map_err(|e| CtlError::BadInput(e.to_string()))?;
                let req = self.agent.configure_request(req).timeout_global(timeout);
                self.agent.run(req.build())
            }
        };
        result.map_err(|e| self.transport_error(e))
    }

    /// A request with a raw body streamed from `body` (stdin, a script, a file): chunked, so
    /// memory stays bounded whatever its size.
    fn request_raw(
        &self,
        method: &str,
        path: &str,
        query: Query<'_>,
        body: &mut dyn std::io::Read,
        accept: &str,
    ) -> Result<Response<ureq::Body>, CtlError> {
        let mut req = ureq::http::Request::builder()
            .method(method)
            .uri(self.url(path, query)?)
            .header("Accept", accept)
            .header("Content-Type", "application/octet-stream");
        if let Some(key) = &self.api_key {
            req = req.header("Authorization", format!("Bearer {}", key.expose()));
        }
        let req = req
            .body(ureq::SendBody::from_reader(body))
            .map_err(|e| CtlError::BadInput(e.to_string()))?;
        let req = self.agent.configure_request(req).timeout_global(None);
        self.agent
            .run(req.build())
            .map_err(|e| self.transport_error(e))
    }

    /// Sends a raw body and reads the JSON answer.
    pub fn send_raw<T: DeserializeOwned>(
        &self,
        method: &str,
        path: &str,
        query: Query<'_>,
        body: &mut dyn std::io::Read,
    ) -> Result<T, CtlError> {
        let resp = self.request_raw(method, path, query, body, "application/json")?;
        self.finish(resp)
    }

    /// A GET whose 2xx body is read by the caller (a file); other statuses are errors.
    pub fn get_raw(&self, path: &str, query: Query<'_>) -> Result<Response<ureq::Body>, CtlError> {
        let resp = self.request("GET", path, query, None, "application/octet-stream", None)?;
        if !(200..300).contains(&resp.status().as_u16()) {
            return Err(self.finish::<serde_json::Value>(resp).err().unwrap_or(
                CtlError::Protocol {
                    status: 0,
                    snippet: "an error status with a JSON body".into(),
                },
            ));
        }
        Ok(resp)
    }

    /// [`Client::post_stream`] with a raw body streamed from `body`.
    pub fn post_raw_stream<T: DeserializeOwned, W: DeserializeOwned>(
        &self,
        path: &str,
        query: Query<'_>,
        body: &mut dyn std::io::Read,
        on_item: impl FnMut(T),
        on_whole: impl FnOnce(W),
    ) -> Result<(), CtlError> {
        let accept = format!("{NDJSON}, application/json;q=0.5");
        let resp = self.request_raw("POST", path, query, body, &accept)?;
        self.read_stream(resp, on_item, on_whole)
    }

    fn url(&self, path: &str, query: Query<'_>) -> Result<String, CtlError> {
        let mut url = url::Url::parse(&format!("{}{}", self.base, path))
            .map_err(|e| CtlError::BadInput(format!("bad request path {path:?}: {e}")))?;
        if !query.is_empty() {
            let mut pairs = url.query_pairs_mut();
            for (k, v) in query {
                pairs.append_pair(k, v);
            }
        }
        Ok(url.to_string())
    }

    fn transport_error(&self, e: ureq::Error) -> CtlError {
        use std::io::ErrorKind::*;
        let target = self.endpoint.to_string();
        match e {
            ureq::Error::Io(io)
                if matches!(
                    io.kind(),
                    NotFound | ConnectionRefused | ConnectionReset | PermissionDenied
                ) && io.kind() != PermissionDenied =>
            {
                CtlError::Unreachable { target }
            }
            ureq::Error::Io(io) if io.kind() == PermissionDenied => CtlError::Transport {
                target,
                message: format!(
                    "{io} (is your user in the podwrangler-users group, or should you use --local?)"
                ),
            },
            ureq::Error::HostNotFound | ureq::Error::ConnectionFailed => {
                CtlError::Unreachable { target }
            }
            ureq::Error::Timeout(t) => CtlError::Transport {
                target,
                message: format!("no answer in time ({t})"),
            },
            other => CtlError::Transport {
                target,
                message: other.to_string(),
            },
        }
    }

    /// Reads a whole answer: the JSON type on 2xx, the Problem as an error otherwise.
    fn finish<T: DeserializeOwned>(&self, mut resp: Response<ureq::Body>) -> Result<T, CtlError> {
        let status = resp.status().as_u16();
        let bytes = resp
            .body_mut()
            .with_config()
            .limit(MAX_BODY)
            .read_to_vec()
            .map_err(|e| self.transport_error(e))?;
        if !(200..300).contains(&status) {
            return Err(problem_or_protocol(status, &bytes));
        }
        // 204 and friends: let T be `()` or `Option<..>`.
        let bytes: &[u8] = if bytes.is_empty() { b"null" } else { &bytes };
        serde_json::from_slice(bytes).map_err(|e| CtlError::Protocol {
            status,
            snippet: format!("{} ({e})", snippet(bytes)),
        })
    }

    pub fn get<T: DeserializeOwned>(&self, path: &str, query: Query<'_>) -> Result<T, CtlError> {
        let resp = self.request(
            "GET",
            path,
            query,
            None,
            "application/json",
            Some(REQUEST_TIMEOUT),
        )?;
        self.finish(resp)
    }

    /// GET a raw body (with an optional `Range: bytes=...`) and copy it to `out` as it
    /// arrives, never holding it whole; a Problem answer is an error.
    pub fn download(
        &self,
        path: &str,
        query: Query<'_>,
        range: Option<&str>,
        out: &mut dyn std::io::Write,
    ) -> Result<u64, CtlError> {
        let mut req = ureq::http::Request::builder()
            .method("GET")
            .uri(self.url(path, query)?)
            .header("Accept", "*/*");
        if let Some(key) = &self.api_key {
            req = req.header("Authorization", format!("Bearer {}", key.expose()));
        }
        if let Some(r) = range {
            req = req.header("Range", format!("bytes={r}"));
        }
        let req = req
            .body(())
            .map_err(|e| CtlError::BadInput(e.to_string()))?;
        let req = self.agent.configure_request(req).timeout_global(None);
        let mut resp = self
            .agent
            .run(req.build())
            .map_err(|e| self.transport_error(e))?;
        let status = resp.status().as_u16();
        if !(200..300).contains(&status) {
            return self.finish::<serde_json::Value>(resp).map(|_| 0);
        }
        let mut reader = resp.body_mut().with_config().limit(u64::MAX).reader();
        std::io::copy(&mut reader, out).map_err(|e| CtlError::Transport {
            target: self.endpoint.to_string(),
            message: format!("the download broke off: {e}"),
        })
    }

    pub fn delete(&self, path: &str) -> Result<(), CtlError> {
        let resp = self.request(
            "DELETE",
            path,
            &[],
            None,
            "application/json",
            Some(REQUEST_TIMEOUT),
        )?;
        self.finish::<serde_json::Value>(resp).map(|_| ())
    }

    /// POST or PATCH a JSON body. `timeout: None` waits as long as the daemon takes (exec: the
    /// daemon enforces the command's own timeout).
    pub fn send<B: Serialize, T: DeserializeOwned>(
        &self,
        method: &str,
        path: &str,
        body: &B,
        timeout: Option<Duration>,
    ) -> Result<T, CtlError> {
        let bytes = serde_json::to_vec(body).map_err(|e| CtlError::BadInput(e.to_string()))?;
        let resp = self.request(method, path, &[], Some(bytes), "application/json", timeout)?;
        self.finish(resp)
    }

    /// POST and read an NDJSON stream, calling `on_item` for each line as it arrives. A daemon
    /// that answers plain JSON instead gets `on_whole` with the whole body.
    pub fn post_stream<B: Serialize, T: DeserializeOwned, W: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
        on_item: impl FnMut(T),
        on_whole: impl FnOnce(W),
    ) -> Result<(), CtlError> {
        let bytes = serde_json::to_vec(body).map_err(|e| CtlError::BadInput(e.to_string()))?;
        let accept = format!("{NDJSON}, application/json;q=0.5");
        let resp = self.request("POST", path, &[], Some(bytes), &accept, None)?;
        self.read_stream(resp, on_item, on_whole)
    }

    /// Reads an NDJSON answer line by line (see [`Client::post_stream`]).
    fn read_stream<T: DeserializeOwned, W: DeserializeOwned>(
        &self,
        mut resp: Response<ureq::Body>,
        mut on_item: impl FnMut(T),
        on_whole: impl FnOnce(W),
    ) -> Result<(), CtlError> {
        let status = resp.status().as_u16();
        let is_ndjson = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with(NDJSON));
        if !(200..300).contains(&status) || !is_ndjson {
            let whole: W = self.finish(resp)?;
            on_whole(whole);
            return Ok(());
        }
        // A live stream has no size limit (a 1 GiB output streams through); each line is one
        // event of bounded size.
        let reader = BufReader::new(resp.body_mut().with_config().limit(u64::MAX).reader());
        for line in reader.lines() {
            let line = line.map_err(|e| CtlError::Transport {
                target: self.endpoint.to_string(),
                message: format!("the result stream broke off: {e}"),
            })?;
            if line.trim().is_empty() {
                continue;
            }
            // A stream can end with a Problem when the daemon fails half-way.
            let item: T = match serde_json::from_str(&line) {
                Ok(item) => item,
                Err(e) => {
                    if let Ok(p) = serde_json::from_str::<Problem>(&line) {
                        return Err(CtlError::Api(Box::new(p)));
                    }
                    return Err(CtlError::Protocol {
                        status,
                        snippet: format!("{} ({e})", snippet(line.as_bytes())),
                    });
                }
            };
            on_item(item);
        }
        Ok(())
    }
}

fn snippet(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let text = text.trim();
    if text.chars().count() > 200 {
        format!("{}...", text.chars().take(200).collect::<String>())
    } else if text.is_empty() {
        "(empty)".into()
    } else {
        text.to_string()
    }
}

fn problem_or_protocol(status: u16, bytes: &[u8]) -> CtlError {
    match serde_json::from_slice::<Problem>(bytes) {
        Ok(p) => CtlError::Api(Box::new(p)),
        Err(_) => CtlError::Protocol {
            status,
            snippet: snippet(bytes),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problem_bodies_become_api_errors_and_others_protocol_errors() {
        let body = br#"{"type":"about:blank","title":"Not Found","status":404,"detail":"no pod named x","code":"pod_not_found"}"#;
        match problem_or_protocol(404, body) {
            CtlError::Api(p) => assert_eq!(p.code, "pod_not_found"),
            other => panic!("{other:?}"),
        }
        match problem_or_protocol(502, b"<html>bad gateway</html>") {
            CtlError::Protocol { status, snippet } => {
                assert_eq!(status, 502);
                assert!(snippet.contains("bad gateway"));
            }
            other => panic!("{other:?}"),
        }
    }
}
