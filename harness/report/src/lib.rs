//! Reports regenerated from a results directory alone (`results.json` + `samples/*.csv`, plus
//! `inputs/` and `outputs/` images for the HTML gallery when present): tables in Markdown,
//! LaTeX (booktabs) and CSV, plots (SVG + PNG), JSON, JUnit XML and a self-contained HTML page.
//! From a sweep directory: claims against each axis, crossovers and cost models ([`sweep`]).
//! From the history across nights (a [`history::RegressionReport`]): the trend dashboard
//! ([`dashboard`]) and the PyTorch/ExecuTorch benchmark v3 records ([`export_v3`]).
//!
//! Exporters are pluggable: one file each, registered in [`EXPORTERS`]; each returns the
//! artefacts it makes (relative path + bytes) and never writes itself. Output is deterministic:
//! no timestamps, no absolute paths, seeded bootstrap, stable ordering; the same inputs give
//! byte-identical artefacts.

#![warn(missing_docs)]

pub mod claims;
mod csv_out;
pub mod dashboard;
pub mod export_v3;
pub mod groups;
mod html;
mod json_out;
mod junit;
mod latex;
mod markdown;
pub mod nights;
pub mod plots;
pub mod regress;
pub mod regress_out;
pub mod stats;
pub mod sweep;
pub mod sweep_fit;
pub mod tables;

/// The history types the dashboard and the v3 export render.
pub use quadbench_schema::history;
use quadbench_schema::results::{LoadError, Results};
use std::path::{Path, PathBuf};

/// One output file, relative to the report directory.
#[derive(Debug, Clone, PartialEq)]
pub struct Artefact {
    /// Path relative to the report directory.
    pub path: String,
    /// The file's bytes.
    pub bytes: Vec<u8>,
}

impl Artefact {
    /// A text artefact.
    pub fn text(path: impl Into<String>, s: String) -> Artefact {
        Artefact { path: path.into(), bytes: s.into_bytes() }
    }
}

/// An exporter: the artefacts of one format.
pub type Exporter = fn(&Report) -> Result<Vec<Artefact>, ReportError>;

/// Every exporter, by format name (`--format`).
pub const EXPORTERS: &[(&str, Exporter)] = &[
    ("md", markdown::export),
    ("tex", latex::export),
    ("csv", csv_out::export),
    ("json", json_out::export),
    ("junit", junit::export),
    ("html", html::export),
    ("plots", plots::export),
];

/// Every format name, for `--format`.
pub fn format_names() -> Vec<&'static str> {
    EXPORTERS.iter().map(|e| e.0).collect()
}

#[derive(Debug, thiserror::Error)]
/// Why a report cannot be made.
pub enum ReportError {
    #[error(transparent)]
    /// The results directory cannot be read.
    Load(#[from] LoadError),
    #[error("unknown report format `{0}`\n  hint: formats are {formats}", formats = format_names().join(", "))]
    /// A format name no exporter has.
    Format(String),
    /// A plot failed to render.
    #[error(
        "plot `{plot}`: {message}\n  hint: this is a bug in quadbench's plotting; please report it with the results directory"
    )]
    Plot {
        /// Which plot.
        plot: String,
        /// What went wrong.
        message: String,
    },
    /// An artefact failed to encode.
    #[error("{what}: {message}")]
    Encode {
        /// Which artefact.
        what: String,
        /// What went wrong.
        message: String,
    },
    /// A sweep directory's index cannot be read.
    #[error("{path}: {message}\n  hint: pass the directory of a `quadbench sweep` (it holds sweep.json)")]
    Sweep {
        /// The index file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// An artefact cannot be written.
    #[error("cannot write {path}: {source}\n  hint: choose another --out directory, or free disk space")]
    Write {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
}

/// Everything the exporters need, computed once.
pub struct Report {
    /// Results with summaries and claims recomputed from the raw samples.
    pub results: Results,
    /// Every table, built once.
    pub tables: Vec<tables::Table>,
    /// Every plot, rendered once.
    pub plots: Vec<plots::Rendered>,
    /// The results directory (images for the HTML gallery); `None` to leave images out.
    pub dir: Option<PathBuf>,
}

impl Report {
    /// Load a results directory and prepare the report.
    pub fn load(dir: &Path) -> Result<Report, ReportError> {
        let mut r = Results::load(dir)?;
        recompute(&mut r);
        Report::from_results(r, Some(dir.to_path_buf()))
    }

    /// Prepare from results whose runs already hold their samples.
    pub fn from_results(results: Results, dir: Option<PathBuf>) -> Result<Report, ReportError> {
        let tables = tables::all(&results);
        let plots = plots::render_all(&results)?;
        Ok(Report { results, tables, plots, dir })
    }

    /// The table with this id.
    pub fn table(&self, id: &str) -> Option<&tables::Table> {
        self.tables.iter().find(|t| t.id == id)
    }
}

/// Recompute summaries (with intervals) and claim verdicts from the raw samples, so that a
/// results file from an older quadbench, or one whose statistics were edited, reports the same
/// as a fresh one. The claim definitions come from the file's claims.
pub fn recompute(r: &mut Results) {
    for run in &mut r.runs {
        if !run.samples.is_empty() {
            run.latency_ms = stats::summaries(&run.samples);
        }
    }
    let mut defs: Vec<quadbench_schema::claim::Claim> = Vec::new();
    // A claim on a metric this quadbench does not know cannot be re-evaluated: it is dropped.
    for (c, metric) in
        r.claims.iter().filter_map(|c| quadbench_schema::metric::Metric::parse(&c.metric).map(|m| (c, m)))
    {
        if !defs.iter().any(|d| d.name == c.name) {
            defs.push(quadbench_schema::claim::Claim {
                name: c.name.clone(),
                metric,
                baseline: c.baseline,
                candidate: c.candidate,
                threshold: c.threshold,
            });
        }
    }
    r.claims = crate::claims::evaluate_claims(&defs, &r.runs);
    r.statistics = stats::Method::for_replicates(groups::replicated(&r.runs));
}

/// Run the named exporters (all when `formats` is empty). Artefacts come back sorted by path.
pub fn render(report: &Report, formats: &[String]) -> Result<Vec<Artefact>, ReportError> {
    for f in formats {
        if !EXPORTERS.iter().any(|e| e.0 == f) {
            return Err(ReportError::Format(f.clone()));
        }
    }
    let mut out = Vec::new();
    for (name, export) in EXPORTERS {
        if formats.is_empty() || formats.iter().any(|f| f == name) {
            out.extend(export(report)?);
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

/// Write artefacts under `out`; returns the paths written.
pub fn write(artefacts: &[Artefact], out: &Path) -> Result<Vec<PathBuf>, ReportError> {
    let mut written = Vec::new();
    for a in artefacts {
        let p = out.join(&a.path);
        let err = |e: std::io::Error| ReportError::Write { path: p.display().to_string(), source: e };
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).map_err(err)?;
        }
        let tmp = p.with_extension("tmp");
        std::fs::write(&tmp, &a.bytes).and_then(|_| std::fs::rename(&tmp, &p)).map_err(err)?;
        written.push(p);
    }
    Ok(written)
}

/// Load `dir`, render `formats` and write them under `out` (default: `dir`).
pub fn generate(dir: &Path, formats: &[String], out: Option<&Path>) -> Result<Vec<PathBuf>, ReportError> {
    let report = Report::load(dir)?;
    let artefacts = render(&report, formats)?;
    write(&artefacts, out.unwrap_or(dir))
}

/// Escape text for HTML and XML.
pub fn xml_escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c if (c as u32) < 0x20 && !matches!(c, '\n' | '\t' | '\r') => o.push('\u{FFFD}'),
            c => o.push(c),
        }
    }
    o
}

/// The scenario file's name (never an absolute path in an artefact).
pub fn scenario_file(r: &Results) -> String {
    Path::new(&r.scenario.path).file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

/// The history fixture (tests/fixtures/history-demo) the dashboard and export tests render.
#[cfg(test)]
pub(crate) fn history_demo() -> history::RegressionReport {
    serde_json::from_str(include_str!("../../../tests/fixtures/history-demo/regressions.json")).unwrap()
}

/// Compare `bytes` with tests/snapshots/history/`name` (with `UPDATE_SNAPSHOTS` set: write it).
#[cfg(test)]
pub(crate) fn check_snapshot(name: &str, bytes: &[u8]) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/snapshots/history").join(name);
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, bytes).unwrap();
        return;
    }
    let golden = std::fs::read(&path).unwrap_or_default();
    assert!(
        golden == bytes,
        "{name} differs from {} (rerun with UPDATE_SNAPSHOTS=1 after an intended change, and review the diff)",
        path.display()
    );
}
