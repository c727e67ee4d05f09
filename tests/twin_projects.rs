//! A project is its directory, not its directory's name (issue 20 item 1): `a/app` and
//! `b/app` are two projects with their own supervisors; the same explicit `project:` in two
//! directories is refused while the first runs, naming its directory.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failed test
#![cfg(target_os = "linux")]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::*;
use serde_json::Value;

const T: Duration = Duration::from_secs(60);

struct Home {
    home: tempfile::TempDir,
}

impl Home {
    fn new() -> Home {
        Home {
            home: tempfile::Builder::new()
                .prefix("sysg-twins-")
                .tempdir()
                .unwrap(),
        }
    }

    /// `<home>/<sub>/app` with this config.
    fn app(&self, sub: &str, yaml: &str) -> PathBuf {
        let dir = self.home.path().join(sub).join("app");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("systemg.yaml"), yaml).unwrap();
        dir
    }

    fn sysg(&self, dir: &Path, args: &[&str]) -> Output {
        let mut c = Command::new(sysg_bin());
        c.args(args)
            .current_dir(dir)
            .env("HOME", self.home.path())
            .env_remove("XDG_STATE_HOME")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null());
        run_bounded(c, T)
    }

    fn status(&self, dir: &Path) -> Value {
        let out = self.sysg(dir, &["status", "--json"]);
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {out:?}"))
    }

    fn names(&self, dir: &Path) -> Vec<String> {
        let st = self.status(dir);
        let mut v: Vec<String> = st["services"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter(|s| s["state"] == "running")
                    .filter_map(|s| s["name"].as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }
}

impl Drop for Home {
    fn drop(&mut self) {
        for sub in ["a", "b"] {
            let dir = self.home.path().join(sub).join("app");
            if dir.is_dir() {
                let _ = self.sysg(&dir, &["stop"]);
            }
        }
    }
}

#[test]
fn two_directories_of_one_name_are_two_projects() {
    let h = Home::new();
    let a = h.app(
        "a",
        "version: \"1\"\nservices:\n  web:\n    command: sleep 1000\n",
    );
    let b = h.app(
        "b",
        "version: \"1\"\nservices:\n  worker:\n    command: sleep 1001\n",
    );
    assert_ok(&h.sysg(&a, &["start", "--daemonize"]), "start a");
    let out = h.sysg(&b, &["start", "--daemonize"]);
    assert_ok(&out, "start b");
    assert!(stdout(&out).contains("worker"), "{out:?}");

    assert_eq!(h.names(&a), ["web"]);
    assert_eq!(h.names(&b), ["worker"]);
    let (sa, sb) = (h.status(&a), h.status(&b));
    assert_ne!(sa["supervisor_pid"], sb["supervisor_pid"]);
    assert_eq!(sa["project"], "app");
    let key_b = sb["project"].as_str().unwrap_or_default().to_string();
    assert!(key_b.starts_with("app-"), "{sb}");
    // Each status names the config it runs, also in the human form.
    assert_eq!(sa["config"], a.join("systemg.yaml").display().to_string());
    assert_eq!(sb["config"], b.join("systemg.yaml").display().to_string());
    let human = stdout(&h.sysg(&b, &["status"]));
    assert!(
        human.contains(&format!("config {}", b.join("systemg.yaml").display())),
        "{human}"
    );

    // Another file of b's directory is b's project.
    std::fs::write(
        b.join("changed.yaml"),
        "version: \"1\"\nservices:\n  worker:\n    command: sleep 1001\n  extra:\n    command: sleep 1002\n",
    )
    .unwrap();
    assert_ok(
        &h.sysg(&b, &["restart", "--config", "changed.yaml"]),
        "restart b with changed.yaml",
    );
    assert_eq!(h.names(&b), ["extra", "worker"]);
    assert_eq!(h.names(&a), ["web"]);

    // Stopping one leaves the other.
    let web = h.status(&a)["services"][0]["pid"]
        .as_u64()
        .expect("web pid") as u32;
    assert_ok(&h.sysg(&b, &["stop"]), "stop b");
    assert_eq!(h.sysg(&b, &["status"]).status.code(), Some(3));
    assert!(alive(web));
    assert_eq!(h.names(&a), ["web"]);
    // b keeps its key from run to run.
    assert_ok(&h.sysg(&b, &["start", "--daemonize"]), "start b again");
    assert_eq!(h.status(&b)["project"], key_b.as_str());
}

#[test]
fn the_same_explicit_project_in_two_directories_is_refused() {
    let h = Home::new();
    let a = h.app(
        "a",
        "version: \"1\"\nproject: shop\nservices:\n  web:\n    command: sleep 1000\n",
    );
    let b = h.app(
        "b",
        "version: \"1\"\nproject: shop\nservices:\n  worker:\n    command: sleep 1001\n",
    );
    assert_ok(&h.sysg(&a, &["start", "--daemonize"]), "start a");
    let out = h.sysg(&b, &["start", "--daemonize"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = stderr(&out);
    assert!(
        err.contains("project `shop` is already run from")
            && err.contains(&a.display().to_string()),
        "{err}"
    );
    // Nor may b stop a's services.
    assert_eq!(h.sysg(&b, &["stop"]).status.code(), Some(2));
    assert_eq!(h.names(&a), ["web"]);
    // Once a stopped, the name is b's.
    assert_ok(&h.sysg(&a, &["stop"]), "stop a");
    assert_ok(&h.sysg(&b, &["start", "--daemonize"]), "start b");
    assert_eq!(h.names(&b), ["worker"]);
}
