//! The one small blocking HTTP/1.1 client of the tests and the benchmarks: a one-shot request
//! on any stream (Unix socket or TCP), and a keep-alive client for a Unix socket, so benchmarks
//! time requests rather than connection set-up. Bodies are read by `Content-Length`, chunked
//! transfer coding, or to the end of the connection.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// One HTTP response.
#[derive(Clone, Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Response {
    /// The body as JSON; panics with the body when it is not JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("response {} is not JSON ({e}): {}", self.status, self.body))
    }

    /// The body as JSON when the status is 2xx; an error naming `what`, the status and the body
    /// otherwise (for tools that report rather than panic).
    pub fn ok_json(&self, what: &str) -> std::io::Result<serde_json::Value> {
        if !(200..300).contains(&self.status) {
            return Err(std::io::Error::other(format!(
                "{what}: HTTP {}: {}",
                self.status, self.body
            )));
        }
        serde_json::from_str(&self.body).map_err(|e| {
            std::io::Error::other(format!("{what}: response is not JSON ({e}): {}", self.body))
        })
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// The request head: `Content-Type: application/json` for a body unless `headers` name one.
fn head(
    host: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
    close: bool,
) -> String {
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\n");
    if close {
        head.push_str("Connection: close\r\n");
    }
    if let Some(b) = body {
        head.push_str(&format!("Content-Length: {}\r\n", b.len()));
        if !headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
        {
            head.push_str("Content-Type: application/json\r\n");
        }
    }
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    head
}

/// Sends one request (`Connection: close`) on `stream` and reads the whole response. A server
/// that answers before reading the whole body (413) is fine: a write error is ignored when a
/// response still arrives.
pub fn request<S: Read + Write>(
    mut stream: S,
    host: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> std::io::Result<Response> {
    let write = stream
        .write_all(head(host, method, path, headers, body, true).as_bytes())
        .and_then(|_| stream.write_all(body.unwrap_or_default()));
    // The server closes after the response: read it all first, so a reset after the last byte
    // (or a write error on a body it did not want) does not hide an answer that arrived.
    let mut raw = Vec::new();
    let read = stream.read_to_end(&mut raw);
    if raw.is_empty() {
        write?;
        read?;
    }
    read_response(&mut &raw[..]).map(|(response, _)| response)
}

/// One request over TCP to `address` (`host:port`); answers (status, body).
pub fn tcp_request(
    address: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> std::io::Result<(u16, String)> {
    let s = TcpStream::connect(address)?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    let r = request(s, address, method, path, headers, body.map(str::as_bytes))?;
    Ok((r.status, r.body))
}

/// Reads one response; also says whether the server will close the connection after it.
fn read_response<R: BufRead>(conn: &mut R) -> std::io::Result<(Response, bool)> {
    let mut status_line = String::new();
    if conn.read_line(&mut status_line)? == 0 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "empty response",
        ));
    }
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| {
            std::io::Error::other(format!("not an HTTP status line: {status_line:?}"))
        })?;
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        if conn.read_line(&mut line)? == 0 {
            return Err(std::io::Error::other(
                "connection closed in the response headers",
            ));
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            headers.push((k.trim().to_owned(), v.trim().to_owned()));
        }
    }
    let has = |name: &str, needle: &str| {
        headers.iter().any(|(k, v): &(String, String)| {
            k.eq_ignore_ascii_case(name) && v.to_ascii_lowercase().contains(needle)
        })
    };
    let chunked = has("transfer-encoding", "chunked");
    let mut close = has("connection", "close");
    let length = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse::<usize>().ok());
    let mut raw = Vec::new();
    if chunked {
        loop {
            let mut size = String::new();
            if conn.read_line(&mut size)? == 0 {
                // A stream cut short: keep what arrived, as a reader of the stream would.
                close = true;
                break;
            }
            let n = usize::from_str_radix(size.trim().split(';').next().unwrap_or(""), 16)
                .map_err(|_| std::io::Error::other(format!("bad chunk size {size:?}")))?;
            let mut chunk = Vec::with_capacity(n + 2);
            (&mut *conn).take(n as u64 + 2).read_to_end(&mut chunk)?;
            if chunk.len() < n + 2 {
                // Cut short (the server died mid-stream): keep what arrived.
                raw.extend_from_slice(&chunk[..chunk.len().min(n)]);
                close = true;
                break;
            }
            if n == 0 {
                break;
            }
            raw.extend_from_slice(&chunk[..n]);
        }
    } else if let Some(n) = length {
        raw.resize(n, 0);
        conn.read_exact(&mut raw)?;
    } else {
        conn.read_to_end(&mut raw)?;
        close = true;
    }
    let response = Response {
        status,
        headers,
        body: String::from_utf8_lossy(&raw).into_owned(),
    };
    Ok((response, close))
}

/// A keep-alive connection to a Unix socket; reconnects once when the server had closed it
/// while idle (the request never reached it then).
pub struct UnixClient {
    path: PathBuf,
    conn: Option<BufReader<UnixStream>>,
    timeout: Duration,
}

impl UnixClient {
    pub fn new(path: &Path, timeout: Duration) -> UnixClient {
        UnixClient {
            path: path.to_path_buf(),
            conn: None,
            timeout,
        }
    }

    pub fn get(&mut self, path: &str) -> std::io::Result<Response> {
        self.request("GET", path, None)
    }

    pub fn post(&mut self, path: &str, body: &str) -> std::io::Result<Response> {
        self.request("POST", path, Some(body))
    }

    pub fn request(
        &mut self,
        method: &str,
        path: &str,
        body: Option<&str>,
    ) -> std::io::Result<Response> {
        let reused = self.conn.is_some();
        match self.try_request(method, path, body) {
            Ok(r) => Ok(r),
            Err(Attempt::Stale) if reused => {
                self.conn = None;
                self.try_request(method, path, body)
                    .map_err(Attempt::into_io)
            }
            Err(e) => {
                self.conn = None;
                let e = e.into_io();
                Err(std::io::Error::new(
                    e.kind(),
                    format!("{method} {path}: {e}"),
                ))
            }
        }
    }

    fn try_request(
        &mut self,
        method: &str,
        path: &str,
        body: Option<&str>,
    ) -> Result<Response, Attempt> {
        if self.conn.is_none() {
            let s = UnixStream::connect(&self.path).map_err(|e| {
                Attempt::Failed(std::io::Error::new(
                    e.kind(),
                    format!("connecting to {}: {e}", self.path.display()),
                ))
            })?;
            s.set_read_timeout(Some(self.timeout))
                .map_err(Attempt::Failed)?;
            s.set_write_timeout(Some(self.timeout))
                .map_err(Attempt::Failed)?;
            self.conn = Some(BufReader::with_capacity(64 * 1024, s));
        }
        let conn = self.conn.as_mut().expect("connected above");
        let body = body.map(str::as_bytes);
        let mut bytes = head("localhost", method, path, &[], body, false).into_bytes();
        bytes.extend_from_slice(body.unwrap_or_default());
        if conn.get_mut().write_all(&bytes).is_err() {
            return Err(Attempt::Stale);
        }
        match read_response(conn) {
            Ok((response, close)) => {
                if close {
                    self.conn = None;
                }
                Ok(response)
            }
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Err(Attempt::Stale),
            Err(e) => Err(Attempt::Failed(e)),
        }
    }
}

/// How one attempt on a kept-alive connection failed.
enum Attempt {
    /// The server had closed the connection before this request.
    Stale,
    Failed(std::io::Error),
}

impl Attempt {
    fn into_io(self) -> std::io::Error {
        match self {
            Attempt::Stale => std::io::Error::other("the server closed the connection"),
            Attempt::Failed(e) => e,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &[u8]) -> (Response, bool) {
        read_response(&mut BufReader::new(raw)).unwrap()
    }

    #[test]
    fn reads_chunked_bodies() {
        let (r, close) = parse(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: application/x-ndjson\r\n\r\n5\r\n{\"a\":\r\n2\r\n1}\r\n0\r\n\r\n");
        assert_eq!(r.status, 200);
        assert_eq!(r.body, "{\"a\":1}");
        assert_eq!(r.header("content-type"), Some("application/x-ndjson"));
        assert!(!close);
    }

    #[test]
    fn reads_by_length_and_to_the_end() {
        let (r, close) = parse(b"HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\n\r\nnoEXTRA");
        assert_eq!((r.status, r.body.as_str(), close), (404, "no", false));
        let (r, close) = parse(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nall of it");
        assert_eq!((r.body.as_str(), close), ("all of it", true));
    }

    #[test]
    fn an_empty_answer_is_an_end_of_file() {
        let e = read_response(&mut BufReader::new(&b""[..])).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::UnexpectedEof);
    }
}
