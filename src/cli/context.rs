//! Working out which config, project and supervisor a command is about.

use std::path::{Path, PathBuf};

use super::args::Global;
use super::{error, EXIT_USAGE};
use crate::config::{self, Config};
use crate::control::client;
use crate::runtime::instance;
use crate::runtime::paths::{default_config, ProjectPaths, Roots};

/// The project a command acts on.
pub struct Ctx {
    /// The validated config, when one was found.
    pub config: Option<Config>,
    pub config_path: PathBuf,
    pub project: String,
    pub paths: ProjectPaths,
}

/// The config file a command uses.
pub fn config_path(g: &Global) -> PathBuf {
    g.config.clone().unwrap_or_else(|| default_config(g.sys))
}

/// Load and validate the config; on failure print every problem and return the exit code.
/// Its `project` is the project's key (`runtime::instance`): a project is its directory.
pub fn load_config(g: &Global) -> Result<Config, i32> {
    let path = config_path(g);
    let mut cfg = config::load(&path).map_err(|e| report(&path, &e))?;
    instance::apply(&Roots::for_mode(g.sys), &mut cfg).map_err(taken)?;
    Ok(cfg)
}

/// The key of the project named `name` (`explicit` when the config says `project:`) whose
/// config is at `path`; refused when another directory runs that name.
fn project_key(g: &Global, path: &Path, name: &str, explicit: bool) -> Result<String, i32> {
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    instance::key(&Roots::for_mode(g.sys), name, explicit, &abs).map_err(taken)
}

/// Report a project name another directory runs; the exit code.
fn taken(e: instance::Taken) -> i32 {
    error(e);
    EXIT_USAGE
}

/// Print every problem of a config; the exit code.
fn report(path: &std::path::Path, e: &config::ConfigErrors) -> i32 {
    print_config_errors(path, e);
    EXIT_USAGE
}

/// Print every problem of a config, then a one-line summary.
pub fn print_config_errors(path: &std::path::Path, e: &config::ConfigErrors) {
    eprintln!("{e}");
    let n = e.0.len();
    error(format!(
        "{} has {n} problem{}",
        path.display(),
        if n == 1 { "" } else { "s" }
    ));
}

/// Resolve the project: from the config when it exists, else the one running supervisor.
pub fn resolve(g: &Global) -> Result<Ctx, i32> {
    let roots = Roots::for_mode(g.sys);
    let path = config_path(g);
    // `--project` names a supervisor directly (e.g. `adhoc`); an explicit --config must agree.
    if let (Some(p), None) = (&g.project, &g.config) {
        if !crate::config::valid_name(p) {
            error(format!("invalid project name `{p}`"));
            return Err(EXIT_USAGE);
        }
        return Ok(Ctx {
            paths: roots.project(p),
            project: p.clone(),
            config_path: path,
            config: None,
        });
    }
    if g.config.is_some() || path.exists() {
        // A user who may read a `--sys` supervisor's status need not be able to read its
        // secrets: without them, the project name is enough to find the supervisor.
        let mut cfg = match config::load(&path) {
            Ok(c) => c,
            Err(e) => {
                let project = config::only_unreadable_env_files(&e)
                    .then(|| config::project_name(&path))
                    .flatten();
                let Some((name, explicit)) = project else {
                    return Err(report(&path, &e));
                };
                let project = project_key(g, &path, &name, explicit)?;
                return Ok(Ctx {
                    paths: roots.project(&project),
                    project,
                    config_path: path,
                    config: None,
                });
            }
        };
        // `--project` names the project as `project:` does: that name, not the directory's.
        cfg.project_explicit |= g.project.is_some();
        cfg.project = project_key(g, &cfg.path, &cfg.project, cfg.project_explicit)?;
        if let Some(p) = g.project.as_ref().filter(|p| **p != cfg.project) {
            error(format!(
                "--project {p} does not match the project of {} (`{}`)",
                cfg.path.display(),
                cfg.project
            ));
            return Err(EXIT_USAGE);
        }
        return Ok(Ctx {
            paths: roots.project(&cfg.project),
            project: cfg.project.clone(),
            config_path: cfg.path.clone(),
            config: Some(cfg),
        });
    }
    let live: Vec<String> = roots
        .projects()
        .into_iter()
        .filter(|p| client::is_live(&roots.project(p).socket))
        .collect();
    match live.as_slice() {
        [one] => Ok(Ctx {
            paths: roots.project(one),
            project: one.clone(),
            config_path: path,
            config: None,
        }),
        [] => {
            error(format!(
                "no {} here and no supervisor is running; pass --config FILE",
                path.display()
            ));
            Err(EXIT_USAGE)
        }
        many => {
            error(format!(
                "no {} here and several supervisors run ({}); pass --config FILE or --project NAME",
                path.display(),
                many.join(", ")
            ));
            Err(EXIT_USAGE)
        }
    }
}

/// `resolve` for commands that talk to a running supervisor (`status`, `inspect`, `stop`):
/// when the config names a project whose supervisor is live, the project name is all that is
/// needed. That is much cheaper than loading and checking the whole config (12 ms for 1,000
/// services), and a config being edited (invalid until the next restart) does not keep
/// anyone from looking at or stopping what runs. Anything else (no supervisor, `--project`)
/// goes through `resolve`.
pub fn resolve_live(g: &Global) -> Result<Ctx, i32> {
    let path = config_path(g);
    if g.project.is_none() && (g.config.is_some() || path.exists()) {
        if let Some((name, explicit)) = config::project_name(&path) {
            let project = project_key(g, &path, &name, explicit)?;
            let roots = Roots::for_mode(g.sys);
            let paths = roots.project(&project);
            if client::is_live(&paths.socket) {
                return Ok(Ctx {
                    paths,
                    project,
                    config_path: path,
                    config: None,
                });
            }
        }
    }
    resolve(g)
}

/// Without `--sys`, when no supervisor of your own runs the project but a system one does
/// (`sudo sysg --sys start`), talk to that one: read-only commands (`status`, `inspect`) are
/// what a `systemg` group member may send it, and anyone else gets a clear refusal rather
/// than "not running".
pub fn or_system_supervisor(g: &Global, ctx: Ctx) -> Ctx {
    if g.sys || client::is_live(&ctx.paths.socket) {
        return ctx;
    }
    let system = Roots::system().project(&ctx.project);
    // A socket we may not even look at (directory 0750 root:systemg) still counts: the call
    // will say that we are not allowed.
    match std::fs::symlink_metadata(&system.socket) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => ctx,
        _ if !client::is_live(&system.socket) && std::fs::metadata(&system.socket).is_ok() => ctx,
        _ => Ctx {
            paths: system,
            ..ctx
        },
    }
}

/// True when a command has nothing to talk to: no config file, no `--project`, and no
/// supervisor running at all (`status` and `list` then exit 3, not 2).
pub fn nothing_running(g: &Global) -> bool {
    let roots = Roots::for_mode(g.sys);
    g.config.is_none()
        && g.project.is_none()
        && !config_path(g).exists()
        && !roots
            .projects()
            .iter()
            .any(|p| client::is_live(&roots.project(p).socket))
}

/// Why there is nothing to talk to, naming the config looked for (with `--sys`,
/// /etc/systemg/systemg.yaml) and a permission that kept it from being read.
pub fn nothing_here(g: &Global) -> String {
    let path = config_path(g);
    match std::fs::metadata(&path) {
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => format!(
            "cannot read {}: permission denied{}",
            path.display(),
            if g.sys {
                " (system mode: run as root, or as a member of the `systemg` group to read status)"
            } else {
                ""
            }
        ),
        _ => format!(
            "no {}{} and no supervisor is running{}",
            path.display(),
            if path.is_relative() { " here" } else { "" },
            if g.sys && !nix::unistd::geteuid().is_root() {
                " (or you may not see it: a system supervisor's socket needs root or the \
                 `systemg` group)"
            } else {
                ""
            }
        ),
    }
}

/// Units a dead supervisor left running: recorded in state.json and still alive with the
/// recorded start time.
pub fn orphaned_records(paths: &ProjectPaths) -> Vec<crate::backend::AdoptRecord> {
    use crate::runtime::state::{self, Loaded};
    match state::load(&paths.state_file) {
        Ok(Loaded::Ok(s)) => s
            .records
            .into_iter()
            .filter(|r| crate::os::procfs::start_time(r.pid) == Some(r.start_time))
            .collect(),
        _ => Vec::new(),
    }
}
