//! Scenario tests of cron jobs in the core: simulated monotonic and wall-clock time moved
//! together, simulated processes that run for a set time, never a real clock.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use super::*;
use crate::config::schema::{DepCondition, Dependency};
use crate::config::CronSchedule;
use crate::core::test_support::{spec, unit_plan};
use crate::core::{Action, Core, Event, ReportKind, Request, StateKind, UnitPlan};
use crate::spec::ExitStatus;

fn job(name: &str, expr: &str, tz: &str) -> JobPlan {
    JobPlan {
        name: name.into(),
        spec: spec(name),
        depends_on: Vec::new(),
        expression: expr.into(),
        schedule: Arc::new(CronSchedule::parse(expr, Some(tz)).unwrap()),
        calendar: None,
    }
}

fn timer_job(name: &str, expr: &str) -> JobPlan {
    JobPlan {
        calendar: Some(format!("calendar of {expr}")),
        ..job(name, expr, "UTC")
    }
}

fn service(name: &str) -> UnitPlan {
    unit_plan(spec(name))
}

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// How a simulated run behaves: how long it takes (`None`: until stopped) and how it ends.
#[derive(Clone, Copy)]
struct Behaviour {
    takes: Option<Duration>,
    status: ExitStatus,
}

const QUICK: Behaviour = Behaviour {
    takes: Some(Duration::from_millis(5)),
    status: ExitStatus::Code(0),
};

/// The core with a simulated world: both clocks, and processes that end on their own time.
struct Sim {
    core: Core,
    t0: Instant,
    w0: DateTime<Utc>,
    at: Duration,
    next_pid: u32,
    behaviour: HashMap<String, Behaviour>,
    /// (when, unit, pid, status) of processes that will end.
    exits: Vec<(Duration, String, u32, ExitStatus)>,
    /// Live processes by unit.
    live: HashMap<String, u32>,
    /// Every `Action::Start`, with the wall time it was issued.
    starts: Vec<(String, DateTime<Utc>)>,
    reports: Vec<(String, ReportKind, String)>,
    actions: Vec<Action>,
}

impl Sim {
    fn new(services: Vec<UnitPlan>, jobs: Vec<JobPlan>, wall: &str) -> Sim {
        Sim {
            core: Core::with_jobs(services, jobs),
            t0: Instant::now(),
            w0: utc(wall),
            at: Duration::ZERO,
            next_pid: 1000,
            behaviour: HashMap::new(),
            exits: Vec::new(),
            live: HashMap::new(),
            starts: Vec::new(),
            reports: Vec::new(),
            actions: Vec::new(),
        }
    }

    fn now(&self) -> Instant {
        self.t0 + self.at
    }

    fn wall(&self) -> DateTime<Utc> {
        self.w0 + chrono::Duration::from_std(self.at).unwrap()
    }

    fn send(&mut self, ev: Event) -> Vec<Action> {
        let acts = self.core.handle_at(self.now(), self.wall(), ev);
        self.actions.extend(acts.iter().cloned());
        for a in &acts {
            self.carry_out(a);
        }
        acts
    }

    fn carry_out(&mut self, a: &Action) {
        match a {
            Action::Start { unit, .. } => {
                assert!(
                    !self.live.contains_key(unit),
                    "{unit} started while its previous run is live"
                );
                self.starts.push((unit.clone(), self.wall()));
                self.next_pid += 1;
                let pid = self.next_pid;
                self.live.insert(unit.clone(), pid);
                let b = self.behaviour.get(unit).copied().unwrap_or(QUICK);
                if let Some(t) = b.takes {
                    self.exits.push((self.at + t, unit.clone(), pid, b.status));
                }
                self.send(Event::Started {
                    unit: unit.clone(),
                    pid,
                });
            }
            Action::Signal { unit, signal } => {
                if let Some(&pid) = self.live.get(unit) {
                    self.exits.retain(|e| e.2 != pid);
                    self.exits.push((
                        self.at + ms(1),
                        unit.clone(),
                        pid,
                        ExitStatus::Signal(*signal),
                    ));
                }
            }
            Action::Report {
                unit,
                kind,
                message,
            } => self.reports.push((unit.clone(), *kind, message.clone())),
            _ => {}
        }
    }

    /// Let time pass until `wall`, delivering due ticks and process exits in order.
    fn run_to(&mut self, wall: DateTime<Utc>) {
        let end = (wall - self.w0).to_std().unwrap();
        for _ in 0..1_000_000 {
            let exit = self
                .exits
                .iter()
                .enumerate()
                .min_by_key(|(_, e)| e.0)
                .map(|(i, e)| (i, e.0));
            let deadline = self
                .core
                .next_deadline()
                .map(|d| d.saturating_duration_since(self.t0));
            let next = match (exit, deadline) {
                (Some((_, e)), Some(d)) => e.min(d),
                (Some((_, e)), None) => e,
                (None, Some(d)) => d,
                (None, None) => break,
            };
            if next > end {
                break;
            }
            self.at = self.at.max(next);
            match exit {
                Some((i, e)) if e <= next => {
                    let (_, unit, pid, status) = self.exits.remove(i);
                    self.live.remove(&unit);
                    self.send(Event::Exited { unit, pid, status });
                }
                _ => {
                    self.send(Event::Tick);
                }
            }
        }
        self.at = end.max(self.at);
        self.send(Event::Tick);
    }

    fn starts_of(&self, unit: &str) -> Vec<DateTime<Utc>> {
        self.starts
            .iter()
            .filter(|(u, _)| u == unit)
            .map(|(_, t)| *t)
            .collect()
    }

    fn cron(&self, name: &str) -> CronStatus {
        self.core.cron_status(name).unwrap()
    }

    fn state(&self, name: &str) -> StateKind {
        self.core.unit(name).unwrap().state
    }

    fn count(&self, kind: ReportKind) -> usize {
        self.reports.iter().filter(|r| r.1 == kind).count()
    }
}

#[test]
fn per_second_job_runs_on_every_second_and_a_5ms_run_is_a_success() {
    let mut sim = Sim::new(
        vec![],
        vec![job("tick", "* * * * * *", "UTC")],
        "2026-05-01T12:00:00.300Z",
    );
    sim.send(Event::Request(Request::Start(None)));
    assert_eq!(sim.state("tick"), StateKind::Scheduled);
    assert_eq!(sim.cron("tick").next_run, Some(utc("2026-05-01T12:00:01Z")));
    sim.run_to(utc("2026-05-01T12:00:10.500Z"));
    let starts = sim.starts_of("tick");
    let want: Vec<_> = (1..=10)
        .map(|s| utc(&format!("2026-05-01T12:00:{s:02}Z")))
        .collect();
    assert_eq!(starts, want);
    let c = sim.cron("tick");
    assert_eq!(c.history.len(), HISTORY_LEN);
    for (r, t) in c.history.iter().zip(&want) {
        assert_eq!(r.result, RunResult::Success);
        assert_eq!(r.scheduled, Some(*t));
        assert_eq!(r.started, Some(*t));
        assert_eq!(r.ended, Some(*t + chrono::Duration::milliseconds(5)));
        assert_eq!(r.status, Some(ExitStatus::Code(0)));
        assert!(!r.skipped);
    }
    assert_eq!(sim.count(ReportKind::Failed), 0);
    assert_eq!(sim.state("tick"), StateKind::Scheduled);
}

#[test]
fn next_runs_follow_each_jobs_time_zone() {
    let mut sim = Sim::new(
        vec![],
        vec![
            job("tokyo", "0 0 9 * * *", "Asia/Tokyo"),
            job("ny", "0 9 * * *", "America/New_York"),
        ],
        "2026-06-01T00:30:00Z",
    );
    sim.send(Event::Request(Request::Start(None)));
    sim.run_to(utc("2026-06-03T23:00:00Z"));
    assert_eq!(
        sim.starts_of("tokyo"),
        [utc("2026-06-02T00:00:00Z"), utc("2026-06-03T00:00:00Z")]
    );
    // 09:00 EDT is 13:00 UTC.
    assert_eq!(
        sim.starts_of("ny"),
        [
            utc("2026-06-01T13:00:00Z"),
            utc("2026-06-02T13:00:00Z"),
            utc("2026-06-03T13:00:00Z")
        ]
    );
}

#[test]
fn dst_fall_back_runs_once_per_wall_clock_time() {
    let mut sim = Sim::new(
        vec![],
        vec![
            job("half", "*/30 * * * *", "America/New_York"),
            job("daily", "0 30 1 * * *", "America/New_York"),
        ],
        "2027-11-07T03:50:00Z", // 23:50 EDT on the 6th
    );
    sim.send(Event::Request(Request::Start(None)));
    sim.run_to(utc("2027-11-08T08:00:00Z"));
    let half: Vec<_> = sim
        .starts_of("half")
        .into_iter()
        .filter(|t| *t <= utc("2027-11-07T08:00:00Z"))
        .collect();
    // 00:00, 00:30, 01:00, 01:30 EDT; the repeated 01:00 and 01:30 (EST) do not run again;
    // then 02:00, 02:30, 03:00 EST.
    assert_eq!(
        half,
        [
            utc("2027-11-07T04:00:00Z"),
            utc("2027-11-07T04:30:00Z"),
            utc("2027-11-07T05:00:00Z"),
            utc("2027-11-07T05:30:00Z"),
            utc("2027-11-07T07:00:00Z"),
            utc("2027-11-07T07:30:00Z"),
            utc("2027-11-07T08:00:00Z"),
        ]
    );
    assert_eq!(
        sim.starts_of("daily"),
        [utc("2027-11-07T05:30:00Z"), utc("2027-11-08T06:30:00Z")]
    );
}

#[test]
fn dst_spring_forward_skips_the_missing_time() {
    let mut sim = Sim::new(
        vec![],
        vec![job("night", "30 2 * * *", "America/New_York")],
        "2027-03-13T00:00:00Z",
    );
    sim.send(Event::Request(Request::Start(None)));
    sim.run_to(utc("2027-03-16T00:00:00Z"));
    // 2027-03-14 02:30 does not exist in New York.
    assert_eq!(
        sim.starts_of("night"),
        [utc("2027-03-13T07:30:00Z"), utc("2027-03-15T06:30:00Z")]
    );
}

#[test]
fn a_run_due_while_the_previous_runs_is_skipped_and_recorded() {
    let mut sim = Sim::new(
        vec![],
        vec![job("slow", "* * * * * *", "UTC")],
        "2026-05-01T12:00:00.500Z",
    );
    sim.behaviour.insert(
        "slow".into(),
        Behaviour {
            takes: Some(ms(2500)),
            status: ExitStatus::Code(0),
        },
    );
    sim.send(Event::Request(Request::Start(None)));
    // `carry_out` asserts that no start ever happens while a run is live.
    sim.run_to(utc("2026-05-01T12:00:07.900Z"));
    assert_eq!(
        sim.starts_of("slow"),
        [
            utc("2026-05-01T12:00:01Z"),
            utc("2026-05-01T12:00:04Z"),
            utc("2026-05-01T12:00:07Z")
        ]
    );
    let h = sim.cron("slow").history;
    let shape: Vec<(u32, RunResult)> = h
        .iter()
        .map(|r| {
            let s = r.scheduled.unwrap() - utc("2026-05-01T12:00:00Z");
            (s.num_seconds() as u32, r.result)
        })
        .collect();
    use RunResult::*;
    assert_eq!(
        shape,
        [
            (1, Success),
            (2, Skipped),
            (3, Skipped),
            (4, Success),
            (5, Skipped),
            (6, Skipped),
            (7, Running)
        ]
    );
    let skip = &h[1];
    assert!(skip.skipped && skip.started.is_none() && skip.status.is_none());
    assert_eq!(
        skip.note.as_deref(),
        Some("the previous run is still running")
    );
    // A skip is a warning, not a failure.
    assert_eq!(sim.count(ReportKind::Skipped), 4);
    assert_eq!(sim.count(ReportKind::Failed), 0);
    assert!(sim.reports.iter().any(|r| r.1 == ReportKind::Skipped
        && r.2 == "run due at 2026-05-01T12:00:02Z skipped: the previous run is still running"));
}

#[test]
fn history_keeps_the_last_ten() {
    let mut sim = Sim::new(
        vec![],
        vec![job("j", "* * * * *", "UTC")],
        "2026-05-01T12:00:30Z",
    );
    sim.send(Event::Request(Request::Start(None)));
    sim.run_to(utc("2026-05-01T12:15:30Z"));
    assert_eq!(sim.starts_of("j").len(), 15);
    let h = sim.cron("j").history;
    assert_eq!(h.len(), HISTORY_LEN);
    assert_eq!(h[0].scheduled, Some(utc("2026-05-01T12:06:00Z")));
    assert_eq!(h[9].scheduled, Some(utc("2026-05-01T12:15:00Z")));
    // The same ring is what gets persisted.
    assert_eq!(sim.core.cron_histories()["j"], h);
}

#[test]
fn a_failed_run_is_recorded_and_never_restarted() {
    let mut sim = Sim::new(
        vec![],
        vec![job("bad", "* * * * *", "UTC")],
        "2026-05-01T12:00:30Z",
    );
    sim.behaviour.insert(
        "bad".into(),
        Behaviour {
            takes: Some(ms(5)),
            status: ExitStatus::Code(3),
        },
    );
    sim.send(Event::Request(Request::Start(None)));
    sim.run_to(utc("2026-05-01T12:01:59Z"));
    // Exactly one run per minute: the failure brought no restart.
    assert_eq!(sim.starts_of("bad"), [utc("2026-05-01T12:01:00Z")]);
    assert_eq!(sim.state("bad"), StateKind::Scheduled);
    let v = sim.core.unit("bad").unwrap();
    assert_eq!(v.last_exit, Some(ExitStatus::Code(3)));
    assert_eq!(v.restarts, 0);
    let h = sim.cron("bad").history;
    assert_eq!(h.len(), 1);
    assert_eq!(h[0].result, RunResult::Failed);
    assert_eq!(h[0].status, Some(ExitStatus::Code(3)));
    assert_eq!(sim.count(ReportKind::Failed), 1);
    assert_eq!(sim.count(ReportKind::Restarting), 0);
    // Signals are failures too.
    sim.behaviour.insert(
        "bad".into(),
        Behaviour {
            takes: Some(ms(5)),
            status: ExitStatus::Signal(9),
        },
    );
    sim.run_to(utc("2026-05-01T12:02:30Z"));
    assert_eq!(sim.cron("bad").history[1].result, RunResult::Failed);
}

#[test]
fn settled_and_idle_do_not_wait_for_cron_runs_unless_a_process_lives() {
    let mut sim = Sim::new(
        vec![service("web")],
        vec![job("j", "* * * * * *", "UTC")],
        "2026-05-01T12:00:00.900Z",
    );
    sim.behaviour.insert(
        "web".into(),
        Behaviour {
            takes: None,
            status: ExitStatus::Code(0),
        },
    );
    sim.behaviour.insert(
        "j".into(),
        Behaviour {
            takes: Some(ms(30_000)),
            status: ExitStatus::Code(0),
        },
    );
    sim.send(Event::Request(Request::Start(None)));
    sim.run_to(utc("2026-05-01T12:00:01.100Z"));
    assert_eq!(sim.state("j"), StateKind::Running);
    assert!(sim.core.settled(None));
    assert!(sim.core.settled(Some(&["j".to_string()])));
    // A live run is a process: the supervisor is not idle until it is gone.
    sim.send(Event::Request(Request::Stop(None)));
    assert!(!sim.core.idle());
    sim.run_to(utc("2026-05-01T12:00:02Z"));
    assert!(sim.core.idle());
}

#[test]
fn stop_disarms_and_stops_a_live_run_and_start_arms_again() {
    let mut sim = Sim::new(
        vec![],
        vec![job("j", "* * * * *", "UTC")],
        "2026-05-01T12:00:30Z",
    );
    sim.behaviour.insert(
        "j".into(),
        Behaviour {
            takes: Some(ms(40_000)),
            status: ExitStatus::Code(0),
        },
    );
    sim.send(Event::Request(Request::Start(Some(vec!["j".into()]))));
    sim.run_to(utc("2026-05-01T12:01:10Z"));
    assert_eq!(sim.state("j"), StateKind::Running);
    let acts = sim.send(Event::Request(Request::Stop(Some(vec!["j".into()]))));
    assert!(acts.contains(&Action::Signal {
        unit: "j".into(),
        signal: 15
    }));
    assert_eq!(sim.state("j"), StateKind::Stopping);
    sim.run_to(utc("2026-05-01T12:05:00Z"));
    assert_eq!(sim.state("j"), StateKind::Stopped);
    assert_eq!(sim.starts_of("j").len(), 1, "no run after the stop");
    let c = sim.cron("j");
    assert!(!c.armed);
    assert_eq!(c.next_run, None);
    assert_eq!(c.history[0].result, RunResult::Stopped);
    assert_eq!(c.history[0].status, Some(ExitStatus::Signal(15)));

    sim.behaviour.insert("j".into(), QUICK);
    sim.send(Event::Request(Request::Start(Some(vec!["j".into()]))));
    assert_eq!(sim.state("j"), StateKind::Scheduled);
    assert_eq!(sim.cron("j").next_run, Some(utc("2026-05-01T12:06:00Z")));
    sim.run_to(utc("2026-05-01T12:06:30Z"));
    assert_eq!(sim.starts_of("j").len(), 2);
}

#[test]
fn runs_missed_while_not_watching_are_not_replayed() {
    let mut sim = Sim::new(
        vec![],
        vec![job("j", "* * * * *", "UTC")],
        "2026-05-01T12:00:30Z",
    );
    sim.send(Event::Request(Request::Start(None)));
    sim.run_to(utc("2026-05-01T12:01:30Z"));
    assert_eq!(sim.starts_of("j").len(), 1);
    // The machine slept for an hour (the monotonic clock did not move, the wall clock did):
    // one run for the latest due time, then the schedule resumes.
    sim.w0 += chrono::Duration::hours(1);
    sim.send(Event::Tick);
    assert_eq!(
        sim.starts_of("j")[1..],
        [utc("2026-05-01T13:01:30Z")],
        "one run, at once"
    );
    let late = sim.cron("j").history.last().cloned().unwrap();
    assert_eq!(late.scheduled, Some(utc("2026-05-01T12:02:00Z")));
    assert_eq!(late.started, Some(utc("2026-05-01T13:01:30Z")));
    assert!(late.note.unwrap_or_default().starts_with("late"));
    assert_eq!(sim.cron("j").next_run, Some(utc("2026-05-01T13:02:00Z")));

    // A new supervisor an hour later gets the history back and runs nothing until the next
    // due time.
    sim.run_to(utc("2026-05-01T13:01:40Z"));
    let saved = sim.core.cron_histories();
    let mut next = Sim::new(
        vec![],
        vec![job("j", "* * * * *", "UTC")],
        "2026-05-01T14:10:30Z",
    );
    next.core.restore_cron(saved.clone());
    let acts = next.send(Event::Request(Request::Start(None)));
    assert!(!acts.iter().any(|a| matches!(a, Action::Start { .. })));
    assert_eq!(next.cron("j").next_run, Some(utc("2026-05-01T14:11:00Z")));
    assert_eq!(next.cron("j").history, saved["j"]);
}

#[test]
fn a_run_live_at_a_supervisor_restart_is_adopted_or_closed() {
    let mut sim = Sim::new(
        vec![],
        vec![job("j", "* * * * *", "UTC")],
        "2026-05-01T12:00:30Z",
    );
    sim.behaviour.insert(
        "j".into(),
        Behaviour {
            takes: None,
            status: ExitStatus::Code(0),
        },
    );
    sim.send(Event::Request(Request::Start(None)));
    sim.run_to(utc("2026-05-01T12:01:10Z"));
    let pid = sim.live["j"];
    let saved = sim.core.cron_histories();
    assert_eq!(saved["j"][0].result, RunResult::Running);

    // Adopted: the run goes on and its end is recorded.
    let mut a = Sim::new(
        vec![],
        vec![job("j", "* * * * *", "UTC")],
        "2026-05-01T12:01:20Z",
    );
    a.core.restore_cron(saved.clone());
    a.send(Event::Adopted {
        unit: "j".into(),
        pid,
    });
    a.send(Event::Request(Request::Start(None)));
    assert_eq!(a.state("j"), StateKind::Running);
    a.send(Event::Exited {
        unit: "j".into(),
        pid,
        status: ExitStatus::Unknown,
    });
    let h = a.cron("j").history;
    assert_eq!(h.len(), 1);
    assert_eq!(h[0].scheduled, Some(utc("2026-05-01T12:01:00Z")));
    assert_eq!(h[0].ended, Some(utc("2026-05-01T12:01:20Z")));
    assert_eq!(h[0].status, Some(ExitStatus::Unknown));

    // Gone by then: arming closes it as ended unseen.
    let mut b = Sim::new(
        vec![],
        vec![job("j", "* * * * *", "UTC")],
        "2026-05-01T12:01:20Z",
    );
    b.core.restore_cron(saved);
    b.send(Event::Request(Request::Start(None)));
    let h = b.cron("j").history;
    assert_eq!(h.len(), 1);
    assert_eq!(h[0].result, RunResult::Failed);
    assert_eq!(h[0].status, Some(ExitStatus::Unknown));
    assert_eq!(
        h[0].note.as_deref(),
        Some("ended while no supervisor was watching")
    );
}

#[test]
fn restart_by_request_runs_now_and_a_live_run_first_stops() {
    let mut sim = Sim::new(
        vec![],
        vec![job("j", "0 3 * * *", "UTC")],
        "2026-05-01T12:00:00Z",
    );
    sim.behaviour.insert(
        "j".into(),
        Behaviour {
            takes: Some(ms(10_000)),
            status: ExitStatus::Code(0),
        },
    );
    sim.send(Event::Request(Request::Start(None)));
    sim.send(Event::Request(Request::Restart(Some(vec!["j".into()]))));
    assert_eq!(sim.starts_of("j"), [utc("2026-05-01T12:00:00Z")]);
    sim.run_to(utc("2026-05-01T12:00:01Z"));
    sim.send(Event::Request(Request::Restart(Some(vec!["j".into()]))));
    sim.run_to(utc("2026-05-01T12:00:30Z"));
    assert_eq!(sim.starts_of("j").len(), 2);
    let h = sim.cron("j").history;
    assert_eq!(h[0].result, RunResult::Stopped);
    assert_eq!(h[0].scheduled, None);
    assert_eq!(h[0].note.as_deref(), Some("run by request"));
    assert_eq!(h[1].result, RunResult::Success);
    // Restarting everything re-arms, it does not run every job.
    sim.send(Event::Request(Request::Restart(None)));
    assert_eq!(sim.starts_of("j").len(), 2);
    assert_eq!(sim.cron("j").next_run, Some(utc("2026-05-02T03:00:00Z")));
}

#[test]
fn runs_are_skipped_while_a_dependency_does_not_hold() {
    let mut j = job("report", "* * * * *", "UTC");
    j.depends_on = vec![Dependency {
        service: "db".into(),
        condition: DepCondition::Started,
    }];
    let mut sim = Sim::new(vec![service("db")], vec![j], "2026-05-01T12:00:30Z");
    sim.behaviour.insert(
        "db".into(),
        Behaviour {
            takes: None,
            status: ExitStatus::Code(0),
        },
    );
    // Arming the job brings up what it depends on; db is then stopped.
    sim.send(Event::Request(Request::Start(Some(vec!["report".into()]))));
    assert_eq!(sim.state("db"), StateKind::Running);
    sim.send(Event::Request(Request::Stop(Some(vec!["db".into()]))));
    sim.run_to(utc("2026-05-01T12:01:30Z"));
    assert_eq!(sim.state("db"), StateKind::Stopped);
    assert!(sim.starts_of("report").is_empty());
    let h = sim.cron("report").history;
    assert_eq!(h[0].result, RunResult::Skipped);
    assert!(h[0].note.as_deref().unwrap_or("").contains("db"), "{h:?}");
    assert!(sim.core.unit("report").unwrap().reason.is_some());
    sim.send(Event::Request(Request::Start(Some(vec!["db".into()]))));
    sim.run_to(utc("2026-05-01T12:02:30Z"));
    assert_eq!(sim.starts_of("report"), [utc("2026-05-01T12:02:00Z")]);
    assert_eq!(sim.core.unit("report").unwrap().reason, None);
}

#[test]
fn a_deadline_is_never_far_from_a_wall_clock_check() {
    let mut sim = Sim::new(
        vec![],
        vec![job("d", "@daily", "UTC")],
        "2026-05-01T12:00:00Z",
    );
    sim.send(Event::Request(Request::Start(None)));
    let d = sim.core.next_deadline().unwrap();
    assert_eq!(d.saturating_duration_since(sim.now()), WALL_RECHECK);
    // The clock is stepped forward past midnight while the loop sleeps: the recheck runs it.
    sim.w0 += chrono::Duration::hours(12);
    sim.at = WALL_RECHECK;
    sim.send(Event::Tick);
    assert_eq!(sim.starts_of("d").len(), 1);
    // Disarmed: no deadline at all.
    sim.run_to(sim.wall() + chrono::Duration::seconds(1));
    sim.send(Event::Request(Request::Stop(None)));
    assert_eq!(sim.core.next_deadline(), None);
}

#[test]
fn an_exhausted_schedule_does_not_spin() {
    let mut sim = Sim::new(
        vec![],
        vec![job("once", "0 0 0 1 1 * 2020", "UTC")],
        "2026-05-01T12:00:00Z",
    );
    sim.send(Event::Request(Request::Start(None)));
    assert_eq!(sim.core.next_deadline(), None);
    assert_eq!(sim.cron("once").next_run, None);
    assert_eq!(sim.state("once"), StateKind::Scheduled);
}

#[test]
fn reload_adds_changes_and_removes_jobs() {
    let mut sim = Sim::new(
        vec![],
        vec![job("a", "* * * * *", "UTC"), job("b", "* * * * *", "UTC")],
        "2026-05-01T12:00:30Z",
    );
    sim.behaviour.insert(
        "b".into(),
        Behaviour {
            takes: None,
            status: ExitStatus::Code(0),
        },
    );
    sim.send(Event::Request(Request::Start(None)));
    sim.run_to(utc("2026-05-01T12:01:10Z"));
    assert_eq!(sim.state("b"), StateKind::Running);
    let acts = sim.send(Event::Request(Request::ReloadJobs(vec![
        job("a", "0 * * * *", "UTC"),
        job("c", "* * * * *", "UTC"),
    ])));
    // a: new schedule from now on; b: removed, its run is stopped; c: added and armed.
    assert_eq!(sim.cron("a").next_run, Some(utc("2026-05-01T13:00:00Z")));
    assert!(acts.contains(&Action::Signal {
        unit: "b".into(),
        signal: 15
    }));
    assert_eq!(sim.cron("c").next_run, Some(utc("2026-05-01T12:02:00Z")));
    sim.run_to(utc("2026-05-01T12:01:20Z"));
    assert!(sim.core.unit("b").is_none(), "forgotten after its exit");
    assert!(sim.core.cron_status("b").is_none());
}

/// Timer-driven jobs (same helpers as here).
#[path = "timer_tests.rs"]
mod timer_tests;
