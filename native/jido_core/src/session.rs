//! The two whole-file operations the store is built on: load-and-verify and
//! sign-and-write of a session document.
//!
//! Both work on one parse of the bytes: what is verified is exactly what is
//! returned, so no value can hide behind a signature (see [`crate::json`] on
//! duplicate keys and out-of-range integers).

use crate::bounded_read;
use crate::json::{self, Layout, Node, Packed, Value};
use crate::signing::{self, SignatureState, SigningKey};
use crate::{atomic_write, Error, Result};
use std::path::Path;

/// Size and shape limits applied to every session file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest file accepted on load and produced on save, in bytes.
    pub max_file_size: u64,
    /// Deepest array/object nesting accepted (clamped to [`json::MAX_DEPTH_CAP`]).
    pub max_depth: usize,
}

impl Default for Limits {
    /// 10 MiB and 64 levels: a session is at most five levels deep, so 64
    /// leaves room for provider config without letting a hostile file recurse.
    fn default() -> Self {
        Self {
            max_file_size: 10 * 1024 * 1024,
            max_depth: 64,
        }
    }
}

/// Most top-level members a session document may have: the thirteen of
/// [`MEMBER_ORDER`] leave room for extension members, and a bound keeps the
/// work a listing does per file small whatever the file holds (see
/// [`crate::listing`]). Loading refuses more, and saving never writes more.
pub const MAX_MEMBERS: usize = 64;

/// The refusal detail of a document with more than [`MAX_MEMBERS`] members.
#[cold]
pub(crate) fn too_many_members() -> String {
    format!("session document has more than {MAX_MEMBERS} top-level members")
}

/// Refuses a session document with `count` top-level members if that is more
/// than [`MAX_MEMBERS`].
///
/// # Errors
/// [`Error::InvalidJson`] naming the limit.
pub fn check_member_count(count: usize) -> Result<()> {
    if count > MAX_MEMBERS {
        return Err(Error::invalid_json(too_many_members()));
    }
    Ok(())
}

/// What a load does with a document that carries no signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnsignedFiles {
    /// Return it as [`SignatureState::Unsigned`]: the caller decides (legacy
    /// files before the migration).
    Accept,
    /// Refuse it with [`Error::MissingSignature`] as soon as the parse shows
    /// it, before anything is built from it: once signatures are enforced, an
    /// unsigned file costs no more than its parse.
    Refuse,
}

/// A verified session document, packed into the bytes of its file (see
/// [`json::parse_packed`]): every string is a range of one buffer, which the
/// NIF hands on whole and refers into (sub-binaries) instead of copying each
/// string. [`Packed::to_value`] gives the plain model back.
#[derive(Debug)]
pub struct Loaded {
    /// The parsed document (a JSON object), members in file order.
    pub document: Packed,
    /// Whether it carried a signature (a missing one is the caller's policy).
    pub signature: SignatureState,
    /// Size of the file in bytes.
    pub size: u64,
}

/// Top-level members in the order they are written. Metadata comes first so a
/// listing can read a bounded prefix instead of the whole conversation;
/// members not named here go between the metadata and the bulky arrays, and
/// the signature goes last.
pub const MEMBER_ORDER: [&str; 13] = [
    "version",
    "id",
    "name",
    "project_path",
    "config",
    "created_at",
    "updated_at",
    "closed_at",
    "key_id",
    "conversation",
    "todos",
    "prompt_history",
    "signature",
];

/// Rank of members not in [`MEMBER_ORDER`]: after `key_id`, before `conversation`.
const UNKNOWN_MEMBER_RANK: usize = 9;

fn member_rank(key: &str) -> usize {
    match MEMBER_ORDER.iter().position(|k| *k == key) {
        Some(i) if i < UNKNOWN_MEMBER_RANK => i,
        Some(i) => i + 1,
        None => UNKNOWN_MEMBER_RANK,
    }
}

/// Reads, parses and verifies the session file at `path`: the load of the
/// store, and the only one ([`crate::session_lock::LockedSession::load`] is
/// this on a locked descriptor).
///
/// The read is size-gated and never follows a symlink or blocks on a FIFO
/// ([`bounded_read::read_regular`]); the document must be a JSON object of at
/// most [`MAX_MEMBERS`] members; a signature it carries must verify under
/// `key`. A document without one comes back as [`SignatureState::Unsigned`]
/// or is refused, as `unsigned` says.
///
/// # Errors
/// Any error of [`bounded_read::read_regular`] and [`json::parse`];
/// [`Error::NotAnObject`]; [`Error::InvalidJson`] for too many members;
/// [`Error::MissingSignature`] for an unsigned document under
/// [`UnsignedFiles::Refuse`]; the signature errors of
/// [`SigningKey::verify_document`].
pub fn load(
    path: &Path,
    key: &SigningKey,
    limits: Limits,
    unsigned: UnsignedFiles,
) -> Result<Loaded> {
    let bytes = bounded_read::read_regular(path, limits.max_file_size)?;
    verify(bytes, key, limits, unsigned)
}

/// The parse-and-verify half of [`load`], on bytes already read under the
/// size gate (by [`load`], or through a locked descriptor by
/// [`crate::session_lock::LockedSession::load`]).
///
/// The document is packed into `bytes` ([`json::parse_packed_screened`]) and
/// its signature checked on the packed form, before the caller builds
/// anything from it: packing decodes strings in place, never changes their
/// text, so what is verified is what is returned.
///
/// # Errors
/// Everything [`load`] returns except the read errors.
pub(crate) fn verify(
    bytes: Vec<u8>,
    key: &SigningKey,
    limits: Limits,
    unsigned: UnsignedFiles,
) -> Result<Loaded> {
    let size = bytes.len() as u64;
    // The member count and the unsigned policy need only the top-level keys:
    // decided right after the parse, so a refused file costs no more.
    let screen = |keys: Option<&[&str]>| {
        let keys = keys.ok_or(Error::NotAnObject)?;
        check_member_count(keys.len())?;
        if unsigned == UnsignedFiles::Refuse && !keys.contains(&signing::SIGNATURE_MEMBER) {
            return Err(Error::MissingSignature);
        }
        Ok(())
    };
    let (document, signature) =
        json::parse_packed_screened(bytes, limits.max_depth, screen, |document| {
            signature_of(document, key)
        })?;
    Ok(Loaded {
        document,
        signature,
        size,
    })
}

/// The shape checks, then the signature: the verdict [`verify`] returns with
/// the document.
fn signature_of<S: AsRef<str>>(document: &Node<S>, key: &SigningKey) -> Result<SignatureState> {
    check_shape(document)?;
    key.verify_document(document)
}

/// The shape of a session document: an object of at most [`MAX_MEMBERS`]
/// members. One rule for [`verify`] and [`inspect`].
fn check_shape<S: AsRef<str>>(document: &Node<S>) -> Result<()> {
    let Node::Object(members) = document else {
        return Err(Error::NotAnObject);
    };
    check_member_count(members.len())
}

/// A session file read and parsed once, with the verdict on its signature
/// kept apart from the document (see [`inspect`]).
#[derive(Debug)]
pub struct Inspected {
    /// The parsed document (an object).
    pub document: Value,
    /// The signature check under our key: what [`load`] would have accepted
    /// (an unsigned document under [`UnsignedFiles::Accept`]), or the
    /// signature error it would have refused the file with.
    pub signature: Result<SignatureState>,
    /// Size of the bytes read.
    pub size: u64,
}

/// Reads and parses the session file at `path` once and checks its
/// signature, returning the document whatever the signature verdict: for an
/// import, which must show a file signed by another installation (it cannot
/// be verified here) rather than refuse it unseen. The read, the parse and
/// the checks are those of [`load`]; only a signature failure is returned
/// inside [`Inspected::signature`] instead of as the error.
///
/// # Errors
/// The read and parse errors of [`load`], [`Error::NotAnObject`], and
/// [`Error::InvalidJson`] for more than [`MAX_MEMBERS`] members.
pub fn inspect(path: &Path, key: &SigningKey, limits: Limits) -> Result<Inspected> {
    let bytes = bounded_read::read_regular(path, limits.max_file_size)?;
    let document = json::parse(&bytes, limits.max_depth)?;
    // A document that is no session at all is an error, as for `load`;
    // only the signature's verdict travels with the document.
    check_shape(&document)?;
    let signature = key.verify_document(&document);
    Ok(Inspected {
        document,
        signature,
        size: bytes.len() as u64,
    })
}

/// Signs `document`, lays its members out in [`MEMBER_ORDER`] and writes it
/// atomically and durably to `path` as pretty JSON. Returns the bytes written.
///
/// # Errors
/// [`Error::NotAnObject`]; [`Error::InvalidJson`] for more than
/// [`MAX_MEMBERS`] members; [`Error::DocumentTooLarge`] if the result would
/// be over `limits.max_file_size`, [`Error::Unrepresentable`] if it would
/// hold more values than the [`json::value_budget`] of its size allows
/// (nothing is written: a store that writes files it later refuses to load
/// would lose sessions); I/O errors of
/// [`atomic_write::write_atomic`], which leaves the old file untouched.
pub fn save<S>(path: &Path, mut document: Node<S>, key: &SigningKey, limits: Limits) -> Result<u64>
where
    S: AsRef<str> + From<String>,
{
    // Sign first: JCS makes the signature independent of member order, so the
    // layout below is free to put key_id with the metadata.
    let canonical_len = key.sign_document_measured(&mut document)?;
    let Node::Object(members) = &mut document else {
        return Err(Error::NotAnObject);
    };
    check_member_count(members.len())?;
    members.sort_by_key(|(k, _)| member_rank(k.as_ref()));
    // The pretty text is the canonical text plus indentation, the signature
    // and a few number spellings; size the buffer once rather than let it
    // double its way up (each step a copy of everything so far). A quarter
    // more covers the indentation of all but documents made of tiny values,
    // which then grow once.
    let estimate = canonical_len.saturating_add(canonical_len / 4 + 256);
    let mut bytes = Vec::with_capacity(usize::try_from(estimate).unwrap_or(usize::MAX));
    json::append_to(&document, &mut bytes, Layout::Pretty)?;
    let values = json::value_count(&document);
    // The tree is not needed any more: free it before the write and its
    // fsyncs rather than after.
    drop(document);
    let size = bytes.len() as u64;
    if size > limits.max_file_size {
        return Err(Error::DocumentTooLarge {
            size,
            limit: limits.max_file_size,
        });
    }
    if values > json::value_budget(bytes.len()) {
        return Err(Error::Unrepresentable(
            "document holds more values than the size of its file allows (json::value_budget)",
        ));
    }
    atomic_write::write_atomic(path, &bytes)?;
    Ok(size)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_members_rank_before_unknown_members_and_bulk_arrays() {
        assert!(member_rank("closed_at") < member_rank("key_id"));
        assert!(member_rank("key_id") < member_rank("x-extension"));
        assert!(member_rank("x-extension") < member_rank("conversation"));
        assert!(member_rank("prompt_history") < member_rank("signature"));
    }
}
