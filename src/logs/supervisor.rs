//! The supervisor's own log (`supervisor.log`, the daemon's stderr): rate-limited and rotated.
//!
//! A service in a zero-backoff crash loop makes the supervisor say the same few things
//! thousands of times a minute. Each formatted line is keyed by its text without the
//! timestamp and with every number blanked (so `exited (pid 4242)` and `exited (pid 4243)`
//! are one message, per unit since the unit is part of the text); after `BURST` lines of a
//! key in a `WINDOW`, the rest are counted, not written, and one summary line says how many
//! were dropped once the window is over.
//!
//! When stderr is the project's `supervisor.log` (a daemonized supervisor), the file rotates
//! like a service log (the project's top-level `logs:` policy): it is renamed to
//! `supervisor.log.1` and a new file is put in place on stdout and stderr, so that whatever
//! else writes to them follows.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use crate::config::schema::LogPolicy;

/// Lines of one message written per window before the rest are only counted.
pub const BURST: u32 = 10;
/// The rate-limit window.
pub const WINDOW: Duration = Duration::from_secs(10);
/// Messages tracked at once; past this the oldest windows are closed early.
const MAX_KEYS: usize = 512;

/// What to do with one line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Write,
    Drop,
}

struct Window {
    start: Instant,
    written: u32,
    dropped: u64,
}

/// Counts lines per message key in fixed windows. Pure: the caller gives the time.
pub struct RateLimiter {
    burst: u32,
    window: Duration,
    keys: HashMap<String, Window>,
}

impl RateLimiter {
    pub fn new(burst: u32, window: Duration) -> RateLimiter {
        RateLimiter {
            burst,
            window,
            keys: HashMap::new(),
        }
    }

    /// Whether a line with this key is written now.
    pub fn admit(&mut self, key: &str, now: Instant) -> Verdict {
        if let Some(w) = self.keys.get_mut(key) {
            if w.written < self.burst {
                w.written += 1;
                return Verdict::Write;
            }
            w.dropped += 1;
            return Verdict::Drop;
        }
        if self.keys.len() >= MAX_KEYS {
            // Many distinct messages are not a repetition: forget the oldest window (its
            // dropped count, if any, is lost with it only in the extreme case of 512 storms).
            if let Some(oldest) = self
                .keys
                .iter()
                .min_by_key(|(_, w)| w.start)
                .map(|(k, _)| k.clone())
            {
                self.keys.remove(&oldest);
            }
        }
        self.keys.insert(
            key.to_string(),
            Window {
                start: now,
                written: 1,
                dropped: 0,
            },
        );
        Verdict::Write
    }

    /// Close the windows that are over: `(key, lines dropped)` for those that dropped any,
    /// oldest first.
    pub fn expired(&mut self, now: Instant) -> Vec<(String, u64)> {
        let window = self.window;
        let mut over: Vec<(Instant, String, u64)> = Vec::new();
        self.keys.retain(|k, w| {
            if now.saturating_duration_since(w.start) < window {
                return true;
            }
            if w.dropped > 0 {
                over.push((w.start, k.clone(), w.dropped));
            }
            false
        });
        over.sort();
        over.into_iter().map(|(_, k, n)| (k, n)).collect()
    }
}

/// The key of a formatted line: without its leading timestamp, numbers blanked.
pub fn message_key(line: &str) -> String {
    let line = line.trim_end();
    let rest = match line.split_once(' ') {
        Some((first, rest)) if first.starts_with(|c: char| c.is_ascii_digit()) => rest,
        _ => line,
    };
    let mut key = String::with_capacity(rest.len());
    let mut in_number = false;
    for c in rest.trim_start().chars() {
        if c.is_ascii_digit() {
            if !in_number {
                key.push('#');
            }
            in_number = true;
        } else {
            in_number = false;
            key.push(c);
        }
    }
    key
}

/// Rotation of the file behind stderr.
struct Rotation {
    path: PathBuf,
    policy: LogPolicy,
    size: u64,
}

struct Sink {
    limiter: RateLimiter,
    rotation: Option<Rotation>,
}

static SINK: Mutex<Option<Sink>> = Mutex::new(None);

fn with_sink<T>(f: impl FnOnce(&mut Sink) -> T) -> T {
    let mut guard = SINK.lock().unwrap_or_else(|e| e.into_inner());
    let sink = guard.get_or_insert_with(|| Sink {
        limiter: RateLimiter::new(BURST, WINDOW),
        rotation: None,
    });
    f(sink)
}

/// Rotate stderr by `policy` when it is the file at `path` (a daemonized supervisor's
/// `supervisor.log`); otherwise (a terminal, a pipe, the journal) nothing changes.
pub fn attach(path: &Path, policy: LogPolicy) {
    let Ok(err) = io::stderr().as_fd().try_clone_to_owned() else {
        return;
    };
    let Ok(meta) = File::from(err).metadata() else {
        return;
    };
    let Ok(on_disk) = std::fs::symlink_metadata(path) else {
        return;
    };
    if !on_disk.is_file() || (meta.dev(), meta.ino()) != (on_disk.dev(), on_disk.ino()) {
        return;
    }
    with_sink(|s| {
        s.rotation = Some(Rotation {
            path: path.to_path_buf(),
            policy,
            size: meta.len(),
        })
    });
}

/// The writer for tracing: each event is one formatted line, handled when it is complete.
#[derive(Clone, Copy, Default)]
pub struct SupervisorLog;

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for SupervisorLog {
    type Writer = EventLine;

    fn make_writer(&'a self) -> EventLine {
        EventLine(Vec::new())
    }
}

/// One event's formatted text; written (or counted) when dropped.
pub struct EventLine(Vec<u8>);

impl Write for EventLine {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for EventLine {
    fn drop(&mut self) {
        if self.0.is_empty() {
            return;
        }
        let text = std::mem::take(&mut self.0);
        with_sink(|s| s.emit(&text, Instant::now()));
    }
}

impl Sink {
    fn emit(&mut self, text: &[u8], now: Instant) {
        for (key, dropped) in self.limiter.expired(now) {
            let stamp = super::format_timestamp(SystemTime::now());
            let summary = format!(
                "{stamp}  WARN repeated {dropped} more times in the last {}s and not written: {key}\n",
                WINDOW.as_secs()
            );
            self.write(summary.as_bytes());
        }
        let key = message_key(&String::from_utf8_lossy(text));
        if self.limiter.admit(&key, now) == Verdict::Write {
            self.write(text);
        }
    }

    /// Write to stderr; rotate first when the line would not fit. Failures are ignored: the
    /// log is where they would be reported.
    fn write(&mut self, text: &[u8]) {
        if let Some(r) = &mut self.rotation {
            let len = text.len() as u64;
            if r.size > 0 && r.size.saturating_add(len) > r.policy.max_size {
                // On failure, keep writing where we are rather than lose lines; the size
                // starts over so the next attempt comes after another `max_size`.
                let _ = rotate(r);
                r.size = 0;
            }
            r.size = r.size.saturating_add(len);
        }
        let _ = io::stderr().lock().write_all(text);
    }
}

/// Move `supervisor.log` to `.1` (shifting older ones) and put a new file on stdout and
/// stderr.
fn rotate(r: &Rotation) -> Result<(), super::LogError> {
    super::writer::shift_rotated(&r.path, r.policy.max_files)?;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o640)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&r.path)
        .map_err(|e| super::LogError::io(&r.path, e))?;
    let io_err = |e: nix::Error| super::LogError::io(&r.path, e.into());
    nix::unistd::dup2_stdout(file.as_fd()).map_err(io_err)?;
    nix::unistd::dup2_stderr(file.as_fd()).map_err(io_err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_ignore_the_timestamp_and_numbers() {
        let a = message_key(
            "2026-12-05T17:00:21.123456Z  INFO unit=web: exited with code 1 (pid 4242)\n",
        );
        let b = message_key(
            "2026-12-05T17:00:22.000001Z  INFO unit=web: exited with code 1 (pid 77)\n",
        );
        let c =
            message_key("2026-12-05T17:00:22.000001Z  INFO unit=db: exited with code 1 (pid 77)\n");
        assert_eq!(a, "INFO unit=web: exited with code # (pid #)");
        assert_eq!(a, b);
        assert_ne!(a, c, "one key per unit");
        assert_eq!(message_key("sysg: plain"), "sysg: plain");
    }

    #[test]
    fn a_burst_passes_then_repeats_are_counted_and_summarized_once_the_window_ends() {
        let t0 = Instant::now();
        let mut r = RateLimiter::new(3, Duration::from_secs(10));
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let verdicts: Vec<Verdict> = (0..10).map(|i| r.admit("crash web", at(i))).collect();
        assert_eq!(&verdicts[..3], &[Verdict::Write; 3]);
        assert_eq!(&verdicts[3..], &[Verdict::Drop; 7]);
        // Another message has its own budget.
        assert_eq!(r.admit("crash db", at(20)), Verdict::Write);
        assert!(r.expired(at(9_999)).is_empty(), "the window is not over");
        assert_eq!(r.expired(at(10_000)), vec![("crash web".to_string(), 7)]);
        // `crash db` dropped nothing: its window ends without a summary.
        assert!(r.expired(at(10_020)).is_empty());
        // A new window starts with a fresh burst.
        assert_eq!(r.admit("crash web", at(10_030)), Verdict::Write);
    }

    #[test]
    fn distinct_messages_stay_bounded() {
        let t0 = Instant::now();
        let mut r = RateLimiter::new(1, Duration::from_secs(10));
        for i in 0..(MAX_KEYS + 100) {
            assert_eq!(r.admit(&format!("k{i}"), t0), Verdict::Write);
        }
        assert!(r.keys.len() <= MAX_KEYS);
    }
}
