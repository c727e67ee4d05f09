//! `Request::Logs`: the services' output read from the journal by the supervisor (root under
//! `--sys`) for a caller the socket lets read (a `systemg` member) but journalctl would not.
//! journalctl runs on a worker thread, which answers the client itself: the loop never waits
//! on the journal.

use std::sync::mpsc::Sender;

use super::Supervisor;
use crate::control::protocol::{LogsRequest, Response, MAX_SERVED_LINES};

impl Supervisor {
    pub(super) fn serve_logs(&mut self, req: LogsRequest, reply: Sender<Response>) {
        if self.backend.name() != "systemd" {
            let _ = reply.send(Response::err(
                "this supervisor's services log to files (the process backend): read them with `sysg logs` directly",
                Default::default(),
            ));
            return;
        }
        // The project's own units only: its services and cron jobs (as configured, or as the
        // core runs them: ad-hoc units), and children spawned by one of them (`web/worker`).
        let known: Vec<String> = self.engine.core().unit_names();
        let is_ours = |name: &str| {
            let owner = name.split_once('/').map_or(name, |(parent, _)| parent);
            known.iter().any(|k| k == owner) || self.config.service(owner).is_some()
        };
        if let Some(bad) = req.services.iter().flatten().find(|s| !is_ours(s)) {
            let _ = reply.send(Response::err(
                format!(
                    "unknown service `{bad}`; services are: {}",
                    known.join(", ")
                ),
                Default::default(),
            ));
            return;
        }
        let services: Vec<String> = match req.services {
            Some(v) => v,
            None => self.engine.core().unit_names(),
        };
        let wanted = req.lines.unwrap_or(MAX_SERVED_LINES);
        let lines = wanted.min(MAX_SERVED_LINES);
        let project = self.config.project.clone();
        #[cfg(target_os = "linux")]
        {
            use crate::backend::systemd::journal;
            let args = journal::served_args(
                self.system,
                &project,
                &services,
                req.since_us,
                req.until_us,
                lines,
            );
            let spawned = std::thread::Builder::new()
                .name("logs".into())
                .spawn(move || {
                    let resp = match journal::read_served(&project, &args, lines) {
                        Ok(entries) => {
                            let truncated = wanted > lines || entries.len() >= lines;
                            Response::ok(serde_json::json!({
                                "entries": entries,
                                "truncated": truncated,
                            }))
                        }
                        Err(e) => Response::err(e, Default::default()),
                    };
                    let _ = reply.send(resp);
                });
            if let Err(e) = spawned {
                tracing::warn!("starting a logs worker: {e}");
            }
        }
        #[cfg(not(target_os = "linux"))]
        {
            let _ = (services, lines, project, wanted);
            let _ = reply.send(Response::err("no journal here", Default::default()));
        }
    }
}
