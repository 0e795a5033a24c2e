//! RFC 8785 JSON Canonicalization Scheme (JCS): the bytes a signature covers.
//!
//! A session file may be pretty or compact, its members in any order; the
//! signature must not care. JCS gives every JSON value exactly one byte
//! form, which any JCS implementation in any language reproduces:
//!
//! * no whitespace;
//! * object members sorted by their keys compared as arrays of **UTF-16 code
//!   units** (RFC 8785 §3.2.3) — not by UTF-8 bytes or code points, which
//!   order a supplementary-plane character (`😀`, UTF-16 `d83d de00`)
//!   after U+E000..U+FFFF (`דּ`, `fb33`) where UTF-16 puts it before;
//! * numbers as IEEE-754 doubles printed by ECMAScript's `Number::toString`
//!   (§3.2.2.3): shortest round-trip digits, `1e+21`, `1e-7`, `-0` → `0`
//!   (via the `ryu-js` crate);
//! * strings with only `"`, `\` and U+0000..U+001F escaped — `\b \t \n \f
//!   \r` where they exist, otherwise `\u00XX` in lowercase hex — and every
//!   other character as raw UTF-8 (§3.2.2.2).
//!
//! Strings and numbers are spelled by the same code as in the files
//! [`crate::json::to_writer`] writes, so the two can never drift apart.
//!
//! Canonicalization recurses once per nesting level. Values from
//! [`crate::json::parse`] are at most [`json::MAX_DEPTH_CAP`] deep; a hand-built
//! value nested deeper is refused ([`Error::Unrepresentable`]) before the
//! recursion could threaten the stack.
//!
//! ```
//! use jido_core::canonical;
//!
//! let pretty = b"{\n  \"b\": [1.50, 2e-3],\n  \"a\": \"\\u0041\"\n}";
//! assert_eq!(canonical::canonicalize(pretty, 64)?, br#"{"a":"A","b":[1.5,0.002]}"#);
//! # Ok::<(), jido_core::Error>(())
//! ```
use std::cmp::Ordering;
use std::io::Write;

use crate::emit::{self, Buffered, FloatStyle, Sink};
use crate::json::{self, Node};
use crate::{Error, Result};

/// Writes the JCS canonical form of `value`.
///
/// Output goes through an internal buffer of a few tens of KiB, so `out` (a
/// file, a MAC adaptor) sees few, large writes.
///
/// # Errors
/// [`Error::Unrepresentable`] for a non-finite float, an integer outside
/// ±(2^53−1) or nesting deeper than [`json::MAX_DEPTH_CAP`] (none of which
/// [`json::parse`] produces); [`Error::Io`] when `out` fails.
pub fn write<S: AsRef<str>, W: Write>(value: &Node<S>, out: &mut W) -> Result<()> {
    let mut sink = Buffered::new(out);
    write_value(value, &mut sink, &mut Vec::new(), 0)?;
    sink.finish()
}

/// The JCS canonical bytes of `value`.
///
/// # Errors
/// [`Error::Unrepresentable`] as for [`write()`].
pub fn to_vec<S: AsRef<str>>(value: &Node<S>) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    write_value(value, &mut out, &mut Vec::new(), 0)?;
    Ok(out)
}

/// Parses `bytes` with [`json::parse`] and returns their JCS canonical form.
///
/// # Errors
/// Any error of [`json::parse`] (no canonicalization error is possible for a
/// parsed document).
pub fn canonicalize(bytes: &[u8], max_depth: usize) -> Result<Vec<u8>> {
    to_vec(&json::parse_borrowed(bytes, max_depth)?)
}

/// Writes the JCS canonical form of the object `value` without its top-level
/// member `skip_top_level_key` (if present), without copying the document.
///
/// This is what a signature covers: the document minus its own
/// `"signature"` member. Members of that name in nested objects are kept.
///
/// # Errors
/// [`Error::NotAnObject`] if `value` is not an object; otherwise as
/// [`write()`].
pub fn write_without_member<S: AsRef<str>, W: Write>(
    value: &Node<S>,
    skip_top_level_key: &str,
    out: &mut W,
) -> Result<()> {
    let members = value.as_object().ok_or(Error::NotAnObject)?;
    let mut sink = Buffered::new(out);
    write_object(
        members,
        Some(skip_top_level_key),
        &mut sink,
        &mut Vec::new(),
        0,
    )?;
    sink.finish()
}

/// Orders two object keys as RFC 8785 §3.2.3 does: by their UTF-16 code
/// units.
///
/// Equal to `a.encode_utf16().cmp(b.encode_utf16())`, with a fast path for
/// the usual case of keys that first differ at an ASCII character.
pub fn key_order(a: &str, b: &str) -> Ordering {
    let (x, y) = (a.as_bytes(), b.as_bytes());
    match x.iter().zip(y).position(|(p, q)| p != q) {
        // One key is a prefix of the other (or they are equal): shorter first,
        // in UTF-16 as in UTF-8.
        None => x.len().cmp(&y.len()),
        // An ASCII byte is never part of a multi-byte sequence, so both keys
        // have a character boundary here, the same characters before it, and
        // that byte is the whole first differing UTF-16 unit.
        Some(i) if x[i] < 0x80 && y[i] < 0x80 => x[i].cmp(&y[i]),
        Some(_) => a.encode_utf16().cmp(b.encode_utf16()),
    }
}

// ---- the canonical walk ----------------------------------------------------

/// `scratch` is a stack of member references shared by every object of the
/// walk: each object pushes its members, sorts its own slice and pops them
/// when done, so sorting allocates nothing once the stack has grown.
fn write_value<'v, T: AsRef<str>, S: Sink>(
    value: &'v Node<T>,
    out: &mut S,
    scratch: &mut Vec<&'v (T, Node<T>)>,
    depth: usize,
) -> Result<()> {
    match value {
        Node::Null => out.put(b"null"),
        Node::Bool(true) => out.put(b"true"),
        Node::Bool(false) => out.put(b"false"),
        Node::Integer(i) => emit::write_integer(*i, out)?,
        Node::Float(f) => emit::write_float(*f, FloatStyle::Canonical, out)?,
        Node::String(s) => emit::write_str(s.as_ref(), out)?,
        Node::Array(items) => {
            let depth = emit::enter(depth)?;
            out.put_byte(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.put_byte(b',');
                }
                write_value(item, out, scratch, depth)?;
                out.boundary()?;
            }
            out.put_byte(b']');
        }
        Node::Object(members) => write_object(members, None, out, scratch, depth)?,
    }
    Ok(())
}

fn write_object<'v, T: AsRef<str>, S: Sink>(
    members: &'v [(T, Node<T>)],
    skip: Option<&str>,
    out: &mut S,
    scratch: &mut Vec<&'v (T, Node<T>)>,
    depth: usize,
) -> Result<()> {
    let depth = emit::enter(depth)?;
    let start = scratch.len();
    scratch.extend(members.iter().filter(|(k, _)| Some(k.as_ref()) != skip));
    let end = scratch.len();
    let in_order = |a: &&(T, Node<T>), b: &&(T, Node<T>)| key_order(a.0.as_ref(), b.0.as_ref());
    // Objects usually arrive sorted already (Erlang maps iterate small maps
    // in key order, and JCS order is that order for ASCII keys), so check
    // before sorting. Keys are unique (json::parse refuses duplicates), so an
    // unstable sort is deterministic.
    if !scratch[start..].is_sorted_by(|a, b| in_order(a, b) == Ordering::Less) {
        scratch[start..].sort_unstable_by(in_order);
    }
    out.put_byte(b'{');
    for i in start..end {
        let (key, item) = scratch[i];
        if i > start {
            out.put_byte(b',');
        }
        emit::write_str(key.as_ref(), out)?;
        out.put_byte(b':');
        // Children push above `end` and pop back to it before returning.
        write_value(item, out, scratch, depth)?;
        out.boundary()?;
    }
    scratch.truncate(start);
    out.put_byte(b'}');
    Ok(())
}
