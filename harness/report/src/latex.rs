//! `tables/<id>.tex`: one booktabs table per file, ready to `\input` into a paper (needs
//! `\usepackage{booktabs}` in the preamble).
//!
//! Laid out to be read, never scaled: set in `\footnotesize` (8 pt in a 10 pt paper) within the
//! `\textwidth` of a two-column paper (469 pt in `article`; IEEE and ACM templates are wider).
//! Columns with the same value on every row go to the caption once, an interval sits under its
//! point, headers take two lines, long text wraps, and a table still too wide is split into
//! stacked parts that repeat its leading key columns. Labels are `tab:qb-<scenario>-<hash>-<id>`,
//! the hash over the scenario, package and runs, so that the tables of several results sets go
//! into one paper without clashing.

use super::tables::{self, Cell, Table};
use super::{Artefact, Report, ReportError};
use quadbench_schema::results::Results;

/// Width the parts are laid out for, pt: under the 469 pt of a two-column `article`, since the
/// widths below are estimates.
const BUDGET_PT: f64 = 440.0;
/// `\tabcolsep` set in each table, pt (both sides of every column).
const COLSEP_PT: f64 = 4.0;
/// Text columns (with spaces) wider than this wrap in a `p` column of this width, pt.
const WRAP_PT: f64 = 80.0;

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

/// Escape prose, writing a power such as `10^6` as math (`$10^{6}$`) instead of a literal caret.
pub fn text(s: &str) -> String {
    let c: Vec<char> = s.chars().collect();
    let (mut out, mut plain) = (String::new(), String::new());
    let mut i = 0;
    while i < c.len() {
        let run_from = |k: usize| (k..c.len()).find(|&j| !c[j].is_ascii_digit()).unwrap_or(c.len());
        if c[i].is_ascii_digit() && (i == 0 || !c[i - 1].is_ascii_alphanumeric()) {
            let j = run_from(i);
            let sign = usize::from(c.get(j + 1) == Some(&'-'));
            if c.get(j) == Some(&'^') && c.get(j + 1 + sign).is_some_and(|d| d.is_ascii_digit()) {
                let k = run_from(j + 1 + sign);
                out.push_str(&esc(&plain));
                plain.clear();
                let (base, exp): (String, String) = (c[i..j].iter().collect(), c[j + 1..k].iter().collect());
                out.push_str(&format!("${base}^{{{exp}}}$"));
                i = k;
                continue;
            }
        }
        plain.push(c[i]);
        i += 1;
    }
    out.push_str(&esc(&plain));
    out
}

/// `qb-<scenario>-<hash>`: the label prefix of one results set.
pub fn label_prefix(r: &Results) -> String {
    use sha2::Digest;
    let name: String =
        r.scenario.name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '-' }).collect();
    let mut h = sha2::Sha256::new();
    for part in [&r.scenario.sha256, &r.package.sha256].into_iter().chain(r.runs.iter().map(|x| &x.id)) {
        h.update(part.as_bytes());
        h.update(b"\n");
    }
    let hash = format!("{:x}", h.finalize());
    format!("qb-{name}-{}", &hash[..6])
}

/// Estimated width at 8 pt Computer Modern (cmr8 advances, rounded up): digits 4.25 pt,
/// lower case about 4, capitals 6, punctuation and spaces about 2.5.
fn width(s: &str) -> f64 {
    s.chars()
        .map(|c| match c {
            '0'..='9' => 4.25,
            'm' | 'w' => 6.5,
            'i' | 'l' | 'j' | 't' | 'f' | 'r' => 2.8,
            'a'..='z' => 4.3,
            'A'..='Z' => 6.2,
            '.' | ',' | ':' | ';' | '[' | ']' | '(' | ')' | ' ' | '-' | '\'' => 2.8,
            _ => 4.5,
        })
        .sum()
}

/// Lines stacked in a cell: a one-column tabular without outer padding, aligned `align`,
/// hanging from the top (`t`) or standing on the bottom (`b`) line.
fn stack(lines: &[String], align: char, pos: char) -> String {
    // `\\{}`: a following `[` is text, not the optional argument of `\\`.
    format!("\\begin{{tabular}}[{pos}]{{@{{}}{align}@{{}}}}{}\\end{{tabular}}", lines.join("\\\\{}"))
}

/// A header over two lines when it has several words (split where the longer line is shortest).
fn head(label: &str, align: char) -> (String, f64) {
    let words: Vec<&str> = label.split(' ').collect();
    if words.len() < 2 {
        return (esc(label), width(label));
    }
    let (a, b) = (1..words.len())
        .map(|k| (words[..k].join(" "), words[k..].join(" ")))
        .min_by_key(|(a, b)| a.len().max(b.len()))
        .unwrap_or_default();
    (stack(&[esc(&a), esc(&b)], align, 'b'), width(&a).max(width(&b)))
}

/// A cell: an interval goes under its point.
fn cell(c: &Cell) -> (String, f64) {
    match c.parts() {
        (p, ci) if ci.is_empty() => (esc(&p), width(&p)),
        (p, ci) => (stack(&[esc(&p), esc(&ci)], 'r', 't'), width(&p).max(width(&ci))),
    }
}

struct Col {
    spec: String,
    head: String,
    cells: Vec<String>,
    /// Width including both `\tabcolsep`s, pt.
    width: f64,
}

fn layout(t: &Table) -> Vec<Col> {
    (0..t.columns.len())
        .map(|i| {
            let c = &t.columns[i];
            let align = if c.numeric { 'r' } else { 'l' };
            let (head, hw) = head(&c.label, align);
            let cells: Vec<(String, f64)> = t.rows.iter().map(|r| cell(&r[i])).collect();
            let w = cells.iter().map(|x| x.1).fold(hw, f64::max);
            // Prose wraps; a name without spaces (a run id) would only break at its hyphens.
            let prose = t.rows.iter().any(|r| r[i].display().contains(' '));
            if !c.numeric && prose && w > WRAP_PT {
                let cells = cells.into_iter().map(|x| format!("\\raggedright {}", x.0)).collect();
                Col { spec: format!("p{{{WRAP_PT:.0}pt}}"), head, cells, width: WRAP_PT + 2.0 * COLSEP_PT }
            } else {
                let cells = cells.into_iter().map(|x| x.0).collect();
                Col { spec: align.to_string(), head, cells, width: w + 2.0 * COLSEP_PT }
            }
        })
        .collect()
}

/// Column indices per part: the leading text columns (up to half the budget) start every part,
/// the others fill as few parts as fit the budget, balanced so that no part is a stub.
fn parts(t: &Table, cols: &[Col]) -> Vec<Vec<usize>> {
    let mut keys = Vec::new();
    let mut key_w = 0.0;
    for (i, c) in t.columns.iter().enumerate() {
        if c.numeric || key_w + cols[i].width > BUDGET_PT / 2.0 || keys.len() + 1 == cols.len() {
            break;
        }
        keys.push(i);
        key_w += cols[i].width;
    }
    // A new part when the next column would pass `limit` (beyond its middle when balancing).
    let fill = |limit: f64, balance: bool| {
        let mut out: Vec<Vec<usize>> = Vec::new();
        let mut w = f64::INFINITY;
        for (i, c) in cols.iter().enumerate().skip(keys.len()) {
            let reach = if balance { c.width / 2.0 } else { c.width };
            if w + reach > limit || w + c.width > BUDGET_PT {
                out.push(keys.clone());
                w = key_w;
            }
            if let Some(p) = out.last_mut() {
                p.push(i);
            }
            w += c.width;
        }
        out
    };
    let greedy = fill(BUDGET_PT, false);
    let rest: f64 = cols[keys.len()..].iter().map(|c| c.width).sum();
    let balanced = fill(key_w + rest / greedy.len().max(1) as f64, true);
    match (greedy.is_empty(), balanced.len() == greedy.len()) {
        (true, _) => vec![keys],
        (false, true) => balanced,
        (false, false) => greedy,
    }
}

pub fn table(full: &Table, prefix: &str) -> String {
    let consts = tables::constant_columns(full);
    let t = &tables::without(full, &consts);
    let label = format!("tab:{prefix}-{}", t.id);
    let mut s = format!(
        "% quadbench report: {}. Generated from results.json; do not edit.\n% \\label{{{label}}}; needs \\usepackage{{booktabs}}. Set in \\footnotesize, not scaled.\n",
        t.title
    );
    s.push_str("\\begin{table*}[tbp]\n\\centering\n");
    let caption = if consts.is_empty() {
        esc(&t.title)
    } else {
        format!("{}. Every row: {}.", esc(&t.title), esc(&tables::constants_text(full, &consts)))
    };
    s.push_str(&format!("\\caption{{{caption}}}\n\\label{{{label}}}\n\\footnotesize\n"));
    s.push_str(&format!("\\setlength{{\\tabcolsep}}{{{COLSEP_PT:.0}pt}}\n"));
    let cols = layout(t);
    for (n, part) in parts(t, &cols).iter().enumerate() {
        if n > 0 {
            s.push_str("\\par\\medskip\n");
        }
        let spec: String = part.iter().map(|&i| cols[i].spec.as_str()).collect();
        s.push_str(&format!("\\begin{{tabular}}{{{spec}}}\n\\toprule\n"));
        s.push_str(&part.iter().map(|&i| cols[i].head.as_str()).collect::<Vec<_>>().join(" & "));
        // \tabularnewline: `\\` is redefined by \raggedright in wrapped columns.
        s.push_str(" \\tabularnewline\n\\midrule\n");
        if t.rows.is_empty() {
            s.push_str(&format!("\\multicolumn{{{}}}{{c}}{{\\emph{{no data}}}} \\tabularnewline\n", part.len()));
        }
        for r in 0..t.rows.len() {
            s.push_str(&part.iter().map(|&i| cols[i].cells[r].as_str()).collect::<Vec<_>>().join(" & "));
            s.push_str(" \\tabularnewline\n");
        }
        s.push_str("\\bottomrule\n\\end{tabular}\n");
    }
    if !t.notes.is_empty() {
        s.push_str(&format!(
            "\\par\\smallskip\\raggedright {}\\par\n",
            t.notes.iter().map(|n| text(n)).collect::<Vec<_>>().join(" ")
        ));
    }
    s.push_str("\\end{table*}\n");
    s
}

pub fn export(rep: &Report) -> Result<Vec<Artefact>, ReportError> {
    let prefix = label_prefix(&rep.results);
    Ok(rep.tables.iter().map(|t| Artefact::text(format!("tables/{}.tex", t.id), table(t, &prefix))).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn powers_are_math_and_carets_are_escaped() {
        assert_eq!(text("MB = 10^6 bytes"), "MB = $10^{6}$ bytes");
        assert_eq!(text("1e-3 = 10^-3, 2^10."), "1e-3 = $10^{-3}$, $2^{10}$.");
        assert_eq!(text("a^b and x_1 10^"), "a\\textasciicircum{}b and x\\_1 10\\textasciicircum{}");
    }

    #[test]
    fn headers_split_into_balanced_lines() {
        let (h, w) = head("task binaries ROM MB", 'r');
        assert!(h.contains("task binaries\\\\{}ROM MB"), "{h}");
        assert_eq!(w, width("task binaries"));
        assert_eq!(head("status", 'l').0, "status");
    }
}
