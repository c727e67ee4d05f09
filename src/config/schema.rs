//! Typed, validated configuration: what `config::load` returns after every check passed.
//!
//! These types are the output of validation, not serde targets: the parser reads a spanned
//! YAML tree and builds them field by field so that every problem can be reported at once
//! with its position.
//!
//! They are also the one declaration of each setting for the config's JSON Schema
//! (`sysg schema`, `input_schema.rs`): each field's `///` doc comment is its description there
//! (so it speaks to the user; notes for the code go in `//` comments), and a
//! `#[schemars(with = ...)]` names the written form when it differs from the validated value
//! (a duration written as `5s` or `10`, a size as `512M`, a key the user may leave out). The
//! written forms live in `input_forms.rs`.

use std::path::PathBuf;
use std::time::Duration;

use schemars::JsonSchema;
use serde::Serialize;

use super::input_forms::{
    version_schema, Capability, CpuMaxValue, DependsOn, DurationValue, EnvFile, Hook as HookForm,
    ProbeFile, ProjectName, ReadinessFile, ReloadFile, RunFile, ScalarValue, SignalValue,
    SizeValue, SpawnFile, Text, Url, WebhookEvent, ENV_KEY_PATTERN, NAME_PATTERN,
};

/// A whole `systemg.yaml`.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[schemars(rename = "ConfigFile", deny_unknown_fields, title = "systemg.yaml")]
pub struct Config {
    /// The config format version: "1".
    #[schemars(schema_with = "version_schema")]
    pub version: String,
    /// One supervisor runs per project; unit and state names derive from it. Default: the
    /// name of the directory holding the config.
    #[schemars(with = "Option<ProjectName>")]
    pub project: String,
    /// True when `project:` was written; false when the name came from the directory (then
    /// `runtime::instance` may suffix it to keep two directories of one name apart).
    #[serde(skip)]
    pub project_explicit: bool,
    /// Absolute path of the config file.
    #[schemars(skip)]
    pub path: PathBuf,
    /// Directory of the config file; relative paths in the config resolve against it.
    #[schemars(skip)]
    pub base_dir: PathBuf,
    /// The services (and cron jobs), by name (letters, digits, `_`, `.`, `-`).
    #[schemars(
        with = "std::collections::BTreeMap<String, Service>",
        extend("propertyNames" = {"pattern": NAME_PATTERN, "maxLength": super::MAX_NAME_LEN}, "minProperties" = 1)
    )]
    pub services: Vec<Service>,
    /// Webhooks for every service of the project.
    #[schemars(with = "Option<Vec<Webhook>>")]
    pub webhooks: Vec<Webhook>,
    /// Default log policy of every service (and the policy of `supervisor.log`).
    #[schemars(with = "Option<LogPolicy>")]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
#[schemars(rename = "RestartPolicyValue")]
pub enum RestartPolicy {
    /// Restart after any exit.
    Always,
    /// Restart after a non-zero exit or a death by signal (the default).
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

/// `health_check:` exactly one of `url`, `tcp`, `command`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
#[schemars(
    rename = "HealthCheckFile",
    deny_unknown_fields,
    extend("oneOf" = [{"required": ["url"]}, {"required": ["tcp"]}, {"required": ["command"]}])
)]
pub struct HealthCheck {
    #[schemars(flatten, with = "ProbeFile")]
    pub probe: Probe,
    /// Time between probes. Default 5s.
    #[schemars(with = "Option<DurationValue>")]
    pub interval: Duration,
    /// Bound on one probe. Default 5s.
    #[schemars(with = "Option<DurationValue>")]
    pub timeout: Duration,
    /// Consecutive failures that make the service unhealthy. Default 3.
    #[schemars(with = "Option<u32>")]
    pub retries: u32,
    /// Failures in this time after a start do not count. Default 0.
    #[schemars(with = "Option<DurationValue>")]
    pub start_period: Duration,
    /// Until a probe passes, a failed probe is retried after 100 ms, then doubling up to
    /// this; only failures on the `interval` schedule count. Default: `interval`.
    #[schemars(with = "Option<DurationValue>")]
    pub start_interval: Duration,
}

/// `deployment.strategy`
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[schemars(rename = "StrategyValue")]
pub enum Strategy {
    /// Stop the old process, start the new one.
    Immediate,
    /// Start the new process, wait until it is healthy, then stop the old one.
    Rolling,
    /// `rolling` with two slots: what a `blue_green` section makes of `rolling` (not written
    /// as a strategy).
    #[schemars(skip)]
    BlueGreen,
}

impl Strategy {
    /// True for the strategies that start the new instance beside the old one.
    pub fn side_by_side(self) -> bool {
        !matches!(self, Strategy::Immediate)
    }
}

/// `deployment.blue_green:`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
#[schemars(rename = "BlueGreenFile", deny_unknown_fields)]
pub struct BlueGreen {
    /// Variable that tells the service its slot.
    #[schemars(regex(pattern = ENV_KEY_PATTERN))]
    pub env_var: String,
    /// Exactly two different slot values.
    #[schemars(with = "Vec<ScalarValue>", length(min = 2, max = 2))]
    pub slots: [String; 2],
    /// Command run to switch traffic to the new slot.
    #[schemars(with = "Option<Text>")]
    pub switch_command: Option<String>,
    /// File recording the active slot.
    #[schemars(with = "Option<Text>")]
    pub state_path: Option<PathBuf>,
}

/// `deployment:`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
#[schemars(rename = "DeploymentFile", deny_unknown_fields)]
pub struct Deployment {
    /// Default `immediate`.
    #[schemars(with = "Option<Strategy>")]
    pub strategy: Strategy,
    /// A command that must succeed before the new process starts (e.g. migrations).
    #[schemars(with = "Option<Text>")]
    pub pre_start: Option<String>,
    /// The check that gates the switch (default: the service's own).
    pub health_check: Option<HealthCheck>,
    /// How long the old process keeps running after the new one is healthy. Default 0.
    #[schemars(with = "Option<DurationValue>")]
    pub grace_period: Duration,
    /// Two slots the service alternates between.
    pub blue_green: Option<BlueGreen>,
}

/// `cron:`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
#[schemars(rename = "CronFile", deny_unknown_fields)]
pub struct Cron {
    /// 5 fields (standard cron) or 6 (with seconds first), or `@daily`, `@hourly`, ...
    // Kept as the user wrote it.
    #[schemars(regex(pattern = "^\\s*(@[a-z]+|\\S+(\\s+\\S+){4,6})\\s*$"))]
    pub expression: String,
    /// IANA time zone, like Europe/Paris. Default: the system's.
    #[schemars(with = "Option<Text>")]
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

/// `limits.cgroup:`
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, JsonSchema)]
#[schemars(rename = "CgroupFile", deny_unknown_fields)]
pub struct CgroupLimits {
    /// memory.max.
    #[schemars(with = "Option<SizeValue>")]
    pub memory_max: Option<Size>,
    /// cpu.max: `"<quota|max> [period]"` in microseconds, or a percentage like `"50%"`.
    #[schemars(with = "Option<CpuMaxValue>")]
    pub cpu_max: Option<CpuMax>,
}

/// `limits:`
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, JsonSchema)]
#[schemars(rename = "LimitsFile", deny_unknown_fields)]
pub struct Limits {
    /// Open files (RLIMIT_NOFILE).
    #[schemars(with = "Option<SizeValue>")]
    pub nofile: Option<Size>,
    /// Processes (RLIMIT_NPROC).
    #[schemars(with = "Option<SizeValue>")]
    pub nproc: Option<Size>,
    /// Locked memory (RLIMIT_MEMLOCK).
    #[schemars(with = "Option<SizeValue>")]
    pub memlock: Option<Size>,
    /// Scheduling niceness.
    #[schemars(range(min = -20, max = 19))]
    pub nice: Option<i32>,
    /// CPUs the service may run on.
    #[schemars(length(min = 1), inner(range(min = 0, max = 8191)))]
    pub cpu_affinity: Option<Vec<u32>>,
    /// cgroup v2 limits.
    #[schemars(with = "Option<CgroupLimits>")]
    pub cgroup: CgroupLimits,
}

impl Limits {
    /// True when no limit is set.
    pub fn is_empty(&self) -> bool {
        *self == Limits::default()
    }
}

/// `isolation:`
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, JsonSchema)]
#[schemars(rename = "IsolationFile", deny_unknown_fields)]
pub struct Isolation {
    /// A network namespace of its own (loopback only).
    #[schemars(with = "Option<bool>")]
    pub network: bool,
    /// A pid namespace of its own.
    #[schemars(with = "Option<bool>")]
    pub pid: bool,
    /// A mount namespace of its own.
    #[schemars(with = "Option<bool>")]
    pub mount: bool,
}

/// One hook command (written as `input_forms::Hook`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Hook {
    pub command: String,
    /// Default 30s.
    pub timeout: Duration,
}

/// `hooks:`
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, JsonSchema)]
#[schemars(rename = "HooksFile", deny_unknown_fields)]
pub struct Hooks {
    #[schemars(with = "Option<HookForm>")]
    pub on_start: Option<Hook>,
    #[schemars(with = "Option<HookForm>")]
    pub on_ready: Option<Hook>,
    #[schemars(with = "Option<HookForm>")]
    pub on_exit: Option<Hook>,
    #[schemars(with = "Option<HookForm>")]
    pub on_failure: Option<Hook>,
    #[schemars(with = "Option<HookForm>")]
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

/// A webhook (project or service level).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
#[schemars(rename = "WebhookFile", deny_unknown_fields)]
pub struct Webhook {
    /// Where to POST.
    #[schemars(with = "Url")]
    pub url: String,
    /// Events to send; all when absent.
    // From `WEBHOOK_EVENTS`; empty when absent.
    #[schemars(with = "Option<Vec<WebhookEvent>>")]
    pub events: Vec<String>,
    /// Default 5s.
    #[schemars(with = "Option<DurationValue>")]
    pub timeout: Duration,
    /// Default 3.
    #[schemars(with = "Option<u32>")]
    pub retries: u32,
    /// Key for the HMAC-SHA256 signature header.
    #[schemars(with = "Option<Text>")]
    pub secret: Option<String>,
}

/// A signal by number and canonical name (`SIGTERM`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Signal {
    pub number: i32,
    pub name: String,
}

/// `logs:` (project default, overridable per service).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[schemars(rename = "LogsFile", deny_unknown_fields)]
pub struct LogPolicy {
    /// Rotate when a file reaches this size. Default 10M.
    // In bytes.
    #[schemars(with = "Option<SizeValue>")]
    pub max_size: u64,
    /// Rotated files kept. Default 5.
    #[schemars(with = "Option<u32>")]
    pub max_files: u32,
    /// Gzip rotated files. Default false.
    #[schemars(with = "Option<bool>")]
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

/// One service or cron job. Exactly one of `command` and `exec`.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[schemars(
    rename = "ServiceFile",
    deny_unknown_fields,
    extend(
        "oneOf" = [{"required": ["command"]}, {"required": ["exec"]}],
        "if" = {"required": ["cron"]},
        "then" = {"not": {"anyOf": [{"required": ["restart_policy"]}, {"required": ["deployment"]}, {"required": ["sockets"]}]}},
        "dependentSchemas" = {"watchdog": {"required": ["readiness"], "properties": {"readiness": {"const": "notify"}}}}
    )
)]
pub struct Service {
    /// The key under `services:`.
    #[schemars(skip)]
    pub name: String,
    /// `command:` or `exec:`.
    #[schemars(flatten, with = "RunFile")]
    pub run: Run,
    /// Working directory; relative paths resolve against the config's directory (the default).
    #[schemars(with = "Option<Text>")]
    pub working_dir: Option<PathBuf>,
    /// Environment: a `.env` file and variables (which override the file's).
    #[schemars(with = "Option<EnvFile>")]
    pub env: Env,
    /// When to restart after an exit. Default `on-failure`; not allowed on cron jobs.
    // Always `Never` for a cron job.
    #[schemars(with = "Option<RestartPolicy>")]
    pub restart_policy: RestartPolicy,
    /// Delay before the first restart; doubles for each consecutive restart. Default 1s.
    #[schemars(with = "Option<DurationValue>")]
    pub backoff: Duration,
    /// Consecutive restarts before the service is marked failed. Default: no limit.
    pub max_restarts: Option<u32>,
    /// Services that must be up first: names, or `{service, condition}`.
    #[schemars(with = "Option<DependsOn>")]
    pub depends_on: Vec<Dependency>,
    /// How to tell the service is healthy.
    pub health_check: Option<HealthCheck>,
    /// How a restart or a new version is rolled out. Not allowed on cron jobs.
    pub deployment: Option<Deployment>,
    /// Makes the service a job run on a schedule.
    pub cron: Option<Cron>,
    /// Whether the service may start tracked children (`sysg spawn`), and their limits.
    #[schemars(with = "Option<SpawnFile>")]
    pub spawn: Option<Spawn>,
    /// User to run as (privileged mode).
    #[schemars(with = "Option<Text>")]
    pub user: Option<String>,
    /// Group to run as (privileged mode).
    #[schemars(with = "Option<Text>")]
    pub group: Option<String>,
    /// Extra groups (privileged mode).
    #[schemars(with = "Option<Vec<Text>>")]
    pub supplementary_groups: Vec<String>,
    /// Resource limits.
    #[schemars(with = "Option<Limits>")]
    pub limits: Limits,
    /// Capabilities to keep (privileged mode).
    // Canonical `CAP_*` names; `None` when the field is absent (no change to capabilities).
    #[schemars(with = "Option<Vec<Capability>>")]
    pub capabilities: Option<Vec<String>>,
    /// Namespaces of its own.
    #[schemars(with = "Option<Isolation>")]
    pub isolation: Isolation,
    /// Commands run on lifecycle events.
    #[schemars(with = "Option<Hooks>")]
    pub hooks: Hooks,
    /// Webhooks for this service (besides the project's).
    #[schemars(with = "Option<Vec<Webhook>>")]
    pub webhooks: Vec<Webhook>,
    /// Signal that asks the service to stop. Default SIGTERM.
    #[schemars(with = "Option<SignalValue>")]
    pub stop_signal: Signal,
    /// Time between the stop signal and SIGKILL. Default 10s.
    #[schemars(with = "Option<DurationValue>")]
    pub stop_timeout: Duration,
    /// Log rotation of this service (default: the project's `logs`).
    #[schemars(with = "Option<LogPolicy>")]
    pub logs: LogPolicy,
    /// Labels.
    #[schemars(with = "Option<Vec<Text>>")]
    pub tags: Vec<String>,
    /// `readiness`, `start_timeout`, `watchdog` (config/service_model.rs).
    #[schemars(flatten, with = "ReadinessFile")]
    pub readiness: super::service_model::Readiness,
    /// What `sysg reload` does: a signal to the main process, or a command run like a hook.
    // `None` when the field is absent.
    #[schemars(with = "Option<ReloadFile>")]
    pub reload: Option<super::service_model::Reload>,
    /// Kernel-enforced hardening, identical on both backends.
    // Empty (no protection) when absent.
    #[schemars(with = "Option<super::sandbox_schema::SandboxFile>")]
    pub sandbox: crate::sandbox::Sandbox,
    /// Socket activation: sockets the supervisor (or systemd) listens on and hands to the
    /// service as in sd_listen_fds (fds 3, 4, ... in this order, `LISTEN_FDS`, `LISTEN_PID`,
    /// `LISTEN_FDNAMES`). They outlive restarts and deployments, so no connection is refused.
    // In the order written: fds 3, 4, ...
    #[schemars(with = "Option<Vec<super::sockets::SocketFile>>")]
    pub sockets: Vec<super::sockets::ListenSocket>,
}
