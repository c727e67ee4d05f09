//! What the supervisor tells about its units: the `status` report, `inspect`, and the state
//! file a later supervisor re-adopts from.

use std::time::Instant;

use super::{to_json, Supervisor};
use crate::control::protocol::{Response, ServiceStatus, StatusReport};
use crate::runtime::state::{self, PersistedState, STATE_VERSION};

impl Supervisor {
    pub(super) fn persist(&mut self) {
        for u in self.engine.core().units() {
            let m = self.memo.entry(u.name.clone()).or_default();
            m.restarts = self
                .carried
                .get(&u.name)
                .copied()
                .unwrap_or(0)
                .saturating_add(u.restarts);
            if u.last_exit.is_some() {
                m.last_exit = u.last_exit;
            }
            m.instance = self
                .engine
                .core()
                .instance(&u.name)
                .filter(|i| *i != u.name)
                .or_else(|| m.instance.take().filter(|_| u.pid.is_none()));
        }
        let st = PersistedState {
            version: STATE_VERSION,
            project: self.config.project.clone(),
            config: self.config.path.clone(),
            backend: self.backend.name().to_string(),
            supervisor_pid: Some(std::process::id()),
            records: self.backend.records(),
            units: self.memo.clone(),
            spawned: self.spawned_memos(),
            cron: self.engine.core().cron_histories(),
            exits: self.obs.exit_history(),
            timers: self.engine.core().armed_timers(),
        };
        if let Err(e) = state::save(&self.paths.state_file, &st) {
            tracing::error!("cannot save state: {e}");
        }
    }

    pub(super) fn status(&self) -> StatusReport {
        let now = Instant::now();
        StatusReport {
            project: self.config.project.clone(),
            config: self.config.path.clone(),
            backend: self.backend.name().to_string(),
            supervisor_pid: Some(std::process::id()),
            services: self
                .engine
                .core()
                .units()
                .into_iter()
                .map(|u| {
                    let memo = self.memo.get(&u.name);
                    let tags = self
                        .config
                        .service(&u.name)
                        .map(|s| s.tags.clone())
                        .unwrap_or_default();
                    // The unit of the running instance (`web~N` after a deployment).
                    let instance = self.engine.core().instance(&u.name);
                    let notify = self.engine.core().notify_view(&u.name);
                    let unit_name = crate::runtime::observe::unit_name(
                        self.backend.name(),
                        &self.config.project,
                        instance.as_deref().unwrap_or(&u.name),
                    );
                    ServiceStatus {
                        unit_name,
                        uptime_secs: u
                            .since
                            .map(|s| now.saturating_duration_since(s).as_secs_f64()),
                        restarts: self
                            .carried
                            .get(&u.name)
                            .copied()
                            .unwrap_or(0)
                            .saturating_add(u.restarts),
                        last_exit: u.last_exit.or(memo.and_then(|m| m.last_exit)),
                        health: u.health.map(|h| h.as_str().to_string()),
                        next_restart_secs: u
                            .next_restart
                            .map(|t| t.saturating_duration_since(now).as_secs_f64()),
                        children: self.children_status(&u.name, now),
                        cron: self.engine.core().cron_status(&u.name),
                        name: u.name,
                        state: u.state,
                        pid: u.pid,
                        tags,
                        notify: notify.map(|v| crate::control::protocol::NotifyStatus {
                            ready: u.pid.is_some() && !v.awaiting_ready,
                            status: v.status,
                            reloading: v.reloading,
                            stopping: v.stopping,
                            main_pid: v.main_pid,
                        }),
                        reason: u.reason,
                        adopted: u.adopted,
                    }
                })
                .collect(),
        }
    }

    pub(super) fn inspect(&mut self, service: &str) -> Response {
        let status = self.status();
        let records = self.backend.records();
        match self
            .obs
            .inspect(service, Instant::now(), &self.config, &status, &records)
        {
            Some(report) => Response::ok(to_json(&report)),
            None => Response::err(
                self.engine
                    .unknown_services(&Some(vec![service.to_string()]))
                    .unwrap_or_else(|| format!("unknown service `{service}`")),
                Default::default(),
            ),
        }
    }
}
