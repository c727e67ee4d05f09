//! One way to wait on state the signal thread fills: hold the lock, check, sleep on the
//! condition variable until the next change or the deadline. The systemd backend, its helper
//! units and its scopes each keep such a state; they differ only in what they wait for and in
//! how they word the outcome.

use std::sync::{Condvar, MutexGuard};
use std::time::Instant;

/// How a wait ended.
pub(super) enum Waited<T> {
    /// `ready` found what it waited for.
    Ready(T),
    /// The signal connection ended (its reason): nothing will change any more.
    Lost(String),
    /// The deadline passed first.
    TimedOut,
}

/// Wait on `guard`'s state until `ready` returns something, `lost` reports the signal
/// connection gone, or `deadline` passes — checked in that order, after every change.
pub(super) fn until<S, T>(
    mut guard: MutexGuard<'_, S>,
    changed: &Condvar,
    deadline: Instant,
    mut ready: impl FnMut(&mut S) -> Option<T>,
    lost: impl Fn(&S) -> Option<&String>,
) -> Waited<T> {
    loop {
        if let Some(v) = ready(&mut guard) {
            return Waited::Ready(v);
        }
        if let Some(why) = lost(&guard) {
            return Waited::Lost(why.clone());
        }
        let now = Instant::now();
        if now >= deadline {
            return Waited::TimedOut;
        }
        guard = changed
            .wait_timeout(guard, deadline - now)
            .map(|(g, _)| g)
            .unwrap_or_else(|e| e.into_inner().0);
    }
}
