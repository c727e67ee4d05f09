//! Privileged mode: checking a config against the identity that will run it, the `systemg`
//! group's access to a `--sys` supervisor, and `--drop-privileges`.
//!
//! `--drop-privileges` rule: the supervisor drops to the one user its services declare with
//! `user:`. Every service that sets `user:` must name the same (non-root) user, and at least one
//! must; services without `user:` then run as that user too, since an unprivileged supervisor
//! can run nothing as anyone else. Root does the set-up first (directories, the control
//! socket, the lock), then switches to the user's uid, primary gid and login groups for good.
//! The process backend is required: an unprivileged process may not start system units (polkit
//! refuses), and keeping a bus connection opened as root would keep root's power over systemd,
//! which makes the drop meaningless.

use thiserror::Error;

use super::paths::ProjectDirs;
use crate::backend::Choice;
use crate::config::privileged::{describe_uid, login_groups, lookup_user, Caller};
use crate::config::{privileged_problems, Config, ConfigErrors, DiagKind, Diagnostic};
use crate::os::fs::Dir;

/// The group whose members may read a `--sys` supervisor's status and logs.
pub const SYSTEM_GROUP: &str = "systemg";

/// Privileged-mode failures.
#[derive(Debug, Error)]
pub enum PrivilegeError {
    /// `--drop-privileges` cannot be honoured.
    #[error("--drop-privileges: {0}")]
    Drop(String),
    /// A directory could not be given its owner or mode.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

/// The calling process as a `Caller`.
pub fn current_caller() -> Caller {
    Caller::current(crate::backend::process::cgroup_writable())
}

/// The user `--drop-privileges` switches to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DropTarget {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    /// Login groups (primary first is not guaranteed).
    pub groups: Vec<u32>,
}

impl DropTarget {
    /// Apply the rule in the module comment to `cfg`.
    pub fn from_config(cfg: &Config) -> Result<DropTarget, PrivilegeError> {
        let mut found: Option<(DropTarget, String)> = None;
        for svc in &cfg.services {
            let Some(user) = &svc.user else { continue };
            let (uid, gid) = lookup_user(user)
                .map_err(|m| PrivilegeError::Drop(format!("services.{}.user: {m}", svc.name)))?;
            match &found {
                None => {
                    let name = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
                        .ok()
                        .flatten()
                        .map(|u| u.name)
                        .unwrap_or_else(|| user.clone());
                    let groups = login_groups(&name, gid);
                    found = Some((
                        DropTarget {
                            name,
                            uid,
                            gid,
                            groups,
                        },
                        svc.name.clone(),
                    ));
                }
                Some((t, first)) if t.uid != uid => {
                    return Err(PrivilegeError::Drop(format!(
                        "services `{first}` and `{}` run as different users (`{}` and `{user}`); the supervisor can drop to only one: give every service the same `user:` or run without --drop-privileges",
                        svc.name, t.name
                    )))
                }
                Some(_) => {}
            }
        }
        let Some((target, _)) = found else {
            return Err(PrivilegeError::Drop(
                "no service sets `user:`, so there is no user to drop to; set `user:` on the services (all the same user)".into(),
            ));
        };
        if target.uid == 0 {
            return Err(PrivilegeError::Drop(
                "the services run as root, so there is nothing to drop to".into(),
            ));
        }
        Ok(target)
    }

    /// The identity services inherit after the drop. Hard limits and niceness stay those of
    /// the (root) process that drops.
    pub fn caller(&self) -> Caller {
        let mut c = Caller::current(false);
        c.uid = self.uid;
        c.gid = self.gid;
        c.root = false;
        c.describe = format!("{} after --drop-privileges", describe_uid(self.uid));
        c.hint = "remove the field, or run without --drop-privileges".into();
        c
    }
}

/// Check `cfg` against the identity that will run its services: the caller, or the
/// `--drop-privileges` user. Every problem is a diagnostic with the field's position.
pub fn check(cfg: &Config, drop_privileges: bool, system: bool) -> Result<(), ConfigErrors> {
    let caller = if drop_privileges {
        match drop_caller(cfg, system) {
            Ok(c) => c,
            Err(e) => {
                return Err(ConfigErrors(vec![Diagnostic {
                    kind: DiagKind::Config,
                    file: cfg.path.clone(),
                    line: 0,
                    column: 0,
                    message: e.to_string(),
                }]))
            }
        }
    } else {
        current_caller()
    };
    let mut problems = privileged_problems(cfg, &caller);
    // Ports the supervisor (which binds `sockets:` itself) may not bind.
    problems.extend(crate::config::sockets::host_problems(
        cfg,
        caller.root,
        &caller.describe,
        false,
    ));
    if problems.is_empty() {
        Ok(())
    } else {
        Err(ConfigErrors(problems))
    }
}

fn drop_caller(cfg: &Config, system: bool) -> Result<Caller, PrivilegeError> {
    if !system {
        return Err(PrivilegeError::Drop(
            "needs --sys: the dropped supervisor keeps its state, socket and logs in the system directories, which root prepares for it".into(),
        ));
    }
    if !nix::unistd::geteuid().is_root() {
        return Err(PrivilegeError::Drop(
            "only root can drop privileges; run it with sudo, or without --drop-privileges".into(),
        ));
    }
    Ok(DropTarget::from_config(cfg)?.caller())
}

/// The backend a supervisor that drops privileges must use.
pub fn backend_for_drop(choice: Choice) -> Result<Choice, PrivilegeError> {
    match choice {
        Choice::Process | Choice::Auto => Ok(Choice::Process),
        Choice::Systemd => Err(PrivilegeError::Drop(
            "the systemd backend needs the supervisor to keep talking to systemd as root; use --backend process (or auto) with --drop-privileges, or let systemd apply `user:` without dropping".into(),
        )),
    }
}

/// The gid of the `systemg` group, when it exists.
pub fn system_group() -> Option<u32> {
    nix::unistd::Group::from_name(SYSTEM_GROUP)
        .ok()
        .flatten()
        .map(|g| g.gid.as_raw())
}

/// Give a `--sys` project's directories their owners and modes, on the descriptors
/// `ProjectPaths::open_dirs` opened (never by name). With the `systemg` group, the roots
/// (/var/lib/systemg, /run/systemg, /var/log/systemg) and the project's directories are
/// `root:systemg 0750`, so members reach the socket, the state and the logs; without it they
/// are `0700`. The run directory (control socket, services' socket, pid file, lock) is always
/// root's. With `owner` (the `--drop-privileges` user), the state and log directories, the
/// regular single-link files directly in them, and the FIFO directory belong to that user, who
/// must write state, logs and FIFOs; the roots and the run directory get `o+x` so that it can
/// reach them. A name swapped for a symbolic link or a hard link is skipped, never followed.
pub fn prepare_system_dirs(
    dirs: &ProjectDirs,
    group: Option<u32>,
    owner: Option<u32>,
) -> Result<(), PrivilegeError> {
    let Some(sys) = &dirs.system else {
        return Ok(());
    };
    let me = nix::unistd::geteuid().as_raw();
    let mode = if group.is_some() { 0o750 } else { 0o700 };
    // The dropped user must pass through the roots and the run directory to reach its own
    // directories; it may not list them.
    let pass = if owner.is_some() { 0o001 } else { 0 };
    for root in &sys.roots {
        set_owner_mode(root, None, group, mode | pass)?;
    }
    set_owner_mode(&dirs.run, Some(me), group, mode | pass)?;
    set_owner_mode(&sys.fifo, Some(owner.unwrap_or(me)), None, 0o700)?;
    for dir in [&dirs.state, &dirs.log] {
        set_owner_mode(dir, Some(owner.unwrap_or(me)), group, mode)?;
        if let Some(uid) = owner {
            // State and logs a root supervisor wrote must stay writable.
            dir.give_files_to(uid)
                .map_err(|source| PrivilegeError::Io {
                    context: format!("giving the files of {} to uid {uid}", dir.path().display()),
                    source,
                })?;
        }
    }
    Ok(())
}

/// Let every user pass through (not list) the run directory and its parent, so that services
/// running as other users reach the services' socket in it. What else is there stays closed
/// by its own mode (the control socket is 0660, the FIFO directory 0700).
pub fn open_run_dir_to_services(dirs: &ProjectDirs) -> Result<(), PrivilegeError> {
    let parent = dirs.system.as_ref().map(|s| &s.roots[1]);
    for dir in parent.into_iter().chain([&dirs.run]) {
        let io = |source| PrivilegeError::Io {
            context: format!("chmod o+x {}", dir.path().display()),
            source,
        };
        let mode = dir.stat().map_err(io)?.st_mode & 0o7777;
        if mode & 0o001 == 0 {
            dir.set_owner_mode(None, None, mode | 0o001).map_err(io)?;
        }
    }
    Ok(())
}

fn set_owner_mode(
    dir: &Dir,
    owner: Option<u32>,
    group: Option<u32>,
    mode: u32,
) -> Result<(), PrivilegeError> {
    dir.set_owner_mode(owner, group, mode)
        .map_err(|source| PrivilegeError::Io {
            context: format!("setting the owner and mode of {}", dir.path().display()),
            source,
        })
}

/// Become `target` for good: login groups, gid, uid (all three of real, effective, saved), then
/// prove it by failing to get root back.
pub fn drop_to(target: &DropTarget) -> Result<(), PrivilegeError> {
    let fail = |what: &str, e: nix::Error| PrivilegeError::Drop(format!("{what}: {e}"));
    let groups: Vec<nix::unistd::Gid> = target
        .groups
        .iter()
        .map(|g| nix::unistd::Gid::from_raw(*g))
        .collect();
    nix::unistd::setgroups(&groups).map_err(|e| fail("setgroups", e))?;
    let gid = nix::unistd::Gid::from_raw(target.gid);
    nix::unistd::setresgid(gid, gid, gid).map_err(|e| fail("setresgid", e))?;
    let uid = nix::unistd::Uid::from_raw(target.uid);
    // glibc applies set*id calls to every thread of the process, so threads started before
    // this point change identity too.
    nix::unistd::setresuid(uid, uid, uid).map_err(|e| fail("setresuid", e))?;
    if nix::unistd::setuid(nix::unistd::Uid::from_raw(0)).is_ok() {
        return Err(PrivilegeError::Drop(
            "root could be regained after the drop; refusing to continue".into(),
        ));
    }
    tracing::info!(
        "dropped privileges: now {} (gid {})",
        describe_uid(target.uid),
        target.gid
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::load_str;

    fn cfg(services: &str) -> Config {
        let yaml = format!("version: \"1\"\nservices:\n{services}");
        load_str(&yaml, std::path::Path::new("/srv/p/systemg.yaml")).unwrap()
    }

    #[test]
    fn drop_target_is_the_one_declared_user() {
        let c = cfg("  a:\n    command: x\n    user: nobody\n  b:\n    command: y\n  c:\n    command: z\n    user: \"65534\"\n");
        let t = DropTarget::from_config(&c).unwrap();
        assert_eq!((t.name.as_str(), t.uid), ("nobody", 65534));
        assert!(t.groups.contains(&t.gid));
        let caller = t.caller();
        assert!(!caller.root);
        assert!(caller.describe.contains("after --drop-privileges"));
    }

    #[test]
    fn drop_target_refusals_say_why() {
        let none = cfg("  a:\n    command: x\n");
        let e = DropTarget::from_config(&none).unwrap_err().to_string();
        assert!(e.contains("no service sets `user:`"), "{e}");
        let two =
            cfg("  a:\n    command: x\n    user: nobody\n  b:\n    command: y\n    user: root\n");
        let e = DropTarget::from_config(&two).unwrap_err().to_string();
        assert!(e.contains("`a` and `b` run as different users"), "{e}");
        let root = cfg("  a:\n    command: x\n    user: root\n");
        let e = DropTarget::from_config(&root).unwrap_err().to_string();
        assert!(e.contains("nothing to drop to"), "{e}");
    }

    #[test]
    fn the_systemd_backend_cannot_be_dropped_to() {
        assert_eq!(backend_for_drop(Choice::Auto).unwrap(), Choice::Process);
        assert_eq!(backend_for_drop(Choice::Process).unwrap(), Choice::Process);
        assert!(backend_for_drop(Choice::Systemd).is_err());
    }
}
