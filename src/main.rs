//! The `infra` binary: everything lives in the library; this maps it to a process exit code.

fn main() -> std::process::ExitCode {
    infra::cli::main()
}
