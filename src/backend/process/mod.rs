//! The fork/exec backend. (Placeholder signature; replaced by the real backend.)

use super::{AdoptRecord, Backend, BackendError, BackendPaths, EventSink};
use crate::spec::UnitSpec;

/// Output echo for foreground mode.
pub type Echo = Box<dyn Fn(&str, crate::logs::Kind, &[u8]) + Send + Sync>;

/// Fork/exec backend.
pub struct ProcessBackend;

impl ProcessBackend {
    /// New backend.
    pub fn new(
        _paths: BackendPaths,
        _echo: Option<Echo>,
        _sink: EventSink,
    ) -> Result<ProcessBackend, BackendError> {
        todo!()
    }
}

impl Backend for ProcessBackend {
    fn name(&self) -> &'static str {
        "process"
    }
    fn start(&mut self, _spec: &UnitSpec) -> Result<u32, BackendError> {
        todo!()
    }
    fn signal(&mut self, _unit: &str, _signal: i32) -> Result<(), BackendError> {
        todo!()
    }
    fn kill(&mut self, _unit: &str) -> Result<(), BackendError> {
        todo!()
    }
    fn adopt(&mut self, _record: &AdoptRecord) -> Result<Option<u32>, BackendError> {
        todo!()
    }
    fn records(&self) -> Vec<AdoptRecord> {
        todo!()
    }
}
