//! Wire format: one JSON object per line each way. Requests carry `"v": 1`; a server refuses
//! versions it does not speak. Documented in docs/protocol.md.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::config::schema::RestartPolicy;
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
    /// Add an ad-hoc unit (`sysg run`) and answer once it settled, or with `wait` once it
    /// finished. The answer's data is a `RunReport`.
    Run(RunRequest),
    /// Start a child of the calling service (`sysg spawn`). The caller is identified by the
    /// socket's peer credentials, never by anything in the request. Answers `{"pid", "unit"}`.
    Spawn(SpawnRequest),
    /// One service in detail (`control::inspect::InspectReport`); starts sampling its CPU
    /// and memory for a while.
    Inspect { service: String },
    /// The services' output from the journal (systemd backend), read by the supervisor for a
    /// caller who may read logs but not the journal (a `systemg` member). Answers
    /// `{"entries": [{service, stream, time, line}…], "truncated"}`: the last `lines` (at most
    /// `MAX_SERVED_LINES`) of the window. No following.
    Logs(LogsRequest),
    /// Run the `reload:` of each service (all that have one when `services` is absent)
    /// without restarting it; answers once done (`readiness: notify`: at `READY=1`). Data:
    /// `{"services": [{name, pid, action}]}`.
    ReloadServices {
        #[serde(default)]
        services: Option<Vec<String>>,
    },
    /// Send `signal` to every process of each service (all when `services` is absent), or
    /// with `main` to its main process only. Data: `{"services": [{name, pid, signal}]}`.
    Kill {
        #[serde(default)]
        services: Option<Vec<String>>,
        signal: i32,
        #[serde(default)]
        main: bool,
    },
}

/// The most lines one `logs` request answers with.
pub const MAX_SERVED_LINES: usize = 10_000;

/// What `sysg logs` asks the supervisor for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogsRequest {
    /// Services of the project (all when absent).
    #[serde(default)]
    pub services: Option<Vec<String>>,
    /// The last this many lines (`MAX_SERVED_LINES` when absent or larger).
    #[serde(default)]
    pub lines: Option<usize>,
    /// Only lines from / up to these times, microseconds since the epoch.
    #[serde(default)]
    pub since_us: Option<i64>,
    #[serde(default)]
    pub until_us: Option<i64>,
}

/// What `sysg run` asks for: one command supervised without a config file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRequest {
    /// The unit's name; derived from the command (and made unique) when absent.
    #[serde(default)]
    pub name: Option<String>,
    /// Program (absolute path) and arguments.
    pub argv: Vec<String>,
    /// Variables added to the supervisor's base environment.
    #[serde(default)]
    pub env: Vec<(String, String)>,
    /// Working directory (the caller's).
    #[serde(default)]
    pub cwd: Option<PathBuf>,
    pub restart: RestartPolicy,
    /// Answer only once the unit finished (then it is forgotten).
    #[serde(default)]
    pub wait: bool,
}

/// The answer to a `run` request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunReport {
    pub project: String,
    /// The unit's name.
    pub unit: String,
    pub service: ServiceStatus,
}

/// `spawn` request body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpawnRequest {
    /// The child's name, unique within its service's tree.
    pub name: String,
    /// Program and arguments.
    pub command: Vec<String>,
    /// The caller's environment, passed to the child.
    #[serde(default)]
    pub env: Vec<(String, String)>,
    /// The caller's working directory.
    #[serde(default)]
    pub cwd: Option<PathBuf>,
    /// Stop the child after this many seconds.
    #[serde(default)]
    pub ttl_secs: Option<u64>,
    /// Passed to the child as `SYSG_LOG_LEVEL`.
    #[serde(default)]
    pub log_level: Option<String>,
}

/// One spawned child in a `ServiceStatus` (the service's whole tree, parents first).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChildStatus {
    pub name: String,
    /// `<service>/<name>`: what `sysg logs --service` takes.
    pub unit: String,
    /// The service, or the name of the child that spawned it.
    pub parent: String,
    /// 1 for a child of the service, 2 for a grandchild, …
    pub depth: u32,
    pub pid: Option<u32>,
    /// `starting`, `running` or `stopping`.
    pub state: String,
    pub uptime_secs: Option<f64>,
    /// Seconds until the TTL stops it; absent without `--ttl`.
    pub ttl_left_secs: Option<f64>,
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

/// What a reload changed, by service (`restart --config`); in the answer's data next to the
/// status report, as `changes`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ReloadChanges {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    /// Each changed service with the settings that differ (`command`, `env`, ...).
    pub changed: Vec<(String, Vec<String>)>,
    pub unchanged: Vec<String>,
}

impl ReloadChanges {
    /// `added extra; changed worker (env); unchanged web`: what changed, in words.
    pub fn summary(&self) -> String {
        let mut parts = Vec::new();
        if !self.added.is_empty() {
            parts.push(format!("added {}", self.added.join(", ")));
        }
        if !self.removed.is_empty() {
            parts.push(format!("removed {}", self.removed.join(", ")));
        }
        if !self.changed.is_empty() {
            let each: Vec<String> = self
                .changed
                .iter()
                .map(|(n, f)| format!("{n} ({})", f.join(", ")))
                .collect();
            parts.push(format!("changed {}", each.join(", ")));
        }
        if !self.unchanged.is_empty() {
            parts.push(format!("unchanged {}", self.unchanged.join(", ")));
        }
        if parts.is_empty() {
            "no services".into()
        } else {
            parts.join("; ")
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
    /// The service's `tags:` (empty for ad-hoc units).
    #[serde(default)]
    pub tags: Vec<String>,
    /// The exact systemd unit running the service (`sysg-my\x2dapp-web.service`, escaped as
    /// systemd requires; `…\x7e2.service` after a rolling deployment) with the systemd
    /// backend; `None` with the process backend or without a supervisor.
    #[serde(default)]
    pub unit_name: Option<String>,
    /// Children started with `sysg spawn` (whole tree); absent when there are none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub children: Vec<ChildStatus>,
    /// Cron jobs only: schedule, next run and the last runs.
    #[serde(default)]
    pub cron: Option<CronStatus>,
    /// The current process was found running when this supervisor started (re-adopted after
    /// a supervisor crash), not started by it; `uptime_secs` is still the process's.
    #[serde(default)]
    pub adopted: bool,
    /// `readiness: notify` services: what the service last said over `sd_notify`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify: Option<NotifyStatus>,
}

/// The `sd_notify` side of a `readiness: notify` service (docs/json.md).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotifyStatus {
    /// The last `STATUS=` text.
    #[serde(default)]
    pub status: Option<String>,
    /// `READY=1` came for the current process (false while it starts, and without one).
    #[serde(default)]
    pub ready: bool,
    /// Between `RELOADING=1` and the next `READY=1`.
    #[serde(default)]
    pub reloading: bool,
    /// `STOPPING=1` came.
    #[serde(default)]
    pub stopping: bool,
    /// `MAINPID=`, else the process the unit started.
    #[serde(default)]
    pub main_pid: Option<u32>,
}

impl ServiceStatus {
    /// `name` in `state`, with nothing else known yet (no process, no history, no health).
    pub fn new(name: impl Into<String>, state: StateKind) -> ServiceStatus {
        ServiceStatus {
            name: name.into(),
            state,
            pid: None,
            uptime_secs: None,
            restarts: 0,
            last_exit: None,
            health: None,
            reason: None,
            next_restart_secs: None,
            tags: Vec::new(),
            unit_name: None,
            children: Vec::new(),
            cron: None,
            adopted: false,
            notify: None,
        }
    }

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

    #[test]
    fn run_wire_shape() {
        let back: Envelope = serde_json::from_str(
            r#"{"v":1,"cmd":"run","argv":["/bin/sleep","5"],"restart":"on-failure"}"#,
        )
        .unwrap();
        assert_eq!(
            back.request,
            Request::Run(RunRequest {
                name: None,
                argv: vec!["/bin/sleep".into(), "5".into()],
                env: Vec::new(),
                cwd: None,
                restart: RestartPolicy::OnFailure,
                wait: false,
            })
        );
    }

    #[test]
    fn tags_are_optional_on_the_wire() {
        let s: ServiceStatus = serde_json::from_str(
            r#"{"name":"a","state":"running","pid":1,"uptime_secs":null,"restarts":0,
                "last_exit":null,"health":null,"reason":null,"next_restart_secs":null}"#,
        )
        .unwrap();
        assert!(s.tags.is_empty());
    }
}
