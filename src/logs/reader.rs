//! Reading the end of a log back, across rotated and compressed files.

use crate::os::fs::{open_in, Access, Create};
use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::os::unix::fs::FileExt;
use std::path::Path;

use chrono::{DateTime, Utc};
use flate2::read::MultiGzDecoder;

use super::format::line_time;
use super::when::Window;
use super::{list_rotated, log_path, Kind, LogError, Rotated};

/// Bytes read backwards at a time from a plain file.
const CHUNK: u64 = 64 * 1024;

/// What a tail read from disk; lets tests check that the end is read, not the whole file.
#[derive(Debug, Default)]
pub(crate) struct ReadStats {
    pub bytes: u64,
}

/// The last `lines` lines of a unit's log, oldest first, across the current and rotated files.
///
/// Lines are returned as stored (timestamp included, see [`super::parse_line`]), with invalid
/// UTF-8 replaced. A log that does not exist gives an empty result.
pub fn tail(log_dir: &Path, unit: &str, kind: Kind, lines: usize) -> Result<Vec<String>, LogError> {
    tail_path(
        &log_path(log_dir, unit, kind),
        lines,
        &mut ReadStats::default(),
    )
}

/// A stored line with the time it sorts at.
type Keyed = (DateTime<Utc>, String);

/// The last `lines` lines of several streams of a unit, merged by timestamp (oldest first).
///
/// Lines with equal timestamps keep the order of `kinds`; a line without a valid stamp sorts
/// with the line before it in its own stream.
pub fn tail_merged(
    log_dir: &Path,
    unit: &str,
    kinds: &[Kind],
    lines: usize,
) -> Result<Vec<(Kind, String)>, LogError> {
    let mut streams: Vec<(Kind, Vec<Keyed>)> = Vec::new();
    for &kind in kinds {
        if streams.iter().any(|(k, _)| *k == kind) {
            continue;
        }
        let mut last = DateTime::<Utc>::MIN_UTC;
        let keyed = tail(log_dir, unit, kind, lines)?
            .into_iter()
            .map(|line| {
                if let Some(ts) = line_time(&line) {
                    last = ts;
                }
                (last, line)
            })
            .collect();
        streams.push((kind, keyed));
    }
    let mut merged = merge(streams);
    let skip = merged.len().saturating_sub(lines);
    merged.drain(..skip);
    Ok(merged)
}

/// The lines of several streams of a unit stamped within `window`, merged by timestamp (oldest
/// first), the last `lines` of them when given. Rotated and compressed files are read back as
/// far as the window reaches; a line without a valid stamp goes with the line before it.
pub fn window_merged(
    log_dir: &Path,
    unit: &str,
    kinds: &[Kind],
    window: &Window,
    lines: Option<usize>,
) -> Result<Vec<(Kind, String)>, LogError> {
    let mut streams: Vec<(Kind, Vec<Keyed>)> = Vec::new();
    for &kind in kinds {
        if streams.iter().any(|(k, _)| *k == kind) {
            continue;
        }
        let mut last = DateTime::<Utc>::MIN_UTC;
        let keyed = read_back_to(&log_path(log_dir, unit, kind), window.since)?
            .into_iter()
            .filter_map(|line| {
                if let Some(ts) = line_time(&line) {
                    last = ts;
                }
                window.contains(last).then_some((last, line))
            })
            .collect();
        streams.push((kind, keyed));
    }
    let mut merged = merge(streams);
    if let Some(n) = lines {
        let skip = merged.len().saturating_sub(n);
        merged.drain(..skip);
    }
    Ok(merged)
}

/// Merge streams each in time order into one, ties in the order of `streams`.
fn merge(streams: Vec<(Kind, Vec<Keyed>)>) -> Vec<(Kind, String)> {
    let total: usize = streams.iter().map(|(_, v)| v.len()).sum();
    let mut merged = Vec::with_capacity(total);
    let mut iters: Vec<_> = streams
        .into_iter()
        .map(|(kind, v)| (kind, v.into_iter().peekable()))
        .collect();
    loop {
        let mut best: Option<(usize, DateTime<Utc>)> = None;
        for (i, (_, it)) in iters.iter_mut().enumerate() {
            if let Some((ts, _)) = it.peek() {
                if best.is_none_or(|(_, b)| *ts < b) {
                    best = Some((i, *ts));
                }
            }
        }
        let Some((i, _)) = best else { break };
        let (kind, it) = &mut iters[i];
        if let Some((_, line)) = it.next() {
            merged.push((*kind, line));
        }
    }
    merged
}

/// Every line of the log file at `path` and of as many of its rotated files as hold lines
/// from `since` on (all of them without it), oldest first. Files are in time order, so the
/// first file whose first stamped line is older than `since` is the last one read.
fn read_back_to(path: &Path, since: Option<DateTime<Utc>>) -> Result<Vec<String>, LogError> {
    let reaches_back = |part: &[String]| {
        since.is_some_and(|s| {
            part.iter()
                .find_map(|l| line_time(l))
                .is_some_and(|t| t < s)
        })
    };
    let current = read_whole(path, false)?;
    let mut done = reaches_back(&current);
    let mut parts = vec![current];
    if !done {
        for r in distinct(list_rotated(path)?) {
            let part = read_whole(&r.path, r.compressed)?;
            done = reaches_back(&part);
            parts.push(part);
            if done {
                break;
            }
        }
    }
    Ok(parts.into_iter().rev().flatten().collect())
}

/// All lines of one (possibly gzip-compressed) log file; a missing file has none.
fn read_whole(path: &Path, compressed: bool) -> Result<Vec<String>, LogError> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(LogError::io(path, e)),
    };
    let mut data = Vec::new();
    let read = if compressed {
        io::Read::read_to_end(&mut MultiGzDecoder::new(BufReader::new(file)), &mut data)
    } else {
        io::Read::read_to_end(&mut BufReader::new(file), &mut data)
    };
    read.map_err(|e| LogError::io(path, e))?;
    if data.is_empty() {
        return Ok(Vec::new());
    }
    let body = data.strip_suffix(b"\n").unwrap_or(&data);
    Ok(body
        .split(|&b| b == b'\n')
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .collect())
}

/// The last `n` lines of the log file at `path` and its rotated files, oldest first.
pub(crate) fn tail_path(
    path: &Path,
    n: usize,
    stats: &mut ReadStats,
) -> Result<Vec<String>, LogError> {
    if n == 0 {
        return Ok(Vec::new());
    }
    // Newest file first; each part is in chronological order.
    let mut parts: Vec<Vec<String>> = Vec::new();
    let mut need = n;
    let current = tail_plain(path, need, stats)?;
    need -= current.len();
    parts.push(current);
    if need > 0 {
        for r in distinct(list_rotated(path)?) {
            let got = if r.compressed {
                tail_gz(&r.path, need, stats)?
            } else {
                tail_plain(&r.path, need, stats)?
            };
            need -= got.len();
            parts.push(got);
            if need == 0 {
                break;
            }
        }
    }
    Ok(parts.into_iter().rev().flatten().collect())
}

/// One file per index, preferring the plain file when an interrupted compression left both.
fn distinct(rotated: Vec<Rotated>) -> Vec<Rotated> {
    let mut out: Vec<Rotated> = Vec::with_capacity(rotated.len());
    for r in rotated {
        if out.last().is_some_and(|l| l.index == r.index) {
            continue;
        }
        out.push(r);
    }
    out
}

/// The last `need` lines of a plain file, read backwards in chunks.
fn tail_plain(path: &Path, need: usize, stats: &mut ReadStats) -> Result<Vec<String>, LogError> {
    let file = match open_in(path, Access::Read, Create::No) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(LogError::io(path, e)),
    };
    let len = file.metadata().map_err(|e| LogError::io(path, e))?.len();
    if len == 0 || need == 0 {
        return Ok(Vec::new());
    }
    let mut pos = len;
    let mut chunks: Vec<Vec<u8>> = Vec::new();
    let mut newlines = 0usize;
    while pos > 0 {
        let size = CHUNK.min(pos);
        pos -= size;
        let mut buf = vec![0u8; size as usize];
        // The fd keeps the file even if it is rotated meanwhile; only a truncation can cut it.
        read_at_most(&file, &mut buf, pos).map_err(|e| LogError::io(path, e))?;
        stats.bytes += size;
        let mut count = buf.iter().filter(|&&b| b == b'\n').count();
        if chunks.is_empty() && buf.last() == Some(&b'\n') {
            count -= 1;
        }
        newlines += count;
        chunks.push(buf);
        // `newlines` separators mean at least that many whole lines after the first one.
        if newlines >= need {
            break;
        }
    }
    let data: Vec<u8> = chunks.into_iter().rev().flatten().collect();
    let body = data.strip_suffix(b"\n").unwrap_or(&data);
    let mut pieces: Vec<&[u8]> = body.split(|&b| b == b'\n').collect();
    if pos > 0 && !pieces.is_empty() {
        pieces.remove(0);
    }
    let skip = pieces.len().saturating_sub(need);
    Ok(pieces[skip..]
        .iter()
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .collect())
}

/// Fill `buf` from `offset`, retrying short reads; a file that shrank is an error.
fn read_at_most(file: &File, buf: &mut [u8], offset: u64) -> io::Result<()> {
    let mut done = 0;
    while done < buf.len() {
        match file.read_at(&mut buf[done..], offset + done as u64) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The last `need` lines of a gzip file: it has to be decompressed from the start.
fn tail_gz(path: &Path, need: usize, stats: &mut ReadStats) -> Result<Vec<String>, LogError> {
    let file = match open_in(path, Access::Read, Create::No) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(LogError::io(path, e)),
    };
    stats.bytes += file.metadata().map_err(|e| LogError::io(path, e))?.len();
    let mut reader = BufReader::new(MultiGzDecoder::new(BufReader::new(file)));
    let mut last: VecDeque<Vec<u8>> = VecDeque::with_capacity(need.min(4096) + 1);
    loop {
        let mut line = Vec::new();
        let n = reader
            .read_until(b'\n', &mut line)
            .map_err(|e| LogError::io(path, e))?;
        if n == 0 {
            break;
        }
        if line.last() == Some(&b'\n') {
            line.pop();
        }
        if last.len() == need {
            last.pop_front();
        }
        last.push_back(line);
    }
    Ok(last
        .into_iter()
        .map(|l| String::from_utf8_lossy(&l).into_owned())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::schema::LogPolicy;
    use crate::logs::{parse_line, rotated_path, LogFile};
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    fn at(ms: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(1_795_305_599_000 + ms)
    }

    fn texts(lines: &[String]) -> Vec<String> {
        lines
            .iter()
            .map(|l| {
                parse_line(l)
                    .map(|(_, t)| t.to_string())
                    .unwrap_or_default()
            })
            .collect()
    }

    fn numbered(range: std::ops::RangeInclusive<u32>) -> Vec<String> {
        range.map(|i| format!("line {i:05}")).collect()
    }

    fn write_numbered(dir: &Path, policy: LogPolicy, count: u32) -> Result<(), LogError> {
        let mut log = LogFile::open(&log_path(dir, "svc", Kind::Stdout), policy)?;
        for i in 1..=count {
            log.write_line(at(u64::from(i)), format!("line {i:05}").as_bytes())?;
        }
        Ok(())
    }

    #[test]
    fn missing_log_is_empty() -> TestResult {
        let dir = tempfile::tempdir()?;
        assert!(tail(dir.path(), "nope", Kind::Stdout, 10)?.is_empty());
        assert!(tail(&dir.path().join("absent"), "nope", Kind::Stderr, 10)?.is_empty());
        assert!(tail_merged(dir.path(), "nope", &[Kind::Stdout, Kind::Stderr], 5)?.is_empty());
        Ok(())
    }

    #[test]
    fn tail_of_one_file() -> TestResult {
        let dir = tempfile::tempdir()?;
        write_numbered(dir.path(), LogPolicy::default(), 20)?;
        let got = tail(dir.path(), "svc", Kind::Stdout, 5)?;
        assert_eq!(texts(&got), numbered(16..=20));
        assert_eq!(got[0], "2026-11-21T23:59:59.016Z line 00016");
        assert_eq!(
            texts(&tail(dir.path(), "svc", Kind::Stdout, 100)?),
            numbered(1..=20)
        );
        assert!(tail(dir.path(), "svc", Kind::Stdout, 0)?.is_empty());
        Ok(())
    }

    #[test]
    fn tail_across_rotated_files_is_exact_and_ordered() -> TestResult {
        let dir = tempfile::tempdir()?;
        // 36-byte lines, 3 per file; 20 lines -> files of 3 lines, current holds 19..20.
        let policy = LogPolicy {
            max_size: 3 * 36,
            max_files: 10,
            compress: false,
        };
        write_numbered(dir.path(), policy, 20)?;
        for n in 1..=20 {
            let got = tail(dir.path(), "svc", Kind::Stdout, n as usize)?;
            assert_eq!(texts(&got), numbered(21 - n..=20), "n = {n}");
        }
        assert_eq!(
            texts(&tail(dir.path(), "svc", Kind::Stdout, 50)?),
            numbered(1..=20)
        );
        Ok(())
    }

    #[test]
    fn tail_reads_gzip_rotated_files() -> TestResult {
        let dir = tempfile::tempdir()?;
        let policy = LogPolicy {
            max_size: 3 * 36,
            max_files: 3,
            compress: true,
        };
        write_numbered(dir.path(), policy, 20)?;
        let p = log_path(dir.path(), "svc", Kind::Stdout);
        assert!(rotated_path(&p, 3, true).exists());
        assert!(!rotated_path(&p, 1, false).exists());
        // Kept: .3 = 10..12, .2 = 13..15, .1 = 16..18, current = 19..20.
        assert_eq!(
            texts(&tail(dir.path(), "svc", Kind::Stdout, 7)?),
            numbered(14..=20)
        );
        assert_eq!(
            texts(&tail(dir.path(), "svc", Kind::Stdout, 100)?),
            numbered(10..=20)
        );
        Ok(())
    }

    #[test]
    fn tail_prefers_plain_file_when_both_exist() -> TestResult {
        let dir = tempfile::tempdir()?;
        let p = log_path(dir.path(), "svc", Kind::Stdout);
        std::fs::write(&p, b"c\n")?;
        std::fs::write(rotated_path(&p, 1, false), b"a\nb\n")?;
        std::fs::write(rotated_path(&p, 1, true), b"not gzip")?;
        assert_eq!(
            tail(dir.path(), "svc", Kind::Stdout, 10)?,
            vec!["a", "b", "c"]
        );
        Ok(())
    }

    #[test]
    fn tail_keeps_an_unterminated_last_line_and_empty_lines() -> TestResult {
        let dir = tempfile::tempdir()?;
        let p = log_path(dir.path(), "svc", Kind::Stdout);
        std::fs::write(&p, b"a\n\nb\nhalf")?;
        assert_eq!(
            tail(dir.path(), "svc", Kind::Stdout, 3)?,
            vec!["", "b", "half"]
        );
        std::fs::write(&p, b"\n")?;
        assert_eq!(tail(dir.path(), "svc", Kind::Stdout, 3)?, vec![""]);
        Ok(())
    }

    #[test]
    fn tail_of_a_big_file_reads_only_its_end() -> TestResult {
        let dir = tempfile::tempdir()?;
        let p = log_path(dir.path(), "svc", Kind::Stdout);
        // 50 MB of 100-byte lines.
        let mut line = vec![b'x'; 99];
        line.push(b'\n');
        let block: Vec<u8> = line.repeat(10_000);
        {
            let mut f = File::create(&p)?;
            for _ in 0..50 {
                io::Write::write_all(&mut f, &block)?;
            }
            io::Write::write_all(&mut f, b"the end\n")?;
        }
        let mut stats = ReadStats::default();
        let got = tail_path(&p, 50, &mut stats)?;
        assert_eq!(got.len(), 50);
        assert_eq!(got[49], "the end");
        assert_eq!(got[0].len(), 99);
        assert!(stats.bytes <= CHUNK, "read {} bytes", stats.bytes);

        // Lines longer than a chunk still come back whole.
        let long = vec![b'y'; 200_000];
        std::fs::write(&p, [b"first\n".as_slice(), &long, b"\nlast\n"].concat())?;
        let mut stats = ReadStats::default();
        let got = tail_path(&p, 2, &mut stats)?;
        assert_eq!(got[0].len(), 200_000);
        assert_eq!(got[1], "last");
        assert!(stats.bytes < 200_000 + 2 * CHUNK);
        Ok(())
    }

    #[test]
    fn merged_tail_interleaves_by_timestamp() -> TestResult {
        let dir = tempfile::tempdir()?;
        let mut out = LogFile::open(
            &log_path(dir.path(), "svc", Kind::Stdout),
            LogPolicy::default(),
        )?;
        let mut err = LogFile::open(
            &log_path(dir.path(), "svc", Kind::Stderr),
            LogPolicy::default(),
        )?;
        out.write_line(at(1), b"o1")?;
        err.write_line(at(2), b"e2")?;
        out.write_line(at(3), b"o3")?;
        out.write_line(at(5), b"o5")?;
        err.write_line(at(4), b"e4")?;
        err.write_line(at(5), b"e5")?;
        let got = tail_merged(dir.path(), "svc", &[Kind::Stdout, Kind::Stderr], 5)?;
        let got: Vec<(Kind, String)> = got
            .into_iter()
            .map(|(k, l)| {
                (
                    k,
                    parse_line(&l)
                        .map(|(_, t)| t.to_string())
                        .unwrap_or_default(),
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                (Kind::Stderr, "e2".to_string()),
                (Kind::Stdout, "o3".to_string()),
                (Kind::Stderr, "e4".to_string()),
                (Kind::Stdout, "o5".to_string()),
                (Kind::Stderr, "e5".to_string()),
            ]
        );
        Ok(())
    }

    fn utc_at(ms: u64) -> DateTime<Utc> {
        DateTime::<Utc>::from(at(ms))
    }

    fn window(since: Option<u64>, until: Option<u64>) -> Window {
        Window {
            since: since.map(utc_at),
            until: until.map(utc_at),
        }
    }

    fn in_window(dir: &Path, w: Window, lines: Option<usize>) -> Result<Vec<String>, LogError> {
        let got = window_merged(dir, "svc", &[Kind::Stdout], &w, lines)?;
        Ok(got
            .into_iter()
            .map(|(_, l)| {
                parse_line(&l)
                    .map(|(_, t)| t.to_string())
                    .unwrap_or(l.clone())
            })
            .collect())
    }

    #[test]
    fn window_reads_back_through_gzip_rotated_files_only_as_far_as_needed() -> TestResult {
        let dir = tempfile::tempdir()?;
        let policy = LogPolicy {
            max_size: 3 * 36,
            max_files: 3,
            compress: true,
        };
        // Line i is stamped at i ms. Kept: .3.gz = 10..12, .2.gz = 13..15, .1.gz = 16..18,
        // current = 19..20.
        write_numbered(dir.path(), policy, 20)?;
        let d = dir.path();
        assert_eq!(
            in_window(d, window(Some(11), None), None)?,
            numbered(11..=20)
        );
        assert_eq!(
            in_window(d, window(Some(14), Some(17)), None)?,
            numbered(14..=17)
        );
        assert_eq!(
            in_window(d, window(None, Some(12)), None)?,
            numbered(10..=12)
        );
        assert_eq!(
            in_window(d, window(Some(19), None), None)?,
            numbered(19..=20)
        );
        assert_eq!(
            in_window(d, window(Some(11), None), Some(3))?,
            numbered(18..=20)
        );
        assert!(in_window(d, window(Some(21), None), None)?.is_empty());
        assert!(in_window(d, window(Some(15), Some(14)), None)?.is_empty());
        assert_eq!(in_window(d, Window::default(), None)?, numbered(10..=20));
        // A file older than the window is not even opened: corrupt .3.gz, ask from 14 on.
        let p = log_path(d, "svc", Kind::Stdout);
        std::fs::write(rotated_path(&p, 3, true), b"not gzip")?;
        assert_eq!(
            in_window(d, window(Some(14), None), None)?,
            numbered(14..=20)
        );
        assert!(in_window(d, window(Some(11), None), None).is_err());
        Ok(())
    }

    #[test]
    fn window_keeps_unstamped_lines_with_the_line_before_and_merges_streams() -> TestResult {
        let dir = tempfile::tempdir()?;
        let p = log_path(dir.path(), "svc", Kind::Stdout);
        let stamp = |ms| crate::logs::format_timestamp(at(ms));
        std::fs::write(&p, format!("{} a\ncontinued\n{} b\n", stamp(1), stamp(5)))?;
        let mut err = LogFile::open(
            &log_path(dir.path(), "svc", Kind::Stderr),
            LogPolicy::default(),
        )?;
        err.write_line(at(3), b"e3")?;
        let got = window_merged(
            dir.path(),
            "svc",
            &[Kind::Stdout, Kind::Stderr],
            &window(Some(1), Some(4)),
            None,
        )?;
        let got: Vec<(Kind, &str)> = got
            .iter()
            .map(|(k, l)| (*k, parse_line(l).map_or(l.as_str(), |(_, t)| t)))
            .collect();
        assert_eq!(
            got,
            [
                (Kind::Stdout, "a"),
                (Kind::Stdout, "continued"),
                (Kind::Stderr, "e3")
            ]
        );
        Ok(())
    }
}
