//! The runtime half of rolling and blue-green deployments: deployment plans from the config,
//! the persisted active slot of blue-green services, and the `pre_start` / `switch_command`
//! runner. The decisions are the core's (`core/deploy.rs`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::config::schema::Service;
use crate::config::Config;
use crate::core::{BlueGreenPlan, DeployAction, DeployEvent, DeployPlan, UnitId, UnitPlan};
use crate::health::command;

/// Failures of the deployment runtime (all of them logged; a failed command is a failed
/// deployment, reported through the core).
#[derive(Debug, Error)]
pub enum DeployError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not a slot file ({message})")]
    Corrupt { path: PathBuf, message: String },
    #[error("cannot start a thread for {what}: {source}")]
    Thread {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

/// Contents of a blue-green state file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlotFile {
    /// Index of the active slot in `blue_green.slots`.
    pub active: usize,
    /// Its value, so that reordering `slots` in the config keeps the same slot active.
    pub slot: String,
}

/// Where a service's active slot is kept: `blue_green.state_path`, else
/// `<state dir>/<service>.slot.json`.
pub fn slot_path(state_dir: &Path, svc: &Service) -> Option<PathBuf> {
    let bg = svc.deployment.as_ref()?.blue_green.as_ref()?;
    Some(
        bg.state_path
            .clone()
            .unwrap_or_else(|| state_dir.join(format!("{}.slot.json", svc.name))),
    )
}

/// Largest slot file read.
const MAX_SLOT_BYTES: u64 = 64 << 10;

/// The active slot index persisted at `path`: 0 when there is none yet. A value that names
/// one of `slots` wins over the index (the config's order may have changed).
pub fn load_slot(path: &Path, slots: &[String; 2]) -> Result<usize, DeployError> {
    // `state_path` may sit in a directory a service's user owns: never read through a
    // symbolic link or from a FIFO, and never more than a slot file can hold.
    let bytes = match crate::os::fs::read_capped(path, MAX_SLOT_BYTES) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(source) => {
            return Err(DeployError::Io {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    let f: SlotFile = serde_json::from_slice(&bytes).map_err(|e| DeployError::Corrupt {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    if let Some(i) = slots.iter().position(|s| *s == f.slot) {
        return Ok(i);
    }
    if f.active > 1 {
        return Err(DeployError::Corrupt {
            path: path.to_path_buf(),
            message: format!("active slot index {} is not 0 or 1", f.active),
        });
    }
    Ok(f.active)
}

/// Persist the active slot atomically (temp file, fsync, rename, fsync of the directory).
pub fn save_slot(path: &Path, slots: &[String; 2], active: usize) -> Result<(), DeployError> {
    let io = |source| DeployError::Io {
        path: path.to_path_buf(),
        source,
    };
    let active = active.min(1);
    let data = serde_json::to_vec(&SlotFile {
        active,
        slot: slots[active].clone(),
    })
    .map_err(|e| DeployError::Corrupt {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    super::state::write_atomic(path, &data).map_err(io)
}

/// The deployment plans of `config` (services with `strategy: rolling` or `blue_green`), with
/// each blue-green service's active slot read from its state file.
pub fn plans(config: &Config, state_dir: &Path) -> HashMap<UnitId, Arc<DeployPlan>> {
    let mut out = HashMap::new();
    for svc in config.services.iter().filter(|s| s.cron.is_none()) {
        let Some(d) = svc
            .deployment
            .as_ref()
            .filter(|d| d.strategy.side_by_side())
        else {
            continue;
        };
        let blue_green = d.blue_green.as_ref().map(|bg| {
            let state_path = slot_path(state_dir, svc).unwrap_or_default();
            let active = load_slot(&state_path, &bg.slots).unwrap_or_else(|e| {
                tracing::warn!(unit = %svc.name, "{e}; using slot {}", bg.slots[0]);
                0
            });
            BlueGreenPlan {
                env_var: bg.env_var.clone(),
                slots: bg.slots.clone(),
                switch_command: bg.switch_command.clone(),
                state_path,
                active,
            }
        });
        let health = d
            .health_check
            .clone()
            .or_else(|| svc.health_check.clone())
            .map(Arc::new);
        out.insert(
            svc.name.clone(),
            Arc::new(DeployPlan {
                pre_start: d.pre_start.clone(),
                health,
                grace: d.grace_period,
                blue_green,
            }),
        );
    }
    out
}

/// The core's plan of `config` with every blue-green service's slot variable set to its active
/// slot (a normal start runs on the active slot), and the deployment plans.
pub fn full_plan(
    config: &Config,
    state_dir: &Path,
    socket: &Path,
) -> (Vec<UnitPlan>, HashMap<UnitId, Arc<DeployPlan>>) {
    let deploys = plans(config, state_dir);
    let mut units = super::plan::plan_with_control(config, socket);
    for u in &mut units {
        let Some(bg) = deploys.get(&u.name).and_then(|d| d.blue_green.as_ref()) else {
            continue;
        };
        let mut spec = (*u.spec).clone();
        let value = bg.slots[bg.active.min(1)].clone();
        match spec.env.iter_mut().find(|(k, _)| *k == bg.env_var) {
            Some(e) => e.1 = value,
            None => spec.env.push((bg.env_var.clone(), value)),
        }
        u.spec = Arc::new(spec);
    }
    (units, deploys)
}

/// Where command results go (the event loop's channel).
pub type Sink = Arc<dyn Fn(DeployEvent) + Send + Sync>;

/// Carries out `DeployAction`s: commands on their own threads, slot files at once.
pub struct Runner {
    sink: Sink,
}

impl Runner {
    /// A runner answering on `sink`.
    pub fn new(sink: Sink) -> Runner {
        Runner { sink }
    }

    /// Carry out `action`. A command runs off the calling thread (bounded by its timeout; the
    /// whole process group is killed when it overruns); its answer comes through the sink.
    pub fn execute(&self, action: DeployAction) -> Result<(), DeployError> {
        match action {
            DeployAction::Run {
                unit,
                run,
                step,
                command,
                spec,
                timeout,
            } => {
                tracing::info!(unit = %unit, "running {}: {command}", step.as_str());
                let sink = self.sink.clone();
                let name = unit.clone();
                let what = step.as_str();
                let spawned = std::thread::Builder::new()
                    .name(format!("deploy-{unit}"))
                    .spawn(move || {
                        let who = command::identity(spec.user.as_deref(), spec.group.as_deref());
                        let result = who.and_then(|who| {
                            command::run_shell_placed(
                                &command,
                                &spec.env,
                                spec.cwd.as_deref(),
                                timeout,
                                who,
                                Some(crate::health::placement::Place {
                                    unit: &unit,
                                    kind: what,
                                    spec: Some(&spec),
                                }),
                            )
                        });
                        let (ok, detail) = match result {
                            Ok(done) if done.status.success() => (true, "exit 0".to_string()),
                            Ok(done) => {
                                let last = command::last_line(&done.output)
                                    .map(|l| format!(": {l}"))
                                    .unwrap_or_default();
                                (false, format!("{}{last}", done.status))
                            }
                            Err(e) => (false, e.to_string()),
                        };
                        sink(DeployEvent::CommandDone {
                            unit,
                            run,
                            ok,
                            detail,
                        });
                    });
                if let Err(source) = spawned {
                    // No thread, no command: a failed step, so the deployment still ends.
                    (self.sink)(DeployEvent::CommandDone {
                        unit: name,
                        run,
                        ok: false,
                        detail: format!("cannot start a thread: {source}"),
                    });
                    return Err(DeployError::Thread {
                        what: what.to_string(),
                        source,
                    });
                }
                Ok(())
            }
            DeployAction::SaveSlot {
                unit,
                path,
                slots,
                active,
            } => {
                save_slot(&path, &slots, active)?;
                tracing::info!(unit = %unit, "active slot {} saved in {}", slots[active.min(1)], path.display());
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slots() -> [String; 2] {
        ["blue".to_string(), "green".to_string()]
    }

    #[test]
    fn slot_file_round_trip_and_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub/web.slot.json");
        assert_eq!(load_slot(&p, &slots()).unwrap(), 0);
        save_slot(&p, &slots(), 1).unwrap();
        assert_eq!(load_slot(&p, &slots()).unwrap(), 1);
        // Reordered slots: the value decides.
        let swapped = ["green".to_string(), "blue".to_string()];
        assert_eq!(load_slot(&p, &swapped).unwrap(), 0);
        // No temp file is left behind.
        let names: Vec<_> = std::fs::read_dir(p.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
    }

    #[test]
    fn corrupt_slot_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("web.slot.json");
        std::fs::write(&p, b"{nope").unwrap();
        assert!(matches!(
            load_slot(&p, &slots()),
            Err(DeployError::Corrupt { .. })
        ));
        std::fs::write(&p, br#"{"active": 7, "slot": "red"}"#).unwrap();
        let e = load_slot(&p, &slots()).unwrap_err().to_string();
        assert!(e.contains("not 0 or 1"), "{e}");
    }
}
