//! The environment files of the project's units: `<run dir>/env/<service>.env`, in a directory
//! only the supervisor's user may enter (0700) and files only it may read (0600), written and
//! removed through `os::fs` (no symbolic link is ever followed, a planted file is replaced,
//! never written through).
//!
//! A unit names its file in `EnvironmentFiles=` instead of carrying `Environment=`, which
//! every local user can read with `systemctl show`. systemd reads the file at every start of
//! the unit, `systemctl restart` included, so the file lives as long as the unit: it is
//! removed when systemd unloads the unit (the signal thread sees `UnitRemoved`) and, for
//! whatever is left, when the project's supervisor leaves for good (`release`).

use std::path::{Path, PathBuf};

use crate::os::fs::Dir;

/// The file name of `service`'s environment.
fn file_name(service: &str) -> String {
    format!("{}.env", crate::spec::file_key(service))
}

/// Open (made where missing) the private directory `dir`: it must belong to us; its mode is
/// set to 0700 on its descriptor.
fn open_private(dir: &Path) -> std::io::Result<Dir> {
    let (Some(parent), Some(name)) = (dir.parent(), dir.file_name()) else {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "no parent directory",
        ));
    };
    let parent = Dir::open(parent)?;
    let d = parent.subdir(name, Some(0o700))?;
    let st = d.stat()?;
    let me = rustix::process::geteuid().as_raw();
    if st.st_uid != me {
        return Err(std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            format!(
                "it belongs to {}, not to {}",
                crate::os::fs::describe(st.st_uid),
                crate::os::fs::describe(me)
            ),
        ));
    }
    if st.st_mode & 0o7777 != 0o700 {
        d.set_owner_mode(None, None, 0o700)?;
    }
    Ok(d)
}

/// Write `text` as the environment file of `service` in `dir`; returns its path.
pub fn write(dir: &Path, service: &str, text: &str) -> std::io::Result<PathBuf> {
    let d = open_private(dir)?;
    let name = file_name(service);
    d.write_atomic(&name, text.as_bytes(), 0o600)?;
    Ok(d.join(name))
}

/// Remove the environment file of `service` (a missing one is fine).
pub fn remove(dir: Option<&PathBuf>, service: &str) {
    let Some(dir) = dir else { return };
    match Dir::open(dir).and_then(|d| d.remove(file_name(service))) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => tracing::debug!("removing the environment file of {service}: {e}"),
    }
}

/// Remove every environment file in `dir`: the project's supervisor leaves for good.
pub fn remove_all(dir: Option<&PathBuf>) {
    let Some(dir) = dir else { return };
    let d = match Dir::open(dir) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
        Err(e) => {
            tracing::debug!("opening {}: {e}", dir.display());
            return;
        }
    };
    match d.names() {
        Ok(names) => {
            for n in names {
                if n.to_string_lossy().ends_with(".env") {
                    if let Err(e) = d.remove(&n) {
                        tracing::debug!("removing {}: {e}", d.join(&n).display());
                    }
                }
            }
        }
        Err(e) => tracing::debug!("listing {}: {e}", dir.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    #[test]
    fn files_are_private_and_removed_by_name() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("env");
        let path = write(&dir, "api/web", "A=1\n").unwrap();
        assert_eq!(path, dir.join("api@web.env"));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "A=1\n");
        assert_eq!(std::fs::metadata(&dir).unwrap().mode() & 0o7777, 0o700);
        assert_eq!(std::fs::metadata(&path).unwrap().mode() & 0o777, 0o600);
        // Rewritten in place for the next start.
        write(&dir, "api/web", "A=2\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "A=2\n");
        write(&dir, "db", "B=1\n").unwrap();
        remove(Some(&dir), "api/web");
        assert!(!path.exists());
        assert!(dir.join("db.env").exists());
        remove_all(Some(&dir));
        assert!(!dir.join("db.env").exists());
    }

    #[test]
    fn a_loose_directory_is_tightened_and_a_link_is_never_followed() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("env");
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        write(&dir, "db", "A=1\n").unwrap();
        assert_eq!(std::fs::metadata(&dir).unwrap().mode() & 0o7777, 0o700);

        // A symbolic link planted at the file's name is replaced, not written through.
        let victim = tmp.path().join("victim");
        std::fs::write(&victim, "keep").unwrap();
        std::fs::remove_file(dir.join("db.env")).unwrap();
        std::os::unix::fs::symlink(&victim, dir.join("db.env")).unwrap();
        write(&dir, "db", "A=1\n").unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep");
        assert!(!std::fs::symlink_metadata(dir.join("db.env"))
            .unwrap()
            .file_type()
            .is_symlink());

        // A symbolic link as the directory itself is refused.
        let other = tmp.path().join("other");
        std::fs::create_dir(&other).unwrap();
        let linked = tmp.path().join("linked");
        std::os::unix::fs::symlink(&other, &linked).unwrap();
        assert!(write(&linked, "db", "A=1\n").is_err());
        assert!(!other.join("db.env").exists());
    }
}
