//! The pre-initialized interpreter: the built reactor, initialized once (CPython started, the
//! guest runner and every module it imports loaded) and captured with Wizer into a new module
//! whose linear memory starts in that state. Each call instantiates the snapshot afresh, so
//! it pays for none of that start-up and never sees another call's state.
//!
//! WASI host state is not part of a snapshot, only linear memory and globals: wasi-libc's
//! table of preopened directories, filled while the runner's imports ran, expects the same
//! guest paths in the same order at run time ([`MOUNTS_IN_ORDER`]). The snapshot is taken
//! with an empty environment and the single argument `python`, so nothing of the process that
//! made it is left in the image.

use std::fs;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use vivarium_runtime::{
    BuiltInterpreter, ModuleSource, Reactor, RuntimeError, lock_exclusive, store_with_digest,
};
use wasmtime::{Config, Engine, Instance, Linker, Store, Val};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::p2::pipe::{MemoryInputPipe, MemoryOutputPipe};
use wasmtime_wasi::{FsPerms, WasiCtxBuilder};
use wasmtime_wizer::{InstanceState, SnapshotVal, ValType, Wizer};

use crate::bytecode::BYTECODE_MOUNT;
use crate::error::SandboxError;
use crate::profile::Profile;
use crate::protocol::RUNNER_SOURCE;
use crate::sandbox::{ACTION_MOUNT, DEPENDENCY_MOUNT};
use crate::scratch::SCRATCH_MOUNT;

/// Where the built interpreter's standard library appears inside the guest (its `sys.path`).
pub const STDLIB_MOUNT: &str = "/usr/local/lib/python3.13";
/// The guest paths preopened for the pre-initialized interpreter, in the order it was
/// snapshotted with; every call preopens exactly these, in this order (all read-only but the
/// call's scratch folder, which the snapshot sees as an empty read-only one).
pub const MOUNTS_IN_ORDER: [&str; 5] = [
    STDLIB_MOUNT,
    ACTION_MOUNT,
    DEPENDENCY_MOUNT,
    BYTECODE_MOUNT,
    SCRATCH_MOUNT,
];
/// The reactor's export that starts CPython and loads the runner (read from stdin).
const INIT_EXPORT: &str = "vivarium_init";
/// Bumped when how a snapshot is made changes, so that older snapshots are not reused.
const SNAPSHOT_FORMAT: &str = "vivarium-snapshot-v3";
/// Standard-library modules actions commonly import, loaded into the snapshot besides what
/// the runner imports, so that a call does not pay for unmarshalling and running them (about
/// 20 ms for `typing` alone). A module is loaded, never run on behalf of an action: an
/// action's own file with one of these names is not imported (`import typing` finds the
/// preloaded one), as for any module already loaded when the action starts.
pub const PRELOADED_MODULES: &[&str] = &[
    "base64",
    "collections",
    "copy",
    "csv",
    "dataclasses",
    "datetime",
    "decimal",
    "enum",
    "functools",
    "hashlib",
    "io",
    "ipaddress",
    "itertools",
    "math",
    "random",
    "re",
    "statistics",
    "string",
    "textwrap",
    "typing",
    "urllib.parse",
    "uuid",
    "zlib",
    "zoneinfo",
];
/// Most bytes the initialization may print (only read when it fails).
const INIT_OUTPUT_BYTES: usize = 64 * 1024;

/// The snapshot of `built` for `profile` with this build's runner, from
/// `cache_dir/snapshots/`, made first when missing; returned as a module source whose digest
/// the compile cache checks.
pub fn ensure_snapshot(
    cache_dir: &Path,
    built: &BuiltInterpreter,
    profile: Profile,
) -> Result<ModuleSource, SandboxError> {
    let reactor = profile.reactor(built);
    let init = init_source(profile, built);
    let key = snapshot_key(&reactor.sha256, &built.recipe_sha256, &init);
    let dir = cache_dir.join("snapshots");
    let path = dir.join(format!("{key}.wasm"));
    let digest_path = dir.join(format!("{key}.wasm.sha256"));
    let source = |sha256: String| ModuleSource {
        name: format!("snapshot-{}", &key[..16]),
        path: path.clone(),
        sha256,
        remedy: "the next start takes the snapshot again",
    };
    let recorded = || {
        fs::read_to_string(&digest_path)
            .ok()
            .filter(|_| path.is_file())
            .map(|digest| digest.trim().to_string())
    };
    if let Some(sha256) = recorded() {
        vivarium_runtime::eviction::touch(&path);
        return Ok(source(sha256));
    }
    fs::create_dir_all(&dir).map_err(|e| setup(format!("creating {}: {e}", dir.display())))?;
    // Snapshots differ from take to take (CPython's hash secret is drawn at start), so two
    // processes taking one at once must not mix one's image with the other's digest.
    let _lock = lock_exclusive(&dir.join(format!("{key}.lock"))).map_err(runtime)?;
    if let Some(sha256) = recorded() {
        return Ok(source(sha256));
    }
    let empty = empty_dir(cache_dir)?;
    tracing::info!(
        profile = profile.name(),
        "pre-initializing the interpreter (once per interpreter build)"
    );
    let started = std::time::Instant::now();
    let image = take_snapshot(reactor, &built.stdlib, &init, &empty)?;
    let sha256 = store_with_digest(&path, &digest_path, &image).map_err(runtime)?;
    tracing::info!(elapsed = ?started.elapsed(), bytes = image.len(), "snapshot taken");
    Ok(source(sha256))
}

/// An empty read-only folder under the cache, mounted where a call has nothing to show
/// (the snapshot's own mounts, `/deps` of an action without a layer, `/pycache` of one
/// without bytecode).
pub fn empty_dir(cache_dir: &Path) -> Result<PathBuf, SandboxError> {
    let dir = cache_dir.join("empty");
    fs::create_dir_all(&dir).map_err(|e| setup(format!("creating {}: {e}", dir.display())))?;
    Ok(dir)
}

/// Names a snapshot by everything that shapes it: the reactor, the recipe of its build (which
/// names the standard library the snapshot imports from), the initialization source (the
/// runner with what the profile preloads and sets up), and this format.
fn snapshot_key(reactor_sha256: &str, recipe_sha256: &str, init_source: &str) -> String {
    let mut hasher = Sha256::new();
    for part in [SNAPSHOT_FORMAT, reactor_sha256, recipe_sha256, init_source] {
        hasher.update(part.as_bytes());
        hasher.update([0]);
    }
    hex::encode(hasher.finalize())
}

/// Run last while the snapshot is taken. First it runs the runner's own per-call work a few
/// times (`warm_up`), so that its code is specialized already, and evaluates the signature the
/// user guide gives `main`, `List[Dict[str, Any]]`, so that `typing`'s cache answers it when
/// an action's module is executed (a quarter of loading the guide's example otherwise).
///
/// Then it makes CPython's table of interned strings grow now, so that calls have room in it.
/// Unmarshalling an action's bytecode interns its names, and the first new name would
/// otherwise make every call copy the whole table (tens of thousands of entries) into new
/// pages. Strings interned and dropped still use up the table's room until it grows; growing
/// allocates its new table at once, which tracemalloc sees (its C module: the Python one would
/// load pickle and more into every instance).
///
/// Then it collects garbage, makes every object left immortal (PEP 683, through the shim's
/// `_vivarium.immortalize`) so that taking or dropping a reference to it never writes to its
/// page, and freezes everything into the collector's permanent generation, as CPython advises
/// before forking: a call's collections then walk only the objects the call made. Without
/// these a call copied hundreds of the image's pages and could pay a full collection.
const SETTLE_SNAPSHOT: &str = r#"
warm_up()

def _vivarium_warm_typing():
    from typing import Any, Dict, List
    List[Dict[str, Any]]

_vivarium_warm_typing()
del _vivarium_warm_typing

def _vivarium_intern_headroom():
    import sys, _tracemalloc as tracemalloc
    tracemalloc.start()
    try:
        for index in range(1 << 20):
            before = tracemalloc.get_traced_memory()[0]
            sys.intern("vivarium-headroom-%d" % index)
            if tracemalloc.get_traced_memory()[0] - before >= 1 << 16:
                return
    finally:
        tracemalloc.stop()

_vivarium_intern_headroom()
del _vivarium_intern_headroom

def _vivarium_immortalize_heap():
    import gc, _vivarium
    seen = set()
    pending = gc.get_objects()
    while pending:
        item = pending.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        _vivarium.immortalize(item)
        pending.extend(gc.get_referents(item))

import gc as _vivarium_gc
_vivarium_gc.collect()
_vivarium_immortalize_heap()
del _vivarium_immortalize_heap
_vivarium_gc.freeze()
del _vivarium_gc
"#;

/// The modules of the `vivarium` package every action can import, as (name, source): the
/// package itself first.
const VIVARIUM_PACKAGE: &[(&str, &str)] = &[
    (
        "vivarium",
        include_str!("../../../python-wasm/vivarium/__init__.py"),
    ),
    (
        "vivarium.http",
        include_str!("../../../python-wasm/vivarium/http.py"),
    ),
    (
        "vivarium.state",
        include_str!("../../../python-wasm/vivarium/state.py"),
    ),
];

/// Loads [`VIVARIUM_PACKAGE`] into `sys.modules` from the sources it is given, before the
/// standard modules are preloaded (`vivarium.http` must replace `http.client`'s connection
/// classes before `urllib.request` is first imported).
const LOAD_PACKAGE: &str = r#"
def _vivarium_load_package(modules):
    import sys, types
    for name, source in modules:
        module = types.ModuleType(name)
        module.__file__ = "<%s>" % name.replace(".", "/")
        if name == "vivarium":
            module.__path__ = []
        sys.modules[name] = module
        exec(compile(source, module.__file__, "exec"), module.__dict__)
        parent, _, child = name.rpartition(".")
        if parent:
            setattr(sys.modules[parent], child, module)
"#;

/// What the reactor's initialization executes as the `vivarium_runner` module: the runner,
/// then the `vivarium` package, then the preloaded modules (the standard ones and the
/// profile's, under a name the runner does not use), then the profile's own code, then
/// [`SETTLE_SNAPSHOT`].
fn init_source(profile: Profile, built: &BuiltInterpreter) -> String {
    let names: Vec<String> = PRELOADED_MODULES
        .iter()
        .copied()
        .chain(profile.preloaded())
        .map(|name| format!("{name:?}"))
        .collect();
    let path: Vec<String> = profile
        .path_additions(built)
        .into_iter()
        .map(|folder| python_str(&format!("{STDLIB_MOUNT}/{folder}")))
        .collect();
    let package: Vec<String> = VIVARIUM_PACKAGE
        .iter()
        .map(|(name, source)| format!("({}, {})", python_str(name), python_str(source)))
        .collect();
    format!(
        "{RUNNER_SOURCE}\n{LOAD_PACKAGE}\n_vivarium_load_package([{}])\ndel _vivarium_load_package\n\ndef _vivarium_preload():\n    import importlib, sys\n    sys.path[0:0] = [{}]\n    for name in ({},):\n        importlib.import_module(name)\n\n_vivarium_preload()\ndel _vivarium_preload\n{}\n{SETTLE_SNAPSHOT}",
        package.join(", "),
        path.join(", "),
        names.join(", "),
        profile.init_code()
    )
}

/// `text` as a Python string literal: every character outside printable ASCII, and the
/// quote and backslash, escaped as `\uXXXX`/`\UXXXXXXXX`.
fn python_str(text: &str) -> String {
    let mut literal = String::with_capacity(text.len() + 2);
    literal.push('"');
    for c in text.chars() {
        match c {
            ' '..='~' if c != '"' && c != '\\' => literal.push(c),
            c if u32::from(c) <= 0xffff => literal.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => literal.push_str(&format!("\\U{:08x}", u32::from(c))),
        }
    }
    literal.push('"');
    literal
}

/// Runs the reactor's initialization (`init_source`, as the runner module) under a plain
/// engine, with `stdlib` mounted, and captures the result.
fn take_snapshot(
    reactor: &Reactor,
    stdlib: &Path,
    init_source: &str,
    empty: &Path,
) -> Result<Vec<u8>, SandboxError> {
    let wasm = reactor.read_verified().map_err(runtime)?;
    let mut wizer = Wizer::new();
    wizer.init_func(INIT_EXPORT);
    let (context, instrumented) = wizer.instrument(&wasm).map_err(|e| {
        setup(format!(
            "instrumenting the interpreter for a snapshot: {e:#}"
        ))
    })?;
    let engine = Engine::new(&Config::new()).map_err(|e| setup(format!("{e:#}")))?;
    let module = wasmtime::Module::new(&engine, &instrumented)
        .map_err(|e| setup(format!("compiling the instrumented interpreter: {e:#}")))?;
    let output = MemoryOutputPipe::new(INIT_OUTPUT_BYTES);
    let wasi = init_context(stdlib, init_source, empty, &output)?;
    let mut linker: Linker<WasiP1Ctx> = Linker::new(&engine);
    wasmtime_wasi::p1::add_to_linker_sync(&mut linker, |ctx| ctx)
        .map_err(|e| setup(format!("{e:#}")))?;
    crate::host_call::add_trapping_stubs(&mut linker)?;
    let mut store = Store::new(&engine, wasi);
    let instance = linker.instantiate(&mut store, &module).map_err(|e| {
        setup(format!(
            "instantiating the interpreter for a snapshot: {e:#}"
        ))
    })?;
    initialize(&mut store, &instance, &output)?;
    let mut state = Captured {
        store: &mut store,
        instance,
        unreadable: None,
    };
    let image = block_on(wizer.snapshot(&context, &mut state))?
        .map_err(|e| setup(format!("capturing the snapshot: {e:#}")))?;
    match state.unreadable {
        Some(what) => Err(setup(format!("capturing the snapshot: {what}"))),
        None => Ok(image),
    }
}

/// Calls `_initialize` (the C runtime's constructors), then the interpreter's own start.
fn initialize(
    store: &mut Store<WasiP1Ctx>,
    instance: &Instance,
    output: &MemoryOutputPipe,
) -> Result<(), SandboxError> {
    let failed = |what: &str, detail: String| {
        let printed = String::from_utf8_lossy(&output.contents()).into_owned();
        setup(format!("{what}: {detail}\n{printed}"))
    };
    let constructors = instance
        .get_typed_func::<(), ()>(&mut *store, "_initialize")
        .map_err(|e| failed("the interpreter is not a reactor", format!("{e:#}")))?;
    constructors
        .call(&mut *store, ())
        .map_err(|e| failed("_initialize trapped", format!("{e:#}")))?;
    let init = instance
        .get_typed_func::<(), i32>(&mut *store, INIT_EXPORT)
        .map_err(|e| failed("the interpreter has no vivarium_init", format!("{e:#}")))?;
    match init.call(&mut *store, ()) {
        Ok(0) => Ok(()),
        Ok(code) => Err(failed("vivarium_init failed", format!("exit code {code}"))),
        Err(e) => Err(failed("vivarium_init trapped", format!("{e:#}"))),
    }
}

/// The WASI context of the initialization: the runner on stdin, the run-time mounts in their
/// run-time order, one argument, no environment.
fn init_context(
    stdlib: &Path,
    init: &str,
    empty: &Path,
    output: &MemoryOutputPipe,
) -> Result<WasiP1Ctx, SandboxError> {
    let mut builder = WasiCtxBuilder::new();
    builder
        .args(&["python"])
        .stdin(MemoryInputPipe::new(init.as_bytes().to_vec()))
        .stdout(output.clone())
        .stderr(output.clone());
    let hosts: [&Path; MOUNTS_IN_ORDER.len()] = [stdlib, empty, empty, empty, empty];
    for (guest, host) in MOUNTS_IN_ORDER.into_iter().zip(hosts) {
        builder
            .preopened_dir(host, guest, FsPerms::ReadOnly)
            .map_err(|e| setup(format!("mounting {} at {guest}: {e:#}", host.display())))?;
    }
    Ok(builder.build_p1())
}

/// The initialized instance, as Wizer reads it.
struct Captured<'a> {
    store: &'a mut Store<WasiP1Ctx>,
    instance: Instance,
    /// Set when a global or memory Wizer asked for could not be read.
    unreadable: Option<String>,
}

impl InstanceState for Captured<'_> {
    async fn global_get(&mut self, name: &str, _: ValType) -> SnapshotVal {
        let global = self.instance.get_global(&mut *self.store, name);
        match global.map(|g| g.get(&mut *self.store)) {
            Some(Val::I32(x)) => SnapshotVal::I32(x),
            Some(Val::I64(x)) => SnapshotVal::I64(x),
            Some(Val::F32(x)) => SnapshotVal::F32(x),
            Some(Val::F64(x)) => SnapshotVal::F64(x),
            Some(Val::V128(x)) => SnapshotVal::V128(x.as_u128()),
            // The instrumented module exports every global it snapshots, as a number; anything
            // else would make a wrong snapshot, which is refused once Wizer is done.
            other => {
                self.unreadable = Some(format!("global {name} reads as {other:?}"));
                SnapshotVal::I32(0)
            }
        }
    }

    async fn memory_contents(&mut self, name: &str, contents: impl FnOnce(&[u8]) + Send) {
        match self.instance.get_memory(&mut *self.store, name) {
            Some(memory) => contents(memory.data(&*self.store)),
            None => {
                self.unreadable = Some(format!("memory {name} is not exported"));
                contents(&[]);
            }
        }
    }
}

/// Runs a future that never waits on anything (Wizer's snapshot over a finished instance).
fn block_on<F: std::future::Future>(future: F) -> Result<F::Output, SandboxError> {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .map(|runtime| runtime.block_on(future))
        .map_err(|e| setup(format!("no async runtime for the snapshot: {e}")))
}

fn setup(message: String) -> SandboxError {
    SandboxError::Setup(message)
}

fn runtime(error: RuntimeError) -> SandboxError {
    SandboxError::Setup(error.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_literals_escape_everything_but_printable_ascii() {
        assert_eq!(python_str("a\"b\\c"), r#""a\u0022b\u005cc""#);
        assert_eq!(
            python_str("x\ny\u{e9}\u{1f600}"),
            r#""x\u000ay\u00e9\U0001f600""#
        );
    }

    /// A build as the snapshot's source sees it (nothing is read from its files).
    fn built() -> BuiltInterpreter {
        let reactor = |file: &str| vivarium_runtime::Reactor {
            path: PathBuf::from(file),
            sha256: "00".into(),
        };
        BuiltInterpreter {
            reactor: reactor("standard.wasm"),
            numpy_reactor: reactor("numpy.wasm"),
            numpy_version: "2.4.6".into(),
            pandas_reactor: reactor("pandas.wasm"),
            pandas_version: "3.1.1".into(),
            standins: "vivarium-standins".into(),
            stdlib: PathBuf::from("lib"),
            tests: PathBuf::from("test"),
            version: "3.13.5".into(),
            recipe_sha256: "01".into(),
        }
    }

    #[test]
    fn the_vivarium_package_is_part_of_what_names_the_snapshot() {
        let source = init_source(Profile::Standard, &built());
        assert!(source.contains(&python_str(VIVARIUM_PACKAGE[1].1)));
        assert!(source.find("_vivarium_load_package([") < source.find("_vivarium_preload()"));
    }

    #[test]
    fn each_profile_imports_its_packages_into_its_own_snapshot() {
        let source = |profile| init_source(profile, &built());
        assert!(source(Profile::Numpy).contains("\"numpy.random\""));
        assert!(!source(Profile::Standard).contains("\"numpy.random\""));
        assert!(!source(Profile::Numpy).contains("\"pandas\","));
        assert!(source(Profile::Pandas).contains("\"numpy.random\", \"pandas\","));
        let keys: std::collections::HashSet<String> = Profile::ALL
            .into_iter()
            .map(|profile| snapshot_key("00", "01", &source(profile)))
            .collect();
        assert_eq!(keys.len(), Profile::ALL.len());
    }

    #[test]
    fn a_new_recipe_names_a_new_snapshot_even_with_the_same_reactor() {
        let source = init_source(Profile::Pandas, &built());
        assert_ne!(
            snapshot_key("00", "01", &source),
            snapshot_key("00", "02", &source),
            "the standard library the snapshot imports from may have changed"
        );
    }

    #[test]
    fn only_the_pandas_profile_puts_the_stand_ins_on_its_path_before_loading_pandas() {
        let pandas = init_source(Profile::Pandas, &built());
        let folder = python_str(&format!("{STDLIB_MOUNT}/vivarium-standins"));
        assert!(pandas.find(&folder) < pandas.find("\"pandas\","));
        assert!(!init_source(Profile::Numpy, &built()).contains(&folder));
    }
}
