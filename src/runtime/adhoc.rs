//! Ad-hoc units (`sysg run`): one command supervised without a config file.
//!
//! By default they live in the per-user project `adhoc`, whose supervisor is started on
//! demand with an empty plan (there is no config file: `empty_config` stands in for one).
//! Any running supervisor accepts them, though (`sysg --project P run ..`). Names are derived
//! from the command and made unique here; the rest is ordinary supervision.

use std::sync::Arc;
use std::time::Duration;

use thiserror::Error;

use crate::config::schema::Config;
use crate::config::valid_name;
use crate::control::protocol::RunRequest;
use crate::core::{UnitPlan, START_SETTLE};
use crate::spec::UnitSpec;

/// The project that holds `sysg run` units when no `--project` is given.
pub const PROJECT: &str = "adhoc";

/// Ad-hoc units wait this long between SIGTERM and SIGKILL (the config default).
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// Restart backoff of ad-hoc units (the config default).
const BACKOFF: Duration = Duration::from_secs(1);

/// Why a `run` request was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AdhocError {
    #[error("nothing to run: the command is empty")]
    NoCommand,
    #[error("invalid unit name {0:?} (use letters, digits, `_`, `.` and `-`)")]
    BadName(String),
    #[error("a service named `{0}` already exists in this project; pick another --name")]
    Taken(String),
}

/// The stand-in configuration of the `adhoc` project: no services, no webhooks. Its path is
/// the project's state directory, which is what `status` shows as the config.
pub fn empty_config(project: &str, state_dir: &std::path::Path) -> Config {
    Config {
        version: "1".into(),
        project: project.into(),
        project_explicit: true,
        path: state_dir.to_path_buf(),
        base_dir: state_dir.to_path_buf(),
        services: Vec::new(),
        webhooks: Vec::new(),
        logs: Default::default(),
    }
}

/// The unit name for a request: the requested one when it is valid and free, else the
/// program's file name (cleaned to valid characters), suffixed `-2`, `-3`, .. until free.
pub fn unit_name(
    requested: Option<&str>,
    argv: &[String],
    taken: &[String],
) -> Result<String, AdhocError> {
    if let Some(n) = requested {
        if !valid_name(n) {
            return Err(AdhocError::BadName(n.to_string()));
        }
        if taken.iter().any(|t| t == n) {
            return Err(AdhocError::Taken(n.to_string()));
        }
        return Ok(n.to_string());
    }
    let program = argv.first().ok_or(AdhocError::NoCommand)?;
    let file = program.rsplit('/').next().unwrap_or(program);
    let cleaned: String = file
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '-') {
                c
            } else {
                '-'
            }
        })
        .collect();
    // A leading dot or dash would make odd unit and file names.
    let base = cleaned.trim_matches(|c| c == '-' || c == '.');
    let base = if base.is_empty() { "run" } else { base };
    if !taken.iter().any(|t| t == base) {
        return Ok(base.to_string());
    }
    // Some suffix below taken.len() + 2 is always free (pigeonhole).
    let n = (2..=taken.len() + 2)
        .find(|n| !taken.iter().any(|t| *t == format!("{base}-{n}")))
        .unwrap_or(taken.len() + 2);
    Ok(format!("{base}-{n}"))
}

/// The core plan of an ad-hoc unit named `name`.
pub fn unit_plan(project: &str, name: &str, req: &RunRequest) -> Result<UnitPlan, AdhocError> {
    if req.argv.is_empty() || req.argv[0].is_empty() {
        return Err(AdhocError::NoCommand);
    }
    Ok(UnitPlan {
        name: name.to_string(),
        spec: Arc::new(UnitSpec {
            env: req.env.clone(),
            cwd: req.cwd.clone(),
            stop_timeout: STOP_TIMEOUT,
            ..UnitSpec::new(project, name, req.argv.clone())
        }),
        depends_on: Vec::new(),
        restart: req.restart,
        backoff: BACKOFF,
        max_restarts: None,
        settle: START_SETTLE,
        health: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::schema::RestartPolicy;

    fn argv(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn names_come_from_the_program_and_are_unique() {
        let cmd = argv(&["/usr/bin/sleep", "1000"]);
        assert_eq!(unit_name(None, &cmd, &[]), Ok("sleep".into()));
        let taken = argv(&["sleep", "sleep-2"]);
        assert_eq!(unit_name(None, &cmd, &taken), Ok("sleep-3".into()));
        assert_eq!(
            unit_name(None, &argv(&["./my prog.sh"]), &[]),
            Ok("my-prog-sh".into())
        );
        assert_eq!(unit_name(None, &argv(&["/"]), &[]), Ok("run".into()));
        assert_eq!(unit_name(None, &[], &[]), Err(AdhocError::NoCommand));
    }

    #[test]
    fn requested_names_are_checked() {
        let cmd = argv(&["/bin/true"]);
        assert_eq!(unit_name(Some("job"), &cmd, &[]), Ok("job".into()));
        assert_eq!(
            unit_name(Some("job"), &cmd, &argv(&["job"])),
            Err(AdhocError::Taken("job".into()))
        );
        assert_eq!(
            unit_name(Some("a b"), &cmd, &[]),
            Err(AdhocError::BadName("a b".into()))
        );
    }

    #[test]
    fn plan_carries_the_request() {
        let req = RunRequest {
            name: None,
            argv: argv(&["/bin/sleep", "5"]),
            env: vec![("K".into(), "V".into())],
            cwd: Some("/tmp".into()),
            restart: RestartPolicy::Always,
            wait: false,
        };
        let p = unit_plan("adhoc", "sleep", &req).unwrap();
        assert_eq!(p.spec.argv, req.argv);
        assert_eq!(p.spec.env, req.env);
        assert_eq!(p.spec.cwd, req.cwd);
        assert_eq!(p.restart, RestartPolicy::Always);
        assert!(p.depends_on.is_empty());
        let empty = RunRequest {
            argv: Vec::new(),
            ..req
        };
        assert_eq!(unit_plan("adhoc", "x", &empty), Err(AdhocError::NoCommand));
    }
}
