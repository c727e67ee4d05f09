//! End-to-end checks of `load_str`: every rule, valid and invalid, with positions.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::schema::*;
use super::*;

const CFG: &str = "/srv/myproj/systemg.yaml";

fn ok(src: &str) -> Config {
    match load_str(src, Path::new(CFG)) {
        Ok(c) => c,
        Err(e) => panic!("expected a valid config, got:\n{e}"),
    }
}

fn errs(src: &str) -> Vec<Diagnostic> {
    match load_str(src, Path::new(CFG)) {
        Ok(c) => panic!("expected errors, got {c:#?}"),
        Err(e) => e.0,
    }
}

/// The only error, as (line, column, message).
fn one(src: &str) -> (u64, u64, String) {
    let e = errs(src);
    assert_eq!(e.len(), 1, "{e:#?}");
    (e[0].line, e[0].column, e[0].message.clone())
}

fn svc(body: &str) -> String {
    format!("version: \"1\"\nservices:\n  web:\n    command: run\n{body}")
}

#[test]
fn minimal_config_and_defaults() {
    let c = ok("version: \"1\"\nservices:\n  web:\n    command: ./server\n");
    assert_eq!(c.version, "1");
    assert_eq!(c.project, "myproj");
    assert_eq!(c.path, PathBuf::from(CFG));
    assert_eq!(c.base_dir, PathBuf::from("/srv/myproj"));
    let s = &c.services[0];
    assert_eq!(s.name, "web");
    assert_eq!(s.run, Run::Shell("./server".into()));
    assert_eq!(s.restart_policy, RestartPolicy::OnFailure);
    assert_eq!(s.backoff, Duration::from_secs(1));
    assert_eq!(s.stop_signal.name, "SIGTERM");
    assert_eq!(s.stop_timeout, Duration::from_secs(10));
    assert_eq!(s.logs, LogPolicy::default());
    assert!(s.capabilities.is_none());
    assert!(s.limits.is_empty());
}

#[test]
fn version_accepts_number_one_only() {
    assert_eq!(ok("version: 1\nservices: {a: {command: x}}\n").version, "1");
    let (l, c, m) = one("version: 2\nservices: {a: {command: x}}\n");
    assert_eq!((l, c), (1, 10));
    assert!(
        m.contains("version: expected \"1\", found the number 2"),
        "{m}"
    );
    let (l, _, m) = one("services: {a: {command: x}}\n");
    assert_eq!(l, 1);
    assert!(m.contains("missing `version`"));
}

#[test]
fn project_name_rules() {
    assert_eq!(
        ok("version: '1'\nproject: my.app-2\nservices: {a: {command: x}}\n").project,
        "my.app-2"
    );
    let (l, c, m) = one("version: '1'\nproject: my app\nservices: {a: {command: x}}\n");
    assert_eq!((l, c), (2, 10));
    assert!(m.contains("invalid project name"));
    assert!(!errs("version: '1'\nproject: ''\nservices: {a: {command: x}}\n").is_empty());
    let c = load_str(
        "version: '1'\nservices: {a: {command: x}}\n",
        Path::new("/srv/my dir/s.yaml"),
    )
    .unwrap();
    assert_eq!(c.project, "my-dir");
}

#[test]
fn services_required_and_non_empty() {
    let (_, _, m) = one("version: '1'\n");
    assert!(m.contains("missing `services`"));
    let (l, c, m) = one("version: '1'\nservices: []\n");
    assert_eq!((l, c), (2, 11));
    assert!(
        m.contains("expected a mapping of service names to services, found a list"),
        "{m}"
    );
    let (_, _, m) = one("version: '1'\nservices: {}\n");
    assert!(m.contains("at least one service"));
    let (l, c, m) = one("version: '1'\nservices:\n  'bad name': {command: x}\n");
    assert_eq!((l, c), (3, 3));
    assert!(m.contains("invalid service name"));
}

#[test]
fn command_xor_exec() {
    let c = ok("version: '1'\nservices:\n  a:\n    exec: [sleep, 10]\n");
    assert_eq!(
        c.services[0].run,
        Run::Exec(vec!["sleep".into(), "10".into()])
    );
    let (l, c, m) = one("version: '1'\nservices:\n  a:\n    command: x\n    exec: [y]\n");
    assert_eq!((l, c), (4, 5));
    assert!(m.contains("not both"));
    let (l, c, m) = one("version: '1'\nservices:\n  a:\n    backoff: 1s\n");
    assert_eq!((l, c), (3, 3));
    assert!(m.contains("services.a: missing `command`"), "{m}");
    let (_, _, m) = one("version: '1'\nservices:\n  a:\n    exec: []\n");
    assert!(m.contains("non-empty list"));
    let (_, _, m) = one("version: '1'\nservices:\n  a:\n    command: '  '\n");
    assert!(m.contains("non-empty string"));
}

#[test]
fn restart_policy_values() {
    let c = ok(&svc("    restart_policy: always\n"));
    assert_eq!(c.services[0].restart_policy, RestartPolicy::Always);
    let (l, c, m) = one(&svc("    restart_policy: on_failure\n"));
    assert_eq!((l, c), (5, 21));
    assert!(
        m.contains("services.web.restart_policy: expected one of `always`, `on-failure`, `never`, found \"on_failure\"; did you mean `on-failure`?"),
        "{m}"
    );
}

#[test]
fn unknown_key_did_you_mean() {
    let (l, c, m) = one(&svc("    restart_polcy: always\n"));
    assert_eq!((l, c), (5, 5));
    assert_eq!(
        m,
        "services.web: unknown key `restart_polcy`; did you mean `restart_policy`?"
    );
    let (l, _, m) = one("version: '1'\nservices: {a: {command: x}}\nextra: 1\n");
    assert_eq!(l, 3);
    assert!(m.starts_with("unknown key `extra`"));
}

#[test]
fn many_errors_at_once_in_file_order() {
    let e = errs(
        "version: '1'\nservices:\n  web:\n    command: x\n    backoff: 5 parsecs\n    max_restarts: -1\n    stop_signal: SIGFOO\n  db:\n    exec: x\n    nice: 1\n",
    );
    let got: Vec<(u64, u64)> = e.iter().map(|d| (d.line, d.column)).collect();
    assert_eq!(got, [(5, 14), (6, 19), (7, 18), (9, 11), (10, 5)], "{e:#?}");
    assert_eq!(
        e[0].message,
        "services.web.backoff: expected a duration like 100ms, 5s, 2m, 1h or 1.5s, found \"5 parsecs\""
    );
    assert!(e
        .iter()
        .all(|d| d.kind == DiagKind::Config && d.file == Path::new(CFG)));
    let rendered = ConfigErrors(e).to_string();
    assert!(rendered.starts_with("/srv/myproj/systemg.yaml:5:14: error: services.web.backoff"));
}

#[test]
fn durations_and_counts() {
    let c = ok(&svc(
        "    backoff: 1m30s\n    stop_timeout: 3\n    max_restarts: 5\n",
    ));
    let s = &c.services[0];
    assert_eq!(s.backoff, Duration::from_secs(90));
    assert_eq!(s.stop_timeout, Duration::from_secs(3));
    assert_eq!(s.max_restarts, Some(5));
}

#[test]
fn env_vars_and_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(".env"), "SECRET=s3cr3t\nPORT=1\n").unwrap();
    let path = dir.path().join("systemg.yaml");
    let src = "version: '1'\nservices:\n  a:\n    command: x\n    env:\n      file: .env\n      vars: {PORT: 8080, DEBUG: true, NAME: n, RATIO: 1.5}\n";
    let c = load_str(src, &path).unwrap();
    let env = &c.services[0].env;
    assert_eq!(env.file.as_deref(), Some(dir.path().join(".env").as_path()));
    let vars: Vec<(&str, &str)> = env
        .vars
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        vars,
        [
            ("SECRET", "s3cr3t"),
            ("PORT", "8080"),
            ("DEBUG", "true"),
            ("NAME", "n"),
            ("RATIO", "1.5")
        ]
    );
    assert_eq!(env.secret_keys, ["SECRET", "PORT"]);
    assert!(
        std::env::var("SECRET").is_err(),
        "nothing leaks into our environment"
    );
}

#[test]
fn env_file_errors_point_into_env_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bad.env"), "OK=1\nnot valid\n").unwrap();
    let path = dir.path().join("systemg.yaml");
    let src = "version: '1'\nservices:\n  a:\n    command: x\n    env: {file: bad.env}\n  b:\n    command: y\n    env: {file: missing.env}\n";
    let e = load_str(src, &path).unwrap_err().0;
    assert_eq!(e.len(), 2, "{e:#?}");
    assert!(e.iter().all(|d| d.kind == DiagKind::EnvFile));
    let bad = e.iter().find(|d| d.file.ends_with("bad.env")).unwrap();
    assert_eq!((bad.line, bad.column), (2, 1));
    // Unreadable: reported at `env.file` in the config, naming the env file.
    let missing = e
        .iter()
        .find(|d| d.message.contains("missing.env"))
        .unwrap();
    assert!(missing.message.contains("cannot be read"), "{missing:?}");
    assert_eq!(missing.file, path);
    assert_eq!((missing.line, missing.column), (8, 17));
    let (_, _, m) = one(&svc("    env: {vars: {1BAD: x}}\n"));
    assert!(m.contains("invalid variable name"));
}

#[test]
fn depends_on_forms_and_conditions() {
    let c = ok("version: '1'\nservices:\n  db:\n    command: x\n    health_check: {tcp: 'localhost:5432'}\n  cache:\n    command: y\n  migrate:\n    command: z\n    depends_on: [db]\n  web:\n    command: w\n    depends_on: [db, cache, {service: migrate, condition: completed}]\n");
    let web = c.service("web").unwrap();
    let conds: Vec<(&str, DepCondition)> = web
        .depends_on
        .iter()
        .map(|d| (d.service.as_str(), d.condition))
        .collect();
    assert_eq!(
        conds,
        [
            ("db", DepCondition::Healthy),
            ("cache", DepCondition::Started),
            ("migrate", DepCondition::Completed)
        ]
    );
    assert_eq!(start_order(&c), ["db", "cache", "migrate", "web"]);
}

#[test]
fn depends_on_errors() {
    let (l, c, m) = one("version: '1'\nservices:\n  db: {command: x}\n  web:\n    command: y\n    depends_on: [dbb]\n");
    assert_eq!((l, c), (6, 18));
    assert!(
        m.contains("services.web.depends_on[0]: unknown service `dbb`; did you mean `db`?"),
        "{m}"
    );
    let (_, _, m) = one("version: '1'\nservices:\n  a: {command: x, depends_on: [a]}\n");
    assert!(m.contains("cannot depend on itself"));
    let (l, _, m) = one("version: '1'\nservices:\n  a:\n    command: x\n    depends_on: [b]\n  b:\n    command: y\n    depends_on: [a]\n");
    assert_eq!(l, 5);
    assert!(m.contains("dependency cycle a -> b -> a"), "{m}");
    let (_, _, m) = one("version: '1'\nservices:\n  a: {command: x}\n  b: {command: y, depends_on: [{service: a, condition: healthy}]}\n");
    assert!(m.contains("needs a `health_check`"));
    let (_, _, m) = one("version: '1'\nservices:\n  a: {command: x}\n  b: {command: y, depends_on: [{service: a, condition: ready}]}\n");
    assert!(m.contains("expected one of `started`, `healthy`, `completed`"));
}

#[test]
fn health_checks() {
    let c = ok(&svc("    health_check:\n      url: http://localhost:8080/health\n      interval: 2s\n      retries: 5\n      start_period: 10s\n"));
    let h = c.services[0].health_check.as_ref().unwrap();
    assert_eq!(
        h.probe,
        Probe::Http {
            url: "http://localhost:8080/health".into()
        }
    );
    assert_eq!(
        (h.interval, h.timeout, h.retries, h.start_period),
        (
            Duration::from_secs(2),
            Duration::from_secs(5),
            5,
            Duration::from_secs(10)
        )
    );
    // start_interval defaults to the interval and can be set apart.
    assert_eq!(h.start_interval, Duration::from_secs(2));
    let c = ok(&svc(
        "    health_check: {tcp: 'localhost:80', start_interval: 500ms}\n",
    ));
    let h = c.services[0].health_check.as_ref().unwrap();
    assert_eq!(h.start_interval, Duration::from_millis(500));
    let (_, _, m) = one(&svc(
        "    health_check: {tcp: 'localhost:80', start_interval: 0s}\n",
    ));
    assert!(m.contains("start_interval"), "{m}");
    let c = ok(&svc("    health_check: {tcp: '[::1]:80'}\n"));
    assert_eq!(
        c.services[0].health_check.as_ref().unwrap().probe,
        Probe::Tcp {
            host: "::1".into(),
            port: 80
        }
    );
    let c = ok(&svc("    health_check: {command: 'pg_isready'}\n"));
    assert!(matches!(
        c.services[0].health_check.as_ref().unwrap().probe,
        Probe::Command { .. }
    ));
    let (_, _, m) = one(&svc("    health_check: {url: 'http://x', tcp: 'x:1'}\n"));
    assert!(m.contains("only one of"));
    let (_, _, m) = one(&svc("    health_check: {interval: 1s}\n"));
    assert!(m.contains("missing a probe"));
    let (_, _, m) = one(&svc("    health_check: {url: 'ftp://x'}\n"));
    assert!(m.contains("http:// or https://"));
    let (_, _, m) = one(&svc("    health_check: {url: 'http:///path'}\n"));
    assert!(m.contains("with a host"));
    let (_, _, m) = one(&svc("    health_check: {tcp: 'localhost'}\n"));
    assert!(m.contains("host:port"));
    let (_, _, m) = one(&svc("    health_check: {tcp: 'h:1', interval: 0s}\n"));
    assert!(m.contains("greater than 0"));
}

#[test]
fn deployment_and_blue_green() {
    let c = ok(&svc("    deployment:\n      strategy: rolling\n      pre_start: make\n      grace_period: 5s\n      health_check: {url: 'https://h/x', timeout: 60s}\n      blue_green: {env_var: SLOT, slots: [blue, 2], state_path: state/slot}\n"));
    let d = c.services[0].deployment.as_ref().unwrap();
    assert_eq!(d.strategy, Strategy::Rolling);
    assert_eq!(d.grace_period, Duration::from_secs(5));
    let bg = d.blue_green.as_ref().unwrap();
    assert_eq!(bg.slots, ["blue".to_string(), "2".to_string()]);
    assert_eq!(
        bg.state_path.as_deref(),
        Some(Path::new("/srv/myproj/state/slot"))
    );
    let (_, _, m) = one(&svc(
        "    deployment: {blue_green: {env_var: SLOT, slots: [a]}}\n",
    ));
    assert!(m.contains("exactly two slots"));
    let (_, _, m) = one(&svc(
        "    deployment: {blue_green: {env_var: 'a-b', slots: [a, b]}}\n",
    ));
    assert!(m.contains("variable name"));
    let (_, _, m) = one(&svc("    deployment: {strategy: roling}\n"));
    assert!(m.contains("did you mean `rolling`?"));
    // A blue_green section alone means a blue-green deployment; `immediate` cannot have slots.
    let c = ok(&svc(
        "    deployment: {blue_green: {env_var: SLOT, slots: [a, b]}}\n",
    ));
    let d = c.services[0].deployment.as_ref().unwrap();
    assert_eq!(d.strategy, Strategy::BlueGreen);
    let (_, _, m) = one(&svc(
        "    deployment: {strategy: immediate, blue_green: {env_var: SLOT, slots: [a, b]}}\n",
    ));
    assert!(m.contains("needs `strategy: blue_green`"), "{m}");
    let (_, _, m) = one(&svc("    deployment: {strategy: blue_green}\n"));
    assert!(m.contains("needs a `blue_green` section"), "{m}");
    let (_, _, m) = one(&svc(
        "    deployment: {blue_green: {env_var: SLOT, slots: [a, b, c]}}\n",
    ));
    assert!(m.contains("exactly two slots, found 3"), "{m}");
}

#[test]
fn cron_services() {
    let c = ok("version: '1'\nservices:\n  backup:\n    command: x\n    cron: {expression: '0 3 * * *', timezone: America/New_York}\n");
    let s = &c.services[0];
    assert_eq!(s.restart_policy, RestartPolicy::Never);
    assert_eq!(
        s.cron.as_ref().unwrap().timezone.as_deref(),
        Some("America/New_York")
    );
    let (l, c, m) = one("version: '1'\nservices:\n  b:\n    command: x\n    restart_policy: always\n    cron: {expression: '@daily'}\n");
    assert_eq!((l, c), (5, 21));
    assert!(m.contains("cron jobs run to completion and are not restarted"));
    let (l, _, m) = one("version: '1'\nservices:\n  b:\n    command: x\n    deployment: {strategy: rolling}\n    cron: {expression: '@daily'}\n");
    assert_eq!(l, 5);
    assert!(m.contains("cron job"));
    let (l, c, m) = one("version: '1'\nservices:\n  b:\n    command: x\n    cron:\n      expression: '99 * * * *'\n");
    assert_eq!((l, c), (6, 19));
    assert!(m.contains("services.b.cron.expression"));
    let (l, c, m) = one("version: '1'\nservices:\n  b:\n    command: x\n    cron:\n      expression: '@daily'\n      timezone: Europe/Berln\n");
    assert_eq!((l, c), (7, 17));
    assert!(m.contains("did you mean `Europe/Berlin`?"), "{m}");
    let (_, _, m) = one("version: '1'\nservices:\n  b:\n    cron: {expression: '@daily'}\n");
    assert!(m.contains("missing `command`"));
    // Nothing can depend on a job; a job may depend on a service.
    let (l, c, m) = one("version: '1'\nservices:\n  job:\n    command: x\n    cron: {expression: '@daily'}\n  web:\n    command: y\n    depends_on: [job]\n");
    assert_eq!((l, c), (8, 18));
    assert!(
        m.contains("`job` is a cron job; nothing can depend on a cron job"),
        "{m}"
    );
    ok("version: '1'\nservices:\n  db:\n    command: x\n  job:\n    command: y\n    cron: {expression: '@daily'}\n    depends_on: [db]\n");
}

#[test]
fn spawn_section() {
    let c = ok(&svc("    spawn:\n      mode: dynamic\n      limits: {children: 100, depth: 3, descendants: 500, total_memory: 2GB, termination_policy: orphan, rate: 5}\n"));
    let s = c.services[0].spawn.as_ref().unwrap();
    assert_eq!(s.mode, SpawnMode::Dynamic);
    assert_eq!(s.total_memory, Some(Size::Value(2 << 30)));
    assert_eq!(
        (s.children, s.depth, s.descendants, s.rate_per_sec),
        (Some(100), Some(3), Some(500), 5)
    );
    assert_eq!(s.termination_policy, TerminationPolicy::Orphan);
    let c = ok(&svc("    spawn: {mode: dynamic}\n"));
    assert_eq!(c.services[0].spawn.as_ref().unwrap().rate_per_sec, 10);
    let e = errs(&svc(
        "    spawn: {mode: wild, limits: {rate: 0, total_memory: lots}}\n",
    ));
    assert_eq!(e.len(), 3, "{e:#?}");
}

#[test]
fn privileged_fields() {
    let c = ok(&svc("    user: www-data\n    group: www-data\n    supplementary_groups: [www-logs]\n    limits:\n      nofile: 65536\n      nproc: 4K\n      memlock: unlimited\n      nice: -5\n      cpu_affinity: [0, 1]\n      cgroup: {memory_max: 512M, cpu_max: '200000 100000'}\n    capabilities: [CAP_NET_BIND_SERVICE, sys_nice, cap_chown, SYS_NICE]\n    isolation: {network: true, pid: true}\n"));
    let s = &c.services[0];
    assert_eq!(s.user.as_deref(), Some("www-data"));
    assert_eq!(s.supplementary_groups, ["www-logs"]);
    assert_eq!(s.limits.nofile, Some(Size::Value(65536)));
    assert_eq!(s.limits.nproc, Some(Size::Value(4096)));
    assert_eq!(s.limits.memlock, Some(Size::Unlimited));
    assert_eq!(s.limits.nice, Some(-5));
    assert_eq!(s.limits.cpu_affinity, Some(vec![0, 1]));
    assert_eq!(s.limits.cgroup.memory_max, Some(Size::Value(512 << 20)));
    assert_eq!(
        s.limits.cgroup.cpu_max,
        Some(CpuMax {
            quota_us: Some(200_000),
            period_us: 100_000
        })
    );
    assert_eq!(
        s.capabilities.as_deref().unwrap(),
        ["CAP_NET_BIND_SERVICE", "CAP_SYS_NICE", "CAP_CHOWN"]
    );
    assert_eq!(
        s.isolation,
        Isolation {
            network: true,
            pid: true,
            mount: false
        }
    );
    let e = errs(&svc("    limits: {nice: 20, cpu_affinity: [-1], cgroup: {cpu_max: fast}}\n    capabilities: [CAP_NET_BIND_SERVCE]\n    isolation: {network: yes}\n"));
    let msgs: Vec<&str> = e.iter().map(|d| d.message.as_str()).collect();
    assert_eq!(msgs.len(), 5, "{msgs:#?}");
    assert!(msgs.iter().any(|m| m.contains("from -20 to 19")));
    assert!(msgs
        .iter()
        .any(|m| m.contains("did you mean `CAP_NET_BIND_SERVICE`?")));
    assert!(msgs
        .iter()
        .any(|m| m.contains("expected true or false, found \"yes\"")));
}

#[test]
fn hooks_webhooks_signals_logs_tags() {
    let src = "version: '1'\nlogs: {max_size: 1M, max_files: 2}\nwebhooks:\n  - url: https://hooks.example.com/x\n    events: [failure, deploy]\n    secret: s\nservices:\n  a:\n    command: x\n    hooks:\n      on_start: echo hi\n      on_failure: {command: notify, timeout: 5s}\n    webhooks: [{url: 'http://localhost:9000'}]\n    stop_signal: INT\n    logs: {compress: true}\n    tags: [web, api]\n  b:\n    command: y\n    stop_signal: 9\n";
    let c = ok(src);
    assert_eq!(c.webhooks[0].events, ["failure", "deploy"]);
    assert_eq!(
        (c.webhooks[0].timeout, c.webhooks[0].retries),
        (Duration::from_secs(5), 3)
    );
    let a = c.service("a").unwrap();
    assert_eq!(
        a.hooks.on_start.as_ref().unwrap().timeout,
        Duration::from_secs(30)
    );
    assert_eq!(
        a.hooks.on_failure.as_ref().unwrap().timeout,
        Duration::from_secs(5)
    );
    assert_eq!(a.webhooks.len(), 1);
    assert_eq!(
        a.stop_signal,
        Signal {
            number: libc::SIGINT,
            name: "SIGINT".into()
        }
    );
    assert_eq!(
        a.logs,
        LogPolicy {
            max_size: 1 << 20,
            max_files: 2,
            compress: true
        }
    );
    assert_eq!(a.tags, ["web", "api"]);
    let b = c.service("b").unwrap();
    assert_eq!(b.stop_signal.name, "SIGKILL");
    assert_eq!(
        b.logs,
        LogPolicy {
            max_size: 1 << 20,
            max_files: 2,
            compress: false
        }
    );

    let (_, _, m) = one(&svc(
        "    webhooks: [{url: 'http://x', events: [failed]}]\n",
    ));
    assert!(m.contains("did you mean `failure`?"), "{m}");
    let (_, _, m) = one(&svc("    stop_signal: SIGTREM\n"));
    assert!(m.contains("did you mean `SIGTERM`?"), "{m}");
    let (_, _, m) = one(&svc("    hooks: {on_start: [x]}\n"));
    assert!(m.contains("a shell command or a mapping"));
    let (_, _, m) = one(&svc("    logs: {max_size: unlimited}\n"));
    assert!(m.contains("greater than 0"));
}

#[test]
fn paths_resolve_against_config_dir() {
    let c = ok(&svc("    working_dir: app\n"));
    assert_eq!(
        c.services[0].working_dir.as_deref(),
        Some(Path::new("/srv/myproj/app"))
    );
    let c = ok(&svc("    working_dir: /opt/app\n"));
    assert_eq!(
        c.services[0].working_dir.as_deref(),
        Some(Path::new("/opt/app"))
    );
}

#[test]
fn duplicate_keys_reported() {
    let e = errs("version: '1'\nservices:\n  a: {command: x}\n  a: {command: y}\n");
    assert_eq!((e[0].line, e[0].column), (4, 3));
    assert!(e[0].message.contains("duplicate key `a`"));
}

#[test]
fn yaml_booleans_are_strict() {
    // `n`/`y` as keys and `yes`/`no` as values stay strings.
    let c = ok("version: '1'\nservices:\n  y:\n    command: x\n    env: {vars: {n: no}}\n");
    assert_eq!(c.services[0].name, "y");
    assert_eq!(
        c.services[0].env.vars,
        [("n".to_string(), "no".to_string())]
    );
}

#[test]
fn syntax_errors() {
    let e = errs("version: '1'\nservices:\n  a: [1, 2\n");
    assert_eq!(e.len(), 1);
    assert_eq!(e[0].kind, DiagKind::Syntax);
    assert!(e[0].line > 0);
    assert!(!e[0].message.contains('\n'));
    let e = errs("");
    assert!(e[0].line > 0);
    assert!(e[0].message.contains("empty"));
}

#[test]
fn load_reads_files_and_rejects_bad_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("systemg.yaml");
    std::fs::write(&p, "version: '1'\nservices: {a: {command: x}}\n").unwrap();
    assert_eq!(load(&p).unwrap().services.len(), 1);
    std::fs::write(&p, b"version: '1'\nservices: \xff\xfe\n").unwrap();
    let e = load(&p).unwrap_err().0;
    assert_eq!(
        (e[0].kind, e[0].line, e[0].column),
        (DiagKind::Syntax, 2, 11)
    );
    let e = load(&dir.path().join("nope.yaml")).unwrap_err().0;
    assert_eq!(e[0].kind, DiagKind::Io);
}
