//! `inspect` data: one service in detail. Also the `--json` output of `sysg inspect`
//! (docs/json.md, docs/schemas/inspect.schema.json).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::protocol::ServiceStatus;
use crate::config::schema::Service;
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
    /// The configuration in force, with env values and webhook secrets hidden.
    pub config: Option<Value>,
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

/// What is printed in place of a hidden value.
pub const HIDDEN: &str = "<hidden>";

/// The effective configuration of a service for display: env values can be secrets, so only
/// the keys are kept; webhook secrets are hidden; durations read as `1.5s`.
pub fn redacted_config(svc: &Service) -> Value {
    let mut v = serde_json::to_value(svc).unwrap_or(Value::Null);
    if let Some(obj) = v.as_object_mut() {
        obj.insert(
            "env".into(),
            serde_json::json!({
                "file": svc.env.file,
                "keys": svc.env.vars.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(),
            }),
        );
    }
    hide_secrets(&mut v);
    humanize_durations(&mut v);
    v
}

fn hide_secrets(v: &mut Value) {
    match v {
        Value::Object(map) => {
            for (k, child) in map.iter_mut() {
                if k == "secret" && !child.is_null() {
                    *child = Value::String(HIDDEN.into());
                } else {
                    hide_secrets(child);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(hide_secrets),
        _ => {}
    }
}

/// serde writes a `Duration` as `{"secs": 1, "nanos": 500000000}`; people read `1.5s`.
fn humanize_durations(v: &mut Value) {
    match v {
        Value::Object(map) => {
            let is_duration = map.len() == 2
                && map.get("secs").is_some_and(Value::is_u64)
                && map.get("nanos").is_some_and(Value::is_u64);
            if is_duration {
                let secs = map.get("secs").and_then(Value::as_u64).unwrap_or(0);
                let nanos = map.get("nanos").and_then(Value::as_u64).unwrap_or(0);
                *v = Value::String(format_duration(secs, nanos));
                return;
            }
            map.values_mut().for_each(humanize_durations);
        }
        Value::Array(items) => items.iter_mut().for_each(humanize_durations),
        _ => {}
    }
}

/// `1.5s`, `100ms`, `10s`, `0s`.
pub fn format_duration(secs: u64, nanos: u64) -> String {
    if secs == 0 && nanos > 0 && nanos.is_multiple_of(1_000_000) {
        return format!("{}ms", nanos / 1_000_000);
    }
    if nanos == 0 {
        return format!("{secs}s");
    }
    let frac = format!("{:09}", nanos);
    format!("{secs}.{}s", frac.trim_end_matches('0'))
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
    fn durations_read_like_the_config() {
        assert_eq!(format_duration(1, 500_000_000), "1.5s");
        assert_eq!(format_duration(0, 100_000_000), "100ms");
        assert_eq!(format_duration(10, 0), "10s");
        assert_eq!(format_duration(0, 0), "0s");
        assert_eq!(format_duration(0, 1_500), "0.0000015s");
    }

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
        let v = redacted_config(web);
        let text = v.to_string();
        assert!(!text.contains("s3cr3t-value"), "{text}");
        assert!(!text.contains("hush-hush"), "{text}");
        assert_eq!(v["env"]["keys"], serde_json::json!(["TOKEN", "PORT"]));
        assert_eq!(v["backoff"], "1.5s");
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
