//! `sysg run`: supervise one command without a config file, like `systemd-run`.
//!
//! The unit goes to the running supervisor of `--project P`, by default of the per-user
//! project `adhoc`, whose supervisor is started on demand (detached, empty plan). The program
//! is resolved against the caller's PATH here, so that both backends get an absolute path
//! (systemd requires one); the caller's directory becomes the unit's working directory.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::args::{Global, RunArgs, RunRestart};
use super::output::state_word;
use super::start::{backend_name, check_backend};
use super::{error, EXIT_FAILURE, EXIT_OK, EXIT_USAGE};
use crate::config::schema::RestartPolicy;
use crate::control::protocol::{Request, Response, RunReport, RunRequest};
use crate::control::{client, ControlError};
use crate::runtime::adhoc::PROJECT;
use crate::runtime::daemon;
use crate::runtime::paths::{ProjectPaths, Roots};
use crate::spec::ExitStatus;

/// `sysg run [--name N] [--restart R] [--env K=V].. [--wait | --scope] -- CMD ARGS..`
pub fn run(g: &Global, a: &RunArgs) -> i32 {
    if let Err(code) = check_backend(g) {
        return code;
    }
    let project = g.project.clone().unwrap_or_else(|| PROJECT.to_string());
    for (what, name) in [("project", Some(&project)), ("unit", a.name.as_ref())] {
        if let Some(n) = name.filter(|n| !crate::config::valid_name(n)) {
            error(format!(
                "invalid {what} name `{n}` (use letters, digits, `_`, `.` and `-`)"
            ));
            return EXIT_USAGE;
        }
    }
    let cwd = match std::env::current_dir() {
        Ok(d) => d,
        Err(e) => {
            error(format!("cannot read the current directory: {e}"));
            return EXIT_FAILURE;
        }
    };
    let mut argv = a.command.clone();
    match argv
        .first()
        .map(|p| find_program(p, &cwd, std::env::var_os("PATH")))
    {
        Some(Ok(p)) => argv[0] = p.to_string_lossy().into_owned(),
        Some(Err(msg)) => {
            error(msg);
            return EXIT_USAGE;
        }
        None => {
            error("nothing to run: give a command after `--`");
            return EXIT_USAGE;
        }
    }
    if a.scope {
        return run_scoped(g, a, &project, &argv);
    }
    let mut request = RunRequest {
        name: a.name.clone(),
        argv,
        env: a.env.clone(),
        cwd: Some(cwd),
        restart: match a.restart {
            RunRestart::Always => RestartPolicy::Always,
            RunRestart::OnFailure => RestartPolicy::OnFailure,
            RunRestart::Never => RestartPolicy::Never,
        },
        wait: a.wait,
    };
    let paths = Roots::for_mode(g.sys).project(&project);
    // `--wait` shows the command's output: its unit's name (so its logs) is known first.
    let mut started = false;
    let mut pipe = None;
    if a.wait {
        if project == PROJECT && !client::is_live(&paths.socket) {
            if let Err(code) = start_adhoc_supervisor(g, &paths) {
                return code;
            }
            started = true;
        }
        let (taken, backend) = super::run_wait::taken_names(&paths, &project);
        match crate::runtime::adhoc::unit_name(a.name.as_deref(), &request.argv, &taken) {
            Ok(name) => {
                pipe = super::run_wait::Output::start(&paths, g.sys, &backend, &project, &name);
                request.name = Some(name);
            }
            Err(e) => {
                error(e);
                return EXIT_USAGE;
            }
        }
    }
    let resp = match send(&paths, &project, &request) {
        Err(ControlError::NotRunning { .. }) if project == PROJECT => {
            if let Err(code) = start_adhoc_supervisor(g, &paths) {
                return code;
            }
            send(&paths, &project, &request)
        }
        other => other,
    };
    if let Some(p) = pipe {
        p.finish(resp.as_ref().is_ok_and(|r| r.ok));
    }
    if started {
        super::run_wait::stop_if_empty(&paths, &project);
    }
    match resp {
        Ok(r) => outcome(&r, a.wait),
        Err(ControlError::NotRunning { .. }) => {
            error(format!(
                "no supervisor is running for project `{project}`; `sysg run` starts one only \
                 for the `{PROJECT}` project (the default)"
            ));
            EXIT_FAILURE
        }
        Err(e) => {
            error(e);
            EXIT_FAILURE
        }
    }
}

/// `run --scope`: the command runs here, in a unit of the project's slice (see
/// `backend::scoped_run`); no supervisor is involved.
fn run_scoped(g: &Global, a: &RunArgs, project: &str, argv: &[String]) -> i32 {
    use super::args::BackendChoice;
    use crate::backend::scoped_run::{self, Placement, ScopedRun};
    let name = a
        .name
        .clone()
        .unwrap_or_else(|| format!("run_{}", std::process::id()));
    let no_scopes = std::env::var_os("SYSG_NO_SCOPES").is_some_and(|v| v == "1");
    let r = ScopedRun {
        system: g.sys,
        require_systemd: g.backend == BackendChoice::Systemd,
        use_systemd: !(g.backend == BackendChoice::Process && no_scopes),
        project,
        name: &name,
        argv,
        env: &a.env,
    };
    match scoped_run::run(&r) {
        Ok((code, placement)) => {
            match placement {
                Placement::Scope(s) => tracing::debug!("ran in {s}"),
                Placement::Cgroup(d) => tracing::debug!("ran in cgroup {}", d.display()),
                Placement::Unplaced => tracing::debug!("ran without a unit of its own"),
            }
            code
        }
        Err(e) => {
            error(e);
            EXIT_FAILURE
        }
    }
}

fn send(paths: &ProjectPaths, project: &str, r: &RunRequest) -> Result<Response, ControlError> {
    // No time limit: with --wait the answer comes when the command ends.
    client::call(paths, project, Request::Run(r.clone()), None)
}

/// Start the `adhoc` project's supervisor in the background with an empty plan.
fn start_adhoc_supervisor(g: &Global, paths: &ProjectPaths) -> Result<(), i32> {
    let spawned = daemon::spawn(
        daemon::DaemonArgs {
            // Unused by an ad-hoc supervisor, which has no config file.
            config: &paths.state_dir,
            project: crate::runtime::adhoc::PROJECT,
            system: g.sys,
            backend: backend_name(g),
            log_level: g.log_level.map(|l| l.to_string()),
            service: None,
            adopt_only: false,
            adhoc: true,
            drop_privileges: false,
        },
        paths,
    );
    match spawned {
        Ok(r) if r.ok => Ok(()),
        // Another `sysg run` started it at the same moment: use that one.
        _ if client::is_live(&paths.socket) => Ok(()),
        Ok(r) => {
            error(
                r.error
                    .unwrap_or_else(|| "the supervisor did not start".into()),
            );
            Err(EXIT_FAILURE)
        }
        Err(e) => {
            error(e);
            Err(EXIT_FAILURE)
        }
    }
}

/// Print the answer; the exit code is the command's with `--wait`.
fn outcome(resp: &Response, wait: bool) -> i32 {
    let report = serde_json::from_value::<RunReport>(resp.data.clone()).ok();
    if !resp.ok {
        for line in resp.error.as_deref().unwrap_or("failed").lines() {
            error(line);
        }
        return EXIT_FAILURE;
    }
    let Some(r) = report else {
        error("unreadable answer from the supervisor");
        return EXIT_FAILURE;
    };
    if wait {
        let code = wait_code(r.service.last_exit);
        if r.service.last_exit.is_none() {
            if let Some(reason) = &r.service.reason {
                error(format!("{}: {reason}", r.unit));
            }
        }
        return code;
    }
    eprintln!(
        "sysg: unit `{}` of project `{}` is {}{}; see `sysg --project {} status`",
        r.unit,
        r.project,
        state_word(r.service.state),
        r.service
            .pid
            .map(|p| format!(" (pid {p})"))
            .unwrap_or_default(),
        r.project
    );
    println!("{}", r.unit);
    EXIT_OK
}

/// The shell's convention: the exit code, or 128+N after signal N; 1 when unknown or when
/// the command never ran.
fn wait_code(status: Option<ExitStatus>) -> i32 {
    match status {
        Some(ExitStatus::Code(c)) => c,
        Some(ExitStatus::Signal(s)) => 128 + s,
        Some(ExitStatus::Unknown) | None => EXIT_FAILURE,
    }
}

/// `prog` as an absolute path: relative to `cwd` when it has a slash, else the first
/// executable file of that name in `path` (an empty entry means `cwd`, as in the shell).
fn find_program(
    prog: &str,
    cwd: &Path,
    path: Option<std::ffi::OsString>,
) -> Result<PathBuf, String> {
    let executable = |p: &Path| {
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if prog.contains('/') {
        let p = cwd.join(prog);
        return if executable(&p) {
            Ok(p)
        } else {
            Err(format!("`{prog}` is not an executable file"))
        };
    }
    let path = path.unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| {
            if d.as_os_str().is_empty() {
                cwd.join(prog)
            } else {
                cwd.join(d).join(prog)
            }
        })
        .find(|p| executable(p))
        .ok_or_else(|| format!("`{prog}` not found in PATH"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_follow_the_shell() {
        assert_eq!(wait_code(Some(ExitStatus::Code(0))), 0);
        assert_eq!(wait_code(Some(ExitStatus::Code(7))), 7);
        assert_eq!(wait_code(Some(ExitStatus::Signal(15))), 143);
        assert_eq!(wait_code(Some(ExitStatus::Unknown)), 1);
        assert_eq!(wait_code(None), 1);
    }

    #[test]
    fn programs_are_found_like_the_shell_does() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        let tool = bin.join("tool");
        std::fs::write(&tool, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o755)).unwrap();
        let plain = bin.join("plain");
        std::fs::write(&plain, "data").unwrap();
        let path = Some(std::ffi::OsString::from(format!(
            "/nonexistent:{}",
            bin.display()
        )));
        assert_eq!(
            find_program("tool", dir.path(), path.clone()),
            Ok(tool.clone())
        );
        assert_eq!(find_program("bin/tool", dir.path(), None), Ok(tool));
        assert!(find_program("plain", dir.path(), path.clone()).is_err());
        assert_eq!(
            find_program("nope", dir.path(), path),
            Err("`nope` not found in PATH".into())
        );
    }
}
