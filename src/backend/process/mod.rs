#![cfg(target_os = "linux")]
//! The fork/exec backend (Linux): every unit runs in its own session and, when the supervisor
//! can create one, its own cgroup v2 (cgroup.rs); identity, limits, capabilities and namespaces
//! are applied between fork and exec (spawn.rs, privs.rs); exits arrive through pidfds
//! (reaper.rs), output through FIFOs into log files (output.rs), and a unit is killed as a
//! whole tree (tree.rs). Dropping the backend stops its threads but leaves the units running,
//! so that a later supervisor can adopt them. On a systemd host (`with_scopes`) each unit's
//! process is handed to systemd as a transient scope before its exec, and the scope's cgroup
//! is the unit's cgroup.

mod cgroup;
mod notify;
mod output;
mod pid_env;
mod privs;
mod procfs;
mod reaper;
pub(crate) mod sandbox;
pub mod sockets;
pub(crate) mod spawn;
mod tree;
mod verify;

use std::collections::HashMap;
use std::fs;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use nix::sys::epoll::{EpollEvent, EpollFlags};
use serde_json::json;

use crate::backend::{
    AdoptRecord, Backend, BackendError, BackendEvent, BackendPaths, EventSink, ScopeHost,
};
use crate::config::schema::LogPolicy;
use crate::logs::Kind;
use crate::spec::UnitSpec;

pub use output::{Echo, LineSplitter, MAX_LINE};
pub use procfs::{proc_start_time, process_age};

use output::{LogOpener, NewStream, Output};
use reaper::Reaper;
use tree::Membership;

/// Knobs of the process backend (defaults: use cgroups when possible).
pub struct ProcessOptions {
    /// Try to put every unit in a cgroup of its own; `false` forces the process-group + /proc
    /// fallback.
    pub use_cgroups: bool,
    /// Where lines go; `None` is the real `LogFile`.
    pub(crate) log_opener: Option<LogOpener>,
    /// The project whose units the backend runs: a record is adopted only when its process
    /// carries this project's marker. `None` (tests of the backend alone) accepts the marker
    /// of any project of the same instance (run directory).
    pub project: Option<String>,
}

impl Default for ProcessOptions {
    fn default() -> Self {
        ProcessOptions {
            use_cgroups: true,
            log_opener: None,
            project: None,
        }
    }
}

/// One running unit.
pub(crate) struct Entry {
    unit: String,
    pid: u32,
    start_time: u64,
    pgid: u32,
    cgroup: Option<PathBuf>,
    marker: String,
    stdout_fifo: PathBuf,
    stderr_fifo: PathBuf,
    policy: LogPolicy,
    pidfd: OwnedFd,
    /// Until the child's exec is confirmed: where a failure of its set-up would be reported.
    pending: Option<spawn::Pending>,
    /// The child's set-up or exec failed (read from `pending`); reported when it exits.
    failure: Option<String>,
    /// The unit's stop signal and timeout (`MainExited` tells them to the core).
    stop_signal: i32,
    stop_timeout: Duration,
    /// The stop signal was sent to the unit: a stop is under way.
    stopping: bool,
    /// Once the main process ended with processes of the unit left: what to report when the
    /// unit is empty (`Exited` or `ExecFailed`). The entry stays until then, so that the
    /// remaining processes can still be signalled and killed.
    ended: Option<BackendEvent>,
}

impl Entry {
    fn membership(&self) -> Membership<'_> {
        match &self.cgroup {
            Some(dir) => Membership::Cgroup(dir),
            None => Membership::Group {
                // Once reaped, the main pid may be reused by anything.
                main: if self.ended.is_some() { 0 } else { self.pid },
                pgid: self.pgid,
                marker: &self.marker,
            },
        }
    }

    fn record(&self) -> AdoptRecord {
        AdoptRecord {
            unit: self.unit.clone(),
            pid: self.pid,
            start_time: self.start_time,
            extra: json!({
                "backend": "process",
                "kill_mode": if self.cgroup.is_some() { "cgroup" } else { "process-group" },
                "pgid": self.pgid,
                "cgroup": self.cgroup,
                "marker": self.marker,
                "stop_signal": self.stop_signal,
                "stop_timeout_ms": u64::try_from(self.stop_timeout.as_millis()).unwrap_or(u64::MAX),
                "stdout_fifo": self.stdout_fifo,
                "stderr_fifo": self.stderr_fifo,
                "logs": {
                    "max_size": self.policy.max_size,
                    "max_files": self.policy.max_files,
                    "compress": self.policy.compress,
                },
            }),
        }
    }
}

/// Running units, shared by the backend and its reaper thread.
#[derive(Default)]
pub(crate) struct Units {
    map: HashMap<String, Entry>,
    by_pid: HashMap<u32, String>,
}

/// The fork/exec backend.
pub struct ProcessBackend {
    paths: BackendPaths,
    units: Arc<Mutex<Units>>,
    cgroups: Option<cgroup::CgroupRoot>,
    reaper: Option<Reaper>,
    output: Output,
    output_thread: Option<JoinHandle<()>>,
    seq: u64,
    /// Without cgroups: processes that earlier supervisors of this project instance left
    /// behind without a record (a kill -9 between a spawn and the state write), by unit.
    /// Found once, at the first start; a unit's are killed before it starts, so that it never
    /// runs twice. With a cgroup the unit's old cgroup does the same (`CgroupRoot::create`).
    leftovers: Option<HashMap<String, Vec<procfs::Stat>>>,
    /// Groups of unit cgroups this backend used (started or adopted into), removed by
    /// `release` once empty.
    groups: std::collections::BTreeSet<PathBuf>,
    /// See `ProcessOptions::project`.
    project: Option<String>,
    /// Where forked units become transient scopes (`with_scopes`), and the cgroup2 mount
    /// point their cgroups are found under.
    scopes: Option<(Box<dyn ScopeHost>, PathBuf)>,
    /// The `sd_notify` socket of `readiness: notify` units (notify.rs).
    notify: Option<notify::NotifySocket>,
    /// The services' listening sockets (`sockets:`), held across their instances.
    sockets: sockets::Held,
}

impl ProcessBackend {
    /// A backend for `project` writing logs under `paths.log_dir` and FIFOs under
    /// `paths.run_dir`; `echo` also gets every output line (foreground mode); exits are
    /// reported on `sink`.
    pub fn new(
        project: &str,
        paths: BackendPaths,
        echo: Option<Echo>,
        sink: EventSink,
    ) -> Result<ProcessBackend, BackendError> {
        let options = ProcessOptions {
            project: Some(project.to_string()),
            ..ProcessOptions::default()
        };
        Self::with_options(paths, echo, sink, options)
    }

    /// `new` with options.
    pub fn with_options(
        paths: BackendPaths,
        echo: Option<Echo>,
        sink: EventSink,
        options: ProcessOptions,
    ) -> Result<ProcessBackend, BackendError> {
        let opener = options.log_opener.unwrap_or_else(output::file_opener);
        let (output, output_thread) = output::spawn(paths.log_dir.clone(), opener, echo)?;
        let units = Arc::new(Mutex::new(Units::default()));
        let sink: notify::Sink = Arc::from(sink);
        let notify = match notify::NotifySocket::start(&paths.run_dir, units.clone(), sink.clone())
        {
            Ok(n) => Some(n),
            Err(e) => {
                tracing::warn!("{e}: `readiness: notify` services cannot become ready");
                None
            }
        };
        let reaper_sink = sink.clone();
        let sink: EventSink = Box::new(move |e| reaper_sink(e));
        let reaper = match Reaper::start(units.clone(), sink, output.clone()) {
            Ok(r) => r,
            Err(e) => {
                output.shutdown();
                let _ = output_thread.join();
                return Err(e);
            }
        };
        let cgroups = if options.use_cgroups {
            cgroup::CgroupRoot::detect().map(|c| c.for_instance(&paths.run_dir))
        } else {
            None
        };
        Ok(ProcessBackend {
            paths,
            units,
            cgroups,
            reaper: Some(reaper),
            output,
            output_thread: Some(output_thread),
            seq: 0,
            leftovers: None,
            groups: std::collections::BTreeSet::new(),
            project: options.project,
            scopes: None,
            notify,
            sockets: sockets::Held::default(),
        })
    }

    /// Hand every forked unit to `host` as a transient scope (its cgroup then belongs to the
    /// service manager; limits go to the scope). Ignored, with a log line, when no cgroup2
    /// hierarchy is mounted.
    pub fn with_scopes(mut self, host: Box<dyn ScopeHost>) -> ProcessBackend {
        let mount = fs::read_to_string("/proc/self/mountinfo")
            .ok()
            .and_then(|m| cgroup::cgroup2_mount(&m));
        match mount {
            Some(m) => self.scopes = Some((host, m)),
            None => tracing::info!("no cgroup2 hierarchy: units are not put in scopes"),
        }
        self
    }

    /// Whether forked units go to transient scopes.
    pub fn uses_scopes(&self) -> bool {
        self.scopes.is_some()
    }

    /// The cgroup2 directory under which unit cgroups are tried, if any.
    pub fn cgroup_base(&self) -> Option<&Path> {
        self.cgroups.as_ref().map(|c| c.own.as_path())
    }

    fn lock(&self) -> MutexGuard<'_, Units> {
        self.units.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn fifo_paths(&self, unit: &str) -> (PathBuf, PathBuf) {
        let unit = crate::spec::file_key(unit);
        (
            self.paths.fifo_dir.join(format!("{unit}.stdout.fifo")),
            self.paths.fifo_dir.join(format!("{unit}.stderr.fifo")),
        )
    }

    fn watch(&self, units: &mut Units, entry: Entry) -> Result<(), BackendError> {
        if let Some(r) = &self.reaper {
            r.epoll
                .add(
                    entry.pidfd.as_fd(),
                    EpollEvent::new(EpollFlags::EPOLLIN, u64::from(entry.pid)),
                )
                .map_err(|e| BackendError::Io {
                    context: format!("{}: watching pid {}", entry.unit, entry.pid),
                    source: e.into(),
                })?;
        }
        if let (Some(r), Some(p)) = (&self.reaper, &entry.pending) {
            // Best effort: the report is read at the exit anyway; watching it only lets the fd
            // go as soon as the exec is confirmed.
            let _ = r.epoll.add(
                p.report.as_fd(),
                EpollEvent::new(
                    EpollFlags::EPOLLIN,
                    reaper::REPORT_TOKEN | u64::from(entry.pid),
                ),
            );
        }
        units.by_pid.insert(entry.pid, entry.unit.clone());
        units.map.insert(entry.unit.clone(), entry);
        Ok(())
    }

    /// Kill what earlier supervisors left of `unit` (see `leftovers`), sparing the processes of
    /// instances this backend runs (adopted ones).
    fn kill_leftovers(&mut self, units: &Units, group: &str, unit: &str) {
        let found = self
            .leftovers
            .get_or_insert_with(|| tree::marked_processes(&format!("{group}/")));
        let Some(procs) = found.remove(unit) else {
            return;
        };
        let live: Vec<&str> = units.map.values().map(|e| e.marker.as_str()).collect();
        for s in procs {
            let marker = procfs::environ_value(s.pid, tree::MARKER_VAR).unwrap_or_default();
            if live.contains(&marker.as_str()) {
                continue;
            }
            tracing::info!(
                unit,
                pid = s.pid,
                "killing a leftover of an earlier supervisor"
            );
            tree::signal_checked(s.pid, s.start_time, libc::SIGKILL);
        }
    }

    /// Check a record against what /proc says about its process (verify.rs).
    fn verify(&self, record: &AdoptRecord, seen: &verify::Seen) -> Result<verify::Proven, String> {
        let group = match &self.project {
            Some(p) => cgroup::group_name(p, &self.paths.run_dir),
            // Any project of this instance: the group named by the marker, when its suffix is
            // this run directory's.
            None => {
                let suffix = cgroup::instance_suffix(&self.paths.run_dir);
                seen.marker
                    .as_deref()
                    .and_then(|m| m.split('/').next())
                    .filter(|g| g.starts_with("sysg-") && g.ends_with(&suffix))
                    .unwrap_or_default()
                    .to_string()
            }
        };
        if group.is_empty() {
            return Err("its process carries no marker of this project".into());
        }
        let mut dirs = self
            .cgroups
            .as_ref()
            .map(|c| c.unit_dirs(&group, &record.unit))
            .unwrap_or_default();
        // A scope's cgroup sits where the service manager put it: accepted when it is the
        // unit's own scope in the unit's slice.
        if let (Some((host, mount)), Some(rel)) = (&self.scopes, seen.cgroup.as_deref()) {
            let path = Path::new(rel);
            if file_name(Some(path)) == Some(host.scope_name(&record.unit).as_str())
                && file_name(path.parent()) == Some(host.slice_name(&record.unit).as_str())
                && !rel.contains("/..")
            {
                dirs.push(mount.join(rel.trim_start_matches('/')));
            }
        }
        let expected = verify::Expected {
            group: &group,
            mount: self
                .cgroups
                .as_ref()
                .map(|c| c.mount.as_path())
                .or(self.scopes.as_ref().map(|(_, m)| m.as_path())),
            cgroup_dirs: &dirs,
        };
        verify::check(record, seen, &expected)
    }

    fn io_err(context: String) -> impl FnOnce(std::io::Error) -> BackendError {
        move |source| BackendError::Io { context, source }
    }
}

/// Whether this process may create unit cgroups (a cgroup2 hierarchy with a directory it can
/// write: root, or a subtree delegated to its uid). Without one, cgroup limits cannot be
/// applied.
pub fn cgroup_writable() -> bool {
    cgroup::CgroupRoot::detect().is_some_and(|c| c.writable())
}

/// A fresh cgroup `sysg-<project>/<name>` for a foreground command (`sysg run --scope` without a
/// service manager): its directory and its `cgroup.procs`, open for the command to write `0`
/// into before its exec. `None` where no cgroup can be made.
pub fn foreground_cgroup(project: &str, name: &str) -> Option<(PathBuf, fs::File)> {
    let cg = cgroup::CgroupRoot::detect()?.create(project, name)?;
    Some((cg.dir, cg.procs))
}

/// Remove a cgroup `foreground_cgroup` made, once empty; `false` while processes are left.
pub fn remove_cgroup(dir: &Path) -> bool {
    cgroup::remove(dir)
}

/// The last component of `p` as text.
fn file_name(p: Option<&Path>) -> Option<&str> {
    p.and_then(|p| p.file_name()).and_then(|n| n.to_str())
}

fn open_pidfd(pid: u32) -> std::io::Result<OwnedFd> {
    let p = rustix::process::Pid::from_raw(pid as i32)
        .ok_or_else(|| std::io::Error::from_raw_os_error(libc::ESRCH))?;
    Ok(rustix::process::pidfd_open(
        p,
        rustix::process::PidfdFlags::empty(),
    )?)
}

impl Backend for ProcessBackend {
    fn name(&self) -> &'static str {
        "process"
    }

    fn start(&mut self, spec: &UnitSpec) -> Result<u32, BackendError> {
        let with_notify = self.notify.as_ref().and_then(|n| n.child_spec(spec));
        let spec = with_notify.as_ref().unwrap_or(spec);
        spawn::check_supported(spec)?;
        let setup = privs::ChildSetup::prepare(spec)?;
        self.seq += 1;
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        // The group (project and instance) first: leftovers are found by this prefix.
        let group = cgroup::group_name(&spec.project, &self.paths.run_dir);
        let marker = format!(
            "{group}/{}/{}-{}-{nanos}",
            spec.name,
            std::process::id(),
            self.seq
        );
        let units_arc = self.units.clone();
        let mut units = units_arc.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(e) = units.map.get(&spec.name) {
            return Err(BackendError::Start {
                unit: spec.name.clone(),
                message: format!("already running (pid {})", e.pid),
            });
        }
        for dir in [
            &self.paths.run_dir,
            &self.paths.fifo_dir,
            &self.paths.log_dir,
        ] {
            crate::runtime::paths::ensure_dir(dir)
                .map_err(Self::io_err(format!("creating {}", dir.display())))?;
        }
        let (out_path, err_path) = self.fifo_paths(&spec.name);
        let (out_r, out_w) =
            spawn::make_fifo(&out_path).map_err(Self::io_err(format!("{}", out_path.display())))?;
        let (err_r, err_w) = match spawn::make_fifo(&err_path) {
            Ok(f) => f,
            Err(e) => {
                let _ = fs::remove_file(&out_path);
                return Err(Self::io_err(format!("{}", err_path.display()))(e));
            }
        };
        let cg = match &spec.spawn {
            // The scope's cgroup is systemd's; limits go with the scope's properties.
            _ if self.scopes.is_some() => None,
            // A spawned child joins its tree's group, which carries the tree's shared limits.
            Some(group) => self
                .cgroups
                .as_ref()
                .and_then(|c| c.create_child(&spec.project, group)),
            None => self
                .cgroups
                .as_ref()
                .and_then(|c| c.create(&spec.project, &spec.name)),
        };
        // What a start that fails from here on leaves behind: its FIFOs and its fresh cgroup.
        let discard = || {
            let _ = fs::remove_file(&out_path);
            let _ = fs::remove_file(&err_path);
            if let Some(c) = &cg {
                cgroup::remove(&c.dir);
            }
        };
        // With scopes, the leftovers of an earlier instance are in the unit's old scope, which
        // registering stops.
        if cg.is_none() && self.scopes.is_none() {
            self.kill_leftovers(&units, &group, &spec.name);
        }
        let limits = &spec.limits.cgroup;
        if self.scopes.is_none() && (limits.memory_max.is_some() || limits.cpu_max.is_some()) {
            let applied = match &cg {
                Some(c) => cgroup::set_limits(&c.dir, limits),
                None => Err("no cgroup v2 could be created for the unit".to_string()),
            };
            if let Err(m) = applied {
                discard();
                return Err(BackendError::Start {
                    unit: spec.name.clone(),
                    message: format!("limits.cgroup: {m}"),
                });
            }
        }

        // Bound by the supervisor, as itself, at the service's first start only.
        let running = |svc: &str| units.map.keys().any(|k| crate::spec::service_of(k) == svc);
        let listen = match self.sockets.for_start(
            crate::spec::service_of(&spec.name),
            &spec.sockets,
            &running,
        ) {
            Ok(l) => l,
            Err(message) => {
                discard();
                return Err(BackendError::Start {
                    unit: spec.name.clone(),
                    message,
                });
            }
        };
        let spawned = {
            let mut registry = reaper::main_pids();
            let register = self
                .scopes
                .as_ref()
                .map(|(host, _)| move |pid: u32| host.register(spec, pid).map(|_| ()));
            let r = spawn::spawn(
                spec,
                out_w,
                err_w,
                cg.as_ref(),
                &marker,
                setup,
                register
                    .as_ref()
                    .map(|f| f as &dyn Fn(u32) -> Result<(), BackendError>),
                listen,
            );
            if let Ok(s) = &r {
                reaper::register_main(&mut registry, s.pid);
            }
            r
        };
        let spawned = match spawned {
            Ok(s) => s,
            Err(e) => {
                discard();
                return Err(e);
            }
        };
        let pid = spawned.pid;
        // Our unreaped child: /proc/PID exists even if it already exited.
        let start_time = proc_start_time(pid).unwrap_or(0);
        let pidfd = match spawned.pidfd.map_or_else(|| open_pidfd(pid), Ok) {
            Ok(fd) => fd,
            Err(e) => {
                let _ = tree::send_signal(pid, libc::SIGKILL);
                let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid as i32), None);
                return Err(BackendError::Start {
                    unit: spec.name.clone(),
                    message: format!("pidfd_open: {e}"),
                });
            }
        };
        if let Some(g) = cg.as_ref().and_then(|c| cgroup::group_of(&c.dir)) {
            self.groups.insert(g);
        }
        // In its scope by now: its cgroup is the scope's.
        let scope_dir = self.scopes.as_ref().and_then(|(_, mount)| {
            fs::read_to_string(format!("/proc/{pid}/cgroup"))
                .ok()
                .and_then(|t| cgroup::own_cgroup(&t))
                .map(|rel| mount.join(rel.trim_start_matches('/')))
        });
        let entry = Entry {
            unit: spec.name.clone(),
            pid,
            start_time,
            pgid: pid,
            cgroup: cg.map(|c| c.dir).or(scope_dir),
            marker,
            stdout_fifo: out_path.clone(),
            stderr_fifo: err_path.clone(),
            policy: spec.logs,
            pidfd,
            pending: spawned.pending,
            failure: None,
            stop_signal: spec.stop_signal,
            stop_timeout: spec.stop_timeout,
            stopping: false,
            ended: None,
        };
        if let Err(e) = self.watch(&mut units, entry) {
            // Unwatched, it could never be reported: do not leave it running.
            let _ = tree::send_signal(pid, libc::SIGKILL);
            return Err(e);
        }
        drop(units);
        for (kind, reader, fifo) in [
            (Kind::Stdout, out_r, out_path),
            (Kind::Stderr, err_r, err_path),
        ] {
            self.output.add(NewStream {
                unit: crate::spec::service_of(&spec.name).to_string(),
                kind,
                reader,
                fifo,
                policy: spec.logs,
            });
        }
        Ok(pid)
    }

    fn signal(&mut self, unit: &str, signal: i32) -> Result<(), BackendError> {
        let mut units = self.lock();
        let entry = units
            .map
            .get_mut(unit)
            .ok_or_else(|| BackendError::NotRunning {
                unit: unit.to_string(),
            })?;
        // Every process of the unit gets it (systemd's `KillMode=control-group`).
        entry.stopping |= signal == entry.stop_signal;
        tree::signal_all(&entry.membership(), signal);
        Ok(())
    }

    fn kill(&mut self, unit: &str) -> Result<(), BackendError> {
        let units = self.lock();
        let entry = units
            .map
            .get(unit)
            .ok_or_else(|| BackendError::NotRunning {
                unit: unit.to_string(),
            })?;
        tree::kill_all(&entry.membership());
        Ok(())
    }

    fn adopt(&mut self, record: &AdoptRecord) -> Result<Option<u32>, BackendError> {
        let pid = record.pid;
        if proc_start_time(pid) != Some(record.start_time) {
            return Ok(None);
        }
        let units_arc = self.units.clone();
        let mut units = units_arc.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(e) = units.map.get(&record.unit) {
            if e.pid == pid {
                return Ok(Some(pid));
            }
            return Err(BackendError::Start {
                unit: record.unit.clone(),
                message: format!("already running (pid {})", e.pid),
            });
        }
        let pidfd = match open_pidfd(pid) {
            Ok(fd) => fd,
            Err(_) => return Ok(None),
        };
        // Read with the pidfd held: the pid cannot be reused from here on.
        let Some(seen) = verify::Seen::read(pid) else {
            return Ok(None);
        };
        if seen.stat.start_time != record.start_time {
            return Ok(None);
        }
        let proven = self.verify(record, &seen).map_err(|reason| {
            tracing::warn!(unit = %record.unit, pid, "not adopting a record of the state file: {reason}");
            BackendError::Untrusted {
                unit: record.unit.clone(),
                reason,
            }
        })?;
        let x = &record.extra;
        let path = |k: &str| x.get(k).and_then(|v| v.as_str()).map(PathBuf::from);
        let (default_out, default_err) = self.fifo_paths(&record.unit);
        let stdout_fifo = path("stdout_fifo").unwrap_or(default_out);
        let stderr_fifo = path("stderr_fifo").unwrap_or(default_err);
        let cgroup = proven.cgroup;
        if let Some(g) = cgroup
            .as_deref()
            .filter(|d| !cgroup::is_scope(d))
            .and_then(cgroup::group_of)
        {
            self.groups.insert(g);
        }
        let (pgid, marker) = (proven.pgid, proven.marker);
        let mut policy = LogPolicy::default();
        if let Some(l) = x.get("logs") {
            if let Some(v) = l.get("max_size").and_then(|v| v.as_u64()) {
                policy.max_size = v;
            }
            if let Some(v) = l
                .get("max_files")
                .and_then(|v| v.as_u64())
                .and_then(|v| u32::try_from(v).ok())
            {
                policy.max_files = v;
            }
            if let Some(v) = l.get("compress").and_then(|v| v.as_bool()) {
                policy.compress = v;
            }
        }
        reaper::register_main(&mut reaper::main_pids(), pid);
        let entry = Entry {
            unit: record.unit.clone(),
            pid,
            start_time: record.start_time,
            pgid,
            cgroup,
            marker,
            stdout_fifo: stdout_fifo.clone(),
            stderr_fifo: stderr_fifo.clone(),
            policy,
            pidfd,
            pending: None,
            failure: None,
            stop_signal: x
                .get("stop_signal")
                .and_then(|v| v.as_i64())
                .and_then(|v| i32::try_from(v).ok())
                .unwrap_or(libc::SIGTERM),
            stop_timeout: x
                .get("stop_timeout_ms")
                .and_then(|v| v.as_u64())
                .map_or(Duration::from_secs(10), Duration::from_millis),
            stopping: false,
            ended: None,
        };
        self.watch(&mut units, entry)?;
        drop(units);
        for (kind, fifo) in [(Kind::Stdout, stdout_fifo), (Kind::Stderr, stderr_fifo)] {
            match spawn::open_fifo_reader(&fifo) {
                Ok(reader) => self.output.add(NewStream {
                    unit: crate::spec::service_of(&record.unit).to_string(),
                    kind,
                    reader,
                    fifo,
                    policy,
                }),
                Err(e) => tracing::warn!(
                    "{}: re-opening {}: {e}; its output is lost",
                    record.unit,
                    fifo.display()
                ),
            }
        }
        // The instance holds the service's sockets: the next instance gets the same ones.
        self.sockets
            .grab_from(crate::spec::service_of(&record.unit), pid);
        Ok(Some(pid))
    }

    /// Every unit has stopped: the project instance's groups of unit cgroups go too.
    fn release(&mut self) {
        // Under the lock, like the reaper's removals: no unit cgroup is being made meanwhile.
        let units = self.units.clone();
        let _units = units.lock().unwrap_or_else(|e| e.into_inner());
        for g in std::mem::take(&mut self.groups) {
            cgroup::remove_empty_tree(&g);
        }
        self.sockets.release_all();
    }

    fn records(&self) -> Vec<AdoptRecord> {
        let units = self.lock();
        // A unit whose main process ended is not adoptable (nothing to adopt it by).
        let mut out: Vec<AdoptRecord> = units
            .map
            .values()
            .filter(|e| e.ended.is_none())
            .map(Entry::record)
            .collect();
        out.sort_by(|a, b| a.unit.cmp(&b.unit));
        out
    }
}

impl Drop for ProcessBackend {
    /// Stops the backend's threads; the units keep running (a later supervisor may adopt them).
    fn drop(&mut self) {
        self.reaper.take();
        self.output.shutdown();
        if let Some(t) = self.output_thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests;
