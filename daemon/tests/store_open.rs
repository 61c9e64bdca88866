//! Opening the store: what gets created, and databases that cannot be opened giving a clear
//! `StoreError::Open` (URL shown redacted, the reason named) instead of a panic.

use podwranglerd::store::{self, Backend, Store, StoreError};
use testkit::pg::PgDatabase;

/// The open error for `url`; panics if it opened or failed some other way.
fn open_error(url: &str) -> (String, String) {
    let err = match actix_rt::System::new().block_on(async { store::start(url, 2).map(|_| ()) }) {
        Ok(()) => panic!("{url} opened but should not have"),
        Err(e) => e,
    };
    let message = err.to_string();
    match err {
        StoreError::Open {
            url_redacted,
            reason,
        } => {
            assert!(
                message.contains(&url_redacted) && message.contains(&reason),
                "{message}"
            );
            (url_redacted, reason)
        }
        other => panic!("expected an open error for {url}, got {other:?}"),
    }
}

#[test]
fn creates_missing_directories_and_uses_wal() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a/b/c/podwrangler.db");
    let url = format!("sqlite://{}", path.display());
    let (mut s, interrupted) = Store::open(&url).unwrap();
    assert_eq!(interrupted, 0);
    assert_eq!(s.backend(), Backend::Sqlite);
    assert!(path.is_file(), "database file created");
    s.ping().unwrap();
    // A write while the connection is open goes to the write-ahead log.
    s.start_command(store::StartCommand {
        alias: "a".into(),
        pod_label: "a".into(),
        command: "true".into(),
        started_at: chrono::Utc::now(),
        actor: "config".into(),
        job_id: None,
    })
    .unwrap();
    let wal = path.with_file_name("podwrangler.db-wal");
    assert!(wal.is_file(), "WAL journal at {}", wal.display());

    // Reopening the same file finds the schema there and applies nothing twice.
    drop(s);
    let (mut again, interrupted) = Store::open(path.to_str().unwrap()).unwrap();
    assert_eq!(interrupted, 1, "the row left running is interrupted");
    assert_eq!(again.list_pods(None).unwrap(), vec![]);
}

#[test]
fn a_file_where_the_directory_should_be_is_an_open_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, b"x").unwrap();
    let url = file.join("pw.db").display().to_string();
    let (shown, reason) = open_error(&url);
    assert_eq!(shown, url);
    assert!(
        reason.contains("cannot create directory") || reason.contains("unable to open"),
        "{reason}"
    );
}

#[test]
fn a_directory_as_the_database_is_an_open_error() {
    let dir = tempfile::tempdir().unwrap();
    let url = dir.path().display().to_string();
    let (_, reason) = open_error(&url);
    assert!(reason.contains("unable to open"), "{reason}");
}

#[test]
fn a_file_that_is_not_a_database_is_an_open_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("garbage.db");
    std::fs::write(&path, vec![b'z'; 8192]).unwrap();
    let (_, reason) = open_error(path.to_str().unwrap());
    assert!(reason.contains("not a database"), "{reason}");
    assert_eq!(
        std::fs::read(&path).unwrap(),
        vec![b'z'; 8192],
        "the file is left alone"
    );
}

#[test]
fn an_unknown_scheme_is_an_open_error_without_the_password() {
    let (shown, reason) = open_error("mysql://app:hunter2@db.internal/pw");
    assert!(!shown.contains("hunter2"), "{shown}");
    assert!(shown.contains("db.internal"), "{shown}");
    assert!(reason.contains("mysql"), "{reason}");
}

#[test]
fn an_empty_url_is_an_open_error() {
    let (_, reason) = open_error("  ");
    assert!(reason.contains("empty"), "{reason}");
}

#[test]
fn postgres_down_is_an_open_error_without_the_password() {
    // Port 1 on loopback: nothing listens, the connection is refused at once.
    let url = "postgres://app:hunter2@127.0.0.1:1/podwrangler";
    let (shown, reason) = open_error(url);
    assert!(!shown.contains("hunter2") && !reason.contains("hunter2"));
    assert!(shown.contains("127.0.0.1:1"), "{shown}");
    assert!(
        reason.to_lowercase().contains("connect"),
        "libpq's reason: {reason}"
    );
}

#[test]
fn a_malformed_postgres_url_is_an_open_error_without_the_password() {
    // libpq quotes a URL it cannot parse back in its message.
    let (shown, reason) = open_error("postgres://app:hunter2@[::1/pw");
    assert!(
        !shown.contains("hunter2") && !reason.contains("hunter2"),
        "{shown}: {reason}"
    );
    assert!(reason.contains("IPv6"), "{reason}");
}

#[test]
fn postgres_missing_database_is_an_open_error() {
    let Some(db) = PgDatabase::create("store_missing_database") else {
        return;
    };
    let missing = testkit::pg::with_database(&db.url, "pw_no_such_database");
    let (_, reason) = open_error(&missing);
    assert!(
        reason.contains("pw_no_such_database") && reason.contains("does not exist"),
        "{reason}"
    );
}

#[test]
fn postgres_opens_migrates_and_reports_its_backend() {
    let Some(db) = PgDatabase::create("store_pg_open") else {
        return;
    };
    actix_rt::System::new().block_on(async {
        let h = store::start(&db.url, 2).unwrap();
        assert_eq!(h.backend, Backend::Postgres);
        h.addr.send(store::Ping).await.unwrap().unwrap();
    });
    let tables = db
        .psql("SELECT string_agg(tablename, ',' ORDER BY tablename) FROM pg_tables WHERE schemaname = 'public'")
        .unwrap();
    assert_eq!(
        tables,
        "__diesel_schema_migrations,audit_events,commands,jobs,pod_sets,pod_tags,pods"
    );
    let indexes = db
        .psql("SELECT string_agg(indexname, ',' ORDER BY indexname) FROM pg_indexes WHERE tablename = 'commands'")
        .unwrap();
    assert_eq!(
        indexes,
        "commands_by_actor,commands_by_alias,commands_by_alias_status,commands_by_job,commands_by_set,commands_by_started_at,commands_by_status,commands_by_uid,commands_pkey"
    );
}

#[test]
fn postgres_connection_is_reopened_after_the_server_drops_it() {
    let Some(db) = PgDatabase::create("store_pg_reconnect") else {
        return;
    };
    let (mut s, _) = Store::open(&db.url).unwrap();
    s.ping().unwrap();
    // Kill this database's sessions server-side, as a PostgreSQL restart would.
    db.psql(&format!(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = '{}' AND pid <> pg_backend_pid()",
        db.name
    ))
    .unwrap();
    // The first use may see the dead connection (the database is unavailable: worth a retry);
    // the store then reconnects by itself.
    let first = s.list_pods(None);
    if let Err(e) = &first {
        assert!(
            matches!(e, StoreError::Query(_) | StoreError::Unavailable(_)),
            "{e:?}"
        );
    }
    assert_eq!(s.list_pods(None).unwrap(), vec![]);
}
