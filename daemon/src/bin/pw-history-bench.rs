//! pw-history-bench: fills a new SQLite history database and reports insert rate and history
//! page latency through the daemon's store actors (issue 3's history benchmark).

use std::path::PathBuf;

use anyhow::{Context, bail};
use argh::FromArgs;

/// Fill a new SQLite database with history rows and time inserts and history pages.
#[derive(FromArgs)]
struct Args {
    /// history rows to fill (default 1000000)
    #[argh(option, default = "1_000_000")]
    rows: usize,
    /// database file to create (must not exist; default: a temporary directory, removed after)
    #[argh(option)]
    db: Option<PathBuf>,
    /// print the report as JSON
    #[argh(switch)]
    json: bool,
}

fn main() -> anyhow::Result<()> {
    let args: Args = argh::from_env();
    if args.rows == 0 {
        bail!("--rows must be at least 1");
    }
    let (path, scratch) = match args.db {
        Some(p) => (p, None),
        None => {
            let dir = std::env::temp_dir().join(format!("pw-history-bench-{}", std::process::id()));
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            (dir.join("history-bench.db"), Some(dir))
        }
    };
    let result = podwranglerd::store::bench::history_bench(&path, args.rows)
        .with_context(|| format!("history benchmark on {}", path.display()));
    if let Some(dir) = scratch {
        let _ = std::fs::remove_dir_all(dir);
    }
    let report = result?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{report}");
    }
    Ok(())
}
