//! CPU and memory samples of running units for `sysg inspect`.
//!
//! A unit is measured through its cgroup v2 (`cpu.stat` `usage_usec`, `memory.current`) when it
//! has one of its own, else by summing its process tree in /proc (`utime + stime` plus the time
//! of reaped children, and resident pages). Samples go to a bounded ring per unit
//! (`sampler.rs`), and only while someone is looking: an idle supervisor is never woken to
//! measure units nobody inspects.

pub mod read;
pub mod ring;
pub mod sampler;

use serde::{Deserialize, Serialize};
use thiserror::Error;

pub use ring::Ring;
pub use sampler::{Sampler, SamplerOptions, Target};

/// Failures reading a unit's counters.
#[derive(Debug, Error)]
pub enum MetricsError {
    /// A counter file could not be read (the unit is gone, or the file does not exist).
    #[error("reading {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// A counter file did not have the expected shape.
    #[error("unexpected contents in {0}")]
    Parse(String),
    /// The main process has vanished.
    #[error("process {0} is gone")]
    Gone(u32),
}

/// Where a sample's numbers come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// The unit's own cgroup v2: every process of the unit, including reaped ones; memory
    /// includes page cache charged to the cgroup.
    Cgroup,
    /// The live process tree under the main pid in /proc; memory is the sum of resident sets
    /// (shared pages count once per process).
    Procfs,
}

/// One measurement of a unit.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// When it was taken, in seconds since the Unix epoch.
    pub at: f64,
    /// The unit's main pid at that time: a new pid means the counters started again.
    pub pid: u32,
    /// Cumulative CPU time (user + system) in microseconds since the unit's process started.
    pub cpu_usec: u64,
    /// Memory in bytes (see `Source` for what is counted).
    pub memory_bytes: u64,
    /// Number of processes counted.
    pub tasks: u32,
}

/// Figures derived from a series of samples.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// CPU use between the last two samples, in percent of one CPU.
    pub cpu_percent: Option<f64>,
    /// Average CPU use over the window.
    pub cpu_percent_avg: Option<f64>,
    /// Highest CPU use between two consecutive samples in the window.
    pub cpu_percent_max: Option<f64>,
    /// Memory at the last sample.
    pub memory_bytes: Option<u64>,
    /// Highest memory in the window.
    pub memory_bytes_max: Option<u64>,
    /// Seconds covered by the samples.
    pub window_secs: f64,
}

/// CPU percent between two samples of the same process; `None` across a restart (the
/// counters start again) or when no time passed.
pub fn cpu_percent(a: &Sample, b: &Sample) -> Option<f64> {
    let dt = b.at - a.at;
    if a.pid != b.pid || dt <= 0.0 || b.cpu_usec < a.cpu_usec {
        return None;
    }
    Some((b.cpu_usec - a.cpu_usec) as f64 / (dt * 1e6) * 100.0)
}

/// Summarise samples (oldest first).
pub fn summarize<'a>(samples: impl IntoIterator<Item = &'a Sample>) -> Summary {
    let samples: Vec<&Sample> = samples.into_iter().collect();
    let mut out = Summary::default();
    let Some(last) = samples.last() else {
        return out;
    };
    out.memory_bytes = Some(last.memory_bytes);
    out.memory_bytes_max = samples.iter().map(|s| s.memory_bytes).max();
    out.window_secs = samples.first().map_or(0.0, |f| last.at - f.at);
    let rates: Vec<(f64, f64)> = samples
        .windows(2)
        .filter_map(|w| cpu_percent(w[0], w[1]).map(|p| (p, w[1].at - w[0].at)))
        .collect();
    if let [.., (p, _)] = rates.as_slice() {
        // The latest rate only counts when it ends at the latest sample.
        if samples.len() >= 2 && cpu_percent(samples[samples.len() - 2], last).is_some() {
            out.cpu_percent = Some(*p);
        }
    }
    let time: f64 = rates.iter().map(|(_, dt)| dt).sum();
    if time > 0.0 {
        out.cpu_percent_avg = Some(rates.iter().map(|(p, dt)| p * dt).sum::<f64>() / time);
    }
    out.cpu_percent_max = rates.iter().map(|(p, _)| *p).reduce(f64::max);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(at: f64, pid: u32, cpu_usec: u64, mem: u64) -> Sample {
        Sample {
            at,
            pid,
            cpu_usec,
            memory_bytes: mem,
            tasks: 1,
        }
    }

    #[test]
    fn percent_between_samples() {
        assert_eq!(
            cpu_percent(&s(0.0, 1, 0, 0), &s(2.0, 1, 1_000_000, 0)),
            Some(50.0)
        );
        // A restart (new pid) or a counter going back is not a rate.
        assert_eq!(cpu_percent(&s(0.0, 1, 0, 0), &s(2.0, 2, 5, 0)), None);
        assert_eq!(cpu_percent(&s(0.0, 1, 9, 0), &s(2.0, 1, 5, 0)), None);
        assert_eq!(cpu_percent(&s(2.0, 1, 0, 0), &s(2.0, 1, 5, 0)), None);
    }

    #[test]
    fn summary_of_a_window() {
        let v = [
            s(0.0, 1, 0, 10),
            s(1.0, 1, 1_000_000, 30),
            s(3.0, 1, 1_500_000, 20),
        ];
        let sum = summarize(&v);
        assert_eq!(sum.cpu_percent, Some(25.0));
        assert_eq!(sum.cpu_percent_max, Some(100.0));
        assert_eq!(sum.cpu_percent_avg, Some(50.0));
        assert_eq!(sum.memory_bytes, Some(20));
        assert_eq!(sum.memory_bytes_max, Some(30));
        assert_eq!(sum.window_secs, 3.0);
        let restarted = [s(0.0, 1, 0, 10), s(1.0, 2, 0, 30)];
        assert_eq!(summarize(&restarted).cpu_percent, None);
        assert_eq!(summarize(&[]), Summary::default());
    }
}
