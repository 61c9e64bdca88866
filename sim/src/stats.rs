//! Memory and connection figures for `GET /_podsim/stats`: podsim's own RSS and that of every
//! process it started (shells and what they run), read from /proc.

use std::collections::HashMap;
use std::sync::atomic::Ordering;

use serde_json::{Value, json};

use crate::state::State;

/// A `kB` field of a /proc status-like file, in bytes.
fn kb_field(text: &str, field: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        })
        .map(|kb| kb * 1024)
}

fn rss_of(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| kb_field(&s, "VmRSS:"))
        .unwrap_or(0)
}

/// Proportional set size: shared pages split between the processes sharing them, so the sum
/// over many shells is what they really cost.
fn pss_of(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
        .ok()
        .and_then(|s| kb_field(&s, "Pss:"))
        .unwrap_or(0)
}

/// All descendants of `root` (parent links read from /proc/*/stat).
pub fn descendants(root: u32) -> Vec<u32> {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for e in dir.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                continue;
            };
            // The command name may contain spaces and parentheses: fields start after the last ')'.
            let Some(after) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
                continue;
            };
            if let Some(ppid) = after.split_whitespace().nth(1).and_then(|s| s.parse().ok()) {
                children.entry(ppid).or_default().push(pid);
            }
        }
    }
    let mut out = Vec::new();
    let mut stack = vec![root];
    while let Some(p) = stack.pop() {
        if let Some(c) = children.get(&p) {
            out.extend(c);
            stack.extend(c);
        }
    }
    out
}

pub fn global(state: &State) -> Value {
    let me = std::process::id();
    let kids = descendants(me);
    let rss = rss_of(me);
    let kids_rss: u64 = kids.iter().map(|&p| rss_of(p)).sum();
    let pss = pss_of(me);
    let kids_pss: u64 = kids.iter().map(|&p| pss_of(p)).sum();
    let pods = state.cluster.pods();
    let total: u64 = pods
        .iter()
        .map(|p| p.connections_total.load(Ordering::SeqCst))
        .sum();
    let live: usize = pods.iter().map(|p| p.live_count()).sum();
    json!({
        "pods": pods.len(),
        "connections_total": total,
        "connections_live": live,
        "rss_bytes": rss,
        "children": kids.len(),
        "children_rss_bytes": kids_rss,
        "total_rss_bytes": rss + kids_rss,
        "pss_bytes": pss,
        "children_pss_bytes": kids_pss,
        "total_pss_bytes": pss + kids_pss,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_kb_fields() {
        let s = "Name:\tx\nVmRSS:\t    1234 kB\nVmSwap:\t0 kB\n";
        assert_eq!(kb_field(s, "VmRSS:"), Some(1234 * 1024));
        assert_eq!(kb_field(s, "Pss:"), None);
    }

    #[test]
    fn own_rss_is_visible() {
        assert!(rss_of(std::process::id()) > 0);
    }
}
