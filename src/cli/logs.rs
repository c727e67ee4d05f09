//! `sysg logs`

use super::args::{Global, LogsArgs};
use super::{error, EXIT_FAILURE};

/// `sysg logs`
pub fn run(_g: &Global, _a: &LogsArgs) -> i32 {
    error("logs: pending");
    EXIT_FAILURE
}
