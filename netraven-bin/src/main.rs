//! The `netraven` binary: parses arguments and hands over to [`netraven_server::cli`].

fn main() -> std::process::ExitCode {
    netraven_server::cli::main()
}
