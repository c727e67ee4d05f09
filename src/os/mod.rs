//! Operating-system primitives the rest of the crate builds on. This layer sits below config,
//! core, backends and runtime: everything may use it, and it uses nothing of the crate.
//!
//! `fs`: directories held as descriptors, files opened without following symbolic links,
//! ownership set on descriptors, atomic replacement through unique temporary files, and the
//! ownership checks that keep a privileged process from working through paths that a less
//! privileged user controls.
//!
//! `sock`: unix sockets bound and connected whatever the length of their path.
//!
//! `procfs`: /proc/PID/stat, parsed in one place.
//!
//! `signal`: signals sent to a process by pid.

pub mod fs;
pub mod procfs;
pub mod signal;
pub mod sock;
