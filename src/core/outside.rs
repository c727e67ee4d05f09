//! Stops and starts made outside sysg, through the host's service manager (`systemctl stop`,
//! `systemctl start` on a `sysg-…` unit).
//!
//! An admin's `systemctl stop` is a decision, not a crash: the unit stays stopped (shown with
//! the reason `by systemctl`), nothing restarts it, and its dependents go down the way
//! `sysg stop -s` takes them. It comes back with `sysg start`/`sysg restart`, or with
//! `systemctl start`, which the core then follows like an adopted process.
//!
//! `systemctl restart` replaces the main process of a running unit: the core follows the new
//! process in place (no crash counted, dependents untouched), probing it afresh when the
//! service has a health check.

use std::time::Instant;

use super::notice::notify;
use super::unit::{report, State};
use super::{deps, Action, Core, NoticeKind, ReportKind};
use crate::spec::ExitStatus;

/// The reason a unit stopped by `systemctl stop` shows in `sysg status`.
pub const STOPPED_OUTSIDE: &str = "by systemctl";

impl Core {
    pub(super) fn on_stopped_outside(
        &mut self,
        now: Instant,
        name: &str,
        pid: u32,
        status: ExitStatus,
        out: &mut Vec<Action>,
    ) {
        let Some(i) = self.find(name) else { return };
        let u = &self.units[i];
        // Only a running process the core did not decide to stop is the operator's stop; while
        // the core stops the unit itself (or for an old process) it is an ordinary exit.
        let running = matches!(u.state, State::Running { pending_stop: None });
        if u.pid != Some(pid) || !running || u.removed {
            self.on_exited(now, name, pid, status, out);
            return;
        }
        // Dependents first go down as on `sysg stop -s`: they stay stopped too.
        for j in deps::with_dependents(&self.units, &[i]) {
            if j != i {
                self.stop_by_user(now, j, out);
            }
        }
        let u = &mut self.units[i];
        u.pid = None;
        u.healthy = false;
        u.up_at = None;
        u.probe.end();
        u.last_exit = Some(status);
        u.running_since = None;
        u.wanted = false;
        notify(
            out,
            name,
            NoticeKind::Exit,
            Some(pid),
            Some(status),
            format!("exited: {status}"),
        );
        u.set(now, State::Stopped, Some(STOPPED_OUTSIDE.to_string()));
        let message = format!("stopped {STOPPED_OUTSIDE} ({status}); it stays stopped");
        report(out, name, ReportKind::Stopped, message.clone());
        notify(out, name, NoticeKind::Stop, None, Some(status), message);
    }

    pub(super) fn on_started_outside(
        &mut self,
        now: Instant,
        name: &str,
        pid: u32,
        out: &mut Vec<Action>,
    ) {
        self.take_over(
            now,
            name,
            pid,
            format!("started outside sysg (pid {pid}); following it"),
            out,
        );
    }

    pub(super) fn on_restarted_outside(
        &mut self,
        now: Instant,
        name: &str,
        old: u32,
        pid: u32,
        out: &mut Vec<Action>,
    ) {
        let Some(i) = self.find(name) else { return };
        let u = &mut self.units[i];
        let running = matches!(u.state, State::Running { pending_stop: None });
        if u.removed || !u.is_live() {
            // The core had already seen the old process end: a start like `systemctl start`.
            self.on_started_outside(now, name, pid, out);
            return;
        }
        if !running || u.pid != Some(old) {
            // The core is stopping it (its end comes as an exit), or it tracks another process.
            return;
        }
        u.pid = Some(pid);
        u.running_since = Some(now);
        u.succeeded = false;
        if u.plan.health.is_some() {
            u.healthy = false;
            u.probe.begin(now);
        }
        u.set(now, State::Running { pending_stop: None }, None);
        report(
            out,
            name,
            ReportKind::Started,
            format!("restarted outside sysg (pid {old} -> {pid}); following it"),
        );
    }
}
