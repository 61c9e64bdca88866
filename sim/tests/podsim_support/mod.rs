//! Shared helpers of podsim's integration tests: real WebSocket clients for PlainTTY and for the
//! Kubernetes exec protocol, talking to a real podsim process.
#![allow(dead_code)]

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use testkit::{Podsim, PodsimInfo};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Generous: the machine is small and shared.
pub const LONG: Duration = Duration::from_secs(30);

pub fn start(pods: usize) -> Podsim {
    Podsim::start(pods)
}

pub async fn connect_plaintty(url: &str) -> Ws {
    let (ws, _) = tokio::time::timeout(LONG, tokio_tungstenite::connect_async(url))
        .await
        .expect("PlainTTY connect timed out")
        .unwrap_or_else(|e| panic!("PlainTTY connect to {url} failed: {e}"));
    ws
}

/// Error of a failed connect (to assert on HTTP status codes).
pub async fn try_connect(
    req: tokio_tungstenite::tungstenite::handshake::client::Request,
) -> Result<Ws, tokio_tungstenite::tungstenite::Error> {
    tokio::time::timeout(LONG, tokio_tungstenite::connect_async(req))
        .await
        .expect("connect timed out")
        .map(|(ws, _)| ws)
}

pub fn status_of(err: &tokio_tungstenite::tungstenite::Error) -> Option<u16> {
    match err {
        tokio_tungstenite::tungstenite::Error::Http(resp) => Some(resp.status().as_u16()),
        _ => None,
    }
}

/// Builds the exec URL's request with bearer token and subprotocol.
pub fn exec_request(
    info: &PodsimInfo,
    pod: &str,
    argv: &[&str],
    stdin: bool,
    tty: bool,
    protocol: &str,
    token: Option<&str>,
) -> tokio_tungstenite::tungstenite::handshake::client::Request {
    let mut url = format!(
        "{}/api/v1/namespaces/{}/pods/{pod}/exec?stdout=true&stderr={}&stdin={stdin}&tty={tty}",
        info.ws_base, info.namespace, !tty
    );
    for a in argv {
        url.push_str("&command=");
        url.push_str(&urlencode(a));
    }
    let mut req = url.into_client_request().expect("valid exec URL");
    let token = token.unwrap_or(&info.token);
    req.headers_mut().insert(
        "Authorization",
        HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
    );
    req.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        HeaderValue::from_str(protocol).unwrap(),
    );
    req
}

pub fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

pub async fn exec(info: &PodsimInfo, pod: &str, argv: &[&str], stdin: bool) -> Ws {
    try_connect(exec_request(
        info,
        pod,
        argv,
        stdin,
        false,
        "v5.channel.k8s.io",
        None,
    ))
    .await
    .unwrap_or_else(|e| panic!("exec connect failed: {e}"))
}

/// What an exec session produced.
#[derive(Debug, Default)]
pub struct ExecOutput {
    pub stdout: String,
    pub stderr: String,
    pub status: Option<serde_json::Value>,
    /// A close frame arrived (as opposed to the TCP connection just ending).
    pub close_frame: bool,
}

/// Reads channel frames until the connection ends.
pub async fn collect_exec(ws: &mut Ws) -> ExecOutput {
    let mut out = ExecOutput::default();
    loop {
        let msg = tokio::time::timeout(LONG, ws.next())
            .await
            .expect("exec output timed out");
        match msg {
            Some(Ok(Message::Binary(b))) => {
                let (ch, data) = b.split_first().expect("channel byte");
                let text = String::from_utf8_lossy(data);
                match ch {
                    1 => out.stdout.push_str(&text),
                    2 => out.stderr.push_str(&text),
                    3 => out.status = Some(serde_json::from_slice(data).expect("status JSON")),
                    other => panic!("unexpected channel {other}"),
                }
            }
            Some(Ok(Message::Close(_))) => out.close_frame = true,
            Some(Ok(_)) => {}
            Some(Err(_)) | None => return out,
        }
    }
}

/// Reads PlainTTY text until `needle` appears; returns everything read. Panics on timeout or EOF.
pub async fn read_until(ws: &mut Ws, needle: &str) -> String {
    let mut seen = String::new();
    let deadline = tokio::time::Instant::now() + LONG;
    loop {
        let msg = tokio::time::timeout_at(deadline, ws.next())
            .await
            .unwrap_or_else(|_| panic!("timed out waiting for {needle:?}; got {seen:?}"));
        match msg {
            Some(Ok(Message::Text(t))) => seen.push_str(&t),
            Some(Ok(Message::Binary(b))) => seen.push_str(&String::from_utf8_lossy(&b)),
            Some(Ok(_)) => {}
            other => panic!("connection ended ({other:?}) before {needle:?}; got {seen:?}"),
        }
        if seen.contains(needle) {
            return seen;
        }
    }
}

pub async fn send_text(ws: &mut Ws, text: &str) {
    ws.send(Message::text(text.to_string()))
        .await
        .expect("send");
}
