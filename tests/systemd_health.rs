//! End-to-end on the systemd backend: a health-gated dependency behaves as with the process
//! backend (tests/health.rs). The real `sysg --sys --backend systemd` runs inside a namespaced
//! systemd (tests/systemd/mod.rs); probes run in the supervisor, against a real HTTP server
//! started as a transient unit.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failed test

mod systemd;

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Output;
use std::time::{Duration, Instant};

use serde_json::Value;
use systemd::*;

const T: Duration = Duration::from_secs(20);

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

#[test]
fn e2e_health_gated_dependency() {
    let Some(ns) = boot_or_skip("e2e_health_gated_dependency") else {
        return;
    };
    // /tmp is shared with the namespace.
    let dir = tempfile::Builder::new()
        .prefix("sysg-e2e-health-")
        .tempdir()
        .expect("tempdir");
    let port = free_port();
    std::fs::write(
        dir.path().join("fetch.py"),
        "import sys, urllib.request\nurllib.request.urlopen(sys.argv[1], timeout=2)\n",
    )
    .expect("write fetch.py");
    let config: PathBuf = dir.path().join("systemg.yaml");
    std::fs::write(
        &config,
        format!(
            r#"version: "1"
project: e2e-health
services:
  db:
    command: "sleep 0.5; touch ok; exec python3 -m http.server {port} --bind 127.0.0.1"
    backoff: 100ms
    health_check:
      url: "http://127.0.0.1:{port}/ok"
      interval: 100ms
      timeout: 1s
      retries: 2
      start_period: 5s
  web:
    # Fails for good if it ever runs while db does not answer.
    command: "python3 fetch.py http://127.0.0.1:{port}/ && exec sleep 1000"
    restart_policy: never
    depends_on:
      - service: db
        condition: healthy
"#
        ),
    )
    .expect("write config");
    let sysg = |args: &[&str]| -> Output { sysg_in(&ns, Some(dir.path()), Some(&config), args) };
    let service = |name: &str| -> Value {
        let out = sysg(&["status", "--json"]);
        let st: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        find_service(&st, name).unwrap_or_else(|| panic!("no service {name} in {st}"))
    };

    let t0 = Instant::now();
    assert_ok(&sysg(&["start", "--daemonize"]), "start");
    assert!(
        t0.elapsed() >= Duration::from_millis(500),
        "start returned before db was up"
    );
    let db = service("db");
    assert_eq!(db["health"], "healthy", "{db}");
    let web = service("web");
    assert_eq!(web["state"], "running", "{web}");
    let (db_pid, web_pid) = (db["pid"].as_u64(), web["pid"].as_u64());
    let unit = systemg::backend::systemd::naming::unit_name("e2e-health", "web");
    assert_eq!(ns.show(&unit, "ActiveState"), "active");

    // db starts failing its probe: it is replaced, web is cascaded and comes back after it.
    std::fs::remove_file(dir.path().join("ok")).expect("rm ok");
    wait_until("db is replaced and healthy again, web back up", T, || {
        let db = service("db");
        let web = service("web");
        db["pid"].as_u64() != db_pid
            && db["health"] == "healthy"
            && web["state"] == "running"
            && web["pid"].as_u64() != web_pid
    });
    assert_eq!(service("db")["restarts"], 1);

    assert_ok(&sysg(&["stop"]), "stop");
    wait_until("no sysg unit is left", T, || ns.sysg_units().is_empty());
}
