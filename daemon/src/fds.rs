//! The daemon's open-file budget: the soft `RLIMIT_NOFILE` (raised to the hard limit at start),
//! a reserve kept for the API and the database, and the rest shared by pod sessions. A session
//! beyond its share waits in state `waiting_open_files` instead of starving the API.

use std::sync::Arc;

use tokio::sync::Semaphore;

/// Descriptors kept for everything that is not a pod session: the API's listeners and its
/// client connections, the database (SQLite file, WAL and shared memory per store thread, or
/// PostgreSQL sockets), the spool, logs, the runtime's own (epoll, eventfds, timers).
pub const FD_RESERVE: u64 = 128;
/// Descriptors one pod session holds: its socket.
pub const FDS_PER_SESSION: u64 = 1;
/// Second execs (an interrupt on Kubernetes, raw input for a copy) each hold one more socket
/// for a moment: one sixteenth of what is not reserved, at most this many, is kept for them.
pub const MAX_SIDE_EXECS: u64 = 1024;

/// How the open-file limit is shared; `/health` shows it.
#[derive(Debug)]
pub struct FdBudget {
    /// The soft limit the daemon runs with.
    pub limit: u64,
    /// Descriptors kept back from pod sessions.
    pub reserve: u64,
    /// Pod sessions that may be open (or connecting) at once.
    pub sessions: u64,
    /// One permit per session; a pod actor holds one while it connects or has a session.
    pub slots: Arc<Semaphore>,
    /// Second execs that may be open at once.
    pub side_execs: u64,
    /// One permit per second exec. Without one an interrupt waits briefly (then replaces the
    /// shell) and input goes through the shell instead.
    pub side_slots: Arc<Semaphore>,
}

impl FdBudget {
    /// The budget for a soft limit of `limit` descriptors.
    pub fn for_limit(limit: u64) -> FdBudget {
        let reserve = FD_RESERVE.min(limit / 2);
        let shared = limit.saturating_sub(reserve);
        let side_execs = (shared / 16).clamp(1, MAX_SIDE_EXECS);
        let sessions = (shared.saturating_sub(side_execs) / FDS_PER_SESSION)
            .clamp(1, Semaphore::MAX_PERMITS as u64);
        FdBudget {
            limit,
            reserve,
            sessions,
            slots: Arc::new(Semaphore::new(sessions as usize)),
            side_execs,
            side_slots: Arc::new(Semaphore::new(side_execs as usize)),
        }
    }

    /// The budget for the process's current soft limit.
    pub fn current() -> FdBudget {
        FdBudget::for_limit(soft_limit().unwrap_or(1024))
    }

    /// Sessions holding a share now.
    pub fn sessions_open(&self) -> u64 {
        self.sessions
            .saturating_sub(self.slots.available_permits() as u64)
    }
}

/// The soft `RLIMIT_NOFILE`.
pub fn soft_limit() -> Option<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct passed for the call.
    (unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0).then_some(lim.rlim_cur)
}

/// Descriptors the process has open (entries of `/proc/self/fd`).
pub fn in_use() -> Option<u64> {
    std::fs::read_dir("/proc/self/fd")
        .ok()
        .map(|d| d.count().saturating_sub(1) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reserve_comes_off_the_top_and_sessions_share_the_rest() {
        let b = FdBudget::for_limit(1024);
        assert_eq!(b.reserve, 128);
        assert_eq!((b.sessions, b.side_execs), (840, 56));
        assert_eq!(b.sessions_open(), 0);
        let _p = b.slots.clone().try_acquire_owned().unwrap();
        assert_eq!(b.sessions_open(), 1);
        let tiny = FdBudget::for_limit(64);
        assert_eq!(tiny.reserve, 32);
        assert_eq!((tiny.sessions, tiny.side_execs), (30, 2));
        let big = FdBudget::for_limit(1 << 20);
        assert_eq!(big.side_execs, MAX_SIDE_EXECS);
        assert_eq!(big.sessions, (1 << 20) - 128 - MAX_SIDE_EXECS);
        assert!(in_use().unwrap() > 2);
    }
}
