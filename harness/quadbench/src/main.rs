//! The `quadbench` binary. Everything, the command line included, lives in the library
//! (`quadbench::cmd`), so that tests and the binary share one code path.

fn main() {
    // adb_client copies TERM unquoted into adb's shell service string (`shell,v2,TERM=..:cmd`);
    // a value with `:` or `,` would rewrite the request. Drop such a value while the process
    // is still single-threaded (the adb transport also refuses to run with one).
    if std::env::var("TERM").is_ok_and(|t| !quadbench::device::adb::term_is_safe(&t)) {
        // SAFETY: no other thread exists yet.
        unsafe { std::env::remove_var("TERM") };
    }
    std::process::exit(quadbench::cmd::main());
}
