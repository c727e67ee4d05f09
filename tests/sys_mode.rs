//! `sysg --sys` on the process backend: system paths, the control socket's group access, and
//! `--drop-privileges`. Each test runs the real binary in a private mount namespace with tmpfs
//! over /var/lib/systemg, /run/systemg, /var/log/systemg and /etc/systemg, so nothing lands on
//! the host; a `systemg` group is provided by bind-mounting a copy of /etc/group (the host's
//! file is never modified). Other users are played with `setpriv`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failed test
#![cfg(target_os = "linux")]

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::sandbox::*;
use common::*;

const WEB: &str = "  web:\n    command: \"echo hello-from-web; exec sleep 1000\"\n";

#[test]
fn sys_socket_is_group_readable_and_members_only_read() {
    if let Some(why) = skip() {
        println!("skipped: {why}");
        return;
    }
    let services = format!("{WEB}    env:\n      file: secrets.env\n");
    let mut sb = Sandbox::new("privsys", true, &services);
    let g = sb.gid.unwrap();
    // Secrets stay root's: members read status without being able to read them.
    let secrets = sb.dir.path().join("secrets.env");
    std::fs::write(&secrets, "TOKEN=s3cret\n").unwrap();
    std::fs::set_permissions(&secrets, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert_ok(&sb.start(&[]), "start");
    let sock = sb.inside("/run/systemg/privsys/control.sock");
    assert_eq!(owner_mode(&sock), (0o660, 0, g));
    for d in [
        "/run/systemg",
        "/run/systemg/privsys",
        "/var/lib/systemg",
        "/var/lib/systemg/privsys",
        "/var/log/systemg",
        "/var/log/systemg/privsys",
    ] {
        assert_eq!(owner_mode(&sb.inside(d)), (0o750, 0, g), "{d}");
    }
    // Everything of the project is under the system paths.
    assert!(sb.inside("/var/lib/systemg/privsys/state.json").is_file());
    assert!(sb.inside("/run/systemg/privsys/supervisor.pid").is_file());
    assert!(sb
        .inside("/var/log/systemg/privsys/supervisor.log")
        .is_file());
    wait_until("web's output in its log", T, || {
        std::fs::read_to_string(sb.inside("/var/log/systemg/privsys/web.stdout.log"))
            .is_ok_and(|t| t.contains("hello-from-web"))
    });

    // A member by supplementary group reads status, inspect and logs...
    let member = &As::User {
        gid: 65534,
        groups: vec![65534, g],
    };
    let st = sb.status(member);
    assert_eq!(st["services"][0]["state"], "running", "{st}");
    assert_ok(&sb.sysg(member, &["inspect", "web"]), "inspect as a member");
    let logs = sb.sysg(member, &["logs", "--service", "web"]);
    assert_ok(&logs, "logs as a member");
    assert!(
        stdout(&logs).contains("hello-from-web"),
        "{}",
        stdout(&logs)
    );
    // ...but may not change anything, and is told so in one line.
    let web = sb.service_pid("web");
    for args in [&["stop"][..], &["stop", "--service", "web"][..]] {
        let out = sb.sysg(member, args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = one_line(&out);
        assert!(
            err.contains(
                "uid 65534 may only read this supervisor's status (as a member of group `systemg`)"
            ),
            "{err}"
        );
        assert!(err.contains("needs root (sudo)"), "{err}");
    }
    assert!(alive(web), "a refused stop stopped the service");
    assert_eq!(sb.service_pid("web"), web);

    // A member by primary group reads too.
    let primary = &As::User {
        gid: g,
        groups: vec![],
    };
    assert_eq!(sb.status(primary)["services"][0]["state"], "running");

    // Without --sys, status finds the system supervisor when the user has none.
    let out = sb.sysg_any(member, &["status", "--json"]);
    assert_ok(&out, "status without --sys");
    assert!(stdout(&out).contains("\"running\""), "{}", stdout(&out));
    let out = sb.sysg_any(NOBODY, &["status"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(one_line(&out).contains("permission denied on /run/systemg/privsys/control.sock"));

    // Anyone else is refused before reaching the socket, in one clear line.
    for args in [&["status"][..], &["stop"][..]] {
        let out = sb.sysg(NOBODY, args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stderr(&out));
        let err = one_line(&out);
        assert!(
            err.contains("permission denied on /run/systemg/privsys/control.sock"),
            "{err}"
        );
        assert!(err.contains("join the `systemg` group"), "{err}");
    }

    assert_ok(&sb.sysg(&As::Root, &["stop"]), "stop as root");
    assert!(!alive(web));
    assert!(!sb.inside("/run/systemg/privsys/control.sock").exists());
}

#[test]
fn sys_without_the_group_is_root_only() {
    if let Some(why) = skip() {
        println!("skipped: {why}");
        return;
    }
    let mut sb = Sandbox::new("privsolo", false, WEB);
    assert_ok(&sb.start(&[]), "start");
    let sock = sb.inside("/run/systemg/privsolo/control.sock");
    assert_eq!(owner_mode(&sock), (0o600, 0, 0));
    for d in [
        "/run/systemg/privsolo",
        "/var/lib/systemg/privsolo",
        "/var/log/systemg/privsolo",
    ] {
        assert_eq!(owner_mode(&sb.inside(d)).0, 0o700, "{d}");
    }
    let out = sb.sysg(NOBODY, &["status"]);
    assert_eq!(out.status.code(), Some(1));
    let err = one_line(&out);
    assert!(err.contains("permission denied"), "{err}");
    assert!(!err.contains("os error"), "{err}");
    assert_eq!(sb.status(&As::Root)["services"][0]["state"], "running");

    // --sys reads /etc/systemg/systemg.yaml by default.
    std::fs::write(
        sb.inside("/etc/systemg/systemg.yaml"),
        "version: \"1\"\nproject: frometc\nservices:\n  a:\n    command: x\n",
    )
    .unwrap();
    let mut c = Command::new("nsenter");
    c.arg("-t")
        .arg(sb.pid().to_string())
        .args(["-m", "--wd=/"])
        .arg(sysg_bin())
        .args(["--sys", "validate"]);
    let out = run_bounded(c, Duration::from_secs(30));
    assert_ok(&out, "validate with the default --sys config");
    assert!(
        stdout(&out).starts_with("/etc/systemg/systemg.yaml: ok (project `frometc`"),
        "{}",
        stdout(&out)
    );
}

fn status_field(pid: u32, key: &str) -> String {
    proc_status_field(&pid.to_string(), key).unwrap_or_default()
}

#[test]
fn drop_privileges_runs_the_supervisor_as_the_services_user() {
    if let Some(why) = skip() {
        println!("skipped: {why}");
        return;
    }
    let services = "  web:\n    command: \"echo dropped; exec sleep 1000\"\n    user: nobody\n  helper:\n    command: \"exec sleep 1001\"\n";
    let mut sb = Sandbox::new("privdrop", true, services);
    let g = sb.gid.unwrap();
    // Refusals first: the systemd backend, and a field the dropped user could not apply.
    let out = sb.sysg(
        &As::Root,
        &["--drop-privileges", "--backend", "systemd", "start", "-d"],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("--drop-privileges: the systemd backend"),
        "{}",
        stderr(&out)
    );

    assert_ok(&sb.start(&["--drop-privileges"]), "start --drop-privileges");
    let sup = sb.supervisor_pid().expect("supervisor pid");
    assert_eq!(status_field(sup, "Uid"), "65534\t65534\t65534\t65534");
    assert_eq!(status_field(sup, "Gid"), "65534\t65534\t65534\t65534");
    assert_eq!(status_field(sup, "CapEff"), "0000000000000000");
    assert_eq!(status_field(sup, "CapPrm"), "0000000000000000");
    // Every service runs as that user, including the one that did not ask.
    for name in ["web", "helper"] {
        let pid = sb.service_pid(name);
        assert_eq!(
            status_field(pid, "Uid"),
            "65534\t65534\t65534\t65534",
            "{name}"
        );
    }
    // Root set up the directories for it; the socket stays root's.
    assert_eq!(
        owner_mode(&sb.inside("/run/systemg/privdrop/control.sock")),
        (0o660, 0, g)
    );
    assert_eq!(
        owner_mode(&sb.inside("/var/lib/systemg/privdrop")),
        (0o750, 65534, g)
    );
    // State and logs are written after the drop.
    wait_until("state.json written by the dropped supervisor", T, || {
        std::fs::metadata(sb.inside("/var/lib/systemg/privdrop/state.json"))
            .is_ok_and(|m| m.uid() == 65534)
    });
    wait_until("web's output in its log", T, || {
        std::fs::read_to_string(sb.inside("/var/log/systemg/privdrop/web.stdout.log"))
            .is_ok_and(|t| t.contains("dropped"))
    });
    // The user it dropped to does not gain control of it.
    let out = sb.sysg(NOBODY, &["stop"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(one_line(&out).contains("permission denied"));
    // Root still does.
    let web = sb.service_pid("web");
    assert_ok(&sb.sysg(&As::Root, &["stop"]), "stop as root");
    assert!(!alive(web));
    wait_until("the supervisor to exit", T, || !alive(sup));

    // Fields the dropped user cannot apply are refused up front, naming the user.
    std::fs::write(
        &sb.config,
        "version: \"1\"\nproject: privdrop\nservices:\n  web:\n    command: x\n    user: nobody\n    capabilities: [CAP_NET_BIND_SERVICE]\n",
    )
    .unwrap();
    let out = sb.start(&["--drop-privileges"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("systemg.yaml:7:5: error: services.web.capabilities: grants CAP_NET_BIND_SERVICE, which needs root; the supervisor runs as uid 65534 (nobody) after --drop-privileges"),
        "{err}"
    );
}

#[test]
fn services_running_as_another_user_spawn_through_their_socket() {
    if let Some(why) = skip() {
        println!("skipped: {why}");
        return;
    }
    // The service (as nobody) runs `sysg spawn` from the sandbox's directory (0755): the
    // checkout's own path may not be reachable by other users.
    let services = "  web:\n    user: nobody\n    command: |\n      ./sysg spawn --name kid -- sleep 1000 > out/kid.pid 2> out/kid.err\n      exec sleep 1000\n    spawn:\n      mode: dynamic\n";
    let mut sb = Sandbox::new("sysspawn", true, services);
    let sysg = sb.dir.path().join("sysg");
    std::fs::copy(sysg_bin(), &sysg).unwrap();
    std::fs::set_permissions(&sysg, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out_dir = sb.dir.path().join("out");
    std::fs::create_dir(&out_dir).unwrap();
    std::fs::set_permissions(&out_dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    assert_ok(&sb.start(&[]), "start");
    let kid_pid = out_dir.join("kid.pid");
    wait_until("the child's pid", T, || {
        std::fs::read_to_string(&kid_pid).is_ok_and(|s| s.ends_with('\n'))
    });
    let kid: u32 = std::fs::read_to_string(&kid_pid)
        .unwrap()
        .trim()
        .parse()
        .unwrap_or_else(|_| {
            panic!(
                "no pid; stderr: {}",
                std::fs::read_to_string(out_dir.join("kid.err")).unwrap_or_default()
            )
        });
    // The child runs as the service's user, tracked under it.
    assert_eq!(status_field(kid, "Uid"), "65534\t65534\t65534\t65534");
    let st = sb.status(&As::Root);
    let web = st["services"]
        .as_array()
        .and_then(|a| a.iter().find(|s| s["name"] == "web"))
        .cloned()
        .expect("web");
    assert_eq!(web["children"][0]["name"], "kid", "{web}");
    assert_eq!(web["children"][0]["pid"], kid, "{web}");
    // The services' socket is open to everyone, its directory only passable; the control
    // socket stays root's and the group's.
    let g = sb.gid.unwrap();
    assert_eq!(
        owner_mode(&sb.inside("/run/systemg/sysspawn/spawn.sock")).0,
        0o666
    );
    assert_eq!(
        owner_mode(&sb.inside("/run/systemg/sysspawn/control.sock")),
        (0o660, 0, g)
    );
    assert_eq!(
        owner_mode(&sb.inside("/run/systemg/sysspawn")).0 & 0o007,
        0o001
    );
    // It takes nothing but `spawn`...
    let mut s =
        std::os::unix::net::UnixStream::connect(sb.inside("/run/systemg/sysspawn/spawn.sock"))
            .expect("connect");
    use std::io::{BufRead, Write};
    s.write_all(b"{\"v\":1,\"cmd\":\"shutdown\"}\n").unwrap();
    let mut answer = String::new();
    std::io::BufReader::new(&s).read_line(&mut answer).unwrap();
    assert!(
        answer.contains("this socket only takes `spawn` from services"),
        "{answer}"
    );
    // ...and only from a process of a service: the same user outside it is refused.
    let mut c = Command::new("nsenter");
    c.arg("-t")
        .arg(sb.pid().to_string())
        .arg("-m")
        .args([
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
        ])
        .arg(&sysg)
        .args(["spawn", "--name", "intruder", "--", "sleep", "1000"])
        .env("SYSG_SOCKET", "/run/systemg/sysspawn/spawn.sock")
        .env("SYSG_PROJECT", "sysspawn")
        .stdin(Stdio::null());
    let out = run_bounded(c, Duration::from_secs(60));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let st = sb.status(&As::Root);
    assert!(!st.to_string().contains("intruder"), "{st}");
    assert_ok(&sb.sysg(&As::Root, &["stop"]), "stop");
    assert!(!alive(kid));
}

#[test]
fn sys_status_as_a_user_names_the_config_and_the_permission() {
    if let Some(why) = skip() {
        println!("skipped: {why}");
        return;
    }
    let sb = Sandbox::new("privnone", false, WEB);
    let etc = sb.inside("/etc/systemg");
    std::fs::write(
        etc.join("systemg.yaml"),
        "version: \"1\"\nproject: frometc\nservices:\n  a:\n    command: x\n",
    )
    .unwrap();
    std::fs::set_permissions(&etc, std::fs::Permissions::from_mode(0o700)).unwrap();
    let mut c = Command::new("nsenter");
    c.arg("-t")
        .arg(sb.pid().to_string())
        .args(["-m", "--wd=/"])
        .args([
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
        ])
        .arg(sysg_bin())
        .args(["--sys", "status"])
        .env("NO_COLOR", "1");
    let out = run_bounded(c, Duration::from_secs(30));
    let err = one_line(&out);
    assert_ne!(out.status.code(), Some(0), "{err}");
    assert!(
        err.contains("cannot read /etc/systemg/systemg.yaml: permission denied"),
        "{err}"
    );
    assert!(!err.contains("no systemg.yaml here"), "{err}");
}
