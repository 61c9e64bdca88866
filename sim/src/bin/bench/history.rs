//! `bench history`: the history store with a million rows in SQLite. Runs the daemon's store
//! directly (`history_store.rs`: bulk fill, one-at-a-time command writes, pages through the
//! store actors),
//! then starts `podwranglerd` on the filled database and times `GET /api/v1/commands` over its
//! Unix socket, so the figure includes HTTP, JSON and the actor hop a client really pays.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use argh::FromArgs;

use crate::daemon_proc::{DaemonProc, DaemonSpec};
use crate::table::{Table, fmt_ms, percentile};

/// History insert rate and `GET /api/v1/commands` latency on a filled SQLite database.
#[derive(FromArgs)]
#[argh(subcommand, name = "history")]
pub struct HistoryArgs {
    /// history rows to fill (default 1000000)
    #[argh(option, default = "1_000_000")]
    rows: usize,
    /// timed HTTP requests per query (default 200)
    #[argh(option, default = "200")]
    samples: usize,
    /// only fill and time the store, without the HTTP measurement
    #[argh(switch)]
    skip_http: bool,
    /// time HTTP pages on this database, already filled by an earlier `bench history` run
    /// (pass the same --rows), instead of filling a new one
    #[argh(option)]
    filled_db: Option<std::path::PathBuf>,
}

const WARM_UP: usize = 10;

pub fn main(args: HistoryArgs) -> anyhow::Result<()> {
    if args.rows == 0 || args.samples == 0 {
        bail!("--rows and --samples must be at least 1");
    }
    let dir = tempfile::Builder::new()
        .prefix("pw-bench-history")
        .tempdir()?;
    let (db, store_report) = match &args.filled_db {
        Some(db) => (db.clone(), String::new()),
        None => {
            let db = dir.path().join("history.db");
            (db.clone(), fill(&db, args.rows)?)
        }
    };
    if args.skip_http {
        println!("\n{store_report}");
        return Ok(());
    }

    eprintln!("bench: podwranglerd on the filled database ...");
    let daemon = DaemonProc::start(DaemonSpec {
        database: Some(&db),
        ..Default::default()
    })?;
    let mut client = daemon.client(Duration::from_secs(120));
    // The filled rows: aliases pod-000..pod-099, 2% timeouts; a cursor is the id to page below.
    let deep = (args.rows / 10).max(1);
    let queries: Vec<(String, String, usize)> = vec![
        ("first page (50)".into(), "/api/v1/commands".into(), 50),
        (
            "first page (1000)".into(),
            "/api/v1/commands?limit=1000".into(),
            1000,
        ),
        (
            "alias=pod-042".into(),
            "/api/v1/commands?alias=pod-042".into(),
            50,
        ),
        (
            "status=timeout".into(),
            "/api/v1/commands?status=timeout".into(),
            50,
        ),
        (
            format!("deep cursor (below id {deep})"),
            format!("/api/v1/commands?cursor={deep}"),
            50,
        ),
        (
            "alias=pod-042 + deep cursor".into(),
            format!("/api/v1/commands?alias=pod-042&cursor={deep}"),
            50,
        ),
    ];
    let mut table = Table::new(&["GET", "rows", "p50", "p99", "req/s"]);
    for (name, path, want) in &queries {
        let mut samples = Vec::with_capacity(args.samples);
        let mut rows = 0;
        for i in 0..WARM_UP + args.samples {
            let t = Instant::now();
            let r = client.get(path)?;
            let elapsed = t.elapsed();
            let page = r.ok_json(path)?;
            rows = page["items"].as_array().map_or(0, Vec::len);
            if i >= WARM_UP {
                samples.push(elapsed);
            }
        }
        // A full page with a million rows; small fills may leave filtered pages short.
        if rows == 0 || rows > *want || (args.rows >= 1_000_000 && rows != *want) {
            bail!("{path}: a page of {rows} rows, expected {want}");
        }
        let total: Duration = samples.iter().sum();
        table.row(vec![
            name.clone(),
            rows.to_string(),
            fmt_ms(percentile(&samples, 0.5)),
            fmt_ms(percentile(&samples, 0.99)),
            format!("{:.0}", samples.len() as f64 / total.as_secs_f64()),
        ]);
    }

    if !store_report.is_empty() {
        println!("\n{store_report}");
    }
    println!(
        "GET /api/v1/commands through podwranglerd on that database (keep-alive Unix socket, \
         {} sequential requests per query after {WARM_UP} warm-up)\n",
        args.samples
    );
    table.print();
    Ok(())
}

/// Fills `db` through the daemon's store and times it; returns the report as text.
fn fill(db: &std::path::Path, rows: usize) -> anyhow::Result<String> {
    eprintln!("bench: filling {} with {rows} rows ...", db.display());
    let report = crate::history_store::history_bench(db, rows)
        .with_context(|| format!("history store benchmark on {}", db.display()))?;
    Ok(report.to_string())
}
