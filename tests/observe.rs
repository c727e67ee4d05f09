//! Observability of the real binary: inspect with CPU/memory samples, JSON outputs against
//! their documented schemas, tables on a (fake) terminal, NO_COLOR, streaming, completions,
//! man pages and the config schema command.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failed test

mod common;

use std::io::{BufRead, BufReader, Read};
use std::os::fd::OwnedFd;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

const T: Duration = Duration::from_secs(20);

/// A documented output schema, made strict: an object may carry only the properties the
/// schema names, so an undocumented field fails here until docs/schemas/ documents it.
fn strict_validator(name: &str) -> jsonschema::Validator {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("docs/schemas/{name}.schema.json"));
    let mut schema: Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("read schema")).expect("json");
    fn close(v: &mut Value) {
        match v {
            Value::Object(m) => {
                // `config` in inspect is the configuration's own shape, documented elsewhere.
                let open_ended = m
                    .get("description")
                    .and_then(Value::as_str)
                    .is_some_and(|d| d.contains("not part of this contract"));
                if m.contains_key("properties") && !open_ended {
                    m.entry("additionalProperties")
                        .or_insert(Value::Bool(false));
                }
                m.values_mut().for_each(close);
            }
            Value::Array(a) => a.iter_mut().for_each(close),
            _ => {}
        }
    }
    close(&mut schema);
    jsonschema::validator_for(&schema).expect("schema compiles")
}

fn assert_shape(name: &str, doc: &Value) {
    let v = strict_validator(name);
    let errs: Vec<String> = v
        .iter_errors(doc)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(
        errs.is_empty(),
        "{name} output breaks its schema: {errs:#?}\n{doc:#}"
    );
}

fn json_of(out: &std::process::Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}{}", stdout(out), stderr(out)))
}

/// Start daemonized with fast sampling.
fn start_sampled(p: &Project) {
    let mut c = p.cmd(&["start", "--daemonize"]);
    c.env("SYSG_METRICS_INTERVAL", "200ms");
    let out = run_bounded(c, Duration::from_secs(60));
    assert_ok(&out, "start --daemonize");
}

fn inspect(p: &Project, unit: &str) -> Value {
    let out = p.sysg(&["inspect", unit, "--json"]);
    assert_ok(&out, "inspect --json");
    json_of(&out)
}

fn cpu_of(v: &Value) -> Option<u64> {
    v["metrics"]["samples"].as_array()?.last()?["cpu_usec"].as_u64()
}

#[test]
fn inspect_samples_move_when_a_service_burns_cpu() {
    let p = Project::new(
        r#"
version: "1"
services:
  idle:
    command: "sleep 1000"
  busy:
    # Burn CPU for a moment (in a child, as real services do), then idle.
    command: "timeout 3 sh -c 'while :; do :; done'; exec sleep 1000"
    depends_on: [idle]
    env:
      vars: {SECRET_TOKEN: do-not-show-me}
"#,
    );
    start_sampled(&p);
    let first = inspect(&p, "busy");
    assert_shape("inspect", &first);
    assert_eq!(first["name"], "busy");
    assert_eq!(first["backend"], "process");
    assert_eq!(first["status"]["state"], "running");
    assert_eq!(first["depends_on"][0]["service"], "idle");
    assert_eq!(first["metrics"]["interval_secs"], 0.2);
    let pid = first["status"]["pid"].as_u64().expect("pid");
    assert_eq!(first["pids"][0].as_u64(), Some(pid), "main pid first");
    assert!(
        first["pids"].as_array().is_some_and(|a| a.len() >= 2),
        "the busy child is counted: {first}"
    );
    let text = first.to_string();
    assert!(!text.contains("do-not-show-me"), "env value leaked: {text}");
    assert_eq!(first["config"]["env"]["keys"][0], "SECRET_TOKEN");
    let c0 = cpu_of(&first).expect("a sample is taken on the first inspect");
    let mut last = first.clone();
    wait_until("busy's CPU time grows by 200ms", T, || {
        last = inspect(&p, "busy");
        cpu_of(&last).is_some_and(|c| c >= c0 + 200_000)
    });
    let samples = last["metrics"]["samples"].as_array().expect("samples");
    assert!(samples.len() >= 2, "{last}");
    assert!(samples.iter().all(|s| s["memory_bytes"].as_u64() > Some(0)));
    assert!(
        last["metrics"]["summary"]["cpu_percent_max"].as_f64() > Some(10.0),
        "{last}"
    );
    assert!(matches!(
        last["metrics"]["source"].as_str(),
        Some("cgroup" | "procfs")
    ));
    // The idle service was never inspected: nothing was sampled for it until now.
    let idle = inspect(&p, "idle");
    assert_eq!(idle["metrics"]["samples"].as_array().map(Vec::len), Some(1));
    assert_eq!(idle["dependents"][0], "busy");

    // The human view shows the same.
    let out = p.sysg(&["inspect", "busy"]);
    assert_ok(&out, "inspect");
    let t = stdout(&out);
    for word in [
        "busy — running",
        "cpu ",
        "memory ",
        "depends on  idle",
        "SECRET_TOKEN",
    ] {
        assert!(t.contains(word), "{word:?} missing from:\n{t}");
    }
    assert!(!t.contains("do-not-show-me"));
}

#[test]
fn inspect_remembers_exits_and_refuses_unknown_units() {
    let p = Project::new(
        r#"
version: "1"
services:
  flaky:
    command: "sleep 0.3; exit 3"
    backoff: 100ms
  steady:
    command: "sleep 1000"
"#,
    );
    p.start();
    wait_until("two exits are remembered", T, || {
        inspect(&p, "flaky")["exits"]
            .as_array()
            .is_some_and(|e| e.len() >= 2)
    });
    let v = inspect(&p, "flaky");
    assert_shape("inspect", &v);
    assert_eq!(
        v["exits"][0]["status"],
        serde_json::json!({"kind": "code", "value": 3})
    );
    assert!(v["exits"][0]["ran_secs"].as_f64() > Some(0.2), "{v}");
    let out = p.sysg(&["inspect", "nope"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("unknown service"), "{}", stderr(&out));
}

#[test]
fn inspect_without_a_supervisor_shows_the_config() {
    let p = Project::new(
        r#"version: "1"
logs: {max_files: 2}
services:
  web:
    command: "sleep 1"
    stop_signal: INT
    health_check: {command: "true", interval: 2s}
    env: {vars: {API_KEY: never-shown}}
    webhooks:
      - {url: "https://hooks.example/x", secret: also-never-shown}
"#,
    );
    let out = p.sysg(&["inspect", "web", "--json"]);
    assert_ok(&out, "inspect offline");
    let v = json_of(&out);
    assert_shape("inspect", &v);
    assert_eq!(v["backend"], "none");
    assert_eq!(v["status"]["state"], "stopped");
    // The configuration in the YAML's words, units and defaults.
    let c = &v["config"];
    assert_eq!(c["command"], "sleep 1");
    assert_eq!(c["health_check"]["command"], "true");
    assert_eq!(c["health_check"]["interval"], "2s");
    assert_eq!(c["health_check"]["start_interval"], "2s");
    assert_eq!(c["stop_signal"], "SIGINT");
    assert_eq!(c["stop_timeout"], "10s");
    assert_eq!(c["logs"]["max_size"], "10M");
    assert_eq!(c["logs"]["max_files"], 2);
    let defaults: Vec<&str> = v["config_defaults"]
        .as_array()
        .expect("config_defaults")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for d in [
        "stop_timeout",
        "logs.max_size",
        "health_check.start_interval",
    ] {
        assert!(defaults.contains(&d), "{d} in {defaults:?}");
    }
    for written in ["stop_signal", "health_check.interval", "logs.max_files"] {
        assert!(!defaults.contains(&written), "{written} in {defaults:?}");
    }
    let out = p.sysg(&["inspect", "web"]);
    assert_ok(&out, "inspect offline, text");
    let text = String::from_utf8_lossy(&out.stdout);
    for line in [
        "    command: sleep 1\n",
        "    health_check.command: true\n",
        "    health_check.interval: 2s\n",
        "    health_check.timeout: 5s (default)\n",
        "    stop_signal: SIGINT\n",
        "    stop_timeout: 10s (default)\n",
        "    logs.max_size: 10M (default)\n",
        "    logs.max_files: 2\n",
        "    webhooks[0].secret: <hidden>\n",
    ] {
        assert!(text.contains(line), "{line:?} missing in:\n{text}");
    }
    for internal in ["probe", "run.", "number", "10485760", "never-shown"] {
        assert!(!text.contains(internal), "{internal:?} in:\n{text}");
        assert!(!v.to_string().contains(internal), "{internal:?} in {v}");
    }
    assert_eq!(p.sysg(&["inspect", "nope"]).status.code(), Some(2));
}

#[test]
fn status_and_validate_json_follow_their_schemas() {
    let p = Project::new(
        "version: \"1\"\nservices:\n  web:\n    command: \"sleep 1000\"\n  once:\n    command: \"exit 4\"\n    restart_policy: never\n  nightly:\n    command: \"true\"\n    cron: {expression: \"0 3 * * *\"}\n",
    );
    // No supervisor.
    let out = p.sysg(&["status", "--json"]);
    assert_eq!(out.status.code(), Some(3));
    assert_shape("status", &json_of(&out));
    p.start_allowing_failure();
    let out = p.sysg(&["status", "--json"]);
    let v = json_of(&out);
    assert_shape("status", &v);
    assert_eq!(v["backend"], "process");
    // No systemd unit runs these services: the field says so, and so does the UNIT column.
    for svc in v["services"].as_array().expect("services") {
        assert_eq!(svc["unit_name"], Value::Null, "{svc}");
    }
    let out = p.sysg(&["status", "--units"]);
    let table = String::from_utf8_lossy(&out.stdout).into_owned();
    let header = table.lines().nth(1).unwrap_or_default();
    assert!(
        header.starts_with("NAME") && header.contains(" UNIT "),
        "{table}"
    );
    let web = table
        .lines()
        .find(|l| l.starts_with("web "))
        .unwrap_or_default();
    assert_eq!(web.split_whitespace().nth(1), Some("-"), "{table}");
    assert!(!String::from_utf8_lossy(&p.sysg(&["status"]).stdout).contains(" UNIT "));
    let once = v["services"]
        .as_array()
        .and_then(|a| a.iter().find(|s| s["name"] == "once"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        once["last_exit"],
        serde_json::json!({"kind": "code", "value": 4})
    );

    let out = p.sysg(&["validate", "--json"]);
    assert_ok(&out, "validate --json");
    let v = json_of(&out);
    assert_shape("validate", &v);
    assert_eq!(v["cron"][0]["name"], "nightly");
    assert_eq!(v["cron"][0]["next_runs"].as_array().map(Vec::len), Some(3));
    p.write(
        "bad.yaml",
        "version: \"1\"\nservices:\n  web:\n    comand: x\n",
    );
    let out = p.sysg(&["validate", "--json", "--config", "bad.yaml"]);
    assert_eq!(out.status.code(), Some(2));
    let v = json_of(&out);
    assert_shape("validate", &v);
    assert_eq!(v["ok"], false);
}

#[test]
fn logs_json_lines_follow_their_schema() {
    let p = Project::new(
        "version: \"1\"\nservices:\n  talk:\n    command: \"echo hello; echo oops >&2; exec sleep 1000\"\n",
    );
    p.start();
    let mut lines = Vec::new();
    wait_until("both lines are logged", T, || {
        let out = p.sysg(&["logs", "--json"]);
        lines = stdout(&out)
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect();
        lines.len() >= 2
    });
    for l in &lines {
        assert_shape("logs", l);
    }
    assert!(lines
        .iter()
        .any(|l| l["line"] == "hello" && l["stream"] == "stdout" && l["service"] == "talk"));
    assert!(lines
        .iter()
        .any(|l| l["line"] == "oops" && l["stream"] == "stderr"));
}

/// `sysg logs --json` with `args`: (time, line) of every line printed.
fn logs_json(p: &Project, args: &[&str]) -> Vec<(String, String)> {
    let mut all = vec!["logs", "--json", "--service", "count"];
    all.extend_from_slice(args);
    let mut cmd = p.cmd(&all);
    cmd.env("TZ", "UTC");
    let out = run_bounded(cmd, T);
    assert_ok(&out, "logs");
    stdout(&out)
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
            (
                v["time"].as_str().unwrap_or_default().to_string(),
                v["line"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

#[test]
fn logs_since_and_until_reach_into_rotated_compressed_files() {
    let p = Project::new(
        r#"version: "1"
project: logs-window
logs:
  max_size: 4K
  max_files: 100
  compress: true
services:
  count:
    command: "seq -f 'line %g' 1 3000; exec sleep 1000"
"#,
    );
    p.start();
    let mut all = Vec::new();
    wait_until("all 3000 lines are logged", T, || {
        all = logs_json(&p, &["--lines", "100000"]);
        all.len() >= 3000
    });
    assert_eq!(all.len(), 3000);
    // The early lines are in gzip-compressed rotated files only.
    let logs = p.home.path().join(".local/share/systemg/logs-window/logs");
    let current = std::fs::read_to_string(logs.join("count.stdout.log")).expect("current log");
    assert!(
        !current.contains(" line 600\n"),
        "line 600 is not rotated yet"
    );
    let gz = std::fs::read_dir(&logs)
        .expect("logs dir")
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".gz"))
        })
        .count();
    assert!(gz >= 2, "{gz} compressed files");
    // Stamps have milliseconds: --since takes every line stamped at or after line 600's.
    let since = all[599].0.clone();
    let until = all[1999].0.clone();
    let want: Vec<_> = all.iter().filter(|(t, _)| *t >= since).cloned().collect();
    assert!(want.iter().any(|(_, l)| l == "line 600"));
    assert_eq!(logs_json(&p, &["--since", &since]), want);
    let want: Vec<_> = all
        .iter()
        .filter(|(t, _)| *t >= since && *t <= until)
        .cloned()
        .collect();
    assert_eq!(logs_json(&p, &["--since", &since, "--until", &until]), want);
    // --lines keeps the last N of the window.
    assert_eq!(
        logs_json(&p, &["--since", &since, "--until", &until, "-n", "3"]),
        want[want.len() - 3..]
    );
    // A local time (TZ=UTC here), to the second.
    let local = since[..19].replace('T', " ");
    let floor = format!("{}.000Z", &since[..19]);
    let want: Vec<_> = all.iter().filter(|(t, _)| *t >= floor).cloned().collect();
    assert_eq!(logs_json(&p, &["--since", &local]), want);
    // Relative: the last hour holds them all; nothing is stamped in the future.
    assert_eq!(logs_json(&p, &["--since", "1h"]).len(), 3000);
    assert!(logs_json(&p, &["--since", "2099-01-01"]).is_empty());
    // Bad input is a usage error that says what is accepted.
    for bad in [
        vec!["logs", "--since", "yesterday"],
        vec!["logs", "--until", "2026-12-05 25:00"],
        vec!["logs", "--since", "1h", "--until", "2h"],
        vec!["logs", "--until", "1h", "--follow"],
    ] {
        let out = p.sysg(&bad);
        assert_eq!(out.status.code(), Some(2), "{bad:?}: {out:?}");
        assert!(!stderr(&out).is_empty(), "{bad:?}");
    }
    assert!(stderr(&p.sysg(&["logs", "--since", "yesterday"])).contains("10m, 2h, 1d"));
}

/// Run `cmd` with stdout on a pseudo-terminal of `cols` columns; returns what it printed.
fn run_on_tty(mut cmd: Command, cols: u16) -> String {
    use nix::fcntl::OFlag;
    use std::os::unix::fs::OpenOptionsExt;
    // Opened close-on-exec from the start: an inheritable terminal leaked into a daemon (this
    // test's or a concurrent one's) would keep it open, and the read below would never end.
    let master = nix::pty::posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC)
        .expect("posix_openpt");
    nix::pty::grantpt(&master).expect("grantpt");
    nix::pty::unlockpt(&master).expect("unlockpt");
    let name = nix::pty::ptsname_r(&master).expect("ptsname");
    let slave_file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOCTTY)
        .open(&name)
        .expect("open slave");
    let ws = libc::winsize {
        ws_row: 40,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads one winsize from the pointer; the fd is a terminal we own.
    let rc = unsafe {
        libc::ioctl(
            std::os::fd::AsRawFd::as_raw_fd(&slave_file),
            libc::TIOCSWINSZ,
            &ws,
        )
    };
    assert_eq!(rc, 0, "TIOCSWINSZ");
    let slave: OwnedFd = slave_file.into();
    cmd.stdout(Stdio::from(slave.try_clone().expect("dup")))
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn");
    drop(slave);
    drop(cmd);
    let mut master = std::fs::File::from(OwnedFd::from(master));
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        // Reading ends with EIO once the last slave descriptor is closed.
        let _ = master.read_to_end(&mut buf);
        let _ = tx.send(buf);
    });
    let status = child.wait().expect("wait");
    let out = rx.recv_timeout(T).expect("pty output");
    assert!(status.code().is_some(), "killed: {status:?}");
    String::from_utf8_lossy(&out).replace('\r', "")
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

const LONG_REASON_CONFIG: &str = r#"
version: "1"
services:
  a-service-with-a-long-name:
    command: "sleep 1000"
  broken:
    command: "exit 1"
    restart_policy: never
  dependent:
    command: "sleep 1000"
    depends_on:
      - service: broken
        condition: completed
"#;

#[test]
fn status_fits_the_terminal_and_colours_only_a_tty() {
    let p = Project::new(LONG_REASON_CONFIG);
    p.start_allowing_failure();
    // Piped: never cut, never coloured.
    let piped = stdout(&p.sysg(&["status"]));
    let widest_piped = piped.lines().map(|l| l.chars().count()).max().unwrap_or(0);
    assert!(widest_piped > 60, "the test needs a wide table:\n{piped}");
    assert!(!piped.contains('\x1b') && !piped.contains('…'), "{piped}");

    // A 60-column terminal: everything fits, the reason is elided, colours are on.
    let mut c = p.cmd(&["status"]);
    c.env_remove("NO_COLOR").env_remove("COLUMNS");
    let tty = run_on_tty(c, 60);
    assert!(tty.contains("\x1b["), "no colour on a tty:\n{tty}");
    let plain = strip_ansi(&tty);
    for l in plain.lines() {
        assert!(
            l.chars().count() <= 60,
            "line wider than 60: {l:?}\n{plain}"
        );
    }
    assert!(plain.contains("a-service-with-a-long-name"), "{plain}");
    assert!(plain.contains('…'), "{plain}");

    // COLUMNS wins over the terminal's size; NO_COLOR wins over the terminal.
    let mut c = p.cmd(&["status"]);
    c.env("COLUMNS", "45");
    let tty = run_on_tty(c, 200);
    assert!(!tty.contains('\x1b'), "colour despite NO_COLOR:\n{tty}");
    for l in tty.lines() {
        assert!(
            l.chars().count() <= 45,
            "line wider than COLUMNS=45: {l:?}\n{tty}"
        );
    }
}

/// Read `n` lines of a streaming command's stdout, then kill it.
fn stream_lines(mut cmd: Command, n: usize) -> Vec<String> {
    cmd.stdout(Stdio::piped()).stderr(Stdio::null());
    let mut child = cmd.spawn().expect("spawn");
    let out = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for l in BufReader::new(out).lines() {
            match l {
                Ok(l) => {
                    if tx.send(l).is_err() {
                        return;
                    }
                }
                Err(_) => return,
            }
        }
    });
    let deadline = Instant::now() + T;
    let mut lines = Vec::new();
    while lines.len() < n {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(l) => lines.push(l),
            Err(_) => break,
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    lines
}

#[test]
fn status_stream_prints_successive_snapshots_when_piped() {
    let p = Project::new(LONG_REASON_CONFIG);
    p.start_allowing_failure();
    // The table stream goes on although a service failed (status alone would exit 1).
    let lines = stream_lines(p.cmd(&["status", "--stream", "100ms"]), 12);
    let headers = lines
        .iter()
        .filter(|l| l.starts_with("project proj"))
        .count();
    assert!(headers >= 2, "{lines:#?}");
    assert!(!lines.iter().any(|l| l.contains('\x1b')));
    let json = stream_lines(p.cmd(&["status", "--stream", "100ms", "--json"]), 3);
    assert_eq!(json.len(), 3, "{json:#?}");
    for l in &json {
        let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
        assert_shape("status", &v);
    }
    let out = p.sysg(&["status", "--stream", "soon"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn completions_man_pages_and_schema_commands() {
    let p = Project::new("version: \"1\"\nservices:\n  web:\n    command: \"sleep 1\"\n");
    for shell in ["bash", "zsh", "fish"] {
        let out = p.sysg(&["completions", shell]);
        assert_ok(&out, shell);
        assert!(stdout(&out).contains("inspect"), "{shell}");
    }
    assert_eq!(p.sysg(&["completions", "tcsh"]).status.code(), Some(2));
    let dir = p.dir.join("man");
    let out = p.sysg(&["manpages", dir.to_str().expect("utf-8")]);
    assert_ok(&out, "manpages");
    assert!(dir.join("sysg.1").is_file() && dir.join("sysg-start.1").is_file());
    assert!(dir.join("sysg-reload.1").is_file() && dir.join("sysg-kill.1").is_file());
    let out = p.sysg(&["schema"]);
    assert_ok(&out, "schema");
    let shipped = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/schemas/systemg.schema.json"),
    )
    .expect("shipped schema");
    assert_eq!(stdout(&out), shipped);
    for which in ["status", "inspect", "validate", "logs"] {
        let out = p.sysg(&["schema", which]);
        assert_ok(&out, which);
        let _: Value = serde_json::from_slice(&out.stdout).expect("schema is JSON");
    }
}

#[test]
fn start_progress_is_line_oriented_when_piped_and_live_on_a_tty() {
    let p = Project::new(
        r#"
version: "1"
services:
  db:
    command: "sleep 1000"
  web:
    command: "sleep 1000"
    depends_on: [db]
  broken:
    command: "exit 2"
    restart_policy: never
"#,
    );
    let out = p.sysg(&["start", "--daemonize"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let text = stdout(&out);
    for line in ["db: started", "web: started", "broken: failed"] {
        assert!(
            text.lines().any(|l| l.starts_with(line)),
            "{line:?} missing:\n{text}"
        );
    }
    assert!(!text.contains('\x1b'), "escape codes when piped:\n{text}");
    let db = text.lines().position(|l| l == "db: started");
    let web = text.lines().position(|l| l == "web: started");
    assert!(db < web, "dependency order:\n{text}");
    let out = p.sysg(&["stop"]);
    assert_ok(&out, "stop");

    // On a terminal: lines redrawn in place, a mark per service.
    let mut c = p.cmd(&["start", "--daemonize"]);
    c.env_remove("NO_COLOR");
    let tty = run_on_tty(c, 80);
    assert!(tty.contains("\x1b[K"), "not redrawn in place:\n{tty}");
    let plain = strip_ansi(&tty);
    assert!(plain.contains("✓ db"), "{plain}");
    assert!(plain.contains("✗ broken"), "{plain}");
}
