//! Conversion between the core's JSON [`Value`] and Erlang terms.
//!
//! Value → term: objects become maps with binary keys, arrays lists, strings
//! binaries, integers and floats numbers, `true`/`false`/`null` the atoms
//! `true`/`false`/`nil`. No atom is ever made from document data.
//!
//! Term → value: maps (atom or binary keys), lists, UTF-8 binaries, integers
//! within ±(2^53−1), floats, `true`/`false`/`nil`, other atoms as strings.
//! Everything else — tuples, pids, refs, funs, structs, improper lists,
//! invalid UTF-8, nesting over the limit — is refused with
//! `{:unsupported_term, detail}` instead of guessing an encoding.

use crate::atoms;
use crate::error::NifError;
use jido_core::json::{Object, Value};
use jido_core::Error;
use rustler::types::map::MapIterator;
use rustler::{Binary, Encoder, Env, ListIterator, NewBinary, Term, TermType};

/// Largest integer magnitude that survives a round trip through an IEEE-754
/// double, which is how RFC 8785 canonicalizes numbers.
const MAX_SAFE_INTEGER: i64 = (1 << 53) - 1;

/// Builds the Erlang term for a parsed document.
pub fn to_term<'a>(env: Env<'a>, value: &Value) -> Term<'a> {
    match value {
        Value::Null => atoms::nil().encode(env),
        Value::Bool(b) => b.encode(env),
        Value::Integer(i) => i.encode(env),
        Value::Float(f) => f.encode(env),
        Value::String(s) => binary(env, s.as_bytes()),
        Value::Array(items) => {
            let terms: Vec<Term<'a>> = items.iter().map(|v| to_term(env, v)).collect();
            terms.encode(env)
        }
        Value::Object(members) => {
            let keys: Vec<Term<'a>> = members
                .iter()
                .map(|(k, _)| binary(env, k.as_bytes()))
                .collect();
            let values: Vec<Term<'a>> = members.iter().map(|(_, v)| to_term(env, v)).collect();
            // Keys are unique (the parser refuses duplicates), so this cannot
            // fail; fall back to an empty map rather than panic if it ever did.
            Term::map_from_term_arrays(env, &keys, &values)
                .unwrap_or_else(|_| rustler::types::map::map_new(env))
        }
    }
}

fn binary<'a>(env: Env<'a>, bytes: &[u8]) -> Term<'a> {
    new_binary(env, bytes).to_term(env)
}

/// Copies bytes into a fresh Erlang binary.
pub fn new_binary<'a>(env: Env<'a>, bytes: &[u8]) -> Binary<'a> {
    let mut bin = NewBinary::new(env, bytes.len());
    bin.as_mut_slice().copy_from_slice(bytes);
    bin.into()
}

/// Converts an Erlang term to a document value, refusing anything that has no
/// faithful JSON form. `max_depth` bounds recursion (terms can be arbitrarily
/// deep; a dirty scheduler's stack is not).
///
/// # Errors
/// `Error::Unrepresentable` (→ `{:unsupported_term, detail}`).
pub fn from_term(term: Term<'_>, max_depth: usize) -> Result<Value, NifError> {
    convert(term, max_depth).map_err(|what| NifError::from(Error::Unrepresentable(what)))
}

fn convert(term: Term<'_>, depth_left: usize) -> Result<Value, &'static str> {
    match term.get_type() {
        TermType::Atom => Ok(atom_value(term)?),
        TermType::Binary => {
            let bin = Binary::from_term(term).map_err(|_| "bitstring that is not a binary")?;
            let s = std::str::from_utf8(bin.as_slice()).map_err(|_| "binary is not valid UTF-8")?;
            Ok(Value::String(s.to_owned()))
        }
        TermType::Integer => {
            let i: i64 = term.decode().map_err(|_| "integer outside ±(2^53-1)")?;
            if i.abs() > MAX_SAFE_INTEGER {
                return Err("integer outside ±(2^53-1)");
            }
            Ok(Value::Integer(i))
        }
        TermType::Float => Ok(Value::Float(term.decode().map_err(|_| "float")?)),
        TermType::List => {
            let depth_left = descend(depth_left)?;
            // A ListIterator silently stops at a non-list tail; list_length
            // fails on an improper list, so check it first.
            let len = term.list_length().map_err(|_| "improper list")?;
            let iter: ListIterator = term.decode().map_err(|_| "improper list")?;
            let mut items = Vec::with_capacity(len);
            for t in iter {
                items.push(convert(t, depth_left)?);
            }
            Ok(Value::Array(items))
        }
        TermType::Map => {
            let depth_left = descend(depth_left)?;
            let iter = MapIterator::new(term).ok_or("map")?;
            let mut members: Object = Vec::with_capacity(term.map_size().unwrap_or(0));
            for (k, v) in iter {
                let key = match k.get_type() {
                    TermType::Atom => k.atom_to_string().map_err(|_| "map key atom")?,
                    TermType::Binary => {
                        let bin = Binary::from_term(k).map_err(|_| "map key bitstring")?;
                        std::str::from_utf8(bin.as_slice())
                            .map_err(|_| "map key is not valid UTF-8")?
                            .to_owned()
                    }
                    _ => return Err("map key that is neither an atom nor a binary"),
                };
                if key == "__struct__" {
                    return Err("struct (convert it to a plain map or string first)");
                }
                members.push((key, convert(v, depth_left)?));
            }
            refuse_duplicate_keys(&mut members)?;
            Ok(Value::Object(members))
        }
        TermType::Tuple => Err("tuple"),
        TermType::Pid => Err("pid"),
        TermType::Port => Err("port"),
        TermType::Ref => Err("reference"),
        TermType::Fun => Err("fun"),
        TermType::Unknown => Err("unknown term type"),
    }
}

fn descend(depth_left: usize) -> Result<usize, &'static str> {
    depth_left.checked_sub(1).ok_or("nesting too deep")
}

fn atom_value(term: Term<'_>) -> Result<Value, &'static str> {
    let name = term.atom_to_string().map_err(|_| "atom")?;
    Ok(match name.as_str() {
        "true" => Value::Bool(true),
        "false" => Value::Bool(false),
        "nil" => Value::Null,
        _ => Value::String(name),
    })
}

/// `%{:name => 1, "name" => 2}` would produce a JSON object with a duplicate
/// key, which our own parser refuses on load; refuse it on the way in too.
fn refuse_duplicate_keys(members: &mut Object) -> Result<(), &'static str> {
    let mut keys: Vec<&str> = members.iter().map(|(k, _)| k.as_str()).collect();
    keys.sort_unstable();
    if keys.windows(2).any(|w| w[0] == w[1]) {
        return Err("map has the same key as an atom and as a binary");
    }
    Ok(())
}
