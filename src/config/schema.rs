//! Typed, validated configuration: what `config::load` returns after every check passed.
//!
//! These types are the output of validation, not serde targets: the parser reads a spanned
//! YAML tree and builds them field by field so that every problem can be reported at once
//! with its position.

use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

/// A whole validated `systemg.yaml`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Config {
    /// The `version:` string (only "1" is accepted).
    pub version: String,
    /// `project:` or, when absent, the name of the directory holding the config file.
    pub project: String,
    /// True when `project:` was written; false when the name came from the directory (then
    /// `runtime::instance` may suffix it to keep two directories of one name apart).
    #[serde(skip)]
    pub project_explicit: bool,
    /// Absolute path of the config file.
    pub path: PathBuf,
    /// Directory of the config file; relative paths in the config resolve against it.
    pub base_dir: PathBuf,
    /// Services in file order.
    pub services: Vec<Service>,
    /// Project-level webhooks.
    pub webhooks: Vec<Webhook>,
    /// Top-level `logs:`: the default of every service, and the policy of `supervisor.log`.
    pub logs: LogPolicy,
}

impl Config {
    /// The service with this name.
    pub fn service(&self, name: &str) -> Option<&Service> {
        self.services.iter().find(|s| s.name == name)
    }
}

/// What a service runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Run {
    /// `command:` run as `/bin/sh -c <command>`.
    Shell(String),
    /// `exec: [prog, args..]` run directly.
    Exec(Vec<String>),
}

impl Run {
    /// The argv that executes this run.
    pub fn argv(&self) -> Vec<String> {
        match self {
            Run::Shell(cmd) => vec!["/bin/sh".into(), "-c".into(), cmd.clone()],
            Run::Exec(argv) => argv.clone(),
        }
    }
}

/// `restart_policy:`
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RestartPolicy {
    /// Restart after any exit.
    Always,
    /// Restart only after a non-zero exit or a death by signal.
    OnFailure,
    /// Never restart.
    Never,
}

/// `depends_on` condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DepCondition {
    /// The dependency's process is running (or has completed successfully).
    Started,
    /// The dependency's health check passed.
    Healthy,
    /// The dependency exited with status 0.
    Completed,
}

/// One `depends_on` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Dependency {
    /// Name of the service depended on.
    pub service: String,
    /// What must hold before the dependent starts. When the user gave a bare name this is
    /// `Healthy` if the dependency has a health check, else `Started`.
    pub condition: DepCondition,
}

/// Resolved environment of a service.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Env {
    /// `env.file`, resolved against the config directory.
    pub file: Option<PathBuf>,
    /// The final variables in order: env file entries first, then `vars` (which override).
    pub vars: Vec<(String, String)>,
    /// Keys that came from the env file; their values are secret and never printed.
    pub secret_keys: Vec<String>,
}

/// How a health check probes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Probe {
    /// HTTP GET; 2xx/3xx is healthy.
    Http { url: String },
    /// TCP connect to `host:port`.
    Tcp { host: String, port: u16 },
    /// `/bin/sh -c <command>` exits 0.
    Command { command: String },
}

/// `health_check:`
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HealthCheck {
    pub probe: Probe,
    /// Time between probes. Default 5s.
    pub interval: Duration,
    /// Bound on one probe. Default 5s.
    pub timeout: Duration,
    /// Consecutive failures that make the service unhealthy. Default 3.
    pub retries: u32,
    /// Failures during this time after start do not count. Default 0.
    pub start_period: Duration,
    /// Cap of the fast retries before the first pass (100 ms, doubling). Default `interval`.
    pub start_interval: Duration,
}

/// `deployment.strategy`
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// Stop the old instance, then start the new one.
    Immediate,
    /// Start the new instance beside the old one, switch once it is healthy.
    Rolling,
    /// `rolling` with two slots (`blue_green` section required).
    BlueGreen,
}

impl Strategy {
    /// True for the strategies that start the new instance beside the old one.
    pub fn side_by_side(self) -> bool {
        !matches!(self, Strategy::Immediate)
    }
}

/// `deployment.blue_green`
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BlueGreen {
    pub env_var: String,
    /// Exactly two slot values.
    pub slots: [String; 2],
    pub switch_command: Option<String>,
    pub state_path: Option<PathBuf>,
}

/// `deployment:`
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Deployment {
    pub strategy: Strategy,
    pub pre_start: Option<String>,
    pub health_check: Option<HealthCheck>,
    /// Default 0.
    pub grace_period: Duration,
    pub blue_green: Option<BlueGreen>,
}

/// `cron:`
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Cron {
    /// The expression as the user wrote it.
    pub expression: String,
    /// IANA zone name; `None` means the system zone.
    pub timezone: Option<String>,
}

/// `spawn.mode`
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SpawnMode {
    Static,
    Dynamic,
}

/// `spawn.limits.termination_policy`
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TerminationPolicy {
    Cascade,
    Orphan,
}

/// `spawn:`
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Spawn {
    pub mode: SpawnMode,
    pub children: Option<u32>,
    pub depth: Option<u32>,
    pub descendants: Option<u32>,
    /// Bytes shared by the whole tree.
    pub total_memory: Option<Size>,
    pub termination_policy: TerminationPolicy,
    /// Spawns per second per parent. Default 10.
    pub rate_per_sec: u32,
}

/// A byte size or a count that may be unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Size {
    Value(u64),
    Unlimited,
}

/// `limits.cgroup.cpu_max`: `"<quota|max> <period>"` in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct CpuMax {
    /// `None` means `max` (no quota).
    pub quota_us: Option<u64>,
    pub period_us: u64,
}

/// `limits.cgroup`
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CgroupLimits {
    pub memory_max: Option<Size>,
    pub cpu_max: Option<CpuMax>,
}

/// `limits:`
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Limits {
    pub nofile: Option<Size>,
    pub nproc: Option<Size>,
    pub memlock: Option<Size>,
    pub nice: Option<i32>,
    pub cpu_affinity: Option<Vec<u32>>,
    pub cgroup: CgroupLimits,
}

impl Limits {
    /// True when no limit is set.
    pub fn is_empty(&self) -> bool {
        *self == Limits::default()
    }
}

/// `isolation:`
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Isolation {
    pub network: bool,
    pub pid: bool,
    pub mount: bool,
}

/// One hook command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Hook {
    pub command: String,
    /// Default 30s.
    pub timeout: Duration,
}

/// `hooks:`
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Hooks {
    pub on_start: Option<Hook>,
    pub on_ready: Option<Hook>,
    pub on_exit: Option<Hook>,
    pub on_failure: Option<Hook>,
    pub on_deploy: Option<Hook>,
}

/// Events a webhook can select.
pub const WEBHOOK_EVENTS: &[&str] = &[
    "start",
    "ready",
    "exit",
    "failure",
    "restart",
    "stop",
    "deploy",
    "unhealthy",
    "cron",
];

/// `webhooks:` entry (project or service level).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Webhook {
    pub url: String,
    /// Selected events (from `WEBHOOK_EVENTS`); empty means all.
    pub events: Vec<String>,
    /// Default 5s.
    pub timeout: Duration,
    /// Default 3.
    pub retries: u32,
    /// HMAC-SHA256 key for the signature header.
    pub secret: Option<String>,
}

/// A signal by number and canonical name (`SIGTERM`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Signal {
    pub number: i32,
    pub name: String,
}

/// `logs:` (project default, overridable per service).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct LogPolicy {
    /// Rotate when a file reaches this many bytes. Default 10 MiB.
    pub max_size: u64,
    /// Rotated files kept. Default 5.
    pub max_files: u32,
    /// Gzip rotated files. Default false.
    pub compress: bool,
}

impl Default for LogPolicy {
    fn default() -> Self {
        LogPolicy {
            max_size: 10 * 1024 * 1024,
            max_files: 5,
            compress: false,
        }
    }
}

/// One service (or cron job) of the config.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Service {
    pub name: String,
    pub run: Run,
    pub working_dir: Option<PathBuf>,
    pub env: Env,
    /// Default `on-failure`; cron jobs are always `never`.
    pub restart_policy: RestartPolicy,
    /// Base delay before a restart. Default 1s.
    pub backoff: Duration,
    /// Consecutive restarts allowed before the service is marked failed; `None` = no cap.
    pub max_restarts: Option<u32>,
    pub depends_on: Vec<Dependency>,
    pub health_check: Option<HealthCheck>,
    pub deployment: Option<Deployment>,
    pub cron: Option<Cron>,
    pub spawn: Option<Spawn>,
    pub user: Option<String>,
    pub group: Option<String>,
    pub supplementary_groups: Vec<String>,
    pub limits: Limits,
    /// Canonical `CAP_*` names; `None` when the field is absent (no change to capabilities).
    pub capabilities: Option<Vec<String>>,
    pub isolation: Isolation,
    pub hooks: Hooks,
    pub webhooks: Vec<Webhook>,
    /// Default SIGTERM.
    pub stop_signal: Signal,
    /// Default 10s.
    pub stop_timeout: Duration,
    pub logs: LogPolicy,
    pub tags: Vec<String>,
    /// `readiness`, `start_timeout`, `watchdog` (config/service_model.rs).
    pub readiness: super::service_model::Readiness,
    /// `reload`: what `sysg reload` does; `None` when the field is absent.
    pub reload: Option<super::service_model::Reload>,
}
