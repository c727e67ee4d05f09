//! Reactions to lifecycle notices (`Action::Notify`): hook commands and webhooks. Both run
//! off the event loop and can never affect supervision: a failure is logged, nothing more.

pub mod hooks;
pub mod webhook;

use std::collections::HashMap;
use std::sync::mpsc;
use std::time::Instant;

use crate::config::schema::{Hook, Hooks};
use crate::config::Config;
use crate::core::{Notice, NoticeKind};

/// How long an exiting supervisor waits for queued webhooks (after it answered its clients
/// and released its lock).
pub const FLUSH_AT_EXIT: std::time::Duration = std::time::Duration::from_secs(3);

/// Errors of the notification machinery (all of them only logged).
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// A thread could not be started.
    #[error("cannot start a thread: {0}")]
    Thread(#[source] std::io::Error),
    /// The webhook queue is full; the event was dropped.
    #[error("webhook queue full, dropped the `{event}` event for {url}")]
    QueueFull { url: String, event: String },
    /// The webhook sender thread is gone.
    #[error("the webhook sender stopped")]
    SenderGone,
    /// The event could not be encoded.
    #[error("cannot encode the webhook payload: {0}")]
    Encode(#[from] serde_json::Error),
}

/// The hook that reacts to `kind`, with its config name: `on_failure` covers both a failure
/// and an unhealthy verdict.
pub fn hook_for(hooks: &Hooks, kind: NoticeKind) -> Option<(&'static str, &Hook)> {
    match kind {
        NoticeKind::Start => hooks.on_start.as_ref().map(|h| ("on_start", h)),
        NoticeKind::Ready => hooks.on_ready.as_ref().map(|h| ("on_ready", h)),
        NoticeKind::Exit => hooks.on_exit.as_ref().map(|h| ("on_exit", h)),
        NoticeKind::Failure | NoticeKind::Unhealthy => {
            hooks.on_failure.as_ref().map(|h| ("on_failure", h))
        }
        NoticeKind::Deploy => hooks.on_deploy.as_ref().map(|h| ("on_deploy", h)),
        NoticeKind::Restart | NoticeKind::Stop => None,
    }
}

/// Runs hooks and sends webhooks for the supervisor.
pub struct Notifier {
    /// One sender thread per endpoint url, started on its first event.
    senders: HashMap<String, webhook::Sender>,
    /// Hook threads started and not known to have finished.
    hooks_running: usize,
    /// Each hook thread says here when it has finished.
    hook_done: (mpsc::Sender<()>, mpsc::Receiver<()>),
}

impl Default for Notifier {
    fn default() -> Notifier {
        Notifier {
            senders: HashMap::new(),
            hooks_running: 0,
            hook_done: mpsc::channel(),
        }
    }
}

impl Notifier {
    /// A notifier with no thread yet.
    pub fn new() -> Notifier {
        Notifier::default()
    }

    /// React to `notice` as `config` says: its service's hook, then every project-level and
    /// service-level webhook that selects the event. Never blocks.
    pub fn dispatch(&mut self, config: &Config, notice: &Notice) {
        let svc = config.service(&notice.unit);
        if let Some((name, hook)) = svc.and_then(|s| hook_for(&s.hooks, notice.kind)) {
            if let Some(s) = svc {
                let spec = crate::runtime::plan::spec_of(config, s);
                let mut env = spec.env.clone();
                env.extend(hooks::variables(&config.project, notice));
                let run = hooks::HookRun {
                    name,
                    command: hook.command.clone(),
                    timeout: hook.timeout,
                    env,
                    cwd: spec.cwd.clone(),
                    user: spec.user.clone(),
                    group: spec.group.clone(),
                    unit: notice.unit.clone(),
                    spec: spec.clone(),
                };
                while self.hook_done.1.try_recv().is_ok() {
                    self.hooks_running = self.hooks_running.saturating_sub(1);
                }
                match hooks::spawn(run, self.hook_done.0.clone()) {
                    Ok(()) => self.hooks_running += 1,
                    Err(e) => tracing::warn!(unit = %notice.unit, hook = name, "{e}"),
                }
            }
        }
        let event = notice.kind.as_str();
        let selected: Vec<_> = config
            .webhooks
            .iter()
            .chain(svc.map(|s| s.webhooks.iter()).into_iter().flatten())
            .filter(|w| w.events.is_empty() || w.events.iter().any(|e| e == event))
            .collect();
        if selected.is_empty() {
            return;
        }
        if let Err(e) = self.send(config, notice, &selected) {
            tracing::warn!(unit = %notice.unit, "{e}");
        }
    }

    fn send(
        &mut self,
        config: &Config,
        notice: &Notice,
        selected: &[&crate::config::schema::Webhook],
    ) -> Result<(), NotifyError> {
        let body = serde_json::to_vec(&webhook::Payload::new(&config.project, notice))?;
        for w in selected {
            let sender = match self.senders.entry(w.url.clone()) {
                std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::hash_map::Entry::Vacant(e) => e.insert(webhook::Sender::spawn()?),
            };
            let d = webhook::Delivery {
                hook: (*w).clone(),
                event: notice.kind.as_str().to_string(),
                body: body.clone(),
            };
            if let Err(e) = sender.send(d) {
                tracing::warn!(unit = %notice.unit, "{e}");
            }
        }
        Ok(())
    }

    /// At supervisor exit: give running hooks and queued webhooks until `deadline` (so that
    /// an `on_exit` hook of the last stop runs, and the last events go out); then hook, probe
    /// and deploy commands still running are killed with their process groups, and endpoints
    /// still busy are abandoned, each with a log line.
    pub fn flush(&mut self, deadline: Instant) {
        while self.hooks_running > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.hook_done.1.recv_timeout(left) {
                Ok(()) => self.hooks_running -= 1,
                Err(_) => break,
            }
        }
        for (url, sender) in self.senders.drain() {
            if !sender.finish(deadline) {
                tracing::warn!(url = %url, "webhooks still pending at exit were dropped");
            }
        }
        let killed = crate::health::command::kill_running();
        if killed > 0 {
            tracing::warn!("killed {killed} hook or probe command(s) still running at exit");
        }
    }
}
