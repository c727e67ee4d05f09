//! `sysg security` and `sysg validate` on `sandbox:` with the real binary: the exposure report
//! (human and --json), and config errors with their position.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failed test

mod common;

use common::*;
use serde_json::Value;

const CONFIG: &str = r#"version: "1"
services:
  hardened:
    command: "sleep 1"
    sandbox:
      no_new_privileges: true
      private_tmp: true
      private_devices: true
      protect_system: strict
      protect_home: true
      protect_kernel_tunables: true
      protect_kernel_modules: true
      protect_control_groups: true
      restrict_address_families: [AF_UNIX, AF_INET, AF_INET6]
      system_call_filter: ["@system-service", "~@privileged"]
      memory_deny_write_execute: true
  plain:
    command: "sleep 1"
"#;

#[test]
fn security_rates_each_service_and_suggests_what_to_add() {
    let p = Project::new(CONFIG);
    let out = p.sysg(&["security", "--json"]);
    assert_ok(&out, "security --json");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let svc = |name: &str| {
        v["services"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no {name} in {v}"))
    };
    let (h, plain) = (svc("hardened"), svc("plain"));
    let score = |s: &Value| s["score"].as_f64().unwrap();
    assert!(score(&h) < 2.0, "{h}");
    assert!(score(&plain) >= 8.0, "{plain}");
    assert!(score(&h) < score(&plain));
    assert_eq!(plain["next"][0], "sandbox.protect_system");
    let on = |s: &Value, field: &str| {
        s["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["field"] == field)
            .map(|c| c["on"].as_bool().unwrap())
            .unwrap()
    };
    assert!(on(&h, "sandbox.system_call_filter"));
    assert!(!on(&plain, "sandbox.system_call_filter"));

    let out = p.sysg(&["security", "plain"]);
    assert_ok(&out, "security plain");
    let text = stdout(&out);
    assert!(text.starts_with("plain: exposure "), "{text}");
    assert!(text.contains("protect_system: strict"), "{text}");
    assert!(!text.contains("hardened"), "{text}");

    let out = p.sysg(&["security", "nope"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("unknown service `nope`"));
}

#[test]
fn a_bad_sandbox_is_refused_with_positions() {
    let p = Project::new(
        "version: \"1\"\nservices:\n  api:\n    command: x\n    sandbox:\n      protect_system: strcit\n      read_only_paths: [srv/config]\n      restrict_address_families: [AF_UNIX, AF_INTE]\n      system_call_filter: [\"@privilged\"]\n      privte_tmp: true\n",
    );
    for cmd in [&["validate"][..], &["security"][..]] {
        let out = p.sysg(cmd);
        assert_eq!(out.status.code(), Some(2), "{cmd:?}");
        let err = stderr(&out);
        for want in [
            "systemg.yaml:6:23: error: services.api.sandbox.protect_system: expected one of `full`, `strict`, found \"strcit\"; did you mean `strict`?",
            "systemg.yaml:7:25: error: services.api.sandbox.read_only_paths[0]: \"srv/config\" is not an absolute path",
            "systemg.yaml:8:44: error: services.api.sandbox.restrict_address_families[1]: unknown address family \"AF_INTE\"; did you mean `AF_INET`?",
            "systemg.yaml:9:28: error: services.api.sandbox.system_call_filter[0]: unknown system call group `@privilged`; did you mean `@privileged`?",
            "systemg.yaml:10:7: error: services.api.sandbox: unknown key `privte_tmp`; did you mean `private_tmp`?",
        ] {
            assert!(err.contains(want), "{cmd:?}: missing {want:?} in:\n{err}");
        }
    }
}
