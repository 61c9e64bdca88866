//! A fresh PostgreSQL database per test on the server that `PODWRANGLER_TEST_DATABASE_URL`
//! names, dropped again on `Drop`, so PostgreSQL tests can run in parallel. Shells out to `psql`.
//!
//! Without the variable, tests print a loud SKIP line and pass, unless `PODWRANGLER_REQUIRE_PG=1`
//! (CI), where a missing server is a failure.

use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Names a PostgreSQL server for tests: `postgres://postgres@127.0.0.1:54329/postgres`. The
/// database in it is only used to create and drop the per-test databases.
pub const URL_ENV: &str = "PODWRANGLER_TEST_DATABASE_URL";
/// Set to `1` to fail, rather than skip, when [`URL_ENV`] is unset.
pub const REQUIRE_ENV: &str = "PODWRANGLER_REQUIRE_PG";

/// The server's admin URL from [`URL_ENV`]. `None` after printing a SKIP line for `test` when it
/// is unset; panics instead when [`REQUIRE_ENV`] is `1`.
pub fn server_url(test: &str) -> Option<String> {
    match std::env::var(URL_ENV) {
        Ok(url) if !url.trim().is_empty() => Some(url.trim().to_owned()),
        _ => {
            if std::env::var(REQUIRE_ENV).as_deref() == Ok("1") {
                panic!(
                    "{test}: {URL_ENV} is not set but {REQUIRE_ENV}=1: a PostgreSQL server is required"
                );
            }
            eprintln!(
                "\n*** SKIP {test}: PostgreSQL test skipped because {URL_ENV} is not set \
                 (source scripts/pg.sh; pg_start) ***\n"
            );
            None
        }
    }
}

/// A database of its own on the test server. Dropped (with its connections) on `Drop`.
pub struct PgDatabase {
    /// URL of this database, for the code under test.
    pub url: String,
    pub name: String,
    admin_url: String,
}

impl PgDatabase {
    /// Creates a database named after `test`; `None` when no server is configured (see
    /// [`server_url`]). Panics with psql's message when the server refuses.
    pub fn create(test: &str) -> Option<PgDatabase> {
        let admin_url = server_url(test)?;
        let name = unique_name(test);
        if let Err(e) = psql(&admin_url, &format!("CREATE DATABASE \"{name}\"")) {
            panic!("{test}: cannot create test database {name} on {URL_ENV}: {e}");
        }
        let url = with_database(&admin_url, &name);
        Some(PgDatabase {
            url,
            name,
            admin_url,
        })
    }

    /// Runs SQL in this database; psql's unaligned, tuples-only output, or its error text.
    pub fn psql(&self, sql: &str) -> Result<String, String> {
        psql(&self.url, sql)
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let sql = format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name);
        if let Err(e) = psql(&self.admin_url, &sql) {
            eprintln!("testkit: could not drop test database {}: {e}", self.name);
        }
    }
}

/// Runs `sql` with `psql URL -X -At -v ON_ERROR_STOP=1 -c SQL`.
pub fn psql(url: &str, sql: &str) -> Result<String, String> {
    let out = Command::new("psql")
        .arg(url)
        .args(["-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1", "-c", sql])
        .env("PGCONNECT_TIMEOUT", "10")
        .output()
        .map_err(|e| format!("cannot run psql: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    } else {
        Err(format!(
            "psql failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// `url` with its database replaced by `name` (query parameters kept).
pub fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let authority_start = base.find("://").map(|i| i + 3).unwrap_or(0);
    let prefix = match base[authority_start..].find('/') {
        Some(i) => &base[..authority_start + i],
        None => base,
    };
    match query {
        Some(q) => format!("{prefix}/{name}?{q}"),
        None => format!("{prefix}/{name}"),
    }
}

/// `pw_<test>_<pid>_<time>_<n>`: lowercase, at most 63 bytes (PostgreSQL's identifier limit).
fn unique_name(test: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let slug: String = test
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .take(28)
        .collect();
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("pw_{slug}_{}_{nanos}_{n}", std::process::id())
}

/// A PostgreSQL server of a test's own (initdb, `pg_ctl start` on a free loopback port), for
/// tests that stop and start the server under a running daemon. Stopped and removed on `Drop`.
/// As root it runs as the `postgres` user (initdb refuses root).
pub struct PgServer {
    bin: std::path::PathBuf,
    dir: crate::TempDirGuard,
    as_postgres: bool,
    pub port: u16,
}

impl PgServer {
    /// Initialises and starts a server. `None` (after a SKIP line naming `test`) when no
    /// PostgreSQL server binaries are installed, or as root without a `postgres` user; a panic
    /// instead when [`REQUIRE_ENV`] is `1`.
    pub fn start(test: &str) -> Option<PgServer> {
        let skip = |why: &str| {
            if std::env::var(REQUIRE_ENV).as_deref() == Ok("1") {
                panic!("{test}: {why} but {REQUIRE_ENV}=1: a PostgreSQL server is required");
            }
            eprintln!("\n*** SKIP {test}: {why} ***\n");
            None
        };
        let Some(bin) = server_bin_dir() else {
            return skip("no PostgreSQL server binaries (initdb, pg_ctl) are installed");
        };
        let as_postgres = is_root();
        if as_postgres && !run_ok(Command::new("id").arg("postgres")) {
            return skip("running as root and there is no postgres user to run the server as");
        }
        let dir = crate::TempDirGuard::new("pw-pgserver");
        if as_postgres {
            assert!(
                run_ok(
                    Command::new("chown")
                        .arg("postgres:postgres")
                        .arg(dir.path())
                ),
                "{test}: cannot chown {} to postgres",
                dir.path().display()
            );
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let server = PgServer {
            bin,
            dir,
            as_postgres,
            port,
        };
        let data = server.dir.path().join("data");
        let out = server
            .command("initdb")
            .arg("-D")
            .arg(&data)
            .args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"])
            .output()
            .expect("run initdb");
        assert!(
            out.status.success(),
            "{test}: initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        server.start_again();
        Some(server)
    }

    /// `postgres://postgres@127.0.0.1:PORT/postgres`.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Starts the (stopped) server again on the same port and data; waits until it accepts.
    pub fn start_again(&self) {
        let dir = self.dir.path();
        let status = self
            .command("pg_ctl")
            .arg("-D")
            .arg(dir.join("data"))
            .arg("-l")
            .arg(dir.join("log"))
            .arg("-w")
            .arg("-o")
            .arg(format!(
                "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
                self.port,
                dir.display()
            ))
            .arg("start")
            .stdout(std::process::Stdio::null())
            .status()
            .expect("run pg_ctl start");
        assert!(
            status.success(),
            "pg_ctl start failed: {}",
            std::fs::read_to_string(dir.join("log")).unwrap_or_default()
        );
    }

    /// Stops the server (`pg_ctl stop -m fast`: open connections are terminated).
    pub fn stop(&self) {
        let _ = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .args(["-m", "fast", "-w", "stop"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
    }

    /// Runs SQL against the server's `postgres` database (see [`psql`]).
    pub fn psql(&self, sql: &str) -> Result<String, String> {
        psql(&self.url(), sql)
    }

    fn command(&self, tool: &str) -> Command {
        let path = self.bin.join(tool);
        if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(path);
            c
        } else {
            Command::new(path)
        }
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The directory holding `initdb` and `pg_ctl`: `/usr/lib/postgresql/*/bin` or `PATH`.
fn server_bin_dir() -> Option<std::path::PathBuf> {
    let mut found: Vec<std::path::PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|d| d.join("initdb").is_file() && d.join("pg_ctl").is_file())
        .collect();
    found.sort();
    if let Some(d) = found.pop() {
        return Some(d);
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .find(|d| d.join("initdb").is_file() && d.join("pg_ctl").is_file())
    })
}

fn run_ok(cmd: &mut Command) -> bool {
    cmd.stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// True when the test runs as root (uid 0).
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|euid| euid == "0"))
        })
        .unwrap_or(false)
}

/// Where a store test's database lives: a SQLite file in a temp dir, or a database of its own
/// on the test server. Dropped (file removed, database dropped) after the test.
pub enum TestDb {
    /// The directory is kept only to be removed on drop.
    Sqlite {
        _dir: tempfile::TempDir,
        url: String,
    },
    Pg(PgDatabase),
}

impl TestDb {
    /// A fresh SQLite file.
    pub fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().expect("a temp dir for SQLite");
        let url = dir.path().join("pw.db").display().to_string();
        TestDb::Sqlite { _dir: dir, url }
    }

    /// A fresh PostgreSQL database named after `test`; `None` without a test server.
    pub fn postgres(test: &str) -> Option<TestDb> {
        PgDatabase::create(test).map(TestDb::Pg)
    }

    /// The URL the store opens.
    pub fn url(&self) -> &str {
        match self {
            TestDb::Sqlite { url, .. } => url,
            TestDb::Pg(db) => &db.url,
        }
    }
}

/// Runs each scenario `fn NAME(db: TestDb)` once per backend, as tests `NAME::sqlite` and
/// `NAME::postgres` (skipped without a test server); `PREFIX` keeps database names apart.
#[macro_export]
macro_rules! on_both_backends {
    ($prefix:literal: $($name:ident),* $(,)?) => {$(
        mod $name {
            #[test]
            fn sqlite() {
                super::$name($crate::pg::TestDb::sqlite());
            }
            #[test]
            fn postgres() {
                if let Some(db) = $crate::pg::TestDb::postgres(concat!($prefix, stringify!($name))) {
                    super::$name(db);
                }
            }
        }
    )*};
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_database_and_keeps_the_query() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:54329/postgres", "t1"),
            "postgres://postgres@127.0.0.1:54329/t1"
        );
        assert_eq!(
            with_database("postgresql://u:p@h/db?sslmode=disable", "t2"),
            "postgresql://u:p@h/t2?sslmode=disable"
        );
        assert_eq!(
            with_database("postgres://h:5432", "t3"),
            "postgres://h:5432/t3"
        );
    }

    #[test]
    fn names_are_unique_and_valid_identifiers() {
        let a = unique_name("Some::Very-Long test name that goes on and on");
        let b = unique_name("Some::Very-Long test name that goes on and on");
        assert_ne!(a, b);
        assert!(a.len() <= 63, "{a}");
        assert!(
            a.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        );
    }
}
