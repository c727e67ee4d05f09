//! Unit names of a dashed project on the systemd backend (namespaced systemd 252): the name
//! `sysg status --json`, `sysg status --units` and `sysg inspect` show is the real unit, also
//! after a rolling deployment moved the service to its `~N` instance, and it can be used with
//! `systemctl` as docs/backends.md says (quoted, or as a glob).

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failed test

mod systemd;

use std::time::Duration;

use serde_json::Value;
use systemd::*;

const T: Duration = Duration::from_secs(20);

/// `cmd` run by `sh -c` inside the namespace, as a person would type it.
fn shell(ns: &NsSystemd, cmd: &str) -> String {
    ns.output(&["sh", "-c", cmd])
}

#[test]
fn e2e_dashed_project_shows_its_real_unit_names() {
    let Some(ns) = boot_or_skip("e2e_dashed_project_shows_its_real_unit_names") else {
        return;
    };
    let p = SysProject::new(
        &ns,
        "sysg-units-",
        "my-app",
        r#"  web:
    command: "exec sleep 1000"
    deployment: {strategy: rolling}
"#,
    );
    assert_ok(&p.sysg(&["start", "--daemonize"]), "start");
    let escaped = "sysg-my\\x2dapp-web.service";
    let svc = p.service("web");
    assert_eq!(svc["unit_name"], escaped, "{svc}");
    assert_eq!(ns.show(escaped, "ActiveState"), "active");
    assert_eq!(ns.show(escaped, "MainPID"), p.pid("web").to_string());

    // The column is ready to paste into a shell.
    let out = p.sysg(&["status", "--units"]);
    let table = text(&out.stdout);
    assert!(
        table.lines().nth(1).is_some_and(|h| h.contains("UNIT")),
        "{table}"
    );
    let quoted = format!("'{escaped}'");
    assert!(table.contains(&quoted), "{table}");
    assert_eq!(
        shell(
            &ns,
            &format!("systemctl show -p ActiveState --value {quoted}")
        ),
        "active"
    );
    // The glob of docs/backends.md finds it too; unquoted, the backslash is lost.
    let listed = shell(
        &ns,
        "systemctl list-units --plain --no-legend 'sysg-my*-web.service'",
    );
    assert!(listed.contains(escaped), "{listed}");
    assert_eq!(
        shell(
            &ns,
            &format!("systemctl show -p LoadState --value {escaped}")
        ),
        "not-found"
    );

    // inspect carries the same name, in JSON and on its backend line.
    let out = p.sysg(&["inspect", "web", "--json"]);
    assert_ok(&out, "inspect");
    let v: Value = serde_json::from_slice(&out.stdout).expect("inspect JSON");
    assert_eq!(v["unit_name"], escaped, "{v}");
    assert_eq!(v["status"]["unit_name"], escaped, "{v}");
    let out = p.sysg(&["inspect", "web"]);
    assert!(
        text(&out.stdout).contains(&format!("backend     systemd ({escaped})")),
        "{}",
        text(&out.stdout)
    );

    // After a rolling deployment the service runs in its instance unit: the name follows.
    assert_ok(&p.sysg(&["restart", "--service", "web"]), "rolling restart");
    let mut unit = String::new();
    wait_until("web runs in its deployed instance", T, || {
        unit = p.service("web")["unit_name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        unit.starts_with("sysg-my\\x2dapp-web\\x7e")
    });
    assert_eq!(ns.show(&unit, "ActiveState"), "active", "{unit}");
    assert_eq!(ns.show(&unit, "MainPID"), p.pid("web").to_string());
    assert_ne!(ns.show(escaped, "ActiveState"), "active");

    assert_ok(&p.sysg(&["stop"]), "stop");
    wait_until("no sysg unit is left", T, || p.sysg_units().is_empty());
}
