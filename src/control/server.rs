//! Server side of the control socket: accepts connections, checks the peer's credentials,
//! reads one bounded request line and hands it to the supervisor's event loop.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Condvar, Mutex};

use std::time::Duration;

use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};

use super::access::{self, Access, Policy};
use super::protocol::{Envelope, Request, Response, MAX_REQUEST_BYTES, VERSION};
use super::ControlError;

/// Connections served at once; more wait to be accepted.
pub const MAX_CONNECTIONS: usize = 128;
/// Stack of a connection's thread: it reads a line, waits and writes an answer.
const CONNECTION_STACK: usize = 256 * 1024;

/// Count of live connection threads, bounded by `MAX_CONNECTIONS`.
#[derive(Default)]
struct Slots {
    used: Mutex<usize>,
    freed: Condvar,
}

/// One connection's place; freed when dropped (also when its thread could not be started).
struct Slot(Arc<Slots>);

impl Slots {
    /// Wait for a free place and take it.
    fn take(slots: &Arc<Slots>) -> Slot {
        let mut used = slots.used.lock().unwrap_or_else(|e| e.into_inner());
        while *used >= MAX_CONNECTIONS {
            used = slots.freed.wait(used).unwrap_or_else(|e| e.into_inner());
        }
        *used += 1;
        Slot(slots.clone())
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut used = self.0.used.lock().unwrap_or_else(|e| e.into_inner());
        *used = used.saturating_sub(1);
        self.0.freed.notify_one();
    }
}

/// Who sent a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer {
    pub pid: i32,
    pub uid: u32,
    pub gid: u32,
}

/// A request as delivered to the event loop, with where to send the answer.
pub struct Incoming {
    pub peer: Peer,
    pub request: Request,
    pub reply: Sender<Response>,
    /// Signalled once the answer has been written to the client (lets a stopping supervisor
    /// wait for its last answers before it exits).
    pub written: mpsc::Receiver<()>,
}

/// A bound control socket.
pub struct Server {
    listener: UnixListener,
    path: PathBuf,
}

impl Server {
    /// Bind `path` with mode 0600 (or 0660 when `group` is given, then owned by that group).
    /// A stale socket left by a dead supervisor is replaced; a live one is an error.
    pub fn bind(path: &Path, group: Option<u32>) -> Result<Server, ControlError> {
        let mode = if group.is_some() { 0o660 } else { 0o600 };
        Self::bind_mode(path, group, mode)
    }

    /// Bind the services' socket at `path`, connectable by every user (mode 0666): it takes
    /// nothing but `spawn` (`spawn_for_services`).
    pub fn bind_for_services(path: &Path) -> Result<Server, ControlError> {
        Self::bind_mode(path, None, 0o666)
    }

    fn bind_mode(path: &Path, group: Option<u32>, mode: u32) -> Result<Server, ControlError> {
        if path.exists() {
            if UnixStream::connect(path).is_ok() {
                return Err(ControlError::Refused(format!(
                    "a supervisor is already listening on {}",
                    path.display()
                )));
            }
            std::fs::remove_file(path).map_err(|source| ControlError::Io {
                context: format!("removing stale socket {}", path.display()),
                source,
            })?;
        }
        let listener = UnixListener::bind(path).map_err(|source| ControlError::Io {
            context: format!("binding {}", path.display()),
            source,
        })?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(
            |source| ControlError::Io {
                context: format!("chmod {}", path.display()),
                source,
            },
        )?;
        if let Some(gid) = group {
            nix::unistd::chown(path, None, Some(nix::unistd::Gid::from_raw(gid))).map_err(|e| {
                ControlError::Io {
                    context: format!("chown {}", path.display()),
                    source: e.into(),
                }
            })?;
        }
        Ok(Server {
            listener,
            path: path.to_path_buf(),
        })
    }

    /// Serve on a background thread; each request goes to `deliver`. `allowed_gid` lets members
    /// of that group (besides our own uid and root) read (see `access`). The owner is the
    /// effective uid at this call: it stays the owner if the process later drops privileges.
    pub fn spawn<F>(
        self,
        allowed_gid: Option<u32>,
        deliver: F,
    ) -> std::io::Result<std::thread::JoinHandle<()>>
    where
        F: Fn(Incoming) -> bool + Send + Sync + Clone + 'static,
    {
        self.serve(
            Policy::control(nix::unistd::geteuid().as_raw(), allowed_gid),
            "control",
            deliver,
        )
    }

    /// Serve the services' socket (bound by `bind_for_services`) on a background thread:
    /// `spawn` requests from any uid go to `deliver`, anything else is refused.
    pub fn spawn_for_services<F>(self, deliver: F) -> std::io::Result<std::thread::JoinHandle<()>>
    where
        F: Fn(Incoming) -> bool + Send + Sync + Clone + 'static,
    {
        self.serve(
            Policy::services(nix::unistd::geteuid().as_raw()),
            "spawn-socket",
            deliver,
        )
    }

    fn serve<F>(
        self,
        policy: Policy,
        name: &str,
        deliver: F,
    ) -> std::io::Result<std::thread::JoinHandle<()>>
    where
        F: Fn(Incoming) -> bool + Send + Sync + Clone + 'static,
    {
        let slots = Arc::new(Slots::default());
        std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                for conn in self.listener.incoming() {
                    let Ok(stream) = conn else { continue };
                    let deliver = deliver.clone();
                    // One short-lived thread per connection, so a slow client never holds up
                    // others; at most MAX_CONNECTIONS at once, the next ones wait in the
                    // listen queue until a connection ends (a silent one after its timeout).
                    let slot = Slots::take(&slots);
                    let _ = std::thread::Builder::new()
                        .name("control-conn".into())
                        .stack_size(CONNECTION_STACK)
                        .spawn(move || {
                            serve_one(stream, policy, deliver);
                            drop(slot);
                        });
                }
            })
    }

    /// The socket path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn serve_one<F>(stream: UnixStream, policy: Policy, deliver: F)
where
    F: Fn(Incoming) -> bool,
{
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let _ = stream.set_write_timeout(Some(Duration::from_secs(10)));
    let answer = |mut s: &UnixStream, r: Response| {
        if let Ok(mut line) = serde_json::to_string(&r) {
            line.push('\n');
            let _ = s.write_all(line.as_bytes());
        }
    };
    let peer = match getsockopt(&stream, PeerCredentials) {
        Ok(c) => Peer {
            pid: c.pid(),
            uid: c.uid(),
            gid: c.gid(),
        },
        Err(e) => {
            answer(
                &stream,
                Response::err(
                    format!("cannot read peer credentials: {e}"),
                    Default::default(),
                ),
            );
            return;
        }
    };
    let mut line = Vec::new();
    let mut limited = BufReader::new((&stream).take(MAX_REQUEST_BYTES as u64 + 1));
    match limited.read_until(b'\n', &mut line) {
        Ok(_) if line.len() > MAX_REQUEST_BYTES => {
            answer(
                &stream,
                Response::err(
                    format!("request larger than {MAX_REQUEST_BYTES} bytes"),
                    Default::default(),
                ),
            );
            return;
        }
        Ok(0) => return,
        Ok(_) => {}
        Err(_) => return,
    }
    let access = policy.classify(&peer, &access::peer_groups(&stream, peer.pid));
    if access == Access::Denied {
        answer(
            &stream,
            Response::err(policy.denied_message(&peer), Default::default()),
        );
        return;
    }
    let envelope: Envelope = match serde_json::from_slice(&line) {
        Ok(e) => e,
        Err(e) => {
            answer(
                &stream,
                Response::err(format!("malformed request: {e}"), Default::default()),
            );
            return;
        }
    };
    if envelope.v != VERSION {
        answer(
            &stream,
            Response::err(
                format!(
                    "unsupported protocol version {} (this supervisor speaks {VERSION})",
                    envelope.v
                ),
                Default::default(),
            ),
        );
        return;
    }
    if access == Access::SpawnOnly && !matches!(envelope.request, Request::Spawn(_)) {
        answer(
            &stream,
            Response::err(
                format!(
                    "this socket only takes `spawn` from services; {} goes to the control socket",
                    envelope.request.action()
                ),
                Default::default(),
            ),
        );
        return;
    }
    if access == Access::ReadOnly && !envelope.request.is_read_only() {
        answer(
            &stream,
            Response::err(
                policy.read_only_message(&peer, &envelope.request),
                Default::default(),
            ),
        );
        return;
    }
    let (tx, rx) = mpsc::channel();
    let (written_tx, written_rx) = mpsc::channel();
    if !deliver(Incoming {
        peer,
        request: envelope.request,
        reply: tx,
        written: written_rx,
    }) {
        answer(
            &stream,
            Response::err("the supervisor is shutting down", Default::default()),
        );
        return;
    }
    // Long requests (stop, start) answer when done; the client sets its own bound.
    let _ = stream.set_write_timeout(None);
    if let Ok(r) = rx.recv() {
        answer(&stream, r);
        let _ = stream.shutdown(std::net::Shutdown::Write);
        let _ = written_tx.send(());
    }
}
