//! Folding a fan-out's results into groups of identical output: pods whose stdout, stderr,
//! exit code, status and error are the same form one [`OutputGroup`], largest first. Used by the
//! daemon's job summaries and by `pwctl exec run-many --group`.
//!
//! Memory stays bounded by the number of distinct outputs, not of pods: each result is hashed,
//! and only the first result of each group is kept (later ones are compared against it, so a
//! hash collision never merges different outputs).

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};

use crate::api::{CommandRecord, CommandStatus, OutputGroup, SkippedGroup};
use crate::nodeset;

/// What makes two results the same.
#[derive(Hash, PartialEq, Eq)]
struct Key<'a> {
    status: CommandStatus,
    exit_code: Option<i32>,
    stdout: &'a str,
    stderr: &'a str,
    error: Option<&'a str>,
}

impl<'a> Key<'a> {
    fn of(r: &'a CommandRecord) -> Self {
        Key {
            status: r.status,
            exit_code: r.exit_code,
            stdout: &r.stdout,
            stderr: &r.stderr,
            error: r.error.as_deref(),
        }
    }
}

fn digest(key: &Key<'_>) -> u64 {
    let mut h = DefaultHasher::new();
    key.hash(&mut h);
    h.finish()
}

struct Group {
    sample: CommandRecord,
    aliases: Vec<String>,
}

/// Collects results one at a time; [`OutputGrouper::finish`] gives the groups.
#[derive(Default)]
pub struct OutputGrouper {
    groups: Vec<Group>,
    by_digest: HashMap<u64, Vec<usize>>,
    skipped: BTreeMap<String, Vec<String>>,
    counts: BTreeMap<String, usize>,
}

/// The groups of a set of results.
#[derive(Clone, Debug, PartialEq)]
pub struct Grouped {
    /// Largest first; equal sizes by their first pod.
    pub groups: Vec<OutputGroup>,
    /// Pods that did not run, by reason.
    pub skipped: Vec<SkippedGroup>,
    /// Results by status name.
    pub counts: BTreeMap<String, usize>,
}

impl OutputGrouper {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one pod's result. Skipped pods are listed apart, by reason.
    pub fn add(&mut self, r: &CommandRecord) {
        *self.counts.entry(r.status.as_str().to_owned()).or_insert(0) += 1;
        if r.status == CommandStatus::Skipped {
            let reason = r.error.clone().unwrap_or_else(|| "skipped".into());
            self.skipped
                .entry(reason)
                .or_default()
                .push(r.alias.clone());
            return;
        }
        let key = Key::of(r);
        let candidates = self.by_digest.entry(digest(&key)).or_default();
        for &i in candidates.iter() {
            if Key::of(&self.groups[i].sample) == key {
                self.groups[i].aliases.push(r.alias.clone());
                return;
            }
        }
        candidates.push(self.groups.len());
        self.groups.push(Group {
            sample: r.clone(),
            aliases: vec![r.alias.clone()],
        });
    }

    pub fn finish(self) -> Grouped {
        let mut groups: Vec<OutputGroup> = self
            .groups
            .into_iter()
            .map(|g| {
                let mut aliases = g.aliases;
                aliases.sort();
                aliases.dedup();
                OutputGroup {
                    pods: nodeset::fold(&aliases),
                    count: aliases.len(),
                    aliases,
                    status: g.sample.status,
                    exit_code: g.sample.exit_code,
                    stdout: g.sample.stdout,
                    stderr: g.sample.stderr,
                    error: g.sample.error,
                    truncated: g.sample.truncated,
                }
            })
            .collect();
        groups.sort_by(|a, b| {
            b.count
                .cmp(&a.count)
                .then_with(|| a.aliases.first().cmp(&b.aliases.first()))
        });
        let skipped = self
            .skipped
            .into_iter()
            .map(|(reason, mut aliases)| {
                aliases.sort();
                SkippedGroup {
                    pods: nodeset::fold(&aliases),
                    count: aliases.len(),
                    aliases,
                    reason,
                }
            })
            .collect();
        Grouped {
            groups,
            skipped,
            counts: self.counts,
        }
    }
}

/// Groups `records` at once.
pub fn group<'a>(records: impl IntoIterator<Item = &'a CommandRecord>) -> Grouped {
    let mut g = OutputGrouper::new();
    for r in records {
        g.add(r);
    }
    g.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(alias: &str, status: CommandStatus, code: Option<i32>, out: &str) -> CommandRecord {
        CommandRecord {
            id: 1,
            alias: alias.into(),
            pod_label: alias.into(),
            command: "x".into(),
            status,
            exit_code: code,
            stdout: out.into(),
            stderr: String::new(),
            error: None,
            truncated: false,
            started_at: chrono::Utc::now(),
            finished_at: None,
            duration_ms: None,
            actor: None,
            session_restarted: false,
            history_error: None,
            job_id: None,
        }
    }

    #[test]
    fn identical_output_and_exit_code_fold_largest_first() {
        let mut rs: Vec<CommandRecord> = (0..10)
            .map(|i| {
                record(
                    &format!("web-{i}"),
                    CommandStatus::Succeeded,
                    Some(0),
                    "ok\n",
                )
            })
            .collect();
        rs[3].stdout = "different\n".into();
        rs.push(record("web-10", CommandStatus::Failed, Some(1), "ok\n"));
        let mut skipped = record("web-11", CommandStatus::Skipped, None, "");
        skipped.error = Some("canary failed".into());
        rs.push(skipped);
        let g = group(&rs);
        assert_eq!(g.groups.len(), 3);
        assert_eq!(g.groups[0].pods, "web-[0-2,4-9]");
        assert_eq!(g.groups[0].count, 9);
        // Same output, another exit code: a group of its own.
        assert!(
            g.groups
                .iter()
                .any(|x| x.pods == "web-10" && x.exit_code == Some(1))
        );
        assert!(g.groups.iter().any(|x| x.pods == "web-3"));
        assert_eq!(g.skipped.len(), 1);
        assert_eq!(g.skipped[0].reason, "canary failed");
        assert_eq!(g.counts["succeeded"], 10);
        assert_eq!(g.counts["skipped"], 1);
    }
}
