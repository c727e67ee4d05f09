//! `sysg security [SERVICE] [--json]`: how exposed each service is, from its `sandbox:` and
//! identity (`sandbox::exposure`), in the spirit of `systemd-analyze security`. Reads the
//! config only: the same answer whether or not the project runs.

use serde_json::json;

use super::args::{Global, SecurityArgs};
use super::context::{config_path, print_config_errors};
use super::output::color_enabled;
use super::term::print;
use super::{error, EXIT_OK, EXIT_USAGE};
use crate::config::{self, schema::Service};
use crate::sandbox::exposure::{assess, Exposure};

/// `sysg security [SERVICE] [--json]`
pub fn run(g: &Global, a: &SecurityArgs) -> i32 {
    let path = config_path(g);
    let cfg = match config::load(&path) {
        Ok(c) => c,
        Err(e) => {
            print_config_errors(&path, &e);
            return EXIT_USAGE;
        }
    };
    let services: Vec<&Service> = match &a.service {
        Some(name) => match cfg.service(name) {
            Some(s) => vec![s],
            None => {
                let names: Vec<&str> = cfg.services.iter().map(|s| s.name.as_str()).collect();
                error(format!(
                    "unknown service `{name}`; services are: {}",
                    names.join(", ")
                ));
                return EXIT_USAGE;
            }
        },
        None => cfg.services.iter().collect(),
    };
    let reports: Vec<(&Service, Exposure)> = services
        .into_iter()
        .map(|s| (s, assess(&s.sandbox, runs_as_root(s, g.sys))))
        .collect();
    if a.json {
        let v = json!({
            "project": cfg.project,
            "services": reports.iter().map(|(s, e)| json!({
                "name": s.name,
                "score": e.score,
                "rating": e.rating,
                "checks": e.checks.iter().map(|c| json!({
                    "field": c.field,
                    "on": c.on(),
                    "exposure": c.exposure,
                    "weight": c.weight,
                    "state": c.state,
                    "about": c.about,
                    "suggestion": c.suggestion,
                })).collect::<Vec<_>>(),
                "next": e.next,
            })).collect::<Vec<_>>(),
        });
        print(&format!("{v}\n"));
        return EXIT_OK;
    }
    let color = color_enabled();
    let text: Vec<String> = reports
        .iter()
        .map(|(s, e)| render(&s.name, e, color))
        .collect();
    print(&text.join("\n"));
    EXIT_OK
}

/// Whether `svc` would run as root: its `user:`, else the supervisor's own identity
/// (`--sys` runs it as root).
fn runs_as_root(svc: &Service, sys: bool) -> bool {
    match &svc.user {
        Some(u) => config::privileged::lookup_user(u).is_ok_and(|(uid, _)| uid == 0),
        None => sys || nix::unistd::geteuid().is_root(),
    }
}

/// The human report of one service.
pub fn render(name: &str, e: &Exposure, color: bool) -> String {
    let paint = |code: &str, s: &str| {
        if color {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    };
    let rating_color = match e.rating {
        "safe" | "ok" => "32",
        "medium" => "33",
        _ => "31",
    };
    let mut out = format!(
        "{name}: exposure {:.1}/10 {}\n",
        e.score,
        paint(rating_color, &e.rating.to_uppercase())
    );
    let width = e.checks.iter().map(|c| c.field.len()).max().unwrap_or(0);
    for c in &e.checks {
        let (mark, code) = if c.on() {
            ("✓", "32")
        } else if c.exposure < 1.0 {
            ("~", "33")
        } else {
            ("✗", "31")
        };
        out.push_str(&format!(
            "  {} {:<width$}  {}\n",
            paint(code, mark),
            c.field,
            c.state
        ));
    }
    if !e.next.is_empty() {
        out.push_str("  next:\n");
        for field in &e.next {
            if let Some(c) = e.checks.iter().find(|c| c.field == *field) {
                let at = if c.field.starts_with("sandbox.") {
                    "sandbox: "
                } else {
                    ""
                };
                out.push_str(&format!("    {at}{}  ({})\n", c.suggestion, c.about));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::Sandbox;

    #[test]
    fn plain_report() {
        let s = Sandbox {
            no_new_privileges: true,
            ..Sandbox::default()
        };
        let text = render("web", &assess(&s, false), false);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "web: exposure 8.0/10 EXPOSED");
        assert!(
            lines.contains(&"  ✓ sandbox.no_new_privileges          on"),
            "{text}"
        );
        assert!(text.contains("  next:\n    sandbox: protect_system: strict  (the service can change the operating system's files)\n"), "{text}");
        assert!(!text.contains('\x1b'));
    }
}
