//! Human and JSON output: tables that fit the terminal, colour only on a TTY without NO_COLOR.

use std::io::IsTerminal;

use super::human::human_duration;
use super::table::{elide, Table};
use super::{EXIT_FAILURE, EXIT_OK};
use crate::control::protocol::{Response, ServiceStatus, StatusReport};
use crate::core::StateKind;

/// Colour on stdout?
pub fn color_enabled() -> bool {
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()) && std::io::stdout().is_terminal()
}

/// Colour on stderr?
pub fn color_enabled_stderr() -> bool {
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()) && std::io::stderr().is_terminal()
}

/// Print the outcome of a start/stop/restart request; returns the exit code.
pub fn print_outcome(resp: &Response) -> i32 {
    if resp.ok {
        if let Ok(report) = serde_json::from_value::<StatusReport>(resp.data.clone()) {
            let running: Vec<&str> = report
                .services
                .iter()
                .filter(|s| s.state == StateKind::Running)
                .map(|s| s.name.as_str())
                .collect();
            if !running.is_empty() {
                println!("running: {}", running.join(", "));
            }
            let scheduled: Vec<&str> = report
                .services
                .iter()
                .filter(|s| s.state == StateKind::Scheduled)
                .map(|s| s.name.as_str())
                .collect();
            if !scheduled.is_empty() {
                println!("scheduled: {}", scheduled.join(", "));
            }
        }
        EXIT_OK
    } else {
        for line in resp.error.as_deref().unwrap_or("failed").lines() {
            eprintln!("sysg: {line}");
        }
        EXIT_FAILURE
    }
}

/// Lines of a failed service's stderr shown when a start fails.
const FAILURE_TAIL: usize = 5;

/// After a failed start: for each service that failed (or is in backoff after failing),
/// the last lines of its stderr and the command that shows more, as compose and pm2 do.
/// `logs_cmd` is how `sysg logs` reaches this project (`sysg logs`, `sysg --config F logs`).
pub fn explain_failures(resp: &Response, log_dir: &std::path::Path, logs_cmd: &str) {
    if resp.ok {
        return;
    }
    let Ok(report) = serde_json::from_value::<StatusReport>(resp.data.clone()) else {
        return;
    };
    for s in report
        .services
        .iter()
        .filter(|s| matches!(s.state, StateKind::Failed | StateKind::Backoff))
    {
        let lines = crate::logs::tail(log_dir, &s.name, crate::logs::Kind::Stderr, FAILURE_TAIL)
            .unwrap_or_default();
        let mut out = String::new();
        if !lines.is_empty() {
            out.push_str(&format!("sysg: last lines of {}'s stderr:\n", s.name));
            for l in &lines {
                let text = crate::logs::parse_line(l).map_or(l.as_str(), |(_, t)| t);
                out.push_str(&format!("  {} | {text}\n", s.name));
            }
        }
        out.push_str(&format!("sysg: more with `{logs_cmd} -s {}`\n", s.name));
        let _ = std::io::Write::write_all(&mut std::io::stderr(), out.as_bytes());
    }
}

/// The state word as in JSON (`running`, `backoff`, ...).
pub fn state_word(s: StateKind) -> String {
    serde_json::to_value(s)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

pub(crate) fn state_color(s: StateKind) -> &'static str {
    match s {
        StateKind::Running | StateKind::Completed => "32",
        StateKind::Starting | StateKind::Stopping | StateKind::Waiting | StateKind::Backoff => "33",
        StateKind::Failed | StateKind::Blocked => "31",
        StateKind::Stopped => "2",
        StateKind::Scheduled => "36",
    }
}

/// One row per service: NAME STATE PID UPTIME RESTARTS LAST-EXIT HEALTH REASON, fitted to
/// `width` when given (a terminal: REASON is elided first) and never cut without one.
pub fn status_table(
    report: &StatusReport,
    services: &[&ServiceStatus],
    color: bool,
    width: Option<usize>,
) -> String {
    status_table_with(report, services, color, width, false)
}

/// The REASON of a running `readiness: notify` service: where it is in the protocol, then
/// its `STATUS=` text.
pub fn notify_summary(n: &crate::control::protocol::NotifyStatus) -> String {
    let phase = if n.reloading {
        Some("reloading")
    } else if n.stopping {
        Some("stopping")
    } else if !n.ready {
        Some("waiting for READY=1")
    } else {
        None
    };
    match (phase, &n.status) {
        (Some(p), Some(s)) => format!("{p}: {s}"),
        (Some(p), None) => p.to_string(),
        (None, Some(s)) => s.clone(),
        (None, None) => String::new(),
    }
}

/// `name` as a shell word: as it is when it needs no quoting, else in single quotes, so that
/// `sysg-my\x2dapp-web.service` can be pasted into `systemctl status …` as shown.
pub fn shell_word(name: &str) -> String {
    let plain = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "@%+=:,./_-~".contains(c));
    if plain {
        name.to_string()
    } else {
        format!("'{}'", name.replace('\'', "'\\''"))
    }
}

/// `status_table`, with the systemd unit of each service in a UNIT column after NAME when
/// `units` (`sysg status --units`), quoted for a shell when it has to be.
pub fn status_table_with(
    report: &StatusReport,
    services: &[&ServiceStatus],
    color: bool,
    width: Option<usize>,
    units: bool,
) -> String {
    let rows: Vec<Vec<String>> = services
        .iter()
        .map(|s| {
            vec![
                s.name.clone(),
                state_word(s.state),
                s.pid.map(|p| p.to_string()).unwrap_or_else(|| "-".into()),
                match (s.state, s.uptime_secs) {
                    (StateKind::Running, Some(u)) => human_duration(u),
                    _ => "-".into(),
                },
                s.restarts.to_string(),
                s.last_exit
                    .map(|e| e.to_string())
                    .unwrap_or_else(|| "-".into()),
                s.health.clone().unwrap_or_else(|| "-".into()),
                match (&s.reason, s.next_restart_secs) {
                    _ if s.cron.is_some() => s.cron.as_ref().map_or_else(String::new, |c| {
                        super::cron::summary(c, s.reason.as_deref(), chrono::Utc::now())
                    }),
                    (Some(r), _) => r.clone(),
                    (None, Some(n)) => format!("restart in {}", human_duration(n.ceil())),
                    _ => s.notify.as_ref().map(notify_summary).unwrap_or_default(),
                },
            ]
        })
        .collect();
    let colors = services
        .iter()
        .map(|s| {
            let mut c = vec![None; 8];
            c[1] = Some(state_color(s.state));
            c
        })
        .collect();
    let mut table = Table {
        header: vec![
            "NAME",
            "STATE",
            "PID",
            "UPTIME",
            "RESTARTS",
            "LAST EXIT",
            "HEALTH",
            "REASON",
        ],
        rows,
        colors,
        elastic: Some(7),
        // Least useful first when even an elided REASON does not fit.
        drop_order: vec![6, 4, 5, 3, 7, 2],
    };
    if units {
        // Never dropped nor elided: it was asked for, and a cut name is of no use.
        table.header.insert(1, "UNIT");
        for (row, s) in table.rows.iter_mut().zip(services) {
            let unit = s
                .unit_name
                .as_deref()
                .map_or_else(|| "-".into(), shell_word);
            row.insert(1, unit);
        }
        table.colors.iter_mut().for_each(|c| c.insert(1, None));
        table.elastic = table.elastic.map(|i| i + 1);
        table.drop_order.iter_mut().for_each(|i| *i += 1);
    }
    let title = format!(
        "project {} · backend {} · supervisor {} · config {}",
        report.project,
        report.backend,
        report
            .supervisor_pid
            .map(|p| format!("pid {p}"))
            .unwrap_or_else(|| "not running".into()),
        report.config.display()
    );
    let mut out = match width {
        Some(w) => elide(&title, w),
        None => title,
    };
    out.push('\n');
    out.push_str(&table.render(width, color));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(reason: &str) -> StatusReport {
        StatusReport {
            project: "proj".into(),
            config: "/p/systemg.yaml".into(),
            backend: "process".into(),
            supervisor_pid: Some(42),
            services: vec![ServiceStatus {
                restarts: 3,
                last_exit: Some(crate::spec::ExitStatus::Code(1)),
                reason: Some(reason.into()),
                ..ServiceStatus::new("web", StateKind::Blocked)
            }],
        }
    }

    #[test]
    fn status_table_fits_a_width_and_never_cuts_without_one() {
        let long = "dependency db failed: exit 1 after 3 restarts, waiting for it to recover";
        let r = report(long);
        let sel: Vec<&ServiceStatus> = r.services.iter().collect();
        let piped = status_table(&r, &sel, false, None);
        assert!(piped.contains(long), "{piped}");
        let narrow = status_table(&r, &sel, false, Some(70));
        assert!(narrow.lines().all(|l| l.chars().count() <= 70), "{narrow}");
        // REASON is elided before any column is dropped.
        assert!(
            narrow.contains("RESTARTS") && narrow.contains('…'),
            "{narrow}"
        );
        let tiny = status_table(&r, &sel, false, Some(30));
        assert!(tiny.lines().all(|l| l.chars().count() <= 30), "{tiny}");
        assert!(tiny.contains("web") && tiny.contains("blocked"), "{tiny}");
        assert!(!piped.contains('\x1b'));
        assert!(status_table(&r, &sel, true, None).contains("\x1b[31mblocked"));
    }

    #[test]
    fn units_column_shows_the_unit_ready_for_a_shell() {
        let mut r = report("x");
        r.services[0].unit_name = Some("sysg-my\\x2dapp-web.service".into());
        let sel: Vec<&ServiceStatus> = r.services.iter().collect();
        let t = status_table_with(&r, &sel, false, None, true);
        let header = t.lines().nth(1).unwrap_or_default();
        assert!(header.starts_with("NAME  UNIT"), "{t}");
        assert!(
            t.contains("web   'sysg-my\\x2dapp-web.service'  blocked"),
            "{t}"
        );
        let narrow = status_table_with(&r, &sel, false, Some(50), true);
        assert!(narrow.contains("'sysg-my\\x2dapp-web.service'"), "{narrow}");
        assert!(!status_table(&r, &sel, false, None).contains("UNIT"));
        r.services[0].unit_name = None;
        let sel: Vec<&ServiceStatus> = r.services.iter().collect();
        assert!(status_table_with(&r, &sel, false, None, true).contains("web   -     blocked"));
        assert_eq!(shell_word("sysg-p-web.service"), "sysg-p-web.service");
        assert_eq!(shell_word("a'b\\x"), "'a'\\''b\\x'");
    }
}
