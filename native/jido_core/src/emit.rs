//! JSON output below the level of containers, shared by the crate's two
//! writers — the canonical one ([`crate::canonical`]) and the file one
//! ([`crate::json::to_writer`]): where bytes go ([`Sink`], [`Buffered`]), how
//! deep a written value may be ([`enter`]), and how a number or a string is
//! spelled ([`write_integer`], [`write_float`], [`write_str`]).
//!
//! Both writers take every scalar from here, so a file and the canonical form
//! its signature covers cannot drift apart; they differ only where
//! [`FloatStyle`] says, and in how they lay out containers (member order,
//! whitespace). The limits are the data model's ([`MAX_DEPTH_CAP`],
//! [`is_safe_integer`]): nothing is written that [`crate::json::parse`] would
//! refuse to read back.
use std::io::Write;

use crate::json::{is_safe_integer, MAX_DEPTH_CAP};
use crate::{Error, Result};

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
/// [`crate::json::parse`] accepts (which also keeps the recursion shallow).
#[inline]
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
    /// In exponent form (`1e+19`), so that [`crate::json::parse`], which
    /// refuses integer literals beyond ±(2^53−1), reads it back as the same
    /// double.
    Loadable,
}

/// An integer as plain digits.
///
/// # Errors
/// [`Error::Unrepresentable`] outside ±(2^53−1), which a double (how RFC 8785
/// and [`crate::json::parse`] read every number) cannot hold exactly.
pub(crate) fn write_integer<S: Sink>(value: i64, out: &mut S) -> Result<()> {
    if !is_safe_integer(value) {
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
///
/// # Errors
/// [`Error::Unrepresentable`] for NaN and the infinities, which JSON cannot
/// spell.
// Inlined into each walk, as it was when it lived in the canonical walk's
// module: without it canonicalization ran 1.5% more instructions.
#[inline]
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// The first byte of `bytes` that [`ESCAPE`] marks, found one byte at a
    /// time: what [`next_escape`]'s word-at-a-time scan must agree with.
    fn first_marked(bytes: &[u8]) -> usize {
        bytes
            .iter()
            .position(|&b| ESCAPE[usize::from(b)] != 0)
            .unwrap_or(bytes.len())
    }

    #[test]
    fn the_word_scan_finds_the_first_escape_for_every_pair_of_bytes_in_every_lane() {
        // A borrow out of one byte can flag the bytes above it, never below:
        // every pair of values at every pair of lanes, the rest clean.
        for first in 0..8 {
            for second in first + 1..8 {
                for a in 0..=u8::MAX {
                    for b in 0..=u8::MAX {
                        let mut word = *b"abcdefgh";
                        word[first] = a;
                        word[second] = b;
                        assert_eq!(next_escape(&word, 0), first_marked(&word), "{word:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn a_buffered_sink_never_outgrows_its_first_allocation() {
        // Every byte escaped to six: the worst case STR_CHUNK is sized for.
        let s = "\u{1}".repeat(5 * STR_CHUNK + 3);
        let mut out = Vec::new();
        let mut sink = Buffered::new(&mut out);
        let capacity = sink.buf.capacity();
        for _ in 0..3 {
            write_str(&s, &mut sink).unwrap();
            sink.boundary().unwrap();
            assert_eq!(sink.buf.capacity(), capacity);
        }
        sink.finish().unwrap();
        assert_eq!(out.len(), 3 * (6 * s.len() + 2));
    }
}
