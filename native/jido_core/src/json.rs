//! Strict JSON document model.
//!
//! CONTRACT (stub — to be implemented):
//! * `Value` keeps object members in file order (`Object` is a Vec of pairs,
//!   keys unique — duplicates are refused at parse time so the bytes that are
//!   verified and the terms that are returned come from one parse).
//! * `parse(bytes, max_depth)`: serde_json-driven (DeserializeSeed carrying the
//!   depth); depth counts nested arrays/objects, the top-level object is depth 1;
//!   exceeding → `Error::InvalidJson("nesting deeper than N levels")`.
//!   `max_depth` is clamped to `MAX_DEPTH_CAP` (128, serde_json's own limit).
//!   Integers outside ±(2^53−1) → `InvalidJson` (RFC 8785/I-JSON: they would
//!   canonicalize to a different double, letting a value hide behind a
//!   signature). Floats as f64. Invalid UTF-8, lone surrogates, trailing data →
//!   `InvalidJson` with serde_json's message.
//! * `to_writer(value, out, Layout)` writes JSON in member order; `Compact` or
//!   `Pretty` (2-space indent); numbers formatted like `canonical` (ECMAScript).
use crate::Result;

/// Largest accepted nesting depth (serde_json's recursion limit).
pub const MAX_DEPTH_CAP: usize = 128;

/// Object members in document order; keys are unique.
pub type Object = Vec<(String, Value)>;

/// A parsed JSON value.
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
/// # Errors
/// [`crate::Error::InvalidJson`] as described in the module docs.
pub fn parse(bytes: &[u8], max_depth: usize) -> Result<Value> {
    let _ = (bytes, max_depth);
    todo!("json::parse")
}

/// Writes `value` as JSON.
///
/// # Errors
/// [`crate::Error::Unrepresentable`] for a non-finite float; I/O errors.
pub fn to_writer<W: std::io::Write>(value: &Value, out: &mut W, layout: Layout) -> Result<()> {
    let _ = (value, out, layout);
    todo!("json::to_writer")
}
