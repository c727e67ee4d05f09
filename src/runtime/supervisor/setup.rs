//! Setting a supervisor up before its loop runs: the config, privileged mode, the project's
//! directories and lock, the signal thread, the backend and the control sockets; and the
//! process-wide details (inherited descriptors, helper scopes) that go with it.

use std::fs::File;
use std::io::Write;
use std::os::fd::{FromRawFd, OwnedFd};
use std::sync::mpsc::{self, Sender};
use std::time::Instant;

use nix::sys::signal::{SigSet, Signal as NixSignal};

use super::{Msg, Options, Supervisor};
use crate::backend::process::Echo;
use crate::backend::BackendPaths;
use crate::config::{self, Config};
use crate::control::protocol::Response;
use crate::control::server::Server;
use crate::core::{Event, Request};
use crate::os::fs::{Access, Create};
use crate::runtime::paths::{ProjectDirs, Roots, LOCK_FILE, PID_FILE};
use crate::runtime::privileges;
use crate::runtime::sd_notify::SdNotify;
use crate::runtime::RuntimeError;

/// Run a supervisor until it is told to stop. Returns the process exit code.
pub fn run(opts: Options) -> Result<i32, RuntimeError> {
    // What the supervisor inherited (the readiness pipe, leaked descriptors) must not reach
    // the services.
    keep_inherited_fds_from_services();
    let ready = opts.ready_fd.map(|fd| {
        // SAFETY: the fd was created by our parent for this purpose and is owned by nobody else.
        File::from(unsafe { OwnedFd::from_raw_fd(fd) })
    });
    // A spare handle on the readiness pipe: whatever stops the start-up (a full disk, a
    // read-only directory, a bad config) reaches the waiting `sysg start` in its answer, not
    // only in a supervisor log that may itself be unwritable.
    let mut spare = ready.as_ref().and_then(|f| f.try_clone().ok());
    let result = run_with(opts, ready);
    if let Err(e) = &result {
        report_ready(&mut spare, Response::err(e.to_string(), Default::default()));
    }
    result
}

fn run_with(opts: Options, ready: Option<File>) -> Result<i32, RuntimeError> {
    // Before any thread exists: this takes NOTIFY_SOCKET out of the environment.
    let sd_notify = SdNotify::from_env(opts.services.clone());
    // Block the signals we handle before any thread exists, so every thread inherits the mask
    // and only the signal thread receives them. Backends give their children an empty mask
    // (std's spawn would pass this one on).
    let mut handled = SigSet::empty();
    for s in [NixSignal::SIGINT, NixSignal::SIGTERM, NixSignal::SIGHUP] {
        handled.add(s);
    }
    handled
        .thread_block()
        .map_err(|e| RuntimeError::Other(format!("blocking signals: {e}")))?;

    let mut ready = ready;

    let loaded = if opts.adhoc {
        let state_dir = Roots::for_mode(opts.system)
            .project(crate::runtime::adhoc::PROJECT)
            .state_dir;
        Ok(crate::runtime::adhoc::empty_config(
            crate::runtime::adhoc::PROJECT,
            &state_dir,
        ))
    } else {
        config::load(&opts.config_path)
            .map_err(RuntimeError::from)
            .and_then(|mut c| {
                // A project is its directory: the same key the CLI found (`instance`).
                crate::runtime::instance::apply(&Roots::for_mode(opts.system), &mut c)
                    .map_err(|e| RuntimeError::Other(e.to_string()))?;
                Ok(c)
            })
    };
    let config = match loaded {
        Ok(c) => c,
        Err(e) => {
            report_ready(&mut ready, Response::err(e.to_string(), Default::default()));
            return Err(e);
        }
    };
    // Privileged mode: what the services ask for must be possible for whoever runs them.
    let privileged = match privileged_setup(&config, &opts) {
        Ok(p) => p,
        Err(e) => {
            report_ready(&mut ready, Response::err(e.to_string(), Default::default()));
            return Err(e);
        }
    };
    let roots = Roots::for_mode(opts.system);
    let paths = roots.project(&config.project);
    // Everything root does in these directories goes through these descriptors, never by a
    // name a less privileged user could have swapped.
    let dirs = match paths.open_dirs() {
        Ok(d) => d,
        Err(e) => {
            report_ready(&mut ready, Response::err(e.to_string(), Default::default()));
            return Err(e.into());
        }
    };
    if let Err(e) = privileges::prepare_system_dirs(
        &dirs,
        privileged.group,
        privileged.target.as_ref().map(|t| t.uid),
    ) {
        report_ready(&mut ready, Response::err(e.to_string(), Default::default()));
        return Err(e.into());
    }
    // A daemon's stderr is its supervisor.log: from now on it rotates like a service log.
    crate::logs::supervisor::attach(&paths.log_dir.join("supervisor.log"), config.logs);
    let lock_guard = match lock(&dirs) {
        Ok(l) => l,
        Err(e) => {
            report_ready(&mut ready, Response::err(e.to_string(), Default::default()));
            return Err(e);
        }
    };

    let (tx, rx) = mpsc::channel::<Msg>();
    spawn_signal_thread(handled, tx.clone())?;

    let sink_tx = tx.clone();
    let echo: Option<Echo> = if opts.echo {
        let width = config
            .services
            .iter()
            .map(|s| s.name.len())
            .max()
            .unwrap_or(0);
        Some(Box::new(move |unit: &str, _kind, line: &[u8]| {
            let mut out = std::io::stdout().lock();
            let _ = write!(out, "{unit:<width$} | ");
            let _ = out.write_all(line);
            let _ = out.write_all(b"\n");
        }))
    } else {
        None
    };
    let backend = crate::backend::select::create(
        privileged.backend,
        opts.system,
        &config.project,
        BackendPaths {
            log_dir: paths.log_dir.clone(),
            run_dir: paths.run_dir.clone(),
            fifo_dir: paths.fifo_dir.clone(),
        },
        echo,
        Box::new(move |ev| {
            let _ = sink_tx.send(Msg::Backend(ev));
        }),
    )?;
    tracing::info!(
        project = %config.project,
        backend = backend.name(),
        "supervisor starting (pid {})",
        std::process::id()
    );
    // Settings the systemd manager is too old for fail here with their positions, not at
    // every start of the service (an adopt-only supervisor starts nothing).
    if backend.name() == "systemd" && !opts.adopt_only {
        let refused = crate::backend::select::version_problems(
            crate::backend::Choice::Systemd,
            opts.system,
            &config,
        );
        if !refused.is_empty() {
            let e = config::ConfigErrors(refused);
            report_ready(&mut ready, Response::err(e.to_string(), Default::default()));
            return Err(e.into());
        }
    }

    let no_scopes = std::env::var_os("SYSG_NO_SCOPES").is_some_and(|v| v == "1");
    if backend.name() == "systemd" && !no_scopes {
        install_helper_scopes(opts.system, &config.project);
        // `SYSG_HELPER_SCOPES=1` keeps every helper in a scope (benchmarks compare both).
        if std::env::var_os("SYSG_HELPER_SCOPES").is_none_or(|v| v != "1") {
            crate::runtime::helper_units::install(
                opts.system,
                &config.project,
                paths.run_dir.join("env"),
            );
        }
    }
    let mut sup = Supervisor::new(
        config,
        paths,
        backend,
        (tx.clone(), rx),
        opts.system,
        sd_notify,
    );
    if let Some(f) = ready.take() {
        sup.await_ready(f, opts.services.clone());
    }

    let server = Server::bind(&sup.paths.socket, privileged.group)?;
    let ctl_tx = tx.clone();
    server
        .spawn(privileged.group, move |inc| {
            ctl_tx.send(Msg::Control(inc)).is_ok()
        })
        .map_err(RuntimeError::io("starting the control thread"))?;
    if sup.service_socket == sup.paths.spawn_socket {
        privileges::open_run_dir_to_services(&dirs)?;
        let spawn_server = Server::bind_for_services(&sup.paths.spawn_socket)?;
        let spawn_tx = tx.clone();
        spawn_server
            .spawn_for_services(move |inc| spawn_tx.send(Msg::Control(inc)).is_ok())
            .map_err(RuntimeError::io("starting the services' socket thread"))?;
    } else {
        let _ = std::fs::remove_file(&sup.paths.spawn_socket);
    }
    drop(tx);
    dirs.run
        .write_atomic(
            PID_FILE,
            format!("{}\n", std::process::id()).as_bytes(),
            0o644,
        )
        .map_err(RuntimeError::io(format!(
            "writing {}",
            sup.paths.pid_file.display()
        )))?;
    drop(dirs);

    if let Some(target) = &privileged.target {
        if let Err(e) = privileges::drop_to(target) {
            abandon(&mut sup, &e.to_string());
            return Err(e.into());
        }
    }
    // After the drop: the state file belongs to the services' user then, and whatever its
    // records make the supervisor signal, it does with that user's power only.
    if let Err(e) = sup.adopt_previous() {
        abandon(&mut sup, &e.to_string());
        return Err(e);
    }

    if !opts.adopt_only {
        sup.queue
            .push_back(Event::Request(Request::Start(opts.services.clone())).into());
    }
    let code = sup.run_loop();
    sup.finish();
    // Clients have their answers and a new supervisor may start; the last webhooks get a
    // bounded moment to go out.
    drop(lock_guard);
    sup.notifier
        .flush(Instant::now() + crate::notify::FLUSH_AT_EXIT);
    Ok(code)
}

/// What privileged mode decided before anything was created.
struct Privileged {
    /// The `systemg` group (`--sys` only), which may read status through the socket.
    group: Option<u32>,
    /// The `--drop-privileges` user.
    target: Option<privileges::DropTarget>,
    /// The backend to create (`--drop-privileges` needs the process backend).
    backend: crate::backend::Choice,
}

fn privileged_setup(config: &Config, opts: &Options) -> Result<Privileged, RuntimeError> {
    // An adopt-only supervisor starts nothing: it must be able to stop what is left even when
    // the config no longer fits the host (a deleted user).
    if !opts.adopt_only {
        privileges::check(config, opts.drop_privileges, opts.system)?;
    }
    let (target, backend) = if opts.drop_privileges {
        (
            Some(privileges::DropTarget::from_config(config)?),
            privileges::backend_for_drop(opts.backend)?,
        )
    } else {
        (None, opts.backend)
    };
    Ok(Privileged {
        group: opts.system.then(privileges::system_group).flatten(),
        target,
        backend,
    })
}

/// Mark every descriptor beyond stdio close-on-exec before anything else opens one: what the
/// supervisor inherited (the readiness pipe, descriptors its caller leaked) must not reach the
/// services. A service holding the readiness pipe kept `sysg start` waiting forever once the
/// supervisor had died.
fn keep_inherited_fds_from_services() {
    const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;
    // SAFETY: close_range only changes descriptor flags; no memory is passed.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            3 as libc::c_uint,
            libc::c_uint::MAX,
            CLOSE_RANGE_CLOEXEC,
        )
    };
    if rc == 0 {
        return;
    }
    // Kernels before 5.11: one fcntl per open descriptor.
    let fds: Vec<i32> = std::fs::read_dir("/proc/self/fd")
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .filter(|&fd| fd > 2)
                .collect()
        })
        .unwrap_or_default();
    for fd in fds {
        // SAFETY: F_SETFD on a descriptor number; an fd that is already closed (the one
        // read_dir used) just fails with EBADF.
        unsafe {
            libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
        }
    }
}

/// Return memory freed since the last call to the kernel (glibc keeps it otherwise): measured
/// with 1,000 units, the supervisor's RSS drops from 15.7 to 12.0 MiB.
pub(super) fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks glibc's own heaps; it takes no pointer from us.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// A start given up after the control socket and the pid file were made: remove both, and
/// tell a waiting `start --daemonize` why.
fn abandon(sup: &mut Supervisor, why: &str) {
    let _ = std::fs::remove_file(&sup.paths.socket);
    let _ = std::fs::remove_file(&sup.paths.pid_file);
    report_ready(&mut sup.ready, Response::err(why, Default::default()));
}

pub(super) fn report_ready(ready: &mut Option<File>, resp: Response) {
    if let Some(mut f) = ready.take() {
        if let Ok(mut line) = serde_json::to_string(&resp) {
            line.push('\n');
            let _ = f.write_all(line.as_bytes());
        }
    }
}

/// Hold an exclusive lock for the supervisor's life: a second supervisor of the same project
/// fails fast, and a crashed one releases it automatically (the kernel drops flocks on exit).
fn lock(dirs: &ProjectDirs) -> Result<nix::fcntl::Flock<File>, RuntimeError> {
    let path = dirs.run.join(LOCK_FILE);
    let f = dirs
        .run
        .open_file(LOCK_FILE, Access::ReadWrite, Create::IfMissing(0o600))
        .map_err(RuntimeError::io(format!("opening {}", path.display())))?;
    nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusiveNonblock).map_err(|_| {
        RuntimeError::Other(format!(
            "a supervisor is already running for this project (lock {} is held)",
            path.display()
        ))
    })
}

fn spawn_signal_thread(set: SigSet, tx: Sender<Msg>) -> Result<(), RuntimeError> {
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || loop {
            match set.wait() {
                Ok(sig) => {
                    if tx.send(Msg::Signal(sig as i32)).is_err() {
                        return;
                    }
                }
                Err(_) => return,
            }
        })
        .map(|_| ())
        .map_err(RuntimeError::io("starting the signal thread"))
}

/// Whether a service of `config` may spawn children (`spawn.mode: dynamic`).
pub(super) fn has_dynamic_spawning(config: &Config) -> bool {
    config.services.iter().any(|s| {
        s.spawn
            .as_ref()
            .is_some_and(|sp| sp.mode == crate::config::schema::SpawnMode::Dynamic)
    })
}

/// On the systemd backend, helper commands (command probes, hooks, deployment commands) run in
/// transient scopes of the project's slice instead of the supervisor's cgroup
/// (`health::placement`). Without a manager to register them with, they stay where they were.
/// How long after a helper's own timeout systemd ends its scope (`RuntimeMaxSec=`).
#[cfg(target_os = "linux")]
const HELPER_GRACE: std::time::Duration = std::time::Duration::from_secs(1);

#[cfg(target_os = "linux")]
fn install_helper_scopes(system: bool, project: &str) {
    match crate::backend::systemd::scope::ScopeRegistrar::connect(system, project) {
        Ok(r) => {
            let project = project.to_string();
            let r = std::sync::Mutex::new(r);
            crate::health::placement::set_placer(Box::new(move |p| {
                let mut spec = crate::spec::UnitSpec::new(
                    project.as_str(),
                    format!("{}.{}.{}", p.unit, p.kind, p.pid),
                    Vec::new(),
                );
                // The service's cgroup limits bound its helpers too.
                spec.limits.cgroup = p.limits.clone();
                let r = r.lock().unwrap_or_else(|e| e.into_inner());
                // systemd's end comes a moment after the supervisor's own kill at the timeout
                // (which reports it as a timeout): a backstop for a supervisor that is gone.
                r.register_helper(&spec, p.pid, p.timeout + HELPER_GRACE)
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            }));
        }
        Err(e) => tracing::warn!("helper commands run in the supervisor's cgroup: {e}"),
    }
}

#[cfg(not(target_os = "linux"))]
fn install_helper_scopes(_: bool, _: &str) {}
