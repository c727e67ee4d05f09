//! The supervisor's own log in the journal when it runs as a systemd service: structured
//! entries (`SYSG_UNIT=`, `SYSG_PID=`, `SYSG_PROJECT=`, …, priority from the level) that
//! `journalctl -u systemg` shows, instead of plain lines on stderr. Entries go over journald's
//! native protocol (one datagram each); a message about a service names it in the text too
//! (`web: started (pid 166)`), since `journalctl` shows only the text by default.

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
    let socket = match std::os::unix::net::UnixDatagram::unbound()
        .and_then(|s| s.connect(JOURNAL_SOCKET).map(|()| s))
    {
        Ok(s) => s,
        // No journal socket: stderr, which systemd also collects.
        Err(_) => return false,
    };
    let subscriber =
        tracing_subscriber::registry().with(JournalLayer { socket }.with_filter(level));
    tracing::subscriber::set_global_default(subscriber).is_ok()
}

/// journald's socket for its native protocol.
#[cfg(target_os = "linux")]
const JOURNAL_SOCKET: &str = "/run/systemd/journal/socket";

/// Longest message text sent when a whole entry does not fit in one datagram.
const SHORT_MESSAGE: usize = 8 * 1024;

/// Sends each event to journald as one entry.
#[cfg(target_os = "linux")]
struct JournalLayer {
    socket: std::os::unix::net::UnixDatagram,
}

#[cfg(target_os = "linux")]
impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for JournalLayer {
    fn on_event(
        &self,
        event: &tracing::Event<'_>,
        _ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let meta = event.metadata();
        let entry = encode(*meta.level(), &fields, meta.file(), meta.line(), usize::MAX);
        if self.socket.send(&entry).is_err() {
            // Too big for one datagram (a huge error text): the entry with a shortened text.
            let entry = encode(
                *meta.level(),
                &fields,
                meta.file(),
                meta.line(),
                SHORT_MESSAGE,
            );
            let _ = self.socket.send(&entry);
        }
    }
}

/// The message and the other fields of one event.
#[derive(Debug, Default)]
struct Fields {
    message: String,
    /// Other fields in order, by their tracing names (`unit`, `pid`, …).
    extra: Vec<(String, String)>,
}

impl tracing::field::Visit for Fields {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.put(field.name(), value.to_string());
    }

    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.put(field.name(), format!("{value:?}"));
    }
}

impl Fields {
    fn put(&mut self, name: &str, value: String) {
        if name == "message" {
            self.message = value;
        } else {
            self.extra.push((name.to_string(), value));
        }
    }
}

/// journald's priority of a level (info is `notice`, debug `info`).
fn priority(level: tracing::Level) -> &'static str {
    match level {
        tracing::Level::ERROR => "3",
        tracing::Level::WARN => "4",
        tracing::Level::INFO => "5",
        tracing::Level::DEBUG => "6",
        tracing::Level::TRACE => "7",
    }
}

/// A journal field name for a tracing field: `SYSG_` and the name in capitals, anything but
/// letters and digits as `_`, at most 64 bytes (journald's limit).
fn field_name(name: &str) -> String {
    let mut out = String::from("SYSG_");
    out.extend(name.chars().map(|c| {
        if c.is_ascii_alphanumeric() {
            c.to_ascii_uppercase()
        } else {
            '_'
        }
    }));
    out.truncate(64);
    out
}

/// One entry in journald's native format. The message names the service it is about
/// (`<unit>: <message>`); its text is cut at `max_message` bytes (on a char boundary).
fn encode(
    level: tracing::Level,
    f: &Fields,
    file: Option<&str>,
    line: Option<u32>,
    max_message: usize,
) -> Vec<u8> {
    let unit = f.extra.iter().find(|(k, _)| k == "unit").map(|(_, v)| v);
    let mut message = match unit {
        Some(u) => format!("{u}: {}", f.message),
        None => f.message.clone(),
    };
    if message.len() > max_message {
        let mut end = max_message;
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        message.truncate(end);
        message.push('…');
    }
    let mut buf = Vec::with_capacity(256);
    put(&mut buf, "PRIORITY", priority(level));
    put(&mut buf, "SYSLOG_IDENTIFIER", "sysg");
    put(&mut buf, "MESSAGE", &message);
    for (k, v) in &f.extra {
        put(&mut buf, &field_name(k), v);
    }
    if let Some(file) = file {
        put(&mut buf, "CODE_FILE", file);
    }
    if let Some(line) = line {
        put(&mut buf, "CODE_LINE", &line.to_string());
    }
    buf
}

/// One field: `NAME=value` and a newline, or, when the value holds a newline, the name, a
/// newline, the value's length (64-bit little-endian), the value and a newline.
fn put(buf: &mut Vec<u8>, name: &str, value: &str) {
    buf.extend_from_slice(name.as_bytes());
    if value.contains('\n') {
        buf.push(b'\n');
        buf.extend_from_slice(&(value.len() as u64).to_le_bytes());
    } else {
        buf.push(b'=');
    }
    buf.extend_from_slice(value.as_bytes());
    buf.push(b'\n');
}

/// Not Linux: never the journal.
#[cfg(not(target_os = "linux"))]
pub fn init(_level: LevelFilter) -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journal_stream_parses() {
        assert_eq!(parse_stream("8:123456"), Some((8, 123456)));
        assert_eq!(parse_stream("8:"), None);
        assert_eq!(parse_stream("x:1"), None);
        assert_eq!(parse_stream(""), None);
    }

    fn fields(message: &str, extra: &[(&str, &str)]) -> Fields {
        Fields {
            message: message.into(),
            extra: extra
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn an_entry_names_its_service_in_the_text_and_in_fields() {
        let f = fields("started (pid 166)", &[("unit", "web"), ("pid", "166")]);
        let e = encode(
            tracing::Level::INFO,
            &f,
            Some("src/x.rs"),
            Some(7),
            usize::MAX,
        );
        assert_eq!(
            String::from_utf8(e).unwrap(),
            "PRIORITY=5\nSYSLOG_IDENTIFIER=sysg\nMESSAGE=web: started (pid 166)\n\
             SYSG_UNIT=web\nSYSG_PID=166\nCODE_FILE=src/x.rs\nCODE_LINE=7\n"
        );
        let f = fields("supervisor stopped", &[]);
        let e = encode(tracing::Level::WARN, &f, None, None, usize::MAX);
        assert_eq!(
            String::from_utf8(e).unwrap(),
            "PRIORITY=4\nSYSLOG_IDENTIFIER=sysg\nMESSAGE=supervisor stopped\n"
        );
    }

    #[test]
    fn multi_line_values_are_length_prefixed_and_long_texts_cut() {
        let mut buf = Vec::new();
        put(&mut buf, "MESSAGE", "a\nb");
        let mut want = b"MESSAGE\n".to_vec();
        want.extend_from_slice(&3u64.to_le_bytes());
        want.extend_from_slice(b"a\nb\n");
        assert_eq!(buf, want);

        let f = fields(&"é".repeat(100), &[]);
        let e = String::from_utf8(encode(tracing::Level::ERROR, &f, None, None, 9)).unwrap();
        assert!(e.contains("MESSAGE=éééé…\n"), "{e}");
        assert_eq!(field_name("my.field-x"), "SYSG_MY_FIELD_X");
        assert_eq!(field_name(&"a".repeat(100)).len(), 64);
    }
}
