//! Builders shared by the unit tests of the core (and of the backends): plain unit specs and
//! plans with nothing set beyond what a test names.

use std::sync::Arc;
use std::time::Duration;

use crate::config::schema::{Isolation, Limits, LogPolicy, RestartPolicy};
use crate::core::UnitPlan;
use crate::spec::UnitSpec;

/// A spec with only its identity and command: no environment, working directory, user,
/// limits or isolation; stopped with SIGTERM (15) and a 10 s timeout.
pub(crate) fn unit_spec(project: &str, name: &str, argv: Vec<String>) -> UnitSpec {
    UnitSpec {
        project: project.into(),
        name: name.into(),
        argv,
        env: Vec::new(),
        cwd: None,
        user: None,
        group: None,
        supplementary_groups: Vec::new(),
        limits: Limits::default(),
        capabilities: None,
        isolation: Isolation::default(),
        stop_signal: 15,
        stop_timeout: Duration::from_secs(10),
        logs: LogPolicy::default(),
        spawn: None,
    }
}

/// [`unit_spec`] of project `test` running `/bin/true`.
pub(crate) fn spec(name: &str) -> Arc<UnitSpec> {
    Arc::new(unit_spec("test", name, vec!["/bin/true".into()]))
}

/// A plan for `spec`: no dependencies, never restarted, 1 s backoff, no cap, no settle time,
/// no health check.
pub(crate) fn unit_plan(spec: Arc<UnitSpec>) -> UnitPlan {
    UnitPlan {
        name: spec.name.clone(),
        spec,
        depends_on: Vec::new(),
        restart: RestartPolicy::Never,
        backoff: Duration::from_secs(1),
        max_restarts: None,
        settle: Duration::ZERO,
        health: None,
    }
}
