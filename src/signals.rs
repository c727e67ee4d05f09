//! Signal names and numbers as users write them (`SIGTERM`, `TERM`, `15`).

const TABLE: &[(&str, i32)] = &[
    ("SIGHUP", libc::SIGHUP),
    ("SIGINT", libc::SIGINT),
    ("SIGQUIT", libc::SIGQUIT),
    ("SIGILL", libc::SIGILL),
    ("SIGTRAP", libc::SIGTRAP),
    ("SIGABRT", libc::SIGABRT),
    ("SIGBUS", libc::SIGBUS),
    ("SIGFPE", libc::SIGFPE),
    ("SIGKILL", libc::SIGKILL),
    ("SIGUSR1", libc::SIGUSR1),
    ("SIGSEGV", libc::SIGSEGV),
    ("SIGUSR2", libc::SIGUSR2),
    ("SIGPIPE", libc::SIGPIPE),
    ("SIGALRM", libc::SIGALRM),
    ("SIGTERM", libc::SIGTERM),
    ("SIGCHLD", libc::SIGCHLD),
    ("SIGCONT", libc::SIGCONT),
    ("SIGSTOP", libc::SIGSTOP),
    ("SIGTSTP", libc::SIGTSTP),
    ("SIGTTIN", libc::SIGTTIN),
    ("SIGTTOU", libc::SIGTTOU),
    ("SIGURG", libc::SIGURG),
    ("SIGXCPU", libc::SIGXCPU),
    ("SIGXFSZ", libc::SIGXFSZ),
    ("SIGVTALRM", libc::SIGVTALRM),
    ("SIGPROF", libc::SIGPROF),
    ("SIGWINCH", libc::SIGWINCH),
    ("SIGIO", libc::SIGIO),
    ("SIGSYS", libc::SIGSYS),
];

/// Parse `SIGTERM`, `TERM`, `sigterm` or `15`.
pub fn parse(s: &str) -> Option<(i32, &'static str)> {
    let t = s.trim();
    if let Ok(n) = t.parse::<i32>() {
        return TABLE.iter().find(|(_, v)| *v == n).map(|(k, v)| (*v, *k));
    }
    let up = t.to_ascii_uppercase();
    let full = if up.starts_with("SIG") {
        up
    } else {
        format!("SIG{up}")
    };
    TABLE
        .iter()
        .find(|(k, _)| *k == full)
        .map(|(k, v)| (*v, *k))
}

/// Canonical name of a signal number (`SIGTERM`), or the number.
pub fn name(n: i32) -> String {
    TABLE
        .iter()
        .find(|(_, v)| *v == n)
        .map(|(k, _)| (*k).to_string())
        .unwrap_or_else(|| n.to_string())
}

/// All known names, for suggestions.
pub fn names() -> impl Iterator<Item = &'static str> {
    TABLE.iter().map(|(k, _)| *k)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_forms() {
        assert_eq!(parse("SIGTERM"), Some((libc::SIGTERM, "SIGTERM")));
        assert_eq!(parse("term"), Some((libc::SIGTERM, "SIGTERM")));
        assert_eq!(parse("9"), Some((libc::SIGKILL, "SIGKILL")));
        assert_eq!(parse("SIGNOPE"), None);
        assert_eq!(name(libc::SIGINT), "SIGINT");
    }
}
