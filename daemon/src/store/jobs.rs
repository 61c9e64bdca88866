//! Fan-out jobs in the store: the `jobs` table, and reading a job's history rows page by page
//! so a summary of thousands of pods never holds them all at once.

use std::collections::BTreeMap;

use actix::{Handler, Message};
use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use podwrangler::api::{CommandRecord, CommandStatus, JobInfo, JobOptions, JobPage};

use super::conn::{DbConnection, with_conn, write_tx};
use super::queries::CommandDb;
use super::schema::{commands, jobs};
use super::{Store, StoreActor, StoreError};

/// A job to record before its first pod runs.
#[derive(Clone, Debug, Message)]
#[rtype(result = "Result<i64, StoreError>")]
pub struct CreateJob {
    pub command: String,
    pub actor: String,
    pub targets: String,
    pub options: JobOptions,
    pub total: usize,
}

/// Marks a job finished, with its counts by status and why it stopped early.
#[derive(Clone, Debug, Message)]
#[rtype(result = "Result<(), StoreError>")]
pub struct FinishJob {
    pub id: i64,
    pub counts: BTreeMap<String, usize>,
    pub stopped: Option<String>,
}

/// One job, `None` when the id is unknown.
#[derive(Clone, Debug, Message)]
#[rtype(result = "Result<Option<JobInfo>, StoreError>")]
pub struct GetJob {
    pub id: i64,
}

/// Jobs, newest first.
#[derive(Clone, Debug, Message)]
#[rtype(result = "Result<JobPage, StoreError>")]
pub struct ListJobs {
    /// 1..=[`super::HistoryFilter::MAX_LIMIT`].
    pub limit: usize,
    pub cursor: Option<i64>,
}

/// Up to `limit` of a job's rows with ids above `after`, by id.
#[derive(Clone, Debug, Message)]
#[rtype(result = "Result<Vec<CommandRecord>, StoreError>")]
pub struct JobCommands {
    pub job: i64,
    pub after: i64,
    pub limit: usize,
}

/// The pods of a job whose command failed, timed out or could not run, by alias.
#[derive(Clone, Debug, Message)]
#[rtype(result = "Result<Vec<String>, StoreError>")]
pub struct FailedAliases {
    pub job: i64,
}

/// The statuses `rerun_failed` runs again.
pub const RERUN_STATUSES: [CommandStatus; 3] = [
    CommandStatus::Failed,
    CommandStatus::Timeout,
    CommandStatus::Error,
];

#[derive(Queryable, Selectable)]
#[diesel(table_name = jobs)]
struct JobDb {
    id: i64,
    command: String,
    actor: String,
    targets: String,
    options: String,
    created_at: NaiveDateTime,
    finished_at: Option<NaiveDateTime>,
    total: i64,
    stopped: Option<String>,
}

fn utc(t: NaiveDateTime) -> DateTime<Utc> {
    DateTime::from_naive_utc_and_offset(t, Utc)
}

impl JobDb {
    fn into_info(self) -> Result<JobInfo, StoreError> {
        let options: JobOptions = serde_json::from_str(&self.options).map_err(|e| {
            StoreError::Query(format!(
                "stored options of job {} are unreadable: {e}",
                self.id
            ))
        })?;
        Ok(JobInfo {
            id: self.id,
            command: self.command,
            actor: self.actor,
            targets: self.targets,
            options,
            created_at: utc(self.created_at),
            finished_at: self.finished_at.map(utc),
            total: usize::try_from(self.total).unwrap_or(0),
            stopped: self.stopped,
        })
    }
}

fn create_job(conn: &mut DbConnection, msg: &CreateJob) -> Result<i64, StoreError> {
    let options = serde_json::to_string(&msg.options)
        .map_err(|e| StoreError::Query(format!("cannot encode job options: {e}")))?;
    let at = Utc::now().naive_utc();
    write_tx!(conn, c => {
        let id = diesel::insert_into(jobs::table)
            .values((
                jobs::command.eq(&msg.command),
                jobs::actor.eq(&msg.actor),
                jobs::targets.eq(&msg.targets),
                jobs::options.eq(&options),
                jobs::created_at.eq(at),
                jobs::total.eq(msg.total as i64),
            ))
            .returning(jobs::id)
            .get_result::<i64>(c)?;
        Ok::<_, StoreError>(id)
    })
}

fn finish_job(conn: &mut DbConnection, msg: &FinishJob) -> Result<(), StoreError> {
    let counts = serde_json::to_string(&msg.counts)
        .map_err(|e| StoreError::Query(format!("cannot encode job counts: {e}")))?;
    let at = Utc::now().naive_utc();
    write_tx!(conn, c => {
        diesel::update(jobs::table.find(msg.id))
            .set((
                jobs::finished_at.eq(Some(at)),
                jobs::counts.eq(&counts),
                jobs::stopped.eq(&msg.stopped),
            ))
            .execute(c)?;
        Ok::<_, StoreError>(())
    })
}

fn get_job(conn: &mut DbConnection, id: i64) -> Result<Option<JobInfo>, StoreError> {
    let row: Option<JobDb> = with_conn!(conn, c => {
        jobs::table
            .find(id)
            .select(JobDb::as_select())
            .first(c)
            .optional()?
    });
    row.map(JobDb::into_info).transpose()
}

fn list_jobs(conn: &mut DbConnection, msg: &ListJobs) -> Result<JobPage, StoreError> {
    let limit = msg.limit.clamp(1, super::HistoryFilter::MAX_LIMIT);
    let mut rows: Vec<JobDb> = with_conn!(conn, c => {
        let mut q = jobs::table.select(JobDb::as_select()).into_boxed();
        if let Some(before) = msg.cursor {
            q = q.filter(jobs::id.lt(before));
        }
        q.order(jobs::id.desc()).limit(limit as i64 + 1).load(c)?
    });
    let next_cursor = if rows.len() > limit {
        rows.truncate(limit);
        rows.last().map(|r| r.id.to_string())
    } else {
        None
    };
    let items = rows
        .into_iter()
        .map(JobDb::into_info)
        .collect::<Result<_, _>>()?;
    Ok(JobPage { items, next_cursor })
}

fn job_commands(
    conn: &mut DbConnection,
    msg: &JobCommands,
) -> Result<Vec<CommandRecord>, StoreError> {
    let rows: Vec<CommandDb> = with_conn!(conn, c => {
        commands::table
            .filter(commands::job_id.eq(msg.job))
            .filter(commands::id.gt(msg.after))
            .order(commands::id)
            .limit(msg.limit.max(1) as i64)
            .select(CommandDb::as_select())
            .load(c)?
    });
    rows.into_iter().map(CommandDb::into_record).collect()
}

fn failed_aliases(conn: &mut DbConnection, job: i64) -> Result<Vec<String>, StoreError> {
    let statuses: Vec<&str> = RERUN_STATUSES.iter().map(|s| s.as_str()).collect();
    let aliases: Vec<String> = with_conn!(conn, c => {
        commands::table
            .filter(commands::job_id.eq(job))
            .filter(commands::status.eq_any(&statuses))
            .select(commands::alias)
            .distinct()
            .order(commands::alias)
            .load(c)?
    });
    Ok(aliases)
}

impl Store {
    pub fn create_job(&mut self, msg: &CreateJob) -> Result<i64, StoreError> {
        self.with(true, |c| create_job(c, msg))
    }
    pub fn finish_job(&mut self, msg: &FinishJob) -> Result<(), StoreError> {
        self.with(true, |c| finish_job(c, msg))
    }
    pub fn get_job(&mut self, id: i64) -> Result<Option<JobInfo>, StoreError> {
        self.with(false, |c| get_job(c, id))
    }
    pub fn list_jobs(&mut self, msg: &ListJobs) -> Result<JobPage, StoreError> {
        self.with(false, |c| list_jobs(c, msg))
    }
    pub fn job_commands(&mut self, msg: &JobCommands) -> Result<Vec<CommandRecord>, StoreError> {
        self.with(false, |c| job_commands(c, msg))
    }
    pub fn failed_aliases(&mut self, job: i64) -> Result<Vec<String>, StoreError> {
        self.with(false, |c| failed_aliases(c, job))
    }
}

impl Handler<CreateJob> for StoreActor {
    type Result = Result<i64, StoreError>;
    fn handle(&mut self, msg: CreateJob, _: &mut Self::Context) -> Self::Result {
        self.store.create_job(&msg)
    }
}

impl Handler<FinishJob> for StoreActor {
    type Result = Result<(), StoreError>;
    fn handle(&mut self, msg: FinishJob, _: &mut Self::Context) -> Self::Result {
        self.store.finish_job(&msg)
    }
}

impl Handler<GetJob> for StoreActor {
    type Result = Result<Option<JobInfo>, StoreError>;
    fn handle(&mut self, msg: GetJob, _: &mut Self::Context) -> Self::Result {
        self.store.get_job(msg.id)
    }
}

impl Handler<ListJobs> for StoreActor {
    type Result = Result<JobPage, StoreError>;
    fn handle(&mut self, msg: ListJobs, _: &mut Self::Context) -> Self::Result {
        self.store.list_jobs(&msg)
    }
}

impl Handler<JobCommands> for StoreActor {
    type Result = Result<Vec<CommandRecord>, StoreError>;
    fn handle(&mut self, msg: JobCommands, _: &mut Self::Context) -> Self::Result {
        self.store.job_commands(&msg)
    }
}

impl Handler<FailedAliases> for StoreActor {
    type Result = Result<Vec<String>, StoreError>;
    fn handle(&mut self, msg: FailedAliases, _: &mut Self::Context) -> Self::Result {
        self.store.failed_aliases(msg.job)
    }
}
