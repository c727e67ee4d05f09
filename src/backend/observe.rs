//! What commands read of the systemd backend's units from outside the supervisor, in their
//! own process and with their own rights: services' output in the journal (`sysg logs`,
//! `sysg run --wait`) and the units a gone supervisor left running (`sysg status`).
//!
//! The CLI uses this surface, never the modules of `backend/systemd` themselves, so the
//! backend can arrange its files freely; what the supervisor serves to callers who may not
//! read the journal (`Request::Logs`) is built from the same `Query`.

pub use super::systemd::journal::{
    cursor, entry_json, journal_command, run_entry, stream_open, unit_entries, Query, RunEntry,
    Start,
};
pub use super::systemd::naming::unit_name;
pub use super::systemd::running_without_supervisor;
