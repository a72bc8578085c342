//! `vivarium`: run user-written Python actions in a WebAssembly sandbox.

mod cli;
mod deps_cmd;
mod diagnostics;
mod exit;
mod run;
mod runtime_cmd;
mod serve;
mod state_file;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    diagnostics::init(cli.json_logs);
    let result = match &cli.command {
        cli::Command::Run(args) => run::run(&cli, args),
        cli::Command::Runtime(cmd) => runtime_cmd::run(&cli, cmd),
        cli::Command::Serve(args) => serve::run(&cli, args),
        cli::Command::Deps(cmd) => deps_cmd::run(&cli, cmd),
    };
    match result {
        Ok(code) => code.into(),
        Err(failure) => {
            failure.report(cli.json_logs);
            failure.code.into()
        }
    }
}
