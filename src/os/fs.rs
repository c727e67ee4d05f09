//! Files and directories without trusting names someone else can change.
//!
//! A directory is opened once (`Dir`) and everything in it is reached relative to that
//! descriptor: files are opened with `O_NOFOLLOW` (a symbolic link is refused, never followed),
//! must be regular files, and must have a single link when written; owners and modes are set
//! on descriptors (`fchown`, `fchmod`), never by name after a check. Files are replaced through
//! a temporary file with a unique name made with `O_CREAT|O_EXCL|O_NOFOLLOW`, so nothing
//! planted beside the target is ever written through.
//!
//! `open_trusted_dir` resolves a directory path component by component (symbolic links by
//! hand) and checks every directory it passes through: a directory another user may change
//! could be used to swap a name under a privileged process.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, Stat, CWD};
use thiserror::Error;

/// Symbolic links followed by `open_trusted_dir` before it gives up (the kernel's own limit).
const MAX_LINKS: usize = 40;

/// Refusals of `open_trusted_dir`, and I/O failures naming their path.
#[derive(Debug, Error)]
pub enum FsError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A directory (or a symbolic link on the way) belongs to someone it must not.
    #[error("{path} belongs to {owner}, not to {expected}: refusing to use it, since its owner could redirect what is written there (remove it, or give it to {expected})")]
    Owner {
        path: PathBuf,
        owner: String,
        expected: String,
    },
    /// A directory other users may write to (and not sticky).
    #[error("{path} is writable by other users (mode {mode:04o}): refusing to use it, since they could swap names in it (chmod go-w {path})")]
    Writable { path: PathBuf, mode: u32 },
    #[error("{path}: too many levels of symbolic links")]
    Loop { path: PathBuf },
}

impl FsError {
    fn io(path: &Path, source: impl Into<io::Error>) -> FsError {
        FsError::Io {
            path: path.to_path_buf(),
            source: source.into(),
        }
    }
}

/// How a file is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Read,
    /// Read and write (for locks).
    ReadWrite,
    /// Write only, at the end.
    Append,
    /// Read, and write at the end.
    ReadAppend,
    /// Write only.
    Write,
}

impl Access {
    fn flags(self) -> OFlags {
        match self {
            Access::Read => OFlags::RDONLY,
            Access::ReadWrite => OFlags::RDWR,
            Access::Append => OFlags::WRONLY | OFlags::APPEND,
            Access::ReadAppend => OFlags::RDWR | OFlags::APPEND,
            Access::Write => OFlags::WRONLY,
        }
    }

    fn writes(self) -> bool {
        self != Access::Read
    }
}

/// Whether a file is created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Create {
    /// It must exist.
    No,
    /// Created with this mode (less the umask) when missing.
    IfMissing(u32),
    /// Created with this mode (less the umask); an existing name is an error.
    New(u32),
}

/// A directory held open: names in it are resolved against the descriptor, so swapping the
/// directory's own path afterwards changes nothing.
#[derive(Debug)]
pub struct Dir {
    fd: OwnedFd,
    path: PathBuf,
}

const DIR_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::CLOEXEC)
    .union(OFlags::NOCTTY);

impl Dir {
    /// Open the directory at `path`; its last component must not be a symbolic link.
    pub fn open(path: &Path) -> io::Result<Dir> {
        let fd = rustix::fs::openat(CWD, path, DIR_FLAGS | OFlags::NOFOLLOW, Mode::empty())
            .map_err(refused_link)?;
        Ok(Dir {
            fd,
            path: path.to_path_buf(),
        })
    }

    /// Open the directory at `path`, following symbolic links (a directory the user named in
    /// the config, such as the one of a `state_path`).
    pub fn open_following(path: &Path) -> io::Result<Dir> {
        let path = if path.as_os_str().is_empty() {
            Path::new(".")
        } else {
            path
        };
        let fd = rustix::fs::openat(CWD, path, DIR_FLAGS, Mode::empty())?;
        Ok(Dir {
            fd,
            path: path.to_path_buf(),
        })
    }

    /// The path this directory was opened by (for messages).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `path()/name`, for messages.
    pub fn join(&self, name: impl AsRef<OsStr>) -> PathBuf {
        self.path.join(name.as_ref())
    }

    /// Its owner, mode and link count.
    pub fn stat(&self) -> io::Result<Stat> {
        Ok(rustix::fs::fstat(&self.fd)?)
    }

    /// Open the subdirectory `name`, made with `mode` (less the umask) when missing and
    /// `create` is set; a symbolic link is refused.
    pub fn subdir(&self, name: impl AsRef<OsStr>, create: Option<u32>) -> io::Result<Dir> {
        let name = one_component(name.as_ref())?;
        if let Some(mode) = create {
            match rustix::fs::mkdirat(&self.fd, name, Mode::from_raw_mode(mode)) {
                Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                Err(e) => return Err(e.into()),
            }
        }
        let fd = rustix::fs::openat(&self.fd, name, DIR_FLAGS | OFlags::NOFOLLOW, Mode::empty())
            .map_err(refused_link)?;
        Ok(Dir {
            fd,
            path: self.path.join(name),
        })
    }

    /// Set the directory's owner (each of `uid`, `gid` when given) and mode, on its
    /// descriptor.
    pub fn set_owner_mode(&self, uid: Option<u32>, gid: Option<u32>, mode: u32) -> io::Result<()> {
        if uid.is_some() || gid.is_some() {
            rustix::fs::fchown(
                &self.fd,
                uid.map(rustix::fs::Uid::from_raw),
                gid.map(rustix::fs::Gid::from_raw),
            )?;
        }
        rustix::fs::fchmod(&self.fd, Mode::from_raw_mode(mode))?;
        Ok(())
    }

    /// Open the regular file `name`. A symbolic link, anything but a regular file, and (to
    /// write) a file with more than one link are refused with `InvalidInput`; opening never
    /// blocks (a FIFO planted at the name is refused, not waited on).
    pub fn open_file(
        &self,
        name: impl AsRef<OsStr>,
        access: Access,
        create: Create,
    ) -> io::Result<File> {
        let name = one_component(name.as_ref())?;
        let mut flags =
            access.flags() | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NOCTTY | OFlags::NONBLOCK;
        let mode = match create {
            Create::No => 0,
            Create::IfMissing(m) => {
                flags |= OFlags::CREATE;
                m
            }
            Create::New(m) => {
                flags |= OFlags::CREATE | OFlags::EXCL;
                m
            }
        };
        let fd = rustix::fs::openat(&self.fd, name, flags, Mode::from_raw_mode(mode))
            .map_err(refused_link)?;
        check_regular(&fd, access.writes())?;
        rustix::fs::fcntl_setfl(&fd, rustix::fs::fcntl_getfl(&fd)? - OFlags::NONBLOCK)?;
        Ok(File::from(fd))
    }

    /// The contents of the regular file `name`, refusing more than `max` bytes.
    pub fn read_capped(&self, name: impl AsRef<OsStr>, max: u64) -> io::Result<Vec<u8>> {
        let file = self.open_file(name, Access::Read, Create::No)?;
        let mut buf = Vec::new();
        file.take(max.saturating_add(1)).read_to_end(&mut buf)?;
        if buf.len() as u64 > max {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("larger than {max} bytes"),
            ));
        }
        Ok(buf)
    }

    /// Replace `name` with `data` atomically: a new temporary file with a unique name
    /// (`O_CREAT|O_EXCL|O_NOFOLLOW`, `mode` less the umask), fsync, rename over `name`
    /// (replacing whatever the name was, a symbolic link included, never writing through it),
    /// fsync of the directory. A crash leaves the old file or the new one.
    pub fn write_atomic(&self, name: impl AsRef<OsStr>, data: &[u8], mode: u32) -> io::Result<()> {
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let name = one_component(name.as_ref())?;
        let mut tmp = OsString::from(".");
        tmp.push(name);
        tmp.push(format!(
            ".{}-{}.tmp",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        let mut file = self.open_file(&tmp, Access::Write, Create::New(mode))?;
        let written = file
            .write_all(data)
            .and_then(|()| file.sync_all())
            .and_then(|()| Ok(rustix::fs::renameat(&self.fd, &tmp, &self.fd, name)?));
        if let Err(e) = written {
            let _ = rustix::fs::unlinkat(&self.fd, &tmp, AtFlags::empty());
            return Err(e);
        }
        let _ = rustix::fs::fsync(&self.fd);
        Ok(())
    }

    /// Remove the entry `name` (not a directory); a missing one is fine.
    pub fn remove(&self, name: impl AsRef<OsStr>) -> io::Result<()> {
        let name = one_component(name.as_ref())?;
        match rustix::fs::unlinkat(&self.fd, name, AtFlags::empty()) {
            Ok(()) | Err(rustix::io::Errno::NOENT) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Names of the entries (without `.` and `..`).
    pub fn names(&self) -> io::Result<Vec<OsString>> {
        let mut out = Vec::new();
        for entry in rustix::fs::Dir::read_from(&self.fd)? {
            let entry = entry?;
            let name = entry.file_name().to_bytes();
            if name != b"." && name != b".." {
                out.push(OsStr::from_bytes(name).to_os_string());
            }
        }
        Ok(out)
    }

    /// Give every regular file with a single link directly in this directory to `uid`. Each
    /// entry is opened with `O_PATH|O_NOFOLLOW` and checked and changed through that
    /// descriptor, so a name swapped for a symbolic link (or a hard link to someone else's
    /// file) is skipped, never followed.
    pub fn give_files_to(&self, uid: u32) -> io::Result<()> {
        for name in self.names()? {
            let fd = match rustix::fs::openat(
                &self.fd,
                &name,
                OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            ) {
                Ok(fd) => fd,
                Err(rustix::io::Errno::NOENT) => continue,
                Err(e) => return Err(e.into()),
            };
            let st = rustix::fs::fstat(&fd)?;
            let regular = FileType::from_raw_mode(st.st_mode) == FileType::RegularFile;
            if regular && st.st_nlink == 1 && st.st_uid != uid {
                rustix::fs::chownat(
                    &fd,
                    "",
                    Some(rustix::fs::Uid::from_raw(uid)),
                    None,
                    AtFlags::EMPTY_PATH,
                )?;
            }
        }
        Ok(())
    }
}

/// Open the file at `path` like `Dir::open_file`: its directory is followed (it was checked,
/// or chosen by the user), its last component never.
pub fn open_in(path: &Path, access: Access, create: Create) -> io::Result<File> {
    let (dir, name) = split(path)?;
    Dir::open_following(dir)?.open_file(name, access, create)
}

/// `Dir::write_atomic` for the file at `path` (its directory followed, see `open_in`).
pub fn write_atomic(path: &Path, data: &[u8], mode: u32) -> io::Result<()> {
    let (dir, name) = split(path)?;
    Dir::open_following(dir)?.write_atomic(name, data, mode)
}

/// `Dir::read_capped` for the file at `path` (its directory followed, see `open_in`).
pub fn read_capped(path: &Path, max: u64) -> io::Result<Vec<u8>> {
    let (dir, name) = split(path)?;
    Dir::open_following(dir)?.read_capped(name, max)
}

/// Whether `e` is one of the refusals of `Dir::open_file` (a symbolic link, not a regular
/// file, several links).
pub fn is_refusal(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::InvalidInput
}

/// Open the directory `path` (made, mode 0700, where missing when `create`) for `uid`,
/// resolving symbolic links by hand and checking everything passed through: each directory
/// on the way must belong to root or `uid` and must not be writable by other users unless it
/// is sticky (`/tmp`); each symbolic link must belong to root or `uid`; the directory itself
/// must belong to `uid` and be writable by nobody else. With `tighten`, a directory itself
/// that is `uid`'s but writable by others (a fresh tmpfs is `1777`) loses that write
/// permission instead of being refused: for directories whose modes the caller manages.
pub fn open_trusted_dir(
    path: &Path,
    uid: u32,
    create: bool,
    tighten: bool,
) -> Result<Dir, FsError> {
    let mut todo: Vec<OsString> = Vec::new();
    push_components(&mut todo, path);
    let root = Dir::open(Path::new("/")).map_err(|e| FsError::io(Path::new("/"), e))?;
    check_passage(&root, uid)?;
    let mut stack: Vec<Dir> = vec![root];
    let mut links = 0;
    while let Some(name) = todo.pop() {
        if name == "." {
            continue;
        }
        if name == ".." {
            if stack.len() > 1 {
                stack.pop();
            }
            continue;
        }
        let Some(cur) = stack.last() else {
            break;
        };
        let here = cur.join(&name);
        let st = match rustix::fs::statat(&cur.fd, &name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => Some(st),
            Err(rustix::io::Errno::NOENT) if create => None,
            Err(e) => return Err(FsError::io(&here, e)),
        };
        if let Some(st) = st.filter(|st| FileType::from_raw_mode(st.st_mode).is_symlink()) {
            if st.st_uid != 0 && st.st_uid != uid {
                return Err(FsError::Owner {
                    path: here,
                    owner: describe(st.st_uid),
                    expected: trusted_owners(uid),
                });
            }
            links += 1;
            if links > MAX_LINKS {
                return Err(FsError::Loop { path: here });
            }
            let target = rustix::fs::readlinkat(&cur.fd, &name, Vec::new())
                .map_err(|e| FsError::io(&here, e))?;
            let target = PathBuf::from(OsStr::from_bytes(target.as_bytes()));
            if target.is_absolute() {
                stack.truncate(1);
            }
            push_components(&mut todo, &target);
            continue;
        }
        let dir = cur
            .subdir(&name, create.then_some(0o700))
            .map_err(|e| FsError::io(&here, e))?;
        if todo.is_empty() {
            if tighten {
                take_others_write(&dir, uid)?;
            }
            check_private(&dir, uid)?;
        } else {
            check_passage(&dir, uid)?;
        }
        stack.push(dir);
    }
    stack
        .pop()
        .ok_or_else(|| FsError::io(path, io::Error::from(io::ErrorKind::NotFound)))
}

/// A directory of `uid`'s own: it belongs to `uid` and nobody else may write to it.
pub fn check_private(dir: &Dir, uid: u32) -> Result<(), FsError> {
    let st = dir.stat().map_err(|e| FsError::io(dir.path(), e))?;
    if st.st_uid != uid {
        return Err(FsError::Owner {
            path: dir.path().to_path_buf(),
            owner: describe(st.st_uid),
            expected: describe(uid),
        });
    }
    if st.st_mode & 0o022 != 0 {
        return Err(FsError::Writable {
            path: dir.path().to_path_buf(),
            mode: st.st_mode & 0o7777,
        });
    }
    Ok(())
}

/// Remove group and other write permission from `dir` when it is `uid`'s.
fn take_others_write(dir: &Dir, uid: u32) -> Result<(), FsError> {
    let st = dir.stat().map_err(|e| FsError::io(dir.path(), e))?;
    if st.st_uid == uid && st.st_mode & 0o022 != 0 {
        dir.set_owner_mode(None, None, st.st_mode & 0o7777 & !0o022)
            .map_err(|e| FsError::io(dir.path(), e))?;
    }
    Ok(())
}

/// A directory `uid` may pass through: it belongs to root or `uid`, and others may write to
/// it only when it is sticky (they may then not rename or remove what is not theirs). Group
/// write is fine when the group is our own.
fn check_passage(dir: &Dir, uid: u32) -> Result<(), FsError> {
    let st = dir.stat().map_err(|e| FsError::io(dir.path(), e))?;
    if st.st_uid != 0 && st.st_uid != uid {
        return Err(FsError::Owner {
            path: dir.path().to_path_buf(),
            owner: describe(st.st_uid),
            expected: trusted_owners(uid),
        });
    }
    let sticky = st.st_mode & 0o1000 != 0;
    let group_ok = st.st_gid == rustix::process::getegid().as_raw();
    let others_write = st.st_mode & 0o002 != 0;
    let group_write = st.st_mode & 0o020 != 0 && !group_ok;
    if !sticky && (others_write || group_write) {
        return Err(FsError::Writable {
            path: dir.path().to_path_buf(),
            mode: st.st_mode & 0o7777,
        });
    }
    Ok(())
}

/// `uid 1000 (alice)`.
pub fn describe(uid: u32) -> String {
    match nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)) {
        Ok(Some(u)) => format!("uid {uid} ({})", u.name),
        _ => format!("uid {uid}"),
    }
}

fn trusted_owners(uid: u32) -> String {
    if uid == 0 {
        describe(0)
    } else {
        format!("{} or root", describe(uid))
    }
}

/// Push the components of `path` on `todo` so that the first is popped first.
fn push_components(todo: &mut Vec<OsString>, path: &Path) {
    let names: Vec<OsString> = path
        .components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            Component::ParentDir => Some(OsString::from("..")),
            Component::CurDir | Component::RootDir | Component::Prefix(_) => None,
        })
        .collect();
    todo.extend(names.into_iter().rev());
}

fn split(path: &Path) -> io::Result<(&Path, &OsStr)> {
    let name = path.file_name().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} names no file", path.display()),
        )
    })?;
    Ok((path.parent().unwrap_or(Path::new(".")), name))
}

fn one_component(name: &OsStr) -> io::Result<&OsStr> {
    let b = name.as_bytes();
    if b.is_empty() || b == b"." || b == b".." || b.contains(&b'/') {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("`{}` is not a file name", name.to_string_lossy()),
        ));
    }
    Ok(name)
}

fn check_regular(fd: &impl AsFd, writing: bool) -> io::Result<()> {
    let st = rustix::fs::fstat(fd)?;
    if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file; refusing to use it",
        ));
    }
    if writing && st.st_nlink > 1 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "has {} hard links, so it may be another file's name too; refusing to write it",
                st.st_nlink
            ),
        ));
    }
    Ok(())
}

/// `ELOOP` from `O_NOFOLLOW` is a refusal, said as such; so is `ENXIO`, which a non-blocking
/// open for writing gets from a FIFO without a reader or a socket.
fn refused_link(e: rustix::io::Errno) -> io::Error {
    match e {
        rustix::io::Errno::LOOP => io::Error::new(
            io::ErrorKind::InvalidInput,
            "a symbolic link, which is not followed; refusing to use it",
        ),
        rustix::io::Errno::NXIO => io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file; refusing to use it",
        ),
        e => e.into(),
    }
}

#[cfg(test)]
#[path = "fs_tests.rs"]
mod tests;
