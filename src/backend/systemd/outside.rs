//! Stops and starts made outside sysg, as the signal thread sees them: a job sysg did not ask
//! for (`systemctl stop`) makes the unit's end a stop by the operator (`StoppedOutside`), and
//! a unit that ended and is active again with a new main process (`systemctl start`) is
//! reported as `StartedOutside`; a running unit whose main process changed while a job ran
//! and is active again (`systemctl restart`) is reported as `RestartedOutside`. Also: an end whose `active` state systemd folded away.
//!
//! sysg itself never creates jobs on a running service: it stops with `KillUnit` (the core
//! runs the stop sequence), so any job other than the start job is someone else's.

use crate::backend::BackendEvent;

use super::watch::{Track, TrackKind};

impl Track {
    /// A process that died at once can have its `active` folded into the `inactive` systemd
    /// flushed before the start job's result: once that job is over, the state is its end.
    /// Marks the track ended and says so. (Before failed units stayed loaded, the unit's
    /// removal reported such an end; a unit we hold a reference on is never removed.)
    pub fn ended_after_start(&mut self) -> bool {
        let terminal = matches!(self.active_state.as_deref(), Some("inactive" | "failed"));
        if self.kind == TrackKind::Service
            && !self.ended
            && terminal
            && self.job_id == Some(0)
            && self.start_job_result().is_some()
        {
            self.ended = true;
        }
        self.ended
    }

    /// The id of the start job `start` waits for, from its object path.
    pub(super) fn start_job_id(&self) -> Option<u32> {
        self.start_job.as_deref()?.rsplit('/').next()?.parse().ok()
    }

    /// A unit state change: note jobs sysg did not ask for, and a unit that ended and was
    /// started again outside sysg (`systemctl start`), which is reported as started.
    pub(super) fn unit_changed(&mut self, out: &mut Vec<BackendEvent>) {
        let job = self.job_id.unwrap_or(0);
        let up = matches!(
            self.active_state.as_deref(),
            Some("active" | "activating" | "reloading")
        );
        if self.armed && !self.ended && job != 0 && Some(job) != self.start_job_id() {
            self.outside_job = true;
        }
        if job == 0 && up && !self.ended {
            // That job finished and the unit is still up (a reload): no stop.
            self.outside_job = false;
        }
        let restarted = self.main_pid != 0 && self.main_pid != self.pid;
        if self.kind == TrackKind::Service
            && self.armed
            && !self.ended
            && !self.removed
            && self.pid != 0
            && job == 0
            && self.active_state.as_deref() == Some("active")
            && restarted
        {
            // `systemctl restart`: the restart job stopped and started the unit again without
            // it ever being down with no job pending, so no end was reported.
            let old = self.pid;
            self.pid = self.main_pid;
            self.outside_job = false;
            self.exec_main = None;
            self.result = None;
            out.push(BackendEvent::RestartedOutside {
                unit: self.service.clone(),
                old,
                pid: self.pid,
            });
            return;
        }
        if self.kind == TrackKind::Service
            && self.ended
            && self.reported
            && !self.removed
            && self.active_state.as_deref() == Some("active")
            && restarted
        {
            self.pid = self.main_pid;
            self.ended = false;
            self.reported = false;
            self.outside_job = false;
            self.exec_main = None;
            self.result = None;
            out.push(BackendEvent::StartedOutside {
                unit: self.service.clone(),
                pid: self.pid,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::ExitStatus;

    /// A running service track, started by sysg with start job 7, main pid 40.
    fn running() -> Track {
        let mut t = Track::new("db", "sysg-p-db.service");
        t.start_job = Some("/org/freedesktop/systemd1/job/7".into());
        t.jobs_done
            .push(("/org/freedesktop/systemd1/job/7".into(), "done".into()));
        t.armed = true;
        t.seen_active = true;
        t.pid = 40;
        t.main_pid = 40;
        t.active_state = Some("active".into());
        t.job_id = Some(0);
        t
    }

    fn state(t: &mut Track, active: &str, job: u32) -> Vec<BackendEvent> {
        t.active_state = Some(active.into());
        t.job_id = Some(job);
        let mut out = Vec::new();
        t.unit_changed(&mut out);
        out
    }

    fn end(t: &mut Track) -> Option<BackendEvent> {
        t.ended = true;
        t.exec_main = Some((2, 15));
        t.take_exit()
    }

    #[test]
    fn a_stop_job_sysg_did_not_ask_for_is_a_stop_by_the_operator() {
        let mut t = running();
        assert!(state(&mut t, "deactivating", 12).is_empty());
        assert!(state(&mut t, "inactive", 0).is_empty());
        assert_eq!(
            end(&mut t),
            Some(BackendEvent::StoppedOutside {
                unit: "db".into(),
                pid: 40,
                status: ExitStatus::Signal(15)
            })
        );
    }

    #[test]
    fn a_crash_is_an_exit() {
        let mut t = running();
        assert!(state(&mut t, "failed", 0).is_empty());
        assert!(matches!(end(&mut t), Some(BackendEvent::Exited { .. })));
    }

    #[test]
    fn a_job_that_ends_with_the_unit_up_is_forgotten() {
        // `systemctl reload` (or a start job on an active unit): the later crash is a crash.
        let mut t = running();
        state(&mut t, "reloading", 13);
        state(&mut t, "active", 0);
        assert!(!t.outside_job);
        state(&mut t, "failed", 0);
        assert!(matches!(end(&mut t), Some(BackendEvent::Exited { .. })));
    }

    #[test]
    fn the_start_job_itself_is_not_outside() {
        let mut t = running();
        t.armed = true;
        state(&mut t, "activating", 7);
        assert!(!t.outside_job);
    }

    #[test]
    fn active_again_with_a_new_main_pid_is_started_outside_once() {
        let mut t = running();
        state(&mut t, "deactivating", 12);
        state(&mut t, "inactive", 0);
        assert!(end(&mut t).is_some());
        // `systemctl start`: the Service interface (MainPID) comes before the Unit one.
        t.main_pid = 55;
        assert!(state(&mut t, "activating", 14).is_empty());
        assert_eq!(
            state(&mut t, "active", 0),
            vec![BackendEvent::StartedOutside {
                unit: "db".into(),
                pid: 55
            }]
        );
        assert!(state(&mut t, "active", 0).is_empty());
        assert!(!t.ended && !t.outside_job);
        // Its own end is reported again, for the new pid.
        t.exec_main = Some((1, 3));
        t.ended = true;
        assert_eq!(
            t.take_exit(),
            Some(BackendEvent::Exited {
                unit: "db".into(),
                pid: 55,
                status: ExitStatus::Code(3)
            })
        );
    }

    #[test]
    fn a_restart_job_is_a_restart_followed_in_place() {
        let mut t = running();
        // The restart job: the old process ends, the unit is inactive with the job still
        // pending, then it starts again with a new main process.
        assert!(state(&mut t, "deactivating", 15).is_empty());
        t.exec_main = Some((2, 15));
        assert!(state(&mut t, "inactive", 15).is_empty());
        assert!(!t.ended, "not an end: the job is still pending");
        t.main_pid = 61;
        assert!(state(&mut t, "activating", 15).is_empty());
        assert_eq!(
            state(&mut t, "active", 0),
            vec![BackendEvent::RestartedOutside {
                unit: "db".into(),
                old: 40,
                pid: 61
            }]
        );
        assert!(state(&mut t, "active", 0).is_empty(), "reported once");
        assert!(!t.outside_job);
        // A later crash is a crash of the new process.
        t.exec_main = Some((1, 3));
        t.ended = true;
        assert_eq!(
            t.take_exit(),
            Some(BackendEvent::Exited {
                unit: "db".into(),
                pid: 61,
                status: ExitStatus::Code(3)
            })
        );
    }

    #[test]
    fn an_end_folded_into_inactive_counts_once_the_start_job_is_over() {
        let mut t = Track::new("db", "sysg-p-db.service");
        t.start_job = Some("/org/freedesktop/systemd1/job/7".into());
        t.active_state = Some("inactive".into());
        t.job_id = Some(0);
        assert!(!t.ended_after_start(), "no start job result yet");
        t.jobs_done
            .push(("/org/freedesktop/systemd1/job/7".into(), "done".into()));
        assert!(t.ended_after_start());
        // A timer's service is never ended this way.
        let mut r = Track::timer_runs("j", "sysg-p-j.service", 0);
        r.start_job = t.start_job.clone();
        r.jobs_done = t.jobs_done.clone();
        r.active_state = Some("inactive".into());
        r.job_id = Some(0);
        assert!(!r.ended_after_start());
    }
}
