//! Service output: one thread, one epoll over the read ends of every unit's stdout/stderr
//! FIFOs; data is split into lines and written to the unit's log files.
//!
//! The child's stdout/stderr is its FIFO opened O_RDWR, so the child itself counts as a reader:
//! if the supervisor dies, writes still succeed until the pipe buffer is full, and a new
//! supervisor that re-opens the read end gets everything written meanwhile. A read end reaches
//! EOF only after the unit's last process closed the FIFO; then the rest is drained, the last
//! partial line is flushed and the FIFO is removed (unless a new instance already replaced it).

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use nix::sys::eventfd::{EfdFlags, EventFd};

use crate::config::schema::LogPolicy;
use crate::logs::{self, Kind, LogFile};

use super::BackendError;

/// Longest line written as one; longer ones are split.
pub const MAX_LINE: usize = 64 * 1024;
const READ_CHUNK: usize = 64 * 1024;
/// Bytes read from one stream per wake-up before the others get their turn.
const READ_BUDGET: usize = 1024 * 1024;
const TOKEN_WAKE: u64 = 0;
/// Longest wait for a unit's output to be drained before its exit is reported anyway.
const DRAIN_WAIT: Duration = Duration::from_secs(2);
/// How long a log that could not be opened waits before the next attempt.
const OPEN_RETRY: Duration = Duration::from_secs(1);

/// Called for every line in foreground mode: (unit, stream, line without newline).
pub type Echo = Box<dyn Fn(&str, Kind, &[u8]) + Send + Sync>;

/// Destination of one stream's lines.
pub trait LineOut: Send {
    /// Take one line; it may stay buffered until `flush`.
    fn write_line(&mut self, ts: SystemTime, line: &[u8]);
    /// The line being read so far (no newline yet); the next call or `write_line` repeats
    /// it with more appended. A file writes it at once, so that output read from the FIFO
    /// is on disk even if the supervisor is killed before the line ends.
    fn write_partial(&mut self, _ts: SystemTime, _so_far: &[u8]) {}
    /// Write out what is buffered: called after every chunk read from the stream, so a chunk
    /// of many lines costs one write instead of one per line.
    fn flush(&mut self) {}
}

/// Opens the destination of a stream: (log dir, unit, stream, policy).
pub type LogOpener =
    Box<dyn Fn(&Path, &str, Kind, LogPolicy) -> Option<Box<dyn LineOut>> + Send + Sync>;

struct FileOut {
    file: LogFile,
    path: PathBuf,
    failed: bool,
    /// Bytes of the current partial line already in the file (its open last line).
    partial: usize,
}

impl FileOut {
    fn note(&mut self, result: Result<(), crate::logs::LogError>) {
        match result {
            Ok(()) => self.failed = false,
            Err(e) => {
                // The open line was ended by the failure: the whole line is written again.
                self.partial = 0;
                if !self.failed {
                    tracing::warn!("writing {}: {e}", self.path.display());
                }
                self.failed = true;
            }
        }
    }
}

impl LineOut for FileOut {
    fn write_line(&mut self, ts: SystemTime, line: &[u8]) {
        let done = if self.file.line_open() {
            self.partial
        } else {
            0
        };
        self.partial = 0;
        let r = self
            .file
            .write_line_buffered(ts, line.get(done..).unwrap_or_default());
        self.note(r);
    }

    fn write_partial(&mut self, ts: SystemTime, so_far: &[u8]) {
        let done = if self.file.line_open() {
            self.partial
        } else {
            0
        };
        let Some(new) = so_far.get(done..).filter(|n| !n.is_empty()) else {
            return;
        };
        let r = self.file.write_partial_buffered(ts, new);
        self.partial = so_far.len();
        self.note(r);
    }

    fn flush(&mut self) {
        let r = self.file.flush();
        self.note(r);
    }
}

/// The production opener: `LogFile` at `logs::log_path`.
pub fn file_opener() -> LogOpener {
    Box::new(|dir, unit, kind, policy| {
        let path = logs::log_path(dir, unit, kind);
        match LogFile::open(&path, policy) {
            Ok(file) => Some(Box::new(FileOut {
                file,
                path,
                failed: false,
                partial: 0,
            }) as Box<dyn LineOut>),
            Err(e) => {
                tracing::warn!("opening log of {unit}: {e}");
                None
            }
        }
    })
}

/// Splits a byte stream into lines, keeping the last partial line; lines longer than `max` are
/// cut into pieces of `max` bytes.
#[derive(Debug)]
pub struct LineSplitter {
    buf: Vec<u8>,
    max: usize,
}

impl LineSplitter {
    pub fn new(max: usize) -> LineSplitter {
        LineSplitter {
            buf: Vec::new(),
            max: max.max(1),
        }
    }

    /// Feed `data`; `emit` gets every complete line (without its newline).
    pub fn push(&mut self, data: &[u8], emit: &mut dyn FnMut(&[u8])) {
        for piece in data.split_inclusive(|b| *b == b'\n') {
            let (mut body, complete) = match piece.split_last() {
                Some((b'\n', body)) => (body, true),
                _ => (piece, false),
            };
            while self.buf.len() + body.len() > self.max {
                let take = self.max - self.buf.len();
                if self.buf.is_empty() {
                    emit(&body[..take]);
                } else {
                    self.buf.extend_from_slice(&body[..take]);
                    emit(&self.buf);
                    self.buf.clear();
                }
                body = &body[take..];
            }
            if complete {
                if self.buf.is_empty() {
                    emit(body);
                } else {
                    self.buf.extend_from_slice(body);
                    emit(&self.buf);
                    self.buf.clear();
                }
            } else {
                self.buf.extend_from_slice(body);
            }
        }
    }

    /// The partial line held so far (empty when the last byte read ended a line).
    pub fn partial(&self) -> &[u8] {
        &self.buf
    }

    /// Emit the buffered partial line, if any.
    pub fn flush(&mut self, emit: &mut dyn FnMut(&[u8])) {
        if !self.buf.is_empty() {
            emit(&self.buf);
            self.buf.clear();
        }
    }
}

/// A FIFO read end handed to the output thread.
pub struct NewStream {
    pub unit: String,
    pub kind: Kind,
    pub reader: File,
    pub fifo: PathBuf,
    pub policy: LogPolicy,
}

enum Command {
    Add(NewStream),
    /// The unit's main process exited: check its streams for EOF (a read end opened after the
    /// last writer had gone never reports EPOLLHUP), then answer on the sender: what it wrote
    /// is in its log (and echoed) before its exit is reported.
    UnitExited(String, Sender<()>),
    Shutdown,
}

/// Handle to the output thread.
#[derive(Clone)]
pub struct Output {
    tx: Sender<Command>,
    wake: Arc<EventFd>,
}

impl Output {
    pub fn add(&self, stream: NewStream) {
        self.send(Command::Add(stream));
    }

    /// The unit has no process left: drain its streams, and return once that is done (or
    /// after `DRAIN_WAIT`, should the output thread be stuck on a slow terminal), so that its
    /// last lines come before the report of its exit.
    pub fn unit_exited(&self, unit: &str) {
        let (done, drained) = mpsc::channel();
        self.send(Command::UnitExited(unit.to_string(), done));
        let _ = drained.recv_timeout(DRAIN_WAIT);
    }

    pub fn shutdown(&self) {
        self.send(Command::Shutdown);
    }

    fn send(&self, cmd: Command) {
        if self.tx.send(cmd).is_ok() {
            let _ = self.wake.write(1);
        }
    }
}

struct Stream {
    unit: String,
    kind: Kind,
    reader: File,
    fifo: PathBuf,
    fifo_id: (u64, u64),
    policy: LogPolicy,
    splitter: LineSplitter,
    out: Option<Box<dyn LineOut>>,
    /// While `out` is `None`: when to try opening the log again (`None`: at the next line).
    retry_open: Option<Instant>,
}

struct Pump {
    epoll: Epoll,
    wake: Arc<EventFd>,
    rx: Receiver<Command>,
    streams: HashMap<u64, Stream>,
    next_token: u64,
    log_dir: PathBuf,
    opener: LogOpener,
    echo: Option<Echo>,
    buf: Vec<u8>,
}

/// Start the output thread.
pub fn spawn(
    log_dir: PathBuf,
    opener: LogOpener,
    echo: Option<Echo>,
) -> Result<(Output, JoinHandle<()>), BackendError> {
    let io_err = |context: &str| {
        let context = context.to_string();
        move |e: nix::Error| BackendError::Io {
            context,
            source: io::Error::from(e),
        }
    };
    let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC).map_err(io_err("epoll_create"))?;
    let wake = Arc::new(
        EventFd::from_flags(EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK)
            .map_err(io_err("eventfd"))?,
    );
    epoll
        .add(
            wake.as_fd(),
            EpollEvent::new(EpollFlags::EPOLLIN, TOKEN_WAKE),
        )
        .map_err(io_err("epoll_ctl"))?;
    let (tx, rx) = mpsc::channel();
    let mut pump = Pump {
        epoll,
        wake: wake.clone(),
        rx,
        streams: HashMap::new(),
        next_token: 1,
        log_dir,
        opener,
        echo,
        buf: vec![0; READ_CHUNK],
    };
    let handle = std::thread::Builder::new()
        .name("sysg-output".into())
        .spawn(move || pump.run())
        .map_err(|source| BackendError::Io {
            context: "starting the output thread".into(),
            source,
        })?;
    Ok((Output { tx, wake }, handle))
}

impl Pump {
    fn run(&mut self) {
        let mut events = vec![EpollEvent::empty(); 64];
        loop {
            let n = match self.epoll.wait(&mut events, EpollTimeout::NONE) {
                Ok(n) => n,
                Err(nix::Error::EINTR) => continue,
                Err(e) => {
                    tracing::error!("output epoll: {e}");
                    return;
                }
            };
            let mut commands = false;
            for ev in &events[..n] {
                match ev.data() {
                    TOKEN_WAKE => commands = true,
                    token => self.service(token),
                }
            }
            if commands {
                let _ = self.wake.read();
                while let Ok(cmd) = self.rx.try_recv() {
                    match cmd {
                        Command::Add(s) => self.add(s),
                        Command::UnitExited(unit, done) => {
                            let tokens: Vec<u64> = self
                                .streams
                                .iter()
                                .filter(|(_, s)| s.unit == unit)
                                .map(|(t, _)| *t)
                                .collect();
                            for t in tokens {
                                self.service(t);
                            }
                            let _ = done.send(());
                        }
                        Command::Shutdown => {
                            self.shutdown();
                            return;
                        }
                    }
                }
            }
        }
    }

    fn add(&mut self, s: NewStream) {
        let fifo_id = s
            .reader
            .metadata()
            .map(|m| (m.dev(), m.ino()))
            .unwrap_or((0, 0));
        let token = self.next_token;
        self.next_token += 1;
        if let Err(e) = self.epoll.add(
            s.reader.as_fd(),
            EpollEvent::new(EpollFlags::EPOLLIN, token),
        ) {
            tracing::warn!("{}: watching output: {e}", s.unit);
            return;
        }
        self.streams.insert(
            token,
            Stream {
                unit: s.unit,
                kind: s.kind,
                reader: s.reader,
                fifo: s.fifo,
                fifo_id,
                policy: s.policy,
                splitter: LineSplitter::new(MAX_LINE),
                out: None,
                retry_open: None,
            },
        );
        // Data written while nobody read, or EOF that will never be signalled as EPOLLHUP.
        self.service(token);
    }

    /// Read what is available; close the stream at EOF.
    fn service(&mut self, token: u64) {
        let Some(stream) = self.streams.get_mut(&token) else {
            return;
        };
        let mut total = 0;
        let eof = loop {
            match (&stream.reader).read(&mut self.buf) {
                Ok(0) => break true,
                Ok(n) => {
                    total += n;
                    let now = SystemTime::now();
                    let (log_dir, opener, echo) = (&self.log_dir, &self.opener, &self.echo);
                    let Stream {
                        unit,
                        kind,
                        policy,
                        splitter,
                        out,
                        retry_open,
                        ..
                    } = stream;
                    let mut emit = |line: &[u8]| {
                        deliver(
                            log_dir, opener, echo, unit, *kind, *policy, out, retry_open, now, line,
                        )
                    };
                    splitter.push(&self.buf[..n], &mut emit);
                    // Nothing read stays only in memory: a supervisor killed now loses no
                    // output (the log ends with the partial line).
                    if !splitter.partial().is_empty() {
                        open_log(log_dir, opener, unit, *kind, *policy, out, retry_open);
                        if let Some(out) = out {
                            out.write_partial(now, splitter.partial());
                        }
                    }
                    if let Some(out) = out {
                        out.flush();
                    }
                    if total >= READ_BUDGET {
                        break false;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    tracing::warn!("{}: reading output: {e}", stream.unit);
                    break true;
                }
            }
        };
        if eof {
            self.close(token);
        }
    }

    fn close(&mut self, token: u64) {
        let Some(mut s) = self.streams.remove(&token) else {
            return;
        };
        let _ = self.epoll.delete(s.reader.as_fd());
        self.flush(&mut s);
        // Remove the FIFO unless a new instance of the unit already replaced it.
        super::spawn::remove_fifo_if(&s.fifo, s.fifo_id);
    }

    fn flush(&self, s: &mut Stream) {
        let now = SystemTime::now();
        let Stream {
            unit,
            kind,
            policy,
            splitter,
            out,
            retry_open,
            ..
        } = s;
        let mut emit = |line: &[u8]| {
            deliver(
                &self.log_dir,
                &self.opener,
                &self.echo,
                unit,
                *kind,
                *policy,
                out,
                retry_open,
                now,
                line,
            )
        };
        splitter.flush(&mut emit);
        if let Some(out) = out {
            out.flush();
        }
    }

    /// Supervisor shutdown: what was read must not be lost; what is still in the pipes stays
    /// there for the next supervisor.
    fn shutdown(&mut self) {
        let tokens: Vec<u64> = self.streams.keys().copied().collect();
        for t in tokens {
            if let Some(mut s) = self.streams.remove(&t) {
                self.flush(&mut s);
            }
        }
    }
}

/// Open the stream's log if it is not open yet.
///
/// Opened on the first output, so a unit that never prints creates no file. A log that cannot
/// be opened (read-only or full log directory) is tried again at most once a second, so the
/// unit's output comes back once the directory does.
fn open_log(
    log_dir: &Path,
    opener: &LogOpener,
    unit: &str,
    kind: Kind,
    policy: LogPolicy,
    out: &mut Option<Box<dyn LineOut>>,
    retry_open: &mut Option<Instant>,
) {
    if out.is_none() {
        let now = Instant::now();
        if retry_open.is_none_or(|t| now >= t) {
            *out = opener(log_dir, unit, kind, policy);
            *retry_open = out.is_none().then(|| now + OPEN_RETRY);
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn deliver(
    log_dir: &Path,
    opener: &LogOpener,
    echo: &Option<Echo>,
    unit: &str,
    kind: Kind,
    policy: LogPolicy,
    out: &mut Option<Box<dyn LineOut>>,
    retry_open: &mut Option<Instant>,
    ts: SystemTime,
    line: &[u8],
) {
    open_log(log_dir, opener, unit, kind, policy, out, retry_open);
    if let Some(out) = out {
        out.write_line(ts, line);
    }
    if let Some(echo) = echo {
        echo(unit, kind, line);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(chunks: &[&[u8]], max: usize) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
        let mut s = LineSplitter::new(max);
        let mut lines = Vec::new();
        for c in chunks {
            s.push(c, &mut |l| lines.push(l.to_vec()));
        }
        let mut rest = Vec::new();
        s.flush(&mut |l| rest.push(l.to_vec()));
        (lines, rest)
    }

    #[test]
    fn splits_lines_across_chunks() {
        let (lines, rest) = split(&[b"a\nb", b"c\n\nd", b"e"], 100);
        assert_eq!(lines, vec![b"a".to_vec(), b"bc".to_vec(), b"".to_vec()]);
        assert_eq!(rest, vec![b"de".to_vec()]);
    }

    #[test]
    fn caps_long_lines() {
        let (lines, rest) = split(&[b"abcdefg", b"hij\n", b"1234\n"], 4);
        assert_eq!(
            lines,
            vec![
                b"abcd".to_vec(),
                b"efgh".to_vec(),
                b"ij".to_vec(),
                b"1234".to_vec()
            ]
        );
        assert!(rest.is_empty());
        let (lines, rest) = split(&[b"ab", b"cd", b"ef\n"], 4);
        assert_eq!(lines, vec![b"abcd".to_vec(), b"ef".to_vec()]);
        assert!(rest.is_empty());
    }

    #[test]
    fn exact_length_line_is_one_line() {
        let (lines, _) = split(&[b"abcd\nxy\n"], 4);
        assert_eq!(lines, vec![b"abcd".to_vec(), b"xy".to_vec()]);
    }
}
