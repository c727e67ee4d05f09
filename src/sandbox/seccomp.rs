//! The seccomp-BPF filters of a sandbox, compiled (with `seccompiler`) before the fork and
//! installed by the process backend in the child just before its exec.
//!
//! Like systemd, each concern is its own filter and the kernel applies the strictest answer
//! of all of them:
//! - `system_call_filter`, in systemd's syntax: the first entry decides whether the list
//!   allows (the rest is denied; `@default` is always allowed, as systemd adds it) or denies
//!   (`~...`); later entries of the other kind take names back out. Groups are systemd's own
//!   lists (`syscall_groups`), so both backends filter the same calls.
//! - `protect_kernel_modules` denies `@module`, `private_devices` denies `@raw-io`.
//! - `restrict_address_families`: `socket(2)` with a family outside the allow-list (or in
//!   the deny-list) fails with `EAFNOSUPPORT`.
//! - `memory_deny_write_execute`: `mmap` asking for write and execute at once, `mprotect` /
//!   `pkey_mprotect` adding execute, and `shmat` with `SHM_EXEC` fail with `EPERM`.
//!
//! Denied calls get `EPERM` unless `system_call_action: kill` (then `SIGSYS` kills the
//! process), which applies to `system_call_filter` only, as in systemd.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, OnceLock};

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};

use super::syscall_groups::{GROUPS, NUMBERS};
use super::{Sandbox, SyscallAction};

/// Why a sandbox's filters cannot be built; each names the field.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FilterError {
    #[error("sandbox.system_call_filter: unknown system call group `{0}`")]
    UnknownGroup(String),
    #[error("sandbox.system_call_filter: `{name}` is not a system call on {arch}")]
    UnknownCall { name: String, arch: &'static str },
    #[error("sandbox.restrict_address_families: unknown address family `{0}`")]
    UnknownFamily(String),
    #[error("sandbox: system call filters are not supported on {0}")]
    Arch(&'static str),
    #[error("sandbox: compiling the seccomp filter: {0}")]
    Compile(String),
}

/// `system_call_filter` resolved to names: an allow-list or a deny-list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallSet {
    /// True: only `names` are allowed. False: `names` are denied.
    pub allow: bool,
    pub names: BTreeSet<&'static str>,
}

/// The members of `@group`, nested groups expanded.
pub fn group_members(group: &str) -> Result<BTreeSet<&'static str>, FilterError> {
    let mut out = BTreeSet::new();
    expand(group, &mut out, 0)?;
    Ok(out)
}

fn expand(group: &str, out: &mut BTreeSet<&'static str>, depth: u8) -> Result<(), FilterError> {
    let g = GROUPS
        .iter()
        .find(|g| g.name == group)
        .ok_or_else(|| FilterError::UnknownGroup(group.to_string()))?;
    for m in g.members {
        if m.starts_with('@') {
            // systemd's groups nest one or two levels; the bound only guards against a cycle.
            if depth < 8 {
                expand(m, out, depth + 1)?;
            }
        } else {
            out.insert(m);
        }
    }
    Ok(())
}

/// The system call names one entry (without its `~`) stands for. A plain name must be a
/// system call of this architecture; a group's members may include calls of other
/// architectures (they are skipped when numbered).
fn entry_names(body: &str) -> Result<BTreeSet<&'static str>, FilterError> {
    if body.starts_with('@') {
        return group_members(body);
    }
    let known = NUMBERS
        .iter()
        .find(|(n, _)| *n == body)
        .map(|(n, _)| *n)
        .or_else(|| {
            // Named by systemd for another architecture: nothing to filter here.
            GROUPS
                .iter()
                .flat_map(|g| g.members.iter())
                .find(|m| **m == body)
                .copied()
        });
    known
        .map(|n| BTreeSet::from([n]))
        .ok_or_else(|| FilterError::UnknownCall {
            name: body.to_string(),
            arch: std::env::consts::ARCH,
        })
}

/// Resolve `system_call_filter` by systemd's rules; `None` for an empty list (no filter).
pub fn resolve(entries: &[String]) -> Result<Option<CallSet>, FilterError> {
    let Some(first) = entries.first() else {
        return Ok(None);
    };
    let allow = !first.starts_with('~');
    let mut names = if allow {
        group_members("@default")?
    } else {
        BTreeSet::new()
    };
    for e in entries {
        let (deny, body) = match e.strip_prefix('~') {
            Some(b) => (true, b),
            None => (false, e.as_str()),
        };
        let these = entry_names(body)?;
        // In an allow-list, `~x` takes x out; in a deny-list, a plain `x` takes it out.
        if deny != allow {
            names.extend(these);
        } else {
            names.retain(|n| !these.contains(n));
        }
    }
    Ok(Some(CallSet { allow, names }))
}

// `c_long` is `i64` on the architectures with a table, but not on every target.
#[allow(clippy::useless_conversion)]
fn number(name: &str) -> Option<i64> {
    static BY_NAME: OnceLock<HashMap<&'static str, i64>> = OnceLock::new();
    BY_NAME
        .get_or_init(|| NUMBERS.iter().map(|(n, nr)| (*n, i64::from(*nr))).collect())
        .get(name)
        .copied()
}

fn arch() -> Result<TargetArch, FilterError> {
    std::env::consts::ARCH
        .try_into()
        .map_err(|_| FilterError::Arch(std::env::consts::ARCH))
}

fn compile_err(e: impl std::fmt::Display) -> FilterError {
    FilterError::Compile(e.to_string())
}

/// One filter: `rules` (by number) get `on_match`, every other call `otherwise`.
fn program(
    rules: BTreeMap<i64, Vec<SeccompRule>>,
    otherwise: SeccompAction,
    on_match: SeccompAction,
) -> Result<BpfProgram, FilterError> {
    let filter = SeccompFilter::new(rules, otherwise, on_match, arch()?).map_err(compile_err)?;
    BpfProgram::try_from(filter).map_err(compile_err)
}

/// Unconditional rules for `names` that exist on this architecture.
fn plain(names: &BTreeSet<&str>) -> BTreeMap<i64, Vec<SeccompRule>> {
    names
        .iter()
        .filter_map(|n| number(n))
        .map(|nr| (nr, Vec::new()))
        .collect()
}

fn cond(arg: u8, op: SeccompCmpOp, value: u64) -> Result<SeccompCondition, FilterError> {
    SeccompCondition::new(arg, SeccompCmpArgLen::Dword, op, value).map_err(compile_err)
}

fn rule(conds: Vec<SeccompCondition>) -> Result<SeccompRule, FilterError> {
    SeccompRule::new(conds).map_err(compile_err)
}

fn family_number(name: &str) -> Option<u64> {
    super::address_families::number(name).and_then(|n| u64::try_from(n).ok())
}

/// On x86_64, a system call of the x32 ABI (number with bit 30 set) has the native audit
/// architecture but other numbers, so a deny-list would miss it: this filter, installed
/// before the others, fails every such call with `EPERM` (systemd blocks x32 too). Kernels
/// built without x32, or booted with it off, answer `ENOSYS` anyway. Six fixed instructions,
/// since `seccompiler` matches exact numbers only.
#[cfg(target_arch = "x86_64")]
fn x32_guard() -> BpfProgram {
    use seccompiler::sock_filter;
    const LD_ABS_W: u16 = 0x20; // BPF_LD | BPF_W | BPF_ABS
    const JEQ_K: u16 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
    const JGE_K: u16 = 0x35; // BPF_JMP | BPF_JGE | BPF_K
    const RET_K: u16 = 0x06; // BPF_RET | BPF_K
    const AUDIT_ARCH_X86_64: u32 = 0xC000_003E;
    const X32_SYSCALL_BIT: u32 = 0x4000_0000;
    let op = |code, jt, jf, k| sock_filter { code, jt, jf, k };
    vec![
        // seccomp_data.arch (offset 4): another architecture is not this filter's business.
        op(LD_ABS_W, 0, 0, 4),
        op(JEQ_K, 0, 3, AUDIT_ARCH_X86_64),
        // seccomp_data.nr (offset 0).
        op(LD_ABS_W, 0, 0, 0),
        op(JGE_K, 0, 1, X32_SYSCALL_BIT),
        op(RET_K, 0, 0, libc::SECCOMP_RET_ERRNO | libc::EPERM as u32),
        op(RET_K, 0, 0, libc::SECCOMP_RET_ALLOW),
    ]
}

/// The fields of a sandbox that make its filters.
#[derive(Clone, PartialEq, Eq)]
struct FilterKey {
    calls: Vec<String>,
    action: SyscallAction,
    modules: bool,
    devices: bool,
    families: Option<super::AddressFamilies>,
    wx: bool,
}

/// `compile`, remembered: every start of a service (and every probe of it) needs the same
/// filters, and building them costs more than the rest of a start's preparation.
pub fn compile_cached(sandbox: &Sandbox) -> Result<Arc<Vec<BpfProgram>>, FilterError> {
    const KEEP: usize = 64;
    static CACHE: Mutex<Vec<(FilterKey, Arc<Vec<BpfProgram>>)>> = Mutex::new(Vec::new());
    let key = FilterKey {
        calls: sandbox.system_call_filter.clone(),
        action: sandbox.system_call_action,
        modules: sandbox.protect_kernel_modules,
        devices: sandbox.private_devices,
        families: sandbox.restrict_address_families.clone(),
        wx: sandbox.memory_deny_write_execute,
    };
    if let Some((_, p)) = CACHE
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .find(|(k, _)| *k == key)
    {
        return Ok(p.clone());
    }
    let progs = Arc::new(compile(sandbox)?);
    let mut cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    if cache.len() >= KEEP {
        cache.remove(0);
    }
    cache.push((key, progs.clone()));
    Ok(progs)
}

/// Every filter the sandbox asks for, in the order they are installed (`system_call_filter`
/// last, as systemd does); empty when none.
pub fn compile(sandbox: &Sandbox) -> Result<Vec<BpfProgram>, FilterError> {
    let eperm = SeccompAction::Errno(libc::EPERM as u32);
    let mut out = Vec::new();

    let mut implied = BTreeSet::new();
    if sandbox.protect_kernel_modules {
        implied.extend(group_members("@module")?);
    }
    if sandbox.private_devices {
        implied.extend(group_members("@raw-io")?);
    }
    let rules = plain(&implied);
    if !rules.is_empty() {
        out.push(program(rules, SeccompAction::Allow, eperm.clone())?);
    }

    if let Some(af) = &sandbox.restrict_address_families {
        let mut numbers = Vec::new();
        for f in &af.families {
            numbers.push(family_number(f).ok_or_else(|| FilterError::UnknownFamily(f.clone()))?);
        }
        let socket = number("socket").ok_or(FilterError::Arch(std::env::consts::ARCH))?;
        let rules = if af.deny {
            // Any listed family: one rule per family (rules of a call are alternatives).
            numbers
                .iter()
                .map(|&n| rule(vec![cond(0, SeccompCmpOp::Eq, n)?]))
                .collect::<Result<Vec<_>, _>>()?
        } else {
            // None of the listed families: the conditions of one rule all hold. An empty
            // allow-list (systemd's `none`) denies every family.
            let conds = numbers
                .iter()
                .map(|&n| cond(0, SeccompCmpOp::Ne, n))
                .collect::<Result<Vec<_>, _>>()?;
            if conds.is_empty() {
                Vec::new()
            } else {
                vec![rule(conds)?]
            }
        };
        if !(af.deny && rules.is_empty()) {
            out.push(program(
                BTreeMap::from([(socket, rules)]),
                SeccompAction::Allow,
                SeccompAction::Errno(libc::EAFNOSUPPORT as u32),
            )?);
        }
    }

    if sandbox.memory_deny_write_execute {
        let wx = (libc::PROT_WRITE | libc::PROT_EXEC) as u64;
        let x = libc::PROT_EXEC as u64;
        let mut rules = BTreeMap::new();
        for (name, arg, mask) in [
            ("mmap", 2, wx),
            ("mprotect", 2, x),
            ("pkey_mprotect", 2, x),
            ("shmat", 2, libc::SHM_EXEC as u64),
        ] {
            if let Some(nr) = number(name) {
                let c = cond(arg, SeccompCmpOp::MaskedEq(mask), mask)?;
                rules.insert(nr, vec![rule(vec![c])?]);
            }
        }
        out.push(program(rules, SeccompAction::Allow, eperm.clone())?);
    }

    #[cfg(target_arch = "x86_64")]
    if !out.is_empty() || !sandbox.system_call_filter.is_empty() {
        out.insert(0, x32_guard());
    }

    // Last: it may deny seccomp(2) itself, which the filters before it still need.
    if let Some(set) = resolve(&sandbox.system_call_filter)? {
        let denied = match sandbox.system_call_action {
            SyscallAction::Eperm => eperm,
            SyscallAction::Kill => SeccompAction::KillProcess,
        };
        let rules = plain(&set.names);
        if set.allow {
            out.push(program(rules, denied, SeccompAction::Allow)?);
        } else if !rules.is_empty() {
            out.push(program(rules, SeccompAction::Allow, denied)?);
        }
    }

    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::AddressFamilies;

    fn entries(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn groups_nest_and_resolve() {
        let service = group_members("@system-service").unwrap();
        // Nested groups are expanded: @basic-io's read, @default's execve.
        assert!(service.contains("read") && service.contains("execve"));
        assert!(!service.contains("reboot"));
        let privileged = group_members("@privileged").unwrap();
        assert!(privileged.contains("chown") && privileged.contains("reboot"));
        assert_eq!(
            group_members("@nope"),
            Err(FilterError::UnknownGroup("@nope".into()))
        );
    }

    #[test]
    fn allow_list_keeps_default_and_takes_denied_out() {
        let set = resolve(&entries(&["@system-service", "~@privileged"]))
            .unwrap()
            .unwrap();
        assert!(set.allow);
        assert!(set.names.contains("read") && set.names.contains("execve"));
        // `chown` is in @system-service (via @chown) and in @privileged: the `~` wins.
        assert!(!set.names.contains("chown"));
        assert!(!set.names.contains("mount"));
        // An allow-list of one call still has @default.
        let set = resolve(&entries(&["read"])).unwrap().unwrap();
        assert!(set.names.contains("read") && set.names.contains("exit_group"));
    }

    #[test]
    fn deny_list_and_exceptions() {
        let set = resolve(&entries(&["~@mount", "umount2"])).unwrap().unwrap();
        assert!(!set.allow);
        assert!(set.names.contains("mount") && !set.names.contains("umount2"));
        assert_eq!(resolve(&[]).unwrap(), None);
        assert!(matches!(
            resolve(&entries(&["~nosuchcall"])),
            Err(FilterError::UnknownCall { .. })
        ));
    }

    #[test]
    fn filters_compile_for_each_field() {
        let none = compile(&Sandbox::default()).unwrap();
        assert!(none.is_empty());
        let s = Sandbox {
            system_call_filter: entries(&["@system-service", "~@privileged"]),
            protect_kernel_modules: true,
            private_devices: true,
            restrict_address_families: Some(AddressFamilies {
                deny: false,
                families: entries(&["AF_UNIX", "AF_INET"]),
            }),
            memory_deny_write_execute: true,
            ..Sandbox::default()
        };
        let progs = compile(&s).unwrap();
        // Address families, memory, implied denials, the filter itself (+ the x32 guard).
        let guard = usize::from(cfg!(target_arch = "x86_64"));
        assert_eq!(progs.len(), 4 + guard);
        // The kernel takes at most 4096 instructions per filter.
        assert!(progs.iter().all(|p| !p.is_empty() && p.len() < 4096));
        let kill = Sandbox {
            system_call_filter: entries(&["~@reboot"]),
            system_call_action: SyscallAction::Kill,
            ..Sandbox::default()
        };
        assert_eq!(compile(&kill).unwrap().len(), 1 + guard);
        let bad = Sandbox {
            restrict_address_families: Some(AddressFamilies {
                deny: true,
                families: entries(&["AF_NOPE"]),
            }),
            ..Sandbox::default()
        };
        assert_eq!(
            compile(&bad),
            Err(FilterError::UnknownFamily("AF_NOPE".into()))
        );
    }

    /// Installs the guard in a forked child (the test process stays unfiltered) and calls
    /// getpid through the x32 ABI: `EPERM` from the filter, where the kernel alone says
    /// `ENOSYS` (x32 off) or answers (x32 on); the native call still works.
    #[test]
    #[cfg(target_arch = "x86_64")]
    fn the_x32_guard_fails_x32_calls_with_eperm() {
        let prog = x32_guard();
        let fprog = libc::sock_fprog {
            len: prog.len() as u16,
            filter: prog.as_ptr() as *mut libc::sock_filter,
        };
        // SAFETY: the child makes raw system calls only and leaves with _exit.
        unsafe {
            let pid = libc::fork();
            assert!(pid >= 0);
            if pid == 0 {
                libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
                let set = libc::syscall(
                    libc::SYS_seccomp,
                    libc::SECCOMP_SET_MODE_FILTER,
                    0,
                    &fprog as *const libc::sock_fprog,
                );
                if set != 0 {
                    libc::_exit(2);
                }
                let r = libc::syscall(0x4000_0000 + libc::SYS_getpid);
                let e = *libc::__errno_location();
                let native = libc::syscall(libc::SYS_getpid);
                libc::_exit(if r == -1 && e == libc::EPERM && native > 0 {
                    0
                } else {
                    1
                });
            }
            let mut status = 0;
            assert_eq!(libc::waitpid(pid, &mut status, 0), pid);
            assert!(libc::WIFEXITED(status), "status {status}");
            assert_eq!(libc::WEXITSTATUS(status), 0);
        }
    }

    #[test]
    fn every_group_of_the_table_resolves() {
        // The config parser accepts exactly the table's groups: each must resolve.
        for g in crate::sandbox::syscall_groups::GROUPS {
            assert!(group_members(g.name).is_ok(), "{}", g.name);
        }
    }

    #[test]
    fn compiled_filters_are_remembered() {
        let s = Sandbox {
            system_call_filter: entries(&["~@mount"]),
            ..Sandbox::default()
        };
        let a = compile_cached(&s).unwrap();
        let b = compile_cached(&s).unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(*a, compile(&s).unwrap());
        let other = Sandbox {
            system_call_action: SyscallAction::Kill,
            ..s
        };
        assert_ne!(*compile_cached(&other).unwrap(), *a);
    }

    #[test]
    fn every_group_member_numbered_here_is_a_libc_constant() {
        // The table holds only libc's numbers, and the common calls are all there.
        for name in [
            "read", "write", "socket", "mmap", "mprotect", "execve", "reboot",
        ] {
            assert!(number(name).is_some(), "{name}");
        }
        #[allow(clippy::unnecessary_cast)] // c_long is not i64 on every target
        let socket = libc::SYS_socket as i64;
        assert_eq!(number("socket"), Some(socket));
    }
}
