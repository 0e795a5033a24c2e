//! Whole-file load and save: the load by path and the load through a lock
//! agree on every document and every refusal, the packed document they
//! return is the file's plain parse, and save writes what they read.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use jido_core::json::{self, Document, Value};
use jido_core::machine_secret::MachineSecret;
use jido_core::session::{self, Limits, Loaded, UnsignedFiles};
use jido_core::session_lock;
use jido_core::signing::{SignatureState, SigningKey};
use jido_core::Error;
use std::fs;
use std::path::Path;

fn key() -> SigningKey {
    SigningKey::derive(&MachineSecret::from_bytes([3; 32]), b"s", None)
}

fn limits() -> Limits {
    Limits::default()
}

/// Both loads of the file at `path`, by path and through a lock, which must
/// agree: the first result, once the second is checked against it.
fn load(path: &Path, limits: Limits, unsigned: UnsignedFiles) -> jido_core::Result<Loaded> {
    let by_path = session::load(path, &key(), limits, unsigned);
    let locked = session_lock::lock(path).and_then(|mut l| l.load(&key(), limits, unsigned));
    match (&by_path, &locked) {
        (Ok(a), Ok(b)) => {
            assert_eq!(a.document.to_value(), b.document.to_value());
            assert_eq!((a.signature, a.size), (b.signature, b.size));
        }
        (Err(a), Err(b)) => assert_eq!(format!("{a:?}"), format!("{b:?}")),
        _ => panic!("the two loads disagree: {by_path:?} and {locked:?}"),
    }
    by_path
}

/// [`load`] of `bytes` written to a file in `dir`.
fn load_bytes(
    dir: &Path,
    bytes: &[u8],
    limits: Limits,
    unsigned: UnsignedFiles,
) -> jido_core::Result<Loaded> {
    let path = dir.join("bytes.json");
    fs::write(&path, bytes).unwrap();
    load(&path, limits, unsigned)
}

/// The plain document of a successful load.
fn plain(loaded: jido_core::Result<Loaded>) -> Value {
    loaded.unwrap().document.to_value()
}

/// A session whose strings are long and short, with and without escapes, in
/// arrays and objects, next to numbers and literals.
fn session_document() -> Value {
    let message = |i: i64| {
        format!(
            r#"{{"id":"m{i}","role":"user","content":"{}","n":{i},"ok":true}}"#,
            r#"line \"quoted\" \\ \n ünï €😀 "#.repeat(usize::try_from(i).unwrap() % 7 + 1)
        )
    };
    let conversation: Vec<String> = (0..50).map(message).collect();
    let text = format!(
        r#"{{"version":1,"id":"abc","name":"n\"ame","project_path":"/tmp/p","conversation":[{}],"todos":[],"prompt_history":["one\n","two\n","three"],"x-ext":{{"k\n":"v"}}}}"#,
        conversation.join(",")
    );
    json::parse(text.as_bytes(), 64).unwrap()
}

fn saved(dir: &Path, document: Value) -> (std::path::PathBuf, u64) {
    let path = dir.join("s.json");
    let size = session::save(&path, document, &key(), limits()).unwrap();
    (path, size)
}

#[test]
fn a_loaded_session_is_the_plain_parse_of_its_file_with_its_size_and_signature_state() {
    let dir = tempfile::tempdir().unwrap();
    let (path, size) = saved(dir.path(), session_document());
    let bytes = fs::read(&path).unwrap();
    assert_eq!(bytes.len() as u64, size);

    let loaded = load(&path, limits(), UnsignedFiles::Accept).unwrap();
    assert_eq!(loaded.signature, SignatureState::Signed);
    assert_eq!(loaded.size, size);
    assert_eq!(loaded.document.to_value(), json::parse(&bytes, 64).unwrap());
}

#[test]
fn the_loaded_document_is_what_was_saved_plus_key_id_and_signature() {
    let dir = tempfile::tempdir().unwrap();
    let original = session_document();
    let (path, _) = saved(dir.path(), original.clone());
    let mut loaded = plain(load(&path, limits(), UnsignedFiles::Refuse));
    assert_eq!(
        loaded
            .remove_member("key_id")
            .and_then(|v| v.as_str().map(str::to_owned)),
        Some(key().key_id().to_owned())
    );
    assert!(loaded.remove_member("signature").is_some());
    let sorted = |v: &Value| {
        let mut members = v.as_object().unwrap().clone();
        members.sort_by(|a, b| a.0.cmp(&b.0));
        members
    };
    assert_eq!(sorted(&loaded), sorted(&original));
}

#[test]
fn every_load_path_refuses_a_tampered_string_alike() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = saved(dir.path(), session_document());
    let mut bytes = fs::read(&path).unwrap();
    // Inside an escaped string: `\"quoted\"` becomes `\"quoteD\"`.
    let at = bytes.windows(6).position(|w| w == b"quoted").unwrap();
    bytes[at + 5] = b'D';
    fs::write(&path, &bytes).unwrap();
    for unsigned in [UnsignedFiles::Accept, UnsignedFiles::Refuse] {
        assert!(matches!(
            load(&path, limits(), unsigned),
            Err(Error::SignatureMismatch)
        ));
    }
}

#[test]
fn every_load_path_reports_an_unsigned_document_and_refuses_a_non_object() {
    let dir = tempfile::tempdir().unwrap();
    let unsigned = br#"{"id":"x","text":"a\nb"}"#;
    let loaded = load_bytes(dir.path(), unsigned, limits(), UnsignedFiles::Accept).unwrap();
    assert_eq!(loaded.signature, SignatureState::Unsigned);
    assert_eq!(
        loaded.document.to_value(),
        json::parse(unsigned, 64).unwrap()
    );

    for not_object in [&b"[1]"[..], b"\"s\"", b"null"] {
        for policy in [UnsignedFiles::Accept, UnsignedFiles::Refuse] {
            assert!(matches!(
                load_bytes(dir.path(), not_object, limits(), policy),
                Err(Error::NotAnObject)
            ));
        }
    }
    let deep = format!("{{\"a\":{}{}}}", "[".repeat(10), "]".repeat(10));
    let shallow = Limits {
        max_depth: 5,
        ..limits()
    };
    assert!(matches!(
        load_bytes(dir.path(), deep.as_bytes(), shallow, UnsignedFiles::Accept),
        Err(Error::InvalidJson(_))
    ));
}

#[test]
fn save_loads_back_a_document_made_of_many_tiny_values() {
    // Indentation nearly doubles the text here, so the pretty text is well
    // over the canonical size the buffer is first sized by. (The strings keep
    // the document within the value budget of its size.)
    let members: Vec<(String, Value)> = (0..5_000)
        .map(|i| {
            (
                format!("k{i}"),
                Value::Array(vec![Value::Array(vec![Value::String(format!("{i:0>40}"))])]),
            )
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let document = Value::Object(vec![("x-ext".to_owned(), Value::Object(members.clone()))]);
    let (path, size) = saved(dir.path(), document);
    assert_eq!(fs::metadata(&path).unwrap().len(), size);
    let loaded = plain(load(&path, limits(), UnsignedFiles::Refuse));
    let extension = loaded.get("x-ext").unwrap();
    assert_eq!(extension.get("k4999"), members.last().map(|(_, v)| v));
}

#[test]
fn save_refuses_a_document_over_the_limit_with_its_full_size() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.json");
    let document = session_document();
    let full = session::save(&path, document.clone(), &key(), limits()).unwrap();
    fs::remove_file(&path).unwrap();
    let small = Limits {
        max_file_size: 1_000,
        ..limits()
    };
    match session::save(&path, document, &key(), small) {
        Err(Error::DocumentTooLarge { size, limit }) => {
            assert_eq!((size, limit), (full, 1_000));
        }
        other => panic!("expected DocumentTooLarge, got {other:?}"),
    }
    assert!(!path.exists());
}

#[test]
fn a_borrowed_document_saves_exactly_as_its_owned_copy() {
    let text = json::to_vec(&session_document(), json::Layout::Compact).unwrap();
    let borrowed: Document<'_> = json::parse_borrowed(&text, 64).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.json");
    let b = dir.path().join("b.json");
    session::save(&a, borrowed.clone(), &key(), limits()).unwrap();
    session::save(&b, borrowed.into_owned(), &key(), limits()).unwrap();
    assert_eq!(fs::read(&a).unwrap(), fs::read(&b).unwrap());
}

#[test]
fn inspect_returns_the_document_of_a_file_signed_by_another_key_with_the_verdict_beside_it() {
    let dir = tempfile::tempdir().unwrap();
    let (path, size) = saved(dir.path(), session_document());
    let other = SigningKey::derive(&MachineSecret::from_bytes([4; 32]), b"s", None);

    let ours = session::inspect(&path, &key(), limits()).unwrap();
    assert!(matches!(ours.signature, Ok(SignatureState::Signed)));
    assert_eq!(ours.size, size);

    let theirs = session::inspect(&path, &other, limits()).unwrap();
    assert!(matches!(
        theirs.signature,
        Err(Error::ForeignSignature { .. })
    ));
    assert_eq!(theirs.document, ours.document);
}

#[test]
fn inspect_refuses_what_load_refuses_before_the_signature() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.json");
    fs::write(&path, b"[1, 2]").unwrap();
    assert!(matches!(
        session::inspect(&path, &key(), limits()),
        Err(Error::NotAnObject)
    ));
    fs::write(&path, b"{\"a\":1,\"a\":2}").unwrap();
    assert!(matches!(
        session::inspect(&path, &key(), limits()),
        Err(Error::InvalidJson(_))
    ));
    // Regression: more than MAX_MEMBERS members came back as a document
    // with an `InvalidJson` *signature verdict*, as if only its signature
    // were wrong; load refuses the file, and so does inspect now.
    let members: Vec<String> = (0..=session::MAX_MEMBERS)
        .map(|i| format!("\"m{i}\":{i}"))
        .collect();
    fs::write(&path, format!("{{{}}}", members.join(","))).unwrap();
    assert!(load(&path, limits(), UnsignedFiles::Accept).is_err());
    assert!(matches!(
        session::inspect(&path, &key(), limits()),
        Err(Error::InvalidJson(_))
    ));
}

// ---- unsigned policy (issue 10) -------------------------------------------------

/// Regression: an unsigned 10 MiB file cost +482 MiB (terms included) before
/// Elixir refused it; refusing is now decided on the parsed tree.
#[test]
fn under_the_refuse_policy_an_unsigned_document_is_missing_signature_and_a_signed_one_loads() {
    let dir = tempfile::tempdir().unwrap();
    let unsigned = br#"{"version":1,"id":"x"}"#;
    assert!(matches!(
        load_bytes(dir.path(), unsigned, limits(), UnsignedFiles::Refuse),
        Err(Error::MissingSignature)
    ));
    let accepted = load_bytes(dir.path(), unsigned, limits(), UnsignedFiles::Accept).unwrap();
    assert_eq!(accepted.signature, SignatureState::Unsigned);

    let (path, _) = saved(dir.path(), session_document());
    let loaded = load(&path, limits(), UnsignedFiles::Refuse).unwrap();
    assert_eq!(loaded.signature, SignatureState::Signed);
}
