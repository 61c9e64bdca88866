//! How `pwctl exec run-many` and `pwctl exec job` show a fan-out: live lines prefixed by their
//! pod (one colour per pod, whole lines only), groups of identical output under a folded pod
//! list, how each minority group differs from the largest, and the exit status roll-up.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::io::Write;

use owo_colors::{AnsiColors, OwoColorize, Stream};
use podwrangler::api::{CommandStatus, JobSummary, OutputGroup, SkippedGroup};

/// Exit status of `run-many` for a pod whose command could not run or lost its connection
/// (like ssh and `clush -S`).
pub const CONNECTION_FAILURE: i32 = 255;

/// What one pod's result adds to the exit status: 0 for success, its exit code when it failed,
/// 124 when it timed out, 130 when it was cancelled, 255 when it could not run; skipped pods
/// add nothing of their own (the failures that stopped the job do).
pub fn pod_exit(status: CommandStatus, exit_code: Option<i32>) -> i32 {
    match status {
        CommandStatus::Succeeded | CommandStatus::Skipped | CommandStatus::Running => 0,
        CommandStatus::Failed => exit_code
            .map(crate::exec::passthrough)
            .filter(|c| *c != 0)
            .unwrap_or(crate::error::exit::FAILURE),
        CommandStatus::Timeout => crate::error::exit::TIMEOUT,
        CommandStatus::Cancelled => crate::error::exit::CANCELLED,
        CommandStatus::Error | CommandStatus::Interrupted => CONNECTION_FAILURE,
    }
}

/// The exit status of a fan-out: 0 only when every pod succeeded, else the largest of
/// [`pod_exit`]; 1 when nothing failed but some pods were skipped or none ran.
pub fn rollup(results: impl IntoIterator<Item = (CommandStatus, Option<i32>)>) -> i32 {
    let mut worst = 0;
    let mut all_succeeded = true;
    let mut any = false;
    for (status, code) in results {
        any = true;
        all_succeeded &= status == CommandStatus::Succeeded;
        worst = worst.max(pod_exit(status, code));
    }
    match (worst, all_succeeded && any) {
        (0, true) => 0,
        (0, false) => crate::error::exit::FAILURE,
        (w, _) => w,
    }
}

const PALETTE: [AnsiColors; 10] = [
    AnsiColors::Cyan,
    AnsiColors::Green,
    AnsiColors::Yellow,
    AnsiColors::Blue,
    AnsiColors::Magenta,
    AnsiColors::BrightCyan,
    AnsiColors::BrightGreen,
    AnsiColors::BrightYellow,
    AnsiColors::BrightBlue,
    AnsiColors::BrightMagenta,
];

/// A pod's colour: the same pod gets the same one in every run.
fn colour_of(alias: &str) -> AnsiColors {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    alias.hash(&mut h);
    PALETTE[(h.finish() % PALETTE.len() as u64) as usize]
}

/// Prints streamed output as whole lines, each prefixed by its pod. Chunks end anywhere, so a
/// pod's partial line waits in its buffer until its newline (or the pod's end) arrives, and
/// lines of different pods never interleave mid-line.
#[derive(Default)]
pub struct LinePrinter {
    partial: HashMap<(String, bool), String>,
}

impl LinePrinter {
    pub fn new() -> Self {
        Self::default()
    }

    fn print_line(alias: &str, stderr: bool, line: &str) {
        let colour = colour_of(alias);
        let stream = if stderr {
            Stream::Stderr
        } else {
            Stream::Stdout
        };
        let prefix = format!("{alias}:");
        let prefix = prefix.if_supports_color(stream, |t| t.color(colour));
        let line = line.strip_suffix('\r').unwrap_or(line);
        if stderr {
            let _ = writeln!(std::io::stderr().lock(), "{prefix} {line}");
        } else {
            let _ = writeln!(std::io::stdout().lock(), "{prefix} {line}");
        }
    }

    /// A chunk of one pod's stdout (or stderr).
    pub fn chunk(&mut self, alias: &str, stderr: bool, data: &str) {
        let buf = self.partial.entry((alias.to_owned(), stderr)).or_default();
        buf.push_str(data);
        if !buf.contains('\n') {
            return;
        }
        let text = std::mem::take(buf);
        let mut lines = text.split('\n').peekable();
        while let Some(line) = lines.next() {
            if lines.peek().is_none() {
                // After the last newline: the start of a line still to come.
                buf.push_str(line);
            } else {
                Self::print_line(alias, stderr, line);
            }
        }
        let _ = std::io::stdout().flush();
    }

    /// The pod has finished: its unfinished lines are printed as they are.
    pub fn finish(&mut self, alias: &str) {
        for stderr in [false, true] {
            if let Some(rest) = self.partial.remove(&(alias.to_owned(), stderr))
                && !rest.is_empty()
            {
                Self::print_line(alias, stderr, &rest);
            }
        }
    }
}

/// The text a group stands for: stdout, then stderr, then the error.
fn group_text(g: &OutputGroup) -> String {
    let mut text = g.stdout.clone();
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    for line in g.stderr.lines() {
        text.push_str(&format!("stderr: {line}\n"));
    }
    if let Some(e) = &g.error {
        text.push_str(&format!("error: {e}\n"));
    }
    text
}

fn outcome(g: &OutputGroup) -> String {
    match (g.status, g.exit_code) {
        (CommandStatus::Succeeded, _) => String::new(),
        (CommandStatus::Failed, Some(code)) => format!(" exit {code}"),
        (status, _) => format!(" {}", status.as_str()),
    }
}

fn header(g: &OutputGroup) -> String {
    format!("{} ({}){}", g.pods, g.count, outcome(g))
}

/// Prints each group under a rule and its folded pod list, largest first (the order the
/// summary has), then the pods not run.
pub fn print_groups(groups: &[OutputGroup], skipped: &[SkippedGroup]) {
    let rule = "-".repeat(15);
    for g in groups {
        let head = header(g);
        let head = if g.status == CommandStatus::Succeeded {
            crate::output::strong(&head)
        } else {
            crate::output::bad(&head)
        };
        println!("{rule}\n{head}\n{rule}");
        print!("{}", group_text(g));
        if g.truncated {
            println!(
                "{}",
                crate::output::warn("(output truncated by the daemon)")
            );
        }
    }
    print_skipped(skipped);
}

fn print_skipped(skipped: &[SkippedGroup]) {
    for s in skipped {
        println!(
            "{} {} ({}): {}",
            crate::output::warn("skipped"),
            s.pods,
            s.count,
            s.reason.strip_prefix("skipped: ").unwrap_or(&s.reason)
        );
    }
}

/// Prints how each minority group differs from the largest: a unified line diff of their
/// output, headed by both pod lists.
pub fn print_diffs(groups: &[OutputGroup]) {
    let Some((largest, rest)) = groups.split_first() else {
        return;
    };
    let base = group_text(largest);
    for g in rest {
        let text = group_text(g);
        let diff = similar::TextDiff::from_lines(&base, &text);
        println!(
            "{}",
            crate::output::strong(&format!("--- {}", header(largest)))
        );
        println!("{}", crate::output::strong(&format!("+++ {}", header(g))));
        if base == text {
            println!(
                " (same output;{} instead of{})",
                outcome(g),
                if outcome(largest).is_empty() {
                    " success".to_owned()
                } else {
                    outcome(largest)
                }
            );
            continue;
        }
        for hunk in diff.unified_diff().context_radius(3).iter_hunks() {
            println!("{}", crate::output::dim(&hunk.header().to_string()));
            for change in hunk.iter_changes() {
                let line = format!("{}{}", change.tag(), change.value());
                let line = line.strip_suffix('\n').unwrap_or(&line);
                match change.tag() {
                    similar::ChangeTag::Delete => println!("{}", crate::output::bad(line)),
                    similar::ChangeTag::Insert => println!("{}", crate::output::good(line)),
                    similar::ChangeTag::Equal => println!("{line}"),
                }
            }
        }
    }
}

/// One line of counts: `50 pods: 47 succeeded, 3 failed, 0 skipped`.
pub fn counts_line(summary: &JobSummary) -> String {
    let n = |k: &str| summary.counts.get(k).copied().unwrap_or(0);
    let total: usize = summary.counts.values().sum();
    let succeeded = n("succeeded");
    let skipped = n("skipped");
    let mut line = format!(
        "{total} pod{}: {succeeded} succeeded, {} failed",
        if total == 1 { "" } else { "s" },
        total - succeeded - skipped
    );
    if skipped > 0 {
        line.push_str(&format!(", {skipped} skipped"));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use CommandStatus::*;

    #[test]
    fn exit_status_rolls_up_to_the_largest() {
        assert_eq!(rollup([(Succeeded, Some(0)), (Succeeded, Some(0))]), 0);
        assert_eq!(rollup([(Succeeded, Some(0)), (Failed, Some(3))]), 3);
        assert_eq!(rollup([(Failed, Some(3)), (Failed, Some(7))]), 7);
        assert_eq!(rollup([(Failed, Some(3)), (Timeout, None)]), 124);
        assert_eq!(rollup([(Error, None), (Failed, Some(7))]), 255);
        assert_eq!(rollup([(Failed, Some(2)), (Skipped, None)]), 2);
        assert_eq!(rollup([(Succeeded, Some(0)), (Skipped, None)]), 1);
        assert_eq!(rollup(std::iter::empty()), 1);
        assert_eq!(rollup([(Cancelled, None)]), 130);
    }
}
