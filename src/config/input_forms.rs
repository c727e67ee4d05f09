//! How values are written in `systemg.yaml`, as JSON Schema pieces: durations, sizes,
//! signals, capabilities, names, and the sections whose written form differs from the
//! validated one (`command`/`exec`, a health check's probe, `env`, `depends_on`, `spawn`, a
//! hook). The validated types of `schema.rs` derive the config's schema from their own fields
//! and name these for the written form (`#[schemars(with = "Option<DurationValue>")]`), so a
//! setting is declared once (see `input_schema.rs`). Nothing here is deserialized into: the
//! parser (`build.rs`, `sections.rs`) stays the authority.

use std::borrow::Cow;
use std::collections::BTreeMap;

use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};

/// Names of projects and services: no leading `.` (config/build.rs `name_problem`).
pub const NAME_PATTERN: &str = "^[A-Za-z0-9_-][A-Za-z0-9_.-]*$";
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
pub const ENV_KEY_PATTERN: &str = "^[A-Za-z_][A-Za-z0-9_]*$";

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

/// `version:` as written: the string "1" or the number 1.
pub fn version_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "description": "The config format version: \"1\".",
        "enum": ["1", 1]
    })
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

/// What a service runs: exactly one of `command` and `exec` (the `oneOf` of `ServiceFile`).
#[derive(JsonSchema)]
pub struct RunFile {
    /// A shell command, run as `/bin/sh -c <command>`.
    pub command: Option<Text>,
    /// A program and its arguments, run directly (no shell).
    #[schemars(length(min = 1))]
    pub exec: Option<Vec<ScalarValue>>,
}

/// How a health check probes: exactly one of `url`, `tcp`, `command` (the `oneOf` of
/// `HealthCheckFile`).
#[derive(JsonSchema)]
pub struct ProbeFile {
    /// HTTP GET; a 2xx or 3xx answer is healthy.
    pub url: Option<Url>,
    /// TCP connect to `host:port`.
    #[schemars(regex(pattern = "^\\s*(\\[[^\\]]+\\]|[^\\s:]+):[0-9]+\\s*$"))]
    pub tcp: Option<String>,
    /// A shell command that exits 0 when healthy.
    pub command: Option<Text>,
}

/// `readiness`, `start_timeout` and `watchdog` (`Service.readiness`, config/service_model.rs).
#[derive(JsonSchema)]
pub struct ReadinessFile {
    /// When the service counts as started: `exec` (default) once its program runs, `notify`
    /// once it sends READY=1 on $NOTIFY_SOCKET (sd_notify).
    pub readiness: Option<ReadinessValue>,
    /// `notify`: READY=1 must come within this, or the start failed. Default 90s.
    pub start_timeout: Option<DurationValue>,
    /// The service must send WATCHDOG=1 at least this often, or it is aborted (SIGABRT) and
    /// handled by the restart policy. Needs `readiness: notify`.
    pub watchdog: Option<DurationValue>,
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
