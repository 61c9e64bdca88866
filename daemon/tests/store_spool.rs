//! Replaying the history spool into real databases (a SQLite file, and a fresh database of the
//! PostgreSQL server in `PODWRANGLER_TEST_DATABASE_URL`): in order, and idempotently, so a
//! replay interrupted before the spool was emptied changes nothing when it runs again.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use podwrangler::api::{CommandRecord, CommandStatus};
use podwranglerd::store::spool::{Spool, SpoolOp};
use podwranglerd::store::{
    self, CommandEnd, HistoryFilter, INTERRUPTED_ERROR, StartCommand, Store, StoreHealth,
    StoreOptions,
};
use testkit::pg::TestDb;

testkit::on_both_backends!(
    "spool_":
    replay_is_ordered_and_idempotent,
    a_start_whose_daemon_is_gone_is_interrupted,
);

fn at(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_790_000_000 + secs, 250_000_000)
        .unwrap()
}

fn start(alias: &str, command: &str, secs: i64) -> StartCommand {
    StartCommand {
        alias: alias.into(),
        pod_label: format!("default/{alias}"),
        command: command.into(),
        started_at: at(secs),
        actor: "unix:1000(alice)".into(),
        job_id: None,
    }
}

fn end(stdout: &str, secs: i64) -> CommandEnd {
    CommandEnd {
        status: CommandStatus::Succeeded,
        exit_code: Some(0),
        stdout: stdout.into(),
        stderr: String::new(),
        error: None,
        truncated: false,
        finished_at: at(secs),
        duration_ms: 1000.0,
        session_restarted: false,
    }
}

fn history(s: &mut Store) -> Vec<CommandRecord> {
    let mut page = s
        .list_commands(&HistoryFilter {
            limit: 1000,
            ..HistoryFilter::default()
        })
        .unwrap()
        .items
        .into_iter()
        .map(|item| item.record)
        .collect::<Vec<_>>();
    page.reverse();
    page
}

fn replay_is_ordered_and_idempotent(db: TestDb) {
    let (mut s, _) = Store::open(db.url()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("history.spool");
    let health = Arc::new(StoreHealth::default());
    let spool = Spool::open(&path, health.clone()).unwrap();

    // a: its start was committed, its finish was not. b: neither. c: a result with no start
    // (a command that could not run).
    let a_start = start("a", "echo a", 0);
    let a_id = s.record_start("uid-a", &a_start, false).unwrap();
    let ops = [
        SpoolOp::Finish {
            uid: "uid-a".into(),
            id: Some(a_id),
            start: a_start,
            end: end("a\n", 1),
        },
        SpoolOp::Start {
            uid: "uid-b".into(),
            start: start("b", "echo b", 2),
        },
        SpoolOp::Finish {
            uid: "uid-b".into(),
            id: None,
            start: start("b", "echo b", 2),
            end: end("b\n", 3),
        },
        SpoolOp::Finish {
            uid: "uid-c".into(),
            id: None,
            start: start("c", "echo c", 4),
            end: CommandEnd {
                status: CommandStatus::Error,
                exit_code: None,
                error: Some("pod busy".into()),
                ..end("", 4)
            },
        },
    ];
    for op in ops {
        spool.append(op).unwrap();
    }
    assert_eq!(health.spool_pending(), 4);
    let written = std::fs::read(&path).unwrap();

    let report = spool.replay(&mut s);
    assert_eq!((report.applied, report.remaining), (4, 0), "{report:?}");
    assert_eq!(health.spool_pending(), 0);
    assert_eq!(std::fs::metadata(&path).unwrap().len(), 0, "emptied");
    let rows = history(&mut s);
    let summary: Vec<(&str, CommandStatus, &str)> = rows
        .iter()
        .map(|r| (r.alias.as_str(), r.status, r.stdout.as_str()))
        .collect();
    assert_eq!(
        summary,
        [
            ("a", CommandStatus::Succeeded, "a\n"),
            ("b", CommandStatus::Succeeded, "b\n"),
            ("c", CommandStatus::Error, ""),
        ]
    );
    assert_eq!(rows[0].id, a_id);
    assert_eq!(rows[1].started_at, at(2));
    assert_eq!(rows[1].finished_at, Some(at(3)));
    assert_eq!(rows[2].error.as_deref(), Some("pod busy"));

    // The daemon died after the replay but before the spool was emptied: the same entries are
    // replayed again at the next start, and nothing changes.
    drop(spool);
    std::fs::write(&path, &written).unwrap();
    let spool = Spool::open(&path, health.clone()).unwrap();
    assert_eq!(spool.pending(), 4);
    let report = spool.replay(&mut s);
    assert_eq!((report.applied, report.remaining), (4, 0), "{report:?}");
    assert_eq!(history(&mut s), rows, "a second replay changes nothing");

    // A finish for a row that is already finished answers the row as it is.
    let again = s
        .record_finish(
            Some(a_id),
            "uid-a",
            &start("a", "echo a", 0),
            &end("other\n", 9),
        )
        .unwrap();
    assert_eq!(again, rows[0]);
    assert_eq!(history(&mut s).len(), 3);
    // The write that tells a recovered database from a failed one.
    s.probe_write().unwrap();
    assert!(s.health().ok());
}

fn a_start_whose_daemon_is_gone_is_interrupted(db: TestDb) {
    // Make the schema first, as the daemon that spooled the start had.
    drop(Store::open(db.url()).unwrap());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("history.spool");
    {
        let spool = Spool::open(&path, Arc::new(StoreHealth::default())).unwrap();
        spool
            .append(SpoolOp::Start {
                uid: "uid-d".into(),
                start: start("d", "sleep 100", 0),
            })
            .unwrap();
        spool
            .append(SpoolOp::Start {
                uid: "uid-e".into(),
                start: start("e", "echo e", 1),
            })
            .unwrap();
        spool
            .append(SpoolOp::Finish {
                uid: "uid-e".into(),
                id: None,
                start: start("e", "echo e", 1),
                end: end("e\n", 2),
            })
            .unwrap();
    }
    // The next daemon replays it at start-up.
    let url = db.url().to_owned();
    actix_rt::System::new().block_on(async {
        let h = store::start_with(&StoreOptions {
            database_url: url.clone(),
            threads: 2,
            spool_path: Some(path.clone()),
            retry_every: Duration::from_millis(200),
        })
        .unwrap();
        assert_eq!(h.health.spool_pending(), 0);
        assert!(h.health.ok());
        assert_eq!(
            h.interrupted_at_start, 0,
            "written interrupted, not running"
        );
    });
    let (mut s, _) = Store::open(&url).unwrap();
    let rows = history(&mut s);
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(rows[0].alias, "d");
    assert_eq!(rows[0].status, CommandStatus::Interrupted);
    assert_eq!(rows[0].error.as_deref(), Some(INTERRUPTED_ERROR));
    assert_eq!(rows[1].status, CommandStatus::Succeeded);
    assert_eq!(rows[1].stdout, "e\n");
}
