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

/// `sysg --sys logs` run as another user inside the namespace (`setpriv`, with that user's
/// groups), on the project's config.
fn logs_as(ns: &NsSystemd, p: &SysProject, user: &str, args: &[&str]) -> std::process::Output {
    let cfg = p.config.to_string_lossy().into_owned();
    let bin = env!("CARGO_BIN_EXE_sysg");
    let uid = ns.output(&["id", "-u", user]);
    let gid = ns.output(&["id", "-g", user]);
    let mut c = ns.command(&[
        "setpriv",
        &format!("--reuid={uid}"),
        &format!("--regid={gid}"),
        "--init-groups",
        "env",
        "NO_COLOR=1",
        bin,
        "--sys",
        "-c",
        &cfg,
        "logs",
    ]);
    c.args(args);
    c.env("HOME", "/");
    run_bounded(c, Duration::from_secs(60))
}

#[test]
fn logs_for_members_and_others_name_the_real_reason() {
    let Some(ns) = boot_or_skip_with(
        "logs_for_members_and_others_name_the_real_reason",
        Fence {
            overlay_system: true,
        },
    ) else {
        return;
    };
    // /etc is an overlay in the namespace: the users and groups stay there.
    assert_ok(&ns.exec(&["groupadd", "-f", "systemg"]), "groupadd");
    assert_ok(
        &ns.exec(&["useradd", "-M", "-G", "systemg", "sysgmember"]),
        "useradd member",
    );
    assert_ok(&ns.exec(&["useradd", "-M", "sysgother"]), "useradd other");
    let p = SysProject::new(
        &ns,
        "sysg-admin-",
        "memberlogs",
        "  web:\n    command: \"echo hello-from-web; exec sleep 1000\"\n  nightly:\n    command: \"echo night\"\n    cron: {expression: \"0 0 3 * * *\", timezone: UTC}\n",
    );
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(p.dir(), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(&p.config, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    assert_ok(&p.sysg(&["start", "--daemonize"]), "start");
    wait_until("web's output is in the journal", T, || {
        text(&p.sysg(&["logs", "--service", "web"]).stdout).contains("hello-from-web")
    });

    // Not a member: told who may read, not pointed at a log file of the other backend.
    let out = logs_as(&ns, &p, "sysgother", &["--service", "web"]);
    let err = text(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{err}");
    assert!(
        err.contains("permission denied") && err.contains("`systemg` group"),
        "{err}"
    );
    assert!(!err.contains("/var/log/systemg"), "{err}");

    // A member, without the journal's group: the supervisor (root) reads the journal for
    // them; journalctl alone would refuse.
    let direct = ns.exec(&[
        "setpriv",
        "--reuid=sysgmember",
        "--regid=sysgmember",
        "--init-groups",
        "journalctl",
        "--system",
        "--no-pager",
    ]);
    assert!(
        text(&direct.stderr).contains("insufficient permissions"),
        "journalctl itself refuses the member: {}",
        text(&direct.stderr)
    );
    let out = logs_as(&ns, &p, "sysgmember", &["--service", "web"]);
    assert_ok(&out, "logs as a member");
    assert!(
        text(&out.stdout).contains("hello-from-web"),
        "{}",
        text(&out.stdout)
    );
    // Every unit of the project, its cron job included; JSON as with journalctl.
    let out = logs_as(&ns, &p, "sysgmember", &["--json"]);
    assert_ok(&out, "logs --json as a member");
    let web: Vec<serde_json::Value> = text(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .filter(|v: &serde_json::Value| v["service"] == "web")
        .collect();
    assert!(
        web.iter()
            .any(|v| v["line"] == "hello-from-web" && v["stream"] == "journal"),
        "{web:?}"
    );
    assert_ok(&p.sysg(&["stop"]), "stop");

    // With no supervisor to ask, the member is told why journalctl shows nothing.
    let out = logs_as(&ns, &p, "sysgmember", &["--service", "web"]);
    let err = text(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("systemd-journal"), "{err}");
    assert!(!text(&out.stdout).contains("hello-from-web"));
}

/// The logs the supervisor serves to a member read every deployment instance of a service:
/// after a rolling deployment the promoted candidate (`web~1`) runs as its own unit, and its
/// lines come beside the old unit's (issue 22: the served query had no instance glob).
#[test]
fn served_logs_read_a_promoted_instance() {
    let Some(ns) = boot_or_skip_with(
        "served_logs_read_a_promoted_instance",
        Fence {
            overlay_system: true,
        },
    ) else {
        return;
    };
    assert_ok(&ns.exec(&["groupadd", "-f", "systemg"]), "groupadd");
    assert_ok(
        &ns.exec(&["useradd", "-M", "-G", "systemg", "sysgmember"]),
        "useradd member",
    );
    // A candidate is healthy once it runs: its health check looks for the file it touched.
    let services = |version: &str| {
        format!(
            "  web:\n    command: \"echo hello-$VERSION; touch running-$VERSION; exec sleep 1000\"\n    env:\n      vars: {{VERSION: \"{version}\"}}\n    health_check:\n      command: \"test -f running-$VERSION\"\n      interval: 100ms\n      start_period: 5s\n    deployment:\n      strategy: rolling\n      grace_period: 200ms\n"
        )
    };
    let p = SysProject::new(&ns, "sysg-admin-", "memberdeploy", &services("v1"));
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(p.dir(), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(&p.config, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    assert_ok(&p.sysg(&["start", "--daemonize"]), "start");
    wait_until("v1's output is in the journal", T, || {
        text(&p.sysg(&["logs", "--service", "web"]).stdout).contains("hello-v1")
    });
    std::fs::write(
        &p.config,
        format!(
            "version: \"1\"\nproject: memberdeploy\nservices:\n{}",
            services("v2")
        ),
    )
    .unwrap();
    let cfg = p.config.to_string_lossy().into_owned();
    assert_ok(&p.sysg(&["restart", "--config", &cfg]), "rolling restart");
    wait_until(
        "the promoted instance's lines, served to a member",
        T,
        || {
            let out = logs_as(&ns, &p, "sysgmember", &["--service", "web"]);
            let lines = text(&out.stdout);
            out.status.success() && lines.contains("hello-v2") && lines.contains("hello-v1")
        },
    );
    assert_ok(&p.sysg(&["stop"]), "stop");
}
