//! Builds the typed `Config` from the spanned tree: the top level and each service.

use std::time::Duration;

use super::graph::{self, Edge};
use super::node::{Kind, Node, Pos};
use super::reader::{did_you_mean, Ctx, Field};
use super::schema::{
    Config, Cron, DepCondition, Dependency, Env, LogPolicy, RestartPolicy, Run, Service, Signal,
    Size, Webhook, WEBHOOK_EVENTS,
};
use super::sections;
use super::sockets;

/// Longest project or service name: names become file, cgroup and unit names.
pub const MAX_NAME_LEN: usize = 64;

/// Longest project name: the control socket `<state>/<project>/run/control.sock` must fit
/// the 108 bytes of a Unix socket address under a usual home directory.
pub const MAX_PROJECT_LEN: usize = 40;

/// True for a project or service name: `[A-Za-z0-9_.-]`, not starting with `.` (`.`, `..`
/// and hidden names are not file names a supervisor may create), at most 64 bytes.
pub fn valid_name(s: &str) -> bool {
    name_problem(s).is_none()
}

/// Why `s` is not a valid name, in words for a diagnostic.
pub fn name_problem(s: &str) -> Option<&'static str> {
    if s.is_empty() {
        Some("it is empty")
    } else if !s
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
    {
        Some("use letters, digits, `_`, `.` and `-`")
    } else if s.starts_with('.') {
        Some("it must not start with `.`")
    } else if s.len() > MAX_NAME_LEN {
        Some("it is longer than 64 characters")
    } else {
        None
    }
}

/// Why `project` cannot be a project name.
fn project_problem(project: &str) -> Option<String> {
    if let Some(why) = name_problem(project) {
        return Some(why.to_string());
    }
    (project.len() > MAX_PROJECT_LEN).then(|| {
        format!("it is longer than {MAX_PROJECT_LEN} characters (the control socket path must stay short)")
    })
}

/// Why the systemd unit of `service` in `project` cannot exist (its name is too long once
/// escaped), so that `start` never meets it.
#[cfg(target_os = "linux")]
fn unit_problem(project: &str, service: &str) -> Option<String> {
    use crate::backend::systemd::naming;
    [
        naming::unit_name(project, service),
        naming::timer_name(project, service),
    ]
    .iter()
    .find_map(|unit| naming::check_length(unit).err())
}

#[cfg(not(target_os = "linux"))]
fn unit_problem(_project: &str, _service: &str) -> Option<String> {
    None
}

/// A `depends_on` entry before the graph is known.
struct DepDraft {
    service: String,
    condition: Option<(DepCondition, Pos)>,
    pos: Pos,
    path: String,
}

/// A service whose dependencies still need the whole file to resolve.
struct Draft {
    name: String,
    service: Option<Service>,
    deps: Vec<DepDraft>,
    has_health: bool,
    /// `sockets:` with positions, for conflicts between services.
    sockets: Vec<sockets::Placed>,
}

/// Build the whole config; problems go to `ctx`.
pub(crate) fn build(ctx: &mut Ctx, root: &Node, default_project: String) -> Option<Config> {
    let root_field = Field::root(root);
    if matches!(root.value, Kind::Null) {
        ctx.err(
            root_field.pos(),
            "the config is empty; expected a mapping with `version` and `services`",
        );
        return None;
    }
    let mut top = root_field.map_as(ctx, "a mapping with `version` and `services`")?;

    let version = top
        .require(ctx, "version", "the config format version, \"1\"")
        .and_then(|f| match &f.node.value {
            Kind::Str(s) if s == "1" => Some("1".to_string()),
            Kind::Int(1) => Some("1".to_string()),
            _ => f.expected(ctx, "\"1\""),
        });

    let project_field = top.take("project");
    let project_explicit = project_field.is_some();
    let project = match project_field {
        Some(f) => f.text(ctx).and_then(|p| match project_problem(&p) {
            None => Some(p),
            Some(why) => f.error(ctx, format!("invalid project name {p:?} ({why})")),
        }),
        None => match project_problem(&default_project) {
            None => Some(default_project),
            Some(why) => {
                ctx.err(
                    root_field.pos(),
                    format!(
                        "no `project:`, and the directory name {default_project:?} cannot be one ({why}): set `project:`"
                    ),
                );
                None
            }
        },
    };

    let logs = match top.take("logs") {
        Some(f) => log_policy(ctx, &f, LogPolicy::default()),
        None => Some(LogPolicy::default()),
    };
    let webhooks = top
        .take("webhooks")
        .map_or(Some(Vec::new()), |f| webhooks_of(ctx, &f));

    let services_field = top.require(ctx, "services", "a mapping of service names to services");
    top.finish(ctx);

    let drafts = match services_field {
        Some(f) => services(ctx, &f, logs.unwrap_or_default(), project.as_deref()),
        None => Vec::new(),
    };

    let names: Vec<String> = drafts.iter().map(|d| d.name.clone()).collect();
    let edges: Vec<Vec<Edge>> = drafts
        .iter()
        .map(|d| {
            d.deps
                .iter()
                .map(|e| Edge {
                    target: e.service.clone(),
                    pos: e.pos,
                    path: e.path.clone(),
                })
                .collect()
        })
        .collect();
    graph::check(ctx, &names, &edges);
    let placed: Vec<(&str, &[sockets::Placed])> = drafts
        .iter()
        .map(|d| (d.name.as_str(), d.sockets.as_slice()))
        .collect();
    sockets::check_across(ctx, &placed);
    // A cron job has no lasting state to wait for (it runs now and then), so nothing can
    // depend on one; a job may depend on services (a run is skipped while they are down).
    let jobs: Vec<&str> = drafts
        .iter()
        .filter(|d| d.service.as_ref().is_some_and(|s| s.cron.is_some()))
        .map(|d| d.name.as_str())
        .collect();
    for e in drafts.iter().flat_map(|d| d.deps.iter()) {
        if jobs.contains(&e.service.as_str()) {
            ctx.err(
                e.pos,
                format!(
                    "{}: `{}` is a cron job; nothing can depend on a cron job (it has no lasting state to wait for)",
                    e.path, e.service
                ),
            );
        }
    }

    let healthy: Vec<bool> = drafts.iter().map(|d| d.has_health).collect();
    let mut out = Vec::with_capacity(drafts.len());
    for d in drafts {
        let deps: Vec<Dependency> = d
            .deps
            .iter()
            .map(|e| {
                let target_healthy = names
                    .iter()
                    .position(|n| *n == e.service)
                    .is_some_and(|i| healthy[i]);
                let condition = match e.condition {
                    Some((DepCondition::Healthy, at))
                        if !target_healthy && names.contains(&e.service) =>
                    {
                        ctx.err(
                            at,
                            format!(
                                "{}: condition `healthy` needs a `health_check` on `{}`",
                                e.path, e.service
                            ),
                        );
                        DepCondition::Healthy
                    }
                    Some((c, _)) => c,
                    None if target_healthy => DepCondition::Healthy,
                    None => DepCondition::Started,
                };
                Dependency {
                    service: e.service.clone(),
                    condition,
                }
            })
            .collect();
        if let Some(mut s) = d.service {
            s.depends_on = deps;
            out.push(s);
        }
    }

    if !ctx.diags.is_empty() {
        return None;
    }
    Some(Config {
        version: version?,
        project: project?,
        project_explicit,
        path: ctx.file.clone(),
        base_dir: ctx.base_dir.clone(),
        services: out,
        webhooks: webhooks?,
        logs: logs?,
    })
}

fn services(ctx: &mut Ctx, f: &Field, logs: LogPolicy, project: Option<&str>) -> Vec<Draft> {
    let Some(mut m) = f.map_as(ctx, "a mapping of service names to services") else {
        return Vec::new();
    };
    let entries = m.take_all();
    m.finish(ctx);
    if entries.is_empty() {
        f.error::<()>(ctx, "at least one service is required");
    }
    let mut drafts = Vec::with_capacity(entries.len());
    for (name, key_pos, field) in entries {
        if let Some(why) = name_problem(&name) {
            ctx.err(
                key_pos,
                format!("services: invalid service name {name:?} ({why})"),
            );
        } else if let Some(why) = project.and_then(|p| unit_problem(p, &name)) {
            ctx.err(key_pos, format!("services: service name {name:?}: {why}"));
        }
        drafts.push(service(ctx, name, &field, logs));
    }
    drafts
}

const RESTART_POLICIES: &[&str] = &["always", "on-failure", "never"];

fn service(ctx: &mut Ctx, name: String, f: &Field, project_logs: LogPolicy) -> Draft {
    let mut draft = Draft {
        name: name.clone(),
        service: None,
        deps: Vec::new(),
        has_health: false,
        sockets: Vec::new(),
    };
    let Some(mut m) = f.map(ctx) else {
        return draft;
    };
    let before = ctx.diags.len();

    let command = m.take("command");
    let exec = m.take("exec");
    let run = match (command, exec) {
        (Some(c), Some(e)) => {
            let msg = format!(
                "{}: set either `command` or `exec`, not both (`exec` is at line {})",
                m.path(),
                e.key_pos.line
            );
            ctx.err(c.key_pos, msg);
            None
        }
        (None, None) => {
            let msg = format!(
                "{}: missing `command` (a shell command) or `exec` (a list: program and arguments)",
                m.path()
            );
            ctx.err(m.key_pos(), msg);
            None
        }
        (Some(c), None) => c.text(ctx).map(Run::Shell),
        (None, Some(e)) => e.seq(ctx).and_then(|items| {
            if items.is_empty() {
                return e.expected(ctx, "a non-empty list: program and arguments");
            }
            let argv: Vec<String> = items.iter().filter_map(|i| i.scalar(ctx)).collect();
            (argv.len() == items.len()).then_some(argv).map(Run::Exec)
        }),
    };

    let working_dir = m
        .take("working_dir")
        .and_then(|f| f.text(ctx))
        .map(|p| ctx.resolve(&p));
    let env = m
        .take("env")
        .map_or(Some(Env::default()), |f| sections::env(ctx, &f));

    let cron_field = m.take("cron");
    let is_cron = cron_field.is_some();
    let cron = cron_field.and_then(|f| cron_of(ctx, &f));

    let restart_policy = match m.take("restart_policy") {
        Some(f) if is_cron => {
            f.error::<()>(
                ctx,
                "not allowed on a cron job: cron jobs run to completion and are not restarted",
            );
            Some(RestartPolicy::Never)
        }
        Some(f) => f.choice(ctx, RESTART_POLICIES).map(|p| match p {
            "always" => RestartPolicy::Always,
            "never" => RestartPolicy::Never,
            _ => RestartPolicy::OnFailure,
        }),
        None if is_cron => Some(RestartPolicy::Never),
        None => Some(RestartPolicy::OnFailure),
    };
    let backoff = m
        .take("backoff")
        .map_or(Some(Duration::from_secs(1)), |f| f.duration(ctx));
    let max_restarts = m.take("max_restarts").map(|f| f.u32(ctx));

    if let Some(f) = m.take("depends_on") {
        draft.deps = depends_on(ctx, &f);
    }

    let health_check = m
        .take("health_check")
        .map(|f| sections::health_check(ctx, &f));
    draft.has_health = matches!(health_check, Some(Some(_)));

    let deployment = match m.take("deployment") {
        Some(f) if is_cron => {
            ctx.err(
                f.key_pos,
                format!(
                    "{}: not allowed on a cron job: cron jobs run to completion and are not restarted or deployed",
                    f.path
                ),
            );
            Some(None)
        }
        Some(f) => Some(sections::deployment(ctx, &f)),
        None => None,
    };
    let spawn = m.take("spawn").map(|f| sections::spawn(ctx, &f));
    let user = m.take("user").map(|f| f.text(ctx));
    let group = m.take("group").map(|f| f.text(ctx));
    let supplementary_groups = m
        .take("supplementary_groups")
        .map_or(Some(Vec::new()), |f| f.str_list(ctx));
    let limits = m
        .take("limits")
        .map_or(Some(Default::default()), |f| sections::limits(ctx, &f));
    let capabilities = m
        .take("capabilities")
        .map(|f| sections::capabilities(ctx, &f));
    let isolation = m
        .take("isolation")
        .map_or(Some(Default::default()), |f| sections::isolation(ctx, &f));
    let hooks = m
        .take("hooks")
        .map_or(Some(Default::default()), |f| sections::hooks(ctx, &f));
    let webhooks = m
        .take("webhooks")
        .map_or(Some(Vec::new()), |f| webhooks_of(ctx, &f));
    let stop_signal = m.take("stop_signal").map_or(
        Some(Signal {
            number: libc::SIGTERM,
            name: "SIGTERM".into(),
        }),
        |f| signal(ctx, &f),
    );
    let stop_timeout = m
        .take("stop_timeout")
        .map_or(Some(Duration::from_secs(10)), |f| f.duration(ctx));
    let logs = m
        .take("logs")
        .map_or(Some(project_logs), |f| log_policy(ctx, &f, project_logs));
    let tags = m.take("tags").map_or(Some(Vec::new()), |f| f.str_list(ctx));
    let (readiness, reload) = super::service_model::take(ctx, &mut m);
    let sandbox = m.take("sandbox").map_or(Some(Default::default()), |f| {
        super::sandbox::sandbox(ctx, &f)
    });
    let socks = match m.take("sockets") {
        Some(f) if is_cron => f.error(
            ctx,
            "not allowed on a cron job: sockets belong to a long-running service",
        ),
        Some(f) => sockets::sockets(ctx, &f, &name, &mut draft.sockets),
        None => Some(Vec::new()),
    };
    m.finish(ctx);

    if ctx.diags.len() != before {
        return draft;
    }
    // Every read above succeeded when no diagnostic was added, so each `?` below holds.
    draft.service = run.and_then(|run| {
        Some(Service {
            name,
            run,
            working_dir,
            env: env?,
            restart_policy: restart_policy?,
            backoff: backoff?,
            max_restarts: max_restarts.flatten(),
            depends_on: Vec::new(),
            health_check: health_check.flatten(),
            deployment: deployment.flatten(),
            cron,
            spawn: spawn.flatten(),
            user: user.flatten(),
            group: group.flatten(),
            supplementary_groups: supplementary_groups?,
            limits: limits?,
            capabilities: capabilities.flatten(),
            isolation: isolation?,
            hooks: hooks?,
            webhooks: webhooks?,
            stop_signal: stop_signal?,
            stop_timeout: stop_timeout?,
            logs: logs?,
            tags: tags?,
            readiness: readiness?,
            reload: reload?,
            sandbox: sandbox?,
            sockets: socks?,
        })
    });
    draft
}

const CONDITIONS: &[&str] = &["started", "healthy", "completed"];

fn depends_on(ctx: &mut Ctx, f: &Field) -> Vec<DepDraft> {
    // A single name is a common shorthand for a one-item list.
    let items = match &f.node.value {
        Kind::Str(_) => vec![f.clone()],
        _ => match f.seq(ctx) {
            Some(items) => items,
            None => return Vec::new(),
        },
    };
    let mut out = Vec::new();
    for item in items {
        match &item.node.value {
            Kind::Str(name) => out.push(DepDraft {
                service: name.clone(),
                condition: None,
                pos: item.pos(),
                path: item.path.clone(),
            }),
            Kind::Map(_) => {
                let Some(mut m) = item.map(ctx) else { continue };
                let service = m.require(ctx, "service", "the name of the service depended on");
                let condition = m.take("condition");
                m.finish(ctx);
                let Some(service) = service else { continue };
                let Some(name) = service.text(ctx) else {
                    continue;
                };
                let cond = match condition {
                    Some(c) => match c.choice(ctx, CONDITIONS) {
                        Some("healthy") => Some((DepCondition::Healthy, c.pos())),
                        Some("completed") => Some((DepCondition::Completed, c.pos())),
                        Some(_) => Some((DepCondition::Started, c.pos())),
                        None => continue,
                    },
                    None => None,
                };
                out.push(DepDraft {
                    service: name,
                    condition: cond,
                    pos: service.pos(),
                    path: item.path.clone(),
                });
            }
            _ => {
                item.expected::<()>(ctx, "a service name or a mapping {service, condition}");
            }
        }
    }
    out
}

fn cron_of(ctx: &mut Ctx, f: &Field) -> Option<Cron> {
    let mut m = f.map(ctx)?;
    let expression = m.require(ctx, "expression", "a cron expression like \"0 3 * * *\"");
    let timezone = m.take("timezone");
    m.finish(ctx);
    // Zone and expression are checked separately so each error points at its own field.
    let tz = match &timezone {
        Some(t) => t
            .text(ctx)
            .and_then(|name| match super::cron::parse_timezone(&name) {
                Ok(_) => Some(Some(name)),
                Err(e) => t.error(ctx, e),
            }),
        None => Some(None),
    };
    let expr = expression.and_then(|e| {
        let text = e.text(ctx)?;
        match super::cron::CronSchedule::parse(&text, Some("UTC")) {
            Ok(_) => Some(text),
            Err(msg) => e.error(ctx, msg),
        }
    });
    Some(Cron {
        expression: expr?,
        timezone: tz?,
    })
}

pub(crate) fn signal(ctx: &mut Ctx, f: &Field) -> Option<Signal> {
    let text = match &f.node.value {
        Kind::Str(s) => s.clone(),
        Kind::Int(i) => i.to_string(),
        _ => return f.expected(ctx, "a signal name like SIGTERM or a number"),
    };
    match crate::signals::parse(&text) {
        Some((number, name)) => Some(Signal {
            number,
            name: name.to_string(),
        }),
        None => {
            let up = text.trim().to_ascii_uppercase();
            let full = if up.starts_with("SIG") {
                up
            } else {
                format!("SIG{up}")
            };
            let hint = did_you_mean(&full, crate::signals::names());
            f.error(ctx, format!("unknown signal {text:?}{hint}"))
        }
    }
}

/// `logs:` on top of `base` (the project default for services).
fn log_policy(ctx: &mut Ctx, f: &Field, base: LogPolicy) -> Option<LogPolicy> {
    let mut m = f.map(ctx)?;
    let mut out = base;
    let mut ok = true;
    if let Some(s) = m.take("max_size") {
        match s.size(ctx) {
            Some(Size::Value(v)) if v > 0 => out.max_size = v,
            Some(_) => {
                s.error::<()>(
                    ctx,
                    "must be a size greater than 0 (rotation needs a limit)",
                );
                ok = false;
            }
            None => ok = false,
        }
    }
    if let Some(n) = m.take("max_files") {
        match n.u32(ctx) {
            Some(v) => out.max_files = v,
            None => ok = false,
        }
    }
    if let Some(c) = m.take("compress") {
        match c.bool(ctx) {
            Some(v) => out.compress = v,
            None => ok = false,
        }
    }
    m.finish(ctx);
    ok.then_some(out)
}

fn webhooks_of(ctx: &mut Ctx, f: &Field) -> Option<Vec<Webhook>> {
    let items = f.seq(ctx)?;
    let hooks: Vec<Option<Webhook>> = items.iter().map(|i| webhook(ctx, i)).collect();
    hooks.into_iter().collect()
}

fn webhook(ctx: &mut Ctx, f: &Field) -> Option<Webhook> {
    let mut m = f.map(ctx)?;
    let url = m
        .require(ctx, "url", "the http:// or https:// address to POST to")
        .and_then(|u| sections::http_url(ctx, &u));
    let events = match m.take("events") {
        Some(e) => e.seq(ctx).map(|items| {
            items
                .iter()
                .filter_map(|i| i.choice(ctx, WEBHOOK_EVENTS).map(str::to_string))
                .collect::<Vec<_>>()
        }),
        None => Some(Vec::new()),
    };
    let timeout = m
        .take("timeout")
        .map_or(Some(Duration::from_secs(5)), |t| t.positive_duration(ctx));
    let retries = m.take("retries").map_or(Some(3), |r| r.u32(ctx));
    let secret = m.take("secret").map(|s| s.text(ctx));
    m.finish(ctx);
    Some(Webhook {
        url: url?,
        events: events?,
        timeout: timeout?,
        retries: retries?,
        secret: match secret {
            Some(s) => Some(s?),
            None => None,
        },
    })
}
