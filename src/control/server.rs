//! Server side of the control socket: accepts connections, classifies each peer by its
//! credentials right away (refusing those with no access, and those over their share of
//! connection slots, see `slots`), reads one bounded request line within a deadline and hands
//! it to the supervisor's event loop.

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};

use super::access::{self, Access, Peer, Policy};
use super::protocol::{Envelope, Request, Response, MAX_REQUEST_BYTES, VERSION};
use super::slots::{self, Ticket};
use super::ControlError;

/// Connections served at once, owners' reserve included; more are refused (`busy`).
pub const MAX_CONNECTIONS: usize = slots::LIMITS.owner_reserve + slots::LIMITS.shared;
/// Time a client has, from its connection being accepted, to send its whole request line.
pub const REQUEST_DEADLINE: Duration = Duration::from_secs(10);
/// Time to write an answer: a client that stops reading loses it.
const ANSWER_DEADLINE: Duration = Duration::from_secs(10);
/// Stack of a connection's thread: it reads a line, waits and writes an answer.
const CONNECTION_STACK: usize = 256 * 1024;

/// One connection's slot; given back when dropped (also when its thread could not be started).
struct Slot {
    table: Arc<Mutex<slots::Table>>,
    ticket: Ticket,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.table
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .release(self.ticket);
    }
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
            if crate::os::sock::connect(path).is_ok() {
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
        let listener = crate::os::sock::bind(path).map_err(|source| ControlError::Io {
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
        let table = Arc::new(Mutex::new(slots::Table::new(slots::LIMITS)));
        std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                for conn in self.listener.incoming() {
                    let Ok(stream) = conn else { continue };
                    let deadline = Instant::now() + REQUEST_DEADLINE;
                    // Decided before reading anything, so this loop never waits on a client.
                    let Some((peer, access, slot)) = admit(&stream, &policy, &table) else {
                        continue;
                    };
                    let deliver = deliver.clone();
                    // One short-lived thread per connection, so a slow client never holds up
                    // others; at most MAX_CONNECTIONS at once (see `slots`).
                    let _ = std::thread::Builder::new()
                        .name("control-conn".into())
                        .stack_size(CONNECTION_STACK)
                        .spawn(move || {
                            serve_one(stream, peer, access, policy, deadline, deliver);
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

/// The peer of a fresh connection, what it may do and its slot; `None` when it was refused
/// (and told why, without waiting on it).
fn admit(
    stream: &UnixStream,
    policy: &Policy,
    table: &Arc<Mutex<slots::Table>>,
) -> Option<(Peer, Access, Slot)> {
    let peer = match getsockopt(stream, PeerCredentials) {
        Ok(c) => Peer {
            pid: c.pid(),
            uid: c.uid(),
            gid: c.gid(),
        },
        Err(e) => {
            refuse(
                stream,
                Response::err(
                    format!("cannot read peer credentials: {e}"),
                    Default::default(),
                ),
            );
            return None;
        }
    };
    let access = policy.classify(&peer, &access::peer_groups(stream, peer.pid));
    if access == Access::Denied {
        refuse(
            stream,
            Response::err(policy.denied_message(&peer), Default::default()),
        );
        return None;
    }
    let admitted = table
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .admit(peer.uid, policy.class(peer.uid));
    match admitted {
        Ok(ticket) => Some((
            peer,
            access,
            Slot {
                table: table.clone(),
                ticket,
            },
        )),
        Err(full) => {
            // `busy`: the client may try again (`client::call_at` does, for a while).
            refuse(
                stream,
                Response::err(full.to_string(), serde_json::json!({ "busy": true })),
            );
            None
        }
    }
}

/// Answer a connection that gets nothing more, without ever blocking: a fresh connection's
/// buffer takes one short line.
fn refuse(stream: &UnixStream, r: Response) {
    if stream.set_nonblocking(true).is_err() {
        return;
    }
    if let Ok(mut line) = serde_json::to_string(&r) {
        line.push('\n');
        let _ = (&*stream).write(line.as_bytes());
    }
    let _ = stream.shutdown(std::net::Shutdown::Write);
}

/// How reading a request ended.
#[derive(Debug, PartialEq, Eq)]
enum Line {
    /// A line (with its newline, unless the client closed after it).
    Got(Vec<u8>),
    /// Longer than `MAX_REQUEST_BYTES`.
    TooLarge,
    /// Closed before sending anything, failed, or too slow: `deadline` bounds the whole
    /// request, however the client spreads its bytes.
    Gone,
}

fn read_line_by(mut stream: &UnixStream, deadline: Instant) -> Line {
    let mut line = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || stream.set_read_timeout(Some(left)).is_err() {
            return Line::Gone;
        }
        match stream.read(&mut buf) {
            Ok(0) if line.is_empty() => return Line::Gone,
            Ok(0) => return Line::Got(line),
            Ok(n) => {
                let end = buf[..n].iter().position(|b| *b == b'\n');
                line.extend_from_slice(&buf[..end.map_or(n, |i| i + 1)]);
                if line.len() > MAX_REQUEST_BYTES {
                    return Line::TooLarge;
                }
                if end.is_some() {
                    return Line::Got(line);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return Line::Gone,
        }
    }
}

/// Write all of `bytes` by `deadline`; false when the client did not take them in time.
fn write_by(mut stream: &UnixStream, mut bytes: &[u8], deadline: Instant) -> bool {
    while !bytes.is_empty() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || stream.set_write_timeout(Some(left)).is_err() {
            return false;
        }
        match stream.write(bytes) {
            Ok(0) => return false,
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return false,
        }
    }
    true
}

fn serve_one<F>(
    stream: UnixStream,
    peer: Peer,
    access: Access,
    policy: Policy,
    deadline: Instant,
    deliver: F,
) where
    F: Fn(Incoming) -> bool,
{
    let answer = |s: &UnixStream, r: Response| {
        if let Ok(mut line) = serde_json::to_string(&r) {
            line.push('\n');
            write_by(s, line.as_bytes(), Instant::now() + ANSWER_DEADLINE);
        }
    };
    let line = match read_line_by(&stream, deadline) {
        Line::Got(l) => l,
        Line::TooLarge => {
            answer(
                &stream,
                Response::err(
                    format!("request larger than {MAX_REQUEST_BYTES} bytes"),
                    Default::default(),
                ),
            );
            return;
        }
        Line::Gone => return,
    };
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
    if let Ok(r) = rx.recv() {
        answer(&stream, r);
        let _ = stream.shutdown(std::net::Shutdown::Write);
        let _ = written_tx.send(());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_line_is_read_up_to_its_newline() {
        let (a, mut b) = UnixStream::pair().unwrap();
        b.write_all(b"{\"v\":1}\nrest").unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        assert_eq!(
            read_line_by(&a, deadline),
            Line::Got(b"{\"v\":1}\n".to_vec())
        );
        drop(b);
        let (a, b) = UnixStream::pair().unwrap();
        drop(b);
        assert_eq!(read_line_by(&a, deadline), Line::Gone);
    }

    #[test]
    fn a_request_larger_than_the_limit_is_refused() {
        let (a, mut b) = UnixStream::pair().unwrap();
        let writer = std::thread::spawn(move || {
            let _ = b.write_all(&vec![b'x'; MAX_REQUEST_BYTES + 10]);
            b
        });
        let deadline = Instant::now() + Duration::from_secs(10);
        assert_eq!(read_line_by(&a, deadline), Line::TooLarge);
        drop(a);
        drop(writer.join().unwrap());
    }

    #[test]
    fn the_deadline_bounds_the_whole_request_not_each_read() {
        // A client that sends a byte every 20 ms would satisfy any per-read timeout forever.
        let (a, mut b) = UnixStream::pair().unwrap();
        let trickle = std::thread::spawn(move || {
            while b.write_all(b" ").is_ok() {
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        let started = Instant::now();
        assert_eq!(
            read_line_by(&a, started + Duration::from_millis(300)),
            Line::Gone
        );
        assert!(started.elapsed() < Duration::from_secs(5));
        drop(a);
        trickle.join().unwrap();
    }

    #[test]
    fn an_answer_the_client_does_not_read_is_given_up_at_the_deadline() {
        let (a, b) = UnixStream::pair().unwrap();
        let big = vec![b'x'; 8 * 1024 * 1024];
        let started = Instant::now();
        assert!(!write_by(&a, &big, started + Duration::from_millis(300)));
        assert!(started.elapsed() < Duration::from_secs(5));
        drop(b);
    }
}
