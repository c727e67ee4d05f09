//! The process backend against real processes: identity, capabilities, limits, network and
//! pid isolation, the shell-less start, the fork path without clone3, sockets on that path.

use super::*;

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

#[test]
fn user_group_limits_and_capabilities_are_applied() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let Ok(Some(nobody)) = nix::unistd::User::from_name("nobody") else {
        eprintln!("skipped: no user `nobody`");
        return;
    };
    let mut h = harness(true);
    let mut s = h.sh(
        "privs",
        "id -u; id -g; ulimit -n; nice; grep Cpus_allowed_list /proc/self/status; \
         grep CapAmb /proc/self/status; grep CapEff /proc/self/status; id -G",
    );
    s.user = Some("nobody".into());
    s.supplementary_groups = vec!["0".into()];
    s.limits.nofile = Some(crate::config::schema::Size::Value(1234));
    s.limits.nice = Some(5);
    s.limits.cpu_affinity = Some(vec![0]);
    s.capabilities = Some(vec!["CAP_NET_BIND_SERVICE".into()]);
    h.backend.start(&s).unwrap();
    let lines: Vec<String> = h
        .lines_until("privs", 8)
        .into_iter()
        .map(|(k, l)| {
            assert_eq!(k, Kind::Stdout, "{l}");
            l
        })
        .collect();
    assert_eq!(lines[0], nobody.uid.to_string());
    assert_eq!(lines[1], nobody.gid.to_string());
    assert_eq!(lines[2], "1234");
    assert_eq!(lines[3], "5");
    assert!(lines[4].ends_with("\t0"), "{lines:?}");
    assert!(lines[5].ends_with("0000000000000400"), "{lines:?}");
    assert!(lines[6].ends_with("0000000000000400"), "{lines:?}");
    assert!(lines[7].split(' ').any(|g| g == "0"), "{lines:?}");
    assert_eq!(h.exited("privs").1, ExitStatus::Code(0));
}

#[test]
fn network_isolation_leaves_only_loopback() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let mut h = harness(true);
    let mut s = h.sh(
        "netns",
        "tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '",
    );
    s.isolation.network = true;
    s.isolation.mount = true;
    match h.backend.start(&s) {
        Ok(_) => {}
        Err(e) => {
            eprintln!("skipped: namespaces unavailable here: {e}");
            return;
        }
    }
    assert_eq!(h.lines_until("netns", 1), vec![(Kind::Stdout, "lo".into())]);
    assert_eq!(h.exited("netns").1, ExitStatus::Code(0));
}

#[test]
fn cgroup_limits_are_written_or_refused() {
    let mut h = harness(true);
    let mut s = h.spec("limited", &["sleep", "1000"]);
    s.limits.cgroup.memory_max = Some(crate::config::schema::Size::Value(64 << 20));
    match h.backend.start(&s) {
        Ok(_) => {
            let rec = h.backend.records().remove(0);
            let dir = PathBuf::from(rec.extra["cgroup"].as_str().unwrap());
            let v = std::fs::read_to_string(dir.join("memory.max")).unwrap();
            assert_eq!(v.trim(), (64u64 << 20).to_string());
            h.backend.kill("limited").unwrap();
            h.exited("limited");
        }
        Err(e) => {
            assert!(e.to_string().contains("limits.cgroup"), "{e}");
            assert!(h.backend.records().is_empty());
        }
    }
}

/// `Cap*:` lines of /proc/PID/status.
fn cap_lines(pid: &str) -> Vec<String> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .filter(|l| l.starts_with("Cap"))
        .map(str::to_string)
        .collect()
}

#[test]
fn a_plain_service_keeps_the_supervisors_capabilities() {
    let mut h = harness(true);
    let pid = h
        .backend
        .start(&h.spec("plain", &["sleep", "1000"]))
        .unwrap();
    // Wait for the exec: before it, /proc shows the forked copy of this process.
    wait_until("the exec", || {
        std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "sleep")
    });
    let mine = cap_lines("self");
    let theirs = cap_lines(&pid.to_string());
    // Root's exec recomputes the permitted and effective sets from the bounding set; for a
    // supervisor whose sets are all the bounding set (a root shell) nothing changes.
    let field = |v: &[String], k: &str| v.iter().find(|l| l.starts_with(k)).cloned();
    assert_eq!(field(&theirs, "CapBnd"), field(&mine, "CapBnd"));
    assert_eq!(field(&theirs, "CapAmb"), field(&mine, "CapAmb"));
    if is_root()
        && field(&mine, "CapEff").map(|l| l.replace("CapEff", ""))
            == field(&mine, "CapBnd").map(|l| l.replace("CapBnd", ""))
    {
        assert_eq!(field(&theirs, "CapEff"), field(&mine, "CapEff"));
    }
    h.backend.kill("plain").unwrap();
    h.exited("plain");
}

#[test]
fn a_capability_the_supervisor_lacks_is_refused() {
    let bnd = cap_lines("self")
        .into_iter()
        .find_map(|l| l.strip_prefix("CapBnd:").map(|v| v.trim().to_string()))
        .and_then(|v| u64::from_str_radix(&v, 16).ok())
        .unwrap();
    let Some(missing) = (0..=40u32).find(|c| bnd & (1 << c) == 0) else {
        eprintln!("skipped: this process holds every capability");
        return;
    };
    let name = crate::config::caps::CAPABILITIES[missing as usize];
    let mut h = harness(true);
    let mut s = h.spec("cap", &["true"]);
    s.capabilities = Some(vec![name.to_string()]);
    let e = h.backend.start(&s).unwrap_err().to_string();
    assert!(
        e.contains(&format!(
            "capabilities: {name}: the supervisor does not hold"
        )),
        "{e}"
    );
}

#[test]
fn raising_a_hard_limit_needs_cap_sys_resource() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit into the struct we own.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NPROC, &mut lim) }, 0);
    if lim.rlim_max == libc::RLIM_INFINITY {
        eprintln!("skipped: RLIMIT_NPROC has no hard limit here");
        return;
    }
    let want = lim.rlim_max + 1;
    let mut h = harness(true);
    let mut s = h.spec("nproc", &["sleep", "1000"]);
    s.limits.nproc = Some(crate::config::schema::Size::Value(want));
    let has_resource = std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .is_some_and(|m| m & (1 << 24) != 0);
    match h.backend.start(&s) {
        Ok(pid) => {
            assert!(has_resource, "raised without CAP_SYS_RESOURCE");
            let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
            let line = limits
                .lines()
                .find(|l| l.starts_with("Max processes"))
                .unwrap();
            assert!(line.contains(&want.to_string()), "{line}");
            h.backend.kill("nproc").unwrap();
            h.exited("nproc");
        }
        Err(e) => {
            assert!(!has_resource, "{e}");
            let e = e.to_string();
            assert!(
                e.contains("limits.nproc") && e.contains("CAP_SYS_RESOURCE"),
                "{e}"
            );
        }
    }
}

/// `NSpid:` of a process: its pid in each namespace, outermost first.
fn nspid(pid: u32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("NSpid:"))
        .map(|v| {
            v.split_whitespace()
                .filter_map(|x| x.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn pid_isolation_makes_the_service_pid_1_and_keeps_its_exit_status() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    for mount in [true, false] {
        let mut h = harness(true);
        let ready = h.path("ready");
        // PID 1 ignores signals it has no handler for: trap TERM to exit with a code.
        let script = format!(
            "trap 'exit 3' TERM; echo $$; ls /proc | grep -c '^[0-9]'; touch {}; sleep 1000 & wait",
            ready.display()
        );
        let mut s = h.sh("pidns", &script);
        s.isolation.pid = true;
        s.isolation.mount = mount;
        let pid = h.backend.start(&s).unwrap();
        wait_until("the service to be ready", || ready.exists());
        assert_eq!(nspid(pid), vec![pid, 1], "mount={mount}");
        let ours = std::fs::read_link("/proc/self/ns/pid").unwrap();
        assert_ne!(
            std::fs::read_link(format!("/proc/{pid}/ns/pid")).unwrap(),
            ours
        );
        // The supervisor's own pid namespace for later children is untouched.
        assert_eq!(
            std::fs::read_link("/proc/self/ns/pid_for_children").unwrap(),
            ours
        );
        let lines = h.lines_until("pidns", 2);
        assert_eq!(lines[0], (Kind::Stdout, "1".to_string()));
        if mount {
            // A fresh /proc shows the namespace only: the shell, sleep, ls, grep.
            let n: u32 = lines[1].1.parse().unwrap();
            assert!(n <= 4, "{lines:?}");
        }
        assert_eq!(h.backend.records()[0].pid, pid);
        h.backend.signal("pidns", libc::SIGTERM).unwrap();
        assert_eq!(h.exited("pidns"), (pid, ExitStatus::Code(3)));
        wait_until("the service to be reaped", || {
            proc_start_time(pid).is_none()
        });
    }
}

#[test]
fn pid_isolation_kill_and_failures() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let mut h = harness(false);
    let mut s = h.spec("pid1", &["sleep", "1000"]);
    s.isolation.pid = true;
    let pid = h.backend.start(&s).unwrap();
    assert_eq!(nspid(pid), vec![pid, 1]);
    // Process-group tracking: the unit is its own session, as without isolation.
    assert_eq!(procfs::stat(pid).unwrap().session, pid);
    h.backend.kill("pid1").unwrap();
    assert_eq!(h.exited("pid1"), (pid, ExitStatus::Signal(libc::SIGKILL)));

    // A failure after the second fork still names the field and leaves nothing behind.
    let mut s = h.spec("pid1", &["true"]);
    s.isolation.pid = true;
    s.limits.cpu_affinity = Some(vec![1000]);
    let e = h.start_failure(&s);
    assert!(e.contains("limits.cpu_affinity"), "{e}");
    let mut s = h.spec("pid1", &["/nonexistent/program-xyz"]);
    s.isolation.pid = true;
    let e = h.backend.start(&s).unwrap_err().to_string();
    assert!(e.contains("program-xyz"), "{e}");
    assert!(h.backend.records().is_empty());
}

#[test]
fn a_plain_command_runs_without_the_shell() {
    let mut h = harness(true);
    let pid = h.backend.start(&h.sh("plain", "exec sleep 1000")).unwrap();
    wait_until("sleep to run", || comm(pid) == "sleep");
    // No shell in between: the unit's main process is the program itself.
    assert_eq!(
        std::fs::read_link(format!("/proc/{pid}/exe")).unwrap(),
        std::fs::canonicalize(super::spawn::tests_support::which("sleep")).unwrap()
    );
    h.backend.kill("plain").unwrap();
    h.exited("plain");
    // Anything the shell must interpret still goes through it.
    let pid = h
        .backend
        .start(&h.sh("shell", "sleep 1000; exit 3"))
        .unwrap();
    wait_until("the shell to run", || {
        comm(pid) != "sysg" && !comm(pid).is_empty()
    });
    assert_ne!(comm(pid), "sleep");
    h.backend.kill("shell").unwrap();
    h.exited("shell");
    // A plain command whose program is not found is left to the shell, which says so.
    let pid = h
        .backend
        .start(&h.sh("nf", "no-such-program-xyz 1"))
        .unwrap();
    assert_eq!(h.exited("nf"), (pid, ExitStatus::Code(127)));
    let lines = h.lines_until("nf", 1);
    assert!(lines[0].1.contains("no-such-program-xyz"), "{lines:?}");
}

#[test]
fn without_clone3_the_child_is_forked_and_waited_for() {
    let _fallback = super::spawn::tests_support::ForceFork::new();
    let mut h = harness(true);
    let pid = h
        .backend
        .start(&h.spec("forked", &["sleep", "1000"]))
        .unwrap();
    // Waited for: it has run its exec already.
    assert_eq!(comm(pid), "sleep");
    h.backend.signal("forked", libc::SIGTERM).unwrap();
    assert_eq!(h.exited("forked"), (pid, ExitStatus::Signal(libc::SIGTERM)));
    let mut s = h.spec("affinity", &["true"]);
    s.limits.cpu_affinity = Some(vec![1000]);
    let e = h.backend.start(&s).unwrap_err().to_string();
    assert!(e.contains("limits.cpu_affinity"), "{e}");
    // The child that gave up was reaped, not left a zombie.
    assert!(h.backend.records().is_empty());
}

#[test]
fn sockets_reach_the_child_as_sd_listen_fds_on_the_fork_path_too() {
    let _fallback = super::spawn::tests_support::ForceFork::new();
    let mut h = harness(true);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let mut s = h.sh(
        "sk",
        "echo \"$LISTEN_FDS $LISTEN_PID $$ $LISTEN_FDNAMES\"; exec sleep 1000",
    );
    s.sockets = vec![crate::config::sockets::ListenSocket {
        listen: crate::config::sockets::ListenAddr::Tcp(
            format!("127.0.0.1:{port}").parse().unwrap(),
        ),
        name: "web".into(),
    }];
    let pid = h.backend.start(&s).unwrap();
    let lines = h.lines_until("sk", 1);
    assert_eq!(lines[0].1, format!("1 {pid} {pid} web"), "{lines:?}");
    let fd3 = std::fs::read_link(format!("/proc/{pid}/fd/3")).unwrap();
    assert!(fd3.to_string_lossy().starts_with("socket:["), "{fd3:?}");
    // The supervisor listens: a connection is queued even before the child accepts.
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());
    h.backend.signal("sk", libc::SIGTERM).unwrap();
    assert_eq!(h.exited("sk"), (pid, ExitStatus::Signal(libc::SIGTERM)));
}
