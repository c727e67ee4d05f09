//! Packaging: the .deb installed with dpkg inside a namespaced systemd 252 (tests/systemd/),
//! whose /etc, /usr and /var are overlays so that nothing reaches the host; the unit file under
//! `systemd-analyze verify`; the install script staged into a directory; the RPM spec.
//!
//! The .deb is `$SYSG_DEB` when set (e.g. a release build), else it is built from the binary
//! this test run built (`packaging/build-deb.sh --profile dev --no-build`), which needs
//! cargo-deb: without it (or without root, systemd or dpkg) the test says why and skips.
//! Every wait is a polled condition with a deadline.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failed test

// Both harnesses include tests/common/wait.rs; this one test crate uses both.
#[allow(clippy::duplicate_mod)]
mod common;
#[allow(clippy::duplicate_mod)]
mod systemd;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use systemd::*;

const T: Duration = Duration::from_secs(30);

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn text(out: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn assert_ok(out: &Output, what: &str) {
    assert!(out.status.success(), "{what} failed: {}", text(out));
}

fn have(program: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {program}"))
        .output()
        .is_ok_and(|o| o.status.success())
}

fn cargo_deb_installed() -> bool {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    Command::new(cargo)
        .args(["deb", "--version"])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// The .deb to test: `$SYSG_DEB`, or one built now from this run's binary.
fn deb_or_skip(scratch: &Path) -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os("SYSG_DEB") {
        let p = PathBuf::from(p);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(format!("SYSG_DEB={} is not a file", p.display()))
        };
    }
    if !cargo_deb_installed() {
        // .ci/run installs it: in CI a missing cargo-deb is a failure, not a skip.
        assert!(
            std::env::var_os("CI").is_none(),
            "CI is set but cargo-deb is not installed"
        );
        return Err("cargo-deb is not installed (cargo install cargo-deb --locked)".into());
    }
    let out = run_bounded(
        {
            let mut c = Command::new(repo().join("packaging/build-deb.sh"));
            c.args(["--profile", "dev", "--no-build", "--", "--fast", "-o"])
                .arg(scratch);
            c
        },
        Duration::from_secs(300),
    );
    assert_ok(&out, "packaging/build-deb.sh");
    let deb = std::fs::read_dir(scratch)
        .expect("scratch dir")
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "deb"))
        .expect("cargo deb wrote a .deb");
    Ok(deb)
}

/// What the host must still look like after the test: nothing of systemg installed.
#[derive(Debug, PartialEq, Eq)]
struct HostView {
    dpkg_status: Vec<u8>,
    etc_group: Vec<u8>,
    present: Vec<String>,
}

/// Paths a leak of the install inside the namespace would create on the host.
const HOST_PATHS: &[&str] = &[
    "/usr/bin/sysg",
    "/lib/systemd/system/systemg.service",
    "/etc/systemd/system/multi-user.target.wants/systemg.service",
    "/var/lib/dpkg/info/systemg.list",
    "/usr/share/doc/systemg",
    "/usr/share/systemg",
    "/usr/local/bin/sysg",
    "/etc/systemd/system/systemg.service",
    "/etc/systemg/systemg.yaml",
];

impl HostView {
    fn take() -> HostView {
        HostView {
            dpkg_status: std::fs::read("/var/lib/dpkg/status").unwrap_or_default(),
            etc_group: std::fs::read("/etc/group").unwrap_or_default(),
            present: HOST_PATHS
                .iter()
                .filter(|p| Path::new(p).exists())
                .map(|p| p.to_string())
                .collect(),
        }
    }
}

/// `systemctl list-units --all 'sysg-*'` inside, one unit name per line.
fn sysg_units(ns: &NsSystemd) -> Vec<String> {
    ns.sysg_units()
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect()
}

/// What systemd and the journal say about systemg.service, for failure messages.
fn diag(ns: &NsSystemd) -> String {
    format!(
        "{}\n{}",
        text(&ns.exec(&["systemctl", "status", "--no-pager", "-l", "systemg"])),
        ns.output(&["journalctl", "--no-pager", "-n", "60", "-u", "systemg"])
    )
}

fn write_config(ns: &NsSystemd, services: &str) {
    let yaml = format!("version: \"1\"\nproject: system\nservices:\n{services}");
    std::fs::write(ns.inner_path("/etc/systemg/systemg.yaml"), yaml).expect("write the config");
}

#[test]
fn deb_install_start_reload_stop_purge() {
    let name = "deb_install_start_reload_stop_purge";
    if let Some(why) = skip_reason() {
        println!("skipping {name}: {why}");
        return;
    }
    if !have("dpkg") {
        println!("skipping {name}: dpkg is missing");
        return;
    }
    let scratch = tempfile::Builder::new()
        .prefix("sysg-deb-")
        .tempdir()
        .expect("tempdir");
    let deb = match deb_or_skip(scratch.path()) {
        Ok(d) => d,
        Err(why) => {
            println!("skipping {name}: {why}");
            return;
        }
    };
    let host = HostView::take();
    assert!(
        host.present.is_empty(),
        "systemg is installed on this host ({:?}): the test could not tell a leak from it",
        host.present
    );

    {
        let ns = NsSystemd::boot_with(Fence {
            overlay_system: true,
        })
        .unwrap_or_else(|e| panic!("booting a namespaced systemd: {e}"));
        let deb_path = deb.to_string_lossy().into_owned();

        // Install: postinst creates the group and directories, enables and starts the unit;
        // `Type=notify` means the start returned only after READY=1.
        // Images built for containers forbid maintainer scripts to start services through a
        // policy-rc.d that exits 101; a real host has none. The removal is a whiteout in the
        // namespace's /usr overlay: the host keeps its file.
        let policy = ns.inner_path("/usr/sbin/policy-rc.d");
        if policy.exists() {
            std::fs::remove_file(&policy).expect("remove policy-rc.d inside");
        }
        let install = ns.exec(&["dpkg", "-i", &deb_path]);
        assert_ok(&install, "dpkg -i");
        assert_eq!(
            ns.output(&["systemctl", "is-enabled", "systemg"]),
            "enabled"
        );
        assert_eq!(
            ns.show("systemg", "ActiveState"),
            "active",
            "postinst started the unit: {}\n{}",
            text(&install),
            diag(&ns)
        );
        assert_ok(
            &ns.exec(&["getent", "group", "systemg"]),
            "the systemg group",
        );
        for d in ["/var/lib/systemg", "/var/log/systemg"] {
            assert!(ns.inner_path(d).is_dir(), "{d} was not created");
        }
        // What the docs promise: the config schema for editors, completions, man pages, docs.
        assert_share(
            &ns.inner_path("/usr/share"),
            "zsh/vendor-completions/_sysg",
            "the .deb",
        );
        assert_ok(
            &ns.exec(&["sysg", "--sys", "validate"]),
            "the default config validates",
        );
        assert_ok(
            &ns.exec(&[
                "systemd-analyze",
                "verify",
                "/lib/systemd/system/systemg.service",
            ]),
            "systemd-analyze verify of the installed unit",
        );

        // Start (already running: a no-op) and see the default service as a transient unit.
        assert_ok(&ns.exec(&["systemctl", "start", "systemg"]), "start");
        let placeholder = "sysg-system-placeholder.service";
        wait_until("the placeholder service runs as a unit", T, || {
            ns.show(placeholder, "ActiveState") == "active"
        });
        assert!(sysg_units(&ns).contains(&placeholder.to_string()));
        assert!(
            ns.show("systemg", "StatusText")
                .contains("1 of 1 service running"),
            "STATUS= reaches systemd: {}",
            ns.show("systemg", "StatusText")
        );
        assert_eq!(ns.show("systemg", "NotifyAccess"), "main");

        // The supervisor's own log is structured in the journal (matches on different fields
        // are ANDed by journalctl).
        let journal = |matches: &[&str]| {
            let mut args = vec![
                "journalctl",
                "_SYSTEMD_UNIT=systemg.service",
                "SYSLOG_IDENTIFIER=sysg",
                "-o",
                "cat",
                "--no-pager",
            ];
            args.extend_from_slice(matches);
            ns.output(&args)
        };
        wait_until("supervisor entries in the journal", T, || {
            journal(&["SYSG_PROJECT=system", "SYSG_BACKEND=systemd"])
                .contains("supervisor starting")
        });
        wait_until("an entry about the placeholder, by field", T, || {
            journal(&["SYSG_UNIT=placeholder", "PRIORITY=5"]).contains("started")
        });

        // Reload: a new service starts, a removed one stops.
        write_config(&ns, "  second:\n    command: \"exec sleep 1001\"\n");
        assert_ok(&ns.exec(&["systemctl", "reload", "systemg"]), "reload");
        wait_until("the reload applied the new config", T, || {
            ns.show("sysg-system-second.service", "ActiveState") == "active"
                && !sysg_units(&ns).contains(&placeholder.to_string())
        });
        wait_until("systemg is active again after the reload", T, || {
            ns.show("systemg", "ActiveState") == "active"
        });

        // A broken config: the reload fails loudly and the running config is kept.
        std::fs::write(
            ns.inner_path("/etc/systemg/systemg.yaml"),
            "version: \"1\"\nservices: {}\n",
        )
        .expect("write");
        let out = ns.exec(&["systemctl", "reload", "systemg"]);
        assert!(
            !out.status.success(),
            "reload of a broken config: {}",
            text(&out)
        );
        assert_eq!(ns.show("systemg", "ActiveState"), "active");
        assert_eq!(
            ns.show("sysg-system-second.service", "ActiveState"),
            "active"
        );
        write_config(&ns, "  second:\n    command: \"exec sleep 1001\"\n");

        // A crash of the supervisor leaves the services running; the restarted one adopts them.
        let second_pid = ns.show("sysg-system-second.service", "MainPID");
        let sup = ns.show("systemg", "MainPID");
        assert_ok(&ns.exec(&["kill", "-9", &sup]), "kill -9 the supervisor");
        wait_until("systemd restarts the supervisor", T, || {
            let now = ns.show("systemg", "MainPID");
            ns.show("systemg", "ActiveState") == "active" && now != sup && now != "0"
        });
        assert_eq!(
            ns.show("sysg-system-second.service", "MainPID"),
            second_pid,
            "the service outlived the supervisor's crash"
        );
        let status = ns.exec(&["sysg", "--sys", "status", "--json"]);
        assert_ok(&status, "status after the crash");
        let st: serde_json::Value = serde_json::from_slice(&status.stdout).expect("json");
        assert_eq!(
            st["services"][0]["pid"].to_string(),
            second_pid,
            "re-adopted: {st}"
        );

        // Reinstall (dpkg's upgrade path): the edited conffile is kept and postinst restarts
        // the supervisor on the new binary.
        assert_ok(&ns.exec(&["dpkg", "-i", &deb_path]), "dpkg -i again");
        assert!(
            std::fs::read_to_string(ns.inner_path("/etc/systemg/systemg.yaml"))
                .unwrap_or_default()
                .contains("second:"),
            "the edited configuration survived the upgrade"
        );
        assert_eq!(ns.show("systemg", "ActiveState"), "active", "{}", diag(&ns));
        assert_ne!(ns.show("systemg", "MainPID"), sup);
        wait_until("the service runs after the upgrade", T, || {
            ns.show("sysg-system-second.service", "ActiveState") == "active"
        });

        // Stop: every service is stopped with the supervisor, no unit is left.
        assert_ok(&ns.exec(&["systemctl", "stop", "systemg"]), "stop");
        assert_eq!(
            ns.output(&["systemctl", "is-active", "systemg"]),
            "inactive"
        );
        wait_until("no sysg-* unit is left", T, || sysg_units(&ns).is_empty());

        // Purge while running: prerm stops the supervisor and so every service; then nothing
        // of the package is left inside.
        assert_ok(&ns.exec(&["systemctl", "start", "systemg"]), "start again");
        wait_until("the service runs again", T, || {
            ns.show("sysg-system-second.service", "ActiveState") == "active"
        });
        assert_ok(&ns.exec(&["dpkg", "--purge", "systemg"]), "dpkg --purge");
        wait_until("no sysg-* unit is left after purge", T, || {
            sysg_units(&ns).is_empty()
        });
        for p in [
            "/usr/bin/sysg",
            "/lib/systemd/system/systemg.service",
            "/etc/systemg",
            "/var/lib/systemg",
            "/var/log/systemg",
            "/run/systemg",
            "/usr/share/doc/systemg",
            "/usr/share/systemg",
        ] {
            assert!(!ns.inner_path(p).exists(), "{p} is left after purge");
        }
        assert!(
            !ns.exec(&["getent", "group", "systemg"]).status.success(),
            "the systemg group is left after purge"
        );
        let leftovers = ns.output(&[
            "find",
            "/etc/systemd",
            "/var/lib/systemd",
            "-name",
            "*systemg*",
        ]);
        assert!(leftovers.is_empty(), "left after purge: {leftovers}");
        let dpkg = ns.output(&["dpkg-query", "-W", "-f", "${db:Status-Status}", "systemg"]);
        assert!(
            dpkg.is_empty() || dpkg == "not-installed",
            "dpkg still knows systemg: {dpkg}"
        );
    }

    // The install happened in the namespace's overlays only.
    assert_eq!(HostView::take(), host, "the host's files changed");
}

/// The install script for real, inside the namespaced systemd (overlays keep the host clean):
/// it installs, starts the unit, can run again, and `--uninstall --purge` leaves nothing.
#[test]
fn install_script_under_systemd() {
    let name = "install_script_under_systemd";
    if let Some(why) = skip_reason() {
        println!("skipping {name}: {why}");
        return;
    }
    let host = HostView::take();
    {
        let ns = NsSystemd::boot_with(Fence {
            overlay_system: true,
        })
        .unwrap_or_else(|e| panic!("booting a namespaced systemd: {e}"));
        let script = repo().join("packaging/install.sh");
        let script = script.to_string_lossy().into_owned();
        let bin = env!("CARGO_BIN_EXE_sysg");
        for round in 1..=2 {
            let out = ns.exec(&[&script, "--bin", bin]);
            assert_ok(&out, &format!("install.sh, round {round}"));
            assert_eq!(
                ns.show("systemg", "ActiveState"),
                "active",
                "round {round}: {}",
                diag(&ns)
            );
            wait_until("the placeholder runs", T, || {
                ns.show("sysg-system-placeholder.service", "ActiveState") == "active"
            });
        }
        assert_eq!(
            ns.output(&["systemctl", "is-enabled", "systemg"]),
            "enabled"
        );
        assert_ok(
            &ns.exec(&["getent", "group", "systemg"]),
            "the systemg group",
        );
        let exec_start = ns.show("systemg", "ExecStart");
        assert!(
            exec_start.contains("path=/usr/local/bin/sysg"),
            "the unit runs the installed binary: {exec_start}"
        );
        assert_share(
            &ns.inner_path("/usr/local/share"),
            "zsh/site-functions/_sysg",
            "install.sh",
        );

        let out = ns.exec(&[&script, "--uninstall", "--purge"]);
        assert_ok(&out, "install.sh --uninstall --purge");
        wait_until("no sysg-* unit is left", T, || sysg_units(&ns).is_empty());
        for p in [
            "/usr/local/bin/sysg",
            "/etc/systemd/system/systemg.service",
            "/etc/systemd/system/multi-user.target.wants/systemg.service",
            "/etc/systemg",
            "/var/lib/systemg",
            "/var/log/systemg",
            "/run/systemg",
            "/usr/local/share/systemg",
            "/usr/local/share/doc/systemg",
            "/usr/local/share/man/man1/sysg.1.gz",
            "/usr/local/share/bash-completion/completions/sysg",
        ] {
            assert!(!ns.inner_path(p).exists(), "{p} is left after --purge");
        }
        assert!(!ns.exec(&["getent", "group", "systemg"]).status.success());
    }
    assert_eq!(HostView::take(), host, "the host's files changed");
}

/// `systemd-analyze verify` of the unit as shipped, with ExecStart pointed at the built
/// binary (the shipped path /usr/bin/sysg does not exist on a build host).
#[test]
fn unit_file_verifies() {
    if !have("systemd-analyze") {
        println!("skipping unit_file_verifies: systemd-analyze is missing");
        return;
    }
    let unit = std::fs::read_to_string(repo().join("units/systemg.service")).expect("unit");
    assert!(unit.contains("ExecStart=/usr/bin/sysg --sys --backend systemd start"));
    let dir = tempfile::tempdir().expect("tempdir");
    let copy = dir.path().join("systemg.service");
    std::fs::write(
        &copy,
        unit.replace("/usr/bin/sysg", env!("CARGO_BIN_EXE_sysg")),
    )
    .expect("write");
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&copy)
        .output()
        .expect("systemd-analyze");
    assert_ok(&out, "systemd-analyze verify");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("systemg.service"),
        "systemd-analyze has remarks on the unit: {stderr}"
    );
}

/// The install script into a staging root: install, install again (idempotent, the edited
/// config is kept), uninstall (config kept), purge (nothing left).
#[test]
fn install_script_stages_idempotently_and_uninstalls() {
    let root = tempfile::tempdir().expect("tempdir");
    let r = root.path().to_string_lossy().into_owned();
    let script = repo().join("packaging/install.sh");
    let run = |args: &[&str]| {
        let out = Command::new(&script)
            .args(["--root", &r, "--bin", env!("CARGO_BIN_EXE_sysg")])
            .args(args)
            .output()
            .expect("install.sh");
        assert_ok(&out, &format!("install.sh {args:?}"));
    };
    run(&[]);
    let bin = root.path().join("usr/local/bin/sysg");
    let unit = root.path().join("etc/systemd/system/systemg.service");
    let config = root.path().join("etc/systemg/systemg.yaml");
    assert!(bin.is_file());
    let unit_text = std::fs::read_to_string(&unit).expect("unit");
    assert!(
        unit_text.contains("ExecStart=/usr/local/bin/sysg --sys --backend systemd start"),
        "{unit_text}"
    );
    assert!(!unit_text.contains("/usr/bin/sysg"));
    assert!(root.path().join("var/lib/systemg").is_dir());
    assert!(root.path().join("var/log/systemg").is_dir());
    assert_share(
        &root.path().join("usr/local/share"),
        "zsh/site-functions/_sysg",
        "install.sh",
    );
    let v = Command::new(&bin)
        .args(["validate", "-c"])
        .arg(&config)
        .output()
        .expect("validate");
    assert_ok(&v, "the installed default config validates");

    std::fs::write(&config, "# edited\n").expect("edit");
    run(&[]);
    assert_eq!(
        std::fs::read_to_string(&config).expect("config"),
        "# edited\n",
        "a second install keeps the edited config"
    );

    run(&["--uninstall"]);
    assert!(!bin.exists() && !unit.exists());
    assert!(config.exists(), "uninstall keeps the config");
    run(&["--uninstall", "--purge"]);
    let mut left = Vec::new();
    for e in walk(root.path()) {
        if e.is_file() {
            left.push(e);
        }
    }
    assert!(left.is_empty(), "left after purge: {left:?}");
}

/// What the docs promise beside the binary, under `share` (`/usr/share` for the .deb,
/// `PREFIX/share` for the script): the config schema editors are told to use, completions for
/// each shell, the man pages and the docs. `zsh` is where that installer puts zsh's.
fn assert_share(share: &Path, zsh: &str, what: &str) {
    let schema = share.join("systemg/systemg.schema.json");
    let shipped = std::fs::read(repo().join("docs/schemas/systemg.schema.json")).expect("schema");
    assert_eq!(
        std::fs::read(&schema).unwrap_or_default(),
        shipped,
        "{what}: {} is the shipped config schema",
        schema.display()
    );
    for (file, needle) in [
        ("bash-completion/completions/sysg", "sysg"),
        (zsh, "#compdef sysg"),
        ("fish/vendor_completions.d/sysg.fish", "complete -c sysg"),
    ] {
        let text = std::fs::read_to_string(share.join(file)).unwrap_or_default();
        assert!(
            text.contains(needle),
            "{what}: {file} is not a completion script"
        );
    }
    for page in ["man/man1/sysg.1.gz", "man/man1/sysg-start.1.gz"] {
        assert!(share.join(page).is_file(), "{what}: {page} is missing");
    }
    for doc in ["README.md", "configuration.md", "cli.md"] {
        assert!(
            share.join("doc/systemg").join(doc).is_file(),
            "{what}: doc/systemg/{doc} is missing"
        );
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            }
            out.push(p);
        }
    }
    out
}

/// The RPM spec parses and carries the crate's version.
#[test]
fn rpm_spec_parses_with_the_crate_version() {
    if !have("rpmspec") {
        println!("skipping rpm_spec_parses_with_the_crate_version: rpmspec is missing");
        return;
    }
    let out = Command::new("rpmspec")
        .args(["-q", "--srpm", "--qf", "%{VERSION}"])
        .arg(repo().join("packaging/rpm/systemg.spec"))
        .output()
        .expect("rpmspec");
    assert_ok(&out, "rpmspec -q");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        env!("CARGO_PKG_VERSION")
    );
}

/// The supervisor as systemd runs it, without systemd: `NOTIFY_SOCKET` (an abstract socket,
/// as systemd uses) receives READY=1 once the services run, RELOADING=1 then READY=1 around
/// a SIGHUP reload, STOPPING=1 on SIGTERM; with `INVOCATION_ID` set but no journal socket the
/// log falls back to stderr.
#[test]
fn notify_protocol_and_journal_fallback_outside_systemd() {
    use std::io::BufRead;
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::net::{SocketAddr, UnixDatagram};

    if Path::new("/run/systemd/journal/socket").exists() {
        println!("skipping notify_protocol_and_journal_fallback_outside_systemd: a journal runs here, so the log would not fall back to stderr");
        return;
    }
    let p = common::Project::new(
        "version: \"1\"\nservices:\n  one:\n    command: \"exec sleep 1000\"\n    stop_timeout: 1s\n",
    );
    let name = format!("sysg-test-notify-{}", std::process::id());
    let addr = SocketAddr::from_abstract_name(name.as_bytes()).expect("abstract address");
    let sock = UnixDatagram::bind_addr(&addr).expect("bind");
    sock.set_read_timeout(Some(T)).expect("timeout");
    let recv = || {
        let mut buf = [0u8; 4096];
        let n = sock.recv(&mut buf).expect("a notification in time");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };

    let mut child = p
        .cmd(&["--backend", "process", "start"])
        .env("NOTIFY_SOCKET", format!("@{name}"))
        .env("INVOCATION_ID", "0123456789abcdef0123456789abcdef")
        .env_remove("JOURNAL_STREAM")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn sysg start");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);

    let ready = recv();
    assert!(
        ready.starts_with("READY=1\nSTATUS=1 of 1 service running"),
        "{ready}"
    );
    assert!(
        p.service("one")["pid"].is_u64(),
        "READY=1 came after the service started"
    );
    let deadline = std::time::Instant::now() + T;
    loop {
        let line = lines
            .recv_timeout(deadline.saturating_duration_since(std::time::Instant::now()))
            .expect("the supervisor logs to stderr");
        if line.contains("supervisor starting") {
            break;
        }
    }

    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGHUP).expect("SIGHUP");
    assert!(recv().starts_with("RELOADING=1\n"));
    assert!(recv().starts_with("READY=1\n"));

    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("SIGTERM");
    assert_eq!(recv(), "STOPPING=1\nSTATUS=stopping every service");
    let status = child.wait().expect("wait");
    assert!(status.success(), "{status:?}");
}
