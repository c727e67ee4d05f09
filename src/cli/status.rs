//! `sysg status`

use std::time::Duration;

use super::args::{Global, StatusArgs};
use super::context::{resolve, Ctx};
use super::output::{color_enabled, status_table};
use super::{error, EXIT_FAILURE, EXIT_NOT_RUNNING, EXIT_OK, EXIT_USAGE};
use crate::control::protocol::{Request, ServiceStatus, StatusReport};
use crate::control::{client, ControlError};
use crate::core::StateKind;
use crate::runtime::state::{self, Loaded};

/// `sysg status`
pub fn run(g: &Global, a: &StatusArgs) -> i32 {
    let ctx = match resolve(g) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let interval = match a.stream.as_deref().map(parse_interval) {
        None => None,
        Some(Ok(d)) => Some(d),
        Some(Err(msg)) => {
            error(msg);
            return EXIT_USAGE;
        }
    };
    loop {
        let code = once(&ctx, a);
        match interval {
            None => return code,
            Some(d) => {
                if code == EXIT_USAGE || code == EXIT_FAILURE {
                    return code;
                }
                std::thread::sleep(d);
                if std::io::IsTerminal::is_terminal(&std::io::stdout()) {
                    print!("\x1b[2J\x1b[H");
                }
            }
        }
    }
}

/// `5`, `2s`, `1m`, `500ms`.
fn parse_interval(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let bad = || format!("invalid --stream interval `{s}`: expected e.g. 5, 2s, 1m, 500ms");
    let (num, unit) = t
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .map(|i| t.split_at(i))
        .unwrap_or((t, "s"));
    let n: f64 = num.parse().map_err(|_| bad())?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" | "sec" | "second" | "seconds" => n,
        "m" | "min" | "minute" | "minutes" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(bad()),
    };
    if !(secs.is_finite() && secs > 0.0) {
        return Err(bad());
    }
    Ok(Duration::from_secs_f64(secs))
}

fn once(ctx: &Ctx, a: &StatusArgs) -> i32 {
    let (report, running) = match client::call(
        &ctx.paths.socket,
        &ctx.project,
        Request::Status,
        Some(Duration::from_secs(10)),
    ) {
        Ok(resp) if resp.ok => match serde_json::from_value::<StatusReport>(resp.data) {
            Ok(r) => (r, true),
            Err(e) => {
                error(format!("unreadable status: {e}"));
                return EXIT_FAILURE;
            }
        },
        Ok(resp) => {
            error(resp.error.unwrap_or_default());
            return EXIT_FAILURE;
        }
        Err(ControlError::NotRunning { .. }) => (offline_report(ctx), false),
        Err(e) => {
            error(e);
            return EXIT_FAILURE;
        }
    };
    if let Some(s) = &a.service {
        if !report.services.iter().any(|x| &x.name == s) {
            error(format!(
                "unknown service `{s}`; services are: {}",
                report
                    .services
                    .iter()
                    .map(|x| x.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
            return EXIT_USAGE;
        }
    }
    let selected: Vec<&ServiceStatus> = report
        .services
        .iter()
        .filter(|x| a.service.as_ref().is_none_or(|s| &x.name == s))
        .collect();
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
        print!("{}", status_table(&report, &selected, color_enabled()));
    }
    if !running {
        EXIT_NOT_RUNNING
    } else if selected.iter().all(|s| s.is_good()) {
        EXIT_OK
    } else {
        EXIT_FAILURE
    }
}

/// What status can say without a supervisor: the configured services, all stopped.
fn offline_report(ctx: &Ctx) -> StatusReport {
    let (memo, saved_cron) = match state::load(&ctx.paths.state_file) {
        Ok(Loaded::Ok(s)) => (s.units, s.cron),
        _ => Default::default(),
    };
    let names: Vec<String> = ctx
        .config
        .as_ref()
        .map(|c| c.services.iter().map(|s| s.name.clone()).collect())
        .unwrap_or_default();
    let live = super::context::orphaned_records(&ctx.paths);
    StatusReport {
        project: ctx.project.clone(),
        config: ctx.config_path.clone(),
        backend: "none".into(),
        supervisor_pid: None,
        services: names
            .into_iter()
            .map(|name| {
                let m = memo.get(&name).cloned().unwrap_or_default();
                let rec = live.iter().find(|r| r.unit == name);
                ServiceStatus {
                    state: if rec.is_some() {
                        StateKind::Running
                    } else {
                        StateKind::Stopped
                    },
                    pid: rec.map(|r| r.pid),
                    reason: Some(if rec.is_some() {
                        "running without a supervisor; `sysg start` re-adopts it".into()
                    } else {
                        "no supervisor running".into()
                    }),
                    cron: super::cron::offline_status(ctx.config.as_ref(), &name, &saved_cron),
                    name,
                    uptime_secs: None,
                    restarts: m.restarts,
                    last_exit: m.last_exit,
                    health: None,
                    next_restart_secs: None,
                }
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals() {
        assert_eq!(parse_interval("5"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_interval("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_interval("1m"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_interval("1second"), Ok(Duration::from_secs(1)));
        assert!(parse_interval("x").is_err());
        assert!(parse_interval("0").is_err());
    }
}
