//! Append-only log files that rotate by size.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use flate2::write::GzEncoder;
use flate2::Compression;

use super::format::format_timestamp;
use super::{list_rotated, rotated_path, split_path, LogError};
use crate::config::schema::LogPolicy;
use crate::os::fs::{open_in, Access, Create};

/// Buffer size of the writer: large enough that a batch of lines is one `write(2)`.
const BUF_SIZE: usize = 64 * 1024;

/// An append-only log file that rotates by size.
pub struct LogFile {
    path: PathBuf,
    policy: LogPolicy,
    /// `None` after a failure: the next write reopens the file.
    out: Option<BufWriter<File>>,
    /// Bytes in the current file, counting what is still buffered.
    size: u64,
    /// Last formatted timestamp, keyed by its value in milliseconds.
    stamp: Option<(i128, String)>,
    /// The last line is written without its newline (`write_partial_buffered`): the next
    /// text continues it.
    line_open: bool,
}

impl LogFile {
    /// Open (append) the log file at `path`, creating directories as needed.
    pub fn open(path: &Path, policy: LogPolicy) -> Result<LogFile, LogError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| LogError::io(dir, e))?;
        }
        cleanup(path)?;
        let mut log = LogFile {
            path: path.to_path_buf(),
            policy,
            out: None,
            size: 0,
            stamp: None,
            line_open: false,
        };
        log.reopen()?;
        Ok(log)
    }

    /// Path of the current file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes in the current file (including buffered ones).
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Append one line (without its newline) stamped with `ts`; rotates first when full.
    pub fn write_line(&mut self, ts: SystemTime, line: &[u8]) -> Result<(), LogError> {
        self.write_lines(ts, &[line])
    }

    /// Append lines stamped with `ts`, then flush once; rotates whenever a line would not fit.
    ///
    /// A trailing `\n` on a line is dropped; a `\n` inside a line starts a new stamped line,
    /// so every line on disk carries a timestamp. On error the lines of this batch not yet
    /// flushed are dropped and the next call reopens the file.
    pub fn write_lines(&mut self, ts: SystemTime, lines: &[&[u8]]) -> Result<(), LogError> {
        let stamp = self.stamp_for(ts);
        let result = self.write_batch(stamp.as_bytes(), lines);
        if result.is_err() {
            self.discard();
        }
        result
    }

    /// Append one line stamped with `ts` without flushing: consecutive lines share one
    /// `write(2)` when the buffer fills or at the next `flush`. Same splitting and error
    /// handling as `write_lines`.
    pub fn write_line_buffered(&mut self, ts: SystemTime, line: &[u8]) -> Result<(), LogError> {
        let stamp = self.stamp_for(ts);
        let result = self.append_line(stamp.as_bytes(), line);
        if result.is_err() {
            self.discard();
        }
        result
    }

    /// Write the start of a line (stamped with `ts` when no line is open) without ending it:
    /// the next `write_partial_buffered` or line continues it, under its first timestamp.
    /// Output read from a service is on disk when read, even before its newline arrives.
    /// `text` must not contain a newline.
    pub fn write_partial_buffered(&mut self, ts: SystemTime, text: &[u8]) -> Result<(), LogError> {
        if text.is_empty() {
            return Ok(());
        }
        let stamp = self.stamp_for(ts);
        let result = self.append_open(stamp.as_bytes(), text);
        if result.is_err() {
            self.discard();
        }
        result
    }

    /// True while a line started by `write_partial_buffered` waits for its end.
    pub fn line_open(&self) -> bool {
        self.line_open
    }

    /// Write buffered data to the file.
    pub fn flush(&mut self) -> Result<(), LogError> {
        let Some(out) = self.out.as_mut() else {
            return Ok(());
        };
        if let Err(e) = out.flush() {
            self.discard();
            return Err(LogError::io(&self.path, e));
        }
        Ok(())
    }

    /// Rotate now, whatever the size of the current file.
    pub fn rotate(&mut self) -> Result<(), LogError> {
        let result = self.rotate_inner();
        if result.is_err() {
            self.discard();
        }
        result
    }

    fn write_batch(&mut self, stamp: &[u8], lines: &[&[u8]]) -> Result<(), LogError> {
        for line in lines {
            self.append_line(stamp, line)?;
        }
        self.flush()
    }

    fn append_line(&mut self, stamp: &[u8], line: &[u8]) -> Result<(), LogError> {
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        for piece in line.split(|&b| b == b'\n') {
            self.append(stamp, piece)?;
        }
        Ok(())
    }

    /// Start (or continue) a line without its newline.
    fn append_open(&mut self, stamp: &[u8], text: &[u8]) -> Result<(), LogError> {
        if self.out.is_none() {
            self.reopen()?;
        }
        let head = if self.line_open {
            0
        } else {
            let len = (stamp.len() + 1 + text.len() + 1) as u64;
            if self.size > 0 && self.size.saturating_add(len) > self.policy.max_size {
                self.rotate_inner()?;
            }
            stamp.len() + 1
        };
        let out = match self.out.as_mut() {
            Some(out) => out,
            None => return Err(LogError::io(&self.path, io::ErrorKind::NotFound.into())),
        };
        let written = if head > 0 {
            out.write_all(stamp).and_then(|()| out.write_all(b" "))
        } else {
            Ok(())
        }
        .and_then(|()| out.write_all(text));
        written.map_err(|e| LogError::io(&self.path, e))?;
        self.line_open = true;
        self.size += (head + text.len()) as u64;
        Ok(())
    }

    fn append(&mut self, stamp: &[u8], text: &[u8]) -> Result<(), LogError> {
        if self.line_open && self.out.is_some() {
            // The end of a line already started: no stamp, and no rotation inside a line.
            let out = match self.out.as_mut() {
                Some(out) => out,
                None => return Err(LogError::io(&self.path, io::ErrorKind::NotFound.into())),
            };
            let written = out.write_all(text).and_then(|()| out.write_all(b"\n"));
            written.map_err(|e| LogError::io(&self.path, e))?;
            self.line_open = false;
            self.size += (text.len() + 1) as u64;
            return Ok(());
        }
        let len = (stamp.len() + 1 + text.len() + 1) as u64;
        if self.out.is_none() {
            self.reopen()?;
        }
        if self.size > 0 && self.size.saturating_add(len) > self.policy.max_size {
            self.rotate_inner()?;
        }
        let out = match self.out.as_mut() {
            Some(out) => out,
            None => return Err(LogError::io(&self.path, io::ErrorKind::NotFound.into())),
        };
        let written = out
            .write_all(stamp)
            .and_then(|()| out.write_all(b" "))
            .and_then(|()| out.write_all(text))
            .and_then(|()| out.write_all(b"\n"));
        written.map_err(|e| LogError::io(&self.path, e))?;
        self.size += len;
        Ok(())
    }

    fn stamp_for(&mut self, ts: SystemTime) -> String {
        let millis = match ts.duration_since(SystemTime::UNIX_EPOCH) {
            Ok(d) => d.as_millis() as i128,
            Err(e) => -(e.duration().as_millis() as i128) - 1,
        };
        match &self.stamp {
            Some((m, s)) if *m == millis => s.clone(),
            _ => {
                let s = format_timestamp(ts);
                self.stamp = Some((millis, s.clone()));
                s
            }
        }
    }

    /// Open the current file for appending and learn its size.
    fn reopen(&mut self) -> Result<(), LogError> {
        // Never through a symbolic link, never a second name of another file: the log
        // directory may be the services' user's (`--drop-privileges`).
        let file = open_in(&self.path, Access::ReadAppend, Create::IfMissing(0o666))
            .map_err(|e| LogError::io(&self.path, e))?;
        let size = file
            .metadata()
            .map_err(|e| LogError::io(&self.path, e))?
            .len();
        let mut size = size;
        if size > 0 {
            // A failed write may have left half a line: end it so the next line stays whole.
            let mut last = [0u8; 1];
            file.read_exact_at(&mut last, size - 1)
                .map_err(|e| LogError::io(&self.path, e))?;
            if last[0] != b'\n' {
                (&file)
                    .write_all(b"\n")
                    .map_err(|e| LogError::io(&self.path, e))?;
                size += 1;
            }
        }
        self.out = Some(BufWriter::with_capacity(BUF_SIZE, file));
        self.size = size;
        self.line_open = false;
        Ok(())
    }

    /// Drop the file and whatever is buffered for it, without writing.
    fn discard(&mut self) {
        self.line_open = false;
        if let Some(out) = self.out.take() {
            let (_file, _unwritten) = out.into_parts();
        }
    }

    fn rotate_inner(&mut self) -> Result<(), LogError> {
        if let Some(mut out) = self.out.take() {
            out.flush().map_err(|e| LogError::io(&self.path, e))?;
        }
        shift_rotated(&self.path, self.policy.max_files)?;
        self.reopen()?;
        if self.policy.compress && self.policy.max_files > 0 {
            let first = rotated_path(&self.path, 1, false);
            if let Err(e) = compress(&first) {
                // The rotated file stays readable uncompressed; losing lines would be worse.
                tracing::warn!("could not compress rotated log: {e}");
            }
        }
        Ok(())
    }
}

/// Move the file at `path` to `<path>.1` (and each `.N` to `.N+1`, dropping those past
/// `max_files`); with `max_files` 0 it is removed. The caller opens a new file at `path`.
pub(crate) fn shift_rotated(path: &Path, max_files: u32) -> Result<(), LogError> {
    if max_files == 0 {
        return remove_if_exists(path);
    }
    // Oldest first, so every rename lands on a free name and a crash leaves at most a gap in
    // the numbering, never a lost or overwritten file.
    for r in list_rotated(path)?.iter().rev() {
        if r.index >= max_files {
            remove_if_exists(&r.path)?;
        } else {
            let to = rotated_path(path, r.index + 1, r.compressed);
            std::fs::rename(&r.path, &to).map_err(|e| LogError::io(&r.path, e))?;
        }
    }
    let first = rotated_path(path, 1, false);
    match std::fs::rename(path, &first) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(LogError::io(path, e)),
    }
}

/// Gzip `src` to `src.gz` through a temporary file, then remove `src`.
fn compress(src: &Path) -> Result<(), LogError> {
    let mut gz = src.as_os_str().to_os_string();
    gz.push(".gz");
    let gz = PathBuf::from(gz);
    let mut tmp = gz.as_os_str().to_os_string();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let result = compress_to(src, &tmp);
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    std::fs::rename(&tmp, &gz).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        LogError::io(&tmp, e)
    })?;
    remove_if_exists(src)
}

fn compress_to(src: &Path, tmp: &Path) -> Result<(), LogError> {
    let input = open_in(src, Access::Read, Create::No).map_err(|e| LogError::io(src, e))?;
    // A fresh file: whatever is at the temporary name (a leftover, or a planted link) goes.
    remove_if_exists(tmp)?;
    let output =
        open_in(tmp, Access::Write, Create::New(0o666)).map_err(|e| LogError::io(tmp, e))?;
    let mut input = input;
    let mut enc = GzEncoder::new(
        BufWriter::with_capacity(BUF_SIZE, output),
        Compression::fast(),
    );
    io::copy(&mut input, &mut enc).map_err(|e| LogError::io(tmp, e))?;
    let buffered = enc.finish().map_err(|e| LogError::io(tmp, e))?;
    let file = buffered
        .into_inner()
        .map_err(|e| LogError::io(tmp, e.into_error()))?;
    // Durable before the rename makes it replace the plain file.
    file.sync_all().map_err(|e| LogError::io(tmp, e))
}

/// Remove leftovers of an interrupted rotation: temporary `.gz.tmp` files, and plain
/// files whose compressed copy was completed.
fn cleanup(path: &Path) -> Result<(), LogError> {
    let (dir, base) = split_path(path);
    let mut prefix = base;
    prefix.push(".");
    let prefix = prefix.as_encoded_bytes().to_vec();
    if let Ok(entries) = std::fs::read_dir(&dir) {
        for entry in entries.flatten() {
            let name = entry.file_name();
            let bytes = name.as_encoded_bytes();
            if bytes.starts_with(&prefix) && bytes.ends_with(b".gz.tmp") {
                remove_if_exists(&dir.join(&name))?;
            }
        }
    }
    let rotated = list_rotated(path)?;
    for pair in rotated.windows(2) {
        if pair[0].index == pair[1].index && !pair[0].compressed && pair[1].compressed {
            remove_if_exists(&pair[0].path)?;
        }
    }
    Ok(())
}

fn remove_if_exists(path: &Path) -> Result<(), LogError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(LogError::io(path, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logs::parse_line;
    use std::time::{Duration, UNIX_EPOCH};

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    fn ts() -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(1_795_305_599_123)
    }

    fn policy(max_size: u64, max_files: u32, compress: bool) -> LogPolicy {
        LogPolicy {
            max_size,
            max_files,
            compress,
        }
    }

    /// 24-byte stamp + space + 4 bytes + newline.
    const LINE: u64 = 30;

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }

    fn read(path: &Path) -> String {
        std::fs::read_to_string(path).unwrap_or_default()
    }

    #[test]
    fn writes_stamped_lines_and_raw_bytes() -> TestResult {
        let dir = tempfile::tempdir()?;
        let p = dir.path().join("sub/dir/u.stdout.log");
        let mut log = LogFile::open(&p, LogPolicy::default())?;
        log.write_line(ts(), b"hello")?;
        log.write_lines(ts(), &[b"a", b"b\n", b"c\nd", b""])?;
        log.write_line(ts(), b"\xff\xfe bad utf8")?;
        let data = std::fs::read(&p)?;
        let s = "2026-11-21T23:59:59.123Z";
        let mut want = Vec::new();
        for l in ["hello", "a", "b", "c", "d", ""] {
            want.extend_from_slice(format!("{s} {l}\n").as_bytes());
        }
        want.extend_from_slice(format!("{s} ").as_bytes());
        want.extend_from_slice(b"\xff\xfe bad utf8\n");
        assert_eq!(data, want);
        assert_eq!(log.size(), want.len() as u64);
        let text = String::from_utf8_lossy(&data);
        for line in text.lines() {
            assert!(parse_line(line).is_some(), "{line}");
        }
        Ok(())
    }

    #[test]
    fn a_partial_line_is_on_disk_at_once_and_continued_under_its_first_stamp() -> TestResult {
        let dir = tempfile::tempdir()?;
        let p = dir.path().join("u.stdout.log");
        let later = ts() + Duration::from_secs(1);
        let mut log = LogFile::open(&p, LogPolicy::default())?;
        log.write_partial_buffered(ts(), b"par")?;
        log.flush()?;
        assert_eq!(read(&p), "2026-11-21T23:59:59.123Z par");
        log.write_partial_buffered(later, b"ti")?;
        log.write_line_buffered(later, b"al")?;
        log.write_line_buffered(later, b"next")?;
        log.flush()?;
        assert!(!log.line_open());
        assert_eq!(
            read(&p),
            "2026-11-21T23:59:59.123Z partial\n2026-11-22T00:00:00.123Z next\n"
        );
        assert_eq!(log.size(), read(&p).len() as u64);
        // A supervisor killed with the line open: the next one ends it and goes on.
        log.write_partial_buffered(ts(), b"cut")?;
        log.flush()?;
        drop(log);
        let mut log = LogFile::open(&p, LogPolicy::default())?;
        log.write_line(ts(), b"after")?;
        assert!(read(&p)
            .ends_with(" next\n2026-11-21T23:59:59.123Z cut\n2026-11-21T23:59:59.123Z after\n"));
        Ok(())
    }

    #[test]
    fn size_is_taken_from_existing_file_and_half_lines_are_ended() -> TestResult {
        let dir = tempfile::tempdir()?;
        let p = dir.path().join("u.stdout.log");
        std::fs::write(&p, b"partial")?;
        let mut log = LogFile::open(&p, LogPolicy::default())?;
        assert_eq!(log.size(), 8);
        log.write_line(ts(), b"next")?;
        assert_eq!(read(&p), "partial\n2026-11-21T23:59:59.123Z next\n");
        Ok(())
    }

    #[test]
    fn rotation_at_exact_size_max_files_3() -> TestResult {
        let dir = tempfile::tempdir()?;
        let p = dir.path().join("u.stdout.log");
        let mut log = LogFile::open(&p, policy(2 * LINE, 3, false))?;
        log.write_line(ts(), b"l001")?;
        log.write_line(ts(), b"l002")?;
        // Exactly full: no rotation yet.
        assert_eq!(names(dir.path()), vec!["u.stdout.log"]);
        assert_eq!(log.size(), 2 * LINE);
        log.write_line(ts(), b"l003")?;
        assert_eq!(names(dir.path()), vec!["u.stdout.log", "u.stdout.log.1"]);
        assert_eq!(log.size(), LINE);
        for i in 4..=12 {
            log.write_line(ts(), format!("l{i:03}").as_bytes())?;
        }
        // 12 lines, 2 per file: current holds 11-12, .1 9-10, .2 7-8, .3 5-6.
        assert_eq!(
            names(dir.path()),
            vec![
                "u.stdout.log",
                "u.stdout.log.1",
                "u.stdout.log.2",
                "u.stdout.log.3"
            ]
        );
        assert!(read(&p).contains("l011") && read(&p).contains("l012"));
        let r1 = read(&rotated_path(&p, 1, false));
        assert!(r1.contains("l009") && r1.contains("l010"));
        let r3 = read(&rotated_path(&p, 3, false));
        assert!(r3.contains("l005") && r3.contains("l006"));
        assert_eq!(r3.len() as u64, 2 * LINE);
        Ok(())
    }

    #[test]
    fn rotation_with_max_files_1() -> TestResult {
        let dir = tempfile::tempdir()?;
        let p = dir.path().join("u.stdout.log");
        let mut log = LogFile::open(&p, policy(LINE, 1, false))?;
        for i in 1..=5 {
            log.write_line(ts(), format!("l{i:03}").as_bytes())?;
        }
        assert_eq!(names(dir.path()), vec!["u.stdout.log", "u.stdout.log.1"]);
        assert!(read(&p).contains("l005"));
        assert!(read(&rotated_path(&p, 1, false)).contains("l004"));
        Ok(())
    }

    #[test]
    fn rotation_with_max_files_0_truncates() -> TestResult {
        let dir = tempfile::tempdir()?;
        let p = dir.path().join("u.stdout.log");
        let mut log = LogFile::open(&p, policy(2 * LINE, 0, false))?;
        for i in 1..=5 {
            log.write_line(ts(), format!("l{i:03}").as_bytes())?;
        }
        assert_eq!(names(dir.path()), vec!["u.stdout.log"]);
        assert_eq!(read(&p), "2026-11-21T23:59:59.123Z l005\n");
        Ok(())
    }

    #[test]
    fn oversized_line_is_written_whole() -> TestResult {
        let dir = tempfile::tempdir()?;
        let p = dir.path().join("u.stdout.log");
        let mut log = LogFile::open(&p, policy(10, 2, false))?;
        log.write_line(ts(), &[b'x'; 100])?;
        log.write_line(ts(), &[b'y'; 100])?;
        assert_eq!(names(dir.path()), vec!["u.stdout.log", "u.stdout.log.1"]);
        assert_eq!(log.size(), 126);
        Ok(())
    }

    #[test]
    fn batch_rotates_in_the_middle() -> TestResult {
        let dir = tempfile::tempdir()?;
        let p = dir.path().join("u.stdout.log");
        let mut log = LogFile::open(&p, policy(2 * LINE, 5, false))?;
        log.write_lines(ts(), &[b"l001", b"l002", b"l003", b"l004", b"l005"])?;
        assert_eq!(read(&rotated_path(&p, 2, false)).lines().count(), 2);
        assert_eq!(read(&rotated_path(&p, 1, false)).lines().count(), 2);
        assert_eq!(read(&p).lines().count(), 1);
        Ok(())
    }

    #[test]
    fn buffered_lines_reach_the_file_on_flush_and_still_rotate() -> TestResult {
        let dir = tempfile::tempdir()?;
        let p = dir.path().join("u.stdout.log");
        let mut log = LogFile::open(&p, policy(3 * LINE, 2, false))?;
        log.write_line_buffered(ts(), b"l001")?;
        log.write_line_buffered(ts(), b"l002\nl003")?;
        // Nothing written yet: the lines wait in the buffer for one write.
        assert_eq!(std::fs::metadata(&p)?.len(), 0);
        assert_eq!(log.size(), 3 * LINE);
        log.flush()?;
        assert_eq!(read(&p).lines().count(), 3);
        // A line that does not fit rotates first, flushing what was buffered into `.1`.
        log.write_line_buffered(ts(), b"l004")?;
        log.flush()?;
        let r1 = read(&rotated_path(&p, 1, false));
        assert!(r1.contains("l001") && r1.contains("l003"), "{r1}");
        assert_eq!(read(&p), "2026-11-21T23:59:59.123Z l004\n");
        Ok(())
    }

    #[test]
    fn compressed_rotation_names_and_content() -> TestResult {
        let dir = tempfile::tempdir()?;
        let p = dir.path().join("u.stderr.log");
        let mut log = LogFile::open(&p, policy(2 * LINE, 2, true))?;
        for i in 1..=7 {
            log.write_line(ts(), format!("l{i:03}").as_bytes())?;
        }
        assert_eq!(
            names(dir.path()),
            vec!["u.stderr.log", "u.stderr.log.1.gz", "u.stderr.log.2.gz"]
        );
        let gz = File::open(rotated_path(&p, 1, true))?;
        let mut s = String::new();
        io::Read::read_to_string(&mut flate2::read::GzDecoder::new(gz), &mut s)?;
        assert_eq!(
            s,
            "2026-11-21T23:59:59.123Z l005\n2026-11-21T23:59:59.123Z l006\n"
        );
        Ok(())
    }

    #[test]
    fn open_cleans_up_an_interrupted_compression() -> TestResult {
        let dir = tempfile::tempdir()?;
        let p = dir.path().join("u.stdout.log");
        std::fs::write(rotated_path(&p, 1, false), b"plain\n")?;
        std::fs::write(dir.path().join("u.stdout.log.1.gz.tmp"), b"half")?;
        std::fs::write(rotated_path(&p, 2, false), b"two\n")?;
        std::fs::write(rotated_path(&p, 2, true), b"gz")?;
        let _log = LogFile::open(&p, policy(100, 3, true))?;
        // The half-written .gz is gone, the good plain .1 stays; .2 is kept once (as .gz).
        assert_eq!(
            names(dir.path()),
            vec!["u.stdout.log", "u.stdout.log.1", "u.stdout.log.2.gz"]
        );
        assert_eq!(read(&rotated_path(&p, 1, false)), "plain\n");
        Ok(())
    }

    #[test]
    fn write_error_is_returned_and_writer_recovers() -> TestResult {
        let dir = tempfile::tempdir()?;
        let logs = dir.path().join("logs");
        let p = logs.join("u.stdout.log");
        let mut log = LogFile::open(&p, policy(LINE, 2, false))?;
        log.write_line(ts(), b"l001")?;
        // Replace the directory by a file: rotation (and reopening) fail with ENOTDIR/ENOENT.
        std::fs::rename(&logs, dir.path().join("moved"))?;
        std::fs::write(&logs, b"not a directory")?;
        assert!(log.write_line(ts(), b"l002").is_err());
        let err = log.write_line(ts(), b"l003");
        assert!(matches!(err, Err(LogError::Io { .. })));
        // Put a directory back: the next write reopens and succeeds.
        std::fs::remove_file(&logs)?;
        std::fs::create_dir(&logs)?;
        log.write_line(ts(), b"l004")?;
        assert_eq!(read(&p), "2026-11-21T23:59:59.123Z l004\n");
        Ok(())
    }

    #[test]
    fn open_under_a_file_fails() -> TestResult {
        let dir = tempfile::tempdir()?;
        let file = dir.path().join("file");
        std::fs::write(&file, b"x")?;
        let err = LogFile::open(&file.join("u.stdout.log"), LogPolicy::default());
        assert!(matches!(err, Err(LogError::Io { .. })));
        Ok(())
    }

    #[test]
    fn disk_full_is_an_error_not_a_panic() -> TestResult {
        let full = Path::new("/dev/full");
        if !full.exists() {
            return Ok(());
        }
        // A device is never opened as a log; put one under an open log to fill the disk.
        assert!(LogFile::open(full, LogPolicy::default()).is_err());
        let dir = tempfile::tempdir()?;
        let p = dir.path().join("u.stdout.log");
        let mut log = LogFile::open(&p, LogPolicy::default())?;
        log.out = Some(BufWriter::new(
            std::fs::OpenOptions::new().write(true).open(full)?,
        ));
        assert!(log.write_line(ts(), b"x").is_err());
        // The next write reopens the file.
        log.write_line(ts(), b"y")?;
        assert!(std::fs::read_to_string(&p)?.ends_with(" y\n"));
        Ok(())
    }

    #[test]
    fn links_and_second_names_are_never_written_through() -> TestResult {
        let dir = tempfile::tempdir()?;
        let victim = dir.path().join("victim");
        std::fs::write(&victim, b"secret\n")?;
        let p = dir.path().join("u.stdout.log");
        std::os::unix::fs::symlink(&victim, &p)?;
        let e = LogFile::open(&p, LogPolicy::default())
            .err()
            .map(|e| e.to_string());
        assert!(
            e.as_deref().is_some_and(|e| e.contains("symbolic link")),
            "{e:?}"
        );
        std::fs::remove_file(&p)?;
        std::fs::hard_link(&victim, &p)?;
        assert!(LogFile::open(&p, LogPolicy::default()).is_err());
        // Rotation with compression: a link planted at the temporary name is replaced.
        std::fs::remove_file(&p)?;
        let mut log = LogFile::open(&p, policy(LINE, 2, true))?;
        std::os::unix::fs::symlink(&victim, dir.path().join("u.stdout.log.1.gz.tmp"))?;
        for i in 0..4 {
            log.write_line(ts(), format!("line {i:03}").as_bytes())?;
        }
        assert_eq!(std::fs::read(&victim)?, b"secret\n");
        assert!(rotated_path(&p, 1, true).exists());
        Ok(())
    }
}
