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

/// The names the running supervisor already uses (services, cron jobs, ad-hoc units).
pub(super) fn taken_names(paths: &ProjectPaths, project: &str) -> Vec<String> {
    client::call(
        paths,
        project,
        Request::Status,
        Some(Duration::from_secs(10)),
    )
    .ok()
    .filter(|r| r.ok)
    .and_then(|r| serde_json::from_value::<StatusReport>(r.data).ok())
    .map(|r| r.services.into_iter().map(|s| s.name).collect())
    .unwrap_or_default()
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
