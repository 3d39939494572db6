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

/// A key whose value is wrong, found while validating a parsed file (a transport's settings, a
/// package source, quantization options): which key, what is wrong, and the fix.
/// [`YamlError::for_key`] locates it in the file.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyError {
    pub key: String,
    pub message: String,
    pub fix: String,
}

impl KeyError {
    pub fn new(key: &str, message: impl Into<String>, fix: impl Into<String>) -> KeyError {
        KeyError { key: key.into(), message: message.into(), fix: fix.into() }
    }
}

impl YamlError {
    /// `e` located at its key (`key:`) in the file.
    pub fn for_key(path: &Path, text: &str, e: KeyError) -> YamlError {
        YamlError::at(path, text, &format!("{}:", e.key), e.message, &e.fix)
    }

    /// A semantic error found after parsing, located by searching the text for `needle`; a
    /// `key:` needle is first looked for as a key (so `port:` is not found inside `transport:`).
    pub fn at(path: &Path, text: &str, needle: &str, message: String, fix: &str) -> YamlError {
        let (line, column) = locate_key(text, needle).or_else(|| locate(text, needle)).unwrap_or((1, 1));
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

/// 1-based line and column of the first line whose key is `needle` without its trailing `:`.
fn locate_key(text: &str, needle: &str) -> Option<(usize, usize)> {
    let key = needle.strip_suffix(':')?;
    text.lines().enumerate().find_map(|(i, l)| (line_key(l)? == key).then(|| (i + 1, l.find(key).unwrap_or(0) + 1)))
}

fn key_on_line(text: &str, line: usize) -> Option<String> {
    line_key(text.lines().nth(line.checked_sub(1)?)?).map(str::to_string)
}

/// The key a YAML line starts with (`  - key: value` gives `key`).
fn line_key(l: &str) -> Option<&str> {
    let t = l.trim_start().trim_start_matches("- ").trim_start();
    let (k, _) = t.split_once(':')?;
    let k = k.trim();
    (!k.is_empty() && k.chars().all(|c| c.is_alphanumeric() || c == '_' || c == '-' || c == '.')).then_some(k)
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
        let mut snippet: String = full.lines().skip(1).map(|l| format!("\n{l}")).collect();
        let mut hint = String::new();
        let mut column = column;
        // The parser's own wording names its options and internals; say what it means instead.
        let message = if let Some(rest) = message.strip_prefix("duplicate mapping key: ") {
            let key = rest.split(',').next().unwrap_or(rest).trim().to_string();
            hint = format!("\n  hint: keep one `{key}:` (a later one would silently win elsewhere)");
            snippet = snippet.lines().filter(|l| !l.contains("DuplicateKeyPolicy")).map(|l| format!("\n{l}")).collect();
            format!("key `{key}` appears twice in the same mapping")
        } else if message.starts_with("budget breached") {
            // The column points past a runaway line; the line is what helps.
            column = 1;
            snippet.clear();
            hint = "\n  hint: quadbench files are small; look for a runaway list or a generated block".into();
            "the file is too large to be a quadbench file (over 250000 YAML nodes)".to_string()
        } else {
            message
        };
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
        } else if line > 1 && unclosed_flow(text, line - 1) {
            // The parser trips where the next key begins; the mistake is the bracket left open.
            hint = format!("\n  hint: line {} opens a `[` or `{{` it never closes; close it there", line - 1);
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

/// Whether 1-based `line` of `text` has more `[`/`{` than `]`/`}` (outside quotes and comments).
fn unclosed_flow(text: &str, line: usize) -> bool {
    let Some(l) = text.lines().nth(line - 1) else { return false };
    let (mut depth, mut quote) = (0i32, None);
    for c in l.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(c),
            (None, '#') => break,
            (None, '[' | '{') => depth += 1,
            (None, ']' | '}') => depth -= 1,
            _ => {}
        }
    }
    depth > 0
}

/// Largest YAML file quadbench reads (its files are a few KB; a bigger one is a mistake).
pub const MAX_FILE_BYTES: u64 = 4 << 20;

/// Read and parse a YAML file: a regular file of at most [`MAX_FILE_BYTES`] of UTF-8 text.
pub fn load<T: DeserializeOwned>(path: &Path) -> Result<(T, String), YamlError> {
    let fail = |line: usize, column: usize, message: String, hint: &str| YamlError {
        path: path.display().to_string(),
        line,
        column,
        key: None,
        message,
        hint: format!("\n  hint: {hint}"),
    };
    let meta = std::fs::metadata(path).map_err(|e| {
        fail(
            0,
            0,
            format!("cannot read file: {e}"),
            "check the path (relative paths are resolved from the current directory)",
        )
    })?;
    if !meta.is_file() {
        return Err(fail(0, 0, "not a regular file".into(), "name a YAML file, not a directory, FIFO or device"));
    }
    if meta.len() > MAX_FILE_BYTES {
        return Err(fail(
            0,
            0,
            format!("{} bytes is too large for a quadbench file", meta.len()),
            "check that this is the right file",
        ));
    }
    let bytes =
        std::fs::read(path).map_err(|e| fail(0, 0, format!("cannot read file: {e}"), "check its permissions"))?;
    let text = String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        let before = &e.as_bytes()[..at];
        let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
        let column = at - before.iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1) + 1;
        fail(
            line,
            column,
            format!("not UTF-8 text (invalid byte 0x{:02x} at byte offset {at})", e.as_bytes()[at]),
            "save the file as UTF-8",
        )
    })?;
    Ok((parse(path, &text)?, text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_located_as_a_key_not_inside_another() {
        let text = "name: b\ntransport: ssh\nport: 0\n";
        let e = YamlError::for_key(Path::new("d.yaml"), text, KeyError::new("port", "bad port", "fix"));
        assert_eq!((e.line, e.column, e.key.as_deref()), (3, 1, Some("port")));
        let e = YamlError::at(Path::new("d.yaml"), "a: [x, port: 1]\n", "port:", "m".into(), "");
        assert_eq!((e.line, e.column), (1, 8), "not a key anywhere: the text search still finds it");
    }

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

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct L {
        items: Vec<u32>,
        name: String,
    }

    #[test]
    fn an_unclosed_list_is_blamed_on_its_own_line() {
        let e = parse::<L>(Path::new("x.yaml"), "items: [1, 2\nname: a\n").unwrap_err();
        assert!(e.to_string().contains("line 1 opens a `[`"), "{e}");
        let e = parse::<L>(Path::new("x.yaml"), "items: [1]\nname: a\nname: b\n").unwrap_err();
        assert!(!e.to_string().contains("opens a"), "{e}");
    }

    #[test]
    fn parser_internals_become_plain_words() {
        let e = parse::<L>(Path::new("x.yaml"), "name: a\nname: b\nitems: [1]\n").unwrap_err();
        assert!(e.to_string().contains("key `name` appears twice") && !e.to_string().contains("Options"), "{e}");
        assert_eq!(e.line, 2);
        let big = format!("name: a\nitems: [{}]\n", vec!["1"; 300_000].join(", "));
        let e = parse::<L>(Path::new("x.yaml"), &big).unwrap_err();
        assert!(e.to_string().contains("too large") && !e.to_string().contains("Nodes"), "{e}");
        assert_eq!((e.line, e.column), (2, 1));
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("latin1.yaml");
        std::fs::write(&p, b"name: a\nitems: [1] # caf\xe9\n").unwrap();
        let e = load::<L>(&p).unwrap_err();
        assert!(e.to_string().contains("not UTF-8") && e.to_string().contains("byte offset 24"), "{e}");
        assert_eq!((e.line, e.column), (2, 17));
        let e = load::<L>(d.path()).unwrap_err();
        assert!(e.to_string().contains("not a regular file"), "{e}");
    }
}
