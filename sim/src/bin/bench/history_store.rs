//! The history benchmark: fill a new SQLite file with many finished commands, then time what the
//! daemon does against it through the `StoreActor`s: writing a command's row at start and end,
//! and reading history pages (first page, filtered pages, deep cursor pages).
//!
//! `bench history` runs it before timing the same pages over HTTP (`history.rs`).

use std::fmt;
use std::path::Path;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use podwrangler::api::{CommandRecord, CommandStatus};
use serde::Serialize;

use podwranglerd::store::{
    self, FinishCommand, HistoryFilter, ListCommands, StartCommand, Store, StoreError,
};

/// Rows per transaction while filling.
const FILL_BATCH: usize = 10_000;
/// Distinct aliases in the filled history.
const ALIASES: usize = 100;
/// Commands written one by one (start row, then finish) through the actor.
const SINGLE_COMMANDS: usize = 2_000;
/// Samples per history query.
const QUERY_SAMPLES: usize = 300;

/// What [`history_bench`] measured.
#[derive(Clone, Debug, Serialize)]
pub struct HistoryBenchReport {
    pub rows: usize,
    pub db_bytes: u64,
    pub fill_secs: f64,
    /// Bulk fill rate, in batched transactions of 10,000 rows.
    pub fill_rows_per_sec: f64,
    /// Commands recorded the daemon's way, one at a time with the table already full: a
    /// `running` row at start, then the finish, each its own transaction through the actor.
    pub commands_per_sec: f64,
    pub start_p50_ms: f64,
    pub start_p99_ms: f64,
    pub finish_p50_ms: f64,
    pub finish_p99_ms: f64,
    /// `ListCommands` latencies through the actor.
    pub queries: Vec<QueryLatency>,
}

#[derive(Clone, Debug, Serialize)]
pub struct QueryLatency {
    pub name: String,
    pub samples: usize,
    /// Rows on the page.
    pub rows: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

impl fmt::Display for HistoryBenchReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "history benchmark, SQLite, {} rows ({:.1} MiB)",
            self.rows,
            self.db_bytes as f64 / (1024.0 * 1024.0)
        )?;
        writeln!(
            f,
            "  bulk fill:        {:>10.0} rows/s ({:.1} s, {FILL_BATCH} rows per transaction)",
            self.fill_rows_per_sec, self.fill_secs
        )?;
        writeln!(
            f,
            "  start+finish:     {:>10.0} commands/s, one at a time (start p50 {:.3} ms p99 {:.3} ms; finish p50 {:.3} ms p99 {:.3} ms)",
            self.commands_per_sec,
            self.start_p50_ms,
            self.start_p99_ms,
            self.finish_p50_ms,
            self.finish_p99_ms
        )?;
        writeln!(f, "  ListCommands (through the actor):")?;
        for q in &self.queries {
            writeln!(
                f,
                "    {:<40} p50 {:>8.3} ms  p99 {:>8.3} ms  ({} rows, {} samples)",
                q.name, q.p50_ms, q.p99_ms, q.rows, q.samples
            )?;
        }
        Ok(())
    }
}

fn percentile(sorted: &[Duration], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

fn p50_p99(mut samples: Vec<Duration>) -> (f64, f64) {
    samples.sort();
    (percentile(&samples, 0.50), percentile(&samples, 0.99))
}

/// The `i`th filled row: 100 aliases in turn, mostly succeeded, started 50 ms apart.
fn filled_row(i: usize, base: DateTime<Utc>) -> CommandRecord {
    let alias = format!("pod-{:03}", i % ALIASES);
    let (status, exit_code, error) = match i % 50 {
        0..=2 => (CommandStatus::Failed, Some(1), None),
        3 => (
            CommandStatus::Timeout,
            None,
            Some("command timed out after 30 s".to_owned()),
        ),
        4 => (
            CommandStatus::Error,
            None,
            Some("connection lost".to_owned()),
        ),
        _ => (CommandStatus::Succeeded, Some(0), None),
    };
    let started_at = base + chrono::Duration::milliseconds(50 * i as i64);
    CommandRecord {
        id: 0,
        pod_label: format!("default/web-5d8f7-{:05}", i % ALIASES),
        alias,
        command: "echo $POD_NAME && uptime".to_owned(),
        status,
        exit_code,
        stdout: format!(
            "web-5d8f7-{:05}\n 12:00:00 up 3 days,  load average: 0.{i:06}\n",
            i % ALIASES
        ),
        stderr: String::new(),
        error,
        truncated: false,
        started_at,
        finished_at: Some(started_at + chrono::Duration::milliseconds(3)),
        duration_ms: Some(3.0),
        actor: Some(format!("unix:{}(user{})", 1000 + i % 7, i % 7)),
        session_restarted: false,
        history_error: None,
        job_id: None,
    }
}

/// Fills a NEW SQLite file at `db_path` with `rows` history rows, then measures single-command
/// writes and history pages through `StoreActor`s (on a thread of its own, with its own actix
/// System, so it can be called from anywhere). Refuses an existing file: it is a benchmark, not
/// something to point at a real database.
pub fn history_bench(db_path: &Path, rows: usize) -> Result<HistoryBenchReport, StoreError> {
    if db_path.exists() {
        return Err(StoreError::Invalid(format!(
            "{} exists; the history benchmark writes a new database",
            db_path.display()
        )));
    }
    let url = db_path.display().to_string();
    let (mut store, _) = Store::open(&url)?;

    let base = Utc::now() - chrono::Duration::milliseconds(50 * rows as i64);
    let started = Instant::now();
    let mut batch = Vec::with_capacity(FILL_BATCH);
    for i in 0..rows {
        batch.push(filled_row(i, base));
        if batch.len() == FILL_BATCH || i + 1 == rows {
            store.insert_history(&batch)?;
            batch.clear();
        }
    }
    let fill = started.elapsed();
    drop(store);

    let actor_url = url.clone();
    let measured = std::thread::spawn(move || {
        actix_rt::System::new().block_on(measure_through_actors(actor_url, rows))
    })
    .join()
    .map_err(|_| StoreError::Query("the benchmark thread panicked".into()))??;

    let db_bytes = ["", "-wal"]
        .iter()
        .filter_map(|suffix| std::fs::metadata(format!("{url}{suffix}")).ok())
        .map(|m| m.len())
        .sum();
    Ok(HistoryBenchReport {
        rows,
        db_bytes,
        fill_secs: fill.as_secs_f64(),
        fill_rows_per_sec: rows as f64 / fill.as_secs_f64().max(1e-9),
        ..measured
    })
}

async fn measure_through_actors(
    url: String,
    rows: usize,
) -> Result<HistoryBenchReport, StoreError> {
    let handle = store::start(&url, 2)?;
    let addr = handle.addr;
    let mailbox = |e: actix::MailboxError| StoreError::Query(format!("store actor: {e}"));

    let mut starts = Vec::with_capacity(SINGLE_COMMANDS);
    let mut finishes = Vec::with_capacity(SINGLE_COMMANDS);
    let t0 = Instant::now();
    for i in 0..SINGLE_COMMANDS {
        let t = Instant::now();
        let id = addr
            .send(StartCommand {
                alias: format!("pod-{:03}", i % ALIASES),
                pod_label: format!("default/web-5d8f7-{:05}", i % ALIASES),
                command: "true".into(),
                started_at: Utc::now(),
                actor: "unix:0(root)".into(),
                job_id: None,
            })
            .await
            .map_err(mailbox)??;
        starts.push(t.elapsed());
        let t = Instant::now();
        addr.send(FinishCommand {
            id,
            status: CommandStatus::Succeeded,
            exit_code: Some(0),
            stdout: String::new(),
            stderr: String::new(),
            error: None,
            truncated: false,
            finished_at: Utc::now(),
            duration_ms: 0.2,
            session_restarted: false,
        })
        .await
        .map_err(mailbox)??;
        finishes.push(t.elapsed());
    }
    let commands_per_sec = SINGLE_COMMANDS as f64 / t0.elapsed().as_secs_f64().max(1e-9);
    let (start_p50_ms, start_p99_ms) = p50_p99(starts);
    let (finish_p50_ms, finish_p99_ms) = p50_p99(finishes);

    // A cursor near the oldest rows: the deepest page a client can walk to.
    let deep = ((rows / 10).max(1) as i64).to_string();
    let hour_ago = Utc::now() - chrono::Duration::hours(1);
    let cases: Vec<(String, HistoryFilter)> = vec![
        ("first page (50)".into(), HistoryFilter::default()),
        (
            "first page (1000)".into(),
            HistoryFilter {
                limit: 1000,
                ..Default::default()
            },
        ),
        (
            "alias=pod-042".into(),
            HistoryFilter {
                alias: Some("pod-042".into()),
                ..Default::default()
            },
        ),
        (
            "status=timeout".into(),
            HistoryFilter {
                status: Some(CommandStatus::Timeout),
                ..Default::default()
            },
        ),
        (
            "since=1h ago".into(),
            HistoryFilter {
                since: Some(hour_ago),
                ..Default::default()
            },
        ),
        (
            format!("deep cursor (before id {deep})"),
            HistoryFilter {
                cursor: Some(deep.clone()),
                ..Default::default()
            },
        ),
        (
            "alias=pod-042 + deep cursor".into(),
            HistoryFilter {
                alias: Some("pod-042".into()),
                cursor: Some(deep.clone()),
                ..Default::default()
            },
        ),
        (
            "alias+status=failed + deep cursor".into(),
            HistoryFilter {
                alias: Some("pod-001".into()),
                status: Some(CommandStatus::Failed),
                cursor: Some(deep.clone()),
                ..Default::default()
            },
        ),
        (
            "alias+status, no match (full check)".into(),
            HistoryFilter {
                alias: Some("pod-042".into()),
                status: Some(CommandStatus::Failed),
                cursor: Some(deep),
                ..Default::default()
            },
        ),
    ];
    let mut queries = Vec::new();
    for (name, filter) in cases {
        // Warm the page cache first: the latency of interest is the steady state.
        for _ in 0..5 {
            addr.send(ListCommands(filter.clone()))
                .await
                .map_err(mailbox)??;
        }
        let mut samples = Vec::with_capacity(QUERY_SAMPLES);
        let mut page_rows = 0;
        for _ in 0..QUERY_SAMPLES {
            let t = Instant::now();
            let page = addr
                .send(ListCommands(filter.clone()))
                .await
                .map_err(mailbox)??;
            samples.push(t.elapsed());
            page_rows = page.items.len();
        }
        let (p50_ms, p99_ms) = p50_p99(samples);
        queries.push(QueryLatency {
            name,
            samples: QUERY_SAMPLES,
            rows: page_rows,
            p50_ms,
            p99_ms,
        });
    }

    Ok(HistoryBenchReport {
        rows,
        db_bytes: 0,
        fill_secs: 0.0,
        fill_rows_per_sec: 0.0,
        commands_per_sec,
        start_p50_ms,
        start_p99_ms,
        finish_p50_ms,
        finish_p99_ms,
        queries,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_pick_the_right_sample() {
        let samples: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(p50_p99(samples), (51.0, 99.0));
        assert_eq!(p50_p99(vec![]), (0.0, 0.0));
    }

    #[test]
    fn small_run_fills_and_measures() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bench.db");
        let report = history_bench(&path, 25_000).unwrap();
        assert_eq!(report.rows, 25_000);
        assert!(report.db_bytes > 0);
        let first = &report.queries[0];
        assert_eq!(first.rows, 50);
        let timeouts = report
            .queries
            .iter()
            .find(|q| q.name == "status=timeout")
            .unwrap();
        assert_eq!(timeouts.rows, 50, "2% of 25,000 rows are timeouts");
        assert!(
            history_bench(&path, 10).is_err(),
            "refuses an existing file"
        );
        let text = report.to_string();
        assert!(text.contains("deep cursor"), "{text}");
    }
}
