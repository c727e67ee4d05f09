//! A project run by the real `sysg --sys --backend systemd` inside the namespace, and the small
//! helpers the systemd end-to-end tests share.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use serde_json::Value;

use super::{run_bounded, NsSystemd};

/// `env [-C DIR] NO_COLOR=1 sysg --sys --backend systemd [-c CONFIG] ARGS…` run inside the
/// namespace, bounded by 60 s.
pub fn sysg_in(ns: &NsSystemd, dir: Option<&Path>, config: Option<&Path>, args: &[&str]) -> Output {
    let bin = env!("CARGO_BIN_EXE_sysg");
    let dir = dir.map(|d| d.to_string_lossy().into_owned());
    let cfg = config.map(|c| c.to_string_lossy().into_owned());
    let mut full = vec!["env"];
    if let Some(dir) = &dir {
        full.extend_from_slice(&["-C", dir]);
    }
    full.extend_from_slice(&["NO_COLOR=1", bin, "--sys", "--backend", "systemd"]);
    if let Some(cfg) = &cfg {
        full.extend_from_slice(&["-c", cfg]);
    }
    full.extend_from_slice(args);
    run_bounded(ns.command(&full), Duration::from_secs(60))
}

/// The entry named `name` of `status --json`'s `services`.
pub fn find_service(st: &Value, name: &str) -> Option<Value> {
    st["services"]
        .as_array()
        .and_then(|a| a.iter().find(|s| s["name"] == name).cloned())
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

pub fn assert_ok(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed ({:?}):\nstdout: {}\nstderr: {}",
        out.status.code(),
        text(&out.stdout),
        text(&out.stderr)
    );
}

/// One project run by `sysg --sys` inside the namespace.
pub struct SysProject<'a> {
    pub ns: &'a NsSystemd,
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub project: String,
    /// Whether `sysg` runs in the project's directory (`env -C`).
    chdir: bool,
}

impl<'a> SysProject<'a> {
    /// A temporary directory named `PREFIX…` holding `systemg.yaml` with `services_yaml`.
    pub fn new(
        ns: &'a NsSystemd,
        prefix: &str,
        project: &str,
        services_yaml: &str,
    ) -> SysProject<'a> {
        // /tmp is the host's, shared with the namespace (systemd-tmpfiles is masked there).
        let dir = tempfile::Builder::new()
            .prefix(prefix)
            .tempdir()
            .expect("tempdir");
        let config = dir.path().join("systemg.yaml");
        std::fs::write(
            &config,
            format!("version: \"1\"\nproject: {project}\nservices:\n{services_yaml}"),
        )
        .expect("write config");
        SysProject {
            ns,
            dir,
            config,
            project: project.to_string(),
            chdir: true,
        }
    }

    /// `sysg` runs in the caller's working directory rather than the project's.
    pub fn without_chdir(mut self) -> Self {
        self.chdir = false;
        self
    }

    pub fn dir(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    pub fn sysg(&self, args: &[&str]) -> Output {
        let dir = self.chdir.then(|| self.dir.path());
        sysg_in(self.ns, dir, Some(&self.config), args)
    }

    pub fn status(&self) -> Value {
        let out = self.sysg(&["status", "--json"]);
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "status --json is not JSON ({e}): {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        })
    }

    pub fn service(&self, name: &str) -> Value {
        let st = self.status();
        find_service(&st, name).unwrap_or_else(|| panic!("no service {name} in {st}"))
    }

    pub fn pid(&self, name: &str) -> u32 {
        let s = self.service(name);
        s["pid"]
            .as_u64()
            .unwrap_or_else(|| panic!("{name} has no pid: {s}")) as u32
    }

    /// A cron job's run history, as `status --json` reports it.
    pub fn history(&self, job: &str) -> Vec<Value> {
        self.service(job)["cron"]["history"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    pub fn unit(&self, service: &str) -> String {
        systemg::backend::systemd::naming::unit_name(&self.project, service)
    }

    pub fn timer(&self, job: &str) -> String {
        systemg::backend::systemd::naming::timer_name(&self.project, job)
    }

    /// A file under the namespace's private /var/lib, /run or /var/log, seen from the host.
    pub fn inner_path(&self, path: &str) -> PathBuf {
        self.ns.inner_path(path)
    }

    pub fn supervisor_pid(&self) -> Option<u32> {
        let p = self.inner_path(&format!("/run/systemg/{}/supervisor.pid", self.project));
        std::fs::read_to_string(p)
            .ok()
            .and_then(|s| s.trim().parse().ok())
    }

    pub fn sysg_units(&self) -> String {
        self.ns.sysg_units()
    }
}
