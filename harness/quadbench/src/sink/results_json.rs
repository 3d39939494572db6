//! `results.json`: rewritten atomically (temporary file + rename) after every finished run, so
//! the file on disk always holds every run finished so far and claims evaluated on them.

use super::{ResultSink, SinkError};
use crate::claims;
use crate::events::Event;
use crate::results::{self, Results};
use quadbench_schema::claim::Claim;
use quadbench_schema::method::Method;
use std::path::{Path, PathBuf};

pub struct ResultsJson {
    path: PathBuf,
    results: Option<Results>,
    claims: Vec<Claim>,
    order: Vec<String>,
}

pub fn open(out: &Path) -> Box<dyn ResultSink> {
    Box::new(ResultsJson { path: out.join("results.json"), results: None, claims: Vec::new(), order: Vec::new() })
}

impl ResultsJson {
    fn write(&self) -> Result<(), SinkError> {
        let Some(r) = &self.results else { return Ok(()) };
        results::write_json_atomic(&self.path, r).map_err(|e| SinkError::io(&self.path, e))
    }
}

impl ResultSink for ResultsJson {
    fn event(&mut self, e: &Event) -> Result<(), SinkError> {
        match e {
            Event::ScenarioStarted { header, claims, order, .. } => {
                self.results = Some((**header).clone());
                self.claims = claims.clone();
                self.order = order.clone();
                Ok(())
            }
            Event::RunFinished { record, .. } => {
                if let Some(r) = &mut self.results {
                    r.runs.push((**record).clone());
                    // Plan order, whatever the order runs finished in: the same file every time.
                    let at = |id: &str| self.order.iter().position(|o| o == id).unwrap_or(usize::MAX);
                    r.runs.sort_by_key(|x| at(&x.id));
                    r.claims = claims::evaluate_claims(&self.claims, &r.runs);
                    r.statistics = Method::for_replicates(crate::report::groups::replicated(&r.runs));
                }
                self.write()
            }
            Event::ScenarioFinished { .. } => {
                if let Some(r) = &mut self.results {
                    r.complete = true;
                }
                self.write()
            }
            _ => Ok(()),
        }
    }
}
