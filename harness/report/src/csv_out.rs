//! `tables/<id>.csv`: one file per table with raw numbers; an interval becomes three columns
//! (`<key>`, `<key>_ci_low`, `<key>_ci_high`), and a column with flagged values (a p99 of too
//! few samples) gets `<key>_flag` beside the raw value.

use super::tables::{Cell, Table};
use super::{Artefact, Report, ReportError};

fn num(v: &Option<f64>) -> String {
    v.map_or(String::new(), |x| format!("{x}"))
}

pub fn table(t: &Table) -> Result<String, ReportError> {
    let err = |e: csv::Error| ReportError::Encode { what: format!("tables/{}.csv", t.id), message: e.to_string() };
    let mut w = csv::Writer::from_writer(Vec::new());
    // A column carries an interval when any of its cells does.
    let has_ci: Vec<bool> =
        (0..t.columns.len()).map(|i| t.rows.iter().any(|r| matches!(r[i], Cell::Ci { .. }))).collect();
    let has_flag: Vec<bool> =
        (0..t.columns.len()).map(|i| t.rows.iter().any(|r| matches!(r[i], Cell::Flagged { .. }))).collect();
    let mut header = Vec::new();
    for ((c, ci), flag) in t.columns.iter().zip(&has_ci).zip(&has_flag) {
        header.push(c.key.clone());
        if *ci {
            header.push(format!("{}_ci_low", c.key));
            header.push(format!("{}_ci_high", c.key));
        }
        if *flag {
            header.push(format!("{}_flag", c.key));
        }
    }
    w.write_record(&header).map_err(err)?;
    for row in &t.rows {
        let mut rec = Vec::new();
        for ((cell, ci), has_flag) in row.iter().zip(&has_ci).zip(&has_flag) {
            let mut flag = String::new();
            match cell {
                Cell::Text(s) => rec.push(s.clone()),
                Cell::Num { value, .. } => rec.push(num(value)),
                Cell::Flagged { value, flag: f } => {
                    rec.push(num(value));
                    flag = f.clone();
                }
                Cell::Ci { value, ci_low, ci_high, .. } => {
                    rec.push(num(value));
                    rec.push(num(ci_low));
                    rec.push(num(ci_high));
                }
            }
            if *ci && !matches!(cell, Cell::Ci { .. }) {
                rec.extend([String::new(), String::new()]);
            }
            if *has_flag {
                rec.push(flag);
            }
        }
        w.write_record(&rec).map_err(err)?;
    }
    let bytes = w
        .into_inner()
        .map_err(|e| ReportError::Encode { what: format!("tables/{}.csv", t.id), message: e.to_string() })?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

pub fn export(rep: &Report) -> Result<Vec<Artefact>, ReportError> {
    rep.tables.iter().map(|t| Ok(Artefact::text(format!("tables/{}.csv", t.id), table(t)?))).collect()
}
