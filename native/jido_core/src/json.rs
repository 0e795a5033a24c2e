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
//! * **Depth is bounded** ([`MAX_DEPTH_CAP`] at most, see [`clamp_depth`]), so a hostile
//!   `[[[[…` cannot exhaust the stack of a scheduler thread — the parser gives
//!   up after `max_depth` levels, long before recursion becomes dangerous.
//! * **Invalid UTF-8, lone surrogate escapes (`"\ud800"`), control characters
//!   in strings, numbers that overflow a double (`1e400`) and trailing data**
//!   are refused — serde_json's own strict grammar.
//! * **Integer literals outside ±(2^53−1) are refused whatever their
//!   length.** serde_json hands a literal beyond the 64-bit range
//!   (`18446744073709551617`, a 301-digit literal) over as a double,
//!   indistinguishable from `1.8446744073709552e19`; whenever a parse meets
//!   an integral double that large, the number tokens of the input are read
//!   again ([`out_of_range_integer_literal`]) and an integer literal among
//!   them is refused. Floats spelled with a fraction or exponent (`1e19`)
//!   stay floats.
//! * **Work and memory are bounded by the input's size**: a document holds at
//!   most [`value_budget`] values and keys (one per [`BYTES_PER_VALUE`] bytes,
//!   plus [`MIN_VALUE_BUDGET`]), so a file of tiny values (`[0,0,0,…]`) is
//!   refused after a bounded amount of tree, instead of costing tens of times
//!   its size before anything else can reject it.
//!
//! Parsing is driven by `serde_json` with a [`serde::de::DeserializeSeed`]
//! that carries the current depth, so there is no intermediate
//! `serde_json::Value` and no second pass over the bytes (except the scan of
//! number tokens, for the rare document holding an integral double of 2^53
//! or more).
//!
//! The tree is generic over how it holds strings ([`Node`]): [`parse`] gives
//! the owned [`Value`]; [`parse_borrowed`] gives a [`Document`] whose strings
//! and keys point into the input wherever the JSON spelled them without an
//! escape, and are copied only where an escape had to be decoded. Both come
//! from the same grammar and the same rules, so they accept and refuse exactly
//! the same documents. Loading a session goes one step further with
//! [`parse_packed`]: strings stay in the file's own buffer, escaped ones
//! decoded in place there, so most of a session (its string data) is never
//! copied.
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
use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};

use crate::emit::{self, Buffered, FloatStyle, Sink};
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

/// Input bytes per unit of a document's value budget: see [`value_budget`].
pub const BYTES_PER_VALUE: usize = 16;

/// Values and keys any document may hold whatever its size: small documents
/// (`[1,2,3]` is 7 bytes) are never refused for their density.
pub const MIN_VALUE_BUDGET: usize = 1024;

/// Objects of at most this many members are checked for duplicate keys by
/// comparing every pair; larger ones by sorting references to their keys.
const LINEAR_DUPLICATE_SCAN: usize = 16;

/// The nesting depth actually allowed for a requested `max_depth`: at most
/// [`MAX_DEPTH_CAP`]. Every parser of this crate applies it, and so must
/// anything that walks a caller-supplied tree with a caller-supplied depth
/// (the NIF's term conversion does), so that no argument can recurse deeper
/// than the stack of a scheduler thread allows.
///
/// ```
/// use jido_core::json::{clamp_depth, MAX_DEPTH_CAP};
/// assert_eq!(clamp_depth(64), 64);
/// assert_eq!(clamp_depth(1_000_000), MAX_DEPTH_CAP);
/// ```
pub const fn clamp_depth(max_depth: usize) -> usize {
    if max_depth < MAX_DEPTH_CAP {
        max_depth
    } else {
        MAX_DEPTH_CAP
    }
}

/// Whether `i` is an integer the JSON model accepts: within ±(2^53−1), so
/// that a double (how RFC 8785 reads every number) holds it exactly.
pub const fn is_safe_integer(i: i64) -> bool {
    -MAX_SAFE_INTEGER <= i && i <= MAX_SAFE_INTEGER
}

/// How many values and object keys a document of `len` bytes may hold:
/// `len / BYTES_PER_VALUE + MIN_VALUE_BUDGET`. Every value counts one
/// (containers and scalars alike), every object key one more.
///
/// A parse tree costs tens of bytes per value, whatever the value's size,
/// so without a bound a file of tiny values (`[0,0,0,…]`, two bytes each)
/// would cost dozens of times its size in memory before a signature check
/// or a schema could reject it. The bound keeps the tree of any accepted
/// document within about twice the input. Ordinary documents are far below
/// it: a session is mostly long strings, and even a conversation of one-word
/// messages spends about 17 bytes of its pretty-printed file per value.
///
/// ```
/// use jido_core::json::{self, value_budget};
/// assert_eq!(value_budget(16_000), 2_024);
/// let dense = format!("[{}0]", "0,".repeat(20_000));
/// assert!(json::parse(dense.as_bytes(), 8).is_err());
/// ```
pub const fn value_budget(len: usize) -> usize {
    len / BYTES_PER_VALUE + MIN_VALUE_BUDGET
}

/// How many values and object keys `value` holds, counted as
/// [`value_budget`] counts them: for a writer that must not produce a
/// document the parser would refuse.
pub fn value_count<S>(value: &Node<S>) -> usize {
    match value {
        Node::Array(items) => 1 + items.iter().map(value_count).sum::<usize>(),
        Node::Object(members) => {
            1 + members
                .iter()
                .map(|(_, v)| 1 + value_count(v))
                .sum::<usize>()
        }
        _ => 1,
    }
}

/// A key that occurs more than once among `members`, if any. A handful of
/// members are compared pairwise; more are checked by sorting references to
/// their keys, so the work is O(n log n), never quadratic.
///
/// ```
/// use jido_core::json::duplicate_key_in;
/// assert_eq!(duplicate_key_in(&[("a", 1), ("b", 2), ("a", 3)]), Some("a"));
/// assert_eq!(duplicate_key_in(&[("a", 1), ("b", 2)]), None);
/// ```
pub fn duplicate_key_in<K: AsRef<str>, V>(members: &[(K, V)]) -> Option<&str> {
    if members.len() <= LINEAR_DUPLICATE_SCAN {
        return members.iter().enumerate().find_map(|(i, (key, _))| {
            let key = key.as_ref();
            members[..i]
                .iter()
                .any(|(k, _)| k.as_ref() == key)
                .then_some(key)
        });
    }
    let mut keys: Vec<&str> = members.iter().map(|(k, _)| k.as_ref()).collect();
    keys.sort_unstable();
    keys.windows(2)
        .find(|pair| pair[0] == pair[1])
        .map(|pair| pair[0])
}

/// The first integer literal of `bytes` (a number token without fraction or
/// exponent) outside ±(2^53−1), however many digits it has, read from the
/// text itself rather than from a parsed double. Strings are skipped, so
/// digits inside them never count. `complete` says `bytes` is a whole
/// document; otherwise a number token that reaches its end may be cut short
/// and is not judged.
///
/// The parsers call this only when they met an integral double of magnitude
/// 2^53 or more, the one case where serde_json's number hides whether the
/// file spelled an integer.
///
/// ```
/// use jido_core::json::out_of_range_integer_literal;
/// assert_eq!(out_of_range_integer_literal(b"[1e19, 9007199254740991]", true), None);
/// assert_eq!(
///     out_of_range_integer_literal(b"[\"18446744073709551617\", -9223372036854775809]", true),
///     Some(&b"-9223372036854775809"[..])
/// );
/// ```
pub fn out_of_range_integer_literal(bytes: &[u8], complete: bool) -> Option<&[u8]> {
    let mut at = 0;
    while at < bytes.len() {
        match bytes[at] {
            b'"' => at = after_string(bytes, at + 1)?,
            b'-' | b'0'..=b'9' => {
                let len = bytes[at..]
                    .iter()
                    .position(|b| !matches!(b, b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E'))
                    .unwrap_or(bytes.len() - at);
                let token = &bytes[at..at + len];
                at += len;
                if at == bytes.len() && !complete {
                    return None;
                }
                if !integer_literal_is_safe(token) {
                    return Some(token);
                }
            }
            _ => at += 1,
        }
    }
    None
}

/// Whether a number token is a float literal or an integer within
/// ±(2^53−1). JSON integers have no leading zeros, so more than 16 digits
/// is always out of range.
fn integer_literal_is_safe(token: &[u8]) -> bool {
    if token.iter().any(|b| matches!(b, b'.' | b'e' | b'E')) {
        return true;
    }
    let digits = token.strip_prefix(b"-").unwrap_or(token);
    digits.len() <= 16
        && std::str::from_utf8(digits)
            .ok()
            .and_then(|d| d.parse::<i64>().ok())
            .is_some_and(|magnitude| magnitude <= MAX_SAFE_INTEGER)
}

/// The index just past the closing quote of the string whose content starts
/// at `from`; `None` if it does not close.
fn after_string(bytes: &[u8], mut from: usize) -> Option<usize> {
    loop {
        let next = from
            + bytes
                .get(from..)?
                .iter()
                .position(|&b| b == b'"' || b == b'\\')?;
        if bytes[next] == b'"' {
            return Some(next + 1);
        }
        from = next + 2;
    }
}

/// Object members in document order; keys are unique.
pub type Object = Vec<(String, Value)>;

/// A parsed JSON value that owns its strings: what [`parse`] returns and what
/// the writers, the signer and the binding build by hand.
pub type Value = Node<String>;

/// A parsed JSON value whose strings borrow from the bytes it was parsed
/// from where they had no escape ([`Cow::Borrowed`]), and own the decoded
/// text where they had one ([`Cow::Owned`]): what [`parse_borrowed`] returns.
pub type Document<'a> = Node<Cow<'a, str>>;

/// A JSON value, generic over how it holds strings and keys: `String` for
/// [`Value`], `Cow<str>` for [`Document`]. Everything that reads a tree (the
/// canonical and file writers, signing) takes any `S: AsRef<str>`, so the two
/// forms share one implementation.
///
/// Dropping, comparing and cloning a `Node` recurse once per nesting level.
/// Values from [`parse`] are at most [`MAX_DEPTH_CAP`] deep, which is
/// harmless; a value built by hand to be tens of thousands of levels deep can
/// overflow the stack, and the writers of this crate refuse anything deeper
/// than [`MAX_DEPTH_CAP`].
#[derive(Debug, Clone, PartialEq)]
pub enum Node<S> {
    /// `null`
    Null,
    /// `true` / `false`
    Bool(bool),
    /// An integer within ±(2^53−1).
    Integer(i64),
    /// Any other number; always finite.
    Float(f64),
    /// A string.
    String(S),
    /// An array.
    Array(Vec<Node<S>>),
    /// An object, members in document order; keys are unique.
    Object(Vec<(S, Node<S>)>),
}

impl<S: AsRef<str>> Node<S> {
    /// The value of member `key` if `self` is an object that has one.
    ///
    /// ```
    /// # use jido_core::json::{self, Value};
    /// let doc = json::parse(br#"{"id":"x"}"#, 8)?;
    /// assert_eq!(doc.get("id"), Some(&Value::String("x".into())));
    /// assert_eq!(doc.get("name"), None);
    /// # Ok::<(), jido_core::Error>(())
    /// ```
    pub fn get(&self, key: &str) -> Option<&Node<S>> {
        self.as_object()?
            .iter()
            .find_map(|(k, v)| (k.as_ref() == key).then_some(v))
    }

    /// Mutable access to the value of member `key` if `self` is an object
    /// that has one.
    pub fn get_mut(&mut self, key: &str) -> Option<&mut Node<S>> {
        self.as_object_mut()?
            .iter_mut()
            .find_map(|(k, v)| (k.as_ref() == key).then_some(v))
    }

    /// The string if `self` is a [`Node::String`].
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Node::String(s) => Some(s.as_ref()),
            _ => None,
        }
    }

    /// The integer if `self` is a [`Node::Integer`].
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Node::Integer(i) => Some(*i),
            _ => None,
        }
    }

    /// The elements if `self` is a [`Node::Array`].
    pub fn as_array(&self) -> Option<&[Node<S>]> {
        match self {
            Node::Array(a) => Some(a),
            _ => None,
        }
    }

    /// The members if `self` is a [`Node::Object`].
    pub fn as_object(&self) -> Option<&Vec<(S, Node<S>)>> {
        match self {
            Node::Object(o) => Some(o),
            _ => None,
        }
    }

    /// Mutable members if `self` is a [`Node::Object`].
    ///
    /// Keys must stay unique: the members are a plain vector, and pushing a
    /// key that is already present makes a document that [`parse`] would
    /// refuse. [`Value::set_member`] keeps the invariant.
    pub fn as_object_mut(&mut self) -> Option<&mut Vec<(S, Node<S>)>> {
        match self {
            Node::Object(o) => Some(o),
            _ => None,
        }
    }

    /// Removes member `key` from an object, returning its value; `None` if
    /// `self` is not an object or has no such member. The order of the other
    /// members is kept.
    pub fn remove_member(&mut self, key: &str) -> Option<Node<S>> {
        let members = self.as_object_mut()?;
        let index = members.iter().position(|(k, _)| k.as_ref() == key)?;
        Some(members.remove(index).1)
    }
}

impl Document<'_> {
    /// The same tree with every string owned.
    pub fn into_owned(self) -> Value {
        match self {
            Node::Null => Node::Null,
            Node::Bool(b) => Node::Bool(b),
            Node::Integer(i) => Node::Integer(i),
            Node::Float(f) => Node::Float(f),
            Node::String(s) => Node::String(s.into_owned()),
            Node::Array(items) => {
                Node::Array(items.into_iter().map(Document::into_owned).collect())
            }
            Node::Object(members) => Node::Object(
                members
                    .into_iter()
                    .map(|(k, v)| (k.into_owned(), v.into_owned()))
                    .collect(),
            ),
        }
    }
}

impl Value {
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

/// Parses a JSON document into an owned [`Value`].
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
    parse_as(bytes, max_depth)
}

/// Parses a JSON document exactly as [`parse`] does, without copying the
/// strings and keys that need no decoding: those borrow from `bytes`.
///
/// ```
/// use std::borrow::Cow;
/// use jido_core::json::{self, Node};
///
/// let bytes = br#"{"plain":"text","escaped":"a\nb"}"#;
/// let doc = json::parse_borrowed(bytes, 64)?;
/// assert!(matches!(doc.get("plain"), Some(Node::String(Cow::Borrowed("text")))));
/// assert!(matches!(doc.get("escaped"), Some(Node::String(Cow::Owned(s))) if s == "a\nb"));
/// assert_eq!(doc.into_owned(), json::parse(bytes, 64)?);
/// # Ok::<(), jido_core::Error>(())
/// ```
///
/// # Errors
/// Exactly those of [`parse`], for exactly the same inputs.
pub fn parse_borrowed(bytes: &[u8], max_depth: usize) -> Result<Document<'_>> {
    parse_as(bytes, max_depth)
}

/// Where a string of a [`Packed`] document is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Span {
    /// `len` bytes of [`Packed::bytes`] from `start`, valid UTF-8: the
    /// string as the file spelled it (it had no escapes), or its decoded
    /// text written over its escaped form.
    At {
        /// Offset of the first byte.
        start: usize,
        /// Length in bytes.
        len: usize,
    },
    /// Decoded text that could not be placed in the buffer (see
    /// [`parse_packed`]).
    Owned(String),
}

/// A parsed document whose strings live, wherever possible, in the very
/// buffer it was parsed from: see [`parse_packed`].
#[derive(Debug)]
pub struct Packed {
    /// The input, with the escaped strings overwritten by their decoded text.
    /// No longer the JSON that was parsed.
    pub bytes: Vec<u8>,
    /// The tree; its strings are [`Span`]s into [`Packed::bytes`].
    pub root: Node<Span>,
}

impl Span {
    /// The bytes of this string, given the buffer of its document: valid
    /// UTF-8. A span that does not fit `bytes` (one from another document)
    /// reads as empty.
    pub fn text<'s>(&'s self, bytes: &'s [u8]) -> &'s [u8] {
        match self {
            Span::At { start, len } => start
                .checked_add(*len)
                .and_then(|end| bytes.get(*start..end))
                .unwrap_or_default(),
            Span::Owned(s) => s.as_bytes(),
        }
    }
}

impl Packed {
    /// The bytes of a string of [`Packed::root`]: [`Span::text`] in this
    /// document's buffer.
    pub fn text<'s>(&'s self, span: &'s Span) -> &'s [u8] {
        span.text(&self.bytes)
    }

    /// The document as an owned [`Value`] (copies every string): for callers
    /// that want the plain model back, and for checking a packing.
    pub fn to_value(&self) -> Value {
        fn walk(node: &Node<Span>, packed: &Packed) -> Value {
            // Spans always hold UTF-8 (they come from validated strings).
            let text = |span: &Span| String::from_utf8_lossy(packed.text(span)).into_owned();
            match node {
                Node::Null => Value::Null,
                Node::Bool(b) => Value::Bool(*b),
                Node::Integer(i) => Value::Integer(*i),
                Node::Float(f) => Value::Float(*f),
                Node::String(s) => Value::String(text(s)),
                Node::Array(items) => Value::Array(items.iter().map(|v| walk(v, packed)).collect()),
                Node::Object(members) => Value::Object(
                    members
                        .iter()
                        .map(|(k, v)| (text(k), walk(v, packed)))
                        .collect(),
                ),
            }
        }
        walk(&self.root, self)
    }
}

/// Parses `bytes` exactly as [`parse`] does, packs the result into `bytes`
/// itself, so that every string is a range of that one buffer and nothing
/// was copied into allocations of its own, then lets `check` inspect it (a
/// [`Document`] borrowing from the packed buffer: verify its signature, say).
///
/// Strings the file spelled without escapes are already in place. A string
/// value with escapes is not even decoded by the parse: its decoded text is
/// never longer than its escaped form, so it is decoded afterwards, in place,
/// over that form. (A parse that kept the decoded copies held them all at
/// once beside the file: for a session of ordinary messages with quotes and
/// newlines, about the file's size again.) Object keys with escapes are
/// decoded by the parser, which compares them, and written back likewise.
/// Where an escaped form is has to be found without parsing again. No `"`
/// occurs in JSON outside of strings, so the first `"` after the string
/// before it opens it; and when the string after it was borrowed (its
/// opening quote is known), the last `"` before that closes it, found without
/// reading the escaped text itself. Only an escaped string followed by
/// another escaped string is read through to its closing quote. A key that
/// could not be placed (none, for the text that was parsed) stays
/// [`Span::Owned`].
///
/// This is for a caller that turns the document into something else that
/// can share one buffer (the NIF makes every long string a sub-binary of it).
///
/// ```
/// use jido_core::json::{self, Node, Span};
///
/// let packed = json::parse_packed(br#"{"k":"a\"b","n":1}"#.to_vec(), 8, |_| Ok(()))?.0;
/// let Node::Object(members) = &packed.root else { unreachable!() };
/// let Node::String(span) = &members[0].1 else { unreachable!() };
/// assert!(matches!(span, Span::At { .. }));
/// assert_eq!(packed.text(span), b"a\"b");
/// # Ok::<(), jido_core::Error>(())
/// ```
///
/// # Errors
/// Those of [`parse`], and whatever `check` returns.
pub fn parse_packed<T>(
    bytes: Vec<u8>,
    max_depth: usize,
    check: impl FnOnce(&Document<'_>) -> Result<T>,
) -> Result<(Packed, T)> {
    parse_packed_screened(bytes, max_depth, |_| Ok(()), check)
}

/// [`parse_packed`] with a `screen` that sees the top-level member keys
/// (`None` if the document is not an object) right after the parse, before anything else is
/// built: a caller that refuses documents by their members alone (an
/// unsigned session once signatures are enforced) pays for nothing more
/// than the parse.
///
/// # Errors
/// Those of [`parse_packed`], and whatever `screen` returns.
pub fn parse_packed_screened<T>(
    mut bytes: Vec<u8>,
    max_depth: usize,
    screen: impl FnOnce(Option<&[&str]>) -> Result<()>,
    check: impl FnOnce(&Document<'_>) -> Result<T>,
) -> Result<(Packed, T)> {
    let mut slots = {
        let document: Node<Deferred<'_>> = parse_as(&bytes, max_depth)?;
        let keys: Option<Vec<&str>> = document
            .as_object()
            .map(|members| members.iter().map(|(k, _)| k.as_ref()).collect());
        screen(keys.as_deref())?;
        drop(keys);
        slots_of(document, &bytes)
    };
    let mut strings = Vec::new();
    collect_strings(&mut slots, &mut strings);
    place(&mut strings, &mut bytes)?;
    drop(strings);
    // One tree alive at a time: each step consumes the one before.
    let view = view_of(slots, &bytes)?;
    let checked = check(&view)?;
    let root = spans_of(view, &bytes);
    Ok((Packed { bytes, root }, checked))
}

/// How the parse behind [`parse_packed`] keeps a string: borrowed from the
/// input, a decoded key, or nothing at all for a string value with escapes
/// (decoded later, in place). Only ever inside that function: an escaped
/// value reads as `""` until then.
enum Deferred<'de> {
    Borrowed(&'de str),
    Decoded(String),
    Escaped,
}

impl AsRef<str> for Deferred<'_> {
    fn as_ref(&self) -> &str {
        match self {
            Deferred::Borrowed(s) => s,
            Deferred::Decoded(s) => s,
            Deferred::Escaped => "",
        }
    }
}

impl<'de> ParsedStr<'de> for Deferred<'de> {
    fn borrowed(s: &'de str) -> Self {
        Deferred::Borrowed(s)
    }
    fn copied(s: &str) -> Self {
        Deferred::Decoded(s.to_owned())
    }
    fn owned(s: String) -> Self {
        Deferred::Decoded(s)
    }
    fn copied_value(_: &str) -> Self {
        Deferred::Escaped
    }
    fn owned_value(_: String) -> Self {
        Deferred::Escaped
    }
}

/// Where a string of a document being packed is.
enum Slot {
    /// In the buffer (see [`Span::At`]).
    At { start: usize, len: usize },
    /// A decoded key not yet written back.
    Decoded(String),
    /// A value with escapes, still in its escaped form.
    Escaped,
}

/// The tree of `document` with its borrowed strings as offsets into
/// `source`.
fn slots_of(document: Node<Deferred<'_>>, source: &[u8]) -> Node<Slot> {
    let slot = |s: Deferred<'_>| match s {
        Deferred::Borrowed(text) => match offset_in(source, text.as_bytes()) {
            Some(start) => Slot::At {
                start,
                len: text.len(),
            },
            // Every borrowed string is a slice of `source`; were one not,
            // it would merely be copied.
            None => Slot::Decoded(text.to_owned()),
        },
        Deferred::Decoded(text) => Slot::Decoded(text),
        Deferred::Escaped => Slot::Escaped,
    };
    map_strings(document, &slot)
}

/// A placed tree as a [`Document`] borrowing every string from `bytes`
/// (a key that could not be placed keeps its own text).
///
/// # Errors
/// [`Error::InvalidJson`] if a string is not UTF-8 or was left undecoded,
/// which only a broken packing could cause.
fn view_of(slots: Node<Slot>, bytes: &[u8]) -> Result<Document<'_>> {
    try_map_strings(slots, &|slot| match slot {
        Slot::At { start, len } => start
            .checked_add(len)
            .and_then(|end| bytes.get(start..end))
            .and_then(|b| std::str::from_utf8(b).ok())
            .map(Cow::Borrowed)
            .ok_or_else(packing_failed),
        Slot::Decoded(text) => Ok(Cow::Owned(text)),
        Slot::Escaped => Err(packing_failed()),
    })
}

/// The checked view as [`Span`]s: offsets into `source` for the strings
/// borrowed from it.
fn spans_of(view: Document<'_>, source: &[u8]) -> Node<Span> {
    let span = |s: Cow<'_, str>| match s {
        Cow::Borrowed(text) => match offset_in(source, text.as_bytes()) {
            Some(start) => Span::At {
                start,
                len: text.len(),
            },
            None => Span::Owned(text.to_owned()),
        },
        Cow::Owned(text) => Span::Owned(text),
    };
    map_strings(view, &span)
}

/// The same tree with every string and key converted by `f`.
fn map_strings<A, B>(node: Node<A>, f: &impl Fn(A) -> B) -> Node<B> {
    let never = |a| Ok::<B, std::convert::Infallible>(f(a));
    match try_map_strings(node, &never) {
        Ok(mapped) => mapped,
        Err(never) => match never {},
    }
}

/// The same tree with every string and key converted by `f`, stopping at
/// its first error. Consumes `node` as it goes, so the old and the new tree
/// coexist only one container at a time.
fn try_map_strings<A, B, E>(node: Node<A>, f: &impl Fn(A) -> Result<B, E>) -> Result<Node<B>, E> {
    Ok(match node {
        Node::Null => Node::Null,
        Node::Bool(b) => Node::Bool(b),
        Node::Integer(i) => Node::Integer(i),
        Node::Float(x) => Node::Float(x),
        Node::String(s) => Node::String(f(s)?),
        Node::Array(items) => Node::Array(
            items
                .into_iter()
                .map(|v| try_map_strings(v, f))
                .collect::<Result<_, E>>()?,
        ),
        Node::Object(members) => Node::Object(
            members
                .into_iter()
                .map(|(k, v)| Ok((f(k)?, try_map_strings(v, f)?)))
                .collect::<Result<_, E>>()?,
        ),
    })
}

#[cold]
fn packing_failed() -> Error {
    Error::invalid_json("string could not be decoded in place")
}

/// Where `part` starts inside `whole`, if it is a slice of it.
fn offset_in(whole: &[u8], part: &[u8]) -> Option<usize> {
    let start = (part.as_ptr() as usize).checked_sub(whole.as_ptr() as usize)?;
    (start.checked_add(part.len())? <= whole.len()).then_some(start)
}

/// Every string of `node` (keys included) in document order: the order of
/// the string tokens in the text it was parsed from.
fn collect_strings<'n>(node: &'n mut Node<Slot>, out: &mut Vec<&'n mut Slot>) {
    match node {
        Node::String(s) => out.push(s),
        Node::Array(items) => items.iter_mut().for_each(|v| collect_strings(v, out)),
        Node::Object(members) => {
            for (k, v) in members {
                out.push(k);
                collect_strings(v, out);
            }
        }
        Node::Null | Node::Bool(_) | Node::Integer(_) | Node::Float(_) => {}
    }
}

/// Writes each decoded key over its escaped form, and decodes each escaped
/// value in place (see [`parse_packed`]). `strings` are in document order.
///
/// # Errors
/// [`packing_failed`] if an escaped value cannot be found or decoded, which
/// only text other than the parsed one could cause.
fn place(strings: &mut [&mut Slot], bytes: &mut [u8]) -> Result<()> {
    // Just past the closing quote of the previous string token (0 before the
    // first); `None` only if the text were not the JSON that was parsed.
    let mut after_previous = Some(0);
    for i in 0..strings.len() {
        // The opening quote of the next string token, if it is known without
        // looking: the next string was borrowed, or there is none.
        let next_open_quote = match strings.get(i + 1).map(|s| &**s) {
            Some(Slot::At { start, .. }) => Some(start.saturating_sub(1)),
            Some(Slot::Decoded(_) | Slot::Escaped) => None,
            None => Some(bytes.len()),
        };
        let slot = &mut *strings[i];
        after_previous = match slot {
            Slot::At { start, len } => Some(*start + *len + 1),
            Slot::Decoded(text) => {
                let token = after_previous.and_then(|from| token_of(bytes, from, next_open_quote));
                if let Some((start, close)) = token {
                    if text.len() <= close - start {
                        bytes[start..start + text.len()].copy_from_slice(text.as_bytes());
                        *slot = Slot::At {
                            start,
                            len: text.len(),
                        };
                    }
                }
                token.map(|(_, close)| close + 1)
            }
            Slot::Escaped => {
                let (start, close) = after_previous
                    .and_then(|from| token_of(bytes, from, next_open_quote))
                    .ok_or_else(packing_failed)?;
                let len = unescape_in_place(&mut bytes[start..close]).ok_or_else(packing_failed)?;
                *slot = Slot::At { start, len };
                Some(close + 1)
            }
        };
    }
    Ok(())
}

/// Decodes the JSON string content `buf` (between its quotes, escapes and
/// all) over itself, returning the decoded length. Every escape is at least
/// as long as what it stands for (`\n` is 2 bytes for 1, `\u00e9` 6 for 2,
/// a surrogate pair 12 for 4), so writing never overtakes reading. `None` for
/// an escape the parser would have refused (it already validated the text).
fn unescape_in_place(buf: &mut [u8]) -> Option<usize> {
    let (mut read, mut write) = (0, 0);
    while let Some(run) = memchr::memchr(b'\\', &buf[read..]) {
        // Until the first escape the text is already where it belongs.
        if write != read {
            buf.copy_within(read..read + run, write);
        }
        read += run;
        write += run;
        if *buf.get(read + 1)? == b'u' {
            let (c, used) = unicode_escape(&buf[read..])?;
            read += used;
            write += c.encode_utf8(&mut buf[write..read]).len();
        } else {
            buf[write] = short_escape(*buf.get(read + 1)?)?;
            read += 2;
            write += 1;
        }
    }
    let rest = buf.len() - read;
    if write != read {
        buf.copy_within(read.., write);
    }
    Some(write + rest)
}

/// The byte a two-character escape (`\n`, `\"`, …) stands for, given the
/// character after the backslash.
fn short_escape(escape: u8) -> Option<u8> {
    Some(match escape {
        b'"' => b'"',
        b'\\' => b'\\',
        b'/' => b'/',
        b'b' => 0x08,
        b'f' => 0x0c,
        b'n' => b'\n',
        b'r' => b'\r',
        b't' => b'\t',
        _ => return None,
    })
}

/// The character a `\uXXXX` escape (or a surrogate pair of two) at the start
/// of `escaped` stands for, and the bytes it spans.
fn unicode_escape(escaped: &[u8]) -> Option<(char, usize)> {
    let high = hex4(escaped.get(2..6)?)?;
    if !(0xD800..0xDC00).contains(&high) {
        return Some((char::from_u32(high)?, 6));
    }
    if escaped.get(6..8)? != b"\\u" {
        return None;
    }
    let low = hex4(escaped.get(8..12)?)?;
    if !(0xDC00..0xE000).contains(&low) {
        return None;
    }
    let c = 0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00);
    Some((char::from_u32(c)?, 12))
}

/// Four hex digits as a number.
fn hex4(digits: &[u8]) -> Option<u32> {
    let text = std::str::from_utf8(digits).ok()?;
    u32::from_str_radix(text, 16).ok()
}

/// The content of the next string token at or after `from`, as the index of
/// its first byte and of its closing quote. `next_open_quote` is the opening
/// quote of the string token after it, when known.
fn token_of(bytes: &[u8], from: usize, next_open_quote: Option<usize>) -> Option<(usize, usize)> {
    let start = from + bytes.get(from..)?.iter().position(|&b| b == b'"')? + 1;
    let close = match next_open_quote {
        // Nothing but this string between the two tokens can hold a quote:
        // its closing quote is the last one before the next token.
        Some(to) => start + bytes.get(start..to)?.iter().rposition(|&b| b == b'"')?,
        // The next string is escaped too: find the end of this one by
        // reading it.
        None => closing_quote(bytes, start)?,
    };
    Some((start, close))
}

/// The index of the quote that closes the JSON string whose content starts
/// at `from`: the first `"` not escaped, that is not preceded by an odd run
/// of backslashes.
fn closing_quote(bytes: &[u8], from: usize) -> Option<usize> {
    let mut at = from;
    loop {
        let quote = at + bytes.get(at..)?.iter().position(|&b| b == b'"')?;
        let backslashes = bytes[from..quote]
            .iter()
            .rev()
            .take_while(|&&b| b == b'\\')
            .count();
        if backslashes % 2 == 0 {
            return Some(quote);
        }
        at = quote + 1;
    }
}

fn parse_as<'de, S: ParsedStr<'de>>(bytes: &'de [u8], max_depth: usize) -> Result<Node<S>> {
    let mut state = State::new(max_depth, bytes.len());
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let parsed = ValueSeed::new(&mut state, 0)
        .deserialize(&mut de)
        .and_then(|value| de.end().map(|()| value));
    let value = parsed.map_err(|err| state.error(&err))?;
    match state.integer_literal_refusal(bytes, true) {
        Some(refusal) => Err(refusal),
        None => Ok(value),
    }
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
/// Output goes through an internal buffer of a few tens of KiB, so `out`
/// sees few, large writes even when it is an unbuffered file or a MAC
/// adaptor. To fill a `Vec`, [`to_vec`] skips that copy.
///
/// # Errors
/// [`Error::Unrepresentable`] for a non-finite float, an integer outside
/// ±(2^53−1) or nesting deeper than [`MAX_DEPTH_CAP`]; [`Error::Io`] when
/// `out` fails (part of the document may have been written).
pub fn to_writer<S: AsRef<str>, W: std::io::Write>(
    value: &Node<S>,
    out: &mut W,
    layout: Layout,
) -> Result<()> {
    let mut sink = Buffered::new(out);
    write_value(value, &mut sink, layout, 0)?;
    sink.finish()
}

/// The JSON text of `value` in member order, as [`to_writer`] writes it.
///
/// # Errors
/// [`Error::Unrepresentable`] as for [`to_writer`].
pub fn to_vec<S: AsRef<str>>(value: &Node<S>, layout: Layout) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    append_to(value, &mut out, layout)?;
    Ok(out)
}

/// Appends the JSON text of `value` to `out`, as [`to_vec`] writes it: for a
/// caller that has sized `out` already. On error `out` holds part of the
/// document.
///
/// # Errors
/// [`Error::Unrepresentable`] as for [`to_writer`].
pub fn append_to<S: AsRef<str>>(value: &Node<S>, out: &mut Vec<u8>, layout: Layout) -> Result<()> {
    write_value(value, out, layout, 0)
}

// ---- writing ---------------------------------------------------------------

fn write_value<T: AsRef<str>, S: Sink>(
    value: &Node<T>,
    out: &mut S,
    layout: Layout,
    depth: usize,
) -> Result<()> {
    match value {
        Node::Null => out.put(b"null"),
        Node::Bool(true) => out.put(b"true"),
        Node::Bool(false) => out.put(b"false"),
        Node::Integer(i) => emit::write_integer(*i, out)?,
        Node::Float(f) => emit::write_float(*f, FloatStyle::Loadable, out)?,
        Node::String(s) => emit::write_str(s.as_ref(), out)?,
        Node::Array(items) => {
            let depth = emit::enter(depth)?;
            out.put_byte(b'[');
            for (i, item) in items.iter().enumerate() {
                separator(out, layout, depth, i == 0);
                write_value(item, out, layout, depth)?;
                out.boundary()?;
            }
            close(out, layout, depth, items.is_empty(), b']');
        }
        Node::Object(members) => {
            let depth = emit::enter(depth)?;
            out.put_byte(b'{');
            for (i, (key, item)) in members.iter().enumerate() {
                separator(out, layout, depth, i == 0);
                emit::write_str(key.as_ref(), out)?;
                out.put(match layout {
                    Layout::Compact => b":",
                    Layout::Pretty => b": ",
                });
                write_value(item, out, layout, depth)?;
                out.boundary()?;
            }
            close(out, layout, depth, members.is_empty(), b'}');
        }
    }
    Ok(())
}

/// Before the element or member at `depth`: a comma unless it is the first,
/// then (pretty) a newline and the indentation.
fn separator<S: Sink>(out: &mut S, layout: Layout, depth: usize, first: bool) {
    match layout {
        Layout::Compact if first => {}
        Layout::Compact => out.put_byte(b','),
        Layout::Pretty => {
            out.put(if first { b"\n" } else { b",\n" });
            indent(out, depth);
        }
    }
}

/// Closes a container: (pretty, non-empty) newline and the parent's
/// indentation, then the bracket — the layout of serde_json's
/// `PrettyFormatter`, so `[]` and `{}` stay on one line.
fn close<S: Sink>(out: &mut S, layout: Layout, depth: usize, empty: bool, bracket: u8) {
    if layout == Layout::Pretty && !empty {
        out.put_byte(b'\n');
        indent(out, depth - 1);
    }
    out.put_byte(bracket);
}

fn indent<S: Sink>(out: &mut S, levels: usize) {
    const SPACES: &[u8; 64] = b"                                                                ";
    let mut remaining = levels * 2;
    while remaining > 0 {
        let n = remaining.min(SPACES.len());
        out.put(&SPACES[..n]);
        remaining -= n;
    }
}

// ---- parsing ---------------------------------------------------------------

/// How the parser stores a string it has read: `'de` is the lifetime of the
/// input. Implemented for `String` (always a copy) and `Cow<'de, str>`
/// (borrowed when the input spelled the string without escapes).
pub(crate) trait ParsedStr<'de>: AsRef<str> + Sized {
    /// A string that is a slice of the input.
    fn borrowed(s: &'de str) -> Self;
    /// A string decoded into transient storage (it had escapes).
    fn copied(s: &str) -> Self;
    /// A string already owned.
    fn owned(s: String) -> Self;
    /// A string *value* decoded into transient storage; keys always use
    /// [`ParsedStr::copied`], since the parse compares them.
    fn copied_value(s: &str) -> Self {
        Self::copied(s)
    }
    /// A string *value* already owned.
    fn owned_value(s: String) -> Self {
        Self::owned(s)
    }
}

impl<'de> ParsedStr<'de> for String {
    fn borrowed(s: &'de str) -> Self {
        s.to_owned()
    }
    fn copied(s: &str) -> Self {
        s.to_owned()
    }
    fn owned(s: String) -> Self {
        s
    }
}

impl<'de> ParsedStr<'de> for Cow<'de, str> {
    fn borrowed(s: &'de str) -> Self {
        Cow::Borrowed(s)
    }
    fn copied(s: &str) -> Self {
        Cow::Owned(s.to_owned())
    }
    fn owned(s: String) -> Self {
        Cow::Owned(s)
    }
}

/// State shared by every level of one parse.
///
/// `pub(crate)` with [`ValueSeed`] so that [`crate::listing`] can parse the
/// members of a top-level object one at a time with exactly these rules.
pub(crate) struct State<S = String> {
    max_depth: usize,
    /// Values and keys the document may still hold ([`value_budget`]).
    budget_left: usize,
    /// The whole budget, for the refusal's message.
    budget: usize,
    /// Set when an integral double of magnitude 2^53 or more was parsed: the
    /// input's number tokens must then be checked
    /// ([`out_of_range_integer_literal`]).
    large_integral_float: bool,
    /// Whether the refusal is of an integer literal: the one refusal a
    /// prefix cut inside a number may have caused (see [`crate::listing`]).
    integer_refused: bool,
    /// The detail of a refusal raised by this module (rather than by
    /// serde_json's grammar), reported verbatim by [`parse`].
    refusal: Option<String>,
    /// Elements and members of the containers being parsed, as stacks: a
    /// container pushes its children above what its ancestors pushed, then
    /// moves them into a vector of exactly the right size. One allocation per
    /// container instead of a chain of regrowths — allocation is most of the
    /// cost of parsing a session.
    items: Stack<Node<S>>,
    members: Stack<(S, Node<S>)>,
}

impl<S> State<S> {
    /// The state of a parse allowing `max_depth` levels (clamped to
    /// [`MAX_DEPTH_CAP`]) of a document `len` bytes long (which sets its
    /// [`value_budget`]).
    pub(crate) fn new(max_depth: usize, len: usize) -> Self {
        let budget = value_budget(len);
        Self {
            max_depth: clamp_depth(max_depth),
            budget_left: budget,
            budget,
            large_integral_float: false,
            integer_refused: false,
            refusal: None,
            items: Stack::new(),
            members: Stack::new(),
        }
    }

    /// Whether this module (rather than serde_json's grammar) refused the
    /// document: such a refusal concerns bytes already seen and stands even
    /// if the input was cut short.
    pub(crate) fn refused(&self) -> bool {
        self.refusal.is_some()
    }

    /// Whether this module's refusal was of an integer literal out of range.
    pub(crate) fn refused_integer(&self) -> bool {
        self.integer_refused
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

    /// The refusal of an integer literal out of range in `bytes` (the input,
    /// or the part of it that was parsed; `complete` as for
    /// [`out_of_range_integer_literal`]), if the parse met a double that may
    /// have been spelled as one.
    pub(crate) fn integer_literal_refusal(&self, bytes: &[u8], complete: bool) -> Option<Error> {
        if !self.large_integral_float {
            return None;
        }
        let literal = out_of_range_integer_literal(bytes, complete)?;
        Some(Error::invalid_json(integer_refusal(
            &String::from_utf8_lossy(literal),
        )))
    }

    /// Counts one value or key against the budget.
    fn spend<E: de::Error>(&mut self) -> Result<(), E> {
        match self.budget_left.checked_sub(1) {
            Some(left) => {
                self.budget_left = left;
                Ok(())
            }
            None => {
                let detail = format!(
                    "more than {} values and keys (one per {BYTES_PER_VALUE} bytes of input, plus {MIN_VALUE_BUDGET})",
                    self.budget
                );
                Err(self.refuse(detail))
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
pub(crate) struct ValueSeed<'s, S = String> {
    state: &'s mut State<S>,
    depth: usize,
}

impl<'s, S> ValueSeed<'s, S> {
    /// A seed for a value `depth` containers deep (0 for the document).
    pub(crate) fn new(state: &'s mut State<S>, depth: usize) -> Self {
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
        self.state.integer_refused = true;
        self.state.refuse(integer_refusal(&literal.to_string()))
    }
}

/// One of the parse stacks: the children of the containers being parsed.
///
/// Kept in chunks of [`Stack::CHUNK`] entries (the first grows up to that
/// size as a vector does), so growing it never moves what it holds: a
/// doubling vector holds its old and its new buffer at once while it moves,
/// half as much again as its contents, and for a document of tiny values
/// that move was the peak of the whole load.
struct Stack<T> {
    chunks: Vec<Vec<T>>,
    len: usize,
}

impl<T> Stack<T> {
    const CHUNK: usize = 4096;

    const fn new() -> Self {
        Self {
            chunks: Vec::new(),
            len: 0,
        }
    }

    fn len(&self) -> usize {
        self.len
    }

    fn push(&mut self, item: T) {
        let chunk = self.len / Self::CHUNK;
        if chunk == self.chunks.len() {
            // Small documents never need more than the first chunk, which
            // grows from nothing; chunks after it are allocated whole.
            let capacity = if chunk == 0 { 0 } else { Self::CHUNK };
            self.chunks.push(Vec::with_capacity(capacity));
        }
        self.chunks[chunk].push(item);
        self.len += 1;
    }

    /// The entries from `start` on, in order, moved into a vector of exactly
    /// their number. Emptied chunks keep their capacity for the next
    /// container.
    fn pop_from(&mut self, start: usize) -> Vec<T> {
        let mut out = Vec::with_capacity(self.len - start);
        let first = start / Self::CHUNK;
        for (i, chunk) in self.chunks.iter_mut().enumerate().skip(first) {
            let from = if i == first { start % Self::CHUNK } else { 0 };
            if from >= chunk.len() {
                break;
            }
            out.extend(chunk.drain(from..));
        }
        self.len = start;
        out
    }
}

impl<'de, S: ParsedStr<'de>> DeserializeSeed<'de> for ValueSeed<'_, S> {
    type Value = Node<S>;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Node<S>, D::Error> {
        self.state.spend()?;
        deserializer.deserialize_any(self)
    }
}

impl<'de, S: ParsedStr<'de>> Visitor<'de> for ValueSeed<'_, S> {
    type Value = Node<S>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Node<S>, E> {
        Ok(Node::Null)
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Node<S>, E> {
        Ok(Node::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Node<S>, E> {
        if is_safe_integer(v) {
            Ok(Node::Integer(v))
        } else {
            Err(self.out_of_range(&v))
        }
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Node<S>, E> {
        match i64::try_from(v) {
            Ok(i) if i <= MAX_SAFE_INTEGER => Ok(Node::Integer(i)),
            _ => Err(self.out_of_range(&v)),
        }
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Node<S>, E> {
        // serde_json never produces a non-finite double (it refuses `1e400`
        // as out of range), but the model promises finiteness, so check.
        if v.is_finite() {
            // An integral double this large may come from an integer literal
            // beyond 64 bits: the caller checks the number tokens.
            #[allow(clippy::cast_precision_loss)]
            if v.fract() == 0.0 && v.abs() > MAX_SAFE_INTEGER as f64 {
                self.state.large_integral_float = true;
            }
            Ok(Node::Float(v))
        } else {
            Err(self.state.refuse(format!("number {v} is not finite")))
        }
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Node<S>, E> {
        Ok(Node::String(S::borrowed(v)))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Node<S>, E> {
        Ok(Node::String(S::copied_value(v)))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Node<S>, E> {
        Ok(Node::String(S::owned_value(v)))
    }

    fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<Node<S>, A::Error> {
        let depth = self.enter()?;
        let state = self.state;
        let start = state.items.len();
        while let Some(item) = seq.next_element_seed(ValueSeed {
            state: &mut *state,
            depth,
        })? {
            state.items.push(item);
        }
        Ok(Node::Array(state.items.pop_from(start)))
    }

    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<Node<S>, A::Error> {
        let depth = self.enter()?;
        let state = self.state;
        let start = state.members.len();
        while let Some(key) = map.next_key_seed(KeySeed(PhantomData))? {
            let key: S = key;
            state.spend()?;
            let value = map.next_value_seed(ValueSeed {
                state: &mut *state,
                depth,
            })?;
            state.members.push((key, value));
        }
        let members = state.members.pop_from(start);
        if let Some(key) = duplicate_key_in(&members) {
            let detail = duplicate_key(key);
            return Err(state.refuse(detail));
        }
        Ok(Node::Object(members))
    }
}

/// Deserializes an object key as `S`, borrowing it from the input when it has
/// no escapes.
struct KeySeed<S>(PhantomData<S>);

impl<'de, S: ParsedStr<'de>> DeserializeSeed<'de> for KeySeed<S> {
    type Value = S;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<S, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de, S: ParsedStr<'de>> Visitor<'de> for KeySeed<S> {
    type Value = S;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<S, E> {
        Ok(S::borrowed(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<S, E> {
        Ok(S::copied(v))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<S, E> {
        Ok(S::owned(v))
    }
}

/// `integer N is outside ±(2^53−1)`, a long literal cut short: it comes
/// from the file and ends up in logs.
#[cold]
fn integer_refusal(literal: &str) -> String {
    const SHOWN: usize = 40;
    if literal.len() <= SHOWN {
        format!("integer {literal} is outside ±(2^53−1)")
    } else {
        // Number tokens are ASCII, so any cut is a character boundary.
        let head = literal.get(..SHOWN).unwrap_or_default();
        format!(
            "integer {head}… ({} characters) is outside ±(2^53−1)",
            literal.len()
        )
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
    let _ = emit::write_str(&key[..cut], &mut quoted);
    let ellipsis = if cut < key.len() { "…" } else { "" };
    format!(
        "duplicate key {}{ellipsis}",
        String::from_utf8_lossy(&quoted)
    )
}
