//! Health probes as the core sees them: when the next probe is due, what a result means, and
//! when a unit turns unhealthy. The probing itself is the runtime's (src/health/): the core
//! emits `Action::Probe` and gets `Event::ProbeResult` back.
//!
//! Rules (also in STATES.md): the first probe runs as soon as the process started, the next
//! `interval` after each result (probes of one unit never overlap). Until a probe has passed
//! for the current process, failed probes are repeated on a fast schedule
//! ([`Warmup`](super::probe::Warmup): 100 ms after the result, doubling up to
//! `start_interval`), so a service is found up as soon as it
//! is; only the failures on the regular schedule (a probe begun at least `interval` after the
//! previous such one's result; the first probe is one) count, so a verdict comes no sooner
//! than with probes every `interval`. Failures within `start_period` of the start do not
//! count unless a probe already passed. `retries` consecutive counted failures make the unit
//! unhealthy: it is stopped like a crash and goes through the restart policy; its dependents
//! are cascaded. Probes run only while the unit is `Running` with no stop decided; a result
//! for another probe than the one in flight (an older process, a probe given up on) is
//! ignored.

use std::time::Instant;

use super::notice::{notify, NoticeKind};
use super::probe::{Health, ProbeState, PROBE_GRACE};
use super::unit::{report, State, StopWhy, Unit};
use super::{Action, Core, ReportKind};

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
