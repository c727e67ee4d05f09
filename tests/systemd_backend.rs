//! The systemd backend against a real systemd 252 booted in a private namespace.
//!
//! The `api_*` tests drive `SystemdBackend` directly over the namespace's system bus (reached
//! from the host, so pids are the namespace's numbers). The `e2e_*` tests run the real `sysg`
//! binary inside the namespace with `--sys --backend systemd`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failed test

mod systemd;

use std::sync::mpsc;
use std::time::{Duration, Instant};

use systemd::*;

#[test]
fn harness_boots_and_tears_down() {
    let Some(ns) = boot_or_skip("harness_boots_and_tears_down") else {
        return;
    };
    let state = ns.output(&["systemctl", "is-system-running"]);
    assert!(state == "running" || state == "degraded", "{state}");
    assert_eq!(ns.output(&["cat", "/proc/1/comm"]), "systemd");
    // The hazardous units are masked, the bus and the journal run.
    assert_eq!(
        ns.show("systemd-tmpfiles-setup.service", "LoadState"),
        "masked"
    );
    assert_eq!(ns.show("dbus.service", "ActiveState"), "active");
    assert_eq!(ns.show("systemd-journald.service", "ActiveState"), "active");
    let pid = ns.pid;
    drop(ns);
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists()
            || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .map(|s| s.contains(") Z"))
                .unwrap_or(true),
        "the namespace's init survived the tear-down"
    );
}

use systemg::backend::systemd::SystemdBackend;
use systemg::backend::{AdoptRecord, Backend, BackendEvent};
use systemg::config::schema::{CgroupLimits, CpuMax, Limits, Size};
use systemg::spec::{ExitStatus, UnitSpec};

const PROJECT: &str = "it-api";

fn spec(name: &str, argv: &[&str]) -> UnitSpec {
    UnitSpec {
        env: vec![("GREETING".into(), "hello there".into())],
        cwd: Some("/".into()),
        stop_timeout: Duration::from_secs(3),
        ..UnitSpec::new(PROJECT, name, argv.iter().map(|s| s.to_string()).collect())
    }
}

fn connect(ns: &NsSystemd) -> (SystemdBackend, mpsc::Receiver<BackendEvent>) {
    let addr = ns.bus_address();
    let open = || {
        zbus::blocking::connection::Builder::address(addr.as_str())
            .and_then(|b| b.build())
            .expect("connect to the namespace's system bus")
    };
    let (tx, rx) = mpsc::channel();
    let backend = SystemdBackend::with_connections(
        open(),
        open(),
        true,
        PROJECT,
        Box::new(move |ev| {
            let _ = tx.send(ev);
        }),
    )
    .expect("SystemdBackend");
    (backend, rx)
}

fn next_exit(rx: &mpsc::Receiver<BackendEvent>, limit: Duration) -> (String, u32, ExitStatus) {
    match rx.recv_timeout(limit) {
        Ok(BackendEvent::Exited { unit, pid, status }) => (unit, pid, status),
        Ok(other) => panic!("expected an exit event, got {other:?}"),
        Err(e) => panic!("no exit event within {limit:?}: {e}"),
    }
}

fn unit(service: &str) -> String {
    systemg::backend::systemd::naming::unit_name(PROJECT, service)
}

/// The controllers of the namespace's cgroup2 hierarchy (its manager's cgroup is the root).
fn cgroup_controllers(ns: &NsSystemd) -> String {
    std::fs::read_to_string(ns.inner_path("/sys/fs/cgroup/cgroup.controllers")).unwrap_or_default()
}

#[test]
fn api_start_reports_pid_properties_and_exit() {
    let Some(ns) = boot_or_skip("api_start_reports_pid_properties_and_exit") else {
        return;
    };
    let (mut b, rx) = connect(&ns);
    let mut s = spec("sleeper", &["/bin/sleep", "1000"]);
    s.limits = Limits {
        nofile: Some(Size::Value(4096)),
        nice: Some(5),
        cpu_affinity: Some(vec![0]),
        cgroup: CgroupLimits {
            memory_max: Some(Size::Value(256 * 1024 * 1024)),
            cpu_max: Some(CpuMax {
                quota_us: Some(50_000),
                period_us: 100_000,
            }),
        },
        ..Limits::default()
    };
    s.capabilities = Some(vec!["CAP_NET_BIND_SERVICE".into()]);
    s.isolation.network = true;
    let u = unit("sleeper");
    // systemd would accept the cgroup limits and not enforce them where the memory and cpu
    // controllers are not in its cgroup2 hierarchy (as on the test hosts, see
    // ../shared/docs/systemd-in-a-namespace.md): the start fails naming them, and no unit is made.
    let enforced = cgroup_controllers(&ns)
        .split_whitespace()
        .filter(|c| matches!(*c, "memory" | "cpu"))
        .count()
        == 2;
    if !enforced {
        let e = b
            .start(&s)
            .expect_err("limits that would not be enforced")
            .to_string();
        assert!(
            e.contains("limits.cgroup.memory_max needs the memory controller"),
            "{e}"
        );
        assert_eq!(ns.show(&u, "LoadState"), "not-found");
        s.limits.cgroup = CgroupLimits::default();
    }
    let pid = b.start(&s).expect("start");
    assert_eq!(ns.show(&u, "MainPID"), pid.to_string());
    assert!(ns.alive(pid));
    for (prop, want) in [
        ("Type", "exec"),
        ("Description", "sleeper (systemg project it-api)"),
        ("Slice", "sysg-it\\x2dapi.slice"),
        ("CollectMode", "inactive"),
        ("KillMode", "control-group"),
        ("KillSignal", "15"),
        ("TimeoutStopUSec", "3s"),
        ("LimitNOFILE", "4096"),
        ("LimitNOFILESoft", "4096"),
        ("Nice", "5"),
        ("CPUAffinity", "0"),
        ("MemoryMax", if enforced { "268435456" } else { "infinity" }),
        (
            "CPUQuotaPerSecUSec",
            if enforced { "500ms" } else { "infinity" },
        ),
        ("AmbientCapabilities", "cap_net_bind_service"),
        ("CapabilityBoundingSet", "cap_net_bind_service"),
        ("PrivateNetwork", "yes"),
        ("StandardOutput", "journal"),
        ("SyslogIdentifier", "sleeper"),
        ("Environment", "\"GREETING=hello there\""),
        ("Restart", "no"),
    ] {
        assert_eq!(ns.show(&u, prop), want, "{prop}");
    }
    let recs = b.records();
    assert_eq!(recs.len(), 1, "{recs:?}");
    assert_eq!(recs[0].unit, "sleeper");
    assert_eq!(recs[0].pid, pid);
    assert_eq!(recs[0].extra["unit_name"], u.as_str());

    b.signal("sleeper", libc::SIGTERM).expect("signal");
    let (name, epid, status) = next_exit(&rx, Duration::from_secs(5));
    assert_eq!(
        (name.as_str(), epid, status),
        ("sleeper", pid, ExitStatus::Signal(libc::SIGTERM))
    );
    wait_until("the unit is unloaded", Duration::from_secs(5), || {
        ns.show(&u, "LoadState") == "not-found"
    });
    assert!(!ns.alive(pid));
    assert!(b.records().is_empty());
}

#[test]
fn api_exit_codes_failures_and_restarts() {
    let Some(ns) = boot_or_skip("api_exit_codes_failures_and_restarts") else {
        return;
    };
    let (mut b, rx) = connect(&ns);
    // A quick crash is a successful start followed by an exit with the code. Starting the same
    // name again right away works (the earlier instance is unloaded first).
    for round in 0..3 {
        let pid = b
            .start(&spec("crasher", &["/bin/sh", "-c", "echo crash; exit 3"]))
            .unwrap_or_else(|e| panic!("round {round}: {e}"));
        let (name, epid, status) = next_exit(&rx, Duration::from_secs(5));
        assert_eq!(
            (name.as_str(), epid, status),
            ("crasher", pid, ExitStatus::Code(3))
        );
    }
    let pid = b.start(&spec("ok", &["/bin/true"])).expect("start true");
    assert_eq!(
        next_exit(&rx, Duration::from_secs(5)),
        ("ok".into(), pid, ExitStatus::Code(0))
    );

    // exec() fails: a start error naming the service and systemd's result, no exit event.
    let err = b
        .start(&spec("missing", &["/nonexistent/prog"]))
        .expect_err("a missing program must fail the start");
    let msg = err.to_string();
    assert!(msg.starts_with("missing: "), "{msg}");
    assert!(msg.contains("could not be executed"), "{msg}");
    assert!(
        rx.recv_timeout(Duration::from_millis(300)).is_err(),
        "no exit for a failed start"
    );

    // A property systemd refuses is named.
    let mut bad = spec("badprop", &["/bin/sleep", "1"]);
    bad.isolation.pid = true; // PrivatePIDs does not exist in systemd 252
    let msg = b.start(&bad).expect_err("PrivatePIDs on 252").to_string();
    assert!(
        msg.contains("badprop") && msg.contains("PrivatePIDs"),
        "{msg}"
    );

    // Output reaches the journal.
    wait_until(
        "crasher's output is in the journal",
        Duration::from_secs(5),
        || {
            ns.output(&[
                "journalctl",
                "-u",
                &unit("crasher"),
                "-o",
                "cat",
                "--no-pager",
            ])
            .contains("crash")
        },
    );
}

#[test]
fn api_outside_stop_and_kill_are_reported() {
    let Some(ns) = boot_or_skip("api_outside_stop_and_kill_are_reported") else {
        return;
    };
    let (mut b, rx) = connect(&ns);
    let pid = b
        .start(&spec("victim", &["/bin/sleep", "1000"]))
        .expect("start");
    let t0 = Instant::now();
    let out = ns.exec(&["systemctl", "stop", &unit("victim")]);
    assert!(out.status.success(), "{out:?}");
    // A stop job sysg did not ask for: reported as a stop by the operator, not an exit.
    let (name, epid, status) = match rx.recv_timeout(Duration::from_secs(5)) {
        Ok(BackendEvent::StoppedOutside { unit, pid, status }) => (unit, pid, status),
        other => panic!("expected StoppedOutside, got {other:?}"),
    };
    assert!(
        t0.elapsed() < Duration::from_secs(1),
        "reported after {:?}",
        t0.elapsed()
    );
    assert_eq!(
        (name.as_str(), epid, status),
        ("victim", pid, ExitStatus::Signal(libc::SIGTERM))
    );

    let pid = b
        .start(&spec("victim", &["/bin/sleep", "1000"]))
        .expect("restart");
    let t0 = Instant::now();
    let out = ns.exec(&["kill", "-9", &pid.to_string()]);
    assert!(out.status.success(), "{out:?}");
    let (name, epid, status) = next_exit(&rx, Duration::from_secs(5));
    assert!(
        t0.elapsed() < Duration::from_secs(1),
        "reported after {:?}",
        t0.elapsed()
    );
    assert_eq!(
        (name.as_str(), epid, status),
        ("victim", pid, ExitStatus::Signal(libc::SIGKILL))
    );

    // kill() takes the whole control group, children included.
    let pid = b
        .start(&spec(
            "tree",
            &["/bin/sh", "-c", "sleep 1000 & sleep 1001; wait"],
        ))
        .expect("start tree");
    b.kill("tree").expect("kill");
    let (_, epid, status) = next_exit(&rx, Duration::from_secs(5));
    assert_eq!((epid, status), (pid, ExitStatus::Signal(libc::SIGKILL)));
    wait_until("no sleep is left", Duration::from_secs(5), || {
        ns.exec(&["pgrep", "-x", "sleep"]).stdout.is_empty()
    });
    let r = b.signal("tree", libc::SIGTERM);
    assert!(
        matches!(r, Err(systemg::backend::BackendError::NotRunning { .. })),
        "{r:?}"
    );
}

#[test]
fn api_adoption_by_a_new_backend() {
    let Some(ns) = boot_or_skip("api_adoption_by_a_new_backend") else {
        return;
    };
    let (mut first, _rx1) = connect(&ns);
    let pid = first
        .start(&spec("keeper", &["/bin/sleep", "1000"]))
        .expect("start");
    let mut rec = first.records().pop().expect("a record");
    // Gone supervisor: its connections close, the unit keeps running under systemd.
    drop(first);
    assert_eq!(ns.show(&unit("keeper"), "MainPID"), pid.to_string());

    let (mut second, rx2) = connect(&ns);
    assert_eq!(
        second.list_project_units(PROJECT).expect("list"),
        vec![("keeper".to_string(), pid)]
    );
    let found = second.discover();
    assert_eq!(found.len(), 1);
    assert_eq!((found[0].unit.as_str(), found[0].pid), ("keeper", pid));
    // The record's start time was read from the host's /proc, where the namespace's pid
    // numbers mean other processes: leave it out here (the e2e test covers it).
    rec.start_time = 0;
    let wrong_pid = AdoptRecord {
        pid: pid + 1,
        ..rec.clone()
    };
    assert_eq!(second.adopt(&wrong_pid).expect("adopt"), None);
    // A state file is untrusted: a record naming any unit but the project's own for its
    // service (another service's, or one outside the project) is refused, never looked up.
    for (service, name) in [
        ("ghost", unit("keeper")),
        ("ghost", "systemd-journald.service".to_string()),
        ("keeper", "sysg-other-keeper.service".to_string()),
    ] {
        let forged = AdoptRecord {
            unit: service.into(),
            extra: serde_json::json!({ "unit_name": name }),
            ..rec.clone()
        };
        assert!(
            matches!(
                second.adopt(&forged),
                Err(systemg::backend::BackendError::Untrusted { .. })
            ),
            "{forged:?}"
        );
    }
    assert!(second.records().is_empty());
    assert_eq!(second.adopt(&rec).expect("adopt"), Some(pid));
    let gone = AdoptRecord {
        unit: "nothere".into(),
        extra: serde_json::json!({}),
        ..rec.clone()
    };
    assert_eq!(second.adopt(&gone).expect("adopt"), None);

    ns.exec(&["kill", "-9", &pid.to_string()]);
    let (name, epid, status) = next_exit(&rx2, Duration::from_secs(5));
    assert_eq!(
        (name.as_str(), epid, status),
        ("keeper", pid, ExitStatus::Signal(libc::SIGKILL))
    );
}

#[test]
fn api_plain_commands_run_without_a_shell() {
    let Some(ns) = boot_or_skip("api_plain_commands_run_without_a_shell") else {
        return;
    };
    let (mut b, rx) = connect(&ns);
    // A plain `command:` is stored as `/bin/sh -c CMD`; it must reach systemd as the program.
    let plain = spec("plainsleep", &["/bin/sh", "-c", "exec sleep 1000"]);
    let pid = b.start(&plain).expect("start plain");
    let u = unit("plainsleep");
    assert_eq!(ns.show(&u, "MainPID"), pid.to_string());
    let exec = ns.show(&u, "ExecStart");
    assert!(
        exec.contains("argv[]=sleep 1000 ;") && exec.contains("/sleep ;"),
        "ExecStart of a plain command: {exec}"
    );
    assert_eq!(ns.output(&["cat", &format!("/proc/{pid}/comm")]), "sleep");

    // A shell form keeps the shell.
    let shell = spec("shellsleep", &["/bin/sh", "-c", "sleep 1000 | cat"]);
    let spid = b.start(&shell).expect("start shell form");
    let su = unit("shellsleep");
    let exec = ns.show(&su, "ExecStart");
    assert!(
        exec.contains("path=/bin/sh ;") && exec.contains("argv[]=/bin/sh -c sleep 1000 | cat ;"),
        "ExecStart of a shell form: {exec}"
    );
    assert_eq!(ns.output(&["cat", &format!("/proc/{spid}/comm")]), "sh");

    b.signal("plainsleep", libc::SIGTERM).expect("signal");
    let (n, epid, status) = next_exit(&rx, Duration::from_secs(5));
    // The signal reached sleep itself, not a shell around it.
    assert_eq!(
        (n.as_str(), epid, status),
        ("plainsleep", pid, ExitStatus::Signal(libc::SIGTERM))
    );
    b.signal("shellsleep", libc::SIGTERM).expect("signal");
    let (n, epid, _) = next_exit(&rx, Duration::from_secs(5));
    assert_eq!((n.as_str(), epid), ("shellsleep", spid));
}

#[test]
fn api_start_many_gives_each_unit_its_own_result() {
    let Some(ns) = boot_or_skip("api_start_many_gives_each_unit_its_own_result") else {
        return;
    };
    let (mut b, rx) = connect(&ns);
    let mut refused = spec("many-badprop", &["/bin/sleep", "100"]);
    refused.isolation.pid = true; // PrivatePIDs does not exist in systemd 252
    let specs = [
        spec("many-one", &["/bin/sleep", "100"]),
        spec("many-missing", &["/nonexistent/prog"]),
        refused,
        spec("many-crasher", &["/bin/sh", "-c", "exit 3"]),
        spec("many-two", &["/bin/sleep", "100"]),
        // The same service again in the batch: started after its first start finished.
        spec("many-crasher", &["/bin/sh", "-c", "exit 4"]),
    ];
    let results = b.start_many(&specs);
    assert_eq!(results.len(), specs.len());
    for (i, service) in [(0, "many-one"), (4, "many-two")] {
        let pid = *results[i]
            .as_ref()
            .unwrap_or_else(|e| panic!("{service}: {e}"));
        assert_eq!(ns.show(&unit(service), "MainPID"), pid.to_string());
        assert_eq!(ns.show(&unit(service), "ActiveState"), "active");
    }
    let msg = results[1]
        .as_ref()
        .expect_err("missing program")
        .to_string();
    assert!(
        msg.starts_with("many-missing: ") && msg.contains("could not be executed"),
        "{msg}"
    );
    let msg = results[2].as_ref().expect_err("PrivatePIDs").to_string();
    assert!(
        msg.contains("many-badprop") && msg.contains("PrivatePIDs"),
        "{msg}"
    );
    // Both runs of the crasher started and each one's exit is reported with its own pid.
    let first = *results[3].as_ref().expect("first crasher");
    let second = *results[5].as_ref().expect("second crasher");
    assert_ne!(first, second);
    let mut exits = vec![
        next_exit(&rx, Duration::from_secs(5)),
        next_exit(&rx, Duration::from_secs(5)),
    ];
    exits.sort_by_key(|e| e.1 != first);
    assert_eq!(
        exits,
        vec![
            ("many-crasher".into(), first, ExitStatus::Code(3)),
            ("many-crasher".into(), second, ExitStatus::Code(4)),
        ]
    );
}
