//! How a unit's process ends: a failed start, an exit, a failed exec; the restart policy that
//! follows an ending nobody asked for, and where a stop lands once the process is gone.

use super::*;

impl Core {
    pub(super) fn on_start_failed(
        &mut self,
        now: Instant,
        name: &str,
        ending: Ending,
        out: &mut Vec<Action>,
    ) {
        let Some(i) = self.find(name) else { return };
        match &self.units[i].state {
            State::Starting => self.after_ending(now, i, ending, true, out),
            State::Stopping {
                why,
                signalled: false,
                ..
            } => {
                let why = why.clone();
                self.finish_stop(now, i, why, None, out);
            }
            _ => {}
        }
    }

    pub(super) fn on_exited(
        &mut self,
        now: Instant,
        name: &str,
        pid: u32,
        status: ExitStatus,
        out: &mut Vec<Action>,
    ) {
        self.process_ended(now, name, pid, Ending::Exit(status), out);
    }

    /// Like an exit, except that to the restart policy it is a failed start, with its reason.
    pub(super) fn on_exec_failed(
        &mut self,
        now: Instant,
        name: &str,
        pid: u32,
        error: String,
        out: &mut Vec<Action>,
    ) {
        self.process_ended(now, name, pid, Ending::StartFailed(error), out);
    }

    /// The unit's process `pid` is gone, as `ending` says (an exit, or a start that failed in
    /// the child).
    pub(super) fn process_ended(
        &mut self,
        now: Instant,
        name: &str,
        pid: u32,
        ending: Ending,
        out: &mut Vec<Action>,
    ) {
        let Some(i) = self.find(name) else { return };
        let u = &mut self.units[i];
        // Only the current process counts: anything else is an old, already handled one.
        if u.pid != Some(pid) {
            return;
        }
        // A child that could not run the command gives up with 127, as a shell does.
        let status = match &ending {
            Ending::Exit(status) => *status,
            _ => ExitStatus::Code(127),
        };
        // Ended before it counted as up: inside its settle window, or it never ran.
        let early = u.up_at.is_some()
            || u.ready.awaiting.is_some()
            || matches!(ending, Ending::StartFailed(_));
        u.ready.end();
        u.pid = None;
        u.healthy = false;
        u.up_at = None;
        u.probe.end();
        u.last_exit = Some(status);
        if let Ending::Exit(status) = &ending {
            notify(
                out,
                name,
                NoticeKind::Exit,
                Some(pid),
                Some(*status),
                format!("exited: {status}"),
            );
        }
        match &u.state {
            State::Running {
                pending_stop: Some(why),
            }
            | State::Stopping { why, .. } => {
                let why = why.clone();
                self.finish_stop(now, i, why, Some(status), out);
            }
            _ => self.after_ending(now, i, ending, early, out),
        }
    }

    /// The process of unit `i` ended (or never started) without being asked to: apply policy.
    /// What follows an ending of unit `i`; `early` when it ended before counting as up.
    pub(super) fn after_ending(
        &mut self,
        now: Instant,
        i: usize,
        ending: Ending,
        early: bool,
        out: &mut Vec<Action>,
    ) {
        let u = &mut self.units[i];
        u.failing_start = None;
        let name = u.plan.name.clone();
        if u.running_since
            .is_some_and(|t| now.saturating_duration_since(t) >= STABLE_RUN)
        {
            u.consecutive = 0;
        }
        u.running_since = None;
        if let Ending::Exit(status) = &ending {
            report(out, &name, ReportKind::Exited, format!("exited: {status}"));
        }
        // An unhealthy verdict was announced when it was made; other bad endings here.
        if !ending.success() && !matches!(ending, Ending::Unhealthy(_)) {
            let status = match &ending {
                Ending::Exit(s) => Some(*s),
                _ => None,
            };
            notify(
                out,
                &name,
                NoticeKind::Failure,
                None,
                status,
                ending.describe(),
            );
        }
        let decision = policy::decide(
            u.plan.restart,
            u.plan.backoff,
            u.plan.max_restarts,
            u.consecutive,
            &ending,
        );
        match decision {
            Decision::Completed => {
                u.succeeded = true;
                u.set(now, State::Completed, None);
            }
            Decision::Failed(reason) => {
                u.succeeded = false;
                report(out, &name, ReportKind::Failed, reason.clone());
                u.set(now, State::Failed, Some(reason));
            }
            Decision::Restart { delay, nth } => {
                u.consecutive = nth;
                u.restarts = u.restarts.saturating_add(1);
                u.succeeded = ending.success();
                let what = ending.describe();
                if early {
                    u.failing_start = Some(what.clone());
                }
                let message = format!("{what}; restarting in {delay:?} (restart {nth})");
                report(out, &name, ReportKind::Restarting, message.clone());
                notify(out, &name, NoticeKind::Restart, None, None, message);
                u.set(
                    now,
                    State::Backoff {
                        at: now.checked_add(delay),
                    },
                    Some(what),
                );
            }
        }
    }

    /// The process of unit `i` is gone after a stop (or never came): land where `why` says.
    pub(super) fn finish_stop(
        &mut self,
        now: Instant,
        i: usize,
        why: StopWhy,
        status: Option<ExitStatus>,
        out: &mut Vec<Action>,
    ) {
        if let StopWhy::Unhealthy(what) = why {
            // Stopped because it was unhealthy: a failure, for the restart policy to handle.
            if let Some(st) = status {
                let name = &self.units[i].plan.name;
                report(out, name, ReportKind::Exited, format!("exited: {st}"));
            }
            let early = self.take_start_failed(i);
            self.after_ending(now, i, Ending::Unhealthy(what), early, out);
            return;
        }
        let u = &mut self.units[i];
        let name = u.plan.name.clone();
        u.running_since = None;
        let how = status.map(|s| format!(" ({s})")).unwrap_or_default();
        let (kind, message) = match why {
            StopWhy::User => {
                u.set(now, State::Stopped, None);
                (ReportKind::Stopped, format!("stopped{how}"))
            }
            StopWhy::Cascade(reason) => {
                let message = format!("stopped{how}: {reason}");
                u.set(now, State::Blocked, Some(reason));
                (ReportKind::Stopped, message)
            }
            StopWhy::Restart if u.wanted => {
                u.fresh(now);
                (
                    ReportKind::Restarting,
                    format!("stopped{how}; restarting on request"),
                )
            }
            StopWhy::Restart => {
                u.set(now, State::Stopped, None);
                (ReportKind::Stopped, format!("stopped{how}"))
            }
            StopWhy::Remove => {
                self.units.remove(i);
                self.rebuild();
                (
                    ReportKind::Stopped,
                    format!("stopped{how}; removed from the plan"),
                )
            }
            StopWhy::Unhealthy(_) => return,
        };
        report(out, &name, kind, message.clone());
        let notice = match kind {
            ReportKind::Restarting => NoticeKind::Restart,
            _ => NoticeKind::Stop,
        };
        notify(out, &name, notice, None, status, message);
    }
}
