//! CLI behaviour of the real binary: validate, exit codes, usage errors.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failed test

mod common;

use common::*;

#[test]
fn validate_ok_and_errors() {
    let p = Project::new("version: \"1\"\nservices:\n  web:\n    command: \"sleep 1\"\n");
    let out = p.sysg(&["validate"]);
    assert_ok(&out, "validate");

    p.write(
        "bad.yaml",
        "version: \"1\"\nservices:\n  web:\n    comand: \"sleep 1\"\n    restart_policy: sometimes\n",
    );
    let out = p.sysg(&["validate", "--config", "bad.yaml"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("bad.yaml:4:5"),
        "position of the unknown key: {err}"
    );
    assert!(err.contains("command"), "did-you-mean suggestion: {err}");
    assert!(
        err.contains("bad.yaml:5:"),
        "second problem reported too: {err}"
    );
}

#[test]
fn missing_config_is_a_usage_error() {
    let p = Project::new("version: \"1\"\nservices:\n  web:\n    command: \"sleep 1\"\n");
    let out = p.sysg(&["validate", "--config", "nope.yaml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("nope.yaml"), "{}", stderr(&out));
}

#[test]
fn start_refuses_an_invalid_config_before_anything_runs() {
    let p = Project::new(
        "version: \"1\"\nservices:\n  web:\n    command: \"sleep 1\"\n    depends_on: [db]\n",
    );
    let out = p.sysg(&["start", "--daemonize"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("db"), "{}", stderr(&out));
    assert!(!p.state_dir().join("run/control.sock").exists());
}

#[test]
fn bad_usage_exits_2_and_help_exits_0() {
    let p = Project::new("version: \"1\"\nservices:\n  web:\n    command: \"sleep 1\"\n");
    assert_eq!(p.sysg(&["frobnicate"]).status.code(), Some(2));
    assert_eq!(p.sysg(&["status", "--bogus"]).status.code(), Some(2));
    let help = p.sysg(&["--help"]);
    assert_eq!(help.status.code(), Some(0));
    assert!(stdout(&help).contains("Exit codes"));
    let bad_level = p.sysg(&["--log-level", "loud", "validate"]);
    assert_eq!(bad_level.status.code(), Some(2));
}

#[test]
fn status_without_supervisor_exits_3() {
    let p = Project::new("version: \"1\"\nservices:\n  web:\n    command: \"sleep 1\"\n");
    let out = p.sysg(&["status"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stdout(&out).contains("web"));
}
