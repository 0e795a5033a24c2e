//! `path_guard::validate` against a model of its rules over a fixed tree.
#![no_main]

use std::sync::LazyLock;

use jido_core_fuzz::PathFixture;

/// One tree shared by every run and job: `PathFixture::create` repairs what a
/// previous run left instead of failing on it.
static FIXTURE: LazyLock<PathFixture> = LazyLock::new(|| {
    let dir = std::env::temp_dir().join("jido_core-fuzz-path_validate");
    PathFixture::create(&dir).expect("fixture tree in $TMPDIR")
});

libfuzzer_sys::fuzz_target!(|data: &[u8]| FIXTURE.check(data));
