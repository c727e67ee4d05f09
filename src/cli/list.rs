//! `sysg list`: a compact `status`, one line per service and no header, so that it reads
//! well in a terminal and splits cleanly in a shell (`sysg list | awk '{print $1}'`).

use super::args::{Global, ListArgs};
use super::context::resolve;
use super::human::human_duration;
use super::output::state_word;
use super::status::{exit_code, fetch, select_services};
use super::{error, EXIT_FAILURE};
use crate::control::protocol::ServiceStatus;
use crate::core::StateKind;

/// `sysg list [--tag T].. [--json]`; exit codes as `status`.
pub fn run(g: &Global, a: &ListArgs) -> i32 {
    if super::context::nothing_running(g) {
        error(super::context::nothing_here(g));
        return super::EXIT_NOT_RUNNING;
    }
    let ctx = match resolve(g) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let (report, running) = match fetch(&ctx) {
        Ok(r) => r,
        Err(code) => return code,
    };
    let selected = match select_services(&report, None, &a.tags) {
        Ok(s) => s,
        Err(code) => return code,
    };
    if a.json {
        let mut shown = report.clone();
        shown.services = selected.iter().map(|s| (*s).clone()).collect();
        match serde_json::to_string_pretty(&shown) {
            Ok(s) => println!("{s}"),
            Err(e) => {
                error(e);
                return EXIT_FAILURE;
            }
        }
    } else {
        print!("{}", lines(&selected));
    }
    exit_code(&selected, running)
}

/// `NAME STATE PID UPTIME TAGS`, columns aligned; `-` for what is absent.
fn lines(services: &[&ServiceStatus]) -> String {
    let rows: Vec<[String; 5]> = services
        .iter()
        .map(|s| {
            [
                s.name.clone(),
                state_word(s.state),
                s.pid.map_or_else(|| "-".into(), |p| p.to_string()),
                match (s.state, s.uptime_secs) {
                    (StateKind::Running, Some(u)) => human_duration(u),
                    _ => "-".into(),
                },
                if s.tags.is_empty() {
                    "-".into()
                } else {
                    s.tags.join(",")
                },
            ]
        })
        .collect();
    let mut widths = [0usize; 5];
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    for r in &rows {
        let mut line = String::new();
        for (i, c) in r.iter().enumerate() {
            line.push_str(c);
            if i + 1 < r.len() {
                line.push_str(&" ".repeat(widths[i] - c.chars().count() + 2));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc(name: &str, state: StateKind, pid: Option<u32>, tags: &[&str]) -> ServiceStatus {
        ServiceStatus {
            pid,
            uptime_secs: Some(65.0),
            tags: tags.iter().map(|t| t.to_string()).collect(),
            ..ServiceStatus::new(name, state)
        }
    }

    #[test]
    fn one_aligned_line_per_service() {
        let a = svc("api", StateKind::Running, Some(4242), &["web", "critical"]);
        let b = svc("batch-job", StateKind::Stopped, None, &[]);
        assert_eq!(
            lines(&[&a, &b]),
            "api        running  4242  1m05s  web,critical\n\
             batch-job  stopped  -     -      -\n"
        );
    }
}
