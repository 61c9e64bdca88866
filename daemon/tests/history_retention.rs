//! Retention removes old history by age and by count, in batches, on SQLite and PostgreSQL and
//! in the running daemon; an export streams every record back with full output (NDJSON and
//! CSV, quoting intact).

mod common;

use std::time::Duration;

use chrono::{DateTime, Utc};
use common::*;
use podwrangler::api::{CommandRecord, CommandStatus};
use podwranglerd::store::Store;

fn row(i: usize, started_at: DateTime<Utc>, status: CommandStatus, text: &str) -> CommandRecord {
    CommandRecord {
        id: 0,
        alias: format!("p{}", i % 2),
        pod_label: "default/p".into(),
        command: format!("echo {i}"),
        status,
        exit_code: (status != CommandStatus::Running).then_some(0),
        stdout: format!("{text}{i}"),
        stderr: String::new(),
        error: None,
        truncated: false,
        started_at,
        finished_at: (status != CommandStatus::Running).then_some(started_at),
        duration_ms: Some(1.0),
        actor: Some("unix:0(root)".into()),
        session_restarted: false,
        history_error: None,
        job_id: None,
    }
}

fn all_ids(s: &mut Store) -> Vec<i64> {
    let page = s
        .list_commands(&podwranglerd::store::HistoryFilter {
            limit: 1000,
            ..Default::default()
        })
        .unwrap();
    let mut ids: Vec<i64> = page.items.iter().map(|r| r.id).collect();
    ids.sort();
    ids
}

fn retention_by_age_and_count(url: &str) {
    let (mut s, _) = Store::open(url).unwrap();
    let now = Utc::now();
    let old = now - chrono::Duration::days(40);
    // Ids 1..=10 old, 11 old but still running, 12..=31 recent.
    let mut rows: Vec<CommandRecord> = (0..10)
        .map(|i| row(i, old, CommandStatus::Succeeded, "out"))
        .collect();
    rows.push(row(10, old, CommandStatus::Running, ""));
    rows.extend((11..31).map(|i| row(i, now, CommandStatus::Succeeded, "out")));
    s.insert_history(&rows).unwrap();
    let ids = all_ids(&mut s);
    assert_eq!(ids.len(), 31);
    let bytes_of = |r: &CommandRecord| (r.command.len() + r.stdout.len() + r.stderr.len()) as u64;
    let old_bytes: u64 = rows[..10].iter().map(bytes_of).sum();

    // By age, in batches of 3: 3 + 3 + 3 + 1; the running row stays.
    let cutoff = Some(now - chrono::Duration::days(30));
    let mut batches = Vec::new();
    loop {
        let p = s.prune_history(cutoff, None, 3).unwrap();
        batches.push(p.rows);
        if p.rows < 3 {
            break;
        }
    }
    assert_eq!(batches, [3, 3, 3, 1, 0][..batches.len()], "{batches:?}");
    assert_eq!(batches.iter().sum::<u64>(), 10);
    let left = all_ids(&mut s);
    assert_eq!(left.len(), 21);
    assert!(left.contains(&ids[10]), "the running row was removed");

    // By count: the newest 5 stay (and the running row, which is never removed).
    let p = s.prune_history(None, Some(5), 500).unwrap();
    assert_eq!(p.rows, 15);
    assert!(p.bytes > 0);
    let left = all_ids(&mut s);
    let mut expected: Vec<i64> = ids[ids.len() - 5..].to_vec();
    expected.insert(0, ids[10]);
    assert_eq!(left, expected);
    assert_eq!(s.prune_history(cutoff, Some(5), 500).unwrap().rows, 0);

    // Bytes are what the rows held. Opening the store again marks the row left running as
    // interrupted (a crash's evidence), so it is finished and old: it goes too.
    let (mut s2, _) = Store::open(url).unwrap();
    s2.insert_history(&rows[..10]).unwrap();
    let p = s2.prune_history(cutoff, None, 500).unwrap();
    assert_eq!((p.rows, p.bytes), (11, old_bytes + bytes_of(&rows[10])));
}

#[test]
fn retention_by_age_and_count_sqlite() {
    let dir = testkit::TempDirGuard::new("retention");
    retention_by_age_and_count(&dir.path().join("h.db").display().to_string());
}

#[test]
fn retention_by_age_and_count_postgres() {
    if let Some(db) = testkit::pg::PgDatabase::create("history_retention") {
        retention_by_age_and_count(&db.url);
    }
}

/// The daemon enforces `[history] max_rows` by itself, and logs what it freed.
#[test]
fn the_daemon_enforces_retention_in_the_background() {
    let dir = testkit::TempDirGuard::new("retention-daemon");
    let url = dir.path().join("h.db").display().to_string();
    {
        let (mut s, _) = Store::open(&url).unwrap();
        let rows: Vec<_> = (0..12)
            .map(|i| row(i, Utc::now(), CommandStatus::Succeeded, "x"))
            .collect();
        s.insert_history(&rows).unwrap();
    }
    let d = Daemon::start(DaemonOptions {
        database_url: Some(url),
        config_toml: Some(
            "[history]\nmax_rows = 3\nretention_every_secs = 0.5\nretention_batch = 4\n".into(),
        ),
        ..daemon_opts()
    });
    let trimmed = wait_until(Duration::from_secs(60), || all_history(&d).len() == 3);
    assert!(trimmed, "{:?}", all_history(&d).len());
    let newest: Vec<String> = all_history(&d)
        .iter()
        .map(|r| r["stdout"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(newest, ["x11", "x10", "x9"]);
    assert!(
        wait_until(Duration::from_secs(10), || d
            .log()
            .contains("history retention removed old commands")),
        "{}",
        d.log()
    );
}

/// A minimal RFC 4180 reader for the test: records of fields.
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let mut records = Vec::new();
    let mut record = Vec::new();
    let mut field = String::new();
    let mut chars = text.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') => quoted = true,
            (false, ',') => record.push(std::mem::take(&mut field)),
            (false, '\r') if chars.peek() == Some(&'\n') => {}
            (false, '\n') => {
                record.push(std::mem::take(&mut field));
                records.push(std::mem::take(&mut record));
            }
            (false, c) => field.push(c),
        }
    }
    records
}

#[test]
fn an_export_round_trips_every_record() {
    let dir = testkit::TempDirGuard::new("export");
    let url = dir.path().join("h.db").display().to_string();
    let tricky = "a,b \"quoted\"\nsecond line\r\nthird, é ";
    let rows: Vec<CommandRecord> = (0..10)
        .map(|i| {
            let mut r = row(i, Utc::now(), CommandStatus::Succeeded, tricky);
            r.stderr = format!("err,{i}\n");
            r.command = format!("printf '%s' \"x,y\"; echo {i}");
            r
        })
        .collect();
    {
        let (mut s, _) = Store::open(&url).unwrap();
        s.insert_history(&rows).unwrap();
    }
    let d = Daemon::start(DaemonOptions {
        database_url: Some(url),
        ..daemon_opts()
    });
    let nd = d.unix("GET", "/api/v1/commands/export?format=ndjson", None);
    assert_eq!(nd.status, 200, "{}", nd.body);
    assert_eq!(nd.header("content-type"), Some("application/x-ndjson"));
    let got: Vec<CommandRecord> = nd
        .body
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(got.len(), rows.len());
    for (g, want) in got.iter().zip(&rows) {
        assert_eq!(g.command, want.command);
        assert_eq!(g.stdout, want.stdout);
        assert_eq!(g.stderr, want.stderr);
        assert_eq!(g.alias, want.alias);
    }
    assert!(got.windows(2).all(|w| w[0].id < w[1].id), "oldest first");

    let csv = d.unix("GET", "/api/v1/commands/export?format=csv&alias=p1", None);
    assert_eq!(csv.status, 200, "{}", csv.body);
    let records = parse_csv(&csv.body);
    assert_eq!(records[0][0], "id");
    assert_eq!(
        records[0].len(),
        podwranglerd::api::commands::EXPORT_CSV_COLUMNS.len()
    );
    let want: Vec<&CommandRecord> = rows.iter().filter(|r| r.alias == "p1").collect();
    assert_eq!(records.len() - 1, want.len(), "{records:?}");
    for (rec, w) in records[1..].iter().zip(want) {
        assert_eq!(rec.len(), records[0].len(), "{rec:?}");
        assert_eq!(rec[1], "p1");
        assert_eq!(rec[3], w.command);
        assert_eq!(rec[6], w.stdout);
        assert_eq!(rec[7], w.stderr);
        assert_eq!(rec[4], "succeeded");
    }

    let bad = d.unix("GET", "/api/v1/commands/export?format=xml", None);
    assert_eq!(bad.status, 422);
    assert_eq!(bad.json()["field"], "format");
    // `export` is not taken for a command id.
    assert_eq!(d.unix("GET", "/api/v1/commands/export", None).status, 200);
}
