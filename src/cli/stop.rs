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
    // What is up now among the selection: what this stop stops, said once it is done.
    let up = running_among(&ctx, selected.as_deref());
    let began = std::time::Instant::now();
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
            if code == EXIT_OK {
                println!("{}", stopped_line(&up, began.elapsed()));
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

/// The selected services (all without a selection) that have a process or a schedule now;
/// spawned children (`web/worker-1`) are named as given. Empty when no supervisor answers.
fn running_among(ctx: &super::context::Ctx, selected: Option<&[String]>) -> Vec<String> {
    use crate::core::StateKind as S;
    // Quietly: when the supervisor cannot be asked, the stop itself says why.
    let report = client::call(
        &ctx.paths,
        &ctx.project,
        Request::Status,
        Some(std::time::Duration::from_secs(10)),
    )
    .ok()
    .filter(|r| r.ok)
    .and_then(|r| serde_json::from_value::<crate::control::protocol::StatusReport>(r.data).ok());
    let Some(report) = report else {
        return Vec::new();
    };
    let picked = |n: &str| selected.is_none_or(|v| v.iter().any(|s| s == n));
    let mut up: Vec<String> = report
        .services
        .iter()
        .filter(|s| picked(&s.name) && !matches!(s.state, S::Stopped | S::Failed | S::Completed))
        .map(|s| s.name.clone())
        .collect();
    for key in selected.unwrap_or_default() {
        let child = report
            .services
            .iter()
            .flat_map(|s| &s.children)
            .any(|c| &c.unit == key);
        if child {
            up.push(key.clone());
        }
    }
    up
}

/// `stopped: web, worker (2.1 s)`, or that nothing was running.
fn stopped_line(up: &[String], took: std::time::Duration) -> String {
    if up.is_empty() {
        "nothing was running".into()
    } else {
        format!("stopped: {} ({:.1} s)", up.join(", "), took.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stopped_line_names_services_and_time() {
        let up = vec!["web".to_string(), "worker".to_string()];
        assert_eq!(
            stopped_line(&up, std::time::Duration::from_millis(2140)),
            "stopped: web, worker (2.1 s)"
        );
        assert_eq!(
            stopped_line(&[], std::time::Duration::ZERO),
            "nothing was running"
        );
    }
}
