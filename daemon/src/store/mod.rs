//! Persistence: registered pods, their tags and tokens, and the command history, in SQLite (the
//! default) or PostgreSQL, behind [`StoreActor`]s on an actix `SyncArbiter`.
//!
//! diesel is blocking, so it never runs on an async thread: the daemon sends messages
//! ([`InsertPod`], [`StartCommand`], [`ListCommands`], ...) to `StoreHandle::addr` and awaits the
//! answer. Each actor owns one connection; SQLite runs in WAL mode so readers do not wait for the
//! writer. A history row is written `running` when a command starts and completed when it ends,
//! so a crash leaves evidence; [`start`] turns rows left `running` into `interrupted`.
//!
//! [`Store`] is the same API without actors, for tools and benchmarks that own their thread.

pub mod bench;
pub(crate) mod conn;
mod queries;
mod schema;

use std::sync::{Arc, Mutex};

use actix::{Actor, Addr, Handler, Message, SyncArbiter, SyncContext};
use chrono::{DateTime, Utc};
use podwrangler::api::{AuditAction, AuditPage, CommandPage, CommandRecord, CommandStatus};
use podwrangler::{PodIdentity, ProviderConfig, ProviderKind, Secret};

use conn::DbConnection;
pub use conn::DbTarget;

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
}

impl From<diesel::result::Error> for StoreError {
    fn from(e: diesel::result::Error) -> Self {
        match e {
            diesel::result::Error::NotFound => StoreError::NotFound,
            other => StoreError::Query(other.to_string()),
        }
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
    pub status: Option<CommandStatus>,
    /// Only commands this caller asked for (`unix:1000(alice)`, `key:ci`).
    pub actor: Option<String>,
    /// Only commands started at or after this instant.
    pub since: Option<DateTime<Utc>>,
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
            status: None,
            actor: None,
            since: None,
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

/// Writes a `running` history row before a command is sent; answers its id.
#[derive(Debug, Message)]
#[rtype(result = "Result<i64, StoreError>")]
pub struct StartCommand {
    pub alias: String,
    pub pod_label: String,
    pub command: String,
    pub started_at: DateTime<Utc>,
    /// Who asked for it.
    pub actor: String,
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

/// A database round trip, for `/health`.
#[derive(Debug, Message)]
#[rtype(result = "Result<(), StoreError>")]
pub struct Ping;

/// A synchronous store: one connection, reopened after it breaks. [`StoreActor`] wraps one; tools
/// and benchmarks can use it directly on their own thread.
pub struct Store {
    target: DbTarget,
    conn: Option<DbConnection>,
}

impl Store {
    /// Opens the database, applies migrations, and marks rows left `running` as `interrupted`
    /// (the count is the second value).
    pub fn open(database_url: &str) -> Result<(Store, usize), StoreError> {
        let target = DbTarget::parse(database_url)?;
        let mut conn = target.open()?;
        conn.run_migrations()?;
        let mut store = Store {
            target,
            conn: Some(conn),
        };
        let interrupted = store.interrupt_running(None)?;
        Ok((store, interrupted))
    }

    pub fn backend(&self) -> Backend {
        self.target.backend()
    }

    /// Runs `f` on the connection, opening one if needed. After a failure the connection is
    /// checked and dropped if it no longer answers (server restarted), so the next call reconnects.
    fn with<T>(
        &mut self,
        f: impl FnOnce(&mut DbConnection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let conn = match &mut self.conn {
            Some(c) => c,
            None => self.conn.insert(self.target.open()?),
        };
        let result = f(conn);
        if matches!(result, Err(StoreError::Query(_))) && conn.ping().is_err() {
            tracing::warn!(database = %self.target.redacted(), "database connection lost; reconnecting on next use");
            self.conn = None;
        }
        result
    }

    pub fn insert_pod(&mut self, pod: NewPod) -> Result<PodRow, StoreError> {
        self.with(|c| queries::insert_pod(c, pod))
    }
    pub fn update_pod(&mut self, alias: &str, changes: PodChanges) -> Result<PodRow, StoreError> {
        self.with(|c| queries::update_pod(c, alias, changes))
    }
    pub fn delete_pod(&mut self, alias: &str) -> Result<(), StoreError> {
        self.with(|c| queries::delete_pod(c, alias))
    }
    pub fn get_pod(&mut self, alias: &str) -> Result<Option<PodRow>, StoreError> {
        self.with(|c| queries::get_pod(c, alias))
    }
    pub fn list_pods(&mut self, tag: Option<&str>) -> Result<Vec<PodRow>, StoreError> {
        self.with(|c| queries::list_pods(c, tag))
    }
    pub fn start_command(&mut self, msg: StartCommand) -> Result<i64, StoreError> {
        self.with(|c| queries::start_command(c, &msg))
    }
    pub fn finish_command(&mut self, msg: FinishCommand) -> Result<CommandRecord, StoreError> {
        self.with(|c| queries::finish_command(c, msg))
    }
    pub fn list_commands(&mut self, filter: &HistoryFilter) -> Result<CommandPage, StoreError> {
        self.with(|c| queries::list_commands(c, filter))
    }
    pub fn get_command(&mut self, id: i64) -> Result<Option<CommandRecord>, StoreError> {
        self.with(|c| queries::get_command(c, id))
    }
    pub fn record_audit(&mut self, event: &NewAuditEvent) -> Result<(), StoreError> {
        self.with(|c| queries::record_audit(c, event))
    }
    pub fn list_audit(&mut self, filter: &AuditFilter) -> Result<AuditPage, StoreError> {
        self.with(|c| queries::list_audit(c, filter))
    }
    pub fn interrupt_running(&mut self, ids: Option<&[i64]>) -> Result<usize, StoreError> {
        self.with(|c| queries::interrupt_running(c, ids))
    }
    pub fn ping(&mut self) -> Result<(), StoreError> {
        self.with(|c| c.ping())
    }
    /// Bulk-inserts finished history rows in one transaction (imports and benchmarks).
    pub fn insert_history(&mut self, rows: &[CommandRecord]) -> Result<usize, StoreError> {
        self.with(|c| queries::insert_history(c, rows))
    }
}

/// A [`Store`] on a `SyncArbiter` thread.
pub struct StoreActor {
    store: Store,
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
}

/// Opens the database (creating the SQLite file and its directory; WAL; busy_timeout), runs the
/// embedded migrations, marks rows left `running` as `interrupted`, and starts `threads`
/// StoreActors (at least 1; exactly 1 for an in-memory SQLite database, which each connection
/// would otherwise see as a separate database).
///
/// Every connection is opened here, so a database that cannot be opened is an error now, not a
/// panic later. Must be called inside a running actix `System`.
pub fn start(database_url: &str, threads: usize) -> Result<StoreHandle, StoreError> {
    let (first, interrupted_at_start) = Store::open(database_url)?;
    let target = first.target.clone();
    let threads = if target.is_memory() {
        1
    } else {
        threads.max(1)
    };
    let mut stores = vec![first];
    for _ in 1..threads {
        stores.push(Store {
            target: target.clone(),
            conn: Some(target.open()?),
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
    let addr = SyncArbiter::start(threads, move || {
        // A restarted actor (after a panic) finds the pool empty and connects on first use.
        let store = pool
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop()
            .unwrap_or_else(|| Store {
                target: target.clone(),
                conn: None,
            });
        StoreActor { store }
    });
    Ok(StoreHandle {
        addr,
        backend,
        interrupted_at_start,
    })
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
