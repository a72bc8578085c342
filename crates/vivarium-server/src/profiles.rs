//! The sandboxes of the runtime's profiles, and which one an action runs on.
//!
//! The standard profile's sandbox is prepared at start; another profile's (numpy's, pandas')
//! on the first run that needs it, since it costs its own snapshot, compiled module and warm pool
//! (seconds from the cache; once per interpreter build, a minute to compile it:
//! `vivarium runtime build` prepares every profile ahead). An action's profile follows from
//! what its sources import (read once per ZIP) and what its dependencies ask the runtime for.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use tokio::sync::OnceCell;
use vivarium_deps::ProvidedPackage;
use vivarium_sandbox::{PrepareError, PrepareOptions, Profile, Sandbox};

/// One sandbox per profile, each prepared once.
pub struct Sandboxes {
    standard: Sandbox,
    /// Every other profile's, prepared on first need.
    others: Vec<(Profile, OnceCell<Sandbox>)>,
    cache_dir: PathBuf,
    options: PrepareOptions,
    /// The profile of each action ZIP read so far, by digest.
    profiles: Mutex<HashMap<String, Profile>>,
}

impl Sandboxes {
    /// The sandboxes over `standard` (prepared with `options`), the others prepared from
    /// `cache_dir` with the same options on first need.
    pub fn new(standard: Sandbox, cache_dir: PathBuf, options: PrepareOptions) -> Self {
        Self {
            standard,
            others: Profile::ALL
                .into_iter()
                .filter(|profile| *profile != Profile::Standard)
                .map(|profile| (profile, OnceCell::new()))
                .collect(),
            cache_dir,
            options,
            profiles: Mutex::default(),
        }
    }

    /// The sandbox of `profile`, prepared first if this is its first need.
    pub async fn get(&self, profile: Profile) -> Result<Sandbox, PrepareError> {
        let Some((_, cell)) = self.others.iter().find(|(other, _)| *other == profile) else {
            return Ok(self.standard.clone());
        };
        cell.get_or_try_init(|| self.prepare(profile))
            .await
            .cloned()
    }

    /// Guest instances created by every sandbox prepared so far.
    pub fn instantiations(&self) -> u64 {
        let others: u64 = self
            .others
            .iter()
            .filter_map(|(_, cell)| cell.get())
            .map(Sandbox::instantiations)
            .sum();
        self.standard.instantiations() + others
    }

    /// The profile of the action extracted in `folder` from the ZIP `digest`, whose lock
    /// asks the runtime for `provided`: its sources are read once per digest.
    pub async fn profile_of(
        &self,
        digest: &str,
        folder: &Path,
        provided: &[ProvidedPackage],
    ) -> Profile {
        if let Some(known) = self.known().get(digest) {
            return *known;
        }
        let folder = folder.to_path_buf();
        let imports =
            tokio::task::spawn_blocking(move || vivarium_package::imported_modules(&folder))
                .await
                .unwrap_or_default();
        let names = imports.iter().map(String::as_str);
        let profile = Profile::needed_by(names.chain(provided.iter().map(|p| p.name.as_str())));
        self.known().insert(digest.to_string(), profile);
        profile
    }

    fn known(&self) -> std::sync::MutexGuard<'_, HashMap<String, Profile>> {
        self.profiles.lock().unwrap_or_else(PoisonError::into_inner)
    }

    async fn prepare(&self, profile: Profile) -> Result<Sandbox, PrepareError> {
        let cache_dir = self.cache_dir.clone();
        let options = PrepareOptions {
            profile,
            ..self.options.clone()
        };
        tracing::info!(profile = profile.name(), "preparing a profile's sandbox");
        tokio::task::spawn_blocking(move || vivarium_sandbox::prepare(&cache_dir, &options))
            .await
            .map_err(|join| PrepareError::Unavailable(format!("preparing the sandbox: {join}")))?
    }
}
