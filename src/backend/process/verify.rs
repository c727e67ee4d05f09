//! Checking a record of the state file against what /proc says before it is acted on.
//!
//! The state file may be written by a less privileged user (the services' user owns the state
//! directory under `--drop-privileges`), so a record is untrusted input: its pid, start time,
//! process group, cgroup and marker are claims. A record is adopted (and so may later be
//! signalled or killed) only when the live process proves it is a unit this backend instance
//! made:
//! - its start time matches (the pid was not reused);
//! - it leads its own session and process group (`pgid = sid = pid`, as every unit's main
//!   process does after its `setsid`); the group that is signalled is read from /proc, never
//!   from the record;
//! - its initial environment carries the marker the backend gives every unit
//!   (`SYSG_UNIT_ID=<group>/<unit>/<id>`, `<group>` naming this project instance), for the
//!   record's unit; a process whose environment shows no marker any more (a program that
//!   wrote its process title over it) is proven by its unit cgroup alone;
//! - its cgroup, read from /proc/PID/cgroup, is the unit's cgroup under the instance's own
//!   group (the exact directory `CgroupRoot::create` makes), or the record claims no cgroup;
//!   a record naming any other cgroup is refused, and the record's path is never used.
//!
//! `check` is pure: the caller reads /proc (`Seen::read`) with a pidfd held, so the pid cannot
//! be reused in between.

use std::path::{Component, Path, PathBuf};

use super::{cgroup, procfs, tree};
use crate::backend::AdoptRecord;

/// What /proc says about the process a record names.
#[derive(Debug, Clone)]
pub struct Seen {
    pub stat: procfs::Stat,
    /// The unified-hierarchy path from /proc/PID/cgroup (`/a/b`), if readable.
    pub cgroup: Option<String>,
    /// The value of `SYSG_UNIT_ID` in its initial environment, if readable.
    pub marker: Option<String>,
}

impl Seen {
    /// Read the facts about `pid`; `None` when it is gone.
    pub fn read(pid: u32) -> Option<Seen> {
        let stat = procfs::stat(pid)?;
        let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
            .ok()
            .and_then(|t| cgroup::own_cgroup(&t));
        let marker = procfs::environ_value(pid, tree::MARKER_VAR);
        Some(Seen {
            stat,
            cgroup,
            marker,
        })
    }
}

/// What this backend instance would have given the record's unit.
#[derive(Debug, Clone)]
pub struct Expected<'a> {
    /// The instance's group (`sysg-<project>-<hash>`), prefix of every marker it hands out.
    pub group: &'a str,
    /// The cgroup2 mount point, when the backend knows the hierarchy.
    pub mount: Option<&'a Path>,
    /// The directories the unit's cgroup may be (one per base `create` tries).
    pub cgroup_dirs: &'a [PathBuf],
}

/// What a record was proven to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proven {
    pub pgid: u32,
    pub marker: String,
    pub cgroup: Option<PathBuf>,
}

/// A unit name as the backend makes them: `<service>` or `<service>/<child>`, no empty, `.`
/// or `..` component.
pub fn unit_name_ok(unit: &str) -> bool {
    let parts: Vec<&str> = unit.split('/').collect();
    parts.len() <= 2
        && parts
            .iter()
            .all(|p| !p.is_empty() && *p != "." && *p != "..")
}

/// Accept `record` only when `seen` proves it is a unit of this instance (module comment).
/// The error says why not.
pub fn check(record: &AdoptRecord, seen: &Seen, expected: &Expected<'_>) -> Result<Proven, String> {
    let pid = record.pid;
    if !unit_name_ok(&record.unit) {
        return Err(format!("{:?} is not a unit name", record.unit));
    }
    if seen.stat.pid != pid || seen.stat.start_time != record.start_time {
        return Err(format!("pid {pid} is another process now"));
    }
    if seen.stat.pgrp != pid || seen.stat.session != pid {
        return Err(format!(
            "pid {pid} does not lead its own session (process group {}, session {})",
            seen.stat.pgrp, seen.stat.session
        ));
    }
    let x = &record.extra;
    if let Some(claimed) = x.get("pgid").filter(|v| !v.is_null()) {
        if claimed.as_u64() != Some(u64::from(pid)) {
            return Err(format!("the recorded process group is not pid {pid}'s"));
        }
    }
    let actual = match (expected.mount, seen.cgroup.as_deref()) {
        (Some(mount), Some(rel)) => cgroup_dir(mount, rel),
        _ => None,
    };
    let ours = actual.filter(|d| expected.cgroup_dirs.contains(d));
    let claimed = x.get("cgroup").filter(|v| !v.is_null());
    if let Some(claimed) = claimed {
        let matches = match (claimed.as_str(), &ours) {
            (Some(c), Some(d)) => Path::new(c) == d.as_path(),
            _ => false,
        };
        if !matches {
            return Err(format!(
                "the recorded cgroup is not pid {pid}'s own unit cgroup in this project"
            ));
        }
    }
    let of_this_unit = |m: &str| {
        m.strip_prefix(expected.group)
            .and_then(|r| r.strip_prefix('/'))
            .and_then(|r| r.strip_prefix(record.unit.as_str()))
            .and_then(|r| r.strip_prefix('/'))
            .is_some_and(|id| !id.is_empty() && !id.contains('/'))
    };
    let claimed_marker = x.get("marker").and_then(|v| v.as_str());
    let marker = match seen.marker.as_deref() {
        Some(marker) => {
            if !of_this_unit(marker) {
                return Err(format!(
                    "pid {pid} carries the marker of another unit or project ({marker:?})"
                ));
            }
            if claimed_marker.is_some_and(|c| c != marker) {
                return Err(format!("the recorded marker is not pid {pid}'s"));
            }
            marker.to_string()
        }
        // A program may overwrite its initial environment (a process title set in place, as
        // PostgreSQL and nginx do): the kernel's word on its cgroup is proof enough then.
        None if ours.is_some() => match claimed_marker.filter(|m| of_this_unit(m)) {
            Some(m) => m.to_string(),
            None => format!("{}/{}/adopted", expected.group, record.unit),
        },
        None => return Err(format!("pid {pid} carries no {} marker", tree::MARKER_VAR)),
    };
    Ok(Proven {
        pgid: pid,
        marker,
        cgroup: ours,
    })
}

/// The directory of a /proc/PID/cgroup path under `mount`; `None` for a path that is not
/// absolute and plain (a process outside our cgroup namespace shows `/..` components).
fn cgroup_dir(mount: &Path, rel: &str) -> Option<PathBuf> {
    let rel = Path::new(rel);
    let plain = rel.is_absolute()
        && rel
            .components()
            .all(|c| matches!(c, Component::RootDir | Component::Normal(_)));
    plain.then(|| mount.join(rel.strip_prefix("/").unwrap_or(rel)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const GROUP: &str = "sysg-app-0badcafe";

    fn seen(pid: u32, pgrp: u32, session: u32, marker: Option<&str>, cg: &str) -> Seen {
        Seen {
            stat: procfs::Stat {
                pid,
                state: b'S',
                ppid: 1,
                pgrp,
                session,
                cpu_ticks: 0,
                start_time: 777,
            },
            cgroup: Some(cg.to_string()),
            marker: marker.map(str::to_string),
        }
    }

    fn record(unit: &str, pid: u32, extra: serde_json::Value) -> AdoptRecord {
        AdoptRecord {
            unit: unit.to_string(),
            pid,
            start_time: 777,
            extra,
        }
    }

    fn dirs() -> Vec<PathBuf> {
        vec![
            PathBuf::from("/sys/fs/cgroup/sup.scope/sysg-app-0badcafe/web"),
            PathBuf::from("/sys/fs/cgroup/sysg-app-0badcafe/web"),
        ]
    }

    fn expect(dirs: &[PathBuf]) -> Expected<'_> {
        Expected {
            group: GROUP,
            mount: Some(Path::new("/sys/fs/cgroup")),
            cgroup_dirs: dirs,
        }
    }

    const MARK: &str = "sysg-app-0badcafe/web/100-1-5";

    #[test]
    fn a_unit_of_ours_is_adopted_with_what_proc_says() {
        let d = dirs();
        let s = seen(40, 40, 40, Some(MARK), "/sup.scope/sysg-app-0badcafe/web");
        let r = record(
            "web",
            40,
            json!({"pgid": 40, "marker": MARK, "cgroup": "/sys/fs/cgroup/sup.scope/sysg-app-0badcafe/web"}),
        );
        let p = check(&r, &s, &expect(&d)).unwrap();
        assert_eq!(p.pgid, 40);
        assert_eq!(p.cgroup.as_deref(), Some(d[0].as_path()));
        // Without a cgroup (process-group fallback): the record claims none.
        let s = seen(40, 40, 40, Some(MARK), "/sup.scope");
        let p = check(&r_no_cgroup(), &s, &expect(&d)).unwrap();
        assert_eq!(p.cgroup, None);
        assert_eq!(p.marker, MARK);
    }

    #[test]
    fn an_overwritten_environment_is_proven_by_the_cgroup_alone() {
        let d = dirs();
        // No marker left in /proc/PID/environ (a process title written over it).
        let s = seen(40, 40, 40, None, "/sup.scope/sysg-app-0badcafe/web");
        let r = record("web", 40, json!({"pgid": 40, "marker": MARK}));
        let p = check(&r, &s, &expect(&d)).unwrap();
        assert_eq!(p.marker, MARK);
        assert_eq!(p.cgroup.as_deref(), Some(d[0].as_path()));
        // A forged marker in the record is not taken over.
        let r = record("web", 40, json!({"marker": "sysg-other-1/web/1"}));
        let p = check(&r, &s, &expect(&d)).unwrap();
        assert!(
            p.marker.starts_with("sysg-app-0badcafe/web/"),
            "{}",
            p.marker
        );
        // Outside the unit's cgroup, no marker is no proof.
        let s = seen(40, 40, 40, None, "/user.slice");
        assert!(check(&r, &s, &expect(&d)).is_err());
    }

    fn r_no_cgroup() -> AdoptRecord {
        record("web", 40, json!({"pgid": 40, "cgroup": null}))
    }

    #[test]
    fn a_process_without_our_marker_is_refused() {
        let d = dirs();
        // The attack: a root process of its own group, named by a forged record.
        let r = record("ghost", 40, json!({"pgid": 40}));
        for m in [
            None,
            Some("sysg-app-0badcafe/web/1-1-1"),
            Some("sysg-other-0badcafe/ghost/1-1-1"),
            Some("sysg-app-0badcafe/ghost/"),
            Some("sysg-app-0badcafe/ghost/x/1-1-1"),
            Some("sysg-app-0badcafe/ghostly/1-1-1"),
        ] {
            let s = seen(40, 40, 40, m, "/user.slice");
            assert!(check(&r, &s, &expect(&d)).is_err(), "{m:?}");
        }
        // A spawned child's marker names its whole unit.
        let s = seen(40, 40, 40, Some("sysg-app-0badcafe/web/c/1-1-1"), "/x");
        assert!(check(&record("web/c", 40, json!({})), &s, &expect(&d)).is_ok());
        assert!(check(&record("web", 40, json!({})), &s, &expect(&d)).is_err());
    }

    #[test]
    fn the_group_comes_from_proc_not_the_record() {
        let d = dirs();
        // Not a session leader: its group (another user's) is never signalled.
        let s = seen(40, 7, 7, Some(MARK), "/sup.scope");
        assert!(check(&r_no_cgroup(), &s, &expect(&d)).is_err());
        // A recorded group other than the process's own is refused.
        let s = seen(40, 40, 40, Some(MARK), "/sup.scope");
        assert!(check(&record("web", 40, json!({"pgid": 1})), &s, &expect(&d)).is_err());
        assert!(check(&record("web", 40, json!({"pgid": 40})), &s, &expect(&d)).is_ok());
        // A reused pid.
        let mut r = r_no_cgroup();
        r.start_time = 778;
        assert!(check(&r, &s, &expect(&d)).is_err());
        // A recorded marker that is not the process's.
        let r = record("web", 40, json!({"marker": "sysg-app-0badcafe/web/9-9-9"}));
        assert!(check(&r, &s, &expect(&d)).is_err());
    }

    #[test]
    fn a_cgroup_outside_the_units_own_is_refused() {
        let d = dirs();
        let s = seen(40, 40, 40, Some(MARK), "/sup.scope/sysg-app-0badcafe/web");
        for c in [
            "/sys/fs/cgroup/system.slice/victim.service",
            "/sys/fs/cgroup/sup.scope/sysg-app-0badcafe/web/../../../system.slice",
            "/sys/fs/cgroup/sup.scope/sysg-app-0badcafe/other",
            "/sys/fs/cgroup/sup.scope/sysg-app-0badcafe",
            "sup.scope/sysg-app-0badcafe/web",
        ] {
            let r = record("web", 40, json!({ "cgroup": c }));
            assert!(check(&r, &s, &expect(&d)).is_err(), "{c}");
        }
        // The process is not in the unit's cgroup: a recorded cgroup is refused.
        let s = seen(40, 40, 40, Some(MARK), "/system.slice/victim.service");
        let r = record("web", 40, json!({ "cgroup": d[0] }));
        assert!(check(&r, &s, &expect(&d)).is_err());
        // Outside our cgroup namespace.
        let s = seen(40, 40, 40, Some(MARK), "/../../sysg-app-0badcafe/web");
        assert!(check(&r, &s, &expect(&d)).is_err());
        assert_eq!(check(&r_no_cgroup(), &s, &expect(&d)).unwrap().cgroup, None);
    }

    #[test]
    fn unit_names() {
        for ok in ["web", "web/c", "a.b"] {
            assert!(unit_name_ok(ok), "{ok}");
        }
        for bad in ["", ".", "..", "web/..", "a/b/c", "/web", "web/"] {
            assert!(!unit_name_ok(bad), "{bad}");
        }
    }
}
