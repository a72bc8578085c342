//! The precompiled-module cache: Cranelift compiles the interpreter once per interpreter and
//! engine configuration; every later process maps the result in about a millisecond.

use std::fs::{self, File};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use wasmtime::{Engine, Module};

use crate::error::RuntimeError;
use crate::fetch::sha256_file;

/// A module ready to instantiate, and whether this call had to compile it.
pub struct CompiledModule {
    /// The interpreter module, bound to the engine it was loaded with.
    pub module: Module,
    /// True when this call paid for a Cranelift compile (cache miss, corrupt or stale entry).
    pub compiled_now: bool,
    /// Where the precompiled artifact lives.
    pub path: PathBuf,
}

/// A WebAssembly module on local disk with the SHA-256 it must have: the pinned interpreter,
/// or a pre-initialized snapshot of the built one.
#[derive(Debug, Clone)]
pub struct ModuleSource {
    /// Names its cache entries (with the engine's fingerprint): distinct per module content.
    pub name: String,
    /// The `.wasm` file.
    pub path: PathBuf,
    /// Its expected SHA-256, lowercase hex; checked before compiling.
    pub sha256: String,
    /// What happens after a file that fails the check is removed (for the error message).
    pub remedy: &'static str,
}

/// Loads the precompiled form of `source` for `engine` from the cache in `cache_dir`,
/// compiling and storing it first when it is missing, corrupt or built for another engine.
///
/// Entries are keyed by the interpreter's SHA-256 and the engine's compatibility hash, written
/// atomically (temporary file, then rename) with a digest beside them; concurrent processes
/// wait on a lock instead of compiling the same module twice.
pub fn load_or_compile(
    engine: &Engine,
    source: &ModuleSource,
    cache_dir: &Path,
) -> Result<CompiledModule, RuntimeError> {
    let dir = cache_dir.join("compiled");
    fs::create_dir_all(&dir).map_err(RuntimeError::io("creating", &dir))?;
    let entry = CacheEntry::new(&dir, source, engine);
    if let Some(module) = entry.load(engine, Repair::No) {
        crate::eviction::touch(&entry.artifact);
        return Ok(CompiledModule {
            module,
            compiled_now: false,
            path: entry.artifact,
        });
    }
    let lock = entry.lock()?;
    let module = match entry.load(engine, Repair::RemoveBroken) {
        Some(module) => CompiledModule {
            module,
            compiled_now: false,
            path: entry.artifact.clone(),
        },
        None => {
            entry.compile(engine, source)?;
            let module = entry.load(engine, Repair::No).ok_or_else(|| {
                RuntimeError::Compile("the freshly compiled module could not be loaded back".into())
            })?;
            CompiledModule {
                module,
                compiled_now: true,
                path: entry.artifact.clone(),
            }
        }
    };
    drop(lock);
    Ok(module)
}

/// Whether a failed load may delete the entry: only the holder of the lock may.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Repair {
    No,
    RemoveBroken,
}

struct CacheEntry {
    artifact: PathBuf,
    digest_file: PathBuf,
    lock_file: PathBuf,
}

impl CacheEntry {
    fn new(dir: &Path, source: &ModuleSource, engine: &Engine) -> Self {
        let stem = format!("{}-{:016x}", source.name, engine_fingerprint(engine));
        Self {
            artifact: dir.join(format!("{stem}.cwasm")),
            digest_file: dir.join(format!("{stem}.cwasm.sha256")),
            lock_file: dir.join(format!("{stem}.lock")),
        }
    }

    /// The cached module when it exists, matches its recorded digest and suits this engine.
    /// With `Repair::RemoveBroken` anything else is removed so that it gets rebuilt.
    fn load(&self, engine: &Engine, repair: Repair) -> Option<Module> {
        let recorded = fs::read_to_string(&self.digest_file).ok()?;
        let intact =
            matches!(sha256_file(&self.artifact), Ok((actual, _)) if actual == recorded.trim());
        if !intact {
            if repair == Repair::RemoveBroken && self.artifact.exists() {
                tracing::warn!(path = %self.artifact.display(), "compiled module is corrupt; rebuilding it");
                self.remove();
            }
            return None;
        }
        // SAFETY: the file was written by `Engine::precompile_module` in `compile` below and
        // still matches the digest recorded right after writing it; wasmtime checks that it
        // suits this engine's configuration and version before using it.
        match unsafe { Module::deserialize_file(engine, &self.artifact) } {
            Ok(module) => Some(module),
            Err(error) => {
                if repair == Repair::RemoveBroken {
                    tracing::warn!(%error, "compiled module does not suit this engine; rebuilding it");
                    self.remove();
                }
                None
            }
        }
    }

    fn compile(&self, engine: &Engine, source: &ModuleSource) -> Result<(), RuntimeError> {
        let (digest, size) = sha256_file(&source.path)?;
        if digest != source.sha256 {
            if let Err(error) = fs::remove_file(&source.path) {
                tracing::warn!(%error, "could not remove the damaged module");
            }
            return Err(RuntimeError::Mismatch {
                what: format!("{} (removed; {})", source.path.display(), source.remedy),
                expected: source.sha256.clone(),
                actual: digest,
                size,
            });
        }
        let wasm = fs::read(&source.path).map_err(RuntimeError::io("reading", &source.path))?;
        tracing::info!(module = %source.name, "compiling with Cranelift (once per machine)");
        let started = std::time::Instant::now();
        let artifact = engine
            .precompile_module(&wasm)
            .map_err(|e| RuntimeError::Compile(format!("{e:#}")))?;
        tracing::info!(elapsed = ?started.elapsed(), bytes = artifact.len(), "compiled the module");
        crate::store_with_digest(&self.artifact, &self.digest_file, &artifact).map(drop)
    }

    fn lock(&self) -> Result<File, RuntimeError> {
        crate::lock_exclusive(&self.lock_file)
    }

    fn remove(&self) {
        for path in [&self.digest_file, &self.artifact] {
            if let Err(error) = fs::remove_file(path)
                && error.kind() != std::io::ErrorKind::NotFound
            {
                tracing::warn!(path = %path.display(), %error, "could not remove a stale cache file");
            }
        }
    }
}

/// A stable number for everything about `engine` that makes compiled code incompatible.
fn engine_fingerprint(engine: &Engine) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut hasher);
    hasher.finish()
}
