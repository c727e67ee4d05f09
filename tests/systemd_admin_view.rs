//! What an admin sees of systemg on a real systemd 252 (a namespaced one, tests/systemd/mod.rs)
//! when things are left behind: `status` with neither a supervisor nor a state file, the
//! slices after the last project stopped, the supervisor's own lines in the journal (issue 21,
//! item 9). Every wait is a polled condition with a deadline.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failed test

mod systemd;

use std::time::Duration;

use systemd::*;

const T: Duration = Duration::from_secs(20);

#[test]
fn status_without_supervisor_or_state_file_finds_running_units() {
    let Some(ns) = boot_or_skip("status_without_supervisor_or_state_file_finds_running_units")
    else {
        return;
    };
    let p = SysProject::new(
        &ns,
        "sysg-admin-",
        "orphans",
        "  web:\n    command: \"exec sleep 1000\"\n  db:\n    command: \"exec sleep 1001\"\n",
    );
    assert_ok(&p.sysg(&["start", "--daemonize"]), "start");
    let (web, db) = (p.pid("web"), p.pid("db"));
    let sup = p.supervisor_pid().expect("supervisor pid");
    ns.exec(&["kill", "-9", &sup.to_string()]);
    wait_until("the supervisor is gone", T, || !ns.alive(sup));
    std::fs::remove_file(p.inner_path("/var/lib/systemg/orphans/state.json"))
        .expect("remove state.json");

    let out = p.sysg(&["status", "--json"]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "no supervisor: {}",
        text(&out.stderr)
    );
    let st: serde_json::Value = serde_json::from_slice(&out.stdout).expect("status JSON");
    for (name, pid) in [("web", web), ("db", db)] {
        let s = find_service(&st, name).unwrap_or_else(|| panic!("no {name} in {st}"));
        assert_eq!(s["state"], "running", "{name}: {s}");
        assert_eq!(s["pid"].as_u64(), Some(u64::from(pid)), "{name}: {s}");
    }
    // The text form says the same.
    let out = p.sysg(&["status"]);
    assert!(
        text(&out.stdout).contains("running without a supervisor"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn root_slice_goes_with_the_last_project() {
    let Some(ns) = boot_or_skip("root_slice_goes_with_the_last_project") else {
        return;
    };
    let a = SysProject::new(
        &ns,
        "sysg-admin-",
        "first",
        "  a:\n    command: \"exec sleep 1000\"\n",
    );
    let b = SysProject::new(
        &ns,
        "sysg-admin-",
        "second",
        "  b:\n    command: \"exec sleep 1000\"\n",
    );
    assert_ok(&a.sysg(&["start", "--daemonize"]), "start first");
    assert_ok(&b.sysg(&["start", "--daemonize"]), "start second");
    assert_eq!(ns.show("sysg.slice", "ActiveState"), "active");

    // Another project still runs: the root slice, and that project's service, stay.
    assert_ok(&a.sysg(&["stop"]), "stop first");
    wait_until("first's slice is stopped", T, || {
        ns.show("sysg-first.slice", "ActiveState") == "inactive"
    });
    assert_eq!(ns.show("sysg.slice", "ActiveState"), "active");
    assert_eq!(ns.show(&b.unit("b"), "ActiveState"), "active");

    // The last one takes it along: nothing of systemg stays loaded.
    assert_ok(&b.sysg(&["stop"]), "stop second");
    wait_until("sysg.slice is stopped", T, || {
        ns.show("sysg.slice", "ActiveState") == "inactive"
    });
    wait_until("no sysg unit is loaded", T, || {
        ns.output(&[
            "systemctl",
            "list-units",
            "--all",
            "--plain",
            "--no-legend",
            "sysg*",
        ])
        .trim()
        .is_empty()
    });
}

#[test]
fn journal_lines_name_the_service_and_its_pid() {
    let Some(ns) = boot_or_skip("journal_lines_name_the_service_and_its_pid") else {
        return;
    };
    let p = SysProject::new(
        &ns,
        "sysg-admin-",
        "jrnl",
        "  web:\n    command: \"exec sleep 1000\"\n",
    );
    // A foreground supervisor run as a service, as systemg.service runs it: its log goes to
    // the journal.
    let config = p.config.to_string_lossy().into_owned();
    assert_ok(
        &ns.exec(&[
            "systemd-run",
            "--unit=jrnl-supervisor",
            "--",
            env!("CARGO_BIN_EXE_sysg"),
            "--sys",
            "--backend",
            "systemd",
            "-c",
            &config,
            "start",
        ]),
        "systemd-run the supervisor",
    );
    wait_until("web runs", T, || {
        let out = p.sysg(&["status", "--json"]);
        serde_json::from_slice::<serde_json::Value>(&out.stdout)
            .ok()
            .and_then(|st| find_service(&st, "web"))
            .is_some_and(|s| s["state"] == "running")
    });
    let pid = p.pid("web").to_string();
    let journal = |matches: &[&str]| {
        let mut args = vec![
            "journalctl",
            "_SYSTEMD_UNIT=jrnl-supervisor.service",
            "SYSLOG_IDENTIFIER=sysg",
            "-o",
            "cat",
            "--no-pager",
        ];
        args.extend_from_slice(matches);
        ns.output(&args)
    };
    // The text names the service; the fields give the unit and its process.
    let sysg_pid = format!("SYSG_PID={pid}");
    wait_until("the start of web, by unit and pid", T, || {
        journal(&["SYSG_UNIT=web", &sysg_pid, "PRIORITY=5"])
            .contains(&format!("web: started (pid {pid})"))
    });
    assert_ok(&p.sysg(&["stop"]), "stop");
    wait_until("the stop of web is in the journal", T, || {
        journal(&["SYSG_UNIT=web"])
            .lines()
            .any(|l| l.starts_with("web: stopped"))
    });
}
