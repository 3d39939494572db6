//! Names that become file-name components, run ids and remote paths: one validation rule for
//! package, scenario, task, input, device and library names.

/// What [`safe_name`] accepts, for error messages.
pub const SAFE_NAME_CHARS: &str = "letters, digits, `_`, `-`, `.`, `+`";

/// A name usable as a file-name component: letters, digits, `_`, `-`, `.`, `+` (not only dots,
/// not starting with `-`). `+` is there because vendored libraries carry it (auditwheel's
/// `libc++-71bc274c.so.1.0`); it means nothing to a shell or to adb's quoting, and every remote
/// argument is quoted anyway. A leading `-` would read as an option to the device's tools.
pub fn safe_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && !s.starts_with('-')
        && !s.chars().all(|c| c == '.')
        && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '+'))
}

/// A relative path whose components are all safe names.
pub fn safe_relative_path(s: &str) -> bool {
    !s.starts_with('/') && s.split('/').all(safe_name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn safe_names_admit_vendored_library_names_and_nothing_hostile() {
        for ok in ["astronaut", "w8a16", "libc++-71bc274c.so.1.0", "libQnnHtpV75Skel.so", "a.b_c-d", "x+y"] {
            assert!(safe_name(ok), "{ok}");
        }
        for bad in [
            "", ".", "..", "...", "a b", "a/b", "-rf", "x;y", "$x", "`id`", "it's", "a\nb", "ü", "a*", "~", "a\\b",
            "%s",
        ] {
            assert!(!safe_name(bad), "{bad:?}");
        }
        assert!(!safe_name(&"a".repeat(129)));
        assert!(safe_relative_path("runtime/qnn-0123/onnxruntime_qnn.libs/libc++-71bc274c.so.1.0"));
        for bad in ["/abs", "a//b", "a/../b", "a/./b", "", "a/"] {
            assert!(!safe_relative_path(bad), "{bad:?}");
        }
    }
}
