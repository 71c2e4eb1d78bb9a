fn main() {
    std::process::exit(runnerctl::cli::main());
}
