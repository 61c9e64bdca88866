//! The spool: history writes the database could not take, kept in a local append-only file
//! until they can be replayed, so a command's result is never lost to a database fault.
//!
//! **Format.** One JSON object per line, appended and `fdatasync`ed before the command's answer
//! is sent:
//!
//! ```text
//! {"v":1,"seq":7,"spooled_at":"...","op":"start","uid":"9f..","start":{"alias":..,"pod_label":..,"command":..,"started_at":..,"actor":..}}
//! {"v":1,"seq":8,"spooled_at":"...","op":"finish","uid":"9f..","id":null,"start":{..},"end":{"status":"succeeded","exit_code":0,"stdout":..,..}}
//! ```
//!
//! `uid` is the random key the daemon gives a command before its first write; the `commands`
//! row carries it, so a replay finds what an earlier replay (or a commit whose answer was lost)
//! already wrote. `id` is the row's id when its start was committed, else null. A `finish`
//! carries the start too, so it is complete on its own.
//!
//! **Replay** runs in order, one transaction per entry, at start-up and every few seconds while
//! entries wait: a `start` inserts its row unless one with its uid exists; a `finish` completes
//! the row (by id, else by uid), answers a row already finished as it is, and inserts a complete
//! row when there is none. Replaying an entry twice therefore changes nothing. A `start` found at
//! start-up with no `finish` after it belonged to a daemon that is gone: its row is written
//! `interrupted`. Replay stops at the first entry the database cannot take (it is still down) and
//! sets aside, in `PATH.bad`, an entry the database refuses for good, so one bad line never
//! blocks the rest. Applied entries are then removed: the file is truncated when all are done,
//! else rewritten (temp file, fsync, rename) with the rest.
//!
//! **Space.** The spool usually sits on the same file system as the SQLite database, which is
//! exactly the one that is full when the database fails. So the file keeps [`RESERVE_BYTES`]
//! allocated beyond its end (`fallocate` with `FALLOC_FL_KEEP_SIZE`): appends write into blocks
//! that already exist and succeed on a full disk until the reserve is used up.
//!
//! The file is 0600 and locked (`flock`) so two daemons never share it.

use std::collections::{HashSet, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{CommandEnd, StartCommand, Store, StoreError, StoreHealth};

/// The format version written on every line.
pub const SPOOL_VERSION: u32 = 1;
/// Bytes kept allocated past the end of the spool file for appends on a full disk.
pub const RESERVE_BYTES: u64 = 1 << 20;

/// One pending history write.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum SpoolOp {
    /// A command's `running` row, which the database did not take.
    Start { uid: String, start: StartCommand },
    /// A command's outcome; `id` when its start was committed.
    Finish {
        uid: String,
        id: Option<i64>,
        start: StartCommand,
        end: CommandEnd,
    },
    /// A new `error` for a finished row: how an interrupt that ran after the answer ended.
    /// Replayed after the row's own entries, so it is not overwritten by them.
    Amend {
        uid: String,
        id: Option<i64>,
        error: String,
    },
}

impl SpoolOp {
    pub fn uid(&self) -> &str {
        match self {
            SpoolOp::Start { uid, .. }
            | SpoolOp::Finish { uid, .. }
            | SpoolOp::Amend { uid, .. } => uid,
        }
    }
}

#[derive(Serialize, Deserialize)]
struct Line {
    v: u32,
    seq: u64,
    spooled_at: DateTime<Utc>,
    #[serde(flatten)]
    op: SpoolOp,
}

/// Where one pending entry is in the file.
#[derive(Clone, Debug)]
struct Pending {
    offset: u64,
    len: u64,
    uid: String,
    /// A `start` left by a previous daemon with no `finish`: written `interrupted`.
    orphan: bool,
}

struct Inner {
    file: File,
    /// Bytes of the file that hold whole lines (the true end, unless `torn`).
    len: u64,
    /// Bytes allocated for the file (its end plus what is reserved past it).
    allocated: u64,
    pending: VecDeque<Pending>,
    next_seq: u64,
    /// A failed append left bytes past `len` that could not be cut off yet.
    torn: bool,
}

/// What one replay did.
#[derive(Debug, Default)]
pub struct ReplayReport {
    /// Entries written to the database (or found already there).
    pub applied: usize,
    /// Entries the database refused for good, moved to `PATH.bad`.
    pub set_aside: usize,
    /// Entries still waiting.
    pub remaining: usize,
    /// Why replay stopped early (the database still fails), if it did.
    pub error: Option<String>,
}

/// The spool file and its pending entries. Shared by every store thread.
pub struct Spool {
    path: PathBuf,
    inner: Mutex<Inner>,
    /// Held by the one replay that may run at a time.
    replaying: Mutex<()>,
    health: Arc<StoreHealth>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Spool {
    /// Opens (creating, 0600) and locks the spool at `path`, and reads the entries it holds.
    /// A torn last line (a crash mid-append, never acknowledged) is cut off; lines that cannot
    /// be read are copied to `PATH.bad` and logged.
    pub fn open(path: &Path, health: Arc<StoreHealth>) -> Result<Spool, StoreError> {
        let err =
            |what: &str, e: io::Error| StoreError::Spool(format!("{what} {}: {e}", path.display()));
        if let Some(dir) = path.parent()
            && !dir.as_os_str().is_empty()
            && !dir.exists()
        {
            crate::files::create_private_dir(dir)
                .map_err(|e| err("cannot create the directory of", e))?;
        }
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| err("cannot open", e))?;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(|e| err("cannot make private", e))?;
        // SAFETY: flock on a valid descriptor we own.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            return Err(err("another podwranglerd uses", io::Error::last_os_error()));
        }
        let mut pending = VecDeque::new();
        let mut starts = Vec::new();
        let mut finished = HashSet::new();
        let mut next_seq = 1;
        let mut offset = 0u64;
        let mut bad = 0usize;
        let mut reader = BufReader::new(&file);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            let n = reader
                .read_until(b'\n', &mut buf)
                .map_err(|e| err("cannot read", e))?;
            if n == 0 {
                break;
            }
            if buf.last() != Some(&b'\n') {
                tracing::warn!(spool = %path.display(), bytes = n, "cutting off a torn last line of the history spool (an append that never finished)");
                file.set_len(offset).map_err(|e| err("cannot repair", e))?;
                break;
            }
            match serde_json::from_slice::<Line>(&buf) {
                Ok(line) if line.v == SPOOL_VERSION => {
                    next_seq = next_seq.max(line.seq + 1);
                    let uid = line.op.uid().to_owned();
                    match &line.op {
                        SpoolOp::Start { .. } => starts.push(pending.len()),
                        SpoolOp::Finish { .. } => {
                            finished.insert(uid.clone());
                        }
                        SpoolOp::Amend { .. } => {}
                    }
                    pending.push_back(Pending {
                        offset,
                        len: n as u64,
                        uid,
                        orphan: false,
                    });
                }
                other => {
                    let why = match other {
                        Ok(line) => format!("format version {} is not {SPOOL_VERSION}", line.v),
                        Err(e) => e.to_string(),
                    };
                    tracing::error!(spool = %path.display(), offset, error = %why, "history spool line cannot be read; copied to the .bad file");
                    set_aside(path, &buf);
                    bad += 1;
                }
            }
            offset += n as u64;
        }
        for i in starts {
            if !finished.contains(&pending[i].uid) {
                pending[i].orphan = true;
            }
        }
        let mut inner = Inner {
            file,
            len: offset,
            allocated: 0,
            pending,
            next_seq,
            torn: false,
        };
        if inner.pending.is_empty() && inner.len > 0 {
            inner
                .file
                .set_len(0)
                .map_err(|e| err("cannot truncate", e))?;
            inner.len = 0;
        }
        reserve(&mut inner, path);
        if !inner.pending.is_empty() || bad > 0 {
            tracing::warn!(spool = %path.display(), pending = inner.pending.len(), unreadable = bad, "history spool holds writes the database has not taken yet");
        }
        health.set_spool_pending(inner.pending.len());
        Ok(Spool {
            path: path.to_owned(),
            inner: Mutex::new(inner),
            replaying: Mutex::new(()),
            health,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Entries waiting to be replayed.
    pub fn pending(&self) -> usize {
        lock(&self.inner).pending.len()
    }

    /// True when an entry for the command `uid` waits (so its later writes must wait behind it).
    pub fn has_pending(&self, uid: &str) -> bool {
        lock(&self.inner).pending.iter().any(|p| p.uid == uid)
    }

    /// Appends one entry and syncs it to disk. `Ok` means it survives a crash.
    pub fn append(&self, op: SpoolOp) -> io::Result<()> {
        let uid = op.uid().to_owned();
        let mut inner = lock(&self.inner);
        let mut bytes = serde_json::to_vec(&Line {
            v: SPOOL_VERSION,
            seq: inner.next_seq,
            spooled_at: Utc::now(),
            op,
        })
        .map_err(io::Error::other)?;
        bytes.push(b'\n');
        if inner.torn {
            let len = inner.len;
            inner.file.set_len(len)?;
            inner.torn = false;
        }
        let offset = inner.len;
        let written = inner
            .file
            .write_all(&bytes)
            .and_then(|()| inner.file.sync_data());
        if let Err(e) = written {
            // Cut off what part of the line reached the file, so the next append starts clean.
            if inner.file.set_len(offset).is_err() {
                inner.torn = true;
            }
            inner.allocated = inner.allocated.min(offset);
            return Err(e);
        }
        inner.len += bytes.len() as u64;
        inner.next_seq += 1;
        inner.pending.push_back(Pending {
            offset,
            len: bytes.len() as u64,
            uid,
            orphan: false,
        });
        self.health.set_spool_pending(inner.pending.len());
        if inner.allocated < inner.len + RESERVE_BYTES / 2 {
            reserve(&mut inner, &self.path);
        }
        Ok(())
    }

    /// Replays the pending entries into `store`, in order, and removes the ones applied. Does
    /// nothing when another replay is running.
    pub fn replay(&self, store: &mut Store) -> ReplayReport {
        let Ok(_replaying) = self.replaying.try_lock() else {
            return ReplayReport {
                remaining: self.pending(),
                ..ReplayReport::default()
            };
        };
        let snapshot: Vec<Pending> = lock(&self.inner).pending.iter().cloned().collect();
        let mut report = ReplayReport::default();
        if snapshot.is_empty() {
            return report;
        }
        let reader = match File::open(&self.path) {
            Ok(f) => f,
            Err(e) => {
                report.error = Some(format!("cannot read {}: {e}", self.path.display()));
                report.remaining = snapshot.len();
                return report;
            }
        };
        let mut done = 0;
        for p in &snapshot {
            let mut buf = vec![0u8; p.len as usize];
            if let Err(e) = reader.read_exact_at(&mut buf, p.offset) {
                report.error = Some(format!("cannot read {}: {e}", self.path.display()));
                break;
            }
            let op = match serde_json::from_slice::<Line>(&buf) {
                Ok(line) => line.op,
                Err(e) => {
                    tracing::error!(spool = %self.path.display(), offset = p.offset, error = %e, "history spool entry cannot be read; copied to the .bad file");
                    set_aside(&self.path, &buf);
                    report.set_aside += 1;
                    done += 1;
                    continue;
                }
            };
            let applied = match &op {
                SpoolOp::Start { uid, start } => {
                    store.record_start(uid, start, p.orphan).map(|_| ())
                }
                SpoolOp::Finish {
                    uid,
                    id,
                    start,
                    end,
                } => store.record_finish(*id, uid, start, end).map(|_| ()),
                // A row that is not there (its finish was set aside) has nothing to amend.
                SpoolOp::Amend { uid, id, error } => store.amend_error(*id, uid, error).map(|_| ()),
            };
            match applied {
                Ok(()) => {
                    report.applied += 1;
                    done += 1;
                }
                Err(StoreError::Unavailable(e)) => {
                    report.error = Some(e);
                    break;
                }
                Err(e) => {
                    tracing::error!(spool = %self.path.display(), uid = %op.uid(), error = %e, "the database refuses a spooled history write; copied to the .bad file");
                    set_aside(&self.path, &buf);
                    report.set_aside += 1;
                    done += 1;
                }
            }
        }
        report.remaining = self.remove_applied(done);
        report
    }

    /// Removes the first `done` entries from the file; answers how many remain.
    fn remove_applied(&self, done: usize) -> usize {
        let mut inner = lock(&self.inner);
        if done == 0 {
            return inner.pending.len();
        }
        inner.pending.drain(..done);
        let remaining = inner.pending.len();
        self.health.set_spool_pending(remaining);
        let result = if remaining == 0 && !inner.torn {
            inner
                .file
                .set_len(0)
                .and_then(|()| inner.file.sync_all())
                .map(|()| {
                    inner.len = 0;
                    inner.allocated = 0;
                })
        } else {
            self.rewrite(&mut inner)
        };
        match result {
            Ok(()) => reserve(&mut inner, &self.path),
            // The applied entries stay in the file; replaying them again changes nothing.
            Err(e) => {
                tracing::warn!(spool = %self.path.display(), error = %e, "cannot remove replayed entries from the history spool yet");
                // Their offsets still hold: nothing was moved.
            }
        }
        remaining
    }

    /// Writes the pending entries to a new file and puts it in place of the old one.
    fn rewrite(&self, inner: &mut Inner) -> io::Result<()> {
        let tmp = self.path.with_extension("spool-tmp");
        let mut out = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&tmp)?;
        out.set_len(0)?;
        let mut moved = Vec::with_capacity(inner.pending.len());
        let mut at = 0u64;
        for p in &inner.pending {
            let mut buf = vec![0u8; p.len as usize];
            inner.file.read_exact_at(&mut buf, p.offset)?;
            out.write_all(&buf)?;
            moved.push(at);
            at += p.len;
        }
        out.sync_all()?;
        // SAFETY: flock on a valid descriptor we own.
        if unsafe { libc::flock(out.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            return Err(io::Error::last_os_error());
        }
        std::fs::rename(&tmp, &self.path)?;
        if let Some(dir) = self.path.parent()
            && let Ok(d) = File::open(if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                dir
            })
        {
            let _ = d.sync_all();
        }
        for (p, offset) in inner.pending.iter_mut().zip(moved) {
            p.offset = offset;
        }
        inner.file = out;
        inner.len = at;
        inner.allocated = at;
        inner.torn = false;
        Ok(())
    }
}

/// Keeps [`RESERVE_BYTES`] allocated past the end of the file. Failing (a full disk, or a file
/// system without `fallocate`) only means appends need fresh blocks.
fn reserve(inner: &mut Inner, path: &Path) {
    let want = inner.len + RESERVE_BYTES;
    // SAFETY: fallocate on a valid descriptor we own; KEEP_SIZE leaves the file's size alone.
    let rc = unsafe {
        libc::fallocate(
            inner.file.as_raw_fd(),
            libc::FALLOC_FL_KEEP_SIZE,
            0,
            want as libc::off_t,
        )
    };
    if rc == 0 {
        inner.allocated = want;
    } else {
        tracing::debug!(spool = %path.display(), error = %io::Error::last_os_error(), "cannot reserve space for the history spool");
    }
}

/// Appends `line` to `PATH.bad` (0600), so what the spool cannot replay is kept for a person.
fn set_aside(path: &Path, line: &[u8]) {
    let mut name = path.as_os_str().to_owned();
    name.push(".bad");
    let written = OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(PathBuf::from(name))
        .and_then(|mut f| {
            f.write_all(line)?;
            if line.last() != Some(&b'\n') {
                f.write_all(b"\n")?;
            }
            f.sync_data()
        });
    if let Err(e) = written {
        tracing::error!(spool = %path.display(), error = %e, "cannot keep an unreadable history spool entry");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use podwrangler::api::CommandStatus;

    fn start() -> StartCommand {
        StartCommand {
            alias: "web".into(),
            pod_label: "web-0".into(),
            command: "echo 'hi'\n".into(),
            started_at: Utc::now(),
            actor: "unix:0(root)".into(),
            job_id: None,
        }
    }

    fn end() -> CommandEnd {
        CommandEnd {
            status: CommandStatus::Succeeded,
            exit_code: Some(0),
            stdout: "hi\n".into(),
            stderr: String::new(),
            error: None,
            truncated: false,
            finished_at: Utc::now(),
            duration_ms: 1.5,
            session_restarted: false,
        }
    }

    #[test]
    fn lines_round_trip_and_reopen_finds_them_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/h.spool");
        let health = Arc::new(StoreHealth::default());
        let s = Spool::open(&path, health.clone()).unwrap();
        assert_eq!(crate::files::mode_of(&path).unwrap(), 0o600);
        s.append(SpoolOp::Start {
            uid: "a".into(),
            start: start(),
        })
        .unwrap();
        s.append(SpoolOp::Finish {
            uid: "b".into(),
            id: Some(3),
            start: start(),
            end: end(),
        })
        .unwrap();
        s.append(SpoolOp::Start {
            uid: "c".into(),
            start: start(),
        })
        .unwrap();
        s.append(SpoolOp::Finish {
            uid: "c".into(),
            id: None,
            start: start(),
            end: end(),
        })
        .unwrap();
        assert_eq!(health.spool_pending(), 4);
        assert!(s.has_pending("a") && !s.has_pending("z"));
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 4);
        assert!(text.starts_with(r#"{"v":1,"seq":1,"#), "{text}");
        assert!(text.contains(r#""op":"finish""#), "{text}");
        // A second daemon may not use it while this one does.
        assert!(matches!(
            Spool::open(&path, health.clone()),
            Err(StoreError::Spool(_))
        ));
        drop(s);
        // A torn last line is cut off; `a` has no finish, so it is an orphan; `c` is not.
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(br#"{"v":1,"seq":9,"op":"sta"#).unwrap();
        let s = Spool::open(&path, health.clone()).unwrap();
        let inner = lock(&s.inner);
        let uids: Vec<(&str, bool)> = inner
            .pending
            .iter()
            .map(|p| (p.uid.as_str(), p.orphan))
            .collect();
        assert_eq!(
            uids,
            [("a", true), ("b", false), ("c", false), ("c", false)]
        );
        assert_eq!(inner.next_seq, 5);
        assert_eq!(inner.len, text.len() as u64);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
    }

    #[test]
    fn unreadable_lines_are_set_aside() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.spool");
        std::fs::write(&path, "not json\n{\"v\":9,\"seq\":1}\n").unwrap();
        let s = Spool::open(&path, Arc::new(StoreHealth::default())).unwrap();
        assert_eq!(s.pending(), 0);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 0);
        let bad = std::fs::read_to_string(dir.path().join("h.spool.bad")).unwrap();
        assert_eq!(bad.lines().count(), 2, "{bad}");
    }
}
