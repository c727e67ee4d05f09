//! Service output under the systemd backend: it goes to the journal (StandardOutput=journal),
//! and is read back with `journalctl`.
//!
//! The journal does not record which stream a line came from, so `Kind::Stdout` and
//! `Kind::Stderr` both show the unit's whole output. `journalctl` is used instead of a journal
//! library: it is always installed beside journald, handles rotation, `--follow` and access
//! rights, and keeps a C dependency out of the build.

use std::process::{Child, Command, Stdio};

use crate::logs::Kind;

use super::naming;

/// The `journalctl` arguments that show the last `lines` lines of a service (then follow).
///
/// `-o short-iso` prints `timestamp identifier[pid]: message`, the journal's counterpart of the
/// process backend's stamped log lines.
pub fn journal_args(
    system: bool,
    project: &str,
    service: &str,
    lines: usize,
    follow: bool,
) -> Vec<String> {
    let unit = naming::unit_name(project, service);
    // A deployment's candidates run as `sysg-<project>-<service>\x7eN.service`; journalctl
    // matches unit globs with fnmatch, where `\` escapes, hence `?` for every backslash.
    let instances = naming::unit_name(project, &crate::spec::instance_key(service, 0))
        .replace('\\', "?")
        .replace("?x7e0.service", "?x7e*.service");
    let flag = if system { "--unit" } else { "--user-unit" };
    let mut args = vec![flag.to_string(), unit, flag.to_string(), instances];
    args.extend(["--output", "short-iso", "--no-pager", "--lines"].map(String::from));
    args.push(lines.to_string());
    if follow {
        args.push("--follow".to_string());
    }
    args
}

/// Spawn `journalctl` for a service's output, stdout piped for the caller to read (and, with
/// `follow`, to stop by killing the child). `Kind::Supervisor` is not in the unit's journal.
pub fn journal_lines(
    system: bool,
    project: &str,
    service: &str,
    kind: Kind,
    lines: usize,
    follow: bool,
) -> std::io::Result<Child> {
    if kind == Kind::Supervisor {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "the supervisor's own log is not part of a unit's journal",
        ));
    }
    Command::new("journalctl")
        .args(journal_args(system, project, service, lines, follow))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_and_user_args() {
        assert_eq!(
            journal_args(true, "shop", "web", 50, false),
            [
                "--unit",
                "sysg-shop-web.service",
                "--unit",
                "sysg-shop-web?x7e*.service",
                "--output",
                "short-iso",
                "--no-pager",
                "--lines",
                "50"
            ]
        );
        let user = journal_args(false, "my-app", "w", 5, true);
        assert_eq!(user[0], "--user-unit");
        assert_eq!(user[1], "sysg-my\\x2dapp-w.service");
        assert_eq!(user.last().map(String::as_str), Some("--follow"));
    }

    #[test]
    fn supervisor_kind_is_refused() {
        let e = journal_lines(true, "p", "s", Kind::Supervisor, 1, false).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
    }
}
