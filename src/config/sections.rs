//! Builders for the nested service sections: env, health checks, deployment, spawn,
//! limits, capabilities, isolation and hooks.

use std::time::Duration;

use super::node::Kind;
use super::reader::{did_you_mean, Ctx, Field};
use super::schema::{
    BlueGreen, CgroupLimits, Deployment, Env, HealthCheck, Hook, Hooks, Isolation, Limits, Probe,
    Spawn, SpawnMode, Strategy, TerminationPolicy,
};
use super::{caps, envfile, size, DiagKind, Diagnostic};

/// Env files larger than this are a mistake (a binary or a log), not configuration.
const MAX_ENV_FILE: u64 = 1024 * 1024;

pub(crate) fn env(ctx: &mut Ctx, f: &Field) -> Option<Env> {
    let mut m = f.map(ctx)?;
    let file = m.take("file");
    let vars = m.take("vars");
    m.finish(ctx);
    let mut out = Env::default();
    let mut ok = true;
    if let Some(file) = file {
        match file.text(ctx) {
            Some(p) => {
                let path = ctx.resolve(&p);
                match read_env_file(ctx, &file, &path) {
                    Some(pairs) => {
                        out.secret_keys = pairs.iter().map(|(k, _)| k.clone()).collect();
                        out.vars = pairs;
                    }
                    None => ok = false,
                }
                out.file = Some(path);
            }
            None => ok = false,
        }
    }
    if let Some(vars) = vars {
        match vars.map_as(ctx, "a mapping of variable names to values") {
            Some(mut vm) => {
                for (key, key_pos, value) in vm.take_all() {
                    if !envfile::valid_key(&key) {
                        ctx.err(
                            key_pos,
                            format!(
                                "{}: invalid variable name {key:?} (use letters, digits and _, not starting with a digit)",
                                vars.path
                            ),
                        );
                        ok = false;
                        continue;
                    }
                    let Some(v) = value.scalar(ctx) else {
                        ok = false;
                        continue;
                    };
                    match out.vars.iter_mut().find(|(k, _)| *k == key) {
                        Some(slot) => slot.1 = v,
                        None => out.vars.push((key, v)),
                    }
                }
                vm.finish(ctx);
            }
            None => ok = false,
        }
    }
    ok.then_some(out)
}

fn read_env_file(
    ctx: &mut Ctx,
    field: &Field,
    path: &std::path::Path,
) -> Option<Vec<(String, String)>> {
    let fail = |ctx: &mut Ctx, line: u64, column: u64, message: String| {
        ctx.push(Diagnostic {
            kind: DiagKind::EnvFile,
            file: path.to_path_buf(),
            line,
            column,
            message,
        });
    };
    // A file that cannot be read at all has no position of its own: point at `env.file`.
    let unreadable = |ctx: &mut Ctx, why: String| {
        let at = field.pos();
        ctx.push(Diagnostic {
            kind: DiagKind::EnvFile,
            file: ctx.file.clone(),
            line: at.line,
            column: at.column,
            message: format!("{}: env file {} {why}", field.path, path.display()),
        });
    };
    // Capped on the bytes read, never on `metadata().len()` (0 for a FIFO or a device).
    let bytes = match super::source::read_capped(path, MAX_ENV_FILE) {
        Ok(b) => b,
        Err(super::source::SourceError::TooLarge { .. }) => {
            unreadable(ctx, "is larger than 1 MiB, the limit".into());
            return None;
        }
        Err(e) => {
            unreadable(ctx, e.to_string());
            return None;
        }
    };
    let text = match String::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => {
            let (line, column) = line_col(e.as_bytes(), e.utf8_error().valid_up_to());
            fail(ctx, line, column, "env file is not valid UTF-8".into());
            return None;
        }
    };
    match envfile::parse(&text) {
        Ok(pairs) => Some(pairs),
        Err(errors) => {
            for e in errors {
                fail(ctx, e.line, e.column, e.message);
            }
            None
        }
    }
}

/// 1-based line and column (in characters) of a byte offset.
pub(crate) fn line_col(bytes: &[u8], offset: usize) -> (u64, u64) {
    let before = &bytes[..offset.min(bytes.len())];
    let line = before.iter().filter(|b| **b == b'\n').count() as u64 + 1;
    let line_start = before
        .iter()
        .rposition(|b| *b == b'\n')
        .map_or(0, |i| i + 1);
    let column = String::from_utf8_lossy(&before[line_start..])
        .chars()
        .count() as u64
        + 1;
    (line, column)
}

/// An `http://` or `https://` URL with a host.
pub(crate) fn http_url(ctx: &mut Ctx, f: &Field) -> Option<String> {
    let url = f.text(ctx)?;
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"));
    let Some(rest) = rest else {
        return f.expected(ctx, "a URL starting with http:// or https://");
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let (host, port) = if let Some(v6) = host_port.strip_prefix('[') {
        match v6.split_once(']') {
            Some((h, p)) => (h, p.strip_prefix(':')),
            None => ("", None),
        }
    } else {
        match host_port.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (host_port, None),
        }
    };
    let port_ok = port.is_none_or(|p| p.parse::<u16>().is_ok());
    if host.is_empty() || host.contains(char::is_whitespace) || !port_ok {
        return f.expected(ctx, "a URL with a host, like http://localhost:8080/health");
    }
    Some(url)
}

pub(crate) fn health_check(ctx: &mut Ctx, f: &Field) -> Option<HealthCheck> {
    let mut m = f.map(ctx)?;
    let url = m.take("url");
    let tcp = m.take("tcp");
    let command = m.take("command");
    let interval = m
        .take("interval")
        .map_or(Some(Duration::from_secs(5)), |d| d.positive_duration(ctx));
    let timeout = m
        .take("timeout")
        .map_or(Some(Duration::from_secs(5)), |d| d.positive_duration(ctx));
    let retries = m.take("retries").map_or(Some(3), |r| r.u32(ctx));
    let start_period = m
        .take("start_period")
        .map_or(Some(Duration::ZERO), |d| d.duration(ctx));
    let start_interval = m.take("start_interval").map(|d| d.positive_duration(ctx));
    let given: Vec<&Field> = [&url, &tcp, &command].into_iter().flatten().collect();
    let probe = match given.len() {
        0 => {
            let msg = format!(
                "{}: missing a probe: set one of `url`, `tcp` or `command`",
                m.path()
            );
            ctx.err(m.key_pos(), msg);
            None
        }
        1 => {
            if let Some(u) = &url {
                http_url(ctx, u).map(|url| Probe::Http { url })
            } else if let Some(t) = &tcp {
                tcp_probe(ctx, t)
            } else if let Some(c) = &command {
                c.text(ctx).map(|command| Probe::Command { command })
            } else {
                None
            }
        }
        _ => {
            let msg = format!("{}: set only one of `url`, `tcp` or `command`", m.path());
            ctx.err(given[1].key_pos, msg);
            None
        }
    };
    m.finish(ctx);
    Some(HealthCheck {
        probe: probe?,
        interval: interval?,
        timeout: timeout?,
        retries: retries?,
        start_period: start_period?,
        start_interval: match start_interval {
            Some(d) => d?,
            None => interval?,
        },
    })
}

fn tcp_probe(ctx: &mut Ctx, f: &Field) -> Option<Probe> {
    let text = f.text(ctx)?;
    let parsed = text.rsplit_once(':').and_then(|(h, p)| {
        let host = h
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(h);
        let port = p.parse::<u16>().ok().filter(|p| *p > 0)?;
        (!host.is_empty() && !host.contains(char::is_whitespace)).then(|| (host.to_string(), port))
    });
    match parsed {
        Some((host, port)) => Some(Probe::Tcp { host, port }),
        None => f.expected(ctx, "\"host:port\", like \"localhost:5432\""),
    }
}

const STRATEGIES: &[&str] = &["immediate", "rolling", "blue_green"];

pub(crate) fn deployment(ctx: &mut Ctx, f: &Field) -> Option<Deployment> {
    let mut m = f.map(ctx)?;
    let slots_field = m.take("blue_green");
    let has_slots = slots_field.is_some();
    let strategy = match m.take("strategy") {
        // A `blue_green` section alone asks for a blue-green deployment.
        None if has_slots => Some(Strategy::BlueGreen),
        None => Some(Strategy::Immediate),
        Some(s) => match s.choice(ctx, STRATEGIES) {
            Some("rolling") => Some(Strategy::Rolling),
            Some("blue_green") if !has_slots => s.error(
                ctx,
                "strategy `blue_green` needs a `blue_green` section with `env_var` and `slots`",
            ),
            Some("blue_green") => Some(Strategy::BlueGreen),
            Some(_) if has_slots => s.error(
                ctx,
                "a `blue_green` section needs `strategy: blue_green` (or `rolling`): `immediate` stops the old instance first",
            ),
            Some(_) => Some(Strategy::Immediate),
            None => None,
        },
    };
    let pre_start = m.take("pre_start").map(|p| p.text(ctx));
    let health = m.take("health_check").map(|h| health_check(ctx, &h));
    let grace_period = m
        .take("grace_period")
        .map_or(Some(Duration::ZERO), |g| g.duration(ctx));
    let blue_green = slots_field.map(|b| blue_green(ctx, &b));
    m.finish(ctx);
    Some(Deployment {
        strategy: strategy?,
        pre_start: transpose(pre_start)?,
        health_check: transpose(health)?,
        grace_period: grace_period?,
        blue_green: transpose(blue_green)?,
    })
}

/// `Some(None)` (present but invalid) becomes `None`; absent stays `Some(None)`.
fn transpose<T>(v: Option<Option<T>>) -> Option<Option<T>> {
    match v {
        None => Some(None),
        Some(Some(x)) => Some(Some(x)),
        Some(None) => None,
    }
}

fn blue_green(ctx: &mut Ctx, f: &Field) -> Option<BlueGreen> {
    let mut m = f.map(ctx)?;
    let env_var = m
        .require(
            ctx,
            "env_var",
            "the variable that tells the service its slot",
        )
        .and_then(|e| {
            let name = e.text(ctx)?;
            if envfile::valid_key(&name) {
                Some(name)
            } else {
                e.expected(
                    ctx,
                    "a variable name (letters, digits and _, not starting with a digit)",
                )
            }
        });
    let slots = m
        .require(ctx, "slots", "exactly two slot values, like [blue, green]")
        .and_then(|s| {
            let items = s.seq(ctx)?;
            if items.len() != 2 {
                return s.error(
                    ctx,
                    format!("expected exactly two slots, found {}", items.len()),
                );
            }
            let a = items[0].scalar(ctx);
            let b = items[1].scalar(ctx);
            let (a, b) = (a?, b?);
            if a == b {
                return items[1].error(ctx, format!("the two slots must differ (both are {a:?})"));
            }
            Some([a, b])
        });
    let switch_command = m.take("switch_command").map(|c| c.text(ctx));
    let state_path = m
        .take("state_path")
        .map(|p| p.text(ctx).map(|p| ctx.resolve(&p)));
    m.finish(ctx);
    Some(BlueGreen {
        env_var: env_var?,
        slots: slots?,
        switch_command: transpose(switch_command)?,
        state_path: transpose(state_path)?,
    })
}

const SPAWN_MODES: &[&str] = &["static", "dynamic"];
const TERMINATION: &[&str] = &["cascade", "orphan"];

pub(crate) fn spawn(ctx: &mut Ctx, f: &Field) -> Option<Spawn> {
    let mut m = f.map(ctx)?;
    let mode = m.take("mode").map_or(Some(SpawnMode::Static), |v| {
        v.choice(ctx, SPAWN_MODES).map(|v| match v {
            "dynamic" => SpawnMode::Dynamic,
            _ => SpawnMode::Static,
        })
    });
    let limits = m.take("limits");
    m.finish(ctx);
    let mut out = Spawn {
        mode: SpawnMode::Static,
        children: None,
        depth: None,
        descendants: None,
        total_memory: None,
        termination_policy: TerminationPolicy::Cascade,
        rate_per_sec: 10,
    };
    let Some(limits) = limits else {
        out.mode = mode?;
        return Some(out);
    };
    let mut l = limits.map(ctx)?;
    let children = l.take("children").map(|v| v.u32(ctx));
    let depth = l.take("depth").map(|v| v.u32(ctx));
    let descendants = l.take("descendants").map(|v| v.u32(ctx));
    let total_memory = l.take("total_memory").map(|v| v.size(ctx));
    let termination = l.take("termination_policy").map(|v| {
        v.choice(ctx, TERMINATION).map(|t| match t {
            "orphan" => TerminationPolicy::Orphan,
            _ => TerminationPolicy::Cascade,
        })
    });
    let rate = l.take("rate").map(|v| {
        let r = v.u32(ctx)?;
        if r == 0 {
            return v.error(ctx, "must be at least 1 spawn per second");
        }
        Some(r)
    });
    l.finish(ctx);
    out.mode = mode?;
    out.children = transpose(children)?;
    out.depth = transpose(depth)?;
    out.descendants = transpose(descendants)?;
    out.total_memory = transpose(total_memory)?;
    if let Some(t) = transpose(termination)? {
        out.termination_policy = t;
    }
    if let Some(r) = transpose(rate)? {
        out.rate_per_sec = r;
    }
    Some(out)
}

/// Linux CPUs are numbered below this (the kernel's maximum NR_CPUS).
const MAX_CPUS: i64 = 8192;

pub(crate) fn limits(ctx: &mut Ctx, f: &Field) -> Option<Limits> {
    let mut m = f.map(ctx)?;
    let nofile = m.take("nofile").map(|v| v.size(ctx));
    let nproc = m.take("nproc").map(|v| v.size(ctx));
    let memlock = m.take("memlock").map(|v| v.size(ctx));
    let nice = m
        .take("nice")
        .map(|v| v.int(ctx, -20, 19).map(|n| n as i32));
    let cpu_affinity = m.take("cpu_affinity").map(|v| {
        let items = v.seq(ctx)?;
        let cpus: Vec<u32> = items
            .iter()
            .filter_map(|i| i.int(ctx, 0, MAX_CPUS - 1).map(|n| n as u32))
            .collect();
        if cpus.len() != items.len() {
            return None;
        }
        if cpus.is_empty() {
            return v.expected(ctx, "a non-empty list of CPU numbers");
        }
        Some(cpus)
    });
    let cgroup = m.take("cgroup").map(|c| cgroup(ctx, &c));
    m.finish(ctx);
    Some(Limits {
        nofile: transpose(nofile)?,
        nproc: transpose(nproc)?,
        memlock: transpose(memlock)?,
        nice: transpose(nice)?,
        cpu_affinity: transpose(cpu_affinity)?,
        cgroup: transpose(cgroup)?.unwrap_or_default(),
    })
}

fn cgroup(ctx: &mut Ctx, f: &Field) -> Option<CgroupLimits> {
    let mut m = f.map(ctx)?;
    let memory_max = m.take("memory_max").map(|v| v.size(ctx));
    let cpu_max = m.take("cpu_max").map(|v| {
        let text = match &v.node.value {
            Kind::Str(s) => s.clone(),
            Kind::Int(i) => i.to_string(),
            _ => return v.expected(ctx, size::CPU_MAX_EXPECTED),
        };
        match size::parse_cpu_max(&text) {
            Ok(c) => Some(c),
            Err(_) => v.expected(ctx, size::CPU_MAX_EXPECTED),
        }
    });
    m.finish(ctx);
    Some(CgroupLimits {
        memory_max: transpose(memory_max)?,
        cpu_max: transpose(cpu_max)?,
    })
}

pub(crate) fn capabilities(ctx: &mut Ctx, f: &Field) -> Option<Vec<String>> {
    let items = f.seq(ctx)?;
    let mut out: Vec<String> = Vec::new();
    let mut ok = true;
    for item in items {
        let Some(name) = item.text(ctx) else {
            ok = false;
            continue;
        };
        match caps::canonical(&name) {
            Some(c) => {
                if !out.iter().any(|x| x == c) {
                    out.push(c.to_string());
                }
            }
            None => {
                let up = name.trim().to_ascii_uppercase();
                let full = if up.starts_with("CAP_") {
                    up
                } else {
                    format!("CAP_{up}")
                };
                let hint = did_you_mean(&full, caps::CAPABILITIES);
                item.error::<()>(ctx, format!("unknown capability {name:?}{hint}"));
                ok = false;
            }
        }
    }
    ok.then_some(out)
}

pub(crate) fn isolation(ctx: &mut Ctx, f: &Field) -> Option<Isolation> {
    let mut m = f.map(ctx)?;
    let network = m.take("network").map(|v| v.bool(ctx));
    let pid = m.take("pid").map(|v| v.bool(ctx));
    let mount = m.take("mount").map(|v| v.bool(ctx));
    m.finish(ctx);
    Some(Isolation {
        network: transpose(network)?.unwrap_or(false),
        pid: transpose(pid)?.unwrap_or(false),
        mount: transpose(mount)?.unwrap_or(false),
    })
}

pub(crate) fn hooks(ctx: &mut Ctx, f: &Field) -> Option<Hooks> {
    let mut m = f.map(ctx)?;
    let on_start = m.take("on_start").map(|h| hook(ctx, &h));
    let on_ready = m.take("on_ready").map(|h| hook(ctx, &h));
    let on_exit = m.take("on_exit").map(|h| hook(ctx, &h));
    let on_failure = m.take("on_failure").map(|h| hook(ctx, &h));
    let on_deploy = m.take("on_deploy").map(|h| hook(ctx, &h));
    m.finish(ctx);
    Some(Hooks {
        on_start: transpose(on_start)?,
        on_ready: transpose(on_ready)?,
        on_exit: transpose(on_exit)?,
        on_failure: transpose(on_failure)?,
        on_deploy: transpose(on_deploy)?,
    })
}

fn hook(ctx: &mut Ctx, f: &Field) -> Option<Hook> {
    const DEFAULT: Duration = Duration::from_secs(30);
    match &f.node.value {
        Kind::Str(_) => f.text(ctx).map(|command| Hook {
            command,
            timeout: DEFAULT,
        }),
        Kind::Map(_) => {
            let mut m = f.map(ctx)?;
            let command = m
                .require(ctx, "command", "the shell command to run")
                .and_then(|c| c.text(ctx));
            let timeout = m
                .take("timeout")
                .map_or(Some(DEFAULT), |t| t.positive_duration(ctx));
            m.finish(ctx);
            Some(Hook {
                command: command?,
                timeout: timeout?,
            })
        }
        _ => f.expected(ctx, "a shell command or a mapping {command, timeout}"),
    }
}

#[cfg(test)]
mod tests {
    use super::super::schema::{CpuMax, Size};
    use super::*;

    #[test]
    fn line_col_counts_chars() {
        assert_eq!(line_col(b"ab\ncd", 4), (2, 2));
        assert_eq!(line_col("é\nx".as_bytes(), 2), (1, 2));
        assert_eq!(line_col(b"", 0), (1, 1));
    }

    #[test]
    fn sizes_and_cpu_are_reexported() {
        assert_eq!(size::parse("1K"), Ok(Size::Value(1024)));
        assert_eq!(
            size::parse_cpu_max("50%"),
            Ok(CpuMax {
                quota_us: Some(50_000),
                period_us: 100_000
            })
        );
    }
}
