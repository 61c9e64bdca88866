//! Streaming removal of terminal noise from TTY output: ANSI escape sequences (colours, bracketed
//! paste `ESC[?2004h`, titles) and carriage returns, so framing sees plain text. Sequences may be
//! split across WebSocket frames, so the filter keeps its state between calls.

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum State {
    #[default]
    Normal,
    /// After ESC.
    Esc,
    /// Inside `ESC [ ... final`.
    Csi,
    /// Inside `ESC ] ... BEL` or `ESC ] ... ESC \` (also DCS/APC/PM strings).
    Str,
    /// ESC seen inside a string; `\` ends it.
    StrEsc,
    /// After `ESC` and an intermediate byte (`ESC ( B`): one more byte ends it.
    EscIntermediate,
}

/// Removes escape sequences, CRs and BELs from a byte stream fed in pieces.
#[derive(Clone, Debug, Default)]
pub struct AnsiStripper {
    state: State,
}

const ESC: u8 = 0x1b;

impl AnsiStripper {
    pub fn new() -> Self {
        Self::default()
    }

    /// Append the visible bytes of `input` to `out`.
    pub fn filter(&mut self, input: &[u8], out: &mut Vec<u8>) {
        out.reserve(input.len());
        for &b in input {
            self.state = match self.state {
                State::Normal => match b {
                    ESC => State::Esc,
                    b'\r' | 0x07 => State::Normal,
                    _ => {
                        out.push(b);
                        State::Normal
                    }
                },
                State::Esc => match b {
                    b'[' => State::Csi,
                    b']' | b'P' | b'_' | b'^' | b'X' => State::Str,
                    0x20..=0x2f => State::EscIntermediate,
                    ESC => State::Esc,
                    _ => State::Normal,
                },
                State::Csi => match b {
                    0x40..=0x7e => State::Normal,
                    ESC => State::Esc,
                    _ => State::Csi,
                },
                State::Str => match b {
                    0x07 => State::Normal,
                    ESC => State::StrEsc,
                    _ => State::Str,
                },
                State::StrEsc => match b {
                    b'\\' => State::Normal,
                    ESC => State::StrEsc,
                    _ => State::Str,
                },
                State::EscIntermediate => State::Normal,
            };
        }
    }

    /// True when no sequence is half-read.
    pub fn is_idle(&self) -> bool {
        self.state == State::Normal
    }

    /// Forget a half-read sequence (a new connection starts clean).
    pub fn reset(&mut self) {
        self.state = State::Normal;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strip(s: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        AnsiStripper::new().filter(s, &mut out);
        out
    }

    #[test]
    fn strips_colours_paste_mode_titles_and_crs() {
        assert_eq!(strip(b"\x1b[?2004hab\x1b[01;32mc\x1b[0m\r\n"), b"abc\n");
        assert_eq!(strip(b"\x1b]0;user@host: ~\x07x"), b"x");
        assert_eq!(strip(b"\x1b]0;title\x1b\\y"), b"y");
        assert_eq!(strip(b"\x1b(Bz\x1b=w"), b"zw");
    }

    #[test]
    fn keeps_plain_text_and_utf8() {
        let text = "héllo wörld\t1\n".as_bytes();
        assert_eq!(strip(text), text);
    }

    #[test]
    fn sequences_split_across_pieces() {
        let mut s = AnsiStripper::new();
        let mut out = Vec::new();
        for piece in [&b"a\x1b"[..], b"[?20", b"04", b"hb\r", b"\nc"] {
            s.filter(piece, &mut out);
        }
        assert_eq!(out, b"ab\nc");
        assert!(s.is_idle());
    }
}
