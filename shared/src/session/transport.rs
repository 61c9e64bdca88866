//! The WebSocket to a pod's shell: raw terminal text (PlainTTY) or Kubernetes channel frames,
//! behind one small interface of "send stdin" and "next piece of output".

use std::sync::{Arc, Once};
use std::time::Duration;

use futures_util::{FutureExt, SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Bytes, Message};
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};

use crate::error::{PodError, Result};
use crate::models::WssSchema;
use crate::secret::redact_url;

/// Kubernetes stream channels.
const CH_STDIN: u8 = 0;
const CH_STDOUT: u8 = 1;
const CH_STDERR: u8 = 2;
const CH_STATUS: u8 = 3;
const CH_CLOSE: u8 = 255;

/// Install ring as the process-wide rustls provider (once; an already installed provider wins).
pub fn install_crypto_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// One piece of what the far end sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Terminal or stdout bytes.
    Stdout(Bytes),
    /// stderr bytes (channel-framed endpoints only).
    Stderr(Bytes),
    /// The process ended (Kubernetes status channel): its exit code when one was given.
    Exited(Option<i32>),
    /// The connection is gone; the text says how.
    Closed(String),
}

/// A connected WebSocket to a shell.
pub struct Transport {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    binary_framed: bool,
    /// Negotiated Kubernetes subprotocol (`v5.channel.k8s.io` / `v4.channel.k8s.io`).
    protocol: Option<String>,
    closed: bool,
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport")
            .field("binary_framed", &self.binary_framed)
            .field("protocol", &self.protocol)
            .field("closed", &self.closed)
            .finish()
    }
}

/// True when opening `schema` would send a credential: an `Authorization` header or a token in
/// the URL's query.
fn carries_credentials(schema: &WssSchema) -> bool {
    !schema.headers.is_empty()
        || url::Url::parse(&schema.url).is_ok_and(|u| {
            u.query_pairs()
                .any(|(k, v)| !v.is_empty() && crate::secret::is_secret_query_key(&k))
        })
}

impl Transport {
    /// Open the WebSocket `schema` describes. `tls` overrides the default (webpki/native roots)
    /// TLS setup, e.g. with a kubeconfig's CA, client certificate or skip-verify.
    pub async fn connect(
        schema: &WssSchema,
        tls: Option<Arc<rustls::ClientConfig>>,
        timeout: Duration,
    ) -> Result<Transport> {
        install_crypto_provider();
        let shown = redact_url(&schema.url);
        let fail = |reason: String| PodError::Connection {
            target: shown.clone(),
            reason,
        };
        if carries_credentials(schema)
            && let Some(why) = crate::secret::cleartext_refusal(&schema.url)
        {
            return Err(fail(why));
        }
        let mut request = schema
            .url
            .as_str()
            .into_client_request()
            .map_err(|e| fail(scrub(&e.to_string(), schema)))?;
        for (name, value) in &schema.headers {
            let name: tokio_tungstenite::tungstenite::http::HeaderName = name
                .parse()
                .map_err(|_| fail(format!("invalid header name {name:?}")))?;
            let mut value = HeaderValue::from_str(value.expose())
                .map_err(|_| fail(format!("invalid value for header {name}")))?;
            value.set_sensitive(true);
            request.headers_mut().insert(name, value);
        }
        if !schema.subprotocols.is_empty() {
            let offer = schema.subprotocols.join(", ");
            request.headers_mut().insert(
                "Sec-WebSocket-Protocol",
                HeaderValue::from_str(&offer)
                    .map_err(|_| fail(format!("invalid subprotocol list {offer:?}")))?,
            );
        }
        let connector = tls.map(Connector::Rustls);
        // tungstenite allocates its whole read buffer per connection up front (128 KiB by
        // default): a daemon holding a thousand idle sessions pays for it a thousand times.
        // 8 KiB keeps bulk output fast; writes go out per message (commands are small).
        let config = WebSocketConfig::default()
            .max_message_size(Some(64 << 20))
            .max_frame_size(Some(16 << 20))
            .read_buffer_size(8 << 10)
            .write_buffer_size(0);
        let attempt = tokio_tungstenite::connect_async_tls_with_config(
            request,
            Some(config),
            true,
            connector,
        );
        let (ws, response) = match tokio::time::timeout(timeout, attempt).await {
            Err(_) => {
                return Err(fail(format!(
                    "timed out after {:.1}s",
                    timeout.as_secs_f64()
                )));
            }
            Ok(Err(e)) => return Err(fail(describe_ws_error(&e, schema))),
            Ok(Ok(pair)) => pair,
        };
        let protocol = response
            .headers()
            .get("Sec-WebSocket-Protocol")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        if schema.is_binary_framed
            && let Some(p) = &protocol
            && !schema.subprotocols.iter().any(|s| s == p)
        {
            return Err(fail(format!("server chose unknown subprotocol {p:?}")));
        }
        Ok(Transport {
            ws,
            binary_framed: schema.is_binary_framed,
            protocol,
            closed: false,
        })
    }

    /// The negotiated subprotocol, if any.
    pub fn protocol(&self) -> Option<&str> {
        self.protocol.as_deref()
    }

    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Send bytes to the shell's stdin.
    pub async fn send(&mut self, bytes: &[u8]) -> Result<()> {
        let msg = if self.binary_framed {
            let mut frame = Vec::with_capacity(bytes.len() + 1);
            frame.push(CH_STDIN);
            frame.extend_from_slice(bytes);
            Message::Binary(frame.into())
        } else {
            match std::str::from_utf8(bytes) {
                Ok(text) => Message::Text(text.into()),
                Err(_) => Message::Binary(Bytes::copy_from_slice(bytes)),
            }
        };
        if let Err(e) = self.ws.send(msg).await {
            self.closed = true;
            return Err(PodError::Protocol(format!(
                "sending to the shell failed: {e}"
            )));
        }
        Ok(())
    }

    /// Ends the far process's stdin (v5 close channel; see [`Transport::can_close_stdin`]).
    pub async fn close_stdin(&mut self) -> Result<()> {
        let frame = vec![CH_CLOSE, CH_STDIN];
        if let Err(e) = self.ws.send(Message::Binary(frame.into())).await {
            self.closed = true;
            return Err(PodError::Protocol(format!(
                "closing the process's stdin failed: {e}"
            )));
        }
        Ok(())
    }

    /// Whether [`Transport::close_stdin`] can work on this connection.
    pub fn can_close_stdin(&self) -> bool {
        self.binary_framed && self.protocol.as_deref() == Some("v5.channel.k8s.io")
    }

    /// Send a WebSocket ping and wait for its pong, dropping any output that arrives meanwhile.
    pub async fn ping(&mut self, timeout: Duration) -> Result<()> {
        let payload = Bytes::from_static(b"podwrangler");
        if let Err(e) = self.ws.send(Message::Ping(payload.clone())).await {
            self.closed = true;
            return Err(PodError::Protocol(format!("ping failed: {e}")));
        }
        let wait = async {
            loop {
                match self.ws.next().await {
                    Some(Ok(Message::Pong(p))) if p == payload => return Ok(()),
                    Some(Ok(Message::Close(_))) | None => {
                        return Err("connection closed".to_owned());
                    }
                    Some(Err(e)) => return Err(e.to_string()),
                    Some(Ok(_)) => {}
                }
            }
        };
        match tokio::time::timeout(timeout, wait).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => {
                self.closed = true;
                Err(PodError::Protocol(format!("ping failed: {e}")))
            }
            Err(_) => Err(PodError::Protocol(format!(
                "no pong within {:.1}s",
                timeout.as_secs_f64()
            ))),
        }
    }

    /// The next piece of output. Control frames are handled here.
    pub async fn recv(&mut self) -> Output {
        if self.closed {
            return Output::Closed("connection already closed".into());
        }
        loop {
            let msg = match self.ws.next().await {
                None => {
                    self.closed = true;
                    return Output::Closed("connection closed by the server".into());
                }
                Some(Err(e)) => {
                    self.closed = true;
                    return Output::Closed(format!("connection failed: {e}"));
                }
                Some(Ok(m)) => m,
            };
            if let Some(out) = self.decode(msg) {
                return out;
            }
        }
    }

    /// Output already received, without waiting; `None` when nothing is buffered.
    pub fn try_recv(&mut self) -> Option<Output> {
        if self.closed {
            return Some(Output::Closed("connection already closed".into()));
        }
        loop {
            let msg = match self.ws.next().now_or_never()? {
                None => {
                    self.closed = true;
                    return Some(Output::Closed("connection closed by the server".into()));
                }
                Some(Err(e)) => {
                    self.closed = true;
                    return Some(Output::Closed(format!("connection failed: {e}")));
                }
                Some(Ok(m)) => m,
            };
            if let Some(out) = self.decode(msg) {
                return Some(out);
            }
        }
    }

    fn decode(&mut self, msg: Message) -> Option<Output> {
        match msg {
            Message::Text(t) => Some(Output::Stdout(Bytes::from(t))),
            Message::Binary(b) if !self.binary_framed => Some(Output::Stdout(b)),
            Message::Binary(b) => {
                let (&channel, _) = b.split_first()?;
                let payload = b.slice(1..);
                match channel {
                    CH_STDOUT => Some(Output::Stdout(payload)),
                    CH_STDERR => Some(Output::Stderr(payload)),
                    CH_STATUS => Some(Output::Exited(parse_status(&payload))),
                    // v5 stream close and resize echoes carry no output.
                    CH_CLOSE | CH_STDIN => None,
                    _ => None,
                }
            }
            Message::Close(frame) => {
                self.closed = true;
                let why = frame
                    .map(|f| format!("server closed the connection ({}: {})", f.code, f.reason))
                    .unwrap_or_else(|| "server closed the connection".into());
                Some(Output::Closed(why))
            }
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => None,
        }
    }

    /// Close politely (best effort, bounded).
    pub async fn close(&mut self) {
        if !self.closed {
            self.closed = true;
            let _ = tokio::time::timeout(Duration::from_secs(2), self.ws.close(None)).await;
        }
    }
}

/// Exit code from a Kubernetes `metav1.Status` JSON: 0 for Success, the `ExitCode` cause for
/// `NonZeroExitCode`, `None` when the process ended some other way.
pub fn parse_status(payload: &[u8]) -> Option<i32> {
    let v: serde_json::Value = serde_json::from_slice(payload).ok()?;
    if v.get("status").and_then(|s| s.as_str()) == Some("Success") {
        return Some(0);
    }
    v.get("details")?
        .get("causes")?
        .as_array()?
        .iter()
        .find(|c| c.get("reason").and_then(|r| r.as_str()) == Some("ExitCode"))?
        .get("message")?
        .as_str()?
        .trim()
        .parse()
        .ok()
}

/// A connect error as text without secrets: tungstenite's errors can quote the URL or headers.
fn describe_ws_error(e: &tokio_tungstenite::tungstenite::Error, schema: &WssSchema) -> String {
    use tokio_tungstenite::tungstenite::Error as E;
    let text = match e {
        E::Http(resp) => {
            let status = resp.status();
            let body = resp
                .body()
                .as_ref()
                .map(|b| String::from_utf8_lossy(&b[..b.len().min(300)]).into_owned())
                .unwrap_or_default();
            let body = body.trim();
            if body.is_empty() {
                format!("HTTP {status}")
            } else {
                format!("HTTP {status}: {body}")
            }
        }
        other => other.to_string(),
    };
    scrub(&text, schema)
}

/// Remove any secret of `schema` from `text`.
fn scrub(text: &str, schema: &WssSchema) -> String {
    let mut out = text.replace(&schema.url, &redact_url(&schema.url));
    if let Ok(u) = url::Url::parse(&schema.url) {
        for (k, v) in u.query_pairs() {
            if k.eq_ignore_ascii_case("token") && !v.is_empty() {
                out = out.replace(v.as_ref(), crate::secret::REDACTED);
            }
        }
    }
    for (_, v) in &schema.headers {
        let value = v.expose();
        if !value.is_empty() {
            out = out.replace(value, crate::secret::REDACTED);
            if let Some(token) = value.strip_prefix("Bearer ")
                && !token.is_empty()
            {
                out = out.replace(token, crate::secret::REDACTED);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_json_gives_exit_codes() {
        assert_eq!(
            parse_status(br#"{"status":"Success","metadata":{}}"#),
            Some(0)
        );
        let failure = br#"{"status":"Failure","reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"3"}]}}"#;
        assert_eq!(parse_status(failure), Some(3));
        assert_eq!(
            parse_status(br#"{"status":"Failure","message":"boom"}"#),
            None
        );
        assert_eq!(parse_status(b"not json"), None);
    }

    #[test]
    fn scrub_removes_tokens() {
        let schema = WssSchema {
            url: "ws://h/exec/1/?token=sekrit.jwt&pod=p".into(),
            headers: vec![("Authorization".into(), crate::Secret::new("Bearer k8s-tok"))],
            subprotocols: vec![],
            is_binary_framed: false,
            tty: true,
        };
        let text = "failed ws://h/exec/1/?token=sekrit.jwt&pod=p with sekrit.jwt and k8s-tok";
        let shown = scrub(text, &schema);
        assert!(!shown.contains("sekrit"), "{shown}");
        assert!(!shown.contains("k8s-tok"), "{shown}");
    }
}
