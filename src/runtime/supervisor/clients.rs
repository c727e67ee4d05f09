//! Client requests on the loop: each becomes a `ClientEvent` of the core, which refuses it or
//! parks the client until its goal is met; the core's `Answer` is rendered here with the
//! status report. Requests that only read (status, inspect, logs) are answered at once.

use crate::control::protocol::{Request as Wire, Response, RunReport};
use crate::control::server::Incoming;
use crate::core::{Answer, ClientEvent, Input};

use super::{to_json, Supervisor};

impl Supervisor {
    pub(super) fn on_request(&mut self, inc: Incoming) {
        let Incoming {
            request,
            reply,
            written,
            peer,
        } = inc;
        if self.engine.shutting_down()
            && !matches!(
                request,
                Wire::Status | Wire::Shutdown | Wire::Inspect { .. }
            )
        {
            let _ = reply.send(Response::err(
                "the supervisor is shutting down",
                Default::default(),
            ));
            return;
        }
        match request {
            Wire::Status => {
                let _ = reply.send(Response::ok(to_json(&self.status())));
            }
            Wire::ReloadServices { services } => self.reload_services(services, reply),
            Wire::Kill {
                services,
                signal,
                main,
            } => self.kill_services(services, signal, main, reply),
            Wire::Start { services } => {
                let client = self.park(reply);
                self.client(ClientEvent::Start { client, services });
            }
            Wire::Restart { services } => {
                let client = self.park(reply);
                self.client(ClientEvent::Restart { client, services });
            }
            Wire::Stop { services } => {
                let client = self.park(reply);
                self.client(ClientEvent::Stop { client, services });
            }
            Wire::Spawn(req) => {
                let _ = reply.send(self.on_spawn(peer, req));
            }
            Wire::Reload { config } => self.reload(config, Some(reply)),
            Wire::Shutdown => {
                self.shutdown_replies.push((reply, written));
                self.begin_shutdown();
            }
            Wire::Run(req) => self.on_run(req, reply),
            Wire::Inspect { service } => {
                let _ = reply.send(self.inspect(&service));
            }
            Wire::Logs(req) => self.serve_logs(req, reply),
        }
    }

    /// Queue a client's event for the core.
    pub(super) fn client(&mut self, event: ClientEvent) {
        self.queue.push_back(Input::Client(event));
    }

    pub(super) fn begin_shutdown(&mut self) {
        if !self.engine.shutting_down() {
            self.sd_notify.stopping();
            self.client(ClientEvent::Shutdown);
        }
    }

    /// The response that carries the core's answer.
    pub(super) fn render(&self, answer: Answer) -> Response {
        match answer {
            Answer::Refused(msg) => Response::err(msg, Default::default()),
            Answer::Report { problems, changes } => {
                let report = to_json(&self.status());
                let mut resp = if problems.is_empty() {
                    Response::ok(report)
                } else {
                    Response::err(problems.join("\n"), report)
                };
                if let (Some(c), Some(data)) = (changes, resp.data.as_object_mut()) {
                    data.insert("changes".into(), c);
                }
                resp
            }
            Answer::Reloaded { services, problems } => {
                let data = serde_json::json!({ "services": services });
                if problems.is_empty() {
                    Response::ok(data)
                } else {
                    Response::err(problems.join("\n"), data)
                }
            }
            Answer::Run { unit, problem } => {
                let report = self.status();
                let Some(service) = report.services.into_iter().find(|s| s.name == unit) else {
                    return Response::err(
                        format!("`{unit}` was removed before it finished"),
                        Default::default(),
                    );
                };
                let data = to_json(&RunReport {
                    project: self.config.project.clone(),
                    unit,
                    service,
                });
                match problem {
                    None => Response::ok(data),
                    Some(msg) => Response::err(msg, data),
                }
            }
        }
    }
}
