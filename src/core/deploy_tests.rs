//! Scenario tests of rolling and blue-green deployments in the core, with simulated time:
//! every way a deployment can end, and what the old instance sees of it (nothing, until the
//! promotion).

use std::collections::HashMap;
use std::path::PathBuf;

use super::*;
use crate::config::schema::{HealthCheck, Probe};

const MS: fn(u64) -> Duration = Duration::from_millis;

/// interval 1 s, timeout 1 s, retries 3, no start_period.
fn check() -> HealthCheck {
    HealthCheck {
        probe: Probe::Tcp {
            host: "127.0.0.1".into(),
            port: 8080,
        },
        interval: secs(1),
        timeout: secs(1),
        retries: 3,
        start_period: Duration::ZERO,
        start_interval: secs(1),
    }
}

fn plan(health: Option<HealthCheck>, grace: Duration, pre_start: Option<&str>) -> DeployPlan {
    DeployPlan {
        pre_start: pre_start.map(str::to_string),
        health: health.map(Arc::new),
        grace,
        blue_green: None,
    }
}

fn blue_green(active: usize, switch: Option<&str>) -> DeployPlan {
    DeployPlan {
        blue_green: Some(BlueGreenPlan {
            env_var: "SLOT".into(),
            slots: ["blue".into(), "green".into()],
            switch_command: switch.map(str::to_string),
            state_path: PathBuf::from("/state/web.slot.json"),
            active,
        }),
        ..plan(Some(check()), Duration::ZERO, None)
    }
}

/// `web` (on-failure) running as pid 101 under `p`, with `api` depending on it.
fn running(p: DeployPlan) -> Sim {
    let mut sim = Sim::new(vec![unit("web", &[]), unit("api", &["web"])]);
    sim.core
        .set_deployments(HashMap::from([("web".to_string(), Arc::new(p))]));
    sim.boot();
    assert_eq!(sim.pid("web"), 101);
    sim
}

fn restart(sim: &mut Sim) -> Vec<Action> {
    sim.req(Request::Restart(Some(vec!["web".into()])))
}

fn start_spec(acts: &[Action], key: &str) -> Arc<UnitSpec> {
    acts.iter()
        .find_map(|a| match a {
            Action::Start { unit, spec } if unit == key => Some(spec.clone()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no start of {key} in {acts:?}"))
}

fn probe_of(acts: &[Action], key: &str) -> u64 {
    acts.iter()
        .find_map(|a| match a {
            Action::Probe { unit, probe, .. } if unit == key => Some(*probe),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no probe of {key} in {acts:?}"))
}

fn runs(acts: &[Action]) -> Vec<(u64, Step, String)> {
    acts.iter()
        .filter_map(|a| match a {
            Action::Deploy(DeployAction::Run {
                run, step, command, ..
            }) => Some((*run, *step, command.clone())),
            _ => None,
        })
        .collect()
}

fn saved_slots(acts: &[Action]) -> Vec<usize> {
    acts.iter()
        .filter_map(|a| match a {
            Action::Deploy(DeployAction::SaveSlot { active, .. }) => Some(*active),
            _ => None,
        })
        .collect()
}

fn deploy_notices(acts: &[Action]) -> Vec<DeployOutcome> {
    acts.iter()
        .filter_map(|a| match a {
            Action::Notify(n) if n.kind == NoticeKind::Deploy => n.deploy.clone(),
            _ => None,
        })
        .collect()
}

impl Sim {
    fn probe_ok(&mut self, key: &str, probe: u64, ok: bool) -> Vec<Action> {
        self.send(Event::ProbeResult {
            unit: key.into(),
            probe,
            ok,
            detail: if ok {
                "ok".into()
            } else {
                "connection refused".into()
            },
        })
    }

    fn done(&mut self, run: u64, ok: bool, detail: &str) -> Vec<Action> {
        self.send(Event::Deploy(DeployEvent::CommandDone {
            unit: "web".into(),
            run,
            ok,
            detail: detail.into(),
        }))
    }

    fn exited(&mut self, key: &str, pid: u32, status: ExitStatus) -> Vec<Action> {
        self.send(Event::Exited {
            unit: key.into(),
            pid,
            status,
        })
    }

    fn failures(&self) -> Vec<String> {
        self.core.deploy_failures(None, 0)
    }
}

#[test]
fn healthy_candidate_replaces_the_old_after_the_grace_period() {
    let mut sim = running(plan(Some(check()), secs(5), None));
    let acts = restart(&mut sim);
    // Beside the old one: nothing is signalled, the candidate starts under its own key.
    assert!(signals(&acts).is_empty(), "{acts:?}");
    let spec = start_spec(&acts, "web~1");
    assert_eq!(spec.name, "web~1");
    assert!(!sim.core.settled(Some(&["web".into()])));
    let (cand, acts) = sim.started("web~1");
    let probe = probe_of(&acts, "web~1");
    assert_eq!(
        sim.pid("web"),
        101,
        "the old one is still the unit's process"
    );
    let acts = sim.probe_ok("web~1", probe, true);
    assert_eq!(reports(&acts, ReportKind::Deployed).len(), 1, "{acts:?}");
    assert_eq!(sim.pid("web"), cand);
    assert_eq!(sim.core.instance("web").as_deref(), Some("web~1"));
    assert!(
        persists(&acts) > 0,
        "the new instance of record is persisted"
    );
    let n = deploy_notices(&acts);
    assert_eq!(n.len(), 1);
    assert!(n[0].ok);
    assert_eq!(n[0].strategy, "rolling");
    // The dependent was never touched.
    assert_eq!(sim.state("api"), StateKind::Running);
    // Grace: the old one keeps running for 5 s, and the restart is not over yet.
    assert!(signals(&acts).is_empty());
    assert!(signals(&sim.advance(MS(4_900))).is_empty());
    assert!(!sim.core.settled(Some(&["web".into()])));
    let acts = sim.advance(MS(100));
    assert_eq!(signals(&acts), ["web"]);
    sim.exited("web", 101, ExitStatus::Signal(15));
    assert!(sim.core.settled(Some(&["web".into()])));
    assert!(sim.failures().is_empty());
    // Its next stop goes to the promoted instance's key.
    let acts = sim.req(Request::Stop(Some(vec!["web".into()])));
    let acts = [acts, sim.exit("api", ExitStatus::Signal(15))].concat();
    assert_eq!(signals(&acts), ["api", "web~1"]);
    sim.exited("web~1", cand, ExitStatus::Signal(15));
    assert_eq!(sim.state("web"), StateKind::Stopped);
    assert!(sim.core.idle());
}

#[test]
fn pre_start_failure_leaves_the_old_untouched() {
    let mut sim = running(plan(Some(check()), Duration::ZERO, Some("make build")));
    let acts = restart(&mut sim);
    let r = runs(&acts);
    assert_eq!(r.len(), 1);
    assert_eq!((r[0].1, r[0].2.as_str()), (Step::PreStart, "make build"));
    assert!(starts(&acts).is_empty(), "nothing starts before pre_start");
    let acts = sim.done(r[0].0, false, "exit 2: no rule to make target");
    assert!(
        starts(&acts).is_empty() && signals(&acts).is_empty(),
        "{acts:?}"
    );
    assert_eq!(reports(&acts, ReportKind::DeployFailed).len(), 1);
    assert!(!deploy_notices(&acts)[0].ok);
    assert_eq!(sim.pid("web"), 101);
    assert_eq!(sim.state("web"), StateKind::Running);
    assert!(sim.core.settled(None));
    let f = sim.failures();
    assert_eq!(f.len(), 1);
    assert!(f[0].contains("pre_start failed: exit 2"), "{f:?}");
}

#[test]
fn pre_start_success_starts_the_candidate_and_a_hung_one_times_out() {
    let mut sim = running(plan(Some(check()), Duration::ZERO, Some("true")));
    let r = runs(&restart(&mut sim));
    let acts = sim.done(r[0].0, true, "exit 0");
    start_spec(&acts, "web~1");

    let mut sim = running(plan(Some(check()), Duration::ZERO, Some("sleep 1d")));
    restart(&mut sim);
    assert!(reports(&sim.advance(COMMAND_TIMEOUT), ReportKind::DeployFailed).is_empty());
    let acts = sim.advance(secs(10));
    assert_eq!(reports(&acts, ReportKind::DeployFailed).len(), 1);
    assert!(sim.failures()[0].contains("did not finish"));
    assert_eq!(sim.pid("web"), 101);
}

#[test]
fn crashing_candidate_leaves_the_old_running() {
    let mut sim = running(plan(Some(check()), Duration::ZERO, None));
    restart(&mut sim);
    let (cand, _) = sim.started("web~1");
    let acts = sim.exited("web~1", cand, ExitStatus::Code(1));
    assert!(signals(&acts).is_empty(), "nothing left to stop: {acts:?}");
    assert_eq!(sim.pid("web"), 101);
    assert!(sim.core.settled(None));
    assert!(sim.failures()[0].contains("the new instance exited (exit 1)"));
    // The unit was never affected: no restart counted, no exit recorded.
    assert_eq!(sim.view("web").restarts, 0);
    assert_eq!(sim.view("web").last_exit, None);
}

#[test]
fn candidate_that_cannot_start_fails_the_deployment() {
    let mut sim = running(plan(None, Duration::ZERO, None));
    restart(&mut sim);
    let acts = sim.send(Event::StartFailed {
        unit: "web~1".into(),
        error: "no such user".into(),
    });
    assert_eq!(reports(&acts, ReportKind::DeployFailed).len(), 1);
    assert!(sim.core.idle() || sim.state("web") == StateKind::Running);
    assert!(!sim.core.deploying(None));
    assert!(sim.failures()[0].contains("could not start: no such user"));
}

#[test]
fn candidate_whose_exec_fails_fails_the_deployment_with_the_reason() {
    let mut sim = running(plan(Some(check()), Duration::ZERO, None));
    restart(&mut sim);
    let (cand, _) = sim.started("web~1");
    let acts = sim.send(Event::ExecFailed {
        unit: "web~1".into(),
        pid: cand,
        error: "web: cannot run `./web`: Permission denied (os error 13)".into(),
    });
    assert_eq!(reports(&acts, ReportKind::DeployFailed).len(), 1);
    assert!(signals(&acts).is_empty(), "nothing left to stop: {acts:?}");
    assert!(!sim.core.deploying(None));
    assert_eq!(sim.pid("web"), 101, "the old instance runs on");
    assert!(sim.failures()[0]
        .contains("could not start: web: cannot run `./web`: Permission denied (os error 13)"));
    assert_eq!(sim.view("web").restarts, 0);
}

#[test]
fn exhausted_probe_budget_stops_the_candidate() {
    let mut sim = running(plan(Some(check()), Duration::ZERO, None));
    restart(&mut sim);
    let (cand, acts) = sim.started("web~1");
    let mut probe = probe_of(&acts, "web~1");
    for n in 1..=3 {
        let acts = sim.probe_ok("web~1", probe, false);
        if n < 3 {
            assert!(signals(&acts).is_empty());
            probe = probe_of(&sim.advance(secs(1)), "web~1");
        } else {
            assert_eq!(signals(&acts), ["web~1"], "only the candidate is stopped");
        }
    }
    assert!(sim.core.deploying(None), "the candidate is still draining");
    // It ignores SIGTERM: killed after its stop timeout.
    assert_eq!(kills(&sim.advance(secs(10))), ["web~1"]);
    sim.exited("web~1", cand, ExitStatus::Signal(9));
    assert!(!sim.core.deploying(None));
    assert_eq!(sim.pid("web"), 101);
    let f = sim.failures();
    assert!(f[0].contains("did not become healthy (3 probes failed: connection refused)"));
}

#[test]
fn lost_probe_answers_count_as_failures_and_start_period_is_honoured() {
    let mut c = check();
    c.start_period = secs(3);
    c.retries = 1;
    let mut sim = running(plan(Some(c), Duration::ZERO, None));
    restart(&mut sim);
    let (_, acts) = sim.started("web~1");
    let probe = probe_of(&acts, "web~1");
    // Within start_period a failure does not count.
    let acts = sim.probe_ok("web~1", probe, false);
    assert!(reports(&acts, ReportKind::DeployFailed).is_empty());
    let probe = probe_of(&sim.advance(secs(1)), "web~1");
    let _ = probe;
    // No answer at all: given up after timeout + PROBE_GRACE, outside start_period.
    sim.advance(secs(1));
    let acts = sim.advance(PROBE_GRACE);
    assert_eq!(
        reports(&acts, ReportKind::DeployFailed).len(),
        1,
        "{acts:?}"
    );
    assert!(sim.failures()[0].contains("no answer within"));
}

#[test]
fn without_health_checks_the_settle_window_decides() {
    let mut sim = running(plan(None, Duration::ZERO, None));
    restart(&mut sim);
    let (cand, acts) = sim.started("web~1");
    assert!(!acts.iter().any(|a| matches!(a, Action::Probe { .. })));
    let acts = sim.advance(MIN_DEPLOY_SETTLE - MS(1));
    assert!(reports(&acts, ReportKind::Deployed).is_empty());
    let acts = sim.advance(MS(1));
    assert_eq!(reports(&acts, ReportKind::Deployed).len(), 1);
    // Zero grace: the old one is signalled at once.
    assert_eq!(signals(&acts), ["web"]);
    assert_eq!(sim.pid("web"), cand);
}

#[test]
fn blue_green_switch_success_flips_and_persists_the_slot() {
    let mut sim = running(blue_green(
        0,
        Some("proxy --to {candidate_slot} --from {active_slot}"),
    ));
    let acts = restart(&mut sim);
    let spec = start_spec(&acts, "web~1");
    assert!(
        spec.env.contains(&("SLOT".into(), "green".into())),
        "{:?}",
        spec.env
    );
    let (cand, acts) = sim.started("web~1");
    let acts = sim.probe_ok("web~1", probe_of(&acts, "web~1"), true);
    let r = runs(&acts);
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].1, Step::Switch);
    assert_eq!(r[0].2, "proxy --to green --from blue");
    assert_eq!(sim.pid("web"), 101, "not promoted before the switch");
    let acts = sim.done(r[0].0, true, "exit 0");
    assert_eq!(saved_slots(&acts), [1]);
    assert_eq!(sim.core.active_slot("web"), Some(1));
    assert_eq!(sim.pid("web"), cand);
    let n = deploy_notices(&acts);
    assert_eq!((n[0].ok, n[0].strategy), (true, "blue_green"));
    assert_eq!(n[0].slot.as_deref(), Some("green"));
    // The unit's own spec now runs on green: a crash restart stays there.
    sim.exited("web", 101, ExitStatus::Signal(15));
    sim.exited("web~1", cand, ExitStatus::Code(1));
    let acts = sim.advance(secs(1));
    let spec = start_spec(&acts, "web");
    assert!(spec.env.contains(&("SLOT".into(), "green".into())));
    sim.started("web");
    // The next deployment goes back to blue.
    let acts = restart(&mut sim);
    let spec = start_spec(&acts, "web~2");
    assert!(spec.env.contains(&("SLOT".into(), "blue".into())));
}

#[test]
fn failed_switch_rolls_back() {
    let mut sim = running(blue_green(0, Some("false")));
    restart(&mut sim);
    let (cand, acts) = sim.started("web~1");
    let acts = sim.probe_ok("web~1", probe_of(&acts, "web~1"), true);
    let r = runs(&acts);
    let acts = sim.done(r[0].0, false, "exit 1");
    assert_eq!(signals(&acts), ["web~1"]);
    assert!(saved_slots(&acts).is_empty());
    assert_eq!(sim.core.active_slot("web"), Some(0));
    assert_eq!(sim.pid("web"), 101);
    sim.exited("web~1", cand, ExitStatus::Signal(15));
    assert!(sim.core.settled(None));
    assert!(sim.failures()[0].contains("switch_command failed: exit 1"));
}

#[test]
fn persisted_active_slot_decides_the_candidate_slot() {
    // Slot 1 (green) is active per the state file: the candidate goes to blue.
    let mut sim = running(blue_green(1, None));
    let acts = restart(&mut sim);
    let spec = start_spec(&acts, "web~1");
    assert!(spec.env.contains(&("SLOT".into(), "blue".into())));
    let (_, acts) = sim.started("web~1");
    // No switch command: promoted as soon as it is healthy.
    let acts = sim.probe_ok("web~1", probe_of(&acts, "web~1"), true);
    assert_eq!(saved_slots(&acts), [0]);
}

#[test]
fn stop_during_a_deployment_stops_both() {
    let mut sim = running(plan(Some(check()), secs(30), None));
    restart(&mut sim);
    let (cand, _) = sim.started("web~1");
    let acts = sim.req(Request::Stop(Some(vec!["web".into()])));
    assert_eq!(signals(&acts), ["api", "web~1"]);
    assert!(sim.failures()[0].contains("stopped during the deployment"));
    let acts = sim.exit("api", ExitStatus::Signal(15));
    assert_eq!(signals(&acts), ["web"]);
    sim.exited("web~1", cand, ExitStatus::Signal(15));
    assert!(!sim.core.idle(), "the old one is still stopping");
    sim.exited("web", 101, ExitStatus::Signal(15));
    assert!(sim.core.idle());
    assert_eq!(sim.state("web"), StateKind::Stopped);
}

#[test]
fn stop_during_the_grace_period_cuts_it_short() {
    let mut sim = running(plan(None, secs(60), None));
    restart(&mut sim);
    let (cand, _) = sim.started("web~1");
    sim.advance(MIN_DEPLOY_SETTLE);
    assert_eq!(sim.pid("web"), cand);
    let acts = sim.req(Request::Stop(None));
    assert!(signals(&acts).contains(&"web".to_string()), "{acts:?}");
    assert!(sim.failures().is_empty(), "the deployment itself succeeded");
}

#[test]
fn old_instance_dying_mid_deployment_abandons_it() {
    let mut sim = running(plan(Some(check()), Duration::ZERO, None));
    restart(&mut sim);
    let (cand, _) = sim.started("web~1");
    let acts = sim.exit("web", ExitStatus::Code(3));
    // The candidate goes (and `api`, which depends on the crashed process, as always).
    assert_eq!(signals(&acts), ["api", "web~1"]);
    assert!(sim.failures()[0].contains("went away"));
    // The unit goes through its policy as usual, under its own name.
    sim.exited("web~1", cand, ExitStatus::Signal(15));
    assert_eq!(sim.state("web"), StateKind::Backoff);
    start_spec(&sim.advance(secs(1)), "web");
}

#[test]
fn restart_during_a_deployment_does_not_start_a_second_candidate() {
    let mut sim = running(plan(Some(check()), Duration::ZERO, None));
    restart(&mut sim);
    let acts = restart(&mut sim);
    assert!(starts(&acts).is_empty() && signals(&acts).is_empty());
}

#[test]
fn reload_of_a_changed_service_deploys_the_new_spec() {
    let mut sim = running(plan(None, Duration::ZERO, None));
    let mut web = unit("web", &[]);
    let mut spec = (*web.spec).clone();
    spec.argv = vec!["/bin/new".into()];
    web.spec = Arc::new(spec);
    let acts = sim.req(Request::Reload(vec![web.clone(), unit("api", &["web"])]));
    assert!(signals(&acts).is_empty(), "no stop-then-start: {acts:?}");
    let spec = start_spec(&acts, "web~1");
    assert_eq!(spec.argv, ["/bin/new"]);
    let argv = |sim: &Sim| sim.core.units[sim.core.index["web"]].plan.spec.argv.clone();
    // The running process keeps the plan it runs with (its probes use that environment).
    assert_eq!(argv(&sim), ["/bin/true"]);
    // The same configuration again (a second SIGHUP) does not restart the deployment.
    let acts = sim.req(Request::Reload(vec![web, unit("api", &["web"])]));
    assert!(
        starts(&acts).is_empty() && signals(&acts).is_empty(),
        "{acts:?}"
    );
    let (cand, _) = sim.started("web~1");
    let acts = sim.advance(MIN_DEPLOY_SETTLE);
    assert_eq!(signals(&acts), ["web"]);
    assert_eq!(sim.pid("web"), cand);
    assert_eq!(argv(&sim), ["/bin/new"]);
}

#[test]
fn failed_deployment_of_a_reload_keeps_the_old_plan_and_a_new_reload_retries() {
    let mut sim = running(plan(None, Duration::ZERO, None));
    let mut web = unit("web", &[]);
    let mut spec = (*web.spec).clone();
    spec.argv = vec!["/bin/new".into()];
    web.spec = Arc::new(spec);
    sim.req(Request::Reload(vec![web.clone(), unit("api", &["web"])]));
    let (cand, _) = sim.started("web~1");
    sim.exited("web~1", cand, ExitStatus::Code(1));
    assert_eq!(sim.failures().len(), 1);
    let seq = sim.core.deploy_seq();
    let acts = sim.req(Request::Reload(vec![web, unit("api", &["web"])]));
    assert_eq!(start_spec(&acts, "web~2").argv, ["/bin/new"]);
    assert!(sim.core.deploy_failures(None, seq).is_empty());
}

#[test]
fn immediate_units_still_stop_then_start() {
    let mut sim = Sim::new(vec![unit("web", &[])]);
    sim.boot();
    let acts = restart(&mut sim);
    assert_eq!(signals(&acts), ["web"]);
    assert!(starts(&acts).is_empty());
}

#[test]
fn supervisor_restart_mid_deployment_keeps_the_instance_of_record() {
    // The runtime adopts the instance of record first; the candidate found beside it is stopped.
    let mut sim = Sim::new(vec![unit("web", &[])]);
    sim.core.set_deployments(HashMap::from([(
        "web".to_string(),
        Arc::new(plan(None, Duration::ZERO, None)),
    )]));
    sim.send(Event::Adopted {
        unit: "web".into(),
        pid: 101,
    });
    let acts = sim.send(Event::Adopted {
        unit: "web~1".into(),
        pid: 202,
    });
    assert_eq!(signals(&acts), ["web~1"]);
    assert_eq!(sim.pid("web"), 101);
    assert!(sim.core.deploying(None));
    sim.exited("web~1", 202, ExitStatus::Signal(15));
    assert!(!sim.core.deploying(None));
    assert_eq!(sim.pid("web"), 101);

    // Died during the grace period: the promoted candidate is of record, the old one goes.
    let mut sim = Sim::new(vec![unit("web", &[])]);
    sim.send(Event::Adopted {
        unit: "web~4".into(),
        pid: 202,
    });
    let acts = sim.send(Event::Adopted {
        unit: "web".into(),
        pid: 101,
    });
    assert_eq!(signals(&acts), ["web"]);
    assert_eq!(sim.pid("web"), 202);
    assert_eq!(sim.core.instance("web").as_deref(), Some("web~4"));
    // Its exit is the unit's, and a new deployment never reuses its key.
    sim.core.set_deployments(HashMap::from([(
        "web".to_string(),
        Arc::new(plan(None, Duration::ZERO, None)),
    )]));
    sim.exited("web", 101, ExitStatus::Signal(15));
    for _ in 0..3 {
        let acts = restart(&mut sim);
        let key = starts(&acts);
        assert_eq!(key.len(), 1);
        assert_ne!(key[0], "web~4");
        let _ = sim.send(Event::StartFailed {
            unit: key[0].clone(),
            error: "x".into(),
        });
    }
    let acts = sim.exited("web~4", 202, ExitStatus::Code(1));
    assert_eq!(reports(&acts, ReportKind::Exited).len(), 1, "{acts:?}");
    assert_eq!(sim.state("web"), StateKind::Backoff);
}

#[test]
fn a_candidate_is_retried_fast_and_promoted_once_up_with_failures_counted_on_schedule() {
    let mut sim = running(plan(Some(check()), Duration::ZERO, None));
    restart(&mut sim);
    let (cand, acts) = sim.started("web~1");
    let mut probe = probe_of(&acts, "web~1");
    // Refused at 0, then retried 100 and 200 ms later (interval 1 s): none counts but the
    // first, so three failures do not end the deployment.
    for gap in [100, 200] {
        let acts = sim.probe_ok("web~1", probe, false);
        assert!(reports(&acts, ReportKind::DeployFailed).is_empty());
        assert!(probes_none(&sim.advance(MS(gap - 1))));
        probe = probe_of(&sim.advance(MS(1)), "web~1");
    }
    let acts = sim.probe_ok("web~1", probe, false);
    assert!(signals(&acts).is_empty(), "{acts:?}");
    probe = probe_of(&sim.advance(MS(400)), "web~1");
    // Up 700 ms after its start: promoted then, not at the next 1 s interval.
    let acts = sim.probe_ok("web~1", probe, true);
    assert_eq!(reports(&acts, ReportKind::Deployed).len(), 1, "{acts:?}");
    assert_eq!(sim.pid("web"), cand);
}

fn probes_none(acts: &[Action]) -> bool {
    !acts.iter().any(|a| matches!(a, Action::Probe { .. }))
}
