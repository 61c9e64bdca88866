//! Bounded history reads: listings carry previews and sizes, full output comes from the record
//! or in byte ranges, and a page of big rows keeps the daemon's memory within its documented
//! bound. SQLite, and PostgreSQL when a test server is configured.

mod common;

use std::time::Duration;

use common::*;
use podwrangler::api::{CommandRecord, CommandStatus, HISTORY_PREVIEW_BYTES};
use serde_json::Value;

/// 3000 'é' (6000 bytes) on stdout, 2000 'x' on stderr.
const BIG_COMMAND: &str =
    "yes é | head -n 3000 | tr -d '\\n'; yes x | head -n 2000 | tr -d '\\n' >&2";

fn previews_and_ranges(d: &Daemon, sim: &Podsim) {
    register(d, Via::Unix, &kubernetes_body(sim, "k8s", 0, &[]));
    wait_ready(d, 1);
    let rec = exec_ok(d, Via::Unix, "k8s", BIG_COMMAND);
    let id = rec["id"].as_i64().unwrap();
    let stdout = "é".repeat(3000);
    let stderr = "x".repeat(2000);
    assert_eq!(rec["stdout"], stdout.as_str());
    exec_ok(d, Via::Unix, "k8s", "echo small");

    let page = d.unix("GET", "/api/v1/commands?alias=k8s", None).json();
    let items = page["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{page}");
    let small = &items[0];
    assert_eq!(small["stdout"], "small\n");
    assert_eq!(small["preview"], false, "{small}");
    assert_eq!(small["stdout_bytes"], 6);
    let big = &items[1];
    assert_eq!(big["id"], id);
    assert_eq!(big["preview"], true, "{big}");
    assert_eq!(big["stdout_bytes"], 6000);
    assert_eq!(big["stderr_bytes"], 2000);
    assert_eq!(big["command_bytes"], BIG_COMMAND.len());
    // Cut at a character boundary: 512 two-byte characters.
    assert_eq!(
        big["stdout"].as_str().unwrap(),
        "é".repeat(HISTORY_PREVIEW_BYTES / 2)
    );
    assert_eq!(
        big["stderr"].as_str().unwrap(),
        "x".repeat(HISTORY_PREVIEW_BYTES)
    );
    assert_eq!(big["command"], BIG_COMMAND, "short commands stay whole");

    // The record has everything.
    let full = d
        .unix("GET", &format!("/api/v1/commands/{id}"), None)
        .json();
    assert_eq!(full["stdout"], stdout.as_str());
    assert_eq!(full["stderr"], stderr.as_str());

    let output = |query: &str, range: Option<&str>| {
        let path = format!("/api/v1/commands/{id}/output{query}");
        match range {
            Some(r) => d.unix_with("GET", &path, &[("Range", r)], None),
            None => d.unix("GET", &path, None),
        }
    };
    let whole = output("", None);
    assert_eq!(whole.status, 200, "{}", whole.body);
    assert_eq!(whole.header("accept-ranges"), Some("bytes"));
    assert_eq!(whole.body, stdout);
    let err = output("?stream=stderr", None);
    assert_eq!(err.status, 200);
    assert_eq!(err.body, stderr);

    let first = output("?stream=stdout", Some("bytes=0-9"));
    assert_eq!(first.status, 206, "{}", first.body);
    assert_eq!(first.header("content-range"), Some("bytes 0-9/6000"));
    assert_eq!(first.body, "é".repeat(5));
    let tail = output("", Some("bytes=5990-"));
    assert_eq!(tail.status, 206);
    assert_eq!(tail.header("content-range"), Some("bytes 5990-5999/6000"));
    assert_eq!(tail.body, "é".repeat(5));
    let suffix = output("?stream=stderr", Some("bytes=-4"));
    assert_eq!(suffix.status, 206);
    assert_eq!(suffix.header("content-range"), Some("bytes 1996-1999/2000"));
    assert_eq!(suffix.body, "xxxx");
    // Past the end is cut to the end.
    let past = output("?stream=stderr", Some("bytes=1000-999999"));
    assert_eq!(past.status, 206);
    assert_eq!(past.body.len(), 1000);

    for bad in ["bytes=6000-", "bytes=-0"] {
        let r = output("", Some(bad));
        assert_eq!(r.status, 416, "{bad}: {}", r.body);
        assert_eq!(r.header("content-range"), Some("bytes */6000"), "{bad}");
        assert_eq!(r.json()["code"], "range_not_satisfiable");
    }
    // Ranges in other forms are ignored (RFC 9110): the whole output.
    for ignored in ["bytes=9-2", "bytes=0-1,4-5", "lines=1-2", "G"] {
        let r = output("", Some(ignored));
        assert_eq!(r.status, 200, "{ignored}: {}", r.body);
        assert_eq!(r.body, stdout, "{ignored}");
    }
    let r = output("?stream=stdin", None);
    assert_eq!(r.status, 422, "{}", r.body);
    assert_eq!(r.json()["field"], "stream");
    let r = d.unix("GET", "/api/v1/commands/987654321/output", None);
    assert_eq!(r.status, 404, "{}", r.body);
}

#[test]
fn listings_show_previews_and_outputs_come_in_ranges_sqlite() {
    let sim = podsim(1);
    let d = start_daemon();
    previews_and_ranges(&d, &sim);
}

#[test]
fn listings_show_previews_and_outputs_come_in_ranges_postgres() {
    let Some(db) = testkit::pg::PgDatabase::create("history_previews") else {
        return;
    };
    let sim = podsim(1);
    let d = Daemon::start(DaemonOptions {
        database_url: Some(db.url.clone()),
        ..daemon_opts()
    });
    previews_and_ranges(&d, &sim);
}

/// Rows and output size of the memory test: the 1,000 rows of 4 MiB.
const BIG_ROWS: usize = 1000;
const BIG_OUTPUT: usize = 4 * 1024 * 1024;
/// Listings sent at once.
const CONCURRENT_LISTINGS: usize = 4;
/// docs/history.md: what one listing request may add to the daemon's memory, and what each
/// store thread may hold while it reads big rows (SQLite reads a value whole to cut it).
const LISTING_BOUND_MIB: u64 = 32;
const STORE_THREAD_BOUND_MIB: u64 = 16;
const STORE_THREADS: u64 = 2;

fn kib_of(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

/// The scenario: 1,000 rows with 4 MiB of stdout each (4 GiB of history), then
/// several `limit=1000` listings at once. Each listing carries previews, and the daemon's peak
/// RSS stays within its idle RSS plus the documented bound (it was gigabytes when listings
/// carried full output).
#[test]
fn a_page_of_big_rows_keeps_memory_within_the_bound() {
    // 4 GiB of history on a tmpfs (memory, not the shared disk), removed at the end.
    let Some(dir) =
        testkit::tmpfs::Tmpfs::mount("a_page_of_big_rows_keeps_memory_within_the_bound", "4400m")
    else {
        return;
    };
    let db = dir.path().join("big.db");
    let url = db.display().to_string();
    {
        let (mut store, _) = podwranglerd::store::Store::open(&url).expect("open the database");
        let output = "y".repeat(BIG_OUTPUT);
        let now = chrono::Utc::now();
        let row = |i: usize| CommandRecord {
            id: 0,
            alias: format!("big-{}", i % 10),
            pod_label: "default/big".into(),
            command: format!("yes | head -c {BIG_OUTPUT} # {i}"),
            status: CommandStatus::Succeeded,
            exit_code: Some(0),
            stdout: output.clone(),
            stderr: "e".repeat(100),
            error: None,
            truncated: false,
            started_at: now,
            finished_at: Some(now),
            duration_ms: Some(1.0),
            actor: Some("unix:0(root)".into()),
            session_restarted: false,
            history_error: None,
            job_id: None,
        };
        for batch in (0..BIG_ROWS).collect::<Vec<_>>().chunks(8) {
            let rows: Vec<CommandRecord> = batch.iter().map(|&i| row(i)).collect();
            store.insert_history(&rows).expect("insert big rows");
        }
    }
    let d = Daemon::start(DaemonOptions {
        database_url: Some(url),
        ..daemon_opts()
    });
    let pid = d.pid();
    let idle_kib = kib_of(pid, "VmRSS:");
    let listings: Vec<_> = (0..CONCURRENT_LISTINGS)
        .map(|_| {
            let socket = d.socket.clone();
            std::thread::spawn(move || {
                let s = std::os::unix::net::UnixStream::connect(socket).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(600))).ok();
                testkit::daemon::request(s, "x", "GET", "/api/v1/commands?limit=1000", &[], None)
                    .unwrap()
            })
        })
        .collect();
    for handle in listings {
        let r = handle.join().unwrap();
        assert_eq!(r.status, 200, "{}", &r.body[..r.body.len().min(500)]);
        let page: Value = r.json();
        let items = page["items"].as_array().unwrap();
        assert_eq!(items.len(), BIG_ROWS);
        for item in items {
            assert_eq!(item["preview"], true);
            assert_eq!(item["stdout_bytes"], BIG_OUTPUT);
            assert_eq!(
                item["stdout"].as_str().unwrap().len(),
                HISTORY_PREVIEW_BYTES
            );
        }
    }
    let peak_kib = kib_of(pid, "VmHWM:");
    let bound_kib = idle_kib
        + (CONCURRENT_LISTINGS as u64 * LISTING_BOUND_MIB + STORE_THREADS * STORE_THREAD_BOUND_MIB)
            * 1024;
    eprintln!(
        "daemon RSS: idle {} MiB, peak {} MiB over {CONCURRENT_LISTINGS} listings of {BIG_ROWS} rows of {} MiB; bound {} MiB",
        idle_kib / 1024,
        peak_kib / 1024,
        BIG_OUTPUT >> 20,
        bound_kib / 1024
    );
    assert!(
        peak_kib <= bound_kib,
        "peak RSS {peak_kib} KiB is over the bound {bound_kib} KiB (idle {idle_kib} KiB)"
    );
    // A record still has its full output.
    let newest = d.unix("GET", "/api/v1/commands?limit=1", None).json()["items"][0]["id"]
        .as_i64()
        .unwrap();
    let r = d.unix_with(
        "GET",
        &format!("/api/v1/commands/{newest}/output"),
        &[("Range", "bytes=4194300-")],
        None,
    );
    assert_eq!(r.status, 206);
    assert_eq!(r.body, "yyyy");
}
