//! Re-adopting what an earlier supervisor left running: the records of its state file and
//! what the backend finds by itself, services and spawned children alike.

use std::time::Instant;

use super::Supervisor;
use crate::core::{Adoption, Event, Input};
use crate::runtime::state::{self, Loaded};
use crate::runtime::RuntimeError;

impl Supervisor {
    /// Re-attach to units a previous supervisor left running.
    pub(super) fn adopt_previous(&mut self) -> Result<(), RuntimeError> {
        let mut spawned = Vec::new();
        let mut records = match state::load(&self.paths.state_file)? {
            Loaded::Missing => Vec::new(),
            Loaded::Corrupt { moved_to, message } => {
                tracing::warn!(
                    "state file was corrupt ({message}); set aside as {}",
                    moved_to.display()
                );
                Vec::new()
            }
            Loaded::Ok(s) => {
                self.memo = s.units;
                self.obs.restore_exits(s.exits);
                spawned = s.spawned;
                self.engine.core_mut().restore_cron(s.cron);
                s.records
            }
        };
        // Units the backend finds by itself (systemd units outlive a lost state file).
        for rec in self.backend.discover() {
            if !records.iter().any(|r| r.unit == rec.unit) {
                records.push(rec);
            }
        }
        let known: Vec<String> = self.engine.core().unit_names();
        // The process of record of each unit first: a second one (left by a deployment the
        // previous supervisor did not finish) is then recognised and stopped by the core.
        let rank = |unit: &str| {
            let service = crate::core::service_of(unit);
            let memo = self.memo.get(service).and_then(|m| m.instance.as_deref());
            match memo {
                Some(m) if m == unit => 0,
                None if service == unit => 0,
                _ => 1,
            }
        };
        records.sort_by_key(|r| rank(&r.unit));
        // One event for all of them: the core must know every surviving unit before it judges
        // any dependency (a dependent found before its dependency would be cascade-stopped).
        let mut adopted = Vec::new();
        for rec in records {
            if self.adopt_child(&rec, &spawned) {
                continue;
            }
            let service = crate::core::service_of(&rec.unit).to_string();
            match self.backend.adopt(&rec) {
                Ok(Some(pid)) if known.contains(&service) => {
                    tracing::info!(unit = %rec.unit, pid, "adopted a running service");
                    // Uptime goes on from the process's own start (both backends' main
                    // processes are visible in /proc).
                    let started = crate::backend::process::process_age(pid)
                        .and_then(|age| Instant::now().checked_sub(age));
                    adopted.push(Adoption {
                        unit: rec.unit.clone(),
                        pid,
                        started,
                    });
                }
                Ok(Some(pid)) => {
                    tracing::info!(unit = %rec.unit, pid, "stopping a leftover service that is no longer configured");
                    let _ = self.backend.kill(&rec.unit);
                }
                Ok(None) => {
                    tracing::info!(unit = %rec.unit, "service recorded as running is gone");
                }
                Err(e) => tracing::warn!(unit = %rec.unit, "cannot adopt: {e}"),
            }
        }
        if adopted.is_empty() {
            // Nothing of the earlier run still runs (a clean stop, a reboot): this is a fresh
            // run, whose counters start at zero.
            for m in self.memo.values_mut() {
                m.restarts = 0;
                m.last_exit = None;
            }
        } else {
            // The earlier supervisor crashed and its run goes on here.
            self.carried = self
                .memo
                .iter()
                .map(|(name, m)| (name.clone(), m.restarts))
                .collect();
            self.queue
                .push_back(Input::Unit(Event::AdoptedAll(adopted)));
        }
        Ok(())
    }
}
