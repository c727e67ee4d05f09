//! Unix socket paths of any length.
//!
//! A socket address holds at most 107 bytes of path (`sun_path` is 108 bytes with its NUL),
//! and a deep `$HOME` or state directory easily exceeds that. A path too long for an address
//! is reached through a descriptor of its directory instead: the directory is opened with
//! `O_PATH` (the name is resolved as any open resolves it) and the socket is bound or
//! connected as `/proc/self/fd/N/<name>`, which the kernel resolves through that descriptor.
//! The descriptor is closed as soon as the call returns. Short paths are used as they are,
//! so `ss -x` and error messages keep showing the real path wherever that is possible.
//!
//! Any process reaches such a socket the same way: `sysg spawn` in a service (which gets the
//! real, possibly long, path in `SYSG_SOCKET`) connects through this module too.

use std::ffi::OsString;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags, CWD};

/// Longest path a `sockaddr_un` holds (its 108 bytes less the terminating NUL).
pub const MAX_ADDR_PATH: usize = 107;

/// `path` in a form short enough for a socket address, and the directory descriptor that keeps
/// that form valid (`None`: the path is used as it is).
pub struct ShortPath {
    path: PathBuf,
    _dir: Option<OwnedFd>,
}

impl ShortPath {
    /// The path to bind, connect or send to (valid while `self` lives).
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// The form of `path` that fits a socket address: itself when it is short enough, else
/// `/proc/self/fd/N/<file name>` through a descriptor of its directory.
pub fn short(path: &Path) -> std::io::Result<ShortPath> {
    if path.as_os_str().len() <= MAX_ADDR_PATH {
        return Ok(ShortPath {
            path: path.to_path_buf(),
            _dir: None,
        });
    }
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(too_long(path));
    };
    let parent = if parent.as_os_str().is_empty() {
        Path::new(".")
    } else {
        parent
    };
    let dir = rustix::fs::openat(
        CWD,
        parent,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| {
        let e = std::io::Error::from(e);
        std::io::Error::new(e.kind(), format!("{}: {e}", parent.display()))
    })?;
    let mut via = OsString::from(format!("/proc/self/fd/{}/", dir.as_raw_fd()));
    via.push(name);
    if via.as_bytes().len() > MAX_ADDR_PATH {
        return Err(too_long(path));
    }
    Ok(ShortPath {
        path: PathBuf::from(via),
        _dir: Some(dir),
    })
}

fn too_long(path: &Path) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::InvalidInput,
        format!(
            "socket name of {} is too long for a socket address",
            path.display()
        ),
    )
}

/// Bind a listening socket at `path`, whatever its length.
pub fn bind(path: &Path) -> std::io::Result<UnixListener> {
    UnixListener::bind(short(path)?.path())
}

/// Connect to the socket at `path`, whatever its length.
pub fn connect(path: &Path) -> std::io::Result<UnixStream> {
    UnixStream::connect(short(path)?.path())
}

/// Send one datagram on `sock` to the socket at `path`, whatever its length.
pub fn send_to(
    sock: &std::os::unix::net::UnixDatagram,
    buf: &[u8],
    path: &Path,
) -> std::io::Result<usize> {
    sock.send_to(buf, short(path)?.path())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    /// A directory whose path alone is longer than any socket address.
    fn deep_dir() -> (tempfile::TempDir, PathBuf) {
        let tmp = tempfile::tempdir().unwrap();
        let mut dir = tmp.path().to_path_buf();
        for _ in 0..6 {
            dir.push("d".repeat(40));
        }
        std::fs::create_dir_all(&dir).unwrap();
        (tmp, dir)
    }

    #[test]
    fn short_paths_are_used_as_they_are() {
        let p = Path::new("/run/user/1000/x.sock");
        assert_eq!(short(p).unwrap().path(), p);
    }

    #[test]
    fn a_long_path_is_bound_and_connected_through_its_directory() {
        let (_tmp, dir) = deep_dir();
        let path = dir.join("control.sock");
        assert!(path.as_os_str().len() > 200);
        // The plain calls fail: that is what this module is for.
        assert!(UnixListener::bind(&path).is_err());
        let listener = bind(&path).unwrap();
        // The socket is at its real place.
        use std::os::unix::fs::FileTypeExt;
        assert!(std::fs::symlink_metadata(&path)
            .unwrap()
            .file_type()
            .is_socket());
        let t = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            s.write_all(b"hi").unwrap();
        });
        let mut c = connect(&path).unwrap();
        let mut got = String::new();
        c.read_to_string(&mut got).unwrap();
        t.join().unwrap();
        assert_eq!(got, "hi");
    }

    #[test]
    fn datagrams_reach_a_long_path() {
        let (_tmp, dir) = deep_dir();
        let path = dir.join("notify.sock");
        let recv = {
            let s = short(&path).unwrap();
            std::os::unix::net::UnixDatagram::bind(s.path()).unwrap()
        };
        let send = std::os::unix::net::UnixDatagram::unbound().unwrap();
        send_to(&send, b"READY=1", &path).unwrap();
        let mut buf = [0u8; 16];
        let n = recv.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1");
    }

    #[test]
    fn a_missing_directory_is_not_found() {
        let (_tmp, dir) = deep_dir();
        let e = connect(&dir.join("nope").join("control.sock")).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::NotFound);
    }
}
