//! Following log files as they grow, across rotations, woken by inotify.

use crate::os::fs::{open_in, Access, Create};
use std::ffi::OsString;
use std::fs::File;
use std::io;
use std::os::fd::AsFd;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, WatchDescriptor};

use super::{rotated_path, split_path, LogError};

/// Bytes read at a time.
const CHUNK: usize = 64 * 1024;
/// How often to look again for a log directory that does not exist yet.
const MISSING_DIR_RETRY: Duration = Duration::from_millis(250);
/// Bound on the files chased in one pass (rotations faster than we read).
const MAX_HOPS: usize = 1024;

/// Identity of a file: device and inode.
type FileId = (u64, u64);

/// Follows one or more log files from their current end, yielding complete new lines.
///
/// Rotation is detected by the path naming another inode (or a file shorter than what was
/// read, for truncation). The old file is read to its end first; when several rotations
/// happened between two reads the follower walks the plain rotated files (`.N` … `.1`)
/// in order, so nothing is lost as long as those files are still there uncompressed (a
/// rotated file already deleted or gzipped is skipped).
pub struct Follower {
    inotify: Inotify,
    dirs: Vec<WatchedDir>,
    files: Vec<Tracked>,
}

/// A directory holding followed files, and its inotify watch once it exists.
struct WatchedDir {
    path: PathBuf,
    watch: Option<WatchDescriptor>,
}

/// One followed path.
struct Tracked {
    path: PathBuf,
    name: OsString,
    open: Option<OpenFile>,
    /// Bytes after the last newline read so far.
    partial: Vec<u8>,
    /// Started in the middle of a line: drop bytes up to the next newline.
    skip_to_newline: bool,
}

/// The file currently read for a path (possibly already rotated away).
struct OpenFile {
    file: File,
    id: FileId,
    pos: u64,
}

/// Follow several files at once; lines are tagged with the index of their path.
pub fn follow_many<P: AsRef<Path>>(paths: &[P]) -> Result<Follower, LogError> {
    let first = paths
        .first()
        .map(|p| p.as_ref().to_path_buf())
        .unwrap_or_default();
    let inotify = Inotify::init(InitFlags::IN_CLOEXEC | InitFlags::IN_NONBLOCK)
        .map_err(|e| LogError::io(&first, io::Error::from(e)))?;
    let mut follower = Follower {
        inotify,
        dirs: Vec::new(),
        files: Vec::new(),
    };
    for p in paths {
        let (dir, name) = split_path(p.as_ref());
        if !follower.dirs.iter().any(|d| d.path == dir) {
            follower.dirs.push(WatchedDir {
                path: dir,
                watch: None,
            });
        }
        follower.files.push(Tracked {
            path: p.as_ref().to_path_buf(),
            name,
            open: None,
            partial: Vec::new(),
            skip_to_newline: false,
        });
    }
    // Watch before looking at the files, so no change after that look goes unnoticed.
    follower.add_missing_watches()?;
    for t in &mut follower.files {
        t.open_at_end()?;
    }
    Ok(follower)
}

impl Follower {
    /// Follow the file at `path` from its current end (from its start once it appears, if missing).
    pub fn new(path: &Path) -> Result<Follower, LogError> {
        follow_many(&[path])
    }

    /// Wait until new complete lines are available or `timeout` passes (`None`: no limit).
    ///
    /// Lines are returned as stored (timestamp included); an empty result means the timeout
    /// passed.
    pub fn next_lines(&mut self, timeout: Option<Duration>) -> Result<Vec<String>, LogError> {
        Ok(self
            .next_tagged(timeout)?
            .into_iter()
            .map(|(_, line)| line)
            .collect())
    }

    /// Like [`Follower::next_lines`], with each line tagged by the index of its path.
    pub fn next_tagged(
        &mut self,
        timeout: Option<Duration>,
    ) -> Result<Vec<(usize, String)>, LogError> {
        let deadline = timeout.map(|t| Instant::now() + t);
        loop {
            self.add_missing_watches()?;
            let lines = self.read_available()?;
            if !lines.is_empty() {
                return Ok(lines);
            }
            loop {
                let remaining = match deadline {
                    None => None,
                    Some(d) => match d.checked_duration_since(Instant::now()) {
                        Some(r) if !r.is_zero() => Some(r),
                        _ => return Ok(Vec::new()),
                    },
                };
                if self.wait(remaining)? {
                    break;
                }
            }
        }
    }

    /// Lines available now, without waiting.
    pub fn poll_lines(&mut self) -> Result<Vec<(usize, String)>, LogError> {
        self.add_missing_watches()?;
        self.drain_events()?;
        self.read_available()
    }

    fn read_available(&mut self) -> Result<Vec<(usize, String)>, LogError> {
        let mut out = Vec::new();
        for (i, t) in self.files.iter_mut().enumerate() {
            let mut lines = Vec::new();
            t.read_new(&mut lines)?;
            out.extend(lines.into_iter().map(|l| (i, l)));
        }
        Ok(out)
    }

    fn add_missing_watches(&mut self) -> Result<(), LogError> {
        let mask = AddWatchFlags::IN_MODIFY
            | AddWatchFlags::IN_CREATE
            | AddWatchFlags::IN_MOVED_FROM
            | AddWatchFlags::IN_MOVED_TO
            | AddWatchFlags::IN_DELETE
            | AddWatchFlags::IN_ATTRIB;
        for d in &mut self.dirs {
            if d.watch.is_some() {
                continue;
            }
            match self.inotify.add_watch(d.path.as_path(), mask) {
                Ok(wd) => d.watch = Some(wd),
                // Not there yet: look again later.
                Err(Errno::ENOENT | Errno::ENOTDIR) => {}
                Err(e) => return Err(LogError::io(&d.path, io::Error::from(e))),
            }
        }
        Ok(())
    }

    /// Block until an event that may concern a followed file, or `timeout`; true if one came.
    fn wait(&mut self, timeout: Option<Duration>) -> Result<bool, LogError> {
        let mut timeout = timeout;
        if self.dirs.iter().any(|d| d.watch.is_none()) {
            timeout = Some(timeout.map_or(MISSING_DIR_RETRY, |t| t.min(MISSING_DIR_RETRY)));
        }
        let poll_timeout = match timeout {
            None => PollTimeout::NONE,
            Some(t) => {
                // Round up so a sub-millisecond rest does not spin.
                let ms = t.as_nanos().div_ceil(1_000_000).min(i32::MAX as u128) as i32;
                PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX)
            }
        };
        let ready = {
            let mut fds = [PollFd::new(self.inotify.as_fd(), PollFlags::POLLIN)];
            match poll(&mut fds, poll_timeout) {
                Ok(n) => n > 0,
                Err(Errno::EINTR) => return Ok(true),
                Err(e) => return Err(self.error(e)),
            }
        };
        if !ready {
            // A directory may have appeared meanwhile.
            return Ok(self.dirs.iter().any(|d| d.watch.is_none()));
        }
        self.drain_events()
    }

    /// Read all queued events; true if one may concern a followed file.
    fn drain_events(&mut self) -> Result<bool, LogError> {
        let mut relevant = false;
        loop {
            let events = match self.inotify.read_events() {
                Ok(events) => events,
                Err(Errno::EAGAIN) => return Ok(relevant),
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(self.error(e)),
            };
            for ev in events {
                if ev.mask.contains(AddWatchFlags::IN_IGNORED) {
                    // The directory went away: watch it again once it is back.
                    for d in &mut self.dirs {
                        if d.watch == Some(ev.wd) {
                            d.watch = None;
                        }
                    }
                    relevant = true;
                }
                if ev.mask.contains(AddWatchFlags::IN_Q_OVERFLOW) {
                    relevant = true;
                }
                match &ev.name {
                    None => relevant = true,
                    Some(name) => {
                        let name = name.as_encoded_bytes();
                        if self
                            .files
                            .iter()
                            .any(|t| name.starts_with(t.name.as_encoded_bytes()))
                        {
                            relevant = true;
                        }
                    }
                }
            }
        }
    }

    fn error(&self, e: Errno) -> LogError {
        let path = self
            .files
            .first()
            .map(|t| t.path.clone())
            .unwrap_or_default();
        LogError::io(&path, io::Error::from(e))
    }
}

impl Tracked {
    /// Open the file positioned at its end; a missing file will be read from its start.
    fn open_at_end(&mut self) -> Result<(), LogError> {
        let Some(mut open) = open_file(&self.path)? else {
            return Ok(());
        };
        let len = open
            .file
            .metadata()
            .map_err(|e| LogError::io(&self.path, e))?
            .len();
        if len > 0 {
            let mut last = [0u8; 1];
            open.file
                .read_exact_at(&mut last, len - 1)
                .map_err(|e| LogError::io(&self.path, e))?;
            self.skip_to_newline = last[0] != b'\n';
        }
        open.pos = len;
        self.open = Some(open);
        Ok(())
    }

    /// Append to `out` every complete line written since the last call.
    fn read_new(&mut self, out: &mut Vec<String>) -> Result<(), LogError> {
        for _ in 0..MAX_HOPS {
            // Look at the path before draining: if it already names a new file, the writer
            // is done with the old one and the drain below reads it to its true end.
            let current = file_id(&self.path)?;
            self.drain(out)?;
            let Some(open) = &self.open else {
                if current.is_none() {
                    return Ok(());
                }
                self.open = open_file(&self.path)?;
                if self.open.is_none() {
                    return Ok(());
                }
                continue;
            };
            if current.is_none() || current == Some(open.id) {
                return Ok(());
            }
            let old = open.id;
            self.end_partial(out);
            match next_file(&self.path, old)? {
                Next::Found(next) => self.open = next,
                Next::NotYet => return Ok(()),
            }
        }
        Ok(())
    }

    /// Read the open file from the last position to its end.
    fn drain(&mut self, out: &mut Vec<String>) -> Result<(), LogError> {
        let Some(open) = self.open.as_mut() else {
            return Ok(());
        };
        let len = open
            .file
            .metadata()
            .map_err(|e| LogError::io(&self.path, e))?
            .len();
        if len < open.pos {
            // Truncated in place: start over.
            open.pos = 0;
            self.partial.clear();
            self.skip_to_newline = false;
        }
        let mut buf = vec![0u8; CHUNK];
        loop {
            let n = match open.file.read_at(&mut buf, open.pos) {
                Ok(0) => return Ok(()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(LogError::io(&self.path, e)),
            };
            open.pos += n as u64;
            let mut rest = &buf[..n];
            while let Some(i) = rest.iter().position(|&b| b == b'\n') {
                let (line, after) = rest.split_at(i);
                rest = &after[1..];
                if self.skip_to_newline {
                    self.skip_to_newline = false;
                    self.partial.clear();
                    continue;
                }
                if self.partial.is_empty() {
                    out.push(String::from_utf8_lossy(line).into_owned());
                } else {
                    self.partial.extend_from_slice(line);
                    out.push(String::from_utf8_lossy(&self.partial).into_owned());
                    self.partial.clear();
                }
            }
            if !self.skip_to_newline {
                self.partial.extend_from_slice(rest);
            }
        }
    }

    /// The file was rotated away: its unterminated end is a line of its own.
    fn end_partial(&mut self, out: &mut Vec<String>) {
        if !self.partial.is_empty() && !self.skip_to_newline {
            out.push(String::from_utf8_lossy(&self.partial).into_owned());
        }
        self.partial.clear();
        self.skip_to_newline = false;
    }
}

/// Open `path` at its start; `None` if it does not exist.
fn open_file(path: &Path) -> Result<Option<OpenFile>, LogError> {
    let file = match open_in(path, Access::Read, Create::No) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(LogError::io(path, e)),
    };
    let meta = file.metadata().map_err(|e| LogError::io(path, e))?;
    Ok(Some(OpenFile {
        file,
        id: (meta.dev(), meta.ino()),
        pos: 0,
    }))
}

/// Device and inode of `path`; `None` if it does not exist.
fn file_id(path: &Path) -> Result<Option<FileId>, LogError> {
    match std::fs::metadata(path) {
        Ok(m) => Ok(Some((m.dev(), m.ino()))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(LogError::io(path, e)),
    }
}

/// Where reading continues once the file `old` has been read to its end.
enum Next {
    /// The file written after `old`, opened at its start.
    Found(Option<OpenFile>),
    /// A rotation is in progress: keep `old` and look again at the next event.
    NotYet,
}

/// Find the file written after the one identified by `old`.
///
/// Files keep their age order in the index order at all times (rotation renames oldest
/// first, current = index 0), with at most transient gaps. So when `old` is at `.k` its
/// successor is the nearest existing file below `k`. That file is opened, then accepted only
/// if `old` is still at `.k` and the indices between are still empty, which proves no
/// rotation moved anything in between. When `old` is gone (deleted, compressed) the current
/// file is the best guess.
fn next_file(path: &Path, old: FileId) -> Result<Next, LogError> {
    for _ in 0..4 {
        let Some(k) = find_rotated(path, old)? else {
            return Ok(Next::Found(open_file(path)?));
        };
        let mut candidate = None;
        for j in (0..k).rev() {
            let p = if j == 0 {
                path.to_path_buf()
            } else {
                rotated_path(path, j, false)
            };
            if let Some(open) = open_file(&p)? {
                candidate = Some((j, open));
                break;
            }
        }
        let Some((j, open)) = candidate else {
            // Between renaming the current file and creating the next one.
            continue;
        };
        let mut still = file_id(&rotated_path(path, k, false))? == Some(old);
        for i in j + 1..k {
            if !still {
                break;
            }
            still = file_id(&rotated_path(path, i, false))?.is_none();
        }
        if still {
            return Ok(Next::Found(Some(open)));
        }
    }
    Ok(Next::NotYet)
}

/// Index of the plain rotated file with identity `id`.
///
/// Probes `.1`, `.2`, … upwards rather than listing the directory: a listing can miss a file
/// renamed while it runs, but a file only ever moves up one index at a time, so an upward
/// probe cannot overtake it. It stops after a few indices where neither a plain nor a
/// compressed file exists (a rotation in progress leaves at most one such gap).
fn find_rotated(path: &Path, id: FileId) -> Result<Option<u32>, LogError> {
    let mut missing = 0;
    let mut index = 1u32;
    while missing < 3 {
        match file_id(&rotated_path(path, index, false))? {
            Some(found) if found == id => return Ok(Some(index)),
            Some(_) => missing = 0,
            None if rotated_path(path, index, true).exists() => missing = 0,
            None => missing += 1,
        }
        index = match index.checked_add(1) {
            Some(i) => i,
            None => break,
        };
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::schema::LogPolicy;
    use crate::logs::{log_path, parse_line, Kind, LogFile};
    use std::time::SystemTime;

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    const WAIT: Option<Duration> = Some(Duration::from_secs(10));

    fn texts(lines: &[String]) -> Vec<String> {
        lines
            .iter()
            .map(|l| {
                parse_line(l)
                    .map(|(_, t)| t.to_string())
                    .unwrap_or_else(|| l.clone())
            })
            .collect()
    }

    /// Collect lines until `count` arrived (or a wait times out).
    fn collect(f: &mut Follower, count: usize) -> Result<Vec<String>, LogError> {
        let mut got = Vec::new();
        while got.len() < count {
            let lines = f.next_lines(WAIT)?;
            if lines.is_empty() {
                break;
            }
            got.extend(texts(&lines));
        }
        Ok(got)
    }

    fn policy(max_size: u64, max_files: u32, compress: bool) -> LogPolicy {
        LogPolicy {
            max_size,
            max_files,
            compress,
        }
    }

    #[test]
    fn starts_at_the_end_and_sees_appended_lines() -> TestResult {
        let dir = tempfile::tempdir()?;
        let p = log_path(dir.path(), "svc", Kind::Stdout);
        let mut log = LogFile::open(&p, LogPolicy::default())?;
        log.write_line(SystemTime::now(), b"old")?;
        let mut f = Follower::new(&p)?;
        assert!(f.next_lines(Some(Duration::from_millis(20)))?.is_empty());
        log.write_lines(SystemTime::now(), &[b"one", b"two"])?;
        assert_eq!(collect(&mut f, 2)?, vec!["one", "two"]);
        log.write_line(SystemTime::now(), b"three")?;
        assert_eq!(collect(&mut f, 1)?, vec!["three"]);
        Ok(())
    }

    #[test]
    fn partial_lines_wait_for_their_newline() -> TestResult {
        let dir = tempfile::tempdir()?;
        let p = dir.path().join("x.log");
        std::fs::write(&p, b"done\nhalf-written")?;
        let mut f = Follower::new(&p)?;
        let mut file = std::fs::OpenOptions::new().append(true).open(&p)?;
        io::Write::write_all(&mut file, b" end\nfirst ")?;
        // The line we started in the middle of is dropped, not shown truncated.
        assert!(f.next_lines(Some(Duration::from_millis(20)))?.is_empty());
        io::Write::write_all(&mut file, b"second\n")?;
        assert_eq!(f.next_lines(WAIT)?, vec!["first second"]);
        Ok(())
    }

    #[test]
    fn follows_across_rotation_without_loss_or_duplicates() -> TestResult {
        let dir = tempfile::tempdir()?;
        let p = log_path(dir.path(), "svc", Kind::Stdout);
        // 30-byte lines, 2 per file.
        let mut log = LogFile::open(&p, policy(60, 10, false))?;
        log.write_line(SystemTime::now(), b"l000")?;
        let mut f = Follower::new(&p)?;
        log.write_line(SystemTime::now(), b"l001")?;
        log.write_line(SystemTime::now(), b"l002")?; // rotates
        assert_eq!(collect(&mut f, 2)?, vec!["l001", "l002"]);
        // Several rotations between two reads.
        for i in 3..=11 {
            log.write_line(SystemTime::now(), format!("l{i:03}").as_bytes())?;
        }
        let want: Vec<String> = (3..=11).map(|i| format!("l{i:03}")).collect();
        assert_eq!(collect(&mut f, want.len())?, want);
        assert!(f.next_lines(Some(Duration::from_millis(20)))?.is_empty());
        Ok(())
    }

    #[test]
    fn follows_when_rotation_deletes_the_file() -> TestResult {
        let dir = tempfile::tempdir()?;
        let p = log_path(dir.path(), "svc", Kind::Stdout);
        let mut log = LogFile::open(&p, policy(60, 0, false))?;
        let mut f = Follower::new(&p)?;
        log.write_line(SystemTime::now(), b"l001")?;
        log.write_line(SystemTime::now(), b"l002")?;
        assert_eq!(collect(&mut f, 2)?, vec!["l001", "l002"]);
        log.write_line(SystemTime::now(), b"l003")?; // old file unlinked, new one created
        log.write_line(SystemTime::now(), b"l004")?;
        assert_eq!(collect(&mut f, 2)?, vec!["l003", "l004"]);
        Ok(())
    }

    #[test]
    fn detects_truncation() -> TestResult {
        let dir = tempfile::tempdir()?;
        let p = dir.path().join("x.log");
        std::fs::write(&p, b"aaaaaaaaaa\nbbbbbbbbbb\n")?;
        let mut f = Follower::new(&p)?;
        std::fs::write(&p, b"new\n")?;
        assert_eq!(f.next_lines(WAIT)?, vec!["new"]);
        Ok(())
    }

    #[test]
    fn waits_for_a_file_and_directory_that_do_not_exist_yet() -> TestResult {
        let dir = tempfile::tempdir()?;
        let p = dir.path().join("later/svc.stdout.log");
        let mut f = Follower::new(&p)?;
        assert!(f.next_lines(Some(Duration::from_millis(20)))?.is_empty());
        let mut log = LogFile::open(&p, LogPolicy::default())?;
        log.write_line(SystemTime::now(), b"hello")?;
        assert_eq!(collect(&mut f, 1)?, vec!["hello"]);
        Ok(())
    }

    #[test]
    fn follows_stdout_and_stderr_together() -> TestResult {
        let dir = tempfile::tempdir()?;
        let po = log_path(dir.path(), "svc", Kind::Stdout);
        let pe = log_path(dir.path(), "svc", Kind::Stderr);
        let mut f = follow_many(&[&po, &pe])?;
        let mut out = LogFile::open(&po, LogPolicy::default())?;
        let mut err = LogFile::open(&pe, LogPolicy::default())?;
        out.write_line(SystemTime::now(), b"o")?;
        err.write_line(SystemTime::now(), b"e")?;
        let mut got = Vec::new();
        while got.len() < 2 {
            let lines = f.next_tagged(WAIT)?;
            if lines.is_empty() {
                break;
            }
            got.extend(lines.into_iter().map(|(i, l)| (i, texts(&[l]).concat())));
        }
        got.sort();
        assert_eq!(got, vec![(0, "o".to_string()), (1, "e".to_string())]);
        Ok(())
    }

    #[test]
    fn concurrent_writer_with_rotations_loses_nothing() -> TestResult {
        let dir = tempfile::tempdir()?;
        let p = log_path(dir.path(), "svc", Kind::Stdout);
        const N: usize = 20_000;
        // ~36-byte lines, ~110 lines per file, ~180 rotations, all kept.
        let mut log = LogFile::open(&p, policy(4096, 1000, false))?;
        let mut f = Follower::new(&p)?;
        let writer = std::thread::spawn(move || -> Result<(), LogError> {
            for chunk in (0..N).collect::<Vec<_>>().chunks(7) {
                let lines: Vec<String> = chunk.iter().map(|i| format!("n{i:08}")).collect();
                let refs: Vec<&[u8]> = lines.iter().map(|l| l.as_bytes()).collect();
                log.write_lines(SystemTime::now(), &refs)?;
            }
            Ok(())
        });
        let got = collect(&mut f, N)?;
        writer.join().map_err(|_| "writer panicked")??;
        let want: Vec<String> = (0..N).map(|i| format!("n{i:08}")).collect();
        assert_eq!(got.len(), N);
        assert!(got == want, "lines lost, duplicated or out of order");
        Ok(())
    }
}
