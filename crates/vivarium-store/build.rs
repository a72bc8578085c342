//! Marks, at build time, which shared backends the store's tests run on, so that the tests of
//! a backend that is not configured are reported as ignored (with how to start it) instead of
//! passing without having run:
//! - `vivarium_postgres` when `VIVARIUM_TEST_POSTGRES_URL` is set, or
//!   `VIVARIUM_TEST_REQUIRE_BACKENDS` is (then a missing URL fails the tests);
//! - `vivarium_s3` likewise for `VIVARIUM_TEST_S3_URL`.
//!
//! `eval "$(.ci/backends)"` starts both servers and sets the variables.

/// Whether the environment variable `name` is set to something.
fn set(name: &str) -> bool {
    println!("cargo::rerun-if-env-changed={name}");
    std::env::var_os(name).is_some_and(|value| !value.is_empty())
}

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rustc-check-cfg=cfg(vivarium_postgres)");
    println!("cargo::rustc-check-cfg=cfg(vivarium_s3)");
    let required = set("VIVARIUM_TEST_REQUIRE_BACKENDS");
    if set("VIVARIUM_TEST_POSTGRES_URL") || required {
        println!("cargo::rustc-cfg=vivarium_postgres");
    }
    if set("VIVARIUM_TEST_S3_URL") || required {
        println!("cargo::rustc-cfg=vivarium_s3");
    }
}
