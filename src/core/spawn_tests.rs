use super::*;

const STOP: StopHow = StopHow {
    signal: 15,
    timeout: Duration::from_secs(5),
};

fn limits() -> SpawnLimits {
    SpawnLimits {
        children: None,
        depth: None,
        descendants: None,
        rate_per_sec: 1000,
        termination: TerminationPolicy::Cascade,
    }
}

fn tree(l: SpawnLimits) -> SpawnTree {
    let mut t = SpawnTree::new();
    t.configure("web", Some(l));
    t
}

fn svc() -> Owner {
    Owner::Service("web".into())
}

fn child(name: &str) -> Owner {
    Owner::Child {
        service: "web".into(),
        name: name.into(),
    }
}

/// Admit and mark started with a made-up pid.
fn spawn(t: &mut SpawnTree, now: Instant, parent: &Owner, name: &str) -> Result<String, Refusal> {
    let k = t.admit(now, parent, name, None, STOP)?;
    t.started(&k, 1000 + t.pids().len() as u32);
    Ok(k)
}

fn signalled(actions: &[SpawnAction]) -> Vec<String> {
    let mut v: Vec<String> = actions
        .iter()
        .filter_map(|a| match a {
            SpawnAction::Signal { unit, .. } => Some(unit.clone()),
            _ => None,
        })
        .collect();
    v.sort();
    v
}

#[test]
fn static_and_unknown_services_are_refused() {
    let mut t = SpawnTree::new();
    t.configure("api", None);
    let now = Instant::now();
    let r = t.admit(now, &Owner::Service("api".into()), "x", None, STOP);
    assert_eq!(r, Err(Refusal::NotDynamic("api".into())));
    let r = t.admit(now, &Owner::Service("nope".into()), "x", None, STOP);
    assert!(matches!(r, Err(Refusal::NotDynamic(_))));
}

#[test]
fn admitted_child_is_tracked_with_its_pid() {
    let mut t = tree(limits());
    let now = Instant::now();
    let k = t.admit(now, &svc(), "w1", None, STOP).unwrap();
    assert_eq!(k, "web/w1");
    assert_eq!(t.child(&k).unwrap().state, ChildState::Starting);
    t.started(&k, 42);
    assert_eq!(t.pids(), vec![(42, child("w1"))]);
    let v = t.children_of("web");
    assert_eq!(v.len(), 1);
    assert_eq!((v[0].parent.as_str(), v[0].depth), ("web", 1));
    t.start_failed(&k);
    assert!(!t.any_alive(None));
}

#[test]
fn bad_names_and_duplicates_are_refused() {
    let mut t = tree(limits());
    let now = Instant::now();
    for bad in ["", "a/b", ".hidden", "sp ace"] {
        assert_eq!(
            t.admit(now, &svc(), bad, None, STOP),
            Err(Refusal::BadName(bad.into()))
        );
    }
    spawn(&mut t, now, &svc(), "w1").unwrap();
    let r = spawn(&mut t, now, &child("w1"), "w1");
    assert!(matches!(r, Err(Refusal::Duplicate { .. })));
}

#[test]
fn children_limit_counts_direct_children_only() {
    let mut t = tree(SpawnLimits {
        children: Some(2),
        ..limits()
    });
    let now = Instant::now();
    spawn(&mut t, now, &svc(), "a").unwrap();
    spawn(&mut t, now, &svc(), "b").unwrap();
    let e = spawn(&mut t, now, &svc(), "c").unwrap_err();
    assert_eq!(
        e.to_string(),
        "refused: web already has 2 children (spawn.limits.children: 2)"
    );
    // A child has its own quota.
    spawn(&mut t, now, &child("a"), "a1").unwrap();
    spawn(&mut t, now, &child("a"), "a2").unwrap();
    assert!(matches!(
        spawn(&mut t, now, &child("a"), "a3"),
        Err(Refusal::Children { .. })
    ));
}

#[test]
fn depth_limit() {
    let mut t = tree(SpawnLimits {
        depth: Some(2),
        ..limits()
    });
    let now = Instant::now();
    spawn(&mut t, now, &svc(), "a").unwrap();
    spawn(&mut t, now, &child("a"), "b").unwrap();
    let e = spawn(&mut t, now, &child("b"), "c").unwrap_err();
    assert_eq!(
        e.to_string(),
        "refused: a child of b would be at depth 3 (spawn.limits.depth: 2)"
    );
    assert_eq!(t.child("web/b").unwrap().depth, 2);
}

#[test]
fn descendants_limit_counts_the_whole_tree() {
    let mut t = tree(SpawnLimits {
        descendants: Some(3),
        ..limits()
    });
    let now = Instant::now();
    spawn(&mut t, now, &svc(), "a").unwrap();
    spawn(&mut t, now, &child("a"), "b").unwrap();
    spawn(&mut t, now, &child("b"), "c").unwrap();
    let e = spawn(&mut t, now, &svc(), "d").unwrap_err();
    assert!(e.to_string().contains("spawn.limits.descendants: 3"), "{e}");
    // Room again once one ends (its subtree cascades).
    t.exited(now, "web/c");
    spawn(&mut t, now, &svc(), "d").unwrap();
}

#[test]
fn default_descendants_cap_contains_a_fork_bomb() {
    let mut t = tree(limits());
    let now = Instant::now();
    let mut parent = svc();
    let mut admitted = 0;
    for i in 0..5000 {
        match spawn(&mut t, now, &parent, &format!("b{i}")) {
            Ok(_) => {
                admitted += 1;
                parent = child(&format!("b{i}"));
            }
            Err(Refusal::Descendants { .. }) => break,
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(admitted, DEFAULT_MAX_DESCENDANTS);
}

#[test]
fn rate_limit_per_parent_with_simulated_time() {
    let mut t = tree(SpawnLimits {
        rate_per_sec: 3,
        ..limits()
    });
    let t0 = Instant::now();
    for i in 0..3 {
        spawn(
            &mut t,
            t0 + Duration::from_millis(i * 10),
            &svc(),
            &format!("a{i}"),
        )
        .unwrap();
    }
    let e = spawn(&mut t, t0 + Duration::from_millis(500), &svc(), "x").unwrap_err();
    assert_eq!(
        e.to_string(),
        "refused: web spawned 3 children in the last second (spawn.limits.rate: 3)"
    );
    // Another parent has its own budget.
    spawn(&mut t, t0 + Duration::from_millis(500), &child("a0"), "y").unwrap();
    // A second after the first spawn, one slot is free again, not more.
    spawn(&mut t, t0 + Duration::from_millis(1000), &svc(), "x").unwrap();
    assert!(matches!(
        spawn(&mut t, t0 + Duration::from_millis(1005), &svc(), "z"),
        Err(Refusal::Rate { .. })
    ));
}

#[test]
fn ttl_expiry_stops_then_kills() {
    let mut t = tree(limits());
    let t0 = Instant::now();
    let k = t
        .admit(t0, &svc(), "tmp", Some(Duration::from_secs(2)), STOP)
        .unwrap();
    t.started(&k, 7);
    assert_eq!(t.next_deadline(), Some(t0 + Duration::from_secs(2)));
    assert!(t.tick(t0 + Duration::from_secs(1)).is_empty());
    let a = t.tick(t0 + Duration::from_secs(2));
    assert_eq!(signalled(&a), vec!["web/tmp".to_string()]);
    assert_eq!(t.child(&k).unwrap().state, ChildState::Stopping);
    // Not signalled twice; killed after the stop timeout.
    assert_eq!(t.next_deadline(), Some(t0 + Duration::from_secs(7)));
    assert!(t.tick(t0 + Duration::from_secs(3)).is_empty());
    assert_eq!(
        t.tick(t0 + Duration::from_secs(7)),
        vec![SpawnAction::Kill { unit: k.clone() }]
    );
    assert_eq!(t.next_deadline(), None);
    t.exited(t0 + Duration::from_secs(7), &k);
    assert!(!t.any_alive(None));
}

#[test]
fn stopping_parent_cannot_spawn() {
    let mut t = tree(limits());
    let now = Instant::now();
    spawn(&mut t, now, &svc(), "a").unwrap();
    t.stop_child(now, "web/a", "test");
    assert!(matches!(
        spawn(&mut t, now, &child("a"), "b"),
        Err(Refusal::ParentStopping(_))
    ));
}

#[test]
fn cascade_stops_the_whole_subtree() {
    let mut t = tree(limits());
    let now = Instant::now();
    spawn(&mut t, now, &svc(), "a").unwrap();
    spawn(&mut t, now, &child("a"), "a1").unwrap();
    spawn(&mut t, now, &child("a1"), "a11").unwrap();
    spawn(&mut t, now, &svc(), "b").unwrap();
    // A child ends: only its own subtree stops.
    let acts = t.exited(now, "web/a");
    assert_eq!(signalled(&acts), vec!["web/a1", "web/a11"]);
    // The service ends: everything left stops.
    let acts = t.service_exited(now, "web");
    assert_eq!(signalled(&acts), vec!["web/b"]);
}

#[test]
fn orphan_policy_keeps_children_tracked() {
    let mut t = tree(SpawnLimits {
        termination: TerminationPolicy::Orphan,
        ..limits()
    });
    let now = Instant::now();
    spawn(&mut t, now, &svc(), "a").unwrap();
    spawn(&mut t, now, &child("a"), "a1").unwrap();
    assert!(t.exited(now, "web/a").is_empty());
    assert!(t.service_exited(now, "web").is_empty());
    let v = t.children_of("web");
    assert_eq!(v.len(), 1);
    assert_eq!(v[0].parent, "a");
    // Nothing escapes a stop of the project.
    assert_eq!(signalled(&t.stop_all(now, None)), vec!["web/a1"]);
    assert!(t.any_stopping(None));
}

#[test]
fn stop_all_selects_services() {
    let mut t = tree(limits());
    t.configure("api", Some(limits()));
    let now = Instant::now();
    spawn(&mut t, now, &svc(), "a").unwrap();
    spawn(&mut t, now, &Owner::Service("api".into()), "b").unwrap();
    let acts = t.stop_all(now, Some(&["api".to_string()]));
    assert_eq!(signalled(&acts), vec!["api/b"]);
    assert!(t.any_stopping(Some(&["api".to_string()])));
    assert!(!t.any_stopping(Some(&["web".to_string()])));
}

#[test]
fn a_service_made_static_by_reload_keeps_its_children_but_spawns_no_more() {
    let mut t = tree(limits());
    let now = Instant::now();
    spawn(&mut t, now, &svc(), "a").unwrap();
    t.configure("web", None);
    assert!(matches!(
        spawn(&mut t, now, &svc(), "b"),
        Err(Refusal::NotDynamic(_))
    ));
    assert!(t.dynamic_services().is_empty());
    assert_eq!(signalled(&t.service_exited(now, "web")), vec!["web/a"]);
}
