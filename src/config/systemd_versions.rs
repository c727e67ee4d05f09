//! Which systemd a service's settings need on the systemd backend.
//!
//! A transient unit property the running manager does not know is refused by
//! `StartTransientUnit` ("Unknown assignment"); sent blindly, it fails every start of the
//! service. The table below names, for every property sysg may send that is newer than the
//! oldest systemd the project supports, the first systemd version that accepts it in a
//! transient unit and the config field it comes from. `sysg validate` and `sysg start` check
//! the config against the manager's `Version` up front (with the field's position); the
//! backend checks each start again, so a reload cannot slip one through.

use std::path::Path;

use super::node::{self, Pos};
use super::privileged::locate;
use super::schema::{Config, Service};
use super::{DiagKind, Diagnostic};

/// One property that needs a systemd newer than some still in use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Need {
    /// The transient unit property.
    pub property: &'static str,
    /// The first systemd version that accepts it.
    pub since: u32,
    /// The config field below `services.<name>` that makes sysg send it.
    pub field: &'static [&'static str],
}

/// Versions from systemd's NEWS and man pages (`systemd.exec(5)`, `systemd.resource-control(5)`).
pub const NEEDS: &[Need] = &[
    Need {
        property: "PrivatePIDs",
        since: 257,
        field: &["isolation", "pid"],
    },
    Need {
        property: "CPUQuotaPeriodUSec",
        since: 242,
        field: &["limits", "cgroup", "cpu_max"],
    },
    Need {
        property: "PrivateMounts",
        since: 239,
        field: &["isolation", "mount"],
    },
    Need {
        property: "ProtectKernelTunables",
        since: 232,
        field: &["sandbox", "protect_kernel_tunables"],
    },
    Need {
        property: "ProtectKernelModules",
        since: 232,
        field: &["sandbox", "protect_kernel_modules"],
    },
    Need {
        property: "ProtectControlGroups",
        since: 232,
        field: &["sandbox", "protect_control_groups"],
    },
    Need {
        property: "ReadWritePaths",
        since: 231,
        field: &["sandbox", "read_write_paths"],
    },
    Need {
        property: "ReadOnlyPaths",
        since: 231,
        field: &["sandbox", "read_only_paths"],
    },
    Need {
        property: "InaccessiblePaths",
        since: 231,
        field: &["sandbox", "inaccessible_paths"],
    },
    Need {
        property: "MemoryDenyWriteExecute",
        since: 231,
        field: &["sandbox", "memory_deny_write_execute"],
    },
    Need {
        property: "MemoryMax",
        since: 231,
        field: &["limits", "cgroup", "memory_max"],
    },
    Need {
        property: "AmbientCapabilities",
        since: 229,
        field: &["capabilities"],
    },
];

/// The first systemd version that accepts `property`, when it is newer than the oldest one
/// supported (unlisted properties are taken as always accepted).
pub fn need(property: &str) -> Option<&'static Need> {
    NEEDS.iter().find(|n| n.property == property)
}

/// The major version in a manager's `Version` property: `252.39-1~deb12u1` → 252,
/// `v257.2` → 257, `257~rc1` → 257.
pub fn parse_version(version: &str) -> Option<u32> {
    let v = version.trim().trim_start_matches('v');
    let digits: String = v.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// The properties `svc` makes sysg send that appear in the table.
fn needs_of(svc: &Service) -> Vec<&'static Need> {
    let cpu_quota = svc
        .limits
        .cgroup
        .cpu_max
        .is_some_and(|c| c.quota_us.is_some());
    NEEDS
        .iter()
        .filter(|n| match n.property {
            "PrivatePIDs" => svc.isolation.pid,
            "PrivateMounts" => svc.isolation.mount,
            "CPUQuotaPeriodUSec" => cpu_quota,
            "MemoryMax" => svc.limits.cgroup.memory_max.is_some(),
            "AmbientCapabilities" => svc.capabilities.is_some(),
            sandbox => {
                crate::backend::systemd::properties_sandbox::sandbox_properties(&svc.sandbox)
                    .iter()
                    .any(|(k, _)| k == sandbox)
            }
        })
        .collect()
}

/// What the manager `version` (its `Version` text) refuses in `cfg`, one diagnostic per field
/// with its position (read again from `cfg.path`; 0:0 when the file cannot be read). Nothing
/// when the version cannot be parsed: the start then reports systemd's own refusal.
pub fn version_problems(cfg: &Config, version: &str) -> Vec<Diagnostic> {
    let Some(major) = parse_version(version) else {
        return Vec::new();
    };
    let tree = std::fs::read_to_string(&cfg.path)
        .ok()
        .and_then(|src| node::parse(&src).ok());
    let mut out = Vec::new();
    for svc in &cfg.services {
        for n in needs_of(svc).into_iter().filter(|n| n.since > major) {
            let pos = tree
                .as_ref()
                .and_then(|t| locate(t, &svc.name, n.field))
                .unwrap_or(Pos { line: 0, column: 0 });
            out.push(diagnostic(&cfg.path, pos, &svc.name, n, version));
        }
    }
    out.sort_by_key(|d| (d.line, d.column));
    out
}

/// The message for a setting this systemd refuses, without the position.
pub fn refusal(service: &str, need: &Need, version: &str) -> String {
    format!(
        "services.{service}.{}: needs systemd {} or later (property {}); the running systemd is {version}: remove the field, or use the process backend (--backend process)",
        need.field.join("."),
        need.since,
        need.property
    )
}

fn diagnostic(file: &Path, pos: Pos, service: &str, need: &Need, version: &str) -> Diagnostic {
    Diagnostic {
        kind: DiagKind::Config,
        file: file.to_path_buf(),
        line: pos.line,
        column: pos.column,
        message: refusal(service, need, version),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::load_str;

    #[test]
    fn versions_parse_as_distributions_spell_them() {
        for (text, want) in [
            ("252.39-1~deb12u1", Some(252)),
            ("252", Some(252)),
            ("v257.2", Some(257)),
            ("257~rc1", Some(257)),
            ("255.4-1ubuntu8", Some(255)),
            ("", None),
            ("unknown", None),
        ] {
            assert_eq!(parse_version(text), want, "{text:?}");
        }
    }

    /// Golden: the table as documented in docs/backends.md.
    #[test]
    fn the_table() {
        let rows: Vec<(&str, u32, String)> = NEEDS
            .iter()
            .map(|n| (n.property, n.since, n.field.join(".")))
            .collect();
        assert_eq!(
            rows,
            vec![
                ("PrivatePIDs", 257, "isolation.pid".to_string()),
                (
                    "CPUQuotaPeriodUSec",
                    242,
                    "limits.cgroup.cpu_max".to_string()
                ),
                ("PrivateMounts", 239, "isolation.mount".to_string()),
                (
                    "ProtectKernelTunables",
                    232,
                    "sandbox.protect_kernel_tunables".to_string()
                ),
                (
                    "ProtectKernelModules",
                    232,
                    "sandbox.protect_kernel_modules".to_string()
                ),
                (
                    "ProtectControlGroups",
                    232,
                    "sandbox.protect_control_groups".to_string()
                ),
                (
                    "ReadWritePaths",
                    231,
                    "sandbox.read_write_paths".to_string()
                ),
                ("ReadOnlyPaths", 231, "sandbox.read_only_paths".to_string()),
                (
                    "InaccessiblePaths",
                    231,
                    "sandbox.inaccessible_paths".to_string()
                ),
                (
                    "MemoryDenyWriteExecute",
                    231,
                    "sandbox.memory_deny_write_execute".to_string()
                ),
                ("MemoryMax", 231, "limits.cgroup.memory_max".to_string()),
                ("AmbientCapabilities", 229, "capabilities".to_string()),
            ]
        );
        assert_eq!(need("PrivatePIDs").map(|n| n.since), Some(257));
        assert_eq!(need("Nice"), None);
    }

    fn config(dir: &tempfile::TempDir, yaml: &str) -> Config {
        let path = dir.path().join("systemg.yaml");
        std::fs::write(&path, yaml).unwrap();
        load_str(yaml, &path).unwrap()
    }

    const YAML: &str = "version: \"1\"\nservices:\n  web:\n    command: sleep 1\n    isolation:\n      pid: true\n      mount: true\n    limits:\n      cgroup:\n        memory_max: 64M\n";

    #[test]
    fn systemd_252_refuses_only_private_pids_with_its_position() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(&dir, YAML);
        let got = version_problems(&cfg, "252.39-1~deb12u1");
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!((got[0].line, got[0].column), (6, 7));
        assert_eq!(
            got[0].message,
            "services.web.isolation.pid: needs systemd 257 or later (property PrivatePIDs); the running systemd is 252.39-1~deb12u1: remove the field, or use the process backend (--backend process)"
        );
    }

    #[test]
    fn older_managers_refuse_more_and_newer_ones_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(&dir, YAML);
        let fields: Vec<String> = version_problems(&cfg, "235")
            .into_iter()
            .map(|d| d.message.split(':').next().unwrap_or_default().to_string())
            .collect();
        assert_eq!(
            fields,
            vec!["services.web.isolation.pid", "services.web.isolation.mount"]
        );
        assert!(version_problems(&cfg, "257.1").is_empty());
        assert!(version_problems(&cfg, "garbage").is_empty());
    }

    #[test]
    fn sandbox_fields_newer_than_the_manager_are_refused_at_their_position() {
        let dir = tempfile::tempdir().unwrap();
        let yaml = "version: \"1\"\nservices:\n  web:\n    command: sleep 1\n    sandbox:\n      no_new_privileges: true\n      read_write_paths: [/var/lib/web]\n      protect_kernel_modules: true\n";
        let cfg = config(&dir, yaml);
        let got: Vec<(u64, u64, String)> = version_problems(&cfg, "231")
            .into_iter()
            .map(|d| (d.line, d.column, d.message))
            .collect();
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!((got[0].0, got[0].1), (8, 7));
        assert!(
            got[0].2.starts_with("services.web.sandbox.protect_kernel_modules: needs systemd 232 or later (property ProtectKernelModules)"),
            "{got:?}"
        );
        assert_eq!(version_problems(&cfg, "230").len(), 2);
        assert!(version_problems(&cfg, "252").is_empty());
    }
}
