//! How exposed a service is, in the spirit of `systemd-analyze security`: each protection of
//! `sandbox:` (and the identity the service runs as) is a weighted check; the score is the
//! weighted share of what is missing, from 0 (everything on) to 10 (nothing), and the
//! suggestions are the missing checks that would lower it most. Pure: `sysg security` feeds
//! it the config.

use serde::Serialize;

use super::{ProtectHome, ProtectSystem, Sandbox};

/// One check of the report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Check {
    /// The config key (`sandbox.protect_system`, or `user`).
    pub field: &'static str,
    /// How much it counts.
    pub weight: f64,
    /// 0.0 (fully protected) to 1.0 (not at all).
    pub exposure: f64,
    /// What the service has now, in words.
    pub state: String,
    /// What the protection is about.
    pub about: &'static str,
    /// The YAML to write to close it (under `sandbox:`, or the service for `user`).
    pub suggestion: &'static str,
}

impl Check {
    /// Fully on.
    pub fn on(&self) -> bool {
        self.exposure == 0.0
    }
}

/// The whole report of one service.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Exposure {
    /// 0.0 (everything on) to 10.0 (nothing), one decimal.
    pub score: f64,
    /// `safe`, `ok`, `medium`, `exposed` or `unsafe`.
    pub rating: &'static str,
    pub checks: Vec<Check>,
    /// Fields of the checks that would lower the score most, best first (at most three).
    pub next: Vec<&'static str>,
}

fn flag(on: bool) -> (f64, String) {
    if on {
        (0.0, "on".into())
    } else {
        (1.0, "off".into())
    }
}

/// The report for a service with sandbox `s` that runs as root (`as_root`) or not.
pub fn assess(s: &Sandbox, as_root: bool) -> Exposure {
    let mut checks = Vec::new();
    let mut add = |field, weight, (exposure, state): (f64, String), about, suggestion| {
        checks.push(Check {
            field,
            weight,
            exposure,
            state,
            about,
            suggestion,
        })
    };
    add(
        "user",
        1.2,
        if as_root {
            (1.0, "runs as root".into())
        } else {
            (0.0, "not root".into())
        },
        "a compromised service has every privilege of root",
        "user: <an unprivileged user>",
    );
    add(
        "sandbox.no_new_privileges",
        1.0,
        flag(s.no_new_privileges),
        "setuid programs and file capabilities can raise the service's privileges",
        "no_new_privileges: true",
    );
    add(
        "sandbox.protect_system",
        1.5,
        match s.protect_system {
            ProtectSystem::Strict => (0.0, "strict".into()),
            ProtectSystem::Full => (0.3, "full (/usr, /boot, /etc read-only)".into()),
            ProtectSystem::Yes => (0.5, "true (/usr, /boot read-only)".into()),
            ProtectSystem::No => (1.0, "off: the whole file system is writable".into()),
        },
        "the service can change the operating system's files",
        "protect_system: strict",
    );
    add(
        "sandbox.system_call_filter",
        1.5,
        match s.system_call_filter.first() {
            None => (1.0, "no filter".into()),
            Some(first) if first.starts_with('~') => (0.5, "a deny-list".into()),
            Some(_) => (0.0, "an allow-list".into()),
        },
        "every system call of the kernel is reachable",
        "system_call_filter: [\"@system-service\", \"~@privileged\"]",
    );
    add(
        "sandbox.protect_home",
        1.0,
        match s.protect_home {
            ProtectHome::Yes => (0.0, "inaccessible".into()),
            ProtectHome::Tmpfs => (0.0, "tmpfs".into()),
            ProtectHome::ReadOnly => (0.3, "read-only".into()),
            ProtectHome::No => (1.0, "off: /home and /root are readable".into()),
        },
        "users' files (keys, credentials) are within reach",
        "protect_home: true",
    );
    add(
        "sandbox.restrict_address_families",
        1.0,
        match &s.restrict_address_families {
            None => (1.0, "any socket family".into()),
            Some(af) if af.deny => (0.5, format!("all but {}", af.families.join(", "))),
            Some(af) => (0.0, af.families.join(", ")),
        },
        "raw, netlink and other rarely needed sockets are open to the service",
        "restrict_address_families: [AF_UNIX, AF_INET, AF_INET6]",
    );
    add(
        "sandbox.private_devices",
        0.8,
        flag(s.private_devices),
        "disks and other physical devices in /dev are reachable",
        "private_devices: true",
    );
    add(
        "sandbox.protect_kernel_tunables",
        0.7,
        flag(s.protect_kernel_tunables),
        "kernel settings in /proc/sys and /sys can be changed",
        "protect_kernel_tunables: true",
    );
    add(
        "sandbox.protect_kernel_modules",
        0.7,
        flag(s.protect_kernel_modules),
        "kernel modules can be loaded",
        "protect_kernel_modules: true",
    );
    add(
        "sandbox.private_tmp",
        0.5,
        flag(s.private_tmp),
        "/tmp is shared with every other program",
        "private_tmp: true",
    );
    add(
        "sandbox.protect_control_groups",
        0.5,
        flag(s.protect_control_groups),
        "cgroup limits can be changed",
        "protect_control_groups: true",
    );
    add(
        "sandbox.memory_deny_write_execute",
        0.5,
        flag(s.memory_deny_write_execute),
        "memory can be both writable and executable (injected code can run)",
        "memory_deny_write_execute: true",
    );
    let total: f64 = checks.iter().map(|c| c.weight).sum();
    let open: f64 = checks.iter().map(|c| c.weight * c.exposure).sum();
    let score = (100.0 * open / total).round() / 10.0;
    let mut missing: Vec<&Check> = checks.iter().filter(|c| !c.on()).collect();
    // Largest gain first; the order of the table breaks ties.
    missing.sort_by(|a, b| (b.weight * b.exposure).total_cmp(&(a.weight * a.exposure)));
    let next = missing.iter().take(3).map(|c| c.field).collect();
    Exposure {
        score,
        rating: rating(score),
        checks,
        next,
    }
}

/// The word for a score.
pub fn rating(score: f64) -> &'static str {
    match score {
        s if s < 2.0 => "safe",
        s if s < 4.5 => "ok",
        s if s < 7.0 => "medium",
        s if s < 9.0 => "exposed",
        _ => "unsafe",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::{AddressFamilies, SyscallAction};

    fn hardened() -> Sandbox {
        Sandbox {
            no_new_privileges: true,
            private_tmp: true,
            private_devices: true,
            protect_system: ProtectSystem::Strict,
            protect_home: ProtectHome::Yes,
            read_write_paths: vec![],
            read_only_paths: vec![],
            inaccessible_paths: vec![],
            protect_kernel_tunables: true,
            protect_kernel_modules: true,
            protect_control_groups: true,
            restrict_address_families: Some(AddressFamilies {
                deny: false,
                families: vec!["AF_UNIX".into()],
            }),
            system_call_filter: vec!["@system-service".into()],
            system_call_action: SyscallAction::Eperm,
            memory_deny_write_execute: true,
        }
    }

    #[test]
    fn nothing_as_root_is_ten_and_unsafe() {
        let e = assess(&Sandbox::default(), true);
        assert_eq!(e.score, 10.0);
        assert_eq!(e.rating, "unsafe");
        assert!(e.checks.iter().all(|c| !c.on()));
        assert_eq!(
            e.next,
            vec![
                "sandbox.protect_system",
                "sandbox.system_call_filter",
                "user"
            ]
        );
    }

    #[test]
    fn everything_is_zero_and_suggests_nothing() {
        let e = assess(&hardened(), false);
        assert_eq!(e.score, 0.0);
        assert_eq!(e.rating, "safe");
        assert!(e.next.is_empty());
        assert!(e.checks.iter().all(Check::on));
    }

    #[test]
    fn partial_protections_count_partly() {
        let s = Sandbox {
            protect_system: ProtectSystem::Yes,
            system_call_filter: vec!["~@privileged".into()],
            ..hardened()
        };
        // (1.5 * 0.5 + 1.5 * 0.5) / 10.9 (the total weight) * 10
        let e = assess(&s, false);
        assert_eq!(e.score, 1.4);
        assert_eq!(e.rating, "safe");
        assert_eq!(
            e.next,
            vec!["sandbox.protect_system", "sandbox.system_call_filter"]
        );
        let root = assess(&s, true);
        assert_eq!(root.score, 2.5);
        assert_eq!(root.rating, "ok");
        assert_eq!(root.next[0], "user");
    }

    #[test]
    fn scores_only_fall_as_protections_are_added() {
        let mut s = Sandbox::default();
        let mut last = assess(&s, false).score;
        for step in 0..6 {
            match step {
                0 => s.no_new_privileges = true,
                1 => s.protect_system = ProtectSystem::Full,
                2 => s.protect_system = ProtectSystem::Strict,
                3 => s.private_tmp = true,
                4 => s.protect_home = ProtectHome::ReadOnly,
                _ => s.memory_deny_write_execute = true,
            }
            let now = assess(&s, false).score;
            assert!(now < last, "step {step}: {now} !< {last}");
            last = now;
        }
    }

    #[test]
    fn ratings() {
        assert_eq!(rating(0.0), "safe");
        assert_eq!(rating(3.0), "ok");
        assert_eq!(rating(5.0), "medium");
        assert_eq!(rating(8.0), "exposed");
        assert_eq!(rating(9.6), "unsafe");
    }
}
