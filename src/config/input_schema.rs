//! The JSON Schema of `systemg.yaml`, for editors (yaml-language-server) and `sysg schema`.
//!
//! `schema.rs` holds what validation *produces* (durations resolved, paths absolute, env files
//! read); these types mirror what users *write*: durations as text or seconds, sizes with
//! units, `command` xor `exec`, `depends_on` as names or mappings. They exist only to derive
//! the schema and are never deserialized into. The parser stays the authority (it also checks
//! what a schema cannot: dependency cycles, env files, cron expressions, time zones); a test
//! keeps the two in agreement on every example and on the malformed corpus, and another keeps
//! docs/schemas/systemg.schema.json equal to what this generates.

use std::borrow::Cow;
use std::collections::BTreeMap;

use schemars::generate::SchemaSettings;
use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde_json::Value;
use thiserror::Error;

/// Failures producing the schema.
#[derive(Debug, Error)]
pub enum SchemaError {
    #[error("cannot render the config schema: {0}")]
    Render(#[from] serde_json::Error),
}

/// Names of projects and services: no leading `.` (config/build.rs `name_problem`).
const NAME_PATTERN: &str = "^[A-Za-z0-9_-][A-Za-z0-9_.-]*$";
/// A string that is not blank.
const NON_BLANK: &str = "\\S";
/// Durations: `100ms`, `5s`, `2m`, `1h`, `1d`, `1.5s`, `1m30s`, or a whole number of seconds.
const DURATION_PATTERN: &str =
    "^\\s*([0-9]+|([0-9]+(\\.[0-9]+)?(ms|secs?|s|mins?|m|hrs?|h|d))+)\\s*$";
/// Sizes: bytes, or with K/M/G/T (binary multiples, optional `B`/`iB`), or unlimited.
const SIZE_PATTERN: &str = "^\\s*([0-9]+(\\.[0-9]+)?\\s*([bB]|[kKmMgGtT]([iI]?[bB])?)?|[uU][nN][lL][iI][mM][iI][tT][eE][dD]|[iI][nN][fF][iI][nN][iI][tT][yY])\\s*$";
/// `cpu_max`: `"<quota|max> [period]"` in microseconds, or a percentage.
const CPU_MAX_PATTERN: &str = "^\\s*([0-9]+(\\.[0-9]+)?\\s*%|(max|[0-9]+)(\\s+[0-9]+)?)\\s*$";
/// Environment variable names.
const ENV_KEY_PATTERN: &str = "^[A-Za-z_][A-Za-z0-9_]*$";

/// A duration: `100ms`, `5s`, `2m`, `1h`, `1d`, `1.5s`, `1m30s`, or a number of seconds.
pub struct DurationValue;

impl JsonSchema for DurationValue {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A duration: 100ms, 5s, 2m, 1h, 1d, 1.5s, 1m30s, or a whole number of seconds.",
            "anyOf": [
                {"type": "integer", "minimum": 0},
                {"type": "string", "pattern": DURATION_PATTERN}
            ],
            "examples": ["500ms", "5s", "1m30s", 10]
        })
    }
}

/// A byte size or a count: `512`, `64K`, `512M`, `2G`, `1.5G`, or `unlimited`.
pub struct SizeValue;

impl JsonSchema for SizeValue {
    fn schema_name() -> Cow<'static, str> {
        "Size".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A size or count: a number, or with K, M, G, T (binary multiples), or unlimited.",
            "anyOf": [
                {"type": "integer", "minimum": 0},
                {"type": "string", "pattern": SIZE_PATTERN}
            ],
            "examples": ["512M", "2G", 65536, "unlimited"]
        })
    }
}

/// An environment value: YAML scalars are taken as text.
pub struct ScalarValue;

impl JsonSchema for ScalarValue {
    fn schema_name() -> Cow<'static, str> {
        "Scalar".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A string, number or boolean (used as text).",
            "type": ["string", "number", "boolean"]
        })
    }
}

/// A non-blank string.
pub struct Text;

impl JsonSchema for Text {
    fn inline_schema() -> bool {
        true
    }
    fn schema_name() -> Cow<'static, str> {
        "Text".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({"type": "string", "pattern": NON_BLANK})
    }
}

/// A project or service name.
pub struct Name;

impl JsonSchema for Name {
    fn inline_schema() -> bool {
        true
    }
    fn schema_name() -> Cow<'static, str> {
        "Name".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({"type": "string", "pattern": NAME_PATTERN, "maxLength": super::MAX_NAME_LEN})
    }
}

/// A project name: a name short enough for the control socket's path.
pub struct ProjectName;

impl JsonSchema for ProjectName {
    fn inline_schema() -> bool {
        true
    }
    fn schema_name() -> Cow<'static, str> {
        "ProjectName".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({"type": "string", "pattern": NAME_PATTERN, "maxLength": super::MAX_PROJECT_LEN})
    }
}

/// An `http://` or `https://` URL.
pub struct Url;

impl JsonSchema for Url {
    fn inline_schema() -> bool {
        true
    }
    fn schema_name() -> Cow<'static, str> {
        "Url".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({"type": "string", "pattern": "^https?://[^/?#\\s]+"})
    }
}

/// A signal: name (`SIGTERM`, `TERM`, `term`) or number.
pub struct SignalValue;

impl JsonSchema for SignalValue {
    fn schema_name() -> Cow<'static, str> {
        "Signal".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        let names: Vec<&str> = crate::signals::names().collect();
        json_schema!({
            "description": "A signal name (SIGTERM, TERM, term) or number.",
            "anyOf": [
                {"enum": names},
                {"type": "string", "pattern": "^\\s*([sS][iI][gG])?[A-Za-z0-9+]+\\s*$"},
                {"type": "integer", "minimum": 1, "maximum": 64}
            ]
        })
    }
}

/// A capability name: `CAP_NET_BIND_SERVICE`, or without the prefix, any case.
pub struct Capability;

impl JsonSchema for Capability {
    fn schema_name() -> Cow<'static, str> {
        "Capability".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        let names: Vec<&str> = super::caps::CAPABILITIES.to_vec();
        json_schema!({
            "description": "A Linux capability, like CAP_NET_BIND_SERVICE (the CAP_ prefix and case are optional).",
            "anyOf": [
                {"enum": names},
                {"type": "string", "pattern": "^\\s*[A-Za-z_]+\\s*$"}
            ]
        })
    }
}

/// A whole `systemg.yaml`.
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields, title = "systemg.yaml")]
pub struct ConfigFile {
    /// The config format version: "1".
    #[schemars(schema_with = "version_schema")]
    pub version: String,
    /// One supervisor runs per project; unit and state names derive from it. Default: the
    /// name of the directory holding the config.
    pub project: Option<ProjectName>,
    /// The services (and cron jobs), by name (letters, digits, `_`, `.`, `-`).
    #[schemars(extend("propertyNames" = {"pattern": NAME_PATTERN, "maxLength": super::MAX_NAME_LEN}, "minProperties" = 1))]
    pub services: BTreeMap<String, ServiceFile>,
    /// Webhooks for every service of the project.
    pub webhooks: Option<Vec<WebhookFile>>,
    /// Default log policy of every service.
    pub logs: Option<LogsFile>,
}

fn version_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "description": "The config format version: \"1\".",
        "enum": ["1", 1]
    })
}

/// `restart_policy:`
#[derive(JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum RestartPolicyValue {
    /// Restart after any exit.
    Always,
    /// Restart after a non-zero exit or a death by signal (the default).
    OnFailure,
    /// Never restart.
    Never,
}

/// One service or cron job. Exactly one of `command` and `exec`.
#[derive(JsonSchema)]
#[schemars(
    deny_unknown_fields,
    extend(
        "oneOf" = [{"required": ["command"]}, {"required": ["exec"]}],
        "if" = {"required": ["cron"]},
        "then" = {"not": {"anyOf": [{"required": ["restart_policy"]}, {"required": ["deployment"]}]}},
        "dependentSchemas" = {"watchdog": {"required": ["readiness"], "properties": {"readiness": {"const": "notify"}}}}
    )
)]
pub struct ServiceFile {
    /// A shell command, run as `/bin/sh -c <command>`.
    pub command: Option<Text>,
    /// A program and its arguments, run directly (no shell).
    #[schemars(length(min = 1))]
    pub exec: Option<Vec<ScalarValue>>,
    /// Working directory; relative paths resolve against the config's directory (the default).
    pub working_dir: Option<Text>,
    /// Environment: a `.env` file and variables (which override the file's).
    pub env: Option<EnvFile>,
    /// When to restart after an exit. Default `on-failure`; not allowed on cron jobs.
    pub restart_policy: Option<RestartPolicyValue>,
    /// Delay before the first restart; doubles for each consecutive restart. Default 1s.
    pub backoff: Option<DurationValue>,
    /// Consecutive restarts before the service is marked failed. Default: no limit.
    pub max_restarts: Option<u32>,
    /// Services that must be up first: names, or `{service, condition}`.
    pub depends_on: Option<DependsOn>,
    /// How to tell the service is healthy.
    pub health_check: Option<HealthCheckFile>,
    /// How a restart or a new version is rolled out. Not allowed on cron jobs.
    pub deployment: Option<DeploymentFile>,
    /// Makes the service a job run on a schedule.
    pub cron: Option<CronFile>,
    /// Whether the service may start tracked children (`sysg spawn`), and their limits.
    pub spawn: Option<SpawnFile>,
    /// User to run as (privileged mode).
    pub user: Option<Text>,
    /// Group to run as (privileged mode).
    pub group: Option<Text>,
    /// Extra groups (privileged mode).
    pub supplementary_groups: Option<Vec<Text>>,
    /// Resource limits.
    pub limits: Option<LimitsFile>,
    /// Capabilities to keep (privileged mode).
    pub capabilities: Option<Vec<Capability>>,
    /// Namespaces of its own.
    pub isolation: Option<IsolationFile>,
    /// Commands run on lifecycle events.
    pub hooks: Option<HooksFile>,
    /// Webhooks for this service (besides the project's).
    pub webhooks: Option<Vec<WebhookFile>>,
    /// Signal that asks the service to stop. Default SIGTERM.
    pub stop_signal: Option<SignalValue>,
    /// Time between the stop signal and SIGKILL. Default 10s.
    pub stop_timeout: Option<DurationValue>,
    /// Log rotation of this service (default: the project's `logs`).
    pub logs: Option<LogsFile>,
    /// Labels.
    pub tags: Option<Vec<Text>>,
    /// When the service counts as started: `exec` (default) once its program runs, `notify`
    /// once it sends READY=1 on $NOTIFY_SOCKET (sd_notify).
    pub readiness: Option<ReadinessValue>,
    /// `notify`: READY=1 must come within this, or the start failed. Default 90s.
    pub start_timeout: Option<DurationValue>,
    /// The service must send WATCHDOG=1 at least this often, or it is aborted (SIGABRT) and
    /// handled by the restart policy. Needs `readiness: notify`.
    pub watchdog: Option<DurationValue>,
    /// What `sysg reload` does: a signal to the main process, or a command run like a hook.
    pub reload: Option<ReloadFile>,
}

/// `readiness:`
#[derive(JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ReadinessValue {
    /// Started once its program runs (the default).
    Exec,
    /// Started once it sends READY=1 (sd_notify).
    Notify,
}

/// `reload:` exactly one of `signal` and `command`.
#[derive(JsonSchema)]
#[schemars(
    deny_unknown_fields,
    extend("oneOf" = [{"required": ["signal"]}, {"required": ["command"]}])
)]
pub struct ReloadFile {
    /// Send this signal to the main process (e.g. SIGHUP).
    pub signal: Option<SignalValue>,
    /// Run this shell command with the service's environment, directory and identity.
    pub command: Option<Text>,
}

/// `env:`
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct EnvFile {
    /// A `.env` file: `KEY=value`, `export KEY=value`, `#` comments, quotes.
    pub file: Option<Text>,
    /// Variables; they override the file's.
    #[schemars(extend("propertyNames" = {"pattern": ENV_KEY_PATTERN}))]
    pub vars: Option<BTreeMap<String, ScalarValue>>,
}

/// `depends_on:` a name, or a list of names and `{service, condition}` mappings.
#[derive(JsonSchema)]
#[serde(untagged)]
pub enum DependsOn {
    One(Name),
    Many(Vec<Dependency>),
}

/// One dependency.
#[derive(JsonSchema)]
#[serde(untagged)]
pub enum Dependency {
    /// A service name: wait until it is healthy when it has a health check, else started.
    Name(Name),
    /// A service and what must hold.
    Full(DependencyFile),
}

/// `{service, condition}`
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct DependencyFile {
    /// The service depended on.
    pub service: Name,
    /// What must hold before the dependent starts.
    pub condition: Option<DepConditionValue>,
}

/// A dependency condition.
#[derive(JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DepConditionValue {
    /// Its process runs (or it completed).
    Started,
    /// Its health check passed (it must have one).
    Healthy,
    /// It exited with status 0.
    Completed,
}

/// `health_check:` exactly one of `url`, `tcp`, `command`.
#[derive(JsonSchema)]
#[schemars(
    deny_unknown_fields,
    extend("oneOf" = [{"required": ["url"]}, {"required": ["tcp"]}, {"required": ["command"]}])
)]
pub struct HealthCheckFile {
    /// HTTP GET; a 2xx or 3xx answer is healthy.
    pub url: Option<Url>,
    /// TCP connect to `host:port`.
    #[schemars(regex(pattern = "^\\s*(\\[[^\\]]+\\]|[^\\s:]+):[0-9]+\\s*$"))]
    pub tcp: Option<String>,
    /// A shell command that exits 0 when healthy.
    pub command: Option<Text>,
    /// Time between probes. Default 5s.
    pub interval: Option<DurationValue>,
    /// Bound on one probe. Default 5s.
    pub timeout: Option<DurationValue>,
    /// Consecutive failures that make the service unhealthy. Default 3.
    pub retries: Option<u32>,
    /// Failures in this time after a start do not count. Default 0.
    pub start_period: Option<DurationValue>,
    /// Until a probe passes, a failed probe is retried after 100 ms, then doubling up to
    /// this; only failures on the `interval` schedule count. Default: `interval`.
    pub start_interval: Option<DurationValue>,
}

/// `deployment.strategy`
#[derive(JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum StrategyValue {
    /// Stop the old process, start the new one.
    Immediate,
    /// Start the new process, wait until it is healthy, then stop the old one.
    Rolling,
}

/// `deployment:`
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct DeploymentFile {
    /// Default `immediate`.
    pub strategy: Option<StrategyValue>,
    /// A command that must succeed before the new process starts (e.g. migrations).
    pub pre_start: Option<Text>,
    /// The check that gates the switch (default: the service's own).
    pub health_check: Option<HealthCheckFile>,
    /// How long the old process keeps running after the new one is healthy. Default 0.
    pub grace_period: Option<DurationValue>,
    /// Two slots the service alternates between.
    pub blue_green: Option<BlueGreenFile>,
}

/// `deployment.blue_green:`
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct BlueGreenFile {
    /// Variable that tells the service its slot.
    #[schemars(regex(pattern = ENV_KEY_PATTERN))]
    pub env_var: String,
    /// Exactly two different slot values.
    #[schemars(length(min = 2, max = 2))]
    pub slots: Vec<ScalarValue>,
    /// Command run to switch traffic to the new slot.
    pub switch_command: Option<Text>,
    /// File recording the active slot.
    pub state_path: Option<Text>,
}

/// `cron:`
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct CronFile {
    /// 5 fields (standard cron) or 6 (with seconds first), or `@daily`, `@hourly`, ...
    #[schemars(regex(pattern = "^\\s*(@[a-z]+|\\S+(\\s+\\S+){4,6})\\s*$"))]
    pub expression: String,
    /// IANA time zone, like Europe/Paris. Default: the system's.
    pub timezone: Option<Text>,
}

/// `spawn.mode`
#[derive(JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SpawnModeValue {
    Static,
    Dynamic,
}

/// `spawn:`
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct SpawnFile {
    /// `dynamic` lets the service start tracked children with `sysg spawn`. Default `static`.
    pub mode: Option<SpawnModeValue>,
    pub limits: Option<SpawnLimitsFile>,
}

/// `spawn.limits.termination_policy`
#[derive(JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TerminationValue {
    /// Children stop with their parent (the default).
    Cascade,
    /// Children outlive their parent.
    Orphan,
}

/// `spawn.limits:`
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct SpawnLimitsFile {
    /// Direct children at once.
    pub children: Option<u32>,
    /// Levels of children of children.
    pub depth: Option<u32>,
    /// Processes in the whole tree.
    pub descendants: Option<u32>,
    /// Memory shared by the whole tree.
    pub total_memory: Option<SizeValue>,
    pub termination_policy: Option<TerminationValue>,
    /// Spawns per second. Default 10.
    #[schemars(range(min = 1))]
    pub rate: Option<u32>,
}

/// `limits:`
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct LimitsFile {
    /// Open files (RLIMIT_NOFILE).
    pub nofile: Option<SizeValue>,
    /// Processes (RLIMIT_NPROC).
    pub nproc: Option<SizeValue>,
    /// Locked memory (RLIMIT_MEMLOCK).
    pub memlock: Option<SizeValue>,
    /// Scheduling niceness.
    #[schemars(range(min = -20, max = 19))]
    pub nice: Option<i32>,
    /// CPUs the service may run on.
    #[schemars(length(min = 1), inner(range(min = 0, max = 8191)))]
    pub cpu_affinity: Option<Vec<u32>>,
    /// cgroup v2 limits.
    pub cgroup: Option<CgroupFile>,
}

/// `limits.cgroup:`
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct CgroupFile {
    /// memory.max.
    pub memory_max: Option<SizeValue>,
    /// cpu.max: `"<quota|max> [period]"` in microseconds, or a percentage like `"50%"`.
    pub cpu_max: Option<CpuMaxValue>,
}

/// `limits.cgroup.cpu_max`.
pub struct CpuMaxValue;

impl JsonSchema for CpuMaxValue {
    fn schema_name() -> Cow<'static, str> {
        "CpuMax".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "cpu.max: \"<quota|max> [period]\" in microseconds, or a percentage like \"50%\".",
            "anyOf": [
                {"type": "integer", "minimum": 1000},
                {"type": "string", "pattern": CPU_MAX_PATTERN}
            ]
        })
    }
}

/// `isolation:`
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct IsolationFile {
    /// A network namespace of its own (loopback only).
    pub network: Option<bool>,
    /// A pid namespace of its own.
    pub pid: Option<bool>,
    /// A mount namespace of its own.
    pub mount: Option<bool>,
}

/// `hooks:`
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct HooksFile {
    pub on_start: Option<Hook>,
    pub on_ready: Option<Hook>,
    pub on_exit: Option<Hook>,
    pub on_failure: Option<Hook>,
    pub on_deploy: Option<Hook>,
}

/// A hook: a shell command, or `{command, timeout}` (timeout default 30s).
#[derive(JsonSchema)]
#[serde(untagged)]
pub enum Hook {
    Command(Text),
    Full(HookFile),
}

/// `{command, timeout}`
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct HookFile {
    pub command: Text,
    /// Default 30s.
    pub timeout: Option<DurationValue>,
}

/// Events a webhook can select.
#[derive(JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum WebhookEvent {
    Start,
    Ready,
    Exit,
    Failure,
    Restart,
    Stop,
    Deploy,
    Unhealthy,
    Cron,
}

/// A webhook.
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct WebhookFile {
    /// Where to POST.
    pub url: Url,
    /// Events to send; all when absent.
    pub events: Option<Vec<WebhookEvent>>,
    /// Default 5s.
    pub timeout: Option<DurationValue>,
    /// Default 3.
    pub retries: Option<u32>,
    /// Key for the HMAC-SHA256 signature header.
    pub secret: Option<Text>,
}

/// `logs:`
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct LogsFile {
    /// Rotate when a file reaches this size. Default 10M.
    pub max_size: Option<SizeValue>,
    /// Rotated files kept. Default 5.
    pub max_files: Option<u32>,
    /// Gzip rotated files. Default false.
    pub compress: Option<bool>,
}

/// Where the shipped schema lives, relative to the repository.
pub const SHIPPED_PATH: &str = "docs/schemas/systemg.schema.json";

/// The schema as a JSON value.
pub fn schema() -> Value {
    let generator = SchemaSettings::draft2020_12().into_generator();
    let schema = generator.into_root_schema_for::<ConfigFile>();
    let mut v = schema.to_value();
    drop_null(&mut v);
    v
}

/// Optional fields are absent, never null: YAML's `key:` with no value is an error for every
/// field, so the `null` alternative that schemars adds for `Option` is removed.
fn drop_null(v: &mut Value) {
    match v {
        Value::Object(map) => {
            if let Some(Value::Array(types)) = map.get_mut("type") {
                if types.len() == 2 && types.iter().any(|t| t == "null") {
                    types.retain(|t| t != "null");
                    let t = types.remove(0);
                    map.insert("type".into(), t);
                }
            }
            for key in ["anyOf", "oneOf"] {
                let collapsed = match map.get_mut(key) {
                    Some(Value::Array(alts)) => {
                        alts.retain(|a| {
                            a.get("type").is_none_or(|t| t != "null")
                                || a.as_object().is_some_and(|o| o.len() > 1)
                        });
                        (alts.len() == 1).then(|| alts.remove(0))
                    }
                    _ => None,
                };
                if let Some(Value::Object(only)) = collapsed {
                    map.remove(key);
                    for (k, x) in only {
                        map.entry(k).or_insert(x);
                    }
                }
            }
            map.values_mut().for_each(drop_null);
        }
        Value::Array(items) => items.iter_mut().for_each(drop_null),
        _ => {}
    }
}

/// The schema as pretty JSON text with a final newline (the shipped file's form).
pub fn schema_text() -> Result<String, SchemaError> {
    let mut s = serde_json::to_string_pretty(&schema())?;
    s.push('\n');
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn optional_fields_are_not_nullable() {
        let v = schema();
        let text = v.to_string();
        assert!(!text.contains("\"null\""), "{text}");
        let svc = &v["$defs"]["ServiceFile"];
        assert_eq!(svc["additionalProperties"], false);
        assert!(svc["properties"]["command"].is_object());
        assert!(svc["required"].is_null() || svc["required"] == serde_json::json!([]));
    }
}
