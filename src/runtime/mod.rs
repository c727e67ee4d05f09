//! The resident supervisor: event loop, state dir, pid file, daemonizing, re-adoption.

pub mod adhoc;
pub mod daemon;
pub mod deploy;
pub mod helper_units;
pub mod instance;
pub mod observe;
pub mod paths;
pub mod plan;
pub mod privileges;
pub mod sd_notify;
pub mod state;
pub mod supervisor;

use thiserror::Error;

/// Supervisor failures.
#[derive(Debug, Error)]
pub enum RuntimeError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigErrors),
    #[error(transparent)]
    Backend(#[from] crate::backend::BackendError),
    #[error(transparent)]
    Control(#[from] crate::control::ControlError),
    #[error(transparent)]
    State(#[from] state::StateError),
    #[error(transparent)]
    Privilege(#[from] privileges::PrivilegeError),
    #[error(transparent)]
    Paths(#[from] paths::PathError),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Other(String),
}

impl RuntimeError {
    /// An I/O error with context.
    pub fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> RuntimeError {
        let context = context.into();
        move |source| RuntimeError::Io { context, source }
    }
}
