//! Issue 23, items 2, 3, 5 and 13: a less privileged user plants symbolic links (and swaps
//! files for them) where a root supervisor or CLI works, and the root-only victim file must
//! come out unchanged, with the command either working safely or failing with a clear error.
//! The `--sys` tests run in the sandbox of tests/common/sandbox.rs; the attacker is `nobody`,
//! played with `setpriv`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failed test
#![cfg(target_os = "linux")]

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::sandbox::*;
use common::*;

const CONTENT: &[u8] = b"root-only secret\n";

/// A root `0600` file with known content.
fn make_victim(path: &Path) {
    std::fs::write(path, CONTENT).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// The victim is as it was made: same content, root's, `0600`.
fn assert_untouched(path: &Path) {
    let m = std::fs::metadata(path).unwrap();
    assert_eq!(
        (m.uid(), m.gid(), m.mode() & 0o7777),
        (0, 0, 0o600),
        "{} changed owner or mode",
        path.display()
    );
    assert_eq!(
        std::fs::read(path).unwrap(),
        CONTENT,
        "{} changed",
        path.display()
    );
}

/// `sh -c script` as nobody, inside the sandbox when there is one.
fn as_nobody(sb: Option<&Sandbox>, script: &str) -> Command {
    let mut c = match sb {
        Some(sb) => {
            let mut c = Command::new("nsenter");
            c.arg("-t")
                .arg(sb.pid().to_string())
                .args(["-m", "--", "setpriv"]);
            c
        }
        None => Command::new("setpriv"),
    };
    c.args([
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        "/bin/sh",
        "-c",
        script,
    ])
    .stdin(Stdio::null());
    c
}

fn nobody(sb: Option<&Sandbox>, script: &str) -> Output {
    run_bounded(as_nobody(sb, script), Duration::from_secs(30))
}

const DROP: &str = "  web:\n    command: \"echo up; exec sleep 1000\"\n    user: nobody\n";

/// Start with --drop-privileges and stop again, so that the directories exist with the
/// layout a dropped supervisor leaves.
fn round(sb: &mut Sandbox) {
    assert_ok(&sb.start(&["--drop-privileges"]), "start --drop-privileges");
    assert_ok(&sb.sysg(&As::Root, &["stop"]), "stop");
}

#[test]
fn the_pid_file_lock_and_sockets_are_out_of_the_services_users_reach() {
    if let Some(why) = skip() {
        println!("skipped: {why}");
        return;
    }
    let mut sb = Sandbox::new("secrun", true, DROP);
    let victim = sb.inside("/etc/systemg/victim");
    make_victim(&victim);
    round(&mut sb);
    let run = "/run/systemg/secrun";
    // Root's, passable by the services' user (to reach its FIFO directory), not writable.
    let (mode, uid, _) = owner_mode(&sb.inside(run));
    assert_eq!((mode & 0o7, uid), (0o1, 0), "{mode:o}");
    let (mode, uid, _) = owner_mode(&sb.inside(&format!("{run}/fifo")));
    assert_eq!((mode, uid), (0o700, 65534));
    // A dropped supervisor cannot remove its pid file and sockets from root's directory;
    // root's `stop` did once the supervisor was gone.
    assert!(!sb.inside(&format!("{run}/supervisor.pid")).exists());
    assert!(!sb.inside(&format!("{run}/control.sock")).exists());
    // The attack: links at the pid file, the lock and the socket.
    for name in ["supervisor.pid", "supervisor.lock", "control.sock"] {
        let out = nobody(
            Some(&sb),
            &format!("rm -f {run}/{name}; ln -s /etc/systemg/victim {run}/{name}"),
        );
        assert!(!out.status.success(), "nobody planted {name}");
        assert!(
            stderr(&out).contains("Permission denied"),
            "{}",
            stderr(&out)
        );
    }
    // Running as the services' user, the supervisor cannot either.
    assert_ok(&sb.start(&["--drop-privileges"]), "start again");
    let sup = sb.supervisor_pid().expect("pid file");
    assert_eq!(
        proc_status_field(&sup.to_string(), "Uid").as_deref(),
        Some("65534\t65534\t65534\t65534")
    );
    assert_eq!(sb.status(&As::Root)["services"][0]["state"], "running");
    assert_ok(&sb.sysg(&As::Root, &["stop"]), "stop");
    assert_untouched(&victim);
}

#[test]
fn a_linked_supervisor_log_or_state_file_is_never_followed_by_root() {
    if let Some(why) = skip() {
        println!("skipped: {why}");
        return;
    }
    let mut sb = Sandbox::new("seclog", false, DROP);
    let victim = sb.inside("/etc/systemg/victim");
    make_victim(&victim);
    round(&mut sb);
    let (log, state) = ("/var/log/systemg/seclog", "/var/lib/systemg/seclog");
    // The services' user owns these: it may plant whatever it likes.
    let out = nobody(
        Some(&sb),
        &format!("ln -sfn /etc/systemg/victim {log}/supervisor.log"),
    );
    assert_ok(&out, "planting supervisor.log");
    // Root's CLI refuses to open the log for the detached supervisor, and says why.
    let out = sb.start(&["--drop-privileges"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = one_line(&out);
    assert!(
        err.contains(&format!(
            "opening {log}/supervisor.log: a symbolic link, which is not followed"
        )),
        "{err}"
    );
    assert_untouched(&victim);

    // A FIFO there is refused at once instead of hanging root's CLI.
    let out = nobody(
        Some(&sb),
        &format!("rm {log}/supervisor.log && mkfifo {log}/supervisor.log"),
    );
    assert_ok(&out, "planting a FIFO");
    let out = sb.start(&["--drop-privileges"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("not a regular file"),
        "{}",
        stderr(&out)
    );

    // The state file (read by root before it drops) and leftovers of the old fixed temporary
    // names: set aside, or replaced, never followed.
    let out = nobody(
        Some(&sb),
        &format!(
            "rm {log}/supervisor.log && ln -sfn /etc/systemg/victim {state}/state.json && \
             ln -sfn /etc/systemg/victim {state}/state.json.tmp && \
             ln -sfn /etc/systemg/victim {log}/web.stdout.log.1.gz.tmp && \
             ln -sfn /etc/systemg/victim {state}/not-a-file"
        ),
    );
    assert_ok(&out, "planting state links");
    assert_ok(
        &sb.start(&["--drop-privileges"]),
        "start with planted links",
    );
    assert_eq!(sb.status(&As::Root)["services"][0]["state"], "running");
    let set_aside = std::fs::read_dir(sb.inside(state))
        .unwrap()
        .flatten()
        .any(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("state.json.corrupt-")
        });
    assert!(set_aside, "the linked state.json was not set aside");
    wait_until("the dropped supervisor's state.json", T, || {
        std::fs::symlink_metadata(sb.inside(&format!("{state}/state.json")))
            .is_ok_and(|m| m.is_file() && m.uid() == 65534)
    });
    assert_ok(&sb.sysg(&As::Root, &["stop"]), "stop");
    assert_untouched(&victim);
}

/// Swaps 8 names in a directory between a regular file and a link to the victim, forever,
/// each swap one `renameat2(RENAME_EXCHANGE)`, so both kinds are always there.
const SWAPPER: &str = r#"
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
os.chdir(sys.argv[1])
pairs = []
for i in range(8):
    n, l = "n%d" % i, "n%d.l" % i
    for x in (n, l):
        try:
            os.unlink(x)
        except FileNotFoundError:
            pass
    open(n, "w").close()
    os.symlink("/etc/systemg/victim", l)
    pairs.append((n.encode(), l.encode()))
while True:
    for n, l in pairs:
        libc.renameat2(-100, n, -100, l, 2)
"#;

#[test]
fn names_swapped_between_files_and_links_are_never_chowned_through() {
    if let Some(why) = skip() {
        println!("skipped: {why}");
        return;
    }
    let mut sb = Sandbox::new("secswap", false, DROP);
    let victim = sb.inside("/etc/systemg/victim");
    make_victim(&victim);
    round(&mut sb);
    // The attacker swaps names in both directories root gives to it between regular files
    // and links to the victim, as fast as it can, for as long as root starts and stops the
    // project: a check by name followed by a chown by name loses this race every round.
    let swapper = sb.dir.path().join("swap.py");
    std::fs::write(&swapper, SWAPPER).unwrap();
    let script = format!(
        "python3 {s} /var/log/systemg/secswap & python3 {s} /var/lib/systemg/secswap & wait",
        s = swapper.display()
    );
    // Its own process group, so that the loops go with it.
    let mut attacker = as_nobody(Some(&sb), &script)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap();
    let group = nix::unistd::Pid::from_raw(attacker.id() as i32);
    let log = sb.inside("/var/log/systemg/secswap");
    wait_until("the attacker to be swapping", T, || {
        std::fs::symlink_metadata(log.join("n7.l")).is_ok()
    });
    for i in 0..4 {
        assert_ok(
            &sb.start(&["--drop-privileges"]),
            &format!("start, round {i}"),
        );
        assert_ok(&sb.sysg(&As::Root, &["stop"]), &format!("stop, round {i}"));
        assert_untouched(&victim);
    }
    let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
    let _ = attacker.wait();
}

#[test]
fn blue_green_state_path_in_a_users_directory_is_not_written_through() {
    if let Some(why) = skip() {
        println!("skipped: {why}");
        return;
    }
    let p = Project::new(
        "version: \"1\"\nproject: secbg\nservices:\n  web:\n    command: \"exec sleep 1000\"\n    deployment:\n      strategy: blue_green\n      grace_period: 100ms\n      blue_green:\n        env_var: SLOT\n        slots: [blue, green]\n        state_path: state/web.slot.json\n",
    );
    // nobody may reach the project and owns the state directory.
    for d in [p.home.path(), p.dir.as_path()] {
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let state = p.dir.join("state");
    std::fs::create_dir(&state).unwrap();
    std::os::unix::fs::chown(&state, Some(65534), Some(65534)).unwrap();
    let victim = p.dir.join("victim");
    make_victim(&victim);
    assert_ok(&p.sysg(&["start", "-d"]), "start");
    let out = nobody(
        None,
        &format!(
            "ln -sfn {v} {s}/web.slot.json.tmp",
            v = victim.display(),
            s = state.display()
        ),
    );
    assert_ok(&out, "planting the temporary name");
    assert_ok(&p.sysg(&["restart", "--service", "web"]), "restart web");
    let slot = std::fs::symlink_metadata(state.join("web.slot.json")).unwrap();
    assert!(slot.is_file());
    let text = std::fs::read_to_string(state.join("web.slot.json")).unwrap();
    assert!(text.contains("\"slot\":\"green\""), "{text}");
    assert_untouched(&victim);
    // The slot file itself a link: replaced, not followed.
    std::fs::remove_file(state.join("web.slot.json")).unwrap();
    assert_ok(
        &nobody(
            None,
            &format!(
                "ln -sfn {v} {s}/web.slot.json",
                v = victim.display(),
                s = state.display()
            ),
        ),
        "planting the slot file",
    );
    assert_ok(
        &p.sysg(&["restart", "--service", "web"]),
        "restart web again",
    );
    assert!(std::fs::symlink_metadata(state.join("web.slot.json"))
        .unwrap()
        .is_file());
    assert_untouched(&victim);
    assert_ok(&p.sysg(&["stop"]), "stop");
}

/// A HOME in a shared sticky directory: root's own state root there.
fn shared_home() -> (tempfile::TempDir, PathBuf) {
    let t = tempfile::Builder::new()
        .prefix("sysg-shared-")
        .tempdir()
        .unwrap();
    std::fs::set_permissions(t.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let home = t.path().join("shared");
    std::fs::create_dir(&home).unwrap();
    std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o1777)).unwrap();
    std::fs::write(
        t.path().join("systemg.yaml"),
        "version: \"1\"\nproject: xs\nservices:\n  web:\n    command: \"exec sleep 1000\"\n",
    )
    .unwrap();
    (t, home)
}

fn start_in(t: &Path, home: &Path) -> Output {
    let mut c = Command::new(sysg_bin());
    c.args(["start", "-d"])
        .current_dir(t)
        .env("HOME", home)
        .env_remove("XDG_STATE_HOME")
        .env_remove("XDG_RUNTIME_DIR")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null());
    run_bounded(c, Duration::from_secs(60))
}

#[test]
fn a_state_root_prepared_by_another_user_is_refused() {
    if let Some(why) = skip() {
        println!("skipped: {why}");
        return;
    }
    let (t, home) = shared_home();
    let victim = t.path().join("victim");
    make_victim(&victim);
    let out = nobody(
        None,
        &format!(
            "mkdir -p {h}/.local/share/systemg/xs/logs && ln -s {v} {h}/.local/share/systemg/xs/logs/supervisor.log",
            h = home.display(),
            v = victim.display()
        ),
    );
    assert_ok(&out, "nobody prepares the state root");
    let out = start_in(t.path(), &home);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let err = one_line(&out);
    assert!(
        err.contains(&format!(
            "{}/.local belongs to uid 65534 (nobody), not to uid 0 (root)",
            home.display()
        )),
        "{err}"
    );
    assert_untouched(&victim);

    // Root's own directories above, another user's below: refused just the same.
    std::fs::remove_dir_all(home.join(".local")).unwrap();
    std::fs::create_dir_all(home.join(".local/share/systemg/xs/logs")).unwrap();
    for d in [
        ".local",
        ".local/share",
        ".local/share/systemg",
        ".local/share/systemg/xs",
    ] {
        std::fs::set_permissions(home.join(d), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let logs = home.join(".local/share/systemg/xs/logs");
    std::os::unix::fs::chown(&logs, Some(65534), Some(65534)).unwrap();
    assert_ok(
        &nobody(
            None,
            &format!(
                "ln -s {} {}/supervisor.log",
                victim.display(),
                logs.display()
            ),
        ),
        "planting in logs",
    );
    let out = start_in(t.path(), &home);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let err = one_line(&out);
    assert!(
        err.contains(&format!("{} belongs to uid 65534 (nobody)", logs.display())),
        "{err}"
    );
    assert_untouched(&victim);

    // Once it is root's again, the start works.
    std::fs::remove_file(logs.join("supervisor.log")).unwrap();
    std::os::unix::fs::chown(&logs, Some(0), Some(0)).unwrap();
    assert_ok(&start_in(t.path(), &home), "start in a clean state root");
    let mut c = Command::new(sysg_bin());
    c.arg("stop")
        .current_dir(t.path())
        .env("HOME", &home)
        .env_remove("XDG_STATE_HOME")
        .stdin(Stdio::null());
    assert_ok(&run_bounded(c, Duration::from_secs(60)), "stop");
}
