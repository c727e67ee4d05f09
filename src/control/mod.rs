//! Control socket: a versioned JSON-lines protocol over a unix socket, the server the supervisor
//! runs, and the client every command uses.

pub mod access;
pub mod client;
pub mod config_view;
pub mod inspect;
pub mod protocol;
pub mod sanitize;
pub mod server;
pub mod slots;

use thiserror::Error;

/// Control-channel failures.
#[derive(Debug, Error)]
pub enum ControlError {
    /// Nobody listens on the socket.
    #[error("no supervisor is running for project `{project}` (socket {socket})")]
    NotRunning { project: String, socket: String },
    /// The supervisor refused us.
    #[error("{0}")]
    Refused(String),
    /// The supervisor answered with an error.
    #[error("{0}")]
    Remote(String),
    /// The socket is served by a uid that may not run this supervisor: another user replaced
    /// it. Nothing was sent to it.
    #[error(
        "refusing to talk to {socket}: it is served by uid {found}, but this supervisor runs as {expected}; another user may have replaced the socket, and nothing was sent to it"
    )]
    Impostor {
        socket: String,
        found: u32,
        expected: String,
    },
    /// The answer could not be understood.
    #[error("control protocol error: {0}")]
    Protocol(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}
