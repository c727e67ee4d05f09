//! A service's configuration in the user's words, for `sysg inspect`: the YAML keys of
//! docs/configuration.md (`command`, `health_check.url`, `stop_signal`), sizes and durations
//! in their units (`10M`, `5s`), and the list of keys whose value is the default. Env values
//! and webhook secrets are never included.

use serde_json::{json, Map, Value};

use crate::config::schema::{
    Deployment, HealthCheck, Hook, LogPolicy, Probe, RestartPolicy, Run, Service, Size, Webhook,
};

/// A service's top-level keys in the order of docs/configuration.md, for display; a test
/// checks that it has every key the parser reads and the schema declares.
pub const KEY_ORDER: &[&str] = &[
    "command",
    "exec",
    "working_dir",
    "env",
    "cron",
    "restart_policy",
    "backoff",
    "max_restarts",
    "depends_on",
    "health_check",
    "deployment",
    "spawn",
    "user",
    "group",
    "supplementary_groups",
    "limits",
    "capabilities",
    "isolation",
    "sandbox",
    "sockets",
    "readiness",
    "start_timeout",
    "watchdog",
    "reload",
    "hooks",
    "webhooks",
    "stop_signal",
    "stop_timeout",
    "logs",
    "tags",
];

/// Where a dotted key (`health_check.url`, `webhooks[0].url`) goes in `KEY_ORDER`.
pub fn key_rank(key: &str) -> usize {
    let top = key.split(['.', '[']).next().unwrap_or(key);
    KEY_ORDER
        .iter()
        .position(|k| *k == top)
        .unwrap_or(KEY_ORDER.len())
}

/// What is printed in place of a hidden value.
pub const HIDDEN: &str = "<hidden>";

/// A service's settings as YAML keys, and the dotted keys whose value is the default.
#[derive(Debug, Default)]
pub struct ConfigView {
    pub config: Map<String, Value>,
    pub defaults: Vec<String>,
}

impl ConfigView {
    /// `key` (dotted) set to `value`; marked as the default when `is_default`.
    fn put(&mut self, key: &str, value: Value, is_default: bool) {
        let mut parts: Vec<&str> = key.split('.').collect();
        let last = parts.pop().unwrap_or(key);
        let mut map = &mut self.config;
        for p in parts {
            let entry = map
                .entry(p.to_string())
                .or_insert_with(|| Value::Object(Map::new()));
            if !entry.is_object() {
                *entry = Value::Object(Map::new());
            }
            let Value::Object(inner) = entry else {
                return;
            };
            map = inner;
        }
        map.insert(last.to_string(), value);
        if is_default {
            self.defaults.push(key.to_string());
        }
    }

    /// `key` set when `value` is given.
    fn opt(&mut self, key: &str, value: Option<Value>) {
        if let Some(v) = value {
            self.put(key, v, false);
        }
    }
}

/// `1.5s`, `100ms`, `10s`, `0s`, `5m`, `1m30s`, `2h`: the way the config writes durations.
pub fn duration(d: std::time::Duration) -> String {
    let (secs, nanos) = (d.as_secs(), d.subsec_nanos());
    if nanos != 0 {
        if secs == 0 && nanos.is_multiple_of(1_000_000) {
            return format!("{}ms", nanos / 1_000_000);
        }
        let frac = format!("{nanos:09}");
        return format!("{secs}.{}s", frac.trim_end_matches('0'));
    }
    if secs == 0 {
        return "0s".into();
    }
    let (d, h, m, s) = (
        secs / 86_400,
        secs % 86_400 / 3600,
        secs % 3600 / 60,
        secs % 60,
    );
    let mut out = String::new();
    for (n, unit) in [(d, "d"), (h, "h"), (m, "m"), (s, "s")] {
        if n > 0 {
            out.push_str(&format!("{n}{unit}"));
        }
    }
    out
}

/// `10M`, `64K`, `1536`, `unlimited`: the largest binary unit that divides the size exactly.
pub fn size(bytes: u64) -> String {
    if bytes == 0 {
        return "0".into();
    }
    for (shift, unit) in [(40, "T"), (30, "G"), (20, "M"), (10, "K")] {
        if bytes.is_multiple_of(1 << shift) {
            return format!("{}{unit}", bytes >> shift);
        }
    }
    bytes.to_string()
}

fn size_of(s: Size) -> Value {
    match s {
        Size::Value(n) => json!(size(n)),
        Size::Unlimited => json!("unlimited"),
    }
}

/// A count (`nofile`, `nproc`) as a number, or `unlimited`.
fn count_of(s: Size) -> Value {
    match s {
        Size::Value(n) => json!(n),
        Size::Unlimited => json!("unlimited"),
    }
}

fn enum_word<T: serde::Serialize>(v: T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

fn health(v: &mut ConfigView, at: &str, h: &HealthCheck) {
    match &h.probe {
        Probe::Http { url } => v.put(&format!("{at}.url"), json!(url), false),
        Probe::Tcp { host, port } => {
            let addr = if host.contains(':') {
                format!("[{host}]:{port}")
            } else {
                format!("{host}:{port}")
            };
            v.put(&format!("{at}.tcp"), json!(addr), false)
        }
        Probe::Command { command } => v.put(&format!("{at}.command"), json!(command), false),
    }
    let secs = std::time::Duration::from_secs;
    v.put(
        &format!("{at}.interval"),
        json!(duration(h.interval)),
        h.interval == secs(5),
    );
    v.put(
        &format!("{at}.timeout"),
        json!(duration(h.timeout)),
        h.timeout == secs(5),
    );
    v.put(&format!("{at}.retries"), json!(h.retries), h.retries == 3);
    v.put(
        &format!("{at}.start_period"),
        json!(duration(h.start_period)),
        h.start_period.is_zero(),
    );
    v.put(
        &format!("{at}.start_interval"),
        json!(duration(h.start_interval)),
        h.start_interval == h.interval,
    );
}

fn deployment(v: &mut ConfigView, d: &Deployment) {
    let default_strategy = if d.blue_green.is_some() {
        "blue_green"
    } else {
        "immediate"
    };
    let strategy = enum_word(d.strategy);
    let is_default = strategy == default_strategy;
    v.put("deployment.strategy", strategy, is_default);
    v.opt(
        "deployment.pre_start",
        d.pre_start.as_ref().map(|c| json!(c)),
    );
    if let Some(h) = &d.health_check {
        health(v, "deployment.health_check", h);
    }
    v.put(
        "deployment.grace_period",
        json!(duration(d.grace_period)),
        d.grace_period.is_zero(),
    );
    if let Some(bg) = &d.blue_green {
        v.put("deployment.blue_green.env_var", json!(bg.env_var), false);
        v.put("deployment.blue_green.slots", json!(bg.slots), false);
        v.opt(
            "deployment.blue_green.switch_command",
            bg.switch_command.as_ref().map(|c| json!(c)),
        );
        v.opt(
            "deployment.blue_green.state_path",
            bg.state_path.as_ref().map(|p| json!(p)),
        );
    }
}

fn hook(v: &mut ConfigView, name: &str, h: &Option<Hook>) {
    if let Some(h) = h {
        v.put(&format!("hooks.{name}.command"), json!(h.command), false);
        v.put(
            &format!("hooks.{name}.timeout"),
            json!(duration(h.timeout)),
            h.timeout == std::time::Duration::from_secs(30),
        );
    }
}

/// `readiness`, `start_timeout`, `watchdog` and `reload` (config/service_model.rs).
fn readiness(v: &mut ConfigView, svc: &Service) {
    let r = &svc.readiness;
    let word = if r.notify { "notify" } else { "exec" };
    v.put("readiness", json!(word), !r.notify);
    v.put(
        "start_timeout",
        json!(duration(r.start_timeout)),
        r.start_timeout == crate::config::service_model::DEFAULT_START_TIMEOUT,
    );
    v.opt("watchdog", r.watchdog.map(|d| json!(duration(d))));
    match &svc.reload {
        Some(crate::config::service_model::Reload::Signal(s)) => {
            v.put("reload.signal", json!(s.name), false)
        }
        Some(crate::config::service_model::Reload::Command(c)) => {
            v.put("reload.command", json!(c), false)
        }
        None => {}
    }
}

/// One webhook as written, its secret hidden; `defaults` gets its defaulted keys.
fn webhook(w: &Webhook, at: &str, defaults: &mut Vec<String>) -> Value {
    let mut m = Map::new();
    m.insert("url".into(), json!(w.url));
    if !w.events.is_empty() {
        m.insert("events".into(), json!(w.events));
    }
    m.insert("timeout".into(), json!(duration(w.timeout)));
    if w.timeout == std::time::Duration::from_secs(5) {
        defaults.push(format!("{at}.timeout"));
    }
    m.insert("retries".into(), json!(w.retries));
    if w.retries == 3 {
        defaults.push(format!("{at}.retries"));
    }
    if w.secret.is_some() {
        m.insert("secret".into(), json!(HIDDEN));
    }
    Value::Object(m)
}

/// `svc` as the user wrote it; `project_logs` is the top-level `logs:` (a service's default).
pub fn view(svc: &Service, project_logs: &LogPolicy) -> ConfigView {
    let mut v = ConfigView::default();
    match &svc.run {
        Run::Shell(c) => v.put("command", json!(c), false),
        Run::Exec(argv) => v.put("exec", json!(argv), false),
    }
    v.opt("working_dir", svc.working_dir.as_ref().map(|p| json!(p)));
    v.opt("env.file", svc.env.file.as_ref().map(|p| json!(p)));
    if !svc.env.vars.is_empty() {
        // Names only: a value can be a secret.
        let keys: Vec<&str> = svc.env.vars.iter().map(|(k, _)| k.as_str()).collect();
        v.put("env.keys", json!(keys), false);
    }
    if let Some(c) = &svc.cron {
        v.put("cron.expression", json!(c.expression), false);
        v.opt("cron.timezone", c.timezone.as_ref().map(|t| json!(t)));
    } else {
        let policy = svc.restart_policy;
        v.put(
            "restart_policy",
            enum_word(policy),
            policy == RestartPolicy::OnFailure,
        );
        v.put(
            "backoff",
            json!(duration(svc.backoff)),
            svc.backoff == std::time::Duration::from_secs(1),
        );
        v.opt("max_restarts", svc.max_restarts.map(|n| json!(n)));
    }
    if !svc.depends_on.is_empty() {
        let deps: Vec<Value> = svc
            .depends_on
            .iter()
            .map(|d| json!({"service": d.service, "condition": enum_word(d.condition)}))
            .collect();
        v.put("depends_on", json!(deps), false);
    }
    if let Some(h) = &svc.health_check {
        health(&mut v, "health_check", h);
    }
    if let Some(d) = &svc.deployment {
        deployment(&mut v, d);
    }
    if let Some(s) = &svc.spawn {
        v.put("spawn.mode", enum_word(s.mode), false);
        v.opt("spawn.limits.children", s.children.map(|n| json!(n)));
        v.opt("spawn.limits.depth", s.depth.map(|n| json!(n)));
        v.opt("spawn.limits.descendants", s.descendants.map(|n| json!(n)));
        v.opt("spawn.limits.total_memory", s.total_memory.map(size_of));
        let policy = enum_word(s.termination_policy);
        let is_default = policy == "cascade";
        v.put("spawn.limits.termination_policy", policy, is_default);
        v.put(
            "spawn.limits.rate",
            json!(s.rate_per_sec),
            s.rate_per_sec == 10,
        );
    }
    v.opt("user", svc.user.as_ref().map(|u| json!(u)));
    v.opt("group", svc.group.as_ref().map(|g| json!(g)));
    if !svc.supplementary_groups.is_empty() {
        v.put(
            "supplementary_groups",
            json!(svc.supplementary_groups),
            false,
        );
    }
    let l = &svc.limits;
    v.opt("limits.nofile", l.nofile.map(count_of));
    v.opt("limits.nproc", l.nproc.map(count_of));
    v.opt("limits.memlock", l.memlock.map(size_of));
    v.opt("limits.nice", l.nice.map(|n| json!(n)));
    v.opt(
        "limits.cpu_affinity",
        l.cpu_affinity.as_ref().map(|c| json!(c)),
    );
    v.opt("limits.cgroup.memory_max", l.cgroup.memory_max.map(size_of));
    v.opt(
        "limits.cgroup.cpu_max",
        l.cgroup.cpu_max.map(|c| {
            let quota = c.quota_us.map_or("max".to_string(), |q| q.to_string());
            json!(format!("{quota} {}", c.period_us))
        }),
    );
    v.opt("capabilities", svc.capabilities.as_ref().map(|c| json!(c)));
    for (key, on) in [
        ("isolation.network", svc.isolation.network),
        ("isolation.pid", svc.isolation.pid),
        ("isolation.mount", svc.isolation.mount),
    ] {
        if on {
            v.put(key, json!(true), false);
        }
    }
    for (key, value, is_default) in crate::sandbox::view::fields(&svc.sandbox) {
        v.put(&format!("sandbox.{key}"), value, is_default);
    }
    for (i, sock) in svc.sockets.iter().enumerate() {
        v.put(
            &format!("sockets[{i}].listen"),
            json!(sock.listen.to_string()),
            false,
        );
        v.put(
            &format!("sockets[{i}].name"),
            json!(sock.name),
            sock.name == svc.name,
        );
    }
    readiness(&mut v, svc);
    let h = &svc.hooks;
    hook(&mut v, "on_start", &h.on_start);
    hook(&mut v, "on_ready", &h.on_ready);
    hook(&mut v, "on_exit", &h.on_exit);
    hook(&mut v, "on_failure", &h.on_failure);
    hook(&mut v, "on_deploy", &h.on_deploy);
    if !svc.webhooks.is_empty() {
        let mut defaults = Vec::new();
        let hooks: Vec<Value> = svc
            .webhooks
            .iter()
            .enumerate()
            .map(|(i, w)| webhook(w, &format!("webhooks[{i}]"), &mut defaults))
            .collect();
        v.put("webhooks", json!(hooks), false);
        v.defaults.extend(defaults);
    }
    v.put(
        "stop_signal",
        json!(svc.stop_signal.name),
        svc.stop_signal.number == libc::SIGTERM,
    );
    v.put(
        "stop_timeout",
        json!(duration(svc.stop_timeout)),
        svc.stop_timeout == std::time::Duration::from_secs(10),
    );
    // A service's logs default to the project's; the project's to the built-in policy.
    let builtin = LogPolicy::default();
    let logs = &svc.logs;
    let unset = |same_as_project: bool, same_as_builtin: bool| same_as_project && same_as_builtin;
    v.put(
        "logs.max_size",
        json!(size(logs.max_size)),
        unset(
            logs.max_size == project_logs.max_size,
            logs.max_size == builtin.max_size,
        ),
    );
    v.put(
        "logs.max_files",
        json!(logs.max_files),
        unset(
            logs.max_files == project_logs.max_files,
            logs.max_files == builtin.max_files,
        ),
    );
    v.put(
        "logs.compress",
        json!(logs.compress),
        unset(
            logs.compress == project_logs.compress,
            logs.compress == builtin.compress,
        ),
    );
    if !svc.tags.is_empty() {
        v.put("tags", json!(svc.tags), false);
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_has_its_place_in_the_reference_order() {
        assert!(key_rank("command") < key_rank("health_check.url"));
        assert!(key_rank("health_check.url") < key_rank("webhooks[0].url"));
        assert!(key_rank("stop_timeout") < key_rank("logs.max_size"));
        assert_eq!(key_rank("unknown"), KEY_ORDER.len());
    }

    /// A service key added to the parser and the schema but not here would be shown last by
    /// `sysg inspect`: this names it.
    #[test]
    fn key_order_is_the_parsers_and_the_schemas() {
        // The parser lists its keys when it meets one it does not know.
        let yaml = "version: \"1\"\nservices:\n  web:\n    command: x\n    zzzzzzzzzzzz: 1\n";
        let path = std::path::Path::new("/srv/shop/systemg.yaml");
        let errors = match crate::config::load_str(yaml, path) {
            Ok(_) => panic!("an unknown key was accepted"),
            Err(e) => e.0,
        };
        let known = errors
            .iter()
            .find_map(|d| d.message.split_once("(known keys: "))
            .map(|(_, keys)| keys.trim_end_matches(')').to_string())
            .expect("the parser names its keys");
        let mut read: Vec<&str> = known.split(", ").collect();
        let schema = crate::config::input_schema::schema();
        let mut written: Vec<&str> = schema["$defs"]["ServiceFile"]["properties"]
            .as_object()
            .expect("ServiceFile has properties")
            .keys()
            .map(String::as_str)
            .collect();
        let mut order = KEY_ORDER.to_vec();
        for keys in [&mut read, &mut written, &mut order] {
            keys.sort_unstable();
        }
        assert_eq!(read, order, "the keys the parser reads");
        assert_eq!(written, order, "the keys of the schema");
    }

    #[test]
    fn sizes_and_durations_in_their_units() {
        use std::time::Duration as D;
        assert_eq!(size(10 * 1024 * 1024), "10M");
        assert_eq!(size(64 * 1024), "64K");
        assert_eq!(size(1536), "1536");
        assert_eq!(size(3 << 30), "3G");
        assert_eq!(duration(D::from_millis(1500)), "1.5s");
        assert_eq!(duration(D::from_millis(100)), "100ms");
        assert_eq!(duration(D::from_secs(10)), "10s");
        assert_eq!(duration(D::from_secs(90)), "1m30s");
        assert_eq!(duration(D::from_secs(300)), "5m");
        assert_eq!(duration(D::from_secs(7200)), "2h");
        assert_eq!(duration(D::ZERO), "0s");
        assert_eq!(duration(D::from_nanos(1_500)), "0.0000015s");
    }

    #[test]
    fn keys_as_in_the_yaml_with_defaults_marked() {
        let yaml = r#"
version: "1"
logs: {max_files: 7}
services:
  web:
    command: "true"
    stop_signal: INT
    backoff: 1s
    health_check: {url: "http://127.0.0.1:8080/", interval: 2s}
    logs: {compress: true}
    env: {vars: {TOKEN: s3cr3t}}
    webhooks:
      - {url: "https://h.example/x", secret: hush, retries: 1}
  db:
    exec: ["sleep", "1"]
    health_check: {tcp: "127.0.0.1:5432"}
    limits: {nofile: 64K, cgroup: {memory_max: 512M, cpu_max: "max 100000"}}
    stop_timeout: 90s
"#;
        let cfg = crate::config::load_str(yaml, std::path::Path::new("/tmp/p/systemg.yaml"))
            .expect("valid");
        let web = view(cfg.service("web").expect("web"), &cfg.logs);
        assert!(web.config.keys().all(|k| key_rank(k) < KEY_ORDER.len()));
        let c = Value::Object(web.config.clone());
        assert_eq!(c["command"], "true");
        assert_eq!(c["stop_signal"], "SIGINT");
        assert_eq!(c["health_check"]["url"], "http://127.0.0.1:8080/");
        assert_eq!(c["health_check"]["interval"], "2s");
        assert_eq!(c["health_check"]["start_interval"], "2s");
        assert_eq!(c["logs"]["max_size"], "10M");
        assert_eq!(c["logs"]["max_files"], 7);
        assert_eq!(c["env"]["keys"], json!(["TOKEN"]));
        assert_eq!(c["webhooks"][0]["secret"], HIDDEN);
        let text = c.to_string();
        assert!(!text.contains("s3cr3t") && !text.contains("hush"), "{text}");
        for d in [
            "restart_policy",
            "backoff",
            "stop_timeout",
            "health_check.timeout",
            "health_check.retries",
            "health_check.start_interval",
            "logs.max_size",
            "webhooks[0].timeout",
        ] {
            assert!(
                web.defaults.iter().any(|k| k == d),
                "{d}: {:?}",
                web.defaults
            );
        }
        for written in [
            "stop_signal",
            "health_check.interval",
            "logs.max_files",
            "logs.compress",
            "webhooks[0].retries",
        ] {
            assert!(!web.defaults.iter().any(|k| k == written), "{written}");
        }
        let db = view(cfg.service("db").expect("db"), &cfg.logs);
        let c = Value::Object(db.config);
        assert_eq!(c["exec"], json!(["sleep", "1"]));
        assert_eq!(c["health_check"]["tcp"], "127.0.0.1:5432");
        assert_eq!(c["limits"]["nofile"], 65536);
        assert_eq!(c["limits"]["cgroup"]["memory_max"], "512M");
        assert_eq!(c["limits"]["cgroup"]["cpu_max"], "max 100000");
        assert_eq!(c["stop_timeout"], "1m30s");
        for internal in ["run", "probe", "number", "rate_per_sec", "secret_keys"] {
            assert!(!c.to_string().contains(&format!("\"{internal}\"")), "{c}");
        }
    }

    #[test]
    fn readiness_and_reload_as_written() {
        let yaml = r#"
version: "1"
services:
  api:
    command: "true"
    readiness: notify
    watchdog: 10s
    reload: {signal: HUP}
  web:
    command: "true"
    reload: {command: "kill -USR1 $MAINPID"}
"#;
        let cfg = crate::config::load_str(yaml, std::path::Path::new("/tmp/p/systemg.yaml"))
            .expect("valid");
        let api = view(cfg.service("api").expect("api"), &cfg.logs);
        let c = Value::Object(api.config.clone());
        assert_eq!(c["readiness"], "notify");
        assert_eq!(c["start_timeout"], "1m30s");
        assert_eq!(c["watchdog"], "10s");
        assert_eq!(c["reload"]["signal"], "SIGHUP");
        assert!(api.defaults.iter().any(|k| k == "start_timeout"));
        assert!(!api.defaults.iter().any(|k| k == "readiness"));
        let web = view(cfg.service("web").expect("web"), &cfg.logs);
        let c = Value::Object(web.config.clone());
        assert_eq!(c["readiness"], "exec");
        assert_eq!(c["reload"]["command"], "kill -USR1 $MAINPID");
        assert!(c.get("watchdog").is_none());
        assert!(web.defaults.iter().any(|k| k == "readiness"));
    }
}
