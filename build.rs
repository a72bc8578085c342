//! Marks, at build time, the end-to-end tests whose backend is not configured as ignored (with
//! the reason), so that `cargo test` reports them as such instead of passing them:
//! - `vivarium_backends` when `VIVARIUM_TEST_POSTGRES_URL` and `VIVARIUM_TEST_S3_URL` are set
//!   (`eval "$(.ci/backends)"` sets them), or `VIVARIUM_TEST_REQUIRE_BACKENDS` is (then a
//!   missing one fails its tests);
//! - `vivarium_public_index` when `VIVARIUM_TEST_PUBLIC_INDEX=1`;
//! - `vivarium_browser` when Chromium and chromedriver are installed (Debian's `chromium` and
//!   `chromium-driver`, which `.ci/browser` installs), or `VIVARIUM_TEST_REQUIRE_BROWSER` is
//!   set (then a missing one fails the console's tests).

/// Whether the environment variable `name` is set to something.
fn set(name: &str) -> bool {
    println!("cargo::rerun-if-env-changed={name}");
    std::env::var_os(name).is_some_and(|value| !value.is_empty())
}

fn main() {
    println!("cargo::rustc-check-cfg=cfg(vivarium_backends)");
    println!("cargo::rustc-check-cfg=cfg(vivarium_public_index)");
    println!("cargo::rustc-check-cfg=cfg(vivarium_browser)");
    println!("cargo::rerun-if-changed=build.rs");
    let postgres = set("VIVARIUM_TEST_POSTGRES_URL");
    let s3 = set("VIVARIUM_TEST_S3_URL");
    let required = set("VIVARIUM_TEST_REQUIRE_BACKENDS");
    if (postgres && s3) || required {
        println!("cargo::rustc-cfg=vivarium_backends");
    }
    println!("cargo::rerun-if-env-changed=VIVARIUM_TEST_PUBLIC_INDEX");
    if std::env::var("VIVARIUM_TEST_PUBLIC_INDEX").as_deref() == Ok("1") {
        println!("cargo::rustc-cfg=vivarium_public_index");
    }
    if browser_installed() || set("VIVARIUM_TEST_REQUIRE_BROWSER") {
        println!("cargo::rustc-cfg=vivarium_browser");
    }
}

/// Whether Debian's Chromium and its chromedriver are where the console's tests look (or
/// where `VIVARIUM_CHROMIUM` and `VIVARIUM_CHROMEDRIVER` point). `/usr/bin` is watched, so
/// that installing them is noticed.
fn browser_installed() -> bool {
    println!("cargo::rerun-if-changed=/usr/bin");
    let found = |variable: &str, default: &str| {
        println!("cargo::rerun-if-env-changed={variable}");
        let path = std::env::var_os(variable).unwrap_or_else(|| default.into());
        std::path::Path::new(&path).exists()
    };
    found("VIVARIUM_CHROMIUM", "/usr/bin/chromium")
        && found("VIVARIUM_CHROMEDRIVER", "/usr/bin/chromedriver")
}
