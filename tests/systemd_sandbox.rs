//! `sandbox:` on the systemd backend: the real `sysg --sys --backend systemd` inside a
//! namespaced systemd 252 (tests/systemd/mod.rs). Each field is checked as the unit property
//! systemd reports (`systemctl show`) and as what the kernel then enforces on the service: a
//! probe (python3 with ctypes) attempts each forbidden thing from inside the service and
//! records the errno it got, and an unsandboxed twin runs the same probe as the control, so
//! that every check can fail.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failed test

mod systemd;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use systemd::*;

const PYTHON: &str = "/usr/bin/python3";

/// The probe: argv[1] is the service's name, argv[2] a tag unique to this test run. Results
/// go to /run/sbx/NAME.out as `key=errno` lines (0: the attempt succeeded), then it sleeps so
/// that the test can look at the running process.
const PROBE: &str = r#"
import ctypes, os, socket, sys
name, tag = sys.argv[1], sys.argv[2]
libc = ctypes.CDLL(None, use_errno=True)
out = {}

def attempt_write(path):
    try:
        with open(path, "w") as f:
            f.write("x")
        return 0
    except OSError as e:
        return e.errno

if name != "plain":  # the control must not write to the host's /usr or /var
    out["usr"] = attempt_write("/usr/.sysg-sbx-" + tag)
    out["outside"] = attempt_write("/var/.sysg-sbx-" + tag)
out["rw"] = attempt_write("/run/sbx/" + name + ".rw")
out["tmp"] = attempt_write("/tmp/sysg-sbx-own-" + name + "-" + tag)
out["tmp_marker_seen"] = int(os.path.exists("/tmp/sysg-sbx-marker-" + tag))

# swapoff of a path that does not exist: ENOENT when allowed, EPERM when filtered.
ctypes.set_errno(0)
r = libc.swapoff(b"/nonexistent-sysg-sandbox")
out["swapoff"] = ctypes.get_errno() if r != 0 else 0

try:
    socket.socket(socket.AF_INET, socket.SOCK_STREAM).close()
    out["inet"] = 0
except OSError as e:
    out["inet"] = e.errno

libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                      ctypes.c_int, ctypes.c_long]
ctypes.set_errno(0)
PROT_RWX, MAP_PRIVATE_ANON = 7, 0x22
p = libc.mmap(None, 4096, PROT_RWX, MAP_PRIVATE_ANON, -1, 0)
out["wx"] = ctypes.get_errno() if p in (None, ctypes.c_void_p(-1).value) else 0

with open("/run/sbx/" + name + ".tmp", "w") as f:
    f.write("".join("%s=%s\n" % kv for kv in sorted(out.items())))
os.rename("/run/sbx/" + name + ".tmp", "/run/sbx/" + name + ".out")
os.execv("/bin/sleep", ["sleep", "1000"])
"#;

fn results(ns: &NsSystemd, name: &str) -> BTreeMap<String, i64> {
    let path = ns.inner_path(&format!("/run/sbx/{name}.out"));
    wait_until(
        &format!("the probe of {name} to report"),
        Duration::from_secs(30),
        || path.exists(),
    );
    std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.parse().unwrap()))
        .collect()
}

/// Removes what a failed sandbox could have left on the shared host file system.
struct Cleanup(Vec<String>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        for p in &self.0 {
            let _ = std::fs::remove_file(p);
        }
    }
}

#[test]
fn systemd_applies_and_the_kernel_enforces_every_sandbox_field() {
    let Some(ns) = boot_or_skip("systemd_applies_and_the_kernel_enforces_every_sandbox_field")
    else {
        return;
    };
    if !Path::new(PYTHON).exists() {
        println!("skipping: {PYTHON} is missing");
        return;
    }
    let tag = format!("{}", std::process::id());
    let _cleanup = Cleanup(vec![
        format!("/usr/.sysg-sbx-{tag}"),
        format!("/var/.sysg-sbx-{tag}"),
        format!("/tmp/sysg-sbx-own-hardened-{tag}"),
        format!("/tmp/sysg-sbx-own-plain-{tag}"),
        format!("/tmp/sysg-sbx-marker-{tag}"),
    ]);
    std::fs::write(format!("/tmp/sysg-sbx-marker-{tag}"), "host").unwrap();
    assert_ok(&ns.exec(&["mkdir", "-p", "/run/sbx"]), "mkdir /run/sbx");
    std::fs::write(ns.inner_path("/run/sbx/probe.py"), PROBE).unwrap();

    let p = SysProject::new(
        &ns,
        "sysg-sbx-",
        "sbx",
        &format!(
            r#"  hardened:
    exec: ["{PYTHON}", "/run/sbx/probe.py", "hardened", "{tag}"]
    working_dir: /
    sandbox:
      no_new_privileges: true
      private_tmp: true
      private_devices: true
      protect_system: strict
      protect_home: read-only
      read_write_paths: ["/run/sbx"]
      read_only_paths: ["/etc"]
      inaccessible_paths: ["/root"]
      protect_kernel_tunables: true
      protect_kernel_modules: true
      protect_control_groups: true
      restrict_address_families: [AF_UNIX]
      system_call_filter: ["@system-service", "~@privileged"]
      memory_deny_write_execute: true
  plain:
    exec: ["{PYTHON}", "/run/sbx/probe.py", "plain", "{tag}"]
    working_dir: /
"#
        ),
    )
    .without_chdir();
    assert_ok(&p.sysg(&["start", "--daemonize"]), "start");
    let show = |prop: &str| ns.show(&p.unit("hardened"), prop);

    // The properties as systemd has them.
    for (prop, want) in [
        ("NoNewPrivileges", "yes"),
        ("PrivateTmp", "yes"),
        ("PrivateDevices", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "read-only"),
        ("ReadWritePaths", "/run/sbx"),
        ("ReadOnlyPaths", "/etc"),
        ("InaccessiblePaths", "/root"),
        ("ProtectKernelTunables", "yes"),
        ("ProtectKernelModules", "yes"),
        ("ProtectControlGroups", "yes"),
        ("RestrictAddressFamilies", "AF_UNIX"),
        ("SystemCallErrorNumber", "1"),
        ("MemoryDenyWriteExecute", "yes"),
    ] {
        assert_eq!(show(prop), want, "{prop}");
    }
    // An allow-list: systemd prints the resolved set of names.
    let filter = show("SystemCallFilter");
    let names: Vec<&str> = filter.split_whitespace().collect();
    assert!(names.contains(&"openat"), "{filter}");
    assert!(!names.contains(&"swapoff"), "{filter}");
    assert!(!filter.starts_with('~'), "{filter}");
    // The unsandboxed twin has none of it.
    let plain = |prop: &str| ns.show(&p.unit("plain"), prop);
    assert_eq!(plain("NoNewPrivileges"), "no");
    assert_eq!(plain("ProtectSystem"), "no");

    // What the kernel enforces.
    let h = results(&ns, "hardened");
    let c = results(&ns, "plain");
    let (erofs, eperm, enoent, eafnosupport) = (30, 1, 2, 97);
    assert_eq!(h["usr"], erofs, "strict: /usr is read-only: {h:?}");
    assert_eq!(h["outside"], erofs, "strict: /var is read-only: {h:?}");
    assert_eq!(h["rw"], 0, "read_write_paths stay writable: {h:?}");
    assert_eq!(c["rw"], 0, "control: {c:?}");
    assert!(!Path::new(&format!("/usr/.sysg-sbx-{tag}")).exists());
    assert!(!Path::new(&format!("/var/.sysg-sbx-{tag}")).exists());

    assert_eq!(h["tmp"], 0, "its own /tmp is writable: {h:?}");
    assert_eq!(
        h["tmp_marker_seen"], 0,
        "the host's /tmp is not visible: {h:?}"
    );
    assert_eq!(c["tmp_marker_seen"], 1, "control: {c:?}");
    assert!(
        !Path::new(&format!("/tmp/sysg-sbx-own-hardened-{tag}")).exists(),
        "the service's /tmp file landed in the host's /tmp"
    );

    assert_eq!(h["swapoff"], eperm, "filtered call fails with EPERM: {h:?}");
    assert_eq!(c["swapoff"], enoent, "control: {c:?}");
    assert_eq!(h["inet"], eafnosupport, "AF_INET refused: {h:?}");
    assert_eq!(c["inet"], 0, "control: {c:?}");
    assert_eq!(h["wx"], eperm, "W+X mapping refused: {h:?}");
    assert_eq!(c["wx"], 0, "control: {c:?}");

    let status = |svc: &str, key: &str| {
        let pid = p.pid(svc);
        let text = ns.output(&["cat", &format!("/proc/{pid}/status")]);
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{key}:")))
            .map(|v| v.trim().to_string())
            .unwrap_or_else(|| panic!("no {key} for {svc}: {text}"))
    };
    assert_eq!(status("hardened", "NoNewPrivs"), "1");
    assert_eq!(status("plain", "NoNewPrivs"), "0");
    assert_eq!(status("hardened", "Seccomp"), "2");

    assert_ok(&p.sysg(&["stop"]), "stop");
}

#[test]
fn system_call_action_kill_kills_with_sigsys() {
    let Some(ns) = boot_or_skip("system_call_action_kill_kills_with_sigsys") else {
        return;
    };
    if !Path::new(PYTHON).exists() {
        println!("skipping: {PYTHON} is missing");
        return;
    }
    let p = SysProject::new(
        &ns,
        "sysg-sbxkill-",
        "sbxkill",
        &format!(
            r#"  killed:
    exec: ["{PYTHON}", "-c", "import ctypes; ctypes.CDLL(None).swapoff(b'/nonexistent-sysg')"]
    restart_policy: never
    sandbox:
      system_call_filter: ["~swapoff"]
      system_call_action: kill
"#
        ),
    )
    .without_chdir();
    // The service dies at its first filtered call, so the start reports the failure.
    let out = p.sysg(&["start", "--daemonize"]);
    assert!(
        text(&out.stdout).contains("killed: failed: signal SIGSYS"),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert!(!out.status.success());
    // No EPERM: systemd shows its "kill" marker rather than an errno.
    assert_ne!(ns.show(&p.unit("killed"), "SystemCallErrorNumber"), "1");
    let _ = p.sysg(&["stop"]);
}

/// examples/hardened-web.yaml runs as written on systemd (on a free port) and answers.
#[test]
fn the_hardened_example_serves_on_systemd() {
    let Some(ns) = boot_or_skip("the_hardened_example_serves_on_systemd") else {
        return;
    };
    if !Path::new(PYTHON).exists() {
        println!("skipping: {PYTHON} is missing");
        return;
    }
    let example = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/hardened-web.yaml"),
    )
    .unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let services = example
        .split_once("services:\n")
        .map(|(_, s)| s.replace("8080", &port.to_string()))
        .unwrap();
    let p = SysProject::new(&ns, "sysg-hweb-", "hweb", &services).without_chdir();
    assert_ok(&p.sysg(&["start", "--daemonize"]), "start");
    assert_eq!(ns.show(&p.unit("docs"), "ProtectSystem"), "strict");
    assert_eq!(ns.show(&p.unit("docs"), "User"), "www-data");
    wait_until("the example to be healthy", Duration::from_secs(30), || {
        p.service("docs")["health"] == "healthy"
    });
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.0 200"), "{answer}");
    assert_ok(&p.sysg(&["stop"]), "stop");
}
