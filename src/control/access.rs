//! Who may do what on the control socket.
//!
//! - root and the uid that started the supervisor (its owner) may send every request;
//! - members of the socket's group (`systemg` for a `--sys` supervisor), by primary or
//!   supplementary group, may only read: `status` (which `sysg status` and `sysg inspect` use)
//!   and `logs` (service output from the journal, for members who cannot read it);
//! - everyone else is refused.
//!
//! The owner is fixed when the server starts, so a supervisor that later drops its privileges
//! (`--drop-privileges`) does not hand control to the unprivileged user it becomes: that user
//! often runs the services, and a compromised service must not be able to stop or reconfigure
//! its neighbours.

use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;

use super::protocol::Request;
use super::slots::Class;

/// Who sent a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer {
    pub pid: i32,
    pub uid: u32,
    pub gid: u32,
}

/// What a peer may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Every request.
    Full,
    /// Read-only requests (`Request::is_read_only`).
    ReadOnly,
    /// `spawn` only: the services' socket (`Policy::services`), open to every uid; the
    /// supervisor then checks that the caller is a process of a dynamic-spawn service.
    SpawnOnly,
    /// Nothing.
    Denied,
}

/// The rule one server applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// The uid that started the supervisor.
    pub owner_uid: u32,
    /// Members of this group may read.
    pub group: Option<u32>,
    /// The services' socket: `spawn` requests from anyone, nothing else.
    pub spawn_only: bool,
}

impl Policy {
    /// The rule of the control socket.
    pub fn control(owner_uid: u32, group: Option<u32>) -> Policy {
        Policy {
            owner_uid,
            group,
            spawn_only: false,
        }
    }

    /// The rule of the services' socket (`--sys` with services running as other users):
    /// only `spawn`, from any uid.
    pub fn services(owner_uid: u32) -> Policy {
        Policy {
            owner_uid,
            group: None,
            spawn_only: true,
        }
    }

    /// Decide for a peer whose groups (primary and supplementary) are `groups`.
    pub fn classify(&self, peer: &Peer, groups: &[u32]) -> Access {
        if self.spawn_only {
            return Access::SpawnOnly;
        }
        if peer.uid == 0 || peer.uid == self.owner_uid {
            return Access::Full;
        }
        match self.group {
            Some(g) if peer.gid == g || groups.contains(&g) => Access::ReadOnly,
            _ => Access::Denied,
        }
    }

    /// How a peer of `uid` is counted for connection slots: root and the owner have a
    /// reserve of their own (`slots`).
    pub fn class(&self, uid: u32) -> Class {
        if uid == 0 || uid == self.owner_uid {
            Class::Owner
        } else {
            Class::Other
        }
    }

    /// The refusal for a peer that may not connect at all.
    pub fn denied_message(&self, peer: &Peer) -> String {
        let mut m = format!(
            "permission denied: uid {} may not use this supervisor (owned by {})",
            peer.uid,
            crate::config::privileged::describe_uid(self.owner_uid)
        );
        if let Some(g) = self.group {
            m.push_str(&format!(
                "; members of group `{}` may read its status",
                group_name(g)
            ));
        }
        m
    }

    /// The refusal for a read-only peer that asked for more.
    pub fn read_only_message(&self, peer: &Peer, request: &Request) -> String {
        let group = self.group.map(group_name).unwrap_or_default();
        format!(
            "permission denied: uid {} may only read this supervisor's status (as a member of group `{group}`); {} needs root (sudo) or {}",
            peer.uid,
            request.action(),
            crate::config::privileged::describe_uid(self.owner_uid)
        )
    }
}

impl Request {
    /// True for requests that change nothing.
    pub fn is_read_only(&self) -> bool {
        matches!(
            self,
            Request::Status | Request::Inspect { .. } | Request::Logs(_)
        )
    }

    /// What the request does, in the words of the command that sends it.
    pub fn action(&self) -> &'static str {
        match self {
            Request::Status => "`status`",
            Request::Start { .. } => "`start`",
            Request::Stop { .. } => "`stop --service`",
            Request::Restart { .. } => "`restart`",
            Request::Reload { .. } => "`restart --config` (reload)",
            Request::Shutdown => "`stop` (of the whole project)",
            Request::Run(_) => "`run`",
            Request::Spawn(_) => "`spawn`",
            Request::Inspect { .. } => "`inspect`",
            Request::Logs(_) => "`logs`",
            Request::ReloadServices { .. } => "`reload`",
            Request::Kill { .. } => "`kill`",
        }
    }
}

/// `systemg`, or the number when the gid has no name.
pub fn group_name(gid: u32) -> String {
    match nix::unistd::Group::from_gid(nix::unistd::Gid::from_raw(gid)) {
        Ok(Some(g)) => g.name,
        _ => gid.to_string(),
    }
}

/// The peer's supplementary groups as the kernel recorded them when it connected
/// (`SO_PEERGROUPS`, Linux 4.13+): no race with a reused pid, unlike /proc/PID/status. Falls back
/// to /proc/PID/status when the option is missing. Empty when neither answers.
pub fn peer_groups(stream: &UnixStream, pid: i32) -> Vec<u32> {
    let mut buf = vec![0 as libc::gid_t; 64];
    for _ in 0..2 {
        let mut len = (buf.len() * std::mem::size_of::<libc::gid_t>()) as libc::socklen_t;
        // SAFETY: the kernel writes at most `len` bytes into `buf`, which we own, and updates
        // `len` to the size used (or needed, with ERANGE).
        let rc = unsafe {
            libc::getsockopt(
                stream.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_PEERGROUPS,
                buf.as_mut_ptr().cast(),
                &mut len,
            )
        };
        let n = len as usize / std::mem::size_of::<libc::gid_t>();
        if rc == 0 {
            buf.truncate(n);
            return buf;
        }
        if std::io::Error::last_os_error().raw_os_error() == Some(libc::ERANGE) && n > buf.len() {
            buf.resize(n, 0);
            continue;
        }
        break;
    }
    proc_groups(pid)
}

/// The `Groups:` line of /proc/PID/status.
fn proc_groups(pid: i32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| l.strip_prefix("Groups:")).map(|g| {
                g.split_whitespace()
                    .filter_map(|x| x.parse().ok())
                    .collect()
            })
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(uid: u32, gid: u32) -> Peer {
        Peer { pid: 1, uid, gid }
    }

    #[test]
    fn who_gets_what() {
        let p = Policy::control(0, Some(900));
        assert_eq!(p.classify(&peer(0, 0), &[]), Access::Full);
        assert_eq!(p.classify(&peer(1000, 900), &[]), Access::ReadOnly);
        assert_eq!(p.classify(&peer(1000, 1000), &[4, 900]), Access::ReadOnly);
        assert_eq!(p.classify(&peer(1000, 1000), &[4]), Access::Denied);
        let user = Policy::control(1000, None);
        assert_eq!(user.classify(&peer(1000, 1000), &[]), Access::Full);
        assert_eq!(user.classify(&peer(1001, 1000), &[1000]), Access::Denied);
        assert_eq!(user.classify(&peer(0, 0), &[]), Access::Full);
        // The services' socket: `spawn` only, for everyone (root included).
        let services = Policy::services(0);
        for who in [peer(0, 0), peer(65534, 65534), peer(1000, 900)] {
            assert_eq!(services.classify(&who, &[900]), Access::SpawnOnly);
        }
    }

    #[test]
    fn root_and_the_owner_have_the_owners_slots() {
        let sys = Policy::control(0, Some(900));
        assert_eq!(sys.class(0), Class::Owner);
        assert_eq!(sys.class(65534), Class::Other);
        let user = Policy::control(1000, None);
        assert_eq!(user.class(1000), Class::Owner);
        assert_eq!(user.class(0), Class::Owner);
        assert_eq!(user.class(1001), Class::Other);
        // The services' socket of a --sys supervisor: every service user is counted apart.
        let services = Policy::services(0);
        assert_eq!(services.class(0), Class::Owner);
        assert_eq!(services.class(65534), Class::Other);
    }

    #[test]
    fn only_status_inspect_and_logs_are_read_only() {
        assert!(Request::Status.is_read_only());
        assert!(Request::Logs(crate::control::protocol::LogsRequest {
            services: None,
            lines: None,
            since_us: None,
            until_us: None,
        })
        .is_read_only());
        for r in [
            Request::Start { services: None },
            Request::Stop { services: None },
            Request::Restart { services: None },
            Request::Reload {
                config: "/x".into(),
            },
            Request::Shutdown,
        ] {
            assert!(!r.is_read_only(), "{r:?}");
        }
    }

    #[test]
    fn messages_name_the_rule() {
        let p = Policy::control(0, Some(65534));
        let m = p.denied_message(&peer(1000, 1000));
        assert!(m.contains("uid 1000") && m.contains("uid 0 (root)"), "{m}");
        assert!(m.contains("may read its status"), "{m}");
        let m = p.read_only_message(&peer(1000, 65534), &Request::Shutdown);
        assert!(
            m.contains("`stop` (of the whole project) needs root"),
            "{m}"
        );
    }

    #[test]
    fn peer_groups_of_a_socketpair_are_ours() {
        let (a, _b) = UnixStream::pair().unwrap();
        let mine: Vec<u32> = nix::unistd::getgroups()
            .unwrap()
            .into_iter()
            .map(|g| g.as_raw())
            .collect();
        let mut got = peer_groups(&a, std::process::id() as i32);
        got.sort_unstable();
        let mut want = mine;
        want.sort_unstable();
        assert_eq!(got, want);
    }
}
