//! Progress of `sysg start --daemonize`: on a terminal, one line per service redrawn in
//! place, with a spinner only on the lines that are waiting; piped, one plain line per step
//! that matters (no spinner, no escape codes).

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::core::StateKind;
use crate::runtime::observe::Progress;

const SPINNER: [char; 10] = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];
const TICK: Duration = Duration::from_millis(100);

/// What a service is doing, as shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// `started`, `waiting for health`, ...
    pub word: String,
    /// Still waiting (a spinner is shown).
    pub waiting: bool,
    /// Ended badly.
    pub bad: bool,
}

/// How a progress report reads.
pub fn step(p: &Progress) -> Step {
    let reason = p
        .reason
        .as_deref()
        .map(|r| format!(": {r}"))
        .unwrap_or_default();
    let (word, waiting, bad) = match p.state {
        StateKind::Waiting => ("waiting for dependencies".to_string(), true, false),
        StateKind::Starting => ("starting".into(), true, false),
        StateKind::Running if p.adopted => {
            let adopted = adopted_words(p, chrono::Local::now());
            match p.health.as_deref() {
                None => (adopted, false, false),
                Some("healthy") => (format!("{adopted}, healthy"), false, false),
                Some(h) => (format!("{adopted}, waiting for health ({h})"), true, false),
            }
        }
        StateKind::Running => match p.health.as_deref() {
            None => ("started".into(), false, false),
            Some("healthy") => ("healthy".into(), false, false),
            Some(h) => (format!("waiting for health ({h})"), true, false),
        },
        StateKind::Backoff => (format!("restarting{reason}"), true, false),
        StateKind::Completed => ("completed".into(), false, false),
        StateKind::Failed | StateKind::Blocked => (format!("failed{reason}"), false, true),
        StateKind::Stopping => ("stopping".into(), true, false),
        StateKind::Stopped => ("stopped".into(), false, false),
        StateKind::Scheduled => ("scheduled".into(), false, false),
    };
    Step { word, waiting, bad }
}

/// `adopted (running since 2026-12-05 17:50:00, pid 7)`: a process a crashed supervisor
/// left running, taken over, with its start in local time (`now` less its uptime).
fn adopted_words<Tz: chrono::TimeZone>(p: &Progress, now: chrono::DateTime<Tz>) -> String
where
    Tz::Offset: std::fmt::Display,
{
    let since = p
        .uptime_secs
        .and_then(|u| chrono::Duration::from_std(Duration::from_secs_f64(u.max(0.0))).ok())
        .and_then(|u| now.checked_sub_signed(u))
        .map(|t| format!("running since {}", t.format("%Y-%m-%d %H:%M:%S")));
    let parts: Vec<String> = since
        .into_iter()
        .chain(p.pid.map(|p| format!("pid {p}")))
        .collect();
    if parts.is_empty() {
        "adopted".to_string()
    } else {
        format!("adopted ({})", parts.join(", "))
    }
}

#[derive(Default)]
struct State {
    /// Services in the order first heard of.
    rows: Vec<(String, Step)>,
    /// Lines drawn last time (to move the cursor back over them).
    drawn: usize,
    frame: usize,
}

/// Renders progress to stdout.
pub struct ProgressView {
    tty: bool,
    color: bool,
    state: Arc<Mutex<State>>,
    stop: Option<std::sync::mpsc::Sender<()>>,
    ticker: Option<std::thread::JoinHandle<()>>,
}

impl ProgressView {
    /// A view for stdout: live when it is a terminal.
    pub fn new(tty: bool, color: bool) -> ProgressView {
        let state = Arc::new(Mutex::new(State::default()));
        let (stop, ticker) = if tty {
            let (tx, rx) = std::sync::mpsc::channel::<()>();
            let st = Arc::clone(&state);
            // The spinner turns while we block on the supervisor's pipe.
            let handle = std::thread::Builder::new()
                .name("progress".into())
                .spawn(move || {
                    while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                        rx.recv_timeout(TICK)
                    {
                        if let Ok(mut s) = st.lock() {
                            if s.rows.iter().any(|(_, st)| st.waiting) {
                                s.frame += 1;
                                redraw(&mut s, color);
                            }
                        }
                    }
                })
                .ok();
            (Some(tx), handle)
        } else {
            (None, None)
        };
        ProgressView {
            tty,
            color,
            state,
            stop,
            ticker,
        }
    }

    /// A service changed.
    pub fn update(&self, p: Progress) {
        let st = step(&p);
        let Ok(mut s) = self.state.lock() else {
            return;
        };
        if !self.tty {
            // Piped: only the steps that say where a service got to.
            let changed = s
                .rows
                .iter()
                .find(|(n, _)| *n == p.service)
                .is_none_or(|(_, old)| old.word != st.word);
            if changed && (!st.waiting || st.word.contains("waiting for health")) {
                let mut out = std::io::stdout();
                let _ = writeln!(out, "{}: {}", p.service, st.word);
                let _ = out.flush();
            }
        }
        match s.rows.iter_mut().find(|(n, _)| *n == p.service) {
            Some(row) => row.1 = st,
            None => s.rows.push((p.service, st)),
        }
        if self.tty {
            redraw(&mut s, self.color);
        }
    }

    /// Stop the spinner and leave the final lines on screen.
    pub fn finish(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.ticker.take() {
            let _ = h.join();
        }
        if self.tty {
            if let Ok(mut s) = self.state.lock() {
                redraw(&mut s, self.color);
            }
        }
    }
}

impl Drop for ProgressView {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// The text of one row.
fn row_text(name: &str, width: usize, st: &Step, frame: usize, color: bool) -> String {
    let (mark, code) = if st.waiting {
        (SPINNER[frame % SPINNER.len()], "33")
    } else if st.bad {
        ('✗', "31")
    } else {
        ('✓', "32")
    };
    let mark = if color {
        format!("\x1b[{code}m{mark}\x1b[0m")
    } else {
        mark.to_string()
    };
    format!("{mark} {name:<width$}  {}", st.word)
}

fn redraw(s: &mut State, color: bool) {
    let width = s.rows.iter().map(|(n, _)| n.len()).max().unwrap_or(0);
    let mut text = String::new();
    if s.drawn > 0 {
        text.push_str(&format!("\x1b[{}A", s.drawn));
    }
    for (name, st) in &s.rows {
        text.push('\r');
        text.push_str(&row_text(name, width, st, s.frame, color));
        text.push_str("\x1b[K\n");
    }
    s.drawn = s.rows.len();
    let mut out = std::io::stdout();
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(state: StateKind, health: Option<&str>, reason: Option<&str>) -> Progress {
        Progress {
            service: "web".into(),
            state,
            health: health.map(str::to_string),
            reason: reason.map(str::to_string),
            pid: None,
            adopted: false,
            uptime_secs: None,
        }
    }

    #[test]
    fn an_adopted_service_says_so_with_its_start_and_pid() {
        let adopted = Progress {
            pid: Some(7),
            adopted: true,
            uptime_secs: Some(600.0),
            ..p(StateKind::Running, None, None)
        };
        let now = chrono::DateTime::parse_from_rfc3339("2026-12-05T18:00:00Z").unwrap();
        assert_eq!(
            adopted_words(&adopted, now),
            "adopted (running since 2026-12-05 17:50:00, pid 7)"
        );
        let st = step(&adopted);
        assert!(st.word.starts_with("adopted (running since ") && !st.waiting);
        let probing = Progress {
            health: Some("starting".into()),
            ..adopted.clone()
        };
        assert!(step(&probing).waiting);
        assert!(step(&probing)
            .word
            .ends_with("waiting for health (starting)"));
        let bare = Progress {
            uptime_secs: None,
            pid: None,
            ..adopted
        };
        assert_eq!(adopted_words(&bare, now), "adopted");
    }

    #[test]
    fn steps_read_like_what_happens() {
        assert_eq!(step(&p(StateKind::Running, None, None)).word, "started");
        let w = step(&p(StateKind::Running, Some("starting"), None));
        assert!(w.waiting && w.word.starts_with("waiting for health"));
        assert!(!step(&p(StateKind::Running, Some("healthy"), None)).waiting);
        let f = step(&p(StateKind::Failed, None, Some("exit 1")));
        assert!(f.bad && f.word == "failed: exit 1");
        assert!(step(&p(StateKind::Starting, None, None)).waiting);
    }

    #[test]
    fn spinner_only_where_waiting() {
        let waiting = step(&p(StateKind::Starting, None, None));
        let done = step(&p(StateKind::Running, None, None));
        assert!(row_text("web", 3, &waiting, 0, false).starts_with('⠋'));
        assert!(row_text("web", 3, &waiting, 1, false).starts_with('⠙'));
        assert!(row_text("web", 3, &done, 5, false).starts_with('✓'));
        assert!(!row_text("web", 3, &done, 0, false).contains('\x1b'));
        assert!(row_text("web", 3, &done, 0, true).contains("\x1b[32m"));
    }
}
