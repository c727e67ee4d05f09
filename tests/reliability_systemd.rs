//! Reliability suite, systemd backend: the real `sysg --sys --backend systemd` inside a
//! namespaced systemd (tests/systemd/mod.rs). A supervisor killed while services start, a
//! hostile process tree at stop, and an idle supervisor that must not wake up. Skipped with a
//! reason when not root or without systemd.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failed test

mod systemd;

use std::path::PathBuf;
use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use systemd::*;

const T: Duration = Duration::from_secs(30);

/// A project run by `sysg --sys --backend systemd` inside the namespace; the config and the
/// files its services write live in a host temporary directory (the namespace shares /tmp).
struct Sys<'a> {
    ns: &'a NsSystemd,
    dir: tempfile::TempDir,
    project: String,
}

impl<'a> Sys<'a> {
    fn new(ns: &'a NsSystemd, project: &str, services: &str) -> Sys<'a> {
        let dir = tempfile::Builder::new()
            .prefix("sysg-rel-")
            .tempdir()
            .expect("tempdir");
        std::fs::write(
            dir.path().join("systemg.yaml"),
            format!("version: \"1\"\nproject: {project}\nservices:\n{services}"),
        )
        .expect("config");
        std::fs::create_dir(dir.path().join("runs")).expect("runs");
        Sys {
            ns,
            dir,
            project: project.into(),
        }
    }

    fn argv(&self, args: &[&str]) -> Vec<String> {
        let d = self.dir.path().to_string_lossy().into_owned();
        let mut v: Vec<String> = [
            "env",
            "-C",
            &d,
            "NO_COLOR=1",
            env!("CARGO_BIN_EXE_sysg"),
            "--sys",
            "--backend",
            "systemd",
            "-c",
            "systemg.yaml",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        v.extend(args.iter().map(|s| s.to_string()));
        v
    }

    fn sysg(&self, args: &[&str]) -> Output {
        let argv = self.argv(args);
        let refs: Vec<&str> = argv.iter().map(String::as_str).collect();
        run_bounded(self.ns.command(&refs), Duration::from_secs(90))
    }

    fn spawn(&self, args: &[&str]) -> Child {
        let argv = self.argv(args);
        let refs: Vec<&str> = argv.iter().map(String::as_str).collect();
        self.ns
            .command(&refs)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn sysg")
    }

    fn status(&self) -> Value {
        let out = self.sysg(&["status", "--json"]);
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "status --json is not JSON ({e}): {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        })
    }

    fn runs(&self, service: &str) -> Vec<u32> {
        std::fs::read_to_string(self.dir.path().join("runs").join(service))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    }

    /// The supervisor's pid inside the namespace.
    fn supervisor(&self) -> Option<u32> {
        let p = format!(
            "/proc/{}/root/run/systemg/{}/supervisor.pid",
            self.ns.pid, self.project
        );
        std::fs::read_to_string(p).ok()?.trim().parse().ok()
    }

    fn sysg_units(&self) -> String {
        self.ns.output(&[
            "systemctl",
            "list-units",
            "--all",
            "--plain",
            "--no-legend",
            "sysg-*",
        ])
    }

    /// What is wrong with "every service runs exactly once, as the status says".
    fn once_violations(&self, names: &[String]) -> Vec<String> {
        let st = self.status();
        names
            .iter()
            .filter_map(|n| {
                let s = st["services"]
                    .as_array()
                    .and_then(|a| a.iter().find(|s| s["name"] == n.as_str()).cloned())
                    .unwrap_or_default();
                let pid = s["pid"].as_u64().map(|p| p as u32);
                let live: Vec<u32> = self
                    .runs(n)
                    .into_iter()
                    .filter(|&p| self.ns.alive(p))
                    .collect();
                let ok = s["state"] == "running"
                    && pid.is_some()
                    && live == pid.into_iter().collect::<Vec<_>>();
                (!ok).then(|| format!("{n}: state {}, pid {pid:?}, live {live:?}", s["state"]))
            })
            .collect()
    }
}

fn assert_ok(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed ({:?}):\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The host pid of an inner pid of the namespace (by the NSpid line of /proc/*/status).
fn host_pid(ns: &NsSystemd, inner: u32) -> Option<u32> {
    let ns_link = std::fs::read_link(format!("/proc/{}/ns/pid", ns.pid)).ok()?;
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid: u32 = e.file_name().to_str()?.parse().ok()?;
        if std::fs::read_link(format!("/proc/{pid}/ns/pid")).ok()? != ns_link {
            return None;
        }
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let last = status
            .lines()
            .find(|l| l.starts_with("NSpid:"))?
            .split_whitespace()
            .last()?
            .parse::<u32>()
            .ok()?;
        (last == inner).then_some(pid)
    })
}

fn wakeups(pid: u32) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("status")).ok())
        .flat_map(|s| {
            s.lines()
                .filter(|l| l.contains("ctxt_switches"))
                .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
                .collect::<Vec<_>>()
        })
        .sum()
}

#[test]
fn systemd_kill_9_while_services_start_leaves_each_running_once() {
    let Some(ns) = boot_or_skip("systemd_kill_9_while_services_start_leaves_each_running_once")
    else {
        return;
    };
    let mut services = String::new();
    let mut names = Vec::new();
    for i in 0..5 {
        for (n, extra) in [
            (format!("a{i}"), String::new()),
            // b waits for a's settle window: the supervisor dies with half the units started.
            (format!("b{i}"), format!("    depends_on: [a{i}]\n")),
        ] {
            services +=
                &format!("  {n}:\n    command: \"echo $$ >> runs/{n}; exec sleep 1000\"\n{extra}");
            names.push(n);
        }
    }
    let p = Sys::new(&ns, "rel-kill", &services);
    let start = p.spawn(&["start", "--daemonize"]);
    wait_until("the a services started", T, || {
        (0..5).all(|i| !p.runs(&format!("a{i}")).is_empty())
    });
    let sup = p.supervisor().expect("supervisor pid");
    ns.exec(&["kill", "-9", &sup.to_string()]);
    reap(start, T);
    wait_until("the supervisor is gone", T, || !ns.alive(sup));

    assert_ok(&p.sysg(&["start", "--daemonize"]), "start after the crash");
    let deadline = Instant::now() + T;
    loop {
        let bad = p.once_violations(&names);
        if bad.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not running exactly once:\n{}\nunits:\n{}",
            bad.join("\n"),
            p.sysg_units()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let units = p.sysg_units();
    assert_eq!(
        units
            .lines()
            .filter(|l| l.contains(".service ") && l.contains(" active "))
            .count(),
        names.len(),
        "one active unit per service:\n{units}"
    );
    assert_ok(&p.sysg(&["stop"]), "stop");
    wait_until("no sysg unit is left", T, || p.sysg_units().is_empty());
    let all: Vec<u32> = names.iter().flat_map(|n| p.runs(n)).collect();
    assert!(all.iter().all(|&x| !ns.alive(x)), "an instance survived");
}

#[test]
fn systemd_stop_leaves_no_survivor_of_a_hostile_tree() {
    let Some(ns) = boot_or_skip("systemd_stop_leaves_no_survivor_of_a_hostile_tree") else {
        return;
    };
    let p = Sys::new(
        &ns,
        "rel-hostile",
        "  hostile:\n    exec: [\"sh\", \"./hostile.sh\"]\n    stop_timeout: 1s\n",
    );
    std::fs::write(
        p.dir.path().join("hostile.sh"),
        r#"mkdir -p pids
( sleep 1001 & echo $! > pids/double ) &
setsid sh -c 'sleep 1002 & echo $! > pids/setsid; wait' &
sh -c 'trap "" TERM; echo $$ > pids/noterm; exec sleep 1003' &
( setsid sh -c 'echo $$ > pids/exec; exec env -i sleep 1004' & ) &
trap '' TERM
echo $$ > pids/main
while :; do sleep 1; done
"#,
    )
    .expect("script");
    assert_ok(&p.sysg(&["start", "--daemonize"]), "start");
    let names = ["main", "double", "setsid", "noterm", "exec"];
    let dir: PathBuf = p.dir.path().join("pids");
    let mut pids: Vec<u32> = Vec::new();
    wait_until("every hostile process wrote its pid", T, || {
        pids = names
            .iter()
            .filter_map(|n| {
                std::fs::read_to_string(dir.join(n))
                    .ok()?
                    .trim()
                    .parse()
                    .ok()
            })
            .collect();
        pids.len() == names.len()
    });
    assert!(pids.iter().all(|&x| ns.alive(x)));
    assert_ok(&p.sysg(&["stop"]), "stop");
    wait_until("zero survivors", T, || pids.iter().all(|&x| !ns.alive(x)));
    assert!(p.sysg_units().is_empty(), "{}", p.sysg_units());
}

#[test]
fn systemd_idle_supervisor_does_not_wake_up() {
    let Some(ns) = boot_or_skip("systemd_idle_supervisor_does_not_wake_up") else {
        return;
    };
    let mut services = String::new();
    for i in 0..5 {
        services += &format!("  s{i}:\n    command: \"exec sleep 1000\"\n");
    }
    let p = Sys::new(&ns, "rel-idle", &services);
    assert_ok(&p.sysg(&["start", "--daemonize"]), "start");
    let inner = p.supervisor().expect("supervisor pid");
    let sup = host_pid(&ns, inner).expect("the supervisor's host pid");
    let before = wakeups(sup);
    // An observation window, not a wait: nothing is due, so nothing may run.
    std::thread::sleep(Duration::from_millis(1500));
    let after = wakeups(sup);
    assert!(
        after - before <= 1,
        "an idle supervisor (systemd backend) woke up {} times in 1.5 s",
        after - before
    );
    assert_ok(&p.sysg(&["stop"]), "stop");
}

#[test]
fn systemd_log_burst_is_kept_whole() {
    let Some(ns) = boot_or_skip("systemd_log_burst_is_kept_whole") else {
        return;
    };
    // Well past journald's default burst (10,000 lines per 30 s, scaled up by free disk space:
    // about 35,000 here): nothing may be dropped.
    let p = Sys::new(
        &ns,
        "rel-burst",
        "  burst:\n    command: \"seq 1 100000; exec sleep 1000\"\n",
    );
    assert_ok(&p.sysg(&["start", "--daemonize"]), "start");
    let unit = "sysg-rel\\x2dburst-burst.service";
    let count = || {
        ns.output(&["journalctl", "-u", unit, "-o", "cat", "--no-pager"])
            .lines()
            .filter(|l| l.parse::<u32>().is_ok())
            .count()
    };
    let deadline = Instant::now() + T;
    let mut n = count();
    while n < 100000 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
        n = count();
    }
    assert_eq!(n, 100000, "lines in the journal");
    assert_ok(&p.sysg(&["stop"]), "stop");
}

#[test]
fn systemd_kill_9_during_backoff_and_restart_keeps_state() {
    let Some(ns) = boot_or_skip("systemd_kill_9_during_backoff_and_restart_keeps_state") else {
        return;
    };
    let p = Sys::new(
        &ns,
        "rel-state",
        concat!(
            "  flaky:\n    command: \"echo $$ >> runs/flaky; if [ -e crashed ]; then exec sleep 1000; fi; touch crashed; exit 1\"\n    backoff: 5s\n",
            "  stubborn:\n    command: \"trap '' TERM; echo $$ >> runs/stubborn; exec sleep 1000\"\n    stop_timeout: 3s\n",
            "  steady:\n    command: \"echo $$ >> runs/steady; exec sleep 1000\"\n",
        ),
    );
    let _ = p.sysg(&["start", "--daemonize"]);
    let service = |name: &str| -> Value {
        p.status()["services"]
            .as_array()
            .and_then(|a| a.iter().find(|s| s["name"] == name).cloned())
            .unwrap_or_default()
    };
    wait_until("flaky waits in backoff", T, || {
        service("flaky")["state"] == "backoff"
    });
    let stubborn = service("stubborn")["pid"].as_u64();
    let steady = service("steady")["pid"].as_u64();
    // A restart that hangs on a stop signal the service ignores, then the supervisor dies.
    let restart = p.spawn(&["restart", "--service", "stubborn"]);
    wait_until("stubborn is stopping", T, || {
        service("stubborn")["state"] == "stopping"
    });
    let sup = p.supervisor().expect("supervisor pid");
    ns.exec(&["kill", "-9", &sup.to_string()]);
    reap(restart, T);
    wait_until("the supervisor is gone", T, || !ns.alive(sup));

    let _ = p.sysg(&["start", "--daemonize"]);
    let names: Vec<String> = ["flaky", "stubborn", "steady"].map(String::from).to_vec();
    let deadline = Instant::now() + T;
    loop {
        let bad = p.once_violations(&names);
        if bad.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not running exactly once:\n{}",
            bad.join("\n")
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(service("stubborn")["pid"].as_u64(), stubborn, "adopted");
    assert_eq!(service("steady")["pid"].as_u64(), steady, "adopted");
    let flaky = service("flaky");
    assert!(
        flaky["restarts"].as_u64() >= Some(1),
        "the restart counter survived: {flaky}"
    );
    assert_ok(&p.sysg(&["stop"]), "stop");
    wait_until("no sysg unit is left", T, || p.sysg_units().is_empty());
}
