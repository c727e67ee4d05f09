//! What is applied between fork and exec besides the session and the cgroup: namespaces,
//! rlimits, niceness, CPU affinity, groups, gid, uid, capabilities. Everything is resolved and
//! laid out before the fork (`ChildSetup::prepare`); `apply_*` only makes async-signal-safe
//! system calls on that data and never allocates.

use std::ffi::CString;
use std::io;

use nix::unistd::{Group, User};

use crate::backend::BackendError;
use crate::config::schema::Size;
use crate::spec::UnitSpec;

/// Capability names in kernel order (`CAP_CHOWN` = 0 ...).
const CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// Number of a `CAP_*` name (case-insensitive, `CAP_` prefix optional).
pub fn cap_number(name: &str) -> Option<u32> {
    let upper = name.to_ascii_uppercase();
    let full = if upper.starts_with("CAP_") {
        upper
    } else {
        format!("CAP_{upper}")
    };
    CAPS.iter().position(|c| *c == full).map(|i| i as u32)
}

const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// Data for the child, prepared before the fork.
pub struct ChildSetup {
    unshare: libc::c_int,
    private_mounts: bool,
    loopback_up: bool,
    rlimits: Vec<(libc::__rlimit_resource_t, libc::rlimit)>,
    nice: Option<libc::c_int>,
    affinity: Option<libc::cpu_set_t>,
    groups: Option<Vec<libc::gid_t>>,
    gid: Option<libc::gid_t>,
    uid: Option<libc::uid_t>,
    /// Bit mask of the capabilities to keep (bounding, permitted, effective, inheritable,
    /// ambient).
    caps: Option<u64>,
    mount_root: CString,
    lo: CString,
}

fn err(spec: &UnitSpec, message: String) -> BackendError {
    BackendError::Start {
        unit: spec.name.clone(),
        message,
    }
}

fn rlim(v: Size) -> libc::rlim_t {
    match v {
        Size::Value(n) => n as libc::rlim_t,
        Size::Unlimited => libc::RLIM_INFINITY,
    }
}

impl ChildSetup {
    pub fn prepare(spec: &UnitSpec) -> Result<ChildSetup, BackendError> {
        if spec.isolation.pid {
            return Err(err(
                spec,
                "`isolation.pid` is not supported by the process backend yet".into(),
            ));
        }
        let mut unshare = 0;
        if spec.isolation.network {
            unshare |= libc::CLONE_NEWNET;
        }
        if spec.isolation.mount {
            unshare |= libc::CLONE_NEWNS;
        }

        let l = &spec.limits;
        let mut rlimits = Vec::new();
        for (res, v) in [
            (libc::RLIMIT_NOFILE, l.nofile),
            (libc::RLIMIT_NPROC, l.nproc),
            (libc::RLIMIT_MEMLOCK, l.memlock),
        ] {
            if let Some(v) = v {
                let v = rlim(v);
                rlimits.push((
                    res,
                    libc::rlimit {
                        rlim_cur: v,
                        rlim_max: v,
                    },
                ));
            }
        }
        let affinity = match &l.cpu_affinity {
            None => None,
            Some(cpus) => {
                // SAFETY: cpu_set_t is a plain bit array; all-zero is the empty set.
                let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
                for &cpu in cpus {
                    if cpu as usize >= libc::CPU_SETSIZE as usize {
                        return Err(err(spec, format!("cpu_affinity: no CPU {cpu}")));
                    }
                    // SAFETY: `cpu` was checked to be below CPU_SETSIZE.
                    unsafe { libc::CPU_SET(cpu as usize, &mut set) };
                }
                Some(set)
            }
        };

        let user = match &spec.user {
            None => None,
            Some(name) => Some(resolve_user(name).map_err(|m| err(spec, m))?),
        };
        let gid = match &spec.group {
            Some(name) => Some(resolve_group(name).map_err(|m| err(spec, m))?),
            None => user.as_ref().map(|u| u.gid.as_raw()),
        };
        let groups = if !spec.supplementary_groups.is_empty() || user.is_some() {
            let mut gs = Vec::new();
            if let Some(g) = gid {
                gs.push(g);
            }
            // The user's own groups, as a login would give them.
            if let (Some(u), Some(g)) = (&user, gid) {
                if let Ok(name) = CString::new(u.name.clone()) {
                    if let Ok(list) =
                        nix::unistd::getgrouplist(&name, nix::unistd::Gid::from_raw(g))
                    {
                        gs.extend(list.into_iter().map(|g| g.as_raw()));
                    }
                }
            }
            for name in &spec.supplementary_groups {
                gs.push(resolve_group(name).map_err(|m| err(spec, m))?);
            }
            gs.sort_unstable();
            gs.dedup();
            Some(gs)
        } else {
            None
        };

        let caps = match &spec.capabilities {
            None => None,
            Some(names) => {
                let mut mask = 0u64;
                for n in names {
                    let c = cap_number(n)
                        .ok_or_else(|| err(spec, format!("unknown capability {n}")))?;
                    mask |= 1 << c;
                }
                Some(mask)
            }
        };

        // An unprivileged supervisor running a unit as itself: nothing to change (setgroups
        // would fail with EPERM).
        // SAFETY: geteuid/getegid have no preconditions.
        let (euid, egid) = unsafe { (libc::geteuid(), libc::getegid()) };
        let (mut uid, mut gid, mut groups) = (user.map(|u| u.uid.as_raw()), gid, groups);
        if euid != 0
            && uid.is_none_or(|u| u == euid)
            && gid.is_none_or(|g| g == egid)
            && spec.supplementary_groups.is_empty()
        {
            (uid, gid, groups) = (None, None, None);
        }

        Ok(ChildSetup {
            unshare,
            private_mounts: spec.isolation.mount,
            loopback_up: spec.isolation.network,
            rlimits,
            nice: l.nice,
            affinity,
            groups,
            gid,
            uid,
            caps,
            mount_root: c"/".to_owned(),
            lo: c"lo".to_owned(),
        })
    }

    /// Namespaces (first, before the cgroup is joined).
    ///
    /// # Safety
    /// Call only in the child between fork and exec.
    pub unsafe fn apply_namespaces(&self) -> io::Result<()> {
        if self.unshare == 0 {
            return Ok(());
        }
        check(libc::unshare(self.unshare))?;
        if self.private_mounts {
            // Mounts made inside stay inside; the host's still propagate in.
            check(libc::mount(
                std::ptr::null(),
                self.mount_root.as_ptr(),
                std::ptr::null(),
                libc::MS_REC | libc::MS_SLAVE,
                std::ptr::null(),
            ))?;
        }
        if self.loopback_up {
            self.bring_up_loopback()?;
        }
        Ok(())
    }

    unsafe fn bring_up_loopback(&self) -> io::Result<()> {
        let sock = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        check(sock)?;
        let mut req: libc::ifreq = std::mem::zeroed();
        let name = self.lo.as_bytes_with_nul();
        for (d, s) in req.ifr_name.iter_mut().zip(name) {
            *d = *s as libc::c_char;
        }
        let mut rc = libc::ioctl(sock, libc::SIOCGIFFLAGS, &mut req);
        if rc == 0 {
            req.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
            rc = libc::ioctl(sock, libc::SIOCSIFFLAGS, &mut req);
        }
        let e = io::Error::last_os_error();
        libc::close(sock);
        if rc < 0 {
            return Err(e);
        }
        Ok(())
    }

    /// Everything after the cgroup: rlimits, niceness, affinity, groups, gid, uid, capabilities.
    ///
    /// # Safety
    /// Call only in the child between fork and exec.
    pub unsafe fn apply_rest(&self) -> io::Result<()> {
        for (res, lim) in &self.rlimits {
            check(libc::setrlimit(*res, lim))?;
        }
        if let Some(n) = self.nice {
            check(libc::setpriority(libc::PRIO_PROCESS, 0, n))?;
        }
        if let Some(set) = &self.affinity {
            check(libc::sched_setaffinity(
                0,
                std::mem::size_of::<libc::cpu_set_t>(),
                set,
            ))?;
        }
        if let Some(mask) = self.caps {
            // Keep the permitted set across the uid change; trim the bounding set while we
            // still have CAP_SETPCAP.
            check(libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0))?;
            for cap in 0..64u32 {
                if mask & (1 << cap) == 0
                    && libc::prctl(libc::PR_CAPBSET_READ, cap as libc::c_ulong, 0, 0, 0) == 1
                {
                    check(libc::prctl(
                        libc::PR_CAPBSET_DROP,
                        cap as libc::c_ulong,
                        0,
                        0,
                        0,
                    ))?;
                }
            }
        }
        if let Some(groups) = &self.groups {
            check(libc::setgroups(groups.len(), groups.as_ptr()))?;
        }
        if let Some(gid) = self.gid {
            check(libc::setresgid(gid, gid, gid))?;
        }
        if let Some(uid) = self.uid {
            check(libc::setresuid(uid, uid, uid))?;
        }
        if let Some(mask) = self.caps {
            let mut header = CapHeader {
                version: LINUX_CAPABILITY_VERSION_3,
                pid: 0,
            };
            let lo = mask as u32;
            let hi = (mask >> 32) as u32;
            let mut data = [
                CapData {
                    effective: lo,
                    permitted: lo,
                    inheritable: lo,
                },
                CapData {
                    effective: hi,
                    permitted: hi,
                    inheritable: hi,
                },
            ];
            check(libc::syscall(
                libc::SYS_capset,
                &mut header as *mut CapHeader,
                data.as_mut_ptr(),
            ) as libc::c_int)?;
            // Ambient capabilities survive the exec of an unprivileged program.
            for cap in 0..64u32 {
                if mask & (1 << cap) != 0 {
                    check(libc::prctl(
                        libc::PR_CAP_AMBIENT,
                        libc::PR_CAP_AMBIENT_RAISE as libc::c_ulong,
                        cap as libc::c_ulong,
                        0,
                        0,
                    ))?;
                }
            }
        }
        Ok(())
    }
}

fn check(rc: libc::c_int) -> io::Result<()> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

fn resolve_user(name: &str) -> Result<User, String> {
    let found = match name.parse::<u32>() {
        Ok(uid) => User::from_uid(nix::unistd::Uid::from_raw(uid)),
        Err(_) => User::from_name(name),
    };
    match found {
        Ok(Some(u)) => Ok(u),
        Ok(None) => Err(format!("user {name}: no such user")),
        Err(e) => Err(format!("user {name}: {e}")),
    }
}

fn resolve_group(name: &str) -> Result<libc::gid_t, String> {
    if let Ok(gid) = name.parse::<u32>() {
        return Ok(gid);
    }
    match Group::from_name(name) {
        Ok(Some(g)) => Ok(g.gid.as_raw()),
        Ok(None) => Err(format!("group {name}: no such group")),
        Err(e) => Err(format!("group {name}: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cap_names() {
        assert_eq!(cap_number("CAP_CHOWN"), Some(0));
        assert_eq!(cap_number("net_bind_service"), Some(10));
        assert_eq!(cap_number("CAP_CHECKPOINT_RESTORE"), Some(40));
        assert_eq!(cap_number("CAP_NOPE"), None);
    }
}
