//! End-to-end tests of rolling and blue-green deployments: the real `sysg` binary (process
//! backend) replacing a real HTTP service while a client keeps asking it for its version.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failed test

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use common::*;

const T: Duration = Duration::from_secs(30);

/// A port nobody listens on right now (bound and released).
fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// A tiny HTTP server answering `<VERSION> <PORT> <pid>`. It binds `PORT` with SO_REUSEPORT so
/// that a candidate can listen beside the old instance, writes `ready-<VERSION>` once it
/// listens and removes it when told to stop (unless the version starts with `bad`: an
/// unhealthy candidate never writes it), and on SIGTERM
/// steers new connections to the newest listener of the port (a one-instruction
/// SO_ATTACH_REUSEPORT_CBPF program) and keeps serving what is queued for half a second, so
/// that closing its socket resets no connection: a graceful service.
const SERVER: &str = r#"
import ctypes, os, signal, socket, struct, time
from http.server import BaseHTTPRequestHandler, HTTPServer

PORT = int(os.environ["PORT"])
VERSION = os.environ.get("VERSION", "?")

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"
    def do_GET(self):
        body = f"{VERSION} {PORT} {os.getpid()}\n".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass

class Server(HTTPServer):
    def server_bind(self):
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        super().server_bind()

READY = f"ready-{VERSION}-{PORT}"
if os.path.exists(READY):
    os.remove(READY)
srv = Server(("127.0.0.1", PORT), Handler)
srv.timeout = 0.05
if not VERSION.startswith("bad"):
    open(READY, "w").close()
print(f"{VERSION} listening on {PORT}", flush=True)

stopping = []
def steer_to_newest():
    ret_1 = (ctypes.c_ubyte * 8).from_buffer_copy(struct.pack("=HBBI", 0x06, 0, 0, 1))
    prog = struct.pack("@HP", 1, ctypes.addressof(ret_1))
    srv.socket.setsockopt(socket.SOL_SOCKET, 51, prog)  # SO_ATTACH_REUSEPORT_CBPF

def on_term(*_):
    if not stopping:
        stopping.append(time.monotonic())
        try:
            steer_to_newest()
        except OSError:
            pass
        if os.path.exists(READY):
            os.remove(READY)
signal.signal(signal.SIGTERM, on_term)
while not stopping or time.monotonic() - stopping[0] < 0.5:
    srv.handle_request()
srv.server_close()
"#;

/// One GET of `/` on `port`: the body, or why it failed.
fn get(port: u16) -> Result<String, String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    s.write_all(b"GET / HTTP/1.0\r\n\r\n")
        .map_err(|e| format!("write: {e}"))?;
    let mut text = String::new();
    s.read_to_string(&mut text)
        .map_err(|e| format!("read: {e}"))?;
    if !text.starts_with("HTTP/1.0 200") {
        return Err(format!("answer: {text:?}"));
    }
    text.split("\r\n\r\n")
        .nth(1)
        .map(|b| b.trim().to_string())
        .ok_or_else(|| format!("no body in {text:?}"))
}

/// A client asking the service for its version, one connection after another, until stopped.
struct Client {
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Vec<Result<String, String>>>>,
    thread: Option<JoinHandle<()>>,
}

impl Client {
    /// Ask on the port `target()` returns (it may change: blue-green).
    fn start(target: impl Fn() -> u16 + Send + 'static) -> Client {
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (s, v) = (stop.clone(), seen.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                let r = get(target());
                v.lock().expect("lock").push(r);
                // Pacing, not waiting: about a hundred requests a second.
                std::thread::sleep(Duration::from_millis(10));
            }
        });
        Client {
            stop,
            seen,
            thread: Some(thread),
        }
    }

    /// Stop and return every answer, in order.
    fn finish(mut self) -> Vec<Result<String, String>> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().expect("client thread");
        }
        std::mem::take(&mut *self.seen.lock().expect("lock"))
    }
}

/// The version part of the answers, deduplicated in order.
fn versions(answers: &[Result<String, String>]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for a in answers.iter().flatten() {
        let v = a.split(' ').next().unwrap_or_default().to_string();
        if out.last() != Some(&v) {
            out.push(v);
        }
    }
    out
}

fn failures(answers: &[Result<String, String>]) -> Vec<String> {
    answers
        .iter()
        .filter_map(|a| a.as_ref().err().cloned())
        .collect()
}

/// The config of a rolling web service on `port` at `version`.
fn rolling_config(project: &str, port: u16, version: &str, extra: &str) -> String {
    format!(
        r#"
version: "1"
project: {project}
services:
  web:
    command: "exec python3 server.py"
    env:
      vars: {{PORT: "{port}", VERSION: "{version}"}}
    health_check:
      command: "test -f ready-$VERSION-$PORT"
      interval: 100ms
      retries: 3
      start_period: 2s
    deployment:
      strategy: rolling
      grace_period: 300ms
{extra}
"#
    )
}

fn project_dir(p: &Project, project: &str) -> PathBuf {
    p.home.path().join(".local/share/systemg").join(project)
}

/// The supervisor of `project` (its pid file).
fn supervisor_pid(p: &Project, project: &str) -> Option<i32> {
    read_pid(&project_dir(p, project).join("run/supervisor.pid")).map(|p| p as i32)
}

#[test]
fn rolling_deployment_replaces_the_service_with_no_gap() {
    let port = free_port();
    let p = Project::new(&rolling_config("deploy-roll", port, "v1", ""));
    p.write("server.py", SERVER);
    p.start();
    let old = p.pid("web");
    assert!(get(port).is_ok_and(|b| b.starts_with("v1 ")));

    let client = Client::start(move || port);
    wait_until("the client got answers", T, || {
        !client.seen.lock().expect("lock").is_empty()
    });
    p.write(
        "systemg.yaml",
        &rolling_config("deploy-roll", port, "v2", ""),
    );
    let started = std::time::Instant::now();
    let out = p.sysg(&["restart", "--config", "systemg.yaml"]);
    let took = started.elapsed();
    assert_ok(&out, "restart --config (rolling)");
    // The restart answers once the old instance is gone: nothing is left of v1.
    assert!(!alive(old), "old pid {old} still runs after the deployment");
    let new = p.pid("web");
    assert_ne!(new, old);
    wait_until("the client saw v2", T, || {
        versions(&client.seen.lock().expect("lock")).last() == Some(&"v2".to_string())
    });
    let answers = client.finish();
    assert_eq!(
        failures(&answers),
        Vec::<String>::new(),
        "requests failed during the deployment"
    );
    assert_eq!(versions(&answers).first().map(String::as_str), Some("v1"));
    assert_eq!(versions(&answers).last().map(String::as_str), Some("v2"));
    assert!(get(port).is_ok_and(|b| b.ends_with(&format!(" {new}"))));
    eprintln!(
        "rolling deployment took {took:?}, {} requests, 0 failed",
        answers.len()
    );
    // Both instances logged to the service's own log file.
    let log = std::fs::read_to_string(project_dir(&p, "deploy-roll").join("logs/web.stdout.log"))
        .unwrap_or_default();
    assert!(
        log.contains("v1 listening") && log.contains("v2 listening"),
        "{log}"
    );
    // A later stop reaches the promoted instance.
    assert_ok(&p.sysg(&["stop"]), "stop");
    wait_until("the new instance stopped", T, || !alive(new));
}

#[test]
fn unhealthy_candidate_leaves_the_old_serving() {
    let port = free_port();
    let p = Project::new(&rolling_config("deploy-bad", port, "v1", ""));
    p.write("server.py", SERVER);
    p.start();
    let old = p.pid("web");
    p.write(
        "systemg.yaml",
        &rolling_config("deploy-bad", port, "bad2", ""),
    );
    let out = p.sysg(&["restart", "--config", "systemg.yaml"]);
    assert!(
        !out.status.success(),
        "a failed deployment must fail the restart"
    );
    let err = stderr(&out);
    assert!(
        err.contains("deployment failed") && err.contains("did not become healthy"),
        "{err}"
    );
    assert_eq!(p.pid("web"), old, "the old instance is untouched");
    assert_eq!(p.service("web")["state"], "running");
    // Only the old one answers now (the candidate was stopped before the restart returned).
    for _ in 0..20 {
        let body = get(port).expect("the old instance serves");
        assert!(body.starts_with("v1 "), "{body}");
    }
}

#[test]
fn pre_start_failure_leaves_the_old_running() {
    let port = free_port();
    let p = Project::new(&rolling_config(
        "deploy-pre",
        port,
        "v1",
        "      pre_start: \"echo building; echo 'missing dependency' >&2; exit 3\"",
    ));
    p.write("server.py", SERVER);
    p.start();
    let old = p.pid("web");
    let out = p.sysg(&["restart", "--service", "web"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("pre_start failed: exit 3: missing dependency"),
        "{err}"
    );
    assert_eq!(p.pid("web"), old);
    assert!(get(port).is_ok_and(|b| b.starts_with("v1 ")));
}

fn blue_green_config(project: &str, ports: [u16; 2], version: &str) -> String {
    format!(
        r#"
version: "1"
project: {project}
services:
  web:
    command: "exec python3 server.py"
    env:
      vars: {{VERSION: "{version}"}}
    health_check:
      command: "test -f ready-$VERSION-$PORT"
      interval: 100ms
      start_period: 2s
    deployment:
      strategy: blue_green
      grace_period: 300ms
      blue_green:
        env_var: PORT
        slots: ["{a}", "{b}"]
        switch_command: "echo {{candidate_slot}} > active.tmp && mv active.tmp active"
"#,
        a = ports[0],
        b = ports[1],
    )
}

#[test]
fn blue_green_flips_the_slot_and_survives_a_supervisor_kill() {
    let ports = [free_port(), free_port()];
    let p = Project::new(&blue_green_config("deploy-bg", ports, "v1"));
    p.write("server.py", SERVER);
    p.write("active", &format!("{}\n", ports[0]));
    p.start();
    assert!(get(ports[0]).is_ok_and(|b| b.starts_with(&format!("v1 {}", ports[0]))));
    let old = p.pid("web");

    // The client follows the "proxy": the port in `active`.
    let active_file = p.dir.join("active");
    let client = Client::start(move || {
        std::fs::read_to_string(&active_file)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0)
    });
    p.write("systemg.yaml", &blue_green_config("deploy-bg", ports, "v2"));
    let out = p.sysg(&["restart", "--config", "systemg.yaml"]);
    assert_ok(&out, "blue-green restart");
    let answers = client.finish();
    assert_eq!(failures(&answers), Vec::<String>::new());
    assert_eq!(versions(&answers).last().map(String::as_str), Some("v2"));
    assert_eq!(
        std::fs::read_to_string(p.dir.join("active"))
            .unwrap()
            .trim(),
        ports[1].to_string()
    );
    assert!(!alive(old));
    assert!(get(ports[0]).is_err(), "the old slot is free again");
    let slot_file = project_dir(&p, "deploy-bg").join("web.slot.json");
    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&slot_file).expect("slot file"))
            .expect("slot json");
    assert_eq!(saved["active"], 1);

    // kill -9 of the supervisor: a new one adopts the green instance and keeps the slot.
    let green = p.pid("web");
    let sup = supervisor_pid(&p, "deploy-bg").expect("supervisor pid");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(sup),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill -9");
    wait_until("the supervisor is gone", T, || !alive(sup as u32));
    p.start();
    assert_eq!(p.pid("web"), green, "the running instance was adopted");
    // A stop and a fresh start run on the persisted (green) slot.
    assert_ok(&p.sysg(&["stop"]), "stop");
    p.start();
    let body = get(ports[1]).expect("a fresh start serves on the persisted slot");
    assert!(body.starts_with(&format!("v2 {}", ports[1])), "{body}");
    assert!(get(ports[0]).is_err());
    // The next deployment goes back to blue.
    let out = p.sysg(&["restart", "--service", "web"]);
    assert_ok(&out, "second blue-green restart");
    assert!(get(ports[0]).is_ok_and(|b| b.starts_with(&format!("v2 {}", ports[0]))));
    assert_eq!(
        std::fs::read_to_string(p.dir.join("active"))
            .unwrap()
            .trim(),
        ports[0].to_string()
    );
}

#[test]
fn failing_switch_command_rolls_back() {
    let ports = [free_port(), free_port()];
    let yaml = blue_green_config("deploy-bgfail", ports, "v1").replace(
        "switch_command: \"echo {candidate_slot} > active.tmp && mv active.tmp active\"",
        "switch_command: \"echo 'proxy refused {candidate_slot}' >&2; exit 1\"",
    );
    let p = Project::new(&yaml);
    p.write("server.py", SERVER);
    p.start();
    let old = p.pid("web");
    let out = p.sysg(&["restart", "--service", "web"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "switch_command failed: exit 1: proxy refused {}",
            ports[1]
        )),
        "{err}"
    );
    assert_eq!(p.pid("web"), old);
    assert!(get(ports[0]).is_ok());
    wait_until("the candidate is gone", T, || get(ports[1]).is_err());
    let slot_file = project_dir(&p, "deploy-bgfail").join("web.slot.json");
    assert!(!slot_file.exists(), "no slot was persisted");
}
