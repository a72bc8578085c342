//! `vivarium`: run user-written Python actions in a WebAssembly sandbox.

mod cli;
mod exit;
mod run;
mod runtime_cmd;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    init_tracing(cli.json_logs);
    let result = match &cli.command {
        cli::Command::Run(args) => run::run(&cli, args),
        cli::Command::Runtime(cmd) => runtime_cmd::run(&cli, cmd),
    };
    match result {
        Ok(code) => code.into(),
        Err(failure) => {
            failure.report(cli.json_logs);
            failure.code.into()
        }
    }
}

/// Vivarium's own diagnostics go to stderr: human text, or JSON lines with `--json-logs`.
/// `RUST_LOG` overrides the default level (info for Vivarium, warnings for libraries).
fn init_tracing(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,vivarium=info,vivarium_runtime=info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.with_target(false).without_time().init();
    }
}
