fn main() {
    std::process::exit(systemg::cli::main());
}
