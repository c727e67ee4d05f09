//! Cron jobs in the core: when a run is due, whether it runs or is skipped, how it ended, and the
//! last runs of every job.
//!
//! A job is not a service: nothing depends on it, it is never restarted and it has no settle
//! window (a run that ends after 5 ms with exit 0 is a success). Jobs are therefore kept apart
//! from `Core::units`; every event reaches this file first (`cron_event`), and the service code
//! ignores the names it does not know.
//!
//! Schedules are wall-clock. The core never reads a clock: the runtime passes the wall time
//! with each event (`Core::handle_at`) and the core converts the next due time into a monotonic
//! deadline. Because a wall clock can be stepped (NTP, suspend), such a deadline is never more
//! than `WALL_RECHECK` away, so a step delays a run by at most that much.
//!
//! Two drivers, one behaviour:
//! - `Supervisor`: at the due time the core starts the run (`Action::Start`).
//! - `Timer`: a backend timer (a systemd `.timer`) starts the runs; the core arms it
//!   (`Action::ArmTimer`) and learns about each elapse (`Event::Elapsed`) and run
//!   (`Event::Started`/`Exited`) from the backend, so history and skips are recorded the same way.
//!   If the timer cannot be created (`Event::TimerFailed`) the job falls back to `Supervisor`.
//!
//! Rules (also in STATES.md):
//! - A run due while the previous one is live is skipped and recorded as skipped (a warning,
//!   not a failure).
//! - A run is judged by its exit status alone; a failed run stays failed (no restart) and the
//!   schedule goes on.
//! - Runs missed while nothing was scheduling (the supervisor was down, the clock jumped) are
//!   not replayed: after a gap one run happens for the latest due time, then the schedule
//!   resumes.
//! - A job whose dependencies do not hold when a run is due skips that run.

mod history;
mod job;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use super::deps::{self, Check, Mode};
use super::unit::report;
use super::{Action, Core, Event, ReportKind, Request, UnitId, UnitView};
use crate::config::schema::Dependency;
use crate::config::CronSchedule;
use crate::spec::{ExitStatus, UnitSpec};

pub use history::{CronRun, CronStatus, Driver, RunResult};
pub(crate) use job::Job;
use job::{driver_of, Due, Run, StopWhy};

/// Runs kept per job (older ones are dropped).
pub const HISTORY_LEN: usize = 10;

/// The longest the core waits before looking at the wall clock again while a schedule is armed.
pub const WALL_RECHECK: Duration = Duration::from_secs(60);

/// A run counts as due this much before its time: the runtime reads the monotonic and the wall
/// clock one after the other, and without this a deadline could wake the loop a hair early
/// and spin once more.
pub(super) const EARLY: chrono::Duration = chrono::Duration::milliseconds(1);

/// What the core needs to know about one configured cron job.
#[derive(Debug, Clone)]
pub struct JobPlan {
    pub name: UnitId,
    pub spec: Arc<UnitSpec>,
    /// Services that must hold their condition when a run is due; otherwise the run is skipped.
    pub depends_on: Vec<Dependency>,
    /// The expression as the user wrote it (for display and for change detection).
    pub expression: String,
    pub schedule: Arc<CronSchedule>,
    /// systemd `OnCalendar=` form when a backend timer runs the job; `None`: the core does.
    pub calendar: Option<String>,
}

impl PartialEq for JobPlan {
    fn eq(&self, other: &JobPlan) -> bool {
        self.name == other.name
            && self.spec == other.spec
            && self.depends_on == other.depends_on
            && self.expression == other.expression
            && self.schedule.timezone() == other.schedule.timezone()
            && self.calendar == other.calendar
    }
}

impl Core {
    /// A core for this plan of services and cron jobs; nothing starts until a `Request::Start`.
    pub fn with_jobs(plan: Vec<super::UnitPlan>, jobs: Vec<JobPlan>) -> Core {
        let mut core = Core::new(plan);
        let mut seen = std::collections::HashSet::new();
        core.jobs = jobs
            .into_iter()
            .filter(|j| seen.insert(j.name.clone()) && core.find(&j.name).is_none())
            .map(Job::new)
            .collect();
        core
    }

    /// Feed one event at monotonic time `now` and wall-clock time `wall` (which cron schedules
    /// are written in). The runtime calls this; `handle` alone extrapolates the wall clock from
    /// the last one given.
    pub fn handle_at(&mut self, now: Instant, wall: DateTime<Utc>, event: Event) -> Vec<Action> {
        self.clock = Some((now, wall));
        self.handle(now, event)
    }

    /// Put back the history an earlier supervisor persisted. A run it recorded as live stays
    /// open until it is adopted or the job is armed (then it ended unseen).
    pub fn restore_cron(&mut self, mut saved: BTreeMap<String, Vec<CronRun>>) {
        for job in &mut self.jobs {
            let Some(runs) = saved.remove(&job.plan.name) else {
                continue;
            };
            job.history.clear();
            job.current = None;
            for run in runs {
                if run.result == RunResult::Running {
                    // Only the newest can still be live; older ones ended unseen.
                    if let Some(mut older) = job.current.replace(run) {
                        older.result = RunResult::Failed;
                        older.status = Some(ExitStatus::Unknown);
                        job.record(older);
                    }
                } else {
                    job.record(run);
                }
            }
            job.last_exit = job.history.back().and_then(|r| r.status);
        }
    }

    /// Jobs whose backend timer may exist: a supervisor that dies leaves these behind, and
    /// the state file says so (`sysg stop` then removes them).
    pub fn armed_timers(&self) -> Vec<UnitId> {
        self.jobs
            .iter()
            .filter(|j| j.timer_up)
            .map(|j| j.plan.name.clone())
            .collect()
    }

    /// Every job's history (finished, skipped and the running one), for the state file.
    pub fn cron_histories(&self) -> BTreeMap<String, Vec<CronRun>> {
        self.jobs
            .iter()
            .map(|j| (j.plan.name.clone(), j.status().history))
            .collect()
    }

    /// The schedule, next run and history of one job; `None` for services and unknown names.
    pub fn cron_status(&self, name: &str) -> Option<CronStatus> {
        self.jobs.iter().find(|j| j.name() == name).map(Job::status)
    }

    /// Views of the jobs, after the services in `units()`.
    pub(crate) fn job_views(&self) -> impl Iterator<Item = UnitView> + '_ {
        self.jobs.iter().map(Job::view)
    }

    /// Every job's name, in the order of `job_views`.
    pub(crate) fn job_names(&self) -> impl Iterator<Item = String> + '_ {
        self.jobs.iter().map(|j| j.plan.name.clone())
    }

    /// Some job has a process.
    pub(crate) fn jobs_live(&self) -> bool {
        self.jobs.iter().any(Job::is_live)
    }

    /// The earliest time a `Tick` has cron work to do.
    pub(crate) fn cron_deadline(&self) -> Option<Instant> {
        self.jobs
            .iter()
            .filter_map(|j| j.deadline(self.clock))
            .min()
    }

    /// The wall-clock time at `now`: the last one the runtime gave, moved on by the monotonic
    /// time since. `None` before the runtime gave any.
    pub(super) fn wall_at(&self, now: Instant) -> Option<DateTime<Utc>> {
        let (mono, wall) = self.clock?;
        if now < mono {
            let before = chrono::Duration::from_std(mono.duration_since(now)).ok()?;
            return wall.checked_sub_signed(before);
        }
        let since = chrono::Duration::from_std(now.saturating_duration_since(mono)).ok()?;
        Some(wall + since)
    }

    fn job_index(&self, name: &str) -> Option<usize> {
        self.jobs.iter().position(|j| j.name() == name)
    }

    fn job_indices(&self, names: &Option<Vec<UnitId>>) -> Vec<usize> {
        match names {
            None => (0..self.jobs.len()).collect(),
            Some(names) => {
                let mut v: Vec<usize> = names.iter().filter_map(|n| self.job_index(n)).collect();
                v.sort_unstable();
                v.dedup();
                v
            }
        }
    }

    /// The cron side of one event. Runs before the service code, which ignores job names.
    pub(crate) fn cron_event(&mut self, now: Instant, event: &Event, out: &mut Vec<Action>) {
        let wall = self.wall_at(now);
        match event {
            Event::Request(r) => self.cron_request(now, wall, r, out),
            Event::Started { unit, pid } => self.job_started(now, wall, unit, *pid, out),
            Event::StartFailed { unit, error } => {
                self.job_start_failed(now, wall, unit, error, out)
            }
            Event::Exited { unit, pid, status } => {
                self.job_exited(now, wall, unit, *pid, (*status, None), out)
            }
            Event::ExecFailed { unit, pid, error } => {
                let end = (ExitStatus::Code(127), Some(error.as_str()));
                self.job_exited(now, wall, unit, *pid, end, out)
            }
            Event::Adopted { unit, pid } => self.job_adopted(now, unit, *pid, out),
            Event::Elapsed { unit } => self.job_elapsed(wall, unit, out),
            Event::TimerFailed { unit, error } => {
                let Some(j) = self.job_index(unit) else {
                    return;
                };
                let job = &mut self.jobs[j];
                if job.driver != Driver::SystemdTimer {
                    return;
                }
                job.driver = Driver::Supervisor;
                job.timer_up = false;
                report(
                    out,
                    unit,
                    ReportKind::Warning,
                    format!("no backend timer ({error}); the supervisor schedules this job"),
                );
            }
            // Probes and deployments concern services only.
            Event::Tick | Event::ProbeResult { .. } | Event::Deploy(_) | Event::MainExited(_) => {}
            // `Core::handle` splits a batch into single `Adopted` events, and turns a refusal
            // for a name that is not a service into `StartFailed`, before they get here.
            Event::AdoptedAll(_) | Event::StartRefused { .. } => {}
            // A run stopped outside sysg ended; one started outside is not a scheduled run.
            Event::StoppedOutside { unit, pid, status } => {
                self.job_exited(now, wall, unit, *pid, (*status, None), out)
            }
            Event::StartedOutside { .. }
            | Event::RestartedOutside { .. }
            | Event::Notify { .. }
            | Event::ReloadSent { .. } => {}
        }
    }

    /// Due runs and kill deadlines: called after every event, once the services are reconciled.
    pub(crate) fn cron_due(&mut self, now: Instant, out: &mut Vec<Action>) {
        let wall = self.wall_at(now);
        for j in 0..self.jobs.len() {
            let job = &mut self.jobs[j];
            if let Run::Stopping { kill_at, .. } = &mut job.run {
                if kill_at.is_some_and(|t| t <= now) {
                    *kill_at = None;
                    out.push(Action::Kill {
                        unit: job.plan.name.clone(),
                    });
                    report(
                        out,
                        &job.plan.name,
                        ReportKind::Stopped,
                        "stop timeout reached, killing the run".into(),
                    );
                }
            }
            let Some(wall) = wall else { continue };
            let Some(due) = job.advance(wall) else {
                continue;
            };
            if job.driver == Driver::SystemdTimer && !job.is_live() {
                // The timer starts this run; `Started` (or `Elapsed`) takes the due time.
                continue;
            }
            if let Some((_, consumed)) = &mut job.last_due {
                *consumed = true;
            }
            if job.is_live() {
                job.skip(due, "the previous run is still running".into(), out);
                if job.driver == Driver::SystemdTimer && !job.rearm {
                    // A systemd timer does not skip: it fires as soon as the live run ends.
                    // Without a timer until then, the rule is the same on both drivers; the
                    // timer is created again when the run is over (`flush_rearm`).
                    job.timer_up = false;
                    out.push(Action::DisarmTimer {
                        unit: job.plan.name.clone(),
                    });
                    job.rearm = true;
                }
                continue;
            }
            match self.job_deps(j) {
                Check::Satisfied => {
                    let job = &mut self.jobs[j];
                    job.start(now, wall, Some(due), out);
                    // Far behind (the machine slept, the clock was stepped): one late run
                    // stands for every due time that passed.
                    if (wall - due).to_std().is_ok_and(|late| late > WALL_RECHECK) {
                        if let Some(c) = &mut job.current {
                            c.note = Some(
                                "late: the system slept or the clock jumped; later missed runs are not replayed"
                                    .into(),
                            );
                        }
                    }
                }
                Check::Pending(why) | Check::Broken(why) => {
                    let job = &mut self.jobs[j];
                    job.reason = Some(format!("runs are skipped: {why}"));
                    job.skip(due, why, out);
                }
            }
        }
    }

    /// Whether job `j`'s dependencies allow a run now.
    fn job_deps(&self, j: usize) -> Check {
        let mut pending = None;
        for d in &self.jobs[j].plan.depends_on {
            let dep = self.find(&d.service).map(|i| &self.units[i]);
            match deps::check(dep, &d.service, d.condition, Mode::Start) {
                Check::Broken(r) => return Check::Broken(r),
                Check::Pending(r) => {
                    pending.get_or_insert(r);
                }
                Check::Satisfied => {}
            }
        }
        pending.map_or(Check::Satisfied, Check::Pending)
    }

    fn cron_request(
        &mut self,
        now: Instant,
        wall: Option<DateTime<Utc>>,
        request: &Request,
        out: &mut Vec<Action>,
    ) {
        match request {
            Request::Start(names) => {
                let picked = self.job_indices(names);
                for &j in &picked {
                    self.jobs[j].arm(now, out);
                }
                // Like a service, a named job brings up what it depends on.
                if names.is_some() {
                    let needed: Vec<UnitId> = picked
                        .iter()
                        .flat_map(|&j| self.jobs[j].plan.depends_on.iter())
                        .map(|d| d.service.clone())
                        .collect();
                    let seeds = self.resolve(&needed);
                    for i in deps::with_dependencies(&self.units, &seeds) {
                        self.want(now, i, false);
                    }
                }
            }
            Request::Stop(names) => {
                for j in self.job_indices(names) {
                    self.jobs[j].disarm(now, out);
                }
            }
            Request::Restart(None) => {
                // Restarting everything re-arms the schedules; it does not run every job now.
                for j in 0..self.jobs.len() {
                    self.jobs[j].arm(now, out);
                }
            }
            Request::Restart(Some(names)) => {
                for j in self.job_indices(&Some(names.clone())) {
                    let job = &mut self.jobs[j];
                    job.arm(now, out);
                    if job.is_live() {
                        job.begin_stop(now, StopWhy::Again, out);
                    } else if let Some(wall) = wall {
                        job.start(now, wall, None, out);
                    }
                }
            }
            // Reload of services and ad-hoc units: jobs are replaced by `ReloadJobs` only.
            Request::Reload(_) | Request::Add(_) | Request::Forget(_) => {}
            Request::ReloadJobs(plans) => self.reload_jobs(now, plans.clone(), out),
        }
    }

    fn reload_jobs(&mut self, now: Instant, plans: Vec<JobPlan>, out: &mut Vec<Action>) {
        let mut old: Vec<Option<Job>> = std::mem::take(&mut self.jobs)
            .into_iter()
            .map(Some)
            .collect();
        let mut next = Vec::with_capacity(plans.len());
        let mut seen = std::collections::HashSet::new();
        for p in plans {
            if !seen.insert(p.name.clone()) || self.find(&p.name).is_some() {
                continue;
            }
            let existing = old
                .iter_mut()
                .find(|o| o.as_ref().is_some_and(|j| j.plan.name == p.name))
                .and_then(Option::take);
            match existing {
                Some(mut job) => {
                    if job.plan != p {
                        if job.plan.calendar.is_some() {
                            job.timer_up = false;
                            out.push(Action::DisarmTimer {
                                unit: job.plan.name.clone(),
                            });
                        }
                        // A live run finishes with the old spec; the next run uses the new one.
                        job.driver = driver_of(&p);
                        job.plan = p;
                        job.next_due = Due::Unknown;
                        job.rearm = job.driver == Driver::SystemdTimer;
                        job.flush_rearm(out);
                    }
                    next.push(job);
                }
                None => {
                    let mut job = Job::new(p);
                    // Like an added service, an added job is wanted: its schedule starts.
                    job.arm(now, out);
                    next.push(job);
                }
            }
        }
        for mut job in old.into_iter().flatten() {
            job.armed = false;
            if job.plan.calendar.is_some() {
                job.timer_up = false;
                out.push(Action::DisarmTimer {
                    unit: job.plan.name.clone(),
                });
            }
            if job.is_live() {
                job.begin_stop(now, StopWhy::Remove, out);
                next.push(job);
            } else {
                report(
                    out,
                    job.name(),
                    ReportKind::Stopped,
                    "removed from the plan".into(),
                );
            }
        }
        self.jobs = next;
        out.push(Action::Persist);
    }

    fn job_started(
        &mut self,
        now: Instant,
        wall: Option<DateTime<Utc>>,
        name: &str,
        pid: u32,
        out: &mut Vec<Action>,
    ) {
        let Some(j) = self.job_index(name) else {
            return;
        };
        let job = &mut self.jobs[j];
        match &mut job.run {
            Run::Starting => {
                job.set(now, Run::Running { pid });
                if let Some(c) = &mut job.current {
                    c.pid = Some(pid);
                }
                report(
                    out,
                    name,
                    ReportKind::Started,
                    format!("run started (pid {pid})"),
                );
                out.push(Action::Persist);
            }
            Run::Stopping {
                pid: p @ None,
                signal,
                timeout,
                kill_at,
                ..
            } => {
                // Stopped while the start was in flight: deliver the stop now.
                *p = Some(pid);
                *kill_at = now.checked_add(*timeout);
                out.push(Action::Signal {
                    unit: name.to_string(),
                    signal: *signal,
                });
                if let Some(c) = &mut job.current {
                    c.pid = Some(pid);
                }
            }
            Run::Idle => {
                // A run the core did not start: the backend timer fired (or a trigger, or
                // someone started the unit by hand). Its due time may have passed just now.
                if let Some(wall) = wall {
                    job.advance(wall);
                }
                let mut note = None;
                let mut scheduled = match job.awaiting.take() {
                    Some(s) => s,
                    None => job.take_due(),
                };
                if scheduled.is_none() {
                    // The timer fired for a due time recorded as skipped (the previous run
                    // ended between the due time and the timer's removal): it did run.
                    let due = job.last_due.map(|(d, _)| d);
                    let skip = job
                        .history
                        .iter()
                        .rposition(|r| r.skipped && due.is_some() && r.scheduled == due);
                    if let Some(i) = skip {
                        job.history.remove(i);
                        scheduled = due;
                        note = Some("late: started as soon as the previous run ended".into());
                    } else {
                        note = Some("run by request".into());
                    }
                }
                let mut entry = CronRun::running(scheduled, wall);
                entry.pid = Some(pid);
                entry.note = note;
                job.current = Some(entry);
                job.set(now, Run::Running { pid });
                job.reason = None;
                report(
                    out,
                    name,
                    ReportKind::Started,
                    format!("run started (pid {pid})"),
                );
                out.push(Action::Persist);
                if !job.armed {
                    // The job was stopped: a run that starts anyway (a timer that fired on its
                    // way out) is stopped too.
                    job.begin_stop(now, StopWhy::User, out);
                }
            }
            // Already known (the same run reported twice) or stale.
            Run::Running { .. } | Run::Stopping { .. } => {}
        }
    }

    fn job_start_failed(
        &mut self,
        now: Instant,
        wall: Option<DateTime<Utc>>,
        name: &str,
        error: &str,
        out: &mut Vec<Action>,
    ) {
        let Some(j) = self.job_index(name) else {
            return;
        };
        let job = &mut self.jobs[j];
        let awaited = job.awaiting.take();
        let why = match job.run {
            Run::Stopping { why, pid: None, .. } => Some(why),
            Run::Starting => None,
            _ if awaited.is_some() => None,
            _ => return,
        };
        let mut entry = job
            .current
            .take()
            .unwrap_or_else(|| CronRun::running(awaited.flatten(), wall));
        entry.ended = wall;
        entry.result = RunResult::Failed;
        entry.note = Some(format!("start failed: {error}"));
        job.record(entry);
        report(
            out,
            name,
            ReportKind::Failed,
            format!("run could not start: {error}"),
        );
        self.finish_run(now, j, why, out);
    }

    fn job_exited(
        &mut self,
        now: Instant,
        wall: Option<DateTime<Utc>>,
        name: &str,
        pid: u32,
        // The exit status, and why the run never ran its command (its exec failed), if so.
        (status, exec_error): (ExitStatus, Option<&str>),
        out: &mut Vec<Action>,
    ) {
        let Some(j) = self.job_index(name) else {
            return;
        };
        let job = &mut self.jobs[j];
        if job.pid() != Some(pid) {
            return;
        }
        let why = match job.run {
            Run::Stopping { why, .. } => Some(why),
            _ => None,
        };
        let result = if status.success() {
            RunResult::Success
        } else if why.is_some() {
            RunResult::Stopped
        } else {
            RunResult::Failed
        };
        let mut entry = job
            .current
            .take()
            .unwrap_or_else(|| CronRun::running(None, None));
        entry.pid = Some(pid);
        entry.ended = wall;
        entry.status = Some(status);
        entry.result = result;
        if let Some(error) = exec_error {
            entry.note = Some(format!("start failed: {error}"));
        }
        job.record(entry);
        job.last_exit = Some(status);
        match result {
            RunResult::Failed => {
                let what = match exec_error {
                    Some(error) => format!("run could not start: {error}"),
                    None => format!("run failed: {status}"),
                };
                report(out, name, ReportKind::Failed, what);
            }
            _ => report(
                out,
                name,
                ReportKind::Exited,
                format!("run finished: {status}"),
            ),
        }
        self.finish_run(now, j, why, out);
    }

    /// The live run of job `j` is over (after a stop for `why`, if any).
    fn finish_run(&mut self, now: Instant, j: usize, why: Option<StopWhy>, out: &mut Vec<Action>) {
        let wall = self.wall_at(now);
        let job = &mut self.jobs[j];
        job.set(now, Run::Idle);
        out.push(Action::Persist);
        if why == Some(StopWhy::Remove) {
            report(
                out,
                job.name(),
                ReportKind::Stopped,
                "removed from the plan".into(),
            );
            self.jobs.remove(j);
            return;
        }
        // The timer first: a run by request goes through the timer's service.
        job.flush_rearm(out);
        match why {
            Some(StopWhy::Again) if job.armed => {
                if let Some(wall) = wall {
                    job.start(now, wall, None, out);
                }
            }
            Some(StopWhy::User) => {
                report(out, job.name(), ReportKind::Stopped, "stopped".into());
            }
            _ => {}
        }
    }

    fn job_adopted(&mut self, now: Instant, name: &str, pid: u32, out: &mut Vec<Action>) {
        let Some(j) = self.job_index(name) else {
            return;
        };
        let job = &mut self.jobs[j];
        if job.is_live() {
            return;
        }
        let mut entry = job.current.take().unwrap_or_else(|| {
            let mut e = CronRun::running(None, None);
            e.note = Some("found running after a supervisor restart".into());
            e
        });
        entry.pid = Some(pid);
        job.current = Some(entry);
        job.set(now, Run::Running { pid });
        report(
            out,
            name,
            ReportKind::Started,
            format!("adopted a running run (pid {pid})"),
        );
        out.push(Action::Persist);
    }

    fn job_elapsed(&mut self, wall: Option<DateTime<Utc>>, name: &str, out: &mut Vec<Action>) {
        let Some(j) = self.job_index(name) else {
            return;
        };
        let job = &mut self.jobs[j];
        if !job.armed || job.driver != Driver::SystemdTimer {
            return;
        }
        if let Some(wall) = wall {
            job.advance(wall);
        }
        // A due time already taken (by the run's own `Started`, or by a skip) needs nothing.
        let Some(due) = job.take_due() else {
            return;
        };
        if job.is_live() {
            job.skip(due, "the previous run is still running".into(), out);
        } else {
            job.awaiting = Some(Some(due));
        }
    }
}

#[cfg(test)]
mod tests;
