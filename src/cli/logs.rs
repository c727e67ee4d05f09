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
    if a.kind != Some(Kind::Supervisor) && uses_journal(&ctx.paths) {
        return journal(g, &ctx.project, &units, a, limit);
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
/// journal)?
fn uses_journal(paths: &crate::runtime::paths::ProjectPaths) -> bool {
    use crate::runtime::state::{self, Loaded};
    matches!(state::load(&paths.state_file), Ok(Loaded::Ok(s)) if s.backend == "systemd")
}

/// Show the units' output from the journal (stdout and stderr are not told apart there).
#[cfg(target_os = "linux")]
fn journal(g: &Global, project: &str, units: &[String], a: &LogsArgs, limit: Option<usize>) -> i32 {
    use crate::backend::systemd::journal::{journal_command, Query};
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
    if a.json {
        return journal_json(cmd, project);
    }
    match cmd.status() {
        Ok(s) if s.success() => EXIT_OK,
        Ok(_) => EXIT_FAILURE,
        Err(e) => {
            error(format!("running journalctl: {e}"));
            EXIT_FAILURE
        }
    }
}

/// journalctl's JSON entries in the shape of `sysg logs --json`.
#[cfg(target_os = "linux")]
fn journal_json(mut cmd: std::process::Command, project: &str) -> i32 {
    use crate::backend::systemd::journal::Entry;
    use std::io::BufRead;
    cmd.stdout(std::process::Stdio::piped());
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            error(format!("running journalctl: {e}"));
            return EXIT_FAILURE;
        }
    };
    let Some(out) = child.stdout.take() else {
        return EXIT_FAILURE;
    };
    for line in std::io::BufReader::new(out).lines() {
        let Ok(line) = line else { break };
        let Some(entry) = Entry::parse(project, &line) else {
            continue;
        };
        let obj = serde_json::json!({
            "service": entry.service,
            "stream": "journal",
            "time": entry.time.map(logs::format_timestamp),
            "line": entry.text,
        });
        print_line(false, 0, "", &obj.to_string());
    }
    match child.wait() {
        Ok(s) if s.success() => EXIT_OK,
        _ => EXIT_FAILURE,
    }
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
