//! Wire format: one JSON object per line each way. Requests carry `"v": 1`; a server refuses
//! versions it does not speak. Documented in docs/protocol.md.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::core::{CronStatus, StateKind};
use crate::spec::ExitStatus;

/// The protocol version this build speaks.
pub const VERSION: u32 = 1;

/// Largest request line the server reads.
pub const MAX_REQUEST_BYTES: usize = 64 * 1024;

/// A request, tagged by `cmd`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum Request {
    /// Current state of every service.
    Status,
    /// Start services (all when `services` is absent) and answer once they settled.
    Start {
        #[serde(default)]
        services: Option<Vec<String>>,
    },
    /// Stop services and answer once they are down.
    Stop {
        #[serde(default)]
        services: Option<Vec<String>>,
    },
    /// Restart services and answer once they settled.
    Restart {
        #[serde(default)]
        services: Option<Vec<String>>,
    },
    /// Load the config at `config` and apply the difference.
    Reload { config: PathBuf },
    /// Stop every service, then the supervisor.
    Shutdown,
}

/// A request with its protocol version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    pub v: u32,
    #[serde(flatten)]
    pub request: Request,
}

/// The answer to one request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Response {
    pub v: u32,
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default)]
    pub data: serde_json::Value,
}

impl Response {
    /// A success carrying `data`.
    pub fn ok(data: serde_json::Value) -> Response {
        Response {
            v: VERSION,
            ok: true,
            error: None,
            data,
        }
    }

    /// A failure with a message, and optional data (e.g. the status of what failed).
    pub fn err(message: impl Into<String>, data: serde_json::Value) -> Response {
        Response {
            v: VERSION,
            ok: false,
            error: Some(message.into()),
            data,
        }
    }
}

/// `status` data; also the `--json` output of `sysg status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusReport {
    pub project: String,
    pub config: PathBuf,
    pub backend: String,
    /// Pid of the supervisor, `None` when no supervisor runs.
    pub supervisor_pid: Option<u32>,
    pub services: Vec<ServiceStatus>,
}

/// One service in a `StatusReport`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceStatus {
    pub name: String,
    pub state: StateKind,
    pub pid: Option<u32>,
    /// Seconds in the current state (for `running`: the process's uptime).
    pub uptime_secs: Option<f64>,
    pub restarts: u32,
    pub last_exit: Option<ExitStatus>,
    /// `healthy`, `unhealthy`, `starting`, or absent without a health check.
    pub health: Option<String>,
    pub reason: Option<String>,
    /// Seconds until a scheduled restart.
    pub next_restart_secs: Option<f64>,
    /// Cron jobs only: schedule, next run and the last runs.
    #[serde(default)]
    pub cron: Option<CronStatus>,
}

impl ServiceStatus {
    /// True when the service is where a user wants it: running, or finished successfully (a
    /// cron job: its schedule armed).
    pub fn is_good(&self) -> bool {
        matches!(
            self.state,
            StateKind::Running | StateKind::Completed | StateKind::Scheduled
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_wire_shape() {
        let e = Envelope {
            v: VERSION,
            request: Request::Stop {
                services: Some(vec!["web".into()]),
            },
        };
        let s = serde_json::to_string(&e).unwrap_or_default();
        assert_eq!(s, r#"{"v":1,"cmd":"stop","services":["web"]}"#);
        let back: Envelope = serde_json::from_str(r#"{"v":1,"cmd":"status"}"#).unwrap();
        assert_eq!(back.request, Request::Status);
        let all: Envelope = serde_json::from_str(r#"{"v":1,"cmd":"start"}"#).unwrap();
        assert_eq!(all.request, Request::Start { services: None });
    }
}
