//! `vivarium deps lock ACTION`: what an action's dependencies resolve to.

use vivarium_package::PackageLimits;

use crate::cli::{Cli, DepsCommand};
use crate::exit::{Exit, Failure};
use crate::runtime_cmd::{cache_dir, provided_packages};

/// Runs a `deps` subcommand.
pub fn run(cli: &Cli, command: &DepsCommand) -> Result<Exit, Failure> {
    let DepsCommand::Lock { action, deps } = command;
    let cache = cache_dir(cli)?;
    let action = vivarium_package::load_action(action, &cache, &PackageLimits::default())
        .map_err(|e| Failure::new(Exit::BadPackage, e))?;
    let runtime = cli.runtime.unwrap_or_default();
    let provided = provided_packages(&cache, runtime, &action.root)?;
    let lock =
        vivarium_deps::lock_for_action(&action.root, &cache, &deps.config(runtime, provided))
            .map_err(|e| Failure::new(Exit::BadDependencies, e))?;
    match lock {
        Some(lock) => {
            let text =
                serde_json::to_string_pretty(&lock).map_err(|e| Failure::new(Exit::Internal, e))?;
            println!("{text}");
        }
        None => eprintln!(
            "nothing to resolve: the action has no pyproject.toml dependencies, or brings its own dependencies/ folder"
        ),
    }
    Ok(Exit::Success)
}
