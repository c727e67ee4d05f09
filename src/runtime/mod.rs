//! The resident supervisor.
