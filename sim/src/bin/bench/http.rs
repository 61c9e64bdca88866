//! A minimal blocking HTTP/1.1 client over a Unix socket that keeps its connection alive, so
//! the daemon benchmarks time requests, not connection set-up (testkit's client closes after
//! each request).

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};

/// One response: status and body (de-chunked).
pub struct Response {
    pub status: u16,
    pub body: String,
}

impl Response {
    pub fn json(&self) -> anyhow::Result<serde_json::Value> {
        serde_json::from_str(&self.body)
            .with_context(|| format!("response {} is not JSON: {}", self.status, self.body))
    }

    /// The body as JSON when the status is 2xx; an error naming both otherwise.
    pub fn ok_json(&self, what: &str) -> anyhow::Result<serde_json::Value> {
        if !(200..300).contains(&self.status) {
            bail!("{what}: HTTP {}: {}", self.status, self.body);
        }
        self.json()
    }
}

/// A keep-alive connection to a Unix socket; reconnects once if the server closed it while idle.
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

    fn connect(&mut self) -> anyhow::Result<&mut BufReader<UnixStream>> {
        if self.conn.is_none() {
            let s = UnixStream::connect(&self.path)
                .with_context(|| format!("connecting to {}", self.path.display()))?;
            s.set_read_timeout(Some(self.timeout))?;
            s.set_write_timeout(Some(self.timeout))?;
            self.conn = Some(BufReader::with_capacity(64 * 1024, s));
        }
        Ok(self.conn.as_mut().expect("just connected"))
    }

    pub fn get(&mut self, path: &str) -> anyhow::Result<Response> {
        self.request("GET", path, None)
    }

    pub fn post(&mut self, path: &str, body: &str) -> anyhow::Result<Response> {
        self.request("POST", path, Some(body))
    }

    pub fn request(
        &mut self,
        method: &str,
        path: &str,
        body: Option<&str>,
    ) -> anyhow::Result<Response> {
        let reused = self.conn.is_some();
        match self.try_request(method, path, body) {
            Ok(r) => Ok(r),
            // An idle keep-alive connection the server closed: the request never reached it.
            Err(e) if reused && e.downcast_ref::<Stale>().is_some() => {
                self.conn = None;
                self.try_request(method, path, body)
            }
            Err(e) => {
                self.conn = None;
                Err(e.context(format!("{method} {path}")))
            }
        }
    }

    fn try_request(
        &mut self,
        method: &str,
        path: &str,
        body: Option<&str>,
    ) -> anyhow::Result<Response> {
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\n");
        if let Some(b) = body {
            head.push_str(&format!(
                "Content-Type: application/json\r\nContent-Length: {}\r\n",
                b.len()
            ));
        }
        head.push_str("\r\n");
        head.push_str(body.unwrap_or_default());
        let conn = self.connect()?;
        if conn.get_mut().write_all(head.as_bytes()).is_err() {
            return Err(Stale.into());
        }
        let mut status_line = String::new();
        if conn.read_line(&mut status_line)? == 0 {
            return Err(Stale.into());
        }
        let status: u16 = status_line
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .with_context(|| format!("not an HTTP status line: {status_line:?}"))?;
        let mut length = None;
        let mut chunked = false;
        let mut close = false;
        loop {
            let mut line = String::new();
            if conn.read_line(&mut line)? == 0 {
                bail!("connection closed in the response headers");
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((k, v)) = line.split_once(':') {
                let (k, v) = (k.trim().to_ascii_lowercase(), v.trim().to_ascii_lowercase());
                match k.as_str() {
                    "content-length" => length = v.parse::<usize>().ok(),
                    "transfer-encoding" => chunked = v.contains("chunked"),
                    "connection" => close = v.contains("close"),
                    _ => {}
                }
            }
        }
        let mut raw = Vec::new();
        if chunked {
            loop {
                let mut size = String::new();
                conn.read_line(&mut size)?;
                let n = usize::from_str_radix(size.trim().split(';').next().unwrap_or(""), 16)
                    .with_context(|| format!("bad chunk size {size:?}"))?;
                let mut chunk = vec![0; n + 2];
                conn.read_exact(&mut chunk)?;
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
        if close {
            self.conn = None;
        }
        Ok(Response {
            status,
            body: String::from_utf8_lossy(&raw).into_owned(),
        })
    }
}

/// The server had closed the kept-alive connection before this request.
#[derive(Debug)]
struct Stale;

impl std::fmt::Display for Stale {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the server closed the connection")
    }
}

impl std::error::Error for Stale {}
