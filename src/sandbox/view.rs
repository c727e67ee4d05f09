//! A sandbox in the user's words, for `sysg inspect`: the `sandbox:` keys in force, with
//! values as the YAML writes them.

use serde_json::{json, Value};

use super::{ProtectHome, ProtectSystem, Sandbox, SyscallAction};

/// `(key below sandbox:, value, is the default)` for every field that does something; the
/// action of the system call filter is listed with the filter (default `eperm`).
pub fn fields(s: &Sandbox) -> Vec<(&'static str, Value, bool)> {
    let mut out = Vec::new();
    for (on, key) in [
        (s.no_new_privileges, "no_new_privileges"),
        (s.private_tmp, "private_tmp"),
        (s.private_devices, "private_devices"),
    ] {
        if on {
            out.push((key, json!(true), false));
        }
    }
    match s.protect_system {
        ProtectSystem::No => {}
        ProtectSystem::Yes => out.push(("protect_system", json!(true), false)),
        ProtectSystem::Full => out.push(("protect_system", json!("full"), false)),
        ProtectSystem::Strict => out.push(("protect_system", json!("strict"), false)),
    }
    match s.protect_home {
        ProtectHome::No => {}
        ProtectHome::Yes => out.push(("protect_home", json!(true), false)),
        ProtectHome::ReadOnly => out.push(("protect_home", json!("read-only"), false)),
        ProtectHome::Tmpfs => out.push(("protect_home", json!("tmpfs"), false)),
    }
    for (list, key) in [
        (&s.read_write_paths, "read_write_paths"),
        (&s.read_only_paths, "read_only_paths"),
        (&s.inaccessible_paths, "inaccessible_paths"),
    ] {
        if !list.is_empty() {
            out.push((key, json!(list), false));
        }
    }
    for (on, key) in [
        (s.protect_kernel_tunables, "protect_kernel_tunables"),
        (s.protect_kernel_modules, "protect_kernel_modules"),
        (s.protect_control_groups, "protect_control_groups"),
    ] {
        if on {
            out.push((key, json!(true), false));
        }
    }
    if let Some(af) = &s.restrict_address_families {
        let names: Vec<String> = af
            .families
            .iter()
            .map(|f| if af.deny { format!("~{f}") } else { f.clone() })
            .collect();
        out.push(("restrict_address_families", json!(names), false));
    }
    if !s.system_call_filter.is_empty() {
        out.push(("system_call_filter", json!(s.system_call_filter), false));
        let action = match s.system_call_action {
            SyscallAction::Eperm => "eperm",
            SyscallAction::Kill => "kill",
        };
        out.push((
            "system_call_action",
            json!(action),
            s.system_call_action == SyscallAction::Eperm,
        ));
    }
    if s.memory_deny_write_execute {
        out.push(("memory_deny_write_execute", json!(true), false));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::AddressFamilies;

    #[test]
    fn only_what_is_in_force() {
        assert!(fields(&Sandbox::default()).is_empty());
        let s = Sandbox {
            protect_system: ProtectSystem::Strict,
            read_write_paths: vec!["/var/lib/app".into()],
            restrict_address_families: Some(AddressFamilies {
                deny: true,
                families: vec!["AF_PACKET".into()],
            }),
            system_call_filter: vec!["@system-service".into()],
            ..Sandbox::default()
        };
        let got: Vec<(&str, String, bool)> = fields(&s)
            .into_iter()
            .map(|(k, v, d)| (k, v.to_string(), d))
            .collect();
        assert_eq!(
            got,
            vec![
                ("protect_system", "\"strict\"".to_string(), false),
                ("read_write_paths", "[\"/var/lib/app\"]".to_string(), false),
                (
                    "restrict_address_families",
                    "[\"~AF_PACKET\"]".to_string(),
                    false
                ),
                (
                    "system_call_filter",
                    "[\"@system-service\"]".to_string(),
                    false
                ),
                ("system_call_action", "\"eperm\"".to_string(), true),
            ]
        );
    }
}
