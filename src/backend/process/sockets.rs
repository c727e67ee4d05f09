//! Socket activation on the process backend: the supervisor binds each service's `sockets:`
//! once, keeps them for the service's life (every restart and every instance of a rolling or
//! blue-green deployment gets a duplicate of the same listening socket, so connections wait
//! in its backlog instead of being refused) and hands them over as in sd_listen_fds(3): fds
//! 3, 4, ... without close-on-exec, `LISTEN_FDS`, `LISTEN_FDNAMES` and `LISTEN_PID` written
//! by the child itself between fork and exec.
//!
//! Across a restart of the supervisor, a re-adopted instance still holds the sockets: they are
//! taken back from it with pidfd_getfd(2) (`grab_from`), so the next instance gets the same
//! sockets again. When that is impossible (the instance is gone), the next start binds anew.

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};

use nix::fcntl::{fcntl, FcntlArg};
use nix::sys::socket::{self, sockopt, SockaddrLike, SockaddrStorage};

use crate::config::sockets::{ListenAddr, ListenSocket};

/// Highest fd of an adopted instance looked at for its sockets (3 + this many).
const MAX_ADOPTED_FDS: RawFd = 64;
/// The listen backlog (the kernel caps it at `net.core.somaxconn`).
const BACKLOG: i32 = 4096;

/// What to do with the sockets held for a service when it starts with `wanted`.
#[derive(Debug, PartialEq, Eq)]
pub enum Decision {
    /// Hand over the held sockets (same addresses in the same order; names may differ).
    Keep,
    /// Close what is held and bind `wanted` (the first start, or a changed `sockets:`).
    Bind,
}

/// The rule: sockets belong to the service and survive its instances; only a change of the
/// addresses (a config reload) replaces them.
pub fn decide(held: Option<&[ListenAddr]>, wanted: &[ListenSocket]) -> Decision {
    match held {
        Some(h) if h.len() == wanted.len() && h.iter().zip(wanted).all(|(a, w)| *a == w.listen) => {
            Decision::Keep
        }
        _ => Decision::Bind,
    }
}

struct Bound {
    addrs: Vec<ListenAddr>,
    fds: Vec<OwnedFd>,
}

/// The listening sockets the supervisor holds, by service.
#[derive(Default)]
pub struct Held {
    by_service: HashMap<String, Bound>,
    /// Listening sockets taken back from re-adopted instances, by service, with their local
    /// addresses: used by the next start when its `sockets:` names them.
    adopted: HashMap<String, Vec<(ListenAddr, OwnedFd)>>,
}

impl Held {
    /// The service's sockets for a start with `wanted`, bound now if needed, as descriptors
    /// ready for the child (see `ListenFds`). `Ok(None)` when the service has no sockets.
    /// `running(s)` says whether service `s` has a process: the sockets of a service that has
    /// none (it left the config) give way when another service wants their address.
    pub fn for_start(
        &mut self,
        service: &str,
        wanted: &[ListenSocket],
        running: &dyn Fn(&str) -> bool,
    ) -> Result<Option<ListenFds>, String> {
        if wanted.is_empty() {
            self.by_service.remove(service);
            return Ok(None);
        }
        let held = self.by_service.get(service).map(|b| b.addrs.as_slice());
        if decide(held, wanted) == Decision::Bind {
            // The old sockets go first: a changed list may reuse one of their addresses.
            self.by_service.remove(service);
            let idle: Vec<String> = self
                .by_service
                .iter()
                .filter(|(other, b)| {
                    !running(other)
                        && b.addrs
                            .iter()
                            .any(|a| wanted.iter().any(|w| w.listen.overlaps(a)))
                })
                .map(|(other, _)| other.clone())
                .collect();
            for other in idle {
                tracing::info!("{other}: its sockets go to {service}");
                self.by_service.remove(&other);
            }
            let mut adopted = self.adopted.remove(service).unwrap_or_default();
            let mut fds = Vec::with_capacity(wanted.len());
            for w in wanted {
                let fd = match adopted.iter().position(|(a, _)| *a == w.listen) {
                    Some(i) => adopted.swap_remove(i).1,
                    None => bind(&w.listen)
                        .map_err(|e| format!("sockets: binding {}: {e}", w.listen))?,
                };
                fds.push(fd);
            }
            self.by_service.insert(
                service.to_string(),
                Bound {
                    addrs: wanted.iter().map(|w| w.listen.clone()).collect(),
                    fds,
                },
            );
        }
        let bound = self
            .by_service
            .get(service)
            .ok_or_else(|| "sockets: lost the bound sockets".to_string())?;
        ListenFds::new(&bound.fds, wanted)
            .map(Some)
            .map_err(|e| format!("sockets: {e}"))
    }

    /// Take back the listening sockets an adopted instance of `service` (pid `pid`) holds,
    /// for the service's next start. Needs the right to ptrace the process (the same user, or
    /// root); failures only mean the next start binds anew.
    pub fn grab_from(&mut self, service: &str, pid: u32) {
        if self.by_service.contains_key(service) || self.adopted.contains_key(service) {
            return;
        }
        let Ok(pidfd) = rustix::process::pidfd_open(
            rustix::process::Pid::from_raw(pid as i32).unwrap_or(rustix::process::Pid::INIT),
            rustix::process::PidfdFlags::empty(),
        ) else {
            return;
        };
        let mut found = Vec::new();
        for target in 3..3 + MAX_ADOPTED_FDS {
            let Ok(fd) = rustix::process::pidfd_getfd(
                &pidfd,
                target,
                rustix::process::PidfdGetfdFlags::empty(),
            ) else {
                continue;
            };
            if let Some(addr) = listening_addr(&fd) {
                found.push((addr, fd));
            }
        }
        if !found.is_empty() {
            tracing::debug!(
                "{service}: took back {} listening socket(s) from pid {pid}",
                found.len()
            );
            self.adopted.insert(service.to_string(), found);
        }
    }

    /// Close every socket (the project stops).
    pub fn release_all(&mut self) {
        for (_, b) in self.by_service.drain() {
            remove_unix_files(&b.addrs);
        }
        self.adopted.clear();
    }
}

fn remove_unix_files(addrs: &[ListenAddr]) {
    for a in addrs {
        if let ListenAddr::Unix(p) = a {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// The local address of `fd` when it is a listening socket (or a bound UDP socket).
fn listening_addr(fd: &OwnedFd) -> Option<ListenAddr> {
    let ty = socket::getsockopt(fd, sockopt::SockType).ok()?;
    let local: SockaddrStorage = socket::getsockname(fd.as_raw_fd()).ok()?;
    let family = local.family()?;
    let copy = fd.try_clone().ok()?;
    match (ty, family) {
        (socket::SockType::Stream, _) if !socket::getsockopt(fd, sockopt::AcceptConn).ok()? => None,
        (socket::SockType::Stream, socket::AddressFamily::Unix) => {
            let l = std::os::unix::net::UnixListener::from(copy);
            let a = l.local_addr().ok()?;
            a.as_pathname().map(|p| ListenAddr::Unix(p.to_path_buf()))
        }
        (socket::SockType::Stream, socket::AddressFamily::Inet | socket::AddressFamily::Inet6) => {
            std::net::TcpListener::from(copy)
                .local_addr()
                .ok()
                .map(ListenAddr::Tcp)
        }
        (
            socket::SockType::Datagram,
            socket::AddressFamily::Inet | socket::AddressFamily::Inet6,
        ) => std::net::UdpSocket::from(copy)
            .local_addr()
            .ok()
            .filter(|a| a.port() != 0)
            .map(ListenAddr::Udp),
        _ => None,
    }
}

/// Bind and listen on `addr` as the supervisor (close-on-exec: only the children that are
/// given it get it).
pub fn bind(addr: &ListenAddr) -> io::Result<OwnedFd> {
    let fd: OwnedFd = match addr {
        ListenAddr::Tcp(a) => std::net::TcpListener::bind(a)?.into(),
        ListenAddr::Udp(a) => std::net::UdpSocket::bind(a)?.into(),
        ListenAddr::Unix(p) => {
            // A socket file nothing answers on is stale (a supervisor that was killed).
            if let Ok(m) = std::fs::symlink_metadata(p) {
                if std::os::unix::fs::FileTypeExt::is_socket(&m.file_type())
                    && std::os::unix::net::UnixStream::connect(p).is_err()
                {
                    let _ = std::fs::remove_file(p);
                }
            }
            std::os::unix::net::UnixListener::bind(p)?.into()
        }
    };
    if !matches!(addr, ListenAddr::Udp(_)) {
        // std listens with a small backlog; connections that arrive while no instance runs
        // wait here, so give them room (listen again only resizes the queue).
        // SAFETY: listen on a socket we own.
        if unsafe { libc::listen(fd.as_raw_fd(), BACKLOG) } < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(fd)
}

/// One start's sockets, prepared before the fork: duplicates numbered above the range the
/// child fills (3..3+n), and the environment entries.
pub struct ListenFds {
    fds: Vec<OwnedFd>,
    /// The raw numbers of `fds`, for the child (which may not allocate).
    raw: Vec<RawFd>,
    /// `LISTEN_FDS=n` and `LISTEN_FDNAMES=a:b`.
    pub env: Vec<(String, String)>,
}

/// Variables of the protocol: the supervisor's own (if it was socket-activated itself) never
/// reach a service. `LISTEN_PID` is written by the child (see `pid_env`).
pub const PROTOCOL_VARS: [&str; 3] = ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"];

impl ListenFds {
    fn new(held: &[OwnedFd], wanted: &[ListenSocket]) -> io::Result<ListenFds> {
        let n = held.len();
        let above = 3 + n as RawFd;
        let mut fds = Vec::with_capacity(n);
        for fd in held {
            let dup = fcntl(fd.as_fd(), FcntlArg::F_DUPFD_CLOEXEC(above))?;
            // SAFETY: F_DUPFD_CLOEXEC returned a new descriptor that nothing else owns.
            fds.push(unsafe { OwnedFd::from_raw_fd(dup) });
        }
        let raw = fds.iter().map(|f| f.as_raw_fd()).collect();
        let names: Vec<&str> = wanted.iter().map(|w| w.name.as_str()).collect();
        Ok(ListenFds {
            fds,
            raw,
            env: vec![
                ("LISTEN_FDS".into(), n.to_string()),
                ("LISTEN_FDNAMES".into(), names.join(":")),
            ],
        })
    }

    /// How many sockets: the child fills fds 3..3+count.
    pub fn count(&self) -> usize {
        self.fds.len()
    }

    /// In the child, just before exec: the sockets to 3, 4, ... (dup2 clears close-on-exec;
    /// the sources are all above that range, so none is overwritten). `LISTEN_PID` is the
    /// child's `PidEntries` (pid_env.rs).
    ///
    /// # Safety
    /// Call only in the forked child: only async-signal-safe calls, no allocation.
    pub unsafe fn install(&self) -> io::Result<()> {
        for (i, &src) in self.raw.iter().enumerate() {
            if libc::dup2(src, 3 + i as RawFd) < 0 {
                return Err(io::Error::last_os_error());
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn sock(s: &str) -> ListenSocket {
        ListenSocket {
            listen: crate::config::sockets::parse_listen(s, Path::new("/")).unwrap(),
            name: "x".into(),
        }
    }

    #[test]
    fn an_address_moves_to_another_service_only_once_its_old_one_stopped() {
        // A free port, found by binding port 0 and closing it, may be taken by another test
        // before `a` binds it: try again with a new one then (only this step can race).
        let mut h = Held::default();
        let w = (0..20)
            .find_map(|_| {
                let port = std::net::TcpListener::bind("127.0.0.1:0")
                    .and_then(|l| l.local_addr())
                    .unwrap()
                    .port();
                let w = [sock(&format!("127.0.0.1:{port}"))];
                match h.for_start("a", &w, &|_| false) {
                    Ok(Some(_)) => Some(w),
                    _ => None,
                }
            })
            .expect("a free port for a");
        let busy = h.for_start("b", &w, &|s| s == "a").err().unwrap();
        assert!(busy.contains("binding 127.0.0.1:"), "{busy}");
        assert!(h.for_start("b", &w, &|_| false).unwrap().is_some());
        assert!(!h.by_service.contains_key("a"));
    }

    #[test]
    fn unix_and_udp_sockets_bind_and_are_recognised() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("api.sock");
        let unix = ListenAddr::Unix(path.clone());
        let fd = bind(&unix).unwrap();
        assert_eq!(listening_addr(&fd), Some(unix.clone()));
        drop(fd);
        // The file a killed supervisor left is stale: bound again over it. A child forked by
        // another test of this process may hold a copy of the listener until it execs or
        // exits; the file is stale once nothing answers on it, so wait for that first.
        assert!(path.exists());
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::os::unix::net::UnixStream::connect(&path).is_ok() {
            assert!(
                std::time::Instant::now() < deadline,
                "something still answers"
            );
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let fd = bind(&unix).unwrap();
        assert!(std::os::unix::net::UnixStream::connect(&path).is_ok());
        drop(fd);
        let udp = bind(&ListenAddr::Udp("127.0.0.1:0".parse().unwrap())).unwrap();
        assert!(matches!(listening_addr(&udp), Some(ListenAddr::Udp(a)) if a.port() != 0));
    }

    #[test]
    fn sockets_outlive_instances_until_the_addresses_change() {
        let w = [sock("127.0.0.1:1"), sock("udp:127.0.0.1:2")];
        assert_eq!(decide(None, &w), Decision::Bind);
        let held: Vec<ListenAddr> = w.iter().map(|s| s.listen.clone()).collect();
        assert_eq!(decide(Some(&held), &w), Decision::Keep);
        // Another name for the same socket keeps it.
        let mut renamed = w.clone();
        renamed[0].name = "y".into();
        assert_eq!(decide(Some(&held), &renamed), Decision::Keep);
        assert_eq!(decide(Some(&held), &w[..1]), Decision::Bind);
        let swapped = [w[1].clone(), w[0].clone()];
        assert_eq!(decide(Some(&held), &swapped), Decision::Bind);
    }

    #[test]
    fn one_bind_serves_every_start_and_adoption_finds_it_back() {
        let mut h = Held::default();
        // Port 0 is refused by the config; here it lets the test bind a free port.
        let w = [ListenSocket {
            listen: ListenAddr::Tcp("127.0.0.1:0".parse().unwrap()),
            name: "x".into(),
        }];
        let first = h.for_start("web", &w, &|_| false).unwrap().unwrap();
        assert_eq!(first.count(), 1);
        assert!(first.raw[0] >= 4, "above the range the child fills");
        assert_eq!(
            first.env,
            vec![
                ("LISTEN_FDS".to_string(), "1".to_string()),
                ("LISTEN_FDNAMES".to_string(), "x".to_string())
            ]
        );
        let addr = listening_addr(&h.by_service["web"].fds[0]).unwrap();
        assert!(matches!(addr, ListenAddr::Tcp(a) if a.port() != 0));
        // The second start (with the real address) hands over the same socket.
        let real = [ListenSocket {
            listen: addr.clone(),
            name: "x".into(),
        }];
        h.by_service.get_mut("web").unwrap().addrs = vec![addr.clone()];
        let second = h.for_start("web", &real, &|_| false).unwrap().unwrap();
        let a = listening_addr(&second.fds[0]).unwrap();
        assert_eq!(a, addr);
        // A supervisor that lost them takes them back from a process holding a copy.
        let mut later = Held::default();
        later.grab_from("web", std::process::id());
        assert!(later.adopted["web"].iter().any(|(a, _)| *a == addr));
        h.release_all();
    }
}
