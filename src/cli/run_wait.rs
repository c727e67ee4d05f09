//! `sysg run --wait`: like `systemd-run --pipe --wait`, the command's stdout and stderr reach
//! the caller while it runs (and stay in the project's logs for `sysg logs`).
//!
//! The unit's name is chosen here, before the request, from the names the supervisor already
//! uses: its log files are then known, and followed from their current end (an earlier unit
//! of that name keeps its old lines to itself). The supervisor drains a unit's output before
//! it reports the unit's exit, so once the answer came, one last read gets every line.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::control::client;
use crate::control::protocol::{Request, StatusReport};
use crate::logs::{self, Kind};
use crate::runtime::paths::ProjectPaths;

/// How often the follower looks whether the answer came.
const TICK: Duration = Duration::from_millis(100);

/// How long to wait, after the supervisor answered, for the journal's entry that the unit's
/// run is over (journald takes in the unit's last lines and the manager's entry on its own).
const JOURNAL_END: Duration = Duration::from_secs(3);

/// How often the end of a unit's journal output is looked for.
const POLL: Duration = Duration::from_millis(20);

/// What the journal follower tells `JournalPipe::finish`.
#[cfg(target_os = "linux")]
enum Event {
    /// A line of the unit (so journald has seen its output stream).
    Line,
    /// The manager's entry that the unit's run is over.
    Ended,
}

/// The names the running supervisor already uses (services, cron jobs, ad-hoc units), and
/// its backend (`systemd` or `process`; empty when it did not answer).
pub(super) fn taken_names(paths: &ProjectPaths, project: &str) -> (Vec<String>, String) {
    client::call(
        paths,
        project,
        Request::Status,
        Some(Duration::from_secs(10)),
    )
    .ok()
    .filter(|r| r.ok)
    .and_then(|r| serde_json::from_value::<StatusReport>(r.data).ok())
    .map(|r| (r.services.into_iter().map(|s| s.name).collect(), r.backend))
    .unwrap_or_default()
}

/// The command's output on its way to the caller: from the log files (process backend) or
/// from the journal (systemd backend).
pub(super) enum Output {
    Files(Pipe),
    #[cfg(target_os = "linux")]
    Journal(JournalPipe),
}

impl Output {
    /// Follow the output of `unit` of `project`; `None` when it cannot be followed (the
    /// command then runs without its output shown; `sysg logs` has it).
    pub(super) fn start(
        paths: &ProjectPaths,
        system: bool,
        backend: &str,
        project: &str,
        unit: &str,
    ) -> Option<Output> {
        #[cfg(target_os = "linux")]
        if backend == "systemd" {
            return JournalPipe::start(system, project, unit).map(Output::Journal);
        }
        let _ = (system, backend, project);
        Pipe::start(paths, unit).map(Output::Files)
    }

    /// The supervisor answered: print what is left, then stop. `ran` says the command ran
    /// (the journal then gets the manager's end entry to wait for).
    pub(super) fn finish(self, ran: bool) {
        match self {
            Output::Files(p) => p.finish(),
            #[cfg(target_os = "linux")]
            Output::Journal(p) => p.finish(ran),
        }
    }
}

/// Copies a unit's journal lines to our stdout. The journal keeps stdout and stderr as one
/// stream, so every line goes to stdout.
///
/// The end: the service manager logs that the unit's run is over, but journald may take in
/// the unit's last lines after that entry. Once journald closed the unit's output stream
/// (having written all of it), the follower stops, and one last read after the last entry it
/// showed gets what it had not shown yet.
#[cfg(target_os = "linux")]
pub(super) struct JournalPipe {
    system: bool,
    unit: String,
    child: std::process::Child,
    events: std::sync::mpsc::Receiver<Event>,
    thread: Option<JoinHandle<Option<String>>>,
}

#[cfg(target_os = "linux")]
impl JournalPipe {
    fn start(system: bool, project: &str, service: &str) -> Option<JournalPipe> {
        use crate::backend::observe::{self as journal, Start};
        let unit = crate::backend::observe::unit_name(project, service);
        let since = Start::Since(std::time::SystemTime::now());
        let mut child = match journal::unit_entries(system, &unit, &since, true) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!("cannot show the output of {service}: journalctl: {e}");
                return None;
            }
        };
        let out = child.stdout.take()?;
        let (tx, events) = std::sync::mpsc::channel();
        let name = unit.clone();
        let thread = std::thread::Builder::new()
            .name("sysg-run-journal".into())
            .spawn(move || copy_entries(system, &name, out, Some(tx)));
        match thread {
            Ok(t) => Some(JournalPipe {
                system,
                unit,
                child,
                events,
                thread: Some(t),
            }),
            Err(e) => {
                tracing::warn!("cannot show the output of {service}: {e}");
                let _ = child.kill();
                let _ = child.wait();
                None
            }
        }
    }

    /// Read on until the unit's end (when the command ran): until journald closed the unit's
    /// output stream, or (when that cannot be seen) the manager's end entry; at most
    /// `JOURNAL_END` each for the end entry and for the stream.
    fn finish(mut self, ran: bool) {
        use crate::backend::observe::{self as journal, Start};
        use std::sync::mpsc::RecvTimeoutError;
        use std::time::Instant;
        if ran {
            let deadline = Instant::now() + JOURNAL_END;
            let mut saw_line = false;
            loop {
                match self.events.recv_timeout(POLL) {
                    Ok(Event::Ended) | Err(RecvTimeoutError::Disconnected) => break,
                    Ok(Event::Line) => saw_line = true,
                    Err(RecvTimeoutError::Timeout) => {}
                }
                // journald has seen the stream (a line came) and has closed it since.
                if saw_line && journal::stream_open(&self.unit) == Some(false) {
                    break;
                }
                if Instant::now() >= deadline {
                    tracing::debug!("{}: no end entry in the journal", self.unit);
                    break;
                }
            }
            let deadline = Instant::now() + JOURNAL_END;
            while journal::stream_open(&self.unit) == Some(true) {
                if Instant::now() >= deadline {
                    tracing::warn!(
                        "{}: journald still reads its output; it may be cut",
                        self.unit
                    );
                    break;
                }
                std::thread::sleep(POLL);
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let last = self.thread.take().and_then(|t| t.join().ok()).flatten();
        if !ran {
            return;
        }
        let Some(cursor) = last else {
            // The follower showed nothing: nothing of the unit is older than its start.
            return;
        };
        match journal::unit_entries(self.system, &self.unit, &Start::After(cursor), false) {
            Ok(mut rest) => {
                if let Some(out) = rest.stdout.take() {
                    copy_entries(self.system, &self.unit, out, None);
                }
                let _ = rest.wait();
            }
            Err(e) => tracing::warn!("{}: journalctl: {e}", self.unit),
        }
    }
}

/// Print the unit's lines from `journalctl --output json` until its end, telling `events` of
/// them. The cursor of the last entry read.
#[cfg(target_os = "linux")]
fn copy_entries(
    system: bool,
    unit: &str,
    out: std::process::ChildStdout,
    events: Option<std::sync::mpsc::Sender<Event>>,
) -> Option<String> {
    use crate::backend::observe::{self as journal, RunEntry};
    use std::io::BufRead;
    let mut last = None;
    for line in std::io::BufReader::new(out).lines() {
        let Ok(line) = line else { break };
        match journal::run_entry(system, unit, &line) {
            RunEntry::Line(text) => {
                if let Some(tx) = &events {
                    let _ = tx.send(Event::Line);
                }
                // A closed pipe on our side is no reason to disturb the command.
                let mut o = std::io::stdout().lock();
                let _ = writeln!(o, "{text}").and_then(|()| o.flush());
            }
            RunEntry::Ended => {
                if let Some(tx) = &events {
                    let _ = tx.send(Event::Ended);
                }
            }
            RunEntry::Other => {}
        }
        last = journal::cursor(&line).or(last);
    }
    last
}

/// Copies a unit's new log lines to our stdout and stderr until `finish`.
pub(super) struct Pipe {
    done: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Pipe {
    /// Follow `unit`'s stdout and stderr logs from their current end. `None` when they cannot
    /// be followed (the command then runs without its output shown; `sysg logs` has it).
    pub(super) fn start(paths: &ProjectPaths, unit: &str) -> Option<Pipe> {
        let files = [
            logs::log_path(&paths.log_dir, unit, Kind::Stdout),
            logs::log_path(&paths.log_dir, unit, Kind::Stderr),
        ];
        let mut follower = match logs::follow_many(&files) {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!("cannot show the output of {unit}: {e}");
                return None;
            }
        };
        let done = Arc::new(AtomicBool::new(false));
        let flag = done.clone();
        let thread = std::thread::Builder::new()
            .name("sysg-run-pipe".into())
            .spawn(move || loop {
                let last = flag.load(Ordering::Acquire);
                let got = if last {
                    follower.poll_lines()
                } else {
                    follower.next_tagged(Some(TICK))
                };
                match got {
                    Ok(lines) => print(&lines),
                    Err(e) => {
                        tracing::warn!("output: {e}");
                        return;
                    }
                }
                if last {
                    return;
                }
            })
            .ok()?;
        Some(Pipe {
            done,
            thread: Some(thread),
        })
    }

    /// The command finished: print what is left, then stop.
    pub(super) fn finish(mut self) {
        self.done.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Stored lines without their timestamps: index 0 to stdout, 1 to stderr.
fn print(lines: &[(usize, String)]) {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    for (i, l) in lines {
        let text = logs::parse_line(l).map_or(l.as_str(), |(_, t)| t);
        let to = if *i == 0 { &mut out } else { &mut err };
        to.extend_from_slice(text.as_bytes());
        to.push(b'\n');
    }
    // A closed pipe on our side is no reason to disturb the command.
    if !out.is_empty() {
        let mut o = std::io::stdout().lock();
        let _ = o.write_all(&out).and_then(|()| o.flush());
    }
    if !err.is_empty() {
        let _ = std::io::stderr().write_all(&err);
    }
}

/// After a `run --wait` that started the ad-hoc supervisor: stop it when nothing else runs
/// in it (the waited unit is forgotten before the answer is sent).
pub(super) fn stop_if_empty(paths: &ProjectPaths, project: &str) {
    let empty = client::call(
        paths,
        project,
        Request::Status,
        Some(Duration::from_secs(10)),
    )
    .ok()
    .filter(|r| r.ok)
    .and_then(|r| serde_json::from_value::<StatusReport>(r.data).ok())
    .is_some_and(|r| r.services.is_empty());
    if empty {
        let _ = client::call(paths, project, Request::Shutdown, None);
    }
}
