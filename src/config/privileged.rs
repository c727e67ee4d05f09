//! Which settings of a config need privileges the supervisor does not have.
//!
//! A supervisor that is not root cannot change a service's identity, raise a hard rlimit,
//! lower a niceness, keep or grant capabilities, create namespaces or write cgroup limits
//! without a delegated cgroup. Rather than running such a service with less than it asked
//! for (or failing at the first start, one service at a time), `sysg start`, `sysg validate`,
//! the supervisor and a reload check the whole config up front against the identity that will
//! run the services (`Caller`) and report every problem with its position.
//!
//! Names that do not resolve on this host (`user: www-date`) are reported too, whoever runs
//! the check: the start would fail on them anyway.

use std::ffi::CString;
use std::path::Path;

use super::node::{self, Kind, Node, Pos};
use super::schema::{Config, Service, Size};
use super::{DiagKind, Diagnostic};

/// The identity and limits that services would inherit: the supervisor's own, or the user
/// `--drop-privileges` switches to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// Effective uid.
    pub uid: u32,
    /// Effective gid.
    pub gid: u32,
    /// Root (effective uid 0): every check below passes.
    pub root: bool,
    /// How to name this identity in messages (`uid 1000 (alice)`).
    pub describe: String,
    /// Hard limits for NOFILE, NPROC, MEMLOCK; `None` is unlimited.
    pub hard_nofile: Option<u64>,
    pub hard_nproc: Option<u64>,
    pub hard_memlock: Option<u64>,
    /// Current niceness: an unprivileged process may only raise it...
    pub nice: i32,
    /// ...or lower it down to `20 - RLIMIT_NICE` (soft limit).
    pub rlimit_nice: u64,
    /// A cgroup this identity may create unit cgroups in (a delegated subtree).
    pub cgroup_writable: bool,
    /// What to suggest when privileges are missing.
    pub hint: String,
}

/// The hint for a supervisor started without root.
pub const SUDO_HINT: &str =
    "run the supervisor as root (`sudo sysg --sys ...`) or remove the field";

impl Caller {
    /// The calling process; `cgroup_writable` comes from the backend, which knows where unit
    /// cgroups would go.
    pub fn current(cgroup_writable: bool) -> Caller {
        let uid = nix::unistd::geteuid().as_raw();
        let gid = nix::unistd::getegid().as_raw();
        Caller {
            uid,
            gid,
            root: uid == 0,
            describe: describe_uid(uid),
            hard_nofile: hard_limit(libc::RLIMIT_NOFILE),
            hard_nproc: hard_limit(libc::RLIMIT_NPROC),
            hard_memlock: hard_limit(libc::RLIMIT_MEMLOCK),
            nice: current_nice(),
            rlimit_nice: soft_limit(libc::RLIMIT_NICE).unwrap_or(u64::MAX),
            cgroup_writable,
            hint: SUDO_HINT.to_string(),
        }
    }
}

/// `uid 1000 (alice)`, or `uid 1000` when the uid has no name.
pub fn describe_uid(uid: u32) -> String {
    match nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)) {
        Ok(Some(u)) => format!("uid {uid} ({})", u.name),
        _ => format!("uid {uid}"),
    }
}

fn rlimit(res: libc::__rlimit_resource_t) -> Option<libc::rlimit> {
    let mut l = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit into the struct we own.
    (unsafe { libc::getrlimit(res, &mut l) } == 0).then_some(l)
}

fn finite(v: libc::rlim_t) -> Option<u64> {
    (v != libc::RLIM_INFINITY).then_some(v)
}

fn hard_limit(res: libc::__rlimit_resource_t) -> Option<u64> {
    rlimit(res).and_then(|l| finite(l.rlim_max))
}

fn soft_limit(res: libc::__rlimit_resource_t) -> Option<u64> {
    rlimit(res).and_then(|l| finite(l.rlim_cur))
}

fn current_nice() -> i32 {
    // getpriority can legitimately return -1: clear errno first to tell it from an error.
    // SAFETY: errno is thread-local; getpriority only reads the process's priority.
    unsafe {
        *libc::__errno_location() = 0;
        let n = libc::getpriority(libc::PRIO_PROCESS, 0);
        if n == -1 && *libc::__errno_location() != 0 {
            0
        } else {
            n
        }
    }
}

/// A uid for a `user:` value (name or number).
pub fn lookup_user(name: &str) -> Result<(u32, u32), String> {
    let found = match name.parse::<u32>() {
        Ok(uid) => nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)),
        Err(_) => nix::unistd::User::from_name(name),
    };
    match found {
        Ok(Some(u)) => Ok((u.uid.as_raw(), u.gid.as_raw())),
        Ok(None) if name.parse::<u32>().is_ok() => Err(format!("no user has uid {name}")),
        Ok(None) => Err(format!("no user `{name}` on this host")),
        Err(e) => Err(format!("looking up user `{name}`: {e}")),
    }
}

/// A gid for a `group:` value (name or number). Numbers need not exist in /etc/group.
pub fn lookup_group(name: &str) -> Result<u32, String> {
    if let Ok(gid) = name.parse::<u32>() {
        return Ok(gid);
    }
    match nix::unistd::Group::from_name(name) {
        Ok(Some(g)) => Ok(g.gid.as_raw()),
        Ok(None) => Err(format!("no group `{name}` on this host")),
        Err(e) => Err(format!("looking up group `{name}`: {e}")),
    }
}

/// Every setting of `cfg` that `caller` cannot apply, and every user or group name that does
/// not resolve, with the position of its key (read again from `cfg.path`; 0:0 when the file
/// cannot be read).
pub fn privileged_problems(cfg: &Config, caller: &Caller) -> Vec<Diagnostic> {
    let tree = std::fs::read_to_string(&cfg.path)
        .ok()
        .and_then(|src| node::parse(&src).ok());
    let mut out = Vec::new();
    for svc in &cfg.services {
        for (path, message) in service_problems(svc, caller) {
            let pos = tree
                .as_ref()
                .and_then(|t| locate(t, &svc.name, &path))
                .unwrap_or(Pos { line: 0, column: 0 });
            out.push(diagnostic(&cfg.path, pos, &svc.name, &path, message));
        }
    }
    out.sort_by_key(|d| (d.line, d.column));
    out
}

fn diagnostic(file: &Path, pos: Pos, service: &str, path: &[&str], message: String) -> Diagnostic {
    Diagnostic {
        kind: DiagKind::Config,
        file: file.to_path_buf(),
        line: pos.line,
        column: pos.column,
        message: format!("services.{service}.{}: {message}", path.join(".")),
    }
}

/// (field path below the service, message) for one service.
fn service_problems(svc: &Service, c: &Caller) -> Vec<(Vec<&'static str>, String)> {
    let mut out: Vec<(Vec<&'static str>, String)> = Vec::new();
    let needs = |what: String| {
        format!(
            "{what}, which needs root; the supervisor runs as {}: {}",
            c.describe, c.hint
        )
    };

    let mut user_gid = None;
    if let Some(user) = &svc.user {
        match lookup_user(user) {
            Err(m) => out.push((vec!["user"], m)),
            Ok((uid, gid)) => {
                user_gid = Some(gid);
                if !c.root && uid != c.uid {
                    out.push((
                        vec!["user"],
                        needs(format!("runs the service as `{user}` (uid {uid})")),
                    ));
                }
            }
        }
    }
    if let Some(group) = &svc.group {
        match lookup_group(group) {
            Err(m) => out.push((vec!["group"], m)),
            Ok(gid) if !c.root && gid != c.gid => out.push((
                vec!["group"],
                needs(format!("runs the service with group `{group}` (gid {gid})")),
            )),
            Ok(_) => {}
        }
    } else if let Some(gid) = user_gid {
        // The user's primary group comes with `user:`; it is already covered by the user check
        // unless the user is the caller with another primary group.
        if !c.root && gid != c.gid && !out.iter().any(|(p, _)| p == &vec!["user"]) {
            out.push((
                vec!["user"],
                needs(format!(
                    "sets the primary group of `{}` (gid {gid})",
                    svc.user.as_deref().unwrap_or_default()
                )),
            ));
        }
    }
    let mut bad_groups = Vec::new();
    for g in &svc.supplementary_groups {
        if let Err(m) = lookup_group(g) {
            bad_groups.push(m);
        }
    }
    if !bad_groups.is_empty() {
        out.push((vec!["supplementary_groups"], bad_groups.join("; ")));
    } else if !c.root && !svc.supplementary_groups.is_empty() {
        out.push((
            vec!["supplementary_groups"],
            needs("sets supplementary groups".into()),
        ));
    }

    if c.root {
        return out;
    }
    let l = &svc.limits;
    for (field, value, hard, name) in [
        ("nofile", l.nofile, c.hard_nofile, "open files"),
        ("nproc", l.nproc, c.hard_nproc, "processes"),
        ("memlock", l.memlock, c.hard_memlock, "locked memory"),
    ] {
        let Some(value) = value else { continue };
        let above = match (value, hard) {
            (_, None) => false,
            (Size::Unlimited, Some(_)) => true,
            (Size::Value(v), Some(h)) => v > h,
        };
        if above {
            let shown = match value {
                Size::Value(v) => v.to_string(),
                Size::Unlimited => "unlimited".into(),
            };
            out.push((
                vec!["limits", field],
                needs(format!(
                    "raises the hard limit of {name} to {shown} (the current hard limit is {})",
                    hard.map_or("unlimited".into(), |h| h.to_string())
                )),
            ));
        }
    }
    if let Some(n) = l.nice {
        // RLIMIT_NICE lets an unprivileged process go down to 20 - rlimit.
        let floor = 20i64 - i64::try_from(c.rlimit_nice).unwrap_or(i64::MAX).min(40);
        if n < c.nice && i64::from(n) < floor {
            out.push((
                vec!["limits", "nice"],
                needs(format!(
                    "lowers the niceness to {n} (the supervisor's is {})",
                    c.nice
                )),
            ));
        }
    }
    let cg = &l.cgroup;
    if !c.cgroup_writable {
        if cg.memory_max.is_some() {
            out.push((
                vec!["limits", "cgroup", "memory_max"],
                needs("sets a cgroup memory limit without a delegated cgroup".into()),
            ));
        }
        if cg.cpu_max.is_some() {
            out.push((
                vec!["limits", "cgroup", "cpu_max"],
                needs("sets a cgroup CPU limit without a delegated cgroup".into()),
            ));
        }
    }
    if let Some(caps) = &svc.capabilities {
        let what = if caps.is_empty() {
            "drops every capability from the bounding set".to_string()
        } else {
            format!("grants {}", caps.join(", "))
        };
        out.push((vec!["capabilities"], needs(what)));
    }
    let iso = svc.isolation;
    for (on, field, what) in [
        (iso.network, "network", "a network namespace"),
        (iso.pid, "pid", "a pid namespace"),
        (iso.mount, "mount", "a mount namespace"),
    ] {
        if on {
            out.push((vec!["isolation", field], needs(format!("creates {what}"))));
        }
    }
    // The path protections of `sandbox:` are mounts in a private mount namespace (the
    // filters and no_new_privileges need nothing).
    if !c.root {
        for field in crate::sandbox::mounts::fields(&svc.sandbox) {
            out.push((
                vec!["sandbox", field],
                needs("creates a private mount namespace".into()),
            ));
        }
    }
    out
}

/// Position of the key at `services.<service>.<path..>`, or of the deepest key found on the
/// way.
pub(super) fn locate(root: &Node, service: &str, path: &[&str]) -> Option<Pos> {
    let services = child(root, "services")?;
    let (svc_key, mut node) = entry(services, service)?;
    let mut at = node::pos(svc_key);
    for seg in path {
        match entry(node, seg) {
            Some((k, v)) => {
                at = node::pos(k);
                node = v;
            }
            None => break,
        }
    }
    Some(at)
}

fn entry<'a>(node: &'a Node, key: &str) -> Option<(&'a Node, &'a Node)> {
    match &node.value {
        Kind::Map(m) => m
            .iter()
            .find(|(k, _)| matches!(&k.value, Kind::Str(s) if s == key))
            .map(|(k, v)| (k, v)),
        _ => None,
    }
}

fn child<'a>(node: &'a Node, key: &str) -> Option<&'a Node> {
    entry(node, key).map(|(_, v)| v)
}

/// The groups a login of `user` gets: its primary group plus its supplementary groups.
pub fn login_groups(user: &str, gid: u32) -> Vec<u32> {
    let Ok(name) = CString::new(user) else {
        return vec![gid];
    };
    match nix::unistd::getgrouplist(&name, nix::unistd::Gid::from_raw(gid)) {
        Ok(list) => list.into_iter().map(|g| g.as_raw()).collect(),
        Err(_) => vec![gid],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::load_str;

    fn unprivileged() -> Caller {
        Caller {
            uid: 65534,
            gid: 65534,
            root: false,
            describe: "uid 65534 (nobody)".into(),
            hard_nofile: Some(4096),
            hard_nproc: Some(1000),
            hard_memlock: Some(65536),
            nice: 0,
            rlimit_nice: 0,
            cgroup_writable: false,
            hint: SUDO_HINT.into(),
        }
    }

    fn problems(yaml: &str, caller: &Caller) -> Vec<Diagnostic> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("systemg.yaml");
        std::fs::write(&path, yaml).unwrap();
        let cfg = load_str(yaml, &path).unwrap();
        privileged_problems(&cfg, caller)
    }

    const PRIVILEGED: &str = r#"version: "1"
services:
  web:
    command: run
    user: root
    group: "0"
    supplementary_groups: ["0"]
    limits:
      nofile: 65536
      nproc: unlimited
      memlock: 1K
      nice: -5
      cgroup:
        memory_max: 512M
        cpu_max: "20000 100000"
    capabilities: [CAP_NET_BIND_SERVICE]
    isolation:
      network: true
      pid: true
      mount: false
"#;

    #[test]
    fn every_privileged_field_is_named_with_its_position() {
        let d = problems(PRIVILEGED, &unprivileged());
        let got: Vec<(u64, u64, String)> = d
            .iter()
            .map(|d| {
                (
                    d.line,
                    d.column,
                    d.message.split(':').next().unwrap().to_string(),
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                (5, 5, "services.web.user".into()),
                (6, 5, "services.web.group".into()),
                (7, 5, "services.web.supplementary_groups".into()),
                (9, 7, "services.web.limits.nofile".into()),
                (10, 7, "services.web.limits.nproc".into()),
                (12, 7, "services.web.limits.nice".into()),
                (14, 9, "services.web.limits.cgroup.memory_max".into()),
                (15, 9, "services.web.limits.cgroup.cpu_max".into()),
                (16, 5, "services.web.capabilities".into()),
                (18, 7, "services.web.isolation.network".into()),
                (19, 7, "services.web.isolation.pid".into()),
            ],
            "{d:#?}"
        );
        // memlock 1K is below the hard limit: lowering needs nothing.
        assert!(d.iter().all(|x| x.message.contains("sudo sysg --sys")));
        assert!(d[0].message.contains("uid 0"), "{}", d[0].message);
        assert!(
            d[3].message.contains("current hard limit is 4096"),
            "{}",
            d[3].message
        );
    }

    #[test]
    fn root_may_do_all_of_it() {
        let mut root = unprivileged();
        root.root = true;
        root.uid = 0;
        root.gid = 0;
        assert_eq!(problems(PRIVILEGED, &root), vec![]);
    }

    #[test]
    fn running_as_yourself_within_your_limits_is_fine() {
        let me = unprivileged();
        let yaml = r#"version: "1"
services:
  web:
    command: run
    user: "65534"
    group: "65534"
    limits:
      nofile: 100
      nice: 5
      cpu_affinity: [0]
"#;
        assert_eq!(problems(yaml, &me), vec![]);
        let mut delegated = me.clone();
        delegated.cgroup_writable = true;
        let yaml = "version: \"1\"\nservices:\n  w:\n    command: run\n    limits:\n      cgroup:\n        memory_max: 1G\n";
        assert_eq!(problems(yaml, &delegated), vec![]);
        assert_eq!(problems(yaml, &me).len(), 1);
    }

    #[test]
    fn rlimit_nice_allows_some_lowering() {
        let mut c = unprivileged();
        c.rlimit_nice = 25; // down to -5
        let yaml = |n: i32| {
            format!(
                "version: \"1\"\nservices:\n  w:\n    command: run\n    limits:\n      nice: {n}\n"
            )
        };
        assert_eq!(problems(&yaml(-5), &c), vec![]);
        assert_eq!(problems(&yaml(-6), &c).len(), 1);
    }

    #[test]
    fn unknown_names_are_reported_even_for_root() {
        let mut root = unprivileged();
        root.root = true;
        let yaml = r#"version: "1"
services:
  web:
    command: run
    user: no-such-user-xyz
    group: no-such-group-xyz
    supplementary_groups: [no-such-group-abc]
"#;
        let d = problems(yaml, &root);
        assert_eq!(d.len(), 3, "{d:#?}");
        assert!(d[0].message.contains("no user `no-such-user-xyz`"));
        assert!(d[1].message.contains("no group `no-such-group-xyz`"));
        assert!(d[2].message.contains("no group `no-such-group-abc`"));
        assert_eq!((d[0].line, d[0].column), (5, 5));
    }

    #[test]
    fn empty_capability_list_still_needs_privileges() {
        let yaml = "version: \"1\"\nservices:\n  w:\n    command: run\n    capabilities: []\n";
        let d = problems(yaml, &unprivileged());
        assert_eq!(d.len(), 1);
        assert!(
            d[0].message.contains("drops every capability"),
            "{}",
            d[0].message
        );
    }
}
