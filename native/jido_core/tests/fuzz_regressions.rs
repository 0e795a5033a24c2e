//! What the fuzz targets in `fuzz/` found, pinned — and the same checks run
//! by proptest, which is how CI exercises them (the fuzzers need nightly flags
//! and minutes; see `fuzz/README.md`).
//!
//! The checks live in `fuzz/src/lib.rs` and are included here verbatim, so a
//! committed input replays through exactly what the fuzzer ran. Inputs the
//! fuzzers crashed on are kept under `tests/data/fuzz/<target>/` and the
//! hand-written seeds under `fuzz/seeds/`; both are replayed below.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

#[path = "../fuzz/src/lib.rs"]
mod checks;

use checks::{Outcome, PathFixture};
use jido_core::json::{self, Layout, Value};
use jido_core::listing::{self, Layout as ListingLayout};
use jido_core::session::Limits;
use jido_core::{canonical, Error, PathViolation};
use proptest::prelude::*;
use std::fs;
use std::path::{Path, PathBuf};

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The files of `dir`, sorted; none if it does not exist.
fn inputs(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries.map(|e| e.unwrap().path()).collect();
    files.sort();
    files
}

fn invalid_json(result: jido_core::Result<impl std::fmt::Debug>) -> String {
    match result {
        Err(Error::InvalidJson(detail)) => detail,
        other => panic!("expected InvalidJson, got {other:?}"),
    }
}

fn canon(text: &str) -> String {
    String::from_utf8(canonical::canonicalize(text.as_bytes(), checks::DEPTH).unwrap()).unwrap()
}

// ---- crashes the fuzzers found --------------------------------------------------

/// listing_metadata: a prefix cut right after the digits of
/// `90071992547409910.5` (a valid double) ends in the integer
/// `90071992547409910`, beyond ±(2^53−1). The prefix parser took that refusal
/// as final and refused a file that loads; it now reads on.
#[test]
fn an_integer_cut_at_the_prefix_end_is_read_on_rather_than_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.json");
    let text = br#"{"a":90071992547409910.5,"conversation":[]}"#;
    fs::write(&path, text).unwrap();
    let cut = text.iter().position(|&b| b == b'.').unwrap();
    for prefix_len in [cut - 1, cut, cut + 1, listing::DEFAULT_PREFIX_LEN] {
        let meta = listing::read_metadata(&path, Limits::default(), prefix_len)
            .unwrap_or_else(|e| panic!("prefix {prefix_len}: {e:?}"));
        assert_eq!(
            meta.members,
            vec![("a".to_owned(), Value::Float(90_071_992_547_409_910.5))],
            "prefix {prefix_len}"
        );
    }
}

/// The same cut in front of an integer that really is out of range is still
/// refused, with the full literal's value once the whole number is read.
#[test]
fn an_out_of_range_integer_cut_at_the_prefix_end_is_still_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.json");
    let text = br#"{"a":90071992547409910,"conversation":[]}"#;
    fs::write(&path, text).unwrap();
    let detail = invalid_json(listing::read_metadata(&path, Limits::default(), 21));
    assert_eq!(detail, "integer 90071992547409910 is outside ±(2^53−1)");
}

/// json_parse: the first crash was in the check, not the core, and is kept
/// as the documented exception in `checks::canonical_form_holds`: JCS prints
/// an integral double from 2^53 up to 1e21 as plain digits, which
/// `json::parse` refuses as an unsafe integer, so such canonical bytes cannot
/// be canonicalized again. The file writer uses exponent form instead, so
/// what is written still loads.
#[test]
fn the_canonical_form_of_an_integral_double_beyond_2_53_is_plain_digits_that_parse_refuses() {
    let text = b"19007199254740992e1";
    let value = json::parse(text, checks::DEPTH).unwrap();
    assert_eq!(value, Value::Float(1.900_719_925_474_099_2e17));

    let canonical = canonical::to_vec(&value).unwrap();
    assert_eq!(canonical, b"190071992547409920");
    assert_eq!(
        invalid_json(json::parse(&canonical, checks::DEPTH)),
        "integer 190071992547409920 is outside ±(2^53−1)"
    );

    let written = json::to_vec(&value, Layout::Compact).unwrap();
    assert_eq!(written, b"1.9007199254740992e+17");
    assert_eq!(json::parse(&written, checks::DEPTH).unwrap(), value);
    checks::json_parse(text);
    checks::jcs_canonicalize(text);
}

#[test]
fn every_committed_crash_input_and_seed_passes_its_fuzz_check() {
    let fixture_dir = tempfile::tempdir().unwrap();
    let fixture = PathFixture::create(fixture_dir.path()).unwrap();
    let scratch = fixture_dir.path().join("listing.json");
    let regressions = manifest_dir().join("tests/data/fuzz");
    let seeds = manifest_dir().join("fuzz/seeds");
    let mut replayed = 0;
    for (target, dirs) in [
        (
            "json_parse",
            [regressions.join("json_parse"), seeds.join("json")],
        ),
        (
            "jcs_canonicalize",
            [regressions.join("jcs_canonicalize"), seeds.join("json")],
        ),
        (
            "path_validate",
            [regressions.join("path_validate"), seeds.join("path")],
        ),
        (
            "listing_metadata",
            [regressions.join("listing_metadata"), seeds.join("listing")],
        ),
    ] {
        for input in dirs.iter().flat_map(|d| inputs(d)) {
            let data = fs::read(&input).unwrap();
            eprintln!("{target} {}", input.display());
            match target {
                "json_parse" => checks::json_parse(&data),
                "jcs_canonicalize" => checks::jcs_canonicalize(&data),
                "path_validate" => fixture.check(&data),
                _ => checks::listing_metadata(&scratch, &data),
            }
            replayed += 1;
        }
    }
    // 8 JSON seeds twice, 9 path seeds, 3 listing seeds, 1 crash input.
    assert!(replayed >= 29, "only {replayed} inputs found");
}

// ---- edges from the corpora, with their exact outcome --------------------------

#[test]
fn nesting_is_accepted_up_to_max_depth_and_refused_one_level_deeper_up_to_the_cap() {
    let deep = |levels: usize| format!("{}{}", "[".repeat(levels), "]".repeat(levels));
    assert!(json::parse(deep(64).as_bytes(), 64).is_ok());
    assert_eq!(
        invalid_json(json::parse(deep(65).as_bytes(), 64)),
        "nesting deeper than 64 levels"
    );
    // A larger limit is clamped to the cap, where serde_json's own guard
    // fires first and is reported as the same refusal.
    assert!(json::parse(deep(127).as_bytes(), 500).is_ok());
    assert_eq!(
        invalid_json(json::parse(deep(128).as_bytes(), 500)),
        "nesting deeper than 127 levels"
    );
    checks::json_parse(deep(64).as_bytes());
    checks::json_parse(deep(65).as_bytes());
}

#[test]
fn a_surrogate_pair_escape_is_one_character_and_a_lone_or_reversed_half_is_refused() {
    assert_eq!(canon(r#""\ud83d\ude00""#), "\"\u{1f600}\"");
    assert!(
        invalid_json(json::parse(br#""\ud800""#, 8)).starts_with("unexpected end of hex escape")
    );
    assert!(
        invalid_json(json::parse(br#""\ud800\u0041""#, 8)).starts_with("lone leading surrogate")
    );
    assert!(
        invalid_json(json::parse(br#""\udc00\ud800""#, 8)).starts_with("lone leading surrogate")
    );
    for text in [r#""\ud83d\ude00""#, r#""\ud800""#, r#""\udc00\ud800""#] {
        checks::json_parse(text.as_bytes());
    }
}

#[test]
fn exponents_beyond_the_double_range_are_refused_or_flushed_to_zero() {
    for text in ["1e400", "-1e400", "1E+309"] {
        assert!(
            invalid_json(json::parse(text.as_bytes(), 1)).starts_with("number out of range"),
            "{text}"
        );
    }
    assert_eq!(canon("1e-400"), "0");
    assert_eq!(canon("-0"), "0");
    assert_eq!(
        canon("[1e21,1e20,1e-7,0.000001]"),
        "[1e+21,100000000000000000000,1e-7,0.000001]"
    );
    // Past u64 serde_json hands over a double; the literal is refused all the
    // same, while the same number spelled as a float stays a float.
    assert_eq!(
        invalid_json(json::parse(b"18446744073709551616", 1)),
        "integer 18446744073709551616 is outside ±(2^53−1)"
    );
    assert_eq!(canon("1.8446744073709552e19"), "18446744073709552000");
    assert_eq!(
        invalid_json(json::parse(b"9007199254740992", 1)),
        "integer 9007199254740992 is outside ±(2^53−1)"
    );
    for text in [
        "1e400",
        "1e-400",
        "-0",
        "18446744073709551616",
        "9007199254740992",
    ] {
        checks::json_parse(text.as_bytes());
        checks::jcs_canonicalize(text.as_bytes());
    }
}

/// The checks' own ECMAScript formatter, which the fuzzers hold `ryu-js`
/// to, against RFC 8785 Appendix B.
#[test]
fn the_checks_number_formatter_prints_rfc_8785_appendix_b_as_published() {
    // Found by proptest: Rust's shortest `{:e}` breaks this tie upwards.
    // (570000000000000.25, exactly between the 16-digit candidates)
    let extra = [(0x4300_334b_bc2d_0002_u64, "570000000000000.2")];
    for &(bits, text) in common::RFC8785_APPENDIX_B.iter().chain(&extra) {
        assert_eq!(
            checks::ecmascript_number(f64::from_bits(bits)),
            text,
            "{bits:#x}"
        );
    }
}

/// One path per kind of entry in the fixture, with the outcome
/// `path_guard::validate` gives it; `PathFixture::check` then compares the
/// model with the real call for the same input.
#[test]
fn every_kind_of_entry_in_the_path_fixture_gets_its_own_outcome() {
    use PathViolation as V;
    let dir = tempfile::tempdir().unwrap();
    let fixture = PathFixture::create(dir.path()).unwrap();
    let long = "x".repeat(256);
    let cases: Vec<(&[u8], Outcome)> = vec![
        (b"\x01", Outcome::Valid),
        (b"\x01a/b/c", Outcome::Valid),
        (b"\x02//a///b/", Outcome::Valid),
        (b"\x01sticky/s", Outcome::Valid),
        (b"\x01sticky", Outcome::Valid),
        (b"\x01...", Outcome::Valid),
        (b"\x01..a", Outcome::Valid),
        (b"\x01\xff\xfe", Outcome::Valid),
        (b"\x01link", Outcome::Refused(V::Symlink)),
        (b"\x01link/b", Outcome::Refused(V::Symlink)),
        (b"\x01a/up/a", Outcome::Refused(V::Symlink)),
        (b"\x01abs", Outcome::Refused(V::Symlink)),
        (b"\x01dangling", Outcome::Refused(V::Symlink)),
        (b"\x01file", Outcome::Refused(V::NotDirectory)),
        (b"\x01a/file/x", Outcome::Refused(V::NotDirectory)),
        (b"\x01nope", Outcome::Refused(V::NotFound)),
        (b"\x01open", Outcome::Refused(V::InsecurePermissions)),
        (b"\x01group", Outcome::Refused(V::InsecurePermissions)),
        (b"\x01denied", Outcome::Refused(V::Denied)),
        (b"\x01denied/inner", Outcome::Refused(V::Denied)),
        (b"\x022", Outcome::Refused(V::OutsideAllowedRoots)),
        (b"\x00/", Outcome::Refused(V::OutsideAllowedRoots)),
        (b"\x00relative", Outcome::Refused(V::NotAbsolute)),
        (b"\x00", Outcome::Refused(V::NotAbsolute)),
        (b"\x01a\x00", Outcome::Refused(V::ContainsNul)),
        (b"\x01a/../a", Outcome::Refused(V::Traversal)),
        (b"\x01./a", Outcome::Refused(V::Traversal)),
        (b"\x01a/b/..", Outcome::Refused(V::Traversal)),
    ];
    let long_name = [&b"\x01"[..], long.as_bytes()].concat();
    let long_missing = [&b"\x01"[..], &long.as_bytes()[1..]].concat();
    for (data, outcome) in cases.iter().copied().chain([
        (&long_name[..], Outcome::Io),
        (&long_missing[..], Outcome::Refused(V::NotFound)),
    ]) {
        let path = fixture.path_of(data);
        assert_eq!(fixture.expected(&path), outcome, "model for {data:?}");
        fixture.check(data);
    }
    assert!(fixture
        .path_of(b"\x01")
        .starts_with(fixture.base().to_str().unwrap().as_bytes()));
}

#[test]
fn the_listing_input_encodes_prefix_length_depth_and_an_undersized_limit() {
    let (prefix_len, limits, doc) = checks::listing_input(b"\x10\x01\x85{}");
    assert_eq!(
        (prefix_len, limits.max_depth, limits.max_file_size, doc),
        (0x110, 8, 1, &b"{}"[..])
    );
    let (prefix_len, limits, _) = checks::listing_input(b"\xff\xff\x00");
    assert_eq!(
        (prefix_len, limits.max_depth, limits.max_file_size),
        (listing::DEFAULT_PREFIX_LEN, checks::DEPTH, 10 * 1024 * 1024)
    );
    let dir = tempfile::tempdir().unwrap();
    let scratch = dir.path().join("l.json");
    // Two bytes over a limit of one: refused before reading.
    checks::listing_metadata(&scratch, b"\x10\x01\x85{}");
    assert!(matches!(
        listing::read_metadata(
            &scratch,
            Limits {
                max_file_size: 1,
                max_depth: 8
            },
            16
        ),
        Err(Error::FileTooLarge { size: 2, limit: 1 })
    ));
    // A session laid out as saved is listed from the prefix.
    let saved = br#"{"version":1,"id":"i","name":"n","project_path":"/p","created_at":"c","updated_at":"u","closed_at":"d","conversation":[],"signature":"s"}"#;
    checks::listing_metadata(&scratch, &[&b"\xff\xff\x00"[..], saved].concat());
    let meta = listing::read_metadata(&scratch, Limits::default(), 4096).unwrap();
    assert_eq!(
        (meta.layout, meta.members.len()),
        (ListingLayout::Prefix, 7)
    );
}

// ---- the fuzz checks as properties (what CI runs) --------------------------------

/// JSON-shaped text: mostly valid, with duplicate keys, unsafe integers,
/// out-of-range exponents, escapes and odd whitespace mixed in.
fn json_text() -> impl Strategy<Value = String> {
    let number = "-?(0|[1-9][0-9]{0,19})(\\.[0-9]{1,18})?([eE][+-]?[0-9]{1,3})?";
    let string = prop_oneof![
        any::<String>().prop_map(|s| serde_json::to_string(&s).unwrap()),
        Just(r#""\ud83d\ude00""#.to_owned()),
        Just(r#""\u0000\u001f\/""#.to_owned()),
        Just("\"\u{fb33}\u{1f600}\u{80}\"".to_owned()),
    ];
    let leaf = prop_oneof![
        Just("null".to_owned()),
        Just("true".to_owned()),
        Just("false".to_owned()),
        number.prop_map(|n| n.to_owned()),
        string.clone(),
    ];
    let ws = prop::sample::select(vec!["", "", " ", "\n  ", "\t"]);
    leaf.prop_recursive(6, 64, 6, move |inner| {
        let key = prop_oneof![
            prop::sample::select(vec!["a", "b", "conversation", "signature", "id"])
                .prop_map(|k| format!("\"{k}\"")),
            string.clone(),
        ];
        prop_oneof![
            (prop::collection::vec(inner.clone(), 0..6), ws.clone())
                .prop_map(|(items, ws)| format!("[{ws}{}]", items.join(","))),
            (prop::collection::vec((key, inner), 0..6), ws.clone()).prop_map(|(members, ws)| {
                let members: Vec<String> = members
                    .iter()
                    .map(|(k, v)| format!("{ws}{k}{ws}:{v}"))
                    .collect();
                format!("{{{}}}", members.join(","))
            }),
        ]
    })
}

/// Path-shaped fuzz input: a mode byte and pieces of the fixture's names.
fn path_input() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop::sample::select(vec![
        &b"/"[..],
        b"//",
        b".",
        b"..",
        b"a",
        b"b",
        b"c",
        b"file",
        b"link",
        b"up",
        b"abs",
        b"dangling",
        b"open",
        b"group",
        b"sticky",
        b"s",
        b"denied",
        b"inner",
        b"...",
        b"..a",
        b"\xff\xfe",
        b"\x00",
        b"x",
        b"2",
    ]);
    (0u8..3, prop::collection::vec(piece, 0..8))
        .prop_map(|(mode, pieces)| [vec![mode], pieces.concat()].concat())
}

proptest! {
    #[test]
    fn the_json_parse_check_holds_for_json_shaped_text(text in json_text()) {
        checks::json_parse(text.as_bytes());
    }

    #[test]
    fn the_json_parse_check_holds_for_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        checks::json_parse(&bytes);
    }

    #[test]
    fn the_jcs_canonicalize_check_holds_for_json_shaped_text(text in json_text()) {
        checks::jcs_canonicalize(text.as_bytes());
    }

    #[test]
    fn the_jcs_check_holds_for_any_double(bits in any::<u64>()) {
        let value = f64::from_bits(bits);
        prop_assume!(value.is_finite());
        let text = format!("{value:e}");
        checks::jcs_canonicalize(text.as_bytes());
    }

    #[test]
    fn the_listing_check_holds_for_json_shaped_files_at_every_prefix_length(
        text in json_text(),
        prefix_len in 0u16..96,
        params in any::<u8>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let [lo, hi] = prefix_len.to_le_bytes();
        let data = [&[lo, hi, params][..], text.as_bytes()].concat();
        checks::listing_metadata(&dir.path().join("l.json"), &data);
    }
}

proptest! {
    // Each case walks the file system; a fixture is built once per test.
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn the_path_validate_check_holds_for_paths_made_of_fixture_names(
        inputs in prop::collection::vec(path_input(), 16)
    ) {
        let dir = tempfile::tempdir().unwrap();
        let fixture = PathFixture::create(dir.path()).unwrap();
        for data in &inputs {
            fixture.check(data);
        }
    }
}
