//! Service output under the systemd backend: it goes to the journal (StandardOutput=journal),
//! and is read back with `journalctl`.
//!
//! The journal does not record which stream a line came from, so `Kind::Stdout` and
//! `Kind::Stderr` both show the unit's whole output. `journalctl` is used instead of a journal
//! library: it is always installed beside journald, handles rotation, `--follow` and access
//! rights, and keeps a C dependency out of the build.

use std::process::{Child, Command, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

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

/// The `MESSAGE_ID`s the service manager logs when a unit's run is over: it succeeded, it
/// failed (with a result), its stop job finished, its start job failed. Each entry names the
/// unit in `UNIT=` (`USER_UNIT=` for a user manager).
const UNIT_ENDED: [&str; 4] = [
    "7ad2d189f7e94e70a38c781354912448",
    "d9b373ed55a64feb8242e02dbe79a49c",
    "9d1aaa27d60140bd96365438aad20286",
    "be02cf6855d2428ba40df7e9d022f03d",
];

/// One entry of a followed unit, for `sysg run --wait`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunEntry {
    /// A line the unit's processes wrote to stdout or stderr (the journal keeps one stream
    /// for both: stderr is a copy of stdout's descriptor when both go to the journal).
    Line(String),
    /// The service manager's entry that the unit's run is over: its processes are gone, but
    /// journald may still be writing their last lines (see `stream_open`).
    Ended,
    /// Anything else (the manager's other messages, syslog or native-protocol entries).
    Other,
}

/// Where a read of one unit's entries starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Start {
    /// Entries written at or after this time.
    Since(SystemTime),
    /// Entries after the one with this `__CURSOR`.
    After(String),
}

/// Spawn `journalctl` for one unit's entries as JSON from `from` on (then following them with
/// `follow`), stdout piped. Start a follower before the unit starts (`Since` a time taken
/// before the request): nothing is missed, and entries of an earlier unit of that name that
/// ended before it are not shown.
pub fn unit_entries(
    system: bool,
    unit: &str,
    from: &Start,
    follow: bool,
) -> std::io::Result<Child> {
    Command::new("journalctl")
        .args(unit_entries_args(system, unit, from, follow))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
}

fn unit_entries_args(system: bool, unit: &str, from: &Start, follow: bool) -> Vec<String> {
    let flag = if system { "--unit" } else { "--user-unit" };
    let mut args = vec![flag.to_string(), unit.to_string()];
    match from {
        Start::Since(t) => {
            let at = t.duration_since(UNIX_EPOCH).unwrap_or_default();
            args.push("--since".to_string());
            args.push(format!("@{}.{:06}", at.as_secs(), at.subsec_micros()));
        }
        Start::After(cursor) => {
            args.push("--after-cursor".to_string());
            args.push(cursor.clone());
        }
    }
    args.extend(["--output", "json", "--no-tail", "--no-pager"].map(String::from));
    if follow {
        args.push("--follow".to_string());
    }
    args
}

/// Where journald keeps a state file for each open stdout/stderr stream (root-only, for its own
/// restarts, marked private); it removes the file only after the stream ended and its last
/// lines were written to the journal. Only the presence of a `UNIT=` line is used here; when
/// the files cannot be read, callers fall back on the manager's end entry, then a deadline.
const STREAMS: &str = "/run/systemd/journal/streams";

/// Does journald still hold an output stream of `unit` open (lines may still be on their way
/// into the journal)? `None` when the streams cannot be read (not root).
pub fn stream_open(unit: &str) -> Option<bool> {
    let want = format!("UNIT={unit}");
    for e in std::fs::read_dir(STREAMS).ok()? {
        let text = std::fs::read_to_string(e.ok()?.path()).ok()?;
        if text.lines().any(|l| l == want) {
            return Some(true);
        }
    }
    Some(false)
}

/// The `__CURSOR` of one line of `journalctl --output json`.
pub fn cursor(json: &str) -> Option<String> {
    let e = serde_json::from_str::<serde_json::Value>(json).ok()?;
    e.get("__CURSOR")?.as_str().map(String::from)
}

/// What one line of `journalctl --output json` means for `unit`.
pub fn run_entry(system: bool, unit: &str, json: &str) -> RunEntry {
    let Ok(serde_json::Value::Object(e)) = serde_json::from_str::<serde_json::Value>(json) else {
        return RunEntry::Other;
    };
    let field = |k: &str| e.get(k).and_then(serde_json::Value::as_str);
    let (about, own) = if system {
        ("UNIT", "_SYSTEMD_UNIT")
    } else {
        ("USER_UNIT", "_SYSTEMD_USER_UNIT")
    };
    if field("MESSAGE_ID").is_some_and(|id| UNIT_ENDED.contains(&id)) && field(about) == Some(unit)
    {
        return RunEntry::Ended;
    }
    if field("_TRANSPORT") != Some("stdout") || field(own) != Some(unit) {
        return RunEntry::Other;
    }
    match e.get("MESSAGE") {
        Some(serde_json::Value::String(s)) => RunEntry::Line(s.clone()),
        // journalctl writes a message that is not valid UTF-8 (or has control characters) as
        // an array of bytes.
        Some(serde_json::Value::Array(bytes)) => {
            let raw: Vec<u8> = bytes
                .iter()
                .filter_map(|b| b.as_u64().and_then(|b| u8::try_from(b).ok()))
                .collect();
            RunEntry::Line(String::from_utf8_lossy(&raw).into_owned())
        }
        _ => RunEntry::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_entries_start_at_a_time_or_after_a_cursor() {
        let at = UNIX_EPOCH + std::time::Duration::from_micros(1_700_000_000_000_042);
        let a = unit_entries_args(true, "sysg-adhoc-sh.service", &Start::Since(at), true);
        assert_eq!(
            a[..4],
            [
                "--unit",
                "sysg-adhoc-sh.service",
                "--since",
                "@1700000000.000042"
            ]
        );
        assert!(a.contains(&"--follow".to_string()) && a.contains(&"json".to_string()));
        let b = unit_entries_args(false, "u", &Start::After("s=1".into()), false);
        assert_eq!(b[..4], ["--user-unit", "u", "--after-cursor", "s=1"]);
        assert!(!b.contains(&"--follow".to_string()));
        assert_eq!(
            cursor(r#"{"__CURSOR":"s=1;i=2","MESSAGE":"x"}"#).as_deref(),
            Some("s=1;i=2")
        );
        assert_eq!(cursor("{}"), None);
    }

    #[test]
    fn run_entries_are_told_apart() {
        let u = "sysg-adhoc-sh.service";
        let line = r#"{"_TRANSPORT":"stdout","_SYSTEMD_UNIT":"sysg-adhoc-sh.service","MESSAGE":"hi","PRIORITY":"6"}"#;
        assert_eq!(run_entry(true, u, line), RunEntry::Line("hi".into()));
        // Not UTF-8: an array of bytes.
        let bytes = r#"{"_TRANSPORT":"stdout","_SYSTEMD_UNIT":"sysg-adhoc-sh.service","MESSAGE":[104,255]}"#;
        assert_eq!(
            run_entry(true, u, bytes),
            RunEntry::Line("h\u{fffd}".into())
        );
        // Another unit's line, and the manager's other messages, are not the command's.
        let other = line.replace("adhoc-sh", "adhoc-web");
        assert_eq!(run_entry(true, u, &other), RunEntry::Other);
        let started = r#"{"_TRANSPORT":"journal","_PID":"1","UNIT":"sysg-adhoc-sh.service","MESSAGE_ID":"39f53479d3a045ac8e11786248231fbf","MESSAGE":"Started x."}"#;
        assert_eq!(run_entry(true, u, started), RunEntry::Other);
        for id in UNIT_ENDED {
            let end = format!(
                r#"{{"_TRANSPORT":"journal","_PID":"1","UNIT":"{u}","MESSAGE_ID":"{id}","MESSAGE":"x"}}"#
            );
            assert_eq!(run_entry(true, u, &end), RunEntry::Ended);
            // A user manager names the unit in USER_UNIT.
            assert_eq!(run_entry(false, u, &end), RunEntry::Other);
            let user = end.replace("\"UNIT\"", "\"USER_UNIT\"");
            assert_eq!(run_entry(false, u, &user), RunEntry::Ended);
        }
        assert_eq!(run_entry(true, u, "not json"), RunEntry::Other);
    }

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
