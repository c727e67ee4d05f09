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

/// One entry of `journalctl --output json` in the shape of `sysg logs --json`:
/// `{service, stream: "journal", time, line}`.
pub fn entry_json(project: &str, line: &str) -> Option<serde_json::Value> {
    use std::time::{Duration, UNIX_EPOCH};
    let entry = serde_json::from_str::<serde_json::Value>(line).ok()?;
    let unit = ["_SYSTEMD_USER_UNIT", "_SYSTEMD_UNIT", "UNIT"]
        .iter()
        .find_map(|k| entry.get(*k).and_then(|v| v.as_str()))
        .unwrap_or("");
    let service = naming::service_of_unit(project, unit).unwrap_or_else(|| unit.to_string());
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
        .map(|us| crate::logs::format_timestamp(UNIX_EPOCH + Duration::from_micros(us)));
    Some(serde_json::json!({
        "service": service,
        "stream": "journal",
        "time": time,
        "line": text,
    }))
}

/// `journalctl`'s arguments for the last `lines` entries of `services`' units in a window
/// (microseconds since the epoch), as JSON: what the supervisor serves (`Request::Logs`).
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
    let stamp = |us: i64| {
        chrono::DateTime::from_timestamp_micros(us)
            .map(|t| t.format("%Y-%m-%d %H:%M:%S%.6f UTC").to_string())
    };
    let mut args = vec![if system { "--system" } else { "--user" }.to_string()];
    for s in services {
        args.push("--unit".into());
        args.push(naming::unit_name(project, s));
    }
    args.extend(["--output", "json", "--no-pager", "--lines"].map(String::from));
    args.push(lines.to_string());
    if let Some(t) = since_us.and_then(stamp) {
        args.extend(["--since".to_string(), t]);
    }
    if let Some(t) = until_us.and_then(stamp) {
        args.extend(["--until".to_string(), t]);
    }
    args
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
    fn served_args_are_built_from_typed_input() {
        let args = served_args(true, "shop", &["web".into()], Some(0), None, 20);
        assert_eq!(
            args,
            [
                "--system",
                "--unit",
                "sysg-shop-web.service",
                "--output",
                "json",
                "--no-pager",
                "--lines",
                "20",
                "--since",
                "1970-01-01 00:00:00.000000 UTC"
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

    #[test]
    fn supervisor_kind_is_refused() {
        let e = journal_lines(true, "p", "s", Kind::Supervisor, 1, false).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
    }
}
