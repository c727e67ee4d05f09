//! The pure translation of a `UnitSpec` into the `a(sv)` property list of
//! `StartTransientUnit`.
//!
//! Every value is built with the exact D-Bus type systemd expects when *writing* the property
//! (`t` vs `i` vs `u` matters: a wrong type is rejected with "Invalid argument"). The golden tests
//! below pin each signature.
//!
//! Deliberately absent:
//! - `Restart=`: restart policy, backoff and `max_restarts` belong to the core, which must see
//!   every exit to drive dependencies, health gating and webhooks the same way on both backends.
//!   A unit that systemd restarted by itself would change its MainPID behind the core's back.
//! - `PrivateTmp=` for `isolation.mount`: the process backend's mount isolation gives a private
//!   mount table but keeps the host's /tmp; only `sandbox.private_tmp` sends it
//!   (`properties_sandbox.rs`, which both backends implement).
//! - any `false` boolean: old systemd versions mishandle some explicit `false` values, and false
//!   is the default anyway.

use zbus::zvariant::Value;

use crate::config::schema::Size;
use crate::spec::UnitSpec;

use super::naming;

/// A property value systemd would refuse, named so the user knows which setting to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("property {property}: {message}")]
pub struct PropertyError {
    /// The systemd property name.
    pub property: &'static str,
    /// What is wrong with the value.
    pub message: String,
}

/// One `(name, value)` entry of the property list.
pub type Property = (String, Value<'static>);

/// The bit mask systemd expects for `AmbientCapabilities`/`CapabilityBoundingSet`.
pub fn capability_mask(names: &[String]) -> Result<u64, PropertyError> {
    let mut mask = 0u64;
    for name in names {
        // One capability table for the whole program: config validation's.
        let bit = crate::config::caps::canonical(name)
            .and_then(crate::config::caps::number)
            .ok_or_else(|| PropertyError {
                property: "AmbientCapabilities",
                message: format!("unknown capability `{name}`"),
            })?;
        mask |= 1u64 << bit;
    }
    Ok(mask)
}

/// The `ay` bit mask of `CPUAffinity`: byte `i`, bit `j` is CPU `8i+j`.
pub fn cpu_mask(cpus: &[u32]) -> Result<Vec<u8>, PropertyError> {
    // systemd caps CPU sets at 8192 CPUs (CPU_SET_MAX); refuse before it does, with a clearer error.
    const MAX_CPUS: u32 = 8192;
    let mut mask = Vec::new();
    for &cpu in cpus {
        if cpu >= MAX_CPUS {
            return Err(PropertyError {
                property: "CPUAffinity",
                message: format!("CPU {cpu} is out of range (at most {})", MAX_CPUS - 1),
            });
        }
        let byte = (cpu / 8) as usize;
        if mask.len() <= byte {
            mask.resize(byte + 1, 0);
        }
        mask[byte] |= 1 << (cpu % 8);
    }
    Ok(mask)
}

/// A size in the `t` form systemd uses, where `u64::MAX` means infinity.
fn size(s: Size) -> u64 {
    match s {
        Size::Value(v) => v,
        Size::Unlimited => u64::MAX,
    }
}

fn push(props: &mut Vec<Property>, name: &str, value: Value<'static>) {
    props.push((name.to_string(), value));
}

/// `CPUQuotaPerSecUSec` from a cgroup `cpu.max` quota and period (both µs): the CPU time allowed
/// per second of wall time.
pub fn cpu_quota_per_sec_usec(quota_us: u64, period_us: u64) -> Result<u64, PropertyError> {
    if period_us == 0 {
        return Err(PropertyError {
            property: "CPUQuotaPerSecUSec",
            message: "the cpu_max period must not be 0".into(),
        });
    }
    let per_sec = u128::from(quota_us) * 1_000_000 / u128::from(period_us);
    u64::try_from(per_sec).map_err(|_| PropertyError {
        property: "CPUQuotaPerSecUSec",
        message: format!("cpu_max quota {quota_us} is too large"),
    })
}

/// The text of a systemd environment file holding `env`: `KEY="value"` lines, with the four
/// characters systemd unescapes inside double quotes (`"`, `\`, `` ` ``, `$`) escaped.
pub fn environment_file(env: &[(String, String)]) -> String {
    let mut out = String::new();
    for (k, v) in env {
        out.push_str(k);
        out.push_str("=\"");
        for c in v.chars() {
            if matches!(c, '"' | '\\' | '`' | '$') {
                out.push('\\');
            }
            out.push(c);
        }
        out.push_str("\"\n");
    }
    out
}

/// Replace `Environment` by `EnvironmentFiles` naming `path`: unit properties are readable by
/// every local user (`systemctl show`), a root-only file is not.
pub fn use_environment_file(props: &mut Vec<Property>, path: &str) {
    props.retain(|(k, _)| k != "Environment");
    let files: Vec<(String, bool)> = vec![(path.to_string(), false)];
    push(props, "EnvironmentFiles", Value::from(files));
}

/// The config field a property comes from, for error messages (with a hint where one helps).
pub fn config_field(property: &str) -> Option<&'static str> {
    Some(match property {
        "User" => "user",
        "Group" => "group",
        "SupplementaryGroups" => "supplementary_groups",
        "LimitNOFILE" | "LimitNOFILESoft" => "limits.nofile",
        "LimitNPROC" | "LimitNPROCSoft" => "limits.nproc",
        "LimitMEMLOCK" | "LimitMEMLOCKSoft" => "limits.memlock",
        "Nice" => "limits.nice",
        "CPUAffinity" => "limits.cpu_affinity",
        "MemoryMax" => "limits.cgroup.memory_max",
        "CPUQuotaPerSecUSec" | "CPUQuotaPeriodUSec" => "limits.cgroup.cpu_max",
        "AmbientCapabilities" | "CapabilityBoundingSet" => "capabilities",
        "PrivateNetwork" => "isolation.network",
        "PrivateMounts" => "isolation.mount",
        "PrivatePIDs" => {
            "isolation.pid, which needs systemd 257 or later; the process backend (--backend process) supports it"
        }
        "Environment" => "env",
        "WorkingDirectory" => "working_dir",
        other => return super::properties_sandbox::config_field(other),
    })
}

/// Properties of the transient slice holding a service's spawned children: `MemoryMax` is the
/// tree's `total_memory`, `TasksMax` bounds every task of the tree (see `SpawnGroup`).
pub fn tree_slice_properties(group: &crate::spec::SpawnGroup) -> Vec<Property> {
    let mut p = Vec::new();
    push(
        &mut p,
        "Description",
        Value::from(format!("systemg: children spawned by {}", group.service)),
    );
    if let Some(m) = group.memory_max {
        push(&mut p, "MemoryMax", Value::U64(m));
    }
    if let Some(t) = group.tasks_max {
        push(&mut p, "TasksMax", Value::U64(t));
    }
    p
}

/// `limits.cgroup.*` as `MemoryMax` and `CPUQuota…` (shared by services and scopes).
pub fn cgroup_limits(spec: &UnitSpec, p: &mut Vec<Property>) -> Result<(), PropertyError> {
    let l = &spec.limits.cgroup;
    if let Some(mem) = l.memory_max {
        push(p, "MemoryMax", Value::U64(size(mem)));
    }
    if let Some(cpu) = l.cpu_max {
        // `max` (no quota) is systemd's default: nothing to send.
        if let Some(quota) = cpu.quota_us {
            push(
                p,
                "CPUQuotaPerSecUSec",
                Value::U64(cpu_quota_per_sec_usec(quota, cpu.period_us)?),
            );
            // Keep the period the user chose (systemd would otherwise use 100 ms).
            push(p, "CPUQuotaPeriodUSec", Value::U64(cpu.period_us));
        }
    }
    Ok(())
}

/// `LogRateLimitBurst` of every unit: lines per 30 s before journald drops any.
const LOG_BURST: u32 = 10_000_000;

/// The properties of the transient service for `spec`.
pub fn service_properties(spec: &UnitSpec) -> Result<Vec<Property>, PropertyError> {
    let mut p: Vec<Property> = Vec::new();
    push(
        &mut p,
        "Description",
        Value::from(format!("{} (systemg project {})", spec.name, spec.project)),
    );
    // `Type=exec`, or `notify` with its timeouts (readiness.rs).
    p.extend(super::readiness::properties(spec));

    // A plain command runs without the shell, as on the process backend (`crate::argv`), so
    // that MainPID is the program itself; the path is resolved here, on the unit's PATH.
    let (program, argv) = match crate::argv::direct(spec) {
        Some(d) => (d.path.to_string_lossy().into_owned(), d.argv),
        None => match spec.argv.first() {
            Some(program) => (program.clone(), spec.argv.clone()),
            None => {
                return Err(PropertyError {
                    property: "ExecStart",
                    message: "the command is empty".into(),
                })
            }
        },
    };
    // systemd expands `$VAR`/`${VAR}` in ExecStart arguments itself (even over D-Bus); the
    // process backend passes them through untouched. `$$` is systemd's literal `$`, so a
    // `command: "echo $HOME"` reaches /bin/sh exactly as written on both backends.
    let argv: Vec<String> = argv.iter().map(|a| a.replace('$', "$$")).collect();
    let exec: Vec<(String, Vec<String>, bool)> = vec![(program, argv, false)];
    push(&mut p, "ExecStart", Value::from(exec));

    if !spec.env.is_empty() {
        let env: Vec<String> = spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        push(&mut p, "Environment", Value::from(env));
    }
    if let Some(cwd) = &spec.cwd {
        let cwd = cwd.to_str().ok_or_else(|| PropertyError {
            property: "WorkingDirectory",
            message: format!("{} is not valid UTF-8", cwd.display()),
        })?;
        push(&mut p, "WorkingDirectory", Value::from(cwd.to_string()));
    }
    if let Some(user) = &spec.user {
        push(&mut p, "User", Value::from(user.clone()));
    }
    if let Some(group) = &spec.group {
        push(&mut p, "Group", Value::from(group.clone()));
    }
    if !spec.supplementary_groups.is_empty() {
        push(
            &mut p,
            "SupplementaryGroups",
            Value::from(spec.supplementary_groups.clone()),
        );
    }

    // The config has one value per rlimit: it is both the hard and the soft limit.
    let l = &spec.limits;
    for (name, limit) in [
        ("LimitNOFILE", l.nofile),
        ("LimitNPROC", l.nproc),
        ("LimitMEMLOCK", l.memlock),
    ] {
        if let Some(v) = limit {
            push(&mut p, name, Value::U64(size(v)));
            push(&mut p, &format!("{name}Soft"), Value::U64(size(v)));
        }
    }
    if let Some(nice) = l.nice {
        push(&mut p, "Nice", Value::I32(nice));
    }
    if let Some(cpus) = &l.cpu_affinity {
        push(&mut p, "CPUAffinity", Value::from(cpu_mask(cpus)?));
    }
    cgroup_limits(spec, &mut p)?;

    if let Some(caps) = &spec.capabilities {
        let mask = capability_mask(caps)?;
        push(&mut p, "AmbientCapabilities", Value::U64(mask));
        push(&mut p, "CapabilityBoundingSet", Value::U64(mask));
    }

    let iso = spec.isolation;
    if iso.network {
        push(&mut p, "PrivateNetwork", Value::Bool(true));
    }
    if iso.mount {
        push(&mut p, "PrivateMounts", Value::Bool(true));
    }
    if iso.pid {
        // systemd ≥ 257 only; older managers answer "Unknown assignment", which `start` reports
        // naming this property.
        push(&mut p, "PrivatePIDs", Value::Bool(true));
    }
    p.extend(super::properties_sandbox::sandbox_properties(&spec.sandbox));

    // The core sends the stop signal itself and escalates to SIGKILL after stop_timeout; these
    // make an outside `systemctl stop` behave the same way.
    push(&mut p, "KillMode", Value::from("control-group"));
    push(&mut p, "KillSignal", Value::I32(spec.stop_signal));
    push(
        &mut p,
        "TimeoutStopUSec",
        Value::U64(u64::try_from(spec.stop_timeout.as_micros()).unwrap_or(u64::MAX)),
    );
    // A unit that ended cleanly is unloaded at once; a failed one stays loaded, so that
    // `systemctl --failed` and `systemctl status` show what failed. `start` resets it
    // (ResetFailedUnit) before it creates the next instance under the same name, and
    // `release` resets what is left when the project stops; failed units never pile up.
    push(&mut p, "CollectMode", Value::from("inactive"));
    // A spawned child runs in its tree's slice, which carries the tree's shared limits.
    let slice = match &spec.spawn {
        Some(g) => naming::tree_slice_name(&spec.project, &g.service),
        None => naming::slice_name(&spec.project),
    };
    push(&mut p, "Slice", Value::from(slice));
    push(&mut p, "StandardOutput", Value::from("journal"));
    push(&mut p, "StandardError", Value::from("journal"));
    // Every instance of a service (a deployment's candidate too) logs under the service's name.
    push(
        &mut p,
        "SyslogIdentifier",
        Value::from(crate::spec::service_of(&spec.name).to_string()),
    );
    // journald drops a unit's lines beyond 10,000 per 30 s by default (scaled up a little by
    // free disk space); the process backend keeps every line, and so must this one (bench/run
    // lost 965,000 of 1,000,000 lines). 0 cannot switch it off (systemd ignores a 0 here), so
    // the burst is set far beyond what journald can take in 30 s (~100k lines/s here) yet far
    // below the point where journald's disk-space scaling would overflow it. The stream to
    // journald blocks a writer that outpaces it, so nothing is lost.
    push(&mut p, "LogRateLimitBurst", Value::U32(LOG_BURST));
    Ok(p)
}

/// Timer precision: systemd's default (1 min) would make a per-second schedule meaningless; a
/// second keeps some room for systemd to coalesce wake-ups.
pub const TIMER_ACCURACY_USEC: u64 = 1_000_000;

/// The properties of the transient timer that runs the cron job `spec` on `calendar`
/// (`OnCalendar=` syntax). It starts the service of the same name, created with it as an
/// auxiliary unit from `service_properties`.
pub fn timer_properties(spec: &UnitSpec, calendar: &str) -> Vec<Property> {
    let mut p: Vec<Property> = Vec::new();
    push(
        &mut p,
        "Description",
        Value::from(format!(
            "{} schedule (systemg project {})",
            spec.name, spec.project
        )),
    );
    let calendars: Vec<(String, String)> = vec![("OnCalendar".into(), calendar.to_string())];
    push(&mut p, "TimersCalendar", Value::from(calendars));
    push(&mut p, "AccuracyUSec", Value::U64(TIMER_ACCURACY_USEC));
    // Not `Persistent=`: runs missed while nothing watched are not replayed (and a transient
    // timer would only remember within one boot anyway).
    p
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::time::Duration;

    use super::*;
    use crate::config::schema::{CgroupLimits, CpuMax, Isolation, Limits};
    fn minimal() -> UnitSpec {
        UnitSpec::new(
            "shop",
            "web",
            vec!["/bin/sh".into(), "-c".into(), "exec sleep 100".into()],
        )
    }

    fn full() -> UnitSpec {
        UnitSpec {
            env: vec![("A".into(), "1".into()), ("B".into(), "x y".into())],
            cwd: Some(PathBuf::from("/srv/shop")),
            user: Some("www".into()),
            group: Some("www".into()),
            supplementary_groups: vec!["adm".into(), "video".into()],
            limits: Limits {
                nofile: Some(Size::Value(4096)),
                nproc: Some(Size::Unlimited),
                memlock: Some(Size::Value(65536)),
                nice: Some(-5),
                cpu_affinity: Some(vec![0, 2, 9]),
                cgroup: CgroupLimits {
                    memory_max: Some(Size::Value(512 * 1024 * 1024)),
                    cpu_max: Some(CpuMax {
                        quota_us: Some(50_000),
                        period_us: 100_000,
                    }),
                },
            },
            capabilities: Some(vec!["CAP_NET_BIND_SERVICE".into(), "CAP_SYS_NICE".into()]),
            isolation: Isolation {
                network: true,
                pid: true,
                mount: true,
            },
            stop_signal: 2,
            stop_timeout: Duration::from_millis(2500),
            ..minimal()
        }
    }

    #[test]
    fn spawned_child_goes_to_its_tree_slice() {
        let spec = UnitSpec {
            name: "web/w1".into(),
            spawn: Some(crate::spec::SpawnGroup {
                service: "web".into(),
                child: "w1".into(),
                memory_max: Some(1 << 20),
                tasks_max: Some(64),
            }),
            ..minimal()
        };
        let r = rendered(&service_properties(&spec).unwrap());
        let slice = r.iter().find(|(k, _, _)| k == "Slice").unwrap();
        assert_eq!(slice.2, "\"sysg-shop-web.slice\"");
        let lim = tree_slice_properties(spec.spawn.as_ref().unwrap());
        let lim = rendered(&lim);
        assert!(lim.contains(&("MemoryMax".into(), "t".into(), "1048576".into())));
        assert!(lim.contains(&("TasksMax".into(), "t".into(), "64".into())));
    }

    /// Each property as `(name, signature, value rendered by zvariant)`.
    fn rendered(props: &[Property]) -> Vec<(String, String, String)> {
        props
            .iter()
            .map(|(k, v)| (k.clone(), v.value_signature().to_string(), render(v)))
            .collect()
    }

    /// A plain rendering of the basic values (zvariant's Display adds GVariant type prefixes).
    fn render(v: &Value<'_>) -> String {
        match v {
            Value::U64(n) => n.to_string(),
            Value::I32(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            Value::Str(s) => format!("{:?}", s.as_str()),
            Value::Array(a) => format!("[{}]", a.iter().map(render).collect::<Vec<_>>().join(", ")),
            other => format!("{other}"),
        }
    }

    fn sig_of<'a>(r: &'a [(String, String, String)], name: &str) -> &'a str {
        r.iter()
            .find(|(k, _, _)| k == name)
            .map(|(_, s, _)| s.as_str())
            .unwrap_or_else(|| panic!("no property {name}"))
    }

    fn value_of<'a>(props: &'a [Property], name: &str) -> &'a Value<'static> {
        props
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
            .unwrap_or_else(|| panic!("no property {name}"))
    }

    #[test]
    fn minimal_spec_golden() {
        let props = service_properties(&minimal()).unwrap();
        let names: Vec<&str> = props.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            names,
            [
                "Description",
                "Type",
                "ExecStart",
                "KillMode",
                "KillSignal",
                "TimeoutStopUSec",
                "CollectMode",
                "Slice",
                "StandardOutput",
                "StandardError",
                "SyslogIdentifier",
                "LogRateLimitBurst",
            ],
            "nothing privileged or optional may be sent when nothing is configured"
        );
        let r = rendered(&props);
        let expect = [
            ("Description", "s", "\"web (systemg project shop)\""),
            ("Type", "s", "\"exec\""),
            ("KillMode", "s", "\"control-group\""),
            ("KillSignal", "i", "15"),
            ("TimeoutStopUSec", "t", "10000000"),
            ("CollectMode", "s", "\"inactive\""),
            ("Slice", "s", "\"sysg-shop.slice\""),
            ("StandardOutput", "s", "\"journal\""),
            ("StandardError", "s", "\"journal\""),
            ("SyslogIdentifier", "s", "\"web\""),
            ("LogRateLimitBurst", "u", "uint32 10000000"),
        ];
        for (name, sig, val) in expect {
            let (_, s, v) = r.iter().find(|(k, _, _)| k == name).unwrap();
            assert_eq!((s.as_str(), v.as_str()), (sig, val), "{name}");
        }
        assert_eq!(sig_of(&r, "ExecStart"), "a(sasb)");
        let exec: Vec<(String, Vec<String>, bool)> = value_of(&props, "ExecStart")
            .try_clone()
            .unwrap()
            .try_into()
            .unwrap();
        // `exec sleep 100` is a plain command: the program itself, argv[0] as written.
        let sleep = crate::argv::search_path("sleep", &crate::argv::search_list(&minimal()))
            .expect("sleep on PATH");
        assert_eq!(
            exec,
            vec![(
                sleep.to_string_lossy().into_owned(),
                vec!["sleep".into(), "100".into()],
                false
            )]
        );
    }

    #[test]
    fn shell_forms_keep_the_shell_in_exec_start() {
        for cmd in [
            "cd /tmp && exec sleep 100",
            "sleep 1 | cat",
            "sleep 1 > /dev/null",
            "ls *.txt",
            "no-such-program-anywhere 1",
        ] {
            let mut spec = minimal();
            spec.argv = vec!["/bin/sh".into(), "-c".into(), cmd.into()];
            let props = service_properties(&spec).unwrap();
            let exec: Vec<(String, Vec<String>, bool)> = value_of(&props, "ExecStart")
                .try_clone()
                .unwrap()
                .try_into()
                .unwrap();
            assert_eq!(
                exec,
                vec![("/bin/sh".to_string(), spec.argv.clone(), false)],
                "{cmd:?}"
            );
        }
    }

    #[test]
    fn dollar_signs_reach_the_shell_unexpanded_by_systemd() {
        let mut spec = minimal();
        spec.argv = vec![
            "/bin/sh".into(),
            "-c".into(),
            "echo $$ ${HOME} $PATH > $$x".into(),
        ];
        let props = service_properties(&spec).unwrap();
        let exec: Vec<(String, Vec<String>, bool)> = value_of(&props, "ExecStart")
            .try_clone()
            .unwrap()
            .try_into()
            .unwrap();
        assert_eq!(exec[0].0, "/bin/sh");
        assert_eq!(exec[0].1[2], "echo $$$$ $${HOME} $$PATH > $$$$x");
    }

    #[test]
    fn full_spec_golden() {
        let props = service_properties(&full()).unwrap();
        let r = rendered(&props);
        let expect: &[(&str, &str, &str)] = &[
            ("Environment", "as", "[\"A=1\", \"B=x y\"]"),
            ("WorkingDirectory", "s", "\"/srv/shop\""),
            ("User", "s", "\"www\""),
            ("Group", "s", "\"www\""),
            ("SupplementaryGroups", "as", "[\"adm\", \"video\"]"),
            ("LimitNOFILE", "t", "4096"),
            ("LimitNOFILESoft", "t", "4096"),
            ("LimitNPROC", "t", "18446744073709551615"),
            ("LimitNPROCSoft", "t", "18446744073709551615"),
            ("LimitMEMLOCK", "t", "65536"),
            ("LimitMEMLOCKSoft", "t", "65536"),
            ("Nice", "i", "-5"),
            ("MemoryMax", "t", "536870912"),
            ("CPUQuotaPerSecUSec", "t", "500000"),
            ("CPUQuotaPeriodUSec", "t", "100000"),
            ("AmbientCapabilities", "t", "8389632"),
            ("CapabilityBoundingSet", "t", "8389632"),
            ("PrivateNetwork", "b", "true"),
            ("PrivateMounts", "b", "true"),
            ("PrivatePIDs", "b", "true"),
            ("KillSignal", "i", "2"),
            ("TimeoutStopUSec", "t", "2500000"),
        ];
        for (name, sig, val) in expect {
            let (_, s, v) = r
                .iter()
                .find(|(k, _, _)| k == name)
                .unwrap_or_else(|| panic!("missing {name}"));
            assert_eq!((s.as_str(), v.as_str()), (*sig, *val), "{name}");
        }
        // CPUs 0, 2 and 9: byte 0 = 0b101, byte 1 = 0b10.
        assert_eq!(sig_of(&r, "CPUAffinity"), "ay");
        let aff: Vec<u8> = value_of(&props, "CPUAffinity")
            .try_clone()
            .unwrap()
            .try_into()
            .unwrap();
        assert_eq!(aff, vec![0b101, 0b10]);
        assert_eq!(sig_of(&r, "ExecStart"), "a(sasb)");
        assert!(!r
            .iter()
            .any(|(k, _, _)| k == "Restart" || k == "PrivateTmp"));
        // Names are unique: systemd refuses a property given twice.
        let mut names: Vec<&String> = props.iter().map(|(k, _)| k).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), props.len());
    }

    #[test]
    fn capability_bits_follow_the_kernel() {
        assert_eq!(capability_mask(&["CAP_CHOWN".into()]).unwrap(), 1);
        assert_eq!(
            capability_mask(&["net_bind_service".into()]).unwrap(),
            1 << 10
        );
        assert_eq!(capability_mask(&["CAP_SYS_ADMIN".into()]).unwrap(), 1 << 21);
        assert_eq!(
            capability_mask(&["CAP_CHECKPOINT_RESTORE".into()]).unwrap(),
            1 << 40
        );
        assert_eq!(capability_mask(&[]).unwrap(), 0);
        let err = capability_mask(&["CAP_FLY".into()]).unwrap_err();
        assert!(err.to_string().contains("CAP_FLY"), "{err}");
    }

    #[test]
    fn empty_capability_list_drops_everything() {
        let spec = UnitSpec {
            capabilities: Some(vec![]),
            ..minimal()
        };
        let r = rendered(&service_properties(&spec).unwrap());
        let amb = r
            .iter()
            .find(|(k, _, _)| k == "AmbientCapabilities")
            .unwrap();
        let bnd = r
            .iter()
            .find(|(k, _, _)| k == "CapabilityBoundingSet")
            .unwrap();
        assert_eq!((amb.1.as_str(), amb.2.as_str()), ("t", "0"));
        assert_eq!((bnd.1.as_str(), bnd.2.as_str()), ("t", "0"));
    }

    #[test]
    fn cpu_quota_and_bad_values() {
        assert_eq!(cpu_quota_per_sec_usec(50_000, 100_000).unwrap(), 500_000);
        assert_eq!(cpu_quota_per_sec_usec(200_000, 100_000).unwrap(), 2_000_000);
        assert_eq!(
            cpu_quota_per_sec_usec(1, 0).unwrap_err().property,
            "CPUQuotaPerSecUSec"
        );
        let no_quota = UnitSpec {
            limits: Limits {
                cgroup: CgroupLimits {
                    memory_max: None,
                    cpu_max: Some(CpuMax {
                        quota_us: None,
                        period_us: 100_000,
                    }),
                },
                ..Limits::default()
            },
            ..minimal()
        };
        let props = service_properties(&no_quota).unwrap();
        assert!(!props.iter().any(|(k, _)| k.starts_with("CPUQuota")));
        assert_eq!(cpu_mask(&[8192]).unwrap_err().property, "CPUAffinity");
        let empty = UnitSpec {
            argv: vec![],
            ..minimal()
        };
        assert_eq!(
            service_properties(&empty).unwrap_err().property,
            "ExecStart"
        );
    }

    #[test]
    fn timer_golden() {
        let props = timer_properties(&minimal(), "*-*-* *:0/5:0 UTC");
        let r = rendered(&props);
        let want = [
            (
                "Description",
                "s",
                "\"web schedule (systemg project shop)\"",
            ),
            ("TimersCalendar", "a(ss)", ""),
            ("AccuracyUSec", "t", "1000000"),
        ];
        assert_eq!(r.len(), want.len());
        for ((name, sig, val), (wn, ws, wv)) in r.iter().zip(want) {
            assert_eq!((name.as_str(), sig.as_str()), (wn, ws));
            if !wv.is_empty() {
                assert_eq!(val, wv, "{name}");
            }
        }
        let cal: Vec<(String, String)> = value_of(&props, "TimersCalendar")
            .try_clone()
            .ok()
            .and_then(|v| v.try_into().ok())
            .unwrap();
        assert_eq!(
            cal,
            [("OnCalendar".to_string(), "*-*-* *:0/5:0 UTC".to_string())]
        );
    }

    #[test]
    fn escaped_project_names_reach_slice_and_description() {
        let spec = UnitSpec {
            project: "my-app".into(),
            ..minimal()
        };
        let props = service_properties(&spec).unwrap();
        let r = rendered(&props);
        let slice = r.iter().find(|(k, _, _)| k == "Slice").unwrap();
        assert_eq!(slice.2, "\"sysg-my\\\\x2dapp.slice\"");
    }

    #[test]
    fn environment_goes_to_a_file_when_asked() {
        let text = environment_file(&[
            ("A".into(), "1".into()),
            ("B".into(), r#"x "y" $HOME `id` \ z"#.into()),
        ]);
        assert_eq!(text, "A=\"1\"\nB=\"x \\\"y\\\" \\$HOME \\`id\\` \\\\ z\"\n");
        let mut props = service_properties(&full()).unwrap();
        use_environment_file(&mut props, "/run/systemg/shop/env/web.env");
        let r = rendered(&props);
        assert!(!r.iter().any(|(k, _, _)| k == "Environment"), "{r:?}");
        let files = r.iter().find(|(k, _, _)| k == "EnvironmentFiles").unwrap();
        assert_eq!(files.1, "a(sb)");
        assert!(
            files.2.contains("/run/systemg/shop/env/web.env"),
            "{files:?}"
        );
    }
}
