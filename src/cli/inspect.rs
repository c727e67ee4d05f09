//! `sysg inspect UNIT`

use std::time::Duration;

use super::args::{Global, InspectArgs};
use super::context::resolve;
use super::output::{human_duration, state_word};
use super::{error, EXIT_FAILURE, EXIT_OK, EXIT_USAGE};
use crate::control::protocol::{Request, StatusReport};
use crate::control::{client, ControlError};

/// `sysg inspect UNIT [--json]`
pub fn run(g: &Global, a: &InspectArgs) -> i32 {
    let ctx = match resolve(g) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let report = match client::call(
        &ctx.paths.socket,
        &ctx.project,
        Request::Status,
        Some(Duration::from_secs(10)),
    ) {
        Ok(r) if r.ok => serde_json::from_value::<StatusReport>(r.data).ok(),
        Ok(r) => {
            error(r.error.unwrap_or_default());
            return EXIT_FAILURE;
        }
        Err(ControlError::NotRunning { .. }) => None,
        Err(e) => {
            error(e);
            return EXIT_FAILURE;
        }
    };
    let svc = ctx.config.as_ref().and_then(|c| c.service(&a.unit));
    let status = report
        .as_ref()
        .and_then(|r| r.services.iter().find(|s| s.name == a.unit));
    if svc.is_none() && status.is_none() {
        error(format!("unknown unit `{}`", a.unit));
        return EXIT_USAGE;
    }
    let dependents: Vec<String> = ctx
        .config
        .as_ref()
        .map(|c| {
            c.services
                .iter()
                .filter(|s| s.depends_on.iter().any(|d| d.service == a.unit))
                .map(|s| s.name.clone())
                .collect()
        })
        .unwrap_or_default();
    // A cron job's runs, from the supervisor or, without one, from the saved state.
    let cron = status.and_then(|s| s.cron.clone()).or_else(|| {
        let saved = match crate::runtime::state::load(&ctx.paths.state_file) {
            Ok(crate::runtime::state::Loaded::Ok(s)) => s.cron,
            _ => Default::default(),
        };
        super::cron::offline_status(ctx.config.as_ref(), &a.unit, &saved)
    });
    // Env values can be secrets: show keys only.
    let env_keys: Vec<String> = svc
        .map(|s| s.env.vars.iter().map(|(k, _)| k.clone()).collect())
        .unwrap_or_default();
    let data = serde_json::json!({
        "name": a.unit,
        "project": ctx.project,
        "backend": report.as_ref().map(|r| r.backend.clone()),
        "status": status,
        "depends_on": svc.map(|s| s.depends_on.clone()),
        "dependents": dependents,
        "command": svc.map(|s| s.run.argv()),
        "working_dir": svc.and_then(|s| s.working_dir.clone()),
        "env_keys": env_keys,
        "restart_policy": svc.map(|s| s.restart_policy),
        "tags": svc.map(|s| s.tags.clone()),
        "cron": cron,
    });
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&data).unwrap_or_default()
        );
        return EXIT_OK;
    }
    println!("{}", a.unit);
    if let Some(s) = status {
        println!("  state:     {}", state_word(s.state));
        if let Some(p) = s.pid {
            println!("  pid:       {p}");
        }
        if let Some(u) = s.uptime_secs {
            println!("  for:       {}", human_duration(u));
        }
        println!("  restarts:  {}", s.restarts);
        if let Some(e) = s.last_exit {
            println!("  last exit: {e}");
        }
        if let Some(r) = &s.reason {
            println!("  reason:    {r}");
        }
    } else {
        println!("  state:     not running (no supervisor)");
    }
    if let Some(c) = &cron {
        print!(
            "{}",
            super::cron::details(&ctx.project, &a.unit, c, chrono::Utc::now())
        );
    }
    if let Some(svc) = svc {
        println!("  command:   {}", svc.run.argv().join(" "));
        if !svc.depends_on.is_empty() {
            let d: Vec<String> = svc
                .depends_on
                .iter()
                .map(|d| format!("{} ({:?})", d.service, d.condition).to_lowercase())
                .collect();
            println!("  needs:     {}", d.join(", "));
        }
        if !dependents.is_empty() {
            println!("  needed by: {}", dependents.join(", "));
        }
        if !env_keys.is_empty() {
            println!("  env:       {}", env_keys.join(", "));
        }
    }
    EXIT_OK
}
