//! Health probes: `url` (HTTP GET), `tcp` (connect) and `command` (exit 0), each bounded by
//! the check's timeout. The core decides when to probe (`Action::Probe`); `Runner` runs each
//! probe on its own short-lived thread (at most one in flight per unit, so the number of
//! threads is bounded by the number of health-checked units) and hands the result back to
//! the event loop as an `Event::ProbeResult`. Nothing here blocks the event loop.

pub mod command;
pub mod http;
pub mod placement;
pub mod tcp;
pub mod tls;

use std::sync::Arc;

use crate::config::schema::{HealthCheck, Probe};
use crate::spec::{ExitStatus, UnitSpec};

/// Why a probe failed; the text is what `sysg status` shows.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// The HTTP answer was not 2xx/3xx.
    #[error("HTTP {0}")]
    Status(u16),
    /// The request could not be made or understood.
    #[error("{0}")]
    Request(String),
    /// The host name did not resolve.
    #[error("cannot resolve {0}")]
    Resolve(String),
    /// The connection failed (refused, unreachable, reset).
    #[error("{0}")]
    Connect(String),
    /// No answer within the timeout.
    #[error("timed out after {0:?}")]
    Timeout(std::time::Duration),
    /// The probe command ended badly; `output` is the last line it printed.
    #[error("{status}{}", output.as_ref().map(|o| format!(": {o}")).unwrap_or_default())]
    Command {
        status: ExitStatus,
        output: Option<String>,
    },
    /// The probe command could not be run.
    #[error("cannot run the probe command: {0}")]
    Spawn(#[source] std::io::Error),
    /// The service's user or group cannot be resolved.
    #[error("{0}")]
    Identity(String),
}

/// Short text for an I/O error (`connection refused` rather than the OS's sentence).
pub fn describe_io(e: &std::io::Error) -> String {
    use std::io::ErrorKind as K;
    match e.kind() {
        K::ConnectionRefused => "connection refused".into(),
        K::ConnectionReset => "connection reset".into(),
        K::ConnectionAborted => "connection aborted".into(),
        K::TimedOut => "timed out".into(),
        K::UnexpectedEof => "connection closed without an answer".into(),
        _ => e.to_string(),
    }
}

/// Run one probe to completion (blocking, bounded by `check.timeout`); a command probe runs
/// with the service's environment, working directory and identity. `Ok` carries a short
/// description of the success.
pub fn run(check: &HealthCheck, spec: &UnitSpec) -> Result<String, ProbeError> {
    match &check.probe {
        Probe::Http { url } => http::probe(url, check.timeout),
        Probe::Tcp { host, port } => tcp::probe(host, *port, check.timeout),
        Probe::Command { command } => {
            let who = command::identity(spec.user.as_deref(), spec.group.as_deref())?;
            let place = placement::Place {
                unit: &spec.name,
                kind: "probe",
                spec: Some(spec),
            };
            command::probe_as(
                command,
                &spec.env,
                spec.cwd.as_deref(),
                check.timeout,
                who,
                Some(place),
            )
        }
    }
}

/// The outcome of one probe, for the event loop.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeOutcome {
    pub unit: String,
    /// The id from `Action::Probe`.
    pub probe: u64,
    pub ok: bool,
    /// Success description or failure reason.
    pub detail: String,
}

/// Where outcomes go (the event loop's channel).
pub type Sink = Arc<dyn Fn(ProbeOutcome) + Send + Sync>;

/// Runs probes off the event loop.
pub struct Runner {
    sink: Sink,
}

impl Runner {
    /// A runner delivering outcomes to `sink`.
    pub fn new(sink: Sink) -> Runner {
        Runner { sink }
    }

    /// Start probe `probe` of `unit` on its own thread; the outcome goes to the sink.
    pub fn spawn(&self, unit: String, probe: u64, check: Arc<HealthCheck>, spec: Arc<UnitSpec>) {
        let sink = self.sink.clone();
        let name = unit.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("probe-{unit}"))
            .spawn(move || {
                let outcome = match run(&check, &spec) {
                    Ok(detail) => ProbeOutcome {
                        unit,
                        probe,
                        ok: true,
                        detail,
                    },
                    Err(e) => ProbeOutcome {
                        unit,
                        probe,
                        ok: false,
                        detail: e.to_string(),
                    },
                };
                sink(outcome);
            });
        if let Err(e) = spawned {
            // No thread, no probe: a failed probe, so the verdict still comes.
            (self.sink)(ProbeOutcome {
                unit: name,
                probe,
                ok: false,
                detail: format!("cannot start a probe thread: {e}"),
            });
        }
    }
}
