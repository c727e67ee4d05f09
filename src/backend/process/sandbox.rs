//! A service's `sandbox:` applied in the kernel by the process backend, between fork and exec
//! (for the main process and for its helper commands): the mount plan of `sandbox::mounts`
//! in a private mount namespace, capabilities the protections remove from the bounding set,
//! `PR_SET_NO_NEW_PRIVS`, and the seccomp filters of `sandbox::seccomp`.
//!
//! `ChildSandbox::prepare` resolves and checks everything before the fork (paths exist, the
//! supervisor may create a mount namespace, the filters compile) and lays out every string and
//! buffer; the `apply_*` methods make only async-signal-safe system calls on that data and
//! never allocate.
//!
//! The mount namespace, step by step: every path to keep writable (`read_write_paths`, the
//! API file systems under `protect_system: strict`) is cloned first with `open_tree`, while
//! the tree is still as the host has it; an empty tmpfs is mounted for a moment to make the
//! 000-mode directory and file that cover inaccessible paths, and those are cloned too. Then,
//! parents before children: read-only paths are bound onto themselves and made read-only with
//! all their submounts (`mount_setattr`), writable clones are moved back over their paths,
//! tmpfs go over `/tmp`, `/var/tmp` and the homes, a minimal `/dev` is built, and the
//! inaccessible nodes are moved over their paths. Finally the child enters its working
//! directory again, so that it is looked up in the new tree.

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI32, Ordering};

use crate::backend::BackendError;
use crate::sandbox::mounts::{self, Mode, MountOp};
use crate::sandbox::seccomp;
use crate::sandbox::Sandbox;
use crate::spec::UnitSpec;

/// Which capabilities the protections take away (systemd does the same).
const CAP_SYS_MODULE: u32 = 16;
const CAP_SYS_RAWIO: u32 = 17;
const CAP_MKNOD: u32 = 27;
const CAP_SYS_ADMIN: u32 = 21;

/// A failed step of the sandbox in the child.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failed {
    Mounts,
    /// Entering the working directory again, in the new mount tree.
    Chdir,
    Bounding,
    NoNewPrivs,
    Seccomp,
}

/// One entry of the plan, ready for the child.
struct Op {
    path: CString,
    mode: Mode,
    optional: bool,
    /// For an inaccessible path: it is a directory (else a file node covers it).
    is_dir: bool,
}

/// The basic device nodes of a private `/dev`: name, mode, major, minor.
const DEVICES: &[(&str, u32, u32, u32)] = &[
    ("/dev/null", 0o666, 1, 3),
    ("/dev/zero", 0o666, 1, 5),
    ("/dev/full", 0o666, 1, 7),
    ("/dev/random", 0o666, 1, 8),
    ("/dev/urandom", 0o666, 1, 9),
    ("/dev/tty", 0o666, 5, 0),
];
const DEV_LINKS: &[(&str, &str)] = &[
    ("/proc/self/fd", "/dev/fd"),
    ("/proc/self/fd/0", "/dev/stdin"),
    ("/proc/self/fd/1", "/dev/stdout"),
    ("/proc/self/fd/2", "/dev/stderr"),
    ("pts/ptmx", "/dev/ptmx"),
];
/// Bound from the host into a private `/dev` when present.
const DEV_BINDS: &[&str] = &["/dev/pts", "/dev/shm"];

/// The strings of a private `/dev`.
struct Dev {
    nodes: Vec<(CString, u32, libc::dev_t)>,
    links: Vec<(CString, CString)>,
    binds: Vec<CString>,
    tmpfs: CString,
    options: CString,
}

/// Everything the child needs to apply a sandbox.
pub struct ChildSandbox {
    ops: Vec<Op>,
    /// Descriptors of the clones made in the first pass, one per op (-1: none).
    slots: Vec<AtomicI32>,
    /// Clones of `DEV_BINDS`.
    dev_slots: Vec<AtomicI32>,
    dev: Option<Dev>,
    /// The empty directory and file that cover inaccessible paths.
    nodes: Option<(CString, CString)>,
    tmpfs: CString,
    tmp_options: CString,
    home_options: CString,
    /// The working directory to enter again after the mounts.
    cwd: Option<CString>,
    /// Capabilities to drop from the bounding set.
    drop_caps: Vec<u32>,
    /// `PR_SET_NO_NEW_PRIVS` asked for.
    no_new_privs: bool,
    filters: std::sync::Arc<Vec<seccompiler::BpfProgram>>,
}

/// The unit errors are about.
struct Unit<'a> {
    name: &'a str,
}

fn err(spec: &Unit<'_>, message: String) -> BackendError {
    BackendError::Start {
        unit: spec.name.to_string(),
        message,
    }
}

fn cstr(spec: &Unit<'_>, p: &Path) -> Result<CString, BackendError> {
    CString::new(p.as_os_str().as_bytes())
        .map_err(|_| err(spec, format!("{}: contains a NUL byte", p.display())))
}

fn cstring(s: &str) -> CString {
    // Only called with the constants of this module, which hold no NUL byte.
    CString::new(s).unwrap_or_default()
}

/// Where the nodes that cover inaccessible paths live (like systemd's
/// `/run/systemd/inaccessible`; not under `/run/systemg`, whose modes `--sys` owns): made
/// once by the (root) supervisor, never written again.
const NODES_DIR: &str = "/run/sysg-inaccessible";

/// The directory and the file of mode 000 under `NODES_DIR`, made when missing. Anything
/// there that is not root's, or not of the right type, is refused rather than used.
fn inaccessible_nodes() -> io::Result<(PathBuf, PathBuf)> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
    let base = Path::new(NODES_DIR);
    let (dir, file) = (base.join("dir"), base.join("reg"));
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true).mode(0o755);
    b.create(base)?;
    b.recursive(false).mode(0o000);
    match b.create(&dir) {
        Err(e) if e.kind() != io::ErrorKind::AlreadyExists => return Err(e),
        _ => {}
    }
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o000)
        .open(&file)
    {
        Err(e) if e.kind() != io::ErrorKind::AlreadyExists => return Err(e),
        _ => {}
    }
    for (p, want_dir) in [(base, true), (dir.as_path(), true), (file.as_path(), false)] {
        let m = std::fs::symlink_metadata(p)?;
        let right_type = if want_dir { m.is_dir() } else { m.is_file() };
        if m.uid() != 0 || !right_type || m.mode() & 0o022 != 0 {
            return Err(io::Error::other(format!(
                "{} is not root's {} (refusing to use it)",
                p.display(),
                if want_dir { "directory" } else { "file" }
            )));
        }
        if p != base && m.permissions().mode() & 0o7777 != 0 {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o000))?;
        }
    }
    Ok((dir, file))
}

/// Whether this process may create a mount namespace for a child: root, or
/// `CAP_SYS_ADMIN` in its effective set.
pub fn may_mount() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

impl ChildSandbox {
    /// Lay out the sandbox of `spec` for a child; `None` when it asks for nothing. Errors name
    /// the field.
    pub fn prepare(spec: &UnitSpec) -> Result<Option<ChildSandbox>, BackendError> {
        ChildSandbox::prepare_for(&spec.name, &spec.sandbox, spec.cwd.as_deref())
    }

    /// `prepare` for the sandbox `s` of `unit`, run in `cwd` (else the supervisor's own).
    pub fn prepare_for(
        unit: &str,
        s: &Sandbox,
        cwd: Option<&Path>,
    ) -> Result<Option<ChildSandbox>, BackendError> {
        let spec = &Unit { name: unit };
        if s.is_empty() {
            return Ok(None);
        }
        let plan = mounts::plan(s);
        if let Some(first) = plan.first() {
            if !may_mount() {
                return Err(err(
                    spec,
                    format!(
                        "sandbox.{}: needs a private mount namespace, which only a supervisor running as root can create on the process backend",
                        first.field
                    ),
                ));
            }
        }
        let mut ops = Vec::with_capacity(plan.len());
        for MountOp {
            path,
            mode,
            optional,
            field,
        } in &plan
        {
            let meta = std::fs::metadata(path);
            if let Err(e) = &meta {
                if !optional {
                    return Err(err(
                        spec,
                        format!("sandbox.{field}: {}: {e}", path.display()),
                    ));
                }
            }
            ops.push(Op {
                path: cstr(spec, path)?,
                mode: *mode,
                optional: *optional,
                is_dir: meta.as_ref().map_or(true, |m| m.is_dir()),
            });
        }
        let dev = plan
            .iter()
            .any(|o| o.mode == Mode::PrivateDev)
            .then(|| Dev {
                nodes: DEVICES
                    .iter()
                    .map(|(p, mode, ma, mi)| (cstring(p), *mode, libc::makedev(*ma, *mi)))
                    .collect(),
                links: DEV_LINKS
                    .iter()
                    .map(|(to, at)| (cstring(to), cstring(at)))
                    .collect(),
                binds: DEV_BINDS.iter().map(|p| cstring(p)).collect(),
                tmpfs: cstring("tmpfs"),
                options: cstring("mode=0755,size=4m"),
            });
        let nodes = if plan.iter().any(|o| o.mode == Mode::Inaccessible) {
            let (dir, file) = inaccessible_nodes()
                .map_err(|e| err(spec, format!("sandbox: {}: {e}", NODES_DIR)))?;
            Some((cstr(spec, &dir)?, cstr(spec, &file)?))
        } else {
            None
        };
        let cwd = if plan.is_empty() {
            None
        } else {
            let dir = match cwd {
                Some(d) => d.to_path_buf(),
                None => std::env::current_dir()
                    .map_err(|e| err(spec, format!("sandbox: the current directory: {e}")))?,
            };
            Some(cstr(spec, &dir)?)
        };
        let mut drop_caps = Vec::new();
        if s.protect_kernel_modules {
            drop_caps.push(CAP_SYS_MODULE);
        }
        if s.private_devices {
            drop_caps.extend([CAP_MKNOD, CAP_SYS_RAWIO]);
        }
        // Without CAP_SETPCAP the bounding set cannot shrink; an unprivileged supervisor's
        // services do not hold these capabilities anyway.
        if !may_mount() {
            drop_caps.clear();
        }
        let filters = seccomp::compile_cached(s).map_err(|e| err(spec, e.to_string()))?;
        let slots = (0..ops.len()).map(|_| AtomicI32::new(-1)).collect();
        let dev_slots = DEV_BINDS.iter().map(|_| AtomicI32::new(-1)).collect();
        Ok(Some(ChildSandbox {
            ops,
            slots,
            dev_slots,
            dev,
            nodes,
            tmpfs: cstring("tmpfs"),
            tmp_options: cstring("mode=1777"),
            home_options: cstring("mode=0755"),
            cwd,
            drop_caps,
            no_new_privs: s.no_new_privileges,
            filters,
        }))
    }

    /// True when the child needs a private mount namespace (made by the caller with
    /// `unshare(CLONE_NEWNS)` and a recursive slave `/` before `apply_mounts`).
    pub fn needs_mount_namespace(&self) -> bool {
        !self.ops.is_empty()
    }

    /// The mounts, the bounding set, the working directory again. Runs while the child is
    /// still privileged, in its new mount namespace.
    ///
    /// # Safety
    /// Call only in the child between fork and exec, after `unshare(CLONE_NEWNS)`.
    pub unsafe fn apply_mounts(&self) -> Result<(), (Failed, io::Error)> {
        if !self.ops.is_empty() {
            let old = libc::umask(0);
            let r = self.mount_all();
            self.close_slots();
            libc::umask(old);
            r.map_err(|e| (Failed::Mounts, e))?;
            if let Some(cwd) = &self.cwd {
                check(libc::chdir(cwd.as_ptr())).map_err(|e| (Failed::Chdir, e))?;
            }
        }
        for &cap in &self.drop_caps {
            check(libc::prctl(
                libc::PR_CAPBSET_DROP,
                cap as libc::c_ulong,
                0,
                0,
                0,
            ))
            .map_err(|e| (Failed::Bounding, e))?;
        }
        Ok(())
    }

    unsafe fn close_slots(&self) {
        for s in self.slots.iter().chain(&self.dev_slots) {
            let fd = s.swap(-1, Ordering::Relaxed);
            if fd >= 0 {
                libc::close(fd);
            }
        }
    }

    unsafe fn mount_all(&self) -> io::Result<()> {
        // First pass: clones of what the host has, before anything changes.
        for (op, slot) in self.ops.iter().zip(&self.slots) {
            if op.mode == Mode::ReadWrite {
                if let Some(fd) = clone_tree(&op.path, op.optional)? {
                    slot.store(fd, Ordering::Relaxed);
                }
            }
        }
        if let Some(dev) = &self.dev {
            for (path, slot) in dev.binds.iter().zip(&self.dev_slots) {
                if let Some(fd) = clone_tree(path, true)? {
                    slot.store(fd, Ordering::Relaxed);
                }
            }
        }
        if let Some((node_dir, node_file)) = &self.nodes {
            for (op, slot) in self.ops.iter().zip(&self.slots) {
                if op.mode == Mode::Inaccessible {
                    let node = if op.is_dir { node_dir } else { node_file };
                    if let Some(fd) = clone_tree(node, false)? {
                        slot.store(fd, Ordering::Relaxed);
                    }
                }
            }
        }
        // Second pass, parents before children.
        for (op, slot) in self.ops.iter().zip(&self.slots) {
            let r = match op.mode {
                Mode::ReadOnly => self.read_only(&op.path),
                Mode::ReadWrite | Mode::Inaccessible => {
                    let fd = slot.load(Ordering::Relaxed);
                    if fd < 0 {
                        continue;
                    }
                    if op.mode == Mode::Inaccessible {
                        set_attr(
                            fd,
                            c"".as_ptr(),
                            libc::AT_EMPTY_PATH,
                            libc::MOUNT_ATTR_RDONLY
                                | libc::MOUNT_ATTR_NOSUID
                                | libc::MOUNT_ATTR_NODEV
                                | libc::MOUNT_ATTR_NOEXEC,
                        )?;
                    }
                    move_mount(fd, &op.path)
                }
                Mode::PrivateTmp => check(libc::mount(
                    self.tmpfs.as_ptr(),
                    op.path.as_ptr(),
                    self.tmpfs.as_ptr(),
                    libc::MS_NOSUID | libc::MS_NODEV,
                    self.tmp_options.as_ptr().cast(),
                )),
                Mode::EmptyTmpfs => check(libc::mount(
                    self.tmpfs.as_ptr(),
                    op.path.as_ptr(),
                    self.tmpfs.as_ptr(),
                    libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC | libc::MS_RDONLY,
                    self.home_options.as_ptr().cast(),
                )),
                Mode::PrivateDev => self.private_dev(&op.path),
            };
            match r {
                Err(e) if op.optional && e.raw_os_error() == Some(libc::ENOENT) => {}
                other => other?,
            }
        }
        Ok(())
    }

    /// Bind `path` onto itself (so that it is a mount of its own; `/` already is) and make it
    /// read-only with everything below it.
    unsafe fn read_only(&self, path: &CString) -> io::Result<()> {
        if path.as_bytes() != b"/" {
            check(libc::mount(
                path.as_ptr(),
                path.as_ptr(),
                std::ptr::null(),
                libc::MS_BIND | libc::MS_REC,
                std::ptr::null(),
            ))?;
        }
        set_attr(
            libc::AT_FDCWD,
            path.as_ptr(),
            libc::AT_RECURSIVE,
            libc::MOUNT_ATTR_RDONLY,
        )
    }

    /// A tmpfs over `/dev` with the basic nodes, the usual links, and the host's `/dev/pts`
    /// and `/dev/shm`.
    unsafe fn private_dev(&self, path: &CString) -> io::Result<()> {
        let Some(dev) = &self.dev else {
            return Ok(());
        };
        check(libc::mount(
            dev.tmpfs.as_ptr(),
            path.as_ptr(),
            dev.tmpfs.as_ptr(),
            libc::MS_NOSUID | libc::MS_NOEXEC | libc::MS_STRICTATIME,
            dev.options.as_ptr().cast(),
        ))?;
        for (node, mode, number) in &dev.nodes {
            check(libc::mknod(node.as_ptr(), libc::S_IFCHR | mode, *number))?;
        }
        for (to, at) in &dev.links {
            check(libc::symlink(to.as_ptr(), at.as_ptr()))?;
        }
        for (at, slot) in dev.binds.iter().zip(&self.dev_slots) {
            let fd = slot.load(Ordering::Relaxed);
            if fd >= 0 {
                check(libc::mkdir(at.as_ptr(), 0o755))?;
                move_mount(fd, at)?;
            }
        }
        Ok(())
    }

    /// Last, just before the exec and after the change of identity: no-new-privileges and
    /// the seccomp filters. A filter needs no-new-privileges unless the process keeps
    /// `CAP_SYS_ADMIN` (systemd's rule).
    ///
    /// # Safety
    /// Call only in the child between fork and exec.
    pub unsafe fn apply_filters(&self) -> Result<(), (Failed, io::Error)> {
        if self.no_new_privs || (!self.filters.is_empty() && !has_effective(CAP_SYS_ADMIN)) {
            check(libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))
                .map_err(|e| (Failed::NoNewPrivs, e))?;
        }
        for prog in self.filters.iter() {
            let fprog = SockFprog {
                len: prog.len() as u16,
                filter: prog.as_ptr(),
            };
            check(libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_SET_MODE_FILTER,
                0,
                std::ptr::addr_of!(fprog),
            ) as libc::c_int)
            .map_err(|e| (Failed::Seccomp, e))?;
        }
        Ok(())
    }
}

impl ChildSandbox {
    /// Everything, for a helper command (probe, hook, deployment command) forked by
    /// `std::process::Command` and given its identity here rather than by `Command::uid`
    /// (which would drop root before the mounts): mount namespace, mounts, then `ids` (uid,
    /// gid; no supplementary groups), then the filters.
    ///
    /// # Safety
    /// Call only in a `pre_exec` hook (a forked child before its exec), as the last hook.
    pub unsafe fn apply_for_helper(&self, ids: Option<(u32, u32)>) -> io::Result<()> {
        let as_io = |(_, e): (Failed, io::Error)| e;
        if self.needs_mount_namespace() {
            check(libc::unshare(libc::CLONE_NEWNS))?;
            check(libc::mount(
                std::ptr::null(),
                c"/".as_ptr(),
                std::ptr::null(),
                libc::MS_REC | libc::MS_SLAVE,
                std::ptr::null(),
            ))?;
        }
        self.apply_mounts().map_err(as_io)?;
        if let Some((uid, gid)) = ids {
            // Raw calls, as in `privs`: the child has one thread.
            check(libc::syscall(libc::SYS_setgroups, 0, std::ptr::null::<libc::gid_t>()) as _)?;
            check(libc::syscall(libc::SYS_setresgid, gid, gid, gid) as _)?;
            check(libc::syscall(libc::SYS_setresuid, uid, uid, uid) as _)?;
        }
        self.apply_filters().map_err(as_io)
    }
}

/// `struct sock_fprog` with seccompiler's instruction type.
#[repr(C)]
struct SockFprog {
    len: u16,
    filter: *const seccompiler::sock_filter,
}

unsafe fn has_effective(cap: u32) -> bool {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    let mut header = Header {
        version: 0x2008_0522,
        pid: 0,
    };
    let mut data = [Data {
        effective: 0,
        permitted: 0,
        inheritable: 0,
    }; 2];
    if libc::syscall(
        libc::SYS_capget,
        std::ptr::addr_of_mut!(header),
        data.as_mut_ptr(),
    ) != 0
    {
        return false;
    }
    data[(cap / 32) as usize].effective & (1 << (cap % 32)) != 0
}

/// A detached copy of the mount tree at `path` (with its submounts); `None` when `path` does
/// not exist and may be missing.
unsafe fn clone_tree(path: &CString, optional: bool) -> io::Result<Option<libc::c_int>> {
    let fd = libc::syscall(
        libc::SYS_open_tree,
        libc::AT_FDCWD,
        path.as_ptr(),
        libc::OPEN_TREE_CLONE | libc::OPEN_TREE_CLOEXEC | libc::AT_RECURSIVE as libc::c_uint,
    );
    if fd < 0 {
        let e = io::Error::last_os_error();
        if optional && e.raw_os_error() == Some(libc::ENOENT) {
            return Ok(None);
        }
        return Err(e);
    }
    Ok(Some(fd as libc::c_int))
}

/// Attach the detached tree `fd` at `path`.
unsafe fn move_mount(fd: libc::c_int, path: &CString) -> io::Result<()> {
    check(libc::syscall(
        libc::SYS_move_mount,
        fd,
        c"".as_ptr(),
        libc::AT_FDCWD,
        path.as_ptr(),
        libc::MOVE_MOUNT_F_EMPTY_PATH,
    ) as libc::c_int)
}

unsafe fn set_attr(
    dirfd: libc::c_int,
    path: *const libc::c_char,
    flags: libc::c_int,
    set: u64,
) -> io::Result<()> {
    let attr = libc::mount_attr {
        attr_set: set,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    check(libc::syscall(
        libc::SYS_mount_setattr,
        dirfd,
        path,
        flags as libc::c_uint,
        std::ptr::addr_of!(attr),
        std::mem::size_of::<libc::mount_attr>(),
    ) as libc::c_int)
}

fn check(rc: libc::c_int) -> io::Result<()> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}
