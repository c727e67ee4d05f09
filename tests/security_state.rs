//! Issue 23, item 1: under `sudo sysg --sys --drop-privileges start` the services' user owns
//! the state directory, so it can rewrite state.json. Records it forges (a root process of its
//! own session named by pid, start time and process group; a process of the user's own that
//! carries a forged unit marker and names another cgroup) must make the next supervisor
//! neither adopt nor kill anything: the victims survive and the real service is adopted.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failed test
#![cfg(target_os = "linux")]

mod common;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use common::sandbox::*;
use common::*;

/// Processes and a cgroup the test made, removed however it ends.
struct Victims {
    children: Vec<Child>,
    cgroup: Option<PathBuf>,
}

impl Drop for Victims {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        if let Some(dir) = &self.cgroup {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

fn stat_fields(pid: u32) -> Vec<String> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let Some((_, rest)) = text.rsplit_once(')') else {
        return Vec::new();
    };
    rest.split_ascii_whitespace().map(str::to_string).collect()
}

/// (session, start time) of a process, from /proc/PID/stat (fields 6 and 22).
fn session_and_start(pid: u32) -> (u32, u64) {
    let f = stat_fields(pid);
    (
        f.get(3).and_then(|s| s.parse().ok()).unwrap_or(0),
        f.get(19).and_then(|s| s.parse().ok()).unwrap_or(0),
    )
}

fn leads_own_session(pid: u32) -> bool {
    session_and_start(pid).0 == pid
}

/// The cgroup2 mount point, from our mountinfo.
fn cgroup2_mount() -> Option<PathBuf> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    text.lines().find_map(|l| {
        let (left, right) = l.split_once(" - ")?;
        if right.split(' ').next()? != "cgroup2" {
            return None;
        }
        left.split(' ').nth(4).map(PathBuf::from)
    })
}

fn environ_value(pid: u32, name: &str) -> Option<String> {
    let data = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
    data.split(|b| *b == 0).find_map(|e| {
        let rest = e.strip_prefix(name.as_bytes())?.strip_prefix(b"=")?;
        Some(String::from_utf8_lossy(rest).into_owned())
    })
}

/// Replace state.json as the services' user (nobody) would: inside the sandbox, with its
/// identity, through a rename in the directory it owns.
fn forge_state(sb: &Sandbox, text: &str) {
    let state = format!("/var/lib/systemg/{}/state.json", sb.project);
    let mut c = Command::new("nsenter");
    c.arg("-t").arg(sb.pid().to_string()).arg("-m").args([
        "setpriv",
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        "sh",
        "-c",
        &format!("cat > {state}.forged && mv -f {state}.forged {state}"),
    ]);
    c.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(text.as_bytes()).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert_ok(&out, "forging state.json as nobody");
}

#[test]
fn forged_state_records_kill_nothing_and_the_service_is_still_adopted() {
    if let Some(why) = skip() {
        println!("skipped: {why}");
        return;
    }
    let services = "  web:\n    command: \"exec sleep 1000\"\n    user: nobody\n";
    let mut sb = Sandbox::new("forge", true, services);
    let mut victims = Victims {
        children: Vec::new(),
        cgroup: None,
    };

    // Victim 1: root's, leading its own session and process group.
    victims.children.push(
        Command::new("setsid")
            .args(["sleep", "1000"])
            .spawn()
            .unwrap(),
    );
    let root_victim = victims.children[0].id();
    wait_until("the root victim's own session", T, || {
        leads_own_session(root_victim)
    });

    // Victim 2: root's, alone in a cgroup of its own (when this host lets root make one).
    let mut cgroup_victim = None;
    if let Some(mount) = cgroup2_mount() {
        let dir = mount.join(format!("sysg-security-victim-{}", std::process::id()));
        if std::fs::create_dir(&dir).is_ok() {
            victims.cgroup = Some(dir.clone());
            let child = Command::new("sleep").arg("1000").spawn().unwrap();
            let pid = child.id();
            victims.children.push(child);
            std::fs::write(dir.join("cgroup.procs"), pid.to_string()).unwrap();
            cgroup_victim = Some((pid, dir));
        }
    }
    if cgroup_victim.is_none() {
        println!("no cgroup2 hierarchy root can write: the cgroup record is not tried");
    }

    assert_ok(&sb.start(&["--drop-privileges"]), "start --drop-privileges");
    let web = sb.service_pid("web");
    let state_path = sb.inside("/var/lib/systemg/forge/state.json");
    wait_until("state.json recording web", T, || {
        std::fs::read_to_string(&state_path).is_ok_and(|t| t.contains(&format!("\"pid\": {web}")))
            || std::fs::read_to_string(&state_path)
                .is_ok_and(|t| t.contains(&format!("\"pid\":{web}")))
    });
    // The service's own marker tells the user the project instance's group: a process of the
    // user's own can carry a marker as real as the service's.
    let marker = environ_value(web, "SYSG_UNIT_ID").expect("web's marker");
    let group = marker.split('/').next().unwrap().to_string();
    let mut attacker = Command::new("setpriv");
    attacker
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "setsid",
            "sleep",
            "1000",
        ])
        .env("SYSG_UNIT_ID", format!("{group}/ghost2/1-1-1"));
    victims.children.push(attacker.spawn().unwrap());
    let attacker = victims.children.last().unwrap().id();
    wait_until("the attacker's process in its own session", T, || {
        leads_own_session(attacker)
            && environ_value(attacker, "SYSG_UNIT_ID").is_some()
            && std::fs::read_to_string(format!("/proc/{attacker}/comm"))
                .is_ok_and(|c| c.trim() == "sleep")
    });

    // The supervisor dies (kill -9) and the user rewrites the state file it left.
    let sup = sb.supervisor_pid().expect("supervisor pid");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(sup as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    wait_until("the supervisor to die", T, || !alive(sup));
    let mut state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&state_path).unwrap()).unwrap();
    let records = state["records"].as_array_mut().expect("records");
    assert!(records.iter().any(|r| r["unit"] == "web"), "{records:?}");
    let (_, start) = session_and_start(root_victim);
    records.push(serde_json::json!({
        "unit": "ghost",
        "pid": root_victim,
        "start_time": start,
        "extra": { "pgid": root_victim },
    }));
    if let Some((_, dir)) = &cgroup_victim {
        let (_, start) = session_and_start(attacker);
        records.push(serde_json::json!({
            "unit": "ghost2",
            "pid": attacker,
            "start_time": start,
            "extra": {
                "backend": "process",
                "kill_mode": "cgroup",
                "pgid": attacker,
                "cgroup": dir,
                "marker": format!("{group}/ghost2/1-1-1"),
            },
        }));
    }
    forge_state(&sb, &serde_json::to_string_pretty(&state).unwrap());

    // The next supervisor adopts web and refuses both forged records.
    assert_ok(&sb.start(&["--drop-privileges"]), "second start");
    assert_eq!(sb.service_pid("web"), web, "web was adopted, not restarted");
    assert!(alive(root_victim), "the root victim was killed");
    if let Some((pid, _)) = &cgroup_victim {
        assert!(alive(*pid), "the victim in its own cgroup was killed");
    }
    assert!(alive(attacker));
    for c in &mut victims.children {
        assert!(matches!(c.try_wait(), Ok(None)), "pid {} ended", c.id());
    }
    let log = std::fs::read_to_string(sb.inside("/var/log/systemg/forge/supervisor.log"))
        .unwrap_or_default();
    assert!(
        log.contains("adopted a running service") && log.contains("unit=web"),
        "{log}"
    );
    assert!(!log.contains("no longer configured"), "{log}");
    let refused = log
        .lines()
        .filter(|l| l.contains("not adopting a record of the state file"))
        .count();
    let expected = if cgroup_victim.is_some() { 2 } else { 1 };
    assert_eq!(refused, expected, "{log}");
}
