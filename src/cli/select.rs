//! Which services a command acts on: `--service NAME` and `--tag T` (repeatable).
//!
//! The selection is the union of the named service and every service carrying any of the
//! tags, in catalog order (the core orders starts and stops by dependencies anyway). Names
//! and tags are resolved on the client: against the running supervisor's status (which
//! carries each service's tags), else against the config.

use std::time::Duration;

use thiserror::Error;

use super::context::Ctx;
use super::{error, EXIT_FAILURE, EXIT_USAGE};
use crate::config::Config;
use crate::control::protocol::{Request, StatusReport};
use crate::control::{client, ControlError};

/// One selectable service and its tags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub name: String,
    pub tags: Vec<String>,
}

/// A name or tag that matches nothing.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SelectError {
    #[error("unknown service `{name}`; services are: {}", list(.known))]
    UnknownService { name: String, known: Vec<String> },
    #[error("unknown tag `{tag}`; tags are: {}", list(.known))]
    UnknownTag { tag: String, known: Vec<String> },
}

fn list(v: &[String]) -> String {
    if v.is_empty() {
        "(none)".to_string()
    } else {
        v.join(", ")
    }
}

/// The services named by `service` and `tags`; `None` (everything) when neither is given.
pub fn select(
    catalog: &[Entry],
    service: Option<&str>,
    tags: &[String],
) -> Result<Option<Vec<String>>, SelectError> {
    if service.is_none() && tags.is_empty() {
        return Ok(None);
    }
    if let Some(s) = service {
        if !catalog.iter().any(|e| e.name == s) {
            return Err(SelectError::UnknownService {
                name: s.to_string(),
                known: catalog.iter().map(|e| e.name.clone()).collect(),
            });
        }
    }
    for t in tags {
        if !catalog.iter().any(|e| e.tags.contains(t)) {
            let mut known: Vec<String> = catalog.iter().flat_map(|e| e.tags.clone()).collect();
            known.sort();
            known.dedup();
            return Err(SelectError::UnknownTag {
                tag: t.clone(),
                known,
            });
        }
    }
    Ok(Some(
        catalog
            .iter()
            .filter(|e| service == Some(e.name.as_str()) || e.tags.iter().any(|t| tags.contains(t)))
            .map(|e| e.name.clone())
            .collect(),
    ))
}

/// The catalog of a config. Cron jobs are left out unless `with_cron` (they are scheduled,
/// not supervised, so start/stop/restart do not apply to them; their logs do).
pub fn from_config(cfg: &Config, with_cron: bool) -> Vec<Entry> {
    cfg.services
        .iter()
        .filter(|s| with_cron || s.cron.is_none())
        .map(|s| Entry {
            name: s.name.clone(),
            tags: s.tags.clone(),
        })
        .collect()
}

/// The catalog of a status report.
pub fn from_report(report: &StatusReport) -> Vec<Entry> {
    report
        .services
        .iter()
        .map(|s| Entry {
            name: s.name.clone(),
            tags: s.tags.clone(),
        })
        .collect()
}

/// Resolve `--service`/`--tag` for a command about `ctx`, printing any error; `Err` carries
/// the exit code. Every command resolves names the same way: against what the running
/// supervisor runs (after a `restart --config` that is the reloaded set, whatever the config
/// file on disk says), else against the config; with neither, a lone `--service` is passed
/// through unchecked and tags cannot be resolved. With `with_cron` (`logs`) the config's
/// services are selectable too while a supervisor runs: their logs stay readable.
pub fn resolve(
    ctx: &Ctx,
    service: Option<&str>,
    tags: &[String],
    with_cron: bool,
) -> Result<Option<Vec<String>>, i32> {
    if service.is_none() && tags.is_empty() {
        return Ok(None);
    }
    let catalog = match catalog(ctx, service, with_cron)? {
        Some(c) => c,
        None if tags.is_empty() => return Ok(service.map(|s| vec![s.to_string()])),
        None => {
            error(format!(
                "cannot resolve --tag: no config file and no supervisor running for project `{}`",
                ctx.project
            ));
            return Err(EXIT_USAGE);
        }
    };
    select(&catalog, service, tags).map_err(|e| {
        error(e);
        EXIT_USAGE
    })
}

/// What names resolve against: the running supervisor's services, else the config's;
/// `None` with neither. Tags never pick cron jobs when `with_cron` is off, but a job named
/// with `--service` is always selectable (stop it, run it now).
fn catalog(ctx: &Ctx, service: Option<&str>, with_cron: bool) -> Result<Option<Vec<Entry>>, i32> {
    let config = ctx.config.as_ref().map(|cfg| {
        let mut c = from_config(cfg, with_cron);
        if let Some(job) = service.and_then(|s| cfg.service(s)) {
            if !c.iter().any(|e| e.name == job.name) {
                c.push(Entry {
                    name: job.name.clone(),
                    tags: job.tags.clone(),
                });
            }
        }
        c
    });
    let Some(report) = live_report(ctx)? else {
        return Ok(config.map(|c| with_logged(ctx, c, with_cron)));
    };
    let mut c: Vec<Entry> = report
        .services
        .iter()
        .filter(|s| with_cron || s.cron.is_none() || service == Some(s.name.as_str()))
        .map(|s| Entry {
            name: s.name.clone(),
            tags: s.tags.clone(),
        })
        .collect();
    if with_cron {
        for e in config.unwrap_or_default() {
            if !c.iter().any(|x| x.name == e.name) {
                c.push(e);
            }
        }
    }
    Ok(Some(with_logged(ctx, c, with_cron)))
}

/// For `logs` (`with_cron`): `c` plus the units that left logs but are no longer known (an
/// ad-hoc unit forgotten after `run --wait`, a service removed by a reload).
fn with_logged(ctx: &Ctx, mut c: Vec<Entry>, with_cron: bool) -> Vec<Entry> {
    if !with_cron {
        return c;
    }
    let Ok(dir) = std::fs::read_dir(&ctx.paths.log_dir) else {
        return c;
    };
    let mut logged: Vec<String> = dir
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let unit = name
                .strip_suffix(".stdout.log")
                .or_else(|| name.strip_suffix(".stderr.log"))?;
            // Spawned children (`web@worker`) are reached through their service.
            (!unit.contains('@')).then(|| unit.to_string())
        })
        .collect();
    logged.sort();
    logged.dedup();
    for name in logged {
        if !c.iter().any(|x| x.name == name) {
            c.push(Entry {
                name,
                tags: Vec::new(),
            });
        }
    }
    c
}

/// Every service of the project: the running supervisor's, else the config's (with
/// `with_cron`, the config's added to the running ones, as in `resolve`).
pub fn all(ctx: &Ctx, with_cron: bool) -> Result<Option<Vec<String>>, i32> {
    Ok(catalog(ctx, None, with_cron)?.map(|c| c.into_iter().map(|e| e.name).collect()))
}

/// The running supervisor's status, `None` when none runs.
fn live_report(ctx: &Ctx) -> Result<Option<StatusReport>, i32> {
    match client::call(
        &ctx.paths,
        &ctx.project,
        Request::Status,
        Some(Duration::from_secs(10)),
    ) {
        Ok(resp) if resp.ok => serde_json::from_value(resp.data).map(Some).map_err(|e| {
            error(format!("unreadable status: {e}"));
            EXIT_FAILURE
        }),
        Ok(resp) => {
            error(resp.error.unwrap_or_default());
            Err(EXIT_FAILURE)
        }
        Err(ControlError::NotRunning { .. }) => Ok(None),
        Err(e) => {
            error(e);
            Err(EXIT_FAILURE)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog() -> Vec<Entry> {
        let e = |n: &str, t: &[&str]| Entry {
            name: n.into(),
            tags: t.iter().map(|s| s.to_string()).collect(),
        };
        vec![
            e("db", &["data", "critical"]),
            e("api", &["web", "critical"]),
            e("ui", &["web"]),
            e("batch", &[]),
        ]
    }

    fn tags(t: &[&str]) -> Vec<String> {
        t.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn nothing_given_means_everything() {
        assert_eq!(select(&catalog(), None, &[]), Ok(None));
    }

    #[test]
    fn tags_select_the_union_in_catalog_order() {
        assert_eq!(
            select(&catalog(), None, &tags(&["web"])),
            Ok(Some(tags(&["api", "ui"])))
        );
        assert_eq!(
            select(&catalog(), None, &tags(&["web", "data"])),
            Ok(Some(tags(&["db", "api", "ui"])))
        );
        assert_eq!(
            select(&catalog(), Some("batch"), &tags(&["critical"])),
            Ok(Some(tags(&["db", "api", "batch"])))
        );
        assert_eq!(
            select(&catalog(), Some("api"), &tags(&["web"])),
            Ok(Some(tags(&["api", "ui"])))
        );
    }

    #[test]
    fn unknown_names_and_tags_list_what_exists() {
        let e = select(&catalog(), Some("nope"), &[]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "unknown service `nope`; services are: db, api, ui, batch"
        );
        let e = select(&catalog(), None, &tags(&["web", "nope"])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "unknown tag `nope`; tags are: critical, data, web"
        );
        let e = select(&[], None, &tags(&["x"])).unwrap_err();
        assert_eq!(e.to_string(), "unknown tag `x`; tags are: (none)");
    }
}
