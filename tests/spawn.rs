//! `sysg spawn` end to end with the real binary (process backend): services whose scripts spawn
//! tracked children through `sysg spawn`, found via the `SYSG_SOCKET` the supervisor exports.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failed test
#![cfg(target_os = "linux")]

mod common;

use std::time::Duration;

use common::*;
use serde_json::Value;

const T: Duration = Duration::from_secs(20);

/// A project named `name` with these services.
fn project(name: &str, services: &str) -> Project {
    Project::new(&format!(
        "version: \"1\"\nproject: {name}\nservices:\n{services}"
    ))
}

/// Start daemonized; services (which inherit the supervisor's environment) call the binary
/// under test as `$SYSG`.
fn start(p: &Project) {
    let mut c = p.cmd(&["start", "--daemonize"]);
    c.env("SYSG", sysg_bin());
    assert_ok(
        &run_bounded(c, Duration::from_secs(60)),
        "start --daemonize",
    );
}

fn children(p: &Project, service: &str) -> Vec<Value> {
    p.service(service)["children"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn child(p: &Project, service: &str, name: &str) -> Option<Value> {
    children(p, service).into_iter().find(|c| c["name"] == name)
}

fn file(p: &Project, name: &str) -> Option<String> {
    std::fs::read_to_string(p.dir.join(name))
        .ok()
        .filter(|s| s.ends_with('\n'))
}

/// Wait for a file the service writes (complete once it ends with a newline).
fn wait_file(p: &Project, name: &str) -> String {
    wait_until(&format!("{name} to be written"), T, || {
        file(p, name).is_some()
    });
    file(p, name).unwrap_or_default()
}

#[test]
fn children_are_spawned_tracked_limited_and_cascaded() {
    let p = project(
        "spawn-basic",
        r#"  web:
    command: |
      $SYSG spawn --name w1 --ttl 300 -- sleep 1000 > w1.pid
      $SYSG spawn --name w2 -- sh -c 'echo hello-from-child; exec sleep 1001' > w2.pid
      $SYSG spawn --name w3 -- sleep 1002 > w3.out 2> w3.err; echo $? > w3.rc
      $SYSG spawn --name w1 -- sleep 1003 2> dup.err; echo $? > dup.rc
      exec sleep 1000
    spawn:
      mode: dynamic
      limits:
        children: 2
  other:
    command: "sleep 1000"
"#,
    );
    start(&p);
    let w1: u32 = wait_file(&p, "w1.pid")
        .trim()
        .parse()
        .expect("a pid, alone");
    let w2: u32 = wait_file(&p, "w2.pid")
        .trim()
        .parse()
        .expect("a pid, alone");
    assert!(alive(w1) && alive(w2));

    // The third direct child is refused, naming the limit; nothing on stdout.
    assert_ne!(wait_file(&p, "w3.rc").trim(), "0");
    let err = file(&p, "w3.err").unwrap_or_default();
    assert!(
        err.contains("web already has 2 children (spawn.limits.children: 2)"),
        "{err}"
    );
    assert_eq!(file(&p, "w3.out"), None);
    assert_ne!(wait_file(&p, "dup.rc").trim(), "0");

    // Listed under the parent, with TTL left for w1 only.
    let c1 = child(&p, "web", "w1").expect("w1 in status");
    assert_eq!(c1["pid"], w1);
    assert_eq!(c1["parent"], "web");
    assert_eq!(c1["unit"], "web/w1");
    assert!(c1["ttl_left_secs"].as_f64().unwrap_or(0.0) > 200.0, "{c1}");
    assert!(child(&p, "web", "w2").expect("w2")["ttl_left_secs"].is_null());
    let human = stdout(&p.sysg(&["status"]));
    assert!(human.contains("└─ w1  pid"), "{human}");

    // Output is captured like a service's.
    wait_until("child output in its log", T, || {
        stdout(&p.sysg(&["logs", "--service", "web/w2"])).contains("hello-from-child")
    });

    // Stopping the parent stops its children (cascade), not the other service.
    let other = p.pid("other");
    assert_ok(&p.sysg(&["stop", "--service", "web"]), "stop web");
    wait_until("children gone", T, || !alive(w1) && !alive(w2));
    wait_until("children untracked", T, || children(&p, "web").is_empty());
    assert!(alive(other));
}

#[test]
fn ttl_expiry_stops_the_child() {
    let p = project(
        "spawn-ttl",
        r#"  web:
    command: |
      $SYSG spawn --name short --ttl 1 -- sleep 1000 > short.pid
      exec sleep 1000
    spawn:
      mode: dynamic
"#,
    );
    start(&p);
    let pid: u32 = wait_file(&p, "short.pid").trim().parse().expect("pid");
    wait_until("the TTL to stop the child", T, || !alive(pid));
    wait_until("the child to leave status", T, || {
        child(&p, "web", "short").is_none()
    });
    assert!(alive(p.pid("web")), "the parent is untouched");
}

#[test]
fn stop_by_key_stops_one_child_only() {
    let p = project(
        "spawn-stop",
        r#"  web:
    command: |
      $SYSG spawn --name a -- sleep 1000 > a.pid
      $SYSG spawn --name b -- sleep 1001 > b.pid
      exec sleep 1000
    spawn:
      mode: dynamic
"#,
    );
    start(&p);
    let a: u32 = wait_file(&p, "a.pid").trim().parse().expect("pid");
    let b: u32 = wait_file(&p, "b.pid").trim().parse().expect("pid");
    let out = p.sysg(&["stop", "--service", "web/a"]);
    assert_ok(&out, "stop --service web/a");
    // Answered once the child is gone; its sibling and its parent run on.
    assert!(!alive(a), "web/a survived its stop");
    assert!(child(&p, "web", "a").is_none());
    assert!(alive(b) && child(&p, "web", "b").is_some());
    assert!(alive(p.pid("web")), "the parent is untouched");
    // A child that is not there is an error naming those that are.
    let out = p.sysg(&["stop", "--service", "web/nope"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("no spawned child `web/nope` is running; children of web: web/b"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn children_are_adopted_after_a_supervisor_crash() {
    let p = project(
        "spawn-adopt",
        r#"  web:
    command: |
      $SYSG spawn --name a -- sh -c 'while :; do echo tick; sleep 0.2; done' > a.pid
      exec sleep 1000
    spawn:
      mode: dynamic
"#,
    );
    start(&p);
    let a: u32 = wait_file(&p, "a.pid").trim().parse().expect("pid");
    let web = p.pid("web");
    let sup = p.supervisor_pid_of("spawn-adopt").expect("supervisor pid");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(sup),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill -9 the supervisor");
    wait_until("the supervisor to be gone", T, || !alive(sup as u32));
    assert!(alive(a) && alive(web), "services outlive the supervisor");
    // A new supervisor adopts the service and its child: same processes, still tracked.
    start(&p);
    assert_eq!(p.pid("web"), web);
    let c = child(&p, "web", "a").expect("the child is tracked again");
    assert_eq!(c["pid"], a);
    // Its output still reaches its log: new lines keep arriving after the adoption.
    let ticks = || {
        let out = p.sysg(&["logs", "--service", "web/a", "--lines", "100000"]);
        stdout(&out).matches("tick").count()
    };
    let before = ticks();
    wait_until("the child's output after the adoption", T, || {
        ticks() > before + 3
    });
    // And it can be stopped, alone, then with everything.
    assert_ok(&p.sysg(&["stop", "--service", "web/a"]), "stop web/a");
    assert!(!alive(a));
    assert_ok(&p.sysg(&["stop"]), "stop");
    assert!(!alive(web));
}

#[test]
fn depth_and_descendants_limits() {
    let p = project(
        "spawn-depth",
        r#"  web:
    command: |
      $SYSG spawn --name a -- sh -c '
        $SYSG spawn --name b -- sh -c "
          \$SYSG spawn --name c -- sleep 1000 2> c.err; echo \$? > c.rc; exec sleep 1000
        " > b.pid
        exec sleep 1000' > a.pid
      while [ ! -f c.rc ]; do sleep 0.05; done
      $SYSG spawn --name d -- sleep 1000 > d.pid
      $SYSG spawn --name e -- sleep 1000 2> e.err; echo $? > e.rc
      exec sleep 1000
    spawn:
      mode: dynamic
      limits:
        depth: 2
        descendants: 3
"#,
    );
    start(&p);
    assert_ne!(wait_file(&p, "c.rc").trim(), "0");
    let err = file(&p, "c.err").unwrap_or_default();
    assert!(
        err.contains("a child of b would be at depth 3 (spawn.limits.depth: 2)"),
        "{err}"
    );
    assert_ne!(wait_file(&p, "e.rc").trim(), "0");
    let err = file(&p, "e.err").unwrap_or_default();
    assert!(
        err.contains("web already has 3 descendants (spawn.limits.descendants: 3)"),
        "{err}"
    );
    let b = child(&p, "web", "b").expect("b tracked");
    assert_eq!(
        (b["parent"].as_str(), b["depth"].as_u64()),
        (Some("a"), Some(2))
    );
    let b_pid: u32 = wait_file(&p, "b.pid").trim().parse().expect("pid");
    // Stopping everything leaves nothing behind.
    assert_ok(&p.sysg(&["stop"]), "stop");
    assert!(!alive(b_pid), "a grandchild escaped sysg stop");
}

#[test]
fn rate_limit_refuses_with_the_limit() {
    let p = project(
        "spawn-rate",
        r#"  web:
    command: |
      $SYSG spawn --name r1 -- sleep 1000 > r1.pid
      $SYSG spawn --name r2 -- sleep 1000 2> r2.err; echo $? > r2.rc
      exec sleep 1000
    spawn:
      mode: dynamic
      limits:
        rate: 1
"#,
    );
    start(&p);
    assert_ne!(wait_file(&p, "r2.rc").trim(), "0");
    let err = file(&p, "r2.err").unwrap_or_default();
    assert!(
        err.contains("web spawned 1 children in the last second (spawn.limits.rate: 1)"),
        "{err}"
    );
}

#[test]
fn unrelated_processes_and_static_services_are_refused() {
    let p = project(
        "spawn-refuse",
        r#"  web:
    command: "sleep 1000"
    spawn:
      mode: dynamic
  api:
    command: |
      $SYSG spawn --name x -- sleep 1000 2> x.err; echo $? > x.rc
      exec sleep 1000
"#,
    );
    start(&p);
    // The test process is not part of any service.
    let out = p.sysg(&["spawn", "--name", "intruder", "--", "sleep", "1000"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("is not part of a service managed by this supervisor"),
        "{}",
        stderr(&out)
    );
    assert!(stdout(&out).is_empty());
    // A service without `spawn.mode: dynamic`.
    assert_ne!(wait_file(&p, "x.rc").trim(), "0");
    let err = file(&p, "x.err").unwrap_or_default();
    assert!(err.contains("does not allow dynamic spawning"), "{err}");
    assert!(children(&p, "web").is_empty() && children(&p, "api").is_empty());
}

#[test]
fn a_fork_bomb_is_capped_and_stopped() {
    let p = project(
        "spawn-bomb",
        r#"  bomb:
    command: "exec sh bomb.sh"
    spawn:
      mode: dynamic
      limits:
        descendants: 6
  other:
    command: "sleep 1000"
"#,
    );
    // Every generation spawns as fast as it can, a bounded number of times, then idles.
    p.write(
        "bomb.sh",
        r#"i=0
while [ $i -lt 12 ]; do
  i=$((i+1))
  $SYSG spawn --name "g$$-$i" -- sh bomb.sh >/dev/null 2>> refusals.log
done
echo done >> finished.log
exec sleep 1000
"#,
    );
    start(&p);
    let other = p.pid("other");
    wait_until(
        "the bomb to exhaust its budget",
        Duration::from_secs(60),
        || {
            std::fs::read_to_string(p.dir.join("finished.log"))
                .map(|s| s.lines().count() >= 7)
                .unwrap_or(false)
        },
    );
    assert_eq!(children(&p, "bomb").len(), 6);
    let refusals = std::fs::read_to_string(p.dir.join("refusals.log")).unwrap_or_default();
    assert!(
        refusals.contains("spawn.limits.descendants: 6"),
        "{refusals}"
    );
    assert!(alive(other), "a neighbour was disturbed");
    let pids: Vec<u32> = children(&p, "bomb")
        .iter()
        .filter_map(|c| c["pid"].as_u64().map(|v| v as u32))
        .collect();
    assert_ok(&p.sysg(&["stop"]), "stop");
    assert!(pids.iter().all(|p| !alive(*p)), "a child escaped sysg stop");
}
