//! History retention: removes commands older than `[history] max_age_days` or beyond the newest
//! `[history] max_rows`, in the background, in small batches with a pause between them, and
//! logs the rows and bytes each run freed.

use std::time::Duration;

use actix::Addr;
use chrono::Utc;

use crate::config::HistoryConfig;
use crate::store::{PruneHistory, Pruned, StoreActor};

/// Rows removed per transaction unless `[history] retention_batch` says otherwise.
pub const DEFAULT_BATCH: usize = 500;
/// Seconds between runs unless `[history] retention_every_secs` says otherwise.
pub const DEFAULT_EVERY_SECS: f64 = 300.0;
/// Pause between two batches of one run, so writers and readers get the database in between.
pub const BATCH_PAUSE: Duration = Duration::from_millis(200);

/// Runs retention now and then every `retention_every_secs`, for as long as the system runs.
/// Does nothing when no limit is configured.
pub fn spawn(store: Addr<StoreActor>, config: HistoryConfig) {
    if !config.enabled() {
        return;
    }
    let every = Duration::from_secs_f64(config.retention_every_secs.unwrap_or(DEFAULT_EVERY_SECS));
    tracing::info!(
        max_age_days = ?config.max_age_days,
        max_rows = ?config.max_rows,
        every_secs = every.as_secs_f64(),
        "history retention on"
    );
    actix::spawn(async move {
        loop {
            if run_once(&store, &config).await.is_none() {
                return;
            }
            tokio::time::sleep(every).await;
        }
    });
}

/// One run: batches until nothing is left to remove. Answers what it removed (`None` once the
/// store is gone).
pub async fn run_once(store: &Addr<StoreActor>, config: &HistoryConfig) -> Option<Pruned> {
    let batch = config.retention_batch.unwrap_or(DEFAULT_BATCH).max(1);
    let cutoff = config
        .max_age_days
        .map(|days| Utc::now() - chrono::Duration::milliseconds((days * 86_400_000.0) as i64));
    let mut total = Pruned::default();
    loop {
        let msg = PruneHistory {
            cutoff,
            max_rows: config.max_rows,
            batch,
        };
        match store.send(msg).await {
            Ok(Ok(p)) => {
                total.rows += p.rows;
                total.bytes += p.bytes;
                if (p.rows as usize) < batch {
                    break;
                }
                tokio::time::sleep(BATCH_PAUSE).await;
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "history retention could not remove old commands; it tries again on its next run");
                break;
            }
            Err(_) => return None,
        }
    }
    if total.rows > 0 {
        tracing::info!(
            rows = total.rows,
            bytes = total.bytes,
            "history retention removed old commands"
        );
    } else {
        tracing::debug!("history retention: nothing to remove");
    }
    Some(total)
}
