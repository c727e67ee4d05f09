//! The terminal: its width, and `--stream` refreshing (in place on a TTY, successive
//! snapshots when piped).

use std::io::{IsTerminal, Write};
use std::time::Duration;

/// The width tables must fit: `COLUMNS` when set, else the terminal's (TIOCGWINSZ); `None`
/// when stdout is not a terminal, where nothing is ever cut.
pub fn stdout_width() -> Option<usize> {
    if !std::io::stdout().is_terminal() {
        return None;
    }
    width_from(std::env::var("COLUMNS").ok().as_deref(), ioctl_width())
}

/// `COLUMNS` wins over the ioctl; 0 or junk means unknown (then 80).
pub fn width_from(columns: Option<&str>, ioctl: Option<usize>) -> Option<usize> {
    columns
        .and_then(|c| c.trim().parse::<usize>().ok())
        .filter(|c| *c > 0)
        .or(ioctl)
        .or(Some(80))
}

fn ioctl_width() -> Option<usize> {
    let mut ws = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes one `winsize` into the struct we pass; fd 1 is only read.
    let rc = unsafe { libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut ws) };
    (rc == 0 && ws.ws_col > 0).then_some(ws.ws_col as usize)
}

/// `5`, `2s`, `1m`, `500ms`: the `--stream` interval.
pub fn parse_interval(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let bad = || format!("invalid --stream interval `{s}`: expected e.g. 5, 2s, 1m, 500ms");
    let short = || format!("--stream interval `{s}` is too short: the minimum is 50ms");
    let (num, unit) = t
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .map(|i| t.split_at(i))
        .unwrap_or((t, "s"));
    let n: f64 = num.parse().map_err(|_| bad())?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" | "sec" | "second" | "seconds" => n,
        "m" | "min" | "minute" | "minutes" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(bad()),
    };
    if !secs.is_finite() {
        return Err(bad());
    }
    if secs < 0.05 {
        return Err(short());
    }
    Ok(Duration::from_secs_f64(secs))
}

/// One refresh of a streamed view.
pub enum Frame {
    /// Show this text and go on.
    Show(String),
    /// Show this text and stop with this exit code.
    Last(String, i32),
    /// Stop with this exit code (the error was already printed).
    Stop(i32),
}

/// How successive frames are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Redraw in place: cursor home, each line cleared to its end, the rest of the screen
    /// cleared (no flicker of a full clear).
    InPlace,
    /// One snapshot after the other, separated by a blank line.
    Snapshots,
    /// One snapshot per line (JSON Lines).
    Lines,
}

/// The bytes that draw `text` as frame number `n` in `mode`.
pub fn frame_bytes(text: &str, n: u64, mode: Mode) -> String {
    match mode {
        Mode::InPlace => {
            let mut out = String::from(if n == 0 { "\x1b[2J\x1b[H" } else { "\x1b[H" });
            for line in text.lines() {
                out.push_str(line);
                out.push_str("\x1b[K\n");
            }
            out.push_str("\x1b[J");
            out
        }
        Mode::Snapshots => {
            let mut out = String::new();
            if n > 0 {
                out.push('\n');
            }
            out.push_str(text);
            if !text.ends_with('\n') {
                out.push('\n');
            }
            out
        }
        Mode::Lines => {
            let mut out = text.trim_end().to_string();
            out.push('\n');
            out
        }
    }
}

/// Call `next` every `interval` and write its frames until it says stop. A reader that goes
/// away (a closed pipe) ends the stream quietly with exit 0.
pub fn stream(interval: Duration, mode: Mode, mut next: impl FnMut() -> Frame) -> i32 {
    let mut out = std::io::stdout();
    let mut n = 0u64;
    loop {
        let (text, stop) = match next() {
            Frame::Show(t) => (t, None),
            Frame::Last(t, code) => (t, Some(code)),
            Frame::Stop(code) => return code,
        };
        let bytes = frame_bytes(&text, n, mode);
        if out
            .write_all(bytes.as_bytes())
            .and_then(|_| out.flush())
            .is_err()
        {
            return super::EXIT_OK;
        }
        if let Some(code) = stop {
            return code;
        }
        n += 1;
        std::thread::sleep(interval);
    }
}

/// Print `text` to stdout; a closed pipe is not an error worth a panic.
pub fn print(text: &str) {
    let mut out = std::io::stdout();
    let _ = out.write_all(text.as_bytes()).and_then(|_| out.flush());
}

/// `--stream DUR` of `status`/`inspect`: `Ok(None)` without it; a bad value is printed and
/// becomes the usage exit code.
pub fn stream_interval(arg: Option<&str>) -> Result<Option<Duration>, i32> {
    match arg.map(parse_interval) {
        None => Ok(None),
        Some(Ok(d)) => Ok(Some(d)),
        Some(Err(msg)) => {
            super::error(msg);
            Err(super::EXIT_USAGE)
        }
    }
}

/// How a stream is drawn: JSON lines, in place on a terminal, snapshots when piped.
pub fn stream_mode(json: bool) -> Mode {
    match (json, std::io::IsTerminal::is_terminal(&std::io::stdout())) {
        (true, _) => Mode::Lines,
        (false, true) => Mode::InPlace,
        (false, false) => Mode::Snapshots,
    }
}

/// Print a single frame; the exit code it carries.
pub fn print_once(frame: Frame) -> i32 {
    match frame {
        Frame::Show(t) => {
            print(&t);
            super::EXIT_OK
        }
        Frame::Last(t, code) => {
            print(&t);
            code
        }
        Frame::Stop(code) => code,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_wins_then_ioctl_then_80() {
        assert_eq!(width_from(Some("42"), Some(100)), Some(42));
        assert_eq!(width_from(Some("0"), Some(100)), Some(100));
        assert_eq!(width_from(Some("wide"), None), Some(80));
        assert_eq!(width_from(None, Some(120)), Some(120));
    }

    #[test]
    fn intervals() {
        assert_eq!(parse_interval("5"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_interval("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_interval("1m"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_interval("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_interval("1second"), Ok(Duration::from_secs(1)));
        assert!(parse_interval("x").is_err());
        assert!(parse_interval("0").is_err());
        assert!(parse_interval("10ms")
            .unwrap_err()
            .contains("the minimum is 50ms"));
        assert!(parse_interval("1ms").is_err());
    }

    #[test]
    fn frames() {
        let a = frame_bytes("a\nb\n", 0, Mode::InPlace);
        assert_eq!(a, "\x1b[2J\x1b[Ha\x1b[K\nb\x1b[K\n\x1b[J");
        assert!(frame_bytes("a\n", 1, Mode::InPlace).starts_with("\x1b[Ha"));
        assert_eq!(frame_bytes("a\n", 0, Mode::Snapshots), "a\n");
        assert_eq!(frame_bytes("a", 1, Mode::Snapshots), "\na\n");
        assert_eq!(frame_bytes("{}", 3, Mode::Lines), "{}\n");
    }
}
