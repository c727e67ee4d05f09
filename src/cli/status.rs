//! `sysg status`

use std::time::Duration;

use super::args::{Global, StatusArgs};
use super::context::{resolve, Ctx};
use super::output::{color_enabled, status_table};
use super::term::{parse_interval, print, stdout_width, stream, Frame, Mode};
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
    let tty = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let Some(interval) = interval else {
        return match once(&ctx, a, false) {
            Frame::Show(t) => {
                print(&t);
                EXIT_OK
            }
            Frame::Last(t, code) => {
                print(&t);
                code
            }
            Frame::Stop(code) => code,
        };
    };
    let mode = match (a.json, tty) {
        (true, _) => Mode::Lines,
        (false, true) => Mode::InPlace,
        (false, false) => Mode::Snapshots,
    };
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
                return Frame::Stop(EXIT_FAILURE);
            }
        },
        Ok(resp) => {
            error(resp.error.unwrap_or_default());
            return Frame::Stop(EXIT_FAILURE);
        }
        Err(ControlError::NotRunning { .. }) => (offline_report(ctx), false),
        Err(e) => {
            error(e);
            return Frame::Stop(EXIT_FAILURE);
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
            return Frame::Stop(EXIT_USAGE);
        }
    }
    let selected: Vec<&ServiceStatus> = report
        .services
        .iter()
        .filter(|x| a.service.as_ref().is_none_or(|s| &x.name == s))
        .collect();
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
        status_table(&report, &selected, color_enabled(), stdout_width())
    };
    let code = if !running {
        EXIT_NOT_RUNNING
    } else if selected.iter().all(|s| s.is_good()) {
        EXIT_OK
    } else {
        EXIT_FAILURE
    };
    Frame::Last(text, code)
}

/// What status can say without a supervisor: the configured services, all stopped.
pub(crate) fn offline_report(ctx: &Ctx) -> StatusReport {
    let memo = match state::load(&ctx.paths.state_file) {
        Ok(Loaded::Ok(s)) => s.units,
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
