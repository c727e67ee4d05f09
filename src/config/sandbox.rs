//! The `sandbox:` section of a service: read from the spanned tree into `crate::sandbox::Sandbox`,
//! every problem reported at its line and column (unknown keys with a suggestion, wrong values,
//! relative paths, unknown `AF_*` names, malformed system call filter entries).

use std::path::{Component, Path, PathBuf};

use super::node::Kind;
use super::reader::{did_you_mean, Ctx, Field};
use crate::sandbox::address_families;
use crate::sandbox::{AddressFamilies, ProtectHome, ProtectSystem, Sandbox, SyscallAction};

/// Read `sandbox:`; `None` when any field was wrong (each problem is in `ctx`).
pub(crate) fn sandbox(ctx: &mut Ctx, f: &Field) -> Option<Sandbox> {
    let mut m = f.map(ctx)?;
    let before = ctx.diags.len();
    let mut s = Sandbox::default();
    let flag = |ctx: &mut Ctx, f: Option<Field>| f.and_then(|v| v.bool(ctx)).unwrap_or(false);
    s.no_new_privileges = flag(ctx, m.take("no_new_privileges"));
    s.private_tmp = flag(ctx, m.take("private_tmp"));
    s.private_devices = flag(ctx, m.take("private_devices"));
    if let Some(v) = m.take("protect_system") {
        s.protect_system = protect_system(ctx, &v).unwrap_or_default();
    }
    if let Some(v) = m.take("protect_home") {
        s.protect_home = protect_home(ctx, &v).unwrap_or_default();
    }
    s.read_write_paths = paths(ctx, m.take("read_write_paths"));
    s.read_only_paths = paths(ctx, m.take("read_only_paths"));
    s.inaccessible_paths = paths(ctx, m.take("inaccessible_paths"));
    s.protect_kernel_tunables = flag(ctx, m.take("protect_kernel_tunables"));
    s.protect_kernel_modules = flag(ctx, m.take("protect_kernel_modules"));
    s.protect_control_groups = flag(ctx, m.take("protect_control_groups"));
    if let Some(v) = m.take("restrict_address_families") {
        s.restrict_address_families = families(ctx, &v);
    }
    if let Some(v) = m.take("system_call_filter") {
        s.system_call_filter = syscall_filter(ctx, &v).unwrap_or_default();
    }
    if let Some(v) = m.take("system_call_action") {
        s.system_call_action = match v.choice(ctx, &["eperm", "kill"]) {
            Some("kill") => SyscallAction::Kill,
            _ => SyscallAction::Eperm,
        };
    }
    s.memory_deny_write_execute = flag(ctx, m.take("memory_deny_write_execute"));
    m.finish(ctx);
    (ctx.diags.len() == before).then_some(s)
}

fn protect_system(ctx: &mut Ctx, f: &Field) -> Option<ProtectSystem> {
    match &f.node.value {
        Kind::Bool(true) => Some(ProtectSystem::Yes),
        Kind::Bool(false) => Some(ProtectSystem::No),
        Kind::Str(_) => match f.choice(ctx, &["full", "strict"])? {
            "full" => Some(ProtectSystem::Full),
            _ => Some(ProtectSystem::Strict),
        },
        _ => f.expected(ctx, "true, false, `full` or `strict`"),
    }
}

fn protect_home(ctx: &mut Ctx, f: &Field) -> Option<ProtectHome> {
    match &f.node.value {
        Kind::Bool(true) => Some(ProtectHome::Yes),
        Kind::Bool(false) => Some(ProtectHome::No),
        Kind::Str(_) => match f.choice(ctx, &["read-only", "tmpfs"])? {
            "read-only" => Some(ProtectHome::ReadOnly),
            _ => Some(ProtectHome::Tmpfs),
        },
        _ => f.expected(ctx, "true, false, `read-only` or `tmpfs`"),
    }
}

/// A list of absolute, normalized paths (systemd refuses `..`, `.` and relative paths in
/// `ReadWritePaths=` and friends; the process backend must bind-mount the same path).
fn paths(ctx: &mut Ctx, f: Option<Field>) -> Vec<PathBuf> {
    let Some(f) = f else { return Vec::new() };
    let Some(items) = f.seq(ctx) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for item in items {
        let Some(text) = item.text(ctx) else { continue };
        match path_problem(&text) {
            Some(why) => {
                item.error::<()>(ctx, format!("{text:?} {why}"));
            }
            None => {
                let p = PathBuf::from(text.trim_end_matches('/'));
                let p = if p.as_os_str().is_empty() {
                    PathBuf::from("/")
                } else {
                    p
                };
                if !out.contains(&p) {
                    out.push(p);
                }
            }
        }
    }
    out
}

/// Why `text` is not an absolute, normalized path, or `None`.
pub fn path_problem(text: &str) -> Option<&'static str> {
    if !text.starts_with('/') {
        return Some("is not an absolute path (sandbox paths are taken as seen by the service: start it with /)");
    }
    if text.contains("//") {
        return Some("is not normalized (it contains `//`)");
    }
    let dots = Path::new(text)
        .components()
        .any(|c| matches!(c, Component::ParentDir | Component::CurDir))
        || text.split('/').any(|s| s == "." || s == "..");
    dots.then_some("is not normalized (it contains `.` or `..`)")
}

fn families(ctx: &mut Ctx, f: &Field) -> Option<AddressFamilies> {
    let items = f.seq(ctx)?;
    if items.is_empty() {
        return f.error(
            ctx,
            "must name at least one address family (remove the field for no restriction)",
        );
    }
    let mut names = Vec::new();
    let mut denied = Vec::new();
    let mut ok = true;
    for item in &items {
        let Some(text) = item.text(ctx) else {
            ok = false;
            continue;
        };
        let (deny, name) = match text.strip_prefix('~') {
            Some(rest) => (true, rest.trim()),
            None => (false, text.trim()),
        };
        denied.push(deny);
        let Some(canonical) = address_families::canonical(name) else {
            let hint = did_you_mean(name, address_families::NAMES.iter().map(|(n, _)| *n));
            item.error::<()>(ctx, format!("unknown address family {name:?}{hint}"));
            ok = false;
            continue;
        };
        if !names.iter().any(|n| n == canonical) {
            names.push(canonical.to_string());
        }
    }
    let deny = denied.first().copied().unwrap_or(false);
    if denied.iter().any(|d| *d != deny) {
        return f.error(
            ctx,
            "mixes allowed and denied (`~`) families: write an allow-list, or a deny-list with `~` on every entry",
        );
    }
    ok.then_some(AddressFamilies {
        deny,
        families: names,
    })
}

fn syscall_filter(ctx: &mut Ctx, f: &Field) -> Option<Vec<String>> {
    let items = f.seq(ctx)?;
    if items.is_empty() {
        return f.error(
            ctx,
            "must have at least one entry (remove the field for no filter)",
        );
    }
    let mut out = Vec::new();
    let mut ok = true;
    for item in &items {
        let Some(text) = item.text(ctx) else {
            ok = false;
            continue;
        };
        match syscall_entry_problem(&text) {
            Some(why) => {
                item.error::<()>(ctx, why);
                ok = false;
            }
            None => out.push(text),
        }
    }
    ok.then_some(out)
}

/// Why one `system_call_filter` entry is malformed, or `None`.
pub fn syscall_entry_problem(entry: &str) -> Option<String> {
    let body = entry.strip_prefix('~').unwrap_or(entry);
    if let Some(group) = body.strip_prefix('@') {
        // systemd 252's groups (the generated table both backends resolve); a group outside
        // it would be refused by the running systemd at every start.
        let groups = crate::sandbox::syscall_groups::GROUPS
            .iter()
            .map(|g| g.name);
        if groups.clone().any(|g| g == body) {
            return None;
        }
        let hint = did_you_mean(body, groups);
        return Some(format!(
            "unknown system call group `@{group}`{hint} (groups: `systemd-analyze syscall-filter`)"
        ));
    }
    if body.contains(':') {
        return Some(format!(
            "{entry:?}: a per-entry errno (`name:errno`) is not supported; use `system_call_action`"
        ));
    }
    let valid = !body.is_empty()
        && body.len() <= 64
        && body
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        && !body.starts_with(|c: char| c.is_ascii_digit());
    if !valid {
        return Some(format!(
            "{entry:?} is not a system call name or `@group` (optionally after `~` to deny it)"
        ));
    }
    // The names systemd knows (its `@known` group): both backends resolve the same ones.
    let known = crate::sandbox::syscall_groups::GROUPS
        .iter()
        .find(|g| g.name == "@known")
        .map_or(&[][..], |g| g.members);
    if known.contains(&body) {
        return None;
    }
    let hint = did_you_mean(body, known.iter().copied());
    Some(format!(
        "unknown system call `{body}`{hint} (`systemd-analyze syscall-filter @known` lists them)"
    ))
}

#[cfg(test)]
mod tests {
    use crate::config::load_str;
    use crate::sandbox::*;
    use std::path::{Path, PathBuf};

    fn load(sandbox: &str) -> Result<Sandbox, Vec<(u64, u64, String)>> {
        let src =
            format!("version: '1'\nservices:\n  api:\n    command: x\n    sandbox:\n{sandbox}");
        match load_str(&src, Path::new("/x/systemg.yaml")) {
            Ok(c) => Ok(c.services[0].sandbox.clone()),
            Err(e) => Err(e
                .0
                .into_iter()
                .map(|d| (d.line, d.column, d.message))
                .collect()),
        }
    }

    #[test]
    fn the_issue_example_parses() {
        let s = load(
            "      no_new_privileges: true
      private_tmp: true
      private_devices: true
      protect_system: strict
      protect_home: read-only
      read_write_paths: [\"/var/lib/api\"]
      read_only_paths: [\"/srv/config\"]
      inaccessible_paths: [\"/root\"]
      protect_kernel_tunables: true
      protect_kernel_modules: true
      protect_control_groups: true
      restrict_address_families: [AF_UNIX, AF_INET, AF_INET6]
      system_call_filter: [\"@system-service\", \"~@privileged\"]
      memory_deny_write_execute: true
",
        )
        .unwrap();
        assert_eq!(
            s,
            Sandbox {
                no_new_privileges: true,
                private_tmp: true,
                private_devices: true,
                protect_system: ProtectSystem::Strict,
                protect_home: ProtectHome::ReadOnly,
                read_write_paths: vec![PathBuf::from("/var/lib/api")],
                read_only_paths: vec![PathBuf::from("/srv/config")],
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
        );
    }

    #[test]
    fn absent_section_is_empty_and_values_map() {
        let c = load_str(
            "version: '1'\nservices:\n  a:\n    command: x\n",
            Path::new("/x/systemg.yaml"),
        )
        .unwrap();
        assert!(c.services[0].sandbox.is_empty());
        let s = load("      protect_system: true\n      protect_home: tmpfs\n      system_call_action: kill\n      restrict_address_families: [\"~AF_PACKET\", \"~af_netlink\"]\n").unwrap();
        assert_eq!(s.protect_system, ProtectSystem::Yes);
        assert_eq!(s.protect_home, ProtectHome::Tmpfs);
        assert_eq!(s.system_call_action, SyscallAction::Kill);
        assert_eq!(
            s.restrict_address_families,
            Some(AddressFamilies {
                deny: true,
                families: vec!["AF_PACKET".into(), "AF_NETLINK".into()]
            })
        );
        let s = load("      protect_system: full\n      protect_home: false\n").unwrap();
        assert_eq!(s.protect_system, ProtectSystem::Full);
        assert_eq!(s.protect_home, ProtectHome::No);
    }

    #[test]
    fn unknown_key_is_reported_with_a_suggestion() {
        let e = load("      privte_tmp: true\n").unwrap_err();
        assert_eq!(e.len(), 1, "{e:?}");
        assert_eq!((e[0].0, e[0].1), (6, 7));
        assert!(
            e[0].2.contains(
                "services.api.sandbox: unknown key `privte_tmp`; did you mean `private_tmp`?"
            ),
            "{e:?}"
        );
    }

    #[test]
    fn wrong_values_are_reported_at_their_position() {
        let e = load(
            "      protect_system: strcit\n      protect_home: 1\n      no_new_privileges: yes\n      system_call_action: errno\n",
        )
        .unwrap_err();
        let got: Vec<(u64, u64)> = e.iter().map(|d| (d.0, d.1)).collect();
        assert_eq!(got, vec![(6, 23), (7, 21), (8, 26), (9, 27)], "{e:?}");
        assert!(e[0].2.contains("did you mean `strict`?"), "{e:?}");
        assert!(
            e[1].2.contains("true, false, `read-only` or `tmpfs`"),
            "{e:?}"
        );
        assert!(e[2].2.contains("expected true or false"), "{e:?}");
        assert!(e[3].2.contains("`eperm`, `kill`"), "{e:?}");
    }

    #[test]
    fn relative_and_unnormalized_paths_are_refused() {
        let e =
            load("      read_write_paths: [var/lib/api, /srv/../etc, \"/a//b\"]\n").unwrap_err();
        assert_eq!(e.len(), 3, "{e:?}");
        assert_eq!((e[0].0, e[0].1), (6, 26));
        assert!(
            e[0].2.contains(
                "services.api.sandbox.read_write_paths[0]: \"var/lib/api\" is not an absolute path"
            ),
            "{e:?}"
        );
        assert!(e[1].2.contains("`.` or `..`"), "{e:?}");
        assert!(e[2].2.contains("`//`"), "{e:?}");
        let s = load("      read_only_paths: [/srv/, /srv]\n").unwrap();
        assert_eq!(s.read_only_paths, vec![PathBuf::from("/srv")]);
    }

    #[test]
    fn unknown_families_and_mixed_lists_are_refused() {
        let e = load("      restrict_address_families: [AF_UNIX, AF_INTE]\n").unwrap_err();
        assert_eq!(e.len(), 1, "{e:?}");
        assert_eq!((e[0].0, e[0].1), (6, 44));
        assert!(
            e[0].2
                .contains("unknown address family \"AF_INTE\"; did you mean `AF_INET`?"),
            "{e:?}"
        );
        let e = load("      restrict_address_families: [AF_UNIX, \"~AF_INET\"]\n").unwrap_err();
        assert!(e[0].2.contains("mixes allowed and denied"), "{e:?}");
        let e = load("      restrict_address_families: []\n").unwrap_err();
        assert!(e[0].2.contains("at least one address family"), "{e:?}");
    }

    #[test]
    fn malformed_syscall_entries_are_refused() {
        let e = load(
            "      system_call_filter: [\"@system-servce\", \"mount:EPERM\", \"Mount()\", \"~reboot\", \"@mount\"]\n",
        )
        .unwrap_err();
        assert_eq!(e.len(), 3, "{e:?}");
        assert_eq!((e[0].0, e[0].1), (6, 28));
        assert!(
            e[0].2.contains(
                "unknown system call group `@system-servce`; did you mean `@system-service`?"
            ),
            "{e:?}"
        );
        assert!(e[1].2.contains("system_call_action"), "{e:?}");
        assert!(e[2].2.contains("is not a system call name"), "{e:?}");
        let e = load("      system_call_filter: [\"~reboot\", \"~rebot\"]\n").unwrap_err();
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(
            e[0].2
                .contains("unknown system call `rebot`; did you mean `reboot`?"),
            "{e:?}"
        );
        let e = load("      system_call_filter: []\n").unwrap_err();
        assert!(e[0].2.contains("at least one entry"), "{e:?}");
    }
}
