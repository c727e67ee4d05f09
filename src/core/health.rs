//! Health probes as the core sees them: when the next probe is due, what a result means, and
//! when a unit turns unhealthy. The probing itself is the runtime's (src/health/): the core
//! emits `Action::Probe` and gets `Event::ProbeResult` back.
//!
//! Rules (also in STATES.md): the first probe runs as soon as the process started, the next
//! `interval` after each result (probes of one unit never overlap). Until a probe has passed
//! for the current process, failed probes are repeated on a fast schedule ([`Warmup`]: 100 ms
//! after the result, doubling up to `start_interval`), so a service is found up as soon as it
//! is; only the failures on the regular schedule (a probe begun at least `interval` after the
//! previous such one's result; the first probe is one) count, so a verdict comes no sooner
//! than with probes every `interval`. Failures within `start_period` of the start do not
//! count unless a probe already passed. `retries` consecutive counted failures make the unit
//! unhealthy: it is stopped like a crash and goes through the restart policy; its dependents
//! are cascaded. Probes run only while the unit is `Running` with no stop decided; a result
//! for another probe than the one in flight (an older process, a probe given up on) is
//! ignored.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::config::schema::HealthCheck;

use super::notice::{notify, NoticeKind};
use super::unit::{report, State, StopWhy, Unit};
use super::{Action, Core, ReportKind};

/// Time granted to a probe beyond its own timeout before the core counts it as failed. The
/// runtime bounds every probe by its timeout; this only guards against a lost result.
pub const PROBE_GRACE: Duration = Duration::from_secs(2);

/// Delay before the first fast retry of a failed probe while a unit has not yet passed one.
pub const WARMUP_FIRST: Duration = Duration::from_millis(100);

/// Probe pacing until the first pass: fast retries to notice a service up at once, and the
/// regular schedule ("slots") that alone decides which failures count.
#[derive(Debug, Clone, Default)]
pub(crate) struct Warmup {
    /// A failed probe begun at or after this is on the regular schedule (`None`: off).
    slot: Option<Instant>,
    /// Delay before the next fast retry.
    step: Duration,
}

impl Warmup {
    /// The process started at `now`; its first probe (due at once) is on the schedule.
    pub(crate) fn new(now: Instant) -> Warmup {
        Warmup {
            slot: Some(now),
            step: WARMUP_FIRST,
        }
    }

    /// A probe begun at `issued` failed at `now`. Returns whether the failure is on the
    /// regular schedule (only those may count towards `retries`), and when to probe next:
    /// after the fast step (100 ms, doubling, capped by `start_interval`), and never later
    /// than the next slot, `interval` after this result when it was on the schedule.
    pub(crate) fn failed(
        &mut self,
        issued: Instant,
        now: Instant,
        check: &HealthCheck,
    ) -> (bool, Option<Instant>) {
        let on_slot = self.slot.is_some_and(|s| issued >= s);
        if on_slot {
            self.slot = now.checked_add(check.interval);
        }
        let step = self
            .step
            .min(check.start_interval)
            .max(Duration::from_millis(1));
        self.step = step.saturating_mul(2);
        let fast = now.checked_add(step);
        let next = match (fast, self.slot) {
            (Some(f), Some(s)) => Some(f.min(s)),
            (f, s) => f.or(s),
        };
        (on_slot, next)
    }
}

/// Health of a unit with a health check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Health {
    /// No probe has passed yet for the current process.
    Starting,
    /// The last probe passed, or fewer than `retries` failed since.
    Healthy,
    /// `retries` consecutive probes failed.
    Unhealthy,
}

impl Health {
    /// `starting`, `healthy` or `unhealthy`.
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Starting => "starting",
            Health::Healthy => "healthy",
            Health::Unhealthy => "unhealthy",
        }
    }
}

/// Probe bookkeeping of one unit, reset for every new process.
#[derive(Debug, Clone, Default)]
pub(crate) struct ProbeState {
    /// `None` until the unit's first process with a health check.
    pub(crate) status: Option<Health>,
    /// When the current process started (start_period is counted from it).
    pub(crate) started: Option<Instant>,
    /// When the next probe is due (`None` while one is in flight or probing is off).
    pub(crate) next_at: Option<Instant>,
    /// The probe in flight and when the core gives up waiting for its result.
    pub(crate) in_flight: Option<(u64, Option<Instant>)>,
    /// When the probe in flight was issued.
    pub(crate) issued: Option<Instant>,
    /// Fast retries and the regular schedule until a probe passes.
    pub(crate) warmup: Warmup,
    /// Consecutive failures since the last pass (all of them, for humans).
    pub(crate) streak: u32,
    /// Consecutive failures that count towards `retries`.
    pub(crate) counted: u32,
    /// A probe passed for the current process.
    pub(crate) passed: bool,
    /// What the last failed probe said.
    pub(crate) last_error: Option<String>,
}

impl ProbeState {
    /// A new process started at `now`: probe it at once.
    pub(crate) fn begin(&mut self, now: Instant) {
        *self = ProbeState {
            status: Some(Health::Starting),
            started: Some(now),
            next_at: Some(now),
            warmup: Warmup::new(now),
            ..ProbeState::default()
        };
    }

    /// The process is gone or going: no more probes, results in flight become stale. The
    /// status stays for `sysg status` (an unhealthy verdict remains visible in backoff).
    pub(crate) fn end(&mut self) {
        self.next_at = None;
        self.in_flight = None;
    }

    /// The earliest probe timer.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        let give_up = self.in_flight.and_then(|(_, t)| t);
        match (self.next_at, give_up) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// "3 probes failed: connection refused", or `None` when the last probe passed.
    pub(crate) fn failures(&self) -> Option<String> {
        if self.streak == 0 {
            return None;
        }
        let n = self.streak;
        let what = if n == 1 { "probe" } else { "probes" };
        Some(match &self.last_error {
            Some(e) => format!("{n} {what} failed: {e}"),
            None => format!("{n} {what} failed"),
        })
    }
}

/// The health check of `u` changed while its process may keep running (a unit not wanted,
/// or already going down, is not restarted by a reload): probe that process afresh under the
/// new check, or go back to settle-window readiness without one.
pub(crate) fn replanned(now: Instant, u: &mut Unit) {
    if !matches!(u.state, State::Running { .. }) {
        return;
    }
    if u.plan.health.is_some() {
        u.healthy = false;
        u.probe.begin(now);
    } else {
        u.probe = ProbeState::default();
        u.healthy = u.up_at.is_none();
    }
}

impl Core {
    /// Emit `Action::Probe` for every running unit whose next probe is due at `now`.
    pub(crate) fn issue_probes(&mut self, now: Instant, out: &mut Vec<Action>) {
        for u in &mut self.units {
            let Some(check) = u.plan.health.clone() else {
                continue;
            };
            let probing = matches!(u.state, State::Running { pending_stop: None });
            if !probing || u.pid.is_none() || u.probe.in_flight.is_some() {
                continue;
            }
            if u.probe.next_at.is_none_or(|t| t > now) {
                continue;
            }
            self.probe_seq += 1;
            let id = self.probe_seq;
            let give_up = now
                .checked_add(check.timeout)
                .and_then(|t| t.checked_add(PROBE_GRACE));
            u.probe.next_at = None;
            u.probe.in_flight = Some((id, give_up));
            u.probe.issued = Some(now);
            out.push(Action::Probe {
                unit: u.plan.name.clone(),
                probe: id,
                check,
                spec: u.plan.spec.clone(),
            });
        }
    }

    /// A probe answered.
    pub(crate) fn on_probe_result(
        &mut self,
        now: Instant,
        name: &str,
        probe: u64,
        ok: bool,
        detail: String,
        out: &mut Vec<Action>,
    ) {
        let Some(i) = self.find(name) else { return };
        let u = &self.units[i];
        if u.probe.in_flight.map(|(id, _)| id) != Some(probe) {
            return;
        }
        self.record(now, i, ok, detail, out);
    }

    /// Give up on probes whose result is overdue: they count as failures.
    pub(crate) fn probe_timeouts(&mut self, now: Instant, out: &mut Vec<Action>) {
        for i in 0..self.units.len() {
            let overdue = self.units[i]
                .probe
                .in_flight
                .is_some_and(|(_, t)| t.is_some_and(|t| t <= now));
            if overdue {
                let timeout = self.units[i]
                    .plan
                    .health
                    .as_ref()
                    .map(|c| c.timeout)
                    .unwrap_or_default();
                self.record(now, i, false, format!("no answer within {timeout:?}"), out);
            }
        }
    }

    /// Apply one probe outcome to unit `i` (whose probe was in flight).
    fn record(&mut self, now: Instant, i: usize, ok: bool, detail: String, out: &mut Vec<Action>) {
        let u = &mut self.units[i];
        u.probe.in_flight = None;
        let issued = u.probe.issued.take().unwrap_or(now);
        let Some(check) = u.plan.health.clone() else {
            return;
        };
        if !matches!(u.state, State::Running { pending_stop: None }) {
            // Going down meanwhile: the result no longer matters.
            return;
        }
        let name = u.plan.name.clone();
        u.probe.next_at = now.checked_add(check.interval);
        if ok {
            u.probe.streak = 0;
            u.probe.counted = 0;
            u.probe.passed = true;
            u.probe.last_error = None;
            if u.probe.status != Some(Health::Healthy) {
                u.probe.status = Some(Health::Healthy);
                report(out, &name, ReportKind::Healthy, "healthy".to_string());
            }
            if !u.healthy {
                u.healthy = true;
                notify(
                    out,
                    &name,
                    NoticeKind::Ready,
                    u.pid,
                    None,
                    "healthy".to_string(),
                );
            }
            return;
        }
        u.probe.streak = u.probe.streak.saturating_add(1);
        u.probe.last_error = Some(detail.clone());
        if !u.probe.passed {
            let (on_slot, next) = u.probe.warmup.failed(issued, now, &check);
            u.probe.next_at = next;
            if !on_slot {
                tracing::debug!(unit = %name, "fast probe failed: {detail}");
                return;
            }
        }
        let in_start_period = !u.probe.passed
            && u.probe
                .started
                .and_then(|s| s.checked_add(check.start_period))
                .is_some_and(|end| now < end);
        if in_start_period {
            tracing::debug!(unit = %name, "probe failed during start_period: {detail}");
            return;
        }
        u.probe.counted = u.probe.counted.saturating_add(1);
        if u.probe.counted < check.retries.max(1) {
            return;
        }
        // Unhealthy: handled like a crash. The process is stopped with its stop signal (and
        // killed after stop_timeout); its exit goes through the restart policy.
        let what = format!(
            "unhealthy ({})",
            u.probe.failures().unwrap_or_else(|| "probe failed".into())
        );
        u.probe.status = Some(Health::Unhealthy);
        u.probe.end();
        u.healthy = false;
        report(out, &name, ReportKind::Unhealthy, what.clone());
        notify(out, &name, NoticeKind::Unhealthy, u.pid, None, what.clone());
        u.begin_stop(now, StopWhy::Unhealthy(what), out);
    }
}
