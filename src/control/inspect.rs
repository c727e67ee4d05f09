//! `inspect` data: one service in detail. Also the `--json` output of `sysg inspect`
//! (docs/json.md, docs/schemas/inspect.schema.json).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::protocol::ServiceStatus;
use crate::config::schema::{LogPolicy, Service};
use crate::metrics::{Sample, Source, Summary};
use crate::spec::ExitStatus;

/// Exits remembered per service.
pub const EXIT_HISTORY: usize = 10;

/// Probe results kept per service for `inspect` (most recent last).
pub const HEALTH_HISTORY: usize = 20;

/// One health probe result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProbeRecord {
    /// When the result came in, in seconds since the Unix epoch.
    pub at: f64,
    pub ok: bool,
    /// What the probe saw (`HTTP 200`, `connection refused`, ...).
    pub detail: String,
}

/// One past exit of a service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExitRecord {
    /// When it ended, in seconds since the Unix epoch.
    pub at: f64,
    pub pid: u32,
    pub status: ExitStatus,
    /// How long that process ran, when known.
    pub ran_secs: Option<f64>,
}

/// A `depends_on` entry as shown by inspect.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DependencyView {
    pub service: String,
    /// `started`, `healthy` or `completed`.
    pub condition: String,
}

/// CPU and memory of a service over the recent window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricsView {
    /// `cgroup` or `procfs`; `None` before the first sample.
    pub source: Option<Source>,
    /// The cgroup directory read, when `source` is `cgroup`.
    pub cgroup: Option<PathBuf>,
    /// Seconds between samples; `None` when sampling is off.
    pub interval_secs: Option<f64>,
    /// Samples kept at most.
    pub capacity: usize,
    /// Why the latest sample could not be taken.
    pub error: Option<String>,
    pub summary: Summary,
    /// Oldest first.
    pub samples: Vec<Sample>,
}

/// The answer to `inspect`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InspectReport {
    pub name: String,
    pub project: String,
    /// `process`, `systemd`, or `none` without a supervisor.
    pub backend: String,
    /// The systemd unit (`sysg-<project>-<service>.service`) with the systemd backend.
    pub unit_name: Option<String>,
    pub supervisor_pid: Option<u32>,
    pub status: ServiceStatus,
    /// Every process of the service at the latest sample (main pid first when known).
    pub pids: Vec<u32>,
    /// Most recent last.
    pub exits: Vec<ExitRecord>,
    /// The last health probe results (at most `HEALTH_HISTORY`), most recent last; empty
    /// without a health check.
    #[serde(default)]
    pub health_history: Vec<ProbeRecord>,
    pub depends_on: Vec<DependencyView>,
    /// Services that depend on this one.
    pub dependents: Vec<String>,
    /// The configuration in force as written in the YAML (docs/configuration.md keys,
    /// sizes and durations in their units), with env values and webhook secrets hidden.
    pub config: Option<Value>,
    /// Dotted keys of `config` whose value is the default (`health_check.timeout`,
    /// `webhooks[0].retries`).
    #[serde(default)]
    pub config_defaults: Vec<String>,
    pub metrics: MetricsView,
}

/// Dependencies of `svc` as shown by inspect.
pub fn dependencies(svc: &Service) -> Vec<DependencyView> {
    svc.depends_on
        .iter()
        .map(|d| DependencyView {
            service: d.service.clone(),
            condition: serde_json::to_value(d.condition)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default(),
        })
        .collect()
}

/// Names of the services in `all` that depend on `name`.
pub fn dependents(all: &[Service], name: &str) -> Vec<String> {
    all.iter()
        .filter(|s| s.depends_on.iter().any(|d| d.service == name))
        .map(|s| s.name.clone())
        .collect()
}

pub use super::config_view::HIDDEN;

/// The configuration of `svc` in the user's words (`config`) and the keys whose value is the
/// default (`config_defaults`); env values and webhook secrets are never included.
/// `project_logs` is the top-level `logs:` policy, the default of the service's.
pub fn config_of(svc: &Service, project_logs: &LogPolicy) -> (Value, Vec<String>) {
    let v = super::config_view::view(svc, project_logs);
    (Value::Object(v.config), v.defaults)
}

/// Exits as shown: at most `EXIT_HISTORY`, most recent last.
pub fn recent<'a>(exits: impl DoubleEndedIterator<Item = &'a ExitRecord>) -> Vec<ExitRecord> {
    let mut v: Vec<ExitRecord> = exits.rev().take(EXIT_HISTORY).cloned().collect();
    v.reverse();
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_values_and_secrets_are_hidden() {
        let yaml = r#"
version: "1"
services:
  db:
    command: "sleep 1"
  web:
    command: "run"
    backoff: 1500ms
    env:
      vars: {TOKEN: s3cr3t-value, PORT: "8080"}
    depends_on: [db]
    webhooks:
      - {url: "http://localhost:9/hook", secret: hush-hush}
"#;
        let cfg = crate::config::load_str(yaml, std::path::Path::new("/tmp/p/systemg.yaml"))
            .expect("valid");
        let web = cfg.service("web").expect("web");
        let (v, defaults) = config_of(web, &cfg.logs);
        let text = v.to_string();
        assert!(!text.contains("s3cr3t-value"), "{text}");
        assert!(!text.contains("hush-hush"), "{text}");
        assert_eq!(v["env"]["keys"], serde_json::json!(["TOKEN", "PORT"]));
        assert_eq!(v["backoff"], "1.5s");
        assert!(!defaults.contains(&"backoff".to_string()), "{defaults:?}");
        assert!(
            defaults.contains(&"stop_timeout".to_string()),
            "{defaults:?}"
        );
        assert_eq!(v["webhooks"][0]["secret"], HIDDEN);
        assert_eq!(dependents(&cfg.services, "db"), ["web"]);
        assert_eq!(
            dependencies(web),
            [DependencyView {
                service: "db".into(),
                condition: "started".into()
            }]
        );
    }
}
