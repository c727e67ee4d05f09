//! What the supervisor keeps for `inspect`: a bounded history of exits per unit and the CPU
//! and memory sampler. Kept apart from the event loop so that the loop only calls in.

use std::collections::HashMap;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::backend::AdoptRecord;
use crate::config::Config;
use crate::control::inspect::{self, ExitRecord, InspectReport, MetricsView, EXIT_HISTORY};
use crate::control::protocol::StatusReport;
use crate::core::StateKind;
use crate::metrics::{self, Ring, Sampler, SamplerOptions, Target};
use crate::spec::ExitStatus;

/// One service's progress during `start --daemonize`, sent on the readiness pipe before the
/// final report (`{"progress": {...}}`, one per line).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    pub service: String,
    pub state: StateKind,
    pub health: Option<String>,
    pub reason: Option<String>,
    /// The service's process, while it has one.
    #[serde(default)]
    pub pid: Option<u32>,
    /// Its process was re-adopted (found running), not started.
    #[serde(default)]
    pub adopted: bool,
    /// How long its process has run.
    #[serde(default)]
    pub uptime_secs: Option<f64>,
}

/// The line wrapper of a `Progress`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProgressLine {
    pub progress: Progress,
}

/// Turns successive status reports into the progress lines of what changed.
#[derive(Debug, Default)]
pub struct ProgressTracker {
    last: HashMap<String, (StateKind, Option<String>)>,
}

impl ProgressTracker {
    /// The services whose state or health changed since the last call. A service seen for
    /// the first time counts as a change unless it is merely stopped (not part of this start).
    pub fn changes(&mut self, report: &StatusReport) -> Vec<Progress> {
        let mut out = Vec::new();
        for s in &report.services {
            let now = (s.state, s.health.clone());
            let changed = match self.last.get(&s.name) {
                Some(prev) => *prev != now,
                None => s.state != StateKind::Stopped,
            };
            if changed {
                out.push(Progress {
                    service: s.name.clone(),
                    state: s.state,
                    health: s.health.clone(),
                    reason: s.reason.clone(),
                    pid: s.pid,
                    adopted: s.adopted,
                    uptime_secs: s.uptime_secs,
                });
            }
            self.last.insert(s.name.clone(), now);
        }
        out
    }
}

/// Seconds since the Unix epoch, now.
pub fn wall_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Exit history and samples.
pub struct Observer {
    pub sampler: Sampler,
    /// Progress of a daemonized start, while its readiness pipe is open.
    pub progress: ProgressTracker,
    exits: HashMap<String, Ring<ExitRecord>>,
    probes: HashMap<String, Ring<inspect::ProbeRecord>>,
}

impl Observer {
    /// An observer with sampler options from the environment (`SYSG_METRICS_INTERVAL`,
    /// `SYSG_METRICS_WATCH`).
    pub fn from_env() -> Observer {
        let (opts, problems) = SamplerOptions::from_env();
        for p in problems {
            tracing::warn!("{p}");
        }
        Observer::new(opts)
    }

    /// An observer with these sampler options.
    pub fn new(opts: SamplerOptions) -> Observer {
        Observer {
            sampler: Sampler::new(opts),
            progress: ProgressTracker::default(),
            exits: HashMap::new(),
            probes: HashMap::new(),
        }
    }

    /// Remember an exit (bounded per unit).
    pub fn record_exit(&mut self, unit: &str, pid: u32, status: ExitStatus, ran_secs: Option<f64>) {
        self.exits
            .entry(unit.to_string())
            .or_insert_with(|| Ring::new(EXIT_HISTORY))
            .push(ExitRecord {
                at: wall_now(),
                pid,
                status,
                ran_secs,
            });
    }

    /// The exits remembered, per unit, oldest first (persisted with the state).
    pub fn exit_history(&self) -> std::collections::BTreeMap<String, Vec<ExitRecord>> {
        self.exits
            .iter()
            .filter(|(_, r)| !r.is_empty())
            .map(|(k, r)| (k.clone(), r.iter().cloned().collect()))
            .collect()
    }

    /// Put back the exits an earlier supervisor persisted (before any new one is recorded).
    pub fn restore_exits(&mut self, saved: std::collections::BTreeMap<String, Vec<ExitRecord>>) {
        for (unit, records) in saved {
            let ring = self
                .exits
                .entry(unit)
                .or_insert_with(|| Ring::new(EXIT_HISTORY));
            for r in records {
                ring.push(r);
            }
        }
    }

    /// Remember a health probe result (bounded per unit).
    pub fn record_probe(&mut self, unit: &str, ok: bool, detail: &str) {
        self.probes
            .entry(unit.to_string())
            .or_insert_with(|| Ring::new(inspect::HEALTH_HISTORY))
            .push(inspect::ProbeRecord {
                at: wall_now(),
                ok,
                detail: detail.to_string(),
            });
    }

    /// Sample what is due, from the backend's records of running units.
    pub fn sample(&mut self, now: Instant, records: &[AdoptRecord]) {
        let targets: Vec<Target> = records.iter().map(target).collect();
        self.sampler.sample(now, wall_now(), &targets);
    }

    /// Build the `inspect` answer for `name` (which must be in `status`). Starts sampling
    /// the unit when it was not sampled already; `records` are the running units.
    pub fn inspect(
        &mut self,
        name: &str,
        now: Instant,
        config: &Config,
        status: &StatusReport,
        records: &[AdoptRecord],
    ) -> Option<InspectReport> {
        let st = status.services.iter().find(|s| s.name == name)?.clone();
        if self.sampler.watch(name, now) {
            self.sample(now, records);
        }
        let svc = config.service(name);
        let series = self.sampler.series(name);
        let opts = self.sampler.options();
        let mut pids: Vec<u32> = series.map(|s| s.pids.clone()).unwrap_or_default();
        if let Some(main) = st.pid {
            pids.retain(|p| *p != main);
            pids.insert(0, main);
        } else {
            // Without a running main process, an older sample's pids would mislead.
            pids.clear();
        }
        let (shown, config_defaults) = match svc.map(|s| inspect::config_of(s, &config.logs)) {
            Some((c, d)) => (Some(c), d),
            None => (None, Vec::new()),
        };
        let samples: Vec<metrics::Sample> = series
            .map(|s| s.samples.iter().copied().collect())
            .unwrap_or_default();
        Some(InspectReport {
            name: name.to_string(),
            project: config.project.clone(),
            backend: status.backend.clone(),
            unit_name: st
                .unit_name
                .clone()
                .or_else(|| unit_name(&status.backend, &config.project, name)),
            supervisor_pid: status.supervisor_pid,
            pids,
            exits: self
                .exits
                .get(name)
                .map(|r| inspect::recent(r.iter()))
                .unwrap_or_default(),
            health_history: self
                .probes
                .get(name)
                .map(|r| r.iter().cloned().collect())
                .unwrap_or_default(),
            depends_on: svc.map(inspect::dependencies).unwrap_or_default(),
            dependents: inspect::dependents(&config.services, name),
            config: shown,
            config_defaults,
            metrics: MetricsView {
                source: series.and_then(|s| s.source),
                cgroup: series.and_then(|s| s.cgroup.clone()),
                interval_secs: opts.interval.map(|d| d.as_secs_f64()),
                capacity: opts.capacity,
                error: series.and_then(|s| s.error.clone()),
                summary: metrics::summarize(samples.iter()),
                samples,
            },
            status: st,
        })
    }

    /// Drop what is kept for units no longer configured.
    pub fn retain(&mut self, keep: impl Fn(&str) -> bool) {
        self.exits.retain(|k, _| keep(k));
        self.probes.retain(|k, _| keep(k));
        self.sampler.retain(keep);
    }
}

/// The systemd unit name of a service, with the systemd backend.
pub fn unit_name(backend: &str, project: &str, service: &str) -> Option<String> {
    #[cfg(target_os = "linux")]
    if backend == "systemd" {
        return Some(crate::backend::systemd::naming::unit_name(project, service));
    }
    let _ = (backend, project, service);
    None
}

/// What to measure for a running unit, from its adopt record: the process backend records
/// its cgroup directory (when it made one), the systemd backend its unit name.
fn target(r: &AdoptRecord) -> Target {
    Target {
        unit: r.unit.clone(),
        pid: r.pid,
        cgroup: r
            .extra
            .get("cgroup")
            .and_then(|c| c.as_str())
            .map(std::path::PathBuf::from),
        unit_name: r
            .extra
            .get("unit_name")
            .and_then(|c| c.as_str())
            .map(str::to_string),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_from_records() {
        let rec = |extra| AdoptRecord {
            unit: "web".into(),
            pid: 7,
            start_time: 1,
            extra,
        };
        let t = target(&rec(serde_json::json!({"cgroup": "/sys/fs/cgroup/x"})));
        assert_eq!(
            t.cgroup.as_deref(),
            Some(std::path::Path::new("/sys/fs/cgroup/x"))
        );
        let t = target(&rec(serde_json::json!({"cgroup": null})));
        assert_eq!(t.cgroup, None);
        let t = target(&rec(serde_json::json!({"unit_name": "sysg-p-web.service"})));
        assert_eq!(t.unit_name.as_deref(), Some("sysg-p-web.service"));
    }

    #[test]
    fn progress_reports_changes_only() {
        use crate::control::protocol::ServiceStatus;
        let svc = |name: &str, state, health: Option<&str>| ServiceStatus {
            health: health.map(str::to_string),
            ..ServiceStatus::new(name, state)
        };
        let report = |services| StatusReport {
            project: "p".into(),
            config: "/c".into(),
            backend: "process".into(),
            supervisor_pid: Some(1),
            services,
        };
        let mut t = ProgressTracker::default();
        let first = t.changes(&report(vec![
            svc("db", StateKind::Starting, None),
            svc("idle", StateKind::Stopped, None),
        ]));
        assert_eq!(first.len(), 1);
        assert_eq!(first[0].service, "db");
        assert!(t
            .changes(&report(vec![
                svc("db", StateKind::Starting, None),
                svc("idle", StateKind::Stopped, None)
            ]))
            .is_empty());
        let next = t.changes(&report(vec![
            svc("db", StateKind::Running, Some("starting")),
            svc("idle", StateKind::Stopped, None),
        ]));
        assert_eq!(next.len(), 1);
        assert_eq!(next[0].health.as_deref(), Some("starting"));
    }

    #[test]
    fn exit_history_outlives_the_supervisor() {
        let mut o = Observer::new(SamplerOptions::default());
        o.record_exit("web", 3, ExitStatus::Code(1), Some(0.5));
        o.record_exit("web", 4, ExitStatus::Signal(9), None);
        let saved = o.exit_history();
        let mut next = Observer::new(SamplerOptions::default());
        next.restore_exits(saved.clone());
        next.record_exit("web", 5, ExitStatus::Code(2), None);
        let pids: Vec<u32> = next.exit_history()["web"].iter().map(|e| e.pid).collect();
        assert_eq!(pids, vec![3, 4, 5]);
        assert_eq!(saved["web"].len(), 2);
    }

    #[test]
    fn exit_history_is_bounded() {
        let mut o = Observer::new(SamplerOptions::default());
        for pid in 0..25 {
            o.record_exit("web", pid, ExitStatus::Code(1), Some(0.5));
        }
        let r = o.exits.get("web").map(|r| inspect::recent(r.iter()));
        let pids: Vec<u32> = r.unwrap_or_default().iter().map(|e| e.pid).collect();
        assert_eq!(pids, (15..25).collect::<Vec<_>>());
        o.retain(|u| u != "web");
        assert!(o.exits.is_empty());
    }
}
