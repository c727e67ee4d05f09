//! Stop fidelity on the process backend (real `sysg`, real processes): the stop signal reaches
//! every process of a service, SIGKILL comes only after `stop_timeout`, and a main process
//! exiting early (a shell wrapper dying on SIGTERM, or a main process exiting on its own)
//! neither shortens that nor skips the processes it leaves behind.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failed test

mod common;

use std::time::{Duration, Instant};

use common::*;

const T: Duration = Duration::from_secs(20);

/// A program that needs half a second to handle SIGTERM, then logs `bye-<tag>` and exits 0.
const HANDLER: &str = r#"
trap 'sleep 0.5; echo "bye-$1" >> t.log; exit 0' TERM
echo "up-$1" >> t.log
echo $$ > "pid-$1"
while true; do sleep 0.1; done
"#;

/// The shell form: the main process is a shell that dies at once on SIGTERM, its child is the
/// program with the handler (as with `cd app && ./server`, `... | tee log`).
fn shell_form(tag: &str) -> String {
    format!("sh handler.sh {tag} & wait")
}

fn log(p: &Project) -> Vec<String> {
    std::fs::read_to_string(p.dir.join("t.log"))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

fn has(p: &Project, line: &str) -> bool {
    log(p).iter().any(|l| l == line)
}

fn project(yaml: &str) -> Project {
    let p = Project::new(yaml);
    p.write("handler.sh", HANDLER);
    p
}

/// The pid the program with tag `tag` wrote.
fn program_pid(p: &Project, tag: &str) -> u32 {
    read_pid(&p.dir.join(format!("pid-{tag}"))).expect("the program wrote its pid")
}

#[test]
fn stop_lets_the_program_behind_a_shell_finish_its_handler() {
    let p = project(&format!(
        r#"
version: "1"
services:
  t:
    command: "{}"
"#,
        shell_form("a")
    ));
    p.start();
    wait_until("the program is up", T, || has(&p, "up-a"));
    let began = Instant::now();
    let out = p.sysg(&["stop"]);
    assert_ok(&out, "stop");
    assert!(has(&p, "bye-a"), "the handler was cut short: {:?}", log(&p));
    assert!(began.elapsed() >= Duration::from_millis(500));
    assert!(
        !alive(program_pid(&p, "a")),
        "the program survived the stop"
    );
}

#[test]
fn the_reproduction_from_the_issue_finishes_its_handler() {
    let p = Project::new(
        r#"
version: "1"
services:
  t:
    command: "sh -c 'trap \"sleep 0.5; echo bye >> t.log; exit 0\" TERM; echo up >> t.log; while true; do sleep 0.1; done'"
"#,
    );
    p.start();
    wait_until("the program is up", T, || has(&p, "up"));
    let out = p.sysg(&["stop"]);
    assert_ok(&out, "stop");
    assert!(has(&p, "bye"), "the handler was cut short: {:?}", log(&p));
}

#[test]
fn restart_waits_for_the_handler_before_the_new_instance() {
    let p = project(&format!(
        r#"
version: "1"
services:
  t:
    command: "{}"
"#,
        shell_form("r")
    ));
    p.start();
    wait_until("the program is up", T, || has(&p, "up-r"));
    let old = p.pid("t");
    let out = p.sysg(&["restart", "--service", "t"]);
    assert_ok(&out, "restart");
    wait_until("the new instance is up", T, || {
        log(&p).iter().filter(|l| *l == "up-r").count() == 2
    });
    assert_ne!(p.pid("t"), old);
    // In order: the old program finished its handler before the new one started.
    assert_eq!(log(&p), ["up-r", "bye-r", "up-r"]);
}

#[test]
fn rolling_retirement_lets_the_old_instance_finish_its_handler() {
    let config = |tag: &str| {
        format!(
            r#"
version: "1"
services:
  t:
    command: "{}"
    deployment:
      strategy: rolling
      grace_period: 100ms
"#,
            shell_form(tag)
        )
    };
    let p = project(&config("v1"));
    p.start();
    wait_until("v1 is up", T, || has(&p, "up-v1"));
    p.write("systemg.yaml", &config("v2"));
    let out = p.sysg(&["restart", "--config", "systemg.yaml"]);
    assert_ok(&out, "restart --config (rolling)");
    wait_until("v1 finished its handler", T, || has(&p, "bye-v1"));
    assert!(has(&p, "up-v2"), "{:?}", log(&p));
    assert_eq!(p.service("t")["state"], "running");
}

#[test]
fn a_program_ignoring_term_is_killed_after_stop_timeout() {
    let p = Project::new(
        r#"
version: "1"
services:
  t:
    command: "sh ignore.sh & wait"
    stop_timeout: 1500ms
"#,
    );
    p.write(
        "ignore.sh",
        "trap '' TERM\necho up >> t.log\necho $$ > pid-i\nwhile true; do sleep 0.1; done\n",
    );
    p.start();
    wait_until("the program is up", T, || has(&p, "up"));
    let began = Instant::now();
    let out = p.sysg(&["stop"]);
    assert_ok(&out, "stop");
    let took = began.elapsed();
    // The shell died at once; its child was killed only when stop_timeout passed.
    assert!(
        took >= Duration::from_millis(1500),
        "killed early: {took:?}"
    );
    assert!(took < Duration::from_secs(10), "not killed: {took:?}");
    assert!(
        !alive(program_pid(&p, "i")),
        "the TERM-ignoring program survived"
    );
}

#[test]
fn a_child_left_by_an_exiting_main_process_gets_term_and_the_restart_waits() {
    let p = project(
        r#"
version: "1"
services:
  t:
    command: "sh handler.sh c & sleep 0.5; exit 3"
    restart_policy: always
    backoff: 100ms
"#,
    );
    p.start_allowing_failure();
    wait_until("a second run started", T, || {
        log(&p).iter().filter(|l| *l == "up-c").count() >= 2
    });
    // The child of the first run got TERM and finished its handler before the second run.
    let l = log(&p);
    assert_eq!(&l[..3], ["up-c", "bye-c", "up-c"], "{l:?}");
}

#[test]
fn leftovers_ignoring_term_show_stopping_and_are_killed_after_stop_timeout_before_the_restart() {
    let p = Project::new(
        r#"
version: "1"
services:
  t:
    command: "sh ignore.sh & sleep 0.5; exit 3"
    restart_policy: always
    backoff: 100ms
    stop_timeout: 2s
"#,
    );
    p.write(
        "ignore.sh",
        "trap '' TERM\necho up >> t.log\necho $$ > pid-i\nwhile true; do sleep 0.1; done\n",
    );
    p.start_allowing_failure();
    wait_until("the first run is up", T, || has(&p, "up"));
    let first = program_pid(&p, "i");
    // The main process exited; its child ignores TERM: the service is stopping meanwhile.
    wait_until("the service shows stopping", T, || {
        p.service("t")["state"] == "stopping"
    });
    let seen_stopping = Instant::now();
    assert!(alive(first));
    wait_until("a second run started", T, || {
        log(&p).iter().filter(|l| *l == "up").count() >= 2
    });
    // The restart came only after the leftover was killed at stop_timeout.
    assert!(!alive(first), "the leftover survived");
    assert!(
        seen_stopping.elapsed() >= Duration::from_millis(500),
        "restarted before stop_timeout: {:?}",
        seen_stopping.elapsed()
    );
}

#[test]
fn a_spawned_child_behind_a_shell_finishes_its_handler_on_stop() {
    let p = project("version: \"1\"\nservices: {}\n");
    let d = p.dir.display().to_string();
    p.write(
        "systemg.yaml",
        &format!(
            r#"
version: "1"
services:
  web:
    command: |
      $SYSG spawn --name c1 -- sh -c 'sh {d}/handler.sh s & wait' > c1.pid
      exec sleep 1000
    spawn:
      mode: dynamic
"#
        ),
    );
    let mut c = p.cmd(&["start", "--daemonize"]);
    c.env("SYSG", sysg_bin());
    assert_ok(
        &run_bounded(c, Duration::from_secs(60)),
        "start --daemonize",
    );
    wait_until("the spawned program is up", T, || has(&p, "up-s"));
    let out = p.sysg(&["stop"]);
    assert_ok(&out, "stop");
    assert!(has(&p, "bye-s"), "the handler was cut short: {:?}", log(&p));
    assert!(!alive(program_pid(&p, "s")));
}

#[test]
fn a_cron_run_ends_when_what_it_left_behind_finished_its_handler() {
    let p = project(
        r#"
version: "1"
services:
  job:
    command: "sh handler.sh j & sleep 0.3"
    cron: {expression: "* * * * * *"}
"#,
    );
    p.start();
    wait_until("a run finished", T, || {
        p.service("job")["cron"]["history"]
            .as_array()
            .is_some_and(|h| h.iter().any(|r| r["result"] != "running"))
    });
    // The run's main process exited at 0.3 s; its child got the stop signal and the run ended
    // only after the handler, never overlapping the next run.
    let l = log(&p);
    assert_eq!(&l[..2], ["up-j", "bye-j"], "{l:?}");
    let out = p.sysg(&["stop"]);
    assert_ok(&out, "stop");
    let l = log(&p);
    for pair in l.chunks(2) {
        assert_eq!(pair.first().map(String::as_str), Some("up-j"), "{l:?}");
        if pair.len() == 2 {
            assert_eq!(pair[1], "bye-j", "{l:?}");
        }
    }
}
