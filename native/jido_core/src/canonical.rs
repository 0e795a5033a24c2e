//! RFC 8785 JSON Canonicalization Scheme (stub).
use crate::json::Value;
use crate::Result;

/// Writes the JCS canonical form of `value`.
///
/// # Errors
/// [`crate::Error::Unrepresentable`] for non-finite floats; I/O errors.
pub fn write<W: std::io::Write>(value: &Value, out: &mut W) -> Result<()> {
    let _ = (value, out);
    todo!("canonical::write")
}

/// The JCS canonical bytes of `value`.
///
/// # Errors
/// As [`write`].
pub fn to_vec(value: &Value) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    write(value, &mut out)?;
    Ok(out)
}
