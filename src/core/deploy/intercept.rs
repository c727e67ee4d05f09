//! The deployment's side of the core's events: the plans and results the runtime reads, and
//! `deploy_intercept`, which takes the events of candidates, draining processes and promoted
//! instances before the unit state machine sees them.

use super::*;

impl Core {
    /// Set the deployment plans (units absent here deploy `immediate`ly). The runtime calls
    /// this at start-up and before every reload; a deployment under way keeps its plan.
    pub fn set_deployments(&mut self, plans: HashMap<UnitId, Arc<DeployPlan>>) {
        self.book.slots = plans
            .iter()
            .filter_map(|(n, p)| {
                p.blue_green
                    .as_ref()
                    .map(|bg| (n.clone(), bg.active.min(1)))
            })
            .collect();
        self.book.plans = plans;
    }

    /// Id of the last deployment begun; results of later ones have larger ids.
    pub fn deploy_seq(&self) -> u64 {
        self.book.seq
    }

    /// Why deployments of `units` (all when `None`) begun after `since` failed, one line each.
    pub fn deploy_failures(&self, units: Option<&[UnitId]>, since: u64) -> Vec<String> {
        let mut out: Vec<String> = self
            .book
            .results
            .iter()
            .filter(|(n, r)| !r.ok && r.seq > since && units.is_none_or(|s| s.contains(n)))
            .map(|(n, r)| format!("{n}: {}", r.message))
            .collect();
        out.sort();
        out
    }

    /// A deployment of one of `units` (all when `None`) is under way or still draining.
    pub fn deploying(&self, units: Option<&[UnitId]>) -> bool {
        match units {
            None => !self.book.idle(),
            Some(names) => names.iter().any(|n| self.book.busy(n)),
        }
    }

    /// The backend key of `unit`'s current process (`web`, or `web~N` after a deployment).
    pub fn instance(&self, unit: &str) -> Option<String> {
        let u = &self.units[self.find(unit)?];
        u.pid.map(|_| u.instance.clone())
    }

    /// The active slot of a blue-green unit.
    pub fn active_slot(&self, unit: &str) -> Option<usize> {
        self.book.slots.get(unit).copied()
    }

    /// Handle `event` if it concerns a candidate, a draining process, a promoted instance or
    /// a duplicate adoption; return what is left for the unit state machine.
    pub(crate) fn deploy_intercept(
        &mut self,
        now: Instant,
        event: Event,
        out: &mut Vec<Action>,
    ) -> Option<Event> {
        match event {
            Event::Deploy(DeployEvent::CommandDone {
                unit,
                run,
                ok,
                detail,
            }) => {
                self.command_done(now, &unit, run, ok, detail, out);
                None
            }
            Event::Started { unit: key, pid } => {
                if let Some(name) = self.candidate(&key) {
                    let readiness = self.find(&name).map(|i| self.units[i].plan.spec.readiness);
                    let d = self.book.active.get_mut(&name)?;
                    if matches!(d.phase, Phase::Starting) {
                        d.phase = Phase::Probing(Trial {
                            pid,
                            since: now,
                            settle_at: if d.health.is_none() {
                                now.checked_add(d.settle)
                            } else {
                                None
                            },
                            next_at: d.health.as_ref().map(|_| now),
                            in_flight: None,
                            issued: None,
                            warmup: Warmup::new(now),
                            counted: 0,
                            streak: 0,
                            last_error: None,
                            awaiting_ready: None,
                        });
                        if let Phase::Probing(t) = &mut d.phase {
                            crate::core::readiness::candidate_started(now, t, readiness);
                        }
                        if let Some(i) = self.find(&name) {
                            self.units[i].reason = Some(format!(
                                "deploying: waiting for the new instance (pid {pid}) to become healthy"
                            ));
                        }
                        report(
                            out,
                            &name,
                            ReportKind::Started,
                            format!("new instance started as {key} (pid {pid})"),
                        );
                        // Recorded for adoption: a supervisor restart must find it.
                        out.push(Action::Persist);
                    }
                    return None;
                }
                if let Some(dr) = self
                    .book
                    .drains
                    .iter_mut()
                    .find(|d| d.key == key && d.pid.is_none())
                {
                    dr.pid = Some(pid);
                    out.push(Action::Persist);
                    return None;
                }
                Some(Event::Started { unit: key, pid })
            }
            Event::Notify {
                unit: key,
                pid,
                message,
            } if service_of(&key) != key => {
                let Some(name) = self.candidate(&key) else {
                    // A promoted instance speaks for its unit; an old one being retired not.
                    let name = service_of(&key).to_string();
                    let current = self
                        .find(&name)
                        .is_some_and(|i| self.units[i].instance == key);
                    return current.then_some(Event::Notify {
                        unit: name,
                        pid,
                        message,
                    });
                };
                // Only READY=1 matters for a candidate: it may now be judged.
                let d = self.book.active.get_mut(&name)?;
                if let (Phase::Probing(t), true) = (&mut d.phase, message.ready) {
                    if t.awaiting_ready.take().is_some() {
                        t.settle_at = d
                            .health
                            .is_none()
                            .then(|| now.checked_add(d.settle))
                            .flatten();
                        t.next_at = d.health.as_ref().map(|_| now);
                    }
                }
                None
            }
            Event::StartFailed { unit: key, error } => {
                if let Some(name) = self.candidate(&key) {
                    let why = format!("the new instance could not start: {error}");
                    self.fail_named(now, &name, &why, true, out);
                    return None;
                }
                if let Some(pos) = self
                    .book
                    .drains
                    .iter()
                    .position(|d| d.key == key && d.pid.is_none())
                {
                    self.book.drains.remove(pos);
                    return None;
                }
                Some(Event::StartFailed { unit: key, error })
            }
            Event::Exited {
                unit: key,
                pid,
                status,
            } => {
                if let Some(name) = self.candidate(&key) {
                    if self.candidate_pid(&name) == Some(pid) {
                        let why = format!("the new instance exited ({status})");
                        self.fail_named(now, &name, &why, true, out);
                        out.push(Action::Persist);
                    }
                    return None;
                }
                if let Some(pos) = self
                    .book
                    .drains
                    .iter()
                    .position(|d| d.key == key && d.pid == Some(pid))
                {
                    let d = self.book.drains.remove(pos);
                    report(
                        out,
                        &d.unit,
                        ReportKind::Stopped,
                        format!("instance {key} (pid {pid}) stopped ({status})"),
                    );
                    out.push(Action::Persist);
                    return None;
                }
                let name = service_of(&key).to_string();
                if name != key {
                    // A promoted instance: the unit's own process, under its own name.
                    return Some(Event::Exited {
                        unit: name,
                        pid,
                        status,
                    });
                }
                Some(Event::Exited {
                    unit: key,
                    pid,
                    status,
                })
            }
            Event::ExecFailed {
                unit: key,
                pid,
                error,
            } => {
                if let Some(name) = self.candidate(&key) {
                    if self.candidate_pid(&name) == Some(pid) {
                        let why = format!("the new instance could not start: {error}");
                        self.fail_named(now, &name, &why, true, out);
                        out.push(Action::Persist);
                    }
                    return None;
                }
                // An instance that never ran cannot be draining; a promoted one is the unit's.
                Some(Event::ExecFailed {
                    unit: service_of(&key).to_string(),
                    pid,
                    error,
                })
            }
            Event::ProbeResult {
                unit: key,
                probe,
                ok,
                detail,
            } => {
                if let Some(name) = self.candidate(&key) {
                    self.trial_result(now, &name, probe, ok, detail, out);
                    return None;
                }
                Some(Event::ProbeResult {
                    unit: key,
                    probe,
                    ok,
                    detail,
                })
            }
            Event::Adopted { unit: key, pid } => {
                let name = service_of(&key).to_string();
                let Some(i) = self.find(&name) else {
                    return Some(Event::Adopted { unit: key, pid });
                };
                let u = &self.units[i];
                if u.is_live() && u.pid != Some(pid) {
                    // Two processes of one unit: a supervisor died during a deployment. The
                    // one adopted first (the runtime puts the instance of record first) stays.
                    let (signal, timeout) = (u.plan.spec.stop_signal, u.plan.spec.stop_timeout);
                    report(
                        out,
                        &name,
                        ReportKind::Stopped,
                        format!(
                            "stopping {key} (pid {pid}), left over from an interrupted deployment"
                        ),
                    );
                    self.book.drains.push(Drain {
                        unit: name,
                        key,
                        pid: Some(pid),
                        signal,
                        timeout,
                        stop_at: Some(now),
                        signalled: false,
                        kill_at: None,
                    });
                    return None;
                }
                if key != name && !u.is_live() && !u.removed {
                    self.on_adopted(now, &name, pid, None, out);
                    self.units[i].instance = key;
                    return None;
                }
                Some(Event::Adopted { unit: key, pid })
            }
            other => Some(other),
        }
    }
}
