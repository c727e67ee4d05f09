//! Socket activation (`sockets:`) on the systemd backend, against a real systemd 252 in a
//! namespace: the socket unit shows in `systemctl list-sockets`, the service gets its socket
//! as sd_listen_fds describes, and a client connecting every 10 ms sees no refused or reset
//! connection across `sysg restart --service`, again and again.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failed test

mod systemd;

use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use systemd::*;

const T: Duration = Duration::from_secs(30);
const SERVER: &str = include_str!("listen_server.py");

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// The words of an answer, or why the connection failed.
type Answer = Result<Vec<String>, String>;

/// One connection: the answer's words, or why it failed. The namespace shares the host's
/// network, so PID 1 of the namespace listens where the test connects.
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

#[test]
fn e2e_socket_unit_keeps_connections_across_restarts() {
    let Some(ns) = boot_or_skip("e2e_socket_unit_keeps_connections_across_restarts") else {
        return;
    };
    let port = free_port();
    let p = SysProject::new(
        &ns,
        "sysg-sockets-",
        "socks",
        &format!(
            r#"  api:
    command: "exec python3 server.py"
    working_dir: "."
    env:
      vars: {{VERSION: "v1"}}
    sockets:
      - listen: "127.0.0.1:{port}"
        name: http
"#
        ),
    );
    std::fs::write(p.dir().join("server.py"), SERVER).expect("write server");
    assert_ok(&p.sysg(&["start", "--daemonize"]), "start --daemonize");

    let socket_unit = "sysg-socks-api.socket";
    let sockets = ns.output(&["systemctl", "list-sockets", "--no-pager", "--no-legend"]);
    assert!(
        sockets
            .lines()
            .any(|l| l.contains(socket_unit) && l.contains(&format!("127.0.0.1:{port}"))),
        "list-sockets: {sockets}"
    );
    assert_eq!(ns.show(socket_unit, "FileDescriptorName"), "http");

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
        "LISTEN_PID must be the service's own pid"
    );

    let stop = Arc::new(AtomicBool::new(false));
    let seen: Arc<Mutex<Vec<Answer>>> = Arc::new(Mutex::new(Vec::new()));
    let client = {
        let (stop, seen) = (stop.clone(), seen.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let r = ask(port);
                seen.lock().expect("lock").push(r);
                // Pacing, not waiting: a connection every 10 ms.
                std::thread::sleep(Duration::from_millis(10));
            }
        })
    };
    let count = || seen.lock().expect("lock").len();
    wait_until("the client got answers", T, || count() > 5);
    // More restarts than systemd's default start rate limit (5 in 10 s) allows one unit.
    for _ in 0..7 {
        let before = p.pid("api");
        assert_ok(
            &p.sysg(&["restart", "--service", "api"]),
            "restart --service api",
        );
        wait_until("a new instance answers", T, || {
            ask(port).is_ok_and(|a| a[1] != before.to_string())
        });
    }
    let n = count();
    wait_until("the client went on", T, || count() > n + 5);
    stop.store(true, Ordering::Relaxed);
    client.join().expect("client");
    let answers = std::mem::take(&mut *seen.lock().expect("lock"));
    let failed: Vec<&String> = answers.iter().filter_map(|a| a.as_ref().err()).collect();
    assert!(
        failed.is_empty(),
        "{} of {} connections failed across the restarts: {:?}",
        failed.len(),
        answers.len(),
        failed.iter().take(5).collect::<Vec<_>>()
    );
    let mut pids: Vec<&str> = answers.iter().flatten().map(|a| a[1].as_str()).collect();
    pids.dedup();
    assert!(pids.len() >= 8, "answers from every instance: {pids:?}");
    eprintln!("{} connections across 7 restarts, 0 failed", answers.len());

    // A changed service makes its units again, on the same address.
    let config = std::fs::read_to_string(&p.config).expect("read config");
    std::fs::write(&p.config, config.replace("\"v1\"", "\"v2\"")).expect("write config");
    let cfg = p.config.to_string_lossy().into_owned();
    assert_ok(&p.sysg(&["restart", "--config", &cfg]), "restart --config");
    wait_until("the changed service answers", T, || {
        ask(port).is_ok_and(|a| a[0] == "v2")
    });
    let sockets = ns.output(&["systemctl", "list-sockets", "--no-pager", "--no-legend"]);
    assert!(sockets.contains(socket_unit), "list-sockets: {sockets}");

    // A rolling deployment cannot share a socket unit's sockets: refused, saying why, and the
    // running instance keeps serving.
    let config = std::fs::read_to_string(&p.config).expect("read config");
    let rolling = config.replace("\"v2\"", "\"v3\"")
        + "    health_check:\n      command: \"true\"\n    deployment:\n      strategy: rolling\n";
    std::fs::write(&p.config, rolling).expect("write config");
    let out = p.sysg(&["validate"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "validate: {}",
        text(&out.stdout)
    );
    let err = text(&out.stdout) + &text(&out.stderr);
    assert!(
        err.contains("systemg.yaml:15:7: error: services.api.deployment.strategy: a rolling or blue-green deployment cannot share `sockets:` on the systemd backend"),
        "{err}"
    );
    let out = p.sysg(&["restart", "--config", &cfg]);
    assert!(
        !out.status.success(),
        "a rolling deployment with sockets on systemd must fail"
    );
    let err = text(&out.stdout) + &text(&out.stderr);
    assert!(err.contains("rolling or blue-green"), "{err}");
    assert!(
        ask(port).is_ok_and(|a| a[0] == "v2"),
        "the running instance still serves"
    );

    // The socket goes with the project.
    assert_ok(&p.sysg(&["stop"]), "stop");
    let sockets = ns.output(&[
        "systemctl",
        "list-sockets",
        "--all",
        "--no-pager",
        "--no-legend",
    ]);
    assert!(
        !sockets.contains(socket_unit),
        "list-sockets after stop: {sockets}"
    );
    assert!(ask(port).is_err(), "nothing listens after the stop");
}
