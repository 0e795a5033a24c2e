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
//! The string and number writers here are also the ones [`crate::json`] uses
//! for files, so the two can never drift apart.
//!
//! Canonicalization recurses once per nesting level. Values from
//! [`crate::json::parse`] are at most [`MAX_DEPTH_CAP`] deep; a hand-built
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

use crate::json::{self, Node, MAX_DEPTH_CAP};
use crate::{Error, Result};

/// Writes the JCS canonical form of `value`.
///
/// Output goes through an internal buffer of a few tens of KiB, so `out` (a
/// file, a MAC adaptor) sees few, large writes.
///
/// # Errors
/// [`Error::Unrepresentable`] for a non-finite float, an integer outside
/// ±(2^53−1) or nesting deeper than [`MAX_DEPTH_CAP`] (none of which
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
        Node::Integer(i) => write_integer(*i, out)?,
        Node::Float(f) => write_float(*f, FloatStyle::Canonical, out)?,
        Node::String(s) => write_str(s.as_ref(), out)?,
        Node::Array(items) => {
            let depth = enter(depth)?;
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
    let depth = enter(depth)?;
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
        write_str(key.as_ref(), out)?;
        out.put_byte(b':');
        // Children push above `end` and pop back to it before returning.
        write_value(item, out, scratch, depth)?;
        out.boundary()?;
    }
    scratch.truncate(start);
    out.put_byte(b'}');
    Ok(())
}

// ---- writers shared with json.rs ---------------------------------------------

/// Where the writers put bytes: a `Vec` directly, or an `io::Write` through
/// [`Buffered`].
///
/// Writers append to [`Sink::buf`] — plain `Vec` pushes, which the compiler
/// inlines, rather than a call per bracket or escape — and call
/// [`Sink::boundary`] after each element and member (and every
/// [`STR_CHUNK`] bytes of a long string), where a buffered sink hands its
/// bytes on once it holds [`BUFFER`] of them.
pub(crate) trait Sink {
    /// The buffer to append to.
    fn buf(&mut self) -> &mut Vec<u8>;

    /// A point where what has been appended may be passed on.
    fn boundary(&mut self) -> Result<()>;

    /// Appends `bytes`.
    #[inline]
    fn put(&mut self, bytes: &[u8]) {
        self.buf().extend_from_slice(bytes);
    }

    /// Appends one byte.
    #[inline]
    fn put_byte(&mut self, byte: u8) {
        self.buf().push(byte);
    }
}

impl Sink for Vec<u8> {
    #[inline]
    fn buf(&mut self) -> &mut Vec<u8> {
        self
    }

    #[inline]
    fn boundary(&mut self) -> Result<()> {
        Ok(())
    }
}

/// An `io::Write` behind a buffer: the writers emit many small pieces
/// (brackets, separators, short keys, escapes), and each `write` on a file is
/// a syscall, on a MAC a call through the hasher's block buffer.
pub(crate) struct Buffered<'w, W: Write> {
    out: &'w mut W,
    buf: Vec<u8>,
}

/// How much [`Buffered`] collects before writing: large enough that a MAC or
/// a file sees a few hundred writes for a 10 MiB document, small enough to
/// stay in the L2 cache while it is hashed.
const BUFFER: usize = 32 * 1024;

/// The longest stretch of a string escaped without a [`Sink::boundary`]:
/// bounds a [`Buffered`] buffer to [`BUFFER`] plus six times this (every
/// byte a `\u00XX`) whatever the strings.
const STR_CHUNK: usize = 16 * 1024;

impl<'w, W: Write> Buffered<'w, W> {
    pub(crate) fn new(out: &'w mut W) -> Self {
        Self {
            out,
            buf: Vec::with_capacity(BUFFER + 6 * STR_CHUNK + 64),
        }
    }

    fn drain(&mut self) -> Result<()> {
        if !self.buf.is_empty() {
            self.out
                .write_all(&self.buf)
                .map_err(|e| Error::io("write", e))?;
            self.buf.clear();
        }
        Ok(())
    }

    /// Writes out what is still buffered. Does not flush `out` itself: like
    /// `serde_json::to_writer`, that is the caller's choice.
    pub(crate) fn finish(mut self) -> Result<()> {
        self.drain()
    }
}

impl<W: Write> Sink for Buffered<'_, W> {
    #[inline]
    fn buf(&mut self) -> &mut Vec<u8> {
        &mut self.buf
    }

    #[inline]
    fn boundary(&mut self) -> Result<()> {
        if self.buf.len() >= BUFFER {
            self.drain()?;
        }
        Ok(())
    }
}

/// One more level of nesting, or the refusal of a value deeper than anything
/// [`json::parse`] accepts (which also keeps the recursion shallow).
pub(crate) fn enter(depth: usize) -> Result<usize> {
    if depth >= MAX_DEPTH_CAP {
        return Err(Error::Unrepresentable(
            "value nested deeper than json::MAX_DEPTH_CAP levels",
        ));
    }
    Ok(depth + 1)
}

/// What to do with an integral double of magnitude ≥ 2^53 below 1e21, which
/// ECMAScript prints as plain digits.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum FloatStyle {
    /// As ECMAScript does (`10000000000000000000`): what JCS requires.
    Canonical,
    /// In exponent form (`1e+19`), so that [`json::parse`], which refuses
    /// integer literals beyond ±(2^53−1), reads it back as the same double.
    Loadable,
}

/// An integer as plain digits.
pub(crate) fn write_integer<S: Sink>(value: i64, out: &mut S) -> Result<()> {
    if !json::is_safe_integer(value) {
        return Err(Error::Unrepresentable("integer outside ±(2^53−1)"));
    }
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    let mut rest = value.unsigned_abs();
    loop {
        at -= 1;
        // `rest % 10` is below 10, so the cast cannot truncate.
        digits[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    if value < 0 {
        at -= 1;
        digits[at] = b'-';
    }
    out.put(&digits[at..]);
    Ok(())
}

/// A double as ECMAScript's `Number::toString` prints it (RFC 8785
/// §3.2.2.3), or in exponent form for [`FloatStyle::Loadable`].
pub(crate) fn write_float<S: Sink>(value: f64, style: FloatStyle, out: &mut S) -> Result<()> {
    if !value.is_finite() {
        return Err(Error::Unrepresentable("NaN or infinite number"));
    }
    if value == 0.0 {
        // Both zeros; ECMAScript prints -0 as "0".
        out.put(b"0");
        return Ok(());
    }
    let mut buffer = ryu_js::Buffer::new();
    let text = buffer.format_finite(value);
    let magnitude = value.abs();
    if style == FloatStyle::Canonical || !(9_007_199_254_740_992.0..1e21).contains(&magnitude) {
        out.put(text.as_bytes());
        return Ok(());
    }
    // Plain digits of an integral double: "-1152921504606847000" becomes
    // "-1.152921504606847e+18".
    let (sign, digits) = match text.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", text),
    };
    let significant = digits.trim_end_matches('0');
    let (first, rest) = significant.split_at(1);
    let dot = if rest.is_empty() { "" } else { "." };
    let exponent = digits.len() - 1;
    let mut text = Vec::with_capacity(32);
    // Writing into a Vec cannot fail.
    let _ = write!(text, "{sign}{first}{dot}{rest}e+{exponent}");
    out.put(&text);
    Ok(())
}

/// For each byte: 0 if it stands for itself in a JCS string, otherwise the
/// letter of its escape (`u` for `\u00XX`).
static ESCAPE: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut b = 0;
    while b < 0x20 {
        table[b] = b'u';
        b += 1;
    }
    table[0x08] = b'b';
    table[0x09] = b't';
    table[0x0a] = b'n';
    table[0x0c] = b'f';
    table[0x0d] = b'r';
    table[b'"' as usize] = b'"';
    table[b'\\' as usize] = b'\\';
    table
};

const HEX: &[u8; 16] = b"0123456789abcdef";

/// For the eight bytes of `word` (little-endian), a mask whose lowest set
/// bit lies in the first byte that needs escaping — a control character,
/// `"` or `\` — or 0 if none does. These are the classic has-zero-byte and
/// has-byte-less-than tricks: a borrow can only flag bytes *above* a true
/// hit, so the lowest flag is always exact.
#[inline]
fn escape_mask(word: u64) -> u64 {
    const ONES: u64 = u64::MAX / 255;
    const HIGH: u64 = ONES * 0x80;
    let below_space = word.wrapping_sub(ONES * 0x20) & !word;
    let quote = word ^ (ONES * u64::from(b'"'));
    let backslash = word ^ (ONES * u64::from(b'\\'));
    let is_quote = quote.wrapping_sub(ONES) & !quote;
    let is_backslash = backslash.wrapping_sub(ONES) & !backslash;
    (below_space | is_quote | is_backslash) & HIGH
}

/// A string in quotes with JCS escaping (RFC 8785 §3.2.2.2).
///
/// Never fails itself; the `Result` is that of the sink's
/// [`Sink::boundary`] between chunks of a long string.
pub(crate) fn write_str<S: Sink>(s: &str, out: &mut S) -> Result<()> {
    out.put_byte(b'"');
    // Chunks may split a multi-byte character: escaping looks at ASCII bytes
    // only, which never occur inside one.
    for chunk in s.as_bytes().chunks(STR_CHUNK) {
        escape_into(chunk, out.buf());
        out.boundary()?;
    }
    out.put_byte(b'"');
    Ok(())
}

/// Appends `bytes` to `buf` with every byte that needs it escaped; runs of
/// characters that need no escape are copied as one slice.
#[inline]
fn escape_into(bytes: &[u8], buf: &mut Vec<u8>) {
    let mut run_start = 0;
    loop {
        let at = next_escape(bytes, run_start);
        buf.extend_from_slice(&bytes[run_start..at]);
        let Some(&byte) = bytes.get(at) else { return };
        push_escape(byte, buf);
        run_start = at + 1;
    }
}

/// The index of the first byte at or after `from` that needs escaping, or
/// `bytes.len()`. Session text is mostly clean, so it is skipped eight bytes
/// at a time.
#[inline]
fn next_escape(bytes: &[u8], from: usize) -> usize {
    let mut i = from;
    while let Some(chunk) = bytes.get(i..).and_then(<[u8]>::first_chunk::<8>) {
        let hits = escape_mask(u64::from_le_bytes(*chunk));
        if hits != 0 {
            // trailing_zeros of a non-zero u64 is below 64.
            return i + (hits.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    match bytes[i..].iter().position(|&b| ESCAPE[usize::from(b)] != 0) {
        Some(offset) => i + offset,
        None => bytes.len(),
    }
}

/// Appends the escape of `byte`, one that [`ESCAPE`] marks.
#[inline]
fn push_escape(byte: u8, buf: &mut Vec<u8>) {
    let escape = ESCAPE[usize::from(byte)];
    if escape == b'u' {
        buf.extend_from_slice(&[
            b'\\',
            b'u',
            b'0',
            b'0',
            HEX[usize::from(byte >> 4)],
            HEX[usize::from(byte & 0xf)],
        ]);
    } else {
        buf.extend_from_slice(&[b'\\', escape]);
    }
}
