//! The process backend on a host whose systemd answers (`sysg --sys --backend process` inside a
//! namespaced systemd): every forked unit is a transient scope `sysg-<project>-<unit>.scope` in
//! the project's slice, and a stop still leaves nothing behind (the scope's cgroup is killed as
//! a whole, processes that left the session included).

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failed test

mod systemd;

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use systemd::*;

const T: Duration = Duration::from_secs(20);

/// `sysg --sys --backend process -c CONFIG ARGS…` run inside the namespace, in `dir`.
fn sysg_process(ns: &NsSystemd, dir: &Path, args: &[&str]) -> Output {
    let bin = env!("CARGO_BIN_EXE_sysg");
    let d = dir.to_string_lossy().into_owned();
    let cfg = dir.join("systemg.yaml").to_string_lossy().into_owned();
    let mut full = vec![
        "env",
        "-C",
        d.as_str(),
        "NO_COLOR=1",
        bin,
        "--sys",
        "--backend",
        "process",
        "-c",
        cfg.as_str(),
    ];
    full.extend_from_slice(args);
    run_bounded(ns.command(&full), Duration::from_secs(60))
}

fn scopes(ns: &NsSystemd) -> String {
    ns.output(&[
        "systemctl",
        "list-units",
        "--type=scope",
        "--no-legend",
        "--plain",
        "--all",
    ])
}

#[test]
fn e2e_process_backend_puts_each_unit_in_a_scope_and_stop_leaves_nothing() {
    let Some(ns) = boot_or_skip("e2e_process_backend_puts_each_unit_in_a_scope") else {
        return;
    };
    let dir = tempfile::Builder::new()
        .prefix("sysg-scopes-")
        .tempdir()
        .expect("tempdir");
    let d = dir.path().display().to_string();
    // `b` leaves a process in a session of its own: only the cgroup still holds it.
    std::fs::write(
        dir.path().join("systemg.yaml"),
        format!(
            r#"version: "1"
project: scoped
services:
  a:
    command: "sleep 1001"
    limits:
      cgroup:
        memory_max: 64M
  b:
    command: "sh -c 'setsid sleep 1002 & echo $! > {d}/escaped; wait'"
    stop_timeout: 2s
"#
        ),
    )
    .expect("config");
    assert_ok(
        &sysg_process(&ns, dir.path(), &["start", "--daemonize"]),
        "start",
    );
    wait_until("both scopes are listed", T, || {
        let s = scopes(&ns);
        s.contains("sysg-scoped-a.scope") && s.contains("sysg-scoped-b.scope")
    });
    let st = sysg_process(&ns, dir.path(), &["status", "--json"]);
    let st: serde_json::Value = serde_json::from_slice(&st.stdout).expect("status json");
    for (svc, scope) in [("a", "sysg-scoped-a.scope"), ("b", "sysg-scoped-b.scope")] {
        let pid = find_service(&st, svc).expect("service")["pid"]
            .as_u64()
            .expect("pid");
        let cg = ns.output(&["cat", &format!("/proc/{pid}/cgroup")]);
        assert!(
            cg.ends_with(&format!("/sysg-scoped.slice/{scope}")),
            "{svc} (pid {pid}) is not in {scope}: {cg}"
        );
    }
    // The limit reached the scope (the kernel may not enforce it here: see the harness).
    assert_eq!(ns.show("sysg-scoped-a.scope", "MemoryMax"), "67108864");
    assert_eq!(ns.show("sysg-scoped-a.scope", "Delegate"), "yes");
    wait_until("b's escaped process is up", T, || {
        dir.path().join("escaped").exists()
    });
    let escaped: u32 = std::fs::read_to_string(dir.path().join("escaped"))
        .expect("pid")
        .trim()
        .parse()
        .expect("pid number");
    assert!(ns.alive(escaped));
    let cg = ns.output(&["cat", &format!("/proc/{escaped}/cgroup")]);
    assert!(cg.ends_with("/sysg-scoped-b.scope"), "escaped: {cg}");

    // A restart makes a new scope of the same name for the new process.
    let old_a = find_service(&st, "a").expect("a")["pid"]
        .as_u64()
        .expect("pid");
    for _ in 0..3 {
        assert_ok(
            &sysg_process(&ns, dir.path(), &["restart", "-s", "a"]),
            "restart a",
        );
    }
    let st = sysg_process(&ns, dir.path(), &["status", "--json"]);
    let st: serde_json::Value = serde_json::from_slice(&st.stdout).expect("status json");
    let new_a = find_service(&st, "a").expect("a")["pid"]
        .as_u64()
        .expect("pid");
    assert_ne!(old_a, new_a, "a was not restarted");
    let cg = ns.output(&["cat", &format!("/proc/{new_a}/cgroup")]);
    assert!(cg.ends_with("/sysg-scoped-a.scope"), "restarted a: {cg}");

    // A new supervisor adopts the units in their scopes after the old one was killed.
    let sup_file = ns.inner_path("/run/systemg/scoped/supervisor.pid");
    let sup = std::fs::read_to_string(&sup_file).expect("supervisor pid");
    let sup = sup.trim().to_string();
    assert!(ns.exec(&["kill", "-9", &sup]).status.success());
    wait_until("the supervisor is gone", T, || {
        !ns.alive(sup.parse().unwrap_or(0))
    });
    assert_ok(
        &sysg_process(&ns, dir.path(), &["start", "--daemonize"]),
        "start after the crash",
    );
    let st = sysg_process(&ns, dir.path(), &["status", "--json"]);
    let st: serde_json::Value = serde_json::from_slice(&st.stdout).expect("status json");
    let adopted = find_service(&st, "a").expect("a")["pid"]
        .as_u64()
        .expect("pid");
    assert_eq!(adopted, new_a, "a was not adopted: {st}");
    assert!(
        ns.alive(escaped),
        "b's tree did not survive the supervisor's crash"
    );

    assert_ok(&sysg_process(&ns, dir.path(), &["stop"]), "stop");
    wait_until("nothing of the project is left", T, || {
        !ns.alive(escaped) && ns.exec(&["pgrep", "-f", "sleep 100[12]"]).stdout.is_empty()
    });
    wait_until("the scopes are gone", T, || {
        !scopes(&ns).contains("sysg-scoped-")
    });
}

#[test]
fn e2e_run_scope_runs_the_command_in_a_transient_scope() {
    let Some(ns) = boot_or_skip("e2e_run_scope_runs_the_command_in_a_transient_scope") else {
        return;
    };
    let bin = env!("CARGO_BIN_EXE_sysg");
    let out = ns.exec(&[
        "env",
        "NO_COLOR=1",
        bin,
        "--sys",
        "run",
        "--scope",
        "--name",
        "probe",
        "--",
        "sh",
        "-c",
        "cat /proc/self/cgroup; exit 5",
    ]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(
        out.status.code(),
        Some(5),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.trim_end()
            .ends_with("/sysg-adhoc.slice/sysg-adhoc-probe.scope"),
        "not in the adhoc project's scope: {text}"
    );
    // The scope goes once the command ended.
    wait_until("the scope is gone", T, || {
        !scopes(&ns).contains("sysg-adhoc-probe.scope")
    });
}

#[test]
fn e2e_probes_and_hooks_run_in_units_of_the_project_slice_on_the_systemd_backend() {
    let Some(ns) = boot_or_skip("e2e_probes_and_hooks_run_in_units") else {
        return;
    };
    let dir = tempfile::Builder::new()
        .prefix("sysg-helpers-")
        .tempdir()
        .expect("tempdir");
    let d = dir.path().display().to_string();
    let p = SysProject::new(
        &ns,
        "sysg-helpers-",
        "helpers",
        &format!(
            r#"  web:
    command: "sleep 1000"
    health_check:
      command: "cat /proc/self/cgroup > {d}/probe.cg; sleep 3"
      interval: 200ms
      timeout: 10s
    hooks:
      on_start:
        command: "cat /proc/self/cgroup > {d}/hook.cg; exec sleep 30"
        timeout: 8s
"#
        ),
    );
    assert_ok(&p.sysg(&["start", "--daemonize"]), "start");
    let read = |f: &str| std::fs::read_to_string(dir.path().join(f)).unwrap_or_default();
    wait_until("the probe and the hook ran", T, || {
        read("probe.cg").contains("0::") && read("hook.cg").contains("0::")
    });
    // The hook's unit (a transient service) carries its timeout for systemd to end it, and
    // goes once systemd killed the hook at its timeout.
    let hook_cg = read("hook.cg");
    let hook_scope = hook_cg
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .and_then(|p| p.rsplit('/').next())
        .unwrap_or_default()
        .to_string();
    assert_eq!(ns.show(&hook_scope, "RuntimeMaxUSec"), "8s");
    // The service's `limits.cgroup` on a probe's scope is covered by the scope properties'
    // unit tests: this namespace has no memory controller, and the systemd backend refuses
    // limits it cannot enforce.
    let sup = p.supervisor_pid().expect("supervisor pid");
    let sup_cg = ns.output(&["cat", &format!("/proc/{sup}/cgroup")]);
    for (file, kind) in [("probe.cg", "probe"), ("hook.cg", "hook")] {
        let cg = read(file);
        let cg = cg
            .lines()
            .find_map(|l| l.strip_prefix("0::"))
            .unwrap_or_default()
            .to_string();
        assert!(
            cg.contains(&format!("/sysg-helpers.slice/sysg-helpers-web.{kind}."))
                && cg.ends_with(".service"),
            "the {kind} ran in {cg}, not in a unit of the project's slice"
        );
        assert!(
            !sup_cg.ends_with(&cg),
            "the {kind} ran in the supervisor's cgroup {sup_cg}"
        );
    }
    wait_until("the hook's unit is gone after its timeout", T, || {
        !ns.sysg_units().contains(&hook_scope)
    });
    assert_ok(&p.sysg(&["stop"]), "stop");
}
