//! From a validated config to the core's plan.

use std::sync::Arc;

use crate::config::calendar::on_calendar;
use crate::config::{Config, CronSchedule};
use crate::core::{JobPlan, UnitPlan};
use crate::spec::UnitSpec;

/// The long-running units the core supervises for `config`; cron jobs are in `jobs`.
pub fn plan(config: &Config) -> Vec<UnitPlan> {
    config
        .services
        .iter()
        .filter(|s| s.cron.is_none())
        .map(|s| UnitPlan {
            name: s.name.clone(),
            spec: Arc::new(spec_of(config, s)),
            depends_on: s.depends_on.clone(),
            restart: s.restart_policy,
            backoff: s.backoff,
            max_restarts: s.max_restarts,
            settle: crate::core::START_SETTLE,
            health: s.health_check.clone().map(Arc::new),
        })
        .collect()
}

/// The cron jobs of `config`. With `timers` (the backend has them, see
/// `Backend::supports_timers`) a job whose expression has an `OnCalendar=` form and that
/// depends on nothing is run by a backend timer; the others are scheduled by the core. A job
/// with dependencies stays with the core because only the core can check them when a run is due.
pub fn jobs(config: &Config, timers: bool) -> Vec<JobPlan> {
    config
        .services
        .iter()
        .filter_map(|s| {
            let cron = s.cron.as_ref()?;
            // Validation already parsed it; a failure here can only be a zone that vanished
            // from the system since, which leaves the job out rather than the supervisor down.
            let schedule = match CronSchedule::parse(&cron.expression, cron.timezone.as_deref()) {
                Ok(c) => c,
                Err(e) => {
                    tracing::error!(unit = %s.name, "cron job left out: {e}");
                    return None;
                }
            };
            let calendar = (timers && s.depends_on.is_empty())
                .then(|| on_calendar(&cron.expression, schedule.timezone().name()))
                .flatten();
            Some(JobPlan {
                name: s.name.clone(),
                spec: Arc::new(spec_of(config, s)),
                depends_on: s.depends_on.clone(),
                expression: cron.expression.clone(),
                schedule: Arc::new(schedule),
                calendar,
            })
        })
        .collect()
}

/// The spec of one service; services run in the config's directory unless they say otherwise.
pub fn spec_of(config: &Config, svc: &crate::config::schema::Service) -> UnitSpec {
    let mut spec = UnitSpec::from_service(&config.project, svc);
    if spec.cwd.is_none() {
        spec.cwd = Some(config.base_dir.clone());
    }
    spec
}

/// `plan`, with what every service needs to reach its supervisor: `SYSG_SOCKET` (the control
/// socket, which `sysg spawn` uses without a config file), `SYSG_PROJECT` and `SYSG_SERVICE`.
/// They come first so that a service's own `env` can still override them.
pub fn plan_with_control(config: &Config, socket: &std::path::Path) -> Vec<UnitPlan> {
    let mut units = plan(config);
    for u in &mut units {
        let mut spec = (*u.spec).clone();
        let mut env = vec![
            ("SYSG_SOCKET".to_string(), socket.display().to_string()),
            ("SYSG_PROJECT".to_string(), config.project.clone()),
            ("SYSG_SERVICE".to_string(), u.name.clone()),
        ];
        env.append(&mut spec.env);
        spec.env = env;
        u.spec = Arc::new(spec);
    }
    units
}
