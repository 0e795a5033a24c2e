//! `listing::read_metadata` (prefix and full-scan paths) against a full parse.
#![no_main]

use std::path::PathBuf;
use std::sync::LazyLock;

/// One scratch file per process (jobs run in parallel), rewritten for every
/// input; `rm $TMPDIR/jido_core-fuzz-listing-*.json` after fuzzing.
static FILE: LazyLock<PathBuf> = LazyLock::new(|| {
    std::env::temp_dir().join(format!(
        "jido_core-fuzz-listing-{}.json",
        std::process::id()
    ))
});

libfuzzer_sys::fuzz_target!(|data: &[u8]| jido_core_fuzz::listing_metadata(&FILE, data));
