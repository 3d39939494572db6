//! Database URLs: which engine a URL names, the SQLite file it points at, the URL handed to
//! sqlx, the default URL, and the redacted form that goes into messages (never a password).

use std::path::{Path, PathBuf};

use crate::{Engine, FarmError};

/// A URL the farm accepts, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    /// The database file (made absolute against the current directory).
    Sqlite(PathBuf),
    /// The URL as given (sqlx parses it).
    Postgres(String),
}

impl Target {
    pub(crate) fn engine(&self) -> Engine {
        match self {
            Target::Sqlite(_) => Engine::Sqlite,
            Target::Postgres(_) => Engine::Postgres,
        }
    }

    /// The URL sqlx connects with. For SQLite `create` picks `mode=rwc` (init) over `mode=rw`
    /// (open, which must not create a missing file).
    pub(crate) fn sqlx_url(&self, create: bool) -> String {
        match self {
            Target::Sqlite(path) => {
                let mode = if create { "rwc" } else { "rw" };
                format!("sqlite://{}?mode={mode}", encode_path(path))
            }
            Target::Postgres(url) => url.clone(),
        }
    }
}

/// `sqlite://PATH`, `sqlite:PATH`, `postgres://...`, `postgresql://...`; anything else is
/// [`FarmError::BadUrl`].
pub(crate) fn parse(url: &str) -> Result<Target, FarmError> {
    let bad = || FarmError::BadUrl { url: redact(url) };
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(Target::Postgres(url.to_string()));
    }
    let path = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")).ok_or_else(bad)?;
    // The farm picks the open mode itself; a query string would be taken for part of the name.
    if path.is_empty() || path.contains('?') {
        return Err(bad());
    }
    let path = Path::new(path);
    let path =
        if path.is_absolute() { path.to_path_buf() } else { std::env::current_dir().map_err(|_| bad())?.join(path) };
    Ok(Target::Sqlite(path))
}

/// Percent-encodes every byte of the path but the unreserved ones and `/`, so that sqlx's URL
/// parser (which percent-decodes) gives back exactly this file name, whatever it holds.
fn encode_path(path: &Path) -> String {
    let mut out = String::new();
    for &b in path.as_os_str().as_encoded_bytes() {
        if b.is_ascii_alphanumeric() || b"/-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The URL with the password (of `user:password@` and of a `password=` parameter) replaced by
/// `***`, for messages.
pub fn redact(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else { return url.to_string() };
    let rest_start = scheme_end + 3;
    let authority_end = url[rest_start..].find(['/', '?']).map_or(url.len(), |i| rest_start + i);
    let authority = &url[rest_start..authority_end];
    let mut out = url[..rest_start].to_string();
    match authority.rfind('@') {
        Some(at) => {
            let userinfo = &authority[..at];
            match userinfo.find(':') {
                Some(colon) => out.push_str(&format!("{}:***", &userinfo[..colon])),
                None => out.push_str(userinfo),
            }
            out.push_str(&authority[at..]);
        }
        None => out.push_str(authority),
    }
    let tail = &url[authority_end..];
    match tail.split_once('?') {
        Some((path, query)) => {
            let pairs: Vec<String> = query
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
                    _ => pair.to_string(),
                })
                .collect();
            out.push_str(&format!("{path}?{}", pairs.join("&")));
        }
        None => out.push_str(tail),
    }
    out
}

/// [`crate::Db::default_url`] with the environment read through `var` (testable without
/// touching the process environment).
pub(crate) fn default_url_from(var: impl Fn(&str) -> Option<String>) -> String {
    let set = |name: &str| var(name).filter(|v| !v.is_empty());
    if let Some(url) = set("QUADBENCH_DB") {
        return url;
    }
    let data = match set("XDG_DATA_HOME") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(set("HOME").unwrap_or_else(|| ".".to_string())).join(".local/share"),
    };
    format!("sqlite://{}", data.join("quadbench").join("farm.db").display())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_supported_forms() {
        assert_eq!(parse("sqlite:///tmp/f.db").unwrap(), Target::Sqlite("/tmp/f.db".into()));
        assert_eq!(parse("sqlite:/tmp/f.db").unwrap(), Target::Sqlite("/tmp/f.db".into()));
        let rel = parse("sqlite://rel/f.db").unwrap();
        assert_eq!(rel, Target::Sqlite(std::env::current_dir().unwrap().join("rel/f.db")));
        assert_eq!(parse("postgres://u@h/d").unwrap().engine(), Engine::Postgres);
        assert_eq!(parse("postgresql://u@h/d").unwrap().engine(), Engine::Postgres);
        for bad in ["mysql://u@h/d", "/tmp/f.db", "sqlite://", "sqlite:///f.db?mode=ro", "", "postgres:/x"] {
            assert!(matches!(parse(bad), Err(FarmError::BadUrl { .. })), "{bad}");
        }
    }

    #[test]
    fn sqlite_urls_encode_the_path_and_the_mode() {
        let t = Target::Sqlite("/tmp/a b%#.db".into());
        assert_eq!(t.sqlx_url(true), "sqlite:///tmp/a%20b%25%23.db?mode=rwc");
        assert_eq!(t.sqlx_url(false), "sqlite:///tmp/a%20b%25%23.db?mode=rw");
    }

    #[test]
    fn redacts_passwords() {
        assert_eq!(redact("postgres://u:secret@h:5432/d"), "postgres://u:***@h:5432/d");
        assert_eq!(redact("postgres://u@h/d"), "postgres://u@h/d");
        assert_eq!(redact("postgres://h/d?user=u&password=secret"), "postgres://h/d?user=u&password=***");
        assert_eq!(redact("postgres://u:p@ss@h"), "postgres://u:***@h");
        assert_eq!(redact("sqlite:///tmp/f.db"), "sqlite:///tmp/f.db");
    }

    #[test]
    fn default_url_prefers_the_variable_then_xdg_then_home() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string())
        };
        assert_eq!(default_url_from(env(&[("QUADBENCH_DB", "postgres://x"), ("HOME", "/h")])), "postgres://x");
        assert_eq!(
            default_url_from(env(&[("QUADBENCH_DB", ""), ("XDG_DATA_HOME", "/x"), ("HOME", "/h")])),
            "sqlite:///x/quadbench/farm.db"
        );
        assert_eq!(default_url_from(env(&[("HOME", "/h")])), "sqlite:///h/.local/share/quadbench/farm.db");
    }
}
