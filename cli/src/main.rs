//! `agora`: a personal node of Agora. Thin: everything is in the library (`agora_cli`).

fn main() -> std::process::ExitCode {
    agora_cli::main()
}
