//! `sysg start` and the hidden `sysg supervise`.

use std::io::Write as _;

use super::args::{BackendChoice, Global, StartArgs, SuperviseArgs};
use super::context::load_config;
use super::output::print_outcome;
use super::{error, EXIT_FAILURE, EXIT_USAGE};
use crate::control::{client, protocol::Request, ControlError};
use crate::runtime::paths::{ProjectPaths, Roots};
use crate::runtime::{daemon, supervisor};

/// Refuse backends this build cannot run.
pub(crate) fn check_backend(g: &Global) -> Result<(), i32> {
    match g.backend {
        BackendChoice::Systemd if !cfg!(target_os = "linux") => {
            error("the systemd backend exists only on Linux; use --backend process (or auto)");
            Err(EXIT_USAGE)
        }
        _ => Ok(()),
    }
}

/// Refuse a config whose privileged fields the supervisor could not apply (see
/// config/privileged.rs), printing every problem with its position.
pub(crate) fn check_privileges(g: &Global, cfg: &crate::config::Config) -> Result<(), i32> {
    if g.drop_privileges {
        if let Err(e) = crate::runtime::privileges::backend_for_drop(backend_choice(g)) {
            error(e);
            return Err(EXIT_USAGE);
        }
    }
    // Settings the systemd manager is too old for are refused by the supervisor, with their
    // positions: asking the manager here would start zbus's threads in this process, which
    // becomes the supervisor with `--foreground`, before it blocks SIGTERM for its own
    // signal thread (a SIGTERM would then kill it outright).
    crate::runtime::privileges::check(cfg, g.drop_privileges, g.sys).map_err(|e| {
        eprintln!("{e}");
        let n = e.0.len();
        error(format!(
            "{} has {n} setting{} this supervisor cannot apply",
            cfg.path.display(),
            if n == 1 { "" } else { "s" }
        ));
        EXIT_USAGE
    })
}

/// Addresses of `sockets:` that another program holds now (a trial bind), with positions.
/// Only when this project runs nothing: its own supervisor or units would hold them.
pub(crate) fn sockets_in_use(
    g: &Global,
    cfg: &crate::config::Config,
) -> Vec<crate::config::Diagnostic> {
    if cfg.services.iter().all(|s| s.sockets.is_empty()) {
        return Vec::new();
    }
    let paths = Roots::for_mode(g.sys).project(&cfg.project);
    if client::is_live(&paths.socket) || !super::context::orphaned_records(&paths).is_empty() {
        return Vec::new();
    }
    crate::config::sockets::host_problems(cfg, true, "", true)
}

/// The runtime's form of `--backend`.
pub(crate) fn backend_choice(g: &Global) -> crate::backend::Choice {
    match g.backend {
        BackendChoice::Auto => crate::backend::Choice::Auto,
        BackendChoice::Systemd => crate::backend::Choice::Systemd,
        BackendChoice::Process => crate::backend::Choice::Process,
    }
}

pub(crate) fn backend_name(g: &Global) -> &'static str {
    match g.backend {
        BackendChoice::Auto => "auto",
        BackendChoice::Systemd => "systemd",
        BackendChoice::Process => "process",
    }
}

/// `sysg start`
pub fn run(g: &Global, a: &StartArgs) -> i32 {
    let cfg = match load_config(g) {
        Ok(c) => c,
        Err(code) => return code,
    };
    if let Err(code) = check_backend(g) {
        return code;
    }
    if let Err(code) = check_privileges(g, &cfg) {
        return code;
    }
    let busy = sockets_in_use(g, &cfg);
    if !busy.is_empty() {
        eprintln!("{}", crate::config::ConfigErrors(busy));
        return EXIT_USAGE;
    }
    // `--service` accepts any configured name (the supervisor explains a cron job); tags
    // expand to long-running services only.
    let mut catalog = super::select::from_config(&cfg, true);
    if !a.tag.tags.is_empty() {
        catalog.retain(|e| {
            a.service.as_ref() == Some(&e.name)
                || cfg.service(&e.name).is_some_and(|s| s.cron.is_none())
        });
    }
    let services = match super::select::select(&catalog, a.service.as_deref(), &a.tag.tags) {
        Ok(s) => s,
        Err(e) => {
            error(e);
            return EXIT_USAGE;
        }
    };
    let paths = Roots::for_mode(g.sys).project(&cfg.project);
    // The hidden `supervise --service` takes the selection comma-separated (names never
    // contain commas).
    let joined = services.as_ref().map(|v| v.join(","));
    // A supervisor already runs for this project: ask it.
    match client::call(
        &paths,
        &cfg.project,
        Request::Start {
            services: services.clone(),
        },
        None,
    ) {
        Ok(resp) => return outcome(g, &resp, &paths),
        Err(ControlError::NotRunning { .. }) => {}
        Err(e) => {
            error(e);
            return EXIT_FAILURE;
        }
    }
    if a.daemonize {
        let tty = std::io::IsTerminal::is_terminal(&std::io::stdout());
        let view = super::progress::ProgressView::new(tty, super::output::color_enabled());
        let resp = daemon::spawn_with_progress(
            daemon::DaemonArgs {
                config: &cfg.path,
                project: &cfg.project,
                system: g.sys,
                backend: backend_name(g),
                log_level: g.log_level.map(|l| l.to_string()),
                service: joined.as_deref(),
                adopt_only: false,
                drop_privileges: g.drop_privileges,
                adhoc: false,
            },
            &paths,
            &mut |p| view.update(p),
        );
        view.finish();
        return match resp {
            Ok(r) => outcome(g, &r, &paths),
            Err(e) => {
                error(e);
                EXIT_FAILURE
            }
        };
    }
    run_supervisor(g, cfg.path.clone(), services, true, None, false, false)
}

/// Print the answer to a start; a failure also shows the failed services' last stderr lines.
fn outcome(g: &Global, resp: &crate::control::protocol::Response, paths: &ProjectPaths) -> i32 {
    let code = print_outcome(resp);
    let logs_cmd = match &g.config {
        Some(c) => format!("sysg --config {} logs", c.display()),
        None if g.sys => "sysg --sys logs".to_string(),
        None => "sysg logs".to_string(),
    };
    super::output::explain_failures(resp, &paths.log_dir, &logs_cmd);
    code
}

/// `sysg supervise` (what `start --daemonize` runs).
pub fn supervise(g: &Global, a: &SuperviseArgs) -> i32 {
    let path = super::context::config_path(g);
    let services = a
        .service
        .as_ref()
        .map(|s| s.split(',').map(str::to_string).collect());
    run_supervisor(g, path, services, false, a.ready_fd, a.adopt_only, a.adhoc)
}

fn run_supervisor(
    g: &Global,
    config_path: std::path::PathBuf,
    services: Option<Vec<String>>,
    echo: bool,
    ready_fd: Option<i32>,
    adopt_only: bool,
    adhoc: bool,
) -> i32 {
    match supervisor::run(supervisor::Options {
        config_path,
        system: g.sys,
        services,
        adopt_only,
        echo,
        ready_fd,
        backend: backend_choice(g),
        drop_privileges: g.drop_privileges,
        adhoc,
    }) {
        Ok(code) => code,
        Err(crate::runtime::RuntimeError::Config(e)) => {
            // Not eprintln!, which panics when stderr (the daemon's log) cannot be written.
            let _ = writeln!(std::io::stderr(), "{e}");
            EXIT_USAGE
        }
        Err(e) => {
            error(e);
            EXIT_FAILURE
        }
    }
}

/// Start a detached supervisor for `ctx` that adopts what a crashed one left running,
/// without starting anything else.
pub(crate) fn adopt_with_daemon(g: &Global, ctx: &super::context::Ctx) -> i32 {
    let resp = daemon::spawn(
        daemon::DaemonArgs {
            config: &ctx.config_path,
            project: &ctx.project,
            system: g.sys,
            backend: backend_name(g),
            log_level: g.log_level.map(|l| l.to_string()),
            service: None,
            adopt_only: true,
            drop_privileges: g.drop_privileges,
            // The `adhoc` project has no config file: its supervisor needs no path.
            adhoc: ctx.config.is_none() && ctx.project == crate::runtime::adhoc::PROJECT,
        },
        &ctx.paths,
    );
    match resp {
        Ok(_) => super::EXIT_OK,
        Err(e) => {
            error(e);
            EXIT_FAILURE
        }
    }
}
