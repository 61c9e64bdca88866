//! Terminal output: colours that honour `NO_COLOR`, `--no-color` and pipes, tables that fit the
//! terminal, JSON for scripts, and text made safe to print.

use std::io::{IsTerminal, Write};

use comfy_table::{ContentArrangement, ContentLineStyle, LineStyle, Table, TableStyle, presets};
use owo_colors::{OwoColorize, Stream};
use serde::Serialize;

/// Prints a value as pretty JSON on stdout (the `--json` shape of every command).
pub fn print_json<T: Serialize>(value: &T) {
    let text = serde_json::to_string_pretty(value).expect("API types serialise");
    println!("{text}");
}

/// The terminal's width when stdout is a terminal.
pub fn stdout_width() -> Option<u16> {
    if !std::io::stdout().is_terminal() {
        return None;
    }
    console::Term::stdout().size_checked().map(|(_, cols)| cols)
}

fn utf8_locale() -> bool {
    ["LC_ALL", "LC_CTYPE", "LANG"]
        .iter()
        .find_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
        .map(|v| {
            let v = v.to_ascii_lowercase();
            v.contains("utf-8") || v.contains("utf8")
        })
        .unwrap_or(false)
}

/// Rounded corners, a light header rule, no lines between rows.
const ROUNDED: TableStyle = TableStyle::new()
    .top_border(LineStyle::new('╭', '─', '┬', '╮'))
    .header_lines(ContentLineStyle::new('│', '│', '│'))
    .header_separator(LineStyle::new('├', '─', '┼', '┤'))
    .content_lines(ContentLineStyle::new('│', '│', '│'))
    .bottom_border(LineStyle::new('╰', '─', '┴', '╯'));

/// Prints a table. On a terminal it is boxed and fitted to the width, one line per row: the
/// last column (the free text: output, command, tags) is cut with an ellipsis to what is left.
/// In a pipe it is plain aligned columns, nothing cut.
pub fn print_rows(headers: &[&str], rows: Vec<Vec<String>>) {
    let t = build_table(headers, rows, stdout_width(), utf8_locale());
    let mut out = std::io::stdout().lock();
    for line in t.lines() {
        let _ = writeln!(out, "{}", line.trim_end());
    }
}

fn build_table(
    headers: &[&str],
    mut rows: Vec<Vec<String>>,
    width: Option<u16>,
    utf8: bool,
) -> Table {
    let mut t = Table::new();
    match width {
        Some(width) => {
            let tail = if utf8 {
                t.load_style(ROUNDED);
                "…"
            } else {
                t.load_style(presets::ASCII_FULL_CONDENSED)
                    .set_truncation_indicator("~");
                "~"
            };
            let n = headers.len();
            let fixed: usize = (0..n.saturating_sub(1))
                .map(|i| {
                    rows.iter()
                        .map(|r| console::measure_text_width(&r[i]))
                        .chain([headers[i].len()])
                        .max()
                        .unwrap_or(0)
                })
                .sum();
            // Each column adds a separator and two spaces of padding; one more border closes it.
            let frame = 1 + 3 * n;
            let left = (width as usize).saturating_sub(fixed + frame);
            if left >= 8 {
                for r in &mut rows {
                    if let Some(last) = r.last_mut() {
                        *last = console::truncate_str(last, left, tail).into_owned();
                    }
                }
                t.set_content_arrangement(ContentArrangement::Disabled);
            } else {
                // Too narrow for the fixed columns: let comfy-table squeeze every column.
                t.set_content_arrangement(ContentArrangement::Dynamic)
                    .set_width(width);
            }
        }
        None => {
            t.load_style(presets::NOTHING);
            t.set_content_arrangement(ContentArrangement::Disabled);
        }
    }
    t.set_header(headers.iter().map(|h| h.to_string()));
    for r in rows {
        let mut row = comfy_table::Row::from(r);
        row.max_height(1);
        t.add_row(row);
    }
    if width.is_none() {
        // Plain columns start at the left margin, like ls -l or kubectl get.
        if let Some(first) = t.column_mut(0) {
            first.set_padding((0, 1));
        }
    }
    t
}

/// Text from a pod made safe for one table cell or one terminal line: control characters
/// (escape sequences, carriage returns, tabs) become spaces or vanish.
pub fn clean_line(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            // CSI sequences: ESC [ params final-byte.
            '\u{1b}' => {
                if chars.peek() == Some(&'[') {
                    chars.next();
                    for c in chars.by_ref() {
                        if ('\u{40}'..='\u{7e}').contains(&c) {
                            break;
                        }
                    }
                }
            }
            '\t' => out.push(' '),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out.trim().to_string()
}

/// The first non-empty line of some output, cleaned.
pub fn first_line(text: &str) -> String {
    text.lines()
        .map(clean_line)
        .find(|l| !l.is_empty())
        .unwrap_or_default()
}

/// `850 ms`, `1.2 s`, `2m 03s`.
pub fn duration(ms: Option<f64>) -> String {
    match ms {
        None => "-".into(),
        Some(ms) if ms < 1000.0 => format!("{ms:.0} ms"),
        Some(ms) if ms < 60_000.0 => format!("{:.1} s", ms / 1000.0),
        Some(ms) => {
            let secs = (ms / 1000.0).round() as u64;
            format!("{}m {:02}s", secs / 60, secs % 60)
        }
    }
}

/// `07:38:17` today, `11-26 07:38` before, `2025-11-26` in another year: table rows stay
/// narrow.
pub fn short_time(t: &chrono::DateTime<chrono::Utc>) -> String {
    use chrono::Datelike;
    let local = t.with_timezone(&chrono::Local);
    let now = chrono::Local::now();
    if local.date_naive() == now.date_naive() {
        local.format("%H:%M:%S").to_string()
    } else if local.year() == now.year() {
        local.format("%m-%d %H:%M").to_string()
    } else {
        local.format("%Y-%m-%d").to_string()
    }
}

/// `3d 4h`, `2h 5m`, `4m 10s`, `12s`.
pub fn uptime(secs: f64) -> String {
    let s = secs.max(0.0) as u64;
    let (d, h, m, sec) = (s / 86_400, s / 3600 % 24, s / 60 % 60, s % 60);
    if d > 0 {
        format!("{d}d {h}h")
    } else if h > 0 {
        format!("{h}h {m}m")
    } else if m > 0 {
        format!("{m}m {sec}s")
    } else {
        format!("{sec}s")
    }
}

/// Green on a colour terminal.
pub fn good(text: &str) -> String {
    text.if_supports_color(Stream::Stdout, |t| t.green())
        .to_string()
}

/// Red on a colour terminal.
pub fn bad(text: &str) -> String {
    text.if_supports_color(Stream::Stdout, |t| t.red())
        .to_string()
}

/// Yellow on a colour terminal.
pub fn warn(text: &str) -> String {
    text.if_supports_color(Stream::Stdout, |t| t.yellow())
        .to_string()
}

/// Bold on a colour terminal.
pub fn strong(text: &str) -> String {
    text.if_supports_color(Stream::Stdout, |t| t.bold())
        .to_string()
}

/// Dim on a colour terminal.
pub fn dim(text: &str) -> String {
    text.if_supports_color(Stream::Stdout, |t| t.dimmed())
        .to_string()
}

/// `error:` in red on stderr, then the message.
pub fn error_line(message: &str) {
    let label = "error:";
    eprintln!(
        "{} {message}",
        label.if_supports_color(Stream::Stderr, |t| t.red().bold().to_string())
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_line_strips_escapes_and_control_characters() {
        assert_eq!(clean_line("\u{1b}[1;31mred\u{1b}[0m\r"), "red");
        assert_eq!(clean_line("a\tb\u{7}"), "a b");
        assert_eq!(first_line("\n\n  hello\nworld"), "hello");
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(duration(Some(850.4)), "850 ms");
        assert_eq!(duration(Some(1234.0)), "1.2 s");
        assert_eq!(duration(Some(123_000.0)), "2m 03s");
        assert_eq!(duration(None), "-");
        assert_eq!(uptime(3725.0), "1h 2m");
    }

    #[test]
    fn rows_stay_one_line_at_80_columns_and_the_last_column_is_cut() {
        let rows = vec![
            vec![
                "web-5d8f7-00000".into(),
                "0".into(),
                "12 ms".into(),
                "x".repeat(300),
            ],
            vec!["web-1".into(), "3".into(), "1.0 s".into(), "short".into()],
        ];
        for utf8 in [true, false] {
            let t = build_table(
                &["POD", "EXIT", "DURATION", "OUTPUT"],
                rows.clone(),
                Some(80),
                utf8,
            );
            let lines: Vec<String> = t.lines().collect();
            assert_eq!(lines.len(), 6, "{lines:#?}");
            for l in &lines {
                assert_eq!(console::measure_text_width(l), 80, "{l}");
            }
            assert!(
                lines[3].contains(if utf8 { '…' } else { '~' }),
                "{}",
                lines[3]
            );
        }
        // Narrower than the fixed columns: still no line wider than the terminal.
        let t = build_table(
            &["POD", "EXIT", "DURATION", "OUTPUT"],
            rows.clone(),
            Some(30),
            true,
        );
        for l in t.lines() {
            assert!(console::measure_text_width(&l) <= 30, "{l}");
        }
        // In a pipe nothing is cut.
        let t = build_table(&["POD", "EXIT", "DURATION", "OUTPUT"], rows, None, true);
        assert!(t.lines().any(|l| l.contains(&"x".repeat(300))));
    }
}
