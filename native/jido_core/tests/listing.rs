//! Listing: metadata from a bounded prefix, the full-scan fallback, refusals.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use jido_core::json::{self, Object, Value};
use jido_core::listing::{self, Layout, Metadata, BULK_MEMBERS, DEFAULT_PREFIX_LEN};
use jido_core::machine_secret::MachineSecret;
use jido_core::session::{self, Limits, UnsignedFiles};
use jido_core::signing::SigningKey;
use jido_core::Error;
use std::ffi::OsString;
use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// How long a refusal may take before the test calls it a hang.
const HANG: Duration = Duration::from_secs(5);

fn key() -> SigningKey {
    SigningKey::derive(&MachineSecret::from_bytes([1; 32]), b"s", None)
}

/// The JSON text of a session whose conversation holds about
/// `conversation_bytes` bytes of message content. The bulk members come
/// first, as in no saved file: `session::save` must reorder them.
fn session_text(id: &str, name: &str, conversation_bytes: usize) -> String {
    const CONTENT: usize = 1000;
    let content = "x".repeat(CONTENT);
    let messages: Vec<String> = (0..conversation_bytes.div_ceil(CONTENT))
        .map(|i| {
            format!(
                r#"{{"id":"m{i}","role":"user","content":"{content}","timestamp":"2024-01-01T00:00:00Z"}}"#
            )
        })
        .collect();
    format!(
        r#"{{"conversation":[{conversation}],"todos":[{{"content":"t","status":"pending","active_form":"doing t"}}],
"prompt_history":["hello","world"],"version":1,"id":"{id}","name":"{name}","project_path":"/home/me/project",
"config":{{"provider":"anthropic","model":"claude","temperature":0.75,"max_tokens":4096}},
"x-extension":{{"nested":[1,2,{{"deep":null}}]}},
"created_at":"2024-01-01T00:00:00Z","updated_at":"2024-01-02T00:00:00Z","closed_at":"2024-01-03T00:00:00Z"}}"#,
        conversation = messages.join(",")
    )
}

fn session_doc(id: &str, name: &str, conversation_bytes: usize) -> Value {
    json::parse(session_text(id, name, conversation_bytes).as_bytes(), 64).unwrap()
}

/// Saves a session the way the store does and returns its path.
fn save(dir: &Path, file: &str, doc: Value) -> PathBuf {
    let path = dir.join(file);
    session::save(&path, doc, &key(), Limits::default()).unwrap();
    path
}

/// The metadata members of the file at `path` according to a full load:
/// everything but the bulk members and the signature, in file order.
fn loaded_metadata(path: &Path) -> Object {
    let loaded = session::load(path, &key(), Limits::default(), UnsignedFiles::Accept).unwrap();
    let Value::Object(members) = loaded.document.to_value() else {
        panic!("not an object")
    };
    members
        .into_iter()
        .filter(|(k, _)| k != "signature" && !BULK_MEMBERS.contains(&k.as_str()))
        .collect()
}

fn read(path: &Path) -> jido_core::Result<Metadata> {
    listing::read_metadata(path, Limits::default(), DEFAULT_PREFIX_LEN)
}

fn keys(members: &Object) -> Vec<&str> {
    members.iter().map(|(k, _)| k.as_str()).collect()
}

fn assert_invalid_json(result: jido_core::Result<Metadata>, needle: &str) {
    match result {
        Err(Error::InvalidJson(detail)) => {
            assert!(detail.contains(needle), "{detail:?} lacks {needle:?}")
        }
        other => panic!("expected InvalidJson containing {needle:?}, got {other:?}"),
    }
}

/// Runs `read_metadata` on a thread and fails (instead of hanging the suite)
/// if it does not return within [`HANG`].
fn read_within_deadline(path: PathBuf) -> jido_core::Result<Metadata> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(read(&path));
    });
    rx.recv_timeout(HANG)
        .expect("read_metadata blocked instead of refusing")
}

// ---- the prefix path -------------------------------------------------------

#[test]
fn a_saved_session_with_a_1_mb_conversation_is_listed_from_the_prefix_with_the_saved_metadata() {
    let dir = tempfile::tempdir().unwrap();
    let path = save(dir.path(), "a.json", session_doc("a", "Alpha", 1 << 20));
    let size = fs::metadata(&path).unwrap().len();
    assert!(size > 1 << 20);

    let meta = read(&path).unwrap();

    assert_eq!(meta.layout, Layout::Prefix);
    assert_eq!(meta.members, loaded_metadata(&path));
    assert_eq!(
        keys(&meta.members),
        [
            "version",
            "id",
            "name",
            "project_path",
            "config",
            "created_at",
            "updated_at",
            "closed_at",
            "key_id",
            "x-extension"
        ]
    );
    assert_eq!(meta.get("name"), Some(&Value::String("Alpha".into())));
    assert_eq!(
        meta.get("key_id").and_then(Value::as_str),
        Some(key().key_id())
    );
    assert_eq!(meta.size, size);
    assert_eq!(
        meta.modified,
        fs::metadata(&path).unwrap().modified().unwrap()
    );
}

#[test]
fn every_prefix_length_yields_the_same_metadata_and_the_prefix_path_once_the_first_bulk_key_fits() {
    // Cuts land inside keys, strings, numbers (0.75, 4096), literals and
    // nested values: none may produce a wrong value, only a fallback.
    let dir = tempfile::tempdir().unwrap();
    let path = save(dir.path(), "a.json", session_doc("a", "Alpha", 4000));
    let bytes = fs::read(&path).unwrap();
    let expected = loaded_metadata(&path);
    let needed = find(&bytes, b"\"conversation\"") + "\"conversation\"".len();

    for prefix_len in 0..needed + 64 {
        let meta = listing::read_metadata(&path, Limits::default(), prefix_len).unwrap();
        assert_eq!(meta.members, expected, "prefix_len {prefix_len}");
        let layout = if prefix_len >= needed {
            Layout::Prefix
        } else {
            Layout::FullScan
        };
        assert_eq!(meta.layout, layout, "prefix_len {prefix_len}");
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> usize {
    haystack
        .windows(needle.len())
        .position(|w| w == needle)
        .unwrap()
}

#[test]
fn a_file_smaller_than_the_prefix_is_still_parsed_only_up_to_the_first_bulk_member() {
    let dir = tempfile::tempdir().unwrap();
    let path = save(dir.path(), "a.json", session_doc("a", "Alpha", 2000));
    assert!(fs::metadata(&path).unwrap().len() < DEFAULT_PREFIX_LEN as u64);
    let meta = read(&path).unwrap();
    assert_eq!(meta.layout, Layout::Prefix);
    assert_eq!(meta.members, loaded_metadata(&path));
}

#[test]
fn an_object_without_bulk_members_is_listed_from_the_prefix_in_full() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.json");
    fs::write(&path, br#" {"version":1,"id":"a","extra":[true,false]} "#).unwrap();
    let meta = read(&path).unwrap();
    assert_eq!(meta.layout, Layout::Prefix);
    assert_eq!(keys(&meta.members), ["version", "id", "extra"]);
}

#[test]
fn metadata_past_the_first_page_but_within_the_prefix_is_still_read_from_the_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let name = "n".repeat(20 * 1024);
    let path = save(dir.path(), "a.json", session_doc("a", &name, 100_000));
    let meta = read(&path).unwrap();
    assert_eq!(meta.layout, Layout::Prefix);
    assert_eq!(
        meta.get("name").and_then(Value::as_str),
        Some(name.as_str())
    );
    assert_eq!(meta.members, loaded_metadata(&path));
}

#[test]
fn metadata_ending_anywhere_around_the_first_page_boundary_is_read_correctly() {
    // The first read is one page; move the end of the metadata across it.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.json");
    let conversation = format!(r#"[{{"content":"{}"}}]"#, "c".repeat(8 * 1024));
    for name_len in 3900..4200 {
        let name = "n".repeat(name_len);
        let text = format!(
            r#"{{"version":1,"id":"a","name":"{name}","project_path":"/p","created_at":"c","updated_at":"u","closed_at":null,"conversation":{conversation}}}"#
        );
        fs::write(&path, &text).unwrap();
        let meta = read(&path).unwrap();
        assert_eq!(meta.layout, Layout::Prefix, "name_len {name_len}");
        assert_eq!(
            meta.get("name").and_then(Value::as_str),
            Some(name.as_str())
        );
        assert_eq!(meta.get("closed_at"), Some(&Value::Null));
        assert_eq!(meta.members.len(), 7);
    }
}

// ---- the full-scan fallback ------------------------------------------------

#[test]
fn a_legacy_file_with_sorted_keys_is_scanned_in_full_with_the_correct_metadata() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("legacy.json");
    let Value::Object(mut members) = session_doc("legacy", "Old", 200_000) else {
        unreachable!()
    };
    members.sort_by(|a, b| a.0.cmp(&b.0));
    let legacy = Value::Object(members);
    fs::write(&path, json::to_vec(&legacy, json::Layout::Pretty).unwrap()).unwrap();

    let meta = read(&path).unwrap();

    assert_eq!(meta.layout, Layout::FullScan);
    assert_eq!(
        keys(&meta.members),
        [
            "closed_at",
            "config",
            "created_at",
            "id",
            "name",
            "project_path",
            "updated_at",
            "version",
            "x-extension"
        ]
    );
    assert_eq!(meta.members, loaded_metadata(&path));
}

#[test]
fn a_small_legacy_file_is_scanned_in_full_too() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("legacy.json");
    fs::write(
        &path,
        br#"{"closed_at":"c","conversation":[],"created_at":"a","id":"x","name":"n","project_path":"/p","updated_at":"u","version":1}"#,
    )
    .unwrap();
    let meta = read(&path).unwrap();
    assert_eq!(meta.layout, Layout::FullScan);
    assert_eq!(
        keys(&meta.members),
        [
            "closed_at",
            "created_at",
            "id",
            "name",
            "project_path",
            "updated_at",
            "version"
        ]
    );
}

#[test]
fn metadata_larger_than_the_prefix_falls_back_to_the_full_scan() {
    let dir = tempfile::tempdir().unwrap();
    let name = "n".repeat(100 * 1024);
    let path = save(dir.path(), "big.json", session_doc("big", &name, 10_000));

    let meta = read(&path).unwrap();

    assert_eq!(meta.layout, Layout::FullScan);
    assert_eq!(
        meta.get("name").and_then(Value::as_str),
        Some(name.as_str())
    );
    assert_eq!(meta.members, loaded_metadata(&path));
}

// ---- corrupt files -----------------------------------------------------------

#[test]
fn a_file_truncated_inside_its_metadata_is_invalid_json() {
    let dir = tempfile::tempdir().unwrap();
    let path = save(dir.path(), "a.json", session_doc("a", "Alpha", 10_000));
    let bytes = fs::read(&path).unwrap();
    fs::write(&path, &bytes[..find(&bytes, b"\"created_at\"") + 5]).unwrap();
    assert_invalid_json(read(&path), "EOF");
}

#[test]
fn an_empty_file_is_invalid_json() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.json");
    fs::write(&path, b"").unwrap();
    assert_invalid_json(read(&path), "EOF");
}

#[test]
fn corrupt_metadata_is_invalid_json_in_small_and_large_files() {
    let dir = tempfile::tempdir().unwrap();
    for (file, conversation) in [("small.json", 1000), ("large.json", 200_000)] {
        let path = save(dir.path(), file, session_doc("a", "Alpha", conversation));
        let mut bytes = fs::read(&path).unwrap();
        let at = find(&bytes, b"\"Alpha\"");
        bytes[at] = b'?';
        fs::write(&path, &bytes).unwrap();
        assert_invalid_json(read(&path), "expected value");
    }
}

#[test]
fn a_document_that_is_not_an_object_is_refused_as_such() {
    let dir = tempfile::tempdir().unwrap();
    let small = dir.path().join("small.json");
    fs::write(&small, b"[1, 2, 3]").unwrap();
    assert!(matches!(read(&small), Err(Error::NotAnObject)));

    let large = dir.path().join("large.json");
    let text = format!("\"{}\"", "x".repeat(2 * DEFAULT_PREFIX_LEN));
    fs::write(&large, text).unwrap();
    assert!(matches!(read(&large), Err(Error::NotAnObject)));
}

#[test]
fn corruption_after_the_first_bulk_member_does_not_stop_the_listing_but_load_refuses_the_file() {
    // Documented: the listing does not validate the whole file; load does.
    let dir = tempfile::tempdir().unwrap();
    let path = save(dir.path(), "a.json", session_doc("a", "Alpha", 200_000));
    let expected = loaded_metadata(&path);
    let mut bytes = fs::read(&path).unwrap();
    let at = find(&bytes, b"\"conversation\"") + 100;
    bytes.truncate(at);
    bytes.extend_from_slice(b"\0garbage{{{");
    fs::write(&path, &bytes).unwrap();

    let meta = read(&path).unwrap();

    assert_eq!(meta.layout, Layout::Prefix);
    assert_eq!(meta.members, expected);
    assert!(matches!(
        session::load(&path, &key(), Limits::default(), UnsignedFiles::Accept),
        Err(Error::InvalidJson(_))
    ));
}

#[test]
fn a_duplicate_top_level_metadata_key_is_invalid_json() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.json");
    fs::write(
        &path,
        br#"{"version":1,"id":"a","name":"n","id":"b","conversation":[]}"#,
    )
    .unwrap();
    assert_invalid_json(read(&path), r#"duplicate key "id""#);
}

#[test]
fn a_refusal_inside_the_metadata_stands_even_when_the_prefix_is_cut_short() {
    // The duplicate is inside the prefix; the file is much longer. The
    // refusal must not be mistaken for "the prefix ran out".
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.json");
    let text = format!(
        r#"{{"version":1,"config":{{"model":"a","model":"b"}},"name":"{}","conversation":[]}}"#,
        "n".repeat(2 * DEFAULT_PREFIX_LEN)
    );
    fs::write(&path, text).unwrap();
    assert_invalid_json(read(&path), r#"duplicate key "model""#);
}

#[test]
fn metadata_values_follow_the_strict_parser_rules() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.json");

    fs::write(&path, br#"{"version":9007199254740992,"conversation":[]}"#).unwrap();
    assert_invalid_json(read(&path), "outside");

    fs::write(
        &path,
        br#"{"version":1,"config":{"a":[[1]]},"conversation":[]}"#,
    )
    .unwrap();
    let shallow = Limits {
        max_depth: 3,
        ..Limits::default()
    };
    let result = listing::read_metadata(&path, shallow, DEFAULT_PREFIX_LEN);
    assert_invalid_json(result, "nesting deeper than 3 levels");
    let enough = Limits {
        max_depth: 4,
        ..Limits::default()
    };
    assert!(listing::read_metadata(&path, enough, DEFAULT_PREFIX_LEN).is_ok());

    // Same detail as json::parse (and so as load) for each refusal.
    let cases: [&[u8]; 4] = [
        b"{\"name\":\"\\ud800\",\"conversation\":[]}",
        br#"{"version":1e400,"conversation":[]}"#,
        b"{\"name\":\"tab\there\",\"conversation\":[]}",
        br#"{"config":{"a":1,"a":2},"conversation":[]}"#,
    ];
    for bytes in cases {
        fs::write(&path, bytes).unwrap();
        let Err(Error::InvalidJson(expected)) = json::parse(bytes, 64) else {
            panic!("json::parse accepted {bytes:?}")
        };
        assert_invalid_json(read(&path), &expected);
    }
}

// ---- what is opened ----------------------------------------------------------

#[test]
fn an_oversize_file_is_refused_from_its_size_without_being_read() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("huge.json");
    // Sparse: reading it would take seconds and a gigabyte of memory.
    let file = fs::File::create(&path).unwrap();
    file.set_len(1 << 30).unwrap();
    let started = Instant::now();
    match read(&path) {
        Err(Error::FileTooLarge { size, limit }) => {
            assert_eq!((size, limit), (1 << 30, Limits::default().max_file_size));
        }
        other => panic!("expected FileTooLarge, got {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(1));
}

#[test]
fn a_prefix_longer_than_the_size_limit_still_refuses_a_file_over_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.json");
    fs::write(&path, br#"{"version":1,"conversation":[]}"#).unwrap();
    let tight = Limits {
        max_file_size: 10,
        ..Limits::default()
    };
    assert!(matches!(
        listing::read_metadata(&path, tight, DEFAULT_PREFIX_LEN),
        Err(Error::FileTooLarge {
            size: 31,
            limit: 10
        })
    ));
}

#[test]
fn a_symlink_is_refused_and_not_followed() {
    let dir = tempfile::tempdir().unwrap();
    let target = save(dir.path(), "real.json", session_doc("a", "Alpha", 100));
    let link = dir.path().join("link.json");
    symlink(&target, &link).unwrap();
    assert!(matches!(read(&link), Err(Error::Symlink)));
}

#[test]
fn a_fifo_is_refused_without_blocking() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fifo.json");
    let status = std::process::Command::new("mkfifo")
        .arg(&path)
        .status()
        .unwrap();
    assert!(status.success());
    assert!(matches!(
        read_within_deadline(path),
        Err(Error::NotRegularFile)
    ));
}

#[test]
fn a_directory_named_like_a_session_is_not_a_regular_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.json");
    fs::create_dir(&path).unwrap();
    assert!(matches!(read(&path), Err(Error::NotRegularFile)));
}

#[test]
fn a_missing_file_is_not_found() {
    let dir = tempfile::tempdir().unwrap();
    assert!(matches!(
        read(&dir.path().join("nope.json")),
        Err(Error::NotFound)
    ));
}

// ---- list_dir ------------------------------------------------------------------

#[test]
fn list_dir_skips_temp_and_foreign_files_and_reports_each_bad_file_as_its_own_error() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    save(d, "b.json", session_doc("b", "Beta", 100_000));
    save(d, "a.json", session_doc("a", "Alpha", 100));
    fs::write(d.join(".a.json.0123456789abcdef.tmp"), b"{").unwrap();
    fs::write(d.join(".hidden.json"), b"{").unwrap();
    fs::write(d.join("notes.txt"), b"{").unwrap();
    fs::write(d.join("a.json.bak"), b"{").unwrap();
    fs::write(d.join("bad.json"), b"{\"version\":").unwrap();
    symlink(d.join("a.json"), d.join("link.json")).unwrap();
    fs::create_dir(d.join("sub.json")).unwrap();
    let fifo = std::process::Command::new("mkfifo")
        .arg(d.join("pipe.json"))
        .status()
        .unwrap();
    assert!(fifo.success());

    let (tx, rx) = mpsc::channel();
    let path = d.to_owned();
    thread::spawn(move || {
        let _ = tx.send(listing::list_dir(
            &path,
            Limits::default(),
            DEFAULT_PREFIX_LEN,
        ));
    });
    let listed = rx.recv_timeout(HANG).expect("list_dir blocked").unwrap();

    let names: Vec<&OsString> = listed.iter().map(|(name, _)| name).collect();
    assert_eq!(
        names,
        [
            "a.json",
            "b.json",
            "bad.json",
            "link.json",
            "pipe.json",
            "sub.json"
        ]
    );
    let by_name = |n: &str| &listed.iter().find(|(name, _)| name == n).unwrap().1;
    let a = by_name("a.json").as_ref().unwrap();
    assert_eq!(a.get("name"), Some(&Value::String("Alpha".into())));
    assert_eq!(a.layout, Layout::Prefix);
    let b = by_name("b.json").as_ref().unwrap();
    assert_eq!(b.get("id"), Some(&Value::String("b".into())));
    assert!(matches!(by_name("bad.json"), Err(Error::InvalidJson(_))));
    assert!(matches!(by_name("link.json"), Err(Error::Symlink)));
    assert!(matches!(by_name("pipe.json"), Err(Error::NotRegularFile)));
    assert!(matches!(by_name("sub.json"), Err(Error::NotRegularFile)));
}

#[test]
fn list_dir_of_an_empty_directory_is_empty() {
    let dir = tempfile::tempdir().unwrap();
    let listed = listing::list_dir(dir.path(), Limits::default(), DEFAULT_PREFIX_LEN).unwrap();
    assert!(listed.is_empty());
}

#[test]
fn list_dir_of_a_missing_directory_is_not_found() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("sessions");
    assert!(matches!(
        listing::list_dir(&missing, Limits::default(), DEFAULT_PREFIX_LEN),
        Err(Error::NotFound)
    ));
}

#[test]
fn list_dir_of_a_file_is_an_io_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("file");
    fs::write(&file, b"").unwrap();
    assert!(matches!(
        listing::list_dir(&file, Limits::default(), DEFAULT_PREFIX_LEN),
        Err(Error::Io { op: "read_dir", .. })
    ));
}

// ---- timing ----------------------------------------------------------------------

/// `cargo test --release -p jido_core --test listing -- --ignored --nocapture`
///
/// Reports the warm `list_dir` time for 1,000 sessions of ~10 KB and of
/// ~100 KB (median of 5): the two should be about equal. No assertion on
/// time — machines differ; the benchmark compares against references.
#[test]
#[ignore = "timing report; run in release with --nocapture"]
fn list_dir_time_is_flat_in_conversation_size() {
    for conversation_bytes in [10_000, 100_000] {
        let dir = tempfile::tempdir().unwrap();
        let doc = session_doc("template", "A session with a name", conversation_bytes);
        let mut total = 0;
        for i in 0..1000 {
            let mut doc = doc.clone();
            let id = format!("{i:08}-0000-4000-8000-000000000000");
            doc.set_member("id", Value::String(id.clone())).unwrap();
            let path = dir.path().join(format!("{id}.json"));
            total += session::save(&path, doc, &key(), Limits::default()).unwrap();
        }
        let run = || {
            let started = Instant::now();
            let listed =
                listing::list_dir(dir.path(), Limits::default(), DEFAULT_PREFIX_LEN).unwrap();
            let elapsed = started.elapsed();
            assert_eq!(listed.len(), 1000);
            assert!(listed
                .iter()
                .all(|(_, r)| r.as_ref().unwrap().layout == Layout::Prefix));
            elapsed
        };
        run(); // warm the page cache and the dentry cache
        let mut times: Vec<Duration> = (0..5).map(|_| run()).collect();
        times.sort();
        println!(
            "list_dir: 1000 files x {:>6} bytes avg: median {:>7.2} ms (min {:.2}, max {:.2})",
            total / 1000,
            times[2].as_secs_f64() * 1e3,
            times[0].as_secs_f64() * 1e3,
            times[4].as_secs_f64() * 1e3,
        );
    }
}

// ---- work budget (issue 10) -------------------------------------------------

/// Regression: the prefix reader compared each new top-level key with every
/// previous one, so an 80 KB file of 10,500 keys cost ~160 ms to list and
/// 200 of them stalled `list_persisted` for 30 s. The file is now refused
/// after one member too many — from its first page — and in its full scan.
#[test]
fn listing_an_80_kb_file_of_10_500_top_level_keys_is_refused_from_its_first_page() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hostile.json");
    // The shortest distinct keys: 1 to 3 base-62 digits.
    let digits: Vec<char> = ('0'..='9').chain('a'..='z').chain('A'..='Z').collect();
    let key = |mut i: usize| {
        let mut k = String::new();
        loop {
            k.insert(0, digits[i % 62]);
            i /= 62;
            if i == 0 {
                return k;
            }
            i -= 1;
        }
    };
    let members: Vec<String> = (0..10_500).map(|i| format!("\"{}\":0", key(i))).collect();
    let text = format!("{{{}}}", members.join(","));
    assert!((70_000..90_000).contains(&text.len()), "{}", text.len());
    fs::write(&path, &text).unwrap();
    // From the prefix: the member cap, final although the prefix ends in the
    // digit of a cut-off member.
    for prefix_len in [4096, DEFAULT_PREFIX_LEN] {
        match listing::read_metadata(&path, Limits::default(), prefix_len) {
            Err(Error::InvalidJson(detail)) => {
                assert_eq!(
                    detail,
                    "session document has more than 64 top-level members"
                );
            }
            other => panic!("prefix {prefix_len}: {other:?}"),
        }
    }
    // With no prefix at all, the full scan: the value budget stops it.
    match listing::read_metadata(&path, Limits::default(), 0) {
        Err(Error::InvalidJson(detail)) => assert!(detail.starts_with("more than "), "{detail}"),
        other => panic!("full scan: {other:?}"),
    }
}

#[test]
fn a_top_level_key_repeated_among_many_is_found_by_sorting_and_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.json");
    let mut members: Vec<String> = (0..40).map(|i| format!("\"x-{i}\":1")).collect();
    members.push("\"x-3\":2".to_owned());
    fs::write(
        &path,
        format!("{{{},\"conversation\":[]}}", members.join(",")),
    )
    .unwrap();
    match listing::read_metadata(&path, Limits::default(), DEFAULT_PREFIX_LEN) {
        Err(Error::InvalidJson(detail)) => assert_eq!(detail, r#"duplicate key "x-3""#),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_session_with_64_top_level_members_is_listed_and_loaded_and_one_with_65_is_refused_by_both() {
    let dir = tempfile::tempdir().unwrap();
    for (count, accepted) in [
        (session::MAX_MEMBERS, true),
        (session::MAX_MEMBERS + 1, false),
    ] {
        let path = dir.path().join(format!("{count}.json"));
        let text = session_text("id", "n", 10);
        let Value::Object(mut members) = json::parse(text.as_bytes(), 64).unwrap() else {
            unreachable!()
        };
        let mut extra = 0;
        // Saving adds `key_id` and `signature`.
        while members.len() + 2 < count {
            members.push((format!("x-{extra}"), Value::Integer(extra)));
            extra += 1;
        }
        let saved = session::save(
            &path,
            Value::Object(members.clone()),
            &key(),
            Limits::default(),
        );
        let listed = listing::read_metadata(&path, Limits::default(), DEFAULT_PREFIX_LEN);
        if accepted {
            saved.unwrap();
            listed.unwrap();
            session::load(&path, &key(), Limits::default(), UnsignedFiles::Accept).unwrap();
        } else {
            assert!(matches!(saved, Err(Error::InvalidJson(_))), "{saved:?}");
            // Written by hand, as no save would write it: as many members
            // as the signed file would have had.
            members.push(("key_id".to_owned(), Value::String("k".into())));
            members.push(("signature".to_owned(), Value::String("s".into())));
            fs::write(
                &path,
                json::to_vec(&Value::Object(members), json::Layout::Pretty).unwrap(),
            )
            .unwrap();
            assert!(matches!(
                listed,
                Err(Error::NotFound) | Err(Error::InvalidJson(_))
            ));
            let listed = listing::read_metadata(&path, Limits::default(), DEFAULT_PREFIX_LEN);
            assert!(matches!(listed, Err(Error::InvalidJson(_))), "{listed:?}");
            let loaded = session::load(&path, &key(), Limits::default(), UnsignedFiles::Accept);
            assert!(matches!(loaded, Err(Error::InvalidJson(_))), "{loaded:?}");
        }
    }
}
