//! YAML loading shared by scenarios, device profiles and package manifests: parse with
//! serde-saphyr and turn its errors into ones that name the file, line, column and key, and
//! suggest the nearest valid key for an unknown one.

use serde::de::DeserializeOwned;
use std::path::Path;

/// A YAML file that failed to parse or validate.
#[derive(Debug, thiserror::Error)]
#[error("{path}:{line}:{column}: {message}{hint}")]
pub struct YamlError {
    pub path: String,
    pub line: usize,
    pub column: usize,
    /// The key at the error, where one could be found.
    pub key: Option<String>,
    pub message: String,
    /// Fix suggestion, already formatted (starts with "\n  hint: ").
    pub hint: String,
}

impl YamlError {
    /// A semantic error found after parsing, located by searching the text for `needle`.
    pub fn at(path: &Path, text: &str, needle: &str, message: String, fix: &str) -> YamlError {
        let (line, column) = locate(text, needle).unwrap_or((1, 1));
        YamlError {
            path: path.display().to_string(),
            line,
            column,
            key: key_on_line(text, line),
            message,
            hint: if fix.is_empty() { String::new() } else { format!("\n  hint: {fix}") },
        }
    }
}

/// 1-based line and column of the first occurrence of `needle`.
pub fn locate(text: &str, needle: &str) -> Option<(usize, usize)> {
    text.lines().enumerate().find_map(|(i, l)| l.find(needle).map(|c| (i + 1, c + 1)))
}

fn key_on_line(text: &str, line: usize) -> Option<String> {
    let l = text.lines().nth(line.checked_sub(1)?)?;
    let t = l.trim_start().trim_start_matches("- ").trim_start();
    let (k, _) = t.split_once(':')?;
    let k = k.trim();
    (!k.is_empty() && k.chars().all(|c| c.is_alphanumeric() || c == '_' || c == '-' || c == '.')).then(|| k.to_string())
}

/// Nearest candidate by edit distance, if close enough to be a plausible typo.
pub fn nearest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (strsim::damerau_levenshtein(word, c), c))
        // A typo (small edit distance) or a truncation (`psnr` for `psnr_db`).
        .filter(|(d, c)| {
            *d <= 2.max(c.len().div_ceil(3)) || (word.len() >= 3 && (c.starts_with(word) || word.starts_with(c)))
        })
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Parse `text` (read from `path`) into `T`, with located, helpful errors.
pub fn parse<T: DeserializeOwned>(path: &Path, text: &str) -> Result<T, YamlError> {
    serde_saphyr::from_str::<T>(text).map_err(|e| {
        let loc = e.location();
        let (line, column) = loc.map(|l| (l.line() as usize, l.column() as usize)).unwrap_or((1, 1));
        // The crate's Display is "error: line L column C: MESSAGE\n --> snippet"; keep the message.
        let full = e.to_string();
        let first = full.lines().next().unwrap_or("").to_string();
        let message = first.split_once(": ").map(|(_, rest)| rest).unwrap_or(&first);
        let message = message
            .split_once(": ")
            .filter(|(p, _)| p.starts_with("line "))
            .map(|(_, m)| m)
            .unwrap_or(message)
            .to_string();
        let snippet: String = full.lines().skip(1).map(|l| format!("\n{l}")).collect();
        let mut hint = String::new();
        if let Some(rest) = message.strip_prefix("unknown field `") {
            let (field, expected) = rest.split_once('`').unwrap_or((rest, ""));
            let valid: Vec<&str> = expected
                .trim_start_matches(", expected one of ")
                .trim_start_matches(", expected ")
                .split(", ")
                .map(|s| s.trim_matches('`'))
                .filter(|s| !s.is_empty())
                .collect();
            hint = match nearest(field, valid.iter().copied()) {
                Some(n) => format!("\n  hint: did you mean `{n}`? (valid keys: {})", valid.join(", ")),
                None => format!("\n  hint: remove `{field}`; valid keys here: {}", valid.join(", ")),
            };
        } else if let Some(rest) = message.strip_prefix("missing field `") {
            let field = rest.split('`').next().unwrap_or(rest);
            hint = format!("\n  hint: add `{field}:` to this mapping");
        }
        YamlError {
            path: path.display().to_string(),
            line,
            column,
            key: key_on_line(text, line),
            message,
            hint: format!("{snippet}{hint}"),
        }
    })
}

/// Read and parse a YAML file.
pub fn load<T: DeserializeOwned>(path: &Path) -> Result<(T, String), YamlError> {
    let text = std::fs::read_to_string(path).map_err(|e| YamlError {
        path: path.display().to_string(),
        line: 0,
        column: 0,
        key: None,
        message: format!("cannot read file: {e}"),
        hint: "\n  hint: check the path (relative paths are resolved from the current directory)".into(),
    })?;
    Ok((parse(path, &text)?, text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct S {
        repeat: u32,
        name: String,
    }

    #[test]
    fn unknown_key_suggests_nearest_and_names_line() {
        let e = parse::<S>(Path::new("x.yaml"), "name: a\nrepet: 3\n").unwrap_err();
        assert_eq!((e.line, e.column), (2, 1));
        assert_eq!(e.key.as_deref(), Some("repet"));
        let s = e.to_string();
        assert!(s.starts_with("x.yaml:2:1: unknown field `repet`"), "{s}");
        assert!(s.contains("did you mean `repeat`?"), "{s}");
    }

    #[test]
    fn bad_value_names_key() {
        let e = parse::<S>(Path::new("x.yaml"), "name: a\nrepeat: two\n").unwrap_err();
        assert_eq!(e.line, 2);
        assert_eq!(e.key.as_deref(), Some("repeat"));
    }

    #[test]
    fn nearest_rejects_far_words() {
        assert_eq!(nearest("strategies", ["strategy", "devices"]), Some("strategy"));
        assert_eq!(nearest("zzzzzz", ["strategy", "devices"]), None);
    }
}
