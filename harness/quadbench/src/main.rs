//! The `quadbench` binary: command-line parsing and exit codes. Work happens in the library.

mod bless;
mod cli;
mod compare;
mod progress;

fn main() {
    std::process::exit(cli::main());
}
