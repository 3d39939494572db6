//! Raw latency samples, one CSV per run (`samples/<run>.csv`: `run_id,metric,index,value_ms`),
//! written when the run finishes; runs kept by `--resume` already have theirs.

use super::{ResultSink, SinkError};
use crate::events::Event;
use std::path::{Path, PathBuf};

pub struct SamplesCsv {
    out: PathBuf,
}

pub fn open(out: &Path) -> Box<dyn ResultSink> {
    Box::new(SamplesCsv { out: out.to_path_buf() })
}

impl ResultSink for SamplesCsv {
    fn event(&mut self, e: &Event) -> Result<(), SinkError> {
        let Event::RunFinished { record, resumed: false, .. } = e else { return Ok(()) };
        if record.samples_csv.is_empty() {
            return Ok(());
        }
        let path = self.out.join(&record.samples_csv);
        crate::results::write_samples_csv(&path, &record.id, &record.samples).map_err(|e| SinkError::io(&path, e))
    }
}
