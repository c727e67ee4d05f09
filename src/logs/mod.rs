//! Service logs: writing with rotation, reading back and following.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use thiserror::Error;

use crate::config::schema::LogPolicy;

/// Which stream.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Stdout,
    Stderr,
    Supervisor,
}

/// Log failures.
#[derive(Debug, Error)]
pub enum LogError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Path of the current log file of `unit` (ignored for `Kind::Supervisor`).
pub fn log_path(_log_dir: &Path, _unit: &str, _kind: Kind) -> PathBuf {
    todo!("logs")
}

/// An append-only log file that rotates by size.
pub struct LogFile {
    _private: (),
}

impl LogFile {
    /// Open (append) the log file at `path`, creating directories as needed.
    pub fn open(_path: &Path, _policy: LogPolicy) -> Result<LogFile, LogError> {
        todo!("logs")
    }

    /// Append one line (without its newline) stamped with `ts`; rotates first when full.
    pub fn write_line(&mut self, _ts: SystemTime, _line: &[u8]) -> Result<(), LogError> {
        todo!("logs")
    }
}
