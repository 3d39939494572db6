//! `report.json`: the tables with raw numbers, the claims and the statistics method, for
//! dashboards that would rather not parse Markdown.

use super::{Artefact, Report, ReportError};
use serde::Serialize;

pub const REPORT_SCHEMA: &str = "quadbench.report/1";

#[derive(Serialize)]
struct Json<'a> {
    schema: &'static str,
    scenario: &'a str,
    package: &'a str,
    package_sha256: &'a str,
    complete: bool,
    statistics: &'a crate::stats::Method,
    claims: &'a [quadbench_schema::results::ClaimResult],
    tables: &'a [super::tables::Table],
    plots: Vec<String>,
}

pub fn export(rep: &Report) -> Result<Vec<Artefact>, ReportError> {
    let r = &rep.results;
    let j = Json {
        schema: REPORT_SCHEMA,
        scenario: &r.scenario.name,
        package: &r.package.name,
        package_sha256: &r.package.sha256,
        complete: r.complete,
        statistics: &r.statistics,
        claims: &r.claims,
        tables: &rep.tables,
        plots: rep
            .plots
            .iter()
            .flat_map(|p| [format!("plots/{}.svg", p.name), format!("plots/{}.png", p.name)])
            .collect(),
    };
    let s = serde_json::to_string_pretty(&j)
        .map_err(|e| ReportError::Encode { what: "report.json".into(), message: e.to_string() })?;
    Ok(vec![Artefact::text("report.json", s + "\n")])
}
