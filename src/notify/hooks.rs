//! Hook commands (`hooks.on_start` …): `/bin/sh -c` with the service's environment, working
//! directory and identity (`user`/`group`, when the supervisor is root) plus `SYSG_*`
//! variables, on a thread of their own, bounded by the hook's
//! timeout. Output goes to the supervisor log; a failing hook is logged and changes nothing.

use std::path::PathBuf;
use std::time::Duration;

use super::NotifyError;
use crate::core::Notice;
use crate::health::command;

/// One hook run.
#[derive(Debug, Clone)]
pub struct HookRun {
    /// `on_start`, `on_ready` … (for the log).
    pub name: &'static str,
    pub command: String,
    pub timeout: Duration,
    /// The service's environment plus the `SYSG_*` variables.
    pub env: Vec<(String, String)>,
    pub cwd: Option<PathBuf>,
    /// The service's `user` and `group`.
    pub user: Option<String>,
    pub group: Option<String>,
    pub unit: String,
    /// The service's spec: on the systemd backend the hook runs as a unit built from it.
    pub spec: crate::spec::UnitSpec,
}

/// The `SYSG_*` variables a hook gets for `notice` of `project`.
pub fn variables(project: &str, notice: &Notice) -> Vec<(String, String)> {
    let mut v = vec![
        ("SYSG_PROJECT".to_string(), project.to_string()),
        ("SYSG_SERVICE".to_string(), notice.unit.clone()),
        ("SYSG_EVENT".to_string(), notice.kind.as_str().to_string()),
        ("SYSG_MESSAGE".to_string(), notice.message.clone()),
    ];
    if let Some(pid) = notice.pid {
        v.push(("SYSG_PID".to_string(), pid.to_string()));
    }
    if let Some(st) = notice.exit_status {
        v.push(("SYSG_EXIT_STATUS".to_string(), st.to_string()));
        match st {
            crate::spec::ExitStatus::Code(c) => v.push(("SYSG_EXIT_CODE".into(), c.to_string())),
            crate::spec::ExitStatus::Signal(s) => {
                v.push(("SYSG_EXIT_SIGNAL".into(), crate::signals::name(s)))
            }
            crate::spec::ExitStatus::Unknown => {}
        }
    }
    if let Some(d) = &notice.deploy {
        let result = if d.ok { "success" } else { "failure" };
        v.push(("SYSG_DEPLOY_RESULT".into(), result.to_string()));
        v.push(("SYSG_DEPLOY_STRATEGY".into(), d.strategy.to_string()));
        if let Some(slot) = &d.slot {
            v.push(("SYSG_DEPLOY_SLOT".into(), slot.clone()));
        }
    }
    v
}

/// Run `hook` on its own thread; returns at once. `done` gets a message when it has finished.
pub fn spawn(hook: HookRun, done: std::sync::mpsc::Sender<()>) -> Result<(), NotifyError> {
    std::thread::Builder::new()
        .name(format!("hook-{}", hook.unit))
        .spawn(move || {
            run(&hook);
            let _ = done.send(());
        })
        .map(|_| ())
        .map_err(NotifyError::Thread)
}

/// Run `hook` to completion and log what happened.
fn run(hook: &HookRun) {
    let unit = &hook.unit;
    let name = hook.name;
    let who = match command::identity(hook.user.as_deref(), hook.group.as_deref()) {
        Ok(w) => w,
        Err(e) => {
            tracing::warn!(unit = %unit, hook = name, "hook not run: {e}");
            return;
        }
    };
    let done = command::run_shell_placed(
        &hook.command,
        &hook.env,
        hook.cwd.as_deref(),
        hook.timeout,
        who,
        Some(crate::health::placement::Place {
            unit,
            kind: "hook",
            spec: Some(&hook.spec),
        }),
    );
    match done {
        Ok(done) => {
            for line in String::from_utf8_lossy(&done.output).lines() {
                tracing::info!(unit = %unit, hook = name, "{line}");
            }
            if done.status.success() {
                tracing::info!(unit = %unit, hook = name, "hook finished");
            } else {
                tracing::warn!(unit = %unit, hook = name, "hook failed: {}", done.status);
            }
        }
        Err(e) => tracing::warn!(unit = %unit, hook = name, "hook failed: {e}"),
    }
}
