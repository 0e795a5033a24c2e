//! Size-gated file reads (stub).
use crate::Result;
use std::path::Path;

/// Reads a regular file of at most `limit` bytes.
///
/// # Errors
/// See module docs.
pub fn read_regular(path: &Path, limit: u64) -> Result<Vec<u8>> {
    let _ = (path, limit);
    todo!("read_regular")
}
