//! What is applied between fork and exec besides the cgroup: session, namespaces, rlimits,
//! niceness, CPU affinity, groups, gid, uid, capabilities. Everything is resolved, checked and
//! laid out before the fork (`ChildSetup::prepare`); `apply_*` only makes async-signal-safe
//! system calls on that data and never allocates.
//!
//! A step that fails in the child writes its `Step` to the report pipe before the child gives
//! up, so that the parent's error names the config field (`limits.nofile: ...`) instead of a
//! bare errno. With `isolation.pid` the child forks once more after `unshare(CLONE_NEWPID)`:
//! the grandchild is PID 1 of the new namespace and becomes the unit's main process; the
//! intermediate child reports the grandchild's pid on the same pipe and exits, so the
//! grandchild is re-parented to the supervisor (a child subreaper), which can then wait for it
//! and read its real exit status.

use std::ffi::CString;
use std::io;
use std::os::fd::RawFd;

use nix::unistd::{Group, User};

use super::sandbox::{ChildSandbox, Failed};
use crate::backend::BackendError;
use crate::config::schema::Size;
use crate::spec::UnitSpec;

/// Number of a `CAP_*` name (case-insensitive, `CAP_` prefix optional).
pub fn cap_number(name: &str) -> Option<u32> {
    crate::config::caps::canonical(name).and_then(crate::config::caps::number)
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

/// One step of the child's set-up, as reported on the pipe when it fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Step {
    Setsid = 1,
    SignalMask,
    Unshare,
    PrivateMounts,
    Loopback,
    PidFork,
    ProcMount,
    Cgroup,
    Nofile,
    Nproc,
    Memlock,
    Nice,
    Affinity,
    KeepCaps,
    Bounding,
    Groups,
    Gid,
    Uid,
    Capset,
    Ambient,
    Stdio,
    Chdir,
    Exec,
    Sockets,
    SandboxMounts,
    SandboxBounding,
    NoNewPrivs,
    Seccomp,
}

impl Step {
    const ALL: [Step; 28] = [
        Step::Setsid,
        Step::SignalMask,
        Step::Unshare,
        Step::PrivateMounts,
        Step::Loopback,
        Step::PidFork,
        Step::ProcMount,
        Step::Cgroup,
        Step::Nofile,
        Step::Nproc,
        Step::Memlock,
        Step::Nice,
        Step::Affinity,
        Step::KeepCaps,
        Step::Bounding,
        Step::Groups,
        Step::Gid,
        Step::Uid,
        Step::Capset,
        Step::Ambient,
        Step::Stdio,
        Step::Chdir,
        Step::Exec,
        Step::Sockets,
        Step::SandboxMounts,
        Step::SandboxBounding,
        Step::NoNewPrivs,
        Step::Seccomp,
    ];

    /// The step with this wire byte.
    pub fn from_byte(b: u8) -> Option<Step> {
        Step::ALL.iter().copied().find(|s| *s as u8 == b)
    }

    /// The config field the step applies and what it does, for error messages.
    pub fn describe(self) -> (&'static str, &'static str) {
        match self {
            Step::Setsid => ("(session)", "setsid"),
            Step::SignalMask => ("(signals)", "unblocking signals"),
            Step::Unshare => ("isolation", "creating the namespaces (unshare)"),
            Step::PrivateMounts => ("isolation.mount", "making mounts private"),
            Step::Loopback => ("isolation.network", "bringing up the loopback interface"),
            Step::PidFork => ("isolation.pid", "forking the namespace's first process"),
            Step::ProcMount => ("isolation.pid", "mounting a fresh /proc"),
            Step::Cgroup => ("(cgroup)", "joining the unit's cgroup"),
            Step::Nofile => ("limits.nofile", "setrlimit(RLIMIT_NOFILE)"),
            Step::Nproc => ("limits.nproc", "setrlimit(RLIMIT_NPROC)"),
            Step::Memlock => ("limits.memlock", "setrlimit(RLIMIT_MEMLOCK)"),
            Step::Nice => ("limits.nice", "setpriority"),
            Step::Affinity => ("limits.cpu_affinity", "sched_setaffinity"),
            Step::KeepCaps => ("capabilities", "PR_SET_KEEPCAPS"),
            Step::Bounding => ("capabilities", "reducing the bounding set"),
            Step::Groups => ("supplementary_groups", "setgroups"),
            Step::Gid => ("group", "setresgid"),
            Step::Uid => ("user", "setresuid"),
            Step::Capset => ("capabilities", "capset"),
            Step::Ambient => ("capabilities", "raising the ambient set"),
            Step::Stdio => ("(stdio)", "connecting stdin, stdout and stderr"),
            Step::Chdir => ("working_dir", "changing into the working directory"),
            Step::Exec => ("(exec)", "exec"),
            Step::Sockets => ("sockets", "passing the listening sockets"),
            Step::SandboxMounts => ("sandbox", "setting up the mount namespace"),
            Step::SandboxBounding => ("sandbox", "dropping capabilities from the bounding set"),
            Step::NoNewPrivs => ("sandbox.no_new_privileges", "PR_SET_NO_NEW_PRIVS"),
            Step::Seccomp => ("sandbox", "installing the seccomp filter"),
        }
    }
}

/// What the child reported on the pipe.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// The step that failed and the errno it got.
    pub failed: Option<(Step, i32)>,
    /// With `isolation.pid`: the pid (in our namespace) of the namespace's PID 1.
    pub ns_init: Option<u32>,
}

impl Report {
    /// Decode the bytes read from the pipe: `E<step><errno, native endian i32>` and
    /// `P<pid, native endian u32>`.
    pub fn parse(mut bytes: &[u8]) -> Report {
        let mut r = Report::default();
        while let Some((&tag, rest)) = bytes.split_first() {
            match tag {
                b'E' if rest.len() >= 5 => {
                    let mut errno = [0u8; 4];
                    errno.copy_from_slice(&rest[1..5]);
                    let errno = i32::from_ne_bytes(errno);
                    r.failed = r.failed.or(Step::from_byte(rest[0]).map(|s| (s, errno)));
                    bytes = &rest[5..];
                }
                b'P' if rest.len() >= 4 => {
                    let mut pid = [0u8; 4];
                    pid.copy_from_slice(&rest[..4]);
                    r.ns_init = Some(u32::from_ne_bytes(pid));
                    bytes = &rest[4..];
                }
                _ => break,
            }
        }
        r
    }
}

/// A failed step with the error it got.
pub type StepError = (Step, io::Error);

/// Data for the child, prepared before the fork.
pub struct ChildSetup {
    unshare: libc::c_int,
    private_mounts: bool,
    loopback_up: bool,
    new_pid_ns: bool,
    rlimits: Vec<(Step, libc::__rlimit_resource_t, libc::rlimit)>,
    nice: Option<libc::c_int>,
    affinity: Option<libc::cpu_set_t>,
    groups: Option<Vec<libc::gid_t>>,
    gid: Option<libc::gid_t>,
    uid: Option<libc::uid_t>,
    /// Bit mask of the capabilities to keep (bounding, permitted, effective, inheritable,
    /// ambient).
    caps: Option<u64>,
    mount_root: CString,
    proc_dir: CString,
    proc_type: CString,
    lo: CString,
    /// `sandbox:`, when the service has one.
    sandbox: Option<ChildSandbox>,
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

/// The capabilities this process holds: (permitted, bounding).
fn own_caps() -> (u64, u64) {
    let mut header = CapHeader {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let mut data = [CapData::default(); 2];
    // SAFETY: capget writes two CapData structs (version 3) into the array we own.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_capget,
            &mut header as *mut CapHeader,
            data.as_mut_ptr(),
        )
    };
    let permitted = if rc == 0 {
        u64::from(data[0].permitted) | (u64::from(data[1].permitted) << 32)
    } else {
        0
    };
    let mut bounding = 0u64;
    for cap in 0..64u32 {
        // SAFETY: PR_CAPBSET_READ only reads the calling thread's bounding set.
        if unsafe { libc::prctl(libc::PR_CAPBSET_READ, cap as libc::c_ulong, 0, 0, 0) } == 1 {
            bounding |= 1 << cap;
        }
    }
    (permitted, bounding)
}

const CAP_SYS_RESOURCE: u32 = 24;

/// Check the rlimits the child will set against what the kernel will allow, so that the error
/// names the field and says why, before anything is forked.
fn check_rlimits(
    spec: &UnitSpec,
    rlimits: &[(Step, libc::__rlimit_resource_t, libc::rlimit)],
    permitted: u64,
) -> Result<(), BackendError> {
    let may_raise = permitted & (1 << CAP_SYS_RESOURCE) != 0;
    let nr_open = std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok());
    for (step, res, want) in rlimits {
        let field = step.describe().0;
        let shown = |v: libc::rlim_t| {
            if v == libc::RLIM_INFINITY {
                "unlimited".to_string()
            } else {
                v.to_string()
            }
        };
        if *res == libc::RLIMIT_NOFILE {
            if let Some(max) = nr_open {
                if want.rlim_max == libc::RLIM_INFINITY || want.rlim_max > max {
                    return Err(err(
                        spec,
                        format!(
                            "{field}: {} is above the kernel's maximum number of open files (fs.nr_open = {max})",
                            shown(want.rlim_max)
                        ),
                    ));
                }
            }
        }
        let mut cur = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit writes one rlimit into the struct we own.
        if unsafe { libc::getrlimit(*res, &mut cur) } != 0 {
            continue;
        }
        let above = cur.rlim_max != libc::RLIM_INFINITY
            && (want.rlim_max == libc::RLIM_INFINITY || want.rlim_max > cur.rlim_max);
        if above && !may_raise {
            return Err(err(
                spec,
                format!(
                    "{field}: {} is above the supervisor's hard limit {}, and raising a hard limit needs CAP_SYS_RESOURCE, which the supervisor does not have",
                    shown(want.rlim_max),
                    shown(cur.rlim_max)
                ),
            ));
        }
    }
    Ok(())
}

impl ChildSetup {
    /// Resolve names, lay out every value the child needs and check what can be checked before
    /// the fork. Errors name the config field.
    pub fn prepare(spec: &UnitSpec) -> Result<ChildSetup, BackendError> {
        let mut unshare = 0;
        if spec.isolation.network {
            unshare |= libc::CLONE_NEWNET;
        }
        if spec.isolation.mount {
            unshare |= libc::CLONE_NEWNS;
        }
        if spec.isolation.pid {
            unshare |= libc::CLONE_NEWPID;
        }
        let sandbox = ChildSandbox::prepare(spec)?;
        let sandbox_mounts = sandbox
            .as_ref()
            .is_some_and(ChildSandbox::needs_mount_namespace);
        if sandbox_mounts {
            unshare |= libc::CLONE_NEWNS;
        }

        let l = &spec.limits;
        let mut rlimits = Vec::new();
        for (step, res, v) in [
            (Step::Nofile, libc::RLIMIT_NOFILE, l.nofile),
            (Step::Nproc, libc::RLIMIT_NPROC, l.nproc),
            (Step::Memlock, libc::RLIMIT_MEMLOCK, l.memlock),
        ] {
            if let Some(v) = v {
                let v = rlim(v);
                rlimits.push((
                    step,
                    res,
                    libc::rlimit {
                        rlim_cur: v,
                        rlim_max: v,
                    },
                ));
            }
        }
        let (permitted, bounding) = own_caps();
        check_rlimits(spec, &rlimits, permitted)?;
        let affinity = match &l.cpu_affinity {
            None => None,
            Some(cpus) => {
                // SAFETY: cpu_set_t is a plain bit array; all-zero is the empty set.
                let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
                for &cpu in cpus {
                    if cpu as usize >= libc::CPU_SETSIZE as usize {
                        return Err(err(spec, format!("limits.cpu_affinity: no CPU {cpu}")));
                    }
                    // SAFETY: `cpu` was checked to be below CPU_SETSIZE.
                    unsafe { libc::CPU_SET(cpu as usize, &mut set) };
                }
                Some(set)
            }
        };

        let user = match &spec.user {
            None => None,
            Some(name) => Some(resolve_user(name).map_err(|m| err(spec, format!("user: {m}")))?),
        };
        let gid = match &spec.group {
            Some(name) => Some(resolve_group(name).map_err(|m| err(spec, format!("group: {m}")))?),
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
                gs.push(
                    resolve_group(name)
                        .map_err(|m| err(spec, format!("supplementary_groups: {m}")))?,
                );
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
                    let c = cap_number(n).ok_or_else(|| {
                        err(spec, format!("capabilities: unknown capability {n}"))
                    })?;
                    // A capability the supervisor lacks cannot be handed on: say so now
                    // rather than run the service without it.
                    if bounding & (1 << c) == 0 || permitted & (1 << c) == 0 {
                        return Err(err(
                            spec,
                            format!(
                                "capabilities: {n}: the supervisor does not hold this capability (it is not in its {} set), so it cannot grant it",
                                if bounding & (1 << c) == 0 { "bounding" } else { "permitted" }
                            ),
                        ));
                    }
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
            private_mounts: spec.isolation.mount || sandbox_mounts,
            loopback_up: spec.isolation.network,
            new_pid_ns: spec.isolation.pid,
            rlimits,
            nice: l.nice,
            affinity,
            groups,
            gid,
            uid,
            caps,
            mount_root: c"/".to_owned(),
            proc_dir: c"/proc".to_owned(),
            proc_type: c"proc".to_owned(),
            lo: c"lo".to_owned(),
            sandbox,
        })
    }

    /// True when the child forks once more (`isolation.pid`).
    pub fn forks_again(&self) -> bool {
        self.new_pid_ns
    }

    /// Own session, then namespaces (before the cgroup is joined). With a new pid namespace
    /// this forks: the intermediate child writes the grandchild's pid to `report` and exits
    /// here; only the grandchild returns.
    ///
    /// # Safety
    /// Call only in the child between fork and exec.
    pub unsafe fn apply_namespaces(&self, report: RawFd) -> Result<(), StepError> {
        // Own session, hence own process group (pgid = sid = pid), no controlling tty.
        check(libc::setsid()).map_err(|e| (Step::Setsid, e))?;
        if self.unshare != 0 {
            self.unshare_namespaces(report)?;
        }
        // After a new /proc (isolation.pid), so that the sandbox's /proc protections hold.
        if let Some(sb) = &self.sandbox {
            sb.apply_mounts().map_err(sandbox_step)?;
        }
        Ok(())
    }

    /// The namespaces of `isolation` (and the sandbox's mount namespace).
    ///
    /// # Safety
    /// Call only in the child between fork and exec.
    unsafe fn unshare_namespaces(&self, report: RawFd) -> Result<(), StepError> {
        check(libc::unshare(self.unshare)).map_err(|e| (Step::Unshare, e))?;
        if self.private_mounts {
            // Mounts made inside stay inside; the host's still propagate in.
            check(libc::mount(
                std::ptr::null(),
                self.mount_root.as_ptr(),
                std::ptr::null(),
                libc::MS_REC | libc::MS_SLAVE,
                std::ptr::null(),
            ))
            .map_err(|e| (Step::PrivateMounts, e))?;
        }
        if self.loopback_up {
            self.bring_up_loopback().map_err(|e| (Step::Loopback, e))?;
        }
        if self.new_pid_ns {
            let pid = libc::fork();
            if pid < 0 {
                return Err((Step::PidFork, io::Error::last_os_error()));
            }
            if pid > 0 {
                // The intermediate child: hand the pid over and leave. Its exit re-parents
                // the grandchild to the supervisor (a child subreaper).
                let mut msg = [0u8; 5];
                msg[0] = b'P';
                msg[1..].copy_from_slice(&(pid as u32).to_ne_bytes());
                libc::write(report, msg.as_ptr().cast(), msg.len());
                libc::_exit(0);
            }
            // PID 1 of the new namespace. A session of its own again, so that the unit's
            // process group and session ids are this process's pid (as the supervisor sees
            // it), like any other unit's.
            check(libc::setsid()).map_err(|e| (Step::Setsid, e))?;
            if self.private_mounts {
                // Only with a private mount table: mounting over the host's /proc would break
                // every other process.
                check(libc::mount(
                    self.proc_type.as_ptr(),
                    self.proc_dir.as_ptr(),
                    self.proc_type.as_ptr(),
                    libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
                    std::ptr::null(),
                ))
                .map_err(|e| (Step::ProcMount, e))?;
            }
        }
        Ok(())
    }

    /// Set `lo` up (and running) in the network namespace just unshared: a new namespace's
    /// loopback starts down. Uses only async-signal-safe calls (socket, ioctl, close) and no
    /// allocation, for the child between fork and exec.
    ///
    /// # Safety
    /// Call only in the child between fork and exec, after `unshare(CLONE_NEWNET)`: it changes
    /// the flags of the `lo` of whatever network namespace the caller is in.
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
    pub unsafe fn apply_rest(&self) -> Result<(), StepError> {
        for (step, res, lim) in &self.rlimits {
            check(libc::setrlimit(*res, lim)).map_err(|e| (*step, e))?;
        }
        if let Some(n) = self.nice {
            check(libc::setpriority(libc::PRIO_PROCESS, 0, n)).map_err(|e| (Step::Nice, e))?;
        }
        if let Some(set) = &self.affinity {
            check(libc::sched_setaffinity(
                0,
                std::mem::size_of::<libc::cpu_set_t>(),
                set,
            ))
            .map_err(|e| (Step::Affinity, e))?;
        }
        if let Some(mask) = self.caps {
            // Keep the permitted set across the uid change; trim the bounding set while we
            // still have CAP_SETPCAP.
            check(libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0))
                .map_err(|e| (Step::KeepCaps, e))?;
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
                    ))
                    .map_err(|e| (Step::Bounding, e))?;
                }
            }
        }
        // Raw system calls, not libc's wrappers: glibc's set*id broadcast the change to every
        // thread it believes the process has, and a child made by a raw clone3 still carries
        // the supervisor's thread list. The child has one thread; the call covers it.
        if let Some(groups) = &self.groups {
            check(libc::syscall(libc::SYS_setgroups, groups.len(), groups.as_ptr()) as libc::c_int)
                .map_err(|e| (Step::Groups, e))?;
        }
        if let Some(gid) = self.gid {
            check(libc::syscall(libc::SYS_setresgid, gid, gid, gid) as libc::c_int)
                .map_err(|e| (Step::Gid, e))?;
        }
        if let Some(uid) = self.uid {
            check(libc::syscall(libc::SYS_setresuid, uid, uid, uid) as libc::c_int)
                .map_err(|e| (Step::Uid, e))?;
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
            ) as libc::c_int)
            .map_err(|e| (Step::Capset, e))?;
            // Ambient capabilities survive the exec of an unprivileged program.
            for cap in 0..64u32 {
                if mask & (1 << cap) != 0 {
                    check(libc::prctl(
                        libc::PR_CAP_AMBIENT,
                        libc::PR_CAP_AMBIENT_RAISE as libc::c_ulong,
                        cap as libc::c_ulong,
                        0,
                        0,
                    ))
                    .map_err(|e| (Step::Ambient, e))?;
                }
            }
        }
        if let Some(sb) = &self.sandbox {
            sb.apply_filters().map_err(sandbox_step)?;
        }
        Ok(())
    }
}

fn sandbox_step((failed, e): (Failed, io::Error)) -> StepError {
    let step = match failed {
        Failed::Mounts => Step::SandboxMounts,
        Failed::Chdir => Step::Chdir,
        Failed::Bounding => Step::SandboxBounding,
        Failed::NoNewPrivs => Step::NoNewPrivs,
        Failed::Seccomp => Step::Seccomp,
    };
    (step, e)
}

/// Write `E<step><errno>` to the report pipe (child side; async-signal-safe).
///
/// # Safety
/// Call only in the child between fork and exec.
pub unsafe fn report_failure(report: RawFd, step: Step, error: &io::Error) {
    let mut msg = [0u8; 6];
    msg[0] = b'E';
    msg[1] = step as u8;
    msg[2..].copy_from_slice(&error.raw_os_error().unwrap_or(0).to_ne_bytes());
    libc::write(report, msg.as_ptr().cast(), msg.len());
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
        Ok(None) => Err(format!("{name}: no such user")),
        Err(e) => Err(format!("{name}: {e}")),
    }
}

fn resolve_group(name: &str) -> Result<libc::gid_t, String> {
    if let Ok(gid) = name.parse::<u32>() {
        return Ok(gid);
    }
    match Group::from_name(name) {
        Ok(Some(g)) => Ok(g.gid.as_raw()),
        Ok(None) => Err(format!("{name}: no such group")),
        Err(e) => Err(format!("{name}: {e}")),
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

    #[test]
    fn report_bytes() {
        let mut b = vec![b'P'];
        b.extend_from_slice(&4242u32.to_ne_bytes());
        b.extend_from_slice(&[b'E', Step::Nofile as u8]);
        b.extend_from_slice(&libc::EPERM.to_ne_bytes());
        assert_eq!(
            Report::parse(&b),
            Report {
                failed: Some((Step::Nofile, libc::EPERM)),
                ns_init: Some(4242)
            }
        );
        assert_eq!(Report::parse(&[]), Report::default());
        assert_eq!(Report::parse(&[b'E', 200, 1, 0, 0, 0]).failed, None);
        // A truncated record is ignored, not misread.
        assert_eq!(Report::parse(&[b'E', Step::Exec as u8, 2]).failed, None);
        for s in Step::ALL {
            assert_eq!(Step::from_byte(s as u8), Some(s));
        }
    }
}
