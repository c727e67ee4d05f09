//! Client side of the control socket.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use super::protocol::{Envelope, Request, Response, VERSION};
use super::ControlError;

/// How often a connection reset before any answer is retried, and the pause before each retry.
const RESET_RETRIES: u32 = 3;
const RESET_PAUSE: Duration = Duration::from_millis(50);

/// Send one request and wait for the answer. `timeout` bounds the wait for the answer
/// (`None`: wait as long as the supervisor takes, e.g. for a long stop).
///
/// A connection reset before any answer means the request was never read: the listening socket
/// was closed with our connection still queued. That happens when a supervisor dies while one
/// of its children is between fork and exec (the child holds a copy of the listening socket
/// until its exec closes it). Such a request is sent again after a pause; by then the socket
/// is either served again or gone (`NotRunning`).
pub fn call(
    socket: &Path,
    project: &str,
    request: Request,
    timeout: Option<Duration>,
) -> Result<Response, ControlError> {
    let mut tries = 0;
    loop {
        match call_once(socket, project, request.clone(), timeout) {
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

fn call_once(
    socket: &Path,
    project: &str,
    request: Request,
    timeout: Option<Duration>,
) -> Result<Response, ControlError> {
    let mut stream = connect(socket, project)?;
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
    let resp: Response = serde_json::from_str(answer.trim_end())
        .map_err(|e| ControlError::Protocol(format!("{e}: {answer:?}")))?;
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
    match UnixStream::connect(socket) {
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

/// True when a supervisor answers on `socket`.
pub fn is_live(socket: &Path) -> bool {
    UnixStream::connect(socket).is_ok()
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
            std::thread::spawn(move || call(&path, "p", Request::Status, None))
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
    fn a_reset_with_nobody_left_means_not_running() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("control.sock");
        let held = UnixListener::bind(&path).unwrap();
        let client = {
            let path = path.clone();
            std::thread::spawn(move || call(&path, "p", Request::Status, None))
        };
        wait_queued(&held);
        drop(held);
        assert!(matches!(
            client.join().unwrap(),
            Err(ControlError::NotRunning { .. })
        ));
    }
}
