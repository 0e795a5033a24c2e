//! JSON NIFs: decode to terms, encode from terms, RFC 8785 canonical form.

use crate::error::NifResult;
use crate::terms::{self, new_binary};
use jido_core::canonical;
use jido_core::json::{self, Layout};
use rustler::{Binary, Env, Term};

/// `json_decode(binary, max_depth) :: {:ok, term} | {:error, {:invalid_json, detail}}`
#[rustler::nif(schedule = "DirtyCpu")]
fn json_decode<'a>(env: Env<'a>, bytes: Binary<'a>, max_depth: usize) -> NifResult<Term<'a>> {
    let value = json::parse(bytes.as_slice(), max_depth)?;
    Ok(terms::to_term(env, &value))
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
    let mut out = Vec::new();
    json::to_writer(&value, &mut out, layout)?;
    Ok(new_binary(env, &out))
}

/// `json_canonicalize(binary, max_depth) :: {:ok, binary} | {:error, reason}` — RFC 8785 bytes.
#[rustler::nif(schedule = "DirtyCpu")]
fn json_canonicalize<'a>(
    env: Env<'a>,
    bytes: Binary<'a>,
    max_depth: usize,
) -> NifResult<Binary<'a>> {
    let value = json::parse(bytes.as_slice(), max_depth)?;
    let out = canonical::to_vec(&value)?;
    Ok(new_binary(env, &out))
}
