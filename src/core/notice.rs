//! Lifecycle notices: the moments hooks and webhooks react to, decided by the core so that
//! both backends announce the same events at the same points.

use serde::Serialize;

use super::Action;
use crate::spec::ExitStatus;

/// A lifecycle event; the names (`as_str`) are the webhook event names of the config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NoticeKind {
    /// The main process started.
    Start,
    /// The unit became ready: its first probe passed, or (without a health check) it
    /// survived the settle window.
    Ready,
    /// The main process ended, for whatever reason.
    Exit,
    /// The unit failed without being asked to stop: a bad exit or a failed start.
    Failure,
    /// A restart was scheduled (by policy) or is under way (by request).
    Restart,
    /// The unit was stopped (by a client, a cascade or a removal).
    Stop,
    /// `retries` consecutive probes failed; the unit is stopped and handled like a failure.
    Unhealthy,
    /// A rolling or blue-green deployment finished, well (`deploy.ok`) or not.
    Deploy,
}

impl NoticeKind {
    /// The event name used in webhook selections, payloads and `SYSG_EVENT`.
    pub fn as_str(self) -> &'static str {
        match self {
            NoticeKind::Start => "start",
            NoticeKind::Ready => "ready",
            NoticeKind::Exit => "exit",
            NoticeKind::Failure => "failure",
            NoticeKind::Restart => "restart",
            NoticeKind::Stop => "stop",
            NoticeKind::Unhealthy => "unhealthy",
            NoticeKind::Deploy => "deploy",
        }
    }
}

/// One lifecycle event of one unit.
#[derive(Debug, Clone, PartialEq)]
pub struct Notice {
    pub unit: String,
    pub kind: NoticeKind,
    /// The process concerned, when there is one.
    pub pid: Option<u32>,
    /// How the process ended (`exit`, and `failure` after a bad exit).
    pub exit_status: Option<ExitStatus>,
    /// Human description, as in the supervisor log.
    pub message: String,
    /// For `Deploy`: how the deployment ended.
    pub deploy: Option<super::DeployOutcome>,
}

/// Append an `Action::Notify`.
pub(crate) fn notify(
    out: &mut Vec<Action>,
    unit: &str,
    kind: NoticeKind,
    pid: Option<u32>,
    exit_status: Option<ExitStatus>,
    message: String,
) {
    out.push(Action::Notify(Notice {
        unit: unit.to_string(),
        kind,
        pid,
        exit_status,
        message,
        deploy: None,
    }));
}
