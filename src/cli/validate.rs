//! `sysg validate`

use super::args::{Global, ValidateArgs};
use super::context::config_path;
use super::{EXIT_OK, EXIT_USAGE};
use crate::config;

/// `sysg validate [--config F] [--json]`
pub fn run(g: &Global, a: &ValidateArgs) -> i32 {
    let path = config_path(g);
    // Settings this host or this user cannot apply are errors too (config/privileged.rs).
    // So are settings the reachable systemd manager is too old for (config/systemd_versions.rs).
    let loaded = config::load(&path).and_then(|cfg| {
        crate::runtime::privileges::check(&cfg, g.drop_privileges, g.sys)?;
        let busy = super::start::sockets_in_use(g, &cfg);
        if !busy.is_empty() {
            return Err(config::ConfigErrors(busy));
        }
        let choice = super::start::backend_choice(g);
        let refused = crate::backend::select::version_problems(choice, g.sys, &cfg);
        if refused.is_empty() {
            Ok(cfg)
        } else {
            Err(config::ConfigErrors(refused))
        }
    });
    match loaded {
        Ok(cfg) => {
            let cron = next_cron_runs(&cfg);
            if a.json {
                let v = serde_json::json!({
                    "ok": true,
                    "config": cfg.path,
                    "project": cfg.project,
                    "services": cfg.services.iter().map(|s| s.name.clone()).collect::<Vec<_>>(),
                    "cron": cron.iter().map(|(n, runs)| serde_json::json!({
                        "name": n,
                        "next_runs": runs.iter().map(|t| t.to_rfc3339()).collect::<Vec<_>>(),
                    })).collect::<Vec<_>>(),
                });
                println!("{v}");
            } else {
                let n = cfg.services.len();
                println!(
                    "{}: ok (project `{}`, {n} service{})",
                    cfg.path.display(),
                    cfg.project,
                    if n == 1 { "" } else { "s" }
                );
                for (name, runs) in &cron {
                    let shown: Vec<String> = runs
                        .iter()
                        .map(|t| t.format("%Y-%m-%d %H:%M:%S %Z").to_string())
                        .collect();
                    println!("  cron {name}: next runs {}", shown.join(", "));
                }
            }
            EXIT_OK
        }
        Err(e) => {
            if a.json {
                let v = serde_json::json!({ "ok": false, "config": path, "errors": e.0 });
                println!("{v}");
            } else {
                super::context::print_config_errors(&path, &e);
            }
            EXIT_USAGE
        }
    }
}

/// The next three run times of every cron job, in the job's time zone.
fn next_cron_runs(cfg: &config::Config) -> Vec<(String, Vec<chrono::DateTime<chrono_tz::Tz>>)> {
    let now = chrono::Utc::now();
    cfg.services
        .iter()
        .filter_map(|s| {
            let c = s.cron.as_ref()?;
            let sched = config::CronSchedule::parse(&c.expression, c.timezone.as_deref()).ok()?;
            let tz = sched.timezone();
            Some((
                s.name.clone(),
                sched
                    .upcoming(now, 3)
                    .into_iter()
                    .map(|t| t.with_timezone(&tz))
                    .collect(),
            ))
        })
        .collect()
}
