//! Project-path NIFs: validation, pinning (an open directory descriptor held
//! in a resource) and re-validation against the pin.

use crate::atoms;
use crate::crypto::path_of;
use crate::error::{Done, NifResult};
use crate::terms::new_binary;
use jido_core::beneath::{self, Kind};
use jido_core::path_guard::{self, PathPolicy, PinnedDir};
use rustler::{Atom, Binary, Env, ResourceArc};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

/// A pinned project directory held by the VM; the descriptor closes when the
/// last reference is garbage-collected.
pub struct PinResource(pub PinnedDir);

#[rustler::resource_impl]
impl rustler::Resource for PinResource {}

fn policy(allowed_roots: Option<Vec<Binary>>, denied_roots: Vec<Binary>) -> PathPolicy {
    let to_paths = |bins: Vec<Binary>| -> Vec<PathBuf> {
        bins.iter()
            .map(|b| PathBuf::from(OsStr::from_bytes(b.as_slice())))
            .collect()
    };
    PathPolicy {
        allowed_roots: allowed_roots.map(to_paths),
        denied_roots: to_paths(denied_roots),
    }
}

/// `path_validate(path, allowed_roots | nil, denied_roots) :: :ok | {:error, :project_path_*}`
#[rustler::nif(schedule = "DirtyIo")]
fn path_validate(
    path: Binary,
    allowed_roots: Option<Vec<Binary>>,
    denied_roots: Vec<Binary>,
) -> Done {
    path_guard::validate(path_of(&path), &policy(allowed_roots, denied_roots)).into()
}

/// `path_pin(path, allowed_roots | nil, denied_roots) :: {:ok, pin} | {:error, :project_path_*}`
#[rustler::nif(schedule = "DirtyIo")]
fn path_pin(
    path: Binary,
    allowed_roots: Option<Vec<Binary>>,
    denied_roots: Vec<Binary>,
) -> NifResult<ResourceArc<PinResource>> {
    let pin = path_guard::pin(path_of(&path), &policy(allowed_roots, denied_roots))?;
    Ok(ResourceArc::new(PinResource(pin)))
}

/// `path_revalidate(pin) :: :ok | {:error, :project_path_changed}`
#[rustler::nif(schedule = "DirtyIo")]
fn path_revalidate(pin: ResourceArc<PinResource>) -> Done {
    pin.0.revalidate().into()
}

/// `pin_path(pin) :: binary` — the path the pin was made for.
#[rustler::nif]
fn pin_path<'a>(env: Env<'a>, pin: ResourceArc<PinResource>) -> Binary<'a> {
    new_binary(env, pin.0.path().as_os_str().as_bytes())
}

/// `path_canonicalize(path) :: {:ok, binary} | {:error, reason}` — resolves
/// symlinks; used when saving so stored paths are canonical.
#[rustler::nif(schedule = "DirtyIo")]
fn path_canonicalize<'a>(env: Env<'a>, path: Binary<'a>) -> NifResult<Binary<'a>> {
    let canonical = path_guard::canonicalize(path_of(&path))?;
    Ok(new_binary(env, canonical.as_os_str().as_bytes()))
}

/// `pin_identity(pin) :: binary` — `"<device>:<inode>"` of the pinned
/// directory, as decimal text (inode numbers can exceed 2^53). Stored in a
/// signed session so resume can tell the saved directory from another one
/// renamed into its place.
#[rustler::nif]
fn pin_identity(pin: ResourceArc<PinResource>) -> String {
    let (dev, ino) = pin.0.identity();
    format!("{dev}:{ino}")
}

// ---- files beneath a pin (the assistant's file tools) ---------------------

fn kind_atom(kind: Kind) -> Atom {
    match kind {
        Kind::File => atoms::file(),
        Kind::Directory => atoms::directory(),
        Kind::Symlink => atoms::symlink(),
        Kind::Other => atoms::other(),
    }
}

/// `beneath_read(pin, relative_path, max_bytes) :: {:ok, binary} | {:error, reason}`
#[rustler::nif(schedule = "DirtyIo")]
fn beneath_read<'a>(
    env: Env<'a>,
    pin: ResourceArc<PinResource>,
    rel: Binary<'a>,
    max_bytes: u64,
) -> NifResult<Binary<'a>> {
    let bytes = beneath::read(&pin.0, path_of(&rel), max_bytes)?;
    Ok(new_binary(env, &bytes))
}

/// `beneath_write(pin, relative_path, binary) :: :ok | {:error, reason}` —
/// atomic and durable, missing parents created.
#[rustler::nif(schedule = "DirtyIo")]
fn beneath_write(pin: ResourceArc<PinResource>, rel: Binary, bytes: Binary) -> Done {
    beneath::write(&pin.0, path_of(&rel), bytes.as_slice()).into()
}

/// `beneath_list(pin, relative_path) :: {:ok, [{name, kind}]} | {:error, reason}`
#[rustler::nif(schedule = "DirtyIo")]
fn beneath_list<'a>(
    env: Env<'a>,
    pin: ResourceArc<PinResource>,
    rel: Binary<'a>,
) -> NifResult<Vec<(Binary<'a>, Atom)>> {
    let entries = beneath::list(&pin.0, path_of(&rel))?;
    Ok(entries
        .iter()
        .map(|e| (new_binary(env, e.name.as_bytes()), kind_atom(e.kind)))
        .collect())
}

/// `beneath_stat(pin, relative_path) :: {:ok, {kind, size, mode, mtime}} | {:error, reason}`
#[rustler::nif(schedule = "DirtyIo")]
fn beneath_stat(pin: ResourceArc<PinResource>, rel: Binary) -> NifResult<(Atom, u64, u32, i64)> {
    let info = beneath::stat(&pin.0, path_of(&rel))?;
    Ok((kind_atom(info.kind), info.size, info.mode, info.mtime))
}
