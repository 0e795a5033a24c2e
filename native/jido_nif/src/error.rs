//! Mapping of core errors to stable Erlang terms.
//!
//! | core error | Erlang reason |
//! |---|---|
//! | `NotFound` | `:not_found` |
//! | `DirectoryNotFound` | `:directory_not_found` |
//! | `Symlink` | `:symlink` |
//! | `NotRegularFile` | `:not_regular_file` |
//! | `FileTooLarge { size }` | `{:file_too_large, size}` |
//! | `Io { op, source }` | its POSIX name as `File` gives it (`:eacces`, `:enospc`, `:erofs`, ...), else `{:io_error, "op: message"}` |
//! | `InvalidJson(detail)` | `{:invalid_json, detail}` |
//! | `NotAnObject` | `:not_an_object` |
//! | `Unrepresentable(what)` | `{:unsupported_term, what}` |
//! | `MalformedSignature` | `:malformed_signature` |
//! | `ForeignSignature { .. }` | `:foreign_signature` |
//! | `SignatureMismatch` | `:signature_verification_failed` |
//! | `MissingSignature` | `:missing_signature` |
//! | `InsecureSecret { mode }` | `{:insecure_secret_permissions, mode}` |
//! | `InvalidSecret { reason }` | `{:invalid_machine_secret, reason}` |
//! | `InsecureHome { reason }` | `{:insecure_home, reason}` |
//! | `DocumentTooLarge { size }` | `{:document_too_large, size}` |
//! | `KeyTooLarge { size }` | `{:key_too_large, size}` |
//! | `Locked` | `:locked` |
//! | `Path(v)` | `:project_path_*` (one atom per rule) |
//! | `Beneath(v)` | `:path_*` / `:invalid_path` (one atom per rule) |

use crate::atoms;
use jido_core::Error;
use rustler::{Atom, Encoder, Env, Term};

/// A core error on its way to Erlang, already reduced to its reason: a fixed
/// atom name plus an optional detail. Converting eagerly keeps the value
/// `UnwindSafe` (rustler runs NIF bodies under `catch_unwind`) and means no
/// `io::Error` or path outlives the call.
///
/// It encodes as the bare *reason*; rustler's `Encoder for Result<T, E>` adds
/// the `{:ok, _}` / `{:error, _}` tag, so NIFs simply return [`NifResult`].
#[derive(Debug)]
pub struct NifError {
    tag: &'static str,
    detail: Option<Detail>,
}

#[derive(Debug)]
enum Detail {
    Int(u64),
    Text(String),
}

/// Result of a NIF body: `{:ok, T}` or `{:error, reason}`.
pub type NifResult<T> = Result<T, NifError>;

impl From<Error> for NifError {
    fn from(e: Error) -> Self {
        use Detail::{Int, Text};
        // OS errors as Erlang's `file` reports them, so callers can match
        // `{:error, :eacces}` as they would on `File.read/1` (the original's
        // contract).
        if let Some(tag) = e.posix_name() {
            return Self { tag, detail: None };
        }
        let (tag, detail) = match e {
            Error::NotFound => ("not_found", None),
            Error::DirectoryNotFound => ("directory_not_found", None),
            Error::Symlink => ("symlink", None),
            Error::NotRegularFile => ("not_regular_file", None),
            Error::FileTooLarge { size, .. } => ("file_too_large", Some(Int(size))),
            Error::InvalidJson(detail) => ("invalid_json", Some(Text(detail))),
            Error::NotAnObject => ("not_an_object", None),
            Error::Unrepresentable(what) => ("unsupported_term", Some(Text(what.into()))),
            Error::MalformedSignature => ("malformed_signature", None),
            Error::ForeignSignature { .. } => ("foreign_signature", None),
            Error::SignatureMismatch => ("signature_verification_failed", None),
            Error::MissingSignature => ("missing_signature", None),
            Error::KeyTooLarge { size, .. } => ("key_too_large", Some(Int(size as u64))),
            Error::InsecureSecret { mode, .. } => {
                ("insecure_secret_permissions", Some(Int(u64::from(mode))))
            }
            Error::InvalidSecret { reason, .. } => {
                ("invalid_machine_secret", Some(Text(reason.into())))
            }
            Error::InsecureHome { reason, .. } => ("insecure_home", Some(Text(reason.into()))),
            Error::DocumentTooLarge { size, .. } => ("document_too_large", Some(Int(size))),
            Error::Locked => ("locked", None),
            Error::Path(v) => (v.as_str(), None),
            Error::Beneath(v) => (v.as_str(), None),
            // `Io` and any variant added to the (non_exhaustive) core later
            // still reach Elixir as a readable tuple.
            other => ("io_error", Some(Text(other.to_string()))),
        };
        Self { tag, detail }
    }
}

impl Encoder for NifError {
    fn encode<'a>(&self, env: Env<'a>) -> Term<'a> {
        // Tags come from the fixed table above, never from input, so making
        // the atom cannot grow the atom table.
        let tag = match Atom::from_str(env, self.tag) {
            Ok(atom) => atom.encode(env),
            Err(_) => atoms::io_error().encode(env),
        };
        match &self.detail {
            None => tag,
            Some(Detail::Int(n)) => (tag, *n).encode(env),
            Some(Detail::Text(t)) => (tag, t.as_str()).encode(env),
        }
    }
}

/// A NIF outcome with no value: encodes as bare `:ok` or `{:error, reason}`.
pub struct Done(pub Result<(), NifError>);

impl<E: Into<NifError>> From<Result<(), E>> for Done {
    fn from(r: Result<(), E>) -> Self {
        Self(r.map_err(Into::into))
    }
}

impl Encoder for Done {
    fn encode<'a>(&self, env: Env<'a>) -> Term<'a> {
        match &self.0 {
            Ok(()) => atoms::ok().encode(env),
            Err(e) => (atoms::error(), e).encode(env),
        }
    }
}
