//! `command` probes (and hook commands): `/bin/sh -c` in its own process group, with the
//! service's environment and working directory, bounded by a timeout after which the whole
//! group is killed.

use std::io::Read;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{mpsc, Mutex};
use std::time::Duration;

use super::placement::{Gate, Place};
use super::ProbeError;
use crate::spec::ExitStatus;

/// Bytes of output kept (the end of it): enough for an error message, bounded for chatty ones.
pub const OUTPUT_TAIL: usize = 8 * 1024;

/// How long to wait for the output pipe to close once the process is gone (a descendant that
/// left the group could hold it open forever).
pub(super) const DRAIN: Duration = Duration::from_millis(500);

/// Who a command runs as: the service's `user`/`group`, so that a probe or hook never has
/// more rights than the service it belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Identity {
    pub uid: u32,
    pub gid: u32,
}

/// The identity to switch to for a service with `user`/`group`: `None` when neither is set,
/// or when the supervisor is not root (then it cannot switch and runs commands as itself,
/// like the services themselves).
pub fn identity(user: Option<&str>, group: Option<&str>) -> Result<Option<Identity>, ProbeError> {
    if (user.is_none() && group.is_none()) || !nix::unistd::geteuid().is_root() {
        return Ok(None);
    }
    let bad = ProbeError::Identity;
    let (mut uid, mut gid) = (0, 0);
    if let Some(name) = user {
        let found = match name.parse::<u32>() {
            Ok(n) => nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(n)),
            Err(_) => nix::unistd::User::from_name(name),
        };
        let u = found
            .map_err(|e| bad(format!("user {name}: {e}")))?
            .ok_or_else(|| bad(format!("user {name}: no such user")))?;
        uid = u.uid.as_raw();
        gid = u.gid.as_raw();
    }
    if let Some(name) = group {
        gid = match name.parse::<u32>() {
            Ok(n) => n,
            Err(_) => nix::unistd::Group::from_name(name)
                .map_err(|e| bad(format!("group {name}: {e}")))?
                .ok_or_else(|| bad(format!("group {name}: no such group")))?
                .gid
                .as_raw(),
        };
    }
    Ok(Some(Identity { uid, gid }))
}

/// Process groups of the probe and hook commands running now, so that none outlives the
/// supervisor (`kill_running`).
static RUNNING: Mutex<Vec<u32>> = Mutex::new(Vec::new());

/// A command's place in `RUNNING`, for as long as it runs.
struct Running(u32);

impl Running {
    fn register(pgid: u32) -> Running {
        RUNNING.lock().unwrap_or_else(|e| e.into_inner()).push(pgid);
        Running(pgid)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let mut running = RUNNING.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(i) = running.iter().position(|p| *p == self.0) {
            running.swap_remove(i);
        }
    }
}

/// Kill (SIGKILL, whole process group) every probe or hook command still running; for the
/// supervisor's exit, after running hooks had their moment. Returns how many there were.
pub fn kill_running() -> usize {
    let running = RUNNING.lock().unwrap_or_else(|e| e.into_inner());
    for &pgid in running.iter() {
        kill_group(pgid);
    }
    running.len() + super::placement::kill_units()
}

/// A finished command.
#[derive(Debug, Clone, PartialEq)]
pub struct Finished {
    pub status: ExitStatus,
    /// The end of stdout and stderr, interleaved as written.
    pub output: Vec<u8>,
}

/// Run `/bin/sh -c command` with `env` added to the supervisor's environment, in `cwd`,
/// and wait at most `timeout`; on timeout the process group is killed and `Timeout` returned.
pub fn run_shell(
    command: &str,
    env: &[(String, String)],
    cwd: Option<&Path>,
    timeout: Duration,
) -> Result<Finished, ProbeError> {
    run_shell_as(command, env, cwd, timeout, None)
}

/// `run_shell` as `who` (when set: uid, gid, no supplementary groups).
pub fn run_shell_as(
    command: &str,
    env: &[(String, String)],
    cwd: Option<&Path>,
    timeout: Duration,
    who: Option<Identity>,
) -> Result<Finished, ProbeError> {
    run_shell_placed(command, env, cwd, timeout, who, None)
}

/// `run_shell_as` for a helper of the unit `place` names: on the systemd backend it runs as a
/// transient service with the service's properties, or in a transient scope of the project's
/// slice (`super::placement`).
pub fn run_shell_placed(
    command: &str,
    env: &[(String, String)],
    cwd: Option<&Path>,
    timeout: Duration,
    who: Option<Identity>,
    place: Option<Place<'_>>,
) -> Result<Finished, ProbeError> {
    if let Some(done) = super::placement::run_as_unit(command, env, timeout, place) {
        return done;
    }
    // The service's sandbox, laid out before the fork (a helper never runs with less).
    #[cfg(target_os = "linux")]
    let sandbox = match place.and_then(|p| p.spec.map(|spec| (p.unit, &spec.sandbox))) {
        Some((unit, s)) => {
            crate::backend::process::sandbox::ChildSandbox::prepare_for(unit, s, cwd)
                .map_err(|e| ProbeError::Spawn(std::io::Error::other(e.to_string())))?
        }
        None => None,
    };
    #[cfg(not(target_os = "linux"))]
    let sandbox: Option<()> = None;
    let (read, write) = nix::unistd::pipe().map_err(|e| ProbeError::Spawn(e.into()))?;
    let write2 = write.try_clone().map_err(ProbeError::Spawn)?;
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c")
        .arg(command)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::from(write))
        .stderr(Stdio::from(write2))
        // Its own group, so a timeout kills whatever the shell started too.
        .process_group(0);
    if let Some(dir) = cwd {
        cmd.current_dir(dir);
    }
    if let (Some(id), None) = (who, &sandbox) {
        // std drops the supplementary groups when root switches uid.
        cmd.gid(id.gid).uid(id.uid);
    }
    // The supervisor blocks SIGTERM & co. for its signal thread; probes and hooks (and what
    // they leave behind) must start with a clean signal state, like services.
    #[cfg(target_os = "linux")]
    // SAFETY: reset_signals only makes async-signal-safe calls and does not allocate.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(
            &mut cmd,
            crate::backend::process::spawn::reset_signals,
        );
    }
    let gate = Gate::arm(&mut cmd, place, timeout);
    #[cfg(target_os = "linux")]
    if let Some(sb) = sandbox {
        let ids = who.map(|w| (w.uid, w.gid));
        // SAFETY: the last hook: apply_for_helper makes only async-signal-safe calls on data
        // laid out before the fork, and switches to `ids` itself after the mounts.
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut cmd, move || {
                sb.apply_for_helper(ids)
            });
        }
    }
    let spawned = cmd.spawn();
    if let Some(g) = gate {
        g.spawned();
    }
    let mut child = spawned.map_err(ProbeError::Spawn)?;
    // The write ends now live only in the child (std closed ours after the spawn).
    drop(cmd);
    let pid = child.id();
    let _running = Running::register(pid);

    let out_rx = collect_output(read)?;

    let (done_tx, done_rx) = mpsc::channel();
    std::thread::Builder::new()
        .name("cmd-wait".into())
        .spawn(move || {
            let _ = done_tx.send(child.wait());
        })
        .map_err(ProbeError::Spawn)?;

    let status = match done_rx.recv_timeout(timeout) {
        Ok(Ok(st)) => st,
        Ok(Err(e)) => return Err(ProbeError::Spawn(e)),
        Err(_) => {
            kill_group(pid);
            // Reap it so no zombie stays behind; SIGKILL makes this quick.
            let _ = done_rx.recv_timeout(Duration::from_secs(5));
            return Err(ProbeError::Timeout(timeout));
        }
    };
    // The shell exited; whatever it left behind in its group goes too.
    kill_group(pid);
    let output = out_rx.recv_timeout(DRAIN).unwrap_or_default();
    let status = match (status.code(), status.signal()) {
        (Some(c), _) => ExitStatus::Code(c),
        (None, Some(s)) => ExitStatus::Signal(s),
        _ => ExitStatus::Unknown,
    };
    Ok(Finished { status, output })
}

/// Read a command's output pipe to its end on a thread of its own; the receiver gets the
/// output's tail (`OUTPUT_TAIL`).
pub(super) fn collect_output(
    read: std::os::fd::OwnedFd,
) -> Result<mpsc::Receiver<Vec<u8>>, ProbeError> {
    let (out_tx, out_rx) = mpsc::channel();
    let mut reader = std::fs::File::from(read);
    std::thread::Builder::new()
        .name("cmd-output".into())
        .spawn(move || {
            let mut tail = Vec::new();
            let mut buf = [0u8; 4096];
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 {
                    break;
                }
                tail.extend_from_slice(&buf[..n]);
                if tail.len() > 2 * OUTPUT_TAIL {
                    tail.drain(..tail.len() - OUTPUT_TAIL);
                }
            }
            if tail.len() > OUTPUT_TAIL {
                tail.drain(..tail.len() - OUTPUT_TAIL);
            }
            let _ = out_tx.send(tail);
        })
        .map_err(ProbeError::Spawn)?;
    Ok(out_rx)
}

/// SIGKILL the process group `pgid` (errors mean it is already gone).
fn kill_group(pgid: u32) {
    let Ok(pgid) = i32::try_from(pgid) else {
        return;
    };
    let _ = nix::sys::signal::killpg(
        nix::unistd::Pid::from_raw(pgid),
        nix::sys::signal::Signal::SIGKILL,
    );
}

/// The last non-empty line of `output`, shortened, for a probe's failure detail.
pub fn last_line(output: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(output);
    let line = text.lines().rev().map(str::trim).find(|l| !l.is_empty())?;
    let mut line = line.to_string();
    if line.len() > 200 {
        let mut cut = 200;
        while !line.is_char_boundary(cut) {
            cut -= 1;
        }
        line.truncate(cut);
        line.push('…');
    }
    Some(line)
}

/// Probe: the command must exit 0 within `timeout`.
pub fn probe(
    command: &str,
    env: &[(String, String)],
    cwd: Option<&Path>,
    timeout: Duration,
) -> Result<String, ProbeError> {
    probe_as(command, env, cwd, timeout, None, None)
}

/// `probe` as `who`, for the unit `place` names (see `run_shell_placed`).
pub fn probe_as(
    command: &str,
    env: &[(String, String)],
    cwd: Option<&Path>,
    timeout: Duration,
    who: Option<Identity>,
    place: Option<Place<'_>>,
) -> Result<String, ProbeError> {
    let done = run_shell_placed(command, env, cwd, timeout, who, place)?;
    if done.status.success() {
        return Ok("exit 0".into());
    }
    Err(ProbeError::Command {
        status: done.status,
        output: last_line(&done.output),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    const T: Duration = Duration::from_secs(5);

    #[test]
    fn exit_codes_decide() {
        assert_eq!(probe("exit 0", &[], None, T).ok(), Some("exit 0".into()));
        match probe("echo broken >&2; exit 3", &[], None, T) {
            Err(ProbeError::Command { status, output }) => {
                assert_eq!(status, ExitStatus::Code(3));
                assert_eq!(output.as_deref(), Some("broken"));
            }
            other => panic!("{other:?}"),
        }
        let e = probe("exit 7", &[], None, T).err().map(|e| e.to_string());
        assert_eq!(e.as_deref(), Some("exit 7"));
    }

    #[test]
    fn env_and_cwd_are_the_services() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("marker"), "").expect("write");
        let env = vec![("PROBE_WANT".to_string(), "yes".to_string())];
        assert!(probe(
            r#"test "$PROBE_WANT" = yes && test -f marker"#,
            &env,
            Some(dir.path()),
            T
        )
        .is_ok());
        assert!(probe("test -f marker", &[], None, T).is_err());
    }

    #[test]
    fn timeout_kills_the_whole_group() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pidfile = dir.path().join("bg.pid");
        let started = Instant::now();
        // A background grandchild in the same group, and a foreground sleep.
        let cmd = format!("sleep 300 & echo $! > {}; sleep 300", pidfile.display());
        let r = probe(&cmd, &[], None, Duration::from_millis(300));
        let took = started.elapsed();
        assert!(matches!(r, Err(ProbeError::Timeout(_))), "{r:?}");
        assert!(took < Duration::from_secs(3), "took {took:?}");
        let pid: i32 = std::fs::read_to_string(&pidfile)
            .expect("pid file")
            .trim()
            .parse()
            .expect("pid");
        // The grandchild got SIGKILL with its group; it is reaped by init, so wait for that.
        let deadline = Instant::now() + Duration::from_secs(5);
        let gone = || {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .map(|s| {
                    s.rsplit_once(')')
                        .is_some_and(|(_, r)| r.trim_start().starts_with('Z'))
                })
                .unwrap_or(true)
        };
        while !gone() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(gone(), "grandchild {pid} survived the timeout");
    }

    #[test]
    fn runs_as_the_services_user() {
        if !nix::unistd::geteuid().is_root() {
            println!("skipping runs_as_the_services_user: needs root");
            return;
        }
        let who = identity(Some("nobody"), None).expect("nobody exists");
        let done = run_shell_as("id -u", &[], Some(Path::new("/")), T, who).expect("run");
        let want = who.map(|w| w.uid.to_string());
        assert_eq!(last_line(&done.output), want);
        assert_ne!(last_line(&done.output).as_deref(), Some("0"));
        assert_eq!(identity(None, None).ok(), Some(None));
        assert!(identity(Some("no-such-user-here"), None).is_err());
    }

    #[test]
    fn output_is_bounded_to_its_tail() {
        let done = run_shell(
            "head -c 100000 /dev/zero | tr '\\0' x; echo; echo last",
            &[],
            None,
            T,
        )
        .expect("run");
        assert!(done.output.len() <= OUTPUT_TAIL);
        assert_eq!(last_line(&done.output).as_deref(), Some("last"));
    }
}
