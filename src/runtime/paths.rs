//! Where a project's state, socket, logs and fifos live, in user and system mode.

use std::path::{Path, PathBuf};

/// Every path the supervisor of one project uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectPaths {
    /// `<state root>/<project>`: state.json and friends.
    pub state_dir: PathBuf,
    /// Directory of the control socket, pid file and fifos.
    pub run_dir: PathBuf,
    /// Log directory.
    pub log_dir: PathBuf,
    pub socket: PathBuf,
    pub pid_file: PathBuf,
    pub state_file: PathBuf,
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
        let state_dir = self.state.join(project);
        let (run_dir, log_dir) = if self.system {
            (self.run.join(project), self.log.join(project))
        } else {
            (state_dir.join("run"), state_dir.join("logs"))
        };
        ProjectPaths {
            socket: run_dir.join("control.sock"),
            pid_file: run_dir.join("supervisor.pid"),
            state_file: state_dir.join("state.json"),
            state_dir,
            run_dir,
            log_dir,
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
