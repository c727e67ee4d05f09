//! Which project a config is. A project is its directory, not its directory's name: configs
//! in one directory (`systemg.yaml`, `changed.yaml`) are one project; two directories of the
//! same name (`/srv/a/app`, `/srv/b/app`) are two, each with its own supervisor, state, logs,
//! sockets and units.
//!
//! The project's key (the name of its state directory and of its systemd units) is:
//! - with `project:` (or `--project`), that name. A second directory that gives the same name
//!   while the first one's supervisor runs is refused, naming the directory that runs it.
//! - without it, the directory's name when that is free: no state directory of that name, or
//!   one whose `state.json` records a config of this directory (or records none). Otherwise,
//!   and from then on whenever `<name>-<hash>` exists, `<name>-<hash>` with the FNV-1a hash of
//!   the config's directory, as the process backend's cgroup names are told apart.
//!
//! The directory a project runs from is read from its `state.json` (`config`), which every
//! supervisor has written since before this rule: one started by an older `sysg` is found
//! and told apart the same way.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use thiserror::Error;

use super::paths::{fnv32, Roots};
use crate::config::Config;

/// The project name is taken by a supervisor of another directory.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[error(
    "project `{project}` is already run from {} (config {}); give this config another `project:`, or stop that one first",
    dir.display(),
    config.display()
)]
pub struct Taken {
    pub project: String,
    pub dir: PathBuf,
    pub config: PathBuf,
}

/// Largest state.json read just for its `config` (the whole file is capped at 64 MiB).
const MAX_STATE_BYTES: u64 = 64 << 20;

/// The part of state.json this needs.
#[derive(Deserialize)]
struct Recorded {
    config: PathBuf,
}

/// The config recorded by the project `key` under `roots`, if any.
fn recorded_config(roots: &Roots, key: &str) -> Option<PathBuf> {
    let file = roots.project(key).state_file;
    let bytes = crate::os::fs::read_capped(&file, MAX_STATE_BYTES).ok()?;
    let r: Recorded = serde_json::from_slice(&bytes).ok()?;
    (!r.config.as_os_str().is_empty()).then_some(r.config)
}

/// The directory of a config file, symbolic links resolved where possible (two spellings of
/// one directory are one project).
fn config_dir(config: &Path) -> PathBuf {
    let dir = config.parent().unwrap_or(Path::new("/"));
    std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf())
}

/// The key of the project `name` whose config is `config` (an absolute path).
pub fn key(roots: &Roots, name: &str, explicit: bool, config: &Path) -> Result<String, Taken> {
    let dir = config_dir(config);
    let other = |key: &str| recorded_config(roots, key).filter(|c| config_dir(c) != dir);
    if explicit {
        if let Some(theirs) = other(name) {
            if crate::control::client::is_live(&roots.project(name).socket) {
                return Err(Taken {
                    project: name.to_string(),
                    dir: config_dir(&theirs),
                    config: theirs,
                });
            }
        }
        return Ok(name.to_string());
    }
    Ok(implicit_key(
        name,
        &dir,
        |k| roots.project(k).state_dir.is_dir(),
        other,
    ))
}

/// The implicit name's key: `name` unless another directory's project holds it (`other`
/// gives the config it recorded), or this directory already has its suffixed key (`exists`).
fn implicit_key(
    name: &str,
    dir: &Path,
    exists: impl Fn(&str) -> bool,
    other: impl Fn(&str) -> Option<PathBuf>,
) -> String {
    let suffixed = format!("{name}-{:08x}", fnv32(dir));
    if exists(&suffixed) || other(name).is_some() {
        suffixed
    } else {
        name.to_string()
    }
}

/// `key` applied to a loaded config: its `project` becomes the key.
pub fn apply(roots: &Roots, cfg: &mut Config) -> Result<(), Taken> {
    cfg.project = key(roots, &cfg.project, cfg.project_explicit, &cfg.path)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roots(base: &Path) -> Roots {
        Roots {
            state: base.to_path_buf(),
            run: base.to_path_buf(),
            log: base.to_path_buf(),
            system: false,
        }
    }

    fn record(base: &Path, key: &str, config: &Path) {
        let dir = base.join(key);
        std::fs::create_dir_all(&dir).unwrap();
        let json = serde_json::json!({"version": 1, "project": key, "config": config});
        std::fs::write(dir.join("state.json"), json.to_string()).unwrap();
    }

    #[test]
    fn a_free_name_is_the_directory_name() {
        let tmp = tempfile::tempdir().unwrap();
        let r = roots(tmp.path());
        let a = tmp.path().join("a/app/systemg.yaml");
        assert_eq!(key(&r, "app", false, &a).unwrap(), "app");
        // Ours already: same directory, another file of it.
        record(tmp.path(), "app", &a);
        let changed = tmp.path().join("a/app/changed.yaml");
        assert_eq!(key(&r, "app", false, &changed).unwrap(), "app");
    }

    #[test]
    fn a_state_directory_without_a_record_keeps_its_name() {
        // What an older layout, or a project never started, leaves: nothing says whose it is,
        // so the name is kept, as before.
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tmp.path().join("app/run")).unwrap();
        let b = tmp.path().join("b/app/systemg.yaml");
        assert_eq!(key(&roots(tmp.path()), "app", false, &b).unwrap(), "app");
    }

    #[test]
    fn another_directory_of_the_same_name_gets_a_suffix() {
        let tmp = tempfile::tempdir().unwrap();
        let r = roots(tmp.path());
        record(tmp.path(), "app", &tmp.path().join("a/app/systemg.yaml"));
        let b = tmp.path().join("b/app/systemg.yaml");
        let k = key(&r, "app", false, &b).unwrap();
        assert!(k.starts_with("app-") && k.len() == "app-".len() + 8, "{k}");
        // Stable, and kept once it exists even if `app` is gone.
        std::fs::create_dir_all(tmp.path().join(&k)).unwrap();
        std::fs::remove_dir_all(tmp.path().join("app")).unwrap();
        assert_eq!(key(&r, "app", false, &b).unwrap(), k);
    }

    #[test]
    fn an_explicit_name_is_kept_and_refused_only_while_another_directory_runs_it() {
        let tmp = tempfile::tempdir().unwrap();
        let r = roots(tmp.path());
        let a = tmp.path().join("a/app/systemg.yaml");
        record(tmp.path(), "shop", &a);
        let b = tmp.path().join("b/app/systemg.yaml");
        // Nothing listens: the name is b's to take.
        assert_eq!(key(&r, "shop", true, &b).unwrap(), "shop");
        let run = tmp.path().join("shop/run");
        std::fs::create_dir_all(&run).unwrap();
        let _l = std::os::unix::net::UnixListener::bind(run.join("control.sock")).unwrap();
        let e = key(&r, "shop", true, &b).unwrap_err();
        assert_eq!(e.dir, config_dir(&a));
        assert!(e.to_string().contains("already run from"), "{e}");
        // The directory that runs it is not refused.
        assert_eq!(key(&r, "shop", true, &a).unwrap(), "shop");
    }
}
