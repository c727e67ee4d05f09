//! `sysg spawn`: ask the supervisor of the calling service to start a tracked child.
//!
//! The supervisor is found through `SYSG_SOCKET`, which it exports to every service, so no
//! config file is needed inside a service; outside one the usual config resolution applies
//! (and the supervisor will refuse the caller anyway, as it is not part of a service).

use std::path::PathBuf;
use std::time::Duration;

use super::args::{Global, SpawnArgs};
use super::context::resolve;
use super::{error, EXIT_FAILURE, EXIT_OK, EXIT_USAGE};
use crate::control::client;
use crate::control::protocol::{Request, SpawnRequest};

/// How long to wait for the supervisor's answer (it starts the child before answering).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);

/// `sysg spawn --name N [--ttl SECS] -- CMD..`: prints the child's pid and nothing else.
pub fn run(g: &Global, a: &SpawnArgs) -> i32 {
    if a.command.is_empty() || a.command[0].is_empty() {
        error(format!("cannot spawn `{}`: the command is empty", a.name));
        return EXIT_USAGE;
    }
    // Inside a service, the supervisor runs as root or as the service's own user.
    let (socket, owner, project) = match std::env::var_os("SYSG_SOCKET") {
        Some(s) if !s.is_empty() => (
            PathBuf::from(s),
            nix::unistd::geteuid().as_raw(),
            std::env::var("SYSG_PROJECT").unwrap_or_default(),
        ),
        _ => match resolve(g) {
            Ok(ctx) => (
                ctx.paths.socket.clone(),
                ctx.paths.server_uid,
                ctx.project.clone(),
            ),
            Err(code) => return code,
        },
    };
    let request = Request::Spawn(SpawnRequest {
        name: a.name.clone(),
        command: a.command.clone(),
        env: std::env::vars().collect(),
        cwd: std::env::current_dir().ok(),
        ttl_secs: a.ttl,
        log_level: g.log_level.map(|l| l.to_string().to_ascii_lowercase()),
    });
    match client::call_at(&socket, owner, &project, request, Some(ANSWER_TIMEOUT)) {
        Ok(resp) if resp.ok => match resp.data.get("pid").and_then(|p| p.as_u64()) {
            Some(pid) => {
                println!("{pid}");
                EXIT_OK
            }
            None => {
                error("the supervisor did not say which pid the child has");
                EXIT_FAILURE
            }
        },
        Ok(resp) => {
            error(format!(
                "cannot spawn `{}`: {}",
                a.name,
                resp.error.unwrap_or_else(|| "refused".into())
            ));
            EXIT_FAILURE
        }
        Err(e) => {
            error(format!("cannot spawn `{}`: {e}", a.name));
            EXIT_FAILURE
        }
    }
}

/// The spawned children of `services` as an indented tree under their service, one line each:
/// name, pid, state, uptime and TTL left. Empty when no service has children.
pub(crate) fn children_tree(services: &[&crate::control::protocol::ServiceStatus]) -> String {
    let mut out = String::new();
    for s in services.iter().filter(|s| !s.children.is_empty()) {
        out.push_str(&format!("\n{} children:\n", s.name));
        render(&s.name, &s.children, 1, &mut out);
    }
    out
}

/// Depth-first from `parent`, so each child sits under the one that spawned it. A child
/// orphaned by its parent's exit keeps its parent's name and is listed at the end, flat.
fn render(
    parent: &str,
    all: &[crate::control::protocol::ChildStatus],
    indent: usize,
    out: &mut String,
) {
    use super::human::human_duration;
    for c in all.iter().filter(|c| c.parent == parent) {
        let pid = c.pid.map_or("-".to_string(), |p| p.to_string());
        let up = c.uptime_secs.map_or("-".to_string(), human_duration);
        let ttl = c
            .ttl_left_secs
            .map_or(String::new(), |t| format!("  ttl {}", human_duration(t)));
        out.push_str(&format!(
            "{}└─ {}  pid {pid}  {}  up {up}{ttl}\n",
            "   ".repeat(indent - 1),
            c.name,
            c.state
        ));
        // Depth is bounded by the tree (names are unique, so no cycle).
        render(&c.name, all, indent + 1, out);
    }
}
