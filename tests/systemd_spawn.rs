//! `sysg spawn` on the systemd backend, inside a namespaced systemd (tests/systemd/mod.rs):
//! every child is a transient unit in its service's tree slice, and stopping the parent stops
//! them (cascade).

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failed test

mod systemd;

use std::path::PathBuf;
use std::process::Output;
use std::time::Duration;

use serde_json::Value;
use systemd::*;

const T: Duration = Duration::from_secs(20);

fn sysg(ns: &NsSystemd, config: &std::path::Path, args: &[&str]) -> Output {
    let dir = config.parent().unwrap_or(std::path::Path::new(""));
    sysg_in(ns, Some(dir), Some(config), args)
}

fn children(ns: &NsSystemd, config: &std::path::Path) -> Vec<Value> {
    let out = sysg(ns, config, &["status", "--json"]);
    let st: Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    find_service(&st, "web")
        .and_then(|w| w["children"].as_array().cloned())
        .unwrap_or_default()
}

#[test]
fn systemd_children_are_units_in_the_tree_slice_and_cascade() {
    let Some(ns) = boot_or_skip("systemd_children_are_units_in_the_tree_slice_and_cascade") else {
        return;
    };
    let dir = tempfile::Builder::new()
        .prefix("sysg-spawn-")
        .tempdir()
        .expect("tempdir");
    let config: PathBuf = dir.path().join("systemg.yaml");
    let d = dir.path().display();
    // In a script file: systemd expands `$VAR` in ExecStart itself, so the command line stays
    // free of `$`.
    std::fs::write(
        dir.path().join("web.sh"),
        format!(
            r#"SYSG="{}"
$SYSG spawn --name w1 -- sleep 1000 > {d}/w1.pid
$SYSG spawn --name w2 -- sleep 1001 > {d}/w2.pid
$SYSG spawn --name w3 -- sleep 1002 2> {d}/w3.err; echo $? > {d}/w3.rc
exec sleep 1000
"#,
            env!("CARGO_BIN_EXE_sysg")
        ),
    )
    .expect("write script");
    std::fs::write(
        &config,
        format!(
            r#"version: "1"
project: sdspawn
services:
  web:
    command: "exec sh {d}/web.sh"
    spawn:
      mode: dynamic
      limits:
        children: 2
        descendants: 4
        total_memory: 256M
"#
        ),
    )
    .expect("write config");
    assert_ok(&sysg(&ns, &config, &["start", "--daemonize"]), "start");
    let read = |n: &str| {
        std::fs::read_to_string(dir.path().join(n))
            .ok()
            .filter(|s| s.ends_with('\n'))
    };
    wait_until("the refused third child", T, || read("w3.rc").is_some());
    assert_ne!(read("w3.rc").unwrap_or_default().trim(), "0");
    assert!(
        read("w3.err")
            .unwrap_or_default()
            .contains("spawn.limits.children: 2"),
        "{:?}",
        read("w3.err")
    );
    let w1: u32 = read("w1.pid")
        .unwrap_or_default()
        .trim()
        .parse()
        .expect("pid");
    let unit = "sysg-sdspawn-web-w1.service";
    assert_eq!(ns.show(unit, "MainPID"), w1.to_string());
    assert_eq!(ns.show(unit, "Slice"), "sysg-sdspawn-web.slice");
    let slice = "sysg-sdspawn-web.slice";
    assert_eq!(ns.show(slice, "MemoryMax"), (256u64 << 20).to_string());
    assert_eq!(ns.show(slice, "TasksMax"), (4 * 32).to_string());
    assert_eq!(children(&ns, &config).len(), 2);

    // Stopping the parent stops the children's units (cascade).
    assert_ok(
        &sysg(&ns, &config, &["stop", "--service", "web"]),
        "stop web",
    );
    wait_until("the children's units are gone", T, || {
        ns.show(unit, "ActiveState") != "active" && !ns.alive(w1)
    });
    wait_until("children untracked", T, || {
        children(&ns, &config).is_empty()
    });
    assert_ok(&sysg(&ns, &config, &["stop"]), "stop");
}
