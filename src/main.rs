fn main() -> std::process::ExitCode {
    umdbt::cli::main()
}
