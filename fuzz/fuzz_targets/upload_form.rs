//! libFuzzer's entry for the target this binary is named after (see
//! [`vivarium_fuzz::TARGETS`]).
#![no_main]

libfuzzer_sys::fuzz_target!(|bytes: &[u8]| vivarium_fuzz::harness(env!("CARGO_BIN_NAME"))(bytes));
