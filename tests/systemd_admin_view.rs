//! What an admin sees of systemg on a real systemd 252 (a namespaced one, tests/systemd/mod.rs)
//! when things are left behind: `status` with neither a supervisor nor a state file, the
//! slices after the last project stopped, the supervisor's own lines in the journal (issue 21,
//! item 9). Every wait is a polled condition with a deadline.

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
