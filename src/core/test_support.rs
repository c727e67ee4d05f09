//! Builders shared by the unit tests of the core (and of the backends): plain unit specs and
//! plans with nothing set beyond what a test names.

use std::sync::Arc;
use std::time::Duration;

use crate::config::schema::RestartPolicy;
use crate::core::UnitPlan;
use crate::spec::UnitSpec;

/// [`UnitSpec::new`] of project `test` running `/bin/true`.
pub(crate) fn spec(name: &str) -> Arc<UnitSpec> {
    Arc::new(UnitSpec::new("test", name, vec!["/bin/true".into()]))
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
