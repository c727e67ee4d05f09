//! The supervisor's side of `sysg spawn`: who is asking (peer credentials and /proc
//! ancestry), building the child's spec, starting and stopping children through the backend,
//! reporting them in `status`, and re-adopting them after a supervisor crash. Every decision
//! (limits, TTL, termination policy) is the core's `SpawnTree`; this file only carries it out.

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use thiserror::Error;

use super::Supervisor;
use crate::backend::AdoptRecord;
use crate::config::schema::Size;
use crate::control::access::Peer;
use crate::control::protocol::{ChildStatus, Response, SpawnRequest};
use crate::core::spawn::{split_key, ChildState, Owner, SpawnAction, SpawnLimits, StopHow};
use crate::core::{ChildEvent, Input};
use crate::runtime::state::SpawnedMemo;
use crate::spec::{SpawnGroup, UnitSpec};

/// Each spawned child may use this many tasks (its processes and threads) on average before the
/// tree's `TasksMax` (systemd) stops it forking: `descendants` counts children, not tasks.
pub const TASKS_PER_CHILD: u64 = 32;

/// How far up the process tree a caller is looked for before giving up.
const MAX_ANCESTRY: usize = 4096;

/// Why a spawn request was not carried out (besides the core's `Refusal`s).
#[derive(Debug, Error)]
pub enum SpawnError {
    #[error("refused: process {0} is not part of a service managed by this supervisor (sysg spawn must run inside a service with `spawn.mode: dynamic`)")]
    Unmanaged(i32),
    #[error("refused: process {pid} belongs to uid {uid}, the service runs as another user")]
    WrongUser { pid: i32, uid: u32 },
    #[error(transparent)]
    Refused(#[from] crate::core::spawn::Refusal),
    #[error("cannot start `{unit}`: {message}")]
    Start { unit: String, message: String },
}

/// The parent pid of `pid` (field 4 of /proc/PID/stat), read after the `comm` field, which may
/// contain spaces and parentheses.
fn parent_pid(pid: u32) -> Option<u32> {
    crate::os::procfs::stat(pid).map(|s| s.ppid)
}

/// The owner of `pid`: the nearest ancestor (or itself) that is a service's main process or a
/// spawned child's main process.
fn find_owner(pid: u32, known: &HashMap<u32, Owner>) -> Option<Owner> {
    let mut cur = pid;
    for _ in 0..MAX_ANCESTRY {
        if let Some(o) = known.get(&cur) {
            return Some(o.clone());
        }
        match parent_pid(cur) {
            Some(p) if p > 1 && p != cur => cur = p,
            _ => return None,
        }
    }
    None
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// `instant` (in the past or future) as wall-clock milliseconds.
fn instant_to_unix_ms(now: Instant, wall: SystemTime, t: Instant) -> u64 {
    if t >= now {
        unix_ms(wall + (t - now))
    } else {
        unix_ms(wall.checked_sub(now - t).unwrap_or(UNIX_EPOCH))
    }
}

/// Wall-clock milliseconds as an `Instant`.
fn unix_ms_to_instant(now: Instant, wall: SystemTime, ms: u64) -> Instant {
    let t = UNIX_EPOCH + Duration::from_millis(ms);
    match t.duration_since(wall) {
        Ok(ahead) => now + ahead,
        Err(e) => now.checked_sub(e.duration()).unwrap_or(now),
    }
}

impl Supervisor {
    /// Give the core each service's spawn limits (at start and after a reload).
    pub(super) fn configure_spawning(&mut self) {
        for s in &self.config.services {
            self.engine
                .spawn_mut()
                .configure(&s.name, SpawnLimits::of(s.spawn.as_ref()));
        }
        // Services removed from the config: their trees take no new children.
        let names: Vec<String> = self.engine.spawn().dynamic_services();
        for n in names {
            if self.config.service(&n).is_none() {
                self.engine.spawn_mut().configure(&n, None);
            }
        }
    }

    /// `spawn` control request.
    pub(super) fn on_spawn(&mut self, peer: Peer, req: SpawnRequest) -> Response {
        match self.spawn_child(peer, req) {
            Ok((unit, pid)) => Response::ok(serde_json::json!({ "pid": pid, "unit": unit })),
            Err(e) => {
                tracing::info!("spawn from pid {}: {e}", peer.pid);
                Response::err(e.to_string(), Default::default())
            }
        }
    }

    fn spawn_child(&mut self, peer: Peer, req: SpawnRequest) -> Result<(String, u32), SpawnError> {
        let owner = self.caller(peer)?;
        let service = owner.service().to_string();
        let svc = self
            .config
            .service(&service)
            .cloned()
            .ok_or_else(|| crate::core::spawn::Refusal::NotDynamic(service.clone()))?;
        if req.command.is_empty() || req.command[0].is_empty() {
            return Err(crate::core::spawn::Refusal::EmptyCommand.into());
        }
        let now = Instant::now();
        let stop = StopHow {
            signal: svc.stop_signal.number,
            timeout: svc.stop_timeout,
        };
        let ttl = req.ttl_secs.map(Duration::from_secs);
        let unit = self
            .engine
            .spawn_mut()
            .admit(now, &owner, &req.name, ttl, stop)?;

        let mut spec: UnitSpec = crate::runtime::plan::spec_of(&self.config, &svc);
        spec.name = unit.clone();
        spec.argv = req.command;
        let mut env = req.env;
        env.retain(|(k, _)| k != "SYSG_LOG_LEVEL" || req.log_level.is_none());
        if let Some(l) = req.log_level {
            env.push(("SYSG_LOG_LEVEL".into(), l));
        }
        env.push(("SYSG_SPAWN_NAME".into(), req.name.clone()));
        env.push(("SYSG_SPAWN_PARENT".into(), owner.label().to_string()));
        spec.env = env;
        if req.cwd.is_some() {
            spec.cwd = req.cwd;
        }
        // The tree's shared limits replace the service's own per-unit cgroup limits.
        spec.limits.cgroup = Default::default();
        let dynamic = svc.spawn.as_ref();
        spec.spawn = Some(SpawnGroup {
            service: service.clone(),
            child: req.name.clone(),
            memory_max: dynamic.and_then(|s| match s.total_memory {
                Some(Size::Value(b)) => Some(b),
                _ => None,
            }),
            tasks_max: dynamic
                .and_then(|s| s.descendants)
                .map(|d| u64::from(d).saturating_mul(TASKS_PER_CHILD)),
        });
        match self.backend.start(&spec) {
            Ok(pid) => {
                self.queue.push_back(Input::Child(ChildEvent::Started {
                    key: unit.clone(),
                    pid,
                }));
                tracing::info!(unit = %unit, pid, "spawned by {}", owner.label());
                Ok((unit, pid))
            }
            Err(e) => {
                self.queue
                    .push_back(Input::Child(ChildEvent::StartFailed { key: unit.clone() }));
                Err(SpawnError::Start {
                    unit,
                    message: e.to_string(),
                })
            }
        }
    }

    /// Who is calling: the service or child whose process tree contains the peer.
    fn caller(&self, peer: Peer) -> Result<Owner, SpawnError> {
        let mut known: HashMap<u32, Owner> = HashMap::new();
        for u in self.engine.core().units() {
            if let Some(pid) = u.pid {
                known.insert(pid, Owner::Service(u.name));
            }
        }
        for (pid, o) in self.engine.spawn().pids() {
            known.insert(pid, o);
        }
        let pid = u32::try_from(peer.pid).map_err(|_| SpawnError::Unmanaged(peer.pid))?;
        let owner = find_owner(pid, &known).ok_or(SpawnError::Unmanaged(peer.pid))?;
        // The control socket already admits only our uid and root; a service running as a
        // dedicated user must not be impersonated by another unprivileged user's process.
        let my_uid = nix::unistd::getuid().as_raw();
        if peer.uid != 0 && peer.uid != my_uid {
            let svc_uid = self
                .config
                .service(owner.service())
                .and_then(|s| s.user.as_deref())
                .and_then(|u| nix::unistd::User::from_name(u).ok().flatten())
                .map(|u| u.uid.as_raw());
            if svc_uid != Some(peer.uid) {
                return Err(SpawnError::WrongUser {
                    pid: peer.pid,
                    uid: peer.uid,
                });
            }
        }
        Ok(owner)
    }

    /// Carry out the core's decision about a child.
    pub(super) fn execute_child(&mut self, action: SpawnAction) {
        match action {
            SpawnAction::Signal { unit, signal } => {
                if let Err(e) = self.backend.signal(&unit, signal) {
                    tracing::debug!(unit = %unit, "signal: {e}");
                }
            }
            SpawnAction::Kill { unit } => {
                tracing::warn!(unit = %unit, "did not stop in time; killing");
                if let Err(e) = self.backend.kill(&unit) {
                    tracing::debug!(unit = %unit, "kill: {e}");
                }
            }
            SpawnAction::Report { unit, message } => tracing::info!(unit = %unit, "{message}"),
        }
    }

    /// `status` entries of `service`'s children.
    pub(super) fn children_status(&self, service: &str, now: Instant) -> Vec<ChildStatus> {
        self.engine
            .spawn()
            .children_of(service)
            .into_iter()
            .map(|c| ChildStatus {
                name: c.name,
                unit: c.key,
                parent: c.parent,
                depth: c.depth,
                pid: c.pid,
                state: match c.state {
                    ChildState::Starting => "starting",
                    ChildState::Running => "running",
                    ChildState::Stopping => "stopping",
                }
                .to_string(),
                uptime_secs: Some(now.saturating_duration_since(c.started).as_secs_f64()),
                ttl_left_secs: c
                    .ttl_deadline
                    .map(|d| d.saturating_duration_since(now).as_secs_f64()),
            })
            .collect()
    }

    /// What state.json keeps about the children.
    pub(super) fn spawned_memos(&self) -> Vec<SpawnedMemo> {
        let now = Instant::now();
        let wall = SystemTime::now();
        let mut out = Vec::new();
        for s in &self.config.services {
            for c in self.engine.spawn().children_of(&s.name) {
                let Some(child) = self.engine.spawn().child(&c.key) else {
                    continue;
                };
                out.push(SpawnedMemo {
                    unit: c.key.clone(),
                    parent_child: match &child.parent {
                        Owner::Child { name, .. } => Some(name.clone()),
                        Owner::Service(_) => None,
                    },
                    depth: c.depth,
                    started_unix_ms: instant_to_unix_ms(now, wall, c.started),
                    ttl_deadline_unix_ms: c.ttl_deadline.map(|d| instant_to_unix_ms(now, wall, d)),
                });
            }
        }
        out
    }

    /// Re-adopt a child recorded by an earlier supervisor; `false` when it is not a child.
    /// A child whose service is gone from the config (or is no longer dynamic) is stopped.
    pub(super) fn adopt_child(&mut self, rec: &AdoptRecord, memos: &[SpawnedMemo]) -> bool {
        let Some((service, name)) = split_key(&rec.unit) else {
            return false;
        };
        let svc = self.config.service(service).cloned();
        let memo = memos.iter().find(|m| m.unit == rec.unit);
        match self.backend.adopt(rec) {
            Ok(Some(pid)) => {
                let (Some(svc), Some(memo)) = (svc, memo) else {
                    tracing::info!(unit = %rec.unit, pid, "stopping a leftover child");
                    let _ = self.backend.kill(&rec.unit);
                    return true;
                };
                let now = Instant::now();
                let wall = SystemTime::now();
                let parent = match &memo.parent_child {
                    Some(p) => Owner::Child {
                        service: service.to_string(),
                        name: p.clone(),
                    },
                    None => Owner::Service(service.to_string()),
                };
                self.engine.spawn_mut().adopt(
                    &rec.unit,
                    parent,
                    memo.depth,
                    pid,
                    unix_ms_to_instant(now, wall, memo.started_unix_ms),
                    memo.ttl_deadline_unix_ms
                        .map(|ms| unix_ms_to_instant(now, wall, ms)),
                    StopHow {
                        signal: svc.stop_signal.number,
                        timeout: svc.stop_timeout,
                    },
                );
                tracing::info!(unit = %rec.unit, pid, "adopted a running child ({name})");
            }
            Ok(None) => tracing::info!(unit = %rec.unit, "child recorded as running is gone"),
            Err(e) => tracing::warn!(unit = %rec.unit, "cannot adopt: {e}"),
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_ancestry_reaches_a_known_pid() {
        let me = std::process::id();
        let parent = parent_pid(me).unwrap();
        let mut known = HashMap::new();
        known.insert(parent, Owner::Service("web".into()));
        assert_eq!(find_owner(me, &known), Some(Owner::Service("web".into())));
        assert_eq!(find_owner(me, &HashMap::new()), None);
    }

    #[test]
    fn wall_clock_round_trip() {
        let now = Instant::now();
        let wall = SystemTime::now();
        let later = now + Duration::from_secs(30);
        let ms = instant_to_unix_ms(now, wall, later);
        let back = unix_ms_to_instant(now, wall, ms);
        assert!(back.max(later) - back.min(later) < Duration::from_millis(2));
        let earlier = now - Duration::from_secs(5);
        let back = unix_ms_to_instant(now, wall, instant_to_unix_ms(now, wall, earlier));
        assert!(back.max(earlier) - back.min(earlier) < Duration::from_millis(2));
    }
}
