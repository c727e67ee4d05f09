//! The fork/exec backend.
