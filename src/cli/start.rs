//! `sysg start` and the hidden `sysg supervise`.

use std::io::Write as _;

use super::args::{BackendChoice, Global, StartArgs, SuperviseArgs};
use super::context::load_config;
use super::output::print_outcome;
use super::{error, EXIT_FAILURE, EXIT_USAGE};
use crate::control::{client, protocol::Request, ControlError};
use crate::runtime::paths::Roots;
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
    if let Some(s) = &a.service {
        if cfg.service(s).is_none() {
            error(format!(
                "unknown service `{s}`; services are: {}",
                cfg.services
                    .iter()
                    .map(|s| s.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
            return EXIT_USAGE;
        }
    }
    let paths = Roots::for_mode(g.sys).project(&cfg.project);
    let services = a.service.clone().map(|s| vec![s]);
    // A supervisor already runs for this project: ask it.
    match client::call(
        &paths.socket,
        &cfg.project,
        Request::Start { services },
        None,
    ) {
        Ok(resp) => return print_outcome(&resp),
        Err(ControlError::NotRunning { .. }) => {}
        Err(e) => {
            error(e);
            return EXIT_FAILURE;
        }
    }
    if a.daemonize {
        let resp = daemon::spawn(
            daemon::DaemonArgs {
                config: &cfg.path,
                system: g.sys,
                backend: backend_name(g),
                log_level: g.log_level.map(|l| l.to_string()),
                service: a.service.as_deref(),
                adopt_only: false,
            },
            &paths,
        );
        return match resp {
            Ok(r) => print_outcome(&r),
            Err(e) => {
                error(e);
                EXIT_FAILURE
            }
        };
    }
    run_supervisor(g, cfg.path.clone(), a.service.clone(), true, None, false)
}

/// `sysg supervise` (what `start --daemonize` runs).
pub fn supervise(g: &Global, a: &SuperviseArgs) -> i32 {
    let path = super::context::config_path(g);
    run_supervisor(g, path, a.service.clone(), false, a.ready_fd, a.adopt_only)
}

fn run_supervisor(
    g: &Global,
    config_path: std::path::PathBuf,
    service: Option<String>,
    echo: bool,
    ready_fd: Option<i32>,
    adopt_only: bool,
) -> i32 {
    match supervisor::run(supervisor::Options {
        config_path,
        system: g.sys,
        services: service.map(|s| vec![s]),
        adopt_only,
        echo,
        ready_fd,
        backend: backend_choice(g),
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
            system: g.sys,
            backend: backend_name(g),
            log_level: g.log_level.map(|l| l.to_string()),
            service: None,
            adopt_only: true,
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
