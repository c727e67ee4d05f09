//! The mount namespace a sandbox asks for, as a plan: which path gets which treatment, in the
//! order the process backend applies them (parents before children). Pure: the backend
//! checks the paths and carries the plan out between fork and exec.
//!
//! The treatments follow systemd's (systemd.exec(5)): `protect_system`, `protect_home`,
//! `protect_kernel_tunables`, `protect_kernel_modules` and `protect_control_groups` stand for
//! fixed lists of paths (missing ones are skipped, as systemd's are); `read_write_paths`,
//! `read_only_paths` and `inaccessible_paths` must exist.

use std::path::{Path, PathBuf};

use super::{ProtectHome, ProtectSystem, Sandbox};

/// What happens at one path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Mode {
    /// Stays (or becomes again) writable: the path's original mounts are put back over a
    /// read-only parent.
    ReadWrite,
    /// Bound onto itself and made read-only, with everything mounted below it.
    ReadOnly,
    /// A fresh, empty, writable tmpfs (`private_tmp`), gone with the namespace.
    PrivateTmp,
    /// An empty read-only tmpfs (`protect_home: tmpfs`).
    EmptyTmpfs,
    /// A tmpfs with only the basic device nodes (`private_devices`).
    PrivateDev,
    /// Covered by an empty node of mode 000, read-only.
    Inaccessible,
}

/// One entry of the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountOp {
    pub path: PathBuf,
    pub mode: Mode,
    /// From a fixed list: a missing path is skipped.
    pub optional: bool,
    /// The config field it comes from, for errors.
    pub field: &'static str,
}

impl MountOp {
    /// Whether the entry replaces what is below its path (nothing below survives).
    fn covers(&self) -> bool {
        matches!(
            self.mode,
            Mode::PrivateTmp | Mode::EmptyTmpfs | Mode::PrivateDev | Mode::Inaccessible
        )
    }
}

const KERNEL_TUNABLES_RO: &[&str] = &[
    "/proc/acpi",
    "/proc/apm",
    "/proc/asound",
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/latency_stats",
    "/proc/mtrr",
    "/proc/scsi",
    "/proc/sys",
    "/proc/sysrq-trigger",
    "/proc/timer_list",
    "/sys",
];
const KERNEL_TUNABLES_HIDDEN: &[&str] = &["/proc/kallsyms", "/proc/kcore"];
const KERNEL_MODULES_HIDDEN: &[&str] = &["/lib/modules", "/usr/lib/modules"];
const HOMES: &[&str] = &["/home", "/root", "/run/user"];

/// The plan for `s`: empty when the sandbox needs no mount namespace.
pub fn plan(s: &Sandbox) -> Vec<MountOp> {
    let mut ops = Vec::new();
    let mut fixed = |paths: &[&str], mode: Mode, field: &'static str| {
        for p in paths {
            ops.push(MountOp {
                path: PathBuf::from(p),
                mode,
                optional: true,
                field,
            });
        }
    };
    match s.protect_system {
        ProtectSystem::No => {}
        ProtectSystem::Yes => fixed(&["/usr", "/boot", "/efi"], Mode::ReadOnly, "protect_system"),
        ProtectSystem::Full => fixed(
            &["/usr", "/boot", "/efi", "/etc"],
            Mode::ReadOnly,
            "protect_system",
        ),
        ProtectSystem::Strict => {
            fixed(&["/"], Mode::ReadOnly, "protect_system");
            // The API file systems stay as they are (other fields may protect them).
            fixed(
                &["/dev", "/proc", "/sys"],
                Mode::ReadWrite,
                "protect_system",
            );
        }
    }
    match s.protect_home {
        ProtectHome::No => {}
        ProtectHome::Yes => fixed(HOMES, Mode::Inaccessible, "protect_home"),
        ProtectHome::ReadOnly => fixed(HOMES, Mode::ReadOnly, "protect_home"),
        ProtectHome::Tmpfs => fixed(HOMES, Mode::EmptyTmpfs, "protect_home"),
    }
    if s.private_tmp {
        fixed(&["/tmp", "/var/tmp"], Mode::PrivateTmp, "private_tmp");
    }
    if s.private_devices {
        fixed(&["/dev"], Mode::PrivateDev, "private_devices");
    }
    if s.protect_kernel_tunables {
        fixed(
            KERNEL_TUNABLES_RO,
            Mode::ReadOnly,
            "protect_kernel_tunables",
        );
        fixed(
            KERNEL_TUNABLES_HIDDEN,
            Mode::Inaccessible,
            "protect_kernel_tunables",
        );
    }
    if s.protect_kernel_modules {
        fixed(
            KERNEL_MODULES_HIDDEN,
            Mode::Inaccessible,
            "protect_kernel_modules",
        );
    }
    if s.protect_control_groups {
        fixed(
            &["/sys/fs/cgroup"],
            Mode::ReadOnly,
            "protect_control_groups",
        );
    }
    for (paths, mode, field) in [
        (&s.read_write_paths, Mode::ReadWrite, "read_write_paths"),
        (&s.read_only_paths, Mode::ReadOnly, "read_only_paths"),
        (
            &s.inaccessible_paths,
            Mode::Inaccessible,
            "inaccessible_paths",
        ),
    ] {
        for p in paths {
            ops.push(MountOp {
                path: p.clone(),
                mode,
                optional: false,
                field,
            });
        }
    }
    order(ops)
}

/// The fields of `s` that need a private mount namespace, each once, in the order of the plan.
pub fn fields(s: &Sandbox) -> Vec<&'static str> {
    let mut out = Vec::new();
    let mut ops = plan(s);
    // Named once per field, in the order the fields are written in the docs.
    ops.sort_by_key(|o| FIELD_ORDER.iter().position(|f| *f == o.field));
    for o in ops {
        if !out.contains(&o.field) {
            out.push(o.field);
        }
    }
    out
}

const FIELD_ORDER: &[&str] = &[
    "private_tmp",
    "private_devices",
    "protect_system",
    "protect_home",
    "read_write_paths",
    "read_only_paths",
    "inaccessible_paths",
    "protect_kernel_tunables",
    "protect_kernel_modules",
    "protect_control_groups",
];

/// Parents before children; one entry per path (a path the user named beats a fixed list,
/// then the stricter treatment wins); nothing below a path whose content is replaced.
fn order(mut ops: Vec<MountOp>) -> Vec<MountOp> {
    ops.sort_by(|a, b| {
        depth(&a.path)
            .cmp(&depth(&b.path))
            .then_with(|| a.path.cmp(&b.path))
            // The winner first: named by the user, then the stricter mode.
            .then_with(|| a.optional.cmp(&b.optional))
            .then_with(|| b.mode.cmp(&a.mode))
    });
    ops.dedup_by(|later, first| later.path == first.path);
    let covered: Vec<PathBuf> = ops
        .iter()
        .filter(|o| o.covers())
        .map(|o| o.path.clone())
        .collect();
    ops.retain(|o| {
        !covered
            .iter()
            .any(|c| o.path != *c && o.path.starts_with(c))
    });
    ops
}

fn depth(p: &Path) -> usize {
    p.components().count()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn find<'a>(ops: &'a [MountOp], path: &str) -> Option<&'a MountOp> {
        ops.iter().find(|o| o.path == Path::new(path))
    }

    #[test]
    fn nothing_asked_nothing_planned() {
        assert!(plan(&Sandbox::default()).is_empty());
        let only_filters = Sandbox {
            no_new_privileges: true,
            memory_deny_write_execute: true,
            system_call_filter: vec!["@system-service".into()],
            ..Sandbox::default()
        };
        assert!(plan(&only_filters).is_empty());
    }

    #[test]
    fn strict_keeps_api_file_systems_and_read_write_paths() {
        let s = Sandbox {
            protect_system: ProtectSystem::Strict,
            read_write_paths: vec!["/var/lib/api".into()],
            private_tmp: true,
            ..Sandbox::default()
        };
        let ops = plan(&s);
        assert_eq!(ops[0].path, Path::new("/"));
        assert_eq!(ops[0].mode, Mode::ReadOnly);
        assert_eq!(find(&ops, "/proc").unwrap().mode, Mode::ReadWrite);
        assert_eq!(find(&ops, "/tmp").unwrap().mode, Mode::PrivateTmp);
        let rw = find(&ops, "/var/lib/api").unwrap();
        assert_eq!((rw.mode, rw.optional), (Mode::ReadWrite, false));
        // Parents first.
        let pos = |p: &str| ops.iter().position(|o| o.path == Path::new(p)).unwrap();
        assert!(pos("/") < pos("/var/lib/api") && pos("/var/tmp") < pos("/var/lib/api"));
    }

    #[test]
    fn levels_of_protect_system_and_home() {
        let yes = plan(&Sandbox {
            protect_system: ProtectSystem::Yes,
            ..Sandbox::default()
        });
        assert!(find(&yes, "/usr").is_some() && find(&yes, "/etc").is_none());
        let full = plan(&Sandbox {
            protect_system: ProtectSystem::Full,
            protect_home: ProtectHome::Tmpfs,
            ..Sandbox::default()
        });
        assert_eq!(find(&full, "/etc").unwrap().mode, Mode::ReadOnly);
        assert_eq!(find(&full, "/root").unwrap().mode, Mode::EmptyTmpfs);
        let hidden = plan(&Sandbox {
            protect_home: ProtectHome::Yes,
            ..Sandbox::default()
        });
        assert_eq!(find(&hidden, "/home").unwrap().mode, Mode::Inaccessible);
    }

    #[test]
    fn one_entry_per_path_and_nothing_below_a_cover() {
        let s = Sandbox {
            protect_system: ProtectSystem::Strict,
            private_devices: true,
            protect_kernel_tunables: true,
            protect_control_groups: true,
            protect_home: ProtectHome::Yes,
            read_only_paths: vec!["/root/notes".into()],
            read_write_paths: vec!["/usr/local".into(), "/etc".into()],
            inaccessible_paths: vec!["/etc".into()],
            ..Sandbox::default()
        };
        let ops = plan(&s);
        // /dev: the private /dev beats strict's "keep it writable".
        assert_eq!(find(&ops, "/dev").unwrap().mode, Mode::PrivateDev);
        // /sys: tunables make it read-only; /sys/fs/cgroup too, below it.
        assert_eq!(find(&ops, "/sys").unwrap().mode, Mode::ReadOnly);
        assert_eq!(find(&ops, "/sys/fs/cgroup").unwrap().mode, Mode::ReadOnly);
        assert_eq!(find(&ops, "/proc/kcore").unwrap().mode, Mode::Inaccessible);
        // Named twice by the user: the stricter wins.
        assert_eq!(find(&ops, "/etc").unwrap().mode, Mode::Inaccessible);
        // Below an inaccessible /root nothing is left to protect.
        assert!(find(&ops, "/root/notes").is_none());
        assert_eq!(find(&ops, "/usr/local").unwrap().mode, Mode::ReadWrite);
        let mut seen = std::collections::BTreeSet::new();
        assert!(ops.iter().all(|o| seen.insert(o.path.clone())));
    }

    #[test]
    fn fields_needing_a_mount_namespace() {
        let s = Sandbox {
            no_new_privileges: true,
            protect_control_groups: true,
            private_tmp: true,
            read_only_paths: vec!["/srv/a".into(), "/srv/b".into()],
            ..Sandbox::default()
        };
        assert_eq!(
            fields(&s),
            ["private_tmp", "read_only_paths", "protect_control_groups"]
        );
        assert!(fields(&Sandbox::default()).is_empty());
    }

    #[test]
    fn a_named_path_beats_a_fixed_list() {
        let s = Sandbox {
            protect_system: ProtectSystem::Yes,
            read_write_paths: vec!["/usr".into()],
            ..Sandbox::default()
        };
        let usr = plan(&s).into_iter().find(|o| o.path == Path::new("/usr"));
        assert_eq!(usr.map(|o| o.mode), Some(Mode::ReadWrite));
    }
}
