//! `tables/<id>.tex`: one booktabs table per file, ready to `\input` into a paper (needs
//! `\usepackage{booktabs}` and `\usepackage{graphicx}` in the preamble).

use super::tables::Table;
use super::{Artefact, Report, ReportError};

/// Escape LaTeX special characters.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => o.push_str("\\textbackslash{}"),
            '&' | '%' | '$' | '#' | '_' | '{' | '}' => {
                o.push('\\');
                o.push(c);
            }
            '~' => o.push_str("\\textasciitilde{}"),
            '^' => o.push_str("\\textasciicircum{}"),
            '<' => o.push_str("\\textless{}"),
            '>' => o.push_str("\\textgreater{}"),
            c => o.push(c),
        }
    }
    o
}

pub fn table(t: &Table) -> String {
    let spec: String = t.columns.iter().map(|c| if c.numeric { 'r' } else { 'l' }).collect();
    let mut s = format!(
        "% quadbench report: {}. Generated from results.json; do not edit.\n% Needs \\usepackage{{booktabs}} and \\usepackage{{graphicx}}.\n",
        t.title
    );
    s.push_str("\\begin{table*}[htbp]\n\\centering\n");
    s.push_str(&format!("\\caption{{{}}}\n\\label{{tab:quadbench-{}}}\n", esc(&t.title), t.id));
    s.push_str(&format!("\\resizebox{{\\textwidth}}{{!}}{{%\n\\begin{{tabular}}{{{spec}}}\n\\toprule\n"));
    s.push_str(&t.columns.iter().map(|c| esc(&c.label)).collect::<Vec<_>>().join(" & "));
    s.push_str(" \\\\\n\\midrule\n");
    if t.rows.is_empty() {
        s.push_str(&format!("\\multicolumn{{{}}}{{c}}{{\\emph{{no data}}}} \\\\\n", t.columns.len()));
    }
    for row in &t.rows {
        let cells: Vec<String> = row
            .iter()
            .map(|c| match c.parts() {
                (p, ci) if ci.is_empty() => esc(&p),
                (p, ci) => format!("{} {{\\scriptsize {}}}", esc(&p), esc(&ci)),
            })
            .collect();
        s.push_str(&cells.join(" & "));
        s.push_str(" \\\\\n");
    }
    s.push_str("\\bottomrule\n\\end{tabular}}\n");
    if !t.notes.is_empty() {
        s.push_str(&format!(
            "\\par\\smallskip\\footnotesize {}\n",
            t.notes.iter().map(|n| esc(n)).collect::<Vec<_>>().join(" ")
        ));
    }
    s.push_str("\\end{table*}\n");
    s
}

pub fn export(rep: &Report) -> Result<Vec<Artefact>, ReportError> {
    Ok(rep.tables.iter().map(|t| Artefact::text(format!("tables/{}.tex", t.id), table(t))).collect())
}
