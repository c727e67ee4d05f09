//! Human and JSON output: tables that fit the terminal, colour only on a TTY without NO_COLOR.

use std::io::IsTerminal;

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

/// The state word as in JSON (`running`, `backoff`, ...).
pub fn state_word(s: StateKind) -> String {
    serde_json::to_value(s)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// `1h02m`, `3m04s`, `12s`.
pub fn human_duration(secs: f64) -> String {
    let s = secs.max(0.0) as u64;
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{:02}s", s / 60, s % 60),
        3600..=86399 => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
        _ => format!("{}d{:02}h", s / 86400, (s % 86400) / 3600),
    }
}

fn paint(text: &str, code: &str, color: bool) -> String {
    if color {
        format!("\x1b[{code}m{text}\x1b[0m")
    } else {
        text.to_string()
    }
}

fn state_color(s: StateKind) -> &'static str {
    match s {
        StateKind::Running | StateKind::Completed => "32",
        StateKind::Starting | StateKind::Stopping | StateKind::Waiting | StateKind::Backoff => "33",
        StateKind::Failed | StateKind::Blocked => "31",
        StateKind::Stopped => "2",
        StateKind::Scheduled => "36",
    }
}

/// One row per service: NAME STATE PID UPTIME RESTARTS LAST-EXIT HEALTH REASON.
pub fn status_table(report: &StatusReport, services: &[&ServiceStatus], color: bool) -> String {
    let header = [
        "NAME",
        "STATE",
        "PID",
        "UPTIME",
        "RESTARTS",
        "LAST EXIT",
        "HEALTH",
        "REASON",
    ];
    let rows: Vec<[String; 8]> = services
        .iter()
        .map(|s| {
            [
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
                    _ => String::new(),
                },
            ]
        })
        .collect();
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let mut out = String::new();
    out.push_str(&format!(
        "project {} · backend {} · supervisor {}\n",
        report.project,
        report.backend,
        report
            .supervisor_pid
            .map(|p| format!("pid {p}"))
            .unwrap_or_else(|| "not running".into())
    ));
    let line = |cells: Vec<String>, raw: &[String]| -> String {
        let mut l = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                l.push_str(c);
            } else {
                let pad = widths[i].saturating_sub(raw[i].chars().count());
                l.push_str(c);
                l.push_str(&" ".repeat(pad + 2));
            }
        }
        l.trim_end().to_string()
    };
    let h: Vec<String> = header.iter().map(|s| s.to_string()).collect();
    out.push_str(&line(h.iter().map(|s| paint(s, "1", color)).collect(), &h));
    out.push('\n');
    for (r, s) in rows.iter().zip(services) {
        let mut cells: Vec<String> = r.to_vec();
        cells[1] = paint(&r[1], state_color(s.state), color);
        out.push_str(&line(cells, r));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(human_duration(5.2), "5s");
        assert_eq!(human_duration(65.0), "1m05s");
        assert_eq!(human_duration(3700.0), "1h01m");
        assert_eq!(human_duration(90000.0), "1d01h");
    }
}
