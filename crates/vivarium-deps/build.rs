//! Turns `VIVARIUM_TEST_PUBLIC_INDEX=1` into the `vivarium_public_index` cfg so that the tests
//! against the real public index are marked ignored unless it is set.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(vivarium_public_index)");
    println!("cargo::rerun-if-env-changed=VIVARIUM_TEST_PUBLIC_INDEX");
    println!("cargo::rerun-if-changed=build.rs");
    if std::env::var("VIVARIUM_TEST_PUBLIC_INDEX").as_deref() == Ok("1") {
        println!("cargo::rustc-cfg=vivarium_public_index");
    }
}
