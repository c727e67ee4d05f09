//! The persisted state of a project: what a later supervisor needs to re-adopt running units
//! and keep counters. Written atomically (temp file, fsync, rename); a corrupt file is set
//! aside and reported, never fatal. When to write it is `Persist`'s business: once per turn
//! of the supervisor's event loop, not once per event.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::backend::AdoptRecord;
use crate::control::inspect::ExitRecord;
use crate::core::CronRun;
use crate::spec::ExitStatus;

/// Format version of state.json.
pub const STATE_VERSION: u32 = 1;

/// Contents of state.json.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PersistedState {
    pub version: u32,
    pub project: String,
    pub config: PathBuf,
    pub backend: String,
    pub supervisor_pid: Option<u32>,
    /// Units running when this was written.
    pub records: Vec<AdoptRecord>,
    /// Counters that outlive one supervisor.
    pub units: BTreeMap<String, UnitMemo>,
    /// The last runs of every cron job (`core::HISTORY_LEN` each, plus a live one).
    #[serde(default)]
    pub cron: BTreeMap<String, Vec<CronRun>>,
    /// The last exits of each service (`inspect`), kept across runs.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub exits: BTreeMap<String, Vec<ExitRecord>>,
    /// Cron jobs whose backend timer (a systemd `.timer`) was armed when this was written;
    /// empty after a clean stop.
    #[serde(default)]
    pub timers: Vec<String>,
    /// Where each running spawned child sits in its tree (its process is in `records`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub spawned: Vec<SpawnedMemo>,
}

/// A spawned child's place in its tree, for re-adoption by a later supervisor.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SpawnedMemo {
    /// `<service>/<child>`.
    pub unit: String,
    /// The child that spawned it; `None` when the service did.
    pub parent_child: Option<String>,
    pub depth: u32,
    /// Wall-clock start, milliseconds since the epoch.
    pub started_unix_ms: u64,
    /// Wall-clock TTL deadline, milliseconds since the epoch.
    pub ttl_deadline_unix_ms: Option<u64>,
}

/// Most events the supervisor's loop handles in one turn (one state write, one look at its
/// waiting clients) while more keep arriving.
pub const MAX_BATCH: u32 = 1024;

/// Longest a change waits for its state write while events keep arriving.
pub const MAX_DELAY: Duration = Duration::from_millis(100);

/// Coalesces state writes. A write costs two fsyncs and a rename; done once per event, a burst
/// (1,000 services exiting on a stop) queued its events behind the writes until stop timeouts
/// expired. The loop marks the state dirty as it changes, takes events that are already
/// waiting while `may_batch` allows, and writes once when the turn ends (`end_turn`), before
/// it answers any client.
#[derive(Debug)]
pub struct Persist {
    /// When the state first changed since the last write.
    dirty_since: Option<Instant>,
    /// Events taken in the current turn.
    batched: u32,
}

impl Persist {
    /// Dirty at first: a new supervisor writes its state once it has started.
    pub fn new(now: Instant) -> Persist {
        Persist {
            dirty_since: Some(now),
            batched: 0,
        }
    }

    /// The state changed and must be written.
    pub fn mark(&mut self) {
        self.dirty_since.get_or_insert_with(Instant::now);
    }

    /// Whether the loop may take one more waiting event before it ends its turn: not after
    /// `MAX_BATCH` events, nor once a change has waited `MAX_DELAY`.
    pub fn may_batch(&mut self, now: Instant) -> bool {
        let overdue = self
            .dirty_since
            .is_some_and(|t| now.saturating_duration_since(t) >= MAX_DELAY);
        if overdue || self.batched >= MAX_BATCH {
            return false;
        }
        self.batched += 1;
        true
    }

    /// The turn ends: whether the state must be written now (it is then clean).
    pub fn end_turn(&mut self) -> bool {
        self.batched = 0;
        self.dirty_since.take().is_some()
    }
}

/// Per-unit counters of the current run (reset by a fresh start; see `Supervisor::carried`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UnitMemo {
    pub restarts: u32,
    pub last_exit: Option<ExitStatus>,
    /// Backend key of the unit's process of record when it is not the service name (after a
    /// rolling deployment): adopted first, so a leftover of an interrupted deployment is the
    /// one stopped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
}

/// State-file failures.
#[derive(Debug, Error)]
pub enum StateError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Encode { path: PathBuf, message: String },
}

/// What `load` found.
#[derive(Debug)]
pub enum Loaded {
    Missing,
    Ok(PersistedState),
    /// The file was unreadable as state; it was moved to `moved_to`.
    Corrupt {
        moved_to: PathBuf,
        message: String,
    },
}

/// Read state.json, setting a corrupt one aside.
pub fn load(path: &Path) -> Result<Loaded, StateError> {
    // Under --drop-privileges the state directory is the services' user's, and root reads
    // this before the drop: never through a symbolic link, never a FIFO, never without bound.
    let bytes = match crate::os::fs::read_capped(path, MAX_STATE_BYTES) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Loaded::Missing),
        Err(e) if crate::os::fs::is_refusal(&e) => return set_aside(path, e.to_string()),
        Err(source) => {
            return Err(StateError::Io {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    match serde_json::from_slice::<PersistedState>(&bytes) {
        Ok(s) if s.version == STATE_VERSION => Ok(Loaded::Ok(s)),
        Ok(s) => set_aside(path, format!("unsupported state version {}", s.version)),
        Err(e) => set_aside(path, e.to_string()),
    }
}

fn set_aside(path: &Path, message: String) -> Result<Loaded, StateError> {
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%S");
    let moved_to = path.with_extension(format!("json.corrupt-{stamp}"));
    std::fs::rename(path, &moved_to).map_err(|source| StateError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(Loaded::Corrupt { moved_to, message })
}

/// Write state.json atomically.
pub fn save(path: &Path, state: &PersistedState) -> Result<(), StateError> {
    let io = |source| StateError::Io {
        path: path.to_path_buf(),
        source,
    };
    let data = serde_json::to_vec_pretty(state).map_err(|e| StateError::Encode {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    write_atomic(path, &data).map_err(io)
}

/// Largest state file read (a thousand units take well under a megabyte).
const MAX_STATE_BYTES: u64 = 64 << 20;

/// Replace the file at `path` with `data` atomically: a temporary file with a unique name
/// beside it (`O_CREAT|O_EXCL|O_NOFOLLOW`), fsync, rename over, fsync of the directory. A
/// crash leaves the old file or the new one, never a mix; nothing planted beside `path` (a
/// symbolic link at `<path>.tmp`) is written through.
pub fn write_atomic(path: &Path, data: &[u8]) -> std::io::Result<()> {
    crate::os::fs::write_atomic(path, data, 0o666)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_corrupt_set_aside() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("state.json");
        assert!(matches!(load(&p).unwrap(), Loaded::Missing));
        let mut s = PersistedState {
            version: STATE_VERSION,
            project: "demo".into(),
            ..Default::default()
        };
        s.units.insert(
            "web".into(),
            UnitMemo {
                restarts: 2,
                last_exit: Some(ExitStatus::Code(1)),
                instance: Some("web~3".into()),
            },
        );
        save(&p, &s).unwrap();
        match load(&p).unwrap() {
            Loaded::Ok(back) => assert_eq!(back, s),
            other => panic!("{other:?}"),
        }
        std::fs::write(&p, b"{not json").unwrap();
        match load(&p).unwrap() {
            Loaded::Corrupt { moved_to, .. } => {
                assert!(moved_to.exists());
                assert!(!p.exists());
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn persist_writes_once_per_turn() {
        let t0 = Instant::now();
        let mut p = Persist::new(t0);
        assert!(p.end_turn(), "a new supervisor writes its state");
        assert!(!p.end_turn(), "nothing changed since");
        // A burst: many changes, one write.
        for _ in 0..10 {
            assert!(p.may_batch(Instant::now()));
            p.mark();
        }
        assert!(p.end_turn());
        assert!(!p.end_turn());
    }

    #[test]
    fn persist_bounds_a_turn_by_events_and_by_delay() {
        let mut p = Persist::new(Instant::now());
        p.end_turn();
        // Clean: only the event count bounds the turn.
        let now = Instant::now();
        for _ in 0..MAX_BATCH {
            assert!(p.may_batch(now));
        }
        assert!(!p.may_batch(now));
        assert!(!p.end_turn());
        assert!(p.may_batch(now), "a new turn takes events again");
        // Dirty: a change waits at most MAX_DELAY for its write.
        p.mark();
        assert!(p.may_batch(Instant::now()));
        assert!(!p.may_batch(Instant::now() + MAX_DELAY));
        assert!(p.end_turn());
    }

    #[test]
    fn a_linked_state_file_is_set_aside_unread_and_never_written_through() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, b"{}").unwrap();
        let p = dir.path().join("state.json");
        std::os::unix::fs::symlink(&victim, &p).unwrap();
        std::os::unix::fs::symlink(&victim, dir.path().join("state.json.tmp")).unwrap();
        match load(&p).unwrap() {
            Loaded::Corrupt { message, .. } => assert!(message.contains("symbolic link")),
            other => panic!("{other:?}"),
        }
        save(&p, &PersistedState::default()).unwrap();
        assert_eq!(std::fs::read(&victim).unwrap(), b"{}");
        assert!(!std::fs::symlink_metadata(&p).unwrap().is_symlink());
    }
}
