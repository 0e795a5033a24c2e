//! The strict JSON model: what `json::parse` refuses, and that `json::to_writer`
//! writes what `json::parse` reads back.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use jido_core::json::{self, Layout, Value, MAX_DEPTH_CAP, MAX_SAFE_INTEGER};
use jido_core::Error;
use proptest::prelude::*;

const DEPTH: usize = 64;

fn parse(text: &str) -> Result<Value, Error> {
    json::parse(text.as_bytes(), DEPTH)
}

/// The detail of an `InvalidJson` refusal; panics on anything else.
fn refusal(result: Result<Value, Error>) -> String {
    match result {
        Err(Error::InvalidJson(detail)) => detail,
        other => panic!("expected InvalidJson, got {other:?}"),
    }
}

fn nested(open: &str, close: &str, levels: usize) -> String {
    format!("{}{}", open.repeat(levels), close.repeat(levels))
}

fn obj(members: &[(&str, Value)]) -> Value {
    Value::Object(
        members
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect(),
    )
}

fn string(s: &str) -> Value {
    Value::String(s.to_owned())
}

// ---- what parse accepts ------------------------------------------------------

#[test]
fn parse_keeps_object_members_in_document_order() {
    let doc = parse(r#"{"z":1,"a":[true,false,null],"m":{"y":"s","b":2.5}}"#).unwrap();
    assert_eq!(
        doc,
        obj(&[
            ("z", Value::Integer(1)),
            (
                "a",
                Value::Array(vec![Value::Bool(true), Value::Bool(false), Value::Null])
            ),
            ("m", obj(&[("y", string("s")), ("b", Value::Float(2.5))])),
        ])
    );
}

#[test]
fn a_top_level_value_that_is_not_an_object_still_parses() {
    assert_eq!(parse("[1]").unwrap(), Value::Array(vec![Value::Integer(1)]));
    assert_eq!(parse(r#""s""#).unwrap(), string("s"));
    assert_eq!(parse(" 7 ").unwrap(), Value::Integer(7));
    assert_eq!(parse("null").unwrap(), Value::Null);
}

#[test]
fn escapes_in_strings_and_keys_are_decoded() {
    let doc = parse(r#"{"\u0041\n":"\ud83d\ude00\u20ac\/\"\\"}"#).unwrap();
    assert_eq!(doc, obj(&[("A\n", string("😀€/\"\\"))]));
}

#[test]
fn integers_within_the_exact_double_range_are_integers() {
    assert_eq!(
        parse("9007199254740991").unwrap(),
        Value::Integer(MAX_SAFE_INTEGER)
    );
    assert_eq!(
        parse("-9007199254740991").unwrap(),
        Value::Integer(-MAX_SAFE_INTEGER)
    );
    assert_eq!(parse("0").unwrap(), Value::Integer(0));
}

#[test]
fn numbers_with_a_fraction_or_exponent_are_floats() {
    assert_eq!(parse("1.0").unwrap(), Value::Float(1.0));
    assert_eq!(parse("1e2").unwrap(), Value::Float(100.0));
    assert_eq!(parse("-2.5E-3").unwrap(), Value::Float(-0.0025));
    // An integral double beyond 2^53 spelled as a float is a float.
    assert_eq!(
        parse("9007199254740992.0").unwrap(),
        Value::Float(9_007_199_254_740_992.0)
    );
    assert_eq!(parse("1E30").unwrap(), Value::Float(1e30));
}

#[test]
fn minus_zero_parses_as_a_float_zero() {
    match parse("-0").unwrap() {
        Value::Float(f) => assert!(f == 0.0 && f.is_sign_negative()),
        other => panic!("{other:?}"),
    }
}

// ---- what parse refuses ------------------------------------------------------

#[test]
fn a_duplicate_key_is_refused_with_its_name() {
    assert_eq!(
        refusal(parse(r#"{"id":"a","name":"n","id":"b"}"#)),
        r#"duplicate key "id""#
    );
}

#[test]
fn a_duplicate_key_in_a_nested_object_is_refused() {
    let detail = refusal(parse(r#"{"a":[{"ok":1},{"k":1,"k":1}]}"#));
    assert_eq!(detail, r#"duplicate key "k""#);
}

#[test]
fn a_duplicate_key_spelled_with_escapes_is_still_a_duplicate() {
    assert_eq!(
        refusal(parse(r#"{"project_path":"/a","project\u005fpath":"/b"}"#)),
        r#"duplicate key "project_path""#
    );
}

#[test]
fn a_duplicate_key_in_a_large_object_is_refused() {
    // Values long enough to keep 1,000 members within the value budget.
    let mut members: Vec<String> = (0..1000)
        .map(|i| format!("\"k{i}\":\"{i:0>26}\""))
        .collect();
    members.push("\"k500\":0".to_owned());
    let text = format!("{{{}}}", members.join(","));
    assert_eq!(refusal(parse(&text)), r#"duplicate key "k500""#);
}

#[test]
fn a_large_object_with_unique_keys_is_accepted() {
    let members: Vec<String> = (0..1000)
        .map(|i| format!("\"k{i}\":\"{i:0>26}\""))
        .collect();
    let doc = parse(&format!("{{{}}}", members.join(","))).unwrap();
    assert_eq!(doc.as_object().unwrap().len(), 1000);
    assert_eq!(
        doc.get("k999").and_then(Value::as_str),
        Some(&*format!("{:0>26}", 999))
    );
}

#[test]
fn a_duplicate_key_message_escapes_and_shortens_the_key() {
    let long = "x".repeat(1000);
    let detail = refusal(parse(&format!(r#"{{"{long}":1,"{long}":2}}"#)));
    assert!(detail.len() < 100, "{detail}");
    assert!(detail.starts_with(r#"duplicate key "xxxx"#), "{detail}");
    let detail = refusal(parse(r#"{"a\nb":1,"a\nb":2}"#));
    assert_eq!(detail, r#"duplicate key "a\nb""#);
}

#[test]
fn nesting_exactly_at_the_limit_is_accepted_and_one_deeper_is_refused() {
    for (open, close) in [("[", "]"), ("{\"a\":", "}")] {
        let leaf = |levels| format!("{}1{}", open.repeat(levels), close.repeat(levels));
        assert!(json::parse(leaf(5).as_bytes(), 5).is_ok());
        assert_eq!(
            refusal(json::parse(leaf(6).as_bytes(), 5)),
            "nesting deeper than 5 levels"
        );
    }
    assert!(json::parse(nested("[", "]", 3).as_bytes(), 3).is_ok());
    assert!(json::parse(nested("[", "]", 4).as_bytes(), 3).is_err());
}

#[test]
fn a_scalar_is_depth_zero_and_the_outermost_container_depth_one() {
    assert!(json::parse(b"\"s\"", 0).is_ok());
    assert_eq!(
        refusal(json::parse(b"{}", 0)),
        "nesting deeper than 0 levels"
    );
    assert!(json::parse(b"{}", 1).is_ok());
    assert!(json::parse(br#"{"a":[]}"#, 1).is_err());
}

#[test]
fn max_depth_is_clamped_to_the_cap() {
    let at_cap = nested("[", "]", MAX_DEPTH_CAP);
    let over_cap = nested("[", "]", MAX_DEPTH_CAP + 1);
    assert!(json::parse(at_cap.as_bytes(), usize::MAX).is_ok());
    assert_eq!(
        refusal(json::parse(over_cap.as_bytes(), usize::MAX)),
        format!("nesting deeper than {MAX_DEPTH_CAP} levels")
    );
}

#[test]
fn a_hundred_thousand_levels_of_nesting_are_refused_without_exhausting_the_stack() {
    for (open, close) in [("[", "]"), ("{\"a\":", "}")] {
        let hostile = nested(open, close, 100_000);
        let started = std::time::Instant::now();
        assert_eq!(
            refusal(json::parse(hostile.as_bytes(), DEPTH)),
            format!("nesting deeper than {DEPTH} levels")
        );
        // Informational: the parser stops at the limit, it does not scan on.
        eprintln!("refused 100k levels in {:?}", started.elapsed());
    }
    // Unterminated, too.
    assert!(json::parse("[".repeat(100_000).as_bytes(), MAX_DEPTH_CAP).is_err());
}

#[test]
fn invalid_utf8_in_a_string_is_refused() {
    refusal(json::parse(b"{\"a\":\"\xff\"}", DEPTH));
    refusal(json::parse(b"[\"\xc3\x28\"]", DEPTH));
    // An overlong encoding of '/'.
    refusal(json::parse(b"\"\xc0\xaf\"", DEPTH));
    // A UTF-8-encoded surrogate.
    refusal(json::parse(b"\"\xed\xa0\x80\"", DEPTH));
}

#[test]
fn invalid_utf8_in_a_key_is_refused() {
    refusal(json::parse(b"{\"\xfe\":1}", DEPTH));
}

#[test]
fn a_lone_surrogate_escape_is_refused() {
    refusal(parse(r#""\ud800""#));
    refusal(parse(r#""\udc00""#));
    refusal(parse(r#""\ud83d\u0041""#));
    refusal(parse(r#"{"\ud83d":1}"#));
}

#[test]
fn a_raw_control_character_in_a_string_is_refused() {
    refusal(parse("\"a\nb\""));
    refusal(parse("\"\u{0}\""));
}

#[test]
fn a_number_beyond_the_double_range_is_refused() {
    refusal(parse("1e400"));
    refusal(parse("[-1e400]"));
}

#[test]
fn integers_beyond_the_exact_double_range_are_refused() {
    assert_eq!(
        refusal(parse("9007199254740992")),
        "integer 9007199254740992 is outside ±(2^53−1)"
    );
    refusal(parse("-9007199254740992"));
    refusal(parse("[9007199254740993]"));
    refusal(parse("18446744073709551615"));
    refusal(parse("-9223372036854775808"));
}

#[test]
fn trailing_data_after_the_document_is_refused() {
    refusal(parse(r#"{"a":1}x"#));
    refusal(parse(r#"{"a":1}{"b":2}"#));
    refusal(parse("1 2"));
    assert!(parse("{\"a\":1} \n\t\r").is_ok());
}

#[test]
fn malformed_documents_are_refused_with_serde_json_s_message() {
    for bad in [
        "",
        " ",
        "{",
        "{\"a\"}",
        "{\"a\":1,}",
        "[1,]",
        "[01]",
        "NaN",
        "Infinity",
        "'a'",
        "{a:1}",
        "\u{feff}{}",
        "tru",
    ] {
        let detail = refusal(parse(bad));
        assert!(!detail.is_empty(), "{bad:?}");
    }
    assert!(refusal(parse("{\"a\":1,}")).contains("line 1 column"));
}

// ---- Value helpers -----------------------------------------------------------

#[test]
fn member_accessors_find_replace_and_remove_by_key() {
    let mut doc = parse(r#"{"id":"x","n":1,"signature":"s"}"#).unwrap();
    assert_eq!(doc.get("id").and_then(Value::as_str), Some("x"));
    assert_eq!(doc.get("n").and_then(Value::as_i64), Some(1));
    assert_eq!(doc.get("missing"), None);
    assert_eq!(doc.remove_member("signature"), Some(string("s")));
    assert_eq!(doc.remove_member("signature"), None);
    assert_eq!(
        doc.set_member("id", string("y")).unwrap(),
        Some(string("x"))
    );
    assert_eq!(doc.set_member("key_id", string("k")).unwrap(), None);
    assert_eq!(
        json::to_vec(&doc, Layout::Compact).unwrap(),
        br#"{"id":"y","n":1,"key_id":"k"}"#
    );
    *doc.get_mut("n").unwrap() = Value::Null;
    assert_eq!(doc.get("n"), Some(&Value::Null));
}

#[test]
fn member_accessors_on_a_non_object_find_nothing() {
    let mut array = parse("[1]").unwrap();
    assert_eq!(array.get("a"), None);
    assert_eq!(array.as_object(), None);
    assert_eq!(array.as_array(), Some(&[Value::Integer(1)][..]));
    assert_eq!(array.remove_member("a"), None);
    assert!(matches!(
        array.set_member("a", Value::Null),
        Err(Error::NotAnObject)
    ));
}

// ---- writing -----------------------------------------------------------------

#[test]
fn compact_output_has_no_whitespace_and_keeps_member_order() {
    let text = r#"{"z":[1,-2,0.5,"s",null,true,{}],"a":{"b":[]}}"#;
    let out = json::to_vec(&parse(text).unwrap(), Layout::Compact).unwrap();
    assert_eq!(String::from_utf8(out).unwrap(), text);
}

#[test]
fn pretty_output_matches_serde_json_s_pretty_formatter() {
    let text = r#"{"z":[1,-2,0.5,"s\n",null,true,{},[]],"a":{"b":[{"c":{}}]},"e":""}"#;
    let ours = json::to_vec(&parse(text).unwrap(), Layout::Pretty).unwrap();
    let theirs: serde_json::Value = serde_json::from_str(text).unwrap();
    // serde_json's own Value sorts keys unless `preserve_order`; compare
    // against a document whose keys are already sorted instead.
    let sorted = r#"{"a":{"b":[{"c":{}}]},"e":"","z":[1,-2,0.5,"s\n",null,true,{},[]]}"#;
    let ours_sorted = json::to_vec(&parse(sorted).unwrap(), Layout::Pretty).unwrap();
    assert_eq!(
        String::from_utf8(ours_sorted).unwrap(),
        serde_json::to_string_pretty(&theirs).unwrap()
    );
    assert_eq!(
        String::from_utf8(ours).unwrap(),
        "{\n  \"z\": [\n    1,\n    -2,\n    0.5,\n    \"s\\n\",\n    null,\n    true,\n    {},\n    []\n  ],\n  \"a\": {\n    \"b\": [\n      {\n        \"c\": {}\n      }\n    ]\n  },\n  \"e\": \"\"\n}"
    );
}

#[test]
fn a_scalar_document_is_written_without_decoration() {
    assert_eq!(
        json::to_vec(&string("x"), Layout::Pretty).unwrap(),
        b"\"x\""
    );
    assert_eq!(json::to_vec(&Value::Null, Layout::Pretty).unwrap(), b"null");
}

#[test]
fn to_writer_writes_the_same_bytes_as_to_vec() {
    let big: String = "conversation text ".repeat(5000);
    let doc = obj(&[("a", string(&big)), ("b", Value::Float(0.1))]);
    for layout in [Layout::Compact, Layout::Pretty] {
        let mut out = Vec::new();
        json::to_writer(&doc, &mut out, layout).unwrap();
        assert_eq!(out, json::to_vec(&doc, layout).unwrap());
    }
}

#[test]
fn numbers_are_written_the_way_ecmascript_prints_them() {
    let doc = Value::Array(vec![
        Value::Float(1e21),
        Value::Float(1e-7),
        Value::Float(0.000001),
        Value::Float(-0.0),
        Value::Float(5e-324),
        Value::Float(333_333_333.333_333_3),
        Value::Integer(-MAX_SAFE_INTEGER),
    ]);
    assert_eq!(
        String::from_utf8(json::to_vec(&doc, Layout::Compact).unwrap()).unwrap(),
        "[1e+21,1e-7,0.000001,0,5e-324,333333333.3333333,-9007199254740991]"
    );
}

#[test]
fn an_integral_double_beyond_two_to_the_53_is_written_in_exponent_form_so_it_loads_again() {
    for (value, text) in [
        (1e19, "1e+19"),
        (-9_007_199_254_740_992.0, "-9.007199254740992e+15"),
        (1_152_921_504_606_847_000.0, "1.152921504606847e+18"),
        (123_450_000_000_000_000_000.0, "1.2345e+20"),
    ] {
        let written = json::to_vec(&Value::Float(value), Layout::Compact).unwrap();
        assert_eq!(String::from_utf8(written.clone()).unwrap(), text);
        assert_eq!(
            json::parse(&written, 1).unwrap(),
            Value::Float(value),
            "{text}"
        );
    }
}

#[test]
fn a_value_the_parser_would_refuse_is_not_written() {
    for bad in [
        Value::Float(f64::NAN),
        Value::Float(f64::INFINITY),
        Value::Array(vec![Value::Float(f64::NEG_INFINITY)]),
        Value::Integer(MAX_SAFE_INTEGER + 1),
        Value::Integer(i64::MIN),
    ] {
        assert!(
            matches!(
                json::to_vec(&bad, Layout::Compact),
                Err(Error::Unrepresentable(_))
            ),
            "{bad:?}"
        );
    }
}

#[test]
fn a_hand_built_value_nested_deeper_than_the_cap_is_not_written() {
    let mut deep = Value::Null;
    for _ in 0..=MAX_DEPTH_CAP {
        deep = Value::Array(vec![deep]);
    }
    assert!(matches!(
        json::to_vec(&deep, Layout::Pretty),
        Err(Error::Unrepresentable(_))
    ));
    let Value::Array(mut inner) = deep else {
        unreachable!()
    };
    let at_cap = inner.pop().unwrap();
    let written = json::to_vec(&at_cap, Layout::Compact).unwrap();
    assert_eq!(json::parse(&written, MAX_DEPTH_CAP).unwrap(), at_cap);
}

#[test]
fn a_failing_writer_surfaces_as_an_io_error() {
    struct Broken;
    impl std::io::Write for Broken {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(std::io::Error::other("disk on fire"))
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    assert!(matches!(
        json::to_writer(&string("x"), &mut Broken, Layout::Compact),
        Err(Error::Io { op: "write", .. })
    ));
}

#[test]
fn a_large_document_reaches_the_writer_in_few_large_writes() {
    struct Counting(usize, usize);
    impl std::io::Write for Counting {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += 1;
            self.1 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let messages: Vec<Value> = (0..10_000)
        .map(|i| {
            obj(&[
                ("id", string(&format!("m{i}"))),
                ("role", string("user")),
                ("n", Value::Integer(i)),
            ])
        })
        .collect();
    let doc = Value::Array(messages);
    let mut out = Counting(0, 0);
    json::to_writer(&doc, &mut out, Layout::Pretty).unwrap();
    assert!(out.1 > 500_000);
    assert!(
        out.1 / out.0 >= 4096,
        "{} writes for {} bytes",
        out.0,
        out.1
    );
}

// ---- properties --------------------------------------------------------------

/// Doubles that serde_json's default (non-`float_roundtrip`) parser reads back
/// exactly: up to 15 significant digits, printed decimal exponent within ±22 — plus
/// the edge cases below. See `arbitrary_doubles_read_back_exactly`.
fn float() -> impl Strategy<Value = f64> {
    prop_oneof![
        4 => (-999_999_999_999_999i64..=999_999_999_999_999, -22i32..=8).prop_map(|(m, e)| {
            let scale: f64 = format!("1e{}", e.abs()).parse().unwrap();
            // Integer-valued m below 2^53 is exact, so one rounding.
            #[allow(clippy::cast_precision_loss)]
            let m = m as f64;
            if e < 0 { m / scale } else { m * scale }
        }),
        1 => prop::sample::select(vec![
            0.5, -0.0, 5e-324, 1e21, 1e-7, 1e19, 9_007_199_254_740_992.0, 1e300, 0.1, 2.5e-300,
        ]),
    ]
}

/// How a value comes back from text: an integral double within ±(2^53−1)
/// is written as plain digits and read back as an integer.
fn normalized(f: f64) -> Value {
    #[allow(clippy::cast_possible_truncation, clippy::cast_precision_loss)]
    if f.fract() == 0.0 && f.abs() <= MAX_SAFE_INTEGER as f64 {
        Value::Integer(f as i64)
    } else {
        Value::Float(f)
    }
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-c]{0,2}",
        any::<String>(),
        "[\u{e000}-\u{ffff}\u{10000}-\u{10ffff}]{1,2}"
    ]
}

fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        (-MAX_SAFE_INTEGER..=MAX_SAFE_INTEGER).prop_map(Value::Integer),
        float().prop_map(normalized),
        any::<String>().prop_map(Value::String),
    ];
    leaf.prop_recursive(8, 96, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::vec((key(), inner), 0..8).prop_map(|members| {
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

proptest! {
    #[test]
    fn whatever_to_writer_writes_parses_back_to_the_same_value(v in value()) {
        for layout in [Layout::Compact, Layout::Pretty] {
            let mut text = Vec::new();
            json::to_writer(&v, &mut text, layout).unwrap();
            prop_assert_eq!(&json::parse(&text, MAX_DEPTH_CAP).unwrap(), &v);
        }
    }

    #[test]
    fn parse_never_panics_on_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = json::parse(&bytes, 16);
    }

    #[test]
    fn parse_never_panics_on_a_corrupted_document(
        v in value(),
        at in any::<prop::sample::Index>(),
        byte in any::<u8>(),
    ) {
        let mut text = json::to_vec(&v, Layout::Pretty).unwrap();
        if !text.is_empty() {
            let i = at.index(text.len());
            text[i] = byte;
        }
        let _ = json::parse(&text, 16);
    }
}

/// serde_json parses floats exactly only with its `float_roundtrip` feature;
/// without it, about 30% of arbitrary doubles (17 significant digits) come
/// back one unit off, so a saved session holding such a double would no
/// longer match its signature when loaded.
#[test]
fn arbitrary_doubles_read_back_exactly() {
    let mut state: u64 = 0x1234_5678_9abc_def1;
    let mut failures = Vec::new();
    for _ in 0..100_000 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let f = f64::from_bits(state);
        if !f.is_finite() {
            continue;
        }
        let text = json::to_vec(&Value::Float(f), Layout::Compact).unwrap();
        if json::parse(&text, 1).unwrap() != normalized(f) {
            failures.push(String::from_utf8(text).unwrap());
        }
    }
    assert!(
        failures.is_empty(),
        "{} doubles changed, e.g. {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
}

// ---- borrowed and packed parsing -----------------------------------------------

use jido_core::json::{Document, Node, Packed, Span};
use std::borrow::Cow;

fn unpacked(packed: &Packed) -> Value {
    packed.to_value()
}

fn pack(text: &str) -> Packed {
    json::parse_packed(text.as_bytes().to_vec(), DEPTH, |_| Ok(()))
        .unwrap()
        .0
}

/// Every string of a packed tree, keys included, in document order.
fn spans(packed: &Packed) -> Vec<Span> {
    fn walk(node: &Node<Span>, out: &mut Vec<Span>) {
        match node {
            Node::String(s) => out.push(s.clone()),
            Node::Array(items) => items.iter().for_each(|v| walk(v, out)),
            Node::Object(members) => {
                for (k, v) in members {
                    out.push(k.clone());
                    walk(v, out);
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(&packed.root, &mut out);
    out
}

#[test]
fn parse_borrowed_borrows_strings_and_keys_without_escapes_and_decodes_the_others() {
    let text = r#"{"plain":"text","esc\"aped":"a\nb","list":["x","\u0041"]}"#;
    let doc: Document<'_> = json::parse_borrowed(text.as_bytes(), DEPTH).unwrap();
    let Node::Object(members) = &doc else {
        panic!("not an object")
    };
    assert!(matches!(&members[0].0, Cow::Borrowed("plain")));
    assert!(matches!(&members[0].1, Node::String(Cow::Borrowed("text"))));
    assert!(matches!(&members[1].0, Cow::Owned(k) if k == "esc\"aped"));
    assert!(matches!(&members[1].1, Node::String(Cow::Owned(s)) if s == "a\nb"));
    let Node::Array(items) = &members[2].1 else {
        panic!("not an array")
    };
    assert!(matches!(&items[0], Node::String(Cow::Borrowed("x"))));
    assert!(matches!(&items[1], Node::String(Cow::Owned(s)) if s == "A"));
    assert_eq!(doc.into_owned(), parse(text).unwrap());
}

#[test]
fn parse_borrowed_refuses_exactly_what_parse_refuses_with_the_same_detail() {
    let hostile = [
        r#"{"a":1,"a":2}"#.to_owned(),
        r#"{"k":{"x":1,"\u0078":2}}"#.to_owned(),
        nested("[", "]", DEPTH + 1),
        nested("[", "]", 100_000),
        "9007199254740992".to_owned(),
        "1e400".to_owned(),
        "\"\\ud800\"".to_owned(),
        "\"a\u{1}b\"".to_owned(),
        "{\"a\":1,}".to_owned(),
        "[1] x".to_owned(),
        String::new(),
    ];
    for text in &hostile {
        let owned = refusal(json::parse(text.as_bytes(), DEPTH));
        let borrowed =
            refusal(json::parse_borrowed(text.as_bytes(), DEPTH).map(Document::into_owned));
        assert_eq!(borrowed, owned, "{text:?}");
        let packed = refusal(
            json::parse_packed(text.as_bytes().to_vec(), DEPTH, |_| Ok(()))
                .map(|(p, ())| unpacked(&p)),
        );
        assert_eq!(packed, owned, "{text:?}");
    }
    let bad_utf8 = b"{\"a\":\"\xff\"}";
    assert_eq!(
        refusal(json::parse_borrowed(bad_utf8, DEPTH).map(Document::into_owned)),
        refusal(json::parse(bad_utf8, DEPTH))
    );
}

#[test]
fn a_packed_document_writes_each_escaped_string_over_its_escaped_form() {
    let text = r#"{"a":"x\ny","b":"plain","c":"\u00e9\ud83d\ude00"}"#;
    let packed = pack(text);
    assert_eq!(packed.bytes.len(), text.len());
    assert_eq!(unpacked(&packed), parse(text).unwrap());
    // Every string of this document sits in the buffer, each where the file
    // spelled it: after its opening quote.
    for span in spans(&packed) {
        let Span::At { start, .. } = span else {
            panic!("{span:?} was not placed")
        };
        assert_eq!(packed.bytes[start - 1], b'"');
    }
}

#[test]
fn escaped_keys_and_a_top_level_string_are_placed_too() {
    let text = "  \"a\\tb\"  ";
    let packed = pack(text);
    assert_eq!(packed.root, Node::String(Span::At { start: 3, len: 3 }));
    assert_eq!(packed.text(&Span::At { start: 3, len: 3 }), b"a\tb");

    let text = r#"{"k\"1":1,"k\"2":[true,null,"v\\"]}"#;
    let packed = pack(text);
    assert_eq!(unpacked(&packed), parse(text).unwrap());
}

#[test]
fn escaped_strings_in_a_row_are_each_placed_over_their_own_escaped_form() {
    let text = r#"["a\n","\\","b\"\\\"",{"\n":"c\"d"},"e\\"]"#;
    let packed = pack(text);
    assert_eq!(unpacked(&packed), parse(text).unwrap());
    for span in spans(&packed) {
        let Span::At { start, .. } = span else {
            panic!("{span:?} was not placed")
        };
        assert_eq!(packed.bytes[start - 1], b'"');
    }
}

#[test]
fn empty_strings_and_strings_beside_numbers_and_literals_are_placed() {
    let text = r#"["",1.5e3,"\"",true,"",-7,"x\/y",null]"#;
    let packed = pack(text);
    assert_eq!(unpacked(&packed), parse(text).unwrap());
    assert!(spans(&packed)
        .iter()
        .all(|span| matches!(span, Span::At { .. })));
}

#[test]
fn parse_packed_returns_what_check_returns_and_stops_at_its_error() {
    let (_, seen) = json::parse_packed(br#"{"a":"b"}"#.to_vec(), DEPTH, |doc| {
        Ok(doc.get("a").and_then(Node::as_str).map(str::to_owned))
    })
    .unwrap();
    assert_eq!(seen.as_deref(), Some("b"));
    let refused = json::parse_packed(b"{}".to_vec(), DEPTH, |_| -> jido_core::Result<()> {
        Err(Error::NotAnObject)
    });
    assert!(matches!(refused, Err(Error::NotAnObject)));
}

/// JSON text for `v` with every string spelled in one of several ways chosen
/// by `choices` — minimal escapes, every character as `\u` escapes, or with
/// `\/` — and random whitespace between tokens: what a hand-edited or
/// foreign file may hold.
fn respelled(v: &Value, choices: &mut impl Iterator<Item = u8>) -> String {
    fn string(s: &str, choice: u8, out: &mut String) {
        out.push('"');
        for c in s.chars() {
            match (choice % 3, c) {
                (1, _) => {
                    let mut units = [0u16; 2];
                    for unit in c.encode_utf16(&mut units) {
                        out.push_str(&format!("\\u{unit:04X}"));
                    }
                }
                (2, '/') => out.push_str("\\/"),
                (_, '"') => out.push_str("\\\""),
                (_, '\\') => out.push_str("\\\\"),
                (_, c) if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
                (_, c) => out.push(c),
            }
        }
        out.push('"');
    }
    fn space(choices: &mut impl Iterator<Item = u8>, out: &mut String) {
        let n = choices.next().unwrap_or(0) % 4;
        for _ in 0..n {
            out.push([' ', '\n', '\t', '\r'][usize::from(n)]);
        }
    }
    fn walk(v: &Value, choices: &mut impl Iterator<Item = u8>, out: &mut String) {
        space(choices, out);
        match v {
            Value::String(s) => string(s, choices.next().unwrap_or(0), out),
            Value::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    walk(item, choices, out);
                }
                space(choices, out);
                out.push(']');
            }
            Value::Object(members) => {
                out.push('{');
                for (i, (k, item)) in members.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    space(choices, out);
                    string(k, choices.next().unwrap_or(0), out);
                    space(choices, out);
                    out.push(':');
                    walk(item, choices, out);
                }
                space(choices, out);
                out.push('}');
            }
            scalar => out.push_str(
                std::str::from_utf8(&json::to_vec(scalar, Layout::Compact).unwrap()).unwrap(),
            ),
        }
        space(choices, out);
    }
    let mut out = String::new();
    walk(v, choices, &mut out);
    out
}

proptest! {
    #[test]
    fn borrowed_and_packed_parses_read_any_spelling_as_parse_does(
        v in value(),
        choices in prop::collection::vec(any::<u8>(), 0..64),
    ) {
        let mut cycle = choices.iter().copied().cycle();
        let text = if choices.is_empty() {
            String::from_utf8(json::to_vec(&v, Layout::Pretty).unwrap()).unwrap()
        } else {
            respelled(&v, &mut cycle)
        };
        let expected = json::parse(text.as_bytes(), MAX_DEPTH_CAP).unwrap();
        prop_assert_eq!(&expected, &v);
        let borrowed = json::parse_borrowed(text.as_bytes(), MAX_DEPTH_CAP).unwrap();
        prop_assert_eq!(&borrowed.into_owned(), &expected);
        let (packed, ()) = json::parse_packed(text.clone().into_bytes(), MAX_DEPTH_CAP, |_| Ok(())).unwrap();
        prop_assert_eq!(packed.bytes.len(), text.len());
        prop_assert_eq!(&unpacked(&packed), &expected);
        // ... and every string found its place in the buffer.
        let placed = spans(&packed).iter().all(|s| matches!(s, Span::At { .. }));
        prop_assert!(placed, "a string was left unplaced in {:?}", text);
    }

    #[test]
    fn borrowed_and_packed_parses_refuse_a_corrupted_document_as_parse_does(
        v in value(),
        at in any::<prop::sample::Index>(),
        byte in any::<u8>(),
    ) {
        let mut text = json::to_vec(&v, Layout::Pretty).unwrap();
        if !text.is_empty() {
            let i = at.index(text.len());
            text[i] = byte;
        }
        let owned = json::parse(&text, 16).map_err(|e| e.to_string());
        let borrowed = json::parse_borrowed(&text, 16).map(Document::into_owned).map_err(|e| e.to_string());
        prop_assert_eq!(&borrowed, &owned);
        let packed = json::parse_packed(text.clone(), 16, |_| Ok(())).map(|(p, ())| unpacked(&p)).map_err(|e| e.to_string());
        prop_assert_eq!(&packed, &owned);
    }
}

// ---- integer literals beyond 64 bits (issue 10) -------------------------------

/// Regression: serde_json hands a literal beyond u64 over as a double, which
/// was accepted as the float 1.8446744073709552e19 although the format
/// promises every integer lies within ±(2^53−1).
#[test]
fn the_integer_literal_18446744073709551617_is_refused() {
    assert_eq!(
        refusal(parse("[18446744073709551617]")),
        "integer 18446744073709551617 is outside ±(2^53−1)"
    );
}

/// Regression: the negative twin, just past i64.
#[test]
fn the_integer_literal_minus_9223372036854775809_is_refused() {
    assert_eq!(
        refusal(parse("[-9223372036854775809]")),
        "integer -9223372036854775809 is outside ±(2^53−1)"
    );
}

/// Regression: a 301-digit literal came back as 1e300.
#[test]
fn a_301_digit_integer_literal_is_refused_and_its_message_is_cut_short() {
    let literal = format!("1{}", "0".repeat(300));
    let detail = refusal(parse(&format!("{{\"n\":[{literal}]}}")));
    assert!(detail.starts_with("integer 1000"), "{detail}");
    assert!(detail.contains("(301 characters)"), "{detail}");
    assert!(detail.len() < 120, "{detail}");
}

#[test]
fn the_same_numbers_spelled_as_floats_stay_floats() {
    for text in [
        "1.8446744073709552e19",
        "-9.223372036854775809e18",
        "1e300",
        "1E19",
        "18446744073709551617.0",
    ] {
        let value = parse(&format!("[{text}, \"18446744073709551617\"]")).unwrap();
        assert!(
            matches!(value.as_array().unwrap()[0], Value::Float(_)),
            "{text}"
        );
    }
}

#[test]
fn digits_inside_strings_never_count_as_integer_literals() {
    let value = parse(r#"{"a":"\"99999999999999999999","b":1e20}"#).unwrap();
    assert_eq!(value.get("b"), Some(&Value::Float(1e20)));
}

// ---- value budget (issue 10) ----------------------------------------------------

/// Regression: a 10 MiB file of `0,` cost +482 MiB before it was refused.
#[test]
fn a_document_of_tiny_values_is_refused_once_it_holds_more_than_its_value_budget() {
    let dense = format!("{{\"conversation\":[{}0]}}", "0,".repeat(100_000));
    let detail = refusal(parse(&dense));
    assert!(detail.starts_with("more than "), "{detail}");
    assert_eq!(json::value_budget(dense.len()), dense.len() / 16 + 1024);
}

#[test]
fn a_conversation_of_one_word_messages_is_well_within_the_value_budget() {
    let message = r#"{
      "id": "0f8e2c2a-7c1b-4c55-9d3e-3c7a0b8a1f0e",
      "role": "user",
      "content": "ok",
      "timestamp": "2025-12-01T10:00:00.123456Z"
    }"#;
    let text = format!(
        "{{\"conversation\": [{}]}}",
        vec![message; 20_000].join(",\n    ")
    );
    let value = parse(&text).unwrap();
    assert!(json::value_count(&value) < json::value_budget(text.len()));
}

#[test]
fn value_count_counts_as_the_budget_does() {
    let value = parse(r#"{"a":[1,{"b":null}],"c":"x"}"#).unwrap();
    // object, a, [..], 1, {..}, b, null, c, "x"
    assert_eq!(json::value_count(&value), 9);
}

// ---- in-place decoding (issue 10) -------------------------------------------------

/// The packed load used to keep a decoded copy of every escaped string beside
/// the file (≈ the file's size again for ordinary messages); values are now
/// decoded in place, and must read exactly as the parser decodes them.
#[test]
fn packing_decodes_every_escape_in_place_exactly_as_the_parser_does() {
    let text = r#"{"k\n":["\"\\\/\b\f\n\r\t", "\u0000\u001f\u00e9\u20ac\ud83d\ude00", "a\u0041b",
        "x", "\ud800\udc00 and \udbff\udfff", "plain", "tail \" end"], "\u006b": "\\"}"#;
    let expected = json::parse(text.as_bytes(), 8).unwrap();
    let (packed, seen) = json::parse_packed(text.as_bytes().to_vec(), 8, |doc| {
        Ok(doc.clone().into_owned())
    })
    .unwrap();
    assert_eq!(unpacked(&packed), expected);
    assert_eq!(seen, expected, "check sees the decoded text");
    assert!(spans(&packed).iter().all(|s| matches!(s, Span::At { .. })));
}
