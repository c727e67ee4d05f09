//! The supervisor's side of `sysg run`: name the ad-hoc unit and build its plan; the core adds
//! it, answers once it settled or finished, and forgets it once it is down after a stop or a
//! wait (`core/supervision.rs`).

use std::sync::mpsc::Sender;

use super::Supervisor;
use crate::control::protocol::{Response, RunRequest};
use crate::core::ClientEvent;
use crate::runtime::adhoc::{unit_name, unit_plan};

impl Supervisor {
    /// A `run` request: name the unit and hand it to the core, which parks the client until
    /// the unit settled (or finished, with `wait`).
    pub(super) fn on_run(&mut self, req: RunRequest, reply: Sender<Response>) {
        // Names of configured services (cron jobs included) and of every unit the core still
        // tracks, including removed ones that are still stopping.
        let mut taken: Vec<String> = self.engine.core().unit_names();
        taken.extend(self.config.services.iter().map(|s| s.name.clone()));
        let planned = unit_name(req.name.as_deref(), &req.argv, &taken)
            .and_then(|name| unit_plan(&self.config.project, &name, &req));
        let plan = match planned {
            Ok(p) => p,
            Err(e) => {
                let _ = reply.send(Response::err(e.to_string(), Default::default()));
                return;
            }
        };
        tracing::info!(unit = %plan.name, command = ?req.argv, "adding an ad-hoc unit");
        let client = self.park(reply);
        self.client(ClientEvent::Run {
            client,
            plan,
            wait: req.wait,
        });
    }
}
