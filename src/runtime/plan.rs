//! From a validated config to the core's plan.

use std::sync::Arc;

use crate::config::Config;
use crate::core::UnitPlan;
use crate::spec::UnitSpec;

/// The units the core supervises for `config`. Cron jobs are scheduled separately and are not
/// part of the long-running plan.
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
