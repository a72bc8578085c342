//! `vivarium run ACTION --input FILE`: one call, result on stdout, logs on stderr, the
//! action's state kept in a file between runs.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value;
use vivarium_egress::{Author, Egress, EgressClient, EgressLimits, OperatorEgress, SystemLookup};
use vivarium_package::PackageLimits;
use vivarium_runtime::{FetchOptions, Progress};
use vivarium_sandbox::{
    ActionEnv, Call, Input, LogLine, ORIGIN_CLUSTER_URL, Outcome, OutcomeKind, Profile,
    ResultShape, RuntimeChoice,
};

use vivarium_store::{CommitFailure, RunOutcome, StateRefusal};

use crate::cli::{Cli, DepsArgs, EgressArgs, RunArgs};
use crate::exit::{Exit, Failure};
use crate::runtime_cmd::{cache_dir, provided_packages, ready_sandbox};
use crate::state_file::StateFile;

/// Runs the action once and reports its outcome.
pub fn run(cli: &Cli, args: &RunArgs) -> Result<Exit, Failure> {
    let limits = args.limits();
    limits
        .validate()
        .map_err(|e| Failure::new(Exit::Usage, e))?;
    let env = ActionEnv::new(args.env.iter().cloned()).map_err(|e| Failure::new(Exit::Usage, e))?;
    let data = read_records(&args.input, limits.input_bytes)?;
    let cache = cache_dir(cli)?;
    let action = vivarium_package::load_action(&args.action, &cache, &PackageLimits::default())
        .map_err(|e| Failure::new(Exit::BadPackage, e))?;
    let runtime = cli.runtime.unwrap_or_default();
    let lock = dependency_lock(&action.root, &cache, &args.deps, runtime)?;
    let options = FetchOptions {
        progress: Progress::Bar,
        ..FetchOptions::default()
    };
    let egress = egress(&args.egress, &args.env)?;
    let state = StateFile::for_action(args.state.as_deref(), &cache, &args.action)?;
    let imports = vivarium_package::imported_modules(&action.root);
    let provided = lock.iter().flat_map(|installed| &installed.lock.provided);
    let profile = Profile::needed_by(
        imports
            .iter()
            .map(String::as_str)
            .chain(provided.map(|package| package.name.as_str())),
    );
    let sandbox = ready_sandbox(&cache, runtime, profile, &options)?;
    let call = Call {
        action_dir: &action.root,
        input: Input::Data(data),
        env: &env,
        limits,
        shape: ResultShape::Records,
        dependency_layer: lock.as_ref().map(|installed| installed.layer.as_path()),
        egress: Some(&egress),
        cpu_slot: None,
        state: Some(state.access()?),
        log_sink: None,
    };
    let mut outcome = sandbox
        .run(&call)
        .map_err(|e| Failure::new(Exit::for_setup_error(&e), e))?;
    let committed = commit_state(&state, &mut outcome)?;
    report(&outcome, cli.json_logs);
    keep_cache_tidy(&cache);
    match committed {
        Ok(changed) => {
            report_state(&state, &changed, cli.json_logs);
            Ok(Exit::for_outcome(outcome.kind))
        }
        Err(refusal) => {
            print_refusal(&refusal, cli.json_logs);
            Ok(Exit::StateConflict)
        }
    }
}

/// How often `vivarium run` sweeps the cache it shares with the service (which sweeps hourly).
const CACHE_SWEEP_INTERVAL: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// Evicts from the cache what the default policy lets go, once a day at most, after the
/// result is out: a machine that only ever runs actions from the command line keeps a
/// bounded cache too.
fn keep_cache_tidy(cache: &Path) {
    let policy = vivarium_runtime::eviction::EvictionPolicy::DEFAULT;
    if let Some(swept) =
        vivarium_runtime::eviction::sweep_if_due(cache, &policy, CACHE_SWEEP_INTERVAL)
        && swept.evicted > 0
    {
        tracing::info!(
            evicted = swept.evicted,
            freed_bytes = swept.freed_bytes,
            "cache swept"
        );
    }
}

/// Commits a successful call's state writes to the file; on a refusal withholds its result,
/// as the service does.
fn commit_state(
    state: &StateFile,
    outcome: &mut Outcome,
) -> Result<Result<Vec<String>, StateRefusal>, Failure> {
    if outcome.kind != OutcomeKind::Ok || outcome.state_writes.is_empty() {
        return Ok(Ok(Vec::new()));
    }
    let committed = state.commit(&outcome.state_writes)?;
    if committed.is_err() {
        outcome.result = None;
    }
    Ok(committed)
}

/// Says on stderr which keys the run changed and where they are kept.
fn report_state(state: &StateFile, changed: &[String], json: bool) {
    if changed.is_empty() {
        return;
    }
    let file = state.path().display().to_string();
    if json {
        let line = serde_json::json!({
            "level": "INFO", "logger": "vivarium", "message": "state committed",
            "state_changes": changed, "state_file": file,
        });
        eprintln!("{line}");
    } else {
        eprintln!("state: changed {} in {file}", changed.join(", "));
    }
}

fn print_refusal(refusal: &StateRefusal, json: bool) {
    if json {
        let line = serde_json::json!({
            "level": "ERROR", "logger": "vivarium", "outcome": CommitFailure::StateConflict,
            "message": refusal.to_string(),
        });
        eprintln!("{line}");
    } else {
        let kind = RunOutcome::Uncommitted(CommitFailure::StateConflict);
        eprintln!("error[{kind}]: {refusal}; nothing was stored and the result is withheld");
    }
}

/// The action's egress from the command line: its allowed hosts, the internal hosts, and
/// the cluster `ORIGIN_CLUSTER_URL` names when `--env` gives it (reachable as in the service).
fn egress(args: &EgressArgs, env: &[(String, String)]) -> Result<Egress, Failure> {
    let usage = |message: String| Failure {
        code: Exit::Usage,
        message,
    };
    let operator = OperatorEgress::new(&args.internal_host, EgressLimits::DEFAULT)
        .map_err(|e| usage(format!("--internal-host: {e}")))?;
    let extra_roots = args
        .egress_ca
        .as_deref()
        .map(|path| {
            std::fs::read(path).map_err(|e| usage(format!("--egress-ca {}: {e}", path.display())))
        })
        .transpose()?;
    let client = EgressClient::new(extra_roots.as_deref(), Arc::new(SystemLookup))
        .map_err(|e| usage(format!("--egress-ca: {e}")))?;
    let origin = env
        .iter()
        .rev()
        .find(|(key, _)| key == ORIGIN_CLUSTER_URL)
        .map(|(_, value)| value.as_str());
    Egress::for_action(
        &args.allow_host,
        Author::Operator,
        origin,
        Arc::new(operator),
        client,
    )
    .map_err(|e| usage(format!("--allow-host: {e}")))
}

/// The installed layer of the action's pyproject.toml dependencies, resolving and installing
/// it on first need; `None` when the action has none (or brings a `dependencies/` folder).
/// The action's resolved `pyproject.toml` dependencies, installed, if it has any.
fn dependency_lock(
    action_root: &Path,
    cache: &Path,
    deps: &DepsArgs,
    runtime: RuntimeChoice,
) -> Result<Option<InstalledLock>, Failure> {
    let provided = provided_packages(cache, runtime, action_root)?;
    let config = deps.config(runtime, provided);
    let refused = |e: vivarium_deps::DepsError| Failure::new(Exit::BadDependencies, e);
    let Some(lock) =
        vivarium_deps::lock_for_action(action_root, cache, &config).map_err(refused)?
    else {
        return Ok(None);
    };
    let layer = vivarium_deps::install(&lock, cache, &config).map_err(refused)?;
    Ok(Some(InstalledLock { lock, layer }))
}

/// A lock and the layer it is installed in.
struct InstalledLock {
    lock: vivarium_deps::Lock,
    layer: PathBuf,
}

/// Reads the input document and checks it is a JSON array, refusing more than `limit` bytes.
fn read_records(source: &str, limit: usize) -> Result<Value, Failure> {
    let bad = |message: String| Failure {
        code: Exit::BadInput,
        message,
    };
    let mut bytes = Vec::new();
    let taken = if source == "-" {
        std::io::stdin()
            .take(limit as u64 + 1)
            .read_to_end(&mut bytes)
    } else {
        std::fs::File::open(Path::new(source))
            .and_then(|f| f.take(limit as u64 + 1).read_to_end(&mut bytes))
    };
    let name = if source == "-" {
        "standard input"
    } else {
        source
    };
    taken.map_err(|e| bad(format!("cannot read the input {name}: {e}")))?;
    if bytes.len() > limit {
        return Err(bad(format!(
            "the input {name} is larger than the {} input limit; send fewer records or raise --max-input",
            vivarium_sandbox::human_bytes(limit as u64)
        )));
    }
    let value: Value = serde_json::from_slice(&bytes)
        .map_err(|e| bad(format!("the input {name} is not valid JSON: {e}")))?;
    if !value.is_array() {
        return Err(bad(format!(
            "the input {name} must be a JSON array of records, like [{{\"message\": \"...\"}}]"
        )));
    }
    Ok(value)
}

/// Prints logs on stderr, then the result on stdout or the error on stderr.
fn report(outcome: &Outcome, json: bool) {
    for line in &outcome.logs {
        print_log(line, json);
    }
    if let Some(result) = &outcome.result {
        let text = serde_json::to_string_pretty(result).unwrap_or_else(|_| result.to_string());
        println!("{text}");
    }
    if let Some(error) = &outcome.error {
        print_error(outcome.kind, error, json);
    }
}

fn print_log(line: &LogLine, json: bool) {
    if json {
        if let Ok(text) = serde_json::to_string(line) {
            eprintln!("{text}");
        }
        return;
    }
    let time = line
        .time
        .as_deref()
        .map(|t| format!("{t} "))
        .unwrap_or_default();
    eprintln!("{time}{:<7} {}: {}", line.level, line.logger, line.message);
    if let Some(exc) = &line.exc {
        for exc_line in exc.lines() {
            eprintln!("    {exc_line}");
        }
    }
}

fn print_error(kind: OutcomeKind, error: &vivarium_sandbox::ActionError, json: bool) {
    if json {
        let line = serde_json::json!({
            "level": "ERROR", "logger": "vivarium", "outcome": kind, "message": error.message, "error": error,
        });
        eprintln!("{line}");
        return;
    }
    eprintln!("error[{kind}]: {}", error.message);
    if !error.traceback.is_empty() {
        eprintln!("Traceback (most recent call last):");
        for frame in &error.traceback {
            eprintln!("{frame}");
        }
        eprintln!("{}: {}", error.type_name, error.message);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(contents: &str) -> tempfile::NamedTempFile {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        std::io::Write::write_all(&mut file, contents.as_bytes()).unwrap();
        file
    }

    #[test]
    fn an_array_is_accepted() {
        let file = write(r#"[{"a": 1}]"#);
        assert_eq!(
            read_records(file.path().to_str().unwrap(), 100).unwrap(),
            serde_json::json!([{"a": 1}])
        );
    }

    #[test]
    fn an_object_is_refused_with_the_expected_shape() {
        let file = write(r#"{"a": 1}"#);
        let failure = read_records(file.path().to_str().unwrap(), 100).unwrap_err();
        assert_eq!(failure.code, Exit::BadInput);
        assert!(
            failure.message.contains("must be a JSON array"),
            "{}",
            failure.message
        );
    }

    #[test]
    fn too_much_input_is_refused_before_parsing() {
        let file = write("[1, 2, 3, 4, 5, 6, 7, 8]");
        let failure = read_records(file.path().to_str().unwrap(), 10).unwrap_err();
        assert!(
            failure
                .message
                .contains("larger than the 10 bytes input limit"),
            "{}",
            failure.message
        );
    }

    #[test]
    fn broken_json_and_missing_files_say_so() {
        let file = write("[1,");
        assert!(
            read_records(file.path().to_str().unwrap(), 100)
                .unwrap_err()
                .message
                .contains("not valid JSON")
        );
        assert!(
            read_records("/no/such/file.json", 100)
                .unwrap_err()
                .message
                .contains("cannot read")
        );
    }
}
