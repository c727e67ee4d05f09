//! Starting several units at once: every start call is made first, then each start job is
//! waited for. systemd forks each unit's process as soon as its job runs, so the units' set-up
//! (a sandbox's mount namespace and seccomp filter, above all) overlaps instead of running one
//! unit after the other, and the supervisor waits for all of them once.

use super::sockets::SocketPlan;
use super::SystemdBackend;
use crate::backend::BackendError;
use crate::spec::UnitSpec;

/// A start whose call systemd answered: the job to wait for.
pub(super) struct Submitted {
    /// The service (core unit) name.
    pub service: String,
    /// The systemd unit name and its object path (the track's key).
    pub name: String,
    pub path: String,
    /// The start job's object path.
    pub job: String,
    /// How the unit was started, when it has sockets.
    pub via_socket: Option<SocketPlan>,
    /// `readiness: notify`: the start job ends at READY=1, so the wait ends at a main process.
    pub notify: bool,
}

impl SystemdBackend {
    /// Start `specs`: one result per spec, in order, each the same as `start` would give. One
    /// unit's failure (at the call or in its job) leaves the others alone. A service named
    /// twice is started the second time only after the first start finished.
    pub(super) fn start_pipelined(&mut self, specs: &[UnitSpec]) -> Vec<Result<u32, BackendError>> {
        let mut results = Vec::with_capacity(specs.len());
        // Submitted starts not waited for yet, with their index in `specs`.
        let mut pending: Vec<(usize, Result<Submitted, BackendError>)> = Vec::new();
        for (i, spec) in specs.iter().enumerate() {
            let again = pending.iter().any(|(j, _)| specs[*j].name == spec.name);
            if again {
                self.finish_all(&mut pending, &mut results);
            }
            let submitted = self.submit_start(spec);
            pending.push((i, submitted));
        }
        self.finish_all(&mut pending, &mut results);
        results
    }

    /// Wait for every pending start, in order, appending its result.
    fn finish_all(
        &mut self,
        pending: &mut Vec<(usize, Result<Submitted, BackendError>)>,
        results: &mut Vec<Result<u32, BackendError>>,
    ) {
        for (_, submitted) in pending.drain(..) {
            results.push(submitted.and_then(|s| self.finish_start(s)));
        }
    }
}
