//! The supervisor's own log in the journal when it runs as a systemd service: structured
//! entries (`SYSG_UNIT=`, `SYSG_PROJECT=`, …, priority from the level) that `journalctl -u
//! systemg` shows, instead of plain lines on stderr.

use tracing::level_filters::LevelFilter;

/// True when this process's log belongs in the journal: systemd connected stderr to it (the
/// documented test: `JOURNAL_STREAM` names stderr's device and inode), or systemd started the
/// process (`INVOCATION_ID`, set for every service) and stderr is not a terminal. A shell in a
/// terminal emulator that itself runs as a systemd service inherits `INVOCATION_ID`; its
/// stderr is a terminal, so a foreground `sysg start` there keeps printing to it.
pub fn under_systemd() -> bool {
    use std::io::IsTerminal;
    use std::os::fd::AsFd;
    use std::os::unix::fs::MetadataExt;
    let stderr_id = std::io::stderr()
        .as_fd()
        .try_clone_to_owned()
        .ok()
        .map(std::fs::File::from)
        .and_then(|f| f.metadata().ok())
        .map(|m| (m.dev(), m.ino()));
    let stream = std::env::var("JOURNAL_STREAM").ok();
    if stream
        .as_deref()
        .and_then(parse_stream)
        .is_some_and(|id| Some(id) == stderr_id)
    {
        return true;
    }
    std::env::var_os("INVOCATION_ID").is_some() && !std::io::stderr().is_terminal()
}

/// `JOURNAL_STREAM=<device>:<inode>` (decimal) as systemd sets it.
fn parse_stream(v: &str) -> Option<(u64, u64)> {
    let (dev, ino) = v.split_once(':')?;
    Some((dev.parse().ok()?, ino.parse().ok()?))
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

#[cfg(test)]
mod tests {
    use super::parse_stream;

    #[test]
    fn journal_stream_parses() {
        assert_eq!(parse_stream("8:123456"), Some((8, 123456)));
        assert_eq!(parse_stream("8:"), None);
        assert_eq!(parse_stream("x:1"), None);
        assert_eq!(parse_stream(""), None);
    }
}
