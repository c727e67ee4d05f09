//! Client side of the control socket.
//!
//! Before anything is sent, the server's credentials (`SO_PEERCRED`: the uid that bound and
//! listened on the socket) are checked: root, or the uid the supervisor is expected to run as
//! (`ProjectPaths::server_uid`). A socket another user put in place gets nothing, not even the
//! request. What a server answers is made terminal-safe (`sanitize`) before any command
//! prints it.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};

use super::protocol::{Envelope, Request, Response, VERSION};
use super::sanitize::{json_terminal_safe, terminal_safe};
use super::ControlError;
use crate::runtime::paths::ProjectPaths;

/// How often a connection reset before any answer is retried, and the pause before each retry.
const RESET_RETRIES: u32 = 3;
const RESET_PAUSE: Duration = Duration::from_millis(50);
/// How long a request refused for lack of a free connection slot (`slots`) is retried, and
/// the pause between tries.
const BUSY_RETRY_FOR: Duration = Duration::from_secs(5);
const BUSY_PAUSE: Duration = Duration::from_millis(100);

/// The supervisor of `paths`: see `call_at`.
pub fn call(
    paths: &ProjectPaths,
    project: &str,
    request: Request,
    timeout: Option<Duration>,
) -> Result<Response, ControlError> {
    call_at(&paths.socket, paths.server_uid, project, request, timeout)
}

/// Send one request to the server of `socket`, which must run as root or `owner`, and wait
/// for the answer. `timeout` bounds the wait for the answer (`None`: wait as long as the
/// supervisor takes, e.g. for a long stop).
///
/// A server that has no connection slot for us (it says `busy`) is asked again for a few
/// seconds.
///
/// A connection reset before any answer means the request was never read: the listening socket
/// was closed with our connection still queued. That happens when a supervisor dies while one
/// of its children is between fork and exec (the child holds a copy of the listening socket
/// until its exec closes it). Such a request is sent again after a pause; by then the socket
/// is either served again or gone (`NotRunning`).
pub fn call_at(
    socket: &Path,
    owner: u32,
    project: &str,
    request: Request,
    timeout: Option<Duration>,
) -> Result<Response, ControlError> {
    let mut tries = 0;
    let busy_until = Instant::now() + BUSY_RETRY_FOR;
    loop {
        match call_once(socket, owner, project, request.clone(), timeout) {
            Ok(resp) if is_busy(&resp) && Instant::now() < busy_until => {
                std::thread::sleep(BUSY_PAUSE);
            }
            Err(ControlError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::ConnectionReset
                    && tries < RESET_RETRIES =>
            {
                tries += 1;
                std::thread::sleep(RESET_PAUSE);
            }
            other => return other,
        }
    }
}

/// A refusal for lack of a connection slot (`server`: `data.busy`).
fn is_busy(resp: &Response) -> bool {
    !resp.ok && resp.data.get("busy") == Some(&serde_json::Value::Bool(true))
}

fn call_once(
    socket: &Path,
    owner: u32,
    project: &str,
    request: Request,
    timeout: Option<Duration>,
) -> Result<Response, ControlError> {
    let mut stream = connect(socket, project)?;
    check_server(&stream, socket, owner)?;
    let io = |context: &str| {
        let context = context.to_string();
        move |source| ControlError::Io { context, source }
    };
    stream
        .set_read_timeout(timeout)
        .map_err(io("control socket"))?;
    let mut line = serde_json::to_string(&Envelope {
        v: VERSION,
        request,
    })
    .map_err(|e| ControlError::Protocol(e.to_string()))?;
    line.push('\n');
    if let Err(e) = stream.write_all(line.as_bytes()) {
        // A supervisor that refuses us answers and hangs up, possibly before reading our
        // request: read its answer before reporting the broken pipe.
        if !matches!(
            e.kind(),
            std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset
        ) {
            return Err(ControlError::Io {
                context: "writing to the supervisor".into(),
                source: e,
            });
        }
    }
    let mut reader = BufReader::new(stream);
    let mut answer = String::new();
    let n = reader
        .read_line(&mut answer)
        .map_err(io("reading the supervisor's answer"))?;
    if n == 0 {
        return Err(ControlError::Protocol(
            "the supervisor closed the connection without answering".into(),
        ));
    }
    let mut resp: Response = serde_json::from_str(answer.trim_end()).map_err(|e| {
        ControlError::Protocol(format!("{e}: {}", terminal_safe(&format!("{answer:?}"))))
    })?;
    resp.error = resp.error.map(|e| terminal_safe(&e).into_owned());
    json_terminal_safe(&mut resp.data);
    if resp.v != VERSION {
        return Err(ControlError::Protocol(format!(
            "the supervisor speaks protocol v{}, this sysg speaks v{VERSION}",
            resp.v
        )));
    }
    Ok(resp)
}

/// Connect, mapping "nobody there" to `NotRunning`.
pub fn connect(socket: &Path, project: &str) -> Result<UnixStream, ControlError> {
    match crate::os::sock::connect(socket) {
        Ok(s) => Ok(s),
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
            ) =>
        {
            Err(ControlError::NotRunning {
                project: project.to_string(),
                socket: socket.display().to_string(),
            })
        }
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            Err(ControlError::Refused(format!(
                "permission denied on {}: this supervisor belongs to another user (use sudo, or join the `systemg` group for --sys)",
                socket.display()
            )))
        }
        Err(source) => Err(ControlError::Io {
            context: format!("connecting to {}", socket.display()),
            source,
        }),
    }
}

/// Refuse a server that is neither root nor `owner` (`SO_PEERCRED` gives the credentials of
/// the process that bound and listened on the socket, fixed at that time).
pub fn check_server(stream: &UnixStream, socket: &Path, owner: u32) -> Result<(), ControlError> {
    let creds = getsockopt(stream, PeerCredentials).map_err(|e| ControlError::Io {
        context: format!(
            "reading the credentials of the server of {}",
            socket.display()
        ),
        source: e.into(),
    })?;
    let found = creds.uid();
    if found == 0 || found == owner {
        return Ok(());
    }
    Err(ControlError::Impostor {
        socket: socket.display().to_string(),
        found,
        expected: if owner == 0 {
            crate::config::privileged::describe_uid(0)
        } else {
            format!("{} or root", crate::config::privileged::describe_uid(owner))
        },
    })
}

/// True when a supervisor answers on `socket`.
pub fn is_live(socket: &Path) -> bool {
    crate::os::sock::connect(socket).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Write};
    use std::os::fd::AsFd;
    use std::os::unix::net::UnixListener;

    /// Wait (bounded) until a connection is queued on `l`.
    fn wait_queued(l: &UnixListener) {
        let mut fds = [nix::poll::PollFd::new(
            l.as_fd(),
            nix::poll::PollFlags::POLLIN,
        )];
        let n = nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(10_000u16)).unwrap();
        assert_eq!(n, 1, "no connection arrived");
    }

    #[test]
    fn a_connection_reset_before_the_answer_is_retried() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("control.sock");
        // The listener of a dead supervisor, held by a child that has not exec'd yet: it never
        // accepts.
        let held = UnixListener::bind(&path).unwrap();
        let client = {
            let path = path.clone();
            std::thread::spawn(move || call_at(&path, 0, "p", Request::Status, None))
        };
        wait_queued(&held);
        // A new supervisor takes the path over; then the child execs and the old socket closes
        // with our connection queued.
        let fresh_path = dir.path().join("fresh.sock");
        let fresh = UnixListener::bind(&fresh_path).unwrap();
        std::fs::rename(&fresh_path, &path).unwrap();
        drop(held);
        wait_queued(&fresh);
        let (stream, _) = fresh.accept().unwrap();
        let mut line = String::new();
        BufReader::new(&stream).read_line(&mut line).unwrap();
        assert!(line.contains("\"cmd\":\"status\""), "{line}");
        let mut answer = serde_json::to_string(&Response::ok(serde_json::json!(1))).unwrap();
        answer.push('\n');
        (&stream).write_all(answer.as_bytes()).unwrap();
        let resp = client.join().unwrap().unwrap();
        assert_eq!(resp.data, serde_json::json!(1));
    }

    #[test]
    fn a_busy_refusal_is_asked_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("control.sock");
        let l = UnixListener::bind(&path).unwrap();
        let server = std::thread::spawn(move || {
            let busy = Response::err("too many connections", serde_json::json!({"busy": true}));
            for answer in [busy, Response::ok(serde_json::json!(7))] {
                let (stream, _) = l.accept().unwrap();
                let mut line = String::new();
                BufReader::new(&stream).read_line(&mut line).unwrap();
                let mut text = serde_json::to_string(&answer).unwrap();
                text.push('\n');
                (&stream).write_all(text.as_bytes()).unwrap();
            }
        });
        let me = nix::unistd::geteuid().as_raw();
        let resp = call_at(&path, me, "p", Request::Status, None).unwrap();
        assert_eq!(resp.data, serde_json::json!(7));
        server.join().unwrap();
    }

    #[test]
    fn a_reset_with_nobody_left_means_not_running() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("control.sock");
        let held = UnixListener::bind(&path).unwrap();
        let client = {
            let path = path.clone();
            std::thread::spawn(move || call_at(&path, 0, "p", Request::Status, None))
        };
        wait_queued(&held);
        drop(held);
        assert!(matches!(
            client.join().unwrap(),
            Err(ControlError::NotRunning { .. })
        ));
    }

    /// A server bound by uid 65534 (`setpriv` + python3) that answers every connection with
    /// escape sequences; `None` where that cannot be played (not root, tools missing).
    fn foreign_server(dir: &Path) -> Option<(Killed, std::path::PathBuf)> {
        use std::os::unix::fs::PermissionsExt;
        if !nix::unistd::geteuid().is_root() {
            return None;
        }
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777)).ok()?;
        let path = dir.join("control.sock");
        let script = "import socket,sys\n\
s=socket.socket(socket.AF_UNIX)\ns.bind(sys.argv[1])\ns.listen(8)\nprint('ready',flush=True)\n\
while True:\n c,_=s.accept()\n try: c.sendall(b'{\"v\":1,\"ok\":false,\"error\":\"\\u001b[2Jfake\"}\\n')\n except OSError: pass\n c.close()\n";
        let mut child = std::process::Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .args(["/usr/bin/python3", "-c", script])
            .arg(&path)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .ok()?;
        let mut ready = String::new();
        BufReader::new(child.stdout.take()?)
            .read_line(&mut ready)
            .ok()?;
        let child = Killed(child);
        (ready.trim() == "ready").then_some((child, path))
    }

    /// A child killed when the test ends, failed or not.
    struct Killed(std::process::Child);

    impl Drop for Killed {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    #[test]
    fn a_server_of_another_uid_gets_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let Some((_server, path)) = foreign_server(dir.path()) else {
            println!("skipped: needs root, setpriv and python3");
            return;
        };
        // Root expects root; a user expects itself (or root): 65534 is neither here.
        for owner in [0, 1000] {
            match call_at(&path, owner, "p", Request::Shutdown, None) {
                Err(e @ ControlError::Impostor { found: 65534, .. }) => {
                    let m = e.to_string();
                    assert!(m.contains(&path.display().to_string()), "{m}");
                    assert!(m.contains("uid 65534"), "{m}");
                }
                other => panic!("talked to a foreign server: {other:?}"),
            }
        }
        // The same server is fine for its own user, and what it says is made terminal-safe.
        let resp = call_at(&path, 65534, "p", Request::Status, None).unwrap();
        assert_eq!(resp.error.as_deref(), Some("[2Jfake"));
    }
}
