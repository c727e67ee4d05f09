//! systemd's answers in words: start-job failures with the set-up step that failed, D-Bus
//! errors with systemd's own message, and properties refused (by the manager, or before the call
//! because the running systemd is too old for them).

use super::properties;
use super::watch::Track;
use crate::backend::BackendError;
use crate::config::systemd_versions;

/// The main pid of a unit whose start job failed only because its program already ended:
/// exec() succeeded (no systemd setup exit code) and the process exited or was killed.
pub(super) fn ran_then_ended(t: &Track) -> Option<u32> {
    let pid = t.exec_main_pid;
    match t.exec_main? {
        (1, status) if !is_systemd_exit_code(status) && pid != 0 => Some(pid),
        (2 | 3, _) if pid != 0 => Some(pid),
        _ => None,
    }
}

/// Exit statuses systemd's service set-up uses (`EXIT_CHDIR` 200 … `EXIT_CREDENTIALS` 243 in
/// 252): the program never ran. A program that itself exits with one of these is taken for a
/// set-up failure, a documented limitation.
pub(super) fn is_systemd_exit_code(status: i32) -> bool {
    (200..=245).contains(&status)
}

/// A start-job failure in words, with the set-up step systemd reports when it is known.
pub(super) fn start_failure(name: &str, job: &str, t: &Track) -> String {
    let step = match t.exec_main {
        Some((1, 200)) => Some("changing to the working directory failed"),
        Some((1, 201)) => Some("setting the nice level failed"),
        Some((1, 203)) => Some("the program could not be executed (missing or not executable?)"),
        Some((1, 205)) => Some("setting resource limits failed"),
        Some((1, 216)) => Some("the group does not exist or could not be set"),
        Some((1, 217)) => Some("the user does not exist or could not be set"),
        Some((1, 218)) => Some("setting capabilities failed"),
        Some((1, 225)) => Some("setting up the network namespace failed"),
        Some((1, 226)) => Some("setting up the mount namespace failed"),
        Some((1, s)) if is_systemd_exit_code(s) => None,
        _ => None,
    };
    let result = t.result.as_deref().filter(|r| *r != "success");
    let mut msg = format!("systemd could not start {name}: job {job}");
    if let Some(r) = result {
        msg.push_str(&format!(", result {r}"));
    }
    if let Some((1, s)) = t.exec_main.filter(|(_, s)| is_systemd_exit_code(*s)) {
        msg.push_str(&format!(", set-up exit status {s}"));
    }
    if let Some(step) = step {
        msg.push_str(&format!(": {step}"));
    }
    msg.push_str(&format!(" (see `journalctl -u {name}`)"));
    msg
}

pub(super) fn is_no_such_unit(e: &zbus::Error) -> bool {
    matches!(e, zbus::Error::MethodError(name, _, _)
        if name.as_str() == "org.freedesktop.systemd1.NoSuchUnit")
}

/// The unit (object) disappeared between two calls.
pub(super) fn is_gone(e: &zbus::Error) -> bool {
    is_no_such_unit(e)
        || matches!(e, zbus::Error::MethodError(name, _, _)
            if name.as_str() == "org.freedesktop.DBus.Error.UnknownObject")
        || matches!(e, zbus::Error::FDO(f)
            if matches!(**f, zbus::fdo::Error::UnknownObject(_) | zbus::fdo::Error::UnknownMethod(_)))
}

pub(super) fn call_err(service: &str, what: &str, e: zbus::Error) -> BackendError {
    BackendError::Start {
        unit: service.to_string(),
        message: format!("{what}: {}", describe(&e)),
    }
}

/// A D-Bus error in words, with systemd's own message (which names the offending property).
pub(super) fn describe(e: &zbus::Error) -> String {
    match e {
        zbus::Error::MethodError(name, Some(detail), _) => {
            let hint = match name.as_str() {
                "org.freedesktop.DBus.Error.AccessDenied"
                | "org.freedesktop.DBus.Error.InteractiveAuthorizationRequired" => {
                    " (permission denied: use the user manager without --sys, or run as root)"
                }
                "org.freedesktop.systemd1.UnitExists" => " (a unit of that name already exists)",
                _ => "",
            };
            format!("{detail} [{name}]{hint}")
        }
        other => other.to_string(),
    }
}

/// systemd's message for a refused property names it ("Unknown assignment: PrivatePIDs=..." or
/// "Invalid ... for MemoryMax"); make that explicit when it does.
/// A property the running systemd is too old for, refused before the call (systemd would
/// answer "Unknown assignment" on every start).
pub(super) fn refuse_newer_properties(
    service: &str,
    props: &[properties::Property],
    version: &str,
) -> Result<(), BackendError> {
    let Some(major) = systemd_versions::parse_version(version) else {
        return Ok(());
    };
    match props
        .iter()
        .filter_map(|(k, _)| systemd_versions::need(k))
        .find(|n| n.since > major)
    {
        Some(n) => Err(BackendError::Refused {
            unit: service.to_string(),
            message: systemd_versions::refusal(service, n, version),
        }),
        None => Ok(()),
    }
}

/// systemd refused the unit's properties themselves (not a transient failure of the call).
pub(super) fn is_property_refusal(e: &zbus::Error) -> bool {
    matches!(e, zbus::Error::MethodError(name, _, _) if matches!(
        name.as_str(),
        "org.freedesktop.DBus.Error.InvalidArgs"
            | "org.freedesktop.DBus.Error.UnknownProperty"
            | "org.freedesktop.DBus.Error.PropertyReadOnly"
    ))
}

pub(super) fn start_call_err(
    service: &str,
    props: &[properties::Property],
    e: zbus::Error,
) -> BackendError {
    let refused = is_property_refusal(&e);
    let text = describe(&e);
    let named = props
        .iter()
        .map(|(k, _)| k.as_str())
        .find(|k| text.contains(&format!("{k}=")) || text.contains(&format!(" {k}")));
    let message = match named {
        Some(p) => match properties::config_field(p) {
            Some(field) => format!("systemd refused property {p} (from {field}): {text}"),
            None => format!("systemd refused property {p}: {text}"),
        },
        None => format!("systemd refused the transient unit: {text}"),
    };
    if refused {
        // A configuration error: every retry would be refused the same way.
        return BackendError::Refused {
            unit: service.to_string(),
            message,
        };
    }
    BackendError::Start {
        unit: service.to_string(),
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zbus::zvariant::Value;

    #[test]
    fn properties_newer_than_the_manager_are_refused_before_the_call() {
        let props = vec![
            ("PrivateMounts".to_string(), Value::Bool(true)),
            ("PrivatePIDs".to_string(), Value::Bool(true)),
        ];
        let e = refuse_newer_properties("web", &props, "252.39-1~deb12u1").unwrap_err();
        assert!(matches!(e, BackendError::Refused { .. }), "{e:?}");
        assert_eq!(
            e.to_string(),
            "web: services.web.isolation.pid: needs systemd 257 or later (property PrivatePIDs); the running systemd is 252.39-1~deb12u1: remove the field, or use the process backend (--backend process)"
        );
        assert!(refuse_newer_properties("web", &props, "257.1").is_ok());
        // An unreadable version leaves the decision to systemd.
        assert!(refuse_newer_properties("web", &props, "").is_ok());
    }

    #[test]
    fn errors_name_the_property() {
        let props = vec![("PrivatePIDs".to_string(), Value::Bool(true))];
        let e = start_call_err(
            "web",
            &props,
            zbus::Error::Failure("Unknown assignment: PrivatePIDs=yes".into()),
        );
        let s = e.to_string();
        assert!(
            s.starts_with("web: systemd refused property PrivatePIDs"),
            "{s}"
        );
    }
}
