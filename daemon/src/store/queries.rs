//! The store's queries, written once for both backends (see `conn::with_conn!`), and the
//! conversions between rows and the API's types.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use podwrangler::api::{
    AuditAction, AuditEvent, AuditPage, CommandPage, CommandRecord, CommandStatus, CommandSummary,
    HISTORY_PREVIEW_BYTES,
};
use podwrangler::{ProviderConfig, ProviderKind, Secret};

use super::conn::{DbConnection, with_conn, write_tx};
use super::schema::{audit_events, commands, pod_tags, pods};
use super::{
    AuditFilter, CommandEnd, FinishCommand, HistoryFilter, INTERRUPTED_ERROR, NewAuditEvent,
    NewPod, PodChanges, PodRow, StartCommand, StoreError,
};

/// Rows per multi-row INSERT: well under SQLite's and PostgreSQL's bind-parameter limits.
const INSERT_CHUNK: usize = 500;

#[derive(Queryable, Selectable)]
#[diesel(table_name = pods)]
struct PodDb {
    alias: String,
    provider: String,
    identity: String,
    config: String,
    token: Option<String>,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
    client_key: Option<String>,
}

#[derive(Insertable)]
#[diesel(table_name = pods)]
struct PodInsert<'a> {
    alias: &'a str,
    provider: &'a str,
    identity: String,
    config: String,
    token: Option<&'a str>,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
    client_key: Option<&'a str>,
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = commands)]
pub(super) struct CommandDb {
    id: i64,
    alias: String,
    pod_label: String,
    command: String,
    status: String,
    exit_code: Option<i32>,
    stdout: String,
    stderr: String,
    error: Option<String>,
    truncated: bool,
    started_at: NaiveDateTime,
    finished_at: Option<NaiveDateTime>,
    duration_ms: Option<f64>,
    actor: Option<String>,
    session_restarted: bool,
    job_id: Option<i64>,
}

#[derive(Insertable)]
#[diesel(table_name = commands)]
struct CommandInsert<'a> {
    alias: &'a str,
    pod_label: &'a str,
    command: &'a str,
    status: &'a str,
    exit_code: Option<i32>,
    stdout: &'a str,
    stderr: &'a str,
    error: Option<&'a str>,
    truncated: bool,
    started_at: NaiveDateTime,
    finished_at: Option<NaiveDateTime>,
    duration_ms: Option<f64>,
    actor: Option<&'a str>,
    session_restarted: bool,
    uid: Option<&'a str>,
    job_id: Option<i64>,
    set_name: Option<&'a str>,
    pod_name: Option<&'a str>,
}

/// The set and pod name of a set member's alias (`SET/POD`); `None` for other pods.
pub fn set_and_pod(alias: &str) -> (Option<&str>, Option<&str>) {
    match alias.split_once('/') {
        Some((set, pod)) => (Some(set), Some(pod)),
        None => (None, None),
    }
}

impl<'a> CommandInsert<'a> {
    /// A `running` row for a command that is starting.
    fn running(msg: &'a StartCommand, uid: Option<&'a str>) -> Self {
        CommandInsert {
            alias: &msg.alias,
            pod_label: &msg.pod_label,
            command: &msg.command,
            status: CommandStatus::Running.as_str(),
            exit_code: None,
            stdout: "",
            stderr: "",
            error: None,
            truncated: false,
            started_at: msg.started_at.naive_utc(),
            finished_at: None,
            duration_ms: None,
            actor: Some(&msg.actor),
            session_restarted: false,
            uid,
            job_id: msg.job_id,
            set_name: set_and_pod(&msg.alias).0,
            pod_name: set_and_pod(&msg.alias).1,
        }
    }
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = audit_events)]
struct AuditDb {
    id: i64,
    at: NaiveDateTime,
    actor: String,
    action: String,
    subject: String,
    detail: String,
}

/// Now, at the microsecond precision both backends keep, so a value handed back equals the
/// value read back later.
fn now() -> DateTime<Utc> {
    truncate_micros(Utc::now())
}

fn truncate_micros(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(t.timestamp_micros()).unwrap_or(t)
}

fn utc(t: NaiveDateTime) -> DateTime<Utc> {
    DateTime::from_naive_utc_and_offset(t, Utc)
}

fn normalize_tags(tags: Vec<String>) -> Vec<String> {
    tags.into_iter()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

fn check_kind(provider: ProviderKind, config: &ProviderConfig) -> Result<(), StoreError> {
    if config.kind() != provider {
        return Err(StoreError::Invalid(format!(
            "provider is {provider} but the connection details are for {}",
            config.kind()
        )));
    }
    Ok(())
}

fn to_json<T: serde::Serialize>(what: &str, value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value)
        .map_err(|e| StoreError::Query(format!("cannot encode {what}: {e}")))
}

fn duplicate_alias(e: DieselError, alias: &str) -> StoreError {
    match e {
        DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _) => {
            StoreError::Conflict(format!("a pod with alias {alias:?} already exists"))
        }
        other => other.into(),
    }
}

impl PodDb {
    fn into_row(self, tags: Vec<String>) -> Result<PodRow, StoreError> {
        let corrupt = |what: &str, e: String| {
            StoreError::Query(format!(
                "stored {what} of pod {:?} is unreadable: {e}",
                self.alias
            ))
        };
        let provider = self
            .provider
            .parse::<ProviderKind>()
            .map_err(|e| corrupt("provider", e))?;
        let identity =
            serde_json::from_str(&self.identity).map_err(|e| corrupt("identity", e.to_string()))?;
        let config = serde_json::from_str(&self.config)
            .map_err(|e| corrupt("connection details", e.to_string()))?;
        Ok(PodRow {
            alias: self.alias,
            provider,
            identity,
            config,
            token: self.token.map(Secret::new),
            client_key: self.client_key.map(Secret::new),
            tags,
            created_at: utc(self.created_at),
            updated_at: utc(self.updated_at),
        })
    }
}

impl CommandDb {
    pub(super) fn into_record(self) -> Result<CommandRecord, StoreError> {
        let status = self.status.parse::<CommandStatus>().map_err(|e| {
            StoreError::Query(format!(
                "stored status of command {} is unreadable: {e}",
                self.id
            ))
        })?;
        Ok(CommandRecord {
            id: self.id,
            alias: self.alias,
            pod_label: self.pod_label,
            command: self.command,
            status,
            exit_code: self.exit_code,
            stdout: self.stdout,
            stderr: self.stderr,
            error: self.error,
            truncated: self.truncated,
            started_at: utc(self.started_at),
            finished_at: self.finished_at.map(utc),
            duration_ms: self.duration_ms,
            actor: self.actor,
            session_restarted: self.session_restarted,
            history_error: None,
            job_id: self.job_id,
        })
    }
}

pub fn insert_pod(conn: &mut DbConnection, pod: NewPod) -> Result<PodRow, StoreError> {
    check_kind(pod.provider, &pod.config)?;
    if pod.alias.is_empty() {
        return Err(StoreError::Invalid("alias must not be empty".into()));
    }
    let tags = normalize_tags(pod.tags);
    let at = now();
    let row = PodInsert {
        alias: &pod.alias,
        provider: pod.provider.as_str(),
        identity: to_json("identity", &pod.identity)?,
        config: to_json("connection details", &pod.config)?,
        token: pod.token.as_ref().map(Secret::expose),
        created_at: at.naive_utc(),
        updated_at: at.naive_utc(),
        client_key: pod.client_key.as_ref().map(Secret::expose),
    };
    write_tx!(conn, c => {
        diesel::insert_into(pods::table)
            .values(&row)
            .execute(c)
            .map_err(|e| duplicate_alias(e, &pod.alias))?;
        let tag_rows: Vec<_> = tags
            .iter()
            .map(|t| (pod_tags::alias.eq(&pod.alias), pod_tags::tag.eq(t)))
            .collect();
        for chunk in tag_rows.chunks(INSERT_CHUNK) {
            diesel::insert_into(pod_tags::table).values(chunk).execute(c)?;
        }
        Ok::<_, StoreError>(())
    })?;
    Ok(PodRow {
        alias: pod.alias,
        provider: pod.provider,
        identity: pod.identity,
        config: pod.config,
        token: pod.token,
        client_key: pod.client_key,
        tags,
        created_at: at,
        updated_at: at,
    })
}

pub fn update_pod(
    conn: &mut DbConnection,
    alias: &str,
    changes: PodChanges,
) -> Result<PodRow, StoreError> {
    write_tx!(conn, c => {
        let current: PodDb = pods::table
            .find(alias)
            .select(PodDb::as_select())
            .first(c)
            .optional()?
            .ok_or(StoreError::NotFound)?;
        let old_tags: Vec<String> = pod_tags::table
            .filter(pod_tags::alias.eq(alias))
            .select(pod_tags::tag)
            .order(pod_tags::tag)
            .load(c)?;
        let mut row = current.into_row(old_tags)?;
        if let Some(p) = changes.provider {
            row.provider = p;
        }
        if let Some(i) = changes.identity {
            row.identity = i;
        }
        if let Some(cfg) = changes.config {
            row.config = cfg;
        }
        if let Some(t) = changes.token {
            row.token = t;
        }
        if let Some(k) = changes.client_key {
            row.client_key = k;
        }
        check_kind(row.provider, &row.config)?;
        row.updated_at = now();
        diesel::update(pods::table.find(alias))
            .set((
                pods::provider.eq(row.provider.as_str()),
                pods::identity.eq(to_json("identity", &row.identity)?),
                pods::config.eq(to_json("connection details", &row.config)?),
                pods::token.eq(row.token.as_ref().map(Secret::expose)),
                pods::client_key.eq(row.client_key.as_ref().map(Secret::expose)),
                pods::updated_at.eq(row.updated_at.naive_utc()),
            ))
            .execute(c)?;
        if let Some(tags) = changes.tags {
            row.tags = normalize_tags(tags);
            diesel::delete(pod_tags::table.filter(pod_tags::alias.eq(alias))).execute(c)?;
            let tag_rows: Vec<_> = row
                .tags
                .iter()
                .map(|t| (pod_tags::alias.eq(alias), pod_tags::tag.eq(t)))
                .collect();
            for chunk in tag_rows.chunks(INSERT_CHUNK) {
                diesel::insert_into(pod_tags::table).values(chunk).execute(c)?;
            }
        }
        Ok::<_, StoreError>(row)
    })
}

pub fn delete_pod(conn: &mut DbConnection, alias: &str) -> Result<(), StoreError> {
    write_tx!(conn, c => {
        // Explicit rather than relying on ON DELETE CASCADE, which SQLite only honours with
        // foreign_keys=ON.
        diesel::delete(pod_tags::table.filter(pod_tags::alias.eq(alias))).execute(c)?;
        match diesel::delete(pods::table.find(alias)).execute(c)? {
            0 => Err(StoreError::NotFound),
            _ => Ok(()),
        }
    })
}

pub fn get_pod(conn: &mut DbConnection, alias: &str) -> Result<Option<PodRow>, StoreError> {
    with_conn!(conn, c => {
        let Some(pod) = pods::table
            .find(alias)
            .select(PodDb::as_select())
            .first(c)
            .optional()?
        else {
            return Ok(None);
        };
        let tags: Vec<String> = pod_tags::table
            .filter(pod_tags::alias.eq(alias))
            .select(pod_tags::tag)
            .order(pod_tags::tag)
            .load(c)?;
        pod.into_row(tags).map(Some)
    })
}

pub fn list_pods(conn: &mut DbConnection, tag: Option<&str>) -> Result<Vec<PodRow>, StoreError> {
    let (rows, tag_rows): (Vec<PodDb>, Vec<(String, String)>) = with_conn!(conn, c => {
        match tag {
            None => (
                pods::table.select(PodDb::as_select()).order(pods::alias).load(c)?,
                pod_tags::table.select((pod_tags::alias, pod_tags::tag)).load(c)?,
            ),
            Some(t) => {
                // An alias of pod_tags, so the subquery can name the table the outer query reads.
                let other = diesel::alias!(pod_tags as tagged);
                let tagged = other
                    .filter(other.field(pod_tags::tag).eq(t))
                    .select(other.field(pod_tags::alias));
                (
                    pods::table
                        .filter(pods::alias.eq_any(tagged))
                        .select(PodDb::as_select())
                        .order(pods::alias)
                        .load(c)?,
                    pod_tags::table
                        .filter(pod_tags::alias.eq_any(tagged))
                        .select((pod_tags::alias, pod_tags::tag))
                        .load(c)?,
                )
            }
        }
    });
    let mut tags: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (alias, tag) in tag_rows {
        tags.entry(alias).or_default().push(tag);
    }
    rows.into_iter()
        .map(|pod| {
            let mut t = tags.remove(&pod.alias).unwrap_or_default();
            t.sort();
            pod.into_row(t)
        })
        .collect()
}

/// Inserts a `running` row and answers its id. The id is read back inside the write
/// transaction and handed out only once the transaction has committed, so a commit that fails
/// (a full disk) is an error here, never an id that does not exist.
pub fn start_command(conn: &mut DbConnection, msg: &StartCommand) -> Result<i64, StoreError> {
    let row = CommandInsert::running(msg, None);
    write_tx!(conn, c => {
        let id = diesel::insert_into(commands::table)
            .values(&row)
            .returning(commands::id)
            .get_result::<i64>(c)?;
        Ok::<_, StoreError>(id)
    })
}

/// As [`start_command`] for a command with a `uid`: when a row with that uid exists (a replay
/// that already ran, or a commit whose answer was lost) its id is answered and nothing is
/// written. `interrupted` writes the row `interrupted` instead of `running`: a start replayed
/// after the daemon that ran the command has gone.
pub fn record_start(
    conn: &mut DbConnection,
    uid: &str,
    msg: &StartCommand,
    interrupted: bool,
) -> Result<i64, StoreError> {
    let mut row = CommandInsert::running(msg, Some(uid));
    if interrupted {
        row.status = CommandStatus::Interrupted.as_str();
        row.error = Some(INTERRUPTED_ERROR);
    }
    write_tx!(conn, c => {
        let existing = commands::table
            .filter(commands::uid.eq(uid))
            .select(commands::id)
            .first::<i64>(c)
            .optional()?;
        let id = match existing {
            Some(id) => id,
            None => diesel::insert_into(commands::table)
                .values(&row)
                .returning(commands::id)
                .get_result::<i64>(c)?,
        };
        Ok::<_, StoreError>(id)
    })
}

/// The statuses a row may be finished from: `running`, and `interrupted` (shutdown raced the
/// command; the real outcome is better evidence).
const OPEN: [&str; 2] = ["running", "interrupted"];

pub fn finish_command(
    conn: &mut DbConnection,
    msg: FinishCommand,
) -> Result<CommandRecord, StoreError> {
    if msg.status == CommandStatus::Running {
        return Err(StoreError::Invalid(
            "a command cannot finish with status running".into(),
        ));
    }
    let row: CommandDb = write_tx!(conn, c => {
        let updated = diesel::update(
            commands::table
                .find(msg.id)
                .filter(commands::status.eq_any(OPEN))
                .filter(commands::finished_at.is_null()),
        )
        .set((
            commands::status.eq(msg.status.as_str()),
            commands::exit_code.eq(msg.exit_code),
            commands::stdout.eq(&msg.stdout),
            commands::stderr.eq(&msg.stderr),
            commands::error.eq(&msg.error),
            commands::truncated.eq(msg.truncated),
            commands::finished_at.eq(Some(msg.finished_at.naive_utc())),
            commands::duration_ms.eq(Some(msg.duration_ms)),
            commands::session_restarted.eq(msg.session_restarted),
        ))
        .returning(CommandDb::as_returning())
        .get_result(c)
        .optional()?;
        match updated {
            Some(row) => Ok(row),
            None => {
                let exists = commands::table
                    .find(msg.id)
                    .select(commands::id)
                    .first::<i64>(c)
                    .optional()?;
                Err(match exists {
                    Some(_) => StoreError::Conflict(format!(
                        "command {} has already finished",
                        msg.id
                    )),
                    None => StoreError::NotFound,
                })
            }
        }
    })?;
    row.into_record()
}

/// Completes a command's row in one transaction, idempotently: the row is found by `id`, or by
/// `uid` when its start had no id. An open row is completed; a row already finished is answered
/// as it is (a replay that already ran); no row at all gets a complete, finished row (the start
/// was never written), so a result is never dropped.
pub fn record_finish(
    conn: &mut DbConnection,
    id: Option<i64>,
    uid: &str,
    start: &StartCommand,
    end: &CommandEnd,
) -> Result<CommandRecord, StoreError> {
    if end.status == CommandStatus::Running {
        return Err(StoreError::Invalid(
            "a command cannot finish with status running".into(),
        ));
    }
    let row: CommandDb = write_tx!(conn, c => {
        let existing: Option<(i64, String, Option<NaiveDateTime>)> = match id {
            Some(id) => commands::table
                .find(id)
                .select((commands::id, commands::status, commands::finished_at))
                .first(c)
                .optional()?,
            None => commands::table
                .filter(commands::uid.eq(uid))
                .select((commands::id, commands::status, commands::finished_at))
                .first(c)
                .optional()?,
        };
        let row = match existing {
            Some((id, status, None)) if OPEN.contains(&status.as_str()) => diesel::update(
                commands::table.find(id),
            )
            .set((
                commands::status.eq(end.status.as_str()),
                commands::exit_code.eq(end.exit_code),
                commands::stdout.eq(&end.stdout),
                commands::stderr.eq(&end.stderr),
                commands::error.eq(&end.error),
                commands::truncated.eq(end.truncated),
                commands::finished_at.eq(Some(end.finished_at.naive_utc())),
                commands::duration_ms.eq(Some(end.duration_ms)),
                commands::session_restarted.eq(end.session_restarted),
            ))
            .returning(CommandDb::as_returning())
            .get_result(c)?,
            Some((id, _, _)) => commands::table
                .find(id)
                .select(CommandDb::as_select())
                .first(c)?,
            None => {
                let row = CommandInsert {
                    status: end.status.as_str(),
                    exit_code: end.exit_code,
                    stdout: &end.stdout,
                    stderr: &end.stderr,
                    error: end.error.as_deref(),
                    truncated: end.truncated,
                    finished_at: Some(end.finished_at.naive_utc()),
                    duration_ms: Some(end.duration_ms),
                    session_restarted: end.session_restarted,
                    ..CommandInsert::running(start, Some(uid))
                };
                diesel::insert_into(commands::table)
                    .values(&row)
                    .returning(CommandDb::as_returning())
                    .get_result(c)?
            }
        };
        Ok::<_, StoreError>(row)
    })?;
    row.into_record()
}

/// Replaces the `error` of a finished row, found by `id` or else by `uid` (an interrupt that
/// ended after the row was written says how it ended). Answers whether a row changed.
pub fn amend_error(
    conn: &mut DbConnection,
    id: Option<i64>,
    uid: &str,
    error: &str,
) -> Result<bool, StoreError> {
    write_tx!(conn, c => {
        let changed = match id {
            Some(id) => diesel::update(commands::table.find(id))
                .set(commands::error.eq(Some(error)))
                .execute(c)?,
            None => diesel::update(commands::table.filter(commands::uid.eq(uid)))
                .set(commands::error.eq(Some(error)))
                .execute(c)?,
        };
        Ok::<_, StoreError>(changed > 0)
    })
}

/// The row a command with this `uid` has, if any.
pub fn find_by_uid(
    conn: &mut DbConnection,
    uid: &str,
) -> Result<Option<CommandRecord>, StoreError> {
    let row: Option<CommandDb> = with_conn!(conn, c => {
        commands::table
            .filter(commands::uid.eq(uid))
            .select(CommandDb::as_select())
            .first(c)
            .optional()?
    });
    row.map(CommandDb::into_record).transpose()
}

/// A write that changes a page (the database header's `user_version`, set to the value it has)
/// and commits: proof that the database takes writes again. PostgreSQL: a round trip.
pub fn probe_write(conn: &mut DbConnection) -> Result<(), StoreError> {
    use diesel::connection::SimpleConnection;
    match conn {
        DbConnection::Sqlite(c) => {
            #[derive(QueryableByName)]
            struct Version {
                #[diesel(sql_type = diesel::sql_types::Integer)]
                user_version: i32,
            }
            c.immediate_transaction(|c| {
                let v: Version = diesel::sql_query("PRAGMA user_version").get_result(c)?;
                c.batch_execute(&format!("PRAGMA user_version = {}", v.user_version))
            })?;
            Ok(())
        }
        DbConnection::Pg(c) => c
            .transaction(|c| c.batch_execute("SELECT 1"))
            .map_err(StoreError::from),
    }
}

/// Cursors are the last id of the previous page; callers treat them as opaque.
fn encode_cursor(id: i64) -> String {
    id.to_string()
}

fn decode_cursor(cursor: &str) -> Result<i64, StoreError> {
    match cursor.parse::<i64>() {
        Ok(id) if id > 0 => Ok(id),
        _ => {
            let shown: String = cursor.chars().take(40).collect();
            Err(StoreError::Invalid(format!(
                "invalid cursor {shown:?}: pass back a page's next_cursor"
            )))
        }
    }
}

/// The columns a listing reads of a row besides its previews.
type ListedMeta = (
    i64,
    String,
    String,
    String,
    Option<i32>,
    Option<String>,
    bool,
    NaiveDateTime,
    Option<NaiveDateTime>,
    Option<f64>,
    Option<String>,
    bool,
    Option<i64>,
);

/// Previews (at most [`HISTORY_PREVIEW_BYTES`] characters each, cut in SQL) and the full byte
/// sizes of `command`, `stdout` and `stderr`.
type ListedTexts = (String, String, String, i64, i64, i64);

/// SQL for the first [`HISTORY_PREVIEW_BYTES`] characters of `column` (at most four times as
/// many bytes; cut to bytes after reading), and for its full size in bytes. The database reads
/// the value, the daemon only the preview.
fn preview_sql(column: &str) -> String {
    format!("substr({column}, 1, {HISTORY_PREVIEW_BYTES})")
}

fn size_sql(column: &str) -> String {
    format!("CAST(octet_length({column}) AS BIGINT)")
}

pub fn list_commands(
    conn: &mut DbConnection,
    filter: &HistoryFilter,
) -> Result<CommandPage, StoreError> {
    use diesel::dsl::sql;
    use diesel::sql_types::{BigInt, Text};
    let limit = filter.effective_limit();
    let before = filter.cursor.as_deref().map(decode_cursor).transpose()?;
    let texts = (
        sql::<Text>(&preview_sql("command")),
        sql::<Text>(&preview_sql("stdout")),
        sql::<Text>(&preview_sql("stderr")),
        sql::<BigInt>(&size_sql("command")),
        sql::<BigInt>(&size_sql("stdout")),
        sql::<BigInt>(&size_sql("stderr")),
    );
    let meta = (
        commands::id,
        commands::alias,
        commands::pod_label,
        commands::status,
        commands::exit_code,
        commands::error,
        commands::truncated,
        commands::started_at,
        commands::finished_at,
        commands::duration_ms,
        commands::actor,
        commands::session_restarted,
        commands::job_id,
    );
    let mut rows: Vec<(ListedMeta, ListedTexts)> = with_conn!(conn, c => {
        let mut q = commands::table.select((meta, texts.clone())).into_boxed();
        if let Some(alias) = &filter.alias {
            q = q.filter(commands::alias.eq(alias));
        }
        if let Some(set) = &filter.set {
            q = q.filter(commands::set_name.eq(set));
        }
        if let Some(status) = filter.status {
            q = q.filter(commands::status.eq(status.as_str()));
        }
        if let Some(actor) = &filter.actor {
            q = q.filter(commands::actor.eq(actor));
        }
        if let Some(since) = filter.since {
            q = q.filter(commands::started_at.ge(since.naive_utc()));
        }
        if let Some(job) = filter.job {
            q = q.filter(commands::job_id.eq(job));
        }
        if let Some(id) = before {
            q = q.filter(commands::id.lt(id));
        }
        // One extra row tells whether another page exists, so the last page has no cursor.
        q.order(commands::id.desc())
            .limit(limit as i64 + 1)
            .load(c)?
    });
    let next_cursor = if rows.len() > limit {
        rows.truncate(limit);
        rows.last().map(|r| encode_cursor(r.0.0))
    } else {
        None
    };
    let items = rows
        .into_iter()
        .map(|(m, t)| {
            let (command, stdout, stderr, command_bytes, stdout_bytes, stderr_bytes) = t;
            let row = CommandDb {
                id: m.0,
                alias: m.1,
                pod_label: m.2,
                command,
                status: m.3,
                exit_code: m.4,
                stdout,
                stderr,
                error: m.5,
                truncated: m.6,
                started_at: m.7,
                finished_at: m.8,
                duration_ms: m.9,
                actor: m.10,
                session_restarted: m.11,
                job_id: m.12,
            };
            let mut summary = CommandSummary::of(row.into_record()?);
            summary.command_bytes = command_bytes.max(0) as u64;
            summary.stdout_bytes = stdout_bytes.max(0) as u64;
            summary.stderr_bytes = stderr_bytes.max(0) as u64;
            summary.preview = summary.command_bytes > summary.command.len() as u64
                || summary.stdout_bytes > summary.stdout.len() as u64
                || summary.stderr_bytes > summary.stderr.len() as u64;
            Ok(summary)
        })
        .collect::<Result<_, StoreError>>()?;
    Ok(CommandPage { items, next_cursor })
}

/// What one retention batch removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pruned {
    pub rows: u64,
    /// Bytes of command text and output the removed rows held.
    pub bytes: u64,
}

/// Removes up to `batch` of the oldest finished rows that are older than `cutoff` or beyond
/// the newest `max_rows`, in one transaction, and answers what they held. Rows still `running`
/// are never removed.
pub fn prune_history(
    conn: &mut DbConnection,
    cutoff: Option<DateTime<Utc>>,
    max_rows: Option<u64>,
    batch: usize,
) -> Result<Pruned, StoreError> {
    use diesel::dsl::sql;
    use diesel::sql_types::{BigInt, Nullable};
    let running = CommandStatus::Running.as_str();
    write_tx!(conn, c => {
        // The id at and below which rows are beyond the newest `max_rows`.
        let over_count: Option<i64> = match max_rows {
            Some(n) => commands::table
                .select(commands::id)
                .order(commands::id.desc())
                .offset(n.min(i64::MAX as u64) as i64)
                .limit(1)
                .first::<i64>(c)
                .optional()?,
            None => None,
        };
        let mut q = commands::table
            .select(commands::id)
            .filter(commands::status.ne(running))
            .into_boxed();
        q = match (cutoff, over_count) {
            (Some(t), Some(id)) => q.filter(
                commands::started_at
                    .lt(t.naive_utc())
                    .or(commands::id.le(id)),
            ),
            (Some(t), None) => q.filter(commands::started_at.lt(t.naive_utc())),
            (None, Some(id)) => q.filter(commands::id.le(id)),
            (None, None) => return Ok(Pruned::default()),
        };
        let ids: Vec<i64> = q.order(commands::id.asc()).limit(batch as i64).load(c)?;
        if ids.is_empty() {
            return Ok(Pruned::default());
        }
        let bytes: Option<i64> = commands::table
            .filter(commands::id.eq_any(&ids))
            .select(sql::<Nullable<BigInt>>(
                "CAST(SUM(octet_length(command) + octet_length(stdout) + octet_length(stderr)) AS BIGINT)",
            ))
            .first(c)?;
        let rows = diesel::delete(commands::table.filter(commands::id.eq_any(&ids))).execute(c)?;
        Ok::<_, StoreError>(Pruned {
            rows: rows as u64,
            bytes: bytes.unwrap_or(0).max(0) as u64,
        })
    })
}

/// Up to `limit` full rows matching `filter` (its cursor and limit aside) with ids above
/// `after`, oldest first: one step of an export.
pub fn export_page(
    conn: &mut DbConnection,
    filter: &HistoryFilter,
    after: i64,
    limit: usize,
) -> Result<Vec<CommandRecord>, StoreError> {
    let rows: Vec<CommandDb> = with_conn!(conn, c => {
        let mut q = commands::table
            .select(CommandDb::as_select())
            .filter(commands::id.gt(after))
            .into_boxed();
        if let Some(alias) = &filter.alias {
            q = q.filter(commands::alias.eq(alias));
        }
        if let Some(status) = filter.status {
            q = q.filter(commands::status.eq(status.as_str()));
        }
        if let Some(actor) = &filter.actor {
            q = q.filter(commands::actor.eq(actor));
        }
        if let Some(since) = filter.since {
            q = q.filter(commands::started_at.ge(since.naive_utc()));
        }
        q.order(commands::id.asc()).limit(limit as i64).load(c)?
    });
    rows.into_iter().map(CommandDb::into_record).collect()
}

/// Which output of a command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputStream {
    Stdout,
    Stderr,
}

impl OutputStream {
    fn column(self) -> &'static str {
        match self {
            OutputStream::Stdout => "stdout",
            OutputStream::Stderr => "stderr",
        }
    }
}

/// A byte range of one output of a command, and the output's full size.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutputSlice {
    pub total: u64,
    pub bytes: Vec<u8>,
}

#[derive(QueryableByName)]
struct OutputSliceDb {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    total: i64,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Binary>)]
    part: Option<Vec<u8>>,
}

/// Up to `len` bytes of a command's output from byte `offset`, read in the database (only those
/// bytes reach the daemon). `None` when there is no such command.
pub fn read_output(
    conn: &mut DbConnection,
    id: i64,
    stream: OutputStream,
    offset: u64,
    len: u64,
) -> Result<Option<OutputSlice>, StoreError> {
    use diesel::sql_types::BigInt;
    let column = stream.column();
    let start = offset.min(i64::MAX as u64 - 1) as i64 + 1;
    let len = len.min(i64::MAX as u64) as i64;
    let row: Option<OutputSliceDb> = match conn {
        DbConnection::Sqlite(c) => diesel::sql_query(format!(
            "SELECT CAST(octet_length({column}) AS BIGINT) AS total, \
             substr(CAST({column} AS BLOB), ?, ?) AS part FROM commands WHERE id = ?"
        ))
        .bind::<BigInt, _>(start)
        .bind::<BigInt, _>(len)
        .bind::<BigInt, _>(id)
        .get_result(c)
        .optional()?,
        DbConnection::Pg(c) => diesel::sql_query(format!(
            "SELECT CAST(octet_length({column}) AS BIGINT) AS total, \
             substring(convert_to({column}, 'UTF8') from CAST($1 AS INTEGER) for CAST($2 AS INTEGER)) AS part \
             FROM commands WHERE id = $3"
        ))
        .bind::<BigInt, _>(start.min(i32::MAX as i64))
        .bind::<BigInt, _>(len.min(i32::MAX as i64))
        .bind::<BigInt, _>(id)
        .get_result(c)
        .optional()?,
    };
    Ok(row.map(|r| OutputSlice {
        total: r.total.max(0) as u64,
        bytes: r.part.unwrap_or_default(),
    }))
}

pub fn get_command(conn: &mut DbConnection, id: i64) -> Result<Option<CommandRecord>, StoreError> {
    let row: Option<CommandDb> = with_conn!(conn, c => {
        commands::table
            .find(id)
            .select(CommandDb::as_select())
            .first(c)
            .optional()?
    });
    row.map(CommandDb::into_record).transpose()
}

pub fn interrupt_running(
    conn: &mut DbConnection,
    ids: Option<&[i64]>,
) -> Result<usize, StoreError> {
    let running = CommandStatus::Running.as_str();
    let set = (
        commands::status.eq(CommandStatus::Interrupted.as_str()),
        commands::error.eq(Some(INTERRUPTED_ERROR)),
    );
    write_tx!(conn, c => {
        match ids {
            None => Ok(diesel::update(commands::table.filter(commands::status.eq(running)))
                .set(set)
                .execute(c)?),
            Some(ids) => {
                let mut n = 0;
                for chunk in ids.chunks(INSERT_CHUNK) {
                    n += diesel::update(
                        commands::table
                            .filter(commands::status.eq(running))
                            .filter(commands::id.eq_any(chunk)),
                    )
                    .set(set)
                    .execute(c)?;
                }
                Ok::<_, StoreError>(n)
            }
        }
    })
}

pub fn insert_history(
    conn: &mut DbConnection,
    rows: &[CommandRecord],
) -> Result<usize, StoreError> {
    let rows: Vec<CommandInsert<'_>> = rows
        .iter()
        .map(|r| CommandInsert {
            alias: &r.alias,
            pod_label: &r.pod_label,
            command: &r.command,
            status: r.status.as_str(),
            exit_code: r.exit_code,
            stdout: &r.stdout,
            stderr: &r.stderr,
            error: r.error.as_deref(),
            truncated: r.truncated,
            started_at: r.started_at.naive_utc(),
            finished_at: r.finished_at.map(|t| t.naive_utc()),
            duration_ms: r.duration_ms,
            actor: r.actor.as_deref(),
            session_restarted: r.session_restarted,
            uid: None,
            job_id: r.job_id,
            set_name: set_and_pod(&r.alias).0,
            pod_name: set_and_pod(&r.alias).1,
        })
        .collect();
    write_tx!(conn, c => {
        let mut n = 0;
        for chunk in rows.chunks(INSERT_CHUNK) {
            n += diesel::insert_into(commands::table).values(chunk).execute(c)?;
        }
        Ok::<_, StoreError>(n)
    })
}

pub fn record_audit(conn: &mut DbConnection, event: &NewAuditEvent) -> Result<(), StoreError> {
    let at = now().naive_utc();
    write_tx!(conn, c => {
        diesel::insert_into(audit_events::table)
            .values((
                audit_events::at.eq(at),
                audit_events::actor.eq(&event.actor),
                audit_events::action.eq(event.action.as_str()),
                audit_events::subject.eq(&event.subject),
                audit_events::detail.eq(&event.detail),
            ))
            .execute(c)?;
        Ok::<_, StoreError>(())
    })
}

pub fn list_audit(conn: &mut DbConnection, filter: &AuditFilter) -> Result<AuditPage, StoreError> {
    let limit = filter.effective_limit();
    let before = filter.cursor.as_deref().map(decode_cursor).transpose()?;
    let mut rows: Vec<AuditDb> = with_conn!(conn, c => {
        let mut q = audit_events::table.select(AuditDb::as_select()).into_boxed();
        if let Some(actor) = &filter.actor {
            q = q.filter(audit_events::actor.eq(actor));
        }
        if let Some(id) = before {
            q = q.filter(audit_events::id.lt(id));
        }
        q.order(audit_events::id.desc())
            .limit(limit as i64 + 1)
            .load(c)?
    });
    let next_cursor = if rows.len() > limit {
        rows.truncate(limit);
        rows.last().map(|r| encode_cursor(r.id))
    } else {
        None
    };
    let items = rows
        .into_iter()
        .map(|r| {
            Ok(AuditEvent {
                id: r.id,
                at: utc(r.at),
                actor: r.actor,
                action: r.action.parse::<AuditAction>().map_err(StoreError::Query)?,
                subject: r.subject,
                detail: r.detail,
            })
        })
        .collect::<Result<_, StoreError>>()?;
    Ok(AuditPage { items, next_cursor })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trips_and_rejects_garbage() {
        assert_eq!(decode_cursor(&encode_cursor(42)).unwrap(), 42);
        for bad in ["", "abc", "-3", "0", "1.5"] {
            assert!(
                matches!(decode_cursor(bad), Err(StoreError::Invalid(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn tags_are_sorted_and_deduplicated() {
        let tags = normalize_tags(vec!["web".into(), "db".into(), "web".into()]);
        assert_eq!(tags, ["db", "web"]);
    }

    #[test]
    fn provider_must_match_its_config() {
        let cfg = ProviderConfig::PlainTty {
            base_url: "ws://h".into(),
        };
        assert!(check_kind(ProviderKind::PlainTty, &cfg).is_ok());
        assert!(matches!(
            check_kind(ProviderKind::Kubernetes, &cfg),
            Err(StoreError::Invalid(_))
        ));
    }
}
