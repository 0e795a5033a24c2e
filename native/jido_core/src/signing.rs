//! HKDF key derivation and HMAC-SHA256 document signatures (stub).
use crate::json::Value;
use crate::machine_secret::MachineSecret;
use crate::Result;

/// Whether a verified document carried a signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureState {
    /// A valid signature under our key.
    Signed,
    /// No `signature` member (a legacy file; policy is the caller's).
    Unsigned,
}

/// A derived HMAC key; zeroed on drop, never printed.
pub struct SigningKey {
    key: zeroize::Zeroizing<[u8; 32]>,
    key_id: String,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey").field("key_id", &self.key_id).finish_non_exhaustive()
    }
}

impl SigningKey {
    /// Derives the key (HKDF-SHA256).
    pub fn derive(secret: &MachineSecret, salt: &[u8], hostname: Option<&str>) -> Self {
        let _ = (secret, salt, hostname);
        todo!("SigningKey::derive")
    }
    /// Hex fingerprint of the key.
    pub fn key_id(&self) -> &str {
        let _ = &self.key;
        &self.key_id
    }
    /// Sets `key_id` and `signature` on a top-level object.
    ///
    /// # Errors
    /// [`crate::Error::NotAnObject`].
    pub fn sign_document(&self, doc: &mut Value) -> Result<()> {
        let _ = doc;
        todo!("sign_document")
    }
    /// Verifies a document's signature.
    ///
    /// # Errors
    /// Signature errors.
    pub fn verify_document(&self, doc: &Value) -> Result<SignatureState> {
        let _ = doc;
        todo!("verify_document")
    }
}
