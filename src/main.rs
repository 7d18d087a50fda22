//! `wekasim`: the command line of the harness.

mod cli;

fn main() {
    std::process::exit(cli::main());
}
