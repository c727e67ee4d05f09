//! Unit tests of `os::fs`: every refusal is exercised against the file it protects.

use super::*;
use std::os::unix::fs::{MetadataExt, PermissionsExt};

fn victim(dir: &Path) -> PathBuf {
    let v = dir.join("victim");
    std::fs::write(&v, b"secret\n").unwrap();
    std::fs::set_permissions(&v, std::fs::Permissions::from_mode(0o600)).unwrap();
    v
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

#[test]
fn open_file_refuses_links_fifos_and_hard_links() {
    let t = tempfile::tempdir().unwrap();
    let v = victim(t.path());
    let d = Dir::open(t.path()).unwrap();
    std::os::unix::fs::symlink(&v, t.path().join("link")).unwrap();
    for create in [Create::No, Create::IfMissing(0o600)] {
        let e = d.open_file("link", Access::Append, create).unwrap_err();
        assert!(is_refusal(&e), "{e}");
        assert!(e.to_string().contains("symbolic link"), "{e}");
    }
    // A dangling link is not created through either.
    std::os::unix::fs::symlink(t.path().join("new"), t.path().join("dangling")).unwrap();
    let e = d
        .open_file("dangling", Access::Write, Create::IfMissing(0o600))
        .unwrap_err();
    assert!(is_refusal(&e), "{e}");
    assert!(!t.path().join("new").exists());
    // A FIFO is refused at once, not waited on.
    nix::unistd::mkfifo(&t.path().join("fifo"), nix::sys::stat::Mode::S_IRWXU).unwrap();
    for access in [Access::Read, Access::Append] {
        let e = d.open_file("fifo", access, Create::No).unwrap_err();
        assert!(e.to_string().contains("not a regular file"), "{e}");
    }
    // A second name of the victim may be read, never written.
    std::fs::hard_link(&v, t.path().join("hard")).unwrap();
    let e = d
        .open_file("hard", Access::Append, Create::IfMissing(0o600))
        .unwrap_err();
    assert!(e.to_string().contains("2 hard links"), "{e}");
    assert!(d.open_file("hard", Access::Read, Create::No).is_ok());
    assert_eq!(std::fs::read(&v).unwrap(), b"secret\n");
    // An ordinary file is created, and written.
    let mut f = d
        .open_file("log", Access::Append, Create::IfMissing(0o640))
        .unwrap();
    f.write_all(b"x").unwrap();
    assert_eq!(std::fs::read(t.path().join("log")).unwrap(), b"x");
    // Names are single components.
    assert!(d.open_file("../x", Access::Read, Create::No).is_err());
}

#[test]
fn write_atomic_never_writes_through_a_planted_name() {
    let t = tempfile::tempdir().unwrap();
    let v = victim(t.path());
    // The old fixed temporary name, planted.
    std::os::unix::fs::symlink(&v, t.path().join("state.json.tmp")).unwrap();
    let p = t.path().join("state.json");
    write_atomic(&p, b"{}", 0o644).unwrap();
    assert_eq!(std::fs::read(&p).unwrap(), b"{}");
    // The target itself a link: the link is replaced, its target untouched.
    std::fs::remove_file(&p).unwrap();
    std::os::unix::fs::symlink(&v, &p).unwrap();
    write_atomic(&p, b"{\"a\":1}", 0o644).unwrap();
    assert!(!std::fs::symlink_metadata(&p).unwrap().is_symlink());
    assert_eq!(std::fs::read(&p).unwrap(), b"{\"a\":1}");
    assert_eq!(std::fs::read(&v).unwrap(), b"secret\n");
    // No temporary file is left behind.
    let left: Vec<_> = std::fs::read_dir(t.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .filter(|n| n.to_string_lossy().ends_with(".tmp") && n != "state.json.tmp")
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn read_capped_stops_at_the_cap() {
    let t = tempfile::tempdir().unwrap();
    let p = t.path().join("f");
    std::fs::write(&p, vec![b'a'; 100]).unwrap();
    assert_eq!(read_capped(&p, 100).unwrap().len(), 100);
    let e = read_capped(&p, 99).unwrap_err();
    assert!(e.to_string().contains("larger than 99 bytes"), "{e}");
    assert_eq!(
        read_capped(&t.path().join("missing"), 9)
            .unwrap_err()
            .kind(),
        io::ErrorKind::NotFound
    );
}

#[test]
fn owners_and_modes_are_set_on_descriptors() {
    if !is_root() {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let v = victim(t.path());
    let d = Dir::open(t.path())
        .unwrap()
        .subdir("p", Some(0o700))
        .unwrap();
    std::fs::write(t.path().join("p/state.json"), b"{}").unwrap();
    std::os::unix::fs::symlink(&v, t.path().join("p/link")).unwrap();
    std::fs::hard_link(&v, t.path().join("p/hard")).unwrap();
    d.give_files_to(65534).unwrap();
    assert_eq!(
        std::fs::metadata(t.path().join("p/state.json"))
            .unwrap()
            .uid(),
        65534
    );
    let vm = std::fs::metadata(&v).unwrap();
    assert_eq!((vm.uid(), vm.mode() & 0o7777), (0, 0o600));
    d.set_owner_mode(Some(65534), None, 0o750).unwrap();
    let m = std::fs::metadata(t.path().join("p")).unwrap();
    assert_eq!((m.uid(), m.mode() & 0o7777), (65534, 0o750));
}

#[test]
fn trusted_dirs_are_made_and_checked_on_the_way() {
    let t = tempfile::tempdir().unwrap();
    let me = rustix::process::geteuid().as_raw();
    let base = t.path().join("home");
    let root = base.join(".local/share/systemg");
    let d = open_trusted_dir(&root, me, true, false).unwrap();
    assert_eq!(d.stat().unwrap().st_mode & 0o777, 0o700);
    // Through a link of ours.
    std::os::unix::fs::symlink(&base, t.path().join("alias")).unwrap();
    assert!(open_trusted_dir(
        &t.path().join("alias/.local/share/systemg"),
        me,
        false,
        false
    )
    .is_ok());
    // A directory on the way others may write to.
    std::fs::set_permissions(base.join(".local"), std::fs::Permissions::from_mode(0o777)).unwrap();
    let e = open_trusted_dir(&root, me, true, false).unwrap_err();
    assert!(matches!(e, FsError::Writable { .. }), "{e}");
    assert!(
        e.to_string().contains(".local is writable by other users"),
        "{e}"
    );
    // Sticky is fine.
    std::fs::set_permissions(base.join(".local"), std::fs::Permissions::from_mode(0o1777)).unwrap();
    assert!(open_trusted_dir(&root, me, true, false).is_ok());
    // The directory itself writable by others: refused, or tightened when asked.
    std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let e = open_trusted_dir(&root, me, false, false).unwrap_err();
    assert!(matches!(e, FsError::Writable { .. }), "{e}");
    assert!(open_trusted_dir(&root, me, false, true).is_ok());
    assert_eq!(
        std::fs::metadata(&root).unwrap().permissions().mode() & 0o7777,
        0o1755
    );
    if !is_root() {
        return;
    }
    // Another user's directory, on the way or at the end.
    std::os::unix::fs::chown(base.join(".local/share"), Some(65534), None).unwrap();
    let e = open_trusted_dir(&root, 0, true, false).unwrap_err();
    assert!(
        e.to_string().contains(".local/share belongs to uid 65534"),
        "{e}"
    );
    std::os::unix::fs::chown(base.join(".local/share"), Some(0), None).unwrap();
    std::os::unix::fs::chown(&root, Some(65534), None).unwrap();
    let e = open_trusted_dir(&root, 0, true, false).unwrap_err();
    assert!(matches!(e, FsError::Owner { .. }), "{e}");
    std::os::unix::fs::chown(&root, Some(0), None).unwrap();
    // Another user's link in a sticky directory.
    let sticky = t.path().join("sticky");
    std::fs::create_dir(&sticky).unwrap();
    std::fs::set_permissions(&sticky, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let link = sticky.join("l");
    std::os::unix::fs::symlink(&base, &link).unwrap();
    std::os::unix::fs::lchown(&link, Some(65534), None).unwrap();
    let e = open_trusted_dir(&link.join(".local/share/systemg"), 0, false, false).unwrap_err();
    assert!(
        e.to_string().contains("sticky/l belongs to uid 65534"),
        "{e}"
    );
}
