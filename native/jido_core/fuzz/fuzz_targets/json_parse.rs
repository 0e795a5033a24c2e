//! `json::parse` against serde_json, then write-back and canonical round trips.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| jido_core_fuzz::json_parse(data));
