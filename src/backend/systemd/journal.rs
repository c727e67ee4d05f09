//! Service output under the systemd backend: it goes to the journal (StandardOutput=journal),
//! and is read back with `journalctl`.
//!
//! The journal does not record which stream a line came from, so stdout and stderr are shown
//! together. `journalctl` is used instead of a journal library: it is always installed beside
//! journald, handles rotation, `--follow` and access rights, and keeps a C dependency out of the
//! build.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chrono::{DateTime, Utc};

use super::naming;

/// What to read from the journal: the output of some services of a project.
#[derive(Debug, Clone, Default)]
pub struct Query<'a> {
    /// The system manager's journal (`--system`), else the user's (`--user`).
    pub system: bool,
    /// The project the services belong to.
    pub project: &'a str,
    /// Services (or spawned children, `web/worker`); each with every deployment instance.
    pub services: &'a [String],
    /// Lines at or after this instant.
    pub since: Option<DateTime<Utc>>,
    /// Lines at or before this instant.
    pub until: Option<DateTime<Utc>>,
    /// At most this many (the last ones).
    pub lines: Option<usize>,
    /// Keep printing new lines.
    pub follow: bool,
    /// One JSON object per entry (`--output json`, see `Entry::parse`), else `short-iso` text.
    pub json: bool,
}

/// The `journalctl` arguments for a query.
///
/// Every service brings two unit matches: its own unit and a glob for its deployment
/// instances (`sysg-<project>-<service>\x7eN.service`, the candidates of a rolling deployment,
/// which keep running as their own unit once promoted). `-o short-iso` prints
/// `timestamp identifier[pid]: message`, the journal's counterpart of the process backend's
/// stamped log lines.
pub fn journal_args(q: &Query) -> Vec<String> {
    let mut args = vec![if q.system { "--system" } else { "--user" }.to_string()];
    for service in q.services {
        args.extend(["--unit".to_string(), naming::unit_name(q.project, service)]);
        if let Some(glob) = instances_glob(q.project, service) {
            args.extend(["--unit".to_string(), glob]);
        }
    }
    let output = if q.json { "json" } else { "short-iso" };
    args.extend(["--output", output, "--no-pager"].map(String::from));
    args.extend(window_args(q.since, q.until, q.lines));
    if q.follow {
        args.push("--follow".to_string());
    }
    args
}

/// `journalctl` with the arguments of a query.
pub fn journal_command(q: &Query) -> Command {
    let mut cmd = Command::new("journalctl");
    cmd.args(journal_args(q));
    cmd
}

/// A glob matching the units of every deployment instance of a service; `None` for a spawned
/// child (`web/worker`), which is never deployed. journalctl matches unit globs with fnmatch,
/// where `\` escapes, hence `?` for every backslash of the escaped name.
fn instances_glob(project: &str, service: &str) -> Option<String> {
    if service.contains('/') {
        return None;
    }
    let unit = naming::unit_name(project, &crate::spec::instance_key(service, 0));
    let stem = unit.strip_suffix("0.service")?;
    Some(format!("{}*.service", stem.replace('\\', "?")))
}

/// journalctl's `--since`/`--until`/`--lines` for a window and a line limit. Times go as UTC
/// with microseconds (`2026-12-05 13:00:00.000000 UTC`, a form systemd.time(7) takes), so
/// the journal and the log files cut at the same instants.
fn window_args(
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
    limit: Option<usize>,
) -> Vec<String> {
    let stamp = |t: DateTime<Utc>| t.format("%Y-%m-%d %H:%M:%S%.6f UTC").to_string();
    let mut args = Vec::new();
    if let Some(s) = since {
        args.extend(["--since".to_string(), stamp(s)]);
    }
    if let Some(u) = until {
        args.extend(["--until".to_string(), stamp(u)]);
    }
    if let Some(n) = limit {
        args.extend(["--lines".to_string(), n.to_string()]);
    }
    args
}

/// One entry of `journalctl --output json`, in the terms of a project's services.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The service that wrote it (a deployment instance counts as its service), or the unit
    /// name when it is not one of the project's services.
    pub service: String,
    /// When it was written.
    pub time: Option<std::time::SystemTime>,
    /// The text (not valid UTF-8 is replaced).
    pub text: String,
}

impl Entry {
    /// Read one JSON line of `journalctl --output json`; `None` when it is not JSON.
    pub fn parse(project: &str, line: &str) -> Option<Entry> {
        let entry = serde_json::from_str::<serde_json::Value>(line).ok()?;
        let unit = ["_SYSTEMD_USER_UNIT", "_SYSTEMD_UNIT", "UNIT"]
            .iter()
            .find_map(|k| entry.get(*k).and_then(|v| v.as_str()))
            .unwrap_or("");
        let service = naming::service_of_unit(project, unit)
            .map(|s| crate::spec::service_of(&s).to_string())
            .unwrap_or_else(|| unit.to_string());
        // MESSAGE is a string, or an array of bytes when it is not valid UTF-8.
        let text = match entry.get("MESSAGE") {
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(serde_json::Value::Array(bytes)) => String::from_utf8_lossy(
                &bytes
                    .iter()
                    .filter_map(|b| b.as_u64().and_then(|b| u8::try_from(b).ok()))
                    .collect::<Vec<u8>>(),
            )
            .into_owned(),
            _ => String::new(),
        };
        let time = entry
            .get("__REALTIME_TIMESTAMP")
            .and_then(|v| v.as_str())
            .and_then(|v| v.parse::<u64>().ok())
            .map(|us| UNIX_EPOCH + Duration::from_micros(us));
        Some(Entry {
            service,
            time,
            text,
        })
    }
}

/// One entry of `journalctl --output json` in the shape of `sysg logs --json`:
/// `{service, stream: "journal", time, line}`.
pub fn entry_json(project: &str, line: &str) -> Option<serde_json::Value> {
    let entry = Entry::parse(project, line)?;
    Some(serde_json::json!({
        "service": entry.service,
        "stream": "journal",
        "time": entry.time.map(crate::logs::format_timestamp),
        "line": entry.text,
    }))
}

/// `journalctl`'s arguments for the last `lines` entries of `services`' units in a window
/// (microseconds since the epoch), as JSON: what the supervisor serves (`Request::Logs`).
/// The same `Query` as `sysg logs` run directly, so every deployment instance is read.
/// Every value is built here from typed input; nothing of the caller's reaches journalctl as
/// an option.
pub fn served_args(
    system: bool,
    project: &str,
    services: &[String],
    since_us: Option<i64>,
    until_us: Option<i64>,
    lines: usize,
) -> Vec<String> {
    journal_args(&Query {
        system,
        project,
        services,
        since: since_us.and_then(DateTime::from_timestamp_micros),
        until: until_us.and_then(DateTime::from_timestamp_micros),
        lines: Some(lines),
        follow: false,
        json: true,
    })
}

/// Run `journalctl` with `args` (from `served_args`) and collect at most `max` entries.
pub fn read_served(
    project: &str,
    args: &[String],
    max: usize,
) -> Result<Vec<serde_json::Value>, String> {
    use std::io::BufRead;
    let mut child = Command::new("journalctl")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("running journalctl: {e}"))?;
    let mut out = Vec::new();
    if let Some(stdout) = child.stdout.take() {
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if out.len() < max {
                out.extend(entry_json(project, &line));
            }
        }
    }
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        use std::io::Read;
        let _ = (&mut e).take(4096).read_to_string(&mut err);
    }
    match child.wait() {
        Ok(s) if s.success() => Ok(out),
        Ok(s) => Err(format!("journalctl failed ({s}): {}", err.trim())),
        Err(e) => Err(format!("waiting for journalctl: {e}")),
    }
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

    fn utc(s: &str) -> DateTime<Utc> {
        match DateTime::parse_from_rfc3339(s) {
            Ok(d) => d.with_timezone(&Utc),
            Err(e) => panic!("{s}: {e}"),
        }
    }

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
    fn every_instance_of_a_service() {
        let services = ["web".to_string()];
        let q = Query {
            system: true,
            project: "shop",
            services: &services,
            lines: Some(50),
            ..Query::default()
        };
        assert_eq!(
            journal_args(&q),
            [
                "--system",
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
        let services = ["w".to_string(), "w/child".to_string()];
        let user = journal_args(&Query {
            project: "my-app",
            services: &services,
            follow: true,
            json: true,
            ..Query::default()
        });
        assert_eq!(
            user,
            [
                "--user",
                "--unit",
                "sysg-my\\x2dapp-w.service",
                "--unit",
                "sysg-my?x2dapp-w?x7e*.service",
                "--unit",
                "sysg-my\\x2dapp-w-child.service",
                "--output",
                "json",
                "--no-pager",
                "--follow"
            ]
        );
    }

    #[test]
    fn served_args_are_built_from_typed_input() {
        let args = served_args(true, "shop", &["web".into()], Some(0), None, 20);
        assert_eq!(
            args,
            [
                "--system",
                "--unit",
                "sysg-shop-web.service",
                "--unit",
                "sysg-shop-web?x7e*.service",
                "--output",
                "json",
                "--no-pager",
                "--since",
                "1970-01-01 00:00:00.000000 UTC",
                "--lines",
                "20"
            ]
        );
        let e = entry_json(
            "shop",
            r#"{"_SYSTEMD_UNIT":"sysg-shop-web.service","MESSAGE":[104,105],"__REALTIME_TIMESTAMP":"0"}"#,
        )
        .unwrap();
        assert_eq!(
            (e["service"].as_str(), e["line"].as_str()),
            (Some("web"), Some("hi"))
        );
    }

    /// A group member's `sysg --sys logs -s api` (served by the supervisor) reads a promoted
    /// deployment instance's unit (`api~1`) as well as `api`'s, with the same window as
    /// `sysg logs` run by root.
    #[test]
    fn served_args_read_every_deployment_instance() {
        let services = ["api".to_string(), "api/worker".to_string()];
        let served = served_args(false, "shop", &services, None, Some(1_500_000), 7);
        let instances = "sysg-shop-api?x7e*.service".to_string();
        let at = served.iter().position(|a| *a == instances);
        assert!(
            at.is_some_and(|i| served[i - 1] == "--unit"),
            "no instance glob in {served:?}"
        );
        // A spawned child is never deployed: no glob of its own.
        assert_eq!(served.iter().filter(|a| a.contains('*')).count(), 1);
        let direct = journal_args(&Query {
            system: false,
            project: "shop",
            services: &services,
            until: Some(utc("1970-01-01T00:00:01.5Z")),
            lines: Some(7),
            json: true,
            ..Query::default()
        });
        assert_eq!(served, direct);
        let e = entry_json(
            "shop",
            r#"{"_SYSTEMD_UNIT":"sysg-shop-api\\x7e1.service","MESSAGE":"up"}"#,
        )
        .unwrap();
        assert_eq!(e["service"].as_str(), Some("api"));
    }

    #[test]
    fn window() {
        assert_eq!(window_args(None, None, Some(50)), ["--lines", "50"]);
        assert_eq!(
            window_args(
                Some(utc("2026-12-05T14:00:00+01:00")),
                Some(utc("2026-12-05T13:30:00.25Z")),
                None
            ),
            [
                "--since",
                "2026-12-05 13:00:00.000000 UTC",
                "--until",
                "2026-12-05 13:30:00.250000 UTC"
            ]
        );
        assert_eq!(
            window_args(Some(utc("2026-12-05T13:00:00Z")), None, Some(5)),
            ["--since", "2026-12-05 13:00:00.000000 UTC", "--lines", "5"]
        );
    }

    #[test]
    fn entries() {
        let e = Entry::parse(
            "shop",
            r#"{"_SYSTEMD_UNIT":"sysg-shop-web\\x7e1.service","MESSAGE":"hi","__REALTIME_TIMESTAMP":"1000000"}"#,
        );
        assert_eq!(
            e,
            Some(Entry {
                service: "web".into(),
                time: Some(UNIX_EPOCH + Duration::from_secs(1)),
                text: "hi".into()
            })
        );
        let e = Entry::parse("shop", r#"{"UNIT":"other.service","MESSAGE":[104,255]}"#);
        assert_eq!(
            e.map(|e| (e.service, e.time, e.text)),
            Some(("other.service".into(), None, "h\u{fffd}".into()))
        );
        assert_eq!(Entry::parse("shop", "not json"), None);
    }
}
