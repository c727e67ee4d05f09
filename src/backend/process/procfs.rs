//! Reading /proc: process status lines, children, environment markers.

use std::fs;
use std::path::Path;

pub use crate::os::procfs::{start_time as proc_start_time, stat, Stat};

/// How long `pid` has been running: the time since boot (/proc/uptime) less its start time
/// (field 22 of /proc/PID/stat, in clock ticks). `None` when the process or either file is
/// unreadable.
pub fn process_age(pid: u32) -> Option<std::time::Duration> {
    let ticks = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK).ok()??;
    let uptime = fs::read_to_string("/proc/uptime").ok()?;
    age_from(&uptime, stat(pid)?.start_time, u64::try_from(ticks).ok()?)
}

/// `process_age` from the text of /proc/uptime, a start time in ticks and the tick rate.
fn age_from(uptime: &str, start_ticks: u64, ticks_per_sec: u64) -> Option<std::time::Duration> {
    let up: f64 = uptime.split_ascii_whitespace().next()?.parse().ok()?;
    if ticks_per_sec == 0 || !up.is_finite() {
        return None;
    }
    let started = start_ticks as f64 / ticks_per_sec as f64;
    Some(std::time::Duration::from_secs_f64((up - started).max(0.0)))
}

/// Every process visible in /proc.
pub fn all() -> Vec<Stat> {
    let Ok(dir) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(stat)
        .collect()
}

/// Pids of the direct children of this process (all threads), from
/// /proc/self/task/*/children, or a full /proc scan when that file is not available.
pub fn own_children() -> Vec<u32> {
    let me = std::process::id();
    let mut out = Vec::new();
    let mut have_children_file = false;
    if let Ok(tasks) = fs::read_dir("/proc/self/task") {
        for task in tasks.filter_map(|e| e.ok()) {
            if let Ok(text) = fs::read_to_string(task.path().join("children")) {
                have_children_file = true;
                out.extend(
                    text.split_ascii_whitespace()
                        .filter_map(|p| p.parse::<u32>().ok()),
                );
            }
        }
    }
    if !have_children_file {
        out = all()
            .into_iter()
            .filter(|s| s.ppid == me)
            .map(|s| s.pid)
            .collect();
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// True when the initial environment of `pid` contains exactly `entry` (`NAME=value`).
pub fn environ_contains(pid: u32, entry: &str) -> bool {
    environ_file_contains(Path::new(&format!("/proc/{pid}/environ")), entry)
}

/// The value of `name` in the initial environment of `pid` (`None` when absent or unreadable,
/// e.g. a process of another user). When `name` appears more than once, the last entry: the
/// backend puts its marker after everything a unit inherits (a spawned child's environment
/// may also hold its parent's marker, from processes started before that was filtered).
pub fn environ_value(pid: u32, name: &str) -> Option<String> {
    let data = fs::read(format!("/proc/{pid}/environ")).ok()?;
    environ_data_value(&data, name)
}

fn environ_data_value(data: &[u8], name: &str) -> Option<String> {
    data.split(|b| *b == 0).rev().find_map(|e| {
        let rest = e.strip_prefix(name.as_bytes())?.strip_prefix(b"=")?;
        Some(String::from_utf8_lossy(rest).into_owned())
    })
}

fn environ_file_contains(path: &Path, entry: &str) -> bool {
    let Ok(data) = fs::read(path) else {
        return false;
    };
    data.split(|b| *b == 0).any(|e| e == entry.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::os::procfs::parse_stat;

    fn line(comm: &str) -> String {
        // 52 fields as in a real stat line; starttime (22) = 987654, session = 77.
        let mut fields = vec!["S", "1", "42", "77"];
        let filler = ["0"; 15];
        fields.extend(filler);
        fields.push("987654");
        fields.extend(["0"; 30]);
        format!("1234 ({comm}) {}", fields.join(" "))
    }

    #[test]
    fn parses_plain_comm() {
        let s = parse_stat(&line("sleep")).unwrap();
        assert_eq!(s.pid, 1234);
        assert_eq!(s.state, b'S');
        assert_eq!(s.ppid, 1);
        assert_eq!(s.pgrp, 42);
        assert_eq!(s.session, 77);
        assert_eq!(s.start_time, 987654);
    }

    #[test]
    fn parses_comm_with_parens_and_spaces() {
        let s = parse_stat(&line("a ) (b) c) (")).unwrap();
        assert_eq!(s.start_time, 987654);
        assert_eq!(s.ppid, 1);
        let s = parse_stat(&line(") (")).unwrap();
        assert_eq!(s.start_time, 987654);
        assert_eq!(s.session, 77);
    }

    #[test]
    fn rejects_garbage() {
        assert!(parse_stat("").is_none());
        assert!(parse_stat("12 (x) S 1 2").is_none());
        assert!(parse_stat("x (y) S 1 2 3").is_none());
    }

    #[test]
    fn ages_from_uptime_and_start_ticks() {
        let age = age_from("1000.50 3000.00\n", 95_000, 100).unwrap();
        assert_eq!(age, std::time::Duration::from_millis(50_500));
        // A start after the uptime read (rounding) is no age, never negative.
        assert_eq!(age_from("10.00 0", 2_000, 100), Some(Default::default()));
        assert_eq!(age_from("x", 1, 100), None);
        assert_eq!(age_from("10.0", 1, 0), None);
        // This test process is younger than the machine and has a readable age.
        let own = process_age(std::process::id()).unwrap();
        assert!(own < std::time::Duration::from_secs(3600 * 24 * 365));
    }

    #[test]
    fn own_start_time_is_stable() {
        let me = std::process::id();
        let a = proc_start_time(me).unwrap();
        assert_eq!(proc_start_time(me), Some(a));
        assert!(own_children().iter().all(|p| *p != me));
    }

    #[test]
    fn real_comm_with_parens() {
        // A process whose comm contains ") (": exec through a symlink with that name.
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("x) (y");
        std::os::unix::fs::symlink("/bin/sleep", &link).unwrap();
        let mut child = std::process::Command::new(&link).arg("30").spawn().unwrap();
        let pid = child.id();
        let st = stat(pid).unwrap();
        assert_eq!(st.ppid, std::process::id());
        let comm = fs::read_to_string(format!("/proc/{pid}/comm")).unwrap();
        assert_eq!(comm.trim_end(), "x) (y");
        assert!(proc_start_time(pid).unwrap() >= proc_start_time(std::process::id()).unwrap());
        let _ = child.kill();
        let _ = child.wait();
    }

    #[test]
    fn environ_match_is_exact() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("environ");
        fs::write(&p, b"A=1\0SYSG_UNIT_ID=x/y/1\0B=2\0").unwrap();
        assert!(environ_file_contains(&p, "SYSG_UNIT_ID=x/y/1"));
        assert!(!environ_file_contains(&p, "SYSG_UNIT_ID=x/y/"));
    }

    #[test]
    fn environ_value_takes_the_last_entry() {
        let data = b"SYSG_UNIT_ID=g/web/1\0SYSG_UNIT_IDX=no\0SYSG_UNIT_ID=g/web/a/2\0";
        assert_eq!(
            environ_data_value(data, "SYSG_UNIT_ID").as_deref(),
            Some("g/web/a/2")
        );
        assert_eq!(environ_data_value(b"A=1\0", "SYSG_UNIT_ID"), None);
    }
}
