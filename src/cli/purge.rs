//! `sysg purge`

use super::args::Global;
use super::context::resolve;
use super::{error, EXIT_FAILURE, EXIT_OK};
use crate::control::{client, protocol::Request, ControlError};

/// Stop everything of the project, then delete its state, sockets and logs.
pub fn run(g: &Global) -> i32 {
    let ctx = match resolve(g) {
        Ok(c) => c,
        Err(code) => return code,
    };
    match client::call(&ctx.paths, &ctx.project, Request::Shutdown, None) {
        Ok(r) if !r.ok => {
            error(r.error.unwrap_or_default());
            return EXIT_FAILURE;
        }
        Ok(_) | Err(ControlError::NotRunning { .. }) => {}
        Err(e) => {
            error(e);
            return EXIT_FAILURE;
        }
    }
    // The supervisor answers just before it exits; wait for its lock so nothing is removed
    // from under it.
    let _lock = ctx.paths.wait_unlocked();
    for dir in [
        &ctx.paths.log_dir,
        &ctx.paths.fifo_dir,
        &ctx.paths.run_dir,
        &ctx.paths.state_dir,
    ] {
        match std::fs::remove_dir_all(dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                error(format!("removing {}: {e}", dir.display()));
                return EXIT_FAILURE;
            }
        }
    }
    println!("purged project `{}`", ctx.project);
    EXIT_OK
}
