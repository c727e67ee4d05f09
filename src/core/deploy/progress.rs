//! A deployment moving on: commands answered, the candidate's trial and health, promotion,
//! its timers, and the draining of the old process.

use super::*;

impl Core {
    /// The unit whose deployment under way has candidate `key`.
    /// The pid of the candidate of `name`'s deployment under way, once it runs.
    pub(super) fn candidate_pid(&self, name: &str) -> Option<u32> {
        self.book.active.get(name).and_then(|d| match &d.phase {
            Phase::Probing(t) => Some(t.pid),
            Phase::Switching { pid, .. } => Some(*pid),
            _ => None,
        })
    }

    pub(super) fn candidate(&self, key: &str) -> Option<UnitId> {
        let name = service_of(key);
        self.book
            .active
            .get(name)
            .filter(|d| d.key == key)
            .map(|_| name.to_string())
    }

    /// Fail the deployment of `name`; `gone`: its candidate has no process (left) to stop.
    pub(super) fn fail_named(
        &mut self,
        now: Instant,
        name: &str,
        why: &str,
        gone: bool,
        out: &mut Vec<Action>,
    ) {
        if let (Some(i), Some(d)) = (self.find(name), self.book.active.remove(name)) {
            fail(&mut self.book, now, &mut self.units[i], d, why, gone, out);
        }
    }

    pub(super) fn command_done(
        &mut self,
        now: Instant,
        name: &str,
        run: u64,
        ok: bool,
        detail: String,
        out: &mut Vec<Action>,
    ) {
        let Some(i) = self.find(name) else { return };
        let Some(d) = self.book.active.get_mut(name) else {
            return;
        };
        match d.phase {
            Phase::PreStart { run: r, .. } if r == run => {
                if ok {
                    start_candidate(&mut self.units[i], d, out);
                } else {
                    self.fail_named(
                        now,
                        name,
                        &format!("pre_start failed: {detail}"),
                        false,
                        out,
                    );
                }
            }
            Phase::Switching {
                pid, since, run: r, ..
            } if r == run => {
                if ok {
                    self.promote(now, i, pid, since, out);
                } else {
                    self.fail_named(
                        now,
                        name,
                        &format!("switch_command failed: {detail}"),
                        false,
                        out,
                    );
                }
            }
            // A stale answer (the deployment moved on or was replaced).
            _ => {}
        }
    }

    pub(super) fn trial_result(
        &mut self,
        now: Instant,
        name: &str,
        probe: u64,
        ok: bool,
        detail: String,
        out: &mut Vec<Action>,
    ) {
        let Some(d) = self.book.active.get_mut(name) else {
            return;
        };
        let Some(check) = d.health.clone() else {
            return;
        };
        let Phase::Probing(t) = &mut d.phase else {
            return;
        };
        if t.in_flight.map(|(id, _)| id) != Some(probe) {
            return;
        }
        t.in_flight = None;
        let issued = t.issued.take().unwrap_or(now);
        if ok {
            self.healthy(now, name, out);
            return;
        }
        t.streak = t.streak.saturating_add(1);
        t.last_error = Some(detail.clone());
        let (on_slot, next) = t.warmup.failed(issued, now, &check);
        t.next_at = next;
        if !on_slot {
            return;
        }
        let in_start_period = t
            .since
            .checked_add(check.start_period)
            .is_some_and(|end| now < end);
        if in_start_period {
            return;
        }
        t.counted = t.counted.saturating_add(1);
        if t.counted >= check.retries.max(1) {
            let n = t.streak;
            let why = format!(
                "the new instance did not become healthy ({n} probe{} failed: {detail})",
                if n == 1 { "" } else { "s" }
            );
            self.fail_named(now, name, &why, false, out);
        }
    }

    /// The candidate of `name` passed: switch (blue-green with a command) or promote.
    pub(super) fn healthy(&mut self, now: Instant, name: &str, out: &mut Vec<Action>) {
        let Some(i) = self.find(name) else { return };
        let switch = self
            .book
            .plans
            .get(name)
            .and_then(|p| p.blue_green.clone())
            .and_then(|bg| bg.switch_command.clone().map(|c| (bg, c)));
        let active = self.book.slots.get(name).copied();
        self.book.runs += 1;
        let run = self.book.runs;
        let Some(d) = self.book.active.get_mut(name) else {
            return;
        };
        let Phase::Probing(t) = &d.phase else { return };
        let (pid, since) = (t.pid, t.since);
        match (switch, d.slot) {
            (Some((bg, command)), Some(target)) => {
                let active = active.unwrap_or(bg.active).min(1);
                let command = command
                    .replace("{candidate_slot}", &bg.slots[target])
                    .replace("{active_slot}", &bg.slots[active]);
                out.push(Action::Deploy(DeployAction::Run {
                    unit: name.to_string(),
                    run,
                    step: Step::Switch,
                    command,
                    spec: d.spec.clone(),
                    timeout: COMMAND_TIMEOUT,
                }));
                d.phase = Phase::Switching {
                    pid,
                    since,
                    run,
                    give_up: give_up(now, COMMAND_TIMEOUT, COMMAND_GRACE),
                };
                self.units[i].reason =
                    Some(format!("deploying: switching to slot {}", bg.slots[target]));
            }
            _ => self.promote(now, i, pid, since, out),
        }
    }

    /// The candidate (pid `pid`, up since `since`) becomes unit `i`'s process; the old one
    /// drains for the grace period.
    pub(super) fn promote(
        &mut self,
        now: Instant,
        i: usize,
        pid: u32,
        since: Instant,
        out: &mut Vec<Action>,
    ) {
        let name = self.units[i].plan.name.clone();
        let Some(d) = self.book.active.remove(&name) else {
            return;
        };
        let u = &mut self.units[i];
        let old_key = std::mem::replace(&mut u.instance, d.key.clone());
        let old_pid = u.pid.replace(pid).unwrap_or(d.old_pid);
        u.running_since = Some(since);
        if let Some(plan) = d.plan {
            u.plan = plan;
        }
        u.plan.spec = d.service_spec.clone();
        u.up_at = None;
        u.healthy = true;
        u.consecutive = 0;
        u.succeeded = false;
        if u.reason
            .as_deref()
            .is_some_and(|r| r.starts_with("deploying"))
        {
            u.reason = None;
        }
        if let Some(check) = u.plan.health.clone() {
            // It just passed its trial: healthy, next probe one interval from now.
            u.probe.begin(now);
            u.probe.status = Some(Health::Healthy);
            u.probe.passed = true;
            u.probe.next_at = now.checked_add(check.interval);
        }
        self.book.drains.push(Drain {
            unit: name.clone(),
            key: old_key,
            pid: Some(old_pid),
            signal: d.old_signal,
            timeout: d.old_timeout,
            stop_at: now.checked_add(d.grace),
            signalled: false,
            kill_at: None,
        });
        let mut slot_name = None;
        if let (Some(target), Some(bg)) = (
            d.slot,
            self.book
                .plans
                .get(&name)
                .and_then(|p| p.blue_green.clone()),
        ) {
            self.book.slots.insert(name.clone(), target);
            slot_name = Some(bg.slots[target].clone());
            out.push(Action::Deploy(DeployAction::SaveSlot {
                unit: name.clone(),
                path: bg.state_path.clone(),
                slots: bg.slots.clone(),
                active: target,
            }));
        }
        let message = match &slot_name {
            Some(s) => format!("deployed: pid {pid} replaces pid {old_pid}; slot {s} is active"),
            None => format!("deployed: pid {pid} replaces pid {old_pid}"),
        };
        report(out, &name, ReportKind::Deployed, message.clone());
        announce(&self.book, out, &name, Some(pid), true, slot_name, message);
        self.book.results.insert(
            name,
            DeployResult {
                seq: d.id,
                ok: true,
                message: "deployed".to_string(),
            },
        );
    }

    /// After every event: abandon deployments whose unit stopped being what they replace,
    /// fire deployment timers, issue candidate probes, and move draining processes along.
    pub(crate) fn deploy_step(&mut self, now: Instant, out: &mut Vec<Action>) {
        let names: Vec<UnitId> = self.book.active.keys().cloned().collect();
        for name in names {
            let Some(i) = self.find(&name) else {
                self.book.active.remove(&name);
                continue;
            };
            let Some(d) = self.book.active.get(&name) else {
                continue;
            };
            let u = &self.units[i];
            let intact = u.state == (State::Running { pending_stop: None })
                && !u.removed
                && u.pid == Some(d.old_pid);
            if !intact {
                let why = if !u.wanted || u.removed {
                    "the service was stopped during the deployment"
                } else {
                    "the running instance went away during the deployment"
                };
                self.fail_named(now, &name, why, false, out);
                continue;
            }
            self.deploy_timers(now, &name, out);
        }
        self.drain_step(now, out);
    }

    pub(super) fn deploy_timers(&mut self, now: Instant, name: &str, out: &mut Vec<Action>) {
        enum Due {
            Nothing,
            Fail(String),
            Healthy,
            ProbeLost(u64, String),
            Probe,
        }
        let Some(d) = self.book.active.get(name) else {
            return;
        };
        let due = |t: Option<Instant>| t.is_some_and(|t| t <= now);
        let what = match &d.phase {
            Phase::PreStart { give_up, .. } if due(*give_up) => Due::Fail(format!(
                "pre_start did not finish within {COMMAND_TIMEOUT:?}"
            )),
            Phase::Switching { give_up, .. } if due(*give_up) => Due::Fail(format!(
                "switch_command did not finish within {COMMAND_TIMEOUT:?}"
            )),
            Phase::Probing(t) if due(t.awaiting_ready) => Due::Fail(format!(
                "the new instance sent no READY=1 within start_timeout ({:?})",
                self.find(name)
                    .map(|i| self.units[i].plan.spec.readiness.start_timeout)
                    .unwrap_or_default()
            )),
            Phase::Probing(t) if due(t.settle_at) => Due::Healthy,
            Phase::Probing(t) => match (&d.health, t.in_flight) {
                (Some(check), Some((id, g))) if due(g) => {
                    Due::ProbeLost(id, format!("no answer within {:?}", check.timeout))
                }
                (Some(_), None) if due(t.next_at) => Due::Probe,
                _ => Due::Nothing,
            },
            _ => Due::Nothing,
        };
        match what {
            Due::Nothing => {}
            Due::Fail(why) => self.fail_named(now, name, &why, false, out),
            Due::Healthy => self.healthy(now, name, out),
            Due::ProbeLost(id, detail) => self.trial_result(now, name, id, false, detail, out),
            Due::Probe => {
                self.probe_seq += 1;
                let probe = self.probe_seq;
                let Some(d) = self.book.active.get_mut(name) else {
                    return;
                };
                let (Phase::Probing(t), Some(check)) = (&mut d.phase, d.health.clone()) else {
                    return;
                };
                t.next_at = None;
                t.in_flight = Some((probe, give_up(now, check.timeout, PROBE_GRACE)));
                t.issued = Some(now);
                out.push(Action::Probe {
                    unit: d.key.clone(),
                    probe,
                    check,
                    spec: d.spec.clone(),
                });
            }
        }
    }

    pub(super) fn drain_step(&mut self, now: Instant, out: &mut Vec<Action>) {
        for dr in &mut self.book.drains {
            // The unit is going down anyway: its old instance need not wait out the grace.
            let unit_down = self
                .index
                .get(&dr.unit)
                .map(|&i| &self.units[i])
                .is_none_or(|u| !u.wanted || u.removed);
            if unit_down && !dr.signalled {
                dr.stop_at = Some(now);
            }
            if !dr.signalled && dr.pid.is_some() && dr.stop_at.is_some_and(|t| t <= now) {
                dr.signalled = true;
                dr.stop_at = None;
                dr.kill_at = now.checked_add(dr.timeout);
                out.push(Action::Signal {
                    unit: dr.key.clone(),
                    signal: dr.signal,
                });
            }
            if dr.kill_at.is_some_and(|t| t <= now) {
                dr.kill_at = None;
                out.push(Action::Kill {
                    unit: dr.key.clone(),
                });
                report(
                    out,
                    &dr.unit,
                    ReportKind::Stopped,
                    format!("{} did not stop in time, killing", dr.key),
                );
            }
        }
    }
}
