//! `sysg reload` and `sysg kill` on the supervisor's side (issue 17): a service's `reload:`
//! (a signal to its main process, or a command run like a hook with the service's identity)
//! and signals to its processes, none of which restarts it.
//!
//! The signals and commands are carried out here; the client then waits in the core
//! (`ClientEvent::ReloadServices`, `Goal::Reloaded` in core/waits.rs) and is answered with
//! `Action::Reply`: a reload of a `readiness: notify` service by signal is over when the
//! service said `RELOADING=1` … `READY=1` (with `start_timeout` as the bound); a reload command
//! is over when it exited (it runs on a thread of its own, whose end comes back as
//! `Msg::ReloadDone`, then `ClientEvent::ReloadCommandDone`).

use std::sync::mpsc::Sender;
use std::time::Duration;

use serde_json::{json, Value};

use super::{Msg, Supervisor};
use crate::config::service_model::Reload;
use crate::control::protocol::Response;
use crate::core::{ClientEvent, ClientId};

/// Longest a reload command may run when the service has no notify `start_timeout`.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(90);

/// A reload command finished (sent back to the loop, then to the core's wait).
pub(super) struct CommandDone {
    pub(super) client: ClientId,
    pub(super) service: String,
    pub(super) result: Result<(), String>,
}

impl Supervisor {
    /// The running services a request names (all when `None`): their names, or an error.
    fn running_selection(
        &self,
        services: &Option<Vec<String>>,
        keep: impl Fn(&str) -> bool,
    ) -> Result<Vec<(String, u32)>, String> {
        if let Some(msg) = self.engine.unknown_services(services) {
            return Err(msg);
        }
        let names: Vec<String> = match services {
            Some(list) => list.clone(),
            None => self
                .config
                .services
                .iter()
                .filter(|s| s.cron.is_none() && keep(&s.name))
                .map(|s| s.name.clone())
                .collect(),
        };
        let mut out = Vec::new();
        for name in names {
            match self.engine.core().unit(&name).and_then(|u| u.pid) {
                Some(pid) => out.push((name, pid)),
                None if services.is_some() => return Err(format!("`{name}` is not running")),
                None => {}
            }
        }
        Ok(out)
    }

    /// `sysg kill`: `signal` to every process of each service, or to its main process.
    pub(super) fn kill_services(
        &mut self,
        services: Option<Vec<String>>,
        signal: i32,
        main: bool,
        reply: Sender<Response>,
    ) {
        let selected = match self.running_selection(&services, |_| true) {
            Ok(s) => s,
            Err(e) => {
                let _ = reply.send(Response::err(e, Value::Null));
                return;
            }
        };
        let mut done = Vec::new();
        for (name, pid) in selected {
            let target = self.main_pid(&name).unwrap_or(pid);
            let result = if main {
                crate::os::signal::send_signal(target, signal).map_err(|e| e.to_string())
            } else {
                let key = self
                    .engine
                    .core()
                    .instance(&name)
                    .unwrap_or_else(|| name.clone());
                self.backend.signal(&key, signal).map_err(|e| e.to_string())
            };
            if let Err(e) = result {
                let msg = format!("`{name}`: {}: {e}", crate::signals::name(signal));
                let _ = reply.send(Response::err(msg, json!({ "services": done })));
                return;
            }
            tracing::info!(unit = %name, "sent {} ({})", crate::signals::name(signal),
                if main { "main process" } else { "every process" });
            done.push(json!({
                "name": name,
                "pid": target,
                "signal": crate::signals::name(signal),
                "main": main,
            }));
        }
        let _ = reply.send(Response::ok(json!({ "services": done })));
    }

    /// The main process of `name`: `MAINPID=` when a notify service named one.
    fn main_pid(&self, name: &str) -> Option<u32> {
        self.engine
            .core()
            .notify_view(name)
            .and_then(|v| v.main_pid)
    }

    /// `sysg reload`: run each service's `reload:`.
    pub(super) fn reload_services(
        &mut self,
        services: Option<Vec<String>>,
        reply: Sender<Response>,
    ) {
        let has_reload = |n: &str| self.config.service(n).is_some_and(|s| s.reload.is_some());
        if let Some(list) = &services {
            if let Some(n) = list
                .iter()
                .find(|n| self.engine.core().unit(n).is_some() && !has_reload(n))
            {
                let msg = format!(
                    "`{n}` has no `reload:` field: set `reload: {{signal: SIGHUP}}` or \
                     `reload: {{command: \"…\"}}` in its service, or use `sysg restart`"
                );
                let _ = reply.send(Response::err(msg, Value::Null));
                return;
            }
        }
        let selected = match self.running_selection(&services, has_reload) {
            Ok(s) if s.is_empty() => {
                let msg = "no running service has a `reload:` field";
                let _ = reply.send(Response::err(msg, Value::Null));
                return;
            }
            Ok(s) => s,
            Err(e) => {
                let _ = reply.send(Response::err(e, Value::Null));
                return;
            }
        };
        let client = self.park(reply);
        let mut signalled = Vec::new();
        let mut commands = Vec::new();
        let mut done = Vec::new();
        let mut problems = Vec::new();
        for (name, pid) in selected {
            let Some(svc) = self.config.service(&name) else {
                continue;
            };
            match svc.reload.clone() {
                Some(Reload::Signal(sig)) => {
                    let target = self.main_pid(&name).unwrap_or(pid);
                    if let Err(e) = crate::os::signal::send_signal(target, sig.number) {
                        problems.push(format!("`{name}`: {}: {e}", sig.name));
                        continue;
                    }
                    tracing::info!(unit = %name, pid = target, "reload: sent {}", sig.name);
                    done.push(json!({"name": name, "pid": target, "action": sig.name}));
                    signalled.push(name);
                }
                Some(Reload::Command(cmd)) => {
                    let spec = crate::runtime::plan::spec_of(&self.config, svc);
                    let timeout = if svc.readiness.notify {
                        svc.readiness.start_timeout
                    } else {
                        COMMAND_TIMEOUT
                    };
                    done.push(json!({"name": name, "pid": pid, "action": "command"}));
                    let (tx, service) = (self.reload_tx.clone(), name.clone());
                    let run = move || {
                        let result = run_command(&cmd, &spec, &service, pid, timeout);
                        let _ = tx.send(Msg::ReloadDone(CommandDone {
                            client,
                            service,
                            result,
                        }));
                    };
                    match std::thread::Builder::new()
                        .name("sysg-reload".into())
                        .spawn(run)
                    {
                        Ok(_) => commands.push(name),
                        Err(e) => problems.push(format!("cannot run the reload command: {e}")),
                    }
                }
                None => {}
            }
        }
        // The commands' ends come back through the channel, after this event.
        self.client(ClientEvent::ReloadServices {
            client,
            signalled,
            commands,
            services: Value::Array(done),
            problems,
        });
    }

    /// A reload command ended: the core's wait hears of it.
    pub(super) fn reload_command_done(&mut self, d: CommandDone) {
        self.client(ClientEvent::ReloadCommandDone {
            client: d.client,
            service: d.service,
            error: d.result.err(),
        });
    }
}

/// Run a reload command like a hook: `/bin/sh -c` with the service's environment, directory
/// and identity, plus `SYSG_SERVICE` and `MAINPID`.
fn run_command(
    cmd: &str,
    spec: &crate::spec::UnitSpec,
    name: &str,
    pid: u32,
    timeout: Duration,
) -> Result<(), String> {
    use crate::health::command;
    let who = command::identity(spec.user.as_deref(), spec.group.as_deref())
        .map_err(|e| format!("not run: {e}"))?;
    let mut env = spec.env.clone();
    env.push(("SYSG_SERVICE".into(), name.to_string()));
    env.push(("MAINPID".into(), pid.to_string()));
    let done = command::run_shell_placed(
        cmd,
        &env,
        spec.cwd.as_deref(),
        timeout,
        who,
        Some(crate::health::placement::Place {
            unit: name,
            kind: "reload",
            spec: Some(spec),
        }),
    )
    .map_err(|e| format!("failed: {e}"))?;
    for line in String::from_utf8_lossy(&done.output).lines() {
        tracing::info!(unit = %name, "reload: {line}");
    }
    if done.status.success() {
        Ok(())
    } else {
        Err(format!("failed: {}", done.status))
    }
}
