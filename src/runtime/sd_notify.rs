//! The service-manager notification protocol (`sd_notify`): when the supervisor itself runs as
//! a `Type=notify` systemd service (units/systemg.service), it tells systemd when every service
//! has been started (`READY=1`), when it applies a new configuration (`RELOADING=1`, then
//! `READY=1` again), when it shuts down (`STOPPING=1`), and a one-line `STATUS=` summary.
//!
//! The protocol is one datagram of `KEY=VALUE` lines to the socket named by `$NOTIFY_SOCKET`
//! (a path, or an abstract name written with a leading `@`). Without the variable every call
//! is a no-op, so the supervisor runs the same everywhere else.

use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;

use crate::control::protocol::StatusReport;
use crate::core::{StateKind, UnitId};

/// Where the notifications go.
enum Target {
    Path(PathBuf),
    #[cfg(target_os = "linux")]
    Abstract(Vec<u8>),
}

/// Where the supervisor is in the readiness protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Started, `READY=1` not sent yet.
    Starting,
    /// Ready; only `STATUS=` changes are sent.
    Ready,
    /// Applying a new configuration: `READY=1` follows when it has settled.
    Reloading,
    /// Shutting down: only `STATUS=` changes are sent.
    Stopping,
}

/// A handle on the service manager's notification socket; inert when there is none.
pub struct SdNotify {
    target: Option<(UnixDatagram, Target)>,
    phase: Phase,
    /// The services whose start `READY=1` waits for (all when `None`).
    selection: Option<Vec<UnitId>>,
    last_status: String,
}

impl SdNotify {
    /// Take `$NOTIFY_SOCKET` from the environment. The variable is removed so that services the
    /// process backend starts do not inherit it and talk to systemd in the supervisor's name.
    /// Call it before any thread exists (it changes the environment).
    pub fn from_env(selection: Option<Vec<UnitId>>) -> SdNotify {
        let value = std::env::var_os("NOTIFY_SOCKET");
        if value.is_some() {
            std::env::remove_var("NOTIFY_SOCKET");
        }
        let target = value.and_then(|v| {
            let target = parse_target(v.to_str()?)?;
            match UnixDatagram::unbound() {
                Ok(sock) => Some((sock, target)),
                Err(e) => {
                    tracing::warn!("cannot notify the service manager: {e}");
                    None
                }
            }
        });
        SdNotify {
            target,
            phase: Phase::Starting,
            selection,
            last_status: String::new(),
        }
    }

    /// True when there is a service manager to notify.
    pub fn active(&self) -> bool {
        self.target.is_some()
    }

    /// When `READY=1` is owed: the services it waits for (`Some(None)` meaning all of them).
    pub fn awaiting_ready(&self) -> Option<Option<Vec<UnitId>>> {
        match self.phase {
            Phase::Starting => Some(self.selection.clone()),
            // A reload settles every service, not only those started at first.
            Phase::Reloading => Some(None),
            Phase::Ready | Phase::Stopping => None,
        }
    }

    /// The awaited services have settled: report readiness (again, after a reload).
    pub fn ready(&mut self, report: &StatusReport) {
        if self.awaiting_ready().is_none() {
            return;
        }
        self.phase = Phase::Ready;
        self.last_status = summary(report);
        let msg = format!("READY=1\nSTATUS={}", self.last_status);
        self.send(&msg);
    }

    /// A new configuration is being applied.
    pub fn reloading(&mut self) {
        if matches!(self.phase, Phase::Stopping) {
            return;
        }
        self.phase = Phase::Reloading;
        // MONOTONIC_USEC lets systemd ≥ 253 (Type=notify-reload) match the reload to this
        // message; older versions ignore it.
        let msg = format!(
            "RELOADING=1\nSTATUS=applying the configuration\nMONOTONIC_USEC={}",
            monotonic_usec()
        );
        self.send(&msg);
    }

    /// The supervisor is stopping every service and will exit.
    pub fn stopping(&mut self) {
        if self.phase == Phase::Stopping {
            return;
        }
        self.phase = Phase::Stopping;
        self.last_status = "stopping every service".into();
        self.send("STOPPING=1\nSTATUS=stopping every service");
    }

    /// Refresh `STATUS=` when the summary changed (between the phase transitions).
    pub fn status(&mut self, report: &StatusReport) {
        if self.target.is_none() || self.phase != Phase::Ready {
            return;
        }
        let s = summary(report);
        if s != self.last_status {
            self.send(&format!("STATUS={s}"));
            self.last_status = s;
        }
    }

    fn send(&self, msg: &str) {
        let Some((sock, target)) = &self.target else {
            return;
        };
        let sent = match target {
            Target::Path(p) => crate::os::sock::send_to(sock, msg.as_bytes(), p),
            #[cfg(target_os = "linux")]
            Target::Abstract(name) => {
                use std::os::linux::net::SocketAddrExt;
                std::os::unix::net::SocketAddr::from_abstract_name(name)
                    .and_then(|addr| sock.send_to_addr(msg.as_bytes(), &addr))
            }
        };
        if let Err(e) = sent {
            tracing::debug!("notifying the service manager: {e}");
        }
    }
}

/// `$NOTIFY_SOCKET` → where to send: an absolute path, or `@name` for an abstract socket.
fn parse_target(v: &str) -> Option<Target> {
    if let Some(name) = v.strip_prefix('@') {
        #[cfg(target_os = "linux")]
        return (!name.is_empty()).then(|| Target::Abstract(name.as_bytes().to_vec()));
        #[cfg(not(target_os = "linux"))]
        return None;
    }
    v.starts_with('/').then(|| Target::Path(PathBuf::from(v)))
}

/// CLOCK_MONOTONIC in microseconds, as systemd reads it.
fn monotonic_usec() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime only writes the timespec it is given.
    if unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) } != 0 {
        return 0;
    }
    (ts.tv_sec as u64) * 1_000_000 + (ts.tv_nsec as u64) / 1_000
}

/// The one-line `STATUS=` text: how many services run, and which are in trouble.
pub fn summary(report: &StatusReport) -> String {
    let total = report.services.len();
    let running = report
        .services
        .iter()
        .filter(|s| s.state == StateKind::Running)
        .count();
    let failed: Vec<&str> = report
        .services
        .iter()
        .filter(|s| s.state == StateKind::Failed)
        .map(|s| s.name.as_str())
        .collect();
    let mut line = format!(
        "{running} of {total} service{} running (project {})",
        if total == 1 { "" } else { "s" },
        report.project
    );
    if !failed.is_empty() {
        line.push_str(&format!("; failed: {}", failed.join(", ")));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::protocol::ServiceStatus;

    fn svc(name: &str, state: StateKind) -> ServiceStatus {
        ServiceStatus::new(name, state)
    }

    fn report(services: Vec<ServiceStatus>) -> StatusReport {
        StatusReport {
            project: "demo".into(),
            config: PathBuf::from("/etc/systemg/systemg.yaml"),
            backend: "systemd".into(),
            supervisor_pid: None,
            services,
        }
    }

    #[test]
    fn targets_parse() {
        assert!(matches!(
            parse_target("/run/systemd/notify"),
            Some(Target::Path(p)) if p == std::path::Path::new("/run/systemd/notify")
        ));
        assert!(matches!(
            parse_target("@sysg/notify"),
            Some(Target::Abstract(n)) if n == b"sysg/notify"
        ));
        assert!(parse_target("relative").is_none());
        assert!(parse_target("@").is_none());
        assert!(parse_target("").is_none());
    }

    #[test]
    fn summary_names_failures() {
        let r = report(vec![
            svc("web", StateKind::Running),
            svc("db", StateKind::Failed),
        ]);
        assert_eq!(
            summary(&r),
            "1 of 2 services running (project demo); failed: db"
        );
        assert_eq!(
            summary(&report(vec![svc("web", StateKind::Running)])),
            "1 of 1 service running (project demo)"
        );
    }

    /// Receives what a notifier sends, on a socket bound like systemd's.
    fn listener(abstract_name: bool) -> (UnixDatagram, String, Option<tempfile::TempDir>) {
        if abstract_name {
            use std::os::linux::net::SocketAddrExt;
            let name = format!("sysg-notify-test-{}", std::process::id());
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())
                .expect("abstract address");
            let sock = UnixDatagram::bind_addr(&addr).expect("bind abstract");
            (sock, format!("@{name}"), None)
        } else {
            let dir = tempfile::tempdir().expect("tempdir");
            let path = dir.path().join("notify");
            let sock = UnixDatagram::bind(&path).expect("bind");
            (sock, path.to_string_lossy().into_owned(), Some(dir))
        }
    }

    fn recv(sock: &UnixDatagram) -> String {
        sock.set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .expect("timeout");
        let mut buf = [0u8; 4096];
        let n = sock.recv(&mut buf).expect("a notification");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    fn notifier_for(addr: &str) -> SdNotify {
        SdNotify {
            target: Some((
                UnixDatagram::unbound().expect("socket"),
                parse_target(addr).expect("target"),
            )),
            phase: Phase::Starting,
            selection: None,
            last_status: String::new(),
        }
    }

    #[test]
    fn protocol_sequence_over_both_socket_kinds() {
        for abstract_name in [false, true] {
            let (sock, addr, _dir) = listener(abstract_name);
            let mut n = notifier_for(&addr);
            let r = report(vec![svc("web", StateKind::Running)]);
            assert_eq!(n.awaiting_ready(), Some(None));
            n.status(&r); // not ready yet: nothing is sent
            n.ready(&r);
            assert_eq!(
                recv(&sock),
                "READY=1\nSTATUS=1 of 1 service running (project demo)"
            );
            assert_eq!(n.awaiting_ready(), None);
            n.ready(&r); // READY=1 is sent once per phase
            n.status(&r); // unchanged: nothing is sent
            n.status(&report(vec![svc("web", StateKind::Failed)]));
            assert_eq!(
                recv(&sock),
                "STATUS=0 of 1 service running (project demo); failed: web"
            );
            n.reloading();
            assert!(recv(&sock)
                .starts_with("RELOADING=1\nSTATUS=applying the configuration\nMONOTONIC_USEC="));
            assert_eq!(n.awaiting_ready(), Some(None));
            n.ready(&r);
            assert!(recv(&sock).starts_with("READY=1\n"));
            n.stopping();
            n.stopping();
            n.reloading(); // no reload once stopping
            assert_eq!(recv(&sock), "STOPPING=1\nSTATUS=stopping every service");
            sock.set_nonblocking(true).expect("nonblocking");
            let mut buf = [0u8; 64];
            assert!(sock.recv(&mut buf).is_err(), "nothing more was sent");
        }
    }

    #[test]
    fn without_a_socket_everything_is_a_no_op() {
        let mut n = SdNotify {
            target: None,
            phase: Phase::Starting,
            selection: Some(vec!["web".into()]),
            last_status: String::new(),
        };
        assert!(!n.active());
        assert_eq!(n.awaiting_ready(), Some(Some(vec!["web".to_string()])));
        n.ready(&report(vec![]));
        n.reloading();
        n.stopping();
    }
}
