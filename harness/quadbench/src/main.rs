//! The `quadbench` binary: command-line parsing and exit codes. Work happens in the library.

mod cli;
mod progress;

fn main() {
    std::process::exit(cli::main());
}
