//! Restart policy: whether an ending leads to a restart, and how long to wait first.
//!
//! Pure functions of the policy, the ending and the consecutive-restart counter, so that the
//! numbers (1s, 2s, 4s, .. capped) can be checked without any unit state around them.

use std::time::Duration;

use crate::config::schema::RestartPolicy;
use crate::spec::ExitStatus;

/// Upper bound of the exponential backoff (unless the base backoff itself is larger).
pub const MAX_BACKOFF: Duration = Duration::from_secs(5 * 60);

/// A unit that ran at least this long before exiting has its consecutive-restart counter reset,
/// so a service that crashes once a day does not creep towards `max_restarts` or the cap.
pub const STABLE_RUN: Duration = Duration::from_secs(60);

/// How a unit's attempt to run ended, as seen by the policy.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Ending {
    /// The main process ended on its own.
    Exit(ExitStatus),
    /// The backend could not start the process; treated like a failed run.
    StartFailed(String),
    /// The process was stopped because its health check failed (the text says how).
    Unhealthy(String),
    /// The backend refused the unit's configuration: a configuration error, never retried.
    Refused(String),
}

impl Ending {
    /// True for the one ending that counts as success: exit code 0.
    pub(crate) fn success(&self) -> bool {
        matches!(self, Ending::Exit(s) if s.success())
    }

    /// Short human description, used in reasons and reports.
    pub(crate) fn describe(&self) -> String {
        match self {
            Ending::Exit(status) => status.to_string(),
            Ending::StartFailed(error) => format!("start failed: {error}"),
            Ending::Unhealthy(what) => what.clone(),
            Ending::Refused(error) => format!("configuration error: {error}"),
        }
    }
}

/// What the policy decided after an ending.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Decision {
    /// Exit 0 and no restart wanted.
    Completed,
    /// No restart: the reason to show.
    Failed(String),
    /// Restart after `delay`; this is consecutive restart number `nth` (1-based).
    Restart { delay: Duration, nth: u32 },
}

/// The delay before the `nth` consecutive restart: `base * 2^(nth-1)`, capped at
/// `max(base, MAX_BACKOFF)`. `nth` 0 is treated like 1.
pub fn backoff_delay(base: Duration, nth: u32) -> Duration {
    let cap = base.max(MAX_BACKOFF);
    let exp = nth.saturating_sub(1);
    // Beyond 2^31 any non-zero base is far past the cap; saturate instead of overflowing.
    let factor = 2u32.checked_pow(exp);
    match factor.and_then(|f| base.checked_mul(f)) {
        Some(d) => d.min(cap),
        None if base.is_zero() => Duration::ZERO,
        None => cap,
    }
}

/// Whether `policy` asks for a restart after `ending`, ignoring limits.
pub(crate) fn wants_restart(policy: RestartPolicy, ending: &Ending) -> bool {
    match policy {
        RestartPolicy::Never => false,
        // A signal or an unobservable status counts as failure: only a clean 0 is success.
        RestartPolicy::OnFailure => !ending.success(),
        RestartPolicy::Always => true,
    }
}

/// Decide what follows `ending`, given how many consecutive restarts already happened.
pub(crate) fn decide(
    policy: RestartPolicy,
    base: Duration,
    max_restarts: Option<u32>,
    consecutive: u32,
    ending: &Ending,
) -> Decision {
    // The same configuration would be refused again: whatever the policy, no retry.
    if let Ending::Refused(_) = ending {
        return Decision::Failed(ending.describe());
    }
    if !wants_restart(policy, ending) {
        return if ending.success() {
            Decision::Completed
        } else {
            Decision::Failed(ending.describe())
        };
    }
    if let Some(max) = max_restarts {
        if consecutive >= max {
            // Only a failure is given up on; a clean exit at the limit simply completes.
            return if ending.success() {
                Decision::Completed
            } else {
                Decision::Failed(format!(
                    "gave up after {max} restart{}",
                    if max == 1 { "" } else { "s" }
                ))
            };
        }
    }
    let nth = consecutive.saturating_add(1);
    Decision::Restart {
        delay: backoff_delay(base, nth),
        nth,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn backoff_doubles_and_caps() {
        let got: Vec<_> = (1..=11).map(|n| backoff_delay(S(1), n)).collect();
        let want: Vec<_> = [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300]
            .into_iter()
            .map(S)
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn backoff_cap_is_at_least_base() {
        assert_eq!(backoff_delay(S(600), 1), S(600));
        assert_eq!(backoff_delay(S(600), 5), S(600));
    }

    #[test]
    fn backoff_extremes_do_not_overflow() {
        assert_eq!(backoff_delay(S(1), u32::MAX), MAX_BACKOFF);
        assert_eq!(backoff_delay(Duration::ZERO, u32::MAX), Duration::ZERO);
        assert_eq!(backoff_delay(Duration::MAX, 40), Duration::MAX);
        assert_eq!(
            backoff_delay(Duration::from_millis(100), 0),
            Duration::from_millis(100)
        );
    }

    #[test]
    fn policy_matrix() {
        use RestartPolicy::*;
        let ok = Ending::Exit(ExitStatus::Code(0));
        let bad = Ending::Exit(ExitStatus::Code(1));
        let sig = Ending::Exit(ExitStatus::Signal(9));
        let unk = Ending::Exit(ExitStatus::Unknown);
        let nostart = Ending::StartFailed("no such user".into());
        let sick = Ending::Unhealthy("unhealthy (3 probes failed)".into());
        for (policy, ending, restart) in [
            (Never, &ok, false),
            (Never, &bad, false),
            (Never, &sig, false),
            (OnFailure, &ok, false),
            (OnFailure, &bad, true),
            (OnFailure, &sig, true),
            (OnFailure, &unk, true),
            (OnFailure, &nostart, true),
            (Always, &ok, true),
            (Always, &bad, true),
            (Always, &nostart, true),
            (Never, &sick, false),
            (OnFailure, &sick, true),
            (Always, &sick, true),
        ] {
            assert_eq!(
                wants_restart(policy, ending),
                restart,
                "{policy:?} {ending:?}"
            );
        }
    }

    #[test]
    fn decide_outcomes() {
        let ok = Ending::Exit(ExitStatus::Code(0));
        let bad = Ending::Exit(ExitStatus::Code(3));
        assert_eq!(
            decide(RestartPolicy::Never, S(1), None, 0, &ok),
            Decision::Completed
        );
        assert_eq!(
            decide(RestartPolicy::Never, S(1), None, 0, &bad),
            Decision::Failed("exit 3".into())
        );
        assert_eq!(
            decide(RestartPolicy::OnFailure, S(1), Some(2), 2, &bad),
            Decision::Failed("gave up after 2 restarts".into())
        );
        assert_eq!(
            decide(RestartPolicy::OnFailure, S(1), Some(2), 1, &bad),
            Decision::Restart {
                delay: S(2),
                nth: 2
            }
        );
        assert_eq!(
            decide(RestartPolicy::Always, S(1), Some(0), 0, &bad),
            Decision::Failed("gave up after 0 restarts".into())
        );
        assert_eq!(
            decide(RestartPolicy::Always, S(1), Some(0), 0, &ok),
            Decision::Completed
        );
    }
}
