//! One cron job's state: its schedule cursor, its live run, its history ring, and the steps
//! the core's event handling (`super`) composes.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, Utc};

use super::history::{CronRun, CronStatus, Driver, RunResult};
use super::{JobPlan, EARLY, HISTORY_LEN, WALL_RECHECK};
use crate::config::CronSchedule;
use crate::core::unit::report;
use crate::core::{Action, ReportKind, StateKind, UnitView};
use crate::spec::ExitStatus;

/// Why a live run is being stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum StopWhy {
    /// A client stopped the job (or the supervisor is shutting down).
    User,
    /// Restart by request: run again right after the exit.
    Again,
    /// Removed by a reload: forget the job after the exit.
    Remove,
}

/// The live run of a job.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Run {
    Idle,
    /// `Action::Start` issued, waiting for `Started`/`StartFailed`.
    Starting,
    Running {
        pid: u32,
    },
    Stopping {
        why: StopWhy,
        pid: Option<u32>,
        signal: i32,
        timeout: Duration,
        kill_at: Option<Instant>,
    },
}

/// The next due time of an armed job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Due {
    /// Not computed yet: the next event with a wall-clock time computes it.
    Unknown,
    At(DateTime<Utc>),
    /// The schedule has no more fires (a past year).
    Never,
}

impl Due {
    pub(super) fn at(self) -> Option<DateTime<Utc>> {
        match self {
            Due::At(t) => Some(t),
            _ => None,
        }
    }

    pub(super) fn after(schedule: &CronSchedule, t: DateTime<Utc>) -> Due {
        schedule.next_after(t).map_or(Due::Never, Due::At)
    }
}

/// One cron job as the core tracks it.
#[derive(Debug, Clone)]
pub(crate) struct Job {
    pub(super) plan: JobPlan,
    pub(super) driver: Driver,
    /// The schedule is active.
    pub(super) armed: bool,
    pub(super) run: Run,
    /// The record of the live run (outside the ring, so skips cannot push it out).
    pub(super) current: Option<CronRun>,
    /// Finished and skipped runs, in the order they became final.
    pub(super) history: VecDeque<CronRun>,
    /// The next due time; computed lazily from the wall clock once armed.
    pub(super) next_due: Due,
    /// The latest due time that passed, and whether a run or a skip already took it.
    pub(super) last_due: Option<(DateTime<Utc>, bool)>,
    /// Timer driver: a run the timer (or a trigger) is about to start, with its schedule time.
    pub(super) awaiting: Option<Option<DateTime<Utc>>>,
    /// The backend timer must be (re)created once no run is live.
    pub(super) rearm: bool,
    /// An `ArmTimer` went out and no `DisarmTimer` since: the backend may have a timer.
    pub(super) timer_up: bool,
    pub(super) since: Option<Instant>,
    pub(super) reason: Option<String>,
    pub(super) last_exit: Option<ExitStatus>,
}

impl Job {
    pub(super) fn new(plan: JobPlan) -> Job {
        Job {
            driver: driver_of(&plan),
            plan,
            armed: false,
            run: Run::Idle,
            current: None,
            history: VecDeque::new(),
            next_due: Due::Unknown,
            last_due: None,
            awaiting: None,
            rearm: false,
            timer_up: false,
            since: None,
            reason: None,
            last_exit: None,
        }
    }

    pub(super) fn name(&self) -> &str {
        &self.plan.name
    }

    /// A process exists (or is being created) for this job.
    pub(crate) fn is_live(&self) -> bool {
        self.run != Run::Idle
    }

    pub(super) fn kind(&self) -> StateKind {
        match self.run {
            Run::Idle if self.armed => StateKind::Scheduled,
            Run::Idle => StateKind::Stopped,
            Run::Starting => StateKind::Starting,
            Run::Running { .. } => StateKind::Running,
            Run::Stopping { .. } => StateKind::Stopping,
        }
    }

    pub(super) fn pid(&self) -> Option<u32> {
        match self.run {
            Run::Running { pid } => Some(pid),
            Run::Stopping { pid, .. } => pid,
            _ => None,
        }
    }

    pub(crate) fn view(&self) -> UnitView {
        UnitView {
            name: self.plan.name.clone(),
            state: self.kind(),
            pid: self.pid(),
            since: self.since,
            restarts: 0,
            last_exit: self.last_exit,
            reason: self.reason.clone(),
            next_restart: None,
            health: None,
            adopted: false,
        }
    }

    pub(super) fn status(&self) -> CronStatus {
        let mut history: Vec<CronRun> = self.history.iter().cloned().collect();
        history.extend(self.current.clone());
        history.sort_by_key(CronRun::when);
        CronStatus {
            expression: self.plan.expression.clone(),
            timezone: self.plan.schedule.timezone().name().to_string(),
            driver: self.driver,
            armed: self.armed,
            next_run: if self.armed { self.next_due.at() } else { None },
            history,
        }
    }

    /// The earliest time the core has to look at this job again.
    pub(super) fn deadline(&self, anchor: Option<(Instant, DateTime<Utc>)>) -> Option<Instant> {
        let kill = match self.run {
            Run::Stopping { kill_at, .. } => kill_at,
            _ => None,
        };
        let due = match (self.armed, anchor) {
            (true, Some((mono, wall))) => {
                let recheck = mono.checked_add(WALL_RECHECK);
                // Not computed yet: the next event computes it; look again right away.
                let at = match self.next_due {
                    Due::Unknown => Some(mono),
                    Due::At(due) => {
                        let ahead = (due - wall).to_std().unwrap_or(Duration::ZERO);
                        mono.checked_add(ahead)
                    }
                    Due::Never => None,
                };
                match (at, recheck) {
                    (Some(a), Some(r)) => Some(a.min(r)),
                    (a, _) => a,
                }
            }
            _ => None,
        };
        match (kill, due) {
            (Some(k), Some(d)) => Some(k.min(d)),
            (k, d) => k.or(d),
        }
    }

    pub(super) fn set(&mut self, now: Instant, run: Run) {
        self.run = run;
        self.since = Some(now);
    }

    /// Append a final entry to the ring.
    pub(super) fn record(&mut self, entry: CronRun) {
        self.history.push_back(entry);
        while self.history.len() > HISTORY_LEN {
            self.history.pop_front();
        }
    }

    /// Move the clock cursor to `wall`: a due time that passed becomes `last_due` and
    /// `next_due` the first one after `wall`. Returns the due time that just passed, if any;
    /// when several passed (a gap), the first of them stands for all.
    pub(super) fn advance(&mut self, wall: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if !self.armed {
            return None;
        }
        let due = match self.next_due {
            Due::At(due) => due,
            Due::Unknown => {
                self.next_due = Due::after(&self.plan.schedule, wall);
                return None;
            }
            Due::Never => return None,
        };
        if due > wall + EARLY {
            return None;
        }
        // One run however many due times passed: missed runs are not replayed.
        self.next_due = Due::after(&self.plan.schedule, wall.max(due));
        self.last_due = Some((due, false));
        Some(due)
    }

    /// Take the latest due time for a run the backend timer started.
    pub(super) fn take_due(&mut self) -> Option<DateTime<Utc>> {
        match &mut self.last_due {
            Some((due, consumed)) if !*consumed => {
                *consumed = true;
                Some(*due)
            }
            _ => None,
        }
    }

    /// Skip the run due at `due`: record it and warn.
    pub(super) fn skip(&mut self, due: DateTime<Utc>, why: String, out: &mut Vec<Action>) {
        report(
            out,
            &self.plan.name,
            ReportKind::Skipped,
            format!("run due at {} skipped: {why}", stamp(due)),
        );
        self.record(CronRun::skipped(due, why));
        out.push(Action::Persist);
    }

    /// Start a run now (the core's driver) for `scheduled` (`None`: by request).
    pub(super) fn start(
        &mut self,
        now: Instant,
        wall: DateTime<Utc>,
        scheduled: Option<DateTime<Utc>>,
        out: &mut Vec<Action>,
    ) {
        self.reason = None;
        match self.driver {
            Driver::Supervisor => {
                let mut entry = CronRun::running(scheduled, Some(wall));
                if scheduled.is_none() {
                    entry.note = Some("run by request".into());
                }
                self.current = Some(entry);
                out.push(Action::Start {
                    unit: self.plan.name.clone(),
                    spec: self.plan.spec.clone(),
                });
                self.set(now, Run::Starting);
                out.push(Action::Persist);
            }
            Driver::SystemdTimer => {
                // The timer's own service runs it; the run is recorded once the backend
                // reports it (Event::Started).
                self.awaiting = Some(scheduled);
                out.push(Action::Trigger {
                    unit: self.plan.name.clone(),
                });
            }
        }
    }

    /// Begin stopping the live run for `why`.
    pub(super) fn begin_stop(&mut self, now: Instant, why: StopWhy, out: &mut Vec<Action>) {
        let signal = self.plan.spec.stop_signal;
        let timeout = self.plan.spec.stop_timeout;
        match &mut self.run {
            Run::Idle => {}
            Run::Stopping { why: w, .. } => *w = why,
            Run::Starting => self.set(
                now,
                Run::Stopping {
                    why,
                    pid: None,
                    signal,
                    timeout,
                    kill_at: None,
                },
            ),
            Run::Running { pid } => {
                let pid = *pid;
                out.push(Action::Signal {
                    unit: self.plan.name.clone(),
                    signal,
                });
                self.set(
                    now,
                    Run::Stopping {
                        why,
                        pid: Some(pid),
                        signal,
                        timeout,
                        kill_at: now.checked_add(timeout),
                    },
                );
            }
        }
    }

    /// Activate the schedule.
    pub(super) fn arm(&mut self, now: Instant, out: &mut Vec<Action>) {
        if !self.armed {
            self.armed = true;
            self.next_due = Due::Unknown;
            self.last_due = None;
            self.since = Some(now);
            self.reason = None;
            if self.driver == Driver::SystemdTimer {
                self.rearm = true;
            }
        }
        // A run recorded as live by an earlier supervisor that nobody adopted ended unseen.
        if !self.is_live() {
            if let Some(mut entry) = self.current.take() {
                entry.result = RunResult::Failed;
                entry.status = Some(ExitStatus::Unknown);
                entry.note = Some("ended while no supervisor was watching".into());
                self.record(entry);
                out.push(Action::Persist);
            }
        }
        self.flush_rearm(out);
    }

    /// Create the backend timer if one is wanted and no run is live (a timer created while its
    /// service still runs would be refused).
    pub(super) fn flush_rearm(&mut self, out: &mut Vec<Action>) {
        if self.rearm && !self.is_live() && self.armed {
            self.rearm = false;
            if let Some(calendar) = self.plan.calendar.clone() {
                if self.driver == Driver::SystemdTimer {
                    self.timer_up = true;
                    out.push(Action::ArmTimer {
                        unit: self.plan.name.clone(),
                        spec: self.plan.spec.clone(),
                        calendar,
                    });
                }
            }
        }
    }

    /// Deactivate the schedule and stop a live run.
    pub(super) fn disarm(&mut self, now: Instant, out: &mut Vec<Action>) {
        let was = self.armed;
        self.armed = false;
        self.next_due = Due::Unknown;
        self.awaiting = None;
        self.rearm = false;
        if self.plan.calendar.is_some() {
            // Always, even when not armed here: a timer left by a crashed supervisor keeps
            // firing otherwise.
            self.timer_up = false;
            out.push(Action::DisarmTimer {
                unit: self.plan.name.clone(),
            });
        }
        if self.is_live() {
            self.begin_stop(now, StopWhy::User, out);
        } else if was {
            self.since = Some(now);
            report(
                out,
                self.name(),
                ReportKind::Stopped,
                "schedule stopped".into(),
            );
        }
    }
}

pub(super) fn driver_of(plan: &JobPlan) -> Driver {
    if plan.calendar.is_some() {
        Driver::SystemdTimer
    } else {
        Driver::Supervisor
    }
}

/// A time for messages: RFC 3339 in UTC, to the second.
fn stamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}
