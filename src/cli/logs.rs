//! `sysg logs`: read service logs straight from the log files (no supervisor needed).

use std::path::PathBuf;

use super::args::{Global, LogsArgs};
use super::context::resolve;
use super::{error, EXIT_FAILURE, EXIT_OK, EXIT_USAGE};
use crate::logs::{self, Kind};

/// `sysg logs [--service S] [--kind K] [--lines N] [--follow]`
pub fn run(g: &Global, a: &LogsArgs) -> i32 {
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
        return journal(g, &ctx.project, &units, a);
    }
    let prefix = units.len() > 1;
    let width = units.iter().map(|u| u.len()).max().unwrap_or(0);

    // Gather the last N lines of every selected stream, ordered by their timestamps.
    let mut lines: Vec<(String, String)> = Vec::new();
    for u in &units {
        match logs::tail_merged(&log_dir, u, &kinds, a.lines) {
            Ok(v) => lines.extend(v.into_iter().map(|(_, l)| (u.clone(), l))),
            Err(e) => {
                error(e);
                return EXIT_FAILURE;
            }
        }
    }
    lines.sort_by(|x, y| {
        let tx = logs::parse_line(&x.1).map(|p| p.0);
        let ty = logs::parse_line(&y.1).map(|p| p.0);
        tx.cmp(&ty)
    });
    let skip = lines.len().saturating_sub(a.lines);
    for (u, l) in &lines[skip..] {
        print_line(prefix, width, u, l);
    }
    if !a.follow {
        return EXIT_OK;
    }
    let mut paths: Vec<(String, PathBuf)> = Vec::new();
    for u in &units {
        for k in &kinds {
            paths.push((u.clone(), logs::log_path(&log_dir, u, *k)));
        }
    }
    let files: Vec<&PathBuf> = paths.iter().map(|(_, p)| p).collect();
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
                    let u = paths.get(i).map(|(u, _)| u.as_str()).unwrap_or("");
                    print_line(prefix, width, u, &l);
                }
            }
            Err(e) => {
                error(e);
                return EXIT_FAILURE;
            }
        }
    }
}

fn print_line(prefix: bool, width: usize, unit: &str, line: &str) {
    use std::io::Write;
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
fn journal(g: &Global, project: &str, units: &[String], a: &LogsArgs) -> i32 {
    use crate::backend::systemd::naming::unit_name;
    let mut cmd = std::process::Command::new("journalctl");
    cmd.arg(if g.sys { "--system" } else { "--user" });
    for u in units {
        cmd.arg("--unit").arg(unit_name(project, u));
    }
    cmd.args(["--output", "short-iso", "--no-pager", "--lines"])
        .arg(a.lines.to_string());
    if a.follow {
        cmd.arg("--follow");
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

#[cfg(not(target_os = "linux"))]
fn journal(_g: &Global, _project: &str, _units: &[String], _a: &LogsArgs) -> i32 {
    error("the journal exists only on Linux");
    EXIT_FAILURE
}
