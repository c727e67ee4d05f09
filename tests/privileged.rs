//! Privileged fields through the real `sysg` binary on the process backend, checked against
//! what the kernel reports for the service (/proc/PID/status, limits, stat, ns links), and the
//! refusals of a supervisor that is not root (run as uid 65534 from a root test).

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failed test
#![cfg(target_os = "linux")]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::time::Duration;

use common::*;

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// A field of /proc/PID/status, trimmed.
fn status_field(pid: &str, key: &str) -> String {
    proc_status_field(pid, key).unwrap_or_else(|| panic!("no {key} in /proc/{pid}/status"))
}

/// The soft and hard values of one /proc/PID/limits line.
fn limit(pid: u32, name: &str) -> (String, String) {
    let text = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with(name))
        .unwrap_or_else(|| panic!("no {name} in {text}"));
    let rest: Vec<&str> = line[name.len()..].split_whitespace().collect();
    (rest[0].to_string(), rest[1].to_string())
}

/// Wait until the service's main process is the program (not the forked copy of sysg).
fn wait_exec(pid: u32, comm: &str) {
    wait_until(
        &format!("pid {pid} to exec {comm}"),
        Duration::from_secs(10),
        || std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == comm),
    );
}

#[test]
fn identity_limits_and_capabilities_reach_the_kernel() {
    if !is_root() {
        println!("skipped: needs root");
        return;
    }
    let p = Project::new(
        r#"
version: "1"
services:
  ident:
    command: "exec sleep 1000"
    user: nobody
    group: nogroup
    supplementary_groups: ["0", "4"]
  limited:
    command: "exec sleep 1001"
    limits:
      nofile: 1234
      nproc: 777
      memlock: 64K
      nice: 7
      cpu_affinity: [0]
  capable:
    command: "exec sleep 1002"
    user: nobody
    capabilities: [CAP_NET_BIND_SERVICE, net_raw]
  plain:
    command: "exec sleep 1003"
"#,
    );
    p.start();
    let ident = p.pid("ident");
    wait_exec(ident, "sleep");
    let i = ident.to_string();
    assert_eq!(status_field(&i, "Uid"), "65534\t65534\t65534\t65534");
    assert_eq!(status_field(&i, "Gid"), "65534\t65534\t65534\t65534");
    let mut groups: Vec<u32> = status_field(&i, "Groups")
        .split_whitespace()
        .map(|g| g.parse().unwrap())
        .collect();
    groups.sort_unstable();
    assert_eq!(groups, vec![0, 4, 65534]);
    // Not root any more: no capabilities left.
    assert_eq!(status_field(&i, "CapEff"), "0000000000000000");

    let limited = p.pid("limited");
    wait_exec(limited, "sleep");
    assert_eq!(
        limit(limited, "Max open files"),
        ("1234".into(), "1234".into())
    );
    assert_eq!(
        limit(limited, "Max processes"),
        ("777".into(), "777".into())
    );
    assert_eq!(
        limit(limited, "Max locked memory"),
        ("65536".into(), "65536".into())
    );
    let stat = std::fs::read_to_string(format!("/proc/{limited}/stat")).unwrap();
    let after_comm: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    // Field 19 (nice); after the comm, fields count from 3.
    assert_eq!(after_comm[19 - 3], "7");
    assert_eq!(status_field(&limited.to_string(), "Cpus_allowed_list"), "0");
    // sched_getaffinity says the same.
    let set = nix::sched::sched_getaffinity(nix::unistd::Pid::from_raw(limited as i32)).unwrap();
    assert!(set.is_set(0).unwrap());
    assert!(!set.is_set(1).unwrap_or(false));

    let capable = p.pid("capable").to_string();
    wait_exec(p.pid("capable"), "sleep");
    assert_eq!(status_field(&capable, "Uid"), "65534\t65534\t65534\t65534");
    // CAP_NET_BIND_SERVICE (10) and CAP_NET_RAW (13).
    let mask = format!("{:016x}", (1u64 << 10) | (1 << 13));
    for set in ["CapEff", "CapPrm", "CapAmb", "CapBnd"] {
        assert_eq!(status_field(&capable, set), mask, "{set}");
    }

    // A service that asks for nothing keeps what a root shell would give it.
    let plain = p.pid("plain");
    wait_exec(plain, "sleep");
    // ...with no signal blocked (the supervisor blocks the ones its signal thread waits for).
    assert_eq!(
        status_field(&plain.to_string(), "SigBlk"),
        "0000000000000000"
    );
    let sup = p.supervisor_pid().unwrap().to_string();
    for set in [
        "CapBnd", "CapEff", "CapPrm", "CapAmb", "Uid", "Gid", "Groups",
    ] {
        assert_eq!(
            status_field(&plain.to_string(), set),
            status_field(&sup, set),
            "{set}"
        );
    }
}

#[test]
fn namespaces_differ_from_the_supervisors() {
    if !is_root() {
        println!("skipped: needs root");
        return;
    }
    let p = Project::new(
        r#"
version: "1"
services:
  isolated:
    command: "trap 'exit 0' TERM; sleep 1000 & wait"
    isolation:
      network: true
      pid: true
      mount: true
  netonly:
    command: "exec sleep 1000"
    isolation:
      network: true
"#,
    );
    p.start();
    let pid = p.pid("isolated");
    let sup = p.supervisor_pid().unwrap();
    let ns = |pid: u32, kind: &str| std::fs::read_link(format!("/proc/{pid}/ns/{kind}")).unwrap();
    for kind in ["net", "pid", "mnt"] {
        assert_ne!(ns(pid, kind), ns(sup as u32, kind), "{kind}");
    }
    // PID 1 inside, `pid` outside.
    assert_eq!(status_field(&pid.to_string(), "NSpid"), format!("{pid}\t1"));
    // The service's own view: a loopback that is up and nothing else.
    let links = Command::new("nsenter")
        .args(["-t", &pid.to_string(), "-n", "ip", "-o", "link"])
        .output()
        .unwrap();
    let links = String::from_utf8_lossy(&links.stdout);
    let names: Vec<&str> = links
        .lines()
        .filter_map(|l| l.split(':').nth(1).map(str::trim))
        .collect();
    assert_eq!(names, ["lo"], "{links}");
    assert!(links.contains("UP"), "{links}");
    // A fresh /proc in its mount namespace lists its own processes only.
    let procs = Command::new("nsenter")
        .args(["-t", &pid.to_string(), "-m", "ls", "/proc"])
        .output()
        .unwrap();
    let count = String::from_utf8_lossy(&procs.stdout)
        .lines()
        .filter(|l| l.chars().all(|c| c.is_ascii_digit()))
        .count();
    assert!(
        (1..=3).contains(&count),
        "{count} pids in the service's /proc"
    );

    let net = p.pid("netonly");
    assert_ne!(ns(net, "net"), ns(sup as u32, "net"));
    assert_eq!(ns(net, "pid"), ns(sup as u32, "pid"));
    assert_eq!(ns(net, "mnt"), ns(sup as u32, "mnt"));

    // Stop reaches PID 1 of the namespace (it handles TERM) and the status is real.
    assert_ok(&p.sysg(&["stop", "--service", "isolated"]), "stop");
    assert!(!alive(pid));
    let svc = p.service("isolated");
    assert_eq!(svc["last_exit"]["kind"], "code", "{svc}");
    assert_eq!(svc["last_exit"]["value"], 0, "{svc}");
}

#[test]
fn cgroup_limits_reach_the_cgroup_or_fail_clearly() {
    if !is_root() {
        println!("skipped: needs root");
        return;
    }
    let p = Project::new(
        r#"
version: "1"
services:
  capped:
    command: "exec sleep 1000"
    restart_policy: never
    limits:
      cgroup:
        memory_max: 64M
        cpu_max: "50000 100000"
"#,
    );
    let out = p.sysg(&["start", "--daemonize"]);
    if out.status.success() {
        let pid = p.pid("capped");
        let cg = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
        let rel = cg.lines().find_map(|l| l.strip_prefix("0::")).unwrap();
        let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        let mount = info
            .lines()
            .find(|l| l.contains(" - cgroup2 "))
            .and_then(|l| l.split_whitespace().nth(4))
            .unwrap();
        let dir = format!("{mount}{rel}");
        let mem = std::fs::read_to_string(format!("{dir}/memory.max")).unwrap();
        assert_eq!(mem.trim(), (64u64 << 20).to_string());
        let cpu = std::fs::read_to_string(format!("{dir}/cpu.max")).unwrap();
        assert_eq!(cpu.trim(), "50000 100000");
    } else {
        println!("no memory/cpu controller for our cgroups here: checking the refusal instead");
        let err = stderr(&out);
        assert!(err.contains("limits.cgroup"), "{err}");
        assert!(err.contains("controller"), "{err}");
        let svc = p.service("capped");
        assert_eq!(svc["state"], "failed", "{svc}");
        assert!(svc["pid"].is_null());
    }
}

#[test]
fn failing_steps_abort_the_start_and_name_the_field() {
    if !is_root() {
        println!("skipped: needs root");
        return;
    }
    let p = Project::new(
        r#"
version: "1"
services:
  toomany:
    command: "exec sleep 1000"
    restart_policy: never
    limits:
      nofile: 2000000000
  badcpu:
    command: "exec sleep 1000"
    restart_policy: never
    limits:
      cpu_affinity: [1000]
"#,
    );
    let out = p.sysg(&["start", "--daemonize"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains(
            "toomany is failed: start failed: toomany: limits.nofile: 2000000000 is above"
        ),
        "{err}"
    );
    assert!(
        err.contains(
            "badcpu is failed: start failed: badcpu: limits.cpu_affinity: sched_setaffinity"
        ),
        "{err}"
    );
    for s in ["toomany", "badcpu"] {
        assert!(p.service(s)["pid"].is_null());
    }
    assert_ok(&p.sysg(&["stop"]), "stop");

    // Unknown names never get that far: validation reports them with their position.
    let p = Project::new(
        "version: \"1\"\nservices:\n  a:\n    command: x\n    user: no-such-user-xyz\n    group: no-such-group-xyz\n",
    );
    for cmd in [&["validate"][..], &["start", "--daemonize"][..]] {
        let out = p.sysg(cmd);
        assert_eq!(out.status.code(), Some(2), "{cmd:?}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(
            err.contains("systemg.yaml:5:5: error: services.a.user: no user `no-such-user-xyz`"),
            "{err}"
        );
        assert!(
            err.contains("systemg.yaml:6:5: error: services.a.group: no group `no-such-group-xyz`"),
            "{err}"
        );
    }
    assert!(p.supervisor_pid().is_none());
}

/// A project directory readable by uid 65534, and a `sysg` command run as that uid.
struct Nobody {
    dir: tempfile::TempDir,
}

impl Nobody {
    fn new(yaml: &str) -> Nobody {
        let dir = tempfile::Builder::new()
            .prefix("sysg-nobody-")
            .tempdir()
            .unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        std::fs::write(dir.path().join("systemg.yaml"), yaml).unwrap();
        Nobody { dir }
    }

    fn sysg(&self, args: &[&str]) -> std::process::Output {
        let mut c = Command::new(sysg_bin());
        c.args(args)
            .current_dir(self.dir.path())
            .env("HOME", self.dir.path())
            .env("XDG_STATE_HOME", self.dir.path().join("state"))
            .env("NO_COLOR", "1")
            // std clears the supplementary groups when root sets a uid.
            .uid(65534)
            .gid(65534);
        run_bounded(c, Duration::from_secs(60))
    }
}

const PRIVILEGED: &str = r#"version: "1"
services:
  web:
    command: "exec sleep 1000"
    user: root
    supplementary_groups: [root]
    limits:
      nofile: unlimited
      nice: -5
      cgroup:
        memory_max: 512M
    capabilities: [CAP_NET_BIND_SERVICE]
    isolation:
      network: true
      pid: true
      mount: true
"#;

#[test]
fn a_supervisor_without_root_refuses_privileged_fields() {
    if !is_root() {
        println!("skipped: needs root to become uid 65534");
        return;
    }
    let n = Nobody::new(PRIVILEGED);
    for args in [
        &["validate"][..],
        &["start", "--daemonize"][..],
        &["start"][..],
    ] {
        let out = n.sysg(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        let err = stderr(&out);
        for (pos, field) in [
            ("5:5", "user"),
            ("6:5", "supplementary_groups"),
            ("8:7", "limits.nofile"),
            ("9:7", "limits.nice"),
            ("11:9", "limits.cgroup.memory_max"),
            ("12:5", "capabilities"),
            ("14:7", "isolation.network"),
            ("15:7", "isolation.pid"),
            ("16:7", "isolation.mount"),
        ] {
            let want = format!("systemg.yaml:{pos}: error: services.web.{field}: ");
            assert!(err.contains(&want), "{args:?}: missing `{want}` in:\n{err}");
        }
        assert!(err.contains("uid 65534 (nobody)"), "{err}");
        assert!(err.contains("sudo sysg --sys"), "{err}");
        assert!(!err.contains("os error"), "{err}");
    }
    // Refused before anything was created.
    assert!(!n.dir.path().join("state").exists());

    // What an unprivileged user may do passes: lowering limits, raising niceness, itself.
    let ok = Nobody::new(
        "version: \"1\"\nservices:\n  w:\n    command: x\n    user: nobody\n    limits:\n      nofile: 64\n      nice: 3\n      cpu_affinity: [0]\n",
    );
    let out = ok.sysg(&["validate"]);
    assert_ok(&out, "validate as nobody");
}

#[test]
fn env_file_values_are_never_shown() {
    let p = Project::new(
        r#"
version: "1"
services:
  web:
    command: "exec sleep 1000"
    env:
      file: secrets.env
      vars:
        MODE: visible-mode
"#,
    );
    p.write("secrets.env", "API_TOKEN=hunter2-secret-value\n");
    let out = p.sysg(&["--log-level", "trace", "start", "--daemonize"]);
    assert_ok(&out, "start");
    let mut shown = String::new();
    for args in [
        &["status"][..],
        &["status", "--json"][..],
        &["inspect", "web"][..],
        &["inspect", "web", "--json"][..],
        &["logs"][..],
        &["logs", "--kind", "supervisor"][..],
        &["validate", "--json"][..],
    ] {
        let out = p.sysg(args);
        shown.push_str(&stdout(&out));
        shown.push_str(&stderr(&out));
    }
    shown.push_str(&stdout(&out));
    shown.push_str(&stderr(&out));
    shown.push_str(
        &std::fs::read_to_string(p.state_dir().join("logs/supervisor.log")).unwrap_or_default(),
    );
    shown.push_str(&std::fs::read_to_string(p.state_dir().join("state.json")).unwrap());
    // The key is shown (inspect lists env keys), the value never.
    assert!(shown.contains("API_TOKEN"), "{shown}");
    assert!(!shown.contains("hunter2"), "a secret was shown:\n{shown}");
    // The service did get it.
    let pid = p.pid("web");
    let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    assert!(String::from_utf8_lossy(&environ).contains("API_TOKEN=hunter2-secret-value"));
}
