//! The one place that writes how a command ended: pod actors (a command that ran, or could not)
//! and fan-outs (a pod that was skipped or refused the command) all record through here, so
//! every row ends the same way and a store that is gone is reported the same way.

use actix::Addr;
use chrono::Utc;
use podwrangler::api::CommandStatus;

use super::{
    CommandEnd, Kept, RecordFinish, Recorded, StartCommand, StoreActor, new_uid, record_of,
};

/// The row's ending when the command produced no result (it never ran, or its run was lost).
pub fn end_without_result(
    status: CommandStatus,
    error: Option<String>,
    start: &StartCommand,
) -> CommandEnd {
    let finished_at = Utc::now();
    let duration_ms = (finished_at - start.started_at)
        .num_microseconds()
        .unwrap_or(0)
        .max(0) as f64
        / 1000.0;
    CommandEnd {
        status,
        exit_code: None,
        stdout: String::new(),
        stderr: String::new(),
        error,
        truncated: false,
        finished_at,
        duration_ms,
        session_restarted: false,
    }
}

/// Records a command's outcome: in the database, else in the spool (see [`RecordFinish`]).
/// With the store gone, the record comes back [`Kept::Lost`] with a history error.
pub async fn record_end(
    store: &Addr<StoreActor>,
    uid: String,
    id: Option<i64>,
    start: StartCommand,
    end: CommandEnd,
) -> Recorded {
    let fallback = record_of(id, &start, &end);
    match store
        .send(RecordFinish {
            uid,
            id,
            start,
            end,
        })
        .await
    {
        Ok(recorded) => recorded,
        Err(e) => {
            tracing::error!(alias = %fallback.alias, error = %e, "history store unavailable: a command's result is not recorded");
            let mut record = fallback;
            record.history_error = Some(format!(
                "history could not record the result (the store is unavailable: {e}): it is not recorded"
            ));
            Recorded {
                record,
                kept: Kept::Lost,
            }
        }
    }
}

/// Records, in one row, a command that did not run (`status` says how: `error`, `skipped`)
/// and why.
pub async fn record_not_run(
    store: &Addr<StoreActor>,
    start: StartCommand,
    status: CommandStatus,
    error: String,
) -> Recorded {
    let end = end_without_result(status, Some(error), &start);
    record_end(store, new_uid(), None, start, end).await
}
