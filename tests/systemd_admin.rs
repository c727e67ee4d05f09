//! What a systemd admin expects of the systemd backend (issue 21), with the real `sysg` run
//! inside a namespaced systemd 252 (tests/systemd/mod.rs): re-adoption keeps every service
//! whatever the order of names and dependencies, `systemctl stop` is a stop by the operator,
//! failed units stay visible to `systemctl --failed`, `systemctl restart` is followed (the
//! unit's environment file lives as long as the unit), a supervisor started by hand runs in
//! a scope of its own, and a property this systemd does not
//! know is a configuration error, not a crash retried forever.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failed test

mod systemd;

use std::time::Duration;

use systemd::*;

const T: Duration = Duration::from_secs(20);

/// A service that appends its pid to `runs-<name>` each time it starts, then sleeps.
fn recording(name: &str, deps: &[&str]) -> String {
    let mut s = format!("  {name}:\n    command: \"echo $$ >> runs-{name}; exec sleep 1000\"\n");
    if !deps.is_empty() {
        s.push_str(&format!("    depends_on: [{}]\n", deps.join(", ")));
    }
    s
}

fn runs(p: &SysProject, name: &str) -> Vec<u32> {
    std::fs::read_to_string(p.dir().join(format!("runs-{name}")))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// Start, kill -9 the supervisor (and drop state.json when `forget_state`), start again: every
/// service keeps its MainPID and started once.
fn readoption_keeps(test: &str, project: &str, services: &[(&str, &[&str])], forget_state: bool) {
    let Some(ns) = boot_or_skip(test) else {
        return;
    };
    let yaml: String = services.iter().map(|(n, d)| recording(n, d)).collect();
    let p = SysProject::new(&ns, "sysg-admin-", project, &yaml);
    assert_ok(&p.sysg(&["start", "--daemonize"]), "start");
    let before: Vec<u32> = services.iter().map(|(n, _)| p.pid(n)).collect();
    let uptime = |name: &str| p.service(name)["uptime_secs"].as_f64().unwrap_or(0.0);
    let first = services[0].0;
    wait_until("the first service has run a while", T, || {
        uptime(first) >= 1.0
    });
    let up_before = uptime(first);

    let sup = p.supervisor_pid().expect("supervisor pid");
    ns.exec(&["kill", "-9", &sup.to_string()]);
    wait_until("the supervisor is gone", T, || !ns.alive(sup));
    if forget_state {
        let state = p.inner_path(&format!("/var/lib/systemg/{project}/state.json"));
        std::fs::remove_file(&state).expect("remove state.json");
    }

    let again = p.sysg(&["start", "--daemonize"]);
    assert_ok(&again, "start again");
    let said = String::from_utf8_lossy(&again.stdout).into_owned();
    assert!(
        said.contains(&format!("{first}: adopted (running since ")),
        "start says it adopted: {said}"
    );
    // Uptime is the process's own, not the new supervisor's.
    assert!(uptime(first) >= up_before, "{}", p.service(first));
    for ((name, _), pid) in services.iter().zip(&before) {
        assert_eq!(p.service(name)["adopted"], true, "{name}");
        let unit = p.unit(name);
        assert_eq!(p.service(name)["state"], "running", "{name}");
        assert_eq!(p.pid(name), *pid, "{name} was restarted on re-adoption");
        assert_eq!(ns.show(&unit, "MainPID"), pid.to_string(), "{unit}");
        assert_eq!(runs(&p, name), vec![*pid], "{name} started more than once");
    }
    assert_ok(&p.sysg(&["stop"]), "stop");
    wait_until("no sysg unit is left", T, || p.sysg_units().is_empty());
}

#[test]
fn admin_readoption_keeps_a_dependent_named_before_its_dependency() {
    readoption_keeps(
        "admin_readoption_keeps_a_dependent_named_before_its_dependency",
        "adm-order",
        &[("zdb", &[]), ("app", &["zdb"])],
        false,
    );
}

#[test]
fn admin_readoption_keeps_a_three_level_chain() {
    readoption_keeps(
        "admin_readoption_keeps_a_three_level_chain",
        "adm-chain",
        &[
            ("z-base", &[]),
            ("m-mid", &["z-base"]),
            ("a-top", &["m-mid"]),
        ],
        false,
    );
}

#[test]
fn admin_readoption_by_discovery_alone_keeps_the_chain() {
    // No state.json: the units are found by their names under systemd.
    readoption_keeps(
        "admin_readoption_by_discovery_alone_keeps_the_chain",
        "adm-disc",
        &[
            ("z-base", &[]),
            ("m-mid", &["z-base"]),
            ("a-top", &["m-mid"]),
        ],
        true,
    );
}

#[test]
fn admin_a_service_that_gave_up_stays_in_systemctl_failed() {
    let Some(ns) = boot_or_skip("admin_a_service_that_gave_up_stays_in_systemctl_failed") else {
        return;
    };
    let p = SysProject::new(
        &ns,
        "sysg-admin-",
        "adm-failed",
        r#"  flaky:
    command: "echo $$ >> runs-flaky; if [ -e fixed ]; then exec sleep 1000; fi; exit 3"
    restart_policy: on-failure
    backoff: 50ms
    max_restarts: 1
  steady:
    command: "exec sleep 1000"
"#,
    );
    let _ = p.sysg(&["start", "--daemonize"]);
    wait_until("flaky gives up", T, || {
        p.service("flaky")["state"] == "failed"
    });
    let unit = p.unit("flaky");
    let failed = ns.output(&["systemctl", "--failed", "--plain", "--no-legend"]);
    assert!(failed.contains(&unit), "systemctl --failed: {failed:?}");
    assert_eq!(ns.show(&unit, "ActiveState"), "failed");
    assert_eq!(ns.show(&unit, "Result"), "exit-code");
    assert_eq!(ns.show(&unit, "ExecMainStatus"), "3");

    // Started again by sysg: the failed unit of the same name is reset first.
    std::fs::write(p.dir().join("fixed"), "").expect("fix flaky");
    assert_ok(&p.sysg(&["restart", "--service", "flaky"]), "restart flaky");
    wait_until("flaky runs again", T, || {
        p.service("flaky")["state"] == "running"
    });
    let pid = p.pid("flaky");
    assert_eq!(ns.show(&unit, "ActiveState"), "active");
    assert_eq!(ns.show(&unit, "MainPID"), pid.to_string());
    let failed = ns.output(&["systemctl", "--failed", "--plain", "--no-legend"]);
    assert!(!failed.contains(&unit), "systemctl --failed: {failed:?}");

    // A failed unit left when the project stops is reset: nothing of it stays loaded.
    assert_ok(&p.sysg(&["stop", "--service", "flaky"]), "stop flaky");
    std::fs::remove_file(p.dir().join("fixed")).expect("break flaky");
    let _ = p.sysg(&["restart", "--service", "flaky"]);
    wait_until("flaky gives up again", T, || {
        p.service("flaky")["state"] == "failed"
    });
    assert_ok(&p.sysg(&["stop"]), "stop");
    wait_until("no sysg unit is left", T, || p.sysg_units().is_empty());
}

/// The manager's major version, as `systemctl --version` prints it.
fn systemd_version(ns: &NsSystemd) -> u32 {
    ns.output(&["systemctl", "--version"])
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .expect("systemd version")
}

#[test]
fn admin_a_property_this_systemd_lacks_is_refused_up_front_and_never_retried() {
    let Some(ns) =
        boot_or_skip("admin_a_property_this_systemd_lacks_is_refused_up_front_and_never_retried")
    else {
        return;
    };
    if systemd_version(&ns) >= 257 {
        eprintln!("skipped: this systemd has PrivatePIDs=");
        return;
    }
    let plain =
        "  web:\n    command: \"exec sleep 1000\"\n    restart_policy: always\n    backoff: 50ms\n";
    let isolated = format!("{plain}    isolation:\n      pid: true\n");
    let p = SysProject::new(&ns, "sysg-admin-", "adm-version", &isolated);
    // Line 9 (after version, project, services, web, command, restart_policy, backoff,
    // isolation), column 7: the `pid` key.
    let at = format!("{}:9:7", p.config.display());

    let out = p.sysg(&["validate"]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "validate: {err}");
    assert!(err.contains(&at), "{err}");
    assert!(
        err.contains("services.web.isolation.pid: needs systemd 257 or later (property PrivatePIDs); the running systemd is 25"),
        "{err}"
    );

    let out = p.sysg(&["start", "--daemonize"]);
    let err = text(&out.stderr);
    // Refused by the supervisor before it starts anything (the client does not ask systemd
    // itself), with the same position.
    assert!(!out.status.success(), "start: {err}");
    assert!(err.contains(&at), "{err}");
    assert!(p.supervisor_pid().is_none(), "no supervisor was started");
    assert_eq!(p.sysg_units(), "", "no unit was created");

    // A reload slips the field past the up-front checks: the start systemd would refuse is a
    // configuration error, `failed` at once, not a crash retried in a loop.
    std::fs::write(
        &p.config,
        format!("version: \"1\"\nproject: adm-version\nservices:\n{plain}"),
    )
    .expect("config");
    assert_ok(
        &p.sysg(&["start", "--daemonize"]),
        "start without the field",
    );
    std::fs::write(
        &p.config,
        format!("version: \"1\"\nproject: adm-version\nservices:\n{isolated}"),
    )
    .expect("config");
    let _ = p.sysg(&["restart"]);
    wait_until("web fails on the refused property", T, || {
        p.service("web")["state"] == "failed"
    });
    let s = p.service("web");
    let reason = s["reason"].as_str().unwrap_or_default().to_string();
    assert!(reason.contains("configuration error"), "{s}");
    assert!(reason.contains("needs systemd 257 or later"), "{s}");
    assert_eq!(s["restarts"], 0, "{s}");
    assert!(s["next_restart"].is_null(), "no retry is scheduled: {s}");
    assert_ok(&p.sysg(&["stop"]), "stop");
    wait_until("no sysg unit is left", T, || p.sysg_units().is_empty());
}

#[test]
fn admin_systemctl_stop_is_a_stop_and_systemctl_start_is_followed() {
    let Some(ns) = boot_or_skip("admin_systemctl_stop_is_a_stop_and_systemctl_start_is_followed")
    else {
        return;
    };
    let services = format!(
        "{}    restart_policy: always\n    backoff: 50ms\n{}    restart_policy: always\n    backoff: 50ms\n{}",
        recording("db", &[]),
        recording("web", &["db"]),
        recording("other", &[]),
    );
    let p = SysProject::new(&ns, "sysg-admin-", "adm-stop", &services);
    assert_ok(&p.sysg(&["start", "--daemonize"]), "start");
    let (db, web, other) = (p.pid("db"), p.pid("web"), p.pid("other"));
    let unit = p.unit("db");

    assert_ok(&ns.exec(&["systemctl", "stop", &unit]), "systemctl stop");
    wait_until("db is stopped by systemctl", T, || {
        let s = p.service("db");
        s["state"] == "stopped" && s["reason"] == "by systemctl"
    });
    wait_until("web follows as on sysg stop -s", T, || {
        p.service("web")["state"] == "stopped" && !ns.alive(web)
    });
    let s = p.service("db");
    assert!(s["pid"].is_null() && s["next_restart"].is_null(), "{s}");
    assert_eq!(s["restarts"], 0, "not counted as a crash: {s}");
    assert_eq!(p.service("web")["restarts"], 0);
    assert_eq!((runs(&p, "db"), runs(&p, "web")), (vec![db], vec![web]));
    assert_eq!(p.pid("other"), other, "the rest is untouched");
    let table = text(&p.sysg(&["status"]).stdout);
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("db") && l.contains("stopped") && l.contains("by systemctl")),
        "{table}"
    );
    // The unit stays loaded for the admin, inactive.
    assert_eq!(ns.show(&unit, "ActiveState"), "inactive");

    // `systemctl start` brings it back and sysg follows the new main process.
    assert_ok(&ns.exec(&["systemctl", "start", &unit]), "systemctl start");
    wait_until("sysg follows db again", T, || {
        p.service("db")["state"] == "running"
    });
    let again = p.pid("db");
    assert_ne!(again, db);
    assert_eq!(ns.show(&unit, "MainPID"), again.to_string());
    assert_eq!(
        p.service("web")["state"],
        "stopped",
        "dependents wait for sysg start"
    );

    // A crash of the followed process is a crash: restarted by policy.
    ns.exec(&["kill", "-9", &again.to_string()]);
    wait_until("db is restarted after the crash", T, || {
        let s = p.service("db");
        s["state"] == "running" && s["pid"].as_u64().is_some_and(|x| x as u32 != again)
    });

    // `sysg start` brings the dependents back.
    assert_ok(&p.sysg(&["start", "--daemonize"]), "sysg start");
    assert_eq!(p.service("web")["state"], "running");
    assert_ok(&p.sysg(&["stop"]), "stop");
    wait_until("no sysg unit is left", T, || p.sysg_units().is_empty());
}

/// The unit's environment file as the host sees it, from the unit's `EnvironmentFiles=`.
fn env_file(p: &SysProject, ns: &NsSystemd, unit: &str) -> std::path::PathBuf {
    let files = ns.show(unit, "EnvironmentFiles");
    let path = files
        .split_whitespace()
        .next()
        .unwrap_or_else(|| panic!("{unit} names no environment file: {files:?}"));
    p.inner_path(path)
}

#[test]
fn admin_systemctl_restart_keeps_the_environment_and_is_followed() {
    use std::os::unix::fs::MetadataExt;
    let Some(ns) = boot_or_skip("admin_systemctl_restart_keeps_the_environment_and_is_followed")
    else {
        return;
    };
    let services = format!(
        "  db:\n    command: \"echo $$ $SECRET >> runs-db; exec sleep 1000\"\n    restart_policy: always\n    backoff: 50ms\n    env:\n      vars:\n        SECRET: s3cret\n{}",
        recording("web", &["db"]),
    );
    let p = SysProject::new(&ns, "sysg-admin-", "adm-restart", &services);
    assert_ok(&p.sysg(&["start", "--daemonize"]), "start");
    let (db, web) = (p.pid("db"), p.pid("web"));
    let unit = p.unit("db");

    // The secret is in a root-only file, never in the unit's properties.
    assert!(!ns.show(&unit, "Environment").contains("s3cret"));
    let file = env_file(&p, &ns, &unit);
    let meta = std::fs::metadata(&file).expect("the environment file outlives the start");
    assert_eq!((meta.uid(), meta.mode() & 0o777), (0, 0o600), "{file:?}");
    let dir = std::fs::metadata(file.parent().unwrap()).unwrap();
    assert_eq!((dir.uid(), dir.mode() & 0o7777), (0, 0o700));

    assert_ok(
        &ns.exec(&["systemctl", "restart", &unit]),
        "systemctl restart",
    );
    let again: u32 = ns.show(&unit, "MainPID").parse().unwrap();
    assert_ne!(again, db);
    wait_until("sysg follows the new main process", T, || {
        p.service("db")["pid"].as_u64() == Some(u64::from(again))
    });
    let s = p.service("db");
    assert_eq!(s["state"], "running", "{s}");
    assert_eq!(s["restarts"], 0, "not counted as a crash: {s}");
    let lines = std::fs::read_to_string(p.dir().join("runs-db")).unwrap();
    assert_eq!(
        lines,
        format!("{db} s3cret\n{again} s3cret\n"),
        "the restart had its environment"
    );
    assert_eq!(p.pid("web"), web, "dependents are untouched");
    assert_eq!(runs(&p, "web"), vec![web]);

    // A crash of the new process is a crash: restarted by policy, with its environment.
    ns.exec(&["kill", "-9", &again.to_string()]);
    wait_until("db is restarted after the crash", T, || {
        let s = p.service("db");
        s["state"] == "running" && s["pid"].as_u64().is_some_and(|x| x as u32 != again)
    });
    assert!(std::fs::read_to_string(p.dir().join("runs-db"))
        .unwrap()
        .lines()
        .all(|l| l.ends_with(" s3cret")));

    // The file goes when the unit goes.
    assert_ok(&p.sysg(&["stop", "--service", "db"]), "stop db");
    wait_until("the unit is unloaded", T, || {
        ns.show(&unit, "LoadState") == "not-found"
    });
    wait_until("its environment file is removed", T, || !file.exists());
    assert_ok(&p.sysg(&["stop"]), "stop");
    wait_until("no sysg unit is left", T, || p.sysg_units().is_empty());
}

/// The unit whose cgroup holds `pid` inside the namespace (last component of its cgroup path).
fn unit_of(ns: &NsSystemd, pid: u32) -> String {
    let cg = ns.output(&["cat", &format!("/proc/{pid}/cgroup")]);
    cg.rsplit('/').next().unwrap_or_default().trim().to_string()
}

#[test]
fn admin_a_hand_started_supervisor_runs_in_a_scope_of_its_own() {
    let Some(ns) = boot_or_skip("admin_a_hand_started_supervisor_runs_in_a_scope_of_its_own")
    else {
        return;
    };
    let services = format!("{}{}", recording("db", &[]), recording("web", &["db"]));
    let p = SysProject::new(&ns, "sysg-admin-", "adm-scope", &services);
    let scope = "sysg-adm\\x2dscope-supervisor.scope";
    assert_ok(&p.sysg(&["start", "--daemonize"]), "start");
    let sup = p.supervisor_pid().expect("supervisor pid");
    // `systemctl status` shows the supervisor, in its own unit rather than the caller's.
    assert_eq!(ns.show(scope, "ActiveState"), "active");
    assert_eq!(unit_of(&ns, sup), scope);
    let status = ns.exec(&["systemctl", "status", "--no-pager", scope]);
    assert_ok(&status, "systemctl status");
    assert!(text(&status.stdout).contains(&sup.to_string()));
    let (db, web) = (p.pid("db"), p.pid("web"));

    // Re-adoption works as before: a new supervisor, a new scope, the same services.
    ns.exec(&["kill", "-9", &sup.to_string()]);
    wait_until("the old scope is gone", T, || {
        ns.show(scope, "ActiveState") != "active"
    });
    assert_ok(&p.sysg(&["start", "--daemonize"]), "start again");
    let again = p.supervisor_pid().expect("supervisor pid");
    assert_ne!(again, sup);
    assert_eq!(unit_of(&ns, again), scope);
    assert_eq!((p.pid("db"), p.pid("web")), (db, web));
    assert_eq!((runs(&p, "db"), runs(&p, "web")), (vec![db], vec![web]));

    // `sysg stop` ends everything, the scope included.
    assert_ok(&p.sysg(&["stop"]), "stop");
    wait_until("no sysg unit is left", T, || p.sysg_units().is_empty());

    // Already in a unit (systemg.service): the supervisor stays there, no scope is made.
    let bin = env!("CARGO_BIN_EXE_sysg");
    let cfg = p.config.to_string_lossy().into_owned();
    let out = ns.exec(&[
        "systemd-run",
        "--wait",
        "--quiet",
        "--unit",
        "hand-sysg",
        "-p",
        "KillMode=process",
        bin,
        "--sys",
        "--backend",
        "systemd",
        "-c",
        &cfg,
        "start",
        "--daemonize",
    ]);
    assert_ok(&out, "start from a unit");
    let inside = p.supervisor_pid().expect("supervisor pid");
    assert_eq!(unit_of(&ns, inside), "hand-sysg.service");
    assert_ne!(ns.show(scope, "ActiveState"), "active");
    assert_ok(&p.sysg(&["stop"]), "stop");
    wait_until("no sysg unit is left", T, || p.sysg_units().is_empty());
}
