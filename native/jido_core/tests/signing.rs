//! Contract tests for `jido_core::signing`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use jido_core::json::{self, Layout, Value};
use jido_core::machine_secret::MachineSecret;
use jido_core::signing::{SignatureState, SigningKey, KEY_ID_MEMBER, SIGNATURE_MEMBER};
use jido_core::{canonical, Error};
use sha2::Sha256;
use std::time::{Duration, Instant};

const DEPTH: usize = 64;

fn key() -> SigningKey {
    SigningKey::derive(
        &MachineSecret::from_bytes([0x42; 32]),
        b"signing-salt",
        Some("host.example"),
    )
}

fn other_key() -> SigningKey {
    SigningKey::derive(
        &MachineSecret::from_bytes([0x43; 32]),
        b"signing-salt",
        Some("host.example"),
    )
}

fn parse(text: &str) -> Value {
    json::parse(text.as_bytes(), DEPTH).unwrap()
}

fn to_bytes(value: &Value, layout: Layout) -> Vec<u8> {
    let mut out = Vec::new();
    json::to_writer(value, &mut out, layout).unwrap();
    out
}

fn members(value: &Value) -> &Vec<(String, Value)> {
    match value {
        Value::Object(m) => m,
        other => panic!("not an object: {other:?}"),
    }
}

fn members_mut(value: &mut Value) -> &mut Vec<(String, Value)> {
    match value {
        Value::Object(m) => m,
        other => panic!("not an object: {other:?}"),
    }
}

fn member<'a>(value: &'a Value, name: &str) -> Option<&'a Value> {
    members(value)
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

fn set_member(value: &mut Value, name: &str, new: Value) {
    let m = members_mut(value);
    match m.iter_mut().find(|(k, _)| k == name) {
        Some((_, v)) => *v = new,
        None => m.push((name.to_owned(), new)),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

/// A document shaped like a session file, with the value kinds JCS cares
/// about: nested objects, arrays, floats, negative and large integers,
/// escapes, non-ASCII text and a control character.
fn session_document() -> Value {
    parse(
        r#"{"version":1,"id":"6f1c2a7e-8d4b-4c1e-9a3f-2b5d7e9c1a04","name":"Refactor \"parser\"",
            "project_path":"/home/u/src/proj",
            "config":{"provider":"anthropic","model":"m-1","temperature":0.7,"max_tokens":4096},
            "created_at":"2024-05-01T10:00:00Z","updated_at":"2024-05-01T10:05:00Z",
            "conversation":[{"id":"m1","role":"user","content":"héllo ✓ \\ tab\t nl\n ctl\u0001","timestamp":"2024-05-01T10:00:01Z"}],
            "todos":[{"content":"x","status":"pending","active_form":"Doing x"}],
            "prompt_history":["a","b"],"n":-12345,"big":9007199254740991,"f":-0.5,"e":null,"t":true}"#,
    )
}

fn signed_document() -> Value {
    let mut doc = session_document();
    key().sign_document(&mut doc).unwrap();
    doc
}

// ---- RFC 4231 known answers ---------------------------------------------------

/// RFC 4231 test cases whose key fits in 32 bytes: (key, data, HMAC-SHA256).
///
/// HMAC zero-pads any key shorter than the 64-byte block, so a short RFC key
/// and the same key zero-padded to 32 bytes are the same HMAC key; that lets
/// the vectors run through `SigningKey::mac`, the path production uses.
/// Cases 6 and 7 use 131-byte keys (hashed first) and cannot be expressed as a
/// 32-byte key.
fn rfc4231_vectors() -> Vec<(Vec<u8>, Vec<u8>, &'static str)> {
    vec![
        (
            vec![0x0b; 20],
            b"Hi There".to_vec(),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
        ),
        (
            b"Jefe".to_vec(),
            b"what do ya want for nothing?".to_vec(),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
        ),
        (
            vec![0xaa; 20],
            vec![0xdd; 50],
            "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe",
        ),
        (
            (0x01..=0x19).collect(),
            vec![0xcd; 50],
            "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b",
        ),
    ]
}

fn padded_key(short: &[u8]) -> [u8; 32] {
    let mut key = [0u8; 32];
    key[..short.len()].copy_from_slice(short);
    key
}

#[test]
fn mac_matches_rfc_4231_test_cases_1_to_4() {
    for (i, (k, data, expected)) in rfc4231_vectors().into_iter().enumerate() {
        let key = SigningKey::from_raw_key_for_tests(padded_key(&k));
        assert_eq!(
            hex(&key.mac(&data)),
            expected,
            "RFC 4231 test case {}",
            i + 1
        );
    }
}

#[test]
fn mac_matches_rfc_4231_test_case_5_truncated_to_128_bits() {
    let key = SigningKey::from_raw_key_for_tests(padded_key(&[0x0c; 20]));
    let tag = key.mac(b"Test With Truncation");
    assert_eq!(hex(&tag[..16]), "a3b6167473100ee06e0c796c2955552b");
}

#[test]
fn verify_mac_accepts_rfc_4231_tags_and_rejects_altered_or_truncated_ones() {
    for (k, data, expected) in rfc4231_vectors() {
        let key = SigningKey::from_raw_key_for_tests(padded_key(&k));
        let tag = unhex(expected);
        key.verify_mac(&data, &tag).unwrap();

        let mut flipped = tag.clone();
        flipped[31] ^= 1;
        assert!(matches!(
            key.verify_mac(&data, &flipped),
            Err(Error::SignatureMismatch)
        ));
        assert!(matches!(
            key.verify_mac(b"other data", &tag),
            Err(Error::SignatureMismatch)
        ));
        // A truncated tag is a shorter forgery target; it is never accepted.
        assert!(matches!(
            key.verify_mac(&data, &tag[..16]),
            Err(Error::MalformedSignature)
        ));
        assert!(matches!(
            key.verify_mac(&data, &[]),
            Err(Error::MalformedSignature)
        ));
    }
}

// ---- derivation and key_id ----------------------------------------------------

/// The key computed independently with the `hkdf` crate, per the documented
/// construction.
fn expected_key(secret: [u8; 32], salt: &[u8], hostname: Option<&str>) -> [u8; 32] {
    let mut info = b"jido_code/session-signature/v1".to_vec();
    if let Some(h) = hostname {
        info.extend_from_slice(b"\0host=");
        info.extend_from_slice(h.as_bytes());
    }
    let mut okm = [0u8; 32];
    hkdf::Hkdf::<Sha256>::new(Some(salt), &secret)
        .expand(&info, &mut okm)
        .unwrap();
    okm
}

#[test]
fn derive_is_hkdf_sha256_with_the_documented_salt_and_info() {
    for (salt, host) in [
        (&b"salt"[..], Some("h")),
        (b"", None),
        (b"s", Some("")),
        (b"long salt", Some("a.b.c")),
    ] {
        let derived = SigningKey::derive(&MachineSecret::from_bytes([5; 32]), salt, host);
        let independent = SigningKey::from_raw_key_for_tests(expected_key([5; 32], salt, host));
        assert_eq!(derived.key_id(), independent.key_id());
        assert_eq!(derived.mac(b"probe"), independent.mac(b"probe"));
    }
}

#[test]
fn derive_is_deterministic() {
    let (a, b) = (key(), key());
    assert_eq!(a.key_id(), b.key_id());
    assert_eq!(a.mac(b"x"), b.mac(b"x"));
}

#[test]
fn the_secret_the_salt_and_the_hostname_each_change_the_key_and_key_id() {
    let secret = MachineSecret::from_bytes([1; 32]);
    let base = SigningKey::derive(&secret, b"salt", Some("host"));
    let variants = [
        SigningKey::derive(&MachineSecret::from_bytes([2; 32]), b"salt", Some("host")),
        SigningKey::derive(&secret, b"salu", Some("host")),
        SigningKey::derive(&secret, b"", Some("host")),
        SigningKey::derive(&secret, b"salt", Some("hosu")),
        SigningKey::derive(&secret, b"salt", Some("")),
        SigningKey::derive(&secret, b"salt", None),
    ];
    for (i, v) in variants.iter().enumerate() {
        assert_ne!(v.key_id(), base.key_id(), "variant {i}");
        assert_ne!(v.mac(b"x"), base.mac(b"x"), "variant {i}");
    }
    let mut ids: Vec<&str> = variants.iter().map(SigningKey::key_id).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), variants.len(), "all variants are distinct keys");
}

#[test]
fn key_id_is_16_lowercase_hex_digits_of_an_hmac_fingerprint_not_part_of_the_key() {
    let raw = expected_key([0x42; 32], b"signing-salt", Some("host.example"));
    let key = key();
    let id = key.key_id();
    assert_eq!(id.len(), 16);
    assert!(
        id.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
        "{id}"
    );

    let mut fp = Hmac::<Sha256>::new_from_slice(&raw).unwrap();
    fp.update(b"jido_code/key-id/v1");
    assert_eq!(id, hex(&fp.finalize().into_bytes()[..8]));

    let key_hex = hex(&raw);
    assert!(
        !key_hex.contains(id),
        "key_id must not be a slice of the key"
    );
    for chunk in raw.chunks(8) {
        assert!(
            !id.contains(&hex(chunk)),
            "key_id must not contain any 8-byte run of the key"
        );
    }
}

#[test]
fn debug_output_shows_the_key_id_but_never_the_key() {
    let raw = expected_key([0x42; 32], b"signing-salt", Some("host.example"));
    let shown = format!("{:?}", key());
    assert!(shown.contains(key().key_id()));
    assert!(!shown.contains(&hex(&raw[..4])));
    assert!(!shown.contains(&format!("{:?}", &raw[..4])));
}

// ---- sign / verify ------------------------------------------------------------

#[test]
fn a_signed_document_verifies_as_signed() {
    let doc = signed_document();
    assert_eq!(key().verify_document(&doc).unwrap(), SignatureState::Signed);
}

#[test]
fn signing_sets_our_key_id_and_appends_a_base64_signature_last() {
    let doc = signed_document();
    let m = members(&doc);
    assert_eq!(m.last().unwrap().0, SIGNATURE_MEMBER);
    assert_eq!(
        m[m.len() - 2].0,
        KEY_ID_MEMBER,
        "a new key_id goes at the end, before the signature"
    );
    assert_eq!(
        member(&doc, KEY_ID_MEMBER),
        Some(&Value::String(key().key_id().to_owned()))
    );
    let Some(Value::String(sig)) = member(&doc, SIGNATURE_MEMBER) else {
        panic!("no signature")
    };
    assert_eq!(sig.len(), 44);
    assert_eq!(BASE64.decode(sig).unwrap().len(), 32);
}

#[test]
fn the_signature_is_hmac_of_the_jcs_bytes_without_the_signature_member() {
    // What any other JCS implementation would compute, given the key.
    let raw = expected_key([0x42; 32], b"signing-salt", Some("host.example"));
    let doc = signed_document();
    let mut unsigned = doc.clone();
    members_mut(&mut unsigned).retain(|(k, _)| k != SIGNATURE_MEMBER);
    let mut mac = Hmac::<Sha256>::new_from_slice(&raw).unwrap();
    mac.update(&canonical::to_vec(&unsigned).unwrap());
    let expected = BASE64.encode(mac.finalize().into_bytes());
    assert_eq!(
        member(&doc, SIGNATURE_MEMBER),
        Some(&Value::String(expected))
    );
}

#[test]
fn signing_twice_gives_the_same_document() {
    let once = signed_document();
    let mut twice = once.clone();
    key().sign_document(&mut twice).unwrap();
    assert_eq!(once, twice);
}

#[test]
fn re_signing_replaces_a_foreign_key_id_in_place_and_the_old_signature() {
    let mut doc = parse(r#"{"key_id":"0000000000000000","a":1,"signature":"bogus","b":2}"#);
    key().sign_document(&mut doc).unwrap();
    let names: Vec<&str> = members(&doc).iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(names, ["key_id", "a", "b", "signature"]);
    assert_eq!(
        member(&doc, KEY_ID_MEMBER),
        Some(&Value::String(key().key_id().to_owned()))
    );
    assert_eq!(key().verify_document(&doc).unwrap(), SignatureState::Signed);
}

#[test]
fn a_missing_key_id_is_inserted_where_an_old_signature_was() {
    let mut doc = parse(r#"{"a":1,"signature":"old","b":2}"#);
    key().sign_document(&mut doc).unwrap();
    let names: Vec<&str> = members(&doc).iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(names, ["a", "key_id", "b", "signature"]);
}

#[test]
fn a_document_without_a_signature_is_unsigned() {
    let doc = session_document();
    assert_eq!(
        key().verify_document(&doc).unwrap(),
        SignatureState::Unsigned
    );
    let mut stripped = signed_document();
    members_mut(&mut stripped).retain(|(k, _)| k != SIGNATURE_MEMBER);
    assert_eq!(
        key().verify_document(&stripped).unwrap(),
        SignatureState::Unsigned
    );
}

#[test]
fn signing_or_verifying_a_non_object_is_refused() {
    for text in ["[1,2]", "\"s\"", "1", "null", "true"] {
        let mut v = parse(text);
        assert!(
            matches!(key().sign_document(&mut v), Err(Error::NotAnObject)),
            "{text}"
        );
        assert!(
            matches!(key().verify_document(&v), Err(Error::NotAnObject)),
            "{text}"
        );
    }
}

#[test]
fn every_single_byte_tamper_of_a_compact_signed_document_is_detected() {
    let key = key();
    let original = signed_document();
    let bytes = to_bytes(&original, Layout::Compact);
    assert_eq!(
        key.verify_document(&json::parse(&bytes, DEPTH).unwrap())
            .unwrap(),
        SignatureState::Signed
    );

    let (mut parse_errors, mut verify_errors) = (0usize, 0usize);
    let (mut same_document, mut renamed_signature) = (0usize, 0usize);
    let mut tampered = bytes.clone();
    for i in 0..bytes.len() {
        for replacement in 0..=u8::MAX {
            if replacement == bytes[i] {
                continue;
            }
            tampered[i] = replacement;
            match json::parse(&tampered, DEPTH) {
                Err(_) => parse_errors += 1,
                Ok(doc) => match key.verify_document(&doc) {
                    Err(_) => verify_errors += 1,
                    // Renaming the "signature" member leaves no signature:
                    // the document is reported unsigned, which the caller's
                    // policy rejects once signatures are enforced. It is
                    // never reported as validly signed.
                    Ok(SignatureState::Unsigned) => {
                        assert!(member(&doc, SIGNATURE_MEMBER).is_none());
                        renamed_signature += 1;
                    }
                    // Only another spelling of the very same document may
                    // verify (e.g. `\u001f` vs `\u001F`): JCS makes
                    // signatures independent of spelling by design.
                    Ok(SignatureState::Signed) => {
                        assert_eq!(
                            doc, original,
                            "byte {i} -> {replacement:#04x} changed the document yet verified"
                        );
                        same_document += 1;
                    }
                },
            }
        }
        tampered[i] = bytes[i];
    }
    println!(
        "{} bytes x 255 tampers: {parse_errors} parse errors, {verify_errors} verify errors, \
         {renamed_signature} renamed signature member (unsigned), \
         {same_document} equivalent spellings of the same document",
        bytes.len()
    );
    assert!(verify_errors > 0 && parse_errors > 0);
}

/// Reverses member order at every level.
fn reorder(value: &mut Value) {
    match value {
        Value::Object(m) => {
            m.reverse();
            m.iter_mut().for_each(|(_, v)| reorder(v));
        }
        Value::Array(a) => a.iter_mut().for_each(reorder),
        _ => {}
    }
}

#[test]
fn reformatted_documents_still_verify() {
    let key = key();
    let doc = signed_document();
    let compact = to_bytes(&doc, Layout::Compact);
    let pretty = to_bytes(&doc, Layout::Pretty);
    assert_ne!(compact, pretty);

    // Outside strings every newline is structural (strings escape theirs),
    // so this only adds whitespace.
    let mut spaced = Vec::new();
    for &b in &pretty {
        if b == b'\n' {
            spaced.extend_from_slice(b" \r\n\t ");
        } else {
            spaced.push(b);
        }
    }

    let mut reordered = doc.clone();
    reorder(&mut reordered);
    let reordered_pretty = to_bytes(&reordered, Layout::Pretty);
    let reordered_compact = to_bytes(&reordered, Layout::Compact);

    for (name, bytes) in [
        ("compact", compact.clone()),
        ("pretty", pretty.clone()),
        ("extra whitespace", spaced),
        ("reordered pretty", reordered_pretty),
        ("reordered compact", reordered_compact),
        (
            "pretty -> compact",
            to_bytes(&json::parse(&pretty, DEPTH).unwrap(), Layout::Compact),
        ),
        (
            "compact -> pretty",
            to_bytes(&json::parse(&compact, DEPTH).unwrap(), Layout::Pretty),
        ),
    ] {
        let parsed = json::parse(&bytes, DEPTH).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            key.verify_document(&parsed).unwrap(),
            SignatureState::Signed,
            "{name}"
        );
    }
}

#[test]
fn a_document_signed_by_another_key_is_foreign() {
    let mut doc = session_document();
    let other = other_key();
    other.sign_document(&mut doc).unwrap();
    match key().verify_document(&doc) {
        Err(Error::ForeignSignature { found }) => assert_eq!(found, other.key_id()),
        r => panic!("expected ForeignSignature, got {r:?}"),
    }
}

#[test]
fn another_keys_signature_with_a_key_id_forged_to_ours_is_a_mismatch() {
    let mut doc = session_document();
    other_key().sign_document(&mut doc).unwrap();
    set_member(
        &mut doc,
        KEY_ID_MEMBER,
        Value::String(key().key_id().to_owned()),
    );
    assert!(matches!(
        key().verify_document(&doc),
        Err(Error::SignatureMismatch)
    ));
}

#[test]
fn another_keys_signature_with_the_key_id_removed_is_a_mismatch() {
    let mut doc = session_document();
    other_key().sign_document(&mut doc).unwrap();
    members_mut(&mut doc).retain(|(k, _)| k != KEY_ID_MEMBER);
    assert!(matches!(
        key().verify_document(&doc),
        Err(Error::SignatureMismatch)
    ));
}

#[test]
fn a_foreign_key_id_is_reported_truncated_to_64_characters() {
    let mut doc = signed_document();
    set_member(&mut doc, KEY_ID_MEMBER, Value::String("é".repeat(10_000)));
    match key().verify_document(&doc) {
        Err(Error::ForeignSignature { found }) => assert_eq!(found, "é".repeat(64)),
        r => panic!("expected ForeignSignature, got {r:?}"),
    }
}

#[test]
fn a_malformed_signature_is_reported_as_malformed() {
    let good = match member(&signed_document(), SIGNATURE_MEMBER) {
        Some(Value::String(s)) => s.clone(),
        _ => unreachable!(),
    };
    // The last character carries 2 unused bits; a non-zero one is a second
    // spelling of nearly the same tag and must be refused.
    let last = good.as_bytes()[42];
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let pos = alphabet.iter().position(|&c| c == last).unwrap();
    let mut trailing_bits = good.clone();
    trailing_bits.replace_range(42..43, &char::from(alphabet[pos ^ 1]).to_string());

    let cases = [
        Value::String(String::new()),
        Value::String("c2hvcnQ=".into()),
        Value::String(good[..43].to_owned()),
        Value::String(format!("{good}=")),
        Value::String(format!("{}!", &good[..43])),
        Value::String(good.replace('=', "A")),
        Value::String(BASE64.encode([7u8; 31])),
        Value::String(BASE64.encode([7u8; 33])),
        Value::String(base64::engine::general_purpose::URL_SAFE.encode([0xfb; 32])),
        Value::String(trailing_bits),
        Value::String(format!(" {}", &good[1..])),
        Value::Integer(1),
        Value::Null,
        Value::Array(vec![Value::String(good.clone())]),
    ];
    for case in cases {
        let mut doc = signed_document();
        set_member(&mut doc, SIGNATURE_MEMBER, case.clone());
        let r = key().verify_document(&doc);
        assert!(
            matches!(r, Err(Error::MalformedSignature)),
            "{case:?}: {r:?}"
        );
    }
}

#[test]
fn a_key_id_that_is_not_a_string_is_malformed() {
    for bad in [Value::Integer(1), Value::Null, Value::Array(vec![])] {
        let mut doc = signed_document();
        set_member(&mut doc, KEY_ID_MEMBER, bad.clone());
        assert!(
            matches!(key().verify_document(&doc), Err(Error::MalformedSignature)),
            "{bad:?}"
        );
    }
}

#[test]
fn adding_removing_or_changing_a_member_breaks_the_signature() {
    type Edit = (&'static str, fn(&mut Value));
    let edits: [Edit; 5] = [
        ("add top-level member", |d| {
            members_mut(d).insert(0, ("extra".into(), Value::Bool(true)))
        }),
        ("remove top-level member", |d| {
            members_mut(d).retain(|(k, _)| k != "todos")
        }),
        ("change nested value", |d| {
            set_member(d, "n", Value::Integer(-12344))
        }),
        ("float to equal-looking integer", |d| {
            set_member(d, "f", Value::Integer(0))
        }),
        ("add nested member", |d| {
            let Some((_, config)) = members_mut(d).iter_mut().find(|(k, _)| k == "config") else {
                unreachable!()
            };
            members_mut(config).push(("x".into(), Value::Null));
        }),
    ];
    for (name, edit) in edits {
        let mut doc = signed_document();
        edit(&mut doc);
        assert!(
            matches!(key().verify_document(&doc), Err(Error::SignatureMismatch)),
            "{name}"
        );
    }
}

// ---- throughput -----------------------------------------------------------------

/// Not a benchmark and asserts nothing about time; run with
/// `cargo test --release -p jido_core --test signing -- --ignored --nocapture`.
#[test]
#[ignore = "throughput measurement; run in release with --nocapture"]
fn sign_and_verify_throughput_on_a_10_mb_document() {
    let mut text = String::from(r#"{"version":1,"id":"x","conversation":["#);
    let content = "Lorem ipsum dolor sit amet, \"quoted\", tab\t, ünïcödé ✓, 12345 ".repeat(16);
    let mut i = 0;
    while text.len() < 10 << 20 {
        if i > 0 {
            text.push(',');
        }
        text.push_str(&format!(
            r#"{{"id":"m{i}","role":"user","content":"{}","timestamp":"2024-05-01T10:00:00Z","n":{i},"f":{}.25}}"#,
            content.replace('\\', "\\\\").replace('"', "\\\"").replace('\t', "\\t"),
            i
        ));
        i += 1;
    }
    text.push_str("]}");
    let mb = text.len() as f64 / (1 << 20) as f64;
    let mut doc = parse(&text);
    let key = key();

    // Best of a few rounds, so one cold cache does not dominate.
    let (mut sign, mut verify, mut to_vec) = (Duration::MAX, Duration::MAX, Duration::MAX);
    let mut canonical_len = 0;
    for _ in 0..5 {
        let start = Instant::now();
        key.sign_document(&mut doc).unwrap();
        sign = sign.min(start.elapsed());
        let start = Instant::now();
        assert_eq!(key.verify_document(&doc).unwrap(), SignatureState::Signed);
        verify = verify.min(start.elapsed());
        let start = Instant::now();
        canonical_len = canonical::to_vec(&doc).unwrap().len();
        to_vec = to_vec.min(start.elapsed());
    }

    println!(
        "{mb:.1} MiB document ({i} messages, {canonical_len} canonical bytes): sign {sign:?} ({:.0} MiB/s), \
         verify {verify:?} ({:.0} MiB/s), sign+verify {:?}; canonical::to_vec alone {to_vec:?}",
        mb / sign.as_secs_f64(),
        mb / verify.as_secs_f64(),
        sign + verify,
    );
}
