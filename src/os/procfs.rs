//! /proc/PID/stat: the one parser of a process's status line, for every layer above.

use std::fs;

/// The fields of /proc/PID/stat that systemg reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    pub pid: u32,
    /// One-letter state (`R`, `S`, `Z`, ...).
    pub state: u8,
    pub ppid: u32,
    pub pgrp: u32,
    pub session: u32,
    /// CPU clock ticks: its own `utime + stime` (fields 14, 15) plus `cutime + cstime` (16,
    /// 17) of the children it has reaped, so work done by short-lived children is not lost.
    pub cpu_ticks: u64,
    /// Field 22: start time in clock ticks since boot.
    pub start_time: u64,
}

/// Parse the text of /proc/PID/stat. The command name (field 2) sits in parentheses and may
/// itself contain spaces and parentheses, so the fields after it are found from the last `)`.
pub fn parse_stat(text: &str) -> Option<Stat> {
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    if close < open {
        return None;
    }
    let pid = text[..open].trim().parse().ok()?;
    let rest: Vec<&str> = text[close + 1..].split_ascii_whitespace().collect();
    // Fields 3.. : state ppid pgrp session tty_nr tpgid flags minflt cminflt majflt cmajflt
    // utime stime cutime cstime priority nice num_threads itrealvalue starttime
    let n = |i: usize| rest.get(i).and_then(|v| v.parse::<u64>().ok());
    let id = |i: usize| rest.get(i).and_then(|v| v.parse::<u32>().ok());
    Some(Stat {
        pid,
        state: *rest.first()?.as_bytes().first()?,
        ppid: id(1)?,
        pgrp: id(2)?,
        session: id(3)?,
        cpu_ticks: n(11)? + n(12)? + n(13)? + n(14)?,
        start_time: n(19)?,
    })
}

/// Read and parse /proc/PID/stat; `None` when the process does not exist (or the line does
/// not parse).
pub fn stat(pid: u32) -> Option<Stat> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&text)
}

/// Start time of `pid` (field 22, clock ticks since boot), `None` when the process does not
/// exist. Pid plus start time identifies a process across pid reuse.
pub fn start_time(pid: u32) -> Option<u64> {
    stat(pid).map(|s| s.start_time)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_field() {
        let line = "42 (we ird) name)) S 1 43 44 0 -1 4194560 100 0 0 0 7 3 2 1 20 0 1 0 999 0 0";
        assert_eq!(
            parse_stat(line),
            Some(Stat {
                pid: 42,
                state: b'S',
                ppid: 1,
                pgrp: 43,
                session: 44,
                cpu_ticks: 13,
                start_time: 999
            })
        );
        assert_eq!(parse_stat("garbage"), None);
        assert_eq!(parse_stat("12 (x) S 1 2"), None);
    }

    #[test]
    fn own_process() {
        let me = stat(std::process::id());
        assert!(me.is_some_and(|s| s.start_time > 0 && s.pid == std::process::id()));
        assert_eq!(start_time(std::process::id()), me.map(|s| s.start_time));
    }
}
