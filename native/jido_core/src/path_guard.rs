//! Project directory validation and pinning (stub).
use crate::Result;
use std::path::{Path, PathBuf};

/// Rules a project directory must satisfy besides the fixed ones.
#[derive(Debug, Clone, Default)]
pub struct PathPolicy {
    /// If set, the directory must be one of these or inside one.
    pub allowed_roots: Option<Vec<PathBuf>>,
    /// The directory must not be one of these nor inside one.
    pub denied_roots: Vec<PathBuf>,
}

/// An open descriptor on a validated directory plus what it was when pinned.
#[derive(Debug)]
pub struct PinnedDir {
    path: PathBuf,
}

impl PinnedDir {
    /// The validated path.
    pub fn path(&self) -> &Path {
        &self.path
    }
    /// Re-walks the path and compares with the pin.
    ///
    /// # Errors
    /// `PathViolation::Changed`.
    pub fn revalidate(&self) -> Result<()> {
        todo!("revalidate")
    }
}

/// Validates and pins `path`.
///
/// # Errors
/// A `PathViolation` per rule.
pub fn pin(path: &Path, policy: &PathPolicy) -> Result<PinnedDir> {
    let _ = (path, policy);
    todo!("pin")
}
