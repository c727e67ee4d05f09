//! `sysg inspect UNIT`: one service in detail, from the supervisor (state, processes, exits,
//! CPU and memory samples, the configuration in force) or, without one, from the config.

use std::time::Duration;

use serde_json::Value;

use super::args::{Global, InspectArgs};
use super::context::{resolve_live, Ctx};
use super::human::human_duration;
use super::output::{color_enabled, state_color, state_word};
use super::term::{print_once, stream, stream_interval, stream_mode, Frame};
use super::{error, EXIT_FAILURE, EXIT_USAGE};
use crate::control::inspect::{self, InspectReport, MetricsView};
use crate::control::protocol::Request;
use crate::control::{client, ControlError};
use crate::metrics::{cpu_percent, Sample, Summary};

/// `sysg inspect UNIT [--json] [--stream DUR]`
pub fn run(g: &Global, a: &InspectArgs) -> i32 {
    let ctx = match resolve_live(g) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let ctx = super::context::or_system_supervisor(g, ctx);
    let interval = match stream_interval(a.stream.as_deref()) {
        Ok(i) => i,
        Err(code) => return code,
    };
    let Some(interval) = interval else {
        return print_once(frame(&ctx, a, false));
    };
    stream(interval, stream_mode(a.json), || frame(&ctx, a, true))
}

fn frame(ctx: &Ctx, a: &InspectArgs, compact: bool) -> Frame {
    let report = match fetch(ctx, &a.unit) {
        Ok(r) => r,
        Err(code) => return Frame::Stop(code),
    };
    if a.json {
        let text = if compact {
            serde_json::to_string(&report)
        } else {
            serde_json::to_string_pretty(&report)
        };
        return match text {
            Ok(t) => Frame::Show(t + "\n"),
            Err(e) => {
                error(e);
                Frame::Stop(EXIT_FAILURE)
            }
        };
    }
    Frame::Show(render(&report, color_enabled()))
}

/// The report from the supervisor, or built from the config when none runs.
fn fetch(ctx: &Ctx, unit: &str) -> Result<InspectReport, i32> {
    match client::call(
        &ctx.paths,
        &ctx.project,
        Request::Inspect {
            service: unit.to_string(),
        },
        Some(Duration::from_secs(10)),
    ) {
        Ok(r) if r.ok => serde_json::from_value::<InspectReport>(r.data).map_err(|e| {
            error(format!("unreadable inspect answer: {e}"));
            EXIT_FAILURE
        }),
        Ok(r) => {
            let msg = r.error.unwrap_or_default();
            let usage = msg.starts_with("unknown service") || msg.contains("cron job");
            error(msg);
            Err(if usage { EXIT_USAGE } else { EXIT_FAILURE })
        }
        Err(ControlError::NotRunning { .. }) => offline(ctx, unit),
        Err(e) => {
            error(e);
            Err(EXIT_FAILURE)
        }
    }
}

fn offline(ctx: &Ctx, unit: &str) -> Result<InspectReport, i32> {
    let status = super::status::offline_report(ctx);
    let (Some(cfg), Some(st)) = (
        ctx.config.as_ref(),
        status.services.iter().find(|s| s.name == unit),
    ) else {
        error(format!(
            "unknown service `{unit}`; services are: {}",
            status
                .services
                .iter()
                .map(|s| s.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
        return Err(EXIT_USAGE);
    };
    let svc = cfg.service(unit);
    let (shown, config_defaults) = match svc.map(|s| inspect::config_of(s, &cfg.logs)) {
        Some((c, d)) => (Some(c), d),
        None => (None, Vec::new()),
    };
    Ok(InspectReport {
        name: unit.to_string(),
        project: ctx.project.clone(),
        backend: status.backend.clone(),
        unit_name: None,
        supervisor_pid: None,
        status: st.clone(),
        pids: st.pid.into_iter().collect(),
        // The history the last supervisor saved.
        exits: match crate::runtime::state::load(&ctx.paths.state_file) {
            Ok(crate::runtime::state::Loaded::Ok(mut st)) => st
                .exits
                .remove(unit)
                .map(|e| inspect::recent(e.iter()))
                .unwrap_or_default(),
            _ => Vec::new(),
        },
        health_history: Vec::new(),
        depends_on: svc.map(inspect::dependencies).unwrap_or_default(),
        dependents: inspect::dependents(&cfg.services, unit),
        config: shown,
        config_defaults,
        metrics: MetricsView {
            source: None,
            cgroup: None,
            interval_secs: None,
            capacity: 0,
            error: None,
            summary: Summary::default(),
            samples: Vec::new(),
        },
    })
}

/// `12.3 MiB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// A one-line chart of `values` (newest right), scaled from 0 (or the minimum, for
/// `from_zero == false`) to the maximum.
pub fn sparkline(values: &[f64], from_zero: bool) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let max = values.iter().copied().fold(f64::MIN, f64::max);
    let min = if from_zero {
        0.0
    } else {
        values.iter().copied().fold(f64::MAX, f64::min)
    };
    values
        .iter()
        .map(|v| {
            if max <= min {
                return BARS[0];
            }
            let i = ((v - min) / (max - min) * 7.0).round() as usize;
            BARS[i.min(7)]
        })
        .collect()
}

/// At most this many points in a sparkline.
const SPARK_POINTS: usize = 40;

fn pct(p: Option<f64>) -> String {
    p.map(|p| format!("{p:.1}%")).unwrap_or_else(|| "-".into())
}

/// The human view of a report.
pub fn render(r: &InspectReport, color: bool) -> String {
    let mut out = String::new();
    let mut field = |k: &str, v: String| {
        out.push_str(&format!("  {k:<11} {v}\n"));
    };
    let st = &r.status;
    let state = if color {
        format!(
            "\x1b[{}m{}\x1b[0m",
            state_color(st.state),
            state_word(st.state)
        )
    } else {
        state_word(st.state)
    };
    let mut head = format!("{} — {state}", r.name);
    if let (Some(u), "running") = (st.uptime_secs, state_word(st.state).as_str()) {
        head.push_str(&format!(" for {}", human_duration(u)));
    }
    let mut text = head + "\n";
    let backend = match (&r.unit_name, &r.metrics.cgroup) {
        (Some(u), _) => format!("{} ({u})", r.backend),
        (None, Some(cg)) => format!("{} (cgroup {})", r.backend, cg.display()),
        _ => r.backend.clone(),
    };
    field("backend", backend);
    if !r.pids.is_empty() {
        let mut p = r.pids[0].to_string();
        if r.pids.len() > 1 {
            let rest: Vec<String> = r.pids[1..].iter().map(|p| p.to_string()).collect();
            p.push_str(&format!(" (+ {})", rest.join(" ")));
        }
        field("pid", p);
    }
    field("restarts", st.restarts.to_string());
    if let Some(h) = &st.health {
        field("health", h.clone());
    }
    if let Some(n) = &st.notify {
        let text = super::output::notify_summary(n);
        field(
            "notify",
            if text.is_empty() {
                "ready".into()
            } else {
                text
            },
        );
    }
    if !r.health_history.is_empty() {
        let now = crate::runtime::observe::wall_now();
        // The last few probes, newest first: enough to see a trend without a wall of text.
        for (i, p) in r.health_history.iter().rev().take(5).enumerate() {
            field(
                if i == 0 { "probes" } else { "" },
                format!(
                    "{} {} ago: {}",
                    if p.ok { "pass" } else { "FAIL" },
                    human_duration(now - p.at),
                    p.detail
                ),
            );
        }
    }
    if let Some(reason) = &st.reason {
        field("reason", reason.clone());
    } else if let Some(n) = st.next_restart_secs {
        field("reason", format!("restart in {}", human_duration(n.ceil())));
    }
    let m = &r.metrics;
    if !m.samples.is_empty() {
        let s = &m.summary;
        let rates: Vec<f64> = m
            .samples
            .windows(2)
            .filter_map(|w| cpu_percent(&w[0], &w[1]))
            .collect();
        let mems: Vec<f64> = m.samples.iter().map(|s| s.memory_bytes as f64).collect();
        let tail = |v: &[f64]| v[v.len().saturating_sub(SPARK_POINTS)..].to_vec();
        let window = format!("over {}", human_duration(s.window_secs));
        field(
            "cpu",
            format!(
                "{} now · {} avg · {} max {window}  {}",
                pct(s.cpu_percent),
                pct(s.cpu_percent_avg),
                pct(s.cpu_percent_max),
                sparkline(&tail(&rates), true)
            ),
        );
        field(
            "memory",
            format!(
                "{} now · {} max  {}",
                s.memory_bytes.map(human_bytes).unwrap_or_default(),
                s.memory_bytes_max.map(human_bytes).unwrap_or_default(),
                sparkline(&tail(&mems), false)
            ),
        );
        let last: Option<&Sample> = m.samples.last();
        if let Some(l) = last {
            field(
                "cpu time",
                format!(
                    "{} in {} process{} ({})",
                    human_cpu(l.cpu_usec),
                    l.tasks,
                    if l.tasks == 1 { "" } else { "es" },
                    m.source
                        .map(|s| format!("{s:?}").to_lowercase())
                        .unwrap_or_default()
                ),
            );
        }
    } else if let Some(e) = &m.error {
        field("metrics", format!("unavailable: {e}"));
    } else if st.pid.is_some() && m.interval_secs.is_none() && r.supervisor_pid.is_some() {
        field(
            "metrics",
            "sampling is off (SYSG_METRICS_INTERVAL=off)".into(),
        );
    }
    if !r.exits.is_empty() {
        let now = crate::runtime::observe::wall_now();
        for (i, e) in r.exits.iter().rev().enumerate() {
            let ran = e
                .ran_secs
                .map(|s| format!(" after {}", human_duration(s)))
                .unwrap_or_default();
            field(
                if i == 0 { "last exits" } else { "" },
                format!(
                    "{} ago: {}{ran} (pid {})",
                    human_duration(now - e.at),
                    e.status,
                    e.pid
                ),
            );
        }
    } else if let Some(e) = st.last_exit {
        field("last exit", e.to_string());
    }
    if !r.depends_on.is_empty() {
        let d: Vec<String> = r
            .depends_on
            .iter()
            .map(|d| format!("{} ({})", d.service, d.condition))
            .collect();
        field("depends on", d.join(", "));
    }
    if !r.dependents.is_empty() {
        field("needed by", r.dependents.join(", "));
    }
    text.push_str(&out);
    if let Some(c) = &st.cron {
        text.push_str(&super::cron::details(
            &r.project,
            &r.name,
            c,
            chrono::Utc::now(),
        ));
    }
    if let Some(cfg) = &r.config {
        text.push_str("  config (as in the YAML; env values hidden):\n");
        let mut lines = Vec::new();
        flatten("", cfg, &mut lines);
        // In the order of the configuration reference (a stable sort keeps the rest).
        lines.sort_by_key(|(k, _)| crate::control::config_view::key_rank(k));
        for (k, v) in lines {
            let mark = if r.config_defaults.contains(&k) {
                " (default)"
            } else {
                ""
            };
            text.push_str(&format!("    {k}: {v}{mark}\n"));
        }
    }
    text
}

/// `1.50s`, `2m03s`.
fn human_cpu(usec: u64) -> String {
    let secs = usec as f64 / 1e6;
    if secs < 60.0 {
        format!("{secs:.2}s")
    } else {
        human_duration(secs)
    }
}

/// `key.path: value` lines of the settings, keys as in the YAML; a list of plain values is
/// written as a YAML flow list (`["./api", "--port", "80"]`).
fn flatten(prefix: &str, v: &Value, out: &mut Vec<(String, String)>) {
    let key = |k: &str| {
        if prefix.is_empty() {
            k.to_string()
        } else {
            format!("{prefix}.{k}")
        }
    };
    match v {
        Value::Null => {}
        Value::Array(a) if a.iter().all(|x| !x.is_object() && !x.is_array()) => {
            let items: Vec<String> = a.iter().map(Value::to_string).collect();
            out.push((prefix.to_string(), format!("[{}]", items.join(", "))));
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                flatten(&format!("{prefix}[{i}]"), x, out);
            }
        }
        Value::Object(m) => {
            for (k, x) in m {
                flatten(&key(k), x, out);
            }
        }
        other => out.push((prefix.to_string(), scalar(other))),
    }
}

fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::protocol::ServiceStatus;
    use crate::core::StateKind;
    use crate::spec::ExitStatus;

    #[test]
    fn bytes_and_sparklines() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(5 * 1024 * 1024), "5.0 MiB");
        assert_eq!(sparkline(&[0.0, 50.0, 100.0], true), "▁▅█");
        assert_eq!(sparkline(&[10.0, 10.0], false), "▁▁");
        assert_eq!(sparkline(&[], true), "");
    }

    fn report() -> InspectReport {
        let cfg = crate::config::load_str(
            "version: \"1\"\nservices:\n  db: {command: \"sleep 1\"}\n  web:\n    command: \"serve --port 8080\"\n    env: {vars: {API_TOKEN: hunter2}}\n    depends_on: [db]\n",
            std::path::Path::new("/tmp/p/systemg.yaml"),
        )
        .expect("valid");
        let svc = cfg.service("web").expect("web");
        let sample = |at: f64, cpu: u64| Sample {
            at,
            pid: 10,
            cpu_usec: cpu,
            memory_bytes: 1 << 20,
            tasks: 2,
        };
        let samples = vec![sample(0.0, 0), sample(2.0, 1_000_000)];
        InspectReport {
            name: "web".into(),
            project: "p".into(),
            backend: "process".into(),
            unit_name: None,
            supervisor_pid: Some(1),
            status: ServiceStatus {
                pid: Some(10),
                uptime_secs: Some(65.0),
                restarts: 2,
                last_exit: Some(ExitStatus::Code(1)),
                ..ServiceStatus::new("web", StateKind::Running)
            },
            pids: vec![10, 11],
            exits: vec![inspect::ExitRecord {
                at: 0.0,
                pid: 9,
                status: ExitStatus::Code(1),
                ran_secs: Some(3.0),
            }],
            health_history: Vec::new(),
            depends_on: inspect::dependencies(svc),
            dependents: vec![],
            config: Some(inspect::config_of(svc, &cfg.logs).0),
            config_defaults: inspect::config_of(svc, &cfg.logs).1,
            metrics: MetricsView {
                source: Some(crate::metrics::Source::Procfs),
                cgroup: None,
                interval_secs: Some(2.0),
                capacity: 300,
                error: None,
                summary: crate::metrics::summarize(samples.iter()),
                samples,
            },
        }
    }

    #[test]
    fn human_view() {
        let t = render(&report(), false);
        assert!(t.starts_with("web — running for 1m05s\n"), "{t}");
        assert!(t.contains("pid         10 (+ 11)"), "{t}");
        assert!(t.contains("cpu         50.0% now"), "{t}");
        assert!(t.contains("1.0 MiB now"), "{t}");
        assert!(t.contains("exit 1 after 3s (pid 9)"), "{t}");
        assert!(t.contains("depends on  db (started)"), "{t}");
        assert!(t.contains("env.keys: [\"API_TOKEN\"]"), "{t}");
        assert!(t.contains("    command: serve --port 8080\n"), "{t}");
        let config = t.split("  config (").nth(1).unwrap_or_default();
        assert!(
            config
                .lines()
                .nth(1)
                .is_some_and(|l| l.starts_with("    command:")),
            "the reference's order, command first: {t}"
        );
        assert!(t.contains("    stop_signal: SIGTERM (default)\n"), "{t}");
        assert!(t.contains("    logs.max_size: 10M (default)\n"), "{t}");
        assert!(t.contains("    stop_timeout: 10s (default)\n"), "{t}");
        for internal in ["run.", "probe", "number", "10485760"] {
            assert!(!t.contains(internal), "{internal}: {t}");
        }
        assert!(!t.contains("hunter2"), "{t}");
        assert!(!t.contains('\x1b'), "{t}");
        assert!(render(&report(), true).contains("\x1b[32mrunning"));
    }
}
