//! The supervisor's sampler: a bounded ring of samples per unit, filled at a fixed interval
//! while the unit is being inspected (or always, when configured so).
//!
//! Sampling lazily is what keeps an idle supervisor idle: with nobody inspecting, the sampler
//! has no deadline and the event loop sleeps in `recv`. The first `inspect` of a unit starts
//! its sampling (and takes one sample at once); it stops `watch_for` after the last request.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::read::{self, SysInfo};
use super::{Ring, Sample, Source};

/// Default time between samples.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(2);
/// Default time sampling goes on after the last `inspect` of a unit.
pub const DEFAULT_WATCH: Duration = Duration::from_secs(10 * 60);
/// Default ring size: ten minutes at the default interval.
pub const DEFAULT_CAPACITY: usize = 300;

/// How the sampler behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SamplerOptions {
    /// Time between samples; `None` disables sampling.
    pub interval: Option<Duration>,
    /// How long a unit is sampled after its last `inspect`; `None` samples every running
    /// unit all the time.
    pub watch_for: Option<Duration>,
    /// Samples kept per unit.
    pub capacity: usize,
}

impl Default for SamplerOptions {
    fn default() -> Self {
        SamplerOptions {
            interval: Some(DEFAULT_INTERVAL),
            watch_for: Some(DEFAULT_WATCH),
            capacity: DEFAULT_CAPACITY,
        }
    }
}

/// Environment variable: time between samples (`2s`; `off` or `0` disables).
pub const ENV_INTERVAL: &str = "SYSG_METRICS_INTERVAL";
/// Environment variable: how long sampling goes on after an inspect (`10m`), or `always`.
pub const ENV_WATCH: &str = "SYSG_METRICS_WATCH";

impl SamplerOptions {
    /// Options from `SYSG_METRICS_INTERVAL` and `SYSG_METRICS_WATCH`, with a message for
    /// each value that could not be used (the default stands in for it).
    pub fn from_env() -> (SamplerOptions, Vec<String>) {
        Self::from_values(
            std::env::var(ENV_INTERVAL).ok().as_deref(),
            std::env::var(ENV_WATCH).ok().as_deref(),
        )
    }

    /// Options from the two variables' values.
    pub fn from_values(
        interval: Option<&str>,
        watch: Option<&str>,
    ) -> (SamplerOptions, Vec<String>) {
        let mut o = SamplerOptions::default();
        let mut problems = Vec::new();
        if let Some(v) = interval.map(str::trim).filter(|v| !v.is_empty()) {
            match v {
                "off" | "0" => o.interval = None,
                _ => match crate::config::duration::parse(v) {
                    Ok(d) if d >= Duration::from_millis(100) => o.interval = Some(d),
                    _ => problems.push(format!(
                        "{ENV_INTERVAL}={v:?} is not a duration of at least 100ms (or `off`); using 2s"
                    )),
                },
            }
        }
        if let Some(v) = watch.map(str::trim).filter(|v| !v.is_empty()) {
            match v {
                "always" => o.watch_for = None,
                _ => match crate::config::duration::parse(v) {
                    Ok(d) if !d.is_zero() => o.watch_for = Some(d),
                    _ => problems.push(format!(
                        "{ENV_WATCH}={v:?} is not a duration or `always`; using 10m"
                    )),
                },
            }
        }
        (o, problems)
    }
}

/// What to measure for one running unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub unit: String,
    pub pid: u32,
    /// The unit's own cgroup directory, when the backend created one (process backend).
    pub cgroup: Option<PathBuf>,
    /// The systemd unit name, whose cgroup is found from the pid.
    pub unit_name: Option<String>,
}

/// The samples of one unit and how they were taken.
#[derive(Debug, Clone)]
pub struct Series {
    pub samples: Ring<Sample>,
    /// How the latest sample was taken.
    pub source: Option<Source>,
    /// The cgroup read, when `source` is `Cgroup`.
    pub cgroup: Option<PathBuf>,
    /// Processes counted in the latest sample.
    pub pids: Vec<u32>,
    /// Why the latest attempt failed, if it did.
    pub error: Option<String>,
    watched_until: Option<Instant>,
    /// The pid whose cgroup was resolved (a restart means looking again).
    resolved_for: Option<u32>,
}

/// Samples per unit, bounded.
pub struct Sampler {
    opts: SamplerOptions,
    sys: SysInfo,
    mount: Option<Option<PathBuf>>,
    series: HashMap<String, Series>,
    next: Option<Instant>,
}

impl Sampler {
    /// A sampler that samples nothing until `watch` is called (or always, by the options).
    pub fn new(opts: SamplerOptions) -> Sampler {
        Sampler {
            opts,
            sys: SysInfo::detect(),
            mount: None,
            series: HashMap::new(),
            next: None,
        }
    }

    /// The options in force.
    pub fn options(&self) -> SamplerOptions {
        self.opts
    }

    /// Someone looked at `unit`: keep sampling it for a while. Returns true when a sample
    /// should be taken now (the unit was not being sampled, so its ring may be stale).
    pub fn watch(&mut self, unit: &str, now: Instant) -> bool {
        if self.opts.interval.is_none() {
            return false;
        }
        let watch_for = self.opts.watch_for;
        let s = self.series_mut(unit);
        let active = match watch_for {
            None => !s.samples.is_empty(),
            Some(_) => s.watched_until.is_some_and(|t| t > now),
        };
        if let Some(w) = watch_for {
            s.watched_until = Some(now + w);
        }
        !active
    }

    /// When the next sample is due; `None` when there is nothing to sample (the event loop
    /// then has no reason to wake up for the sampler).
    pub fn next_deadline(&self) -> Option<Instant> {
        self.next
    }

    /// True when a sample is due at `now`.
    pub fn due(&self, now: Instant) -> bool {
        self.next.is_some_and(|t| t <= now)
    }

    fn series_mut(&mut self, unit: &str) -> &mut Series {
        let cap = self.opts.capacity;
        self.series
            .entry(unit.to_string())
            .or_insert_with(|| Series {
                samples: Ring::new(cap),
                source: None,
                cgroup: None,
                pids: Vec::new(),
                error: None,
                watched_until: None,
                resolved_for: None,
            })
    }

    fn wanted(&self, unit: &str, now: Instant) -> bool {
        match self.opts.watch_for {
            None => true,
            Some(_) => self
                .series
                .get(unit)
                .and_then(|s| s.watched_until)
                .is_some_and(|t| t > now),
        }
    }

    /// Take one sample of every wanted unit among the running `targets`, at `now` (monotonic)
    /// and `wall` (seconds since the epoch), and arm the next deadline.
    pub fn sample(&mut self, now: Instant, wall: f64, targets: &[Target]) {
        let Some(interval) = self.opts.interval else {
            self.next = None;
            return;
        };
        for t in targets {
            if !self.wanted(&t.unit, now) {
                continue;
            }
            let mount = self.cgroup_mount();
            let sys = self.sys;
            let s = self.series_mut(&t.unit);
            if s.resolved_for != Some(t.pid) {
                s.cgroup = resolve_cgroup(t, mount.as_deref());
                s.resolved_for = Some(t.pid);
            }
            let reading = match &s.cgroup {
                Some(dir) => read::cgroup(dir, &sys).map(|r| (r, Source::Cgroup)),
                None => read::tree(t.pid, &sys).map(|r| (r, Source::Procfs)),
            };
            match reading {
                Ok((r, source)) => {
                    s.samples.push(Sample {
                        at: wall,
                        pid: t.pid,
                        cpu_usec: r.cpu_usec,
                        memory_bytes: r.memory_bytes,
                        tasks: u32::try_from(r.pids.len()).unwrap_or(u32::MAX),
                    });
                    s.source = Some(source);
                    s.pids = r.pids;
                    s.error = None;
                }
                Err(e) => {
                    // The unit may have exited between the listing and the read.
                    s.error = Some(e.to_string());
                    s.resolved_for = None;
                }
            }
        }
        let any_watched = match self.opts.watch_for {
            None => true,
            Some(_) => self
                .series
                .values()
                .any(|s| s.watched_until.is_some_and(|t| t > now)),
        };
        self.next = any_watched.then(|| now + interval);
    }

    /// The series of one unit.
    pub fn series(&self, unit: &str) -> Option<&Series> {
        self.series.get(unit)
    }

    /// Forget units for which `keep` is false (removed from the configuration).
    pub fn retain(&mut self, keep: impl Fn(&str) -> bool) {
        self.series.retain(|k, _| keep(k));
    }

    /// Start sampling at once (the "always" mode arms itself at start-up).
    pub fn arm(&mut self, now: Instant) {
        if self.opts.interval.is_some() && self.opts.watch_for.is_none() {
            self.next = Some(now);
        }
    }

    fn cgroup_mount(&mut self) -> Option<PathBuf> {
        self.mount
            .get_or_insert_with(read::detect_cgroup2_mount)
            .clone()
    }
}

fn resolve_cgroup(t: &Target, mount: Option<&Path>) -> Option<PathBuf> {
    if let Some(dir) = &t.cgroup {
        return dir.join("cpu.stat").is_file().then(|| dir.clone());
    }
    let (Some(name), Some(mount)) = (&t.unit_name, mount) else {
        return None;
    };
    read::own_unit_cgroup(t.pid, mount, name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn me() -> Target {
        Target {
            unit: "self".into(),
            pid: std::process::id(),
            cgroup: None,
            unit_name: None,
        }
    }

    #[test]
    fn env_values() {
        let (o, p) = SamplerOptions::from_values(None, None);
        assert_eq!(o, SamplerOptions::default());
        assert!(p.is_empty());
        let (o, p) = SamplerOptions::from_values(Some("500ms"), Some("always"));
        assert_eq!(o.interval, Some(Duration::from_millis(500)));
        assert_eq!(o.watch_for, None);
        assert!(p.is_empty());
        let (o, _) = SamplerOptions::from_values(Some("off"), Some("1m"));
        assert_eq!(o.interval, None);
        assert_eq!(o.watch_for, Some(Duration::from_secs(60)));
        let (o, p) = SamplerOptions::from_values(Some("1ms"), Some("soon"));
        assert_eq!(o, SamplerOptions::default());
        assert_eq!(p.len(), 2);
    }

    #[test]
    fn idle_until_watched_then_stops() {
        let mut s = Sampler::new(SamplerOptions {
            interval: Some(Duration::from_secs(2)),
            watch_for: Some(Duration::from_secs(10)),
            capacity: 3,
        });
        let t0 = Instant::now();
        // Nobody watches: sampling does nothing and arms nothing.
        s.sample(t0, 0.0, &[me()]);
        assert_eq!(s.next_deadline(), None);
        assert!(s.series("self").is_none());
        assert!(s.watch("self", t0));
        assert!(!s.watch("self", t0), "already watched: no extra sample");
        for i in 0..5 {
            let now = t0 + Duration::from_secs(2 * i);
            s.sample(now, i as f64, &[me()]);
            assert_eq!(s.next_deadline(), Some(now + Duration::from_secs(2)));
        }
        let series = s.series("self").expect("series");
        assert_eq!(series.samples.len(), 3, "the ring is bounded");
        assert_eq!(series.source, Some(Source::Procfs));
        assert!(series.pids.contains(&std::process::id()));
        // Past the watch window: no sample, no deadline.
        let late = t0 + Duration::from_secs(11);
        s.sample(late, 11.0, &[me()]);
        assert_eq!(s.next_deadline(), None);
        assert_eq!(s.series("self").map(|x| x.samples.len()), Some(3));
        assert_eq!(
            s.series("self")
                .and_then(|x| x.samples.last())
                .map(|x| x.at),
            Some(4.0)
        );
    }

    #[test]
    fn always_mode_and_disabled() {
        let mut s = Sampler::new(SamplerOptions {
            interval: Some(Duration::from_secs(1)),
            watch_for: None,
            capacity: 10,
        });
        let t0 = Instant::now();
        s.arm(t0);
        assert!(s.due(t0));
        s.sample(t0, 0.0, &[me()]);
        assert_eq!(s.series("self").map(|x| x.samples.len()), Some(1));
        assert!(!s.due(t0));
        let mut off = Sampler::new(SamplerOptions {
            interval: None,
            ..SamplerOptions::default()
        });
        assert!(!off.watch("self", t0));
        off.sample(t0, 0.0, &[me()]);
        assert_eq!(off.next_deadline(), None);
        assert!(
            off.series("self").is_none()
                || off.series("self").is_some_and(|x| x.samples.is_empty())
        );
    }

    #[test]
    fn a_vanished_process_is_an_error_not_a_sample() {
        let mut s = Sampler::new(SamplerOptions::default());
        let t0 = Instant::now();
        let gone = Target {
            unit: "gone".into(),
            pid: u32::MAX - 1,
            cgroup: None,
            unit_name: None,
        };
        s.watch("gone", t0);
        s.sample(t0, 0.0, &[gone]);
        let series = s.series("gone").expect("series");
        assert!(series.samples.is_empty());
        assert!(series.error.is_some());
    }
}
