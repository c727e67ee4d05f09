//! Helper commands on the systemd backend (inside a namespaced systemd): a command probe, a hook
//! and a deployment's `pre_start` run as transient services built from their service's unit
//! properties, so they have the service's capabilities and isolation (not the supervisor's),
//! live in a unit of the project's slice, send their output to the supervisor as before, are
//! killed by systemd at their timeout, and report their exit status.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failed test

mod systemd;

use std::time::Duration;

use systemd::*;

const T: Duration = Duration::from_secs(30);

/// The `Uid`, `CapEff` and `CapBnd` lines of a `/proc/<pid>/status`.
fn caps(status: &str) -> Vec<String> {
    status
        .lines()
        .filter(|l| {
            ["Uid:", "CapEff:", "CapBnd:", "NoNewPrivs:"]
                .iter()
                .any(|k| l.starts_with(k))
        })
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect()
}

/// The cgroup path in a `/proc/<pid>/cgroup` (the unified hierarchy's line).
fn cgroup(text: &str) -> String {
    text.lines()
        .find_map(|l| l.strip_prefix("0::"))
        .unwrap_or_default()
        .to_string()
}

#[test]
fn e2e_helpers_run_as_units_with_the_services_properties() {
    let Some(ns) = boot_or_skip("e2e_helpers_run_as_units_with_the_services_properties") else {
        return;
    };
    let dir = tempfile::Builder::new()
        .prefix("sysg-helper-units-")
        .tempdir()
        .expect("tempdir");
    let d = dir.path().display().to_string();
    // The helpers run as `nobody`, like the service: they write their records here.
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .expect("chmod");
    // What each helper records about itself: capabilities, cgroup, network interfaces. Each
    // file is replaced whole (written aside, then renamed): the probe runs every 200 ms, and a
    // read must never see a file it is truncating.
    let record = |tag: &str| {
        format!(
            "cat /proc/self/status > {d}/{tag}.status.$$ && mv {d}/{tag}.status.$$ {d}/{tag}.status; \
             cat /proc/self/cgroup > {d}/{tag}.cg.$$ && mv {d}/{tag}.cg.$$ {d}/{tag}.cg; \
             cat /proc/net/dev > {d}/{tag}.net.$$ && mv {d}/{tag}.net.$$ {d}/{tag}.net"
        )
    };
    let p = SysProject::new(
        &ns,
        "sysg-helper-units-",
        "hu",
        &format!(
            r#"  web:
    command: "sleep 1000"
    user: nobody
    capabilities: [CAP_NET_BIND_SERVICE]
    isolation:
      network: true
    sandbox:
      no_new_privileges: true
    health_check:
      command: "{probe}; test -f {d}/healthy"
      interval: 200ms
      timeout: 10s
    hooks:
      on_start:
        command: "{hook}; echo hook-said-hello; exit 7"
        timeout: 8s
    deployment:
      strategy: rolling
      grace_period: 200ms
      pre_start: "{pre}"
  slow:
    command: "sleep 1000"
    env:
      vars: {{SLOW_SECRET: hunter2}}
    hooks:
      on_start:
        command: "echo $SLOW_SECRET > {d}/slow.env; echo $$ > {d}/slow.pid; exec sleep 60"
        timeout: 3s
"#,
            probe = record("probe"),
            hook = record("hook"),
            pre = record("pre"),
        ),
    );
    std::fs::write(dir.path().join("healthy"), "").expect("write");
    assert_ok(&p.sysg(&["start", "--daemonize"]), "start");
    let read = |f: &str| std::fs::read_to_string(dir.path().join(f)).unwrap_or_default();
    wait_until("the probe and the hook ran", T, || {
        read("probe.net").contains("lo:") && read("hook.net").contains("lo:")
    });
    // A restart deploys (rolling): pre_start runs first.
    assert_ok(&p.sysg(&["restart", "--service", "web"]), "restart web");
    wait_until("pre_start ran", T, || read("pre.net").contains("lo:"));

    let web_pid = p.pid("web");
    let web_caps = caps(&ns.output(&["cat", &format!("/proc/{web_pid}/status")]));
    let sup = p.supervisor_pid().expect("supervisor pid");
    let sup_caps = caps(&ns.output(&["cat", &format!("/proc/{sup}/status")]));
    let sup_cg = cgroup(&ns.output(&["cat", &format!("/proc/{sup}/cgroup")]));
    // `nobody`, with CAP_NET_BIND_SERVICE (bit 10) and nothing else, under no_new_privs (the
    // sandbox).
    assert_eq!(
        web_caps,
        vec![
            "Uid: 65534 65534 65534 65534",
            "CapEff: 0000000000000400",
            "CapBnd: 0000000000000400",
            "NoNewPrivs: 1"
        ],
        "the service itself"
    );
    assert_ne!(
        web_caps, sup_caps,
        "the supervisor has the same capabilities"
    );
    for kind in ["probe", "hook", "pre"] {
        assert_eq!(caps(&read(&format!("{kind}.status"))), web_caps, "{kind}");
        let cg = cgroup(&read(&format!("{kind}.cg")));
        // pre_start runs for the deployment's candidate (`web~1`).
        let unit_kind = if kind == "pre" { "pre_start" } else { kind };
        assert!(
            cg.starts_with("/sysg.slice/sysg-hu.slice/")
                && cg.contains("/sysg-hu-web")
                && cg.contains(&format!(".{unit_kind}."))
                && cg.ends_with(".service"),
            "the {kind} ran in {cg}, not in a service of the project's slice"
        );
        assert_ne!(cg, sup_cg, "the {kind} ran in the supervisor's cgroup");
        // isolation.network: the loopback interface only.
        let net = read(&format!("{kind}.net"));
        let ifaces: Vec<&str> = net
            .lines()
            .skip(2)
            .filter_map(|l| l.split(':').next())
            .map(str::trim)
            .collect();
        assert_eq!(ifaces, vec!["lo"], "the {kind}'s network: {net}");
    }

    // The hook's output reaches the supervisor's log, and its exit status is seen.
    let log_path = p.inner_path("/var/log/systemg/hu/supervisor.log");
    let log = || std::fs::read_to_string(&log_path).unwrap_or_default();
    wait_until("the hook's output and status in the log", T, || {
        let l = log();
        l.contains("hook-said-hello") && l.contains("hook failed: exit 7")
    });

    // A helper past its timeout is killed by systemd (RuntimeMaxSec=) and reported as such.
    wait_until("the slow hook started", T, || {
        !read("slow.pid").trim().is_empty()
    });
    let slow: u32 = read("slow.pid").trim().parse().expect("slow hook's pid");
    let since = std::time::Instant::now();
    // Its environment reaches it through a private file, never as a unit property that any
    // local user can read.
    let slow_unit = cgroup(&ns.output(&["cat", &format!("/proc/{slow}/cgroup")]))
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_string();
    assert!(slow_unit.contains(".hook."), "{slow_unit}");
    assert_eq!(read("slow.env").trim(), "hunter2");
    let shown = ns.output(&["systemctl", "show", &slow_unit]);
    assert!(shown.contains("EnvironmentFiles="), "{shown}");
    assert!(
        !shown.contains("hunter2"),
        "the secret is a unit property: {shown}"
    );
    wait_until("the slow hook is reported timed out", T, || {
        log().contains("hook failed: timed out after 3s")
    });
    assert!(
        since.elapsed() < Duration::from_secs(6),
        "reported {:?} after the hook started",
        since.elapsed()
    );
    assert!(!ns.alive(slow), "the slow hook {slow} outlived its timeout");
    // systemd's doing (Result=timeout at RuntimeMaxSec=): the supervisor's own kill would
    // come only seconds later, and says so in the log.
    assert!(
        !log().contains("did not report its end in time"),
        "the supervisor had to kill the slow hook itself"
    );

    // A failing probe's exit status and last line reach the status.
    std::fs::remove_file(dir.path().join("healthy")).expect("remove");
    wait_until("the probe's failure in the status", T, || {
        p.service("web").to_string().contains("exit 1")
    });
    assert_ok(&p.sysg(&["stop"]), "stop");
    wait_until("no sysg unit is left", T, || ns.sysg_units().is_empty());
}
