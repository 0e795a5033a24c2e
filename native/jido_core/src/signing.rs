//! HKDF key derivation and HMAC-SHA256 document signatures.
//!
//! # What is signed
//!
//! A session document is a top-level JSON object. Its signature is
//! HMAC-SHA256 over the RFC 8785 (JCS) canonical bytes of the document with the
//! top-level `"signature"` member left out (see
//! [`crate::canonical::write_without_member`]), stored as standard base64 in
//! that `"signature"` member. Because the canonical form fixes key order,
//! whitespace and number formatting, a pretty-printed, compacted or reordered
//! copy of a signed file still verifies, and any JCS implementation in any
//! language can check a file given the key. The canonical bytes are streamed
//! straight into the MAC: a large session is never serialized a second time
//! into memory just to be signed.
//!
//! # Where the key comes from
//!
//! The key is HKDF-SHA256 ([RFC 5869]) over the random 32-byte
//! [`MachineSecret`], salted with the configured signing salt, with an `info`
//! string naming this purpose (`jido_code/session-signature/v1`) and, unless
//! configured off, the hostname. HKDF rather than PBKDF2 or another slow
//! password hash: the input is already 256 bits of uniform randomness, so
//! there is nothing to brute-force and stretching would only slow down every
//! start-up. The versioned `info` string keeps this key separate from any
//! other key ever derived from the same secret.
//!
//! # `key_id`
//!
//! Every signed document carries `"key_id"`: the first 8 bytes, in hex, of
//! HMAC-SHA256(key, `"jido_code/key-id/v1"`). It is a one-way fingerprint —
//! learning it tells nothing about the key — and it lets
//! [`SigningKey::verify_document`] tell a file signed on another machine or
//! installation ([`Error::ForeignSignature`]) from a file altered after
//! signing ([`Error::SignatureMismatch`]). Both are rejections; the
//! distinction only tells the user what happened. `key_id` is itself covered
//! by the MAC.
//!
//! Tags are compared with [`Mac::verify_slice`], which is constant-time: an
//! `==` on tags would leak, through timing, how many leading bytes of a forged
//! tag are right.
//!
//! ```
//! use jido_core::{json, signing::{SigningKey, SignatureState}, machine_secret::MachineSecret};
//!
//! let key = SigningKey::derive(&MachineSecret::from_bytes([7; 32]), b"salt", Some("host"));
//! let mut doc = json::parse(br#"{"id":"x","n":1}"#, 64)?;
//! key.sign_document(&mut doc)?;
//! assert_eq!(key.verify_document(&doc)?, SignatureState::Signed);
//!
//! let other = SigningKey::derive(&MachineSecret::from_bytes([8; 32]), b"salt", Some("host"));
//! assert!(other.verify_document(&doc).is_err());
//! # Ok::<(), jido_core::Error>(())
//! ```
//!
//! [RFC 5869]: https://www.rfc-editor.org/rfc/rfc5869

use crate::json::Node;
use crate::machine_secret::MachineSecret;
use crate::{canonical, Error, Result};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::io;
use zeroize::Zeroizing;

/// Name of the top-level member holding the base64 MAC.
pub const SIGNATURE_MEMBER: &str = "signature";
/// Name of the top-level member holding the signing key's fingerprint.
pub const KEY_ID_MEMBER: &str = "key_id";
/// Length of the derived key and of a tag, in bytes.
pub const TAG_LEN: usize = 32;

/// HKDF `info` for the session-signature key. Versioned so a future scheme
/// derives an unrelated key from the same secret.
const KEY_INFO: &[u8] = b"jido_code/session-signature/v1";
/// Separates the hostname binding from [`KEY_INFO`]. The NUL cannot occur in
/// `KEY_INFO`, so "no hostname" and every hostname give distinct `info`s.
const HOST_INFO_PREFIX: &[u8] = b"\0host=";
/// Message MACed to make the key fingerprint.
const KEY_ID_LABEL: &[u8] = b"jido_code/key-id/v1";
/// Bytes of the fingerprint MAC kept in `key_id` (16 hex digits).
const KEY_ID_BYTES: usize = 8;
/// Length of standard padded base64 of a 32-byte tag.
const SIGNATURE_B64_LEN: usize = 44;
/// Longest foreign `key_id` echoed back in an error. The value comes from the
/// file, so an attacker could otherwise push megabytes into logs.
const MAX_REPORTED_KEY_ID: usize = 64;

type HmacSha256 = Hmac<Sha256>;

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
    key: Zeroizing<[u8; TAG_LEN]>,
    key_id: String,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// Derives the signing key from the machine secret with HKDF-SHA256.
    ///
    /// `salt` is the configured signing salt; `hostname`, when given, binds
    /// the key to this host so a copied home directory does not carry valid
    /// signatures to another machine. The same inputs always give the same
    /// key; changing any of them gives an unrelated key and `key_id`.
    pub fn derive(secret: &MachineSecret, salt: &[u8], hostname: Option<&str>) -> Self {
        let mut info = Vec::with_capacity(
            KEY_INFO.len() + HOST_INFO_PREFIX.len() + hostname.map_or(0, str::len),
        );
        info.extend_from_slice(KEY_INFO);
        if let Some(host) = hostname {
            info.extend_from_slice(HOST_INFO_PREFIX);
            info.extend_from_slice(host.as_bytes());
        }
        let hkdf = hkdf::Hkdf::<Sha256>::new(Some(salt), secret.expose());
        let mut key = Zeroizing::new([0u8; TAG_LEN]);
        if hkdf.expand(&info, &mut key[..]).is_err() {
            // HKDF-SHA256 can produce up to 255 * 32 bytes; we ask for 32.
            unreachable!("HKDF-SHA256 output of {TAG_LEN} bytes is always valid");
        }
        Self::from_key(key)
    }

    /// Wraps a raw key, bypassing derivation. For known-answer tests only
    /// (RFC 4231 vectors); production keys come from [`SigningKey::derive`].
    #[doc(hidden)]
    pub fn from_raw_key_for_tests(key: [u8; TAG_LEN]) -> Self {
        Self::from_key(Zeroizing::new(key))
    }

    fn from_key(key: Zeroizing<[u8; TAG_LEN]>) -> Self {
        let mut this = Self {
            key,
            key_id: String::new(),
        };
        let fingerprint = this.mac(KEY_ID_LABEL);
        this.key_id = hex(&fingerprint[..KEY_ID_BYTES]);
        this
    }

    /// Hex fingerprint of the key (16 lowercase hex digits). Safe to show and
    /// store: it reveals nothing about the key.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// HMAC-SHA256 of `bytes` under this key.
    pub fn mac(&self, bytes: &[u8]) -> [u8; TAG_LEN] {
        let mut mac = self.hmac();
        mac.update(bytes);
        mac.finalize().into_bytes().into()
    }

    /// Checks `tag` against the HMAC-SHA256 of `bytes`, in constant time.
    ///
    /// # Errors
    /// * [`Error::MalformedSignature`] — `tag` is not 32 bytes (truncated tags
    ///   are never accepted).
    /// * [`Error::SignatureMismatch`] — the tag is wrong.
    pub fn verify_mac(&self, bytes: &[u8], tag: &[u8]) -> Result<()> {
        if tag.len() != TAG_LEN {
            return Err(Error::MalformedSignature);
        }
        let mut mac = self.hmac();
        mac.update(bytes);
        mac.verify_slice(tag).map_err(|_| Error::SignatureMismatch)
    }

    /// Signs a document in place.
    ///
    /// Sets `"key_id"` to ours (keeping its position if present, else where
    /// an old `"signature"` was, else at the end), drops any old
    /// `"signature"`, and appends `"signature"`: base64 of the HMAC of the
    /// canonical document without that member.
    ///
    /// # Errors
    /// * [`Error::NotAnObject`] — `doc` is not a JSON object.
    /// * [`Error::Unrepresentable`] — the document holds a non-finite float
    ///   (it has no canonical form). The document then carries our `key_id`
    ///   and no signature.
    pub fn sign_document<S>(&self, doc: &mut Node<S>) -> Result<()>
    where
        S: AsRef<str> + From<String>,
    {
        self.sign_document_measured(doc).map(|_| ())
    }

    /// [`SigningKey::sign_document`], returning the length of the canonical
    /// bytes that were MACed: a lower bound (give or take a few number
    /// spellings) on the size of any JSON text of the document, which lets a
    /// writer size its buffer once.
    pub(crate) fn sign_document_measured<S>(&self, doc: &mut Node<S>) -> Result<u64>
    where
        S: AsRef<str> + From<String>,
    {
        let Node::Object(members) = doc else {
            return Err(Error::NotAnObject);
        };
        let key_id = Node::String(S::from(self.key_id.clone()));
        if let Some((_, value)) = members
            .iter_mut()
            .find(|(k, _)| k.as_ref() == KEY_ID_MEMBER)
        {
            *value = key_id;
        } else {
            let at = members
                .iter()
                .position(|(k, _)| k.as_ref() == SIGNATURE_MEMBER)
                .unwrap_or(members.len());
            members.insert(at, (S::from(KEY_ID_MEMBER.to_owned()), key_id));
        }
        members.retain(|(k, _)| k.as_ref() != SIGNATURE_MEMBER);

        let (mac, measured) = self.document_hmac(doc)?;
        let tag = mac.finalize().into_bytes();
        if let Node::Object(members) = doc {
            members.push((
                S::from(SIGNATURE_MEMBER.to_owned()),
                Node::String(S::from(BASE64.encode(tag))),
            ));
        }
        Ok(measured)
    }

    /// Verifies a document's signature.
    ///
    /// A document without a `"signature"` member is reported as
    /// [`SignatureState::Unsigned`]; whether that is acceptable is the
    /// caller's policy. A document without `"key_id"` is checked by its MAC
    /// alone.
    ///
    /// # Errors
    /// * [`Error::NotAnObject`] — `doc` is not a JSON object.
    /// * [`Error::MalformedSignature`] — `"signature"` is not a string holding
    ///   standard padded base64 of 32 bytes, or `"key_id"` is not a string.
    /// * [`Error::ForeignSignature`] — `"key_id"` names another key.
    /// * [`Error::SignatureMismatch`] — the MAC does not match: the document
    ///   changed after signing (or its `key_id` was forged to ours).
    /// * [`Error::Unrepresentable`] — a non-finite float (no canonical form).
    pub fn verify_document<S: AsRef<str>>(&self, doc: &Node<S>) -> Result<SignatureState> {
        let Node::Object(members) = doc else {
            return Err(Error::NotAnObject);
        };
        let member = |name: &str| {
            members
                .iter()
                .find(|(k, _)| k.as_ref() == name)
                .map(|(_, v)| v)
        };

        let Some(signature) = member(SIGNATURE_MEMBER) else {
            return Ok(SignatureState::Unsigned);
        };
        let tag = decode_signature(signature)?;

        match member(KEY_ID_MEMBER) {
            None => {}
            // key_id is public; a plain comparison leaks nothing.
            Some(Node::String(found)) if found.as_ref() == self.key_id => {}
            Some(Node::String(found)) => return Err(foreign(found.as_ref())),
            Some(_) => return Err(Error::MalformedSignature),
        }

        self.document_hmac(doc)?
            .0
            .verify_slice(&tag)
            .map_err(|_| Error::SignatureMismatch)?;
        Ok(SignatureState::Signed)
    }

    fn hmac(&self) -> HmacSha256 {
        match HmacSha256::new_from_slice(&self.key[..]) {
            Ok(mac) => mac,
            // HMAC accepts keys of any length.
            Err(_) => unreachable!("HMAC-SHA256 accepts a {TAG_LEN}-byte key"),
        }
    }

    /// The MAC state after absorbing the canonical document minus its
    /// signature member, streamed without an intermediate buffer, and the
    /// number of bytes absorbed.
    fn document_hmac<S: AsRef<str>>(&self, doc: &Node<S>) -> Result<(HmacSha256, u64)> {
        let mut writer = MacWriter {
            mac: self.hmac(),
            written: 0,
        };
        canonical::write_without_member(doc, SIGNATURE_MEMBER, &mut writer)?;
        Ok((writer.mac, writer.written))
    }
}

/// Feeds whatever the canonical writer emits into the MAC.
struct MacWriter {
    mac: HmacSha256,
    written: u64,
}

impl io::Write for MacWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_all(buf)?;
        Ok(buf.len())
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.mac.update(buf);
        self.written += buf.len() as u64;
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Decodes the `"signature"` member into a 32-byte tag.
fn decode_signature<S: AsRef<str>>(value: &Node<S>) -> Result<[u8; TAG_LEN]> {
    let Node::String(text) = value else {
        return Err(Error::MalformedSignature);
    };
    let text = text.as_ref();
    // Checked first so an attacker-sized string is never decoded. The
    // standard engine also rejects non-zero trailing bits, so each tag has
    // exactly one accepted spelling.
    if text.len() != SIGNATURE_B64_LEN {
        return Err(Error::MalformedSignature);
    }
    let bytes = BASE64.decode(text).map_err(|_| Error::MalformedSignature)?;
    <[u8; TAG_LEN]>::try_from(bytes.as_slice()).map_err(|_| Error::MalformedSignature)
}

#[cold]
fn foreign(found: &str) -> Error {
    let end = found
        .char_indices()
        .nth(MAX_REPORTED_KEY_ID)
        .map_or(found.len(), |(i, _)| i);
    Error::ForeignSignature {
        found: found[..end].to_owned(),
    }
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    bytes
        .iter()
        .flat_map(|b| [DIGITS[usize::from(b >> 4)], DIGITS[usize::from(b & 0xf)]])
        .map(char::from)
        .collect()
}
