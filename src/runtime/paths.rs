//! Where a project's state, socket, logs and fifos live, in user and system mode.

use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::os::fs::{open_trusted_dir, Access, Create, Dir, FsError};

/// Every path the supervisor of one project uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectPaths {
    /// `<state root>/<project>`: state.json and friends.
    pub state_dir: PathBuf,
    /// Directory of the control socket, pid file and fifos.
    pub run_dir: PathBuf,
    /// Log directory.
    pub log_dir: PathBuf,
    /// Where the process backend makes its units' output FIFOs: in user mode a directory of
    /// `$XDG_RUNTIME_DIR` (a tmpfs in every login session, where named pipes belong) when there
    /// is one, else `run_dir`. Each FIFO's path is recorded with its unit, so a supervisor
    /// started with another environment still finds the FIFOs of the units it adopts.
    pub fifo_dir: PathBuf,
    pub socket: PathBuf,
    /// The services' socket (`--sys` with dynamic spawning): `sysg spawn` from services that
    /// run as other users, who cannot reach `socket`.
    pub spawn_socket: PathBuf,
    pub pid_file: PathBuf,
    pub state_file: PathBuf,
    /// Who must serve `socket` besides root (which always may): root for the system paths,
    /// the caller for its own. A client checks it before it sends anything (`control::client`).
    pub server_uid: u32,
    /// `--sys`: the roots are root's, and the project's directories are given their owners
    /// by `privileges::prepare_system_dirs`; otherwise all of it must be the caller's.
    pub system: bool,
}

/// A project's directories, opened (and made where missing) by `ProjectPaths::open_dirs`.
#[derive(Debug)]
pub struct ProjectDirs {
    pub state: Dir,
    pub run: Dir,
    pub log: Dir,
    /// `--sys` only: the FIFO directory (`run/fifo`) and the roots of state, run and log.
    pub system: Option<SystemDirs>,
}

/// The directories only `--sys` has.
#[derive(Debug)]
pub struct SystemDirs {
    pub fifo: Dir,
    pub roots: [Dir; 3],
}

/// A directory of the project could not be made or is not to be trusted.
#[derive(Debug, Error)]
pub enum PathError {
    #[error(transparent)]
    Fs(#[from] FsError),
    #[error("{path} is not inside {parent}")]
    Layout { path: PathBuf, parent: PathBuf },
}

/// The supervisor's lock, in the run directory.
pub const LOCK_FILE: &str = "supervisor.lock";
/// The supervisor's pid, in the run directory.
pub const PID_FILE: &str = "supervisor.pid";

/// Name of the FIFO directory below the run directory in `--sys` mode.
pub const FIFO_SUBDIR: &str = "fifo";

impl ProjectPaths {
    /// Open the project's directories, making missing ones (mode 0700), never following a
    /// symbolic link at their own names. User mode: the state root and everything below it
    /// must be the caller's and writable by nobody else, and every directory above it must
    /// belong to root or the caller and not be writable by others (unless sticky): another
    /// user's directory on the way could redirect what the supervisor writes. `--sys`: the
    /// roots must be the caller's (root's), and lose any group or other write permission;
    /// the project's directories get their owners from `privileges::prepare_system_dirs`.
    pub fn open_dirs(&self) -> Result<ProjectDirs, PathError> {
        let uid = nix::unistd::geteuid().as_raw();
        // `path` below `parent`, which was opened from the path `parent_path` (its own
        // `path()` is where links led).
        let sub = |parent: &Dir, parent_path: &Path, path: &Path| -> Result<Dir, PathError> {
            let name = path
                .file_name()
                .filter(|_| path.parent() == Some(parent_path))
                .ok_or_else(|| PathError::Layout {
                    path: path.to_path_buf(),
                    parent: parent_path.to_path_buf(),
                })?;
            parent.subdir(name, Some(0o700)).map_err(|source| {
                PathError::Fs(FsError::Io {
                    path: path.to_path_buf(),
                    source,
                })
            })
        };
        let parent = |p: &Path| p.parent().map(Path::to_path_buf).unwrap_or_default();
        if !self.system {
            let root = open_trusted_dir(&parent(&self.state_dir), uid, true, false)?;
            let state = sub(&root, &parent(&self.state_dir), &self.state_dir)?;
            crate::os::fs::check_private(&state, uid)?;
            let run = sub(&state, &self.state_dir, &self.run_dir)?;
            crate::os::fs::check_private(&run, uid)?;
            let log = sub(&state, &self.state_dir, &self.log_dir)?;
            crate::os::fs::check_private(&log, uid)?;
            return Ok(ProjectDirs {
                state,
                run,
                log,
                system: None,
            });
        }
        // The roots' modes are ours to set (`prepare_system_dirs`): one others may write to
        // (a fresh tmpfs) is closed at once rather than refused.
        let roots = [
            open_trusted_dir(&parent(&self.state_dir), uid, true, true)?,
            open_trusted_dir(&parent(&self.run_dir), uid, true, true)?,
            open_trusted_dir(&parent(&self.log_dir), uid, true, true)?,
        ];
        let state = sub(&roots[0], &parent(&self.state_dir), &self.state_dir)?;
        let run = sub(&roots[1], &parent(&self.run_dir), &self.run_dir)?;
        let log = sub(&roots[2], &parent(&self.log_dir), &self.log_dir)?;
        let fifo = sub(&run, &self.run_dir, &self.fifo_dir)?;
        Ok(ProjectDirs {
            state,
            run,
            log,
            system: Some(SystemDirs { fifo, roots }),
        })
    }
}

impl ProjectPaths {
    /// Wait until no supervisor holds the project's lock (it exits right after answering a
    /// shutdown), and hold it: `None` when there is no lock file to wait on.
    pub fn wait_unlocked(&self) -> Option<nix::fcntl::Flock<std::fs::File>> {
        let dir = Dir::open(&self.run_dir).ok()?;
        let f = dir.open_file(LOCK_FILE, Access::Read, Create::No).ok()?;
        nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusive).ok()
    }

    /// With the lock held (`wait_unlocked`): remove the sockets and pid file a supervisor
    /// left. One that dropped its privileges cannot remove them itself from root's run
    /// directory.
    pub fn clear_leftovers(&self, _lock: &nix::fcntl::Flock<std::fs::File>) {
        let Ok(dir) = Dir::open(&self.run_dir) else {
            return;
        };
        for path in [&self.socket, &self.spawn_socket, &self.pid_file] {
            if let Some(name) = path.file_name() {
                let _ = dir.remove(name);
            }
        }
    }
}

/// Roots under which per-project directories are made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Roots {
    pub state: PathBuf,
    pub run: PathBuf,
    pub log: PathBuf,
    pub system: bool,
}

impl Roots {
    /// System mode: /var/lib/systemg, /run/systemg, /var/log/systemg.
    pub fn system() -> Roots {
        Roots {
            state: PathBuf::from("/var/lib/systemg"),
            run: PathBuf::from("/run/systemg"),
            log: PathBuf::from("/var/log/systemg"),
            system: true,
        }
    }

    /// User mode: `$XDG_STATE_HOME/systemg` or `~/.local/share/systemg` for everything.
    pub fn user() -> Roots {
        let base = std::env::var_os("XDG_STATE_HOME")
            .filter(|v| !v.is_empty())
            .map(|v| PathBuf::from(v).join("systemg"))
            .unwrap_or_else(|| home_dir().join(".local/share/systemg"));
        Roots {
            state: base.clone(),
            run: base.clone(),
            log: base,
            system: false,
        }
    }

    /// Pick by mode.
    pub fn for_mode(system: bool) -> Roots {
        if system {
            Roots::system()
        } else {
            Roots::user()
        }
    }

    /// Paths of one project.
    pub fn project(&self, project: &str) -> ProjectPaths {
        self.project_in(project, runtime_dir())
    }

    /// Paths of one project, given the user's runtime directory (if usable).
    fn project_in(&self, project: &str, runtime: Option<PathBuf>) -> ProjectPaths {
        let state_dir = self.state.join(project);
        let (run_dir, log_dir) = if self.system {
            (self.run.join(project), self.log.join(project))
        } else {
            (state_dir.join("run"), state_dir.join("logs"))
        };
        let fifo_dir = match runtime.filter(|_| !self.system) {
            // Named by the state directory too: two state roots of one user never share it.
            Some(rt) => rt
                .join("systemg")
                .join(format!("{project}-{:08x}", fnv32(&state_dir))),
            // The run directory stays root's: a supervisor that drops its privileges makes
            // its FIFOs in a directory of its own below it.
            None if self.system => run_dir.join(FIFO_SUBDIR),
            None => run_dir.clone(),
        };
        ProjectPaths {
            fifo_dir,
            socket: run_dir.join("control.sock"),
            spawn_socket: run_dir.join("spawn.sock"),
            pid_file: run_dir.join(PID_FILE),
            state_file: state_dir.join("state.json"),
            server_uid: if self.system {
                0
            } else {
                nix::unistd::geteuid().as_raw()
            },
            state_dir,
            run_dir,
            log_dir,
            system: self.system,
        }
    }

    /// Names of projects that have a state directory.
    pub fn projects(&self) -> Vec<String> {
        let mut out: Vec<String> = std::fs::read_dir(&self.state)
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .filter(|e| e.path().is_dir())
                    .filter_map(|e| e.file_name().into_string().ok())
                    .collect()
            })
            .unwrap_or_default();
        out.sort();
        out
    }
}

/// The default config file for the mode.
pub fn default_config(system: bool) -> PathBuf {
    if system {
        PathBuf::from("/etc/systemg/systemg.yaml")
    } else {
        PathBuf::from("systemg.yaml")
    }
}

fn home_dir() -> PathBuf {
    if let Some(h) = std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        return PathBuf::from(h);
    }
    nix::unistd::User::from_uid(nix::unistd::getuid())
        .ok()
        .flatten()
        .map(|u| u.dir)
        .unwrap_or_else(|| PathBuf::from("/"))
}

/// `$XDG_RUNTIME_DIR` when it is usable: absolute, a directory of ours, private (0700).
fn runtime_dir() -> Option<PathBuf> {
    use std::os::unix::fs::MetadataExt;
    let dir = PathBuf::from(std::env::var_os("XDG_RUNTIME_DIR")?);
    let meta = std::fs::symlink_metadata(&dir).ok()?;
    let ours =
        meta.is_dir() && meta.uid() == nix::unistd::geteuid().as_raw() && meta.mode() & 0o077 == 0;
    (dir.is_absolute() && ours).then_some(dir)
}

/// FNV-1a of a path, 32 bits: short, stable names derived from directories.
pub fn fnv32(path: &Path) -> u32 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in path.as_os_str().as_encoded_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h as u32
}

/// Create `dir` (and parents) with mode 0700 where it is new.
pub fn ensure_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_layout() {
        let p = Roots::system().project("web");
        assert_eq!(
            p.state_file,
            PathBuf::from("/var/lib/systemg/web/state.json")
        );
        assert_eq!(p.socket, PathBuf::from("/run/systemg/web/control.sock"));
        assert_eq!(p.log_dir, PathBuf::from("/var/log/systemg/web"));
    }

    #[test]
    fn fifos_go_to_the_runtime_dir_in_user_mode() {
        let user = Roots {
            state: PathBuf::from("/home/u/.local/share/systemg"),
            run: PathBuf::from("/home/u/.local/share/systemg"),
            log: PathBuf::from("/home/u/.local/share/systemg"),
            system: false,
        };
        let rt = Some(PathBuf::from("/run/user/1000"));
        let p = user.project_in("web", rt.clone());
        let name = p
            .fifo_dir
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        assert_eq!(
            p.fifo_dir.parent(),
            Some(Path::new("/run/user/1000/systemg"))
        );
        assert!(
            name.starts_with("web-") && name.len() == "web-".len() + 8,
            "{name}"
        );
        // The socket and lock stay with the state: every invocation finds them, whatever its
        // environment.
        assert_eq!(p.socket, user.project_in("web", None).socket);
        // Another state root of the same user gets its own directory.
        let other = Roots {
            state: PathBuf::from("/tmp/h/.local/share/systemg"),
            ..user.clone()
        };
        assert_ne!(other.project_in("web", rt.clone()).fifo_dir, p.fifo_dir);
        // Without a runtime directory: the run dir; always in system mode (/run is one), a
        // directory below it that a supervisor dropping its privileges may own.
        assert_eq!(user.project_in("web", None).fifo_dir, p.run_dir);
        let sys = Roots::system().project_in("web", rt);
        assert_eq!(sys.fifo_dir, sys.run_dir.join("fifo"));
    }

    #[test]
    fn user_layout_is_under_one_root() {
        let r = Roots {
            state: PathBuf::from("/h/.local/share/systemg"),
            run: PathBuf::from("/h/.local/share/systemg"),
            log: PathBuf::from("/h/.local/share/systemg"),
            system: false,
        };
        let p = r.project("demo");
        assert_eq!(
            p.socket,
            PathBuf::from("/h/.local/share/systemg/demo/run/control.sock")
        );
        assert_eq!(
            p.log_dir,
            PathBuf::from("/h/.local/share/systemg/demo/logs")
        );
    }
}
