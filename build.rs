//! Marks, at build time, the end-to-end tests whose backend is not configured as ignored (with
//! the reason), so that `cargo test` reports them as such instead of passing them:
//! - `vivarium_backends` when `VIVARIUM_TEST_POSTGRES_URL` and `VIVARIUM_TEST_S3_URL` are set
//!   (`eval "$(.ci/backends)"` sets them), or `VIVARIUM_TEST_REQUIRE_BACKENDS` is (then a
//!   missing one fails its tests);
//! - `vivarium_public_index` when `VIVARIUM_TEST_PUBLIC_INDEX=1`.

/// Whether the environment variable `name` is set to something.
fn set(name: &str) -> bool {
    println!("cargo::rerun-if-env-changed={name}");
    std::env::var_os(name).is_some_and(|value| !value.is_empty())
}

fn main() {
    println!("cargo::rustc-check-cfg=cfg(vivarium_backends)");
    println!("cargo::rustc-check-cfg=cfg(vivarium_public_index)");
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
}
