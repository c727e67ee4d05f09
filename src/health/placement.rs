//! Where helper commands (command probes, hooks, deployment commands) run. On the systemd
//! backend a helper whose kind `as_service` names runs as a transient service built from its
//! service's unit properties (`sysg-<project>-<service>.<kind>.<id>.service`: the service's
//! user, capabilities, isolation, limits and sandbox, set up by PID 1); the others are handed
//! to systemd as a transient scope in the project's slice
//! (`sysg-<project>-<service>.<kind>.<pid>.scope`). Either way the helper is accounted to the
//! project, shows in `systemctl status` and is not part of the supervisor's own cgroup.
//! Elsewhere helpers stay the supervisor's children, as before.
//!
//! The command's process writes its pid to a pipe between fork and exec and waits on a second
//! pipe; a thread of the supervisor reads the pid, has the placer register it, and lets the
//! process go on. `Command::spawn` returns only after the exec, so the waiting must happen on
//! another thread than the spawn.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::OnceLock;
use std::time::Duration;

use super::command::{collect_output, Finished, DRAIN};
use super::ProbeError;
use crate::backend::{HelperEnd, HelperRun};
use crate::config::schema::CgroupLimits;
use crate::spec::UnitSpec;

/// A helper's process to place.
#[derive(Debug, Clone, PartialEq)]
pub struct Placing {
    /// The service (or `service/child`) it belongs to.
    pub unit: String,
    /// `probe`, `hook`, `pre_start`, `switch_command`.
    pub kind: String,
    pub pid: u32,
    /// The helper's own timeout.
    pub timeout: Duration,
    /// The service's `limits.cgroup`, for the helper's unit.
    pub limits: CgroupLimits,
}

/// Registers a helper's process: it returns once the process is in its unit.
pub type Placer = Box<dyn Fn(&Placing) -> Result<(), String> + Send + Sync>;

static PLACER: OnceLock<Placer> = OnceLock::new();

/// Install the placer for this process's helper commands (once; later calls are ignored).
pub fn set_placer(p: Placer) {
    let _ = PLACER.set(p);
}

/// Which unit a helper belongs to.
#[derive(Debug, Clone, Copy)]
pub struct Place<'a> {
    /// The service (or `service/child`).
    pub unit: &'a str,
    /// What the helper is: `probe`, `hook`, `pre_start`, `switch_command`, `reload`.
    pub kind: &'a str,
    /// The service's spec, when known: a transient service is built from it, a scope carries
    /// its `limits.cgroup`.
    pub spec: Option<&'a UnitSpec>,
}

/// Runs a helper as a transient service, its stdout and stderr going to the given write end.
pub type UnitRunner =
    Box<dyn Fn(&HelperRun<'_>, OwnedFd) -> Result<HelperEnd, String> + Send + Sync>;

/// Kills every helper unit still running; returns how many there were.
pub type UnitKiller = Box<dyn Fn() -> usize + Send + Sync>;

static UNIT_RUNNER: OnceLock<(UnitRunner, UnitKiller)> = OnceLock::new();

/// Install the runner of helpers as transient services and its killer, for the supervisor's
/// exit (once; later calls are ignored).
pub fn set_unit_runner(r: UnitRunner, kill: UnitKiller) {
    let _ = UNIT_RUNNER.set((r, kill));
}

/// Kill every helper running as a unit (`command::kill_running`); how many there were.
pub fn kill_units() -> usize {
    UNIT_RUNNER.get().map_or(0, |(_, kill)| kill())
}

/// Whether a helper of `kind` runs as a transient service (with the service's properties)
/// rather than in a scope; docs/backends.md says why per kind.
pub fn as_service(kind: &str) -> bool {
    matches!(
        kind,
        "probe" | "hook" | "pre_start" | "switch_command" | "reload"
    )
}

/// Run `command` as a transient service when a unit runner is installed and `place` says
/// whose helper it is; `None` leaves it to the fork path (a scope, or none).
pub fn run_as_unit(
    command: &str,
    env: &[(String, String)],
    timeout: Duration,
    place: Option<Place<'_>>,
) -> Option<Result<Finished, ProbeError>> {
    let (runner, _) = UNIT_RUNNER.get()?;
    let place = place?;
    let spec = place.spec?;
    if !as_service(place.kind) {
        return None;
    }
    Some((|| {
        let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
            .map_err(|e| ProbeError::Spawn(e.into()))?;
        let output = collect_output(read)?;
        let call = HelperRun {
            spec,
            kind: place.kind,
            command,
            env,
            timeout,
        };
        let end = runner(&call, write).map_err(|e| ProbeError::Spawn(std::io::Error::other(e)))?;
        let output = output.recv_timeout(DRAIN).unwrap_or_default();
        match end {
            HelperEnd::Exited(status) => Ok(Finished { status, output }),
            HelperEnd::TimedOut => Err(ProbeError::Timeout(timeout)),
        }
    })())
}

/// The parent's side of a placement while the command is being spawned.
pub struct Gate {
    /// The child's ends, closed in the parent once the spawn returned.
    child_ends: Option<(OwnedFd, OwnedFd)>,
}

impl Gate {
    /// Prepare `cmd` to wait for its placement, and start the thread that places it. `None`
    /// (nothing done) without a placer or a place.
    pub fn arm(
        cmd: &mut std::process::Command,
        place: Option<Place<'_>>,
        timeout: Duration,
    ) -> Option<Gate> {
        let placer = PLACER.get()?;
        let place = place?;
        let (pid_r, pid_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).ok()?;
        let (gate_r, gate_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).ok()?;
        let (pw, gr, gw) = (pid_w.as_raw_fd(), gate_r.as_raw_fd(), gate_w.as_raw_fd());
        let mut what = Placing {
            unit: place.unit.to_string(),
            kind: place.kind.to_string(),
            pid: 0,
            timeout,
            limits: place
                .spec
                .map(|s| s.limits.cgroup.clone())
                .unwrap_or_default(),
        };
        std::thread::Builder::new()
            .name("cmd-place".into())
            .spawn(move || place_child(placer, &mut what, pid_r, gate_w))
            .ok()?;
        // SAFETY: the hook runs in the forked child before exec and only makes
        // async-signal-safe calls (getpid, write, close, read) on descriptors opened before
        // the fork; it allocates nothing.
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(cmd, move || wait_for_place(pw, gr, gw));
        }
        Some(Gate {
            child_ends: Some((pid_w, gate_r)),
        })
    }

    /// The spawn returned (the child exec'd or failed): the parent's copies of the child's
    /// ends go, so that the placing thread sees end-of-file if the child never wrote.
    pub fn spawned(mut self) {
        self.child_ends.take();
    }
}

/// In the child: report our pid, wait for the go.
fn wait_for_place(pid_w: RawFd, gate_r: RawFd, gate_w: RawFd) -> std::io::Result<()> {
    // SAFETY: plain system calls on descriptors this process owns.
    unsafe {
        libc::close(gate_w);
        let pid = libc::getpid().to_ne_bytes();
        if libc::write(pid_w, pid.as_ptr().cast(), pid.len()) != pid.len() as isize {
            return Err(std::io::Error::last_os_error());
        }
        libc::close(pid_w);
        let mut byte = 0u8;
        loop {
            let n = libc::read(gate_r, std::ptr::addr_of_mut!(byte).cast(), 1);
            if n == 1 {
                break;
            }
            let e = std::io::Error::last_os_error();
            if n < 0 && e.raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return Err(std::io::Error::other("the supervisor gave up placing it"));
        }
        libc::close(gate_r);
    }
    Ok(())
}

/// In the supervisor: read the child's pid, place it, let it go on. A failed placement is
/// logged and the command runs anyway, where the supervisor runs (as without systemd).
fn place_child(placer: &Placer, what: &mut Placing, pid_r: OwnedFd, gate_w: OwnedFd) {
    let mut buf = [0u8; 4];
    let mut got = 0;
    while got < buf.len() {
        match nix::unistd::read(&pid_r, &mut buf[got..]) {
            Ok(0) => return, // the child never got that far
            Ok(n) => got += n,
            Err(nix::errno::Errno::EINTR) => {}
            Err(_) => return,
        }
    }
    let pid = i32::from_ne_bytes(buf);
    if let Ok(pid) = u32::try_from(pid) {
        what.pid = pid;
        if let Err(e) = placer(what) {
            tracing::warn!(unit = %what.unit, "{} runs outside a unit of its own: {e}", what.kind);
        }
    }
    let _ = nix::unistd::write(&gate_w, b"g");
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// Every placement asked for in this test process: (unit, kind, pid, timeout).
    static SEEN: Mutex<Vec<Placing>> = Mutex::new(Vec::new());

    fn install() {
        set_placer(Box::new(|p| {
            SEEN.lock().unwrap().push(p.clone());
            if p.unit == "placement-test-refused" {
                return Err("refused".into());
            }
            Ok(())
        }));
    }

    fn run(unit: &str) -> (u32, crate::health::command::Finished) {
        let mut spec = UnitSpec::new("p", unit, Vec::new());
        spec.limits.cgroup = CgroupLimits {
            memory_max: Some(crate::config::schema::Size::Value(1 << 20)),
            cpu_max: None,
        };
        let done = crate::health::command::run_shell_placed(
            "echo $$",
            &[],
            None,
            Duration::from_secs(5),
            None,
            Some(Place {
                unit,
                kind: "probe",
                spec: Some(&spec),
            }),
        )
        .expect("ran");
        let pid = String::from_utf8_lossy(&done.output)
            .trim()
            .parse()
            .unwrap();
        (pid, done)
    }

    #[test]
    fn the_helper_process_itself_is_placed_before_it_runs_and_runs_when_refused() {
        install();
        let (pid, done) = run("placement-test-ok");
        assert!(done.status.success());
        let seen = SEEN.lock().unwrap().clone();
        assert!(
            seen.contains(&Placing {
                unit: "placement-test-ok".into(),
                kind: "probe".into(),
                pid,
                timeout: Duration::from_secs(5),
                limits: CgroupLimits {
                    memory_max: Some(crate::config::schema::Size::Value(1 << 20)),
                    cpu_max: None,
                },
            }),
            "{pid} not placed: {seen:?}"
        );
        // A refused placement is logged; the command still runs.
        let (pid, done) = run("placement-test-refused");
        assert!(done.status.success());
        assert!(SEEN
            .lock()
            .unwrap()
            .iter()
            .any(|p| p.unit == "placement-test-refused" && p.pid == pid));
    }
}
