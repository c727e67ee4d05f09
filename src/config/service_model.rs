//! The service-model fields of a service (issue 17): `readiness`, `start_timeout`, `watchdog`
//! and `reload`. Parsed here, apart from the other service fields, so both backends get one
//! vocabulary: `Readiness` travels in the `UnitSpec` (it changes what runs), `Reload` stays
//! in the config (changing it restarts nothing).

use std::time::Duration;

use serde::Serialize;

use super::reader::{Ctx, Field, MapReader};
use super::schema::Signal;

/// systemd's `DefaultTimeoutStartSec=`: how long a notify service may take to send READY=1.
pub const DEFAULT_START_TIMEOUT: Duration = Duration::from_secs(90);

/// When a started process counts as started, and what it must keep saying once it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Readiness {
    /// `readiness: notify`: started only at `READY=1` on `$NOTIFY_SOCKET`. `exec` (false):
    /// started when exec succeeded (and the process survived the settle window).
    pub notify: bool,
    /// `start_timeout`: READY=1 must come within this; otherwise the start failed. Zero: no
    /// limit (systemd's `TimeoutStartSec=0`).
    pub start_timeout: Duration,
    /// `watchdog`: the service must send `WATCHDOG=1` at least this often (notify only).
    pub watchdog: Option<Duration>,
}

impl Default for Readiness {
    fn default() -> Readiness {
        Readiness {
            notify: false,
            start_timeout: DEFAULT_START_TIMEOUT,
            watchdog: None,
        }
    }
}

/// `reload:`: what `sysg reload` does to a running service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reload {
    /// Send this signal to the main process.
    Signal(Signal),
    /// Run this shell command like a hook, as the service's user, in its directory and env.
    Command(String),
}

/// Take `readiness`, `start_timeout`, `watchdog` and `reload` out of a service's map. `None`
/// when any of them is invalid (the diagnostics are in `ctx`).
pub(crate) fn take(
    ctx: &mut Ctx,
    m: &mut MapReader<'_>,
) -> (Option<Readiness>, Option<Option<Reload>>) {
    let readiness = m.take("readiness");
    let notify = match &readiness {
        Some(f) => f.choice(ctx, &["exec", "notify"]).map(|c| c == "notify"),
        None => Some(false),
    };
    let start_timeout = m
        .take("start_timeout")
        .map_or(Some(DEFAULT_START_TIMEOUT), |f| f.duration(ctx));
    let watchdog = match m.take("watchdog") {
        None => Some(None),
        Some(f) => match f.positive_duration(ctx) {
            Some(_) if notify == Some(false) => {
                let msg = match &readiness {
                    Some(r) => format!(
                        "needs `readiness: notify` (the service pets the watchdog with \
                         WATCHDOG=1 on $NOTIFY_SOCKET); `readiness` is `exec` at line {}",
                        r.key_pos.line
                    ),
                    None => "needs `readiness: notify` (the service pets the watchdog with \
                             WATCHDOG=1 on $NOTIFY_SOCKET)"
                        .to_string(),
                };
                f.error::<()>(ctx, msg);
                None
            }
            d => d.map(Some),
        },
    };
    let reload = m.take("reload").map(|f| reload(ctx, &f));
    let readiness = (|| {
        Some(Readiness {
            notify: notify?,
            start_timeout: start_timeout?,
            watchdog: watchdog?,
        })
    })();
    let reload = match reload {
        None => Some(None),
        Some(r) => r.map(Some),
    };
    (readiness, reload)
}

/// `reload: {signal: SIGHUP}` or `reload: {command: "..."}`.
fn reload(ctx: &mut Ctx, f: &Field) -> Option<Reload> {
    let mut m = f.map_as(ctx, "a mapping with `signal` or `command`")?;
    let signal = m.take("signal");
    let command = m.take("command");
    let out = match (signal, command) {
        (Some(s), Some(c)) => {
            let msg = format!(
                "{}: set either `signal` or `command`, not both (`signal` is at line {})",
                m.path(),
                s.key_pos.line
            );
            ctx.err(c.key_pos, msg);
            None
        }
        (None, None) => {
            let msg = format!(
                "{}: missing `signal` (e.g. SIGHUP) or `command` (a shell command)",
                m.path()
            );
            ctx.err(m.key_pos(), msg);
            None
        }
        (Some(s), None) => super::build::signal(ctx, &s).map(Reload::Signal),
        (None, Some(c)) => c.text(ctx).map(Reload::Command),
    };
    m.finish(ctx);
    out
}
