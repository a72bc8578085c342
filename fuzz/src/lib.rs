//! Coverage-guided fuzz targets for every parser that hostile bytes reach, run by libFuzzer
//! through cargo-fuzz: `cargo xtask fuzz TARGET --time 60s`.
//!
//! Each target is a function of arbitrary bytes that panics only when an invariant breaks;
//! the binaries in `fuzz_targets/` hand libFuzzer's inputs to [`TARGETS`], and the seed
//! corpora in `seeds/<target>/` are replayed by this crate's tests, so every crash the fuzzer
//! finds and saved there stays a regression test.

pub mod archive;
pub mod credentials;
pub mod egress;
pub mod form;
pub mod marshal;
pub mod project;
pub mod schedule;

/// A fuzz target: its name (its binary, and its folder under `seeds/`) and its harness.
pub struct Target {
    /// The binary's name, and the seed folder's.
    pub name: &'static str,
    /// Runs one input.
    pub run: fn(&[u8]),
}

/// Every target.
pub const TARGETS: &[Target] = &[
    Target {
        name: "archive",
        run: archive::run,
    },
    Target {
        name: "marshal_reply",
        run: marshal::reply,
    },
    Target {
        name: "marshal_round_trip",
        run: marshal::round_trip,
    },
    Target {
        name: "exchange_request",
        run: marshal::exchange_request,
    },
    Target {
        name: "pyproject",
        run: project::pyproject,
    },
    Target {
        name: "project_page",
        run: project::project_page,
    },
    Target {
        name: "basic_credentials",
        run: credentials::run,
    },
    Target {
        name: "egress_url",
        run: egress::run,
    },
    Target {
        name: "cron",
        run: schedule::run,
    },
    Target {
        name: "upload_form",
        run: form::run,
    },
];

/// The harness named `name`, for a binary to hand its inputs to.
///
/// # Panics
///
/// When no target has that name: a binary out of step with [`TARGETS`].
pub fn harness(name: &str) -> fn(&[u8]) {
    TARGETS
        .iter()
        .find(|target| target.name == name)
        .map(|target| target.run)
        .unwrap_or_else(|| panic!("no fuzz target is named {name}"))
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::path::Path;

    use super::TARGETS;

    fn seeds() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds")
    }

    #[test]
    fn every_target_replays_its_seed_corpus_clean() {
        for target in TARGETS {
            let folder = seeds().join(target.name);
            let files: Vec<_> = fs::read_dir(&folder)
                .unwrap_or_else(|e| panic!("{}: {e}", folder.display()))
                .map(|entry| entry.unwrap().path())
                .collect();
            assert!(!files.is_empty(), "{} has no seeds", target.name);
            for file in files {
                (target.run)(&fs::read(&file).unwrap());
            }
        }
    }

    #[test]
    fn every_seed_folder_belongs_to_a_target() {
        for entry in fs::read_dir(seeds()).unwrap() {
            let name = entry.unwrap().file_name();
            let name = name.to_string_lossy();
            assert!(
                TARGETS.iter().any(|target| target.name == name),
                "seeds/{name} belongs to no target"
            );
        }
    }
}
