//! `sysg spawn`

use super::args::{Global, SpawnArgs};
use super::{error, EXIT_FAILURE};

/// `sysg spawn --name N [--ttl SECS] -- CMD..`
pub fn run(_g: &Global, a: &SpawnArgs) -> i32 {
    error(format!(
        "cannot spawn `{}`: dynamic spawning is not supported by this build yet",
        a.name
    ));
    EXIT_FAILURE
}
