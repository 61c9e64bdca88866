//! Command framing: per-command nonce markers, and a streaming parser that finds them in shell
//! output that arrives in arbitrary pieces.
//!
//! Each command is wrapped so that the shell prints a start marker `__PWS_<nonce>__\n` before it
//! runs and an end marker `\x1e__PWE_<nonce>_<status>__\n` after it. The shell snippets that print
//! them split the marker text into `printf` arguments, so the command line itself (which a TTY
//! echoes back) never contains a marker: only the shell's output can. The nonce is 64 random bits,
//! so a command cannot print a marker by accident. The end marker starts with an ASCII record
//! separator (0x1e) rather than a newline: output that does not end with a newline is framed
//! exactly, and a line's newline is never held back waiting to see whether a marker follows, so
//! live output shows each line as soon as it is complete.

use rand::Rng;

/// The byte every end marker begins with (ASCII record separator); only it, and what follows
/// it, can be held back as a possible marker.
const END_LEAD: u8 = 0x1e;

/// Longest exit status text accepted in an end marker: `$?` is 0..=255, plus 1000 when the
/// shell itself exited (see `script::SHELL_EXITED`).
const MAX_STATUS_DIGITS: usize = 4;

/// The markers of one command (or one resynchronisation).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Markers {
    nonce: String,
}

impl Markers {
    /// Markers with a fresh random nonce.
    pub fn random() -> Self {
        let n: u64 = rand::rng().random();
        Markers {
            nonce: format!("{n:016x}"),
        }
    }

    /// Markers with a given nonce (tests); it must be non-empty ASCII alphanumerics.
    pub fn with_nonce(nonce: &str) -> Self {
        assert!(
            !nonce.is_empty() && nonce.bytes().all(|b| b.is_ascii_alphanumeric()),
            "a marker nonce must be ASCII alphanumerics"
        );
        Markers {
            nonce: nonce.to_owned(),
        }
    }

    pub fn nonce(&self) -> &str {
        &self.nonce
    }

    /// The bytes the shell prints before the command's output.
    pub fn start_marker(&self) -> Vec<u8> {
        format!("__PWS_{}__\n", self.nonce).into_bytes()
    }

    /// What every end marker begins with; the exit status and `__\n` follow.
    pub fn end_prefix(&self) -> Vec<u8> {
        format!("\x1e__PWE_{}_", self.nonce).into_bytes()
    }

    /// The complete end marker for `status` (tests and the bare-socket benchmark).
    pub fn end_marker(&self, status: i32) -> Vec<u8> {
        format!("\x1e__PWE_{}_{status}__\n", self.nonce).into_bytes()
    }

    /// Shell snippet printing the start marker; `redirect` is appended (e.g. `>&2`).
    pub fn start_snippet(&self, redirect: &str) -> String {
        format!("printf '__PW%s_%s__\\n' S {}{redirect}", self.nonce)
    }

    /// Shell snippet printing the end marker with the status held in `$var`.
    pub fn end_snippet(&self, var: &str, redirect: &str) -> String {
        format!(
            "printf '\\036__PW%s_%s_%s__\\n' E {} \"${var}\"{redirect}",
            self.nonce
        )
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Discarding everything until the start marker.
    Seeking,
    /// Passing output through, watching for the end marker.
    Body,
    /// The end marker was seen; the rest is discarded.
    Done(i32),
}

/// Outcome of matching the end marker at a position.
enum EndMatch {
    /// A complete marker of `len` bytes with this status.
    Full(i32, usize),
    /// The bytes so far could still become a marker.
    Partial,
    /// Not a marker.
    No,
}

/// Finds one command's output between its markers in a byte stream fed in arbitrary pieces.
/// It never holds more than one marker's length of unresolved bytes: everything else is either
/// handed to the caller's sink at once or discarded.
#[derive(Debug)]
pub struct MarkerParser {
    start: Vec<u8>,
    end_prefix: Vec<u8>,
    state: State,
    /// Bytes that may be the beginning of a marker, waiting for more input.
    pending: Vec<u8>,
}

impl MarkerParser {
    pub fn new(markers: &Markers) -> Self {
        MarkerParser {
            start: markers.start_marker(),
            end_prefix: markers.end_prefix(),
            state: State::Seeking,
            pending: Vec::new(),
        }
    }

    /// A parser for a stream that carries no start marker: everything up to the end marker is
    /// output (stderr of pipe-fed shells, which print no prompt or echo there).
    pub fn new_started(markers: &Markers) -> Self {
        let mut p = Self::new(markers);
        p.state = State::Body;
        p
    }

    /// True once the start marker has been seen.
    pub fn started(&self) -> bool {
        self.state != State::Seeking
    }

    /// The exit status, once the end marker has been seen.
    pub fn finished(&self) -> Option<i32> {
        match self.state {
            State::Done(code) => Some(code),
            _ => None,
        }
    }

    /// Bytes held back because they may begin a marker (bounded by the marker length).
    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    /// The longest a marker can be; `pending_len()` never exceeds it.
    pub fn max_marker_len(&self) -> usize {
        self.start
            .len()
            .max(self.end_prefix.len() + MAX_STATUS_DIGITS + 3)
    }

    /// Consume `data`; command output goes to `sink`. Returns the exit status when this piece
    /// completed the end marker.
    pub fn feed(&mut self, data: &[u8], sink: &mut dyn FnMut(&[u8])) -> Option<i32> {
        if data.is_empty() {
            return None;
        }
        match self.state {
            State::Done(_) => None,
            State::Seeking => {
                let mut buf = std::mem::take(&mut self.pending);
                buf.extend_from_slice(data);
                match find(&buf, &self.start) {
                    Some(pos) => {
                        self.state = State::Body;
                        let rest = buf[pos + self.start.len()..].to_vec();
                        self.feed_body(&rest, sink)
                    }
                    None => {
                        // Keep only a tail that could still be the start of the marker.
                        let keep = self.start.len() - 1;
                        let from = buf.len().saturating_sub(keep);
                        self.pending = buf[from..].to_vec();
                        None
                    }
                }
            }
            State::Body => {
                if self.pending.is_empty() {
                    self.feed_body(data, sink)
                } else {
                    let mut buf = std::mem::take(&mut self.pending);
                    buf.extend_from_slice(data);
                    self.feed_body(&buf, sink)
                }
            }
        }
    }

    fn feed_body(&mut self, buf: &[u8], sink: &mut dyn FnMut(&[u8])) -> Option<i32> {
        let mut i = 0;
        loop {
            let Some(off) = buf[i..].iter().position(|&b| b == END_LEAD) else {
                if i < buf.len() {
                    sink(&buf[i..]);
                }
                return None;
            };
            let p = i + off;
            if p > i {
                sink(&buf[i..p]);
            }
            match self.match_end(&buf[p..]) {
                EndMatch::Full(code, _len) => {
                    self.state = State::Done(code);
                    self.pending.clear();
                    return Some(code);
                }
                EndMatch::Partial => {
                    self.pending = buf[p..].to_vec();
                    return None;
                }
                EndMatch::No => {
                    sink(&buf[p..p + 1]);
                    i = p + 1;
                }
            }
        }
    }

    /// Match the end marker at the start of `s` (which begins with [`END_LEAD`]).
    fn match_end(&self, s: &[u8]) -> EndMatch {
        let prefix = &self.end_prefix;
        let n = prefix.len().min(s.len());
        if s[..n] != prefix[..n] {
            return EndMatch::No;
        }
        if s.len() < prefix.len() {
            return EndMatch::Partial;
        }
        let rest = &s[prefix.len()..];
        let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        if digits > MAX_STATUS_DIGITS {
            return EndMatch::No;
        }
        if digits == rest.len() {
            return EndMatch::Partial;
        }
        if digits == 0 {
            return EndMatch::No;
        }
        let tail = &rest[digits..];
        const CLOSE: &[u8] = b"__\n";
        let m = CLOSE.len().min(tail.len());
        if tail[..m] != CLOSE[..m] {
            return EndMatch::No;
        }
        if tail.len() < CLOSE.len() {
            return EndMatch::Partial;
        }
        let code: i32 = std::str::from_utf8(&rest[..digits])
            .ok()
            .and_then(|d| d.parse().ok())
            .unwrap_or(-1);
        EndMatch::Full(code, prefix.len() + digits + CLOSE.len())
    }
}

/// Position of `needle` in `haystack`.
pub(crate) fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || haystack.len() < needle.len() {
        return None;
    }
    let first = needle[0];
    let last_start = haystack.len() - needle.len();
    let mut i = 0;
    while i <= last_start {
        let off = haystack[i..=last_start].iter().position(|&b| b == first)?;
        let p = i + off;
        if &haystack[p..p + needle.len()] == needle {
            return Some(p);
        }
        i = p + 1;
    }
    None
}

/// Output kept for one stream of one command: at most `cap` bytes; the rest is counted and
/// dropped so that a huge output never grows memory beyond the cap.
#[derive(Debug, Default)]
pub struct CappedBuffer {
    data: Vec<u8>,
    cap: usize,
    truncated: bool,
    total: u64,
}

impl CappedBuffer {
    pub fn new(cap: usize) -> Self {
        CappedBuffer {
            data: Vec::new(),
            cap,
            truncated: false,
            total: 0,
        }
    }

    pub fn push(&mut self, bytes: &[u8]) {
        self.total += bytes.len() as u64;
        let room = self.cap.saturating_sub(self.data.len());
        if bytes.len() > room {
            self.truncated = true;
        }
        let take = bytes.len().min(room);
        self.data.extend_from_slice(&bytes[..take]);
    }

    pub fn truncated(&self) -> bool {
        self.truncated
    }

    /// Every byte seen, kept or not.
    pub fn total(&self) -> u64 {
        self.total
    }

    pub fn bytes(&self) -> &[u8] {
        &self.data
    }

    /// The kept bytes as text without copying them when they are valid UTF-8; invalid
    /// sequences become U+FFFD instead of failing.
    pub fn into_string_lossy(self) -> String {
        match String::from_utf8(self.data) {
            Ok(s) => s,
            Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
        }
    }

    /// The kept bytes as text; invalid UTF-8 becomes U+FFFD instead of failing.
    pub fn to_string_lossy(&self) -> String {
        String::from_utf8_lossy(&self.data).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(parser: &mut MarkerParser, pieces: &[&[u8]]) -> (Vec<u8>, Option<i32>) {
        let mut out = Vec::new();
        let mut code = None;
        for p in pieces {
            if let Some(c) = parser.feed(p, &mut |b| out.extend_from_slice(b)) {
                code = Some(c);
            }
        }
        (out, code)
    }

    #[test]
    fn frames_output_between_markers() {
        let m = Markers::with_nonce("abc123");
        let mut p = MarkerParser::new(&m);
        let stream = b"prompt$ echo junk\n__PWS_abc123__\nhello\nworld\x1e__PWE_abc123_7__\n$ ";
        let (out, code) = run(&mut p, &[stream]);
        assert_eq!(out, b"hello\nworld");
        assert_eq!(code, Some(7));
    }

    #[test]
    fn output_without_trailing_newline_is_exact() {
        let m = Markers::with_nonce("n1");
        let mut p = MarkerParser::new(&m);
        let (out, code) = run(&mut p, &[b"__PWS_n1__\nabc\x1e__PWE_n1_0__\n"]);
        assert_eq!(out, b"abc");
        assert_eq!(code, Some(0));
        let mut p = MarkerParser::new(&m);
        let (out, _) = run(&mut p, &[b"__PWS_n1__\nabc\n\x1e__PWE_n1_0__\n"]);
        assert_eq!(out, b"abc\n");
    }

    #[test]
    fn echoed_snippets_do_not_contain_markers() {
        let m = Markers::with_nonce("deadbeef");
        let echoed = format!("{}; {}", m.start_snippet(""), m.end_snippet("rc", ""));
        assert!(find(echoed.as_bytes(), &m.start_marker()).is_none());
        assert!(find(echoed.as_bytes(), &m.end_prefix()[1..]).is_none());
    }

    #[test]
    fn other_nonces_and_malformed_markers_are_output() {
        let m = Markers::with_nonce("aaaa");
        let mut p = MarkerParser::new(&m);
        let body = b"x\x1e__PWE_bbbb_0__\n\x1e__PWE_aaaa_x__\n\x1e__PWE_aaaa_12345__\n\x1e__PWE_aaaa_1_\n\n__PWE_aaaa_2__\n";
        let mut stream = b"__PWS_aaaa__\n".to_vec();
        stream.extend_from_slice(body);
        stream.extend_from_slice(b"\x1e__PWE_aaaa_3__\n");
        let (out, code) = run(&mut p, &[&stream]);
        assert_eq!(out, body);
        assert_eq!(code, Some(3));
    }

    #[test]
    fn marker_split_byte_by_byte() {
        let m = Markers::with_nonce("f00d");
        let mut p = MarkerParser::new(&m);
        let stream = b"noise__PWS_f00d__\nout\x1e__PWE_f00d_42__\n";
        let pieces: Vec<&[u8]> = stream.chunks(1).collect();
        let (out, code) = run(&mut p, &pieces);
        assert_eq!(out, b"out");
        assert_eq!(code, Some(42));
    }

    #[test]
    fn capped_buffer_keeps_the_cap_and_flags() {
        let mut b = CappedBuffer::new(4);
        b.push(b"ab");
        b.push(b"cdef");
        b.push(b"g");
        assert_eq!(b.bytes(), b"abcd");
        assert!(b.truncated());
        assert_eq!(b.total(), 7);
        let mut b = CappedBuffer::new(8);
        b.push(&[0xff, 0xfe, b'a']);
        assert_eq!(b.to_string_lossy(), "\u{fffd}\u{fffd}a");
    }
}
