//! `sysg logs`: read service logs straight from the log files (no supervisor needed).

use std::path::PathBuf;

use super::args::{Global, LogsArgs};
use super::context::resolve;
use super::{error, EXIT_FAILURE, EXIT_OK, EXIT_USAGE};
use crate::logs::{self, Kind};

/// Lines shown without `--lines` and without a time window.
const DEFAULT_LINES: usize = 50;

/// `sysg logs [--service S] [--kind K] [--lines N] [--since T] [--until T] [--follow]`
pub fn run(g: &Global, a: &LogsArgs) -> i32 {
    let window = logs::Window {
        since: a.since,
        until: a.until,
    };
    if let (Some(s), Some(u)) = (a.since, a.until) {
        if s > u {
            error(format!(
                "--since ({}) is after --until ({})",
                logs::format_timestamp(s.into()),
                logs::format_timestamp(u.into())
            ));
            return EXIT_USAGE;
        }
    }
    // With a window every line in it, else the last 50, unless --lines says otherwise.
    let limit = match (a.lines, window.is_open()) {
        (Some(n), _) => Some(n),
        (None, true) => Some(DEFAULT_LINES),
        (None, false) => None,
    };
    let ctx = match resolve(g) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let log_dir = ctx.paths.log_dir.clone();
    let kinds: Vec<Kind> = match a.kind {
        Some(k) => vec![k],
        None => vec![Kind::Stdout, Kind::Stderr],
    };
    // Which units: the selected ones, or all of them.
    let units: Vec<String> = if a.kind == Some(Kind::Supervisor) {
        vec![String::new()]
    } else if let Some((parent, _child)) = a.service.as_deref().and_then(|s| s.split_once('/')) {
        // `web/worker`: a child spawned by `web` (see `sysg spawn`); its parent must exist.
        if let Err(code) = super::select::resolve(&ctx, Some(parent), &[], true) {
            return code;
        }
        vec![a.service.clone().unwrap_or_default()]
    } else {
        // Named or tagged services, else every service (cron jobs included: they have logs).
        let picked = if a.service.is_some() || !a.tag.tags.is_empty() {
            super::select::resolve(&ctx, a.service.as_deref(), &a.tag.tags, true)
        } else {
            super::select::all(&ctx, true)
        };
        match picked {
            Ok(Some(v)) => v,
            Ok(None) => {
                error(
                    "pass --service NAME (no config file and no supervisor to list services from)",
                );
                return EXIT_USAGE;
            }
            Err(code) => return code,
        }
    };
    if a.kind != Some(Kind::Supervisor) {
        match uses_journal(&ctx.paths) {
            Ok(true) => {
                if let Some(code) = served(g, &ctx, &units, a, limit) {
                    return code;
                }
                return journal(g, &ctx.project, &units, a, limit);
            }
            Ok(false) => {}
            Err(e) => {
                error(e);
                return EXIT_FAILURE;
            }
        }
    }
    let prefix = units.len() > 1;
    let width = units.iter().map(|u| u.len()).max().unwrap_or(0);

    // Gather the last N lines (in the window) of every selected stream, ordered by their
    // timestamps.
    let mut lines: Vec<(String, Kind, String)> = Vec::new();
    for u in &units {
        let got = match limit {
            Some(n) if window.is_open() => logs::tail_merged(&log_dir, u, &kinds, n),
            _ => logs::window_merged(&log_dir, u, &kinds, &window, limit),
        };
        match got {
            Ok(v) => lines.extend(v.into_iter().map(|(k, l)| (u.clone(), k, l))),
            Err(e) => {
                error(e);
                return EXIT_FAILURE;
            }
        }
    }
    lines.sort_by(|x, y| {
        let tx = logs::parse_line(&x.2).map(|p| p.0);
        let ty = logs::parse_line(&y.2).map(|p| p.0);
        tx.cmp(&ty)
    });
    let skip = lines.len().saturating_sub(limit.unwrap_or(usize::MAX));
    for (u, k, l) in &lines[skip..] {
        emit(a.json, prefix, width, u, *k, l);
    }
    if !a.follow {
        return EXIT_OK;
    }
    let mut paths: Vec<(String, Kind, PathBuf)> = Vec::new();
    for u in &units {
        for k in &kinds {
            paths.push((u.clone(), *k, logs::log_path(&log_dir, u, *k)));
        }
    }
    let files: Vec<&PathBuf> = paths.iter().map(|(_, _, p)| p).collect();
    let mut follower = match logs::follow_many(&files) {
        Ok(f) => f,
        Err(e) => {
            error(e);
            return EXIT_FAILURE;
        }
    };
    loop {
        match follower.next_tagged(None) {
            Ok(batch) => {
                for (i, l) in batch {
                    let (u, k) = paths
                        .get(i)
                        .map(|(u, k, _)| (u.as_str(), *k))
                        .unwrap_or(("", Kind::Stdout));
                    emit(a.json, prefix, width, u, k, &l);
                }
            }
            Err(e) => {
                error(e);
                return EXIT_FAILURE;
            }
        }
    }
}

/// One line as text, or as a JSON object (docs/schemas/logs.schema.json).
fn emit(json: bool, prefix: bool, width: usize, unit: &str, kind: Kind, line: &str) {
    if !json {
        print_line(prefix, width, unit, line);
        return;
    }
    let (time, text) = match logs::parse_line(line) {
        Some((t, text)) => (Some(logs::format_timestamp(t.into())), text),
        None => (None, line),
    };
    let obj = serde_json::json!({
        "service": unit,
        "stream": kind_word(kind),
        "time": time,
        "line": text,
    });
    print_line(false, 0, "", &obj.to_string());
}

fn kind_word(kind: Kind) -> &'static str {
    match kind {
        Kind::Stdout => "stdout",
        Kind::Stderr => "stderr",
        Kind::Supervisor => "supervisor",
    }
}

/// A line on stdout. On a terminal, what services wrote is shown without its control
/// characters (`sanitize`: a service must not drive the reader's terminal); piped, it is
/// passed on as written.
fn print_line(prefix: bool, width: usize, unit: &str, line: &str) {
    use std::io::{IsTerminal, Write};
    static TERMINAL: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let line = if *TERMINAL.get_or_init(|| std::io::stdout().is_terminal()) {
        crate::control::sanitize::terminal_safe(line)
    } else {
        std::borrow::Cow::Borrowed(line)
    };
    let mut out = std::io::stdout().lock();
    let r = if prefix {
        writeln!(out, "{unit:<width$} | {line}")
    } else {
        writeln!(out, "{line}")
    };
    if r.is_err() {
        // Reader went away (e.g. `| head`): stop quietly.
        std::process::exit(EXIT_OK);
    }
}

/// Did the project's supervisor run its services as systemd units (whose output is in the
/// journal)? A state file the caller may not read is said as such, rather than looking for
/// log files that are not there either.
fn uses_journal(paths: &crate::runtime::paths::ProjectPaths) -> Result<bool, String> {
    use crate::runtime::state::{self, Loaded, StateError};
    match state::load(&paths.state_file) {
        Ok(Loaded::Ok(s)) => Ok(s.backend == "systemd"),
        Err(StateError::Io { path, source })
            if source.kind() == std::io::ErrorKind::PermissionDenied =>
        {
            Err(format!(
                "cannot read {}: permission denied: {}",
                path.display(),
                NOT_ALLOWED
            ))
        }
        _ => Ok(false),
    }
}

/// A `--sys` caller other than root reads the journal through the project's supervisor
/// (`Request::Logs`), which journalctl would refuse to a `systemg` member. `None`: not asked
/// (root, user mode, `--follow`, no supervisor running), read the journal directly.
fn served(
    g: &Global,
    ctx: &super::context::Ctx,
    units: &[String],
    a: &LogsArgs,
    limit: Option<usize>,
) -> Option<i32> {
    use crate::control::client;
    use crate::control::protocol::{LogsRequest, Request};
    if !g.sys || a.follow || rustix::process::geteuid().is_root() {
        return None;
    }
    let req = Request::Logs(LogsRequest {
        services: Some(units.to_vec()),
        lines: limit,
        since_us: a.since.map(|t| t.timestamp_micros()),
        until_us: a.until.map(|t| t.timestamp_micros()),
    });
    let resp = match client::call(&ctx.paths, &ctx.project, req, None) {
        Ok(r) => r,
        Err(e) => {
            tracing::debug!("logs through the supervisor: {e}");
            return None;
        }
    };
    if !resp.ok {
        error(
            resp.error
                .unwrap_or_else(|| "the supervisor refused".into()),
        );
        return Some(EXIT_FAILURE);
    }
    let entries = resp.data["entries"].as_array().cloned().unwrap_or_default();
    for e in &entries {
        if a.json {
            print_line(false, 0, "", &e.to_string());
        } else {
            let field = |k: &str| e[k].as_str().unwrap_or_default().to_string();
            let line = format!("{} {}: {}", field("time"), field("service"), field("line"));
            print_line(false, 0, "", &line);
        }
    }
    if resp.data["truncated"] == true && limit.is_none() {
        error(format!(
            "only the last {} lines were served; narrow with --since/--until or --lines",
            entries.len()
        ));
    }
    Some(EXIT_OK)
}

/// Who may read a `--sys` project's logs.
const NOT_ALLOWED: &str = "the logs of a system project are for root and the members of the \
    `systemg` group (and, when its services run as systemd units, the journal's readers: the \
    `systemd-journal` or `adm` group)";

/// What journalctl says on stderr when the caller may not read the system journal.
fn journal_refused(line: &str) -> bool {
    line.contains("insufficient permissions")
        || line.contains("not seeing messages from other users and the system")
}

/// Show the units' output from the journal (stdout and stderr are not told apart there).
#[cfg(target_os = "linux")]
fn journal(g: &Global, project: &str, units: &[String], a: &LogsArgs, limit: Option<usize>) -> i32 {
    use crate::backend::observe::{journal_command, Query};
    let mut cmd = journal_command(&Query {
        system: g.sys,
        project,
        services: units,
        since: a.since,
        until: a.until,
        lines: limit,
        follow: a.follow,
        json: a.json,
    });
    cmd.stderr(std::process::Stdio::piped());
    let code = if a.json {
        journal_json(cmd, project, g.sys)
    } else {
        match cmd.spawn() {
            Ok(mut child) => {
                let refused = watch_stderr(&mut child);
                let ok = child.wait().is_ok_and(|s| s.success());
                journal_verdict(ok, refused, g.sys)
            }
            Err(e) => {
                error(format!("running journalctl: {e}"));
                EXIT_FAILURE
            }
        }
    };
    code
}

/// Pass journalctl's stderr on, noting whether it said the journal is not readable.
#[cfg(target_os = "linux")]
fn watch_stderr(child: &mut std::process::Child) -> std::thread::JoinHandle<bool> {
    use std::io::{BufRead, Write};
    let err = child.stderr.take();
    std::thread::spawn(move || {
        let Some(err) = err else { return false };
        let mut refused = false;
        for line in std::io::BufReader::new(err).lines() {
            let Ok(line) = line else { break };
            refused |= journal_refused(&line);
            let _ = writeln!(std::io::stderr(), "{line}");
        }
        refused
    })
}

/// The exit code once journalctl ended; a journal the caller may not read is explained.
#[cfg(target_os = "linux")]
fn journal_verdict(ok: bool, refused: std::thread::JoinHandle<bool>, sys: bool) -> i32 {
    let refused = refused.join().unwrap_or(false);
    if refused && sys {
        error(format!(
            "the services' output is in the system journal, which journalctl would not show you: {NOT_ALLOWED}"
        ));
        return EXIT_FAILURE;
    }
    if ok {
        EXIT_OK
    } else {
        EXIT_FAILURE
    }
}

/// journalctl's JSON entries in the shape of `sysg logs --json`.
#[cfg(target_os = "linux")]
fn journal_json(mut cmd: std::process::Command, project: &str, sys: bool) -> i32 {
    use std::io::BufRead;
    cmd.stdout(std::process::Stdio::piped());
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            error(format!("running journalctl: {e}"));
            return EXIT_FAILURE;
        }
    };
    let refused = watch_stderr(&mut child);
    let Some(out) = child.stdout.take() else {
        return EXIT_FAILURE;
    };
    for line in std::io::BufReader::new(out).lines() {
        let Ok(line) = line else { break };
        let Some(obj) = crate::backend::observe::entry_json(project, &line) else {
            continue;
        };
        print_line(false, 0, "", &obj.to_string());
    }
    let ok = child.wait().is_ok_and(|s| s.success());
    journal_verdict(ok, refused, sys)
}

#[cfg(not(target_os = "linux"))]
fn journal(
    _g: &Global,
    _project: &str,
    _units: &[String],
    _a: &LogsArgs,
    _limit: Option<usize>,
) -> i32 {
    error("the journal exists only on Linux");
    EXIT_FAILURE
}
