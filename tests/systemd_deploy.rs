//! End-to-end on the systemd backend: a rolling deployment starts the candidate as its own
//! transient unit beside the old one, promotes it and stops the old unit, as with the process
//! backend (tests/deploy.rs). Runs inside a namespaced systemd (tests/systemd/mod.rs).

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failed test

mod systemd;

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use serde_json::Value;
use systemd::*;

const T: Duration = Duration::from_secs(20);

/// A service that announces itself with a file named after its version, and whose health
/// check looks for that file: a candidate is healthy once it runs.
fn write_config(path: &Path, version: &str) {
    std::fs::write(
        path,
        format!(
            r#"version: "1"
project: e2e-deploy
services:
  web:
    command: "echo hello-$VERSION; touch running-$VERSION; exec sleep 1000"
    env:
      vars: {{VERSION: "{version}"}}
    health_check:
      command: "test -f running-$VERSION"
      interval: 100ms
      start_period: 5s
    deployment:
      strategy: rolling
      grace_period: 200ms
"#
        ),
    )
    .expect("write config");
}

#[test]
fn e2e_rolling_deployment_on_systemd() {
    let Some(ns) = boot_or_skip("e2e_rolling_deployment_on_systemd") else {
        return;
    };
    // /tmp is shared with the namespace.
    let dir = tempfile::Builder::new()
        .prefix("sysg-e2e-deploy-")
        .tempdir()
        .expect("tempdir");
    let config = dir.path().join("systemg.yaml");
    write_config(&config, "v1");
    let sysg = |args: &[&str]| -> Output { sysg_in(&ns, Some(dir.path()), Some(&config), args) };
    let web = || -> Value {
        let out = sysg(&["status", "--json"]);
        let st: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        find_service(&st, "web").unwrap_or_else(|| panic!("no web in {st}"))
    };
    let naming =
        |service: &str| systemg::backend::systemd::naming::unit_name("e2e-deploy", service);

    assert_ok(&sysg(&["start", "--daemonize"]), "start");
    let old = web()["pid"].as_u64().expect("pid");
    assert_eq!(ns.show(&naming("web"), "ActiveState"), "active");

    write_config(&config, "v2");
    let cfg = config.to_string_lossy().into_owned();
    assert_ok(&sysg(&["restart", "--config", &cfg]), "rolling restart");
    let now = web();
    let new = now["pid"].as_u64().expect("pid");
    assert_ne!(new, old);
    assert_eq!(now["state"], "running");
    assert_eq!(now["health"], "healthy");
    // The candidate ran as its own unit and is now the service's process; the old unit is gone.
    let candidate = naming(&systemg::spec::instance_key("web", 1));
    assert_eq!(ns.show(&candidate, "ActiveState"), "active");
    assert_eq!(ns.show(&candidate, "MainPID"), new.to_string());
    assert_ne!(ns.show(&naming("web"), "ActiveState"), "active");
    assert!(!ns.alive(old as u32));
    // `sysg logs` reads every instance's unit: the promoted candidate's lines beside the old
    // unit's (the journal takes them in asynchronously, hence the wait).
    wait_until("the promoted instance's output in sysg logs", T, || {
        let out = sysg(&["logs", "-s", "web"]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        out.status.success() && text.contains("hello-v2") && text.contains("hello-v1")
    });

    // A pre_start that fails leaves the promoted instance running (a change of the deployment
    // section alone changes no process: the reload applies it, `restart` deploys).
    let yaml = std::fs::read_to_string(&config).expect("read config");
    std::fs::write(
        &config,
        yaml.replace(
            "grace_period: 200ms",
            "grace_period: 200ms\n      pre_start: \"exit 4\"",
        ),
    )
    .expect("write config");
    assert_ok(&sysg(&["restart", "--config", &cfg]), "reload");
    assert_eq!(web()["pid"].as_u64(), Some(new));
    let out = sysg(&["restart", "--service", "web"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("pre_start failed: exit 4"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(web()["pid"].as_u64(), Some(new));

    assert_ok(&sysg(&["stop"]), "stop");
    wait_until("no sysg unit is left", T, || ns.sysg_units().is_empty());
}
