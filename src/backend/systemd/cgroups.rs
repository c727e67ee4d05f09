//! Whether the cgroup limits of a service would be enforced: systemd accepts `MemoryMax=` and
//! `CPUQuotaPerSecUSec=` whatever the host offers, and where the controller is not available to
//! its hierarchy (a cgroup v1 or hybrid host, a container that delegates none) the unit runs
//! without the limit and without a word. The controllers systemd can enable for the project's
//! units are those of the manager's own cgroup (`ControlGroup` on the manager, under the
//! cgroup2 mount): it enables them down the tree on demand, never more. A limit whose
//! controller is missing fails the start naming `limits.cgroup`, as on the process backend.

use std::path::{Path, PathBuf};

use crate::config::schema::CgroupLimits;

/// The controllers `limits` needs, each with the config field that asks for it.
pub fn wanted(limits: &CgroupLimits) -> Vec<(&'static str, &'static str)> {
    let mut out = Vec::new();
    if limits.memory_max.is_some() {
        out.push(("memory", "limits.cgroup.memory_max"));
    }
    if limits.cpu_max.is_some() {
        out.push(("cpu", "limits.cgroup.cpu_max"));
    }
    out
}

/// The verdict, from the contents of `cgroup.controllers` (`None`: no cgroup2 hierarchy was
/// found). `where_` names the file for the message.
pub fn check(
    wanted: &[(&'static str, &'static str)],
    controllers: Option<&str>,
    where_: &str,
) -> Result<(), String> {
    let Some((controller, field)) = wanted
        .iter()
        .find(|(c, _)| !controllers.is_some_and(|s| s.split_whitespace().any(|x| x == *c)))
    else {
        return Ok(());
    };
    let have = match controllers.map(str::trim) {
        None => format!("no cgroup v2 hierarchy ({where_})"),
        Some("") => format!("{where_} lists none"),
        Some(list) => format!("{where_} lists: {list}"),
    };
    Err(format!(
        "limits.cgroup: {field} needs the {controller} controller, which is not available to systemd's units ({have}); systemd would run the service without the limit"
    ))
}

/// The cgroup2 mount point, from `/proc/self/mountinfo`.
fn cgroup2_mount() -> Option<PathBuf> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    mount_of(&text)
}

/// The mount point of the first `cgroup2` filesystem in a mountinfo text.
fn mount_of(mountinfo: &str) -> Option<PathBuf> {
    mountinfo.lines().find_map(|l| {
        let (left, right) = l.split_once(" - ")?;
        (right.split_whitespace().next()? == "cgroup2")
            .then(|| left.split_whitespace().nth(4).map(unescape))
            .flatten()
            .map(PathBuf::from)
    })
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let oct = b
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match (b[i], oct) {
            (b'\\', Some(d)) => {
                out.push((d[0] - b'0') * 64 + (d[1] - b'0') * 8 + (d[2] - b'0'));
                i += 4;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Read `cgroup.controllers` of the manager's cgroup `control_group`: the verdict for `limits`.
pub fn verify(limits: &CgroupLimits, control_group: &str) -> Result<(), String> {
    let wanted = wanted(limits);
    if wanted.is_empty() {
        return Ok(());
    }
    let Some(mount) = cgroup2_mount() else {
        return check(&wanted, None, "/proc/self/mountinfo has no cgroup2 mount");
    };
    let file = controllers_file(&mount, control_group);
    let text = std::fs::read_to_string(&file).ok();
    check(&wanted, text.as_deref(), &file.display().to_string())
}

fn controllers_file(mount: &Path, control_group: &str) -> PathBuf {
    let rel = control_group.trim_start_matches('/');
    let dir = if rel.is_empty() {
        mount.to_path_buf()
    } else {
        mount.join(rel)
    };
    dir.join("cgroup.controllers")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::schema::Size;

    fn memory() -> CgroupLimits {
        CgroupLimits {
            memory_max: Some(Size::Value(64 << 20)),
            ..CgroupLimits::default()
        }
    }

    #[test]
    fn a_limit_without_its_controller_fails_naming_the_field() {
        let w = wanted(&memory());
        let e = check(&w, Some("hugetlb\n"), "/sys/fs/cgroup/cgroup.controllers").unwrap_err();
        assert!(
            e.starts_with("limits.cgroup: limits.cgroup.memory_max needs the memory controller"),
            "{e}"
        );
        assert!(e.contains("lists: hugetlb"), "{e}");
        assert!(check(&w, Some(""), "f")
            .unwrap_err()
            .contains("f lists none"));
        assert!(check(&w, None, "no mount")
            .unwrap_err()
            .contains("no cgroup v2"));
    }

    #[test]
    fn a_limit_with_its_controller_passes() {
        let w = wanted(&memory());
        assert_eq!(check(&w, Some("cpuset cpu io memory pids\n"), "f"), Ok(()));
        // No limit: nothing is needed, even without a hierarchy.
        assert!(wanted(&CgroupLimits::default()).is_empty());
        assert_eq!(check(&[], None, "f"), Ok(()));
        // The name must match whole: `memory` is not `memory_recursiveprot`.
        assert!(check(&w, Some("memoryx cpu"), "f").is_err());
    }

    #[test]
    fn the_cgroup2_mount_is_found_in_mountinfo() {
        let hybrid = "25 30 0:22 / /sys/fs/cgroup ro,nosuid shared:9 - tmpfs tmpfs ro,mode=755\n\
            26 25 0:23 / /sys/fs/cgroup/unified rw,nosuid shared:10 - cgroup2 cgroup2 rw\n\
            27 25 0:24 / /sys/fs/cgroup/memory rw shared:11 - cgroup cgroup rw,memory\n";
        assert_eq!(
            mount_of(hybrid),
            Some(PathBuf::from("/sys/fs/cgroup/unified"))
        );
        assert_eq!(
            mount_of("27 25 0:24 / /m rw - cgroup cgroup rw,memory\n"),
            None
        );
        let spaced = "26 25 0:23 / /my\\040cg rw - cgroup2 cgroup2 rw\n";
        assert_eq!(mount_of(spaced), Some(PathBuf::from("/my cg")));
        assert_eq!(
            controllers_file(Path::new("/sys/fs/cgroup"), "/user.slice/user@1000.service"),
            PathBuf::from("/sys/fs/cgroup/user.slice/user@1000.service/cgroup.controllers")
        );
        assert_eq!(
            controllers_file(Path::new("/sys/fs/cgroup"), "/"),
            PathBuf::from("/sys/fs/cgroup/cgroup.controllers")
        );
    }

    #[test]
    fn the_real_hierarchy_is_read() {
        // Whatever this host offers, the verdict matches its manager-less root's file.
        let Some(mount) = cgroup2_mount() else { return };
        let text = std::fs::read_to_string(mount.join("cgroup.controllers")).unwrap_or_default();
        let has = text.split_whitespace().any(|c| c == "memory");
        assert_eq!(verify(&memory(), "/").is_ok(), has, "{text:?}");
    }
}
