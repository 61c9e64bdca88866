//! Opening a database connection from a URL: which backend, SQLite file and pragmas, PostgreSQL
//! connect timeout, embedded migrations, and errors that name the (redacted) URL.

use std::path::{Path, PathBuf};

use diesel::connection::SimpleConnection;
use diesel::{Connection, PgConnection, SqliteConnection};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};
use podwrangler::redact_url;

use super::{Backend, StoreError};

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../migrations/sqlite");
const PG_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../migrations/postgres");

/// Set on every SQLite connection. `busy_timeout` comes first so the others wait for a lock
/// instead of failing while another connection writes.
const SQLITE_PRAGMAS: &str = "PRAGMA busy_timeout = 5000; PRAGMA journal_mode = WAL; \
     PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;";

/// Seconds libpq may take to connect when the URL does not say; without it an unreachable host
/// would hang the daemon's start for minutes.
const PG_CONNECT_TIMEOUT_SECS: u32 = 10;

/// One open connection of either backend. Queries are written once and expanded for both arms
/// by [`with_conn!`] / [`write_tx!`], so each arm keeps its backend's full feature set.
pub enum DbConnection {
    Sqlite(SqliteConnection),
    Pg(PgConnection),
}

/// Runs `$body` with `$c` bound to the inner connection of either backend.
macro_rules! with_conn {
    ($conn:expr, $c:ident => $body:expr) => {
        match $conn {
            $crate::store::conn::DbConnection::Sqlite($c) => $body,
            $crate::store::conn::DbConnection::Pg($c) => $body,
        }
    };
}

/// Runs `$body` in a write transaction. SQLite uses `BEGIN IMMEDIATE`: a deferred transaction
/// that reads first and then writes can fail with SQLITE_BUSY without waiting for busy_timeout.
macro_rules! write_tx {
    ($conn:expr, $c:ident => $body:expr) => {
        match $conn {
            $crate::store::conn::DbConnection::Sqlite(conn) => {
                conn.immediate_transaction(|$c| $body)
            }
            $crate::store::conn::DbConnection::Pg(conn) => conn.transaction(|$c| $body),
        }
    };
}

pub(crate) use {with_conn, write_tx};

impl DbConnection {
    pub fn backend(&self) -> Backend {
        match self {
            DbConnection::Sqlite(_) => Backend::Sqlite,
            DbConnection::Pg(_) => Backend::Postgres,
        }
    }

    /// Applies the migrations this build embeds that the database has not seen yet.
    pub fn run_migrations(&mut self) -> Result<(), StoreError> {
        let applied = match self {
            DbConnection::Sqlite(c) => c.run_pending_migrations(SQLITE_MIGRATIONS).map(|v| v.len()),
            DbConnection::Pg(c) => c.run_pending_migrations(PG_MIGRATIONS).map(|v| v.len()),
        };
        match applied {
            Ok(n) => {
                if n > 0 {
                    tracing::info!(applied = n, "database migrations applied");
                }
                Ok(())
            }
            Err(e) => Err(StoreError::Migration(e.to_string())),
        }
    }

    /// A cheap round trip, to tell a live connection from a broken one.
    pub fn ping(&mut self) -> Result<(), StoreError> {
        with_conn!(self, c => c.batch_execute("SELECT 1")).map_err(StoreError::from)
    }
}

/// Where the database is, parsed from a URL once and reopened from as often as needed.
#[derive(Clone, Debug)]
pub struct DbTarget {
    backend: Backend,
    /// What the driver is given: a SQLite path (or `:memory:` / `file:` URI) or a libpq URL.
    connect: String,
    /// Shown in errors and logs instead of the URL, credentials hidden.
    redacted: String,
}

impl DbTarget {
    /// Accepts `postgres://` / `postgresql://` URLs, `sqlite://PATH`, `sqlite:PATH`, `file:` URIs,
    /// `:memory:` and plain file paths. Any other `scheme://` is refused.
    pub fn parse(database_url: &str) -> Result<DbTarget, StoreError> {
        let url = database_url.trim();
        // redact_url cannot parse a malformed URL, and then leaves its userinfo alone.
        let redacted = hide_url_password(&redact_url(url));
        let open_err = |reason: String| StoreError::Open {
            url_redacted: redacted.clone(),
            reason,
        };
        if url.is_empty() {
            return Err(open_err("the database URL is empty".into()));
        }
        let lower = url.to_ascii_lowercase();
        if lower.starts_with("postgres://") || lower.starts_with("postgresql://") {
            let connect = if lower.contains("connect_timeout=") {
                url.to_owned()
            } else {
                let sep = if url.contains('?') { '&' } else { '?' };
                format!("{url}{sep}connect_timeout={PG_CONNECT_TIMEOUT_SECS}")
            };
            return Ok(DbTarget {
                backend: Backend::Postgres,
                connect,
                redacted,
            });
        }
        let connect = if let Some(rest) = url.strip_prefix("sqlite://") {
            rest.to_owned()
        } else if let Some(rest) = url.strip_prefix("sqlite:") {
            rest.to_owned()
        } else if let Some((scheme, _)) = url.split_once("://") {
            if !scheme.eq_ignore_ascii_case("file") {
                return Err(open_err(format!(
                    "unsupported database URL scheme {scheme:?} (use a SQLite path, sqlite://PATH, or postgres://...)"
                )));
            }
            url.to_owned()
        } else {
            url.to_owned()
        };
        if connect.is_empty() {
            return Err(open_err("the SQLite path is empty".into()));
        }
        Ok(DbTarget {
            backend: Backend::Sqlite,
            connect,
            redacted,
        })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The URL with credentials hidden.
    pub fn redacted(&self) -> &str {
        &self.redacted
    }

    /// True for an in-memory SQLite database, which every connection sees separately.
    pub fn is_memory(&self) -> bool {
        self.backend == Backend::Sqlite
            && (self.connect == ":memory:" || self.connect.contains("mode=memory"))
    }

    /// The SQLite file this target names, if it is one.
    pub fn sqlite_path(&self) -> Option<PathBuf> {
        if self.backend != Backend::Sqlite || self.is_memory() {
            return None;
        }
        let path = match self.connect.strip_prefix("file:") {
            Some(rest) => {
                let rest = rest.split(['?', '#']).next().unwrap_or("");
                // file:///abs and file:/abs both name /abs.
                rest.strip_prefix("//").unwrap_or(rest)
            }
            None => self.connect.as_str(),
        };
        Some(PathBuf::from(path))
    }

    fn open_error(&self, reason: impl Into<String>) -> StoreError {
        StoreError::Open {
            url_redacted: self.redacted.clone(),
            reason: reason.into(),
        }
    }

    /// Opens one connection, ready for queries: SQLite gets its directory created and its
    /// pragmas set (failures there, like "file is not a database", are open errors too).
    pub fn open(&self) -> Result<DbConnection, StoreError> {
        match self.backend {
            Backend::Sqlite => {
                if let Some(path) = self.sqlite_path() {
                    create_parent_dir(&path).map_err(|e| self.open_error(e))?;
                }
                let mut conn = SqliteConnection::establish(&self.connect)
                    .map_err(|e| self.open_error(explain_sqlite_open(self, e.to_string())))?;
                conn.batch_execute(SQLITE_PRAGMAS)
                    .map_err(|e| self.open_error(e.to_string()))?;
                Ok(DbConnection::Sqlite(conn))
            }
            Backend::Postgres => {
                let conn = PgConnection::establish(&self.connect)
                    .map_err(|e| self.open_error(self.scrub(&e.to_string())))?;
                Ok(DbConnection::Pg(conn))
            }
        }
    }
}

impl DbTarget {
    /// libpq's message on one line, with the URL (which libpq may quote back, password and all)
    /// replaced by its redacted form and any remaining copy of the password hidden.
    fn scrub(&self, reason: &str) -> String {
        let mut text = reason.replace(&self.connect, &self.redacted);
        if let Some(password) = url_password(&self.connect) {
            text = text.replace(password, podwrangler::REDACTED);
        }
        text.split_whitespace().collect::<Vec<_>>().join(" ")
    }
}

/// The password in `scheme://user:password@host...`, if there is one.
fn url_password(url: &str) -> Option<&str> {
    let rest = &url[url.find("://")? + 3..];
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    let userinfo = &authority[..authority.rfind('@')?];
    let (_, password) = userinfo.split_once(':')?;
    (!password.is_empty()).then_some(password)
}

/// `url` with the password of `scheme://user:password@host` replaced by `***`.
fn hide_url_password(url: &str) -> String {
    match url_password(url) {
        Some(password) => {
            let start = password.as_ptr() as usize - url.as_ptr() as usize;
            format!(
                "{}{}{}",
                &url[..start],
                podwrangler::REDACTED,
                &url[start + password.len()..]
            )
        }
        None => url.to_owned(),
    }
}

/// SQLite only says "unable to open database file"; name the usual causes it leaves out.
fn explain_sqlite_open(target: &DbTarget, reason: String) -> String {
    let Some(path) = target.sqlite_path() else {
        return reason;
    };
    if !reason.contains("unable to open") {
        return reason;
    }
    if path.is_dir() {
        return format!("{reason} ({} is a directory)", path.display());
    }
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() && !dir.is_dir() => {
            format!("{reason} ({} is not a directory)", dir.display())
        }
        Some(dir) if !path.exists() => format!(
            "{reason} (cannot create {} in {}: check its permissions)",
            path.file_name().unwrap_or_default().to_string_lossy(),
            if dir.as_os_str().is_empty() {
                std::path::Path::new(".")
            } else {
                dir
            }
            .display()
        ),
        _ => reason,
    }
}

fn create_parent_dir(path: &Path) -> Result<(), String> {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() && !dir.exists() => {
            crate::files::create_private_dir(dir)
                .map_err(|e| format!("cannot create directory {}: {e}", dir.display()))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_hidden_even_in_malformed_urls() {
        for url in [
            "postgres://u:pw9@[::1",
            "postgres://u:pw9@h/db",
            "postgresql://u:pw9@h:5/db?x=1",
        ] {
            let t = DbTarget::parse(url).unwrap();
            assert!(!t.redacted().contains("pw9"), "{}", t.redacted());
            assert!(t.redacted().contains("u:***@"), "{}", t.redacted());
            assert!(!t.scrub(&format!("bad URI {:?}", t.connect)).contains("pw9"));
        }
        assert_eq!(url_password("postgres://h/db?user=a@b"), None);
        assert_eq!(hide_url_password("/var/lib/pw.db"), "/var/lib/pw.db");
    }

    #[test]
    fn parses_the_url_forms() {
        let pg = DbTarget::parse("postgres://h/db").unwrap();
        assert_eq!(pg.backend(), Backend::Postgres);
        assert_eq!(pg.connect, "postgres://h/db?connect_timeout=10");
        let pg = DbTarget::parse("postgresql://h/db?connect_timeout=3").unwrap();
        assert_eq!(pg.connect, "postgresql://h/db?connect_timeout=3");
        for (url, path) in [
            ("sqlite:///var/lib/pw.db", "/var/lib/pw.db"),
            ("sqlite:rel/pw.db", "rel/pw.db"),
            ("/abs/pw.db", "/abs/pw.db"),
            ("file:///abs/pw.db?mode=rwc", "/abs/pw.db"),
        ] {
            let t = DbTarget::parse(url).unwrap();
            assert_eq!(t.backend(), Backend::Sqlite, "{url}");
            assert_eq!(t.sqlite_path(), Some(PathBuf::from(path)), "{url}");
        }
        assert!(DbTarget::parse(":memory:").unwrap().is_memory());
        assert!(matches!(
            DbTarget::parse("mysql://h/db"),
            Err(StoreError::Open { .. })
        ));
    }
}
