//! Resolving and installing a five-package set from the public index into an empty cache
//! (cold), then the same set again (warm: the layer is reused). Needs the network; run with
//! `cargo xtask bench`.

use std::time::{Duration, Instant};

use vivarium_deps::{DepsConfig, Requirements, install, resolve};

const SET: [&str; 5] = [
    "python-dateutil>=2.8",
    "tabulate",
    "jmespath==1.0.1",
    "attrs",
    "idna",
];
const WARM_ROUNDS: u32 = 200;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let cache = tempfile::tempdir()?;
    let config = DepsConfig::default();
    let requirements = Requirements::parse(SET)?;

    let started = Instant::now();
    let lock = resolve(&requirements, &config)?;
    let resolved = started.elapsed();
    let layer = install(&lock, cache.path(), &config)?;
    let cold = started.elapsed();

    let started = Instant::now();
    for _ in 0..WARM_ROUNDS {
        let again = install(&lock, cache.path(), &config)?;
        assert_eq!(again, layer);
    }
    let warm = started.elapsed() / WARM_ROUNDS;

    println!(
        "\nDependency layer of {} packages ({})",
        lock.packages.len(),
        SET.join(", ")
    );
    println!("| step | time |");
    println!("|---|---|");
    println!(
        "| cold: resolve against the public index | {} |",
        shown(resolved)
    );
    println!(
        "| cold: resolve, download, verify and install | {} |",
        shown(cold)
    );
    println!(
        "| warm: reuse the installed layer (mean of {WARM_ROUNDS}) | {} |",
        shown(warm)
    );
    Ok(())
}

fn shown(duration: Duration) -> String {
    if duration < Duration::from_millis(1) {
        format!("{:.1} µs", duration.as_secs_f64() * 1e6)
    } else {
        format!("{:.0} ms", duration.as_secs_f64() * 1e3)
    }
}
