//! `readiness`, `start_timeout` and `watchdog` as unit properties (issue 17).
//!
//! - `exec` readiness: `Type=exec`, the start job completes once execve() succeeded, so a
//!   missing binary is a start failure and MainPID is final when the job is done.
//! - `notify`: `Type=notify`; systemd gives the service `NOTIFY_SOCKET` and completes the start
//!   job at `READY=1`, failing it (result `timeout`) after `TimeoutStartSec=`. The backend's
//!   `start` does not wait for that: it returns once the unit has a main process.
//!   `NotifyAccess=all`: a message from any process of the unit's cgroup counts, as on the
//!   process backend (which hears every process of the unit), and a `command:` service whose
//!   daemon is a child of `/bin/sh` is heard at all (with `main` it would not be).
//! - `watchdog`: `WatchdogSec=` (systemd sets `WATCHDOG_USEC`/`WATCHDOG_PID`, sends SIGABRT on
//!   a miss, and the unit's result is `watchdog`).

use zbus::zvariant::Value;

use super::properties::Property;
use super::watch::Track;
use crate::backend::BackendEvent;
use crate::core::NotifyMessage;
use crate::spec::UnitSpec;

/// What the start-job wait answers for a notify unit that has a main process: `start`
/// returns then (the loop is not held while the service gets ready); `READY=1` comes later as
/// the unit turning `active`, a timeout as its `Result=timeout` (watch.rs).
pub const RUNNING: &str = "running";

/// What a `PropertiesChanged` of a notify unit's Service interface tells the core (before
/// `t.result` takes the new `result`): `StatusText` is its `STATUS=`; a `Result` that became
/// `watchdog` or `timeout` means systemd stops the service itself (missed watchdog, no
/// READY=1 within `TimeoutStartSec=`), and the core records why before the exit comes.
pub fn service_changed(
    t: &Track,
    result: Option<&str>,
    status: Option<String>,
    out: &mut Vec<BackendEvent>,
) {
    if !t.notify {
        return;
    }
    let mut say = |message| {
        out.push(BackendEvent::Notify {
            unit: t.service.clone(),
            pid: t.main_pid,
            message,
        })
    };
    if let Some(r) = result.filter(|r| t.result.as_deref() != Some(r)) {
        match r {
            "watchdog" => say(NotifyMessage::watchdog_expired()),
            "timeout" => say(NotifyMessage::start_timed_out()),
            _ => {}
        }
    }
    if let Some(text) = status {
        say(NotifyMessage::status(text));
    }
}

/// A notify unit's `ActiveState` became `new` (`t.active_state` is still the old one):
/// `activating`/`reloading` → `active` is its READY=1, `active` → `reloading` its RELOADING=1.
pub fn state_changed(t: &Track, new: &str, out: &mut Vec<BackendEvent>) {
    if !t.notify {
        return;
    }
    let message = match (t.active_state.as_deref(), new) {
        (Some("active"), "reloading") => NotifyMessage {
            reloading: true,
            ..NotifyMessage::default()
        },
        (Some("reloading" | "activating"), "active") => NotifyMessage::ready(),
        _ => return,
    };
    out.push(BackendEvent::Notify {
        unit: t.service.clone(),
        pid: t.main_pid,
        message,
    });
}

fn usec(d: std::time::Duration) -> Value<'static> {
    Value::U64(u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// The `Type` property and, for a notify unit, its readiness and watchdog properties.
pub fn properties(spec: &UnitSpec) -> Vec<Property> {
    let r = &spec.readiness;
    if !r.notify {
        return vec![("Type".into(), Value::from("exec"))];
    }
    let mut p: Vec<Property> = vec![
        ("Type".into(), Value::from("notify")),
        ("NotifyAccess".into(), Value::from("all")),
        // Zero is no limit: systemd's "infinity".
        (
            "TimeoutStartUSec".into(),
            if r.start_timeout.is_zero() {
                Value::U64(u64::MAX)
            } else {
                usec(r.start_timeout)
            },
        ),
    ];
    if let Some(w) = r.watchdog {
        p.push(("WatchdogUSec".into(), usec(w)));
    }
    p
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::spec::Readiness;

    #[test]
    fn a_notify_units_changes_become_notifications_and_others_say_nothing() {
        let mut t = Track {
            notify: true,
            active_state: Some("activating".into()),
            ..Track::new("db", "sysg-p-db.service")
        };
        let mut out = Vec::new();
        state_changed(&t, "active", &mut out);
        service_changed(&t, Some("watchdog"), Some("up".into()), &mut out);
        let got: Vec<NotifyMessage> = out
            .into_iter()
            .map(|e| match e {
                BackendEvent::Notify { message, .. } => message,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            got,
            vec![
                NotifyMessage::ready(),
                NotifyMessage::watchdog_expired(),
                NotifyMessage::status("up".into()),
            ]
        );
        t.notify = false;
        let mut out = Vec::new();
        state_changed(&t, "active", &mut out);
        service_changed(&t, Some("timeout"), Some("x".into()), &mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn notify_units_get_type_notify_access_timeouts_and_watchdog() {
        let plain = UnitSpec::new("p", "a", vec!["/bin/true".into()]);
        let p = properties(&plain);
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].0, "Type");
        assert_eq!(p[0].1, Value::from("exec"));
        let spec = UnitSpec {
            readiness: Readiness {
                notify: true,
                start_timeout: Duration::from_secs(30),
                watchdog: Some(Duration::from_millis(2500)),
            },
            ..plain
        };
        let p = properties(&spec);
        let get = |k: &str| p.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        assert_eq!(get("Type"), Some(Value::from("notify")));
        assert_eq!(get("NotifyAccess"), Some(Value::from("all")));
        assert_eq!(get("TimeoutStartUSec"), Some(Value::U64(30_000_000)));
        assert_eq!(get("WatchdogUSec"), Some(Value::U64(2_500_000)));
    }
}
