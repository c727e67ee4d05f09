//! End-to-end tests of health checks, health-gated dependencies, hooks and webhooks: the real
//! `sysg` binary (process backend) against real HTTP servers on free local ports.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failed test

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::*;
use hmac::{KeyInit, Mac};
use serde_json::Value;

const T: Duration = Duration::from_secs(20);

/// A port nobody listens on right now (bound and released).
fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// A python HTTP server on `port` serving the project directory.
fn http_server(port: u16) -> String {
    format!("exec python3 -m http.server {port} --bind 127.0.0.1")
}

/// Write `fetch.py` (exits 0 when the url in argv answers 2xx) into the project.
fn write_fetch(p: &Project) {
    p.write(
        "fetch.py",
        "import sys, urllib.request\nurllib.request.urlopen(sys.argv[1], timeout=2)\n",
    );
}

/// The supervisor log of `project` (tests name their projects: the process backend's cgroups
/// are per project name, and parallel tests must not share them).
fn supervisor_log(p: &Project, project: &str) -> String {
    let path = p
        .home
        .path()
        .join(".local/share/systemg")
        .join(project)
        .join("logs/supervisor.log");
    std::fs::read_to_string(path).unwrap_or_default()
}

#[test]
fn start_waits_for_health_and_gates_the_dependent() {
    let port = free_port();
    let p = Project::new(&format!(
        r#"
version: "1"
project: health-gate
services:
  db:
    command: "sleep 0.7; {server}"
    health_check:
      url: "http://127.0.0.1:{port}/"
      interval: 100ms
      timeout: 1s
      retries: 50
  web:
    # Fails (and stays failed) if it runs before db answers.
    command: "python3 fetch.py http://127.0.0.1:{port}/ && exec sleep 1000"
    restart_policy: never
    depends_on: [db]
"#,
        server = http_server(port),
    ));
    write_fetch(&p);
    let t0 = Instant::now();
    let out = p.sysg(&["start", "--daemonize"]);
    let took = t0.elapsed();
    assert_ok(&out, "start");
    assert!(
        took >= Duration::from_millis(700),
        "returned before db was up: {took:?}"
    );
    let db = p.service("db");
    assert_eq!(db["health"], "healthy", "{db}");
    assert_eq!(db["state"], "running", "{db}");
    let web = p.service("web");
    assert_eq!(web["state"], "running", "{web}");
    assert!(web["health"].is_null(), "{web}");
    // The table shows it too.
    let table = stdout(&p.sysg(&["status"]));
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("db") && l.contains("healthy")),
        "{table}"
    );
}

#[test]
fn start_returns_once_the_service_answers_not_an_interval_later() {
    // The server answers ~0.3 s after its start; the interval is 5 s. The first probe is
    // refused, the fast retries (100 ms, doubling) find it up well before the next interval.
    let port = free_port();
    let p = Project::new(&format!(
        r#"
version: "1"
project: health-warmup
services:
  web:
    command: "sleep 0.3; {server}"
    health_check:
      url: "http://127.0.0.1:{port}/"
      interval: 5s
      timeout: 1s
      retries: 3
  worker:
    command: "exec sleep 1000"
    depends_on: [web]
"#,
        server = http_server(port),
    ));
    let t0 = Instant::now();
    let out = run_bounded(p.cmd(&["start", "--daemonize"]), T);
    let took = t0.elapsed();
    assert_ok(&out, "start");
    assert!(
        took < Duration::from_secs(4),
        "start -d waited for the 5 s interval: {took:?}"
    );
    let web = p.service("web");
    assert_eq!(web["health"], "healthy", "{web}");
    assert_eq!(p.service("worker")["state"], "running");
}

#[test]
fn a_probe_that_never_passes_fails_start_and_keeps_dependents_down() {
    let port = free_port();
    let p = Project::new(&format!(
        r#"
version: "1"
project: health-never
services:
  db:
    command: "exec sleep 1000"
    restart_policy: never
    health_check:
      tcp: "127.0.0.1:{port}"
      interval: 150ms
      timeout: 1s
      retries: 10
  web:
    command: "touch web-ran; exec sleep 1000"
    depends_on:
      - service: db
        condition: healthy
"#
    ));
    let (tx, rx) = mpsc::channel();
    std::thread::scope(|s| {
        s.spawn(|| {
            let _ = tx.send(p.sysg(&["start", "--daemonize"]));
        });
        // While db's probes fail, web says what it waits for.
        wait_until("web explains the wait", T, || {
            p.service("web")["reason"].as_str().is_some_and(|r| {
                r.starts_with("waiting for db to become healthy (")
                    && r.contains("probes failed: connection refused")
            })
        });
        let db = p.service("db");
        assert_eq!(db["health"], "starting", "{db}");
        assert!(
            db["reason"]
                .as_str()
                .unwrap_or("")
                .contains("connection refused"),
            "{db}"
        );
    });
    let out = rx.recv_timeout(T).expect("start returned");
    assert!(!out.status.success(), "start must fail");
    let err = stderr(&out);
    // 10 counted failures, plus the fast retries before the first slot (not counted).
    let failed: u32 = err
        .split("db is failed: unhealthy (")
        .nth(1)
        .and_then(|r| r.split(" probes failed: connection refused)").next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{err}"));
    assert!((10..20).contains(&failed), "{err}");
    assert!(err.contains("web is blocked"), "{err}");
    let db = p.service("db");
    assert_eq!(db["state"], "failed", "{db}");
    assert_eq!(db["health"], "unhealthy", "{db}");
    let web = p.service("web");
    assert_eq!(web["state"], "blocked", "{web}");
    assert!(web["reason"].as_str().unwrap_or("").contains("db"), "{web}");
    assert!(!p.dir.join("web-ran").exists(), "web must never have run");
}

#[test]
fn a_service_that_turns_unhealthy_is_restarted_and_hooks_run() {
    let port = free_port();
    let p = Project::new(&format!(
        r#"
version: "1"
project: health-restart
services:
  api:
    command: "touch ok; {server}"
    backoff: 100ms
    env:
      vars:
        HOOK_VAR: from-env
    health_check:
      url: "http://127.0.0.1:{port}/ok"
      interval: 150ms
      timeout: 1s
      retries: 2
      # The first probe runs at once; python needs a moment to listen.
      start_period: 5s
    hooks:
      on_start: 'echo "$SYSG_EVENT $SYSG_SERVICE $SYSG_PID $HOOK_VAR" >> hook-start'
      on_ready: 'echo "$SYSG_EVENT $SYSG_PID" >> hook-ready'
      on_failure:
        command: 'echo "$SYSG_EVENT $SYSG_MESSAGE" >> hook-failure; exit 3'
        timeout: 5s
"#,
        server = http_server(port),
    ));
    p.start();
    let first = p.pid("api");
    assert_eq!(p.service("api")["health"], "healthy");
    let start_hook = p.dir.join("hook-start");
    wait_until("on_start ran", T, || {
        std::fs::read_to_string(&start_hook).is_ok_and(|s| !s.is_empty())
    });
    assert_eq!(
        std::fs::read_to_string(&start_hook)
            .unwrap_or_default()
            .trim(),
        format!("start api {first} from-env")
    );
    wait_until("on_ready ran", T, || {
        std::fs::read_to_string(p.dir.join("hook-ready"))
            .is_ok_and(|s| s.trim() == format!("ready {first}"))
    });

    // The probe starts failing (404): after two failures the process is replaced.
    std::fs::remove_file(p.dir.join("ok")).expect("rm ok");
    wait_until("api is restarted and healthy again", T, || {
        let s = p.service("api");
        s["pid"].as_u64().is_some_and(|n| n as u32 != first) && s["health"] == "healthy"
    });
    assert!(!alive(first), "the unhealthy process must be gone");
    assert_eq!(p.service("api")["restarts"], 1);
    // inspect keeps the probe history: the failures that led to the restart, then passes.
    let out = p.sysg(&["inspect", "api", "--json"]);
    assert_ok(&out, "inspect --json");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("inspect JSON");
    let hist = v["health_history"].as_array().cloned().unwrap_or_default();
    assert!(
        hist.iter()
            .any(|h| h["ok"] == false && h["detail"] == "HTTP 404"),
        "{hist:?}"
    );
    assert_eq!(
        hist.last().map(|h| h["ok"].clone()),
        Some(true.into()),
        "{hist:?}"
    );
    let failure = std::fs::read_to_string(p.dir.join("hook-failure")).unwrap_or_default();
    assert_eq!(
        failure.trim(),
        "unhealthy unhealthy (2 probes failed: HTTP 404)",
        "on_failure runs for an unhealthy verdict"
    );
    let log = supervisor_log(&p, "health-restart");
    assert!(
        log.contains("unhealthy (2 probes failed: HTTP 404)"),
        "{log}"
    );
    // A failing hook is logged and changes nothing.
    assert!(log.contains("hook failed: exit 3"), "{log}");
    assert_eq!(p.service("api")["state"], "running");
}

/// One request received by the webhook listener.
struct Received {
    head: String,
    body: Vec<u8>,
}

/// Read one request (head lower-cased) and answer it with 200.
fn answer<S: Read + Write>(s: S) -> Received {
    let mut r = BufReader::new(s);
    let mut head = String::new();
    let mut len = 0usize;
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
        let lower = line.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("content-length:") {
            len = v.trim().parse().unwrap_or(0);
        }
        head.push_str(&lower);
    }
    let mut body = vec![0u8; len];
    let _ = r.read_exact(&mut body);
    let mut s = r.into_inner();
    let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    let _ = s.flush();
    Received { head, body }
}

/// A listener answering 200 to every POST and passing each request on.
fn webhook_receiver() -> (u16, mpsc::Receiver<Received>) {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(s) = s else { return };
            if tx.send(answer(s)).is_err() {
                return;
            }
        }
    });
    (port, rx)
}

/// An https listener for `localhost` with a throw-away self-signed certificate, answering 200
/// to every request and passing each one on; returns its port, the requests and the
/// certificate (PEM) a client must trust.
fn https_receiver() -> (u16, mpsc::Receiver<Received>, String) {
    use std::sync::Arc;
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".into()]).expect("cert");
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(ck.signing_key.serialize_der().into());
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("protocols")
    .with_no_client_auth()
    .with_single_cert(vec![ck.cert.der().clone()], key)
    .expect("server config");
    let config = Arc::new(config);
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(s) = s else { return };
            let Ok(conn) = rustls::ServerConnection::new(config.clone()) else {
                return;
            };
            let received = answer(rustls::StreamOwned::new(conn, s));
            // A client that refused the certificate sent nothing.
            if !received.head.is_empty() && tx.send(received).is_err() {
                return;
            }
        }
    });
    (port, rx, ck.cert.pem())
}

/// A listener that accepts connections and never answers.
fn hanging_receiver() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in l.incoming().flatten() {
            held.push(s);
        }
    });
    port
}

fn hmac_hex(secret: &str, body: &[u8]) -> String {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("key");
    mac.update(body);
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The next webhook body whose `event` is `event`.
fn next_event(rx: &mpsc::Receiver<Received>, event: &str) -> (Received, Value) {
    let deadline = Instant::now() + T;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let r = rx
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("no `{event}` webhook within {T:?}"));
        let v: Value = serde_json::from_slice(&r.body).expect("JSON body");
        if v["event"] == event {
            return (r, v);
        }
    }
}

#[test]
fn webhooks_post_signed_events_and_a_dead_endpoint_delays_nothing() {
    let (port, rx) = webhook_receiver();
    let dead = hanging_receiver();
    let p = Project::new(&format!(
        r#"
version: "1"
project: health-webhook
webhooks:
  - url: "http://127.0.0.1:{port}/hook"
    events: [start, exit]
    secret: s3cret
  - url: "http://127.0.0.1:{dead}/never"
    timeout: 5s
    retries: 3
services:
  svc:
    command: "exec sleep 1000"
"#
    ));
    let t0 = Instant::now();
    p.start();
    let pid = p.pid("svc");
    let (r, v) = next_event(&rx, "start");
    assert_eq!(v["project"], "health-webhook");
    assert_eq!(v["service"], "svc");
    assert_eq!(v["pid"], pid);
    assert!(v["exit_status"].is_null());
    assert!(v["message"].as_str().is_some_and(|m| m.contains("started")));
    let ts = v["timestamp"].as_str().unwrap_or("");
    assert!(
        chrono::DateTime::parse_from_rfc3339(ts).is_ok(),
        "timestamp {ts}"
    );
    let sig = format!(
        "x-systemg-signature: sha256={}",
        hmac_hex("s3cret", &r.body)
    );
    assert!(r.head.contains(&sig), "{}", r.head);
    assert!(
        r.head.contains("content-type: application/json"),
        "{}",
        r.head
    );

    assert_ok(&p.sysg(&["stop"]), "stop");
    // The hanging endpoint (5 s timeout, 3 retries, for two events) slowed nothing down.
    let took = t0.elapsed();
    assert!(took < Duration::from_secs(5), "start+stop took {took:?}");
    let (r, v) = next_event(&rx, "exit");
    assert_eq!(v["pid"], pid);
    assert_eq!(v["exit_status"]["kind"], "signal");
    assert_eq!(v["exit_status"]["value"], 15);
    let sig = format!(
        "x-systemg-signature: sha256={}",
        hmac_hex("s3cret", &r.body)
    );
    assert!(r.head.contains(&sig), "{}", r.head);
    // Only the selected events reach this endpoint.
    while let Ok(r) = rx.recv_timeout(Duration::from_millis(300)) {
        let v: Value = serde_json::from_slice(&r.body).expect("JSON");
        assert!(v["event"] == "start" || v["event"] == "exit", "{v}");
    }
}

#[test]
fn https_webhooks_and_probes_trust_the_ca_file_of_ssl_cert_file() {
    let (hook, hooks, hook_ca) = https_receiver();
    let (probe, probes, probe_ca) = https_receiver();
    let p = Project::new(&format!(
        r#"
version: "1"
project: health-https
webhooks:
  - url: "https://localhost:{hook}/hook"
    events: [start]
services:
  svc:
    command: "exec sleep 1000"
    health_check:
      url: "https://localhost:{probe}/health"
      interval: 200ms
      timeout: 2s
      retries: 3
"#
    ));
    let ca = p.write("ca.pem", &format!("{hook_ca}{probe_ca}"));
    let out = p
        .cmd(&["start", "--daemonize"])
        .env("SSL_CERT_FILE", &ca)
        .output()
        .expect("sysg start");
    assert_ok(&out, "start");
    // Healthy only through a probe that passed the certificate check.
    assert_eq!(p.service("svc")["health"], "healthy");
    let r = probes.recv_timeout(T).expect("a probe request");
    assert!(r.head.starts_with("get /health "), "{}", r.head);
    let (_, v) = next_event(&hooks, "start");
    assert_eq!(v["service"], "svc");
    assert_ok(&p.sysg(&["stop"]), "stop");
}

/// Pids of processes whose command line is exactly `argv`.
fn pids_running(argv: &[&str]) -> Vec<u32> {
    let want: Vec<u8> = argv
        .iter()
        .flat_map(|a| [a.as_bytes(), b"\0"].concat())
        .collect();
    std::fs::read_dir("/proc")
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
                .filter(|pid| {
                    std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c == want)
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn on_exit_hooks_run_at_stop_and_none_outlives_the_supervisor() {
    let p = Project::new(
        r#"
version: "1"
project: health-hook-exit
services:
  quick:
    command: "exec sleep 1000"
    hooks:
      on_exit: "echo \"$SYSG_EVENT $SYSG_EXIT_STATUS\" > hook-exit"
  slow:
    command: "exec sleep 1000"
    hooks:
      on_exit:
        command: "exec sleep 6071"
        timeout: 1h
"#,
    );
    p.start();
    let sup = p
        .supervisor_pid_of("health-hook-exit")
        .expect("supervisor pid") as u32;
    assert_ok(&p.sysg(&["stop"]), "stop");
    // The quick hook of the last stop ran; the slow one was killed when the supervisor left.
    wait_until("the supervisor is gone", T, || !alive(sup));
    let exit = std::fs::read_to_string(p.dir.join("hook-exit")).unwrap_or_default();
    assert_eq!(exit.trim(), "exit signal SIGTERM");
    assert_eq!(pids_running(&["sleep", "6071"]), Vec::<u32>::new());
    let log = supervisor_log(&p, "health-hook-exit");
    assert!(
        log.contains("killed 1 hook or probe command(s) still running at exit"),
        "{log}"
    );
}

/// An HTTP proxy that accepts each CONNECT and answers the request sent through the tunnel
/// with 200; passes on the CONNECT line (lower-cased) and the tunnelled request.
fn connect_proxy() -> (u16, mpsc::Receiver<(String, Received)>) {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(s) = s else { return };
            let mut r = BufReader::new(s);
            let mut connect = String::new();
            loop {
                let mut line = String::new();
                if r.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if connect.is_empty() {
                    connect = line.to_ascii_lowercase();
                }
            }
            let mut s = r.into_inner();
            let _ = s.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n");
            if tx.send((connect, answer(s))).is_err() {
                return;
            }
        }
    });
    (port, rx)
}

#[test]
fn webhooks_go_through_the_environments_proxy_except_to_this_machine() {
    let (proxy, proxied) = connect_proxy();
    let (local, direct) = webhook_receiver();
    let p = Project::new(&format!(
        r#"
version: "1"
project: health-proxy
webhooks:
  - url: "http://hooks.example.invalid/systemg"
    events: [start]
  - url: "http://127.0.0.1:{local}/hook"
    events: [start]
services:
  svc:
    command: "exec sleep 1000"
"#
    ));
    let mut c = p.cmd(&["start", "--daemonize"]);
    for v in [
        "ALL_PROXY",
        "all_proxy",
        "HTTPS_PROXY",
        "https_proxy",
        "NO_PROXY",
        "no_proxy",
    ] {
        c.env_remove(v);
    }
    c.env("HTTP_PROXY", format!("http://127.0.0.1:{proxy}"));
    assert_ok(&run_bounded(c, Duration::from_secs(60)), "start");
    // The outside endpoint (a name that resolves nowhere) was reached through the proxy...
    let (tunnel, r) = proxied
        .recv_timeout(T)
        .expect("a request through the proxy");
    assert!(
        tunnel.starts_with("connect hooks.example.invalid:80 "),
        "{tunnel}"
    );
    assert!(r.head.starts_with("post /systemg "), "{}", r.head);
    let v: Value = serde_json::from_slice(&r.body).expect("JSON body");
    assert_eq!(
        (v["event"].as_str(), v["service"].as_str()),
        (Some("start"), Some("svc"))
    );
    // ...and the local one directly.
    let (r, _) = next_event(&direct, "start");
    assert!(r.head.starts_with("post /hook "), "{}", r.head);
    assert_ok(&p.sysg(&["stop"]), "stop");
}
