//! `UnitSpec`: what to run for one unit, independent of the backend that runs it.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::schema::{Isolation, Limits, LogPolicy, Service};
pub use crate::config::service_model::Readiness;

/// Everything a backend needs to start one unit. Two specs that compare equal run the same thing,
/// which is how a config reload decides what changed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UnitSpec {
    /// Project the unit belongs to.
    pub project: String,
    /// Unit key: the service name.
    pub name: String,
    /// Program and arguments (`/bin/sh -c CMD` for `command:`).
    pub argv: Vec<String>,
    /// Full environment added to the supervisor's base environment.
    pub env: Vec<(String, String)>,
    pub cwd: Option<PathBuf>,
    pub user: Option<String>,
    pub group: Option<String>,
    pub supplementary_groups: Vec<String>,
    pub limits: Limits,
    pub capabilities: Option<Vec<String>>,
    pub isolation: Isolation,
    /// Signal number sent first on stop.
    pub stop_signal: i32,
    /// Time between the stop signal and SIGKILL.
    pub stop_timeout: Duration,
    pub logs: LogPolicy,
    /// `sandbox:` of the service (empty: none).
    #[serde(skip_serializing_if = "crate::sandbox::Sandbox::is_empty")]
    pub sandbox: crate::sandbox::Sandbox,
    /// Set for a child started with `sysg spawn`: the tree it belongs to and the limits the
    /// whole tree shares (absent for services).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spawn: Option<SpawnGroup>,
    /// `readiness`/`start_timeout`/`watchdog`: the backend gives a notify service its
    /// `NOTIFY_SOCKET` (and `WATCHDOG_USEC`), the core waits for READY=1.
    pub readiness: Readiness,
    /// Listening sockets handed over as in sd_listen_fds (fds 3, 4, ... in this order). They
    /// belong to the service, not to one instance: every instance gets the same sockets.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sockets: Vec<crate::config::sockets::ListenSocket>,
}

/// Where a dynamically spawned child runs: every child of one service's tree shares one group
/// (a cgroup on the process backend, a slice on systemd) carrying the tree's limits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SpawnGroup {
    /// The service whose tree the child belongs to.
    pub service: String,
    /// The child's own name (unique within the tree).
    pub child: String,
    /// `spawn.limits.total_memory` in bytes, for the whole tree.
    pub memory_max: Option<u64>,
    /// Most tasks (processes and threads) of the whole tree.
    pub tasks_max: Option<u64>,
}

/// A unit key as a file-name component: a spawned child `web/worker` becomes `web@worker`
/// (`@` never appears in a service name, so it cannot collide with one).
pub fn file_key(unit: &str) -> String {
    unit.replace('/', "@")
}

impl UnitSpec {
    /// A spec with only its identity and command: no environment, working directory, user,
    /// limits or isolation; stopped with SIGTERM and the config's default 10 s timeout.
    pub fn new(project: impl Into<String>, name: impl Into<String>, argv: Vec<String>) -> UnitSpec {
        UnitSpec {
            project: project.into(),
            name: name.into(),
            argv,
            env: Vec::new(),
            cwd: None,
            user: None,
            group: None,
            supplementary_groups: Vec::new(),
            limits: Limits::default(),
            capabilities: None,
            isolation: Isolation::default(),
            stop_signal: 15,
            stop_timeout: Duration::from_secs(10),
            logs: LogPolicy::default(),
            sandbox: Default::default(),
            spawn: None,
            readiness: Readiness::default(),
            sockets: Vec::new(),
        }
    }

    /// The spec of a configured service.
    pub fn from_service(project: &str, svc: &Service) -> UnitSpec {
        UnitSpec {
            project: project.to_string(),
            name: svc.name.clone(),
            argv: svc.run.argv(),
            env: svc.env.vars.clone(),
            cwd: svc.working_dir.clone(),
            user: svc.user.clone(),
            group: svc.group.clone(),
            supplementary_groups: svc.supplementary_groups.clone(),
            limits: svc.limits.clone(),
            capabilities: svc.capabilities.clone(),
            isolation: svc.isolation,
            stop_signal: svc.stop_signal.number,
            stop_timeout: svc.stop_timeout,
            logs: svc.logs,
            sandbox: svc.sandbox.clone(),
            spawn: None,
            readiness: svc.readiness,
            sockets: svc.sockets.clone(),
        }
    }
}

/// Separates a service name from an instance number in a backend key (`web~3`: a candidate of
/// a rolling deployment, see `core/deploy.rs`). Service names are `[A-Za-z0-9_.-]+`, so a key
/// with `~` is never a service of its own.
pub const INSTANCE_SEP: char = '~';

/// The backend key of instance `n` of `service`: `web~3`.
pub fn instance_key(service: &str, n: u64) -> String {
    format!("{service}{INSTANCE_SEP}{n}")
}

/// The service a backend key belongs to: `web~3` → `web`, `web` → `web`. Backends name logs
/// after it, so every instance of a service writes to the service's log.
pub fn service_of(key: &str) -> &str {
    key.split_once(INSTANCE_SEP).map_or(key, |(s, _)| s)
}

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "value")]
pub enum ExitStatus {
    /// Exited with this code.
    Code(i32),
    /// Killed by this signal.
    Signal(i32),
    /// Ended, but the status could not be observed (an adopted process is not our child).
    Unknown,
}

impl ExitStatus {
    /// Exit code 0.
    pub fn success(&self) -> bool {
        matches!(self, ExitStatus::Code(0))
    }
}

impl std::fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExitStatus::Code(c) => write!(f, "exit {c}"),
            ExitStatus::Signal(s) => write!(f, "signal {}", crate::signals::name(*s)),
            ExitStatus::Unknown => f.write_str("exited (status unknown)"),
        }
    }
}
