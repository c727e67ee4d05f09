//! `sysg status`

use std::time::Duration;

use super::args::{Global, StatusArgs};
use super::context::{resolve_live, Ctx};
use super::output::{color_enabled, status_table_with};
use super::select::{from_report, select};
use super::term::{print_once, stdout_width, stream, stream_interval, stream_mode, Frame};
use super::{error, EXIT_FAILURE, EXIT_NOT_RUNNING, EXIT_OK, EXIT_USAGE};
use crate::control::protocol::{Request, ServiceStatus, StatusReport};
use crate::control::{client, ControlError};
use crate::core::StateKind;
use crate::runtime::state::{self, Loaded};

/// `sysg status`
pub fn run(g: &Global, a: &StatusArgs) -> i32 {
    if super::context::nothing_running(g) {
        error(super::context::nothing_here(g));
        return super::EXIT_NOT_RUNNING;
    }
    let ctx = match resolve_live(g) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let ctx = super::context::or_system_supervisor(g, ctx);
    let interval = match stream_interval(a.stream.as_deref()) {
        Ok(i) => i,
        Err(code) => return code,
    };
    let Some(interval) = interval else {
        return print_once(once(&ctx, a, false));
    };
    let mode = stream_mode(a.json);
    // A stream goes on whatever the services do (and while no supervisor runs: one may
    // come); it stops on a usage error or an unreachable supervisor.
    stream(interval, mode, || match once(&ctx, a, true) {
        Frame::Last(t, code) if code == EXIT_USAGE => Frame::Last(t, code),
        Frame::Last(t, _) => Frame::Show(t),
        f => f,
    })
}

/// One snapshot: the text to print and the exit code status would end with.
fn once(ctx: &Ctx, a: &StatusArgs, compact: bool) -> Frame {
    let (report, running) = match fetch(ctx) {
        Ok(r) => r,
        Err(code) => return Frame::Stop(code),
    };
    let selected = match select_services(&report, a.service.as_deref(), &a.tag.tags) {
        Ok(s) => s,
        Err(code) => return Frame::Stop(code),
    };
    let text = if a.json {
        let mut shown = report.clone();
        shown.services = selected.iter().map(|s| (*s).clone()).collect();
        let json = if compact {
            serde_json::to_string(&shown)
        } else {
            serde_json::to_string_pretty(&shown)
        };
        match json {
            Ok(s) => s + "\n",
            Err(e) => {
                error(e);
                return Frame::Stop(EXIT_FAILURE);
            }
        }
    } else {
        status_table_with(&report, &selected, color_enabled(), stdout_width(), a.units)
            + &super::spawn::children_tree(&selected)
    };
    Frame::Last(text, exit_code(&selected, running))
}

/// The supervisor's report and `true`, or what can be said without one and `false`.
pub(super) fn fetch(ctx: &Ctx) -> Result<(StatusReport, bool), i32> {
    match client::call(
        &ctx.paths,
        &ctx.project,
        Request::Status,
        Some(Duration::from_secs(10)),
    ) {
        Ok(resp) if resp.ok => match serde_json::from_value::<StatusReport>(resp.data) {
            Ok(r) => Ok((r, true)),
            Err(e) => {
                error(format!("unreadable status: {e}"));
                Err(EXIT_FAILURE)
            }
        },
        Ok(resp) => {
            error(resp.error.unwrap_or_default());
            Err(EXIT_FAILURE)
        }
        Err(ControlError::NotRunning { .. }) => Ok((offline_report(ctx), false)),
        Err(e) => {
            error(e);
            Err(EXIT_FAILURE)
        }
    }
}

/// The services of `report` picked by `--service`/`--tag` (all when neither is given).
pub(super) fn select_services<'a>(
    report: &'a StatusReport,
    service: Option<&str>,
    tags: &[String],
) -> Result<Vec<&'a ServiceStatus>, i32> {
    let names = select(&from_report(report), service, tags).map_err(|e| {
        error(e);
        EXIT_USAGE
    })?;
    Ok(report
        .services
        .iter()
        .filter(|x| names.as_ref().is_none_or(|n| n.contains(&x.name)))
        .collect())
}

/// 3 without a supervisor; 0 when every selected service runs (or completed) and is not
/// unhealthy or still waiting for its first passing probe; 1 otherwise (degraded).
pub(super) fn exit_code(selected: &[&ServiceStatus], running: bool) -> i32 {
    let healthy = |s: &ServiceStatus| {
        s.is_good() && !matches!(s.health.as_deref(), Some("unhealthy") | Some("starting"))
    };
    if !running {
        EXIT_NOT_RUNNING
    } else if selected.iter().all(|s| healthy(s)) {
        EXIT_OK
    } else {
        EXIT_FAILURE
    }
}

/// What status can say without a supervisor: the configured services, all stopped.
pub(crate) fn offline_report(ctx: &Ctx) -> StatusReport {
    let (memo, saved_cron, backend) = match state::load(&ctx.paths.state_file) {
        Ok(Loaded::Ok(s)) => (s.units, s.cron, Some(s.backend)),
        _ => Default::default(),
    };
    let names: Vec<String> = ctx
        .config
        .as_ref()
        .map(|c| c.services.iter().map(|s| s.name.clone()).collect())
        .unwrap_or_default();
    let mut live: Vec<(String, u32)> = super::context::orphaned_records(&ctx.paths)
        .into_iter()
        .map(|r| (r.unit, r.pid))
        .collect();
    // systemd units outlive their supervisor and its state file: ask the manager, unless the
    // state says the process backend ran them.
    if backend.as_deref() != Some("process") {
        let system = ctx
            .paths
            .state_dir
            .starts_with(crate::runtime::paths::Roots::system().state);
        for (unit, pid) in crate::backend::observe::running_without_supervisor(system, &ctx.project)
        {
            if !live.iter().any(|(u, _)| *u == unit) {
                live.push((unit, pid));
            }
        }
    }
    StatusReport {
        project: ctx.project.clone(),
        config: ctx.config_path.clone(),
        backend: "none".into(),
        supervisor_pid: None,
        services: names
            .into_iter()
            .map(|name| {
                let m = memo.get(&name).cloned().unwrap_or_default();
                let rec = live.iter().find(|(u, _)| *u == name);
                let tags = ctx
                    .config
                    .as_ref()
                    .and_then(|c| c.service(&name))
                    .map(|s| s.tags.clone())
                    .unwrap_or_default();
                let state = if rec.is_some() {
                    StateKind::Running
                } else {
                    StateKind::Stopped
                };
                ServiceStatus {
                    pid: rec.map(|(_, pid)| *pid),
                    reason: Some(if rec.is_some() {
                        "running without a supervisor; `sysg start` re-adopts it".into()
                    } else {
                        "no supervisor running".into()
                    }),
                    cron: super::cron::offline_status(ctx.config.as_ref(), &name, &saved_cron),
                    restarts: m.restarts,
                    last_exit: m.last_exit,
                    tags,
                    ..ServiceStatus::new(name, state)
                }
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::term::parse_interval;

    fn svc(state: StateKind, health: Option<&str>) -> ServiceStatus {
        ServiceStatus {
            health: health.map(str::to_string),
            ..ServiceStatus::new("s", state)
        }
    }

    #[test]
    fn exit_codes_say_running_healthy_degraded_or_absent() {
        let up = svc(StateKind::Running, None);
        let healthy = svc(StateKind::Running, Some("healthy"));
        let done = svc(StateKind::Completed, None);
        assert_eq!(exit_code(&[&up, &healthy, &done], true), EXIT_OK);
        for bad in [
            svc(StateKind::Running, Some("unhealthy")),
            svc(StateKind::Running, Some("starting")),
            svc(StateKind::Backoff, None),
            svc(StateKind::Stopped, None),
        ] {
            assert_eq!(exit_code(&[&up, &bad], true), EXIT_FAILURE, "{bad:?}");
        }
        assert_eq!(exit_code(&[&up], false), EXIT_NOT_RUNNING);
    }

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
