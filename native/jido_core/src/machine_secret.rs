//! The per-installation 32-byte machine secret (stub).
use crate::Result;
use std::path::Path;

/// What to do with a secret file readable or writable by group/other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InsecureMode {
    /// Refuse with [`crate::Error::InsecureSecret`].
    Refuse,
    /// `fchmod` it to 0600 and report that it was repaired.
    Repair,
}

/// The secret bytes; zeroed on drop, never printed.
pub struct MachineSecret(zeroize::Zeroizing<[u8; 32]>);

impl MachineSecret {
    /// Wraps raw bytes (tests and tools).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(zeroize::Zeroizing::new(bytes))
    }
    /// The raw bytes.
    pub fn expose(&self) -> &[u8; 32] {
        &self.0
    }
}

impl std::fmt::Debug for MachineSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MachineSecret(<redacted>)")
    }
}

/// How [`load_or_create`] obtained the secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Read from an existing file.
    Existing,
    /// Created by this call.
    Created,
    /// Existing, and its permissions were repaired to 0600.
    Repaired,
}

/// Loads the secret at `path`, creating it race-free if missing.
///
/// # Errors
/// See the module docs.
pub fn load_or_create(path: &Path, insecure: InsecureMode) -> Result<(MachineSecret, Origin)> {
    let _ = (path, insecure);
    todo!("machine_secret::load_or_create")
}
