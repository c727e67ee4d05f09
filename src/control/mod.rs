//! Control socket: a versioned JSON-lines protocol over a unix socket, the server the supervisor
//! runs, and the client every command uses.

pub mod access;
pub mod client;
pub mod config_view;
pub mod inspect;
pub mod protocol;
pub mod server;

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
