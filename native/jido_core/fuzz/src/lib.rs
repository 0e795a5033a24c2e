//! The checks behind the fuzz targets, kept apart from libFuzzer so that
//! `tests/fuzz_regressions.rs` runs the very same checks on every committed
//! input (it includes this file with `#[path]`) and proptest drives them in CI.
//!
//! Each check takes the raw fuzz input and panics only when an invariant of
//! `jido_core` breaks; a refusal of hostile input is the expected outcome,
//! never a finding. Apart from `jido_core`, they use only what `jido_core`'s
//! own tests may use (`serde_json`, `tempfile`), so that the include works.
//!
//! | check | what it holds `jido_core` to |
//! |---|---|
//! | [`json_parse`] | `json::parse` accepts exactly what serde_json does minus its own three refusals (duplicate keys, unsafe integers, depth) and agrees on the value; what it accepts writes back (compact and pretty) to the same value and canonicalizes idempotently |
//! | [`jcs_canonicalize`] | `canonical::canonicalize` fails exactly when parsing does; its output is the same document, keys in UTF-16 order, no whitespace, JCS string escapes, and every number as an independent ECMAScript `Number::toString` prints it; it is idempotent and ignores the input's layout |
//! | [`PathFixture::check`] | `path_guard::validate` never panics and refuses exactly as a model of the rules over a known directory tree predicts; an accepted path is absolute, NUL-free, without `.`/`..`, pins, and revalidates |
//! | [`listing_metadata`] | `listing::read_metadata` lists every object `json::parse` accepts, with the members the full parse has (all of them, or those before the first bulk member), whatever the prefix length, and refuses an oversized file before reading it |
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::cmp::Ordering;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use jido_core::json::{self, Layout, Value, MAX_SAFE_INTEGER};
use jido_core::listing::{self, BULK_MEMBERS, DEFAULT_PREFIX_LEN, REQUIRED_METADATA};
use jido_core::path_guard::{self, PathPolicy};
use jido_core::session::{self, Limits};
use jido_core::{canonical, Error, PathViolation};

/// Nesting depth the JSON checks parse with: the session store's default.
pub const DEPTH: usize = 64;

// ---- json_parse --------------------------------------------------------------

/// The `json_parse` target: parse, compare with serde_json, write back.
pub fn json_parse(data: &[u8]) {
    let parsed = json::parse(data, DEPTH);
    agrees_with_serde_json(data, &parsed);
    let Ok(value) = parsed else { return };

    for layout in [Layout::Compact, Layout::Pretty] {
        let text = json::to_vec(&value, layout).expect("a parsed value is writable");
        let mut streamed = Vec::new();
        json::to_writer(&value, &mut streamed, layout).expect("a parsed value is writable");
        assert_eq!(streamed, text, "to_writer and to_vec differ ({layout:?})");
        if denser_than_budget(&value, &text) {
            continue;
        }
        let back = json::parse(&text, DEPTH).expect("what to_writer writes parses back");
        assert_eq!(
            normalized(&back),
            normalized(&value),
            "{layout:?} text {:?} reads back as another value",
            String::from_utf8_lossy(&text)
        );
    }

    let canon = canonical::to_vec(&value).expect("a parsed value canonicalizes");
    canonical_form_holds(&canon, &value);
}

/// Whether `text`, written from `value`, is too short for the value budget of
/// its own length: compact text drops the whitespace the input had, so a
/// document within the budget of its input can exceed the budget of its
/// compact form, and is then (rightly) refused.
fn denser_than_budget(value: &Value, text: &[u8]) -> bool {
    json::value_count(value) > json::value_budget(text.len())
}

/// `json::parse` must be serde_json's grammar plus exactly four refusals of
/// its own, and must produce the value serde_json produces.
fn agrees_with_serde_json(data: &[u8], ours: &jido_core::Result<Value>) {
    let theirs = serde_json::from_slice::<serde_json::Value>(data);
    match (ours, theirs) {
        (Ok(value), Ok(reference)) => {
            assert_eq!(
                to_serde(value),
                reference,
                "json::parse disagrees with serde_json"
            )
        }
        (Ok(_), Err(err)) => panic!("json::parse accepted what serde_json refuses: {err}"),
        (Err(Error::InvalidJson(detail)), Ok(reference)) => {
            let depth = detail.starts_with("nesting deeper than");
            let budget = detail.starts_with("more than ");
            if budget {
                assert!(
                    serde_values(&reference) > json::value_budget(data.len()),
                    "value budget refusal of a sparse document"
                );
            }
            assert!(
                depth
                    || budget
                    || detail.starts_with("duplicate key")
                    || detail.starts_with("integer "),
                "json::parse refused valid JSON with a grammar error: {detail}"
            );
            if depth {
                assert!(
                    serde_depth(&reference) > DEPTH,
                    "depth refusal of a shallow document"
                );
            }
        }
        (Err(Error::InvalidJson(_)), Err(_)) => {}
        (Err(other), _) => panic!("json::parse failed with a non-JSON error: {other:?}"),
    }
}

fn to_serde(value: &Value) -> serde_json::Value {
    use serde_json::Value as J;
    match value {
        Value::Null => J::Null,
        Value::Bool(b) => J::Bool(*b),
        Value::Integer(i) => J::from(*i),
        Value::Float(f) => J::Number(serde_json::Number::from_f64(*f).expect("finite")),
        Value::String(s) => J::String(s.clone()),
        Value::Array(items) => J::Array(items.iter().map(to_serde).collect()),
        Value::Object(members) => J::Object(
            members
                .iter()
                .map(|(k, v)| (k.clone(), to_serde(v)))
                .collect(),
        ),
    }
}

/// Values and keys of `value`, counted as [`json::value_budget`] counts them.
fn serde_values(value: &serde_json::Value) -> usize {
    match value {
        serde_json::Value::Array(items) => 1 + items.iter().map(serde_values).sum::<usize>(),
        serde_json::Value::Object(members) => {
            1 + members.values().map(|v| 1 + serde_values(v)).sum::<usize>()
        }
        _ => 1,
    }
}

fn serde_depth(value: &serde_json::Value) -> usize {
    match value {
        serde_json::Value::Array(items) => 1 + items.iter().map(serde_depth).max().unwrap_or(0),
        serde_json::Value::Object(members) => {
            1 + members.values().map(serde_depth).max().unwrap_or(0)
        }
        _ => 0,
    }
}

/// `value` as it reads back from any text this crate writes: numbers are
/// doubles, so an integral double within ±(2^53−1) comes back as an integer
/// (`1.0` is written `1`, `-0.0` is written `0`).
pub fn normalized(value: &Value) -> Value {
    match value {
        #[allow(clippy::cast_possible_truncation, clippy::cast_precision_loss)]
        Value::Float(f) if f.fract() == 0.0 && f.abs() <= MAX_SAFE_INTEGER as f64 => {
            Value::Integer(*f as i64)
        }
        Value::Array(items) => Value::Array(items.iter().map(normalized).collect()),
        Value::Object(members) => Value::Object(
            members
                .iter()
                .map(|(k, v)| (k.clone(), normalized(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

// ---- jcs_canonicalize ----------------------------------------------------------

/// The `jcs_canonicalize` target: RFC 8785 output checked against an
/// independent reading of the RFC, not against `canonical.rs` itself.
pub fn jcs_canonicalize(data: &[u8]) {
    let result = canonical::canonicalize(data, DEPTH);
    let parsed = json::parse(data, DEPTH);
    let (canon, input) = match (result, parsed) {
        (Ok(canon), Ok(input)) => (canon, input),
        (Err(Error::InvalidJson(a)), Err(Error::InvalidJson(b))) => {
            assert_eq!(a, b, "canonicalize and parse refuse differently");
            return;
        }
        (result, parsed) => panic!(
            "canonicalize {:?} but parse {:?}",
            result.map(|c| String::from_utf8_lossy(&c).into_owned()),
            parsed
        ),
    };
    canonical_form_holds(&canon, &input);
    for layout in [Layout::Compact, Layout::Pretty] {
        let text = json::to_vec(&input, layout).expect("a parsed value is writable");
        if denser_than_budget(&input, &text) {
            continue;
        }
        assert_eq!(
            canonical::canonicalize(&text, DEPTH).expect("written text parses"),
            canon,
            "the canonical form depends on the {layout:?} layout"
        );
    }
}

/// `canon`, the canonical bytes of `value`, is strict JCS text of the same
/// document (numbers compared as the doubles JCS makes of them, members in
/// any order), and canonicalizing it again changes nothing.
///
/// One exception is expected: an integral double of magnitude 2^53 or more
/// (below 1e21) is written as plain digits, as ECMAScript prints it, and
/// `json::parse` refuses such an integer literal (I-JSON), so those canonical
/// bytes cannot be canonicalized again. Signing never re-parses canonical
/// bytes, so this is a property of the format, not a defect.
pub fn canonical_form_holds(canon: &[u8], value: &Value) {
    let (read, unsafe_integer) = read_canonical(canon);
    assert_eq!(
        read,
        to_serde_doubles(value),
        "the canonical form is another document"
    );
    match canonical::canonicalize(canon, DEPTH) {
        Ok(again) => assert_eq!(again, canon, "canonicalization is not idempotent"),
        Err(Error::InvalidJson(detail)) if unsafe_integer && detail.starts_with("integer ") => {}
        Err(err) => panic!(
            "canonical bytes {:?} do not canonicalize: {err:?}",
            String::from_utf8_lossy(canon)
        ),
    }
}

/// `value` for comparison with [`read_canonical`]: every number a double.
fn to_serde_doubles(value: &Value) -> serde_json::Value {
    use serde_json::Value as J;
    #[allow(clippy::cast_precision_loss)]
    let double = |f: f64| J::Number(serde_json::Number::from_f64(f).expect("finite"));
    match value {
        Value::Integer(i) => double(*i as f64),
        Value::Float(f) => double(*f),
        Value::Array(items) => J::Array(items.iter().map(to_serde_doubles).collect()),
        Value::Object(members) => J::Object(
            members
                .iter()
                .map(|(k, v)| (k.clone(), to_serde_doubles(v)))
                .collect(),
        ),
        other => to_serde(other),
    }
}

fn utf16_cmp(a: &str, b: &str) -> Ordering {
    a.encode_utf16().cmp(b.encode_utf16())
}

/// Reads `canon` as RFC 8785 §3.2 says canonical text must look, panicking
/// at the first deviation: no whitespace, members in strictly increasing
/// UTF-16 key order (compared with `encode_utf16`, not the crate's
/// `key_order`), strings with exactly the JCS escapes, every number exactly
/// as ECMAScript prints its double. Returns the document (numbers as
/// doubles) and whether a number is written as an integer beyond ±(2^53−1).
pub fn read_canonical(canon: &[u8]) -> (serde_json::Value, bool) {
    let text = std::str::from_utf8(canon).expect("canonical bytes are UTF-8");
    let mut reader = JcsReader {
        text,
        at: 0,
        unsafe_integer: false,
    };
    let value = reader.value();
    assert_eq!(
        reader.at,
        text.len(),
        "trailing bytes after the canonical value"
    );
    (value, reader.unsafe_integer)
}

struct JcsReader<'t> {
    text: &'t str,
    at: usize,
    unsafe_integer: bool,
}

impl JcsReader<'_> {
    fn peek(&self) -> u8 {
        *self
            .text
            .as_bytes()
            .get(self.at)
            .unwrap_or_else(|| panic!("canonical text {:?} ends early", self.text))
    }

    fn expect(&mut self, byte: u8) {
        assert_eq!(
            self.peek(),
            byte,
            "at {} of canonical {:?}",
            self.at,
            self.text
        );
        self.at += 1;
    }

    fn literal(&mut self, word: &str) {
        assert!(
            self.text[self.at..].starts_with(word),
            "bad literal at {} of {:?}",
            self.at,
            self.text
        );
        self.at += word.len();
    }

    fn value(&mut self) -> serde_json::Value {
        use serde_json::Value as J;
        match self.peek() {
            b'{' => {
                self.at += 1;
                let mut members = serde_json::Map::new();
                let mut previous: Option<String> = None;
                if self.peek() == b'}' {
                    self.at += 1;
                    return J::Object(members);
                }
                loop {
                    let key = self.string();
                    if let Some(previous) = &previous {
                        assert_eq!(
                            utf16_cmp(previous, &key),
                            Ordering::Less,
                            "keys {previous:?} and {key:?} are out of UTF-16 order"
                        );
                    }
                    self.expect(b':');
                    members.insert(key.clone(), self.value());
                    previous = Some(key);
                    match self.peek() {
                        b',' => self.at += 1,
                        _ => {
                            self.expect(b'}');
                            return J::Object(members);
                        }
                    }
                }
            }
            b'[' => {
                self.at += 1;
                let mut items = Vec::new();
                if self.peek() == b']' {
                    self.at += 1;
                    return J::Array(items);
                }
                loop {
                    items.push(self.value());
                    match self.peek() {
                        b',' => self.at += 1,
                        _ => {
                            self.expect(b']');
                            return J::Array(items);
                        }
                    }
                }
            }
            b'"' => J::String(self.string()),
            b't' => {
                self.literal("true");
                J::Bool(true)
            }
            b'f' => {
                self.literal("false");
                J::Bool(false)
            }
            b'n' => {
                self.literal("null");
                J::Null
            }
            _ => self.number(),
        }
    }

    fn number(&mut self) -> serde_json::Value {
        let rest = &self.text[self.at..];
        let len = rest
            .find(|c: char| !matches!(c, '0'..='9' | '-' | '+' | '.' | 'e'))
            .unwrap_or(rest.len());
        let token = &rest[..len];
        let double: f64 = token
            .parse()
            .unwrap_or_else(|_| panic!("{token:?} at {} of {:?}", self.at, self.text));
        assert_eq!(
            token,
            ecmascript_number(double),
            "number not in ECMAScript form"
        );
        #[allow(clippy::cast_precision_loss)]
        if !token.contains(['.', 'e']) && double.abs() > MAX_SAFE_INTEGER as f64 {
            self.unsafe_integer = true;
        }
        self.at += len;
        serde_json::Value::Number(serde_json::Number::from_f64(double).expect("finite"))
    }

    /// A string: only `"`, `\` and U+0000..U+001F escaped, with the short
    /// escapes where they exist and lowercase `\u00xx` otherwise.
    fn string(&mut self) -> String {
        self.expect(b'"');
        let mut out = String::new();
        loop {
            let c = self.text[self.at..]
                .chars()
                .next()
                .unwrap_or_else(|| panic!("unterminated string in {:?}", self.text));
            self.at += c.len_utf8();
            match c {
                '"' => return out,
                '\\' => {
                    let escape = self.peek();
                    self.at += 1;
                    out.push(match escape {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'b' => '\u{8}',
                        b't' => '\t',
                        b'n' => '\n',
                        b'f' => '\u{c}',
                        b'r' => '\r',
                        b'u' => {
                            let hex = &self.text[self.at..self.at + 4];
                            self.at += 4;
                            assert!(
                                hex.starts_with("00")
                                    && !hex.contains(|h: char| h.is_ascii_uppercase()),
                                "escape \\u{hex} is not \\u00 in lowercase hex"
                            );
                            let code = u8::from_str_radix(&hex[2..], 16).expect("hex digits");
                            assert!(
                                code < 0x20 && !matches!(code, 0x08 | 0x09 | 0x0a | 0x0c | 0x0d),
                                "U+{code:04X} escaped as \\u although JCS writes it otherwise"
                            );
                            char::from(code)
                        }
                        other => panic!("escape \\{} is not a JCS escape", char::from(other)),
                    });
                }
                '\u{0}'..='\u{1f}' => panic!("raw control character {c:?} in a string"),
                _ => out.push(c),
            }
        }
    }
}

/// ECMAScript's `Number::toString` (ECMA-262 §6.1.6.1.20) for a finite
/// double, written from the spec rather than on `ryu-js`, which `jido_core`
/// uses.
pub fn ecmascript_number(value: f64) -> String {
    if value == 0.0 {
        return "0".into();
    }
    let sign = if value < 0.0 { "-" } else { "" };
    // value = 0.digits × 10^n: the decimal point sits after the first n digits.
    let (digits, n) = shortest_digits(value.abs());
    let k = i32::try_from(digits.len()).expect("a few digits");
    let pad = |count: i32| "0".repeat(usize::try_from(count).expect("non-negative"));
    let body = if k <= n && n <= 21 {
        format!("{digits}{}", pad(n - k))
    } else if 0 < n && n <= 21 {
        let (int, frac) = digits.split_at(usize::try_from(n).expect("positive"));
        format!("{int}.{frac}")
    } else if -6 < n && n <= 0 {
        format!("0.{}{digits}", pad(-n))
    } else {
        let (first, rest) = digits.split_at(1);
        let dot = if rest.is_empty() { "" } else { "." };
        let e = n - 1;
        let e_sign = if e < 0 { '-' } else { '+' };
        format!("{first}{dot}{rest}e{e_sign}{}", e.abs())
    };
    format!("{sign}{body}")
}

/// The spec's digits of a positive double: the fewest significant digits
/// `s` (no trailing zeros) such that `0.s × 10^n` reads back as `value`, and
/// among those the closest to `value`, a tie going to the even one. Returns
/// `(s, n)`.
///
/// At each length the candidate is Rust's correctly rounded `{:.N$e}` (the
/// closest, ties to even), else one of its neighbours: where the gap to the
/// next double below is half the one above (at a power of two), a neighbour
/// can read back when the closest does not. Rust's own shortest `{:e}` is
/// not used: it breaks ties upwards (`570000000000000.25` has the closest
/// 16-digit neighbours `…0.2` and `…0.3`; the spec wants `.2`).
fn shortest_digits(value: f64) -> (String, i32) {
    for decimals in 0..17_usize {
        let rounded = format!("{value:.decimals$e}");
        let (mantissa, exponent) = rounded.split_once('e').expect("{:e} has an exponent");
        let closest: u64 = mantissa
            .replace('.', "")
            .parse()
            .expect("at most 17 digits");
        let scale = exponent.parse::<i32>().expect("an integer exponent")
            - i32::try_from(decimals).expect("below 17");
        for candidate in [
            Some(closest),
            closest.checked_add(1),
            closest.checked_sub(1),
        ] {
            let Some(candidate) = candidate.filter(|c| *c > 0) else {
                continue;
            };
            if format!("{candidate}e{scale}").parse::<f64>() == Ok(value) {
                let digits = candidate.to_string();
                let n = scale + i32::try_from(digits.len()).expect("a few digits");
                return (digits.trim_end_matches('0').to_owned(), n);
            }
        }
    }
    unreachable!("17 significant digits always read back")
}

// ---- path_validate -------------------------------------------------------------

/// What a fixture entry is.
#[derive(Clone, Copy)]
enum Kind {
    /// A directory with this mode.
    Dir(u32),
    /// A regular file.
    File,
    /// A symbolic link with this target.
    Link(&'static str),
}

/// The tree under the fixture's base directory (itself 0755). Names are
/// bytes so that one can be invalid UTF-8.
const TREE: &[(&[u8], Kind)] = &[
    (b"a", Kind::Dir(0o755)),
    (b"a/b", Kind::Dir(0o755)),
    (b"a/b/c", Kind::Dir(0o700)),
    (b"a/file", Kind::File),
    (b"a/up", Kind::Link("..")),
    (b"file", Kind::File),
    (b"link", Kind::Link("a")),
    (b"abs", Kind::Link("/")),
    (b"dangling", Kind::Link("nowhere")),
    (b"open", Kind::Dir(0o777)),
    (b"group", Kind::Dir(0o770)),
    (b"sticky", Kind::Dir(0o1777)),
    (b"sticky/s", Kind::Dir(0o755)),
    (b"denied", Kind::Dir(0o755)),
    (b"denied/inner", Kind::Dir(0o755)),
    (b"...", Kind::Dir(0o755)),
    (b"..a", Kind::Dir(0o755)),
    (b"\xff\xfe", Kind::Dir(0o755)),
];

/// The mode `create` gives the base directory.
const BASE_MODE: u32 = 0o755;

/// Longest file-name component Linux accepts (`NAME_MAX`); a longer one is
/// `ENAMETOOLONG`, which `path_guard` reports as an I/O error.
const NAME_MAX: usize = 255;

/// What `path_guard::validate` is expected to return, without the detail of
/// an I/O error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Accepted.
    Valid,
    /// Refused with this violation.
    Refused(PathViolation),
    /// An OS error other than a violation (`ENAMETOOLONG`).
    Io,
}

/// A directory tree with one entry of every kind `path_guard` must tell
/// apart, and the policy the `path_validate` target checks under: the base
/// is the only allowed root and `base/denied` is denied.
#[derive(Debug)]
pub struct PathFixture {
    base: PathBuf,
    policy: PathPolicy,
}

impl PathFixture {
    /// Builds (or, if a previous run left it, repairs) the tree in `dir`,
    /// which is created if missing. Every step tolerates an existing entry,
    /// so concurrent fuzz jobs can share one `dir`.
    pub fn create(dir: &Path) -> io::Result<Self> {
        fs::create_dir_all(dir)?;
        let base = fs::canonicalize(dir)?;
        fs::set_permissions(&base, fs::Permissions::from_mode(BASE_MODE))?;
        for &(name, kind) in TREE {
            let path = base.join(std::ffi::OsStr::from_bytes(name));
            let created = match kind {
                Kind::Dir(_) => fs::create_dir(&path),
                Kind::File => fs::write(&path, b"not a directory"),
                Kind::Link(target) => symlink(target, &path),
            };
            match created {
                Err(e) if e.kind() != io::ErrorKind::AlreadyExists => return Err(e),
                _ => {}
            }
            if let Kind::Dir(mode) = kind {
                fs::set_permissions(&path, fs::Permissions::from_mode(mode))?;
            }
        }
        let policy = PathPolicy {
            allowed_roots: Some(vec![base.clone()]),
            denied_roots: vec![base.join("denied")],
        };
        Ok(Self { base, policy })
    }

    /// The canonical base directory.
    pub fn base(&self) -> &Path {
        &self.base
    }

    /// The path the fuzz input stands for. The first byte picks how the rest
    /// is used, so the fuzzer reaches the walk without having to guess the
    /// base path: `0` raw, `1` as `base/rest`, `2` as `base` immediately
    /// followed by `rest` (a sibling such as `/tmp/base2`, or `//` runs).
    pub fn path_of(&self, data: &[u8]) -> Vec<u8> {
        let Some((&mode, rest)) = data.split_first() else {
            return Vec::new();
        };
        let base = self.base.as_os_str().as_bytes();
        match mode % 3 {
            0 => rest.to_vec(),
            1 => [base, b"/", rest].concat(),
            _ => [base, rest].concat(),
        }
    }

    /// The `path_validate` target: validates the path of `data` and compares
    /// with [`PathFixture::expected`]; an accepted path must also satisfy the
    /// lexical rules, pin, revalidate and be the directory the model names.
    pub fn check(&self, data: &[u8]) {
        let raw = self.path_of(data);
        let path = Path::new(std::ffi::OsStr::from_bytes(&raw));
        let got = match path_guard::validate(path, &self.policy) {
            Ok(()) => Outcome::Valid,
            Err(Error::Path(violation)) => Outcome::Refused(violation),
            Err(Error::Io { .. }) => Outcome::Io,
            Err(other) => panic!("validate({path:?}) failed with {other:?}"),
        };
        assert_eq!(got, self.expected(&raw), "validate({path:?})");
        if got != Outcome::Valid {
            return;
        }

        // The lexical rules, restated without the model.
        assert_eq!(raw.first(), Some(&b'/'), "accepted a relative path");
        assert!(!raw.contains(&0), "accepted a NUL");
        assert!(
            !raw.split(|&b| b == b'/').any(|c| c == b"." || c == b".."),
            "accepted a dot component in {path:?}"
        );
        let pinned = path_guard::pin(path, &self.policy).expect("validate accepted it");
        pinned.revalidate().expect("nothing changed since the pin");
        // The directory the model walked to (a short spelling of `path`, which
        // may exceed PATH_MAX through repeated slashes).
        let model = self.base.join(std::ffi::OsStr::from_bytes(
            &self.relative_components(&raw).join(&b'/'),
        ));
        let md = fs::symlink_metadata(&model).expect("the accepted directory exists");
        assert!(md.is_dir());
        assert_eq!(
            pinned.identity(),
            (md.dev(), md.ino()),
            "pinned another directory"
        );
    }

    /// The components of `raw` below the base (empty components dropped).
    fn relative_components<'p>(&self, raw: &'p [u8]) -> Vec<&'p [u8]> {
        let depth = self.base.components().count() - 1;
        raw.split(|&b| b == b'/')
            .filter(|c| !c.is_empty())
            .skip(depth)
            .collect()
    }

    /// What `path_guard`'s rules say about `raw`, worked out from [`TREE`]
    /// without touching the file system.
    pub fn expected(&self, raw: &[u8]) -> Outcome {
        use PathViolation as V;
        if raw.first() != Some(&b'/') {
            return Outcome::Refused(V::NotAbsolute);
        }
        if raw.contains(&0) {
            return Outcome::Refused(V::ContainsNul);
        }
        let components: Vec<&[u8]> = raw
            .split(|&b| b == b'/')
            .filter(|c| !c.is_empty())
            .collect();
        if components.iter().any(|c| *c == b"." || *c == b"..") {
            return Outcome::Refused(V::Traversal);
        }
        let base: Vec<&[u8]> = self
            .base
            .as_os_str()
            .as_bytes()
            .split(|&b| b == b'/')
            .filter(|c| !c.is_empty())
            .collect();
        let inside = components.starts_with(&base);
        if inside && components[base.len()..].first() == Some(&&b"denied"[..]) {
            return Outcome::Refused(V::Denied);
        }
        if !inside {
            return Outcome::Refused(V::OutsideAllowedRoots);
        }
        let mut mode = BASE_MODE;
        let mut so_far: Vec<u8> = Vec::new();
        for name in &components[base.len()..] {
            if name.len() > NAME_MAX {
                return Outcome::Io;
            }
            if !so_far.is_empty() {
                so_far.push(b'/');
            }
            so_far.extend_from_slice(name);
            match TREE.iter().find(|(entry, _)| *entry == so_far.as_slice()) {
                None => return Outcome::Refused(V::NotFound),
                Some((_, Kind::File)) => return Outcome::Refused(V::NotDirectory),
                Some((_, Kind::Link(_))) => return Outcome::Refused(V::Symlink),
                Some((_, Kind::Dir(m))) => mode = *m,
            }
        }
        if mode & 0o022 != 0 && mode & 0o1000 == 0 {
            return Outcome::Refused(V::InsecurePermissions);
        }
        Outcome::Valid
    }
}

// ---- listing_metadata ------------------------------------------------------------

/// Depths the listing check parses with, picked by the input.
const LISTING_DEPTHS: [usize; 8] = [DEPTH, 1, 2, 3, 4, 8, 127, 500];

/// The parameters and file content a `listing_metadata` input stands for:
/// bytes 0–1 the prefix length (little-endian; `0xffff` means
/// [`DEFAULT_PREFIX_LEN`]), byte 2 the depth (low 3 bits) and whether the size
/// limit is a few bytes below the file's size (high bit), the rest the file.
pub fn listing_input(data: &[u8]) -> (usize, Limits, &[u8]) {
    let mut params = [0u8; 3];
    let split = data.len().min(3);
    params[..split].copy_from_slice(&data[..split]);
    let doc = &data[split..];
    let prefix_len = match u16::from_le_bytes([params[0], params[1]]) {
        u16::MAX => DEFAULT_PREFIX_LEN,
        n => usize::from(n),
    };
    let max_depth = LISTING_DEPTHS[usize::from(params[2] & 7)];
    let max_file_size = if params[2] & 0x80 != 0 {
        (doc.len() as u64).saturating_sub(1 + u64::from((params[2] >> 3) & 7))
    } else {
        10 * 1024 * 1024
    };
    let limits = Limits {
        max_file_size,
        max_depth,
    };
    (prefix_len, limits, doc)
}

/// The `listing_metadata` target: writes the file content of `data` to
/// `file` and lists it, comparing with a full `json::parse`.
pub fn listing_metadata(file: &Path, data: &[u8]) {
    let (prefix_len, limits, doc) = listing_input(data);
    fs::write(file, doc).expect("scratch file is writable");
    let got = listing::read_metadata(file, limits, prefix_len);
    let size = doc.len() as u64;
    if size > limits.max_file_size {
        match got {
            Err(Error::FileTooLarge { size: s, limit }) => {
                assert_eq!((s, limit), (size, limits.max_file_size));
            }
            other => panic!("oversized file gave {other:?}"),
        }
        return;
    }
    let ends = |k: &str| k == "signature" || BULK_MEMBERS.contains(&k);
    match json::parse(doc, limits.max_depth) {
        Ok(Value::Object(members)) if members.len() > session::MAX_MEMBERS => match got {
            // Refused once the prefix shows one member too many; listed only
            // if the prefix stopped before seeing them all.
            Err(Error::InvalidJson(detail)) => assert!(detail.contains("top-level members")),
            Ok(meta) => assert_eq!(meta.layout, listing::Layout::Prefix),
            Err(other) => panic!("a document of too many members gave {other:?}"),
        },
        Ok(Value::Object(members)) => {
            let meta = got.unwrap_or_else(|e| {
                panic!("a valid document is refused by the listing (prefix {prefix_len}): {e:?}")
            });
            assert_eq!(meta.size, size);
            let expected: Vec<(String, Value)> = match meta.layout {
                listing::Layout::FullScan => {
                    members.iter().filter(|(k, _)| !ends(k)).cloned().collect()
                }
                listing::Layout::Prefix => {
                    let before: Vec<_> = members
                        .iter()
                        .take_while(|(k, _)| !ends(k))
                        .cloned()
                        .collect();
                    if before.len() < members.len() {
                        assert!(
                            REQUIRED_METADATA
                                .iter()
                                .all(|r| before.iter().any(|(k, _)| k == r)),
                            "prefix path stopped before the required metadata"
                        );
                    }
                    before
                }
            };
            assert_eq!(meta.members, expected, "{:?} members", meta.layout);
        }
        Ok(_) => assert!(
            matches!(got, Err(Error::NotAnObject)),
            "a non-object document gave {got:?}"
        ),
        // The prefix path does not parse what follows the first bulk member,
        // so it may list a file the full parse refuses — but only from the
        // prefix.
        Err(_) => match got {
            Ok(meta) => assert_eq!(meta.layout, listing::Layout::Prefix),
            Err(Error::InvalidJson(_) | Error::NotAnObject) => {}
            Err(other) => panic!("an invalid document gave {other:?}"),
        },
    }
}
