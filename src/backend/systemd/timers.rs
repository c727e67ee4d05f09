//! Cron jobs as transient timers: `sysg-<project>-<job>.timer` with its `.service` created in
//! the same call, so `systemctl list-timers` shows it; the watch thread reports each elapse and
//! run.

use zbus::zvariant::Value;

use super::watch::{Track, TrackKind};
use super::{describe, is_no_such_unit, naming, properties, start_call_err, SystemdBackend};
use crate::backend::BackendError;
use crate::spec::UnitSpec;

/// Wall-clock microseconds, the unit of systemd's `…Timestamp` and `LastTriggerUSec`.
fn realtime_usec() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

impl SystemdBackend {
    pub(super) fn arm_timer_unit(
        &mut self,
        spec: &UnitSpec,
        calendar: &str,
    ) -> Result<(), BackendError> {
        let service = spec.name.as_str();
        let start_err = |message: String| BackendError::Start {
            unit: service.to_string(),
            message,
        };
        let sname = self.unit_name(service);
        let tname = naming::timer_name(&self.project, service);
        naming::check_length(&sname).map_err(start_err)?;
        naming::check_length(&tname).map_err(start_err)?;
        let spath = naming::unit_object_path(&sname);
        let tpath = naming::unit_object_path(&tname);
        let sprops = properties::service_properties(spec).map_err(|e| start_err(e.to_string()))?;
        let tprops = properties::timer_properties(spec, calendar);
        if let Some(why) = self.shared.lock().dead.clone() {
            return Err(start_err(format!(
                "the systemd backend lost its signal connection: {why}"
            )));
        }
        // A timer of this job from before (a crashed supervisor's, or the one being replaced)
        // goes first; its service is unloaded with it once no run is live.
        self.stop_if_loaded(&tname)?;
        self.ensure_free(service, &tname, &tpath)?;
        self.ensure_free(service, &sname, &spath)?;

        let created = realtime_usec();
        {
            let mut st = self.shared.lock();
            st.tracks
                .insert(spath.clone(), Track::timer_runs(service, &sname, created));
            st.tracks
                .insert(tpath.clone(), Track::timer(service, &tname, created));
        }
        let forget = |me: &Self| {
            let mut st = me.shared.lock();
            st.tracks.remove(&spath);
            st.tracks.remove(&tpath);
        };
        let targs: Vec<(&str, Value<'_>)> = tprops
            .iter()
            .map(|(k, v)| (k.as_str(), v.clone()))
            .collect();
        let sargs: Vec<(&str, Value<'_>)> = sprops
            .iter()
            .map(|(k, v)| (k.as_str(), v.clone()))
            .collect();
        let aux: [(&str, &[(&str, Value<'_>)]); 1] = [(sname.as_str(), &sargs)];
        let job = match self
            .manager()?
            .start_transient_unit(&tname, "fail", &targs, &aux)
        {
            Ok(j) => j.as_str().to_string(),
            Err(e) => {
                forget(self);
                let all: Vec<properties::Property> =
                    tprops.iter().chain(&sprops).cloned().collect();
                return Err(start_call_err(service, &all, e));
            }
        };
        let result = self.wait_job(service, &tname, &tpath, &job, super::START_TIMEOUT, false)?;
        if result != "done" {
            forget(self);
            return Err(start_err(format!(
                "systemd could not start {tname}: job {result} (see `journalctl -u {tname}`)"
            )));
        }
        tracing::debug!(unit = service, "{tname} armed: OnCalendar={calendar}");
        Ok(())
    }

    pub(super) fn disarm_timer_unit(&mut self, unit: &str) -> Result<(), BackendError> {
        let tname = naming::timer_name(&self.project, unit);
        // The service's track stays: a live run still reports its end.
        self.shared
            .lock()
            .tracks
            .retain(|_, t| !(t.kind == TrackKind::Timer && t.service == unit));
        self.stop_if_loaded(&tname)
    }

    pub(super) fn trigger_unit(&mut self, unit: &str) -> Result<(), BackendError> {
        let sname = self.unit_name(unit);
        match self.manager()?.start_unit(&sname, "replace") {
            Ok(_) => Ok(()),
            Err(e) if is_no_such_unit(&e) => Err(BackendError::NotRunning {
                unit: unit.to_string(),
            }),
            Err(e) => Err(BackendError::Other(format!(
                "{unit}: StartUnit {sname}: {}",
                describe(&e)
            ))),
        }
    }
}
