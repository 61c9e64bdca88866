//! Persistence: registered pods, their tags and tokens, and the command history, in SQLite (the
//! default) or PostgreSQL, behind [`StoreActor`]s on an actix `SyncArbiter`.
//!
//! diesel is blocking, so it never runs on an async thread: the daemon sends messages
//! ([`InsertPod`], [`StartCommand`], [`ListCommands`], ...) to `StoreHandle::addr` and awaits the
//! answer. Each actor owns one connection; SQLite runs in WAL mode so readers do not wait for the
//! writer. A history row is written `running` when a command starts and completed when it ends,
//! so a crash leaves evidence; [`start`] turns rows left `running` into `interrupted`.
//!
//! Every write is one transaction whose commit error is seen: an id is handed out only once its
//! row is committed. When the database cannot take a command's history (a full disk, a server
//! that is down), [`RecordStart`] and [`RecordFinish`] keep it in the [`spool`] instead, and the
//! daemon replays the spool when the database takes writes again. [`StoreHealth`] tells
//! `/health` whether writes work and how many wait.
//!
//! [`Store`] is the same API without actors, for tools and benchmarks that own their thread.

pub(crate) mod conn;
pub mod jobs;
mod queries;
pub use queries::{OutputSlice, OutputStream, Pruned};
pub mod record;
mod schema;
pub mod sets;
pub mod spool;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::{Actor, Addr, Handler, Message, MessageResult, SyncArbiter, SyncContext};
use chrono::{DateTime, Utc};
use podwrangler::api::{AuditAction, AuditPage, CommandPage, CommandRecord, CommandStatus};
use podwrangler::{PodIdentity, ProviderConfig, ProviderKind, Secret};
use serde::{Deserialize, Serialize};

use conn::DbConnection;
pub use conn::DbTarget;
use spool::{Spool, SpoolOp};

/// Which database the store talks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// `sqlite` or `postgres`, as `/health` shows it.
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What can go wrong in the store. Messages never contain a token or a database password.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be opened (bad path, permissions, bad URL, server down).
    #[error("cannot open database {url_redacted}: {reason}")]
    Open {
        url_redacted: String,
        reason: String,
    },
    /// The embedded migrations could not be applied.
    #[error("database migration failed: {0}")]
    Migration(String),
    /// The pod or command does not exist.
    #[error("not found")]
    NotFound,
    /// The write conflicts with what is stored: a duplicate alias, or finishing a command twice.
    #[error("{0}")]
    Conflict(String),
    /// A request the store refuses before touching the database (bad cursor, provider and
    /// config of different kinds, finishing a command as `running`).
    #[error("{0}")]
    Invalid(String),
    /// Any other database failure.
    #[error("database error: {0}")]
    Query(String),
    /// The database cannot take the request now: the server is down or unreachable, the disk is
    /// full, the file is read-only or locked. Worth retrying later.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// The history spool cannot be opened.
    #[error("history spool: {0}")]
    Spool(String),
}

/// Database messages that say the database cannot take writes (or any request) for now,
/// rather than that the request is wrong.
const UNAVAILABLE_MESSAGES: &[&str] = &[
    // SQLite
    "database or disk is full",
    "disk i/o error",
    "readonly database",
    "database is locked",
    "unable to open database",
    // PostgreSQL
    "no space left on device",
    "could not extend file",
    "read-only transaction",
    "server closed the connection",
    "terminating connection",
    "connection refused",
    "could not connect",
    "the database system is",
    "no connection to the server",
    "connection to server",
];

impl From<diesel::result::Error> for StoreError {
    fn from(e: diesel::result::Error) -> Self {
        use diesel::result::{DatabaseErrorKind, Error};
        match e {
            Error::NotFound => StoreError::NotFound,
            // A commit whose rollback failed leaves the connection unusable; it is reopened.
            Error::RollbackErrorOnCommit { .. } | Error::BrokenTransactionManager => {
                StoreError::Unavailable(e.to_string())
            }
            Error::DatabaseError(
                DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand,
                _,
            ) => StoreError::Unavailable(e.to_string()),
            other => {
                let text = other.to_string();
                let lower = text.to_ascii_lowercase();
                if UNAVAILABLE_MESSAGES.iter().any(|m| lower.contains(m)) {
                    StoreError::Unavailable(text)
                } else {
                    StoreError::Query(text)
                }
            }
        }
    }
}

/// Whether the database takes writes, as the store last saw it, and how many history writes
/// wait in the spool. Shared by every store thread and read by `/health`.
#[derive(Debug, Default)]
pub struct StoreHealth {
    failing: AtomicBool,
    last_error: Mutex<Option<String>>,
    spool_pending: AtomicUsize,
}

impl StoreHealth {
    /// True unless the last write (or a request that found the database down) failed.
    pub fn ok(&self) -> bool {
        !self.failing.load(Ordering::SeqCst)
    }

    /// The failure that made the database not ok.
    pub fn last_error(&self) -> Option<String> {
        self.last_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// History writes waiting in the spool.
    pub fn spool_pending(&self) -> usize {
        self.spool_pending.load(Ordering::SeqCst)
    }

    fn set_spool_pending(&self, n: usize) {
        self.spool_pending.store(n, Ordering::SeqCst);
    }

    fn failed(&self, error: &str) {
        *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(error.to_owned());
        if !self.failing.swap(true, Ordering::SeqCst) {
            tracing::error!(%error, "the database is unavailable; history waits in the spool and requests that need the database get 503");
        }
    }

    fn recovered(&self) {
        if self.failing.swap(false, Ordering::SeqCst) {
            tracing::warn!("the database takes writes again");
        }
        *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }
}

/// A pod to register.
#[derive(Clone, Debug, PartialEq)]
pub struct NewPod {
    pub alias: String,
    pub provider: ProviderKind,
    pub identity: PodIdentity,
    /// Must be of the same kind as `provider`.
    pub config: ProviderConfig,
    pub token: Option<Secret>,
    /// Private key of a Kubernetes client certificate.
    pub client_key: Option<Secret>,
    /// Stored once each, returned sorted.
    pub tags: Vec<String>,
}

/// Changes to a registered pod; `None` leaves a field as it is.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PodChanges {
    pub provider: Option<ProviderKind>,
    pub identity: Option<PodIdentity>,
    pub config: Option<ProviderConfig>,
    /// `Some(None)` removes the token, `Some(Some(t))` replaces it.
    pub token: Option<Option<Secret>>,
    /// As `token`, for the client certificate's key.
    pub client_key: Option<Option<Secret>>,
    /// Replaces all tags.
    pub tags: Option<Vec<String>>,
}

/// A registered pod as stored. `Debug` shows the token as `***` (see [`Secret`]); the REST layer
/// must not put `token` in a response.
#[derive(Clone, Debug, PartialEq)]
pub struct PodRow {
    pub alias: String,
    pub provider: ProviderKind,
    pub identity: PodIdentity,
    pub config: ProviderConfig,
    pub token: Option<Secret>,
    pub client_key: Option<Secret>,
    /// Sorted, no duplicates.
    pub tags: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl PodRow {
    /// The endpoint a session connects to (identity, provider config, token).
    pub fn endpoint(&self) -> podwrangler::PodEndpoint {
        podwrangler::PodEndpoint {
            identity: self.identity.clone(),
            provider: self.config.clone(),
            token: self.token.clone(),
            client_key: self.client_key.clone(),
        }
    }
}

/// Which history rows to list. Newest first; pass the page's `next_cursor` back as `cursor`.
#[derive(Clone, Debug, PartialEq)]
pub struct HistoryFilter {
    pub alias: Option<String>,
    /// Only commands that ran in members of this pod set, including pods long gone.
    pub set: Option<String>,
    pub status: Option<CommandStatus>,
    /// Only commands this caller asked for (`unix:1000(alice)`, `key:ci`).
    pub actor: Option<String>,
    /// Only commands started at or after this instant.
    pub since: Option<DateTime<Utc>>,
    /// Only the commands of this fan-out job.
    pub job: Option<i64>,
    /// Page size: 0 means [`HistoryFilter::DEFAULT_LIMIT`]; above [`HistoryFilter::MAX_LIMIT`]
    /// it is capped.
    pub limit: usize,
    /// Opaque; from a previous page's `next_cursor`. A malformed cursor is [`StoreError::Invalid`].
    pub cursor: Option<String>,
}

impl HistoryFilter {
    pub const DEFAULT_LIMIT: usize = 50;
    pub const MAX_LIMIT: usize = 1000;

    /// The page size actually used.
    pub fn effective_limit(&self) -> usize {
        match self.limit {
            0 => Self::DEFAULT_LIMIT,
            n => n.min(Self::MAX_LIMIT),
        }
    }
}

impl Default for HistoryFilter {
    fn default() -> Self {
        HistoryFilter {
            alias: None,
            set: None,
            status: None,
            actor: None,
            since: None,
            job: None,
            limit: Self::DEFAULT_LIMIT,
            cursor: None,
        }
    }
}

/// The `error` text of rows marked `interrupted`.
pub const INTERRUPTED_ERROR: &str = "interrupted: the daemon stopped before the command finished";

/// Registers a pod (with its tags). `Conflict` when the alias is taken.
#[derive(Debug, Message)]
#[rtype(result = "Result<PodRow, StoreError>")]
pub struct InsertPod(pub NewPod);

/// Applies `changes` to a pod and bumps `updated_at`. `NotFound` for an unknown alias.
#[derive(Debug, Message)]
#[rtype(result = "Result<PodRow, StoreError>")]
pub struct UpdatePod {
    pub alias: String,
    pub changes: PodChanges,
}

/// Removes a pod and its tags (history stays). `NotFound` for an unknown alias.
#[derive(Debug, Message)]
#[rtype(result = "Result<(), StoreError>")]
pub struct DeletePod {
    pub alias: String,
}

/// One pod, `None` when the alias is unknown.
#[derive(Debug, Message)]
#[rtype(result = "Result<Option<PodRow>, StoreError>")]
pub struct GetPod {
    pub alias: String,
}

/// Every pod, by alias.
#[derive(Debug, Message)]
#[rtype(result = "Result<Vec<PodRow>, StoreError>")]
pub struct ListPods;

/// The pods carrying `tag`, by alias (uses the tag index).
#[derive(Debug, Message)]
#[rtype(result = "Result<Vec<PodRow>, StoreError>")]
pub struct ListPodsByTag {
    pub tag: String,
}

/// Writes a `running` history row before a command is sent; answers its id (once committed).
#[derive(Clone, Debug, PartialEq, Message, Serialize, Deserialize)]
#[rtype(result = "Result<i64, StoreError>")]
pub struct StartCommand {
    pub alias: String,
    pub pod_label: String,
    pub command: String,
    pub started_at: DateTime<Utc>,
    /// Who asked for it.
    pub actor: String,
    /// The fan-out job it belongs to.
    #[serde(default)]
    pub job_id: Option<i64>,
}

/// Completes a history row. A row already marked `interrupted` (shutdown raced the command) is
/// completed too, since the real outcome is better evidence. `NotFound` for an unknown id,
/// `Conflict` if it already finished, `Invalid` for status `running`.
#[derive(Debug, Message)]
#[rtype(result = "Result<CommandRecord, StoreError>")]
pub struct FinishCommand {
    pub id: i64,
    pub status: CommandStatus,
    pub exit_code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub error: Option<String>,
    pub truncated: bool,
    pub finished_at: DateTime<Utc>,
    pub duration_ms: f64,
    /// The command ran in a new shell, or ended its shell.
    pub session_restarted: bool,
}

/// How a command ended, as its history row records it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CommandEnd {
    pub status: CommandStatus,
    pub exit_code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub error: Option<String>,
    pub truncated: bool,
    pub finished_at: DateTime<Utc>,
    pub duration_ms: f64,
    /// The command ran in a new shell, or ended its shell.
    #[serde(default)]
    pub session_restarted: bool,
}

/// The record a command's row has (or will have once the spool is replayed); `id` 0 when its
/// start has no id yet.
pub fn record_of(id: Option<i64>, start: &StartCommand, end: &CommandEnd) -> CommandRecord {
    CommandRecord {
        id: id.unwrap_or(0),
        alias: start.alias.clone(),
        pod_label: start.pod_label.clone(),
        command: start.command.clone(),
        status: end.status,
        exit_code: end.exit_code,
        stdout: end.stdout.clone(),
        stderr: end.stderr.clone(),
        error: end.error.clone(),
        truncated: end.truncated,
        started_at: start.started_at,
        finished_at: Some(end.finished_at),
        duration_ms: Some(end.duration_ms),
        actor: Some(start.actor.clone()),
        session_restarted: end.session_restarted,
        history_error: None,
        job_id: start.job_id,
    }
}

/// A fresh random key for a command (128 bits, hex), given before its first history write.
pub fn new_uid() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// Records a command's start: its `running` row when the database takes it, else a spool entry.
/// `Err` only when neither can keep it; the command must not run then.
#[derive(Debug, Message)]
#[rtype(result = "Result<Started, StoreError>")]
pub struct RecordStart {
    /// From [`new_uid`]; the same for the command's [`RecordFinish`].
    pub uid: String,
    pub start: StartCommand,
}

/// Where a command's start went.
#[derive(Debug, Clone)]
pub struct Started {
    /// The committed row's id; `None` when the start waits in the spool.
    pub id: Option<i64>,
    /// Why history could not record the start, when it could not.
    pub history_error: Option<String>,
}

/// Records a command's outcome: completes its row (by `id`, or by `uid` when the start had no
/// id; inserts a finished row when there is none, e.g. a command that could not run), or keeps
/// it in the spool when the database cannot take it. Always answers the record.
#[derive(Debug, Message)]
#[rtype(result = "Recorded")]
pub struct RecordFinish {
    pub uid: String,
    pub id: Option<i64>,
    pub start: StartCommand,
    pub end: CommandEnd,
}

/// Where a result went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kept {
    /// Committed to the database.
    Database,
    /// Synced to the spool; replayed when the database takes writes again.
    Spool,
    /// Neither could keep it: the caller must not answer it as a success.
    Lost,
}

/// A recorded result: the row as committed, or (when not) as it will be, with
/// `history_error` saying why it is not in the database.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub record: CommandRecord,
    pub kept: Kept,
}

/// Replays the spool when entries wait; when none wait but the last write failed, tries a
/// write to learn whether the database has recovered. The daemon sends it every few seconds.
#[derive(Debug, Message)]
#[rtype(result = "spool::ReplayReport")]
pub struct Maintain;

/// One page of history, newest first.
#[derive(Debug, Message)]
#[rtype(result = "Result<CommandPage, StoreError>")]
pub struct ListCommands(pub HistoryFilter);

/// One history row, `None` when the id is unknown.
#[derive(Debug, Message)]
#[rtype(result = "Result<Option<CommandRecord>, StoreError>")]
pub struct GetCommand {
    pub id: i64,
}

/// Marks `running` rows `interrupted` (with [`INTERRUPTED_ERROR`]); `ids: None` means all of
/// them. Answers how many rows changed.
#[derive(Debug, Message)]
#[rtype(result = "Result<usize, StoreError>")]
pub struct InterruptRunning {
    pub ids: Option<Vec<i64>>,
}

/// One change to the registered pods, for the audit log.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<(), StoreError>")]
pub struct NewAuditEvent {
    pub actor: String,
    pub action: AuditAction,
    pub subject: String,
    pub detail: String,
}

/// Which audit events to list, newest first.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AuditFilter {
    pub actor: Option<String>,
    /// 0 means [`HistoryFilter::DEFAULT_LIMIT`]; capped at [`HistoryFilter::MAX_LIMIT`].
    pub limit: usize,
    pub cursor: Option<String>,
}

impl AuditFilter {
    pub fn effective_limit(&self) -> usize {
        match self.limit {
            0 => HistoryFilter::DEFAULT_LIMIT,
            n => n.min(HistoryFilter::MAX_LIMIT),
        }
    }
}

/// One page of the audit log.
#[derive(Debug, Message)]
#[rtype(result = "Result<AuditPage, StoreError>")]
pub struct ListAudit(pub AuditFilter);

/// Up to `len` bytes of a command's stdout or stderr from byte `offset`, and its full size;
/// only those bytes are read. `None` when there is no such command.
#[derive(Debug, Message)]
#[rtype(result = "Result<Option<OutputSlice>, StoreError>")]
pub struct ReadOutput {
    pub id: i64,
    pub stream: OutputStream,
    pub offset: u64,
    pub len: u64,
}

/// One retention batch: removes up to `batch` of the oldest finished rows started before
/// `cutoff` or beyond the newest `max_rows` (see [`queries::prune_history`]).
#[derive(Debug, Message)]
#[rtype(result = "Result<Pruned, StoreError>")]
pub struct PruneHistory {
    pub cutoff: Option<DateTime<Utc>>,
    pub max_rows: Option<u64>,
    pub batch: usize,
}

/// One step of an export: up to `limit` full rows matching `filter` with ids above `after`,
/// oldest first.
#[derive(Debug, Message)]
#[rtype(result = "Result<Vec<CommandRecord>, StoreError>")]
pub struct ExportPage {
    pub filter: HistoryFilter,
    pub after: i64,
    pub limit: usize,
}

/// Replaces the error of a finished command's row (by `id`, else by `uid`): how an interrupt
/// that ran after the row was written ended. Answers whether a row changed.
#[derive(Debug, Message)]
#[rtype(result = "Result<bool, StoreError>")]
pub struct AmendCommandError {
    pub id: Option<i64>,
    pub uid: String,
    pub error: String,
}

/// A database round trip, for `/health`.
#[derive(Debug, Message)]
#[rtype(result = "Result<(), StoreError>")]
pub struct Ping;

/// A synchronous store: one connection, reopened after it breaks. [`StoreActor`] wraps one; tools
/// and benchmarks can use it directly on their own thread.
pub struct Store {
    target: DbTarget,
    conn: Option<DbConnection>,
    health: Arc<StoreHealth>,
}

impl Store {
    /// Opens the database, applies migrations, and marks rows left `running` as `interrupted`
    /// (the count is the second value).
    pub fn open(database_url: &str) -> Result<(Store, usize), StoreError> {
        let target = DbTarget::parse(database_url)?;
        let mut store = Store::open_migrated(target, Arc::default())?;
        let interrupted = store.interrupt_running(None)?;
        Ok((store, interrupted))
    }

    /// Opens the database and applies migrations.
    fn open_migrated(target: DbTarget, health: Arc<StoreHealth>) -> Result<Store, StoreError> {
        let mut conn = target.open()?;
        conn.run_migrations()?;
        Ok(Store {
            target,
            conn: Some(conn),
            health,
        })
    }

    pub fn backend(&self) -> Backend {
        self.target.backend()
    }

    /// Whether writes work, as this store (and the others sharing its health) last saw.
    pub fn health(&self) -> &Arc<StoreHealth> {
        &self.health
    }

    /// Runs `f` on the connection, opening one if needed. A failure that means the database
    /// cannot be reached or written is [`StoreError::Unavailable`]: it is recorded in the
    /// health, and the connection is dropped so the next call reconnects (a server restarted,
    /// a transaction manager left broken by a failed commit). A successful `write` clears the
    /// health's failure.
    fn with<T>(
        &mut self,
        write: bool,
        f: impl FnOnce(&mut DbConnection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let conn = match &mut self.conn {
            Some(c) => c,
            None => match self.target.open() {
                Ok(c) => self.conn.insert(c),
                Err(e) => {
                    let e = StoreError::Unavailable(e.to_string());
                    self.health.failed(&e.to_string());
                    return Err(e);
                }
            },
        };
        let began = std::time::Instant::now();
        let result = match f(conn) {
            Err(StoreError::Query(m)) if conn.ping().is_err() => Err(StoreError::Unavailable(m)),
            other => other,
        };
        crate::metrics::METRICS
            .database_seconds
            .with_label_values(&[if write { "write" } else { "read" }])
            .observe(began.elapsed().as_secs_f64());
        match &result {
            Err(e @ StoreError::Unavailable(_)) => {
                tracing::debug!(database = %self.target.redacted(), error = %e, "database request failed; reconnecting on next use");
                self.conn = None;
                self.health.failed(&e.to_string());
            }
            Ok(_) if write => self.health.recovered(),
            _ => {}
        }
        result
    }

    pub fn insert_pod(&mut self, pod: NewPod) -> Result<PodRow, StoreError> {
        self.with(true, |c| queries::insert_pod(c, pod))
    }
    pub fn update_pod(&mut self, alias: &str, changes: PodChanges) -> Result<PodRow, StoreError> {
        self.with(true, |c| queries::update_pod(c, alias, changes))
    }
    pub fn delete_pod(&mut self, alias: &str) -> Result<(), StoreError> {
        self.with(true, |c| queries::delete_pod(c, alias))
    }
    pub fn get_pod(&mut self, alias: &str) -> Result<Option<PodRow>, StoreError> {
        self.with(false, |c| queries::get_pod(c, alias))
    }
    pub fn list_pods(&mut self, tag: Option<&str>) -> Result<Vec<PodRow>, StoreError> {
        self.with(false, |c| queries::list_pods(c, tag))
    }
    pub fn start_command(&mut self, msg: StartCommand) -> Result<i64, StoreError> {
        self.with(true, |c| queries::start_command(c, &msg))
    }
    pub fn finish_command(&mut self, msg: FinishCommand) -> Result<CommandRecord, StoreError> {
        self.with(true, |c| queries::finish_command(c, msg))
    }
    pub fn list_commands(&mut self, filter: &HistoryFilter) -> Result<CommandPage, StoreError> {
        self.with(false, |c| queries::list_commands(c, filter))
    }
    pub fn get_command(&mut self, id: i64) -> Result<Option<CommandRecord>, StoreError> {
        self.with(false, |c| queries::get_command(c, id))
    }
    pub fn record_audit(&mut self, event: &NewAuditEvent) -> Result<(), StoreError> {
        self.with(true, |c| queries::record_audit(c, event))
    }
    pub fn list_audit(&mut self, filter: &AuditFilter) -> Result<AuditPage, StoreError> {
        self.with(false, |c| queries::list_audit(c, filter))
    }
    pub fn interrupt_running(&mut self, ids: Option<&[i64]>) -> Result<usize, StoreError> {
        self.with(false, |c| queries::interrupt_running(c, ids))
    }
    pub fn ping(&mut self) -> Result<(), StoreError> {
        self.with(false, |c| c.ping())
    }
    /// [`queries::record_start`]: idempotent by `uid`.
    pub fn record_start(
        &mut self,
        uid: &str,
        msg: &StartCommand,
        interrupted: bool,
    ) -> Result<i64, StoreError> {
        self.with(true, |c| queries::record_start(c, uid, msg, interrupted))
    }
    /// [`queries::record_finish`]: idempotent by id or `uid`.
    pub fn record_finish(
        &mut self,
        id: Option<i64>,
        uid: &str,
        start: &StartCommand,
        end: &CommandEnd,
    ) -> Result<CommandRecord, StoreError> {
        self.with(true, |c| queries::record_finish(c, id, uid, start, end))
    }
    /// [`queries::prune_history`].
    pub fn prune_history(
        &mut self,
        cutoff: Option<DateTime<Utc>>,
        max_rows: Option<u64>,
        batch: usize,
    ) -> Result<Pruned, StoreError> {
        self.with(true, |c| queries::prune_history(c, cutoff, max_rows, batch))
    }
    /// [`queries::export_page`].
    pub fn export_page(
        &mut self,
        filter: &HistoryFilter,
        after: i64,
        limit: usize,
    ) -> Result<Vec<CommandRecord>, StoreError> {
        self.with(false, |c| queries::export_page(c, filter, after, limit))
    }
    /// [`queries::read_output`].
    pub fn read_output(
        &mut self,
        id: i64,
        stream: OutputStream,
        offset: u64,
        len: u64,
    ) -> Result<Option<OutputSlice>, StoreError> {
        self.with(false, |c| queries::read_output(c, id, stream, offset, len))
    }
    /// [`queries::amend_error`].
    pub fn amend_error(
        &mut self,
        id: Option<i64>,
        uid: &str,
        error: &str,
    ) -> Result<bool, StoreError> {
        self.with(true, |c| queries::amend_error(c, id, uid, error))
    }
    /// The row of the command with this `uid`.
    pub fn find_by_uid(&mut self, uid: &str) -> Result<Option<CommandRecord>, StoreError> {
        self.with(false, |c| queries::find_by_uid(c, uid))
    }
    /// A small committed write, to learn whether the database takes writes again.
    pub fn probe_write(&mut self) -> Result<(), StoreError> {
        self.with(true, queries::probe_write)
    }
    /// Bulk-inserts finished history rows in one transaction (imports and benchmarks).
    pub fn insert_history(&mut self, rows: &[CommandRecord]) -> Result<usize, StoreError> {
        self.with(true, |c| queries::insert_history(c, rows))
    }
}

/// A [`Store`] on a `SyncArbiter` thread, with the spool its history writes fall back to.
pub struct StoreActor {
    store: Store,
    spool: Option<Arc<Spool>>,
}

impl Actor for StoreActor {
    type Context = SyncContext<Self>;
}

/// What [`start`] gives the daemon.
#[derive(Clone)]
pub struct StoreHandle {
    pub addr: Addr<StoreActor>,
    pub backend: Backend,
    /// Rows found `running` at start (left by a crash) and marked `interrupted`.
    pub interrupted_at_start: usize,
    /// Whether writes work, and how many history writes wait in the spool.
    pub health: Arc<StoreHealth>,
    /// The spool, when one is configured.
    pub spool: Option<Arc<Spool>>,
}

/// How [`start_with`] runs the store.
#[derive(Clone, Debug)]
pub struct StoreOptions {
    pub database_url: String,
    /// StoreActor threads (at least 1).
    pub threads: usize,
    /// The history spool; `None`: history that the database cannot take is not kept.
    pub spool_path: Option<PathBuf>,
    /// How often the spool is replayed while entries wait (and a failed database is retried).
    pub retry_every: Duration,
}

/// Seconds a client should wait before retrying a request the database could not serve.
pub const RETRY_AFTER_SECS: u64 = 5;

/// [`start_with`] without a spool, retrying every 2 seconds (tests and tools).
pub fn start(database_url: &str, threads: usize) -> Result<StoreHandle, StoreError> {
    start_with(&StoreOptions {
        database_url: database_url.to_owned(),
        threads,
        spool_path: None,
        retry_every: Duration::from_secs(2),
    })
}

/// Opens the database (creating the SQLite file and its directory; WAL; busy_timeout), runs the
/// embedded migrations, opens the spool and replays what waits in it, marks rows left `running`
/// as `interrupted`, and starts `threads` StoreActors (at least 1; exactly 1 for an in-memory
/// SQLite database, which each connection would otherwise see as a separate database) and the
/// periodic replay.
///
/// Every connection is opened here, so a database that cannot be opened is an error now, not a
/// panic later. Must be called inside a running actix `System`.
pub fn start_with(opts: &StoreOptions) -> Result<StoreHandle, StoreError> {
    let target = DbTarget::parse(&opts.database_url)?;
    let health = Arc::new(StoreHealth::default());
    let mut first = Store::open_migrated(target.clone(), health.clone())?;
    let spool = match &opts.spool_path {
        Some(path) => Some(Arc::new(Spool::open(path, health.clone())?)),
        None => None,
    };
    if let Some(spool) = &spool
        && spool.pending() > 0
    {
        let report = spool.replay(&mut first);
        log_replay(spool, &report);
    }
    // After the replay, so the starts it wrote for commands a previous daemon never finished
    // are marked too. A database that cannot take the update now is no reason not to start.
    let interrupted_at_start = match first.interrupt_running(None) {
        Ok(n) => n,
        Err(e) => {
            tracing::error!(error = %e, "cannot mark commands left running by a previous daemon interrupted");
            0
        }
    };
    let threads = if target.is_memory() {
        1
    } else {
        opts.threads.max(1)
    };
    let mut stores = vec![first];
    for _ in 1..threads {
        stores.push(Store {
            target: target.clone(),
            conn: Some(target.open()?),
            health: health.clone(),
        });
    }
    if interrupted_at_start > 0 {
        tracing::warn!(
            rows = interrupted_at_start,
            "commands left running by a previous daemon marked interrupted"
        );
    }
    let backend = target.backend();
    let pool = Arc::new(Mutex::new(stores));
    let actor_health = health.clone();
    let actor_spool = spool.clone();
    let addr = SyncArbiter::start(threads, move || {
        // A restarted actor (after a panic) finds the pool empty and connects on first use.
        let store = pool
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop()
            .unwrap_or_else(|| Store {
                target: target.clone(),
                conn: None,
                health: actor_health.clone(),
            });
        StoreActor {
            store,
            spool: actor_spool.clone(),
        }
    });
    let maintain = addr.clone();
    let watched = health.clone();
    let every = opts.retry_every.max(Duration::from_millis(100));
    actix::spawn(async move {
        loop {
            tokio::time::sleep(every).await;
            if (watched.spool_pending() > 0 || !watched.ok())
                && maintain.send(Maintain).await.is_err()
            {
                return;
            }
        }
    });
    Ok(StoreHandle {
        addr,
        backend,
        interrupted_at_start,
        health,
        spool,
    })
}

fn log_replay(spool: &Spool, report: &spool::ReplayReport) {
    if report.applied > 0 || report.set_aside > 0 {
        tracing::warn!(
            spool = %spool.path().display(),
            replayed = report.applied,
            set_aside = report.set_aside,
            remaining = report.remaining,
            "history spool replayed into the database"
        );
    }
    if let Some(e) = &report.error {
        tracing::debug!(spool = %spool.path().display(), remaining = report.remaining, error = %e, "history spool not replayed yet");
    }
}

impl StoreActor {
    fn record_start(&mut self, msg: RecordStart) -> Result<Started, StoreError> {
        let error = match self.store.record_start(&msg.uid, &msg.start, false) {
            Ok(id) => {
                return Ok(Started {
                    id: Some(id),
                    history_error: None,
                });
            }
            Err(e) => e,
        };
        crate::metrics::METRICS.history_write_failures.inc();
        tracing::error!(alias = %msg.start.alias, uid = %msg.uid, %error, "history cannot record a command's start");
        let Some(spool) = &self.spool else {
            return Err(StoreError::Unavailable(format!(
                "{error}; no history spool is configured"
            )));
        };
        match spool.append(SpoolOp::Start {
            uid: msg.uid.clone(),
            start: msg.start,
        }) {
            Ok(()) => Ok(Started {
                id: None,
                history_error: Some(format!(
                    "history could not record the command ({error}); it waits in the spool and is recorded when the database takes writes again"
                )),
            }),
            Err(e) => {
                tracing::error!(uid = %msg.uid, spool = %spool.path().display(), error = %e, "the history spool cannot keep a command's start either; the command does not run");
                Err(StoreError::Unavailable(format!(
                    "{error}; the history spool cannot keep it either ({e})"
                )))
            }
        }
    }

    fn record_finish(&mut self, msg: RecordFinish) -> Recorded {
        let spool = self.spool.clone();
        let start_waits =
            msg.id.is_none() && spool.as_ref().is_some_and(|s| s.has_pending(&msg.uid));
        let reason = if start_waits {
            "its start waits in the spool".to_owned()
        } else {
            match self
                .store
                .record_finish(msg.id, &msg.uid, &msg.start, &msg.end)
            {
                Ok(record) => {
                    return Recorded {
                        record,
                        kept: Kept::Database,
                    };
                }
                Err(error) => {
                    crate::metrics::METRICS.history_write_failures.inc();
                    tracing::error!(alias = %msg.start.alias, id = ?msg.id, uid = %msg.uid, %error, "history cannot record a command's result");
                    error.to_string()
                }
            }
        };
        let mut record = record_of(msg.id, &msg.start, &msg.end);
        let appended = match &spool {
            Some(s) => s
                .append(SpoolOp::Finish {
                    uid: msg.uid,
                    id: msg.id,
                    start: msg.start,
                    end: msg.end,
                })
                .map_err(|e| e.to_string()),
            None => Err("no history spool is configured".to_owned()),
        };
        let kept = match appended {
            Ok(()) => {
                record.history_error = Some(format!(
                    "history could not record the result ({reason}); it waits in the spool and is recorded when the database takes writes again"
                ));
                Kept::Spool
            }
            Err(e) => {
                tracing::error!(alias = %record.alias, id = record.id, error = %e, "the history spool cannot keep a command's result either: it is not recorded");
                record.history_error = Some(format!(
                    "history could not record the result ({reason}) and the spool could not keep it ({e}): it is not recorded"
                ));
                Kept::Lost
            }
        };
        Recorded { record, kept }
    }

    fn maintain(&mut self) -> spool::ReplayReport {
        if let Some(spool) = self.spool.clone()
            && spool.pending() > 0
        {
            let report = spool.replay(&mut self.store);
            log_replay(&spool, &report);
            return report;
        }
        if !self.store.health.ok()
            && let Err(e) = self.store.probe_write()
        {
            tracing::debug!(error = %e, "the database does not take writes yet");
        }
        spool::ReplayReport::default()
    }
}

impl Handler<RecordStart> for StoreActor {
    type Result = Result<Started, StoreError>;
    fn handle(&mut self, msg: RecordStart, _: &mut Self::Context) -> Self::Result {
        self.record_start(msg)
    }
}

impl Handler<RecordFinish> for StoreActor {
    type Result = MessageResult<RecordFinish>;
    fn handle(&mut self, msg: RecordFinish, _: &mut Self::Context) -> Self::Result {
        MessageResult(self.record_finish(msg))
    }
}

impl Handler<Maintain> for StoreActor {
    type Result = MessageResult<Maintain>;
    fn handle(&mut self, _: Maintain, _: &mut Self::Context) -> Self::Result {
        MessageResult(self.maintain())
    }
}

impl Handler<InsertPod> for StoreActor {
    type Result = Result<PodRow, StoreError>;
    fn handle(&mut self, msg: InsertPod, _: &mut Self::Context) -> Self::Result {
        self.store.insert_pod(msg.0)
    }
}

impl Handler<UpdatePod> for StoreActor {
    type Result = Result<PodRow, StoreError>;
    fn handle(&mut self, msg: UpdatePod, _: &mut Self::Context) -> Self::Result {
        self.store.update_pod(&msg.alias, msg.changes)
    }
}

impl Handler<DeletePod> for StoreActor {
    type Result = Result<(), StoreError>;
    fn handle(&mut self, msg: DeletePod, _: &mut Self::Context) -> Self::Result {
        self.store.delete_pod(&msg.alias)
    }
}

impl Handler<GetPod> for StoreActor {
    type Result = Result<Option<PodRow>, StoreError>;
    fn handle(&mut self, msg: GetPod, _: &mut Self::Context) -> Self::Result {
        self.store.get_pod(&msg.alias)
    }
}

impl Handler<ListPods> for StoreActor {
    type Result = Result<Vec<PodRow>, StoreError>;
    fn handle(&mut self, _: ListPods, _: &mut Self::Context) -> Self::Result {
        self.store.list_pods(None)
    }
}

impl Handler<ListPodsByTag> for StoreActor {
    type Result = Result<Vec<PodRow>, StoreError>;
    fn handle(&mut self, msg: ListPodsByTag, _: &mut Self::Context) -> Self::Result {
        self.store.list_pods(Some(&msg.tag))
    }
}

impl Handler<StartCommand> for StoreActor {
    type Result = Result<i64, StoreError>;
    fn handle(&mut self, msg: StartCommand, _: &mut Self::Context) -> Self::Result {
        self.store.start_command(msg)
    }
}

impl Handler<FinishCommand> for StoreActor {
    type Result = Result<CommandRecord, StoreError>;
    fn handle(&mut self, msg: FinishCommand, _: &mut Self::Context) -> Self::Result {
        self.store.finish_command(msg)
    }
}

impl Handler<ListCommands> for StoreActor {
    type Result = Result<CommandPage, StoreError>;
    fn handle(&mut self, msg: ListCommands, _: &mut Self::Context) -> Self::Result {
        self.store.list_commands(&msg.0)
    }
}

impl Handler<GetCommand> for StoreActor {
    type Result = Result<Option<CommandRecord>, StoreError>;
    fn handle(&mut self, msg: GetCommand, _: &mut Self::Context) -> Self::Result {
        self.store.get_command(msg.id)
    }
}

impl Handler<InterruptRunning> for StoreActor {
    type Result = Result<usize, StoreError>;
    fn handle(&mut self, msg: InterruptRunning, _: &mut Self::Context) -> Self::Result {
        self.store.interrupt_running(msg.ids.as_deref())
    }
}

impl Handler<PruneHistory> for StoreActor {
    type Result = Result<Pruned, StoreError>;
    fn handle(&mut self, msg: PruneHistory, _: &mut Self::Context) -> Self::Result {
        self.store
            .prune_history(msg.cutoff, msg.max_rows, msg.batch)
    }
}

impl Handler<ExportPage> for StoreActor {
    type Result = Result<Vec<CommandRecord>, StoreError>;
    fn handle(&mut self, msg: ExportPage, _: &mut Self::Context) -> Self::Result {
        self.store.export_page(&msg.filter, msg.after, msg.limit)
    }
}

impl Handler<ReadOutput> for StoreActor {
    type Result = Result<Option<OutputSlice>, StoreError>;
    fn handle(&mut self, msg: ReadOutput, _: &mut Self::Context) -> Self::Result {
        self.store
            .read_output(msg.id, msg.stream, msg.offset, msg.len)
    }
}

impl Handler<AmendCommandError> for StoreActor {
    type Result = Result<bool, StoreError>;
    fn handle(&mut self, msg: AmendCommandError, _: &mut Self::Context) -> Self::Result {
        // A row whose writes wait in the spool is amended there, after them; so is any row
        // while the database cannot take the change.
        let spooled = self.spool.as_ref().is_some_and(|s| s.has_pending(&msg.uid));
        let error = if spooled {
            None
        } else {
            match self.store.amend_error(msg.id, &msg.uid, &msg.error) {
                Err(StoreError::Unavailable(e)) => Some(e),
                other => return other,
            }
        };
        let Some(spool) = &self.spool else {
            return Err(StoreError::Unavailable(error.unwrap_or_default()));
        };
        spool
            .append(SpoolOp::Amend {
                uid: msg.uid,
                id: msg.id,
                error: msg.error,
            })
            .map(|()| true)
            .map_err(|e| {
                StoreError::Unavailable(format!(
                    "{}; the history spool cannot keep the change either ({e})",
                    error.unwrap_or_else(|| "the row waits in the spool".into())
                ))
            })
    }
}

impl Handler<Ping> for StoreActor {
    type Result = Result<(), StoreError>;
    fn handle(&mut self, _: Ping, _: &mut Self::Context) -> Self::Result {
        self.store.ping()
    }
}

impl Handler<NewAuditEvent> for StoreActor {
    type Result = Result<(), StoreError>;
    fn handle(&mut self, msg: NewAuditEvent, _: &mut Self::Context) -> Self::Result {
        self.store.record_audit(&msg)
    }
}

impl Handler<ListAudit> for StoreActor {
    type Result = Result<AuditPage, StoreError>;
    fn handle(&mut self, msg: ListAudit, _: &mut Self::Context) -> Self::Result {
        self.store.list_audit(&msg.0)
    }
}
