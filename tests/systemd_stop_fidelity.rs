//! Stop fidelity on the systemd backend (real `sysg --sys --backend systemd` in a namespaced
//! systemd): a program behind a shell wrapper finishes its TERM handler on stop, and a program
//! ignoring TERM is still killed once `stop_timeout` passed (`KillMode=control-group`).

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failed test

mod systemd;

use std::time::{Duration, Instant};

use systemd::*;

const T: Duration = Duration::from_secs(20);

#[test]
fn e2e_stop_reaches_the_program_behind_a_shell_and_kills_after_stop_timeout() {
    let Some(ns) = boot_or_skip("e2e_stop_reaches_the_program_behind_a_shell") else {
        return;
    };
    let dir = tempfile::Builder::new()
        .prefix("sysg-stopfid-")
        .tempdir()
        .expect("tempdir");
    let d = dir.path().display().to_string();
    std::fs::write(
        dir.path().join("handler.sh"),
        format!(
            "trap 'sleep 0.5; echo bye >> {d}/t.log; exit 0' TERM\necho up >> {d}/t.log\n\
             while true; do sleep 0.1; done\n"
        ),
    )
    .expect("handler");
    std::fs::write(
        dir.path().join("ignore.sh"),
        format!("trap '' TERM\necho $$ > {d}/pid-i\nwhile true; do sleep 0.1; done\n"),
    )
    .expect("ignore");
    let p = SysProject::new(
        &ns,
        "sysg-stopfid-",
        "stopfid",
        &format!(
            r#"  t:
    command: "sh {d}/handler.sh & wait"
  i:
    command: "sh {d}/ignore.sh & wait"
    stop_timeout: 1500ms
"#
        ),
    );
    assert_ok(&p.sysg(&["start", "--daemonize"]), "start");
    let log = || std::fs::read_to_string(dir.path().join("t.log")).unwrap_or_default();
    wait_until("the program is up", T, || log().contains("up"));
    wait_until("the TERM-ignoring program is up", T, || {
        dir.path().join("pid-i").exists()
    });
    let inner: u32 = std::fs::read_to_string(dir.path().join("pid-i"))
        .expect("pid")
        .trim()
        .parse()
        .expect("pid number");
    let began = Instant::now();
    assert_ok(&p.sysg(&["stop"]), "stop");
    assert!(
        log().contains("bye"),
        "the handler was cut short: {:?}",
        log()
    );
    let took = began.elapsed();
    assert!(
        took >= Duration::from_millis(1500),
        "killed early: {took:?}"
    );
    assert!(!ns.alive(inner), "the TERM-ignoring program survived");
}
