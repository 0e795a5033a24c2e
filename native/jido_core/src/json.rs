//! Strict JSON document model: the one parse that both the verifier and the
//! caller see.
//!
//! A session file is verified (its signature covers the RFC 8785 canonical
//! form of the parsed document, see [`crate::canonical`]) and then turned into
//! Elixir terms. Both steps use the single [`Value`] produced by [`parse`], so
//! whatever the signature covers is exactly what the application receives.
//! That only holds if the parser refuses every document that different JSON
//! readers could understand differently:
//!
//! * **Duplicate object keys are refused.** RFC 8259 leaves their meaning
//!   open: some readers keep the first member, some the last. A file holding
//!   `"project_path"` twice could be verified with one value and used with
//!   the other.
//! * **Integers outside ±(2^53−1) are refused** (the I-JSON rule, RFC 7493
//!   §2.2). JCS treats every number as an IEEE-754 double, so
//!   `9007199254740993` canonicalizes as `9007199254740992`: a reader with
//!   exact integers would see a value that is not the one that was signed.
//! * **Depth is bounded** ([`MAX_DEPTH_CAP`] at most), so a hostile
//!   `[[[[…` cannot exhaust the stack of a scheduler thread — the parser gives
//!   up after `max_depth` levels, long before recursion becomes dangerous.
//! * **Invalid UTF-8, lone surrogate escapes (`"\ud800"`), control characters
//!   in strings, numbers that overflow a double (`1e400`) and trailing data**
//!   are refused — serde_json's own strict grammar.
//!
//! Parsing is driven by `serde_json` with a [`serde::de::DeserializeSeed`]
//! that carries the current depth, so there is no intermediate
//! `serde_json::Value` and no second pass over the bytes.
//!
//! Known limit: an integer literal beyond the 64-bit range
//! (`18446744073709551616`) reaches this module from serde_json already
//! converted to a double, indistinguishable from `1.8446744073709552e19`, so
//! it is accepted as a [`Value::Float`] rather than refused. Every reader that
//! follows JCS (and this crate) sees the same double for it.
//!
//! ```
//! use jido_core::json::{self, Layout, Value};
//!
//! let doc = json::parse(br#"{"b":[1,2.5,null],"a":"x"}"#, 64)?;
//! assert_eq!(doc.get("a").and_then(Value::as_str), Some("x"));
//! assert!(json::parse(br#"{"a":1,"a":2}"#, 64).is_err());
//! assert_eq!(json::to_vec(&doc, Layout::Compact)?, br#"{"b":[1,2.5,null],"a":"x"}"#);
//! # Ok::<(), jido_core::Error>(())
//! ```
use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};

use crate::canonical::{self, Buffered, Sink};
use crate::{Error, Result};

/// Largest accepted nesting depth.
///
/// serde_json refuses the 128th nested array/object itself (its recursion
/// guard counts down from 128 and fails on reaching zero), so 127 is the
/// deepest document it can hand over; a larger `max_depth` is clamped to this.
/// The writers refuse deeper hand-built values, so everything this crate writes
/// can be read back.
pub const MAX_DEPTH_CAP: usize = 127;

/// The largest integer magnitude a double holds exactly, 2^53 − 1.
pub const MAX_SAFE_INTEGER: i64 = (1 << 53) - 1;

/// Objects of at most this many members are checked for duplicate keys by
/// comparing every pair; larger ones by sorting references to their keys.
const LINEAR_DUPLICATE_SCAN: usize = 16;

/// Object members in document order; keys are unique.
pub type Object = Vec<(String, Value)>;

/// A parsed JSON value.
///
/// Dropping, comparing and cloning a `Value` recurse once per nesting level.
/// Values from [`parse`] are at most [`MAX_DEPTH_CAP`] deep, which is
/// harmless; a value built by hand to be tens of thousands of levels deep can
/// overflow the stack, and the writers of this crate refuse anything deeper
/// than [`MAX_DEPTH_CAP`].
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `null`
    Null,
    /// `true` / `false`
    Bool(bool),
    /// An integer within ±(2^53−1).
    Integer(i64),
    /// Any other number; always finite.
    Float(f64),
    /// A string.
    String(String),
    /// An array.
    Array(Vec<Value>),
    /// An object, members in document order.
    Object(Object),
}

impl Value {
    /// The value of member `key` if `self` is an object that has one.
    ///
    /// ```
    /// # use jido_core::json::{self, Value};
    /// let doc = json::parse(br#"{"id":"x"}"#, 8)?;
    /// assert_eq!(doc.get("id"), Some(&Value::String("x".into())));
    /// assert_eq!(doc.get("name"), None);
    /// # Ok::<(), jido_core::Error>(())
    /// ```
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.as_object()?
            .iter()
            .find_map(|(k, v)| (k == key).then_some(v))
    }

    /// Mutable access to the value of member `key` if `self` is an object
    /// that has one.
    pub fn get_mut(&mut self, key: &str) -> Option<&mut Value> {
        self.as_object_mut()?
            .iter_mut()
            .find_map(|(k, v)| (k == key).then_some(v))
    }

    /// The string if `self` is a [`Value::String`].
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// The integer if `self` is a [`Value::Integer`].
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Integer(i) => Some(*i),
            _ => None,
        }
    }

    /// The elements if `self` is a [`Value::Array`].
    pub fn as_array(&self) -> Option<&[Value]> {
        match self {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }

    /// The members if `self` is a [`Value::Object`].
    pub fn as_object(&self) -> Option<&Object> {
        match self {
            Value::Object(o) => Some(o),
            _ => None,
        }
    }

    /// Mutable members if `self` is a [`Value::Object`].
    ///
    /// Keys must stay unique: [`Object`] is a plain vector, and pushing a key
    /// that is already present makes a document that [`parse`] would refuse.
    /// [`Value::set_member`] keeps the invariant.
    pub fn as_object_mut(&mut self) -> Option<&mut Object> {
        match self {
            Value::Object(o) => Some(o),
            _ => None,
        }
    }

    /// Removes member `key` from an object, returning its value; `None` if
    /// `self` is not an object or has no such member. The order of the other
    /// members is kept.
    pub fn remove_member(&mut self, key: &str) -> Option<Value> {
        let members = self.as_object_mut()?;
        let index = members.iter().position(|(k, _)| k == key)?;
        Some(members.remove(index).1)
    }

    /// Sets member `key` of an object: replaces the value in place if the key
    /// exists (keeping its position), otherwise appends it. Returns the
    /// previous value.
    ///
    /// # Errors
    /// [`Error::NotAnObject`] if `self` is not an object.
    pub fn set_member(&mut self, key: &str, value: Value) -> Result<Option<Value>> {
        let members = self.as_object_mut().ok_or(Error::NotAnObject)?;
        match members.iter_mut().find(|(k, _)| k == key) {
            Some((_, slot)) => Ok(Some(std::mem::replace(slot, value))),
            None => {
                members.push((key.to_owned(), value));
                Ok(None)
            }
        }
    }
}

/// Whitespace layout for [`to_writer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// No whitespace.
    Compact,
    /// Two-space indentation, one member per line.
    Pretty,
}

/// Parses a JSON document.
///
/// Any JSON value is accepted at the top level; whether it must be an object
/// is the caller's rule ([`Error::NotAnObject`]). `max_depth` counts nested
/// arrays and objects — `{}` and `[1]` are depth 1, `[[1]]` depth 2, a bare
/// scalar depth 0 — and is clamped to [`MAX_DEPTH_CAP`].
///
/// # Errors
/// [`Error::InvalidJson`] for anything serde_json refuses (syntax, invalid
/// UTF-8, lone surrogate escapes, control characters in strings, numbers out
/// of the double range, trailing data — with serde_json's message and
/// position), and for the rules of this module: `nesting deeper than N
/// levels`, `duplicate key "k"`, `integer N is outside ±(2^53−1)`.
pub fn parse(bytes: &[u8], max_depth: usize) -> Result<Value> {
    let mut state = State::new(max_depth);
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let parsed = ValueSeed::new(&mut state, 0)
        .deserialize(&mut de)
        .and_then(|value| de.end().map(|()| value));
    parsed.map_err(|err| state.error(&err))
}

/// Writes `value` as JSON in member order.
///
/// Strings and numbers are written exactly as [`crate::canonical`] writes
/// them (ECMAScript number formatting, minimal string escaping), with one
/// exception that keeps every written file loadable: an integral double of
/// magnitude 2^53 or more that ECMAScript prints as plain digits (such as
/// `1e19`, printed `10000000000000000000`) is written in exponent form
/// (`1e+19`), because [`parse`] refuses integer literals beyond ±(2^53−1).
/// The canonical form — what a signature covers — is the same either way.
///
/// Output goes through an internal 8 KiB buffer, so `out` sees few, large
/// writes even when it is an unbuffered file or a MAC adaptor.
///
/// # Errors
/// [`Error::Unrepresentable`] for a non-finite float, an integer outside
/// ±(2^53−1) or nesting deeper than [`MAX_DEPTH_CAP`]; [`Error::Io`] when
/// `out` fails (part of the document may have been written).
pub fn to_writer<W: std::io::Write>(value: &Value, out: &mut W, layout: Layout) -> Result<()> {
    let mut sink = Buffered::new(out);
    write_value(value, &mut sink, layout, 0)?;
    sink.finish()
}

/// The JSON text of `value` in member order, as [`to_writer`] writes it.
///
/// # Errors
/// [`Error::Unrepresentable`] as for [`to_writer`].
pub fn to_vec(value: &Value, layout: Layout) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    write_value(value, &mut out, layout, 0)?;
    Ok(out)
}

// ---- writing ---------------------------------------------------------------

fn write_value<S: Sink>(value: &Value, out: &mut S, layout: Layout, depth: usize) -> Result<()> {
    match value {
        Value::Null => out.put(b"null"),
        Value::Bool(true) => out.put(b"true"),
        Value::Bool(false) => out.put(b"false"),
        Value::Integer(i) => canonical::write_integer(*i, out),
        Value::Float(f) => canonical::write_float(*f, canonical::FloatStyle::Loadable, out),
        Value::String(s) => canonical::write_str(s, out),
        Value::Array(items) => {
            let depth = canonical::enter(depth)?;
            out.put_byte(b'[')?;
            for (i, item) in items.iter().enumerate() {
                separator(out, layout, depth, i == 0)?;
                write_value(item, out, layout, depth)?;
            }
            close(out, layout, depth, items.is_empty(), b']')
        }
        Value::Object(members) => {
            let depth = canonical::enter(depth)?;
            out.put_byte(b'{')?;
            for (i, (key, item)) in members.iter().enumerate() {
                separator(out, layout, depth, i == 0)?;
                canonical::write_str(key, out)?;
                out.put(match layout {
                    Layout::Compact => b":",
                    Layout::Pretty => b": ",
                })?;
                write_value(item, out, layout, depth)?;
            }
            close(out, layout, depth, members.is_empty(), b'}')
        }
    }
}

/// Before the element or member at `depth`: a comma unless it is the first,
/// then (pretty) a newline and the indentation.
fn separator<S: Sink>(out: &mut S, layout: Layout, depth: usize, first: bool) -> Result<()> {
    match layout {
        Layout::Compact if first => Ok(()),
        Layout::Compact => out.put_byte(b','),
        Layout::Pretty => {
            out.put(if first { b"\n" } else { b",\n" })?;
            indent(out, depth)
        }
    }
}

/// Closes a container: (pretty, non-empty) newline and the parent's
/// indentation, then the bracket — the layout of serde_json's
/// `PrettyFormatter`, so `[]` and `{}` stay on one line.
fn close<S: Sink>(
    out: &mut S,
    layout: Layout,
    depth: usize,
    empty: bool,
    bracket: u8,
) -> Result<()> {
    if layout == Layout::Pretty && !empty {
        out.put_byte(b'\n')?;
        indent(out, depth - 1)?;
    }
    out.put_byte(bracket)
}

fn indent<S: Sink>(out: &mut S, levels: usize) -> Result<()> {
    const SPACES: &[u8; 64] = b"                                                                ";
    let mut remaining = levels * 2;
    while remaining > 0 {
        let n = remaining.min(SPACES.len());
        out.put(&SPACES[..n])?;
        remaining -= n;
    }
    Ok(())
}

// ---- parsing ---------------------------------------------------------------

/// State shared by every level of one parse.
///
/// `pub(crate)` with [`ValueSeed`] so that [`crate::listing`] can parse the
/// members of a top-level object one at a time with exactly these rules.
pub(crate) struct State {
    max_depth: usize,
    /// The detail of a refusal raised by this module (rather than by
    /// serde_json's grammar), reported verbatim by [`parse`].
    refusal: Option<String>,
    /// Elements and members of the containers being parsed, as stacks: a
    /// container pushes its children above what its ancestors pushed, then
    /// moves them into a vector of exactly the right size. One allocation per
    /// container instead of a chain of regrowths — allocation is most of the
    /// cost of parsing a session.
    items: Vec<Value>,
    members: Vec<(String, Value)>,
}

impl State {
    /// The state of a parse allowing `max_depth` levels (clamped to
    /// [`MAX_DEPTH_CAP`]).
    pub(crate) fn new(max_depth: usize) -> Self {
        Self {
            max_depth: max_depth.min(MAX_DEPTH_CAP),
            refusal: None,
            items: Vec::new(),
            members: Vec::new(),
        }
    }

    /// Whether this module (rather than serde_json's grammar) refused the
    /// document: such a refusal concerns bytes already seen and stands even
    /// if the input was cut short.
    pub(crate) fn refused(&self) -> bool {
        self.refusal.is_some()
    }

    /// The [`Error`] for a failed parse: our own refusal verbatim, otherwise
    /// serde_json's message.
    pub(crate) fn error(&mut self, err: &serde_json::Error) -> Error {
        match self.refusal.take() {
            // Our own refusals travel beside serde_json's error, so the message
            // is exactly ours and not suffixed with a position.
            Some(detail) => Error::invalid_json(detail),
            None => {
                let detail = err.to_string();
                // serde_json's guard fires on the 128th level before our seed
                // sees it; report it as the same depth refusal. (Its message is
                // the only way to recognise it: the error code is private.)
                if detail.starts_with("recursion limit exceeded") {
                    Error::invalid_json(depth_refusal(self.max_depth))
                } else {
                    Error::invalid_json(detail)
                }
            }
        }
    }

    /// Records `detail` as this module's refusal and returns the error that
    /// stops serde_json.
    #[cold]
    pub(crate) fn refuse<E: de::Error>(&mut self, detail: String) -> E {
        let err = E::custom(&detail);
        self.refusal = Some(detail);
        err
    }
}

/// Deserializes one value sitting `depth` containers deep.
pub(crate) struct ValueSeed<'s> {
    state: &'s mut State,
    depth: usize,
}

impl<'s> ValueSeed<'s> {
    /// A seed for a value `depth` containers deep (0 for the document).
    pub(crate) fn new(state: &'s mut State, depth: usize) -> Self {
        Self { state, depth }
    }

    /// The depth of the children of a container opened at this level, or the
    /// depth refusal.
    pub(crate) fn enter<E: de::Error>(&mut self) -> Result<usize, E> {
        let depth = self.depth + 1;
        if depth > self.state.max_depth {
            let max_depth = self.state.max_depth;
            return Err(self.state.refuse(depth_refusal(max_depth)));
        }
        Ok(depth)
    }

    /// The refusal of an integer literal a double cannot hold exactly.
    fn out_of_range<E: de::Error>(self, literal: &dyn fmt::Display) -> E {
        self.state
            .refuse(format!("integer {literal} is outside ±(2^53−1)"))
    }
}

impl<'de> DeserializeSeed<'de> for ValueSeed<'_> {
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ValueSeed<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        if (-MAX_SAFE_INTEGER..=MAX_SAFE_INTEGER).contains(&v) {
            Ok(Value::Integer(v))
        } else {
            Err(self.out_of_range(&v))
        }
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        match i64::try_from(v) {
            Ok(i) if i <= MAX_SAFE_INTEGER => Ok(Value::Integer(i)),
            _ => Err(self.out_of_range(&v)),
        }
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        // serde_json never produces a non-finite double (it refuses `1e400`
        // as out of range), but the model promises finiteness, so check.
        if v.is_finite() {
            Ok(Value::Float(v))
        } else {
            Err(self.state.refuse(format!("number {v} is not finite")))
        }
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<Value, A::Error> {
        let depth = self.enter()?;
        let state = self.state;
        let start = state.items.len();
        while let Some(item) = seq.next_element_seed(ValueSeed {
            state: &mut *state,
            depth,
        })? {
            state.items.push(item);
        }
        Ok(Value::Array(state.items.drain(start..).collect()))
    }

    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<Value, A::Error> {
        let depth = self.enter()?;
        let state = self.state;
        let start = state.members.len();
        while let Some(key) = map.next_key::<String>()? {
            let siblings = &state.members[start..];
            if siblings.len() < LINEAR_DUPLICATE_SCAN && siblings.iter().any(|(k, _)| *k == key) {
                return Err(state.refuse(duplicate_key(&key)));
            }
            let value = map.next_value_seed(ValueSeed {
                state: &mut *state,
                depth,
            })?;
            state.members.push((key, value));
        }
        let siblings = &state.members[start..];
        if siblings.len() > LINEAR_DUPLICATE_SCAN {
            // Large objects (a map keyed by message id, say): sort references
            // to the keys instead of comparing every pair or cloning them
            // into a set.
            let mut keys: Vec<&str> = siblings.iter().map(|(k, _)| k.as_str()).collect();
            keys.sort_unstable();
            if let Some(pair) = keys.windows(2).find(|pair| pair[0] == pair[1]) {
                let detail = duplicate_key(pair[0]);
                return Err(state.refuse(detail));
            }
        }
        Ok(Value::Object(state.members.drain(start..).collect()))
    }
}

#[cold]
fn depth_refusal(max_depth: usize) -> String {
    format!("nesting deeper than {max_depth} levels")
}

/// `duplicate key "k"`, the key escaped as JSON and cut short if long: it
/// comes from the file and ends up in logs.
#[cold]
pub(crate) fn duplicate_key(key: &str) -> String {
    const SHOWN: usize = 64;
    let mut cut = key.len().min(SHOWN);
    while !key.is_char_boundary(cut) {
        cut -= 1;
    }
    let mut quoted = Vec::with_capacity(cut + 2);
    // Writing into a Vec cannot fail.
    let _ = canonical::write_str(&key[..cut], &mut quoted);
    let ellipsis = if cut < key.len() { "…" } else { "" };
    format!(
        "duplicate key {}{ellipsis}",
        String::from_utf8_lossy(&quoted)
    )
}
