//! Service logs: writing with rotation, reading back and following.
//!
//! Layout under a log directory: `<unit>.stdout.log`, `<unit>.stderr.log` and
//! `supervisor.log`; rotated files are `<name>.1`, `<name>.2`, … (`.1` newest), with a `.gz`
//! suffix when compressed. Every line on disk is `<RFC3339 UTC ms timestamp> <bytes>\n`.

mod follow;
mod format;
mod reader;
pub mod supervisor;
mod when;
mod writer;

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use thiserror::Error;

pub use follow::{follow_many, Follower};
pub use format::{format_timestamp, parse_line};
pub use reader::{tail, tail_merged, window_merged};
pub use when::{parse_when, TimeError, Window};
pub use writer::LogFile;

/// Which stream.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// The unit's standard output.
    Stdout,
    /// The unit's standard error.
    Stderr,
    /// The supervisor's own log (shared by all units).
    Supervisor,
}

/// Log failures.
#[derive(Debug, Error)]
pub enum LogError {
    /// A file operation failed on `path`.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl LogError {
    /// Wrap an I/O error with the path it concerns.
    pub(crate) fn io(path: &Path, source: std::io::Error) -> LogError {
        LogError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Path of the current log file of `unit` (ignored for `Kind::Supervisor`).
pub fn log_path(log_dir: &Path, unit: &str, kind: Kind) -> PathBuf {
    // A spawned child (`web/worker`) gets flat files (`web@worker.stdout.log`).
    let unit = crate::spec::file_key(unit);
    match kind {
        Kind::Stdout => log_dir.join(format!("{unit}.stdout.log")),
        Kind::Stderr => log_dir.join(format!("{unit}.stderr.log")),
        Kind::Supervisor => log_dir.join("supervisor.log"),
    }
}

/// Path of rotated file number `index` (1 = newest) of the log file at `path`.
pub fn rotated_path(path: &Path, index: u32, compressed: bool) -> PathBuf {
    let mut name = path.as_os_str().to_os_string();
    name.push(format!(".{index}"));
    if compressed {
        name.push(".gz");
    }
    PathBuf::from(name)
}

/// One rotated file found on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Rotated {
    /// 1 = newest.
    pub index: u32,
    /// Path of the file.
    pub path: PathBuf,
    /// True for a `.gz` file.
    pub compressed: bool,
}

/// Rotated siblings of `path`, sorted by index then plain before compressed.
///
/// A missing directory gives an empty list. Listing the directory (rather than probing
/// `.1`, `.2`, …) keeps files reachable after a crash left a gap in the numbering.
pub(crate) fn list_rotated(path: &Path) -> Result<Vec<Rotated>, LogError> {
    let (dir, base) = split_path(path);
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(LogError::io(&dir, e)),
    };
    let mut prefix = base.clone();
    prefix.push(".");
    let prefix = prefix.as_encoded_bytes().to_vec();
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| LogError::io(&dir, e))?;
        let name = entry.file_name();
        let Some(rest) = name.as_encoded_bytes().strip_prefix(prefix.as_slice()) else {
            continue;
        };
        let (digits, compressed) = match rest.strip_suffix(b".gz") {
            Some(d) => (d, true),
            None => (rest, false),
        };
        if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) || digits[0] == b'0' {
            continue;
        }
        let Some(index) = std::str::from_utf8(digits)
            .ok()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        found.push(Rotated {
            index,
            path: dir.join(&name),
            compressed,
        });
    }
    found.sort_by_key(|r| (r.index, r.compressed));
    Ok(found)
}

/// Directory and file name of `path` (`.` when it has no parent).
pub(crate) fn split_path(path: &Path) -> (PathBuf, OsString) {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let base = path.file_name().map(OsString::from).unwrap_or_default();
    (dir, base)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_follow_the_layout() {
        let dir = Path::new("/var/log/systemg");
        assert_eq!(
            log_path(dir, "web", Kind::Stdout),
            Path::new("/var/log/systemg/web.stdout.log")
        );
        assert_eq!(
            log_path(dir, "web", Kind::Stderr),
            Path::new("/var/log/systemg/web.stderr.log")
        );
        assert_eq!(
            log_path(dir, "web", Kind::Supervisor),
            Path::new("/var/log/systemg/supervisor.log")
        );
        let p = log_path(dir, "web", Kind::Stdout);
        assert_eq!(
            rotated_path(&p, 1, false),
            Path::new("/var/log/systemg/web.stdout.log.1")
        );
        assert_eq!(
            rotated_path(&p, 12, true),
            Path::new("/var/log/systemg/web.stdout.log.12.gz")
        );
    }

    #[test]
    fn listing_ignores_unrelated_names() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let p = dir.path().join("a.stdout.log");
        for name in [
            "a.stdout.log",
            "a.stdout.log.1",
            "a.stdout.log.3.gz",
            "a.stdout.log.2.gz.tmp",
            "a.stdout.log.01",
            "a.stdout.log.x",
            "a.stdout.log.",
            "b.stdout.log.1",
            "a.stdout.log.2",
        ] {
            std::fs::write(dir.path().join(name), b"")?;
        }
        let got: Vec<(u32, bool)> = list_rotated(&p)?
            .iter()
            .map(|r| (r.index, r.compressed))
            .collect();
        assert_eq!(got, vec![(1, false), (2, false), (3, true)]);
        assert!(list_rotated(&dir.path().join("missing/x.log"))?.is_empty());
        Ok(())
    }
}
