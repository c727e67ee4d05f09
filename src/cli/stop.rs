//! `sysg stop`

use super::args::{Global, ServiceArg};
use super::context::{orphaned_records, resolve_live};
use super::output::print_outcome;
use super::{error, EXIT_FAILURE, EXIT_OK};
use crate::control::{client, protocol::Request, ControlError};

/// `sysg stop [--service S]`
pub fn run(g: &Global, a: &ServiceArg) -> i32 {
    let ctx = match resolve_live(g) {
        Ok(c) => c,
        Err(code) => return code,
    };
    // A spawned child (`web/worker-1`) is known to the running supervisor only, not to the
    // config: it answers for the name.
    let child = a
        .service
        .as_deref()
        .filter(|s| crate::core::spawn::split_key(s).is_some() && a.tag.tags.is_empty());
    let selected = match child {
        Some(key) => Some(vec![key.to_string()]),
        None => match super::select::resolve(&ctx, a.service.as_deref(), &a.tag.tags, false) {
            Ok(s) => s,
            Err(code) => return code,
        },
    };
    let everything = selected.is_none();
    let request = match selected {
        Some(services) => Request::Stop {
            services: Some(services),
        },
        None => Request::Shutdown,
    };
    match client::call(&ctx.paths, &ctx.project, request, None) {
        Ok(resp) => {
            let code = print_outcome(&resp);
            if code == EXIT_OK && everything {
                if let Some(lock) = ctx.paths.wait_unlocked() {
                    ctx.paths.clear_leftovers(&lock);
                }
            }
            code
        }
        Err(ControlError::NotRunning { project, .. }) => {
            if orphaned_records(&ctx.paths).is_empty() && !timers_left(&ctx.paths) {
                eprintln!(
                    "sysg: no supervisor is running for project `{project}`; nothing to stop"
                );
                return EXIT_OK;
            }
            // Services outlived a crashed supervisor: a new one adopts them, then stops them.
            let code = super::start::adopt_with_daemon(g, &ctx);
            if code != EXIT_OK {
                return code;
            }
            run(g, a)
        }
        Err(e) => {
            error(e);
            EXIT_FAILURE
        }
    }
}

/// A crashed supervisor left cron timers armed (they outlive it, like systemd services do).
fn timers_left(paths: &crate::runtime::paths::ProjectPaths) -> bool {
    use crate::runtime::state::{self, Loaded};
    matches!(state::load(&paths.state_file), Ok(Loaded::Ok(s)) if !s.timers.is_empty())
}
