//! Client side of the control socket.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use super::protocol::{Envelope, Request, Response, VERSION};
use super::ControlError;

/// Send one request and wait for the answer. `timeout` bounds the wait for the answer
/// (`None`: wait as long as the supervisor takes, e.g. for a long stop).
pub fn call(
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
