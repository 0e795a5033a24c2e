//! File NIFs: bounded reads, atomic writes, and the whole-session load/save.

use crate::crypto::{path_of, signature_atom, KeyResource};
use crate::error::{Done, NifError, NifResult};
use crate::terms::{self, new_binary};
use jido_core::json::Value;
use jido_core::session::{self, Limits, Loaded, UnsignedFiles};
use jido_core::{atomic_write, bounded_read, listing};
use rustler::{Atom, Binary, Encoder, Env, ResourceArc, Term};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

/// `read_file(path, max_bytes) :: {:ok, binary} | {:error, reason}`
///
/// Never follows a final symlink, never blocks on a FIFO, never reads more
/// than `max_bytes + 1` bytes.
#[rustler::nif(schedule = "DirtyIo")]
fn read_file<'a>(env: Env<'a>, path: Binary<'a>, max_bytes: u64) -> NifResult<Binary<'a>> {
    let bytes = bounded_read::read_regular(path_of(&path), max_bytes)?;
    Ok(new_binary(env, &bytes))
}

/// `write_file_atomic(path, iodata_binary) :: :ok | {:error, reason}` —
/// temp file, fsync, rename, directory fsync.
#[rustler::nif(schedule = "DirtyIo")]
fn write_file_atomic(path: Binary, bytes: Binary) -> Done {
    atomic_write::write_atomic(path_of(&path), bytes.as_slice()).into()
}

/// `create_private_dir(path) :: :ok | {:error, reason}` — mkdir -p, mode 0700.
#[rustler::nif(schedule = "DirtyIo")]
fn create_private_dir(path: Binary) -> Done {
    atomic_write::create_private_dir(path_of(&path)).into()
}

/// `remove_stale_temp_files(dir, file_name | nil) :: {:ok, removed_count} | {:error, reason}`
///
/// Removes temp files left by a killed writer: those of `file_name` only, or
/// of every file when `nil` (start-up, before any writer runs — a concurrent
/// save of another session would otherwise lose its temp file).
#[rustler::nif(schedule = "DirtyIo")]
fn remove_stale_temp_files(dir: Binary, file_name: Option<Binary>) -> NifResult<usize> {
    let target = file_name.as_ref().map(|b| OsStr::from_bytes(b.as_slice()));
    Ok(atomic_write::remove_stale_temp_files(
        path_of(&dir),
        target,
    )?)
}

/// `session_load(path, key, max_file_size, max_depth, allow_unsigned?)
///   :: {:ok, {document, :signed | :unsigned, size}} | {:error, reason}`
///
/// [`session::load`] (bounded read → parse → signature check, on one parse)
/// → terms. With `allow_unsigned?` false an unsigned file is
/// `{:error, :missing_signature}` before any term is built.
/// `DirtyCpu`: a page-cache read is a memcpy; the parse and MAC dominate.
#[rustler::nif(schedule = "DirtyCpu")]
fn session_load<'a>(
    env: Env<'a>,
    path: Binary<'a>,
    key: ResourceArc<KeyResource>,
    max_file_size: u64,
    max_depth: usize,
    allow_unsigned: bool,
) -> NifResult<(Term<'a>, Atom, u64)> {
    let limits = Limits {
        max_file_size,
        max_depth,
    };
    let loaded = session::load(
        path_of(&path),
        &key.0,
        limits,
        unsigned_files(allow_unsigned),
    )?;
    Ok(loaded_term(env, loaded))
}

/// The policy for an `allow_unsigned?` argument.
pub fn unsigned_files(allow_unsigned: bool) -> UnsignedFiles {
    if allow_unsigned {
        UnsignedFiles::Accept
    } else {
        UnsignedFiles::Refuse
    }
}

/// `session_inspect(path, key, max_file_size, max_depth)
///   :: {:ok, {document, :signed | :unsigned | {:error, reason}, size}} | {:error, reason}`
///
/// One bounded read and one parse; a signature failure (foreign, tampered,
/// malformed) is returned next to the document rather than instead of it.
/// For import, which must show a file from another installation.
#[rustler::nif(schedule = "DirtyCpu")]
fn session_inspect<'a>(
    env: Env<'a>,
    path: Binary<'a>,
    key: ResourceArc<KeyResource>,
    max_file_size: u64,
    max_depth: usize,
) -> NifResult<(Term<'a>, Term<'a>, u64)> {
    let limits = Limits {
        max_file_size,
        max_depth,
    };
    let inspected = session::inspect(path_of(&path), &key.0, limits)?;
    let verdict = match inspected.signature {
        Ok(state) => signature_atom(state).encode(env),
        Err(e) => (rustler::types::atom::error(), NifError::from(e)).encode(env),
    };
    let document = terms::to_term(env, &inspected.document);
    Ok((document, verdict, inspected.size))
}

/// The `{document, signature_state, size}` result of `session_load/5` and
/// `session_lock_load/5`: the packed document's long strings become
/// sub-binaries of its one buffer.
pub fn loaded_term(env: Env<'_>, loaded: Loaded) -> (Term<'_>, Atom, u64) {
    let document = terms::packed_to_term(env, loaded.document);
    (document, signature_atom(loaded.signature), loaded.size)
}

/// `session_save(path, document, key, max_file_size, max_depth)
///   :: {:ok, size} | {:error, reason}`
///
/// Terms → document → sign → pretty JSON (metadata first) → size check →
/// atomic durable write. `DirtyIo`: the two fsyncs dominate.
#[rustler::nif(schedule = "DirtyIo")]
fn session_save(
    path: Binary,
    document: Term,
    key: ResourceArc<KeyResource>,
    max_file_size: u64,
    max_depth: usize,
) -> NifResult<u64> {
    let limits = Limits {
        max_file_size,
        max_depth,
    };
    let value = terms::from_term(document, max_depth)?;
    Ok(session::save(path_of(&path), value, &key.0, limits)?)
}

/// `session_list(dir, max_file_size, max_depth)
///   :: {:ok, [{file_name, {:ok, {metadata, size}} | {:error, reason}}]} | {:error, reason}`
///
/// One call for the whole directory: each `*.json` file's metadata members
/// come from a bounded prefix (see `jido_core::listing`). A bad file is an
/// error *entry*, never a failed listing.
#[rustler::nif(schedule = "DirtyIo")]
fn session_list<'a>(
    env: Env<'a>,
    dir: Binary<'a>,
    max_file_size: u64,
    max_depth: usize,
) -> NifResult<Vec<(Binary<'a>, Term<'a>)>> {
    let limits = Limits {
        max_file_size,
        max_depth,
    };
    let entries = listing::list_dir(path_of(&dir), limits, listing::DEFAULT_PREFIX_LEN)?;
    Ok(entries
        .into_iter()
        .map(|(name, result)| {
            let entry = result
                .map(|meta| {
                    let members = terms::to_term(env, &Value::Object(meta.members));
                    (members, meta.size)
                })
                .map_err(NifError::from);
            (new_binary(env, name.as_bytes()), entry.encode(env))
        })
        .collect())
}
