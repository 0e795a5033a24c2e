//! `canonical::canonicalize` against an independent reading of RFC 8785.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| jido_core_fuzz::jcs_canonicalize(data));
