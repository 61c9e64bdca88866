//! The shell text sent for one command: markers around `command eval '<cmd>' </dev/null`, and
//! for TTYs, long or control-character commands written to a temp file in short lines first.
//!
//! Why each piece is there:
//! - `eval` of a single-quoted string (`'` -> `'\''`) runs any text in the current shell, so `cd`
//!   and `export` carry over and an unclosed quote is just a syntax error inside the eval.
//! - `command eval`: a syntax error in a plain `eval` makes a non-interactive POSIX shell (dash,
//!   `bash --posix`) exit; through `command` it only fails with status 2.
//! - `</dev/null`: a command that reads stdin (`cat`, `read x`) must not eat the next command.
//! - The exit status is saved at once so the marker `printf`s cannot change it.
//! - A command that ends the shell (`exit 7`, `exec` of something that ends) still prints its
//!   end marker, from an EXIT trap set around the command and cleared after it; the status it
//!   carries is the exit status plus [`SHELL_EXITED`], so the engine knows the shell is gone.
//! - On a TTY in canonical mode the kernel cuts input lines near 4096 bytes and interprets
//!   control characters (^C, ^U, ^D, DEL), so such commands are sent as `printf` lines of a few
//!   hundred bytes, with control characters as octal escapes, that rebuild the command in a temp
//!   file, which is then sourced.

use super::marker::Markers;

/// Longest physical line sent to a TTY; well under the 4096-byte canonical limit even after
/// quote escaping.
pub const TTY_MAX_LINE: usize = 1000;
/// Raw command bytes per `printf` line when a command goes through a temp file.
const TTY_CHUNK: usize = 400;

/// Added to the status in the end marker when the shell itself exited during the command. Exit
/// statuses are 0..=255, so a status at or above this cannot come from a command that returned.
pub const SHELL_EXITED: i32 = 1000;

/// `'` -> `'\''`, for text inside single quotes.
pub fn single_quote_escape(text: &str) -> String {
    text.replace('\'', "'\\''")
}

/// The text to send to run `command` framed by `markers`. `tty` selects the terminal-safe form;
/// `split_stderr` adds an end marker on stderr too (endpoints that keep stderr apart).
pub fn build(command: &str, markers: &Markers, tty: bool, split_stderr: bool) -> String {
    build_with(command, markers, tty, split_stderr, "/dev/null", "")
}

/// [`build`] with another stdin for the command (a shell word, e.g. `"$__pw_in"`) and shell
/// text run after it, once its status is saved (clean-up that must not change that status).
pub fn build_with(
    command: &str,
    markers: &Markers,
    tty: bool,
    split_stderr: bool,
    stdin: &str,
    after: &str,
) -> String {
    // stderr gets only an end marker: a pipe-fed shell prints no prompt or echo there, and
    // every byte up to the previous end marker was consumed, so that is one write fewer.
    let start = markers.start_snippet("");
    let end = if split_stderr {
        format!(
            "{}; {}",
            markers.end_snippet("__pw_rc", " >&2"),
            markers.end_snippet("__pw_rc", "")
        )
    } else {
        markers.end_snippet("__pw_rc", "")
    };
    // The trap prints the end marker if the command ends the shell; cleared once it returns.
    let trap_end = if split_stderr {
        format!(
            "{}; {}",
            markers.end_snippet("__pw_x", " >&2"),
            markers.end_snippet("__pw_x", "")
        )
    } else {
        markers.end_snippet("__pw_x", "")
    };
    let start = format!(
        "__pw_q() {{ __pw_x=$(($? + {SHELL_EXITED})); {trap_end}; }}; trap __pw_q EXIT; {start}"
    );
    let end = format!("trap - EXIT; {end}");
    let escaped = single_quote_escape(command);
    let after = if after.is_empty() {
        String::new()
    } else {
        format!("{after}; ")
    };
    let direct = format!("{start}; command eval '{escaped}' <{stdin}; __pw_rc=$?; {after}{end}\n");
    if !tty || !needs_file(&direct) {
        return direct;
    }
    let file = format!("\"${{TMPDIR:-/tmp}}/.pw_cmd_$$_{}\"", markers.nonce());
    let mut out = String::with_capacity(command.len() * 2 + 512);
    out.push_str(&format!("__pw_f={file}; : >\"$__pw_f\"\n"));
    for chunk in chunks(command, TTY_CHUNK) {
        out.push_str("printf '");
        out.push_str(&printf_format_escape(chunk));
        out.push_str("' >>\"$__pw_f\"\n");
    }
    out.push_str(&format!(
        "{start}; command . \"$__pw_f\" <{stdin}; __pw_rc=$?; rm -f \"$__pw_f\"; {after}{end}\n"
    ));
    out
}

/// True when the text cannot go to a TTY as is: a line too long, or a control character that
/// the line discipline would act on.
fn needs_file(script: &str) -> bool {
    script.split('\n').any(|line| line.len() > TTY_MAX_LINE)
        || script
            .bytes()
            .any(|b| (b < 0x20 && b != b'\n' && b != b'\t') || b == 0x7f)
}

/// Pieces of at most `max` bytes, cut on char boundaries (frames must stay valid UTF-8).
fn chunks(text: &str, max: usize) -> impl Iterator<Item = &str> {
    let mut rest = text;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let mut cut = rest.len().min(max);
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        let (head, tail) = rest.split_at(cut);
        rest = tail;
        Some(head)
    })
}

/// Text as a single-quoted `printf` format that prints it exactly: `%` and `\` doubled, `'`
/// closed and reopened, control characters as octal escapes.
fn printf_format_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match c {
            '%' => out.push_str("%%"),
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("'\\''"),
            '\n' | '\t' => out.push(c),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\{:03o}", c as u32));
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_commands_are_one_eval() {
        let m = Markers::with_nonce("ab12");
        let s = build("echo 'hi'", &m, true, false);
        assert!(
            s.contains("command eval 'echo '\\''hi'\\''' </dev/null"),
            "{s}"
        );
        assert_eq!(s.matches('\n').count(), 1);
        assert!(
            s.contains("trap __pw_q EXIT") && s.contains("trap - EXIT"),
            "{s}"
        );
    }

    #[test]
    fn long_tty_commands_go_through_short_lines() {
        let m = Markers::with_nonce("ab12");
        let cmd = format!("echo {}", "x".repeat(100 * 1024));
        let s = build(&cmd, &m, true, false);
        assert!(
            s.lines().all(|l| l.len() <= TTY_MAX_LINE),
            "a line is too long"
        );
        assert!(s.contains("command . \"$__pw_f\""));
        // Without a TTY the command goes as is.
        let s = build(&cmd, &m, false, true);
        assert_eq!(s.lines().count(), 1);
    }

    #[test]
    fn control_characters_never_reach_a_tty_raw() {
        let m = Markers::with_nonce("ab12");
        let s = build("printf 'a\x03b\x15c\x7f'", &m, true, false);
        assert!(
            !s.bytes().any(|b| (b < 0x20 && b != b'\n') || b == 0x7f),
            "{s:?}"
        );
        assert!(s.contains("\\003") && s.contains("\\025") && s.contains("\\177"));
    }

    #[test]
    fn chunks_respect_char_boundaries() {
        let text = "é".repeat(500);
        for c in chunks(&text, 401) {
            assert!(c.len() <= 401);
            assert!(c.chars().all(|ch| ch == 'é'));
        }
        assert_eq!(chunks(&text, 401).collect::<String>(), text);
    }
}
