//! Tags and selectors (`--tag` on start/stop/restart/status/logs/list), `sysg list`,
//! `sysg init` and the exit codes of `status`, against the real binary (process backend).

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failed test

mod common;

use std::time::Duration;

use common::*;

const T: Duration = Duration::from_secs(20);

/// A service that appends `start-NAME` to order.txt when it starts and `stop-NAME` when it
/// is asked to stop, so the test can read the order things happened in.
fn logged(name: &str) -> String {
    format!(
        "echo start-{name} >> order.txt; trap 'echo stop-{name} >> order.txt; exit 0' TERM; \
         sleep 1000 & wait"
    )
}

fn order(p: &Project) -> Vec<String> {
    std::fs::read_to_string(p.dir.join("order.txt"))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

fn states(p: &Project) -> Vec<(String, String)> {
    p.status()["services"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|s| {
                    (
                        s["name"].as_str().unwrap_or_default().to_string(),
                        s["state"].as_str().unwrap_or_default().to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn state_of(p: &Project, name: &str) -> String {
    states(p)
        .into_iter()
        .find(|(n, _)| n == name)
        .map(|(_, s)| s)
        .unwrap_or_default()
}

#[test]
fn tags_select_services_and_act_in_dependency_order() {
    let p = Project::new(&format!(
        r#"version: "1"
project: tags-order
services:
  api:
    command: "{api}"
    depends_on: [db]
    tags: [backend, web]
  ui:
    command: "{ui}"
    tags: [web]
  db:
    command: "{db}"
    tags: [backend]
  other:
    command: "exec sleep 1000"
"#,
        api = logged("api"),
        ui = logged("ui"),
        db = logged("db"),
    ));
    // No supervisor yet: status exits 3.
    assert_eq!(p.sysg(&["status"]).status.code(), Some(3));

    // start --tag backend: db before api (api depends on it), nothing else.
    assert_ok(
        &p.sysg(&["start", "--daemonize", "--tag", "backend"]),
        "start --tag backend",
    );
    assert_eq!(order(&p), ["start-db", "start-api"]);
    assert_eq!(state_of(&p, "ui"), "stopped");
    assert_eq!(state_of(&p, "other"), "stopped");

    // status exit codes: 0 for a selection that runs, 1 when something selected is down.
    assert_eq!(
        p.sysg(&["status", "--tag", "backend"]).status.code(),
        Some(0)
    );
    assert_eq!(p.sysg(&["status"]).status.code(), Some(1));
    assert_eq!(p.sysg(&["status", "--tag", "web"]).status.code(), Some(1));
    let web = p.sysg(&["status", "--json", "--tag", "web"]);
    let web: serde_json::Value = serde_json::from_slice(&web.stdout).expect("json");
    let names: Vec<&str> = web["services"]
        .as_array()
        .expect("services")
        .iter()
        .filter_map(|s| s["name"].as_str())
        .collect();
    assert_eq!(names, ["api", "ui"], "{web}");
    assert_eq!(
        web["services"][0]["tags"],
        serde_json::json!(["backend", "web"])
    );

    // restart --tag backend: both go down, come back db first.
    std::fs::write(p.dir.join("order.txt"), "").expect("truncate");
    assert_ok(&p.sysg(&["restart", "--tag", "backend"]), "restart --tag");
    let o = order(&p);
    assert_eq!(o.len(), 4, "{o:?}");
    assert_eq!(&o[2..], ["start-db", "start-api"], "{o:?}");

    // stop --tag backend: the dependent first.
    std::fs::write(p.dir.join("order.txt"), "").expect("truncate");
    assert_ok(&p.sysg(&["stop", "--tag", "backend"]), "stop --tag");
    assert_eq!(order(&p), ["stop-api", "stop-db"]);
    assert_eq!(state_of(&p, "db"), "stopped");

    // --service and --tag together: the union.
    assert_ok(
        &p.sysg(&["start", "--service", "other", "--tag", "web"]),
        "start --service --tag",
    );
    for s in ["db", "api", "ui", "other"] {
        assert_eq!(state_of(&p, s), "running", "{s}");
    }
    assert_eq!(p.sysg(&["status"]).status.code(), Some(0));

    // list: one line per service with its tags; --tag filters.
    let list = p.sysg(&["list"]);
    assert_eq!(list.status.code(), Some(0), "{}", stderr(&list));
    let lines: Vec<String> = stdout(&list).lines().map(str::to_string).collect();
    assert_eq!(lines.len(), 4, "{lines:?}");
    let api: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(api[0], "api");
    assert_eq!(api[1], "running");
    assert_eq!(api[2], p.pid("api").to_string());
    assert_eq!(api[4], "backend,web");
    assert!(
        lines[3].starts_with("other ") && lines[3].ends_with(" -"),
        "{lines:?}"
    );
    let listed = stdout(&p.sysg(&["list", "--tag", "web"]));
    let names: Vec<&str> = listed
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(names, ["api", "ui"]);

    assert_ok(&p.sysg(&["stop"]), "stop");
    assert_eq!(p.sysg(&["list"]).status.code(), Some(3));
}

#[test]
fn unknown_tags_and_services_are_usage_errors_that_list_what_exists() {
    let p = Project::new(
        r#"version: "1"
project: tags-unknown
services:
  a:
    command: "exec sleep 1000"
    tags: [web, critical]
  b:
    command: "exec sleep 1000"
"#,
    );
    for args in [
        &["start", "--daemonize", "--tag", "nope"][..],
        &["stop", "--tag", "nope"],
        &["restart", "--tag", "web", "--tag", "nope"],
        &["status", "--tag", "nope"],
        &["logs", "--tag", "nope"],
        &["list", "--tag", "nope"],
    ] {
        let out = p.sysg(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("unknown tag `nope`; tags are: critical, web"),
            "{args:?}: {}",
            stderr(&out)
        );
    }
    for args in [&["stop", "--service", "zz"][..], &["status", "-s", "zz"]] {
        let out = p.sysg(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(
            stderr(&out).contains("unknown service `zz`; services are: a, b"),
            "{args:?}: {}",
            stderr(&out)
        );
    }
    assert!(p.supervisor_pid().is_none(), "nothing may have started");
}

#[test]
fn logs_by_tag_are_interleaved_by_time_with_names() {
    let p = Project::new(
        r#"version: "1"
project: tags-logs
services:
  first:
    command: "echo one; touch one.done; while [ ! -e two.done ]; do sleep 0.02; done; sleep 0.2; echo three; exec sleep 1000"
    tags: [chat]
  second:
    command: "while [ ! -e one.done ]; do sleep 0.02; done; sleep 0.2; echo two; touch two.done; exec sleep 1000"
    tags: [chat]
  quiet:
    command: "echo not-chat; exec sleep 1000"
"#,
    );
    p.start();
    let shown = || stdout(&p.sysg(&["logs", "--tag", "chat"]));
    wait_until("the third line is logged", T, || shown().contains("three"));
    let out = shown();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    for (line, (name, text)) in
        lines
            .iter()
            .zip([("first", "one"), ("second", "two"), ("first", "three")])
    {
        assert!(
            line.starts_with(&format!("{name:<6} | ")) && line.ends_with(&format!(" {text}")),
            "{out}"
        );
    }
    assert!(!out.contains("not-chat"));
}

#[test]
fn init_writes_a_valid_config_and_never_overwrites() {
    let p = Project::new("placeholder");
    std::fs::remove_file(p.dir.join("systemg.yaml")).expect("rm");
    let out = p.sysg(&["init"]);
    assert_ok(&out, "init");
    assert_ok(&p.sysg(&["validate"]), "validate the starter config");
    let written = std::fs::read_to_string(p.dir.join("systemg.yaml")).expect("read");
    assert!(written.starts_with('#'), "commented: {written}");

    std::fs::write(p.dir.join("systemg.yaml"), "mine").expect("write");
    let again = p.sysg(&["init"]);
    assert_eq!(again.status.code(), Some(2));
    assert!(
        stderr(&again).contains("already exists"),
        "{}",
        stderr(&again)
    );
    assert_eq!(
        std::fs::read_to_string(p.dir.join("systemg.yaml")).expect("read"),
        "mine"
    );
    // --config picks another path; --force replaces.
    assert_ok(
        &p.sysg(&["--config", "other.yaml", "init"]),
        "init --config",
    );
    assert_ok(
        &p.sysg(&["--config", "other.yaml", "validate"]),
        "validate other",
    );
    assert_ok(&p.sysg(&["init", "--force"]), "init --force");
    assert_ok(&p.sysg(&["validate"]), "validate after --force");
}
