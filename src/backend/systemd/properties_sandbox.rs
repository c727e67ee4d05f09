//! `sandbox:` as transient unit properties: each field becomes the systemd property of the same
//! meaning, with the D-Bus type systemd 252 (and later) expects when writing it. Checked on
//! systemd 252 with `busctl introspect` of a transient unit (the read signature of each
//! property is its write signature) and `systemctl show`; tests/systemd_sandbox.rs sends them
//! to a real manager and checks what the kernel then enforces.
//!
//! Nothing is sent for a field left at its default, so an unsandboxed service's properties are
//! exactly what they were before `sandbox:` existed.

use zbus::zvariant::Value;

use crate::sandbox::{ProtectHome, ProtectSystem, Sandbox, SyscallAction};

use super::properties::Property;

/// `EPERM`, systemd's `SystemCallErrorNumber=` for `system_call_action: eperm`.
const EPERM: i32 = 1;

fn push(p: &mut Vec<Property>, name: &str, value: Value<'static>) {
    p.push((name.to_string(), value));
}

fn paths(list: &[std::path::PathBuf]) -> Vec<String> {
    // The parser took them from YAML text: always UTF-8.
    list.iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect()
}

/// The properties of `s`, in the order of the section's fields.
pub fn sandbox_properties(s: &Sandbox) -> Vec<Property> {
    let mut p = Vec::new();
    for (on, name) in [
        (s.no_new_privileges, "NoNewPrivileges"),
        (s.private_tmp, "PrivateTmp"),
        (s.private_devices, "PrivateDevices"),
    ] {
        if on {
            push(&mut p, name, Value::Bool(true));
        }
    }
    let system = match s.protect_system {
        ProtectSystem::No => None,
        ProtectSystem::Yes => Some("yes"),
        ProtectSystem::Full => Some("full"),
        ProtectSystem::Strict => Some("strict"),
    };
    if let Some(v) = system {
        push(&mut p, "ProtectSystem", Value::from(v));
    }
    let home = match s.protect_home {
        ProtectHome::No => None,
        ProtectHome::Yes => Some("yes"),
        ProtectHome::ReadOnly => Some("read-only"),
        ProtectHome::Tmpfs => Some("tmpfs"),
    };
    if let Some(v) = home {
        push(&mut p, "ProtectHome", Value::from(v));
    }
    for (list, name) in [
        (&s.read_write_paths, "ReadWritePaths"),
        (&s.read_only_paths, "ReadOnlyPaths"),
        (&s.inaccessible_paths, "InaccessiblePaths"),
    ] {
        if !list.is_empty() {
            push(&mut p, name, Value::from(paths(list)));
        }
    }
    for (on, name) in [
        (s.protect_kernel_tunables, "ProtectKernelTunables"),
        (s.protect_kernel_modules, "ProtectKernelModules"),
        (s.protect_control_groups, "ProtectControlGroups"),
    ] {
        if on {
            push(&mut p, name, Value::Bool(true));
        }
    }
    if let Some(af) = &s.restrict_address_families {
        // (bas): true = the list is what is allowed, false = what is denied.
        push(
            &mut p,
            "RestrictAddressFamilies",
            Value::from((!af.deny, af.families.clone())),
        );
    }
    for (allow, names) in syscall_runs(&s.system_call_filter) {
        push(&mut p, "SystemCallFilter", Value::from((allow, names)));
    }
    if !s.system_call_filter.is_empty() && s.system_call_action == SyscallAction::Eperm {
        push(&mut p, "SystemCallErrorNumber", Value::I32(EPERM));
    }
    if s.memory_deny_write_execute {
        push(&mut p, "MemoryDenyWriteExecute", Value::Bool(true));
    }
    p
}

/// The filter as successive `SystemCallFilter` assignments: each run of entries of one kind
/// (allowed, or denied with `~`) is one `(allow, names)` pair. systemd applies them in order
/// like repeated lines of a unit file: the first decides whether the filter is an allow-list,
/// and each later one adds to it or takes from it.
pub fn syscall_runs(entries: &[String]) -> Vec<(bool, Vec<String>)> {
    let mut runs: Vec<(bool, Vec<String>)> = Vec::new();
    for e in entries {
        let (allow, name) = match e.strip_prefix('~') {
            Some(rest) => (false, rest.to_string()),
            None => (true, e.clone()),
        };
        match runs.last_mut() {
            Some((a, names)) if *a == allow => names.push(name),
            _ => runs.push((allow, vec![name])),
        }
    }
    runs
}

/// The `sandbox.*` field a sandbox property comes from.
pub fn config_field(property: &str) -> Option<&'static str> {
    Some(match property {
        "NoNewPrivileges" => "sandbox.no_new_privileges",
        "PrivateTmp" => "sandbox.private_tmp",
        "PrivateDevices" => "sandbox.private_devices",
        "ProtectSystem" => "sandbox.protect_system",
        "ProtectHome" => "sandbox.protect_home",
        "ReadWritePaths" => "sandbox.read_write_paths",
        "ReadOnlyPaths" => "sandbox.read_only_paths",
        "InaccessiblePaths" => "sandbox.inaccessible_paths",
        "ProtectKernelTunables" => "sandbox.protect_kernel_tunables",
        "ProtectKernelModules" => "sandbox.protect_kernel_modules",
        "ProtectControlGroups" => "sandbox.protect_control_groups",
        "RestrictAddressFamilies" => "sandbox.restrict_address_families",
        "SystemCallFilter" => "sandbox.system_call_filter",
        "SystemCallErrorNumber" => "sandbox.system_call_action",
        "MemoryDenyWriteExecute" => "sandbox.memory_deny_write_execute",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::sandbox::AddressFamilies;

    /// `(name, D-Bus signature, value)` with values rendered plainly.
    fn rendered(props: &[Property]) -> Vec<(String, String, String)> {
        props
            .iter()
            .map(|(k, v)| (k.clone(), v.value_signature().to_string(), render(v)))
            .collect()
    }

    fn render(v: &Value<'_>) -> String {
        match v {
            Value::Bool(b) => b.to_string(),
            Value::I32(n) => n.to_string(),
            Value::Str(s) => format!("{:?}", s.as_str()),
            Value::Array(a) => format!("[{}]", a.iter().map(render).collect::<Vec<_>>().join(", ")),
            Value::Structure(s) => format!(
                "({})",
                s.fields().iter().map(render).collect::<Vec<_>>().join(", ")
            ),
            other => format!("{other}"),
        }
    }

    fn full() -> Sandbox {
        Sandbox {
            no_new_privileges: true,
            private_tmp: true,
            private_devices: true,
            protect_system: ProtectSystem::Strict,
            protect_home: ProtectHome::ReadOnly,
            read_write_paths: vec![PathBuf::from("/var/lib/api")],
            read_only_paths: vec![PathBuf::from("/srv/config"), PathBuf::from("/opt")],
            inaccessible_paths: vec![PathBuf::from("/root")],
            protect_kernel_tunables: true,
            protect_kernel_modules: true,
            protect_control_groups: true,
            restrict_address_families: Some(AddressFamilies {
                deny: false,
                families: vec!["AF_UNIX".into(), "AF_INET".into(), "AF_INET6".into()],
            }),
            system_call_filter: vec!["@system-service".into(), "~@privileged".into()],
            system_call_action: SyscallAction::Eperm,
            memory_deny_write_execute: true,
        }
    }

    /// Golden: every field, its property, signature and value (signatures as checked with
    /// `busctl introspect` on systemd 252).
    #[test]
    fn every_field_golden() {
        let got = rendered(&sandbox_properties(&full()));
        let want: Vec<(String, String, String)> = [
            ("NoNewPrivileges", "b", "true"),
            ("PrivateTmp", "b", "true"),
            ("PrivateDevices", "b", "true"),
            ("ProtectSystem", "s", "\"strict\""),
            ("ProtectHome", "s", "\"read-only\""),
            ("ReadWritePaths", "as", "[\"/var/lib/api\"]"),
            ("ReadOnlyPaths", "as", "[\"/srv/config\", \"/opt\"]"),
            ("InaccessiblePaths", "as", "[\"/root\"]"),
            ("ProtectKernelTunables", "b", "true"),
            ("ProtectKernelModules", "b", "true"),
            ("ProtectControlGroups", "b", "true"),
            (
                "RestrictAddressFamilies",
                "(bas)",
                "(true, [\"AF_UNIX\", \"AF_INET\", \"AF_INET6\"])",
            ),
            ("SystemCallFilter", "(bas)", "(true, [\"@system-service\"])"),
            ("SystemCallFilter", "(bas)", "(false, [\"@privileged\"])"),
            ("SystemCallErrorNumber", "i", "1"),
            ("MemoryDenyWriteExecute", "b", "true"),
        ]
        .iter()
        .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
        .collect();
        assert_eq!(got, want);
        for (name, _, _) in &got {
            assert!(config_field(name).is_some(), "{name} has no config field");
        }
    }

    #[test]
    fn nothing_for_an_empty_sandbox() {
        assert!(sandbox_properties(&Sandbox::default()).is_empty());
    }

    #[test]
    fn other_values() {
        let s = Sandbox {
            protect_system: ProtectSystem::Yes,
            protect_home: ProtectHome::Tmpfs,
            restrict_address_families: Some(AddressFamilies {
                deny: true,
                families: vec!["AF_PACKET".into()],
            }),
            system_call_filter: vec!["~mount".into(), "~reboot".into()],
            system_call_action: SyscallAction::Kill,
            ..Sandbox::default()
        };
        let got = rendered(&sandbox_properties(&s));
        assert_eq!(
            got,
            vec![
                ("ProtectSystem".into(), "s".into(), "\"yes\"".into()),
                ("ProtectHome".into(), "s".into(), "\"tmpfs\"".into()),
                (
                    "RestrictAddressFamilies".into(),
                    "(bas)".into(),
                    "(false, [\"AF_PACKET\"])".into()
                ),
                (
                    "SystemCallFilter".into(),
                    "(bas)".into(),
                    "(false, [\"mount\", \"reboot\"])".into()
                ),
            ],
            "kill: no SystemCallErrorNumber (systemd then kills with SIGSYS)"
        );
        let full = Sandbox {
            protect_system: ProtectSystem::Full,
            protect_home: ProtectHome::Yes,
            ..Sandbox::default()
        };
        let got = rendered(&sandbox_properties(&full));
        assert_eq!(got[0].2, "\"full\"");
        assert_eq!(got[1].2, "\"yes\"");
    }

    #[test]
    fn syscall_runs_keep_the_order() {
        let e: Vec<String> = ["@system-service", "~@privileged", "~@resources", "mount"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(
            syscall_runs(&e),
            vec![
                (true, vec!["@system-service".to_string()]),
                (false, vec!["@privileged".into(), "@resources".into()]),
                (true, vec!["mount".into()]),
            ]
        );
    }
}
