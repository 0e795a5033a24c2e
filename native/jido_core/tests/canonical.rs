//! RFC 8785 (JCS): the published examples, and the properties a signature
//! over canonical bytes relies on.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use jido_core::canonical;
use jido_core::json::{self, Layout, Value, MAX_DEPTH_CAP, MAX_SAFE_INTEGER};
use jido_core::Error;
use proptest::prelude::*;

fn canon(text: &str) -> String {
    String::from_utf8(canonical::canonicalize(text.as_bytes(), MAX_DEPTH_CAP).unwrap()).unwrap()
}

fn canon_value(value: &Value) -> String {
    String::from_utf8(canonical::to_vec(value).unwrap()).unwrap()
}

// ---- RFC 8785's published examples -------------------------------------------

const RFC_8785_EXAMPLE_OUTPUT: &str = r#"{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],"string":"€$\u000f\nA'B\"\\\\\"/"}"#;

/// RFC 8785 §3.2.2, the example of the whole scheme, from its input text.
///
/// serde_json reads `333333333.33333329` one unit in the last place off
/// unless its `float_roundtrip` feature is enabled.
#[test]
fn the_rfc_8785_section_3_2_2_example_canonicalizes_to_the_published_bytes() {
    let input = r#"{
  "numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],
  "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
  "literals": [null, true, false]
}"#;
    assert_eq!(canon(input), RFC_8785_EXAMPLE_OUTPUT);
}

/// RFC 8785 §3.2.2, the example of the whole scheme, from the values its
/// input denotes (independent of how the number text is parsed).
#[test]
fn the_rfc_8785_section_3_2_2_example_values_serialize_to_the_published_bytes() {
    let numbers = [
        // 333333333.33333329, the double RFC 8785 Appendix B lists as 41b3de4355555555.
        f64::from_bits(0x41b3_de43_5555_5555),
        1e30,
        4.5,
        0.002,
        1e-27,
    ];
    let doc = Value::Object(vec![
        (
            "numbers".to_owned(),
            Value::Array(numbers.into_iter().map(Value::Float).collect()),
        ),
        (
            "string".to_owned(),
            Value::String("\u{20ac}$\u{f}\nA'B\"\\\\\"/".to_owned()),
        ),
        (
            "literals".to_owned(),
            Value::Array(vec![Value::Null, Value::Bool(true), Value::Bool(false)]),
        ),
    ]);
    assert_eq!(canon_value(&doc), RFC_8785_EXAMPLE_OUTPUT);
}

/// RFC 8785 §3.2.2.2: only `"`, `\` and control characters are escaped.
#[test]
fn the_rfc_8785_string_example_is_escaped_as_published() {
    assert_eq!(
        canon(r#""\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/""#),
        r#""€$\u000f\nA'B\"\\\\\"/""#
    );
}

/// RFC 8785 §3.2.3: keys sort by UTF-16 code units, so the emoji (d83d de00)
/// comes before U+FB33 although its code point and UTF-8 bytes are larger.
#[test]
fn the_rfc_8785_sorting_example_orders_keys_by_utf16_code_units() {
    let input = r#"{
  "\u20ac": "Euro Sign",
  "\r": "Carriage Return",
  "\ufb33": "Hebrew Letter Dalet With Dagesh",
  "1": "One",
  "\ud83d\ude00": "Emoji: Grinning Face",
  "\u0080": "Control",
  "\u00f6": "Latin Small Letter O With Diaeresis"
}"#;
    assert_eq!(
        canon(input),
        "{\"\\r\":\"Carriage Return\",\"1\":\"One\",\"\u{80}\":\"Control\",\
         \"\u{f6}\":\"Latin Small Letter O With Diaeresis\",\"\u{20ac}\":\"Euro Sign\",\
         \"\u{1f600}\":\"Emoji: Grinning Face\",\"\u{fb33}\":\"Hebrew Letter Dalet With Dagesh\"}"
    );
}

/// RFC 8785 Appendix B: IEEE-754 bit patterns and their canonical text.
#[test]
fn the_rfc_8785_appendix_b_numbers_serialize_as_published() {
    let table = common::RFC8785_APPENDIX_B;
    for &(bits, expected) in table {
        assert_eq!(
            canon_value(&Value::Float(f64::from_bits(bits))),
            expected,
            "{bits:016x}"
        );
    }
}

/// RFC 8785 Appendix B: NaN and Infinity have no JSON form.
#[test]
fn nan_and_infinity_are_unrepresentable() {
    for bits in [
        0x7fff_ffff_ffff_ffff_u64,
        0x7ff0_0000_0000_0000,
        0xfff0_0000_0000_0000,
    ] {
        assert!(matches!(
            canonical::to_vec(&Value::Float(f64::from_bits(bits))),
            Err(Error::Unrepresentable(_))
        ));
    }
}

#[test]
fn number_spellings_of_one_double_canonicalize_alike() {
    assert_eq!(
        canon("[1e21, 1E+21, 1000000000000000000000.0]"),
        "[1e+21,1e+21,1e+21]"
    );
    assert_eq!(canon("[1e-7, 0.0000001, 10e-8]"), "[1e-7,1e-7,1e-7]");
    assert_eq!(canon("[-0, -0.0, 0e5, 0]"), "[0,0,0,0]");
    assert_eq!(canon("[4.50, 4.5e0, 45e-1]"), "[4.5,4.5,4.5]");
    assert_eq!(canon("[1.0, 100e-2, 1]"), "[1,1,1]");
    assert_eq!(
        canon("[0.000001, 123e18, 1e20]"),
        "[0.000001,123000000000000000000,100000000000000000000]"
    );
    assert_eq!(
        canon("[5e-324, 1.7976931348623157e308, 9007199254740991, -9007199254740991]"),
        "[5e-324,1.7976931348623157e+308,9007199254740991,-9007199254740991]"
    );
}

// ---- strings -----------------------------------------------------------------

#[test]
fn control_characters_use_short_escapes_where_they_exist_and_lowercase_hex_otherwise() {
    let all: String = (0u8..0x20).map(char::from).collect();
    let expected = "\"\\u0000\\u0001\\u0002\\u0003\\u0004\\u0005\\u0006\\u0007\\b\\t\\n\\u000b\\f\\r\\u000e\\u000f\
                    \\u0010\\u0011\\u0012\\u0013\\u0014\\u0015\\u0016\\u0017\\u0018\\u0019\\u001a\\u001b\\u001c\\u001d\\u001e\\u001f\"";
    assert_eq!(canon_value(&Value::String(all)), expected);
}

#[test]
fn everything_but_quote_backslash_and_control_characters_is_written_raw() {
    let raw = "/'<>&\u{7f}\u{80}\u{2028}\u{2029}\u{fffd}\u{feff}😀 plain";
    assert_eq!(
        canon_value(&Value::String(raw.to_owned())),
        format!("\"{raw}\"")
    );
    assert_eq!(
        canon_value(&Value::String("a\"b\\c".to_owned())),
        r#""a\"b\\c""#
    );
}

#[test]
fn escapes_are_found_at_every_position_of_a_long_string() {
    for at in 0..40 {
        for special in ['"', '\\', '\n', '\u{1}'] {
            let mut s: String = "abcdefghij".repeat(4);
            s.insert(at, special);
            let expected = serde_json::to_string(&s).unwrap();
            assert_eq!(canon_value(&Value::String(s)), expected, "{at} {special:?}");
        }
    }
}

#[test]
fn a_long_string_with_escapes_and_multibyte_characters_is_written_whole_through_a_writer() {
    // Longer than the writer's internal chunks, with every alignment of the
    // multi-byte characters against them.
    for prefix in 0..4 {
        let s = format!(
            "{}{}",
            "a".repeat(prefix),
            "é😀\"\n\u{1}xyz/".repeat(20_000)
        );
        let mut out = Vec::new();
        canonical::write(&Value::String(s.clone()), &mut out).unwrap();
        assert_eq!(out, serde_json::to_vec(&s).unwrap(), "prefix {prefix}");
    }
}

// ---- key order -----------------------------------------------------------------

#[test]
fn keys_sort_by_utf16_code_units_not_by_utf8_bytes() {
    // UTF-8 bytes (and code points) put U+FB33 before U+1F600; UTF-16 after.
    assert!("\u{fb33}".as_bytes() < "\u{1f600}".as_bytes());
    assert_eq!(
        canonical::key_order("\u{1f600}", "\u{fb33}"),
        std::cmp::Ordering::Less
    );
    let doc = Value::Object(vec![
        ("\u{fb33}".to_owned(), Value::Integer(1)),
        ("\u{1f600}".to_owned(), Value::Integer(2)),
        ("\u{e000}".to_owned(), Value::Integer(3)),
        ("a".to_owned(), Value::Integer(4)),
        ("".to_owned(), Value::Integer(5)),
        ("ab".to_owned(), Value::Integer(6)),
    ]);
    assert_eq!(
        canon_value(&doc),
        "{\"\":5,\"a\":4,\"ab\":6,\"\u{1f600}\":2,\"\u{e000}\":3,\"\u{fb33}\":1}"
    );
}

#[test]
fn nested_objects_are_sorted_and_arrays_keep_their_order() {
    assert_eq!(
        canon(r#"{"b":[3,1,{"z":1,"y":{"d":1,"c":2}}],"a":{}}"#),
        r#"{"a":{},"b":[3,1,{"y":{"c":2,"d":1},"z":1}]}"#
    );
}

#[test]
fn pretty_compact_and_reordered_forms_of_a_document_canonicalize_identically() {
    let compact = r#"{"version":1,"id":"u","config":{"model":"m","temperature":0.7},"conversation":[{"id":"1","role":"user","content":"hi\n"}],"todos":[]}"#;
    let reordered = r#"{"todos":[],"conversation":[{"content":"hi\n","role":"user","id":"1"}],"config":{"temperature":7e-1,"model":"m"},"id":"u","version":1}"#;
    let pretty = json::to_vec(
        &json::parse(compact.as_bytes(), 64).unwrap(),
        Layout::Pretty,
    )
    .unwrap();
    let spaced = "\n\t{ \"version\" : 1 , \"id\" : \"u\" , \"config\" : { \"model\" : \"m\" , \"temperature\" : 0.70 } ,\r\n \"conversation\" : [ { \"id\" : \"1\" , \"role\" : \"user\" , \"content\" : \"hi\\u000A\" } ] , \"todos\" : [ ] } ";
    let expected = canon(compact);
    assert_eq!(canon(reordered), expected);
    assert_eq!(canon(std::str::from_utf8(&pretty).unwrap()), expected);
    assert_eq!(canon(spaced), expected);
    assert_eq!(
        expected,
        r#"{"config":{"model":"m","temperature":0.7},"conversation":[{"content":"hi\n","id":"1","role":"user"}],"id":"u","todos":[],"version":1}"#
    );
}

// ---- writing -------------------------------------------------------------------

#[test]
fn write_without_member_omits_only_the_top_level_member() {
    let doc = json::parse(
        br#"{"signature":"sig","b":1,"nested":{"signature":"kept"},"a":2}"#,
        8,
    )
    .unwrap();
    let mut out = Vec::new();
    canonical::write_without_member(&doc, "signature", &mut out).unwrap();
    assert_eq!(
        String::from_utf8(out).unwrap(),
        r#"{"a":2,"b":1,"nested":{"signature":"kept"}}"#
    );
    let mut without = doc.clone();
    without.remove_member("signature");
    let mut out = Vec::new();
    canonical::write_without_member(&doc, "absent", &mut out).unwrap();
    assert_eq!(out, canonical::to_vec(&doc).unwrap());
    let mut out = Vec::new();
    canonical::write_without_member(&doc, "signature", &mut out).unwrap();
    assert_eq!(out, canonical::to_vec(&without).unwrap());
}

#[test]
fn write_without_member_refuses_a_document_that_is_not_an_object() {
    let mut out = Vec::new();
    assert!(matches!(
        canonical::write_without_member(&Value::Array(vec![]), "signature", &mut out),
        Err(Error::NotAnObject)
    ));
}

#[test]
fn write_through_a_writer_produces_the_same_bytes_as_to_vec() {
    let long = "x\"y".repeat(10_000);
    let doc = Value::Object(vec![
        ("b".to_owned(), Value::String(long)),
        ("a".to_owned(), Value::Array(vec![Value::Float(0.1); 5000])),
    ]);
    let mut out = Vec::new();
    canonical::write(&doc, &mut out).unwrap();
    assert_eq!(out, canonical::to_vec(&doc).unwrap());
}

#[test]
fn canonicalize_reports_the_parse_error() {
    assert!(matches!(
        canonical::canonicalize(br#"{"a":1,"a":2}"#, 8),
        Err(Error::InvalidJson(_))
    ));
    assert!(matches!(
        canonical::canonicalize(b"[[1]]", 1),
        Err(Error::InvalidJson(_))
    ));
}

#[test]
fn a_hand_built_value_deeper_than_the_parse_cap_is_refused_not_overflowing_the_stack() {
    let mut deep = Value::Integer(1);
    for _ in 0..100_000 {
        deep = Value::Array(vec![deep]);
    }
    assert!(matches!(
        canonical::to_vec(&deep),
        Err(Error::Unrepresentable(_))
    ));
    // Dropping a value this deep recurses once per level; unwind it by hand.
    while let Value::Array(mut items) = deep {
        deep = items.pop().unwrap_or(Value::Null);
    }
}

#[test]
fn an_integer_outside_the_exact_double_range_is_unrepresentable() {
    assert!(matches!(
        canonical::to_vec(&Value::Integer(MAX_SAFE_INTEGER + 1)),
        Err(Error::Unrepresentable(_))
    ));
    assert_eq!(
        canon_value(&Value::Integer(-MAX_SAFE_INTEGER)),
        "-9007199254740991"
    );
}

/// JCS prints an integral double from 2^53 up to 1e21 as plain digits; the
/// parser's I-JSON rule refuses such an integer literal. Canonical bytes are
/// hashed, never parsed, and `json::to_writer` writes such doubles in
/// exponent form, so files stay loadable and their signatures verify.
#[test]
fn a_huge_integral_double_canonicalizes_to_plain_digits_yet_its_file_form_loads() {
    let value = Value::Object(vec![("n".to_owned(), Value::Float(1e19))]);
    assert_eq!(canon_value(&value), r#"{"n":10000000000000000000}"#);
    let file = json::to_vec(&value, Layout::Pretty).unwrap();
    let loaded = json::parse(&file, 8).unwrap();
    assert_eq!(
        canonical::to_vec(&loaded).unwrap(),
        canonical::to_vec(&value).unwrap()
    );
}

// ---- properties ----------------------------------------------------------------

/// Finite doubles that serde_json's default parser reads back exactly (see
/// `tests/json.rs`), without integral ones in [2^53, 1e21) whose canonical
/// form the parser refuses by design.
fn float() -> impl Strategy<Value = f64> {
    (-999_999_999_999_999i64..=999_999_999_999_999, -22i32..=8).prop_map(|(m, e)| {
        let scale: f64 = format!("1e{}", e.abs()).parse().unwrap();
        #[allow(clippy::cast_precision_loss)]
        let m = m as f64;
        let f = if e < 0 { m / scale } else { m * scale };
        if (9_007_199_254_740_992.0..1e21).contains(&f.abs()) {
            m
        } else {
            f
        }
    })
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-c]{0,2}",
        any::<String>(),
        "[\u{7f}-\u{80}\u{e000}-\u{ffff}\u{10000}-\u{10ffff}]{1,2}"
    ]
}

fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        (-MAX_SAFE_INTEGER..=MAX_SAFE_INTEGER).prop_map(Value::Integer),
        float().prop_map(Value::Float),
        any::<String>().prop_map(Value::String),
    ];
    leaf.prop_recursive(8, 96, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::vec((key(), inner), 0..10).prop_map(|members| {
                let mut unique: Vec<(String, Value)> = Vec::new();
                for (k, v) in members {
                    if !unique.iter().any(|(seen, _)| *seen == k) {
                        unique.push((k, v));
                    }
                }
                Value::Object(unique)
            }),
        ]
    })
}

/// Reverses every object's members, recursively.
fn reversed(value: &Value) -> Value {
    match value {
        Value::Array(items) => Value::Array(items.iter().map(reversed).collect()),
        Value::Object(members) => Value::Object(
            members
                .iter()
                .rev()
                .map(|(k, v)| (k.clone(), reversed(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

proptest! {
    #[test]
    fn canonicalization_is_idempotent(v in value()) {
        let once = canonical::to_vec(&v).unwrap();
        let twice = canonical::canonicalize(&once, MAX_DEPTH_CAP).unwrap();
        prop_assert_eq!(once, twice);
    }

    #[test]
    fn member_order_and_layout_never_change_the_canonical_bytes(v in value()) {
        let expected = canonical::to_vec(&v).unwrap();
        prop_assert_eq!(&canonical::to_vec(&reversed(&v)).unwrap(), &expected);
        for layout in [Layout::Compact, Layout::Pretty] {
            let text = json::to_vec(&v, layout).unwrap();
            prop_assert_eq!(&canonical::canonicalize(&text, MAX_DEPTH_CAP).unwrap(), &expected);
        }
    }

    #[test]
    fn key_order_agrees_with_comparing_utf16_code_units(a in key(), b in key()) {
        prop_assert_eq!(
            canonical::key_order(&a, &b),
            a.encode_utf16().cmp(b.encode_utf16())
        );
    }

    #[test]
    fn a_borrowed_parse_canonicalizes_exactly_as_an_owned_one(v in value()) {
        let text = json::to_vec(&v, Layout::Pretty).unwrap();
        let borrowed = json::parse_borrowed(&text, MAX_DEPTH_CAP).unwrap();
        prop_assert_eq!(
            canonical::to_vec(&borrowed).unwrap(),
            canonical::to_vec(&json::parse(&text, MAX_DEPTH_CAP).unwrap()).unwrap()
        );
    }

    #[test]
    fn canonical_strings_match_serde_json_s_escaping(s in any::<String>()) {
        // serde_json escapes exactly JCS's set, with the same lowercase hex.
        prop_assert_eq!(
            canonical::to_vec(&Value::String(s.clone())).unwrap(),
            serde_json::to_vec(&s).unwrap()
        );
    }
}

// ---- throughput (informational; run with --release --ignored --nocapture) ------

/// A session-shaped document of about `target` bytes.
fn session_document(target: usize, escapes: bool) -> Vec<u8> {
    let mut conversation = Vec::new();
    let mut size = 0;
    let mut i = 0_i64;
    while size < target {
        let lorem = "Lorem ipsum dolor sit amet, consectetur adipiscing elit. "
            .repeat(usize::try_from(i % 7).unwrap());
        let content = if escapes {
            format!(
                "Message {i}: the quick brown fox jumps over the lazy dog. \"Quoted\" text,\n\
                 a path C:\\\\tmp and some unicode — café, 😀. {lorem}"
            )
        } else {
            format!("Message {i}: the quick brown fox jumps over the lazy dog. {lorem}")
        };
        size += content.len() + 120;
        conversation.push(Value::Object(vec![
            ("id".to_owned(), Value::String(format!("msg-{i:08}"))),
            (
                "role".to_owned(),
                Value::String(if i % 2 == 0 { "user" } else { "assistant" }.to_owned()),
            ),
            ("content".to_owned(), Value::String(content)),
            (
                "timestamp".to_owned(),
                Value::String("2024-05-01T12:34:56.789012Z".to_owned()),
            ),
            ("tokens".to_owned(), Value::Integer(i * 3)),
        ]));
        i += 1;
    }
    let doc = Value::Object(vec![
        ("version".to_owned(), Value::Integer(1)),
        (
            "id".to_owned(),
            Value::String("0b5d6c1e-8a8f-4c36-9d6f-6a1f8d7e2b11".to_owned()),
        ),
        (
            "config".to_owned(),
            Value::Object(vec![
                ("provider".to_owned(), Value::String("anthropic".to_owned())),
                ("temperature".to_owned(), Value::Float(0.7)),
                ("max_tokens".to_owned(), Value::Integer(4096)),
            ]),
        ),
        ("conversation".to_owned(), Value::Array(conversation)),
    ]);
    json::to_vec(&doc, Layout::Pretty).unwrap()
}

#[test]
#[ignore = "timing report, not a check: cargo test --release --test canonical -- --ignored --nocapture"]
fn throughput_report() {
    let escaped = session_document(10 * 1024 * 1024, true);
    let plain = session_document(10 * 1024 * 1024, false);
    for (name, bytes) in [("escape-heavy text", escaped), ("plain text", plain)] {
        println!("--- {name}");
        report(&bytes);
    }
}

fn report(bytes: &[u8]) {
    let mb = bytes.len() as f64 / 1e6;
    let rounds = 10;
    let time = |f: &mut dyn FnMut()| {
        f();
        let start = std::time::Instant::now();
        for _ in 0..rounds {
            f();
        }
        start.elapsed().as_secs_f64() / f64::from(rounds)
    };
    let doc = json::parse(bytes, 64).unwrap();
    // Parsing alone, and dropping the tree (also part of a load) alone.
    let start = std::time::Instant::now();
    let parsed: Vec<Value> = (0..rounds)
        .map(|_| json::parse(bytes, 64).unwrap())
        .collect();
    let parse = start.elapsed().as_secs_f64() / f64::from(rounds);
    let start = std::time::Instant::now();
    drop(parsed);
    let free = start.elapsed().as_secs_f64() / f64::from(rounds);
    let canon = time(&mut || drop(std::hint::black_box(canonical::to_vec(&doc).unwrap())));
    let mut sink = std::io::sink();
    let canon_writer = time(&mut || canonical::write(&doc, &mut sink).unwrap());
    let pretty = time(&mut || {
        drop(std::hint::black_box(
            json::to_vec(&doc, Layout::Pretty).unwrap(),
        ))
    });
    let both = time(&mut || {
        drop(std::hint::black_box(
            canonical::canonicalize(bytes, 64).unwrap(),
        ))
    });
    let serde = time(&mut || {
        drop(std::hint::black_box(
            serde_json::from_slice::<serde_json::Value>(bytes).unwrap(),
        ))
    });
    let scan = time(&mut || {
        serde_json::from_slice::<serde::de::IgnoredAny>(bytes).unwrap();
    });
    println!("document: {mb:.1} MB");
    for (name, secs) in [
        ("json::parse", parse),
        ("drop of the parsed Value", free),
        ("canonical::to_vec", canon),
        ("canonical::write (io::sink)", canon_writer),
        ("json::to_vec pretty", pretty),
        ("canonical::canonicalize (parse + JCS)", both),
        ("serde_json::Value parse (reference)", serde),
        ("serde_json validation only (reference)", scan),
    ] {
        println!("{name:40} {:7.2} ms {:7.0} MB/s", secs * 1e3, mb / secs);
    }
}
