//! `sandbox:` on the process backend, through the real `sysg` binary: a service (and a hook
//! and a command probe of it) tries what the sandbox forbids (write /usr, read the host's /tmp, open an AF_INET
//! socket, map W+X memory, chown, ...) and reports each outcome; the same script without the
//! sandbox shows the attempts work otherwise. Needs root (mount namespaces); the refusal of the
//! mount fields for a supervisor without root is checked as uid 65534.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failed test
#![cfg(target_os = "linux")]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::*;

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// A directory for the test's files outside /tmp, /var/tmp and the homes (which the sandbox
/// replaces or hides), so that the host and the service see the same one.
fn work_dir() -> tempfile::TempDir {
    let target = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let hidden = ["/tmp", "/var/tmp", "/home", "/root", "/run/user"];
    let base = if hidden.iter().any(|h| target.starts_with(h)) {
        PathBuf::from("/srv")
    } else {
        target
    };
    std::fs::create_dir_all(&base).unwrap();
    tempfile::Builder::new()
        .prefix("sysg-sandbox-")
        .tempdir_in(base)
        .unwrap()
}

/// Tries each thing a sandbox may forbid; writes `name=outcome` lines to `argv[1]`
/// (`ok`, or the errno's name). `argv[2] == "usr"` also tries to write /usr.
const CHECK: &str = r#"
import errno, mmap, os, socket, sys
out, try_usr = sys.argv[1], len(sys.argv) > 2
res = {}
def attempt(name, f):
    try:
        f()
        res[name] = "ok"
    except OSError as e:
        res[name] = errno.errorcode.get(e.errno, str(e.errno))
def write_usr():
    path = "/usr/sysg-sandbox-test-%d" % os.getpid()
    with open(path, "w"):
        pass
    os.unlink(path)
if try_usr:
    attempt("write_usr", write_usr)
with open("/tmp/own-" + os.path.basename(out), "w") as f:
    f.write("mine")
res["tmp"] = ",".join(sorted(os.listdir("/tmp")))
attempt("inet", lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM).close())
attempt("unix", lambda: socket.socket(socket.AF_UNIX, socket.SOCK_STREAM).close())
attempt("wx", lambda: mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC))
attempt("chown", lambda: os.chown(out + ".chown", 0, 0))
attempt("write_rw", lambda: open(os.path.join(os.path.dirname(out), "rw-" + os.path.basename(out)), "w").close())
for line in open("/proc/self/status"):
    if line.startswith("NoNewPrivs:"):
        res["nnp"] = line.split()[1]
# Writes the value back unchanged: where it is allowed (the unsandboxed run), nothing changes.
def rewrite_sysctl():
    path = "/proc/sys/kernel/domainname"
    value = open(path).read()
    with open(path, "w") as f:
        f.write(value)
attempt("sysctl", rewrite_sysctl)
with open(out + ".tmp", "w") as f:
    f.write("".join("%s=%s\n" % kv for kv in sorted(res.items())))
os.rename(out + ".tmp", out)
"#;

const SANDBOX: &str = r#"
    sandbox:
      no_new_privileges: true
      private_tmp: true
      private_devices: true
      protect_system: strict
      protect_home: true
      read_write_paths: ["WORK/rw"]
      protect_kernel_tunables: true
      protect_kernel_modules: true
      protect_control_groups: true
      restrict_address_families: [AF_UNIX]
      system_call_filter: ["@system-service", "~@privileged"]
      memory_deny_write_execute: true"#;

/// Wait for the results file and parse it.
fn results(path: &Path) -> std::collections::BTreeMap<String, String> {
    wait_until(
        &format!("{} to be written", path.display()),
        Duration::from_secs(20),
        || path.exists(),
    );
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn setup() -> (tempfile::TempDir, String) {
    let work = work_dir();
    std::fs::create_dir(work.path().join("rw")).unwrap();
    std::fs::write(work.path().join("check.py"), CHECK).unwrap();
    for f in [
        "rw/boxed.chown",
        "rw/plain.chown",
        "rw/hook.chown",
        "rw/probe.chown",
    ] {
        std::fs::write(work.path().join(f), "").unwrap();
    }
    let w = work.path().display().to_string();
    (work, w)
}

#[test]
fn the_kernel_confines_a_sandboxed_service_its_hook_and_its_probe() {
    if !is_root() {
        println!("skipped: needs root");
        return;
    }
    let (work, w) = setup();
    // Something of the host's /tmp that the service must not see.
    let host_tmp = tempfile::Builder::new()
        .prefix("sysg-host-only-")
        .tempfile()
        .unwrap();
    let yaml = format!(
        r#"version: "1"
services:
  boxed:
    command: "python3 WORK/check.py WORK/rw/boxed usr; exec sleep 1000"
    working_dir: WORK{SANDBOX}
    hooks:
      on_start: "python3 WORK/check.py WORK/rw/hook usr"
    health_check:
      command: "python3 WORK/check.py WORK/rw/probe usr"
      interval: 1s
  plain:
    command: "python3 WORK/check.py WORK/rw/plain; exec sleep 1000"
    working_dir: WORK
"#
    )
    .replace("WORK", &w);
    let p = Project::new(&yaml);
    let out = p.sysg(&["start", "--daemonize", "--backend", "process"]);
    assert_ok(&out, "start");

    let boxed = results(&work.path().join("rw/boxed"));
    let plain = results(&work.path().join("rw/plain"));
    let hook = results(&work.path().join("rw/hook"));
    let probe = results(&work.path().join("rw/probe"));
    for (who, r) in [("boxed", &boxed), ("hook", &hook), ("probe", &probe)] {
        assert_eq!(r["write_usr"], "EROFS", "{who}: {r:?}");
        // Its own /tmp: only the file it just made.
        assert_eq!(r["tmp"], format!("own-{who}"), "{who}: {r:?}");
        assert_eq!(r["inet"], "EAFNOSUPPORT", "{who}: {r:?}");
        assert_eq!(r["unix"], "ok", "{who}: {r:?}");
        assert_eq!(r["wx"], "EPERM", "{who}: {r:?}");
        assert_eq!(r["chown"], "EPERM", "{who}: {r:?}");
        assert_eq!(r["write_rw"], "ok", "{who}: {r:?}");
        assert_eq!(r["nnp"], "1", "{who}: {r:?}");
        assert_eq!(r["sysctl"], "EROFS", "{who}: {r:?}");
    }
    // Without the sandbox, the same attempts succeed: the checks above are the sandbox's.
    assert_eq!(plain["inet"], "ok", "{plain:?}");
    assert_eq!(plain["wx"], "ok", "{plain:?}");
    assert_eq!(plain["chown"], "ok", "{plain:?}");
    assert_eq!(plain["nnp"], "0", "{plain:?}");
    assert_eq!(plain["sysctl"], "ok", "{plain:?}");
    assert!(plain["tmp"].contains("sysg-host-only-"), "{plain:?}");

    // The kernel's view of the main process.
    let pid = p.pid("boxed").to_string();
    wait_until("boxed to exec sleep", Duration::from_secs(10), || {
        std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "sleep")
    });
    assert_eq!(proc_status_field(&pid, "NoNewPrivs").as_deref(), Some("1"));
    assert_eq!(proc_status_field(&pid, "Seccomp").as_deref(), Some("2"));
    let bounding = u64::from_str_radix(&proc_status_field(&pid, "CapBnd").unwrap(), 16).unwrap();
    for cap in [16, 17, 27] {
        // CAP_SYS_MODULE, CAP_SYS_RAWIO, CAP_MKNOD
        assert_eq!(bounding & (1 << cap), 0, "capability {cap} still bounded");
    }
    let ns = |pid: &str| std::fs::read_link(format!("/proc/{pid}/ns/mnt")).unwrap();
    assert_ne!(ns(&pid), ns("self"), "no mount namespace of its own");
    // Nothing of the service's (or the hook's) /tmp reached the host's.
    assert!(!Path::new("/tmp/own-boxed").exists());
    assert!(!Path::new("/tmp/own-hook").exists());
    assert!(!Path::new("/tmp/own-probe").exists());
    let _ = std::fs::remove_file("/tmp/own-plain");
    drop(host_tmp);
}

#[test]
fn a_denied_call_kills_with_sigsys_when_asked() {
    if !is_root() {
        println!("skipped: needs root");
        return;
    }
    let (work, w) = setup();
    let yaml = r#"version: "1"
services:
  killed:
    command: "exec python3 -c 'import os, time\nwhile not os.path.exists(\"WORK/go\"): time.sleep(0.02)\nopen(\"WORK/rw/before\", \"w\").close(); os.chown(\"WORK/rw/before\", 0, 0); open(\"WORK/rw/after\", \"w\").close()'"
    working_dir: WORK
    restart_policy: never
    sandbox:
      system_call_filter: ["~@chown"]
      system_call_action: kill
"#
    .replace("WORK", &w);
    let p = Project::new(&yaml);
    assert_ok(
        &p.sysg(&["start", "--daemonize", "--backend", "process"]),
        "start",
    );
    // The service waits for this file, so its death comes after the start settled (a start
    // that dies within the settle window would be a failed start, not what is tested here).
    std::fs::write(work.path().join("go"), "").unwrap();
    wait_until("killed to exit", Duration::from_secs(20), || {
        !p.service("killed")["last_exit"].is_null()
    });
    let s = p.service("killed");
    assert!(work.path().join("rw/before").exists());
    assert!(
        !work.path().join("rw/after").exists(),
        "chown was not stopped"
    );
    assert!(s.to_string().contains("SIGSYS"), "{s}");
}

#[test]
fn a_supervisor_without_root_refuses_the_mount_fields() {
    if !is_root() {
        println!("skipped: needs root to become uid 65534");
        return;
    }
    let dir = tempfile::Builder::new()
        .prefix("sysg-nobody-")
        .tempdir()
        .unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    std::fs::write(
        dir.path().join("systemg.yaml"),
        "version: \"1\"\nservices:\n  web:\n    command: \"exec sleep 1000\"\n    sandbox:\n      no_new_privileges: true\n      private_tmp: true\n      protect_system: strict\n      system_call_filter: [\"@system-service\"]\n",
    )
    .unwrap();
    for args in [&["validate"][..], &["start", "--daemonize"][..]] {
        let mut c = Command::new(sysg_bin());
        c.args(args)
            .arg("--backend")
            .arg("process")
            .current_dir(dir.path())
            .env("HOME", dir.path())
            .env("XDG_STATE_HOME", dir.path().join("state"))
            .env("NO_COLOR", "1")
            .uid(65534)
            .gid(65534);
        let out = run_bounded(c, Duration::from_secs(60));
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        for (pos, field) in [("7:7", "private_tmp"), ("8:7", "protect_system")] {
            let want = format!("systemg.yaml:{pos}: error: services.web.sandbox.{field}: ");
            assert!(err.contains(&want), "{args:?}: missing `{want}` in:\n{err}");
        }
        // The filters and no_new_privileges need no root.
        assert!(!err.contains("no_new_privileges"), "{err}");
        assert!(!err.contains("system_call_filter"), "{err}");
    }
    assert!(!dir.path().join("state").exists());
}

#[test]
fn a_missing_sandbox_path_fails_the_start_naming_the_field() {
    if !is_root() {
        println!("skipped: needs root");
        return;
    }
    let (_work, w) = setup();
    let yaml = r#"version: "1"
services:
  web:
    command: "exec sleep 1000"
    working_dir: WORK
    restart_policy: never
    sandbox:
      read_only_paths: ["WORK/not-there"]
"#
    .replace("WORK", &w);
    let p = Project::new(&yaml);
    let out = p.sysg(&["start", "--daemonize", "--backend", "process"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let reason = p.service("web")["reason"].to_string();
    let want = format!("sandbox.read_only_paths: {w}/not-there: No such file or directory");
    assert!(reason.contains(&want), "{reason}");
}

#[test]
fn the_sandbox_holds_over_the_fresh_proc_of_a_pid_namespace() {
    if !is_root() {
        println!("skipped: needs root");
        return;
    }
    let (work, w) = setup();
    // isolation.pid mounts a new /proc; the sandbox's /proc/sys protection must come after it.
    // (The write puts the current value back, so a regression changes nothing on the host.)
    let yaml = r#"version: "1"
services:
  inner:
    command: "d=$(cat /proc/sys/kernel/domainname); (echo \"$d\" > /proc/sys/kernel/domainname) 2> WORK/rw/inner.err; echo $$ > WORK/rw/inner.tmp; mv WORK/rw/inner.tmp WORK/rw/inner"
    working_dir: WORK
    restart_policy: never
    isolation: {pid: true, mount: true}
    sandbox:
      protect_system: strict
      read_write_paths: ["WORK/rw"]
      protect_kernel_tunables: true
"#
    .replace("WORK", &w);
    let p = Project::new(&yaml);
    assert_ok(
        &p.sysg(&["start", "--daemonize", "--backend", "process"]),
        "start",
    );
    let file = work.path().join("rw/inner");
    wait_until("inner to report", Duration::from_secs(20), || file.exists());
    // The shell was PID 1 of its namespace, and the write failed on a read-only /proc/sys.
    assert_eq!(std::fs::read_to_string(&file).unwrap().trim(), "1");
    let err = std::fs::read_to_string(work.path().join("rw/inner.err")).unwrap();
    assert!(err.contains("Read-only file system"), "{err}");
}

/// `sysg init` run by a user without root writes a config that this user's supervisor accepts
/// (the mount keys, which need root, come commented out) and that starts.
#[test]
fn init_without_root_writes_a_config_that_validates_for_that_user() {
    if !is_root() {
        println!("skipped: needs root to become uid 65534");
        return;
    }
    let dir = tempfile::Builder::new()
        .prefix("sysg-nobody-init-")
        .tempdir()
        .unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let run = |args: &[&str]| {
        let mut c = Command::new(sysg_bin());
        c.args(args)
            .arg("--backend")
            .arg("process")
            .current_dir(dir.path())
            .env("HOME", dir.path())
            .env("XDG_STATE_HOME", dir.path().join("state"))
            .env("NO_COLOR", "1")
            .uid(65534)
            .gid(65534);
        run_bounded(c, Duration::from_secs(60))
    };
    let out = run(&["init"]);
    assert_eq!(out.status.code(), Some(0), "init: {}", stderr(&out));
    let text = std::fs::read_to_string(dir.path().join("systemg.yaml")).unwrap();
    assert!(text.contains("# protect_system: strict"), "{text}");
    let out = run(&["validate"]);
    assert_eq!(out.status.code(), Some(0), "validate: {}", stderr(&out));
}
