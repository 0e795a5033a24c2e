//! Signing-key NIFs. The derived key lives only in a NIF resource: Elixir
//! holds an opaque reference, so the key can never reach a log, `inspect/1`
//! output or a crash dump.

use crate::atoms;
use crate::error::NifResult;
use crate::terms;
use jido_core::machine_secret::{self, HomeCheck, InsecureMode, Origin};
use jido_core::signing::{SignatureState, SigningKey};
use jido_core::Error;
use rustler::{Atom, Binary, Encoder, Env, ResourceArc, Term};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// A derived signing key held by the VM.
pub struct KeyResource(pub SigningKey);

#[rustler::resource_impl]
impl rustler::Resource for KeyResource {}

/// Borrow a path from a binary without requiring UTF-8 (paths are bytes).
pub fn path_of<'a>(bin: &'a Binary<'_>) -> &'a Path {
    Path::new(OsStr::from_bytes(bin.as_slice()))
}

/// `signing_key_load(secret_path, salt, hostname | nil, repair?)
///   :: {:ok, {key, key_id, :existing | :created | :repaired}} | {:error, reason}`
///
/// Creates the machine secret if missing (race-free) and derives the key.
#[rustler::nif(schedule = "DirtyIo")]
fn signing_key_load(
    secret_path: Binary,
    salt: Binary,
    hostname: Option<Binary>,
    repair: bool,
) -> NifResult<(ResourceArc<KeyResource>, String, Atom)> {
    let mode = insecure_mode(repair);
    let (secret, origin) = machine_secret::load_or_create(path_of(&secret_path), mode)?;
    derive_key(&secret, &salt, hostname, origin)
}

/// `signing_key_open(secret_path, salt, hostname | nil)
///   :: {:ok, {key, key_id, :existing}} | {:error, :not_found | reason}`
///
/// As `signing_key_load/4` with `repair? = false`, but never creates the
/// secret (or its directory): for read-only callers.
#[rustler::nif(schedule = "DirtyIo")]
fn signing_key_open(
    secret_path: Binary,
    salt: Binary,
    hostname: Option<Binary>,
) -> NifResult<(ResourceArc<KeyResource>, String, Atom)> {
    let (secret, origin) =
        machine_secret::load_existing(path_of(&secret_path), InsecureMode::Refuse)?;
    derive_key(&secret, &salt, hostname, origin)
}

fn insecure_mode(repair: bool) -> InsecureMode {
    if repair {
        InsecureMode::Repair
    } else {
        InsecureMode::Refuse
    }
}

/// The key of `secret` as the `{key, key_id, origin}` both loaders return.
fn derive_key(
    secret: &machine_secret::MachineSecret,
    salt: &Binary,
    hostname: Option<Binary>,
    origin: Origin,
) -> NifResult<(ResourceArc<KeyResource>, String, Atom)> {
    let hostname = hostname
        .as_ref()
        .map(|h| std::str::from_utf8(h.as_slice()))
        .transpose()
        .map_err(|_| Error::Unrepresentable("hostname is not valid UTF-8"))?;
    let key = SigningKey::derive(secret, salt.as_slice(), hostname);
    let key_id = key.key_id().to_owned();
    let origin = match origin {
        Origin::Existing => atoms::existing(),
        Origin::Created => atoms::created(),
        Origin::Repaired => atoms::repaired(),
    };
    Ok((ResourceArc::new(KeyResource(key)), key_id, origin))
}

/// `home_check(home, repair?) :: {:ok, :secure | :missing | {:repaired, mode}} | {:error, {:insecure_home, reason}}`
///
/// The home must be a directory of ours, closed to group/other writes; a
/// writable one is repaired when `repair?` (the caller warns either way).
#[rustler::nif(schedule = "DirtyIo")]
fn home_check<'a>(env: Env<'a>, home: Binary<'a>, repair: bool) -> NifResult<Term<'a>> {
    let mode = if repair {
        InsecureMode::Repair
    } else {
        InsecureMode::Refuse
    };
    Ok(match machine_secret::check_home(path_of(&home), mode)? {
        HomeCheck::Secure => atoms::secure().encode(env),
        HomeCheck::Missing => atoms::missing().encode(env),
        HomeCheck::Repaired { mode } => (atoms::repaired(), mode).encode(env),
    })
}

/// `signing_key_id(key) :: binary` — the public fingerprint.
#[rustler::nif]
fn signing_key_id(key: ResourceArc<KeyResource>) -> String {
    key.0.key_id().to_owned()
}

/// `document_sign(key, json_binary, max_depth) :: {:ok, signed_compact_json} | {:error, reason}`
#[rustler::nif(schedule = "DirtyCpu")]
fn document_sign<'a>(
    env: Env<'a>,
    key: ResourceArc<KeyResource>,
    bytes: Binary<'a>,
    max_depth: usize,
) -> NifResult<Binary<'a>> {
    let mut doc = jido_core::json::parse_borrowed(bytes.as_slice(), max_depth)?;
    key.0.sign_document(&mut doc)?;
    // Compact output is about the size of the input plus key_id and
    // signature; a larger one just grows the vector.
    let mut out = Vec::with_capacity(bytes.len() + 128);
    jido_core::json::append_to(&doc, &mut out, jido_core::json::Layout::Compact)?;
    Ok(terms::new_binary(env, &out))
}

/// `document_verify(key, json_binary, max_depth) :: {:ok, :signed | :unsigned} | {:error, reason}`
#[rustler::nif(schedule = "DirtyCpu")]
fn document_verify(
    key: ResourceArc<KeyResource>,
    bytes: Binary,
    max_depth: usize,
) -> NifResult<Atom> {
    let doc = jido_core::json::parse_borrowed(bytes.as_slice(), max_depth)?;
    Ok(signature_atom(key.0.verify_document(&doc)?))
}

/// The atom for a signature state.
pub fn signature_atom(state: SignatureState) -> Atom {
    match state {
        SignatureState::Signed => atoms::signed(),
        SignatureState::Unsigned => atoms::unsigned(),
    }
}

/// `hmac(key, binary) :: binary` — raw HMAC-SHA256 tag (32 bytes).
#[rustler::nif(schedule = "DirtyCpu")]
fn hmac<'a>(env: Env<'a>, key: ResourceArc<KeyResource>, bytes: Binary<'a>) -> Term<'a> {
    terms::new_binary(env, &key.0.mac(bytes.as_slice())).to_term(env)
}
