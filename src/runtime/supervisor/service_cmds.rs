//! `sysg reload` and `sysg kill` on the supervisor's side (issue 17): a service's `reload:`
//! (a signal to its main process, or a command run like a hook with the service's identity)
//! and signals to its processes, none of which restarts it.
//!
//! A reload of a `readiness: notify` service by signal is over when the service said
//! `RELOADING=1` … `READY=1` (the core decides, with `start_timeout` as the bound:
//! `Event::ReloadSent`, `Core::reload_outcome`); a reload command is over when it exited (it
//! runs on a thread of its own, whose end comes back as `Msg::ReloadDone`). The client gets
//! its answer when every selected service is done.

use std::sync::mpsc::Sender;
use std::time::Duration;

use serde_json::{json, Value};

use super::{Msg, Supervisor};
use crate::config::service_model::Reload;
use crate::control::protocol::Response;
use crate::core::{Event, Input};

/// Longest a reload command may run when the service has no notify `start_timeout`.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(90);

/// A `sysg reload` waiting for its services.
pub(super) struct ReloadWait {
    id: u64,
    /// Notify services signalled, with their `reload_outcome` count before the signal.
    notify: Vec<(String, u64)>,
    /// Reload commands still running.
    commands: usize,
    errors: Vec<String>,
    done: Vec<Value>,
    reply: Sender<Response>,
}

/// A reload command finished (sent back to the loop).
pub(super) struct CommandDone {
    id: u64,
    service: String,
    result: Result<(), String>,
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
        self.reload_seq += 1;
        let mut wait = ReloadWait {
            id: self.reload_seq,
            notify: Vec::new(),
            commands: 0,
            errors: Vec::new(),
            done: Vec::new(),
            reply,
        };
        for (name, pid) in selected {
            let Some(svc) = self.config.service(&name) else {
                continue;
            };
            match svc.reload.clone() {
                Some(Reload::Signal(sig)) => {
                    let target = self.main_pid(&name).unwrap_or(pid);
                    let before = self.engine.core().reload_outcome(&name).map_or(0, |o| o.0);
                    if let Err(e) = crate::os::signal::send_signal(target, sig.number) {
                        wait.errors.push(format!("`{name}`: {}: {e}", sig.name));
                        continue;
                    }
                    tracing::info!(unit = %name, pid = target, "reload: sent {}", sig.name);
                    wait.done
                        .push(json!({"name": name, "pid": target, "action": sig.name}));
                    if svc.readiness.notify {
                        wait.notify.push((name.clone(), before));
                        self.queue
                            .push_back(Input::Unit(Event::ReloadSent { unit: name }));
                    }
                }
                Some(Reload::Command(cmd)) => {
                    let spec = crate::runtime::plan::spec_of(&self.config, svc);
                    let timeout = if svc.readiness.notify {
                        svc.readiness.start_timeout
                    } else {
                        COMMAND_TIMEOUT
                    };
                    wait.done
                        .push(json!({"name": name, "pid": pid, "action": "command"}));
                    wait.commands += 1;
                    let (tx, id) = (self.reload_tx.clone(), wait.id);
                    let run = move || {
                        let result = run_command(&cmd, &spec, &name, pid, timeout);
                        let _ = tx.send(Msg::ReloadDone(CommandDone {
                            id,
                            service: name,
                            result,
                        }));
                    };
                    if let Err(e) = std::thread::Builder::new()
                        .name("sysg-reload".into())
                        .spawn(run)
                    {
                        wait.commands -= 1;
                        wait.errors
                            .push(format!("cannot run the reload command: {e}"));
                    }
                }
                None => {}
            }
        }
        self.reload_waits.push(wait);
    }

    /// A reload command ended.
    pub(super) fn reload_command_done(&mut self, d: CommandDone) {
        if let Some(w) = self.reload_waits.iter_mut().find(|w| w.id == d.id) {
            w.commands = w.commands.saturating_sub(1);
            if let Err(e) = d.result {
                w.errors
                    .push(format!("`{}`: reload command {e}", d.service));
            }
        }
    }

    /// Answer every `sysg reload` whose services are all done.
    pub(super) fn check_reload_waits(&mut self) {
        let waits = std::mem::take(&mut self.reload_waits);
        for mut w in waits {
            let mut pending = false;
            for (name, before) in &w.notify {
                match self.engine.core().reload_outcome(name) {
                    Some((n, _)) if n <= *before => pending = true,
                    Some((_, Some(err))) => w.errors.push(format!("`{name}`: {err}")),
                    _ => {}
                }
            }
            if pending || w.commands > 0 {
                self.reload_waits.push(w);
                continue;
            }
            let data = json!({ "services": w.done });
            let resp = if w.errors.is_empty() {
                Response::ok(data)
            } else {
                Response::err(w.errors.join("\n"), data)
            };
            let _ = w.reply.send(resp);
        }
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
