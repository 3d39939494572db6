//! `quadbench report DIR`: regenerate every report artefact from a results directory (or, for a
//! sweep directory, the sweep's tables and plots).

use super::exit::{self, Classify};
use std::path::{Path, PathBuf};

#[derive(clap::Args)]
pub struct ReportArgs {
    /// Results directory (holding results.json and samples/).
    dir: PathBuf,
    /// Comma-separated formats: md, tex, csv, json, junit, html, plots (default: all).
    #[arg(long, value_delimiter = ',')]
    format: Vec<String>,
    /// Output directory (default: the results directory); `-` prints text artefacts to stdout.
    #[arg(long)]
    out: Option<PathBuf>,
}

pub fn report(a: ReportArgs) -> i32 {
    use crate::report;
    // A sweep directory regenerates the sweep's own tables and plots.
    let artefacts = if a.dir.join(report::sweep::INDEX_FILE).is_file() {
        report::sweep::render(&a.dir)
    } else {
        report::Report::load(&a.dir).and_then(|r| report::render(&r, &a.format))
    };
    let artefacts = match artefacts {
        Ok(x) => x,
        Err(e) => return exit::fail(&e),
    };
    if a.out.as_deref() == Some(Path::new("-")) {
        for x in artefacts.iter().filter(|x| !x.path.ends_with(".png")) {
            print!("{}", String::from_utf8_lossy(&x.bytes));
        }
        return exit::OK;
    }
    match report::write(&artefacts, a.out.as_deref().unwrap_or(&a.dir)) {
        Ok(paths) => {
            for p in paths {
                println!("{}", p.display());
            }
            exit::OK
        }
        Err(e) => {
            exit::report(&e);
            e.exit_code()
        }
    }
}
