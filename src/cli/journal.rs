//! The supervisor's own log in the journal when it runs as a systemd service: structured
//! entries (`SYSG_UNIT=`, `SYSG_PROJECT=`, …, priority from the level) that `journalctl -u
//! systemg` shows, instead of plain lines on stderr.

use tracing::level_filters::LevelFilter;

/// True when systemd started this process: it sets `INVOCATION_ID` for every service it
/// runs, and `JOURNAL_STREAM` when stdout or stderr is connected to the journal.
pub fn under_systemd() -> bool {
    std::env::var_os("INVOCATION_ID").is_some() || std::env::var_os("JOURNAL_STREAM").is_some()
}

/// Install a journald subscriber when running under systemd and the journal's socket answers.
/// Returns false (nothing installed) otherwise, so the caller falls back to stderr.
#[cfg(target_os = "linux")]
pub fn init(level: LevelFilter) -> bool {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::Layer;
    if !under_systemd() {
        return false;
    }
    let layer = match tracing_journald::layer() {
        Ok(l) => l
            .with_syslog_identifier("sysg".into())
            .with_field_prefix(Some("SYSG".into())),
        // No journal socket: stderr, which systemd also collects.
        Err(_) => return false,
    };
    let subscriber = tracing_subscriber::registry().with(layer.with_filter(level));
    tracing::subscriber::set_global_default(subscriber).is_ok()
}

/// Not Linux: never the journal.
#[cfg(not(target_os = "linux"))]
pub fn init(_level: LevelFilter) -> bool {
    false
}
