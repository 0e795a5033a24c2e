//! Crash-safe file replacement (stub).
use crate::Result;
use std::path::Path;

/// Atomically and durably replaces `path` with `bytes`.
///
/// # Errors
/// I/O errors; the old file is untouched and no temp file is left behind.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let _ = (path, bytes);
    todo!("write_atomic")
}

/// Creates `path` (and missing parents) with mode 0700.
///
/// # Errors
/// I/O errors.
pub fn create_private_dir(path: &Path) -> Result<()> {
    let _ = path;
    todo!("create_private_dir")
}
