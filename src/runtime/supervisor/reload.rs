//! `sysg restart` without services and SIGHUP: load the new config on a worker thread, then
//! apply it on the event loop when it comes back as `Msg::Reloaded`.
//!
//! Reading and parsing a config (and its env files) is I/O on paths the caller chose: done
//! on the loop, a slow or hostile file would stall every restart, probe and request until it
//! was read. The worker only reads; the loop alone changes the plan.

use std::path::{Path, PathBuf};
use std::sync::mpsc::Sender;

use super::{Msg, Supervisor};
use crate::config::{self, Config};
use crate::control::protocol::{ReloadChanges, Response};
use crate::core::{ClientEvent, ClientId};
use crate::runtime::paths::Roots;
use crate::runtime::plan::jobs;
use crate::runtime::{privileges, RuntimeError};

/// A config loaded by a reload worker, on its way back to the loop.
pub(super) struct Loaded {
    /// Which request this answers (`Supervisor::reloads_asked` when it was made).
    seq: u64,
    result: Result<Config, RuntimeError>,
    /// The client waiting for the answer; none for SIGHUP.
    reply: Option<Sender<Response>>,
}

/// Load and check the config at `path` for a supervisor of `project` (runs off the loop).
/// Its project is keyed as at start (`instance`): another file of the same directory is the
/// same project; one of another directory is not, even with the same directory name.
fn load(path: &Path, project: &str, roots: &Roots) -> Result<Config, RuntimeError> {
    let mut new = config::load(path)?;
    crate::runtime::instance::apply(roots, &mut new)
        .map_err(|e| RuntimeError::Other(e.to_string()))?;
    // Against who runs the services now (after any --drop-privileges).
    privileges::check(&new, false, false)?;
    if new.project != project {
        return Err(RuntimeError::Other(format!(
            "the new config belongs to project `{}`, this supervisor runs `{}`",
            new.project, project
        )));
    }
    Ok(new)
}

impl Supervisor {
    /// Start loading the config at `path`; the answer goes to `reply` once it is applied
    /// (or refused).
    pub(super) fn reload(&mut self, path: PathBuf, reply: Option<Sender<Response>>) {
        self.reloads_asked += 1;
        let seq = self.reloads_asked;
        let project = self.config.project.clone();
        let roots = Roots::for_mode(self.paths.system);
        let tx = self.reload_tx.clone();
        let worker = std::thread::Builder::new()
            .name("sysg-reload".into())
            .spawn(move || {
                let result = load(&path, &project, &roots);
                let _ = tx.send(Msg::Reloaded(Box::new(Loaded { seq, result, reply })));
            });
        if let Err(e) = worker {
            // Nothing was sent: the reply (moved into the closure) is gone with it.
            tracing::error!("reload: cannot start a thread to read the config: {e}");
        }
    }

    /// A worker finished: apply its config, or report why not.
    pub(super) fn reloaded(&mut self, loaded: Loaded) {
        let Loaded { seq, result, reply } = loaded;
        let outcome = if self.engine.shutting_down() {
            Err(RuntimeError::Other("the supervisor is stopping".into()))
        } else if seq < self.reloads_applied {
            Err(RuntimeError::Other(
                "a later reload was applied first; this one was dropped".into(),
            ))
        } else {
            result
        };
        match (outcome, reply) {
            (Ok(new), reply) => {
                self.reloads_applied = seq;
                let c = changes(&self.config, &new);
                tracing::info!("reload: {}", c.summary());
                let client = reply.map(|r| self.park(r));
                self.apply(new, client, serde_json::to_value(c).ok());
            }
            (Err(e), Some(reply)) => {
                let _ = reply.send(Response::err(e.to_string(), Default::default()));
            }
            (Err(e), None) => tracing::error!("reload on SIGHUP failed: {e}"),
        }
    }

    /// Hand the new plan to the core (which keeps the ad-hoc units and answers `client` once
    /// everything settled) and take the new config.
    fn apply(&mut self, new: Config, client: Option<ClientId>, changes: Option<serde_json::Value>) {
        tracing::info!("applying configuration {}", new.path.display());
        self.sd_notify.reloading();
        let (units, deployments) =
            super::super::deploy::full_plan(&new, &self.paths.state_dir, &self.service_socket);
        self.client(ClientEvent::Reload {
            client,
            units,
            jobs: jobs(&new, self.backend.supports_timers()),
            deployments,
            changes,
        });
        self.config = new;
        self.configure_spawning();
        let cfg = &self.config;
        self.obs.retain(|u| cfg.service(u).is_some());
    }
}

/// What `new` changes from `old`, service by service, in the order of the configs (added,
/// changed and unchanged in `new`'s, removed in `old`'s). A changed service lists the
/// settings that differ, by their config names.
pub(super) fn changes(old: &Config, new: &Config) -> ReloadChanges {
    let mut c = ReloadChanges::default();
    for s in &new.services {
        match old.service(&s.name) {
            None => c.added.push(s.name.clone()),
            Some(o) if o == s => c.unchanged.push(s.name.clone()),
            Some(o) => c.changed.push((s.name.clone(), differing(o, s))),
        }
    }
    c.removed = old
        .services
        .iter()
        .filter(|s| new.service(&s.name).is_none())
        .map(|s| s.name.clone())
        .collect();
    c
}

/// The settings of two versions of a service that differ.
fn differing(old: &config::schema::Service, new: &config::schema::Service) -> Vec<String> {
    let (Ok(serde_json::Value::Object(a)), Ok(serde_json::Value::Object(b))) =
        (serde_json::to_value(old), serde_json::to_value(new))
    else {
        return vec!["settings".into()];
    };
    let fields: Vec<String> = b
        .iter()
        .filter(|(k, v)| a.get(*k) != Some(*v))
        .map(|(k, _)| match k.as_str() {
            // `command:` and `exec:` are both `run`.
            "run" => "command".to_string(),
            other => other.to_string(),
        })
        .collect();
    if fields.is_empty() {
        vec!["settings".into()]
    } else {
        fields
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(yaml: &str) -> Config {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("systemg.yaml");
        std::fs::write(&path, yaml).unwrap();
        config::load(&path).unwrap()
    }

    #[test]
    fn changes_name_services_and_settings() {
        let old = cfg("version: \"1\"\nservices:\n  web:\n    command: \"sleep 1\"\n  worker:\n    command: \"sleep 2\"\n  gone:\n    command: \"sleep 3\"\n");
        let new = cfg("version: \"1\"\nservices:\n  web:\n    command: \"sleep 1\"\n  worker:\n    command: \"sleep 2\"\n    env:\n      vars:\n        A: \"1\"\n  extra:\n    command: \"sleep 4\"\n");
        let c = changes(&old, &new);
        assert_eq!(c.added, vec!["extra"]);
        assert_eq!(c.removed, vec!["gone"]);
        assert_eq!(
            c.changed,
            vec![("worker".to_string(), vec!["env".to_string()])]
        );
        assert_eq!(c.unchanged, vec!["web"]);
        assert_eq!(
            c.summary(),
            "added extra; removed gone; changed worker (env); unchanged web"
        );
    }
}
