//! Readiness notification and the watchdog as the core sees them (issue 17): what an
//! `sd_notify` message from a service means, when a `readiness: notify` service counts as
//! started, when its start timed out, and when its watchdog expired. The socket that receives
//! the messages is the runtime's (backend/process/notify.rs); systemd's own for the systemd
//! backend. Rules (also in STATES.md):
//!
//! - A notify service is running but *not started* from its exec until `READY=1`: dependents
//!   wait, a start's verdict waits, `on_ready` waits. No `READY=1` within `start_timeout`
//!   (moved later by `EXTEND_TIMEOUT_USEC=`) fails the start: the process is stopped like an
//!   unhealthy one and its exit goes through the restart policy as a failed start.
//! - The watchdog runs from `READY=1` (systemd: "when the start-up is completed") or an
//!   adoption: each `WATCHDOG=1` moves its deadline
//!   one interval on; `WATCHDOG_USEC=` changes the interval (0 turns it off); a missed deadline
//!   or `WATCHDOG=trigger` sends SIGABRT (SIGKILL after `stop_timeout`), recorded as a
//!   `watchdog` failure for the restart policy.
//! - `RELOADING=1` … `READY=1` is a reload; `STOPPING=1` says the service is going down;
//!   `STATUS=` is shown as is; `MAINPID=` is recorded (the target of `kill --main` and of a
//!   reload signal).

use std::time::{Duration, Instant};

use super::notice::{notify, NoticeKind};
use super::unit::{report, State, StopWhy};
use super::{Action, Core, ReportKind};
use crate::spec::Readiness;

/// Longest `STATUS=` text kept (longer text is cut at a character boundary).
pub const MAX_STATUS: usize = 512;

/// What a watchdog line asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Watchdog {
    /// `WATCHDOG=1`: alive.
    Pet,
    /// `WATCHDOG=trigger`: act as if the deadline passed.
    Trigger,
    /// The host's service manager saw the deadline pass (systemd's `Result=watchdog`): it
    /// aborts the service itself; the core records the failure.
    Expired,
}

/// One `sd_notify` datagram, parsed. Unknown keys are ignored, as systemd does.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NotifyMessage {
    pub ready: bool,
    pub reloading: bool,
    pub stopping: bool,
    pub status: Option<String>,
    pub main_pid: Option<u32>,
    pub watchdog: Option<Watchdog>,
    pub watchdog_usec: Option<u64>,
    pub extend_timeout_usec: Option<u64>,
    /// Not a protocol key: the host's service manager gave up waiting for `READY=1`
    /// (systemd's `Result=timeout`) and stops the service itself.
    pub start_timed_out: bool,
}

impl NotifyMessage {
    /// `STATUS=text` alone (the systemd backend reads it back as `StatusText`).
    pub fn status(text: String) -> NotifyMessage {
        NotifyMessage {
            status: Some(cut(&text, MAX_STATUS)),
            ..NotifyMessage::default()
        }
    }

    /// What the systemd backend reports when the unit's `Result` became `watchdog`.
    pub fn watchdog_expired() -> NotifyMessage {
        NotifyMessage {
            watchdog: Some(Watchdog::Expired),
            ..NotifyMessage::default()
        }
    }

    /// What the systemd backend reports when the unit's `Result` became `timeout`.
    pub fn start_timed_out() -> NotifyMessage {
        NotifyMessage {
            start_timed_out: true,
            ..NotifyMessage::default()
        }
    }

    /// `READY=1` alone.
    pub fn ready() -> NotifyMessage {
        NotifyMessage {
            ready: true,
            ..NotifyMessage::default()
        }
    }

    /// Parse one datagram: newline-separated `KEY=VALUE` lines in UTF-8. `None` for anything
    /// that is not such text or says nothing the core acts on.
    pub fn parse(bytes: &[u8]) -> Option<NotifyMessage> {
        let text = std::str::from_utf8(bytes).ok()?;
        let mut m = NotifyMessage::default();
        let mut any = false;
        for line in text.split('\n').filter(|l| !l.is_empty()) {
            let (key, value) = line.split_once('=')?;
            any |= match key {
                "READY" => {
                    m.ready = value == "1";
                    m.ready
                }
                "RELOADING" => {
                    m.reloading = value == "1";
                    m.reloading
                }
                "STOPPING" => {
                    m.stopping = value == "1";
                    m.stopping
                }
                "STATUS" => {
                    m.status = Some(cut(value, MAX_STATUS));
                    true
                }
                "MAINPID" => {
                    m.main_pid = value.parse().ok().filter(|&p| p > 0);
                    m.main_pid.is_some()
                }
                "WATCHDOG" => {
                    m.watchdog = match value {
                        "1" => Some(Watchdog::Pet),
                        "trigger" => Some(Watchdog::Trigger),
                        _ => None,
                    };
                    m.watchdog.is_some()
                }
                "WATCHDOG_USEC" => {
                    m.watchdog_usec = value.parse().ok();
                    m.watchdog_usec.is_some()
                }
                "EXTEND_TIMEOUT_USEC" => {
                    m.extend_timeout_usec = value.parse().ok();
                    m.extend_timeout_usec.is_some()
                }
                _ => false,
            };
        }
        any.then_some(m)
    }
}

/// `s` cut to at most `max` bytes, at a character boundary.
fn cut(s: &str, max: usize) -> String {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

/// One unit's readiness and watchdog state (reset at each start of its process).
#[derive(Debug, Clone, Default)]
pub(crate) struct ReadyState {
    /// Notify service started, `READY=1` not yet come: the start fails at this deadline.
    pub(crate) awaiting: Option<Instant>,
    /// The stop under way ends a start that timed out: its exit is a failed start.
    pub(crate) start_failed: bool,
    /// Between `RELOADING=1` and the next `READY=1`.
    pub(crate) reloading: bool,
    /// `STOPPING=1` came.
    pub(crate) stopping: bool,
    /// The last `STATUS=` text.
    pub(crate) status: Option<String>,
    /// The last `MAINPID=`.
    pub(crate) main_pid: Option<u32>,
    /// The watchdog interval in force (`None`: no watchdog).
    watchdog: Option<Duration>,
    /// When the watchdog expires.
    watchdog_at: Option<Instant>,
    /// `sysg reload` signalled the service: `RELOADING=1` … `READY=1` must end by then.
    reload_wait: Option<Instant>,
    /// Reloads waited for that ended (kept across processes): `reload_outcome`.
    reloads: u64,
    /// How the last one ended: `None` well, else why not.
    reload_error: Option<String>,
}

impl ReadyState {
    /// A process of a unit with `r` started at `now`.
    pub(crate) fn begin(&mut self, now: Instant, r: &Readiness) {
        *self = ReadyState {
            reloads: self.reloads,
            reload_error: self.reload_error.take(),
            ..ReadyState::default()
        };
        if r.notify {
            // Zero waits forever, as does an unrepresentable deadline.
            self.awaiting = Some(within(now, r.start_timeout));
            // Armed at READY=1, as systemd does ("when the start-up is completed").
            self.watchdog = r.watchdog;
        }
    }

    /// A process found running (adopted or started outside sysg): it is taken as ready.
    pub(crate) fn taken_over(&mut self, now: Instant, r: &Readiness) {
        self.begin(now, r);
        self.awaiting = None;
        self.watchdog_at = self.watchdog.and_then(|w| now.checked_add(w));
    }

    /// The process ended.
    pub(crate) fn end(&mut self) {
        if self.reload_wait.is_some() {
            self.reload_done(Some("the service exited during its reload".into()));
        }
        *self = ReadyState {
            start_failed: self.start_failed,
            reloads: self.reloads,
            reload_error: self.reload_error.take(),
            ..ReadyState::default()
        };
    }

    /// The reload waited for ended, well (`None`) or not.
    fn reload_done(&mut self, error: Option<String>) {
        self.reload_wait = None;
        self.reloading = false;
        self.reloads += 1;
        self.reload_error = error;
    }

    /// The earliest readiness or watchdog deadline.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        [self.awaiting, self.watchdog_at, self.reload_wait]
            .into_iter()
            .flatten()
            .min()
    }
}

/// The deadline `timeout` after `now`; zero (no limit) or an unrepresentable time is so far
/// ahead (about 30 years) it never comes.
fn within(now: Instant, timeout: Duration) -> Instant {
    let far = now.checked_add(Duration::from_secs(1 << 30)).unwrap_or(now);
    if timeout.is_zero() {
        return far;
    }
    now.checked_add(timeout).unwrap_or(far)
}

impl Core {
    /// A notification from a process of unit (or instance key) `name`; the runtime has checked
    /// that `pid` belongs to the unit.
    pub(crate) fn on_notify(
        &mut self,
        now: Instant,
        name: &str,
        pid: u32,
        msg: NotifyMessage,
        out: &mut Vec<Action>,
    ) {
        let Some(i) = self.find(name) else { return };
        let u = &mut self.units[i];
        if u.pid.is_none() || !u.plan.spec.readiness.notify {
            return;
        }
        if let Some(text) = msg.status {
            // An empty `STATUS=` clears it.
            u.ready.status = (!text.is_empty()).then_some(text);
        }
        if let Some(p) = msg.main_pid {
            u.ready.main_pid = Some(p);
        }
        if msg.stopping {
            u.ready.stopping = true;
        }
        if let Some(usec) = msg.extend_timeout_usec {
            let until = now.checked_add(Duration::from_micros(usec));
            match &mut u.state {
                State::Running { .. } if u.ready.awaiting.is_some() => {
                    u.ready.awaiting = u.ready.awaiting.max(until);
                }
                State::Stopping {
                    kill_at: Some(k), ..
                } => *k = (*k).max(until.unwrap_or(*k)),
                _ => {}
            }
        }
        if !matches!(u.state, State::Running { pending_stop: None }) {
            return;
        }
        if msg.start_timed_out && u.ready.awaiting.is_some() {
            self.start_timed_out(now, i, out);
            return;
        }
        if let Some(usec) = msg.watchdog_usec {
            u.ready.watchdog = (usec > 0).then(|| Duration::from_micros(usec));
            u.ready.watchdog_at = u.ready.watchdog.and_then(|w| now.checked_add(w));
        }
        match msg.watchdog {
            Some(Watchdog::Pet) => {
                u.ready.watchdog_at = u.ready.watchdog.and_then(|w| now.checked_add(w));
            }
            Some(Watchdog::Trigger) => {
                self.watchdog_expired(now, i, "watchdog: WATCHDOG=trigger".to_string(), out);
                return;
            }
            Some(Watchdog::Expired) => {
                let interval = u.plan.spec.readiness.watchdog.unwrap_or_default();
                let what = format!("watchdog: no WATCHDOG=1 within {interval:?}");
                self.watchdog_expired(now, i, what, out);
                return;
            }
            None => {}
        }
        if msg.reloading {
            u.ready.reloading = true;
            report(
                out,
                name,
                ReportKind::Started,
                "reloading (RELOADING=1)".into(),
            );
        }
        if msg.ready {
            if u.ready.reloading || u.ready.reload_wait.is_some() {
                u.ready.reload_done(None);
                report(out, name, ReportKind::Started, "reloaded (READY=1)".into());
            }
            if u.ready.awaiting.take().is_some() {
                u.ready.watchdog_at = u.ready.watchdog.and_then(|w| now.checked_add(w));
                report(
                    out,
                    name,
                    ReportKind::Started,
                    format!("ready (READY=1 from pid {pid})"),
                );
                // READY=1 is proof the service is up: the settle window (a guard against an
                // exec that dies at once) is over too. With a health check, a probe decides.
                u.up_at = None;
                if u.plan.health.is_none() && !u.healthy {
                    u.failing_start = None;
                    u.healthy = true;
                    notify(out, name, NoticeKind::Ready, u.pid, None, "ready".into());
                }
            }
        }
    }

    /// The earliest readiness or watchdog deadline of any running unit.
    pub(crate) fn readiness_deadline(&self) -> Option<Instant> {
        self.units
            .iter()
            .filter(|u| matches!(u.state, State::Running { pending_stop: None }))
            .filter_map(|u| u.ready.deadline())
            .min()
    }

    /// Fail the starts and fire the watchdogs due at `now`.
    pub(crate) fn readiness_due(&mut self, now: Instant, out: &mut Vec<Action>) {
        for i in 0..self.units.len() {
            let u = &mut self.units[i];
            if !matches!(u.state, State::Running { pending_stop: None }) || u.pid.is_none() {
                continue;
            }
            if u.ready.awaiting.is_some_and(|t| t <= now) {
                self.start_timed_out(now, i, out);
                continue;
            }
            if u.ready.reload_wait.is_some_and(|t| t <= now) {
                let what = format!(
                    "reload: no RELOADING=1 … READY=1 within {:?} (start_timeout)",
                    u.plan.spec.readiness.start_timeout
                );
                report(out, &u.plan.name, ReportKind::Failed, what.clone());
                u.ready.reload_done(Some(what));
            }
            if u.ready.watchdog_at.is_some_and(|t| t <= now) {
                let interval = u.ready.watchdog.unwrap_or_default();
                let what = format!("watchdog: no WATCHDOG=1 within {interval:?}");
                self.watchdog_expired(now, i, what, out);
            }
        }
    }

    /// No `READY=1` from unit `i` in time: stop it; its exit is a failed start.
    fn start_timed_out(&mut self, now: Instant, i: usize, out: &mut Vec<Action>) {
        let u = &mut self.units[i];
        u.ready.awaiting = None;
        u.ready.start_failed = true;
        let what = format!(
            "readiness: no READY=1 within start_timeout ({:?})",
            u.plan.spec.readiness.start_timeout
        );
        let name = u.plan.name.clone();
        report(out, &name, ReportKind::Failed, what.clone());
        notify(out, &name, NoticeKind::Failure, u.pid, None, what.clone());
        u.begin_stop(now, StopWhy::Unhealthy(what), out);
    }

    /// The watchdog of unit `i` fired: SIGABRT now, SIGKILL after `stop_timeout`, and the exit
    /// is a `watchdog` failure for the restart policy.
    fn watchdog_expired(&mut self, now: Instant, i: usize, what: String, out: &mut Vec<Action>) {
        let u = &mut self.units[i];
        u.ready.watchdog_at = None;
        u.ready.watchdog = None;
        let name = u.plan.name.clone();
        report(out, &name, ReportKind::Failed, what.clone());
        notify(out, &name, NoticeKind::Failure, u.pid, None, what.clone());
        u.begin_stop_with(now, StopWhy::Unhealthy(what), libc::SIGABRT, out);
    }

    /// `sysg reload` signalled notify unit `name`: wait for `RELOADING=1` … `READY=1` (or a
    /// `READY=1` alone) within `start_timeout`; the outcome counts in `reload_outcome`.
    pub(crate) fn on_reload_sent(&mut self, now: Instant, name: &str) {
        let Some(i) = self.find(name) else { return };
        let u = &mut self.units[i];
        if u.plan.spec.readiness.notify && u.pid.is_some() {
            u.ready.reload_wait = Some(within(now, u.plan.spec.readiness.start_timeout));
        }
    }

    /// Reloads of `name` waited for that ended, and how the last one ended (`None`: well).
    pub fn reload_outcome(&self, name: &str) -> Option<(u64, Option<String>)> {
        let u = &self.units[self.find(name)?];
        Some((u.ready.reloads, u.ready.reload_error.clone()))
    }

    /// Whether the exit that ends unit `i`'s stop is a failed start (a readiness timeout);
    /// clears the mark.
    pub(crate) fn take_start_failed(&mut self, i: usize) -> bool {
        std::mem::take(&mut self.units[i].ready.start_failed)
    }

    /// The readiness facts of `name` for status: `STATUS=` text, reloading, `MAINPID=`.
    pub fn notify_view(&self, name: &str) -> Option<NotifyView> {
        let u = &self.units[self.find(name)?];
        if !u.plan.spec.readiness.notify {
            return None;
        }
        Some(NotifyView {
            status: u.ready.status.clone(),
            awaiting_ready: u.ready.awaiting.is_some(),
            reloading: u.ready.reloading,
            stopping: u.ready.stopping,
            main_pid: u.ready.main_pid.or(u.pid),
        })
    }
}

/// A deployment's candidate of a unit with `readiness` started at `now`: a notify one is
/// judged (settle window, probes) only from `READY=1`, which must come by `start_timeout`.
pub(crate) fn candidate_started(
    now: Instant,
    t: &mut super::deploy::Trial,
    readiness: Option<Readiness>,
) {
    if let Some(r) = readiness.filter(|r| r.notify) {
        t.settle_at = None;
        t.next_at = None;
        t.awaiting_ready = Some(within(now, r.start_timeout));
    }
}

/// What status shows of a notify service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifyView {
    pub status: Option<String>,
    /// Started, `READY=1` not come yet.
    pub awaiting_ready: bool,
    pub reloading: bool,
    pub stopping: bool,
    /// `MAINPID=` when the service named one, else the process the unit started.
    pub main_pid: Option<u32>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_keys_the_core_acts_on() {
        let m = NotifyMessage::parse(b"READY=1\nSTATUS=serving 3 clients\nMAINPID=42\n").unwrap();
        assert!(m.ready);
        assert_eq!(m.status.as_deref(), Some("serving 3 clients"));
        assert_eq!(m.main_pid, Some(42));
        let m = NotifyMessage::parse(b"WATCHDOG=trigger").unwrap();
        assert_eq!(m.watchdog, Some(Watchdog::Trigger));
        let m = NotifyMessage::parse(b"WATCHDOG_USEC=5000000\nEXTEND_TIMEOUT_USEC=7").unwrap();
        assert_eq!(m.watchdog_usec, Some(5_000_000));
        assert_eq!(m.extend_timeout_usec, Some(7));
        // Unknown keys alone say nothing; so do garbage and invalid values.
        assert_eq!(NotifyMessage::parse(b"FDSTORE=1"), None);
        assert_eq!(NotifyMessage::parse(b"\xff\xfe"), None);
        assert_eq!(NotifyMessage::parse(b"no equals sign"), None);
        assert_eq!(NotifyMessage::parse(b"MAINPID=0"), None);
        assert_eq!(NotifyMessage::parse(b"READY=0"), None);
    }

    #[test]
    fn status_text_is_bounded_at_a_character_boundary() {
        let long = format!("STATUS={}", "é".repeat(MAX_STATUS));
        let m = NotifyMessage::parse(long.as_bytes()).unwrap();
        let s = m.status.unwrap();
        assert!(s.len() <= MAX_STATUS && s.chars().all(|c| c == 'é'));
    }
}
