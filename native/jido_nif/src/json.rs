//! JSON NIFs: decode to terms, encode from terms, RFC 8785 canonical form.

use crate::error::NifResult;
use crate::terms::{self, new_binary};
use jido_core::canonical;
use jido_core::json::{self, Layout};
use rustler::{Binary, Env, Term};

/// `json_decode(binary, max_depth) :: {:ok, term} | {:error, {:invalid_json, detail}}`
///
/// Decodes a copy of the input packed as `session_load/5` packs a file, so
/// that long strings, escaped or not, are sub-binaries of one buffer.
#[rustler::nif(schedule = "DirtyCpu")]
fn json_decode<'a>(env: Env<'a>, bytes: Binary<'a>, max_depth: usize) -> NifResult<Term<'a>> {
    let (packed, ()) = json::parse_packed(bytes.as_slice().to_vec(), max_depth, |_| Ok(()))?;
    Ok(terms::packed_to_term(env, packed))
}

/// `json_encode(term, pretty?, max_depth) :: {:ok, binary} | {:error, {:unsupported_term, detail}}`
#[rustler::nif(schedule = "DirtyCpu")]
fn json_encode<'a>(
    env: Env<'a>,
    term: Term<'a>,
    pretty: bool,
    max_depth: usize,
) -> NifResult<Binary<'a>> {
    let value = terms::from_term(term, max_depth)?;
    let layout = if pretty {
        Layout::Pretty
    } else {
        Layout::Compact
    };
    let out = json::to_vec(&value, layout)?;
    Ok(new_binary(env, &out))
}

/// `json_canonicalize(binary, max_depth) :: {:ok, binary} | {:error, reason}` — RFC 8785 bytes.
#[rustler::nif(schedule = "DirtyCpu")]
fn json_canonicalize<'a>(
    env: Env<'a>,
    bytes: Binary<'a>,
    max_depth: usize,
) -> NifResult<Binary<'a>> {
    let document = json::parse_borrowed(bytes.as_slice(), max_depth)?;
    let out = canonical::to_vec(&document)?;
    Ok(new_binary(env, &out))
}
