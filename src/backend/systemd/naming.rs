//! Unit names and D-Bus object paths of systemg's transient units.
//!
//! Names follow `systemd-escape` so they are valid for any project or service name and stay the
//! same across restarts; object paths follow systemd's bus-label escaping so a unit's path can be
//! computed (and matched) before the unit exists.

/// Prefix of every unit systemg creates.
pub const PREFIX: &str = "sysg-";

/// Longest unit name systemd accepts (`UNIT_NAME_MAX` minus the terminating NUL).
pub const UNIT_NAME_MAX: usize = 255;

/// Base of every unit object path.
pub const UNIT_PATH_BASE: &str = "/org/freedesktop/systemd1/unit";

/// Escape one name component like `systemd-escape` does.
///
/// Unlike `systemd-escape` (which turns `/` into `-` because it escapes paths), `/` is escaped
/// as `\x2f`: a component must never contain a literal `-`, which is what keeps
/// `sysg-<project>-<service>` reversible.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for (i, b) in s.bytes().enumerate() {
        let plain = b.is_ascii_alphanumeric() || matches!(b, b':' | b'_' | b'.');
        // A leading dot would make a hidden-looking name; systemd escapes it too.
        if plain && !(i == 0 && b == b'.') {
            out.push(b as char);
        } else {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

/// Undo `escape`; `None` when the text is not a valid escaped component.
pub fn unescape(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' {
            if bytes.get(i + 1) != Some(&b'x') {
                return None;
            }
            let hex = s.get(i + 2..i + 4)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The slice every unit of a project lives in: `sysg-<project>.slice`.
pub fn slice_name(project: &str) -> String {
    format!("{PREFIX}{}.slice", escape(project))
}

/// The unit name of a service: `sysg-<project>-<service>.service`; of a spawned child
/// (`<service>/<child>`): `sysg-<project>-<service>-<child>.service`.
pub fn unit_name(project: &str, service: &str) -> String {
    let parts: Vec<String> = service.split('/').map(escape).collect();
    format!("{PREFIX}{}-{}.service", escape(project), parts.join("-"))
}

/// The scope the process backend registers a unit's forked process in: the unit's name
/// (`unit_name`) with `.scope` instead of `.service`.
pub fn scope_name(project: &str, service: &str) -> String {
    let name = unit_name(project, service);
    let stem = name.strip_suffix(".service").unwrap_or(&name);
    format!("{stem}.scope")
}

/// The slice holding a service's spawned children: `sysg-<project>-<service>.slice` (inside the
/// project slice, by systemd's dash hierarchy), carrying the tree's shared limits.
pub fn tree_slice_name(project: &str, service: &str) -> String {
    format!("{PREFIX}{}-{}.slice", escape(project), escape(service))
}

/// The timer unit of a cron job: `sysg-<project>-<job>.timer`; it starts the job's service
/// unit of the same name.
pub fn timer_name(project: &str, service: &str) -> String {
    format!("{PREFIX}{}-{}.timer", escape(project), escape(service))
}

/// A glob for `ListUnitsByPatterns` matching every timer of a project (see `project_pattern`).
pub fn project_timer_pattern(project: &str) -> String {
    format!("{PREFIX}{}-*.timer", escape(project).replace('\\', "?"))
}

/// A glob for `ListUnitsByPatterns` matching every service unit of a project.
///
/// Backslashes of escaped characters become `?`: systemd matches patterns with fnmatch, where a
/// backslash would escape the next character. Callers filter the results exactly with
/// `service_of_unit`.
pub fn project_pattern(project: &str) -> String {
    format!("{PREFIX}{}-*.service", escape(project).replace('\\', "?"))
}

/// The service name encoded in a unit name of `project`, if the unit is one of its services.
pub fn service_of_unit(project: &str, unit: &str) -> Option<String> {
    let rest = unit
        .strip_prefix(PREFIX)?
        .strip_prefix(&escape(project))?
        .strip_prefix('-')?
        .strip_suffix(".service")?;
    // `<service>` or, for a spawned child, `<service>-<child>` (components never hold a `-`).
    let parts: Vec<&str> = rest.split('-').collect();
    if parts.len() > 2 || parts.iter().any(|p| p.is_empty()) {
        return None;
    }
    let names: Option<Vec<String>> = parts.into_iter().map(unescape).collect();
    Some(names?.join("/"))
}

/// The job name encoded in a timer unit name of `project`, if the unit is one of its timers.
pub fn job_of_timer(project: &str, unit: &str) -> Option<String> {
    let rest = unit
        .strip_prefix(PREFIX)?
        .strip_prefix(&escape(project))?
        .strip_prefix('-')?
        .strip_suffix(".timer")?;
    if rest.is_empty() || rest.contains('-') {
        return None;
    }
    unescape(rest)
}

/// The slice holding every project slice (`sysg-<project>.slice` nests in it by systemd's
/// dash hierarchy).
pub const ROOT_SLICE: &str = "sysg.slice";

/// A glob for `ListUnitsByPatterns` matching every unit systemg makes, of any project.
pub const ALL_PATTERN: &str = "sysg-*";

/// Whether `unit` is one of `project`'s units: its slice, or a service, slice, timer or scope
/// named `sysg-<project>-…` (an escaped project never holds a `-`).
pub fn of_project(project: &str, unit: &str) -> bool {
    unit.strip_prefix(PREFIX)
        .and_then(|r| r.strip_prefix(&escape(project)))
        .is_some_and(|r| r.starts_with('-') || r == ".slice")
}

/// Escape a string as a D-Bus object path label the way systemd does (`bus_label_escape`):
/// every byte except letters (and digits after the first position) becomes `_xx`.
pub fn bus_label_escape(s: &str) -> String {
    if s.is_empty() {
        return "_".to_string();
    }
    let mut out = String::with_capacity(s.len() * 3);
    for (i, b) in s.bytes().enumerate() {
        if b.is_ascii_alphabetic() || (i > 0 && b.is_ascii_digit()) {
            out.push(b as char);
        } else {
            out.push_str(&format!("_{b:02x}"));
        }
    }
    out
}

/// The object path systemd gives the unit `unit_name`.
pub fn unit_object_path(unit_name: &str) -> String {
    format!("{UNIT_PATH_BASE}/{}", bus_label_escape(unit_name))
}

/// Check that a unit name is short enough for systemd.
pub fn check_length(unit_name: &str) -> Result<(), String> {
    if unit_name.len() > UNIT_NAME_MAX {
        Err(format!(
            "unit name `{unit_name}` is {} bytes long; systemd accepts at most {UNIT_NAME_MAX}: use a shorter project or service name",
            unit_name.len()
        ))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spawned_children_get_their_own_units_in_a_tree_slice() {
        assert_eq!(unit_name("shop", "web/w1"), "sysg-shop-web-w1.service");
        assert_eq!(tree_slice_name("shop", "web"), "sysg-shop-web.slice");
        assert_eq!(
            service_of_unit("shop", "sysg-shop-web-w1.service").as_deref(),
            Some("web/w1")
        );
        assert_eq!(
            service_of_unit("my-app", &unit_name("my-app", "a-b/c-d")).as_deref(),
            Some("a-b/c-d")
        );
        assert_eq!(service_of_unit("shop", "sysg-shop-a-b-c.service"), None);
    }

    #[test]
    fn plain_names_stay_plain() {
        assert_eq!(unit_name("shop", "web"), "sysg-shop-web.service");
        assert_eq!(slice_name("shop"), "sysg-shop.slice");
        assert_eq!(unit_name("a.b", "c_d:e"), "sysg-a.b-c_d:e.service");
    }

    #[test]
    fn escapes_like_systemd_escape() {
        // `systemd-escape my-app` prints `my\x2dapp`; `systemd-escape 'a b'` prints `a\x20b`.
        assert_eq!(escape("my-app"), "my\\x2dapp");
        assert_eq!(escape("a b"), "a\\x20b");
        assert_eq!(escape(".hidden"), "\\x2ehidden");
        assert_eq!(escape("x.y"), "x.y");
        assert_eq!(escape("ü"), "\\xc3\\xbc");
        assert_eq!(escape("a/b"), "a\\x2fb");
        assert_eq!(
            unit_name("my-app", "api-v2"),
            "sysg-my\\x2dapp-api\\x2dv2.service"
        );
    }

    #[test]
    fn unescape_round_trips() {
        for s in ["web", "my-app", ".x", "a b/c", "ü-1", "x\\y"] {
            assert_eq!(unescape(&escape(s)).as_deref(), Some(s), "{s}");
        }
        assert_eq!(unescape("bad\\q"), None);
        assert_eq!(unescape("bad\\x4"), None);
    }

    #[test]
    fn service_is_recovered_from_unit_name() {
        let u = unit_name("my-app", "api-v2");
        assert_eq!(service_of_unit("my-app", &u).as_deref(), Some("api-v2"));
        assert_eq!(service_of_unit("my", &u), None);
        assert_eq!(service_of_unit("my-app", "sysg-my\\x2dapp.slice"), None);
        // Two components are a spawned child (`a/b`), three are nothing of ours.
        assert_eq!(
            service_of_unit("p", "sysg-p-a-b.service").as_deref(),
            Some("a/b")
        );
        assert_eq!(service_of_unit("p", "sysg-p-a-b-c.service"), None);
        assert_eq!(service_of_unit("p", "other-p-a.service"), None);
    }

    #[test]
    fn pattern_has_no_fnmatch_escapes() {
        assert_eq!(project_pattern("shop"), "sysg-shop-*.service");
        assert_eq!(project_pattern("my-app"), "sysg-my?x2dapp-*.service");
        assert_eq!(project_timer_pattern("my-app"), "sysg-my?x2dapp-*.timer");
    }

    #[test]
    fn timers_share_the_service_name() {
        assert_eq!(timer_name("shop", "backup"), "sysg-shop-backup.timer");
        assert_eq!(
            job_of_timer("my-app", &timer_name("my-app", "a-b")).as_deref(),
            Some("a-b")
        );
        assert_eq!(job_of_timer("my-app", &unit_name("my-app", "a")), None);
        assert_eq!(job_of_timer("my", &timer_name("my-app", "a")), None);
        assert_eq!(
            timer_name("my-app", "nightly-db"),
            "sysg-my\\x2dapp-nightly\\x2ddb.timer"
        );
    }

    #[test]
    fn object_paths_follow_bus_label_escaping() {
        assert_eq!(
            unit_object_path("sysg-web.service"),
            "/org/freedesktop/systemd1/unit/sysg_2dweb_2eservice"
        );
        assert_eq!(bus_label_escape("1a2"), "_31a2");
        assert_eq!(bus_label_escape(""), "_");
        assert_eq!(
            unit_object_path(&unit_name("my-app", "w")),
            "/org/freedesktop/systemd1/unit/sysg_2dmy_5cx2dapp_2dw_2eservice"
        );
    }

    #[test]
    fn overlong_names_are_refused() {
        assert!(check_length(&unit_name("p", "w")).is_ok());
        let long = "x".repeat(300);
        let err = check_length(&unit_name("p", &long)).unwrap_err();
        assert!(err.contains("at most 255"), "{err}");
    }

    #[test]
    fn units_of_a_project_are_told_from_others() {
        assert!(of_project("web", "sysg-web.slice"));
        assert!(of_project("web", "sysg-web-api.service"));
        assert!(of_project("web", "sysg-web-api.slice"));
        assert!(of_project("web", "sysg-web-backup.timer"));
        assert!(of_project("my-app", &unit_name("my-app", "w")));
        assert!(!of_project("web", "sysg-webshop.slice"));
        assert!(!of_project("web", "sysg-webshop-api.service"));
        assert!(!of_project("web", ROOT_SLICE));
        assert!(!of_project("web", "system.slice"));
    }
}
