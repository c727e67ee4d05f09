//! Socket activation (`sockets:`) on the process backend, end to end: a service that takes its
//! listening socket from sd_listen_fds' variables, a client connecting every 10 ms, and not one
//! refused or reset connection across a restart or a rolling deployment.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failed test

mod common;

use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::*;

const T: Duration = Duration::from_secs(30);

/// A port nobody listens on right now (bound and released).
fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// A server that binds nothing: it takes fd 3 as sd_listen_fds(3) describes (checking
/// `LISTEN_PID` and `LISTEN_FDS`), answers each connection with
/// `<VERSION> <pid> <LISTEN_PID> <LISTEN_FDNAMES>` and, on SIGTERM, finishes the connection in
/// hand and exits: what is still queued waits in the socket for the next instance.
const SERVER: &str = include_str!("listen_server.py");

/// The words of an answer, or why the connection failed.
type Answer = Result<Vec<String>, String>;

/// One connection: the answer's words, or why it failed.
fn ask(port: u16) -> Answer {
    let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    let mut text = String::new();
    s.read_to_string(&mut text)
        .map_err(|e| format!("read: {e}"))?;
    if text.is_empty() {
        return Err("closed without an answer".into());
    }
    Ok(text.split_whitespace().map(str::to_string).collect())
}

/// Connects every 10 ms until stopped, keeping every answer in order.
struct Client {
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Vec<Answer>>>,
    thread: Option<JoinHandle<()>>,
}

impl Client {
    fn start(port: u16) -> Client {
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (s, v) = (stop.clone(), seen.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                let r = ask(port);
                v.lock().expect("lock").push(r);
                // Pacing, not waiting: a connection every 10 ms.
                std::thread::sleep(Duration::from_millis(10));
            }
        });
        Client {
            stop,
            seen,
            thread: Some(thread),
        }
    }

    fn count(&self) -> usize {
        self.seen.lock().expect("lock").len()
    }

    fn finish(mut self) -> Vec<Answer> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().expect("client thread");
        }
        std::mem::take(&mut *self.seen.lock().expect("lock"))
    }
}

/// The failed connections: how many, and the first few reasons.
fn failures(answers: &[Answer]) -> (usize, Vec<String>) {
    let all: Vec<String> = answers
        .iter()
        .filter_map(|a| a.as_ref().err().cloned())
        .collect();
    (all.len(), all.into_iter().take(5).collect())
}

/// The answering pids, deduplicated in order.
fn pids(answers: &[Answer]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for a in answers.iter().flatten() {
        if out.last() != Some(&a[1]) {
            out.push(a[1].clone());
        }
    }
    out
}

fn config(port: u16, version: &str, strategy: &str) -> String {
    format!(
        r#"
version: "1"
project: proj
services:
  api:
    command: "exec python3 server.py"
    env:
      vars: {{VERSION: "{version}"}}
    sockets:
      - listen: "127.0.0.1:{port}"
        name: http
    health_check:
      command: "test -f ready-$VERSION"
      interval: 100ms
      start_period: 5s
    deployment:
      strategy: {strategy}
      grace_period: 1s
"#
    )
}

#[test]
fn restart_refuses_no_connection_and_listen_pid_is_the_service() {
    let port = free_port();
    let p = Project::new(&config(port, "v1", "immediate"));
    p.write("server.py", SERVER);
    p.start();
    let pid = p.pid("api");
    let first = ask(port).expect("the service answers on its socket");
    assert_eq!(
        first,
        vec![
            "v1".to_string(),
            pid.to_string(),
            pid.to_string(),
            "http".to_string()
        ],
        "LISTEN_PID must be the service's own pid, LISTEN_FDNAMES its socket's name"
    );

    let client = Client::start(port);
    wait_until("the client got answers", T, || client.count() > 5);
    for _ in 0..3 {
        let before = p.pid("api");
        assert_ok(
            &p.sysg(&["restart", "--service", "api"]),
            "restart --service api",
        );
        wait_until("a new instance answers", T, || {
            ask(port).is_ok_and(|a| a[1] != before.to_string())
        });
    }
    let n = client.count();
    wait_until("the client went on", T, || client.count() > n + 5);
    let answers = client.finish();
    assert_eq!(
        failures(&answers),
        (0, Vec::<String>::new()),
        "connections failed across the restarts"
    );
    assert!(pids(&answers).len() >= 4, "{:?}", pids(&answers));
    eprintln!("{} connections across 3 restarts, 0 failed", answers.len());
}

#[test]
fn rolling_deployment_shares_the_socket_and_refuses_nothing() {
    let port = free_port();
    let p = Project::new(&config(port, "v1", "rolling"));
    p.write("server.py", SERVER);
    p.start();
    let old = p.pid("api");
    let client = Client::start(port);
    wait_until("the client got answers", T, || client.count() > 5);
    p.write("systemg.yaml", &config(port, "v2", "rolling"));
    assert_ok(
        &p.sysg(&["restart", "--config", "systemg.yaml"]),
        "restart --config (rolling)",
    );
    let new = p.pid("api");
    assert_ne!(new, old);
    assert!(!alive(old), "the old instance was retired");
    let n = client.count();
    wait_until("the client went on", T, || client.count() > n + 5);
    let answers = client.finish();
    assert_eq!(
        failures(&answers),
        (0, Vec::<String>::new()),
        "connections failed during the deployment"
    );
    // During the grace period both instances accepted on the one socket: an answer of the old
    // one came after the first answer of the new one.
    let first_new = answers
        .iter()
        .position(|a| a.as_ref().is_ok_and(|w| w[0] == "v2"))
        .expect("the new instance answered");
    let old_after = answers[first_new..]
        .iter()
        .flatten()
        .filter(|w| w[0] == "v1")
        .count();
    assert!(
        old_after > 0,
        "no answer of the old instance once the new one served: {:?}",
        pids(&answers)
    );
    eprintln!(
        "{} connections across a rolling deployment ({old_after} answered by the old instance beside the new one), 0 failed",
        answers.len()
    );
}

#[test]
fn conflicting_and_busy_addresses_are_config_errors_with_positions() {
    let port = free_port();
    let yaml = format!(
        r#"version: "1"
services:
  a:
    command: "sleep 100"
    sockets:
      - listen: "127.0.0.1:{port}"
  b:
    command: "sleep 100"
    sockets:
      - listen: "0.0.0.0:{port}"
      - listen: "udp:127.0.0.1:{port}"
        name: "bad name"
      - listen: "localhost:80"
"#
    );
    let p = Project::new(&yaml);
    let out = p.sysg(&["validate"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = stdout(&out) + &stderr(&out);
    assert!(
        err.contains(&format!(
            "systemg.yaml:10:17: error: services.b.sockets[0].listen: 0.0.0.0:{port} is also a socket of service `a`"
        )),
        "{err}"
    );
    assert!(err.contains("systemg.yaml:12:15:"), "{err}");
    assert!(err.contains("invalid socket name \"bad name\""), "{err}");
    assert!(err.contains("systemg.yaml:13:17:"), "{err}");
    assert!(err.contains("invalid address \"localhost:80\""), "{err}");

    // A port another program holds now.
    let holder = TcpListener::bind("127.0.0.1:0").expect("bind");
    let busy = holder.local_addr().expect("addr").port();
    p.write(
        "systemg.yaml",
        &format!(
            "version: \"1\"\nservices:\n  a:\n    command: \"sleep 100\"\n    sockets:\n      - listen: \"127.0.0.1:{busy}\"\n"
        ),
    );
    for args in [&["validate"][..], &["start", "--daemonize"][..]] {
        let out = p.sysg(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        let err = stdout(&out) + &stderr(&out);
        assert!(
            err.contains(&format!(
                "systemg.yaml:6:17: error: services.a.sockets[0].listen: 127.0.0.1:{busy} is in use by another program"
            )),
            "{args:?}: {err}"
        );
    }
    assert!(p.supervisor_pid().is_none(), "nothing started");
    drop(holder);
    let started = Instant::now();
    let out = p.sysg(&["validate"]);
    assert_ok(&out, "validate once the port is free");
    assert!(started.elapsed() < T);
}

/// The socket (`socket:[inode]`) at fd 3 of `pid`.
fn fd3(pid: u32) -> String {
    std::fs::read_link(format!("/proc/{pid}/fd/3"))
        .map(|l| l.to_string_lossy().into_owned())
        .unwrap_or_else(|e| panic!("fd 3 of {pid}: {e}"))
}

#[test]
fn a_new_supervisor_takes_the_socket_back_from_the_adopted_instance() {
    let port = free_port();
    let p = Project::new(&config(port, "v1", "immediate"));
    p.write("server.py", SERVER);
    p.start();
    let first = p.pid("api");
    let socket = fd3(first);
    assert!(socket.starts_with("socket:["), "{socket}");

    let client = Client::start(port);
    wait_until("the client got answers", T, || client.count() > 5);
    let sup = p.supervisor_pid().expect("supervisor pid");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(sup),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill -9");
    wait_until("the supervisor is gone", T, || !alive(sup as u32));
    p.start();
    assert_eq!(p.pid("api"), first, "the running instance was adopted");
    assert_ok(
        &p.sysg(&["restart", "--service", "api"]),
        "restart --service api",
    );
    wait_until("a new instance answers", T, || {
        ask(port).is_ok_and(|a| a[1] != first.to_string())
    });
    let second = p.pid("api");
    // The very socket the first supervisor bound, not a new one bound after the old exit.
    assert_eq!(fd3(second), socket, "the next instance got the same socket");
    let n = client.count();
    wait_until("the client went on", T, || client.count() > n + 5);
    let answers = client.finish();
    assert_eq!(
        failures(&answers),
        (0, Vec::<String>::new()),
        "connections failed across the supervisor's restart"
    );
}

#[test]
fn a_root_supervisor_binds_a_privileged_port_for_an_unprivileged_service() {
    if !nix::unistd::Uid::effective().is_root() {
        println!("skipping: not root");
        return;
    }
    // A port below 1024 nobody holds (the test machine may run a web server on 80).
    let Some(port) = (600..1000u16).find(|p| TcpListener::bind(("127.0.0.1", *p)).is_ok()) else {
        println!("skipping: no free privileged port");
        return;
    };
    let p = Project::new(&format!(
        r#"
version: "1"
services:
  api:
    exec: ["/usr/bin/python3", "server.py"]
    user: nobody
    working_dir: work
    sockets:
      - listen: "127.0.0.1:{port}"
"#
    ));
    // `nobody` reads the server and writes its ready file in a directory of its own.
    use std::os::unix::fs::PermissionsExt;
    let work = p.dir.join("work");
    std::fs::create_dir(&work).expect("mkdir");
    std::fs::write(work.join("server.py"), SERVER).expect("write");
    let nobody = nix::unistd::User::from_name("nobody")
        .ok()
        .flatten()
        .expect("user nobody");
    nix::unistd::chown(&work, Some(nobody.uid), None).expect("chown");
    for path in [p.home.path().to_path_buf(), p.dir.clone()] {
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    p.start();
    let pid = p.pid("api");
    let answer = ask(port).expect("the unprivileged service answers on port {port}");
    assert_eq!(answer[1], pid.to_string());
    assert_eq!(
        answer[3], "api",
        "LISTEN_FDNAMES defaults to the service name"
    );
    let uid = proc_status_field(&pid.to_string(), "Uid").expect("Uid");
    assert!(
        uid.split_whitespace().all(|u| u == nobody.uid.to_string()),
        "runs as nobody: {uid}"
    );
}
