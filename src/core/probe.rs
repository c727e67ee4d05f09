//! A unit's probe bookkeeping: its health, the probe in flight and when the next is due, and
//! the fast retries until a probe first passes. The rules that drive them are in health.rs
//! (and STATES.md); this is the state they keep in each `Unit`.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::config::schema::HealthCheck;

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
